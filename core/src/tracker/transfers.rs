//! Transfer orders: creation, completion, cancellation, sweeping overdue orders.

use std::collections::{BTreeMap, VecDeque};

use super::blame::Claim;
use super::state::NodeIdx;
use super::trust::{Outcome, TrustSlot};
use super::{Tracker, TrackerEvent, UploadSlots};
use rand_core::Rng as _;

use crate::ids::{ChunkIndex, ConnId, ContentId, PeerId, Token};
use crate::time::{Span, Time};
use crate::wire::{Completed, ErrorCode, LinkSecret, Message, Method, Side, TransferOrder, Verdict};

/// An ordered transfer.
#[derive(Clone, Debug)]
pub(super) struct Transfer {
    pub(super) giver: NodeIdx,
    pub(super) taker: NodeIdx,
    pub(super) giver_id: PeerId,
    pub(super) taker_id: PeerId,
    /// Both ends' trust-graph slots (kept so recording the outcome needs no lookup).
    pub(super) giver_slot: TrustSlot,
    pub(super) taker_slot: TrustSlot,
    pub(super) content: ContentId,
    pub(super) chunk: ChunkIndex,
    /// When it was ordered.
    pub(super) ordered: Time,
    /// Queue-ahead: when the giver's next upload may be ordered (in `Tracker::wakes`), and
    /// whether that time passed (the giver holds one lent slot for it).
    pub(super) wake: Option<Time>,
    pub(super) early: bool,
    /// When the tracker handled the `Completed` of the last copy ahead of this one on the same
    /// connection (same giver, same taker): its data could not move before that copy's end.
    pub(super) behind: Option<Time>,
    /// Both ends behind NAT, punching through to each other: a failure is the pair's (their
    /// NATs may not let it through), not the giver's or the taker's.
    pub(super) punch: bool,
}

impl Transfer {
    /// Whether it is expected to be moving data by `now`: ordered at least one order lead
    /// time (`lead`) ago (the tracker hears of a copy's start only with its `Completed`).
    fn expected_moving(&self, now: Time, lead: f32) -> bool {
        now.saturating_since(self.ordered).as_secs_f64() >= f64::from(lead)
    }
}

/// What is remembered of a cancelled transfer, so a late success still counts (in the
/// holders, and in the byte counters: origin + peer bytes = bytes verified by takers).
#[derive(Clone, Copy, Debug)]
struct Cancelled {
    taker: NodeIdx,
    /// Node indexes are reused once a node leaves: the ids say whether they are still its.
    taker_id: PeerId,
    content: ContentId,
    chunk: ChunkIndex,
    giver: NodeIdx,
    giver_id: PeerId,
    /// The giver was a seed (its bytes count as the origin's).
    from_origin: bool,
}

/// Live orders and recent cancellations.
///
/// Live orders sit in a slab; a token's low 32 bits are its slot and its high 32 bits are
/// random, so lookups are O(1) and a token cannot be guessed from its slot.
#[derive(Debug, Default)]
pub(super) struct TransferTable {
    slots: Vec<Option<(Token, Transfer)>>,
    free: Vec<u32>,
    live: usize,
    cancelled: BTreeMap<Token, Cancelled>,
    cancelled_order: VecDeque<Token>,
}

/// Weight of a new sample in a giver's smoothed upload rate and in the order lead time.
const RATE_SMOOTHING: f32 = 0.25;

/// `old` moved towards `sample` by [`RATE_SMOOTHING`]; the first sample (no `old` yet, 0)
/// is taken as it is.
fn smoothed(old: f32, sample: f32) -> f32 {
    if old > 0.0 { old + RATE_SMOOTHING * (sample - old) } else { sample }
}

/// Exponential smoothing of the *time per byte* (`old` and `sample` are rates): a rate
/// sample from one copy is the copy's own rate times the uploads sharing the uplink, and on
/// real links TCP shares an uplink unevenly, so the faster copies both overstate the rate and,
/// finishing sooner, give more samples. Averaging time per byte weighs each sample by its
/// copy's share and cancels both: a plain average of rates put 2 Mbit/s uplinks at up to
/// 2.6× their rate in the lab (docs/lab.md), and their slots at 14 instead of 6.
pub(super) fn smoothed_rate(old: f32, sample: f32) -> f32 {
    if old > 0.0 && sample > 0.0 { 1.0 / smoothed(1.0 / old, 1.0 / sample) } else { smoothed(old, sample) }
}

