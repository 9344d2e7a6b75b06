//! A peer's downloads: manifests, requests to the tracker, arrivals, and the live window.

use std::collections::VecDeque;
use std::ops::Bound::{Excluded, Unbounded};

use crate::bitset::BitSet;
use crate::chunks::ByteRange;
use crate::ids::{ChunkIndex, ContentId};
use crate::node::{Content, NodeEvent};
use crate::signing::{Chain, SeedKey};
use crate::store::ChunkStore;
use crate::time::{Span, Time};
use crate::wire::{AppendChunks, ErrorCode, Interest, Message, Notice, TellInfo};

use super::{Peer, PeerEvent};

/// By default a live viewer joins this many chunks behind the live edge, so the first chunks
/// it asks for are already well spread among peers ([`PeerConfig::live_join_back`](super::PeerConfig::live_join_back)).
pub(crate) const LIVE_JOIN_BACK: u32 = 2;

/// One content being downloaded.
#[derive(Clone, Debug)]
pub(crate) struct Download {
    /// The path it was asked for.
    pub path: String,
    /// Whether it is a live stream.
    pub live: bool,
    /// The lowest chunk still wanted or kept (the join point, then the live window's tail).
    pub floor: ChunkIndex,
    /// The next chunk to deliver in order.
    pub next: ChunkIndex,
    /// Whether `DownloadComplete` was emitted.
    pub complete_sent: bool,
    /// Live: the seed ended the stream (an append with no chunks); the download completes
    /// once delivery has passed its last chunk.
    pub ended: bool,
    /// Live: when appends reached us, as (first chunk of the append, time), oldest first;
    /// entries wholly below `next` are dropped.
    pub announced: VecDeque<(ChunkIndex, Time)>,
    /// A signed content's seed key and chain so far: each live append must extend it under
    /// a signature by the same key.
    pub signed: Option<(SeedKey, Chain)>,
    /// A live append failed its check: later appends are ignored.
    pub refused: bool,
}

impl Download {
    /// When delivery may skip chunk `next` while it is missing: just past the arrival of the
    /// append that announced it plus the playback `deadline`; `None` before it is announced.
    fn skip_at(&self, deadline: Span) -> Option<Time> {
        // The announcing append: the last one starting at or below `next`.
        let i = self.announced.partition_point(|&(first, _)| first <= self.next).checked_sub(1)?;
        Some(self.announced[i].1 + deadline + Span::from_nanos(1))
    }
}

impl<S: ChunkStore> Peer<S> {
    /// A manifest for a path we asked about: check it, open storage, request the chunks.
    pub(super) fn on_tell_info(&mut self, now: Time, t: TellInfo) {
        let Some(i) = self.asked.iter().position(|p| *p == t.manifest.path) else {
            let n = Notice::new(
                ErrorCode::Unexpected,
                format!("manifest for {} was not asked for", t.manifest.path),
            );
            return self.node.emit(NodeEvent::Problem(n));
        };
        let path = self.asked.remove(i);
        // Checked before anything reads it, a download we already have included.
        if let Err(e) = t.manifest.check() {
            let n = Notice::new(ErrorCode::Malformed, format!("{path}: {e}"));
            return self.node.emit(NodeEvent::Problem(n));
        }
        if let Some((&known, _)) = self.downloads.iter().find(|(_, d)| d.path == path) {
            if known == t.content {
                return self.rejoin(now, t);
            }
            let reason = format!(
                "{path}: the tracker gives it another content id than before its restart (a rare clash of \
                 ids); run the download again (it resumes from what it holds)"
            );
            return self.push(PeerEvent::ManifestRefused { path, reason });
        }
        let signed = match self.check_signature(&t) {
            Ok(signed) => signed,
            Err(reason) => return self.push(PeerEvent::ManifestRefused { path, reason }),
        };
        if let Err(e) = self.node.store.open(t.content, &t.manifest) {
            let n = Notice::new(ErrorCode::Unexpected, format!("{path}: {e}"));
            return self.node.emit(NodeEvent::Problem(n));
        }
        let content = t.content;
        let n = t.manifest.num_chunks();
        let chunk_size = u64::from(t.manifest.geometry.chunk_size);
        let (live, floor) = match t.manifest.live {
            Some(info) => {
                let back = self.join_back(info.bitrate_bps, t.manifest.geometry.chunk_size);
                (true, n.saturating_sub(back).max(info.first_chunk))
            }
            None => (false, 0),
        };
        self.node.contents.insert(content, Content { manifest: t.manifest, have: BitSet::new(n) });
        let announced = if live { VecDeque::from([(floor, now)]) } else { VecDeque::new() };
        self.downloads.insert(
            content,
            Download {
                path,
                live,
                floor,
                next: floor,
                complete_sent: false,
                ended: false,
                announced,
                signed,
                refused: false,
            },
        );
        let signer = signed.map(|(key, _)| key);
        self.push(PeerEvent::ManifestReceived { content, num_chunks: n, live, signer });
        if live {
            // A live viewer joins at the live edge: nothing an earlier run left is resumed.
            let range = ByteRange::from(u64::from(floor) * chunk_size);
            self.node.send_tracker(now, Message::Request(Interest::range(content, range)));
        } else if n > 0 {
            // Chunks kept from an earlier run are provided first, so the request that
            // follows (the tracker skips what a node holds) wants only the rest.
            let kept = self.resume(now, content);
            if kept < n {
                self.node.send_tracker(now, Message::Request(Interest::all(content)));
            }
        }
    }

