//! The connection table: the tracker link and peer links.

use std::collections::VecDeque;

use super::peer_index::PeerIndex;

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
/// A table of slots indexed by the handle's low bits ([`ConnId::slot`]); the high bits count
/// the slot's reuses, so a handle of a closed connection names nothing (a lookup on every
/// message is one bounds check and one compare). A freed slot is reused only after every
/// slot freed before it, so a handle's value comes back only after 4 096 such rounds. The
/// table is as large as the most connections ever open at once, not as the number ever made.
#[derive(Debug, Default)]
pub(crate) struct Links {
    slots: Vec<Slot>,
    free: VecDeque<u32>,
    peer_open: usize,
    by_peer: PeerIndex,
}

#[derive(Debug)]
struct Slot {
    generation: u32,
    link: Option<Link>,
}

impl Slot {
    /// Whether `conn` is this slot's current handle.
    fn names(&self, conn: ConnId) -> bool {
        conn == ConnId::from_parts(conn.slot() as u32, self.generation)
    }
}

impl Links {
    /// Allocates a handle for a new connection; `None` when the table is full (more than a
    /// million connections open at once).
    pub fn alloc(&mut self, now: Time, kind: LinkKind, remote: Option<PeerId>) -> Option<ConnId> {
        let index = match self.free.pop_front() {
            Some(i) => i,
            None if self.slots.len() < ConnId::SLOTS => {
                self.slots.push(Slot { generation: 0, link: None });
                (self.slots.len() - 1) as u32
            }
            None => return None,
        };
        let slot = &mut self.slots[index as usize];
        let conn = ConnId::from_parts(index, slot.generation);
        let connected = kind == LinkKind::Inbound;
        slot.link = Some(Link { kind, remote, connected, last_active: now });
        if kind != LinkKind::Tracker {
            self.peer_open += 1;
        }
        if let Some(p) = remote {
            self.by_peer.insert(p, conn);
        }
        Some(conn)
    }

    /// The slot `conn` names, if `conn` is its current handle (not an earlier generation's).
    fn slot_mut(&mut self, conn: ConnId) -> Option<&mut Slot> {
        self.slots.get_mut(conn.slot()).filter(|s| s.names(conn))
    }

    pub fn get(&self, conn: ConnId) -> Option<&Link> {
        self.slots.get(conn.slot()).filter(|s| s.names(conn))?.link.as_ref()
    }

    pub fn get_mut(&mut self, conn: ConnId) -> Option<&mut Link> {
        self.slot_mut(conn)?.link.as_mut()
    }

    /// Forgets a connection and its entry in the reuse index; its slot goes to the back of
    /// the free list under a new generation.
    pub fn remove(&mut self, conn: ConnId) -> Option<Link> {
        let slot = self.slot_mut(conn)?;
        let link = slot.link.take()?;
        slot.generation = ConnId::next_generation(slot.generation);
        self.free.push_back(conn.slot() as u32);
        if link.kind != LinkKind::Tracker {
            self.peer_open -= 1;
        }
        if let Some(p) = link.remote
            && self.by_peer.get(p) == Some(conn)
        {
            self.by_peer.remove(p);
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
        self.by_peer.get(peer)
    }

    /// Marks activity on a link (for the idle timer).
    pub fn touch(&mut self, conn: ConnId, now: Time) {
        if let Some(link) = self.get_mut(conn) {
            link.last_active = now;
        }
    }

    /// Iterates the open connections in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (ConnId, &Link)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((ConnId::from_parts(i as u32, s.generation), s.link.as_ref()?)))
    }

    /// Slots in the table (open connections plus free slots).
    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.slots.len()
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
    fn reuse_index_follows_the_latest_link() {
        let mut links = Links::default();
        let t = Time::ZERO;
        let a = links.alloc(t, LinkKind::Outbound, Some(PeerId(7))).unwrap();
        assert_eq!(links.link_of(PeerId(7)), Some(a));
        let b = links.alloc(t, LinkKind::Inbound, None).unwrap();
        links.set_remote(b, PeerId(7));
        assert_eq!(links.link_of(PeerId(7)), Some(b));
        // Removing the older link keeps the index on the newer one.
        links.remove(a);
        assert_eq!(links.link_of(PeerId(7)), Some(b));
        links.remove(b);
        assert_eq!(links.link_of(PeerId(7)), None);
        assert_eq!(links.peer_links(), 0);
    }

    #[test]
    fn a_closed_handle_names_nothing_even_when_its_slot_is_reused() {
        let mut links = Links::default();
        let t = Time::ZERO;
        let tracker = links.alloc(t, LinkKind::Tracker, None).unwrap();
        let a = links.alloc(t, LinkKind::Outbound, Some(PeerId(1))).unwrap();
        links.remove(a);
        let b = links.alloc(t, LinkKind::Outbound, Some(PeerId(2))).unwrap();
        assert_eq!(a.slot(), b.slot(), "the only free slot is reused");
        assert_ne!(a, b);
        assert!(links.get(a).is_none() && links.remove(a).is_none());
        assert_eq!(links.get(b).and_then(|l| l.remote), Some(PeerId(2)));
        assert!(links.get(tracker).is_some());
    }

    #[test]
    fn the_table_grows_with_open_connections_not_with_connections_made() {
        let mut links = Links::default();
        let t = Time::ZERO;
        links.alloc(t, LinkKind::Tracker, None).unwrap();
        let mut open = VecDeque::new();
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..100_000u32 {
            let c = links.alloc(t, LinkKind::Outbound, Some(PeerId(i))).unwrap();
            assert!(seen.insert(c), "handle {c:?} came back while 100 000 were made");
            open.push_back(c);
            if open.len() > 50 {
                links.remove(open.pop_front().unwrap());
            }
        }
        assert_eq!(links.capacity(), 52);
        assert_eq!(links.iter().count(), 51);
        assert_eq!(links.peer_links(), 50);
    }

    #[test]
    fn a_full_table_refuses_until_a_connection_closes() {
        let mut links = Links::default();
        let t = Time::ZERO;
        let first = links.alloc(t, LinkKind::Inbound, None).unwrap();
        for _ in 1..ConnId::SLOTS {
            assert!(links.alloc(t, LinkKind::Inbound, None).is_some());
        }
        assert_eq!(links.alloc(t, LinkKind::Inbound, None), None);
        links.remove(first);
        let again = links.alloc(t, LinkKind::Inbound, None).unwrap();
        assert_eq!((again.slot(), again == first), (first.slot(), false));
    }
}
