//! A node's connection handles mapped to engine links.
//!
//! Core machines allocate connection handles in sequence and never reuse them, so the map is
//! a vector indexed by handle: the lookup on every message is a bounds check, not a search.

use pdtp_core::ConnId;

use super::LinkId;

/// `ConnId → LinkId` for one node.
#[derive(Debug, Default)]
pub(super) struct ConnMap {
    slots: Vec<Option<LinkId>>,
}

impl ConnMap {
    pub(super) fn get(&self, conn: ConnId) -> Option<LinkId> {
        self.slots.get(conn.0 as usize).copied().flatten()
    }

    pub(super) fn contains_key(&self, conn: &ConnId) -> bool {
        self.get(*conn).is_some()
    }

    pub(super) fn insert(&mut self, conn: ConnId, link: LinkId) {
        let i = conn.0 as usize;
        if self.slots.len() <= i {
            self.slots.resize(i + 1, None);
        }
        self.slots[i] = Some(link);
    }

    pub(super) fn remove(&mut self, conn: &ConnId) -> Option<LinkId> {
        self.slots.get_mut(conn.0 as usize)?.take()
    }

    /// Every mapped link, in handle order.
    pub(super) fn into_links(self) -> impl Iterator<Item = LinkId> {
        self.slots.into_iter().flatten()
    }
}