/// What a node's uplink delivered: verified bytes over windows of several copies, and the
/// copy-by-copy estimate ([`smoothed_rate`]) the tracker's rate is the larger of.
///
/// The copy-by-copy estimate reads a copy that a round trip bounds (a small chunk behind a
/// busy taker's queue takes a quarter of a second however few share the uplink: docs/lab.md)
/// as a slow uplink, and the uplink then idles for want of slots. Bytes delivered per second
/// cannot exceed what the uplink carries, so they floor the estimate without inflating it.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Delivered {
    /// The copy-by-copy estimate, bytes/s.
    per_copy: f32,
    /// The open window: when it began (a verified copy's arrival) and the bytes since.
    start: Option<Time>,
    bytes: u64,
    /// Bytes/s over the last closed window.
    rate: f32,
    /// The payload rate of the uplink a seed stated (`Publish::uplink_bps`), 0 if none: the
    /// estimate never reads below it, as copies limited by their takers' downlinks read low.
    stated: f32,
}

/// A delivery window spans at least this long and this many copies at the estimated rate,
/// so copies that finish together (started together, fairly shared) do not read as a burst.
const DELIVERY_WINDOW: Span = Span::from_secs(1);
const DELIVERY_WINDOW_COPIES: f64 = 8.0;

impl Delivered {
    /// The uplink's rate: the larger of the copy-by-copy estimate, the last window's and the
    /// stated rate.
    pub(super) fn rate(&self) -> f32 {
        self.per_copy.max(self.rate).max(self.stated)
    }

    /// Takes a seed's stated uplink, `bits_per_s` on the wire, as the floor of its rate.
    pub(super) fn state(&mut self, bits_per_s: u64) {
        self.stated = (bits_per_s as f64 / 8.0 * PAYLOAD_PER_WIRE_BYTE) as f32;
    }

    /// Records a verified copy of `bytes` with copy-by-copy rate sample `sample`; returns the
    /// giver's rate.
    pub(super) fn record(&mut self, now: Time, bytes: u32, sample: f32) -> f32 {
        self.per_copy = smoothed_rate(self.per_copy, sample);
        match self.start {
            // The first copy's bytes moved before any window began.
            None => self.start = Some(now),
            Some(start) => {
                self.bytes += u64::from(bytes);
                let span = now.saturating_since(start).as_secs_f64();
                let least = DELIVERY_WINDOW
                    .as_secs_f64()
                    .max(DELIVERY_WINDOW_COPIES * f64::from(bytes) / f64::from(self.per_copy.max(1.0)));
                if span >= least {
                    self.rate = (self.bytes as f64 / span) as f32;
                    self.start = Some(now);
                    self.bytes = 0;
                }
            }
        }
        self.rate()
    }
}

/// Payload bytes per byte on the wire for TCP over Ethernet (1 448 bytes of payload in each
/// 1 514-byte frame, with timestamps): what a stated uplink carries of chunks.
const PAYLOAD_PER_WIRE_BYTE: f64 = 1448.0 / 1514.0;

/// Queue-ahead orders the next upload this many order lead times before the current one is
/// expected to end: the lead covers order → taker → `Get` at the giver, and the expected end
/// is as the taker sees it, one latency after the giver's last byte left.
const LEAD_FACTOR: f64 = 1.5;

/// How long a taker that wasted an order (its giver waited for a `Get` that never came)
/// takes nothing: about as long as the giver waited (the peers' `order_wait`); twice as long
/// for each further one before its next verified copy.
const WASTED_ORDER_BENCH: Span = Span::from_secs(5);

/// A taker's first failure report benches it this long; each further one doubles it.
const FAILURE_BENCH: Span = Span::from_millis(50);

/// A failure reported this long after its order is a wait for the giver (a peer's progress
/// timeout is seconds), not an instant report: the taker shuns that giver instead of
/// being benched ([`Claim::Stalled`]).
const WAITED_FOR_GIVER: Span = Span::from_secs(1);

/// How many cancelled tokens are remembered for late completions.
const CANCELLED_MEMORY: usize = 4096;

