//! Chunk storage, owned by the driver and lent to the machines through a small trait.

use core::ops::Range;

use crate::ids::{ChunkIndex, ContentId};
use crate::manifest::Manifest;
use crate::payload::Payload;

/// Where a seed or peer keeps chunk bytes.
///
/// The mio runtime implements it with positioned reads and writes on files (a seed's
/// `file_root`, a peer's output or sparse cache file); the simulator with virtual payloads
/// that hold no bytes. Machines call it synchronously and never keep whole files in memory.
pub trait ChunkStore {
    /// Prepares storage for a content (create or size a file, or nothing).
    fn open(&mut self, content: ContentId, manifest: &Manifest) -> Result<(), StoreError>;

    /// Reads chunk `chunk` (its exact length per the manifest).
    fn read(&mut self, content: ContentId, chunk: ChunkIndex) -> Result<Payload, StoreError>;

    /// Writes a verified chunk.
    fn write(&mut self, content: ContentId, chunk: ChunkIndex, payload: &Payload) -> Result<(), StoreError>;

    /// Forgets a chunk (a live window slid past it); reading it afterwards may fail.
    fn discard(&mut self, content: ContentId, chunk: ChunkIndex) -> Result<(), StoreError>;

    /// Whether the content's bytes changed under us since `open` (a seed's file rewritten in
    /// place), described for the operator; from then on none of it can be served. Default:
    /// never (a store that alone writes its bytes).
    fn changed(&mut self, _content: ContentId) -> Option<String> {
        None
    }

    /// Chunks whose bytes may still be in storage from an earlier run (a download resumed
    /// from its partial file), readable with [`read`](Self::read) once `open` returned.
    ///
    /// Nothing here is taken on trust: a peer reads each of them, keeps the ones whose length
    /// and SHA-256 match the manifest and [`discard`](Self::discard)s the rest, which it then
    /// fetches like any other. Asked once per content, right after `open`. Default: none (a
    /// store that starts empty).
    fn leftovers(&mut self, _content: ContentId) -> Range<ChunkIndex> {
        0..0
    }
}

/// A storage failure, described for the operator.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("storage: {0}")]
pub struct StoreError(pub String);

impl StoreError {
    /// Builds an error from anything printable.
    pub fn new(detail: impl Into<String>) -> Self {
        Self(detail.into())
    }
}
