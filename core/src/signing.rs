//! Seed signatures: a seed signs what its content is, so a viewer that knows the seed's
//! public key can check a manifest without trusting the tracker or the path to it.
//!
//! What is signed is a [`Chain`]: a running hash over the content's path, chunk size, kind
//! (and a live stream's bitrate), then every chunk hash in order, closed with the content's
//! size and whether a live stream has ended. A seed signs it at publish and again after each
//! live append (and at the end mark); a viewer extends its own chain with each append, so
//! checking an append costs one hash per new chunk and one signature check, however long
//! the stream has run. Signing keys are ed25519 (`ed25519-dalek`); signing is deterministic,
//! so this module needs no randomness: the driver makes the key (docs/security.md).

use core::fmt;
use core::str::FromStr;

use ed25519_dalek::{Signature, Signer as _};
use serde::{Deserialize, Serialize};

use crate::manifest::{Digest, Manifest};

/// A seed's public key (ed25519, 32 bytes), written as 64 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SeedKey(pub [u8; 32]);

/// A seed's signature on a [`Chain`] statement, with the key that made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedSignature {
    /// Who signed.
    pub key: SeedKey,
    /// The ed25519 signature, in two halves (serde derives arrays up to 32 bytes).
    pub sig: ([u8; 32], [u8; 32]),
}

/// A seed's secret signing key. Its `Debug` does not print the secret.
#[derive(Clone)]
pub struct SigningKey(ed25519_dalek::SigningKey);

/// The running hash a seed signs (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chain {
    head: Digest,
}

impl SigningKey {
    /// The key with these 32 secret bytes (the driver draws them from the OS once and keeps
    /// them in a file).
    pub fn from_secret(secret: [u8; 32]) -> Self {
        Self(ed25519_dalek::SigningKey::from_bytes(&secret))
    }

    /// The public half, which viewers pin.
    pub fn public(&self) -> SeedKey {
        SeedKey(self.0.verifying_key().to_bytes())
    }

    /// Signs `statement` (a [`Chain::statement`]).
    pub fn sign(&self, statement: &Digest) -> SeedSignature {
        let bytes = self.0.sign(&signed_message(statement)).to_bytes();
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        a.copy_from_slice(&bytes[..32]);
        b.copy_from_slice(&bytes[32..]);
        SeedSignature { key: self.public(), sig: (a, b) }
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey(public {})", self.public())
    }
}

impl SeedSignature {
    /// Whether this is a valid signature by `self.key` on `statement` (strict ed25519: no
    /// small-order keys, no malleable signatures).
    pub fn verifies(&self, statement: &Digest) -> bool {
        let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(&self.key.0) else { return false };
        let mut bytes = [0u8; 64];
        bytes[..32].copy_from_slice(&self.sig.0);
        bytes[32..].copy_from_slice(&self.sig.1);
        key.verify_strict(&signed_message(statement), &Signature::from_bytes(&bytes)).is_ok()
    }
}

/// The bytes actually signed: a domain tag, so a signature here means nothing elsewhere.
fn signed_message(statement: &Digest) -> [u8; 48] {
    let mut m = [0u8; 48];
    m[..16].copy_from_slice(b"pdtp-seed-sig-v1");
    m[16..].copy_from_slice(&statement.0);
    m
}

impl Chain {
    /// The chain of a content with no chunks yet: binds its path, chunk size and kind (with a
    /// live stream's bitrate, which sets the viewers' deadlines).
    pub fn start(path: &str, chunk_size: u32, live_bitrate_bps: Option<u64>) -> Self {
        let mut h = blake3::Hasher::new();
        h.update(b"pdtp-chain-v1");
        h.update(&(path.len() as u64).to_be_bytes());
        h.update(path.as_bytes());
        h.update(&chunk_size.to_be_bytes());
        match live_bitrate_bps {
            None => {
                h.update(&[0]);
            }
            Some(bps) => {
                h.update(&[1]);
                h.update(&bps.to_be_bytes());
            }
        }
        Self { head: Digest(h.finalize().into()) }
    }