    /// A tracker back after an outage described a content we were already downloading: take
    /// any live chunks appended meanwhile (checked as an append), then announce again what we
    /// hold and what we still want, as the new tracker knows nothing of us.
    fn rejoin(&mut self, now: Time, t: TellInfo) {
        let content = t.content;
        let Some(c) = self.node.contents.get(&content) else { return };
        let (ours, live) = (c.manifest.num_chunks(), c.manifest.is_live());
        if !live && c.manifest.root() != t.manifest.root() {
            let path = t.manifest.path.clone();
            let reason = format!("{path}: the content changed while the tracker was away; not resuming it");
            return self.push(PeerEvent::ManifestRefused { path, reason });
        }
        if live && t.manifest.num_chunks() > ours {
            let a = AppendChunks {
                content,
                first: ours,
                new_size: t.manifest.geometry.size,
                hashes: t.manifest.hashes[ours as usize..].to_vec(),
                window_start: t.manifest.live.map_or(0, |l| l.first_chunk),
                proof: crate::manifest::Digest::ZERO,
                signature: t.signature,
            };
            self.on_append(now, a);
        }
        let (Some(c), Some(d)) = (self.node.contents.get(&content), self.downloads.get(&content)) else {
            return;
        };
        if d.refused {
            return;
        }
        let g = c.manifest.geometry;
        let held = super::resume::runs(d.floor..g.num_chunks(), |i| c.have.contains(i));
        let (floor, next, done) = (d.floor, d.next, d.complete_sent);
        for run in held {
            let bytes = ByteRange::new(g.chunk_bytes(run.start).start, g.chunk_bytes(run.end - 1).end);
            self.node.send_tracker(now, Message::Provide(Interest::range(content, bytes)));
        }
        if live {
            let from = u64::from(next.max(floor)) * u64::from(g.chunk_size);
            self.node.send_tracker(now, Message::Request(Interest::range(content, ByteRange::from(from))));
        } else if !done && g.num_chunks() > 0 {
            self.node.send_tracker(now, Message::Request(Interest::all(content)));
        }
    }

    /// Checks a manifest's seed signature: it must verify if present, and be by the pinned
    /// key if the user pinned one. Returns the signer and the chain to extend.
    fn check_signature(&self, t: &TellInfo) -> Result<Option<(SeedKey, Chain)>, String> {
        let path = &t.manifest.path;
        let Some(sig) = t.signature else {
            return match self.seed_key {
                Some(pin) => {
                    Err(format!("{path}: the manifest is not signed, and the URL pins seed key {pin}"))
                }
                None => Ok(None),
            };
        };
        if let Some(pin) = self.seed_key
            && sig.key != pin
        {
            return Err(format!(
                "{path}: the manifest is signed by seed key {}, not the pinned {pin}",
                sig.key
            ));
        }
        let chain = Chain::of(&t.manifest);
        if !sig.verifies(&chain.statement(t.manifest.geometry.size, false)) {
            return Err(format!("{path}: the manifest's signature by seed key {} does not verify", sig.key));
        }
        Ok(Some((sig.key, chain)))
    }

    /// A signed stream's append must extend its chain under the same key; `Err` says why not.
    fn check_append(d: &mut Download, a: &AppendChunks) -> Result<(), String> {
        let Some((key, chain)) = d.signed.as_mut() else { return Ok(()) };
        let mut next = *chain;
        for h in &a.hashes {
            next.push(h);
        }
        match a.signature {
            Some(sig)
                if sig.key == *key && sig.verifies(&next.statement(a.new_size, a.hashes.is_empty())) =>
            {
                *chain = next;
                Ok(())
            }
            _ => {
                Err(format!("{}: a live append at chunk {} is not signed by seed key {key}", d.path, a.first))
            }
        }
    }

