//! Property suite over the whole swarm (issue 2 §8, STYLE 15): proptest generates operation
//! sequences (peers joining, honest or corrupting; gets; message deliveries; time jumps;
//! dropped connections; killed peers; new network delays; live chunks) and the harness checks
//! its invariants after every step:
//!
//! * no giver is ordered to give a chunk its real store lacks (races with messages still in
//!   flight excused, listed at `Swarm::check_order`), and no order comes from a giver after its ban;
//! * per-node limits hold in `tracker.stats()`;
//! * every delivered byte is the source's byte at that offset, deliveries contiguous;
//! * live viewers never hold more than their window;
//!
//! and at the end, once quiescent (a bounded `drive`, so a livelock fails the case): every surviving honest peer that asked for a file has it
//! exactly, and a corrupting giver with enough corrupt transfers is banned.

#![allow(clippy::unwrap_used)]

mod harness;

use harness::{Options, PeerSpec, Swarm};
use pdtp_core::tracker::trust::Outcome;
use pdtp_core::tracker::{Limits, TrackerConfig, TrackerEvent, UploadSlots};
use pdtp_core::{PeerId, Span};
use proptest::prelude::*;

const FILE: &str = "f";
/// A second, smaller on-demand file: peers download one or both.
const SECOND_FILE: &str = "g";
const LIVE: &str = "live";
const SIZE: usize = 9_301;
const CHUNK: u32 = 500;
const LIVE_CHUNK: u32 = 200;
const VIEWER_WINDOW: u32 = 5;
/// Far more steps than any of these swarms needs to go quiet: more means a livelock.
const SETTLE_STEPS: usize = 200_000;

#[derive(Clone, Debug)]
enum Op {
    AddPeer { corrupt: bool, listen: bool, hasty: bool },
    Get(u64, bool),
    Deliver(usize),
    Advance(u64),
    DropLink(u64),
    Kill(u64),
    Reseed(u64),
    PushLive(u32),
}

fn ops(live: bool) -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        3 => (any::<bool>(), any::<bool>(), any::<bool>())
            .prop_map(move |(c, l, h)| Op::AddPeer { corrupt: c && !live, listen: l, hasty: h }),
        3 => (any::<u64>(), any::<bool>()).prop_map(|(i, other)| Op::Get(i, other)),
        4 => (1usize..120).prop_map(Op::Deliver),
        2 => (1u64..25_000).prop_map(Op::Advance),
        1 => any::<u64>().prop_map(Op::DropLink),
        1 => any::<u64>().prop_map(Op::Kill),
        1 => any::<u64>().prop_map(Op::Reseed),
        if live { 4 } else { 0 } => (1u32..8).prop_map(Op::PushLive),
    ];
    prop::collection::vec(op, 1..80)
}

/// Tracker settings that make races likelier: tight limits, stall timeouts shorter than a
/// transfer can take, frequent sweeps.
fn tracker_config() -> impl Strategy<Value = TrackerConfig> {
    let limits = (1u16..6, 1u16..6, 1u16..11, prop_oneof![Just(20_000u64), 50u64..2_000], 100u64..3_000);
    // The live-streaming policies: rate-following slots, orders queued ahead, deadlines.
    let policies = (any::<bool>(), any::<bool>(), prop::option::of(50u64..3_000), any::<bool>());
    (limits, policies).prop_map(
        |((up, down, total, stall_ms, sweep_ms), (measured, queue_ahead, deadline_ms, deadline_givers))| {
            let mut c = TrackerConfig::with_key(harness::KEY);
            c.limits = Limits { max_transfers: total.max(2), max_uploads: up, max_downloads: down };
            c.stall_timeout = Span::from_millis(stall_ms);
            c.sweep_interval = Span::from_millis(sweep_ms);
            if measured {
                c.upload_slots = UploadSlots::Measured { copy_time: Span::from_millis(200) };
            }
            c.queue_ahead = queue_ahead;
            c.live_deadline = deadline_ms.map(Span::from_millis);
            c.deadline_givers = deadline_givers;
            c
        },
    )
}

/// Maps a random `u64` onto `0..len` (as `proptest::sample::Index` does), so a failing
/// case can be written down as a plain test.
fn pick(raw: u64, len: usize) -> usize {
    ((len as u128 * u128::from(raw)) >> 64) as usize
}

