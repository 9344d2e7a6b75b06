//! Virtual content for the simulated machines: what each chunk "contains".
//!
//! A simulated content's chunk `i` "contains" the digest [`virtual_digest`]`(path, i)`; the
//! seed publishes a [`virtual_manifest`] listing those digests, so a taker verifies a
//! received [`Payload::Virtual`] against the manifest exactly as it would a real SHA-256
//! (the network model corrupts a payload by changing its tag). The machines keep them in
//! `pdtp_core::memstore::VirtualStore`: presence bits and digests, no bytes, so 1 000 peers
//! × 400 chunks cost kilobytes, not 100 GB.

use pdtp_core::{ChunkIndex, Digest, Geometry, LiveInfo, Manifest};

/// The digest chunk `chunk` of the simulated content at `path` stands for.
pub fn virtual_digest(path: &str, chunk: ChunkIndex) -> Digest {
    Digest::of_parts(&[b"pdtp-sim-virtual-chunk", path.as_bytes(), &chunk.to_be_bytes()])
}

/// A manifest for a simulated content: geometry and one virtual digest per chunk.
pub fn virtual_manifest(path: &str, geometry: Geometry, live: Option<LiveInfo>) -> Manifest {
    let hashes = (0..geometry.num_chunks()).map(|i| virtual_digest(path, i)).collect();
    Manifest { path: path.to_string(), geometry, hashes, live }
}

#[cfg(test)]
mod tests {
    use pdtp_core::memstore::VirtualStore;
    use pdtp_core::{ChunkStore, ContentId, Payload};

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
        let last = seed.read(c, 10).unwrap();
        assert!(last.verify(g.chunk_len(10), &m.hashes[10]), "the short last chunk verifies");
        assert!(viewer.read(c, 10).is_err(), "nothing written yet");
        viewer.write(c, 10, &last).unwrap();
        assert_eq!(viewer.read(c, 10).unwrap(), last);
        let other = Payload::Virtual { len: 50, tag: virtual_digest("other.mp4", 10) };
        assert!(!other.verify(g.chunk_len(10), &m.hashes[10]), "another content's chunk does not");
    }
}