    /// A live manifest grew: extend it and slide the window.
    pub(super) fn on_append(&mut self, now: Time, a: AppendChunks) {
        if let Some(d) = self.downloads.get_mut(&a.content) {
            if d.refused {
                return;
            }
            if let Err(reason) = Self::check_append(d, &a) {
                d.refused = true;
                let path = d.path.clone();
                return self.push(PeerEvent::ManifestRefused { path, reason });
            }
        }
        let live_window = self.live_window;
        let live = self.downloads.get(&a.content).is_some_and(|d| d.live);
        let Some(c) = self.node.contents.get_mut(&a.content).filter(|_| live) else {
            let n = Notice::new(ErrorCode::UnknownContent, format!("append for content {}", a.content.0));
            return self.node.emit(NodeEvent::Problem(n));
        };
        let mut g = c.manifest.geometry;
        let first = c.manifest.num_chunks();
        if a.hashes.is_empty() {
            // The end mark: no chunks, the size unchanged.
            if a.first != first || a.new_size != g.size {
                let n =
                    Notice::new(ErrorCode::Unexpected, format!("end mark at chunk {} does not fit", a.first));
                return self.node.emit(NodeEvent::Problem(n));
            }
            if let Some(d) = self.downloads.get_mut(&a.content) {
                d.ended = true;
            }
            return;
        }
        if self.downloads.get(&a.content).is_some_and(|d| d.ended) {
            let n = Notice::new(ErrorCode::Unexpected, format!("append at chunk {} after the end", a.first));
            return self.node.emit(NodeEvent::Problem(n));
        }
        g.size = a.new_size;
        let added = u32::try_from(a.hashes.len()).unwrap_or(u32::MAX);
        // Appends extend a stream whose chunks so far are all full-size.
        let whole = c.manifest.geometry.size % u64::from(g.chunk_size) == 0;
        if a.first != first || !whole || g.num_chunks() != first.saturating_add(added) {
            let n = Notice::new(ErrorCode::Unexpected, format!("append at chunk {} does not fit", a.first));
            return self.node.emit(NodeEvent::Problem(n));
        }
        c.manifest.geometry = g;
        c.manifest.hashes.extend(a.hashes);
        if let Some(info) = c.manifest.live.as_mut() {
            info.first_chunk = a.window_start;
        }
        let n = g.num_chunks();
        c.have.grow(n);
        let cut = a.window_start.max(n.saturating_sub(live_window));
        if let Some(d) = self.downloads.get_mut(&a.content) {
            d.announced.push_back((a.first, now));
        }
        self.slide(now, a.content, cut);
        self.skip_late(now, a.content);
    }

    /// Skips missing chunks at the delivery point whose playback deadline passed
    /// ([`PeerConfig::playback_deadline`](super::PeerConfig::playback_deadline)), and
    /// unrequests them.
    fn skip_late(&mut self, now: Time, content: ContentId) {
        let Some(deadline) = self.playback_deadline else { return };
        let (Some(d), Some(c)) = (self.downloads.get_mut(&content), self.node.contents.get(&content)) else {
            return;
        };
        let n = c.manifest.num_chunks();
        let start = d.next;
        while d.next < n && !c.have.contains(d.next) {
            // Appends wholly behind delivery are not needed again.
            while d.announced.len() > 1 && d.announced[1].0 <= d.next {
                d.announced.pop_front();
            }
            if d.skip_at(deadline).is_none_or(|at| at > now) {
                break;
            }
            d.next += 1;
        }
        if d.next > start {
            let g = c.manifest.geometry;
            let bytes = ByteRange::new(g.chunk_bytes(start).start, g.chunk_bytes(d.next - 1).end);
            self.node.send_tracker(now, Message::Unrequest(Interest::range(content, bytes)));
        }
    }

    /// Skips what [`skip_late`](Self::skip_late) would skip now, in every live download: run
    /// on a timer, so a stream that stopped growing (ended, or its seed silent) does not hold
    /// a viewer at a chunk nobody will send.
    pub(super) fn skip_late_all(&mut self, now: Time) {
        if self.playback_deadline.is_none() {
            return;
        }
        let mut next = self.downloads.keys().next().copied();
        while let Some(content) = next {
            self.skip_late(now, content);
            next = self.downloads.range((Excluded(content), Unbounded)).next().map(|(k, _)| *k);
        }
    }

