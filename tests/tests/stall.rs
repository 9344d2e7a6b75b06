//! A giver that accepts a transfer and then sends nothing, on real sockets: the taker gives
//! the transfer up after its timeout, the tracker schedules the chunk again, and the
//! download completes from the honest seed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use pdtp_core::tracker::{Limits, TrackerConfig};
use pdtp_core::wire::{AskInfo, Hello, PROTOCOL_VERSION, Role};
use pdtp_core::{Message, PeerId};
use pdtp_net_mio::driver::{RateLimits, Status, Swarm};
use pdtp_tests::{KEY, Lie, LyingTaker, MuteGiver, TrackerLink, run_polling, write_random_file};

/// Generous bound, only so a broken build cannot hang; nothing asserts on time.
const LIMIT: Duration = Duration::from_secs(60);

/// A giver that claims every chunk of `path` and never sends a byte, once it has claimed them.
fn mute_giver(swarm: &mut Swarm, path: &str) -> (PeerId, MuteGiver) {
    let (listener, port) = MuteGiver::listener();
    let (id, link) = ask_tracker(swarm, path, Some(port));
    let mut mute = MuteGiver::new(link, listener);
    assert!(run_polling(&mut swarm.rt, LIMIT, || {
        mute.pump();
        mute.content.is_some()
    }));
    (id, mute)
}

/// A fake peer's tracker link: a fresh id, `Hello` (listening on `port` if any) and
/// `AskInfo` for `path` sent once the handshake is done.
fn ask_tracker(swarm: &mut Swarm, path: &str, port: Option<u16>) -> (PeerId, TrackerLink) {
    let id = swarm.reserve_id();
    let mut tracker = TrackerLink::connect(swarm.tracker_addr, Some(swarm.tracker_key));
    let hello = Hello { version: PROTOCOL_VERSION, peer_id: id, listen_port: port, role: Role::Peer };
    tracker.send(&Message::Hello(hello));
    tracker.send(&Message::AskInfo(AskInfo { path: path.to_owned() }));
    (id, tracker)
}

#[test]
fn a_giver_that_accepts_and_sends_nothing_is_abandoned_and_its_chunks_come_from_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let source = write_random_file(&root, "f.bin", 20 * 16 * 1024 + 123, 21);
    let mut config = TrackerConfig::with_key(KEY);
    // One upload at a time from the seed: the peer's other download slots can only go to the
    // mute giver, so it is asked for chunks whatever the tie-breaks.
    config.seed_limits = Limits { max_transfers: 1, max_uploads: 1, max_downloads: 1 };
    let mut swarm = Swarm::new(config, 16 * 1024).unwrap();
    swarm.add_seed(&root, KEY, RateLimits::default()).unwrap();
    let (mute_id, mut mute) = mute_giver(&mut swarm, "f.bin");

    let out = dir.path().join("out.bin");
    let peer = swarm
        .add_peer_with("f.bin", &out, RateLimits::default(), |o| {
            o.transfer_timeout = Some(Duration::from_millis(500));
        })
        .unwrap();
    // The loop wakes at least for the taker's timeouts; the fake peer is pumped every turn.
    let finished = swarm
        .rt
        .run_until(LIMIT, |rt| {
            mute.pump();
            rt.status(peer) != Some(Status::Running)
        })
        .unwrap();
    assert!(finished, "the download did not finish; the mute giver got {} Gets", mute.gets.len());
    assert_eq!(swarm.rt.status(peer), Some(Status::Done));
    assert!(std::fs::read(&out).unwrap() == source, "the output differs from the source");
    assert!(!mute.gets.is_empty(), "the mute giver was never asked: the test proved nothing");
    // Every chunk it was asked for arrived anyway (the output is whole), so each was
    // rescheduled after the stall; and the tracker now trusts it less than the seed.
    let stats = swarm.tracker().unwrap().tracker().stats();
    let trust = |id: PeerId| stats.nodes.iter().find(|n| n.peer == id).map(|n| n.reputation).unwrap();
    let seed = stats.nodes.iter().find(|n| n.role == Role::Seed).unwrap();
    assert!(trust(mute_id) < seed.reputation, "{} vs {}", trust(mute_id), seed.reputation);
}

