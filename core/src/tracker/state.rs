//! The tracker's tables: nodes, their per-content chunk states, and per-chunk indexes.

use std::collections::BTreeSet;

use crate::bitset::BitSet;
use crate::ids::{ChunkIndex, ConnId, ContentId, Endpoint, PeerId, Token};
use crate::manifest::Manifest;
use crate::time::Time;
use crate::wire::Role;

/// Index of a node in the tracker's slab. Never reused, so a stale index finds `None`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct NodeIdx(pub(crate) u32);

/// One connected, welcomed node (peer or seed).
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) id: PeerId,
    pub(crate) conn: ConnId,
    pub(crate) role: Role,
    /// Where others connect to it; `None` if it does not listen (or its probe found it
    /// unreachable).
    pub(crate) endpoint: Option<Endpoint>,
    /// What its reachability probe found; `None` until it answers (or without probes).
    pub(crate) reachable: Option<bool>,
    /// Where its tracker link comes from, when it dialled from its listening port: where a
    /// NAT in front of it maps that port, for other nodes behind NAT to punch through to.
    pub(crate) punch_at: Option<Endpoint>,
    pub(crate) nonce: [u8; 16],
    /// Its slot in the trust graph (stable across reconnections).
    pub(crate) trust_slot: super::trust::TrustSlot,
    /// Tokens of its outstanding orders (at most `max_transfers`).
    pub(crate) orders: Vec<Token>,
    pub(crate) contents: Vec<NodeContent>,
    /// Contents it asked about (receives live appends).
    pub(crate) viewing: Vec<ContentId>,
    pub(crate) bytes_up: u64,
    pub(crate) bytes_down: u64,
    pub(crate) joined: Time,
    /// Queued for a scheduling pass.
    pub(crate) dirty: bool,
    /// In `Tracker::idle_givers` (free upload slots, nothing to give last time).
    pub(crate) idle: bool,
    /// Its index was a departed node's, which holder lists may still name (stale entries
    /// are dropped when read): [`Content::add_holder`] looks before adding it, so a chunk
    /// it comes to hold does not list it twice.
    pub(crate) reused: bool,
}

/// The hot per-node scheduling facts, kept in a dense array beside the slab so that sampling
/// many candidates touches a few cache lines instead of whole nodes.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Load {
    /// Outstanding orders as giver / as taker.
    pub(crate) up: u16,
    pub(crate) down: u16,
    pub(crate) alive: bool,
    pub(crate) seed: bool,
    pub(crate) listens: bool,
    /// Unreachable, but with a known NAT mapping of its listening port: another such node
    /// may punch through to it.
    pub(crate) punchable: bool,
    /// Failed too often to be chosen as a giver.
    pub(crate) banned: bool,
    /// Upload slots granted from its measured rate (until measured, `unmeasured_slots`);
    /// 0 means `max_uploads` (fixed slots).
    pub(crate) up_slots: u16,
    /// Slots lent ahead of time: its started uploads expected to end within the order lead
    /// time ([`super::TrackerConfig::queue_ahead`]).
    pub(crate) early: u16,
    /// Downloads it may hold at once after wasting orders (never asking its giver); 0, or
    /// anything from `max_downloads` up, means `max_downloads`. Halved per wasted order, one
    /// more per verified copy.
    pub(crate) down_cap: u16,
    /// After wasting an order it takes nothing before this: the slot it held goes to others.
    pub(crate) benched_until: crate::time::Time,
    /// Its failure reports since its last verified copy (each benches it twice as long).
    pub(crate) fail_streak: u8,
    /// Orders it wasted (its giver waited for a `Get` that never came) since its last
    /// verified copy: each benches it twice as long, and a giver's freed slot goes to takers
    /// that wasted fewer first.
    pub(crate) wasted: u8,
    /// Its address group's index in `Tracker::hosts`, or [`NO_HOST`] (exempt from caps).
    pub(crate) host: u32,
    /// A taker said it sent a corrupt copy or stalled: that taker shuns it
    /// (`Tracker::shuns` asks which).
    pub(crate) shunned: bool,
}

/// [`Load::host`] of a node exempt from per-address caps (loopback, or no cap set).
pub(crate) const NO_HOST: u32 = u32::MAX;

impl Load {
    pub(crate) fn can_take(&self, l: &super::Limits) -> bool {
        self.alive && self.down < self.max_downloads(l) && self.up + self.down < l.max_transfers
    }

    /// Downloads it may hold at once: the policy's, or less after wasted orders.
    pub(crate) fn max_downloads(&self, l: &super::Limits) -> u16 {
        if self.down_cap == 0 { l.max_downloads } else { self.down_cap.min(l.max_downloads) }
    }

