//! Content description and publishing: ask/tell info, publish, live appends.

use serde::{Deserialize, Serialize};

use crate::ids::{ChunkIndex, ContentId};
use crate::manifest::{Digest, Manifest};
use crate::signing::SeedSignature;

/// Peer → tracker: what is at `path`?
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AskInfo {
    /// Path under the tracker's namespace (no leading `/`).
    pub path: String,
}

/// Tracker → peer: the manifest of a content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TellInfo {
    /// The id used by every later message about this content.
    pub content: ContentId,
    /// Geometry and chunk hashes; the peer verifies every chunk against it.
    pub manifest: Manifest,
    /// The publishing seed's signature on the manifest as sent (a live stream's latest),
    /// which a viewer that pinned the seed's key requires.
    pub signature: Option<SeedSignature>,
}

/// Seed → tracker: publish a content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publish {
    /// The manifest (for live streams: what exists so far, possibly nothing).
    pub manifest: Manifest,
    /// `auth::publish_proof`: proves the seed key and binds this manifest and the stated
    /// uplink to the authenticated seed.
    pub proof: Digest,
    /// The seed's signature on the manifest (`signing::Chain`), if the seed has a key.
    pub signature: Option<SeedSignature>,
    /// The seed's uplink in bits/s on the wire, if its operator stated it: the tracker
    /// schedules the seed at that rate from its first copy instead of ramping its upload
    /// slots up as copies measure it (docs/runtime.md, "A seed's stated uplink").
    pub uplink_bps: Option<u64>,
}

/// Tracker → seed: the publish was accepted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    /// The manifest's path.
    pub path: String,
    /// Id assigned to it.
    pub content: ContentId,
}

/// A live manifest grew: chunks `first..first + hashes.len()` now exist.
///
/// Seed → tracker carries a proof; the tracker forwards it to viewers with a zero proof
/// (viewers trust the tracker's link).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendChunks {
    /// Which live content.
    pub content: ContentId,
    /// Index of the first new chunk (must equal the current chunk count).
    pub first: ChunkIndex,
    /// Total bytes of the stream after this append.
    pub new_size: u64,
    /// Hash of each new chunk.
    pub hashes: Vec<Digest>,
    /// Oldest chunk still offered after this append (the window's tail).
    pub window_start: ChunkIndex,
    /// `SHA-256("pdtp-append-v1" ‖ key ‖ nonce ‖ content ‖ first ‖ new_size ‖ hashes)`
    /// from a seed; zero from the tracker.
    pub proof: Digest,
    /// A signed stream's seed signature on the chain after this append (the tracker
    /// forwards it as is).
    pub signature: Option<SeedSignature>,
}
