//! The tracker: registry, interest, scheduling of every chunk transfer, trust.
//!
//! The tracker never touches chunk bytes. Peers tell it what they want (`Request`) and hold
//! (`Provide`); it orders pairs to move one chunk at a time (`Transfer` to both ends with the
//! same token), learns the outcome from the taker (`Completed` with the hash of what arrived),
//! checks it against the manifest, and feeds the trust graph that steers later choices.
//!
//! Scheduling is incremental: every change that can enable a transfer (a request, a provide,
//! a completion, a cancellation, a disconnect, a sweep) marks the nodes involved dirty, and a
//! pass serves dirty nodes as takers and as givers. A decision looks at per-chunk holder and
//! wanter indexes and bitsets, never at every peer.

mod blame;
mod config;
mod events;
mod handshake;
mod interest;
mod reach;
mod schedule;
mod state;
mod stats;
mod transfers;
pub mod trust;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use rand_core::Rng as _;

pub use config::{ChunkPolicy, GiverPolicy, Limits, OriginPolicy, Policy, TrackerConfig, UploadSlots};
pub use events::TrackerEvent;
pub use stats::{ActiveTransfer, ContentStats, NodeStats, OnDemandBound, TrackerStats};

use crate::ids::{ConnId, ContentId, PeerId};
use crate::output::Transmit;
use crate::time::Time;
use crate::wire::{ErrorCode, Message, Notice};
use state::{Content, Load, Node, NodeIdx};
use transfers::TransferTable;
use trust::TrustGraph;

/// The tracker state machine. See the crate docs for the run loop.
///
/// Inputs: [`accept`](Self::accept), [`handle_message`](Self::handle_message),
/// [`handle_malformed`](Self::handle_malformed), [`handle_closed`](Self::handle_closed),
/// [`handle_timeout`](Self::handle_timeout). Outputs: [`poll_transmit`](Self::poll_transmit),
/// [`poll_event`](Self::poll_event), [`poll_timeout`](Self::poll_timeout). Read-only views:
/// [`stats`](Self::stats), [`trust`](Self::trust).
pub struct Tracker {
    config: TrackerConfig,
    rng: crate::Rng,
    /// Peer links' secrets come from a generator of their own, so drawing them does not
    /// move the scheduler's random choices.
    keys: crate::Rng,
    conns: BTreeMap<ConnId, ConnState>,
    /// Open connections per address group ([`address_group`]; for `max_connections_per_host`).
    host_conns: BTreeMap<String, u32>,
    /// Orders held as taker per address group, and the nodes waiting for that count to
    /// drop below `max_downloads_per_host` (indexed by `Load::host`; ids from `host_ids`).
    hosts: Vec<HostDownloads>,
    host_ids: BTreeMap<String, u32>,
    /// Indexes in `hosts` of address groups nobody is connected from any more, for reuse.
    free_hosts: Vec<u32>,
    /// Address groups of givers banned for bad copies (`ban_hosts`).
    banned_hosts: BTreeSet<String>,
    /// Givers banned for bad copies, by identity (also those restored by [`Tracker::restore_bans`]).
    banned_ids: BTreeSet<PeerId>,
    next_conn: u32,
    /// Nodes by index; a departed node's entry is `None` until [`Tracker::free_nodes`] gives
    /// its index to a newcomer, so these vectors hold as many entries as nodes were ever
    /// connected at once, not ever connected.
    nodes: Vec<Option<Node>>,
    /// Indexes of departed nodes, for reuse (last freed first: deterministic).
    free_nodes: Vec<NodeIdx>,
    /// Scheduling facts per node, indexed like `nodes`.
    loads: Vec<Load>,
    /// Measured upload rate per node in bytes/s (smoothed), indexed like `nodes`; 0 until a
    /// verified upload completed. Apart from `loads`, which stays small for sampling.
    up_rates: Vec<f32>,
    /// What each node's uplink delivered, per node like `up_rates` (a floor under it).
    delivered: Vec<transfers::Delivered>,
    by_id: BTreeMap<PeerId, NodeIdx>,
    contents: Vec<Content>,
    by_path: BTreeMap<String, usize>,
    /// Wire id → index in `contents` (ids are hashes of the path: see [`content_id_for`]).
    by_content: BTreeMap<ContentId, u32>,
    transfers: TransferTable,
    trust: TrustGraph,
    /// Reports of bad copies per giver, with their witnesses ([`blame`]).
    blame: blame::Blame,
    dirty: VecDeque<NodeIdx>,
    /// Nodes with free upload slots that found nothing to give; the sweep retries them.
    idle_givers: Vec<NodeIdx>,
    /// Benched takers (wasted an order, or reported a failure) by when their bench ends.
    benched: BTreeSet<(Time, NodeIdx)>,
    /// Nodes with free download slots that found no giver; giver steps look here.
    hungry: BTreeSet<NodeIdx>,
    next_sweep: Option<Time>,
    /// Queue-ahead: when uploads are expected to end, less the order lead time.
    wakes: BTreeSet<(Time, crate::ids::Token)>,
    /// Smoothed order lead time in seconds: an order sent → its copy starting, as the taker's
    /// `Completed` tells (its arrival less the copy's duration).
    order_lead: f32,
    /// Connections that have not said hello yet.
    silent_conns: usize,
    /// Connections that said hello and nothing since (closed when the tracker is crowded).
    mute_conns: usize,
    /// Connect-back probes to joining nodes' endpoints ([`reach`]).
    probes: reach::Probes,
    /// What hole punches between unreachable nodes came to ([`reach`]).
    punches: reach::Punches,
    transmits: VecDeque<Transmit>,
    events: VecDeque<TrackerEvent>,
    decisions: u64,
    /// Buffers the scheduler reuses instead of allocating per decision.
    scratch: schedule::Scratch,
}