    pub(crate) fn can_give(&self, l: &super::Limits) -> bool {
        let max_up = if self.up_slots == 0 {
            l.max_uploads
        } else {
            self.up_slots.saturating_add(self.early).min(l.max_uploads)
        };
        self.alive && !self.banned && self.up < max_up && self.up + self.down < l.max_transfers
    }

    /// Like [`Self::can_give`], ignoring the rate-following slots (still within the limits).
    pub(crate) fn can_give_past_slots(&self, l: &super::Limits) -> bool {
        self.alive && !self.banned && self.up < l.max_uploads && self.up + self.down < l.max_transfers
    }
}

/// A node's chunk states for one content: none / requested / transferring / provided.
///
/// `want` holds requested chunks it does not hold (transferring ones included), `inflight`
/// the ones being transferred to it, `have` the ones it provides.
#[derive(Debug)]
pub(crate) struct NodeContent {
    pub(crate) content: ContentId,
    pub(crate) want: BitSet,
    pub(crate) inflight: BitSet,
    pub(crate) have: BitSet,
    /// An open-ended request from this chunk on: later live chunks are wanted too.
    pub(crate) open_from: Option<ChunkIndex>,
    /// No pending chunk lies below this (in-order scans start here).
    pub(crate) cursor: ChunkIndex,
    /// On demand: the viewer's playback position (the first chunk of its latest ranged
    /// `Request`); its chunks are scheduled from here on, in order, before any policy.
    pub(crate) focus: Option<ChunkIndex>,
    /// Set once, when an on-demand content became complete at this node.
    pub(crate) completed: bool,
}

/// One published content and its per-chunk indexes.
///
/// `holders` are lazily cleaned lists: an entry is valid only while the node's bitsets
/// agree, and stale entries are dropped when a scan meets them. The counters are exact.
#[derive(Debug)]
pub(crate) struct Content {
    pub(crate) id: ContentId,
    pub(crate) manifest: Manifest,
    pub(crate) publisher: PeerId,
    pub(crate) holders: Vec<Vec<NodeIdx>>,
    /// Valid holders (any role) / holders that are not seeds.
    pub(crate) holder_count: Vec<u32>,
    pub(crate) peer_holder_count: Vec<u32>,
    /// Transfers in flight for the chunk.
    pub(crate) inflight_count: Vec<u32>,
    /// Nodes wanting the chunk and not yet receiving it.
    pub(crate) pending_count: Vec<u32>,
    /// Chunks with at least one valid holder / at least one pending wanter.
    pub(crate) supply: BitSet,
    pub(crate) demand: BitSet,
    pub(crate) total_pending: u64,
    pub(crate) window_start: ChunkIndex,
    /// The lowest chunk worth scheduling: `window_start`, or for a live stream with a
    /// [`super::TrackerConfig::live_deadline`] the first chunk appended within it.
    pub(crate) floor: ChunkIndex,
    /// Live: when each chunk was appended (indexed by chunk; empty for on-demand content).
    pub(crate) appended: Vec<crate::time::Time>,
    /// Live: the seed's end mark (an append with no chunks), kept for viewers who ask later.
    pub(crate) end_mark: Option<crate::wire::AppendChunks>,
    /// A signed content's chain and its seed's latest signature on it (`signing`).
    pub(crate) signed: Option<Signed>,
    /// Nodes that will receive live appends.
    pub(crate) viewers: BTreeSet<NodeIdx>,
    /// Nodes with an open-ended request.
    pub(crate) open_requesters: BTreeSet<NodeIdx>,
    pub(crate) bytes_from_origin: u64,
    pub(crate) bytes_from_peers: u64,
    pub(crate) completions: u32,
    /// Live: how feasible the stream was when its seed was last told, and when
    /// (`Tracker::advise_live_seeds`).
    pub(crate) advised: Option<(crate::bounds::Feasibility, crate::time::Time)>,
    /// Its seed withdrew it (the file changed at its source): while a chunk of it has no
    /// holder, a viewer asking for its path is told nothing is published there, so a `get`
    /// waits for the new version (`get --wait`) instead of starting on one it cannot finish.
    pub(crate) withdrawn: bool,
}

/// What the tracker keeps of a signed content: the chain it checks each append against, and
/// the seed's signature on the manifest as it stands (sent with every `TellInfo`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Signed {
    pub(crate) chain: crate::signing::Chain,
    pub(crate) latest: crate::signing::SeedSignature,
}

impl NodeContent {
    pub(crate) fn new(content: ContentId, chunks: u32) -> Self {
        Self {
            content,
            want: BitSet::new(chunks),
            inflight: BitSet::new(chunks),
            have: BitSet::new(chunks),
            open_from: None,
            cursor: 0,
            focus: None,
            completed: false,
        }
    }

    /// Grows every bitset to `chunks` (live content grew).
    pub(crate) fn grow(&mut self, chunks: u32) {
        self.want.grow(chunks);
        self.inflight.grow(chunks);
        self.have.grow(chunks);
    }

