//! Workspace integration tests live in `tests/tests/`; this library holds what they share.
//!
//! These tests run the real runtime on real sockets, so wall time is allowed here.
#![allow(clippy::disallowed_methods)]

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

/// Runs `rt` in short turns until `done` (which may poll sockets the loop does not know
/// about) returns true or `limit` passes; returns whether `done` held.
pub fn run_polling(
    rt: &mut pdtp_net_mio::driver::Runtime,
    limit: std::time::Duration,
    mut done: impl FnMut() -> bool,
) -> bool {
    let end = std::time::Instant::now() + limit;
    while std::time::Instant::now() < end {
        if done() {
            return true;
        }
        rt.turn(Some(std::time::Duration::from_millis(5))).unwrap_or_else(|e| panic!("event loop: {e}"));
    }
    done()
}

/// Runs the swarm's loop until `child` exits and returns its status; `None` if it was still
/// running after `limit` (it is then killed and reaped).
pub fn wait_polling(
    rt: &mut pdtp_net_mio::driver::Runtime,
    child: &mut std::process::Child,
    limit: std::time::Duration,
) -> Option<std::process::ExitStatus> {
    let mut status = None;
    let exited = run_polling(rt, limit, || {
        status = child.try_wait().unwrap_or(None);
        status.is_some()
    });
    if !exited {
        let _ = child.kill();
        let _ = child.wait();
    }
    status
}

/// Waits for `child` to exit, without a loop to run, for at most `limit`; panics naming
/// `what` if it does not (the child is killed when the caller drops it).
pub fn wait_child(
    child: &mut std::process::Child,
    limit: std::time::Duration,
    what: &str,
) -> std::process::ExitStatus {
    let end = std::time::Instant::now() + limit;
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return s;
        }
        assert!(std::time::Instant::now() < end, "{what}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// `bin` (a `pdtp-node`) as a command with a configuration directory of its own
/// (`XDG_CONFIG_HOME`): a `get` remembers the seed key of each URL it fetches there (trust
/// on first use), so tests neither write the runner's `~/.config/pdtp/known_seeds` nor
/// see each other's keys on a reused port. One fresh directory per command, under
/// `$TMPDIR/pdtp-tests-config-<pid>/`.
pub fn node_command(bin: &str) -> std::process::Command {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir =
        std::env::temp_dir().join(format!("pdtp-tests-config-{}", std::process::id())).join(n.to_string());
    let mut c = std::process::Command::new(bin);
    c.env("XDG_CONFIG_HOME", dir);
    c
}
