//! Seed authentication: proofs that bind a manifest (or a live append) to the seed key.
//!
//! The key never crosses the wire. The tracker sends each connection a fresh nonce in
//! `Welcome`; a seed proves it knows the key by hashing it with that nonce and the exact
//! manifest root (or appended hashes), so a proof cannot be replayed on another connection
//! or moved to another manifest.

use crate::ids::{ChunkIndex, ContentId};
use crate::manifest::{Digest, Manifest};

/// `SHA-256("pdtp-publish-v2" ‖ len(key) ‖ key ‖ nonce ‖ manifest root ‖ uplink)`, the
/// uplink the seed states in bits/s (`Publish::uplink_bps`; 0 for none) as 8 big-endian bytes.
pub fn publish_proof(key: &[u8], nonce: &[u8; 16], manifest: &Manifest, uplink_bps: Option<u64>) -> Digest {
    let root = manifest.root();
    let uplink = uplink_bps.unwrap_or(0).to_be_bytes();
    Digest::of_parts(&[b"pdtp-publish-v2", &(key.len() as u64).to_be_bytes(), key, nonce, &root.0, &uplink])
}

/// `SHA-256("pdtp-append-v1" ‖ len(key) ‖ key ‖ nonce ‖ content ‖ first ‖ new_size ‖ window_start ‖ hashes)`.
pub fn append_proof(
    key: &[u8],
    nonce: &[u8; 16],
    content: ContentId,
    first: ChunkIndex,
    new_size: u64,
    window_start: ChunkIndex,
    hashes: &[Digest],
) -> Digest {
    let mut flat = Vec::with_capacity(hashes.len() * 32);
    for h in hashes {
        flat.extend_from_slice(&h.0);
    }
    Digest::of_parts(&[
        b"pdtp-append-v1",
        &(key.len() as u64).to_be_bytes(),
        key,
        nonce,
        &content.0.to_be_bytes(),
        &first.to_be_bytes(),
        &new_size.to_be_bytes(),
        &window_start.to_be_bytes(),
        &flat,
    ])
}

/// Compares two digests without an early exit, so timing does not reveal a prefix match.
pub fn proofs_equal(a: &Digest, b: &Digest) -> bool {
    a.0.iter().zip(b.0.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunks::Geometry;

    #[test]
    fn proof_depends_on_key_nonce_and_manifest() {
        let m = Manifest {
            path: "x".into(),
            geometry: Geometry::new(1, 1),
            hashes: vec![Digest::of(b"a")],
            live: None,
        };
        let p = publish_proof(b"key", &[1; 16], &m, None);
        assert!(proofs_equal(&p, &publish_proof(b"key", &[1; 16], &m, None)));
        assert!(!proofs_equal(&p, &publish_proof(b"kez", &[1; 16], &m, None)));
        assert!(!proofs_equal(&p, &publish_proof(b"key", &[2; 16], &m, None)));
        let mut m2 = m.clone();
        m2.hashes[0] = Digest::of(b"b");
        assert!(!proofs_equal(&p, &publish_proof(b"key", &[1; 16], &m2, None)));
        // The stated uplink is bound too: a proof cannot be moved to another claim.
        let stated = publish_proof(b"key", &[1; 16], &m, Some(16_000_000));
        assert!(!proofs_equal(&p, &stated));
        assert!(!proofs_equal(&stated, &publish_proof(b"key", &[1; 16], &m, Some(160_000_000))));
    }
}
