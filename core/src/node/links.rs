//! The connection table: the tracker link and peer links, with handles never reused.

use std::collections::BTreeMap;

use crate::ids::{ConnId, PeerId};
use crate::time::Time;

/// Which kind of connection a handle names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LinkKind {
    /// Our connection to the tracker.
    Tracker,
    /// A peer link we opened (its remote id comes from the order that made us connect).
    Outbound,
    /// A peer link the driver accepted (its remote id comes from the remote's `Hello`).
    Inbound,
}

/// One connection.
#[derive(Clone, Debug)]
pub(crate) struct Link {
    pub kind: LinkKind,
    /// The other end's peer id, once known.
    pub remote: Option<PeerId>,
    /// Whether the transport is up (inbound links are up at once).
    pub connected: bool,
    /// Last time anything was sent or received on it.
    pub last_active: Time,
}

/// Every open connection, plus an index of peer links by remote id for link reuse.
///
/// Handles are allocated in sequence and never reused, so the table is a vector indexed by
/// handle: a lookup on every message is one bounds check, not a tree search.
#[derive(Debug, Default)]
pub(crate) struct Links {
    slots: Vec<Option<Link>>,
    peer_open: usize,
    by_peer: BTreeMap<PeerId, ConnId>,
}

impl Links {
    /// Allocates a fresh handle (never reused) for a new connection.
    pub fn alloc(&mut self, now: Time, kind: LinkKind, remote: Option<PeerId>) -> ConnId {
        let conn = ConnId(u32::try_from(self.slots.len()).unwrap_or(u32::MAX));
        let connected = kind == LinkKind::Inbound;
        self.slots.push(Some(Link { kind, remote, connected, last_active: now }));
        if kind != LinkKind::Tracker {
            self.peer_open += 1;
        }
        if let Some(p) = remote {
            self.by_peer.insert(p, conn);
        }
        conn
    }

    pub fn get(&self, conn: ConnId) -> Option<&Link> {
        self.slots.get(conn.0 as usize)?.as_ref()
    }

    pub fn get_mut(&mut self, conn: ConnId) -> Option<&mut Link> {
        self.slots.get_mut(conn.0 as usize)?.as_mut()
    }

    /// Forgets a connection and its entry in the reuse index.
    pub fn remove(&mut self, conn: ConnId) -> Option<Link> {
        let link = self.slots.get_mut(conn.0 as usize)?.take()?;
        if link.kind != LinkKind::Tracker {
            self.peer_open -= 1;
        }
        if let Some(p) = link.remote
            && self.by_peer.get(&p) == Some(&conn)
        {
            self.by_peer.remove(&p);
        }
        Some(link)
    }

    /// Records the remote id of an inbound link (from its `Hello`) and indexes it for reuse.
    pub fn set_remote(&mut self, conn: ConnId, peer: PeerId) {
        if let Some(link) = self.get_mut(conn) {
            link.remote = Some(peer);
            self.by_peer.insert(peer, conn);
        }
    }

    /// The link to reuse for `peer`, if one is open.
    pub fn link_of(&self, peer: PeerId) -> Option<ConnId> {
        self.by_peer.get(&peer).copied()
    }

    /// Marks activity on a link (for the idle timer).
    pub fn touch(&mut self, conn: ConnId, now: Time) {
        if let Some(link) = self.get_mut(conn) {
            link.last_active = now;
        }
    }

    /// Iterates all connections in handle order.
    pub fn iter(&self) -> impl Iterator<Item = (ConnId, &Link)> + '_ {
        self.slots.iter().enumerate().filter_map(|(i, l)| Some((ConnId(i as u32), l.as_ref()?)))
    }

    /// Number of open peer links.
    pub fn peer_links(&self) -> usize {
        self.peer_open
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_never_reused_and_reuse_index_follows_the_latest_link() {
        let mut links = Links::default();
        let t = Time::ZERO;
        let a = links.alloc(t, LinkKind::Outbound, Some(PeerId(7)));
        assert_eq!(links.link_of(PeerId(7)), Some(a));
        let b = links.alloc(t, LinkKind::Inbound, None);
        links.set_remote(b, PeerId(7));
        assert_eq!(links.link_of(PeerId(7)), Some(b));
        // Removing the older link keeps the index on the newer one.
        links.remove(a);
        assert_eq!(links.link_of(PeerId(7)), Some(b));
        links.remove(b);
        assert_eq!(links.link_of(PeerId(7)), None);
        let c = links.alloc(t, LinkKind::Inbound, None);
        assert!(c > b && b > a, "fresh handles only");
        assert_eq!(links.peer_links(), 1);
    }
}