/// A taker that asks for every chunk of the file and then lies about each order (`lie`).
fn lying_taker(swarm: &mut Swarm, path: &str, lie: Lie) -> LyingTaker {
    let (_, link) = ask_tracker(swarm, path, None);
    LyingTaker { link, lie, orders: 0 }
}

/// Issue 17's silent taker on real sockets: it takes the seed's only upload slot and never
/// asks for the chunk. The seed tells the tracker after `order_wait` (5 s), the tracker
/// gives the slot to the honest viewer, and its download completes. Before, the slot stayed
/// with the silent taker for stall_timeout + transfer_timeout (140 s), past this test's 60 s.
#[test]
fn a_taker_that_never_asks_does_not_hold_the_seeds_slot() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let source = write_random_file(&root, "f.bin", 8 * 16 * 1024 + 5, 22);
    let mut config = TrackerConfig::with_key(KEY);
    config.seed_limits = Limits { max_transfers: 1, max_uploads: 1, max_downloads: 1 };
    let mut swarm = Swarm::new(config, 16 * 1024).unwrap();
    swarm.add_seed(&root, KEY, RateLimits::default()).unwrap();
    let mut silent = lying_taker(&mut swarm, "f.bin", Lie::Silent);
    // Until the silent taker holds the seed's slot.
    assert!(run_polling(&mut swarm.rt, LIMIT, || {
        silent.pump();
        silent.orders > 0
    }));
    let out = dir.path().join("out.bin");
    let peer = swarm.add_peer("f.bin", &out, false).unwrap();
    let finished = swarm
        .rt
        .run_until(LIMIT, |rt| {
            silent.pump();
            rt.status(peer) != Some(Status::Running)
        })
        .unwrap();
    assert!(finished, "the honest download did not finish; the silent taker got {} orders", silent.orders);
    assert_eq!(swarm.rt.status(peer), Some(Status::Done));
    assert!(std::fs::read(&out).unwrap() == source, "the output differs from the source");
}

/// Issue 17's failure storm on real sockets: a taker that reports every order failed the
/// instant it arrives. Over five seconds it gets a handful of orders (it is benched twice as
/// long per failure), not the tens of thousands a second the tracker used to hand out, and
/// an honest download beside it completes.
#[test]
fn a_taker_reporting_instant_failures_does_not_storm_the_tracker() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let source = write_random_file(&root, "f.bin", 8 * 16 * 1024 + 9, 23);
    let mut swarm = Swarm::new(TrackerConfig::with_key(KEY), 16 * 1024).unwrap();
    swarm.add_seed(&root, KEY, RateLimits::default()).unwrap();
    let mut liar = lying_taker(&mut swarm, "f.bin", Lie::Fails);
    let out = dir.path().join("out.bin");
    let peer = swarm.add_peer("f.bin", &out, false).unwrap();
    let finished = swarm
        .rt
        .run_until(LIMIT, |rt| {
            liar.pump();
            rt.status(peer) != Some(Status::Running)
        })
        .unwrap();
    assert!(finished, "the honest download did not finish beside the liar");
    // Five seconds of the liar's company, whatever the honest peer's pace.
    run_polling(&mut swarm.rt, Duration::from_secs(5), || {
        liar.pump();
        false
    });
    assert_eq!(swarm.rt.status(peer), Some(Status::Done));
    assert!(std::fs::read(&out).unwrap() == source, "the output differs from the source");
    assert!(liar.orders > 0, "the liar was never ordered anything: the test proved nothing");
    // 50 ms, 100 ms, ... 3.2 s of bench: at most about a dozen orders in these seconds.
    assert!(liar.orders <= 40, "{} orders to a taker that fails each at once", liar.orders);
}
