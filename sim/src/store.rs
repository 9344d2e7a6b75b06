//! Virtual chunk storage for the simulated machines: which chunks a node holds, no bytes.
//!
//! A simulated content's chunk `i` "contains" the digest [`virtual_digest`]`(path, i)`; the
//! seed publishes a [`virtual_manifest`] listing those digests, so a taker verifies a
//! received [`Payload::Virtual`] against the manifest exactly as it would a real SHA-256
//! (the network model corrupts a payload by changing its tag). A store is a bitset per
//! content: 1 000 peers × 400 chunks cost about 50 kB, not 100 GB.

use std::collections::BTreeMap;

use pdtp_core::bitset::BitSet;
use pdtp_core::{
    ChunkIndex, ChunkStore, ContentId, Digest, Geometry, LiveInfo, Manifest, Payload, StoreError,
};

/// The digest chunk `chunk` of the simulated content at `path` stands for.
pub fn virtual_digest(path: &str, chunk: ChunkIndex) -> Digest {
    Digest::of_parts(&[b"pdtp-sim-virtual-chunk", path.as_bytes(), &chunk.to_be_bytes()])
}

/// A manifest for a simulated content: geometry and one virtual digest per chunk.
pub fn virtual_manifest(path: &str, geometry: Geometry, live: Option<LiveInfo>) -> Manifest {
    let hashes = (0..geometry.num_chunks()).map(|i| virtual_digest(path, i)).collect();
    Manifest { path: path.to_string(), geometry, hashes, live }
}

/// A node's virtual storage.
#[derive(Clone, Debug, Default)]
pub struct VirtualStore {
    contents: BTreeMap<ContentId, Held>,
    holds_everything: bool,
}

#[derive(Clone, Debug)]
struct Held {
    path: String,
    geometry: Geometry,
    chunks: BitSet,
}

impl VirtualStore {
    /// An empty store (a viewer's).
    pub fn new() -> Self {
        Self::default()
    }

    /// A store that holds every chunk of every content it opens (a seed's file root).
    pub fn origin() -> Self {
        Self { contents: BTreeMap::new(), holds_everything: true }
    }

    /// Whether chunk `chunk` of `content` is held.
    pub fn holds(&self, content: ContentId, chunk: ChunkIndex) -> bool {
        self.contents.get(&content).is_some_and(|h| self.holds_everything || h.chunks.contains(chunk))
    }

    /// Chunks of `content` held.
    pub fn held_count(&self, content: ContentId) -> u32 {
        self.contents
            .get(&content)
            .map_or(0, |h| if self.holds_everything { h.geometry.num_chunks() } else { h.chunks.count() })
    }
}

impl ChunkStore for VirtualStore {
    fn open(&mut self, content: ContentId, manifest: &Manifest) -> Result<(), StoreError> {
        let n = manifest.num_chunks();
        let held = self.contents.entry(content).or_insert_with(|| Held {
            path: manifest.path.clone(),
            geometry: manifest.geometry,
            chunks: BitSet::new(n),
        });
        // A live manifest grows: keep what is held, extend the geometry.
        held.geometry = manifest.geometry;
        if held.chunks.capacity() < n {
            held.chunks.grow(n);
        }
        Ok(())
    }

    fn read(&mut self, content: ContentId, chunk: ChunkIndex) -> Result<Payload, StoreError> {
        let h = self
            .contents
            .get(&content)
            .ok_or_else(|| StoreError::new(format!("content {content:?} not open")))?;
        if chunk >= h.geometry.num_chunks() || !(self.holds_everything || h.chunks.contains(chunk)) {
            return Err(StoreError::new(format!("chunk {chunk} of {} not held", h.path)));
        }
        Ok(Payload::Virtual { len: h.geometry.chunk_len(chunk), tag: virtual_digest(&h.path, chunk) })
    }

    fn write(&mut self, content: ContentId, chunk: ChunkIndex, payload: &Payload) -> Result<(), StoreError> {
        let h = self
            .contents
            .get_mut(&content)
            .ok_or_else(|| StoreError::new(format!("content {content:?} not open")))?;
        if payload.len() != h.geometry.chunk_len(chunk) {
            return Err(StoreError::new(format!(
                "chunk {chunk} of {}: wrong length {}",
                h.path,
                payload.len()
            )));
        }
        if h.chunks.capacity() <= chunk {
            h.chunks.grow(chunk + 1);
        }
        h.chunks.insert(chunk);
        Ok(())
    }

    fn discard(&mut self, content: ContentId, chunk: ChunkIndex) -> Result<(), StoreError> {
        if let Some(h) = self.contents.get_mut(&content)
            && chunk < h.chunks.capacity()
        {
            h.chunks.remove(chunk);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_viewer_serves_only_what_it_wrote_and_it_verifies() {
        let g = Geometry::new(1_050, 100);
        let m = virtual_manifest("show.mp4", g, None);
        m.check().unwrap();
        let c = ContentId(3);
        let mut seed = VirtualStore::origin();
        seed.open(c, &m).unwrap();
        let mut viewer = VirtualStore::new();
        viewer.open(c, &m).unwrap();
        assert!(viewer.read(c, 10).is_err());
        let p = seed.read(c, 10).unwrap();
        assert!(p.verify(g.chunk_len(10), m.hash(10).unwrap()));
        assert_eq!(p.len(), 50); // the short last chunk
        viewer.write(c, 10, &p).unwrap();
        assert_eq!(viewer.read(c, 10).unwrap(), p);
        assert_eq!(viewer.held_count(c), 1);
        assert_eq!(seed.held_count(c), 11);
        viewer.discard(c, 10).unwrap();
        assert!(!viewer.holds(c, 10));
        assert!(viewer.write(c, 3, &Payload::Virtual { len: 7, tag: Digest::ZERO }).is_err());
    }

    #[test]
    fn digests_differ_by_chunk_and_path() {
        assert_ne!(virtual_digest("a", 0), virtual_digest("a", 1));
        assert_ne!(virtual_digest("a", 0), virtual_digest("b", 0));
    }
}
