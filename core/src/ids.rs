//! Small newtype handles used on every hot path (STYLE 8).

use core::fmt;

use serde::{Deserialize, Serialize};

/// A peer's identity in a swarm, chosen by the peer and unique per tracker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PeerId(pub u32);

/// A connection handle, allocated by the machine that owns the connection.
///
/// Handles are unique among a machine's open connections, and a closed connection's handle
/// does not come back for a long time, so a stale handle does not address a newer
/// connection. The tracker numbers its connections in sequence; peers and seeds pack a table
/// slot (the low 20 bits, [`ConnId::slot`]) and the slot's reuse count (the high 12 bits),
/// and reuse the slot that has been free longest, so a value recurs only after 4 096 rounds
/// through every free slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ConnId(pub u32);

impl ConnId {
    const SLOT_BITS: u32 = 20;
    /// Table slots a node can address: connections open at once.
    pub(crate) const SLOTS: usize = 1 << Self::SLOT_BITS;

    /// The handle's table slot (its low 20 bits): dense for a peer's or seed's handles, so
    /// a driver may index a table by it, checking the whole handle.
    pub fn slot(self) -> usize {
        (self.0 & (Self::SLOTS as u32 - 1)) as usize
    }

    pub(crate) fn from_parts(slot: u32, generation: u32) -> Self {
        Self(generation << Self::SLOT_BITS | slot)
    }

    /// The next reuse count of a slot (12 bits, wrapping).
    pub(crate) fn next_generation(generation: u32) -> u32 {
        (generation + 1) & ((1 << (32 - Self::SLOT_BITS)) - 1)
    }
}

/// A published file or live stream, numbered by the tracker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ContentId(pub u32);

/// The index of a chunk within its content.
pub type ChunkIndex = u32;

/// A transfer authorisation: random, issued by the tracker for one (giver, taker, chunk).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Token(pub u64);

/// Where a node accepts connections: a host the driver understands and a port.
///
/// In the real runtime `host` is an IP address; in the simulator it names a node.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Endpoint {
    /// Host name or address, as the driver's transport understands it.
    pub host: String,
    /// TCP port (or the simulator's equivalent).
    pub port: u16,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({:016x})", self.0)
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "peer#{}", self.0)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}
