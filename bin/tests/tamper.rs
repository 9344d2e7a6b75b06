//! A tampering proxy between `get` and the tracker, on real sockets: it rewrites the manifest
//! the tracker sends. A `get` whose URL pins the seed's key (`#seed=KEY`) refuses the forged
//! manifest with one clear line and writes nothing; through the same proxy passing bytes
//! unchanged, the pinned download completes exactly (so the proxy itself is sound).
// The proxy is the test's own blocking relay on threads, outside the machines under test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Stdio;
use std::time::Duration;

use bytes::BytesMut;
use pdtp_core::tracker::TrackerConfig;
use pdtp_core::wire::codec::{self, Decoder, Limits as CodecLimits};
use pdtp_core::{Digest, Message};
use pdtp_net_mio::driver::{RateLimits, Swarm, seed_key};
use pdtp_tests::{KEY, write_random_file};

const BIN: &str = env!("CARGO_BIN_EXE_pdtp-node");
/// Generous bound, only so a broken build cannot hang; nothing asserts on time.
const LIMIT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy)]
enum Tamper {
    /// Decode and re-encode every message unchanged.
    Nothing,
    /// Change one chunk hash of the manifest, keeping the seed's signature.
    SwapHash,
    /// Change one chunk hash and drop the signature (an attacker's unsigned manifest).
    StripSignature,
}

/// Listens on a loopback port and relays each connection to `tracker`, rewriting what the
/// tracker sends according to `tamper`. Returns the port.
fn proxy(tracker: SocketAddr, tamper: Tamper) -> u16 {
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
            std::thread::spawn(move || relay_down(upstream, client, tamper));
        }
    });
    port
}

fn relay_down(mut from: TcpStream, mut to: TcpStream, tamper: Tamper) {
    let mut decoder = Decoder::new(CodecLimits::DEFAULT);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        decoder.push(&buf[..n]);
        let mut out = BytesMut::new();
        while let Ok(Some(mut msg)) = decoder.next() {
            if let Message::TellInfo(t) = &mut msg {
                match tamper {
                    Tamper::Nothing => {}
                    Tamper::SwapHash => t.manifest.hashes[0] = Digest::of(b"the attacker's chunk"),
                    Tamper::StripSignature => {
                        t.manifest.hashes[0] = Digest::of(b"the attacker's chunk");
                        t.signature = None;
                    }
                }
            }
            codec::encode(&msg, &mut out).unwrap();
        }
        if to.write_all(&out).is_err() {
            return;
        }
    }
}

/// Runs `get` through a proxy doing `tamper`, with the URL pinning the harness seed's key;
/// returns its exit code, stderr, and the output's bytes if it wrote any.
fn pinned_get(tamper: Tamper) -> (i32, String, Option<Vec<u8>>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let source = write_random_file(&root, "show.ts", 300_000 + 7, 31);
    let mut swarm = Swarm::new(TrackerConfig::with_key(KEY), 16 * 1024).unwrap();
    swarm.add_seed(&root, KEY, RateLimits::default()).unwrap();
    let port = proxy(swarm.tracker_addr, tamper);
    let url = format!("pdtp://127.0.0.1:{port}/show.ts#seed={}", seed_key());
    let out = dir.path().join("out.ts");
    let mut child = pdtp_tests::node_command(BIN)
        .args(["get", &url, "-o", out.to_str().unwrap(), "--listen", "0", "--seed-for", "0s"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = pdtp_tests::wait_polling(&mut swarm.rt, &mut child, LIMIT);
    assert!(status.is_some(), "get did not exit");
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let code = status.unwrap().code().unwrap_or(-1);
    let written = std::fs::read(&out).ok();
    assert!(!dir.path().join("out.ts.part").exists() || code == 0, "a refused get leaves no partial file");
    (code, err, written, source)
}

#[test]
fn a_pinned_get_through_an_honest_proxy_gets_the_exact_bytes() {
    let (code, err, written, source) = pinned_get(Tamper::Nothing);
    assert_eq!(code, 0, "{err}");
    assert!(written.as_deref() == Some(&source[..]), "the output differs from the source");
}

#[test]
fn a_pinned_get_refuses_a_manifest_the_proxy_changed() {
    for (tamper, why) in [(Tamper::SwapHash, "does not verify"), (Tamper::StripSignature, "not signed")] {
        let (code, err, written, _) = pinned_get(tamper);
        assert_ne!(code, 0, "a forged manifest was accepted: {err}");
        assert!(err.contains(why) && err.contains("show.ts"), "stderr: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(written.is_none(), "nothing is written from a forged manifest");
    }
}