    /// When the first live download stuck at a missing chunk may skip it
    /// ([`Download::skip_at`], the rule `skip_late` applies), if any is stuck.
    pub(super) fn next_skip(&self) -> Option<Time> {
        let deadline = self.playback_deadline?;
        let due = |(content, d): (&ContentId, &Download)| {
            let c = self.node.contents.get(content)?;
            if !d.live || d.next >= c.manifest.num_chunks() || c.have.contains(d.next) {
                return None;
            }
            d.skip_at(deadline)
        };
        self.downloads.iter().filter_map(due).min()
    }

    /// Moves a live download's floor up to `cut`: held chunks below it are discarded and
    /// unprovided, missing ones unrequested, and delivery skips past them.
    fn slide(&mut self, now: Time, content: ContentId, cut: ChunkIndex) {
        let Some(d) = self.downloads.get_mut(&content) else { return };
        if cut <= d.floor {
            return;
        }
        let lo = d.floor;
        d.floor = cut;
        d.next = d.next.max(cut);
        self.forget_ahead(content, cut);
        let Some(c) = self.node.contents.get_mut(&content) else { return };
        let g = c.manifest.geometry;
        let (mut held, mut missing) = (false, false);
        let mut discard = Vec::new();
        for i in lo..cut {
            if c.have.remove(i) {
                held = true;
                discard.push(i);
            } else {
                missing = true;
            }
        }
        for i in discard {
            if let Err(e) = self.node.store.discard(content, i) {
                self.node.emit(NodeEvent::Problem(Notice::new(ErrorCode::Unexpected, e.to_string())));
            }
        }
        let bytes = ByteRange::new(g.chunk_bytes(lo).start, g.chunk_bytes(cut - 1).end);
        if held {
            self.node.send_tracker(now, Message::Unprovide(Interest::range(content, bytes)));
        }
        if missing {
            self.node.send_tracker(now, Message::Unrequest(Interest::range(content, bytes)));
        }
    }

    /// Reports chunks the engine verified or rejected since the last call.
    pub(super) fn drain_arrivals(&mut self, now: Time) {
        for a in std::mem::take(&mut self.node.arrivals) {
            if !a.verified {
                self.push(PeerEvent::ChunkRejected { content: a.content, chunk: a.chunk, from: a.from });
                continue;
            }
            let bytes = a.payload.len();
            self.push(PeerEvent::ChunkVerified { content: a.content, chunk: a.chunk, from: a.from, bytes });
            let Some(d) = self.downloads.get(&a.content) else { continue };
            if a.chunk < d.floor {
                // A transfer ordered before the window slid past it: keep nothing.
                if let Some(c) = self.node.contents.get_mut(&a.content) {
                    c.have.remove(a.chunk);
                }
                let _ = self.node.store.discard(a.content, a.chunk);
                self.node.unprovide(now, a.content, a.chunk, a.chunk + 1);
            } else if self.deliver_payloads
                && a.chunk >= d.next
                && self.ahead_bytes + a.payload.len() as usize <= super::DELIVER_AHEAD
            {
                self.ahead_bytes += a.payload.len() as usize;
                // A chunk verified twice (two copies were under way) is kept once.
                if let Some(old) = self.ahead.insert((a.content, a.chunk), a.payload) {
                    self.ahead_bytes -= old.len() as usize;
                }
            }
        }
    }

    /// Drops the payloads kept ahead of delivery for `content`'s chunks below `cut`.
    pub(super) fn forget_ahead(&mut self, content: ContentId, cut: ChunkIndex) {
        let gone: Vec<_> = self.ahead.range((content, 0)..(content, cut)).map(|(k, _)| *k).collect();
        for k in gone {
            if let Some(p) = self.ahead.remove(&k) {
                self.ahead_bytes -= p.len() as usize;
            }
        }
    }
}

impl<S: ChunkStore> Peer<S> {
    /// How far below the chunk count a live viewer joins: `live_join_back`, or with a playback
    /// deadline (the player's buffer) and a stream bitrate, at least half the buffer behind the
    /// newest chunk: playback starts when that half has passed, and the chunks it first asks
    /// for are already spread. `live_join_back − 1` chunks behind the newest one, hence `+ 1`.
    fn join_back(&self, bitrate_bps: u64, chunk_size: u32) -> u32 {
        match self.playback_deadline {
            Some(buffer) if bitrate_bps > 0 && chunk_size > 0 => {
                let chunk_s = f64::from(chunk_size) * 8.0 / bitrate_bps as f64;
                let back = (buffer.as_secs_f64() / 2.0 / chunk_s).ceil() as u32 + 1;
                back.max(self.live_join_back)
            }
            _ => self.live_join_back,
        }
    }
}