impl TransferTable {
    /// A fresh token for a new order, given 32 random bits.
    fn next_token(&mut self, random: u32) -> Token {
        let slot = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            (self.slots.len() - 1) as u32
        });
        Token((u64::from(random) << 32) | u64::from(slot))
    }

    fn insert(&mut self, token: Token, t: Transfer) {
        let slot = (token.0 & 0xffff_ffff) as usize;
        self.slots[slot] = Some((token, t));
        self.live += 1;
    }

    fn get(&self, token: Token) -> Option<&Transfer> {
        match self.slots.get((token.0 & 0xffff_ffff) as usize) {
            Some(Some((t, tr))) if *t == token => Some(tr),
            _ => None,
        }
    }

    fn get_mut(&mut self, token: Token) -> Option<&mut Transfer> {
        match self.slots.get_mut((token.0 & 0xffff_ffff) as usize) {
            Some(Some((t, tr))) if *t == token => Some(tr),
            _ => None,
        }
    }

    fn remove(&mut self, token: Token) -> Option<Transfer> {
        let slot = (token.0 & 0xffff_ffff) as usize;
        match self.slots.get_mut(slot) {
            Some(entry @ Some(_)) if entry.as_ref().is_some_and(|(t, _)| *t == token) => {
                let (_, tr) = entry.take()?;
                self.free.push(slot as u32);
                self.live -= 1;
                Some(tr)
            }
            _ => None,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.live
    }

    /// Live orders in slot order (for the stats snapshot).
    pub(super) fn iter(&self) -> impl Iterator<Item = (Token, &Transfer)> {
        self.slots.iter().filter_map(|s| s.as_ref().map(|(token, t)| (*token, t)))
    }

    fn remember_cancelled(&mut self, token: Token, c: Cancelled) {
        self.cancelled.insert(token, c);
        self.cancelled_order.push_back(token);
        while self.cancelled_order.len() > CANCELLED_MEMORY {
            if let Some(old) = self.cancelled_order.pop_front() {
                self.cancelled.remove(&old);
            }
        }
    }
}

impl Tracker {
    /// Orders `giver` to move `chunk` to `taker`, updating every index.
    pub(super) fn order(&mut self, now: Time, giver: NodeIdx, taker: NodeIdx, ci: usize, chunk: ChunkIndex) {
        let content_id = self.contents[ci].id;
        let (Some(g), Some(t)) = (self.node(giver), self.node(taker)) else { return };
        let (giver_slot, taker_slot) = (g.trust_slot, t.trust_slot);
        let random = self.rng.next_u32();
        let token = self.transfers.next_token(random);
        let mut secret = [0u8; 32];
        self.keys.fill_bytes(&mut secret);
        let key = LinkSecret(Box::new(secret));
        let (Some(g), Some(t)) = (self.node(giver), self.node(taker)) else { return };
        // A reachable giver is dialled by its taker; an unreachable one dials a reachable
        // taker; two unreachable ones punch through to each other (both dial at once).
        let (giver_listens, taker_listens) =
            (self.loads[giver.0 as usize].listens, self.loads[taker.0 as usize].listens);
        let punch = !giver_listens && !taker_listens;
        let method = if giver_listens || punch { Method::Get } else { Method::Put };
        let (giver_at, taker_at) = if punch {
            (g.punch_at.clone(), t.punch_at.clone())
        } else {
            (g.endpoint.clone(), t.endpoint.clone())
        };
        let (giver_id, taker_id, giver_conn, taker_conn) = (g.id, t.id, g.conn, t.conn);
        if punch {
            self.punches.ordered(giver_id, taker_id);
        }
        let to_taker = TransferOrder {
            token,
            content: content_id,
            chunk,
            side: Side::Taker,
            method,
            other: giver_id,
            connect: if method == Method::Get { giver_at } else { None },
            key: key.clone(),
            punch,
        };
        let to_giver = TransferOrder {
            token,
            content: content_id,
            chunk,
            side: Side::Giver,
            method,
            other: taker_id,
            connect: if method == Method::Put || punch { taker_at } else { None },
            key,
            punch,
        };
        self.loads[giver.0 as usize].up += 1;
        self.loads[taker.0 as usize].down += 1;
        if let Some(h) = self.hosts.get_mut(self.loads[taker.0 as usize].host as usize) {
            h.orders += 1;
        }
        if let Some(g) = self.node_mut(giver) {
            g.orders.push(token);
        }
        let content = &mut self.contents[ci];
        if let Some(t) = self.nodes[taker.0 as usize].as_mut() {
            t.orders.push(token);
            if let Some(nc) = t.content_mut(content_id)
                && nc.inflight.insert(chunk)
            {
                content.remove_pending(chunk);
                content.inflight_count[chunk as usize] += 1;
            }
        }
        self.transfers.insert(
            token,
            Transfer {
                giver,
                taker,
                giver_id,
                taker_id,
                giver_slot,
                taker_slot,
                content: content_id,
                chunk,
                ordered: now,
                wake: None,
                early: false,
                behind: None,
                punch,
            },
        );
        if self.config.queue_ahead {
            self.plan_queue_ahead(now, token);
        }
        self.decisions += 1;
        self.send(taker_conn, Message::Transfer(to_taker));
        self.send(giver_conn, Message::Transfer(to_giver));
        self.events.push_back(TrackerEvent::Ordered {
            token,
            giver: giver_id,
            taker: taker_id,
            content: content_id,
            chunk,
        });
        self.arm_sweep(now);
    }

