//! Workspace integration tests live in `tests/tests/`; this library holds what they share.

use std::path::Path;

/// `len` pseudo-random bytes from `seed` (xorshift64*; reproducible, not cryptographic).
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Writes `len` random bytes to `dir/name` and returns them.
pub fn write_random_file(dir: &Path, name: &str, len: usize, seed: u64) -> Vec<u8> {
    let data = random_bytes(len, seed);
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("creating {}: {e}", parent.display()));
    }
    std::fs::write(&path, &data).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    data
}

/// The seed key every test tracker uses.
pub const KEY: &str = "integration-test-seed-key";
