//! Someone between `get` and the tracker, on real sockets. The link is encrypted and
//! authenticated (docs/security.md), so a proxy can pass it on or break it, not change it:
//! through a proxy passing bytes unchanged the download completes exactly; a byte changed
//! in either the handshake or a record makes `get` fail with one clear line and write
//! nothing. A tracker with another key than the pinned one (a proxy that ends the link
//! itself) is refused, and so is one whose key differs from the one remembered on first use.
// The proxy is the test's own blocking relay on threads, outside the machines under test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use pdtp_core::tracker::TrackerConfig;
use pdtp_net_mio::driver::{RateLimits, Swarm, seed_key};
use pdtp_net_mio::secure::TrackerKey;
use pdtp_tests::{KEY, write_random_file};

const BIN: &str = env!("CARGO_BIN_EXE_pdtp-node");
/// Generous bound, only so a broken build cannot hang; nothing asserts on time.
const LIMIT: Duration = Duration::from_secs(60);

/// Listens on a loopback port and relays each connection to `tracker`, flipping the lowest
/// bit of the byte at offset `flip` of what the tracker sends (`None`: nothing changed).
/// Returns the port.
fn proxy(tracker: SocketAddr, flip: Option<usize>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let Ok(upstream) = TcpStream::connect(tracker) else { return };
            let (mut c_in, mut u_out) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c_in, &mut u_out);
                let _ = u_out.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || relay_down(upstream, client, flip));
        }
    });
    port
}

fn relay_down(mut from: TcpStream, mut to: TcpStream, flip: Option<usize>) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut offset = 0;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if let Some(at) = flip.filter(|at| (offset..offset + n).contains(at)) {
            buf[at - offset] ^= 1;
        }
        offset += n;
        if to.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

/// What one `get` did: exit code, stderr, the output's bytes if it wrote any.
struct Got {
    code: i32,
    err: String,
    written: Option<Vec<u8>>,
}

/// Runs `get` of `show.ts` at `url_of(tracker port, tracker key)`, in a swarm of its own,
/// with `extra` arguments; also returns the source's bytes.
fn get_through(
    flip: Option<usize>,
    url_of: impl Fn(u16, &str) -> String,
    extra: &[&str],
    dir: &Path,
) -> (Got, Vec<u8>) {
    let root = dir.join("root");
    let source = write_random_file(&root, "show.ts", 300_000 + 7, 31);
    let mut swarm = Swarm::new(TrackerConfig::with_key(KEY), 16 * 1024).unwrap();
    swarm.add_seed(&root, KEY, RateLimits::default()).unwrap();
    let port = proxy(swarm.tracker_addr, flip);
    let url = url_of(port, &swarm.tracker_key.to_string());
    let out = dir.join("out.ts");
    let mut child = pdtp_tests::node_command(BIN)
        .args(["get", &url, "-o", out.to_str().unwrap(), "--listen", "0", "--seed-for", "0s"])
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = pdtp_tests::wait_polling(&mut swarm.rt, &mut child, LIMIT);
    assert!(status.is_some(), "get did not exit");
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let code = status.unwrap().code().unwrap_or(-1);
    let written = std::fs::read(&out).ok();
    assert!(!dir.join("out.ts.part").exists() || code == 0, "a refused get leaves no partial file");
    (Got { code, err, written }, source)
}

/// The URL pinning both the harness seed's key and the tracker's.
fn pinned(port: u16, tracker_key: &str) -> String {
    format!("pdtp://127.0.0.1:{port}/show.ts#seed={}&key={tracker_key}", seed_key())
}

#[test]
fn a_pinned_get_through_an_honest_proxy_gets_the_exact_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (got, source) = get_through(None, pinned, &[], dir.path());
    assert_eq!(got.code, 0, "{}", got.err);
    assert!(got.written.as_deref() == Some(&source[..]), "the output differs from the source");
}

#[test]
fn a_byte_changed_on_the_way_fails_the_get_with_one_line() {
    // Offset 40 is inside the tracker's handshake message (96 bytes after its length); 120
    // inside the first record after it (the tracker's Welcome).
    for (flip, why) in [(40, "handshake failed"), (120, "did not verify")] {
        let dir = tempfile::tempdir().unwrap();
        let (got, _) = get_through(Some(flip), pinned, &[], dir.path());
        assert_ne!(got.code, 0, "a changed byte went unnoticed: {}", got.err);
        assert!(got.err.contains(why) && got.err.contains("the tracker at 127.0.0.1"), "stderr: {}", got.err);
        assert_eq!(got.err.trim().lines().count(), 1, "one line: {}", got.err);
        assert!(got.written.is_none(), "nothing is written");
    }
}

#[test]
fn a_tracker_proving_another_key_than_the_pinned_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let other = TrackerKey::from_secret([9; 32]).public();
    let url = |port: u16, _: &str| format!("pdtp://127.0.0.1:{port}/show.ts#key={other}");
    let (got, _) = get_through(None, url, &[], dir.path());
    assert_ne!(got.code, 0, "{}", got.err);
    assert!(got.err.contains(&format!("not the pinned {other}")), "stderr: {}", got.err);
    assert_eq!(got.err.trim().lines().count(), 1, "one line: {}", got.err);
    assert!(got.written.is_none());
}

#[test]
fn a_trackers_key_is_remembered_on_first_use_and_required_after() {
    // First use: the key is learned, remembered by HOST:PORT, and the download completes.
    let dir = tempfile::tempdir().unwrap();
    let known = dir.path().join("known_trackers");
    let unpinned = |port: u16, _: &str| format!("pdtp://127.0.0.1:{port}/show.ts");
    let args = ["--known-trackers", known.to_str().unwrap()];
    let (got, source) = get_through(None, unpinned, &args, dir.path());
    assert_eq!(got.code, 0, "{}", got.err);
    assert!(got.written.as_deref() == Some(&source[..]));
    assert!(got.err.contains("first use of the tracker at 127.0.0.1:"), "stderr: {}", got.err);
    let text = std::fs::read_to_string(&known).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    // Another tracker (another key) at an address remembered with a key: refused, saying
    // where the remembered key is.
    let dir = tempfile::tempdir().unwrap();
    let known = dir.path().join("known_trackers");
    let other = TrackerKey::from_secret([7; 32]).public();
    let remember_other = |port: u16, _: &str| {
        std::fs::write(&known, format!("127.0.0.1:{port} {other}\n")).unwrap();
        format!("pdtp://127.0.0.1:{port}/show.ts")
    };
    let args = ["--known-trackers", known.to_str().unwrap()];
    let (got, _) = get_through(None, remember_other, &args, dir.path());
    assert_ne!(got.code, 0, "{}", got.err);
    assert!(got.err.contains(&format!("not the pinned {other}")), "stderr: {}", got.err);
    assert!(got.err.contains("known_trackers") && got.err.contains("#key=KEY"), "stderr: {}", got.err);
    assert!(got.written.is_none());
}
