//! A node's connection handles mapped to engine links.
//!
//! Peer and seed handles are dense in their low bits (`ConnId::slot`), so the map is a vector
//! indexed by slot that checks the whole handle: the lookup on every message is a bounds
//! check and a compare, not a search. Handles that share a slot while both are mapped (the
//! tracker numbers its connections in sequence; test machines pick their own) go to an
//! ordered overflow map.

use std::collections::BTreeMap;

use pdtp_core::ConnId;

use super::LinkId;

/// `ConnId → LinkId` for one node.
#[derive(Debug, Default)]
pub(super) struct ConnMap {
    slots: Vec<Option<(ConnId, LinkId)>>,
    overflow: BTreeMap<ConnId, LinkId>,
}

impl ConnMap {
    pub(super) fn get(&self, conn: ConnId) -> Option<LinkId> {
        match self.slots.get(conn.slot()) {
            Some(Some((c, l))) if *c == conn => Some(*l),
            _ if self.overflow.is_empty() => None,
            _ => self.overflow.get(&conn).copied(),
        }
    }

    pub(super) fn contains_key(&self, conn: &ConnId) -> bool {
        self.get(*conn).is_some()
    }

    pub(super) fn insert(&mut self, conn: ConnId, link: LinkId) {
        let i = conn.slot();
        if self.slots.len() <= i {
            self.slots.resize(i + 1, None);
        }
        match self.slots[i] {
            Some((c, _)) if c != conn => {
                self.overflow.insert(conn, link);
            }
            _ => self.slots[i] = Some((conn, link)),
        }
    }

    pub(super) fn remove(&mut self, conn: &ConnId) -> Option<LinkId> {
        match self.slots.get_mut(conn.slot()) {
            Some(entry) if entry.is_some_and(|(c, _)| c == *conn) => entry.take().map(|(_, l)| l),
            _ => self.overflow.remove(conn),
        }
    }

    /// Every mapped link, in slot order, then the overflow in handle order.
    pub(super) fn into_links(self) -> impl Iterator<Item = LinkId> {
        self.slots.into_iter().flatten().map(|(_, l)| l).chain(self.overflow.into_values())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(ix: u32) -> LinkId {
        LinkId { ix, generation: 1 }
    }

    #[test]
    fn handles_sharing_a_slot_are_kept_apart() {
        let mut m = ConnMap::default();
        let (a, b) = (ConnId(3), ConnId(3 | 1 << 20)); // same slot, another generation
        m.insert(a, link(1));
        m.insert(b, link(2));
        assert_eq!((m.get(a), m.get(b)), (Some(link(1)), Some(link(2))));
        assert_eq!(m.remove(&a), Some(link(1)));
        assert_eq!((m.get(a), m.get(b)), (None, Some(link(2))));
        m.insert(ConnId(7), link(3));
        assert_eq!(m.into_links().collect::<Vec<_>>(), vec![link(3), link(2)]);
    }
}