    /// Queue-ahead: sets when the giver's next upload may be ordered, shortly before this new
    /// one is expected to end.
    ///
    /// The upload is expected to start one order lead time (order sent → the taker's `Get`
    /// on its way, smoothed over all transfers) from now and to share the giver's measured
    /// rate with its other uploads, so to take `bytes · uploads / rate`; the next order goes
    /// out [`LEAD_FACTOR`] order lead times before that end.
    fn plan_queue_ahead(&mut self, now: Time, token: Token) {
        let Some(t) = self.transfers.get(token) else { return };
        let (giver, content, chunk) = (t.giver, t.content, t.chunk);
        let rate = self.up_rates[giver.0 as usize];
        let bytes = self.contents.get(self.ix(content)).map_or(0, |c| c.manifest.geometry.chunk_len(chunk));
        if rate <= 0.0 || bytes == 0 {
            return;
        }
        // This order is already counted among the giver's uploads.
        let uploads = self.loads[giver.0 as usize].up.max(1);
        let lead = f64::from(self.order_lead);
        let left = lead + f64::from(bytes) * f64::from(uploads) / f64::from(rate) - lead * LEAD_FACTOR;
        let at = now + Span::from_secs_f64(left);
        if let Some(t) = self.transfers.get_mut(token) {
            t.wake = Some(at);
        }
        self.wakes.insert((at, token));
    }

    /// Lends a slot to each giver whose upload is now expected to end within the lead time.
    /// Returns whether any was lent.
    pub(super) fn fire_wakes(&mut self, now: Time) -> bool {
        let mut fired = false;
        while let Some(&(at, token)) = self.wakes.first() {
            if at > now {
                break;
            }
            self.wakes.pop_first();
            let Some(t) = self.transfers.get_mut(token) else { continue };
            // One lent slot per giver: more would only split its uplink further.
            if t.early || self.loads[t.giver.0 as usize].early > 0 {
                continue;
            }
            t.early = true;
            let giver = t.giver;
            self.loads[giver.0 as usize].early += 1;
            self.mark_dirty(giver);
            fired = true;
        }
        fired
    }

    /// Updates the order lead time, the giver's measured upload rate from a verified copy of
    /// `bytes` that took `copy` at the taker, and its upload slots when they follow the rate
    /// ([`UploadSlots::Measured`]).
    ///
    /// The copy's own rate is `bytes / copy` (the taker's clock, from its `Get` to the last
    /// byte); the giver's uplink was shared by the uploads moving alongside it, so the sample
    /// is that rate times their number (its other orders older than the order lead, to other
    /// takers: copies to the same taker share one connection and move one after another, so
    /// counting them doubled a slow uplink's rate when it gave one taker two chunks). Smoothed
    /// exponentially, as a sample sees only part of the uplink's sharing, and floored by the
    /// bytes the uplink delivered ([`Delivered`]). The copy began,
    /// as seen here, `copy` before its `Completed` arrived (both cross the taker's link), so
    /// the order lead is that start less the order's time.
    fn measure_upload(&mut self, now: Time, t: &Transfer, bytes: u32, copy: Span) {
        if copy.as_nanos() == 0 || bytes == 0 {
            return; // the taker already held the chunk: nothing moved, nothing to learn
        }
        let began = now.saturating_sub(copy);
        let lead = began.saturating_since(t.ordered).as_secs_f64() as f32;
        self.order_lead = smoothed(self.order_lead, lead);
        // A copy queued behind another to the same taker moved only once that one was done.
        // Both times are when the tracker handled the `Completed`s; a gap shorter than the
        // order lead may be the tracker's own queue draining, so it is not trusted.
        let moved = match t.behind.map(|ahead| now.saturating_since(ahead)) {
            Some(gap) if gap.as_nanos() > 0 && gap.as_secs_f64() >= f64::from(self.order_lead) => {
                copy.min(gap)
            }
            _ => copy,
        };
        let secs = moved.as_secs_f64();
        // One copy moves per connection at a time: the uplink was shared by the other
        // takers with a copy under way, each counted once. Copies waiting behind this one on
        // its connection learn when it ended.
        let Some(Some(g)) = self.nodes.get(t.giver.0 as usize) else { return };
        let mut others = std::mem::take(&mut self.scratch.takers);
        others.clear();
        for &o in &g.orders {
            let Some(x) = self.transfers.get_mut(o).filter(|x| x.giver == t.giver) else { continue };
            if x.taker == t.taker {
                x.behind = Some(now);
            } else if x.expected_moving(now, self.order_lead) {
                others.push(x.taker);
            }
        }
        others.sort_unstable();
        others.dedup();
        let moving = 1 + others.len();
        self.scratch.takers = others;
        let sample = (f64::from(bytes) / secs * moving as f64) as f32;
        let (chunk_bytes, live) = self
            .contents
            .get(self.ix(t.content))
            .map_or((0, false), |c| (c.manifest.geometry.chunk_size, c.manifest.is_live()));
        let rate = self.delivered[t.giver.0 as usize].record(now, bytes, sample);
        self.up_rates[t.giver.0 as usize] = rate;
        self.follow_rate(t.giver, rate, chunk_bytes, live);
    }

