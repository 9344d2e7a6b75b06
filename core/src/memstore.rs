//! In-memory chunk stores for tests, small demos and the simulator.
//!
//! [`MemStore`] keeps real bytes per chunk: use it for tests and demos of a few megabytes,
//! never for real deployments (the mio runtime stores chunks in files). [`VirtualStore`]
//! keeps only which chunks are present and their digests, and reads back
//! [`Payload::Virtual`] stand-ins: the simulator's store.
//!
//! Both key their preloaded *files* by `Manifest::path` and bind them to a `ContentId` in
//! [`ChunkStore::open`], which a seed calls when the tracker's `Published` tells it the id
//! (a peer calls it on `TellInfo`). Real drivers do the same with paths under `file_root`.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::bitset::BitSet;
use crate::chunks::Geometry;
use crate::ids::{ChunkIndex, ContentId};
use crate::manifest::{Digest, Manifest};
use crate::payload::Payload;
use crate::store::{ChunkStore, StoreError};

/// Real bytes per chunk, in memory.
#[derive(Clone, Debug, Default)]
pub struct MemStore {
    files: BTreeMap<String, Bytes>,
    /// Partial files an earlier run left, by path (see [`MemStore::with_leftover`]).
    leftover_files: BTreeMap<String, Bytes>,
    /// Chunks `open` took from a leftover file, by content, until `leftovers` is asked.
    leftovers: BTreeMap<ContentId, core::ops::Range<ChunkIndex>>,
    chunks: BTreeMap<(ContentId, ChunkIndex), Bytes>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Preloads a whole file under `path`; `open` splits it into chunks for its content id.
    pub fn with_file(mut self, path: impl Into<String>, data: impl Into<Bytes>) -> Self {
        self.files.insert(path.into(), data.into());
        self
    }

    /// Leaves `data` under `path` as an interrupted download would have: `open` takes each
    /// whole chunk it covers (whatever its bytes) and [`ChunkStore::leftovers`] offers them,
    /// unverified, to the peer resuming it (a test's stand-in for a `FILE.part`).
    pub fn with_leftover(mut self, path: impl Into<String>, data: impl Into<Bytes>) -> Self {
        self.leftover_files.insert(path.into(), data.into());
        self
    }

    /// Stores one chunk directly (a live source's driver does this before `push_live_chunk`).
    pub fn put(&mut self, content: ContentId, chunk: ChunkIndex, data: Bytes) {
        self.chunks.insert((content, chunk), data);
    }

    /// Number of chunks held (all contents).
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// Whether chunk `chunk` of `content` is held.
    pub fn contains(&self, content: ContentId, chunk: ChunkIndex) -> bool {
        self.chunks.contains_key(&(content, chunk))
    }
}

impl ChunkStore for MemStore {
    fn open(&mut self, content: ContentId, manifest: &Manifest) -> Result<(), StoreError> {
        let g = manifest.geometry;
        if let Some(old) = self.leftover_files.get(&manifest.path).cloned() {
            let whole = (0..g.num_chunks()).take_while(|&i| g.chunk_bytes(i).end <= old.len() as u64);
            let mut end = 0;
            for i in whole {
                let r = g.chunk_bytes(i);
                self.chunks.insert((content, i), old.slice(r.start as usize..r.end as usize));
                end = i + 1;
            }
            self.leftovers.insert(content, 0..end);
        }
        let Some(file) = self.files.get(&manifest.path).cloned() else { return Ok(()) };
        if file.len() as u64 != g.size {
            return Err(StoreError::new(format!("{}: file size does not match the manifest", manifest.path)));
        }
        for i in 0..g.num_chunks() {
            let r = g.chunk_bytes(i);
            self.chunks.insert((content, i), file.slice(r.start as usize..r.end as usize));
        }
        Ok(())
    }

    fn read(&mut self, content: ContentId, chunk: ChunkIndex) -> Result<Payload, StoreError> {
        match self.chunks.get(&(content, chunk)) {
            Some(b) => Ok(Payload::Real(b.clone())),
            None => Err(StoreError::new(format!("chunk {chunk} of content {} not held", content.0))),
        }
    }

    fn write(&mut self, content: ContentId, chunk: ChunkIndex, payload: &Payload) -> Result<(), StoreError> {
        match payload {
            Payload::Real(b) => {
                self.chunks.insert((content, chunk), b.clone());
                Ok(())
            }
            Payload::Virtual { .. } => Err(StoreError::new("MemStore holds real bytes only")),
        }
    }

    fn discard(&mut self, content: ContentId, chunk: ChunkIndex) -> Result<(), StoreError> {
        self.chunks.remove(&(content, chunk));
        Ok(())
    }

