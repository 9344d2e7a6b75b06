//! Blame that needs evidence: a giver is banned for bad copies only when takers at several
//! addresses report them, and a taker whose "corrupt" claim is contradicted (another taker
//! verified the same chunk from the same giver) stops counting as a witness.
//!
//! One liar could otherwise get any honest giver banned: seven false "bad hash" reports did
//! in issue 17's probe. A taker's own claim costs the giver that taker only: the two are
//! never paired again (a giver that stalled on it, or sent it a corrupt copy, is shunned),
//! so a victim is served elsewhere at once while its word alone bans nobody.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::ids::{ChunkIndex, ContentId, PeerId};
use crate::time::{Span, Time};

/// Accusations kept per giver (the oldest are forgotten first).
const KEPT: usize = 32;

/// Distinct witnesses (address groups; identities on loopback) a ban needs.
pub(super) const WITNESSES: usize = 2;

/// How long a taker shuns a giver that stalled on it: long enough to finish a download
/// around it, short enough that a giver that stalled once (a congested moment) is tried
/// again. A corrupt copy is shunned for good.
pub(super) const STALL_SHUN: Span = Span::from_secs(120);

/// What a taker said of a copy from a giver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Claim {
    /// It arrived and did not match the manifest (a later verified copy of the same chunk
    /// from the same giver contradicts it).
    Corrupt(ContentId, ChunkIndex),
    /// The taker waited for it and it never came whole: the giver stalled, or could not
    /// be reached.
    Stalled,
    /// It failed at once, or the tracker gave up on the order: no shunning (an instant
    /// failure is the taker's cheapest lie, and an order the taker never reported says
    /// nothing of the giver's conduct towards it).
    Failed,
}

impl Claim {
    /// Whether the taker takes nothing from that giver at `now`, for a claim made `at`.
    fn shuns(self, at: Time, now: Time) -> bool {
        match self {
            Claim::Corrupt(..) => true,
            Claim::Stalled => now < at + STALL_SHUN,
            Claim::Failed => false,
        }
    }

    /// Whether the claim shuns its giver at all.
    pub(super) fn can_shun(self) -> bool {
        !matches!(self, Claim::Failed)
    }
}

/// One report of a bad copy: who made it, from where, and what it says.
#[derive(Debug)]
struct Accusation {
    witness: String,
    taker: PeerId,
    claim: Claim,
    at: Time,
}

/// Reports of bad copies per giver, and the takers whose reports were contradicted.
#[derive(Debug, Default)]
pub(super) struct Blame {
    against: BTreeMap<PeerId, VecDeque<Accusation>>,
    discredited: BTreeSet<PeerId>,
}

impl Blame {
    /// `taker`, at `witness` (its address group, or its identity on loopback), reports a bad
    /// copy from `giver` at `at`.
    pub(super) fn accuse(&mut self, giver: PeerId, taker: PeerId, witness: String, claim: Claim, at: Time) {
        if self.discredited.contains(&taker) {
            return;
        }
        let list = self.against.entry(giver).or_default();
        list.push_back(Accusation { witness, taker, claim, at });
        if list.len() > KEPT {
            list.pop_front();
        }
    }

    /// `giver` delivered `about` and a taker verified it: whoever said that chunk from that
    /// giver was corrupt is discredited, and every claim of theirs withdrawn.
    pub(super) fn vindicate(&mut self, giver: PeerId, about: (ContentId, ChunkIndex)) {
        let Some(list) = self.against.get(&giver) else { return };
        let before = self.discredited.len();
        let claim = Claim::Corrupt(about.0, about.1);
        self.discredited.extend(list.iter().filter(|a| a.claim == claim).map(|a| a.taker));
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

    /// Whether `taker` said `giver` sent it a corrupt copy (and was not contradicted), or
    /// stalled on it within [`STALL_SHUN`] of `now`: it takes nothing from that giver then,
    /// whatever others think of it.
    pub(super) fn shuns(&self, taker: PeerId, giver: PeerId, now: Time) -> bool {
        self.against
            .get(&giver)
            .is_some_and(|l| l.iter().any(|a| a.taker == taker && a.claim.shuns(a.at, now)))
    }
}
