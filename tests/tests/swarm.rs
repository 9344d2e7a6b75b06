//! Tracker + seed + peers over real sockets on 127.0.0.1, all in one mio loop.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use pdtp_core::tracker::TrackerConfig;
use pdtp_net_mio::driver::{RateLimits, Status, Swarm};
use pdtp_tests::{KEY, write_random_file};

const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn ten_peers_download_a_multi_chunk_file_and_every_copy_equals_the_source() {
    ten_peers(false);
}

#[test]
fn the_same_with_a_seed_sending_chunks_with_sendfile() {
    ten_peers(true);
}

fn ten_peers(sendfile: bool) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let source = write_random_file(&root, "media/show.bin", 2_000_000 + 123, 1);
    let mut swarm = Swarm::new(TrackerConfig::with_key(KEY), 64 * 1024).unwrap();
    swarm.add_seed_with(&root, KEY, RateLimits::default(), sendfile).unwrap();
    let outs: Vec<_> = (0..10).map(|i| dir.path().join(format!("peer{i}.out"))).collect();
    let peers: Vec<_> = outs.iter().map(|o| swarm.add_peer("media/show.bin", o, false).unwrap()).collect();
    assert!(swarm.run_until_finished(&peers, LIMIT).unwrap(), "download did not finish in time");
    for (p, out) in peers.iter().zip(&outs) {
        assert_eq!(swarm.rt.status(*p), Some(Status::Done));
        let got = std::fs::read(out).unwrap();
        assert!(got == source, "{} differs from the source", out.display());
    }
    // The peers' last `Completed` messages may still be on their way to the tracker.
    let want = 10 * source.len() as u64;
    let tracker = swarm.tracker;
    let accounted = |rt: &pdtp_net_mio::driver::Runtime| match rt.node(tracker) {
        Some(pdtp_net_mio::driver::Node::Tracker(t)) => {
            t.totals().origin_bytes + t.totals().peer_bytes >= want
        }
        _ => false,
    };
    swarm.rt.run_until(LIMIT, accounted).unwrap();
    let totals = swarm.tracker().unwrap().totals().clone();
    assert_eq!(
        totals.origin_bytes + totals.peer_bytes,
        10 * source.len() as u64,
        "every byte of every copy is accounted to the origin or a peer"
    );
}