    /// Sets a giver's upload slots from its rate when they follow it
    /// ([`UploadSlots::Measured`]), for copies of `chunk_bytes` (live or not).
    pub(super) fn follow_rate(&mut self, giver: NodeIdx, rate: f32, chunk_bytes: u32, live: bool) {
        if let UploadSlots::Measured { copy_time } = self.config.upload_slots
            && chunk_bytes > 0
        {
            let copy_time = self.config.live_copy_time.filter(|_| live).unwrap_or(copy_time);
            let per_copy = f64::from(rate) * copy_time.as_secs_f64() / f64::from(chunk_bytes);
            self.loads[giver.0 as usize].up_slots =
                (per_copy.floor() + 1.0).clamp(1.0, f64::from(u16::MAX)) as u16;
        }
    }

    /// A seed's stated uplink (`Publish::uplink_bps`, proved with the seed key): its rate
    /// from now on is at least that, and its slots follow at once.
    pub(super) fn take_stated_uplink(
        &mut self,
        seed: NodeIdx,
        bits_per_s: u64,
        chunk_bytes: u32,
        live: bool,
    ) {
        let delivered = &mut self.delivered[seed.0 as usize];
        delivered.state(bits_per_s);
        let rate = delivered.rate();
        self.up_rates[seed.0 as usize] = rate;
        self.follow_rate(seed, rate, chunk_bytes, live);
        self.mark_dirty(seed);
    }

    pub(super) fn on_completed(&mut self, now: Time, idx: NodeIdx, conn: ConnId, done: Completed) {
        let Some(t) = self.transfers.get(done.token) else {
            return self.on_late_completed(idx, done);
        };
        if t.giver == idx && done.hash.is_none() {
            return self.on_not_started(now, done.token);
        }
        if t.taker != idx {
            return self.warn(conn, ErrorCode::TokenRefused, "completed for a transfer you are not taking");
        }
        let Some(t) = self.transfers.remove(done.token) else { return };
        let ci = self.ix(t.content);
        let expected = self.contents.get(ci).and_then(|c| c.manifest.hash(t.chunk)).copied();
        let outcome = match done.hash {
            Some(h) if Some(h) == expected => Outcome::Verified,
            Some(_) => Outcome::Corrupt,
            None => Outcome::Failed,
        };
        // A chunk the taker already held (its copy through an order cancelled before it
        // reported, which it reported since) adds nothing: its bytes are counted once.
        let held =
            self.node(t.taker).and_then(|n| n.content(t.content)).is_some_and(|c| c.have.contains(t.chunk));
        let bytes = match self.contents.get(ci) {
            Some(c) if !held => c.manifest.geometry.chunk_len(t.chunk),
            _ => 0,
        };
        if outcome == Outcome::Verified {
            self.measure_upload(now, &t, bytes, Span::from_micros(u64::from(done.copy_us)));
        }
        // A failure for a chunk the taker no longer wants is its cancellation (it unrequested
        // the chunk, or its player passed it), not a failed copy.
        let wanted =
            self.node(t.taker).and_then(|n| n.content(t.content)).is_some_and(|c| c.want.contains(t.chunk));
        self.release(&t, done.token, outcome == Outcome::Verified);
        // A hole punch that moved nothing: the pair's NATs would not connect them. It is
        // remembered and never tried again, and it counts against neither end.
        let punch_failed = t.punch && outcome == Outcome::Failed;
        if t.punch {
            self.punches.ended(t.giver_id, t.taker_id, Some(outcome != Outcome::Failed));
        }
        let from_origin = self.loads[t.giver.0 as usize].seed;
        let claim = match outcome {
            Outcome::Corrupt => Claim::Corrupt(t.content, t.chunk),
            Outcome::Failed if now.saturating_since(t.ordered) >= WAITED_FOR_GIVER => Claim::Stalled,
            _ => Claim::Failed,
        };
        // A copy the taker says failed or arrived corrupt cost its giver a slot for nothing,
        // whoever is to blame: the taker waits before its next order (an honest one seldom
        // reports twice running, and its next verified copy resets the wait). Not when it
        // waited for a peer that stalled: it shuns that giver for a while (below), and a
        // bench would only keep it from the givers that work (five mute givers kept an
        // honest `get` benched and unfinished for two minutes in issue 17's probe).
        let shunning = claim == Claim::Stalled && !from_origin;
        if outcome != Outcome::Verified && wanted && !punch_failed && !shunning {
            self.bench_failing_taker(now, t.taker);
        }
        match outcome {
            Outcome::Verified => self.blame.vindicate(t.giver_id, (t.content, t.chunk)),
            Outcome::Corrupt => self.accuse(now, &t, claim),
            Outcome::Failed if wanted && !punch_failed => self.accuse(now, &t, claim),
            Outcome::Failed => {}
        }
        let taker_id = self.node(idx).map(|n| n.id);
        if !punch_failed {
            self.trust.record_slots(t.taker_slot, t.giver_slot, outcome);
        }
        let verified = outcome == Outcome::Verified;
        if verified {
            // A taker that wasted orders earns its downloads back one verified copy at a time.
            let load = &mut self.loads[t.taker.0 as usize];
            load.fail_streak = 0;
            load.wasted = 0;
            if load.down_cap > 0 {
                load.down_cap = load.down_cap.saturating_add(1);
            }
            if let Some(g) = self.node_mut(t.giver) {
                g.bytes_up += u64::from(bytes);
            }
            if let Some(tk) = self.node_mut(t.taker) {
                tk.bytes_down += u64::from(bytes);
            }
            if let Some(c) = self.contents.get_mut(ci) {
                if from_origin {
                    c.bytes_from_origin += u64::from(bytes);
                } else {
                    c.bytes_from_peers += u64::from(bytes);
                }
            }
        }
        // Only a rejection concerns the giver (it re-checks its copy); a success needs no
        // message, which spares one of the five control messages a transfer cost.
        if !verified && let Some(g) = self.node(t.giver) {
            let gconn = g.conn;
            self.send(gconn, Message::Verdict(Verdict { token: done.token, accepted: false }));
        }
        self.events.push_back(TrackerEvent::Finished {
            token: done.token,
            giver: t.giver_id,
            taker: taker_id.unwrap_or(PeerId(u32::MAX)),
            content: t.content,
            chunk: t.chunk,
            bytes,
            outcome,
            from_origin,
        });
        if !verified && !punch_failed {
            self.check_ban(t.giver_id);
        }
    }