    fn leftovers(&mut self, content: ContentId) -> core::ops::Range<ChunkIndex> {
        self.leftovers.remove(&content).unwrap_or(0..0)
    }
}

/// Presence bits and digests only: reads return [`Payload::Virtual`].
#[derive(Clone, Debug, Default)]
pub struct VirtualStore {
    /// Whether `open` marks every chunk of a manifest as held (a seed's store).
    origin: bool,
    contents: BTreeMap<ContentId, VirtualContent>,
}

#[derive(Clone, Debug, Default)]
struct VirtualContent {
    have: BitSet,
    /// `(length, tag)` per chunk index, valid where `have` is set.
    chunks: Vec<(u32, Digest)>,
}

impl VirtualStore {
    /// An empty store for a peer.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store for a seed: opening a manifest marks all its chunks as held.
    pub fn origin() -> Self {
        Self { origin: true, contents: BTreeMap::new() }
    }

    /// Records one chunk directly (a live source's driver does this before `push_live_chunk`).
    pub fn put(&mut self, content: ContentId, chunk: ChunkIndex, len: u32, tag: Digest) {
        self.contents.entry(content).or_default().set(chunk, len, tag);
    }

    /// Chunks held for `content`.
    pub fn held(&self, content: ContentId) -> u32 {
        self.contents.get(&content).map_or(0, |c| c.have.count())
    }
}

impl VirtualContent {
    fn set(&mut self, chunk: ChunkIndex, len: u32, tag: Digest) {
        let i = chunk as usize;
        if self.chunks.len() <= i {
            self.chunks.resize(i + 1, (0, Digest::ZERO));
            self.have.grow(chunk.saturating_add(1));
        }
        self.chunks[i] = (len, tag);
        self.have.insert(chunk);
    }
}

impl ChunkStore for VirtualStore {
    fn open(&mut self, content: ContentId, manifest: &Manifest) -> Result<(), StoreError> {
        let c = self.contents.entry(content).or_default();
        if self.origin {
            let g: Geometry = manifest.geometry;
            for (i, h) in manifest.hashes.iter().enumerate() {
                let i = i as ChunkIndex;
                c.set(i, g.chunk_len(i), *h);
            }
        }
        Ok(())
    }

    fn read(&mut self, content: ContentId, chunk: ChunkIndex) -> Result<Payload, StoreError> {
        match self.contents.get(&content) {
            Some(c) if c.have.contains(chunk) => {
                let (len, tag) = c.chunks[chunk as usize];
                Ok(Payload::Virtual { len, tag })
            }
            _ => Err(StoreError::new(format!("chunk {chunk} of content {} not held", content.0))),
        }
    }

    fn write(&mut self, content: ContentId, chunk: ChunkIndex, payload: &Payload) -> Result<(), StoreError> {
        self.put(content, chunk, payload.len(), payload.digest());
        Ok(())
    }

    fn discard(&mut self, content: ContentId, chunk: ChunkIndex) -> Result<(), StoreError> {
        if let Some(c) = self.contents.get_mut(&content) {
            c.have.remove(chunk);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memstore_splits_preloaded_file_on_open() {
        let data: Vec<u8> = (0..25u8).collect();
        let g = Geometry::new(25, 10);
        let hashes = (0..3)
            .map(|i| Digest::of(&data[g.chunk_bytes(i).start as usize..g.chunk_bytes(i).end as usize]))
            .collect();
        let m = Manifest { path: "f".into(), geometry: g, hashes, live: None };
        let mut s = MemStore::new().with_file("f", data.clone());
        s.open(ContentId(4), &m).unwrap();
        assert_eq!(s.read(ContentId(4), 2).unwrap(), Payload::Real(Bytes::from(data[20..].to_vec())));
        assert!(s.read(ContentId(4), 3).is_err());
        s.discard(ContentId(4), 2).unwrap();
        assert!(s.read(ContentId(4), 2).is_err());
    }

    #[test]
    fn virtual_origin_reads_manifest_tags() {
        let g = Geometry::new(25, 10);
        let hashes = vec![Digest::of(b"a"), Digest::of(b"b"), Digest::of(b"c")];
        let m = Manifest { path: "f".into(), geometry: g, hashes: hashes.clone(), live: None };
        let mut s = VirtualStore::origin();
        s.open(ContentId(1), &m).unwrap();
        assert_eq!(s.read(ContentId(1), 2).unwrap(), Payload::Virtual { len: 5, tag: hashes[2] });
        let mut p = VirtualStore::new();
        p.open(ContentId(1), &m).unwrap();
        assert!(p.read(ContentId(1), 0).is_err());
        p.write(ContentId(1), 0, &Payload::Virtual { len: 10, tag: hashes[0] }).unwrap();
        assert_eq!(p.held(ContentId(1)), 1);
    }
}
