//! Chunk payloads: real bytes, or a virtual stand-in for the simulator.

use bytes::Bytes;

use crate::manifest::Digest;

/// The contents of one chunk as it travels between machines.
///
/// The mio runtime moves [`Payload::Real`] bytes. The simulator moves [`Payload::Virtual`]
/// payloads: a length and a content tag (the digest the bytes *would* have), so 1 000 peers
/// can share a 100 MB file without 100 GB of memory. A peer that corrupts virtual data
/// changes the tag; verification compares it against the manifest exactly as it would
/// compare a real SHA-256.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// Actual bytes (reference-counted, never copied through serde).
    Real(Bytes),
    /// A length and the digest the bytes stand for.
    Virtual {
        /// Length in bytes.
        len: u32,
        /// Digest of the content these bytes stand for.
        tag: Digest,
    },
}

impl Payload {
    /// Length in bytes.
    pub fn len(&self) -> u32 {
        match self {
            // Chunk payloads are at most one chunk (u32::MAX) long; the codec enforces it.
            Payload::Real(b) => u32::try_from(b.len()).unwrap_or(u32::MAX),
            Payload::Virtual { len, .. } => *len,
        }
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The SHA-256 of the bytes (or the tag of a virtual payload).
    pub fn digest(&self) -> Digest {
        match self {
            Payload::Real(b) => Digest::of(b),
            Payload::Virtual { tag, .. } => *tag,
        }
    }

    /// Whether the payload matches `expected` in length and digest.
    pub fn verify(&self, expected_len: u32, expected: &Digest) -> bool {
        self.len() == expected_len && self.digest() == *expected
    }
}
