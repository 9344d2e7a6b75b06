//! Seed file -> SeedStore -> (chunks arriving out of order, some corrupt) -> verification ->
//! PeerStore cache -> Delivery -> Sink -> a FIFO read by a "media player" thread.

// The "media player" is a thread reading the FIFO, as a test client may be.
#![allow(clippy::disallowed_methods)]

use std::io::Read;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use mio::{Events, Poll, Token};
use pdtp_core::{ChunkStore, ContentId, Payload};
use pdtp_net_mio::delivery::Delivery;
use pdtp_net_mio::paths::FileRoot;
use pdtp_net_mio::sink::{OutputKind, Sink};
use pdtp_net_mio::storage::{PeerStore, SeedStore, manifest_for_file};

fn data(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 7;
            x ^= x >> 9;
            x as u8
        })
        .collect()
}

#[test]
fn out_of_order_verified_chunks_reach_a_fifo_in_order() {
    let root_dir = tempfile::tempdir().unwrap();
    let source = data(1_000_123);
    std::fs::write(root_dir.path().join("show.ts"), &source).unwrap();
    let root = FileRoot::new(root_dir.path()).unwrap();
    let manifest = manifest_for_file(&root, "show.ts", 5_000).unwrap();
    let n = manifest.num_chunks();
    assert_eq!(n, 201);
    let content = ContentId(1);
    let mut seed = SeedStore::new(root);
    seed.open(content, &manifest).unwrap();

    let work = tempfile::tempdir().unwrap();
    let mut peer = PeerStore::new(work.path());
    peer.open(content, &manifest).unwrap();

    let fifo = work.path().join("player.fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let player = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut got = Vec::new();
            std::fs::File::open(&fifo).unwrap().read_to_end(&mut got).unwrap();
            got
        })
    };
    let cap = 32 * 1024;
    let mut sink = Sink::open(&OutputKind::of(&fifo), cap).unwrap();
    for _ in 0..5_000 {
        if !sink.awaiting_reader() {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
        sink.flush().unwrap();
    }
    assert!(!sink.awaiting_reader(), "the player never opened the FIFO");

    // Arrival order: a fixed permutation; every 13th arrival is corrupt first.
    let order: Vec<u32> = (0..n).map(|i| (i * 97) % n).collect();
    let mut delivery = Delivery::new(content, 0, Some(n));
    let mut poll = Poll::new().unwrap();
    let mut events = Events::with_capacity(4);
    let mut corrupt_seen = 0;
    let mut max_queued = 0;
    for (k, &chunk) in order.iter().enumerate() {
        let good = seed.read(content, chunk).unwrap();
        let expected = manifest.hash(chunk).unwrap();
        let len = manifest.geometry.chunk_len(chunk);
        if k % 13 == 0 {
            let Payload::Real(b) = &good else { unreachable!() };
            let mut bad = b.to_vec();
            bad[0] ^= 0xff;
            let bad = Payload::Real(Bytes::from(bad));
            assert!(!bad.verify(len, expected), "corruption is detected");
            corrupt_seen += 1; // ... and never written: re-fetched below.
        }
        assert!(good.verify(len, expected));
        peer.write(content, chunk, &good).unwrap();
        // Deliver what is in order; wait for the player whenever the sink is full.
        loop {
            delivery.pump(&mut peer, &mut sink).unwrap();
            max_queued = max_queued.max(sink.queued());
            if delivery.is_done() || !peer.has(content, delivery.next()) {
                break;
            }
            if !sink.has_room() {
                sink.update_interest(poll.registry(), Token(1)).unwrap();
                // Safety bound only; the writable event wakes us.
                poll.poll(&mut events, Some(Duration::from_secs(10))).unwrap();
            }
        }
    }
    assert!(corrupt_seen > 10);
    assert!(delivery.is_done());
    while sink.queued() > 0 {
        sink.update_interest(poll.registry(), Token(1)).unwrap();
        poll.poll(&mut events, Some(Duration::from_secs(10))).unwrap();
        sink.flush().unwrap();
    }
    sink.update_interest(poll.registry(), Token(1)).unwrap();
    assert!(max_queued < cap + 5_000, "sink memory bounded by cap + one chunk: {max_queued}");
    assert_eq!(sink.written(), source.len() as u64);
    drop(sink);
    let got = player.join().unwrap();
    assert_eq!(got.len(), source.len());
    assert!(got == source, "the player received different bytes");
}