    /// A `Completed` for a token already cancelled: a verified copy still counts, as a
    /// holder and in the byte counters (the order was cancelled, not the bytes: a giver that
    /// left right after its last byte, or a taker the sweep gave up on, delivered them).
    fn on_late_completed(&mut self, idx: NodeIdx, done: Completed) {
        let Some(c) = self.transfers.cancelled.get(&done.token).copied() else { return };
        if c.taker != idx || self.node(idx).is_none_or(|n| n.id != c.taker_id) {
            return;
        }
        self.transfers.cancelled.remove(&done.token);
        let ci = self.ix(c.content);
        let Some(content) = self.contents.get_mut(ci) else { return };
        if done.hash.is_none() || content.manifest.hash(c.chunk).copied() != done.hash {
            return;
        }
        let n = content.num_chunks();
        let Some(node) = self.nodes[idx.0 as usize].as_mut() else { return };
        let (is_seed, reused) = (node.is_seed(), node.reused);
        let nc = node.content_entry(c.content, n);
        if nc.pending(c.chunk) {
            content.remove_pending(c.chunk);
        }
        nc.want.remove(c.chunk);
        // Counted once: not when the order that replaced this one already brought the chunk.
        let bytes = if nc.have.insert(c.chunk) {
            content.add_holder(c.chunk, idx, is_seed, reused);
            content.manifest.geometry.chunk_len(c.chunk)
        } else {
            0
        };
        if c.from_origin {
            content.bytes_from_origin += u64::from(bytes);
        } else {
            content.bytes_from_peers += u64::from(bytes);
        }
        let taker_id = node.id;
        node.bytes_down += u64::from(bytes);
        if let Some(g) = self.node_mut(c.giver).filter(|g| g.id == c.giver_id) {
            g.bytes_up += u64::from(bytes);
        }
        self.events.push_back(TrackerEvent::Finished {
            token: done.token,
            giver: c.giver_id,
            taker: taker_id,
            content: c.content,
            chunk: c.chunk,
            bytes,
            outcome: Outcome::Verified,
            from_origin: c.from_origin,
        });
        self.note_completion(idx, ci);
        self.mark_dirty(idx);
    }

