//! Nothing outside file_root is ever published or served: `..`, absolute paths and symlinks
//! leading out are refused at the URL, at the tracker and at the seed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use pdtp_core::tracker::TrackerConfig;
use pdtp_net_mio::driver::{Node, RateLimits, Status, Swarm};
use pdtp_net_mio::paths::PdtpUrl;
use pdtp_tests::{KEY, write_random_file};

const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn urls_with_dotdot_or_absolute_paths_are_refused() {
    for url in [
        "pdtp://127.0.0.1:6086/../secret.bin",
        "pdtp://127.0.0.1:6086/a/../../secret.bin",
        "pdtp://127.0.0.1:6086/%2e%2e/secret.bin",
        "pdtp://127.0.0.1:6086//etc/passwd",
        "pdtp://127.0.0.1:6086/%2fetc/passwd",
    ] {
        assert!(PdtpUrl::parse(url).is_err(), "{url} was accepted");
    }
    assert_eq!(PdtpUrl::parse("pdtp://127.0.0.1:6086/a/b.bin").unwrap().path, "a/b.bin");
}

#[test]
fn symlinks_out_of_file_root_are_not_published_and_nothing_outside_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let public = write_random_file(&root, "pub.bin", 50_000, 7);
    let secret = write_random_file(&dir.path().join("outside"), "secret.bin", 50_000, 8);
    std::os::unix::fs::symlink(dir.path().join("outside/secret.bin"), root.join("link.bin")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("outside"), root.join("linkdir")).unwrap();
    std::os::unix::fs::symlink(root.join("pub.bin"), root.join("alias.bin")).unwrap();

    let mut swarm = Swarm::new(TrackerConfig::with_key(KEY), 8 * 1024).unwrap();
    let seed = swarm.add_seed(&root, KEY, RateLimits::default()).unwrap();
    let published = |rt: &pdtp_net_mio::driver::Runtime| match rt.node(seed) {
        Some(Node::Seed(s)) => s.published().len() >= 2,
        _ => false,
    };
    assert!(swarm.rt.run_until(LIMIT, published).unwrap());
    let mut paths: Vec<String> =
        swarm.tracker().unwrap().tracker().stats().contents.iter().map(|c| c.path.clone()).collect();
    paths.sort();
    assert_eq!(paths, ["alias.bin", "pub.bin"], "only files inside the root are published");

    // Ask for every way out, bypassing the URL parser (as a hostile peer would).
    let hostile =
        ["link.bin", "linkdir/secret.bin", "../outside/secret.bin", "/etc/passwd", "outside/secret.bin"];
    let mut outs = Vec::new();
    let mut ids = Vec::new();
    for (i, path) in hostile.iter().enumerate() {
        let out = dir.path().join(format!("hostile{i}"));
        ids.push(swarm.add_peer(path, &out, false).unwrap());
        outs.push(out);
    }
    let good_out = dir.path().join("good");
    let good = swarm.add_peer("alias.bin", &good_out, false).unwrap();
    ids.push(good);
    assert!(swarm.run_until_finished(&ids, LIMIT).unwrap());
    for (id, path) in ids.iter().zip(hostile) {
        match swarm.rt.status(*id) {
            Some(Status::Failed(why)) => assert!(why.contains("has no file"), "{path}: {why}"),
            other => panic!("{path}: {other:?}"),
        }
    }
    assert_eq!(swarm.rt.status(good), Some(Status::Done));
    assert!(std::fs::read(&good_out).unwrap() == public, "a symlink inside the root serves its target");
    for out in &outs {
        let got = std::fs::read(out).unwrap_or_default();
        assert!(got.is_empty() || got != secret, "{} received the secret", out.display());
        assert!(!got.windows(64).any(|w| secret.windows(64).next() == Some(w)));
    }
}