fn apply(s: &mut Swarm, op: &Op, live: bool) {
    let path = if live { LIVE } else { FILE };
    match *op {
        Op::AddPeer { corrupt, listen, hasty } => {
            if s.peers.len() < 50 {
                let live_window = if live { VIEWER_WINDOW } else { 64 };
                let mut spec = PeerSpec { corrupt, listen, live_window, ..PeerSpec::default() };
                if hasty {
                    // Watchdogs shorter than a slow network's round trips.
                    spec.stall_timeout = Span::from_millis(150);
                    spec.transfer_timeout = Span::from_millis(200);
                    spec.order_wait = Span::from_millis(60);
                }
                s.add_peer(spec);
            }
        }
        Op::Get(i, other) => {
            let alive = s.alive_peers();
            let path = if other && !live { SECOND_FILE } else { path };
            if !alive.is_empty() {
                s.get(alive[pick(i, alive.len())], path);
            }
        }
        Op::Deliver(k) => s.run_steps(k),
        Op::Advance(ms) => s.advance(Span::from_millis(ms)),
        Op::DropLink(i) => {
            let links = s.droppable_links();
            if !links.is_empty() {
                s.drop_link(links[pick(i, links.len())]);
            }
        }
        Op::Kill(i) => {
            let alive = s.alive_peers();
            if !alive.is_empty() {
                s.kill(alive[pick(i, alive.len())]);
            }
        }
        Op::Reseed(seed) => s.reseed(seed),
        Op::PushLive(n) => {
            for _ in 0..n {
                s.push_live(LIVE);
                s.advance(Span::from_millis(250));
            }
        }
    }
}

fn on_demand_swarm(seed: u64, delay_max_ms: u64, peers: usize, corrupt: usize) -> Swarm {
    on_demand_swarm_with(seed, delay_max_ms, Options::default().tracker, peers, corrupt)
}

fn on_demand_swarm_with(
    seed: u64,
    delay_max_ms: u64,
    tracker: TrackerConfig,
    peers: usize,
    corrupt: usize,
) -> Swarm {
    let delay_max = Span::from_millis(delay_max_ms);
    let mut s = Swarm::new(Options { seed, delay_max, tracker, ..Options::default() });
    s.publish(FILE, harness::file_bytes(SIZE, seed as u8), CHUNK);
    s.publish(SECOND_FILE, harness::file_bytes(SIZE / 3, 99), CHUNK / 2);
    for k in 0..peers {
        s.add_peer(PeerSpec { corrupt: k < corrupt, listen: k % 3 != 2, ..PeerSpec::default() });
    }
    s.drive();
    s
}

/// Every corrupting giver with `ban_after_failures` corrupt transfers, no success and
/// corrupt copies reported by two takers or more (one taker's word bans nobody) was banned,
/// unless it was gone from the tracker by then (a ban applies to a connected node), and no
/// honest giver was ever blamed for corruption.
fn check_corrupt_banned(s: &Swarm) -> Result<(), String> {
    let threshold = s.tracker.config().ban_after_failures;
    for (k, slot) in s.peers.iter().enumerate() {
        let id = PeerId(k as u32 + 2);
        let r = s.tracker.trust().giver(id);
        let present = slot.machine.is_some() && !slot.tracker_lost;
        let mut witnesses: Vec<PeerId> = s
            .tracker_events
            .iter()
            .filter_map(|e| match e {
                TrackerEvent::Finished { giver, taker, outcome: Outcome::Corrupt, .. } if *giver == id => {
                    Some(*taker)
                }
                _ => None,
            })
            .collect();
        witnesses.sort_unstable();
        witnesses.dedup();
        if slot.spec.corrupt
            && present
            && r.corrupt >= threshold
            && r.successes == 0
            && witnesses.len() >= 2
            && !s.banned.contains(&id)
        {
            return Err(format!(
                "corrupting peer {id:?} served {} corrupt chunks and is not banned",
                r.corrupt
            ));
        }
        if !slot.spec.corrupt && r.corrupt > 0 {
            return Err(format!("honest peer {id:?} blamed for {} corrupt chunks", r.corrupt));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, max_shrink_iters: 200, ..ProptestConfig::default() })]

    /// On-demand: random operations with faults; every survivor ends with the file.
    #[test]
    fn on_demand_swarm_under_faults(
        seed in any::<u64>(),
        delay_max in 1u64..200,
        initial in 1usize..8,
        tracker in tracker_config(),
        ops in ops(false),
    ) {
        let mut s = on_demand_swarm_with(seed, delay_max, tracker, initial, 0);
        for op in &ops {
            apply(&mut s, op, false);
            prop_assert!(s.violations.is_empty(), "after {op:?}: {:#?}", s.violations);
        }
        prop_assert_eq!(s.drive_bounded(SETTLE_STEPS).map(|_| ()), Ok(()));
        prop_assert!(s.violations.is_empty(), "{:#?}", s.violations);
        prop_assert_eq!(s.check_complete(), Ok(()));
        prop_assert_eq!(check_corrupt_banned(&s), Ok(()));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, max_shrink_iters: 100, ..ProptestConfig::default() })]

    /// Up to 50 peers, some corrupting, everyone gets, random delays: the corrupting ones
    /// are banned once they served enough bad chunks and never ordered to give afterwards,
    /// and every honest peer ends with the file.
    #[test]
    fn corrupting_peers_are_banned_and_routed_around(
        seed in any::<u64>(),
        delay_max in 1u64..200,
        n in 4usize..=50,
        corrupt in 1usize..4,
        reseeds in prop::collection::vec(any::<u64>(), 0..4),
    ) {
        let mut s = on_demand_swarm(seed, delay_max, n, corrupt.min(n - 1));
        for node in s.alive_peers() {
            s.get(node, FILE);
        }
        for r in reseeds {
            s.run_steps(300);
            prop_assert!(s.violations.is_empty(), "{:#?}", s.violations);
            s.reseed(r);
        }
        prop_assert_eq!(s.drive_bounded(SETTLE_STEPS).map(|_| ()), Ok(()));
        prop_assert!(s.violations.is_empty(), "{:#?}", s.violations);
        prop_assert_eq!(s.check_complete(), Ok(()));
        prop_assert_eq!(check_corrupt_banned(&s), Ok(()));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, max_shrink_iters: 200, ..ProptestConfig::default() })]

    /// Live: the seed pushes chunks over time; viewers join, leave, lose links; none ever
    /// holds more than its window, and every delivery is the source's bytes in order.
    #[test]
    fn live_viewers_keep_their_window(
        seed in any::<u64>(),
        delay_max in 1u64..200,
        initial in 1usize..8,
        // Seeds keeping fewer chunks than their viewers, or more.
        seed_live_window in 2u32..3 * VIEWER_WINDOW,
        ops in ops(true),
    ) {
        prop_assert_eq!(live_run(seed, delay_max, initial, seed_live_window, &ops), Ok(()));
    }
}