    /// Frees both ends' slots and returns the chunk to the taker's wants unless it arrived.
    fn release(&mut self, t: &Transfer, token: Token, arrived: bool) {
        let ci = self.ix(t.content);
        if let Some(at) = t.wake {
            self.wakes.remove(&(at, token));
        }
        let gl = &mut self.loads[t.giver.0 as usize];
        gl.up = gl.up.saturating_sub(1);
        if t.early {
            gl.early = gl.early.saturating_sub(1);
        }
        let tl = &mut self.loads[t.taker.0 as usize];
        tl.down = tl.down.saturating_sub(1);
        let cap = self.config.max_downloads_per_host;
        if let Some(h) = self.hosts.get_mut(tl.host as usize) {
            let was_full = h.orders >= cap;
            h.orders = h.orders.saturating_sub(1);
            if was_full && h.orders < cap {
                for idx in std::mem::take(&mut h.waiting) {
                    self.mark_dirty(idx);
                }
            }
        }
        if let Some(g) = self.node_mut(t.giver) {
            g.orders.retain(|&o| o != token);
        }
        let content = &mut self.contents[ci];
        content.inflight_count[t.chunk as usize] = content.inflight_count[t.chunk as usize].saturating_sub(1);
        if let Some(tk) = self.nodes[t.taker.0 as usize].as_mut() {
            tk.orders.retain(|&o| o != token);
            let (is_seed, reused) = (tk.is_seed(), tk.reused);
            if let Some(nc) = tk.content_mut(t.content) {
                nc.inflight.remove(t.chunk);
                if arrived {
                    nc.want.remove(t.chunk);
                    if nc.have.insert(t.chunk) {
                        content.add_holder(t.chunk, t.taker, is_seed, reused);
                    }
                } else if nc.want.contains(t.chunk) && content.schedulable(t.chunk) {
                    content.add_pending(t.chunk);
                    nc.cursor = nc.cursor.min(t.chunk);
                }
            }
        }
        if arrived {
            self.note_completion(t.taker, ci);
        }
        self.mark_dirty(t.giver);
        self.mark_dirty(t.taker);
    }

    /// Emits `Completed` once when an on-demand content becomes whole at a node.
    fn note_completion(&mut self, idx: NodeIdx, ci: usize) {
        let content = &mut self.contents[ci];
        if content.manifest.is_live() {
            return;
        }
        let n = content.num_chunks();
        let Some(node) = self.nodes[idx.0 as usize].as_mut() else { return };
        let peer = node.id;
        let seed = node.is_seed();
        let Some(nc) = node.content_mut(content.id) else { return };
        if !nc.completed && !seed && nc.have.count() == n {
            nc.completed = true;
            content.completions += 1;
            self.events.push_back(TrackerEvent::Completed { peer, content: content.id });
        }
    }

    /// The giver says the taker never asked for the chunk (its `Completed` with no hash): the
    /// order is cancelled at once, both slots freed and the chunk scheduled again, and the
    /// taker, which wasted a giver's slot, may hold half as many downloads for a while (one
    /// more per verified copy). The giver is not blamed. A lying giver can cost an honest
    /// taker download slots, not a copy (docs/protocol.md §4).
    fn on_not_started(&mut self, now: Time, token: Token) {
        let Some(t) = self.transfers.get(token) else { return };
        if t.punch {
            // The punch did not connect: the pair's NATs, not the taker (cancelled as a
            // stall, which remembers the pair and blames nobody).
            return self.cancel_transfer(token, Some(now), None);
        }
        let taker = t.taker;
        // Benched first, so the slot this frees goes to another taker; twice as long per
        // order wasted since its last verified copy (5 s, 10 s, … 80 s): five silent
        // identities otherwise took turns at the seed's slots, and, wanting every chunk, each
        // ranked above the honest viewer whenever its bench ended (issue 17's probe).
        let load = &mut self.loads[taker.0 as usize];
        load.down_cap = (load.max_downloads(&self.config.limits) / 2).max(1);
        let bench = WASTED_ORDER_BENCH.as_nanos().saturating_mul(1 << load.wasted.min(4));
        load.wasted = load.wasted.saturating_add(1);
        self.bench(taker, now + Span::from_nanos(bench));
        self.cancel_transfer(token, None, None);
    }

    /// A taker reported a copy failed or corrupt: it takes nothing for a while, twice as long
    /// per report since its last verified copy (50 ms, 100 ms, … at most 5 s). An honest taker
    /// seldom fails twice running; one that reports failure (or a wrong hash) the instant it
    /// gets an order made the tracker order the same chunks tens of thousands of times a
    /// second (issue 17).
    fn bench_failing_taker(&mut self, now: Time, taker: NodeIdx) {
        let load = &mut self.loads[taker.0 as usize];
        let bench = FAILURE_BENCH.as_nanos().saturating_mul(1 << load.fail_streak.min(16));
        load.fail_streak = load.fail_streak.saturating_add(1);
        self.bench(taker, now + Span::from_nanos(bench.min(WASTED_ORDER_BENCH.as_nanos())));
    }

    /// Keeps `taker` from taking anything before `until` (a later bench wins), and wakes it
    /// then.
    fn bench(&mut self, taker: NodeIdx, until: Time) {
        let load = &mut self.loads[taker.0 as usize];
        if until <= load.benched_until {
            return;
        }
        let old = std::mem::replace(&mut load.benched_until, until);
        self.benched.remove(&(old, taker));
        self.benched.insert((until, taker));
    }

