//! Which nodes others can connect to: a connect-back probe to each node that says it listens.
//!
//! A node behind a NAT (or a firewall) listens on a port nobody outside can reach, and its
//! `Hello` cannot tell: the tracker sees the NAT's address and the node's private port. So
//! when a node that listens joins, the tracker opens a connection of its own to that address
//! and port ([`super::TrackerConfig::reach_probe`]). If it opens, the node is reachable and
//! the probe is closed at once; if it is refused, fails or has not opened within the probe's
//! time, the node is unreachable: it is treated as a node that does not listen. Orders then
//! pick who connects to whom (`Tracker::order`): a reachable giver is dialled by its taker
//! (`Get`), an unreachable one dials a reachable taker itself (`Put`: connection reversal),
//! and two unreachable ones punch through to each other: both dial at once from their
//! listening ports, to where each one's NAT maps it (as the tracker saw on its tracker
//! link), and a pair whose punch failed is not ordered again. Until its probe answers, a
//! node is dialled by nobody (a node that just joined has nothing to give yet).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use rand_core::Rng as _;

use super::{NodeIdx, Tracker, TrackerEvent};
use crate::ids::{ConnId, Endpoint, PeerId};
use crate::output::{Dial, Transmit};
use crate::time::Time;
use crate::wire::LinkSecret;

/// Pairs remembered as able or unable to connect by a hole punch, at most this many each.
const REMEMBERED_PAIRS: usize = 4096;

/// A set of unordered pairs that forgets its oldest past [`REMEMBERED_PAIRS`].
#[derive(Debug, Default)]
struct PairSet {
    set: BTreeSet<(PeerId, PeerId)>,
    order: VecDeque<(PeerId, PeerId)>,
}

impl PairSet {
    fn contains(&self, k: (PeerId, PeerId)) -> bool {
        self.set.contains(&k)
    }

    fn insert(&mut self, k: (PeerId, PeerId)) {
        if self.set.insert(k) {
            self.order.push_back(k);
            while self.order.len() > REMEMBERED_PAIRS {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }
}

/// What hole punches between pairs of unreachable nodes came to. A pair is tried with one
/// order at a time until a punch has connected it (its link then carries the rest); a pair
/// whose punch failed is not paired again, either way round.
#[derive(Debug, Default)]
pub(super) struct Punches {
    connected: PairSet,
    failed: PairSet,
    trying: BTreeSet<(PeerId, PeerId)>,
}

fn pair(a: PeerId, b: PeerId) -> (PeerId, PeerId) {
    if a <= b { (a, b) } else { (b, a) }
}

impl Punches {
    /// Whether `a` and `b` may be ordered a punch now.
    fn may(&self, a: PeerId, b: PeerId) -> bool {
        let k = pair(a, b);
        !self.failed.contains(k) && (self.connected.contains(k) || !self.trying.contains(&k))
    }

    /// A punch between `a` and `b` was ordered.
    pub(super) fn ordered(&mut self, a: PeerId, b: PeerId) {
        let k = pair(a, b);
        if !self.connected.contains(k) {
            self.trying.insert(k);
        }
    }

    /// A punched transfer between `a` and `b` ended: `Some(true)` it delivered, `Some(false)`
    /// it failed or stalled, `None` it was called off (an end left).
    pub(super) fn ended(&mut self, a: PeerId, b: PeerId, connected: Option<bool>) {
        let k = pair(a, b);
        self.trying.remove(&k);
        match connected {
            Some(true) => self.connected.insert(k),
            Some(false) => self.failed.insert(k),
            None => {}
        }
    }
}

/// Probes under way: the tracker's outgoing connections to nodes' listening endpoints.
#[derive(Debug, Default)]
pub(super) struct Probes {
    /// Each probe's node (its index and id, so a node that left and whose index was reused
    /// is not judged by its predecessor's probe) and deadline.
    open: BTreeMap<ConnId, (NodeIdx, PeerId, Time)>,
    deadlines: BTreeSet<(Time, ConnId)>,
}

impl Probes {
    pub(super) fn next_deadline(&self) -> Option<Time> {
        self.deadlines.first().map(|&(t, _)| t)
    }

    fn take(&mut self, conn: ConnId) -> Option<(NodeIdx, PeerId)> {
        let (idx, id, at) = self.open.remove(&conn)?;
        self.deadlines.remove(&(at, conn));
        Some((idx, id))
    }
}

impl Tracker {
    /// A node that listens at `endpoint` joined: probe it, if probes are on.
    pub(super) fn probe(&mut self, now: Time, idx: NodeIdx, id: PeerId, endpoint: Endpoint) {
        let Some(wait) = self.config.reach_probe else { return };
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        // The driver seals every link it opens; the node holds the link unread (no order of
        // its names this secret) until the tracker closes it, and the secret is never used.
        let mut secret = [0u8; 32];
        self.keys.fill_bytes(&mut secret);
        let at = now + wait;
        self.probes.open.insert(conn, (idx, id, at));
        self.probes.deadlines.insert((at, conn));
        self.transmits.push_back(Transmit::Connect {
            conn,
            endpoint,
            key: Some(LinkSecret(Box::new(secret))),
            dial: Dial::Plain,
        });
    }

    /// The driver connected `conn`; `true` if it was a probe (the node is reachable).
    pub(super) fn probe_connected(&mut self, conn: ConnId) -> bool {
        let Some((idx, id)) = self.probes.take(conn) else { return false };
        self.transmits.push_back(Transmit::Close { conn, reason: None });
        self.reach_found(idx, id, true);
        true
    }

    /// `conn` closed or failed before it connected; `true` if it was a probe (the node is
    /// unreachable).
    pub(super) fn probe_failed(&mut self, conn: ConnId) -> bool {
        let Some((idx, id)) = self.probes.take(conn) else { return false };
        self.reach_found(idx, id, false);
        true
    }

    /// Probes whose time is up: their nodes are unreachable. Returns whether any was.
    pub(super) fn expire_probes(&mut self, now: Time) -> bool {
        let mut any = false;
        while let Some(&(at, conn)) = self.probes.deadlines.first() {
            if at > now {
                break;
            }
            if let Some((idx, id)) = self.probes.take(conn) {
                self.transmits.push_back(Transmit::Close { conn, reason: None });
                self.reach_found(idx, id, false);
                any = true;
            }
        }
        any
    }

    /// Whether two nodes that do not listen may be ordered a hole punch: both have a known
    /// NAT mapping, their punch has not failed before, and none is being tried.
    pub(super) fn may_punch(&self, a: NodeIdx, b: NodeIdx) -> bool {
        if !(self.loads[a.0 as usize].punchable && self.loads[b.0 as usize].punchable) {
            return false;
        }
        match (self.node(a), self.node(b)) {
            (Some(x), Some(y)) => self.punches.may(x.id, y.id),
            _ => false,
        }
    }

    fn reach_found(&mut self, idx: NodeIdx, id: PeerId, reachable: bool) {
        let Some(node) = self.node_mut(idx).filter(|n| n.id == id) else { return };
        node.reachable = Some(reachable);
        if reachable {
            self.loads[idx.0 as usize].listens = true;
        } else {
            // From now on it is dialled by nobody: it dials reachable takers itself, and
            // punches through to unreachable ones if the tracker knows where its NAT maps
            // its listening port.
            node.endpoint = None;
            let punchable = node.punch_at.is_some();
            let load = &mut self.loads[idx.0 as usize];
            load.listens = false;
            load.punchable = punchable;
        }
        self.mark_dirty(idx);
        self.events.push_back(TrackerEvent::Reach { peer: id, reachable });
    }
}