/// A connection the tracker accepted.
#[derive(Debug)]
struct ConnState {
    remote_host: String,
    /// The remote's port, where the driver tells it ([`Tracker::accept_from`]).
    remote_port: Option<u16>,
    /// What per-address caps and bans count it under ([`address_group`]).
    group: String,
    opened: Time,
    node: Option<NodeIdx>,
    /// It sent something beyond `Hello` (a question, a publish, an interest, a report).
    spoke: bool,
}

/// The content id a path gets: the first four bytes of a hash of the path, so a tracker that
/// restarts gives every path the id it had before, whatever order the seeds publish in, and
/// the viewers' downloads carry on (docs/protocol.md §3). On a clash with an id in use, the
/// next free one (`taken`); such a pair may swap ids across a restart, which a viewer notices.
fn content_id_for(path: &str, taken: impl Fn(ContentId) -> bool) -> ContentId {
    let h = crate::manifest::Digest::of_parts(&[b"pdtp-content-id-v1", path.as_bytes()]);
    let mut id = (h.prefix_u64() >> 32) as u32;
    while taken(ContentId(id)) {
        id = id.wrapping_add(1);
    }
    ContentId(id)
}

/// Givers banned for bad copies ([`Tracker::bans`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bans {
    /// Banned identities.
    pub peers: Vec<PeerId>,
    /// Banned address groups (an IPv4 address, an IPv6 /64: [`address_group`]).
    pub hosts: Vec<String>,
}

/// One address group's orders as taker ([`TrackerConfig::max_downloads_per_host`]).
#[derive(Debug, Default)]
struct HostDownloads {
    orders: u32,
    /// Its nodes that could take no more for the cap; scheduled again when it frees.
    waiting: Vec<NodeIdx>,
}