    /// The chain over every chunk hash of `manifest` (its path without a leading `/`).
    pub fn of(manifest: &Manifest) -> Self {
        let path = manifest.path.trim_start_matches('/');
        let bitrate = manifest.live.map(|l| l.bitrate_bps);
        let mut chain = Self::start(path, manifest.geometry.chunk_size, bitrate);
        for h in &manifest.hashes {
            chain.push(h);
        }
        chain
    }

    /// Extends the chain with the next chunk's hash.
    pub fn push(&mut self, chunk_hash: &Digest) {
        self.head = Digest::of_parts(&[&self.head.0, &chunk_hash.0]);
    }

    /// What the seed signs for the chunks so far: the chain closed with the content's
    /// `size` (which fixes the last chunk's length) and whether a live stream has `ended`.
    pub fn statement(&self, size: u64, ended: bool) -> Digest {
        Digest::of_parts(&[b"pdtp-statement-v1", &self.head.0, &size.to_be_bytes(), &[u8::from(ended)]])
    }
}

impl fmt::Display for SeedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for SeedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SeedKey({self})")
    }
}

/// Why a seed key does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a seed key is 64 hex digits (as the seed prints at start), not '{0}'")]
pub struct SeedKeyError(pub String);

impl FromStr for SeedKey {
    type Err = SeedKeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || SeedKeyError(s.chars().take(80).collect());
        if s.len() != 64 || !s.is_ascii() {
            return Err(bad());
        }
        let mut key = [0u8; 32];
        for (i, b) in key.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Self(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunks::Geometry;
    use crate::manifest::LiveInfo;

    fn manifest() -> Manifest {
        Manifest {
            path: "a/b.mp4".into(),
            geometry: Geometry::new(2500, 1000),
            hashes: vec![Digest::of(b"0"), Digest::of(b"1"), Digest::of(b"2")],
            live: None,
        }
    }

    fn statement(m: &Manifest) -> Digest {
        Chain::of(m).statement(m.geometry.size, false)
    }

    #[test]
    fn a_signature_verifies_only_for_the_statement_and_key_it_was_made_for() {
        let key = SigningKey::from_secret([7; 32]);
        let m = manifest();
        let sig = key.sign(&statement(&m));
        assert!(sig.verifies(&statement(&m)));
        let mut other = m.clone();
        other.hashes[1] = Digest::of(b"x");
        assert!(!sig.verifies(&statement(&other)), "a changed chunk hash");
        let mut other = m.clone();
        other.geometry.size = 2400;
        assert!(!sig.verifies(&statement(&other)), "a changed size");
        let mut other = m.clone();
        other.path = "a/c.mp4".into();
        assert!(!sig.verifies(&statement(&other)), "a changed path");
        let mut other = m.clone();
        other.live = Some(LiveInfo { bitrate_bps: 1, first_chunk: 0 });
        assert!(!sig.verifies(&statement(&other)), "on demand made live");
        assert!(!sig.verifies(&Chain::of(&m).statement(2500, true)), "an end mark");
        let forged = SeedSignature { key: SigningKey::from_secret([8; 32]).public(), ..sig };
        assert!(!forged.verifies(&statement(&m)), "another key's claim");
        let mut flipped = sig;
        flipped.sig.1[5] ^= 1;
        assert!(!flipped.verifies(&statement(&m)), "a flipped bit");
    }

    #[test]
    fn a_chain_extended_chunk_by_chunk_equals_the_chain_of_the_whole_manifest() {
        let m = manifest();
        let mut chain = Chain::start("a/b.mp4", 1000, None);
        for h in &m.hashes {
            chain.push(h);
        }
        assert_eq!(chain, Chain::of(&m));
        let mut slash = m.clone();
        slash.path = "/a/b.mp4".into();
        assert_eq!(Chain::of(&slash), chain, "the leading slash is not part of the path");
    }

    #[test]
    fn seed_keys_print_and_parse_as_hex() {
        let key = SigningKey::from_secret([1; 32]).public();
        let text = key.to_string();
        assert_eq!(text.len(), 64);
        assert_eq!(text.parse::<SeedKey>(), Ok(key));
        assert!("abc".parse::<SeedKey>().is_err());
        assert!(text.replace('a', "g").parse::<SeedKey>().is_err() || !text.contains('a'));
        assert!(format!("{text}00").parse::<SeedKey>().is_err());
    }
}
