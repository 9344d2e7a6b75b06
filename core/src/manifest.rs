//! Manifests: what a content is, chunk by chunk, and how a taker verifies it locally.

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::chunks::Geometry;
use crate::ids::ChunkIndex;

/// A BLAKE3 digest (32 bytes): the protocol's one hash.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Digest(pub [u8; 32]);

/// Live-stream parameters carried in a manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveInfo {
    /// Nominal stream bitrate in bits per second (for playback deadlines).
    pub bitrate_bps: u64,
    /// The oldest chunk still offered; earlier chunks have left the tracker's window.
    pub first_chunk: ChunkIndex,
}

/// Everything a taker needs to verify a content: geometry, per-chunk hashes and a root.
///
/// For on-demand content the manifest is complete when published. For live content it grows
/// chunk by chunk: `hashes` covers `0..num_chunks()` of what has been published so far
/// (entries before `live.first_chunk` are kept as zero digests once they fall out of the window
/// only by the peer; the tracker keeps them all, 32 bytes a chunk).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Path under the seed's file root (the `pdtp://host/path` part), without a leading `/`.
    pub path: String,
    /// Total size and chunk size.
    pub geometry: Geometry,
    /// SHA-256 of each chunk, in order.
    pub hashes: Vec<Digest>,
    /// `Some` for live streams.
    pub live: Option<LiveInfo>,
}

impl Digest {
    /// The all-zero digest (a placeholder, never the hash of real data in practice).
    pub const ZERO: Self = Self([0; 32]);

    /// BLAKE3 of `data`.
    pub fn of(data: &[u8]) -> Self {
        Self(*blake3::hash(data).as_bytes())
    }

    /// BLAKE3 over several parts, fed in order.
    pub fn of_parts(parts: &[&[u8]]) -> Self {
        let mut h = blake3::Hasher::new();
        for p in parts {
            h.update(p);
        }
        Self(*h.finalize().as_bytes())
    }

    /// The first 8 bytes as an integer (for logs and content tags).
    pub fn prefix_u64(&self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[..8]);
        u64::from_be_bytes(b)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({:016x}…)", self.prefix_u64())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl Manifest {
    /// Number of chunks currently described.
    pub fn num_chunks(&self) -> u32 {
        self.geometry.num_chunks()
    }

    /// The expected digest of chunk `index`, if described.
    pub fn hash(&self, index: ChunkIndex) -> Option<&Digest> {
        self.hashes.get(index as usize)
    }

    /// Whether this is a live stream.
    pub fn is_live(&self) -> bool {
        self.live.is_some()
    }

    /// The root hash binding path, geometry, live flag and every chunk hash.
    pub fn root(&self) -> Digest {
        let mut h = blake3::Hasher::new();
        h.update(b"pdtp-manifest-v1");
        h.update(&(self.path.len() as u64).to_be_bytes());
        h.update(self.path.as_bytes());
        h.update(&self.geometry.size.to_be_bytes());
        h.update(&self.geometry.chunk_size.to_be_bytes());
        h.update(&[u8::from(self.live.is_some())]);
        for d in &self.hashes {
            h.update(&d.0);
        }
        Digest(h.finalize().into())
    }

    /// Checks internal consistency: non-zero chunk size and one hash per chunk.
    pub fn check(&self) -> Result<(), ManifestError> {
        if self.geometry.chunk_size == 0 {
            return Err(ManifestError::ZeroChunkSize);
        }
        let n = self.geometry.num_chunks() as usize;
        if self.hashes.len() != n {
            return Err(ManifestError::HashCount { expected: n, found: self.hashes.len() });
        }
        Ok(())
    }
}

/// Why a manifest is unusable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// `chunk_size` was zero.
    #[error("manifest chunk_size is zero")]
    ZeroChunkSize,
    /// The number of hashes does not match the number of chunks.
    #[error("manifest has {found} chunk hashes, its geometry needs {expected}")]
    HashCount {
        /// Chunks implied by the geometry.
        expected: usize,
        /// Hashes carried.
        found: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        let data = vec![7u8; 12_000];
        let g = Geometry::new(data.len() as u64, 5_000);
        let hashes = (0..g.num_chunks())
            .map(|i| {
                let r = g.chunk_bytes(i);
                Digest::of(&data[r.start as usize..r.end as usize])
            })
            .collect();
        Manifest { path: "a.bin".into(), geometry: g, hashes, live: None }
    }

    #[test]
    fn root_binds_every_field() {
        let m = manifest();
        m.check().unwrap();
        let mut other = m.clone();
        other.hashes[1].0[0] ^= 1;
        assert_ne!(m.root(), other.root());
        let mut other = m.clone();
        other.path = "b.bin".into();
        assert_ne!(m.root(), other.root());
    }

    #[test]
    fn check_rejects_wrong_hash_count() {
        let mut m = manifest();
        m.hashes.pop();
        assert_eq!(m.check(), Err(ManifestError::HashCount { expected: 3, found: 2 }));
    }
}