/// The key under which per-address connection caps and address bans count a host: an
/// IPv4 address itself, an IPv6 address's /64 (one subscriber's usual allocation, which a
/// host can draw fresh addresses from at will), an IPv4-mapped IPv6 address its IPv4
/// address; a name (as the simulator uses) itself.
pub(crate) fn address_group(host: &str) -> String {
    match host.parse::<core::net::IpAddr>() {
        Ok(core::net::IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        Ok(core::net::IpAddr::V4(v4)) => v4.to_string(),
        Err(_) => host.to_string(),
    }
}

/// Whether `host` (an address as the driver reports it) is this machine's loopback.
fn is_loopback(host: &str) -> bool {
    host.parse::<core::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl Tracker {
    /// A tracker with no connections and nothing published.
    pub fn new(config: TrackerConfig, mut rng: crate::Rng) -> Self {
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let keys = <crate::Rng as rand_core::SeedableRng>::from_seed(seed);
        let trust = if config.policy.giver == GiverPolicy::Trust {
            TrustGraph::new()
        } else {
            TrustGraph::totals_only()
        }
        .with_cap(config.trust_records);
        Self {
            config,
            rng,
            keys,
            conns: BTreeMap::new(),
            host_conns: BTreeMap::new(),
            hosts: Vec::new(),
            host_ids: BTreeMap::new(),
            free_hosts: Vec::new(),
            banned_hosts: BTreeSet::new(),
            banned_ids: BTreeSet::new(),
            next_conn: 0,
            nodes: Vec::new(),
            free_nodes: Vec::new(),
            loads: Vec::new(),
            up_rates: Vec::new(),
            delivered: Vec::new(),
            by_id: BTreeMap::new(),
            contents: Vec::new(),
            by_path: BTreeMap::new(),
            by_content: BTreeMap::new(),
            transfers: TransferTable::default(),
            trust,
            blame: blame::Blame::default(),
            dirty: VecDeque::new(),
            idle_givers: Vec::new(),
            benched: BTreeSet::new(),
            hungry: BTreeSet::new(),
            next_sweep: None,
            wakes: BTreeSet::new(),
            order_lead: 0.0,
            silent_conns: 0,
            mute_conns: 0,
            probes: reach::Probes::default(),
            punches: reach::Punches::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            decisions: 0,
            scratch: schedule::Scratch::default(),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &TrackerConfig {
        &self.config
    }

    /// The id of the content published at `path`, if any.
    pub fn content_id(&self, path: &str) -> Option<ContentId> {
        let ci = *self.by_path.get(path.trim_start_matches('/'))?;
        Some(self.contents[ci].id)
    }

    /// The index in `contents` of the content with wire id `id`; `usize::MAX` (a miss for
    /// every `get`) if no such content.
    pub(crate) fn ix(&self, id: ContentId) -> usize {
        self.by_content.get(&id).map_or(usize::MAX, |&i| i as usize)
    }

    /// Who is banned as a giver, by identity and by address group: what a tracker keeps
    /// across a restart ([`Tracker::restore_bans`]), so a banned giver does not start clean.
    pub fn bans(&self) -> Bans {
        Bans {
            peers: self.banned_ids.iter().copied().collect(),
            hosts: self.banned_hosts.iter().cloned().collect(),
        }
    }

    /// Bans kept from an earlier run: these identities start banned when they say hello, as
    /// do new identities from these address groups (with `ban_hosts`).
    pub fn restore_bans(&mut self, bans: &Bans) {
        self.banned_ids.extend(bans.peers.iter().copied());
        self.banned_hosts.extend(bans.hosts.iter().cloned());
    }

    /// The trust graph (read-only).
    pub fn trust(&self) -> &TrustGraph {
        &self.trust
    }

    /// Transfers ordered so far (scheduling decisions that produced an order).
    pub fn decisions(&self) -> u64 {
        self.decisions
    }

    /// A new connection from `remote_host`; returns its handle, or the notice to send before
    /// closing it when the tracker is at `max_connections`.
    pub fn accept(&mut self, now: Time, remote_host: String) -> Result<ConnId, Notice> {
        self.accept_from(now, remote_host, None)
    }

    /// [`Tracker::accept`] with the remote's port: a node that dials the tracker from its
    /// listening port shows where its NAT maps that port, which another node behind NAT can
    /// punch through to (docs/protocol.md, "Reachability").
    pub fn accept_from(
        &mut self,
        now: Time,
        remote_host: String,
        remote_port: Option<u16>,
    ) -> Result<ConnId, Notice> {
        if self.conns.len() >= self.config.max_connections as usize {
            return Err(Notice::new(
                ErrorCode::Overloaded,
                format!("tracker is at its limit of {} connections", self.config.max_connections),
            ));
        }
        let cap = self.config.max_connections_per_host;
        let group = address_group(&remote_host);
        if cap > 0 && !is_loopback(&remote_host) {
            let open = self.host_conns.get(&group).copied().unwrap_or(0);
            if open >= cap {
                return Err(Notice::new(
                    ErrorCode::Overloaded,
                    format!("{open} connections from {group} already, the tracker's limit per address"),
                ));
            }
        }
        *self.host_conns.entry(group.clone()).or_insert(0) += 1;
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        self.conns.insert(
            conn,
            ConnState { remote_host, remote_port, group, opened: now, node: None, spoke: false },
        );
        self.silent_conns += 1;
        self.arm_sweep(now);
        Ok(conn)
    }

    /// A decoded message arrived on `conn`.
    pub fn handle_message(&mut self, now: Time, conn: ConnId, msg: Message) {
        let Some(state) = self.conns.get_mut(&conn) else { return };
        let node = state.node;
        if node.is_some() && !state.spoke && !matches!(msg, Message::Hello(_)) {
            state.spoke = true;
            self.mute_conns = self.mute_conns.saturating_sub(1);
        }
        let Some(idx) = node else {
            match msg {
                Message::Hello(hello) => self.on_hello(now, conn, hello),
                other => self.close_with(
                    conn,
                    Notice::new(ErrorCode::HelloExpected, format!("{} before hello", other.kind())),
                ),
            }
            self.schedule(now);
            return;
        };
        match msg {
            Message::Hello(_) => self.close_with(conn, Notice::new(ErrorCode::HelloExpected, "second hello")),
            Message::AskInfo(ask) => self.on_ask_info(idx, conn, &ask.path),
            Message::Publish(p) => self.on_publish(now, idx, conn, *p),
            Message::AppendChunks(a) => self.on_append(now, idx, conn, *a),
            Message::Request(i) => self.on_request(idx, conn, i),
            Message::Unrequest(i) => self.on_unrequest(idx, conn, i),
            Message::Provide(i) => self.on_provide(idx, conn, i),
            Message::Unprovide(i) => self.on_unprovide(idx, conn, i),
            Message::Completed(c) => self.on_completed(now, idx, conn, c),
            Message::Warning(n) => {
                let peer = self.node(idx).map(|n| n.id);
                self.events.push_back(TrackerEvent::Problem { peer, notice: n });
            }
            Message::Error(n) => {
                let peer = self.node(idx).map(|n| n.id);
                self.events.push_back(TrackerEvent::Problem { peer, notice: n });
                self.drop_conn(conn);
            }
            other @ (Message::Welcome(_)
            | Message::TellInfo(_)
            | Message::Published(_)
            | Message::Transfer(_)
            | Message::Verdict(_)
            | Message::Get(_)
            | Message::Put(_)
            | Message::Data(_)) => self.close_with(
                conn,
                Notice::new(
                    ErrorCode::Unexpected,
                    format!("{} is not a message for the tracker", other.kind()),
                ),
            ),
        }
        self.schedule(now);
    }

    /// The driver could not decode a frame on `conn`: close it with `Error(Malformed)`.
    pub fn handle_malformed(&mut self, now: Time, conn: ConnId, detail: &str) {
        if self.conns.contains_key(&conn) {
            self.close_with(conn, Notice::new(ErrorCode::Malformed, detail.to_string()));
            self.schedule(now);
        }
    }

    /// An outgoing connection (a reachability probe) opened.
    pub fn handle_connected(&mut self, now: Time, conn: ConnId) {
        if self.probe_connected(conn) {
            self.schedule(now);
        }
    }

    /// `conn` closed (by the remote, or it failed).
    pub fn handle_closed(&mut self, now: Time, conn: ConnId) {
        if !self.probe_failed(conn) {
            self.drop_conn(conn);
        }
        self.schedule(now);
    }

    /// Fires what is due: the sweep (stalled orders, silent connections, idle givers) and
    /// queue-ahead slots. Calling it early does nothing.
    pub fn handle_timeout(&mut self, now: Time) {
        let mut due = self.fire_wakes(now);
        due |= self.expire_probes(now);
        // Benched takers whose bench is over may take again.
        while let Some(&(at, idx)) = self.benched.first() {
            if at > now {
                break;
            }
            self.benched.pop_first();
            self.mark_dirty(idx);
            due = true;
        }
        if self.next_sweep.is_some_and(|t| t <= now) {
            self.next_sweep = None;
            self.sweep(now);
            due = true;
        }
        if due {
            self.schedule(now);
            self.arm_sweep(now);
        }
    }

    /// The next instruction for the transport.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<TrackerEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    ///
    /// Armed while anything needs sweeping: orders not yet finished, connections that have
    /// not said hello, givers left idle while demand remains; and, with
    /// [`TrackerConfig::queue_ahead`], when an upload is about to end. Changes after any
    /// input.
    pub fn poll_timeout(&self) -> Option<Time> {
        let wake = self.wakes.first().map(|&(t, _)| t);
        let bench = self.benched.first().map(|&(t, _)| t);
        [self.next_sweep, wake, bench, self.probes.next_deadline()].into_iter().flatten().min()
    }

    // ---- helpers shared by the submodules ----

    fn node(&self, idx: NodeIdx) -> Option<&Node> {
        self.nodes.get(idx.0 as usize).and_then(Option::as_ref)
    }

    fn node_mut(&mut self, idx: NodeIdx) -> Option<&mut Node> {
        self.nodes.get_mut(idx.0 as usize).and_then(Option::as_mut)
    }

    fn send(&mut self, conn: ConnId, msg: Message) {
        self.transmits.push_back(Transmit::Send { conn, msg });
    }

    fn warn(&mut self, conn: ConnId, code: ErrorCode, detail: impl Into<String>) {
        self.send(conn, Message::Warning(Notice::new(code, detail)));
    }

    /// Sends `Error(notice)`, closes the connection and forgets its node.
    fn close_with(&mut self, conn: ConnId, notice: Notice) {
        if !self.conns.contains_key(&conn) {
            return;
        }
        self.send(conn, Message::Error(notice.clone()));
        self.transmits.push_back(Transmit::Close { conn, reason: Some(notice) });
        self.drop_conn(conn);
    }

    /// The index in `hosts` that `conn`'s address group counts under, or [`state::NO_HOST`]
    /// when per-address download caps do not apply to it (loopback, or no cap).
    fn host_index(&mut self, conn: ConnId) -> u32 {
        let Some(c) = self.conns.get(&conn) else { return state::NO_HOST };
        if self.config.max_downloads_per_host == 0 || is_loopback(&c.remote_host) {
            return state::NO_HOST;
        }
        if let Some(&id) = self.host_ids.get(&c.group) {
            return id;
        }
        let id = match self.free_hosts.pop() {
            Some(id) => id,
            None => {
                self.hosts.push(HostDownloads::default());
                self.hosts.len() as u32 - 1
            }
        };
        self.host_ids.insert(c.group.clone(), id);
        id
    }

    /// Whether `load`'s address group holds `max_downloads_per_host` orders as taker.
    fn host_full(&self, load: &Load) -> bool {
        self.hosts.get(load.host as usize).is_some_and(|h| h.orders >= self.config.max_downloads_per_host)
    }

    fn mark_dirty(&mut self, idx: NodeIdx) {
        if let Some(n) = self.node_mut(idx)
            && !n.dirty
        {
            n.dirty = true;
            self.dirty.push_back(idx);
        }
    }

    fn random_below(&mut self, n: usize) -> usize {
        if n <= 1 { 0 } else { (self.rng.next_u64() % n as u64) as usize }
    }

    /// Arms the sweep timer if anything needs it and it is not armed.
    fn arm_sweep(&mut self, now: Time) {
        if self.next_sweep.is_some() {
            return;
        }
        let demand = self.contents.iter().any(|c| c.total_pending > 0);
        let mute = self.mute_conns > 0 && self.crowded();
        if self.transfers.len() > 0
            || self.silent_conns > 0
            || mute
            || (demand && !self.idle_givers.is_empty())
        {
            self.next_sweep = Some(now + self.config.sweep_interval);
        }
    }

    /// Over half of `max_connections` in use: quiet connections then yield their slots.
    fn crowded(&self) -> bool {
        self.conns.len() * 2 > self.config.max_connections as usize
    }

    fn sweep(&mut self, now: Time) {
        self.advise_live_seeds(now);
        // Silent connections: no `Hello` within the hello timeout; and, once the tracker is
        // over half full, nothing after it within another (every honest node asks,
        // publishes or offers at once; one that only said hello holds a slot of
        // `max_connections` that others may need, and gives nothing).
        let deadline = self.config.hello_timeout;
        let crowded = self.crowded();
        let silent: Vec<(ConnId, bool)> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                let waited = now.saturating_since(c.opened);
                (c.node.is_none() && waited >= deadline)
                    || (crowded && !c.spoke && waited >= deadline + deadline)
            })
            .map(|(&id, c)| (id, c.node.is_some()))
            .collect();
        for (conn, welcomed) in silent {
            let why = if welcomed {
                "nothing after hello within the timeout"
            } else {
                "no hello within the timeout"
            };
            self.close_with(conn, Notice::new(ErrorCode::HelloExpected, why));
        }
        self.sweep_overdue(now);
        for idx in std::mem::take(&mut self.idle_givers) {
            if let Some(n) = self.node_mut(idx) {
                n.idle = false;
            }
            self.mark_dirty(idx);
        }
    }
}

#[cfg(test)]
mod tests;
