//! `get --report FILE`: when and how much one download verified, for `pdtp-node lab`.
//!
//! The lab knows when it started each viewer but not when the viewer was done; the viewer
//! writes that here the moment its download is complete (before it stays on to seed), so
//! the lab's completion time is the viewer's own clock reading, not the lab's polling.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// The file `get --report` writes (JSON, one object).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GetReport {
    /// When `get` started, unix seconds.
    pub start_unix_s: f64,
    /// When every byte was verified and written (and a stream output drained), unix seconds.
    pub done_unix_s: f64,
    /// Bytes of the content this viewer fetched from other nodes and verified (each chunk
    /// counted once).
    pub verified_bytes: u64,
    /// Bytes it did not fetch because they were already good in `FILE.part`, left by an
    /// interrupted earlier run (chunks that hashed right against the manifest); 0 for a
    /// fresh download. `verified_bytes + resumed_bytes` is the file's size.
    #[serde(default)]
    pub resumed_bytes: u64,
    /// A live stream: each in-order delivery as (byte offset, unix seconds), the moment a
    /// player could play those bytes (skipped chunks never appear). Empty for a file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deliveries: Vec<(u64, f64)>,
}

/// Seconds since the unix epoch: the clock `get`'s delivery times are read on too.
pub use pdtp_net_mio::clock::unix_seconds as unix_now;

impl GetReport {
    /// Writes the report to `path` through a temporary file renamed into place, so a reader
    /// polling for it never sees half an object.
    pub fn write(&self, path: &Path) -> Result<(), String> {
        let text = serde_json::to_string(self).map_err(|e| format!("--report: {e}"))?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| format!("--report {}: {e}", path.display()))
    }

    /// Reads a report `write` left.
    pub fn read(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}
