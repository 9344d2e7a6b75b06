//! Blame that needs evidence: a giver is banned for bad copies only when takers at several
//! addresses report them, and a taker whose "corrupt" claim is contradicted (another taker
//! verified the same chunk from the same giver) stops counting as a witness.
//!
//! One liar could otherwise get any honest giver banned: seven false "bad hash" reports did
//! in issue 17's probe.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::ids::{ChunkIndex, ContentId, PeerId};

/// Accusations kept per giver (the oldest are forgotten first).
const KEPT: usize = 32;

/// Distinct witnesses (address groups; identities on loopback) a ban needs.
pub(super) const WITNESSES: usize = 2;

/// One report of a bad copy: who made it, from where, and (for a corrupt copy) about what.
#[derive(Debug)]
struct Accusation {
    witness: String,
    taker: PeerId,
    about: Option<(ContentId, ChunkIndex)>,
}

/// Reports of bad copies per giver, and the takers whose reports were contradicted.
#[derive(Debug, Default)]
pub(super) struct Blame {
    against: BTreeMap<PeerId, VecDeque<Accusation>>,
    discredited: BTreeSet<PeerId>,
}

impl Blame {
    /// `taker`, at `witness` (its address group, or its identity on loopback), reports a bad
    /// copy from `giver`; `about` names the chunk when the claim is "corrupt", which a later
    /// verified copy can contradict.
    pub(super) fn accuse(
        &mut self,
        giver: PeerId,
        taker: PeerId,
        witness: String,
        about: Option<(ContentId, ChunkIndex)>,
    ) {
        if self.discredited.contains(&taker) {
            return;
        }
        let list = self.against.entry(giver).or_default();
        list.push_back(Accusation { witness, taker, about });
        if list.len() > KEPT {
            list.pop_front();
        }
    }

    /// `giver` delivered `about` and a taker verified it: whoever said that chunk from that
    /// giver was corrupt is discredited, and every claim of theirs withdrawn.
    pub(super) fn vindicate(&mut self, giver: PeerId, about: (ContentId, ChunkIndex)) {
        let Some(list) = self.against.get(&giver) else { return };
        let before = self.discredited.len();
        self.discredited.extend(list.iter().filter(|a| a.about == Some(about)).map(|a| a.taker));
        if self.discredited.len() == before {
            return;
        }
        let discredited = &self.discredited;
        for list in self.against.values_mut() {
            list.retain(|a| !discredited.contains(&a.taker));
        }
        self.against.retain(|_, list| !list.is_empty());
    }

    /// Distinct witnesses of bad copies from `giver` among the claims kept.
    pub(super) fn witnesses(&self, giver: PeerId) -> usize {
        let Some(list) = self.against.get(&giver) else { return 0 };
        let mut seen: Vec<&str> = list.iter().map(|a| a.witness.as_str()).collect();
        seen.sort_unstable();
        seen.dedup();
        seen.len()
    }

    /// Whether `taker` said `giver` sent it a corrupt copy (and was not contradicted): it
    /// takes nothing more from that giver, whatever others think of it.
    pub(super) fn shuns(&self, taker: PeerId, giver: PeerId) -> bool {
        self.against.get(&giver).is_some_and(|l| l.iter().any(|a| a.taker == taker && a.about.is_some()))
    }
}
