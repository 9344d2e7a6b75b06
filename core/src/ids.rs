//! Small newtype handles used on every hot path (STYLE 8).

use core::fmt;

use serde::{Deserialize, Serialize};

/// A peer's identity in a swarm, chosen by the peer and unique per tracker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PeerId(pub u32);

/// A connection handle, allocated by the machine that owns the connection.
///
/// Handles are never reused within one machine's lifetime, so a stale handle cannot
/// address a newer connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ConnId(pub u32);

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