    /// Cancels a transfer (stalled at `stalled`, or `leaving` is disconnecting).
    pub(super) fn cancel_transfer(&mut self, token: Token, stalled: Option<Time>, leaving: Option<NodeIdx>) {
        let Some(t) = self.transfers.remove(token) else { return };
        self.release(&t, token, false);
        if t.punch {
            // A punch that stalled did not connect: the pair's doing, not the giver's.
            self.punches.ended(t.giver_id, t.taker_id, stalled.map(|_| false));
        } else if let Some(now) = stalled {
            self.trust.record_slots(t.taker_slot, t.giver_slot, Outcome::Failed);
            self.accuse(now, &t, Claim::Failed);
            self.check_ban(t.giver_id);
        }
        if leaving != Some(t.taker)
            && let Some(taker_id) = self.node(t.taker).map(|n| n.id)
        {
            self.transfers.remember_cancelled(
                token,
                Cancelled {
                    taker: t.taker,
                    taker_id,
                    content: t.content,
                    chunk: t.chunk,
                    giver: t.giver,
                    giver_id: t.giver_id,
                    from_origin: self.loads[t.giver.0 as usize].seed,
                },
            );
        }
        self.events.push_back(TrackerEvent::Cancelled { token, stalled: stalled.is_some() });
    }

    /// Cancels every order whose taker has not reported within its stall and transfer
    /// timeouts (an honest taker reports a failure itself by then). A scan of the live
    /// orders every sweep interval: cheaper than keeping a deadline per order.
    pub(super) fn sweep_overdue(&mut self, now: Time) {
        let timeout = self.config.stall_timeout + self.config.transfer_timeout;
        let overdue: Vec<Token> = self
            .transfers
            .iter()
            .filter(|(_, t)| now.saturating_since(t.ordered) >= timeout)
            .map(|(token, _)| token)
            .collect();
        for token in overdue {
            self.cancel_transfer(token, Some(now), None);
        }
    }

    /// Whether giver `id` has failed often enough, and by the word of takers at enough
    /// addresses ([`super::blame`]), to be banned.
    pub(super) fn is_ban_worthy(&self, id: PeerId) -> bool {
        let r = self.trust.giver(id);
        let bad = r.transfers - r.successes;
        bad >= self.config.ban_after_failures
            && bad * 2 > r.transfers
            && self.blame.witnesses(id) >= super::blame::WITNESSES
    }

    /// Records `t`'s taker's report of a bad copy from its giver, witnessed from the taker's
    /// address group (on loopback, where every test swarm lives, its identity).
    fn accuse(&mut self, now: Time, t: &Transfer, claim: Claim) {
        let Some(taker) = self.node(t.taker) else { return };
        let taker_id = taker.id;
        let witness = match self.conns.get(&taker.conn) {
            Some(c) if !super::is_loopback(&c.remote_host) => c.group.clone(),
            _ => format!("peer {}", taker_id.0),
        };
        self.blame.accuse(t.giver_id, taker_id, witness, claim, now);
        // Not a seed: the publisher re-checks a rejected chunk itself (and withdraws it if
        // its copy is bad), and a taker shunning the origin could starve.
        let giver = &mut self.loads[t.giver.0 as usize];
        if claim.can_shun() && !giver.seed {
            giver.shunned = true;
        }
    }

    /// Whether `taker` said `giver` sent it a corrupt copy or stalled on it lately: no orders
    /// between the two, so a lone victim is served elsewhere without its word banning anyone.
    pub(super) fn shuns(&self, now: Time, taker: NodeIdx, giver: NodeIdx) -> bool {
        if !self.loads.get(giver.0 as usize).is_some_and(|l| l.shunned) {
            return false;
        }
        match (self.node(taker), self.node(giver)) {
            (Some(t), Some(g)) => self.blame.shuns(t.id, g.id, now),
            _ => false,
        }
    }

    fn check_ban(&mut self, id: PeerId) {
        if !self.is_ban_worthy(id) {
            return;
        }
        let Some(&idx) = self.by_id.get(&id) else { return };
        let load = &mut self.loads[idx.0 as usize];
        if load.alive && !load.banned && !load.seed {
            load.banned = true;
            self.banned_ids.insert(id);
            self.events.push_back(TrackerEvent::Banned { peer: id });
            let conn = self.node(idx).and_then(|n| self.conns.get(&n.conn));
            if let Some(c) = conn.filter(|c| self.config.ban_hosts && !super::is_loopback(&c.remote_host)) {
                self.banned_hosts.insert(c.group.clone());
            }
        }
    }
}