/// A fixed swarm where the corrupting peers certainly serve: they are banned, and no order
/// names them as giver after the ban.
#[test]
fn corrupting_peers_are_banned_in_a_fixed_swarm() {
    let mut s = on_demand_swarm(7, 50, 30, 3);
    for node in s.alive_peers() {
        s.get(node, FILE);
    }
    s.drive();
    s.assert_ok();
    s.check_complete().unwrap();
    check_corrupt_banned(&s).unwrap();
    let bans: Vec<_> = s
        .tracker_events
        .iter()
        .filter_map(|e| if let TrackerEvent::Banned { peer } = e { Some(*peer) } else { None })
        .collect();
    assert!(!bans.is_empty(), "no corrupting peer was banned");
    assert!(bans.iter().all(|p| (2..5).contains(&p.0)), "only corrupting peers are banned: {bans:?}");
    assert!(s.orders_checked > 500, "orders checked: {}", s.orders_checked);
}

/// One live run: the seed streams, viewers come and go; `Err` names the first broken
/// invariant.
fn live_run(
    seed: u64,
    delay_max: u64,
    initial: usize,
    seed_live_window: u32,
    ops: &[Op],
) -> Result<(), String> {
    let delay_max = Span::from_millis(delay_max);
    let opts = Options { seed, delay_max, seed_live_window, ..Options::default() };
    let mut s = Swarm::new(opts);
    s.start_live(LIVE, LIVE_CHUNK);
    for k in 0..initial {
        s.add_peer(PeerSpec { listen: k % 3 != 2, live_window: VIEWER_WINDOW, ..PeerSpec::default() });
    }
    s.drive();
    for op in ops {
        apply(&mut s, op, true);
        if !s.violations.is_empty() {
            return Err(format!("after {op:?}: {:#?}", s.violations));
        }
    }
    s.drive_bounded(SETTLE_STEPS).map_err(|l| format!("{l:?}"))?;
    if !s.violations.is_empty() {
        return Err(format!("{:#?}", s.violations));
    }
    // Survivors that joined caught up with the live edge.
    let edge = (s.live_len(LIVE) as u64) * u64::from(LIVE_CHUNK);
    let content = s.seed.content(LIVE).ok_or("live stream not published")?;
    for (k, slot) in s.peers.iter().enumerate() {
        if slot.machine.is_some() && !slot.tracker_lost && !slot.gets.is_empty() && edge > 0 {
            let got = slot.delivered.get(&content).copied().unwrap_or(0);
            if got != edge {
                return Err(format!("viewer {} delivered {got} of {edge} bytes", k + 2));
            }
        }
    }
    Ok(())
}

/// The case that found the tracker's demand leak (an Unrequest for chunks in flight, or
/// below the seed's smaller window, left them pending and the sweep re-armed forever).
#[test]
fn live_regression_unrequested_demand_does_not_keep_the_tracker_busy() {
    let ops = [
        Op::AddPeer { corrupt: false, listen: false, hasty: false },
        Op::Get(11068046444228028063, false),
        Op::Get(16482902795632654212, false),
        Op::DropLink(7802447301820901830),
        Op::AddPeer { corrupt: false, listen: false, hasty: true },
        Op::Deliver(22),
        Op::Get(6865037993743460581, false),
        Op::PushLive(6),
        Op::PushLive(6),
        Op::PushLive(7),
        Op::PushLive(5),
        Op::PushLive(3),
    ];
    live_run(13, 174, 4, 2, &ops).unwrap();
}