    /// Requested, not held, not being received.
    pub(crate) fn pending(&self, c: ChunkIndex) -> bool {
        self.want.contains(c) && !self.inflight.contains(c)
    }
}

impl Node {
    pub(crate) fn content(&self, id: ContentId) -> Option<&NodeContent> {
        self.contents.iter().find(|c| c.content == id)
    }

    pub(crate) fn content_mut(&mut self, id: ContentId) -> Option<&mut NodeContent> {
        self.contents.iter_mut().find(|c| c.content == id)
    }

    /// The node's state for `id`, created empty (sized `chunks`) if absent.
    pub(crate) fn content_entry(&mut self, id: ContentId, chunks: u32) -> &mut NodeContent {
        let pos = match self.contents.iter().position(|c| c.content == id) {
            Some(p) => p,
            None => {
                self.contents.push(NodeContent::new(id, chunks));
                self.contents.len() - 1
            }
        };
        let nc = &mut self.contents[pos];
        nc.grow(chunks);
        nc
    }

    pub(crate) fn is_seed(&self) -> bool {
        self.role == Role::Seed
    }
}

impl Content {
    pub(crate) fn new(id: ContentId, manifest: Manifest, publisher: PeerId) -> Self {
        let n = manifest.num_chunks();
        let window_start = manifest.live.map_or(0, |l| l.first_chunk);
        let mut c = Self {
            id,
            manifest,
            publisher,
            holders: Vec::new(),
            holder_count: Vec::new(),
            peer_holder_count: Vec::new(),
            inflight_count: Vec::new(),
            pending_count: Vec::new(),
            supply: BitSet::new(0),
            demand: BitSet::new(0),
            total_pending: 0,
            window_start,
            floor: window_start,
            appended: Vec::new(),
            end_mark: None,
            signed: None,
            viewers: BTreeSet::new(),
            open_requesters: BTreeSet::new(),
            bytes_from_origin: 0,
            bytes_from_peers: 0,
            completions: 0,
            advised: None,
            withdrawn: false,
        };
        c.grow(n);
        c
    }

    pub(crate) fn num_chunks(&self) -> u32 {
        self.holders.len() as u32
    }

    /// Grows every per-chunk index to `n` chunks.
    pub(crate) fn grow(&mut self, n: u32) {
        let n_us = n as usize;
        if n_us <= self.holders.len() {
            return;
        }
        self.holders.resize_with(n_us, Vec::new);
        self.holder_count.resize(n_us, 0);
        self.peer_holder_count.resize(n_us, 0);
        self.inflight_count.resize(n_us, 0);
        self.pending_count.resize(n_us, 0);
        self.supply.grow(n);
        self.demand.grow(n);
    }

    pub(crate) fn add_pending(&mut self, c: ChunkIndex) {
        let i = c as usize;
        self.pending_count[i] += 1;
        self.total_pending += 1;
        self.demand.insert(c);
    }

    pub(crate) fn remove_pending(&mut self, c: ChunkIndex) {
        let i = c as usize;
        self.pending_count[i] = self.pending_count[i].saturating_sub(1);
        self.total_pending = self.total_pending.saturating_sub(1);
        if self.pending_count[i] == 0 {
            self.demand.remove(c);
        }
    }

    /// Counts `node` as holding chunk `c` and lists it; with `reused` (its index was a
    /// departed node's, [`Node::reused`]) only if the list does not name it already.
    pub(crate) fn add_holder(&mut self, c: ChunkIndex, node: NodeIdx, is_seed: bool, reused: bool) {
        let i = c as usize;
        self.holder_count[i] += 1;
        if !is_seed {
            self.peer_holder_count[i] += 1;
        }
        self.supply.insert(c);
        if !(reused && self.holders[i].contains(&node)) {
            self.holders[i].push(node);
        }
    }

    pub(crate) fn remove_holder(&mut self, c: ChunkIndex, is_seed: bool) {
        let i = c as usize;
        self.holder_count[i] = self.holder_count[i].saturating_sub(1);
        if !is_seed {
            self.peer_holder_count[i] = self.peer_holder_count[i].saturating_sub(1);
        }
        if self.holder_count[i] == 0 {
            self.supply.remove(c);
        }
    }

    /// Copies of a chunk held by peers or on their way to one (the origin's copy excluded).
    pub(crate) fn replicas(&self, c: ChunkIndex) -> u32 {
        self.peer_holder_count[c as usize] + self.inflight_count[c as usize]
    }

    /// Whether chunk `c` may be scheduled (inside the live window).
    pub(crate) fn schedulable(&self, c: ChunkIndex) -> bool {
        c >= self.window_start && c < self.num_chunks()
    }
}
