//! Seed and peer machines driven by hand (the test plays the tracker) and wired together.

#![allow(clippy::unwrap_used)]

mod support;

use bytes::Bytes;
use pdtp_core::auth::{append_proof, publish_proof};
use pdtp_core::memstore::MemStore;
use pdtp_core::node::NodeEvent;
use pdtp_core::peer::PeerEvent;
use pdtp_core::seed::SeedEvent;
use pdtp_core::wire::{
    AppendChunks, Completed, ErrorCode, Hello, Interest, Method, Notice, PROTOCOL_VERSION, PeerRequest,
    Published, Role, Side, TellInfo, TransferOrder, Verdict,
};
use pdtp_core::{ContentId, Digest, Manifest, Message, PeerId, Span, Time, Token, Transmit};
use support::*;

const C: ContentId = ContentId(5);

/// Seed publishes `data` at "show.mp4"; every peer asks for it and gets the manifest.
fn setup(data: &Bytes, chunk: u32, peers: usize) -> (Net, Manifest) {
    setup_with(data, chunk, (1..=peers).map(|i| Net::peer_cfg(i as u32)).collect())
}

fn setup_with(data: &Bytes, chunk: u32, cfgs: Vec<pdtp_core::peer::PeerConfig>) -> (Net, Manifest) {
    let m = manifest("show.mp4", data, chunk);
    let peers = cfgs.len();
    let mut net = Net::new(MemStore::new().with_file("show.mp4", data.clone()), cfgs);
    net.seed.publish(net.now, m.clone());
    net.pump();
    let inbox = net.take_inbox(0);
    let [Message::Publish(p)] = &inbox[..] else { panic!("expected one publish, got {inbox:?}") };
    assert_eq!(p.manifest, m);
    assert_eq!(p.proof, publish_proof(KEY, &NONCE, &m, None));
    net.tell(0, Message::Published(Published { path: "show.mp4".into(), content: C }));
    assert!(net.seed_events().contains(&SeedEvent::Published { path: "show.mp4".into(), content: C }));
    for i in 1..=peers {
        let now = net.now;
        net.peer(i).get(now, "show.mp4");
        net.pump();
        assert_eq!(
            net.take_inbox(i),
            vec![Message::AskInfo(pdtp_core::wire::AskInfo { path: "show.mp4".into() })]
        );
        net.tell(
            i,
            Message::TellInfo(Box::new(TellInfo { content: C, manifest: m.clone(), signature: None })),
        );
        assert_eq!(net.take_inbox(i), vec![Message::Request(Interest::all(C))]);
    }
    (net, m)
}

/// Concatenates `Deliver` events, checking each starts where the previous ended.
fn delivered(events: &[PeerEvent], start: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = start;
    for e in events {
        if let PeerEvent::Deliver { offset, payload: pdtp_core::Payload::Real(b), .. } = e {
            assert_eq!(*offset, at, "deliveries out of order");
            at += b.len() as u64;
            out.extend_from_slice(b);
        }
    }
    out
}

fn completed(inbox: &[Message]) -> Vec<Completed> {
    inbox.iter().filter_map(|m| if let Message::Completed(c) = m { Some(*c) } else { None }).collect()
}

#[test]
fn peer_downloads_from_seed_and_delivers_in_order() {
    let data = data(10_001);
    let (mut net, m) = setup(&data, 1_000, 1);
    // Chunks arrive out of order, by Get and by Put.
    let order = [3u32, 1, 0, 2, 10, 4, 5, 9, 8, 7, 6];
    let mut all = Vec::new();
    for (k, &chunk) in order.iter().enumerate() {
        let method = if k % 2 == 0 { Method::Get } else { Method::Put };
        net.order(100 + k as u64, C, chunk, 0, 1, method);
        let inbox = net.take_inbox(1);
        assert_eq!(
            completed(&inbox),
            vec![Completed {
                token: Token(100 + k as u64),
                hash: Some(m.hashes[chunk as usize]),
                copy_us: 0
            }]
        );
        let ev = net.peer_events(1);
        assert!(ev.contains(&PeerEvent::ChunkVerified {
            content: C,
            chunk,
            from: PeerId(0),
            bytes: m.geometry.chunk_len(chunk)
        }));
        // Nothing is delivered before the gap below it fills.
        if chunk == 3 || chunk == 1 {
            assert!(!ev.iter().any(|e| matches!(e, PeerEvent::Deliver { .. })));
        }
        if chunk == 2 {
            let offsets: Vec<u64> = ev
                .iter()
                .filter_map(|e| if let PeerEvent::Deliver { offset, .. } = e { Some(*offset) } else { None })
                .collect();
            assert_eq!(offsets, vec![2_000, 3_000]);
        }
        net.tell(0, Message::Verdict(Verdict { token: Token(100 + k as u64), accepted: true }));
        all.extend(ev);
    }
    assert_eq!(delivered(&all, 0), data.to_vec());
    assert_eq!(all.last(), Some(&PeerEvent::DownloadComplete { content: C }));
    assert_eq!(all.iter().filter(|e| matches!(e, PeerEvent::DownloadComplete { .. })).count(), 1);
    assert_eq!(net.peer(1).progress(C), Some((11, 11)));
    assert_eq!(net.peer(1).stats().bytes_downloaded, 10_001);
    assert_eq!(net.seed.stats().bytes_uploaded, 10_001);
    assert_eq!(net.seed.active_transfers(), 0);
    assert_eq!(net.peer(1).active_transfers(), 0);
    // One link per pair, reused: the peer connected once (Get), the seed once (Put).
    let connects = |log: &[Transmit]| {
        log.iter()
            .filter(|t| matches!(t, Transmit::Connect { endpoint, .. } if endpoint.host != "tracker"))
            .count()
    };
    assert_eq!(connects(&net.log[1]), 1);
    assert_eq!(connects(&net.log[0]), 0, "the seed reuses the peer's link for puts");
}

/// Chunks that arrive ahead of in-order delivery are delivered from memory, not read back
/// from the store (a stream output's cache file: `PeerConfig::deliver_payloads`): here the
/// store loses chunks 1 and 3 after they arrive, and they are still delivered, exact. With
/// `deliver_payloads` off (a file output holds its chunks in place) a delivery carries the
/// chunk's length and digest only.
#[test]
fn chunks_arriving_ahead_are_delivered_from_memory_or_not_at_all() {
    use pdtp_core::ChunkStore;
    let data = data(5_000);
    let mut plain = Net::peer_cfg(2);
    plain.deliver_payloads = false;
    let (mut net, m) = setup_with(&data, 1_000, vec![Net::peer_cfg(1), plain]);
    let mut events = [Vec::new(), Vec::new()];
    for (k, &chunk) in [3u32, 1, 0, 2, 4].iter().enumerate() {
        for p in 1..=2 {
            net.order(100 + 10 * p as u64 + k as u64, C, chunk, 0, p, Method::Get);
            net.take_inbox(p);
            events[p - 1].extend(net.peer_events(p));
        }
        if chunk == 1 {
            // Both arrived out of order and wait for chunk 0: gone from the store now.
            for c in [1, 3] {
                net.peer(1).store_mut().discard(C, c).unwrap();
            }
        }
    }
    let got = delivered(&events[0], 0);
    assert!(got == data.to_vec(), "delivered {} bytes of 5 000, not all exact", got.len());
    assert!(!events[0].iter().any(|e| matches!(e, PeerEvent::Node(NodeEvent::Problem(_)))));
    let virtual_ones: Vec<_> = events[1]
        .iter()
        .filter_map(|e| match e {
            PeerEvent::Deliver { offset, payload: pdtp_core::Payload::Virtual { len, tag }, .. } => {
                Some((*offset, *len, *tag))
            }
            _ => None,
        })
        .collect();
    let expected: Vec<_> = (0..5u32).map(|c| (u64::from(c) * 1_000, 1_000, m.hashes[c as usize])).collect();
    assert_eq!(virtual_ones, expected);
}

#[test]
fn peer_serves_another_peer_and_already_held_orders_complete_at_once() {
    let data = data(3_000);
    let (mut net, m) = setup(&data, 1_000, 2);
    for c in 0..3 {
        net.order(10 + c as u64, C, c, 0, 1, Method::Get);
    }
    net.take_inbox(1);
    net.peer_events(1);
    // Peer 2 takes chunk 1 from peer 1 (a Put: peer 1 connects).
    net.order(20, C, 1, 1, 2, Method::Put);
    assert_eq!(
        completed(&net.take_inbox(2)),
        vec![Completed { token: Token(20), hash: Some(m.hashes[1]), copy_us: 0 }]
    );
    assert!(
        net.peer_events(1)
            .iter()
            .any(|e| matches!(e, PeerEvent::Node(NodeEvent::Uploaded { chunk: 1, to: PeerId(2), .. })))
    );
    // An order for a chunk peer 2 already holds: Completed with the manifest hash, no data.
    let before = net.log[2].len();
    net.tell(2, Message::Transfer(taker_get_order(21, 1)));
    assert_eq!(net.log[2].len(), before + 1, "only the Completed is sent");
    assert_eq!(
        completed(&net.take_inbox(2)),
        vec![Completed { token: Token(21), hash: Some(m.hashes[1]), copy_us: 0 }]
    );
}

/// Drives the seed directly over one accepted link from `remote`.
fn raw_link(net: &mut Net, remote: u32) -> pdtp_core::ConnId {
    let conn = net.seed.accept(net.now).unwrap();
    let hello =
        Hello { version: PROTOCOL_VERSION, peer_id: PeerId(remote), listen_port: None, role: Role::Peer };
    net.seed.handle_message(net.now, conn, Message::Hello(hello));
    conn
}

fn seed_sends(net: &mut Net) -> Vec<Transmit> {
    std::iter::from_fn(|| net.seed.poll_transmit()).collect()
}

/// An order to take chunk `chunk` from peer 0 by connecting to it and asking (`Get`).
fn taker_get_order(token: u64, chunk: u32) -> TransferOrder {
    TransferOrder { method: Method::Get, connect: Some(ep(0)), ..taker_put_order(token, chunk) }
}

/// An order to take chunk `chunk` from peer 0, which pushes it (`Put`).
fn taker_put_order(token: u64, chunk: u32) -> TransferOrder {
    TransferOrder {
        token: Token(token),
        content: C,
        chunk,
        side: Side::Taker,
        method: Method::Put,
        other: PeerId(0),
        connect: None,
        key: pdtp_core::wire::LinkSecret(Box::new([1; 32])),
        punch: false,
    }
}

fn giver_order(token: u64, chunk: u32, other: u32) -> Message {
    Message::Transfer(TransferOrder {
        token: Token(token),
        content: C,
        chunk,
        side: Side::Giver,
        method: Method::Get,
        other: PeerId(other),
        connect: None,
        key: pdtp_core::wire::LinkSecret(Box::new([1; 32])),
        punch: false,
    })
}

#[test]
fn tokens_that_do_not_match_are_refused_at_once() {
    let data = data(3_000);
    let (mut net, _) = setup(&data, 1_000, 0);
    net.seed.handle_message(net.now, TRACKER, giver_order(1, 2, 9));
    let conn = raw_link(&mut net, 8);
    // Right token, wrong peer.
    net.seed.handle_message(
        net.now,
        conn,
        Message::Get(PeerRequest { token: Token(1), content: C, chunk: 2 }),
    );
    let out = seed_sends(&mut net);
    assert!(matches!(
        &out[..],
        [Transmit::Send { msg: Message::Warning(Notice { code: ErrorCode::TokenRefused, .. }), .. }]
    ));
    // Right peer, wrong chunk.
    let conn9 = raw_link(&mut net, 9);
    net.seed.handle_message(
        net.now,
        conn9,
        Message::Get(PeerRequest { token: Token(1), content: C, chunk: 1 }),
    );
    let out = seed_sends(&mut net);
    assert!(matches!(
        &out[..],
        [Transmit::Send { msg: Message::Warning(Notice { code: ErrorCode::TokenRefused, .. }), .. }]
    ));
    // Everything right: data.
    net.seed.handle_message(
        net.now,
        conn9,
        Message::Get(PeerRequest { token: Token(1), content: C, chunk: 2 }),
    );
    let out = seed_sends(&mut net);
    assert!(
        matches!(&out[..], [Transmit::Send { conn: c, msg: Message::Data(d) }] if *c == conn9 && d.chunk == 2)
    );
    // A token is good for one transfer only.
    net.seed.handle_message(
        net.now,
        conn9,
        Message::Get(PeerRequest { token: Token(1), content: C, chunk: 2 }),
    );
    let out = seed_sends(&mut net);
    assert!(matches!(
        &out[..],
        [Transmit::Send { msg: Message::Warning(Notice { code: ErrorCode::TokenRefused, .. }), .. }]
    ));
}

#[test]
fn an_early_get_waits_for_its_order_then_times_out() {
    let data = data(3_000);
    let (mut net, _) = setup(&data, 1_000, 0);
    net.now = Time::from_nanos(1_000);
    let conn = raw_link(&mut net, 4);
    net.seed.handle_message(
        net.now,
        conn,
        Message::Get(PeerRequest { token: Token(7), content: C, chunk: 0 }),
    );
    assert!(seed_sends(&mut net).is_empty(), "held, not refused");
    assert_eq!(net.seed.poll_timeout(), Some(net.now + Span::from_secs(5)));
    // The order arrives within order_wait: the held Get is served.
    net.now += Span::from_secs(2);
    net.seed.handle_message(net.now, TRACKER, giver_order(7, 0, 4));
    let out = seed_sends(&mut net);
    assert!(matches!(&out[..], [Transmit::Send { msg: Message::Data(d), .. }] if d.token == Token(7)));

    // Another early Get whose order never comes: refused after order_wait, not before.
    let t0 = net.now;
    net.seed.handle_message(t0, conn, Message::Get(PeerRequest { token: Token(8), content: C, chunk: 1 }));
    net.seed.handle_timeout(t0 + Span::from_millis(4_999));
    assert!(seed_sends(&mut net).is_empty());
    net.seed.handle_timeout(t0 + Span::from_secs(5));
    let out = seed_sends(&mut net);
    assert!(matches!(
        &out[..],
        [Transmit::Send { msg: Message::Warning(Notice { code: ErrorCode::TokenRefused, .. }), .. }]
    ));
    net.seed.handle_timeout(t0 + Span::from_secs(5));
    assert!(seed_sends(&mut net).is_empty(), "an extra call does nothing");
}

#[test]
fn corrupt_data_is_never_delivered_and_the_chunk_stays_wanted() {
    let data = data(2_000);
    let mut bad = Net::peer_cfg(1);
    bad.corrupt_uploads = true;
    let (mut net, m) = setup_with(&data, 1_000, vec![bad, Net::peer_cfg(2)]);
    // Peer 1 takes chunk 0 intact from the seed, then serves peer 2 corrupt bytes.
    net.order(1, C, 0, 0, 1, Method::Get);
    net.take_inbox(1);
    net.peer_events(1);
    assert!(net.peer(1).store().contains(C, 0));

    net.order(4, C, 0, 1, 2, Method::Get);
    let inbox = net.take_inbox(2);
    let done = completed(&inbox);
    assert_eq!(done.len(), 1);
    assert!(done[0].hash.is_some() && done[0].hash != Some(m.hashes[0]), "Completed carries the wrong hash");
    let ev = net.peer_events(2);
    assert!(ev.contains(&PeerEvent::ChunkRejected { content: C, chunk: 0, from: PeerId(1) }));
    assert!(!ev.iter().any(|e| matches!(e, PeerEvent::Deliver { .. } | PeerEvent::ChunkVerified { .. })));
    assert_eq!(net.peer(2).progress(C), Some((0, 2)));
    assert!(!net.peer(2).store().contains(C, 0), "rejected bytes are not stored");
    // The tracker's verdict makes the giver re-check its copy: intact, so it keeps it.
    net.tell(1, Message::Verdict(Verdict { token: Token(4), accepted: false }));
    assert!(net.peer_events(1).contains(&PeerEvent::Node(NodeEvent::VerdictRejected {
        content: C,
        chunk: 0,
        to: PeerId(2),
        dropped: false
    })));
    // Rescheduled from the seed: verified and delivered.
    net.order(5, C, 0, 0, 2, Method::Get);
    net.order(6, C, 1, 0, 2, Method::Get);
    let ev = net.peer_events(2);
    assert_eq!(delivered(&ev, 0), data.to_vec());
}

#[test]
fn a_giver_whose_copy_is_corrupt_drops_it_on_a_rejecting_verdict() {
    let data = data(2_000);
    let (mut net, _) = setup(&data, 1_000, 2);
    net.order(1, C, 1, 0, 1, Method::Get);
    net.take_inbox(1);
    // Peer 1's stored copy rots.
    net.peer(1).store_mut().put(C, 1, Bytes::from_static(b"rotten"));
    net.order(2, C, 1, 1, 2, Method::Get);
    assert!(net.peer_events(2).contains(&PeerEvent::ChunkRejected { content: C, chunk: 1, from: PeerId(1) }));
    net.peer_events(1);
    net.tell(1, Message::Verdict(Verdict { token: Token(2), accepted: false }));
    assert!(net.peer_events(1).contains(&PeerEvent::Node(NodeEvent::VerdictRejected {
        content: C,
        chunk: 1,
        to: PeerId(2),
        dropped: true
    })));
    assert_eq!(net.peer(1).progress(C), Some((0, 2)));
    assert!(net.take_inbox(1).iter().any(|m| matches!(m, Message::Unprovide(_))));
}

#[test]
fn stalled_transfers_complete_with_no_hash_only_when_due() {
    let data = data(2_000);
    let (mut net, _) = setup(&data, 1_000, 1);
    net.connects_succeed = false;
    net.now = Time::from_nanos(500);
    net.order(1, C, 0, 0, 1, Method::Get);
    assert!(net.take_inbox(1).is_empty(), "not started: the link never came up");
    let due = Time::from_nanos(500) + Span::from_secs(20);
    assert_eq!(net.peer(1).poll_timeout(), Some(due));
    net.advance(Time::from_nanos(500) + Span::from_secs(19));
    assert!(net.take_inbox(1).is_empty());
    net.advance(due);
    assert_eq!(completed(&net.take_inbox(1)), vec![Completed { token: Token(1), hash: None, copy_us: 0 }]);
    assert!(
        net.peer_events(1)
            .iter()
            .any(|e| matches!(e, PeerEvent::Node(NodeEvent::TransferFailed { token: Token(1), .. })))
    );
    net.advance(due);
    assert!(net.take_inbox(1).is_empty(), "an extra timeout does nothing");
}

/// A copy under way whose link brings nothing fails at `progress_timeout`, not at the whole
/// chunk's `transfer_timeout` (120 s): issue 17's giver that accepts a `Get` and sends
/// nothing, or freezes. Bytes arriving on the link push the deadline back.
#[test]
fn a_copy_whose_link_brings_nothing_fails_at_the_progress_timeout() {
    for bytes_at in [None, Some(Span::from_secs(1))] {
        let data = data(2_000);
        let mut cfg = Net::peer_cfg(1);
        cfg.progress_timeout = Some(Span::from_secs(3));
        let (mut net, _) = setup_with(&data, 1_000, vec![cfg]);
        let start = net.now;
        // Only the taker's order: the seed holds the `Get` for an order of its own (up to
        // order_wait, 5 s), sending nothing meanwhile.
        net.tell(1, Message::Transfer(taker_get_order(1, 0)));
        let conn = net.links.keys().find(|(node, _)| *node == 1).map(|&(_, c)| c).unwrap();
        let due = match bytes_at {
            None => start + Span::from_secs(3),
            Some(at) => {
                net.advance(start + at);
                let now = net.now;
                net.peer(1).handle_progress(now, conn);
                start + at + Span::from_secs(3)
            }
        };
        assert_eq!(net.peer(1).poll_timeout(), Some(due));
        net.advance(due.saturating_sub(Span::from_millis(1)));
        assert!(completed(&net.take_inbox(1)).is_empty(), "failed before its time ({bytes_at:?})");
        net.advance(due);
        assert_eq!(
            completed(&net.take_inbox(1)),
            vec![Completed { token: Token(1), hash: None, copy_us: 0 }]
        );
    }
}

#[test]
fn a_closed_link_fails_its_transfer_and_idle_links_close() {
    let data = data(2_000);
    let (mut net, _) = setup(&data, 1_000, 1);
    net.order(1, C, 0, 0, 1, Method::Get);
    net.take_inbox(1);
    assert_eq!(net.peer(1).peer_links(), 1);
    // Link idle for 30 s with no transfers: both ends may close; the first timer wins.
    net.advance(net.now + Span::from_secs(30));
    assert_eq!(net.peer(1).peer_links(), 0);
    assert!(net.links.is_empty());
    // A transfer whose link drops mid-way completes with no hash.
    net.tell(1, Message::Transfer(taker_put_order(2, 1)));
    let conn = net.peers[0].accept(net.now).unwrap();
    net.peers[0].handle_message(
        net.now,
        conn,
        Message::Hello(Hello {
            version: PROTOCOL_VERSION,
            peer_id: PeerId(0),
            listen_port: None,
            role: Role::Seed,
        }),
    );
    net.peers[0].handle_message(
        net.now,
        conn,
        Message::Put(PeerRequest { token: Token(2), content: C, chunk: 1 }),
    );
    net.pump();
    assert!(net.take_inbox(1).is_empty(), "a start costs the tracker no message");
    net.peers[0].handle_closed(net.now, conn);
    net.pump();
    assert_eq!(completed(&net.take_inbox(1)), vec![Completed { token: Token(2), hash: None, copy_us: 0 }]);
}

#[test]
fn live_window_stays_bounded_and_delivery_is_contiguous() {
    let mut cfg = Net::peer_cfg(1);
    cfg.live_window = 4;
    let (mut net, m) = Net::live(vec![cfg], C, 100, 8_000);
    assert_eq!(m.num_chunks(), 0);
    // Three chunks exist before the viewer joins.
    let mut appends = Vec::new();
    for i in 0..3 {
        appends.push(push_live(&mut net, i));
    }
    viewer_told_of_three_chunks(&mut net, &m);
    // Joins two chunks behind the live edge, open-ended.
    assert_eq!(
        net.take_inbox(1),
        vec![Message::Request(Interest::range(C, pdtp_core::ByteRange::from(100)))]
    );
    let mut events = Vec::new();
    net.order(1, C, 1, 0, 1, Method::Get);
    net.order(2, C, 2, 0, 1, Method::Get);
    events.extend(net.peer_events(1));
    for i in 3..40u32 {
        let mut a = push_live(&mut net, i);
        a.proof = Digest::ZERO;
        net.tell(1, Message::AppendChunks(a));
        // Skip one chunk now and then: delivery must jump over it once the window passes.
        if i % 10 != 5 {
            net.order(100 + u64::from(i), C, i, 0, 1, Method::Get);
        }
        events.extend(net.peer_events(1));
        assert!(net.peer(1).store().chunk_count() <= 4, "peer keeps at most live_window chunks");
        assert!(net.seed.store().chunk_count() <= 64);
    }
    assert_eq!(net.seed.window_start(C), Some(0), "seed window is 64 chunks");
    let inbox = net.take_inbox(1);
    assert!(inbox.iter().any(|m| matches!(m, Message::Unprovide(_))));
    assert!(inbox.iter().any(|m| matches!(m, Message::Unrequest(_))), "skipped chunks are unrequested");
    // Delivered bytes are the stream from the join point, minus skipped chunks, in order.
    let offsets: Vec<u64> = events
        .iter()
        .filter_map(|e| if let PeerEvent::Deliver { offset, .. } = e { Some(*offset) } else { None })
        .collect();
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "strictly increasing");
    assert_eq!(offsets.first(), Some(&100));
    let expected: Vec<u64> =
        (1..40u32).filter(|i| *i < 3 || i % 10 != 5).map(|i| u64::from(i) * 100).collect();
    assert_eq!(offsets, expected);
    for e in &events {
        if let PeerEvent::Deliver { offset, payload: pdtp_core::Payload::Real(b), .. } = e {
            assert_eq!(b, &live_chunk((*offset / 100) as u32));
        }
    }
}

/// Live chunk `i` of the skip tests: 100 bytes of `i`.
fn live_chunk(i: u32) -> Bytes {
    Bytes::from(vec![i as u8; 100])
}

/// The seed produces live chunk `i` (100 bytes of `i`); its append, proof checked, for the
/// test to forward as the tracker.
/// Viewer 1 asks for "live" (manifest `m`, three 100-byte chunks pushed) and is told of the
/// three chunks; the manifest it was told.
fn viewer_told_of_three_chunks(net: &mut Net, m: &Manifest) -> Manifest {
    let mut lm = m.clone();
    lm.geometry.size = 300;
    lm.hashes = (0..3).map(|i| Digest::of(&live_chunk(i))).collect();
    net.peers[0].get(net.now, "live");
    net.pump();
    net.take_inbox(1);
    net.tell(1, Message::TellInfo(Box::new(TellInfo { content: C, manifest: lm.clone(), signature: None })));
    lm
}

fn push_live(net: &mut Net, i: u32) -> Box<AppendChunks> {
    assert_eq!(net.seed.next_live_chunk("live"), Some(i));
    net.seed.store_mut().put(C, i, live_chunk(i));
    let now = net.now;
    net.seed.push_live_chunk(now, "live", 100, Digest::of(&live_chunk(i)));
    net.pump();
    let inbox = net.take_inbox(0);
    let [Message::AppendChunks(a)] = &inbox[..] else { panic!("{inbox:?}") };
    assert_eq!(a.proof, append_proof(KEY, &NONCE, C, a.first, a.new_size, a.window_start, &a.hashes));
    a.clone()
}

/// A viewer whose player skips a chunk 1.5 s after its append, joined at chunk 0 of a live
/// stream, with chunk 0 ordered to it from the seed.
fn viewer_joined_at_chunk_0() -> Net {
    let mut cfg = Net::peer_cfg(1);
    cfg.playback_deadline = Some(Span::from_millis(1500));
    let (mut net, m) = Net::live(vec![cfg], C, 100, 8_000);
    push_live(&mut net, 0);
    let mut lm = m.clone();
    lm.geometry.size = 100;
    lm.hashes = vec![Digest::of(&live_chunk(0))];
    net.peers[0].get(net.now, "live");
    net.pump();
    net.take_inbox(1);
    net.tell(1, Message::TellInfo(Box::new(TellInfo { content: C, manifest: lm, signature: None })));
    net.take_inbox(1);
    net.order(1, C, 0, 0, 1, Method::Get);
    net
}

/// Live chunks 1 to `end − 1`, one every 500 ms, each ordered to the viewer but chunk 3,
/// which never comes; the viewer's events meanwhile, from chunk 0's on.
fn stream_without_chunk_3(net: &mut Net, end: u32) -> Vec<PeerEvent> {
    let mut events = net.peer_events(1);
    for i in 1..end {
        net.advance(net.now + Span::from_millis(500));
        let a = push_live(net, i);
        net.tell(1, Message::AppendChunks(a));
        if i != 3 {
            net.order(100 + u64::from(i), C, i, 0, 1, Method::Get);
        }
        events.extend(net.peer_events(1));
    }
    events
}

#[test]
fn a_viewer_skips_a_chunk_its_playback_deadline_passed() {
    let mut net = viewer_joined_at_chunk_0();
    // The window (64) would hold delivery at chunk 3 for the whole test; the 1.5 s deadline
    // skips it.
    let events = stream_without_chunk_3(&mut net, 12);
    let offsets: Vec<u64> = events
        .iter()
        .filter_map(|e| if let PeerEvent::Deliver { offset, .. } = e { Some(*offset) } else { None })
        .collect();
    let expected: Vec<u64> = (0..12u32).filter(|&i| i != 3).map(|i| u64::from(i) * 100).collect();
    assert_eq!(offsets, expected, "chunk 3 skipped, the rest delivered in order");
    let inbox = net.take_inbox(1);
    let skipped = Message::Unrequest(Interest::range(C, pdtp_core::ByteRange::new(300, 400)));
    assert!(inbox.contains(&skipped), "the skipped chunk is unrequested: {inbox:?}");
}

#[test]
fn a_stream_that_ended_on_a_missing_chunk_completes_once_its_deadline_passes() {
    let mut net = viewer_joined_at_chunk_0();
    // Chunks 1 and 2 come; chunk 3, the last, never does; then the stream ends.
    stream_without_chunk_3(&mut net, 4);
    let announced_3 = net.now;
    net.seed.end_live(net.now, "live");
    net.pump();
    let inbox = net.take_inbox(0);
    let [Message::AppendChunks(end)] = &inbox[..] else { panic!("{inbox:?}") };
    net.tell(1, Message::AppendChunks(end.clone()));
    let events = net.peer_events(1);
    assert!(!events.iter().any(|e| matches!(e, PeerEvent::DownloadComplete { .. })), "chunk 3 still due");
    // No append will come to move delivery on: the peer's own timer must.
    let skip_at = announced_3 + Span::from_millis(1500) + Span::from_nanos(1);
    assert_eq!(net.peers[0].poll_timeout(), Some(skip_at), "a timer just past chunk 3's deadline");
    net.advance(skip_at);
    let events = net.peer_events(1);
    assert!(events.contains(&PeerEvent::DownloadComplete { content: C }), "{events:?}");
    let skipped = Message::Unrequest(Interest::range(C, pdtp_core::ByteRange::new(300, 400)));
    assert!(net.take_inbox(1).contains(&skipped), "the skipped chunk is unrequested");
}

#[test]
fn seed_live_window_discards_old_chunks() {
    let (mut net, _) = Net::live(vec![], C, 10, 800);
    for i in 0..100u32 {
        let b = Bytes::from(vec![i as u8; 10]);
        net.seed.store_mut().put(C, i, b.clone());
        let now = net.now;
        net.seed.push_live_chunk(now, "live", 10, Digest::of(&b));
    }
    net.pump();
    let appends: Vec<_> = net
        .take_inbox(0)
        .into_iter()
        .filter_map(|m| if let Message::AppendChunks(a) = m { Some(a) } else { None })
        .collect();
    assert_eq!(appends.len(), 100);
    assert_eq!(appends[99].window_start, 36);
    assert_eq!(appends[99].new_size, 1_000);
    assert_eq!(net.seed.store().chunk_count(), 64);
    assert!(!net.seed.store().contains(C, 35) && net.seed.store().contains(C, 36));
    // A giver order for a discarded chunk is not served.
    net.seed.handle_message(net.now, TRACKER, giver_order(9, 3, 1));
    net.pump();
    assert!(net.take_inbox(0).iter().any(|m| matches!(m, Message::Unprovide(_))));
}

#[test]
fn tracker_problems_are_reported() {
    let data = data(1_000);
    let (mut net, _) = setup(&data, 1_000, 1);
    // Unknown URL.
    net.peers[0].get(net.now, "nope");
    net.pump();
    net.take_inbox(1);
    net.tell(1, Message::Warning(Notice::new(ErrorCode::UnknownUrl, "nope")));
    assert!(net.peer_events(1).contains(&PeerEvent::UnknownUrl { path: "nope".into() }));
    // A malformed manifest: a Problem, no request.
    net.peers[0].get(net.now, "bad");
    net.pump();
    net.take_inbox(1);
    let mut bad = manifest("bad", &data, 100);
    bad.hashes.pop();
    net.tell(
        1,
        Message::TellInfo(Box::new(TellInfo { content: ContentId(9), manifest: bad, signature: None })),
    );
    assert!(net.take_inbox(1).is_empty());
    assert!(net.peer_events(1).iter().any(|e| matches!(
        e,
        PeerEvent::Node(NodeEvent::Problem(Notice { code: ErrorCode::Malformed, .. }))
    )));
    // Tracker Error after the welcome: the link closes and a reconnection is scheduled about
    // a second later (the first of the backed-off attempts); the download is not given up.
    net.tell(1, Message::Error(Notice::new(ErrorCode::GoingAway, "bye")));
    let ev = net.peer_events(1);
    let retry_in = ev
        .iter()
        .find_map(|e| match e {
            PeerEvent::Node(NodeEvent::TrackerDown { notice: Some(n), retry_in })
                if n.code == ErrorCode::GoingAway =>
            {
                Some(*retry_in)
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("no TrackerDown: {ev:?}"));
    assert!(retry_in >= Span::from_millis(500) && retry_in < Span::from_millis(1_500), "{retry_in:?}");
    assert!(!ev.iter().any(|e| matches!(e, PeerEvent::TrackerLost { .. })), "{ev:?}");
    assert!(net.log[1].iter().any(|t| matches!(t, Transmit::Close { conn: TRACKER, .. })));
    // Seed refused.
    net.tell(0, Message::Error(Notice::new(ErrorCode::Unauthorized, "bad proof")));
    let ev = net.seed_events();
    assert!(ev.iter().any(|e| matches!(e, SeedEvent::Refused(Notice { code: ErrorCode::Unauthorized, .. }))));
    assert!(ev.contains(&SeedEvent::TrackerLost));
}

#[test]
fn peer_links_must_start_with_hello() {
    let data = data(1_000);
    let (mut net, _) = setup(&data, 1_000, 0);
    let conn = net.seed.accept(net.now).unwrap();
    net.seed.handle_message(
        net.now,
        conn,
        Message::Get(PeerRequest { token: Token(1), content: C, chunk: 0 }),
    );
    let out = seed_sends(&mut net);
    assert!(matches!(
        &out[..],
        [
            Transmit::Send { msg: Message::Error(Notice { code: ErrorCode::HelloExpected, .. }), .. },
            Transmit::Close { .. }
        ]
    ));
    // Messages on a closed handle are ignored.
    net.seed.handle_message(
        net.now,
        conn,
        Message::Get(PeerRequest { token: Token(1), content: C, chunk: 0 }),
    );
    assert!(seed_sends(&mut net).is_empty());
}

#[test]
fn completed_reports_how_long_the_copy_took_at_the_taker() {
    let data = data(2_000);
    let (mut net, m) = setup(&data, 1_000, 1);
    let t0 = Time::from_nanos(1_000_000_000);
    let p = &mut net.peers[0];
    let order = taker_put_order(9, 1);
    p.handle_message(t0, TRACKER, Message::Transfer(order));
    let conn = p.accept(t0).unwrap();
    let hello = Hello { version: PROTOCOL_VERSION, peer_id: PeerId(0), listen_port: None, role: Role::Seed };
    p.handle_message(t0, conn, Message::Hello(hello));
    // The copy starts when the Put is accepted and ends with the last byte of Data.
    let start = t0 + Span::from_millis(250);
    p.handle_message(start, conn, Message::Put(PeerRequest { token: Token(9), content: C, chunk: 1 }));
    assert!(
        std::iter::from_fn(|| p.poll_transmit()).next().is_none(),
        "a start costs the tracker no message"
    );
    let payload = pdtp_core::Payload::Real(data.slice(1_000..));
    let data_msg = pdtp_core::wire::Data { token: Token(9), content: C, chunk: 1, payload };
    p.handle_message(start + Span::from_micros(1_500_250), conn, Message::Data(data_msg));
    let out: Vec<_> = std::iter::from_fn(|| p.poll_transmit()).collect();
    let done = Completed { token: Token(9), hash: Some(m.hashes[1]), copy_us: 1_500_250 };
    assert_eq!(out, vec![Transmit::Send { conn: TRACKER, msg: Message::Completed(done) }]);
}

#[test]
fn a_put_and_its_data_that_beat_the_order_are_taken_once_it_arrives() {
    let data = data(2_000);
    let (mut net, m) = setup(&data, 1_000, 1);
    let now = net.now;
    let p = &mut net.peers[0];
    let conn = p.accept(now).unwrap();
    p.handle_message(
        now,
        conn,
        Message::Hello(Hello {
            version: PROTOCOL_VERSION,
            peer_id: PeerId(0),
            listen_port: None,
            role: Role::Seed,
        }),
    );
    p.handle_message(now, conn, Message::Put(PeerRequest { token: Token(3), content: C, chunk: 1 }));
    let payload = pdtp_core::Payload::Real(data.slice(1_000..));
    p.handle_message(
        now,
        conn,
        Message::Data(pdtp_core::wire::Data {
            token: Token(3),
            content: C,
            chunk: 1,
            payload: payload.clone(),
        }),
    );
    assert!(std::iter::from_fn(|| p.poll_transmit()).next().is_none(), "held: nothing sent yet");
    assert_eq!(p.progress(C), Some((0, 2)), "nothing stored before the order");
    let order = taker_put_order(3, 1);
    p.handle_message(now, TRACKER, Message::Transfer(order));
    let out: Vec<_> = std::iter::from_fn(|| p.poll_transmit()).collect();
    assert_eq!(
        out,
        vec![Transmit::Send {
            conn: TRACKER,
            msg: Message::Completed(Completed { token: Token(3), hash: Some(m.hashes[1]), copy_us: 0 })
        },]
    );
    assert_eq!(p.progress(C), Some((1, 2)));
    // The same Put from a different peer id is refused even with the right token.
    let conn2 = p.accept(now).unwrap();
    p.handle_message(
        now,
        conn2,
        Message::Hello(Hello {
            version: PROTOCOL_VERSION,
            peer_id: PeerId(6),
            listen_port: None,
            role: Role::Peer,
        }),
    );
    let order = taker_put_order(4, 0);
    p.handle_message(now, TRACKER, Message::Transfer(order));
    p.handle_message(now, conn2, Message::Put(PeerRequest { token: Token(4), content: C, chunk: 0 }));
    let out: Vec<_> = std::iter::from_fn(|| p.poll_transmit()).collect();
    assert!(
        matches!(&out[..], [Transmit::Send { conn: c, msg: Message::Warning(Notice { code: ErrorCode::TokenRefused, .. }) }] if *c == conn2)
    );
}

#[test]
fn virtual_payloads_flow_like_real_ones() {
    use pdtp_core::memstore::VirtualStore;
    use pdtp_core::peer::{Peer, PeerConfig};
    use pdtp_core::seed::{Seed, SeedConfig};
    let hashes: Vec<Digest> = (0..4u8).map(|i| Digest::of(&[i])).collect();
    let m = Manifest {
        path: "v".into(),
        geometry: pdtp_core::Geometry::new(3_500, 1_000),
        hashes: hashes.clone(),
        live: None,
    };
    let now = Time::ZERO;
    let mut seed =
        Seed::new(now, SeedConfig::new(PeerId(0), tracker_ep(), KEY), VirtualStore::origin(), rng(1));
    let mut cfg = PeerConfig::new(PeerId(1), tracker_ep());
    cfg.corrupt_uploads = false;
    let mut peer = Peer::new(now, cfg, VirtualStore::new(), rng(2));
    seed.handle_connected(now, TRACKER);
    peer.handle_connected(now, TRACKER);
    let welcome = |id| Message::Welcome(pdtp_core::wire::Welcome { peer_id: PeerId(id), nonce: NONCE });
    seed.handle_message(now, TRACKER, welcome(0));
    peer.handle_message(now, TRACKER, welcome(1));
    seed.publish(now, m.clone());
    seed.handle_message(now, TRACKER, Message::Published(Published { path: "v".into(), content: C }));
    peer.get(now, "v");
    peer.handle_message(
        now,
        TRACKER,
        Message::TellInfo(Box::new(TellInfo { content: C, manifest: m.clone(), signature: None })),
    );
    // Peer link: the peer connects (Get); the test moves messages by hand.
    let sconn = seed.accept(now).unwrap();
    for chunk in [2u32, 0, 3, 1] {
        let token = Token(50 + u64::from(chunk));
        seed.handle_message(now, TRACKER, giver_order(token.0, chunk, 1));
        peer.handle_message(now, TRACKER, Message::Transfer(taker_get_order(token.0, chunk)));
        loop {
            let Some(t) = peer.poll_transmit() else { break };
            match t {
                Transmit::Connect { conn, .. } => peer.handle_connected(now, conn),
                Transmit::Send { conn, msg } if conn != TRACKER => seed.handle_message(now, sconn, msg),
                _ => {}
            }
            while let Some(t) = seed.poll_transmit() {
                if let Transmit::Send { conn, msg } = t
                    && conn == sconn
                {
                    peer.handle_message(now, PEER_LINK, msg);
                }
            }
        }
    }
    let ev: Vec<_> = std::iter::from_fn(|| peer.poll_event()).collect();
    let delivered: Vec<(u64, u32)> = ev
        .iter()
        .filter_map(|e| {
            if let PeerEvent::Deliver { offset, payload, .. } = e {
                Some((*offset, payload.len()))
            } else {
                None
            }
        })
        .collect();
    assert_eq!(delivered, vec![(0, 1_000), (1_000, 1_000), (2_000, 1_000), (3_000, 500)]);
    assert!(ev.contains(&PeerEvent::DownloadComplete { content: C }));
    assert_eq!(peer.store().held(C), 4);
}

/// The peer's first outbound link handle (0 is the tracker).
const PEER_LINK: pdtp_core::ConnId = pdtp_core::ConnId(1);

#[test]
fn a_swarm_completes_under_random_scheduling_and_peers_share_the_load() {
    use rand_core::Rng as _;
    let data = data(20_000);
    let peers = 5;
    let (mut net, m) = setup(&data, 1_000, peers);
    let n = m.num_chunks();
    let mut r = rng(42);
    let mut token = 1_000u64;
    let mut all: Vec<Vec<PeerEvent>> = vec![Vec::new(); peers + 1];
    for _ in 0..10_000 {
        // A random taker still missing something, a random missing chunk, a random holder.
        let missing: Vec<(usize, u32)> = (1..=peers)
            .flat_map(|i| (0..n).map(move |c| (i, c)))
            .filter(|&(i, c)| !net.peers[i - 1].store().contains(C, c))
            .collect();
        if missing.is_empty() {
            break;
        }
        let (taker, chunk) = missing[r.next_u32() as usize % missing.len()];
        let holders: Vec<usize> = std::iter::once(0)
            .chain((1..=peers).filter(|&i| net.peers[i - 1].store().contains(C, chunk)))
            .collect();
        let giver = holders[r.next_u32() as usize % holders.len()];
        let method = if r.next_u32() % 2 == 0 { Method::Get } else { Method::Put };
        token += 1;
        net.order(token, C, chunk, giver, taker, method);
        let done = completed(&net.take_inbox(taker));
        assert_eq!(
            done,
            vec![Completed { token: Token(token), hash: Some(m.hashes[chunk as usize]), copy_us: 0 }]
        );
        net.tell(giver, Message::Verdict(Verdict { token: Token(token), accepted: true }));
        for (i, evs) in all.iter_mut().enumerate().skip(1) {
            evs.extend(net.peer_events(i));
        }
    }
    for (i, evs) in all.iter().enumerate().skip(1) {
        assert_eq!(delivered(evs, 0), data.to_vec(), "peer {i} got the whole file in order");
        assert_eq!(evs.iter().filter(|e| matches!(e, PeerEvent::DownloadComplete { .. })).count(), 1);
    }
    let from_peers: u64 = (1..=peers).map(|i| net.peers[i - 1].stats().bytes_uploaded).sum();
    assert_eq!(from_peers + net.seed.stats().bytes_uploaded, (peers * data.len()) as u64);
    assert!(from_peers > 0, "peers served each other");
    // Links are reused: at most one link per pair of nodes ever opened from each side.
    for (i, log) in net.log.iter().enumerate() {
        let connects = log
            .iter()
            .filter(|t| matches!(t, Transmit::Connect { endpoint, .. } if endpoint.host != "tracker"))
            .count();
        assert!(connects <= peers, "node {i} opened {connects} peer links");
    }
}

#[test]
fn a_viewer_follows_the_trackers_window_start() {
    let chunk = |i: u32| Bytes::from(vec![i as u8; 100]);
    let mut net = Net::new(MemStore::new(), vec![Net::peer_cfg(1)]);
    let live = |n: u32, first: u32| Manifest {
        path: "live".into(),
        geometry: pdtp_core::Geometry::new(u64::from(n) * 100, 100),
        hashes: (0..n).map(|i| Digest::of(&chunk(i))).collect(),
        live: Some(pdtp_core::LiveInfo { bitrate_bps: 8_000, first_chunk: first }),
    };
    net.peers[0].get(net.now, "live");
    net.pump();
    net.take_inbox(1);
    net.tell(1, Message::TellInfo(Box::new(TellInfo { content: C, manifest: live(10, 4), signature: None })));
    assert_eq!(
        net.take_inbox(1),
        vec![Message::Request(Interest::range(C, pdtp_core::ByteRange::from(800)))]
    );
    assert_eq!(net.peer(1).delivery_cursor(C), Some(8));
    // The peer takes chunk 8 (pushed by the seed), not chunk 9.
    let now = net.now;
    let p = &mut net.peers[0];
    let conn = p.accept(now).unwrap();
    p.handle_message(
        now,
        conn,
        Message::Hello(Hello {
            version: PROTOCOL_VERSION,
            peer_id: PeerId(0),
            listen_port: None,
            role: Role::Seed,
        }),
    );
    p.handle_message(now, TRACKER, Message::Transfer(taker_put_order(1, 8)));
    p.handle_message(now, conn, Message::Put(PeerRequest { token: Token(1), content: C, chunk: 8 }));
    p.handle_message(
        now,
        conn,
        Message::Data(pdtp_core::wire::Data {
            token: Token(1),
            content: C,
            chunk: 8,
            payload: pdtp_core::Payload::Real(chunk(8)),
        }),
    );
    net.pump();
    net.take_inbox(1);
    let ev = net.peer_events(1);
    assert!(ev.iter().any(|e| matches!(e, PeerEvent::Deliver { offset: 800, .. })));
    // Ten more chunks; the tracker's window now starts at 15, ahead of the viewer's floor.
    net.tell(
        1,
        Message::AppendChunks(Box::new(pdtp_core::wire::AppendChunks {
            content: C,
            first: 10,
            new_size: 2_000,
            hashes: (10..20).map(|i| Digest::of(&chunk(i))).collect(),
            window_start: 15,
            proof: Digest::ZERO,
            signature: None,
        })),
    );
    let range = Interest::range(C, pdtp_core::ByteRange::new(800, 1_500));
    assert_eq!(net.take_inbox(1), vec![Message::Unprovide(range), Message::Unrequest(range)]);
    assert_eq!(net.peer(1).delivery_cursor(C), Some(15));
    assert_eq!(net.peer(1).store().chunk_count(), 0);
    // An append that does not continue the stream is ignored with a Problem.
    net.tell(
        1,
        Message::AppendChunks(Box::new(pdtp_core::wire::AppendChunks {
            content: C,
            first: 25,
            new_size: 2_600,
            hashes: vec![Digest::of(&chunk(25))],
            window_start: 15,
            proof: Digest::ZERO,
            signature: None,
        })),
    );
    assert!(net.peer_events(1).iter().any(|e| matches!(e, PeerEvent::Node(NodeEvent::Problem(_)))));
    assert_eq!(net.peer(1).progress(C), Some((0, 20)));
}

#[test]
fn a_peer_with_a_full_connection_table_refuses_links_and_fails_an_order_that_needs_one() {
    let data = data(2_000);
    let (mut net, _) = setup(&data, 1_000, 1);
    let now = net.now;
    let p = &mut net.peers[0];
    let mut open = 0usize;
    let refusal = loop {
        match p.accept(now) {
            Ok(_) => open += 1,
            Err(n) => break n,
        }
    };
    assert_eq!(refusal.code, ErrorCode::Overloaded);
    assert!(open > 1_000_000, "{open} links accepted before the table was full");
    std::iter::from_fn(|| p.poll_transmit()).for_each(drop);
    p.handle_message(now, TRACKER, Message::Transfer(taker_get_order(5, 1)));
    let out: Vec<_> = std::iter::from_fn(|| p.poll_transmit()).collect();
    let failed = Completed { token: Token(5), hash: None, copy_us: 0 };
    assert_eq!(out, vec![Transmit::Send { conn: TRACKER, msg: Message::Completed(failed) }]);
    let events: Vec<_> = std::iter::from_fn(|| p.poll_event()).collect();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, PeerEvent::Node(NodeEvent::TransferFailed { token: Token(5), .. }))),
        "{events:?}"
    );
}

/// A giver whose taker never asks (no `Get` within `order_wait`) tells the tracker with a
/// `Completed` carrying no hash, so the tracker can give the slot to someone else at once
/// instead of after its own 140 s (issue 17's silent taker); not before `order_wait`.
#[test]
fn a_giver_tells_the_tracker_when_its_taker_never_asks() {
    let data = data(3_000);
    let (mut net, _) = setup(&data, 1_000, 0);
    net.now = Time::from_nanos(1_000);
    let t0 = net.now;
    net.seed.handle_message(t0, TRACKER, giver_order(9, 1, 4));
    assert!(seed_sends(&mut net).is_empty());
    assert_eq!(
        net.seed.poll_timeout(),
        Some(t0 + Span::from_secs(5)),
        "order_wait, not stall_timeout (20 s)"
    );
    net.seed.handle_timeout(t0 + Span::from_millis(4_999));
    assert!(seed_sends(&mut net).is_empty());
    net.seed.handle_timeout(t0 + Span::from_secs(5));
    let out = seed_sends(&mut net);
    assert!(
        matches!(
            &out[..],
            [Transmit::Send { conn, msg: Message::Completed(Completed { token: Token(9), hash: None, .. }) }]
                if *conn == TRACKER
        ),
        "{out:?}"
    );
    // A `Get` for it now is refused: the order is gone.
    let conn = raw_link(&mut net, 4);
    net.seed.handle_message(
        net.now,
        conn,
        Message::Get(PeerRequest { token: Token(9), content: C, chunk: 1 }),
    );
    net.seed.handle_timeout(t0 + Span::from_secs(11));
    assert!(seed_sends(&mut net).iter().all(|t| !matches!(t, Transmit::Send { msg: Message::Data(_), .. })));
}

/// A giver whose taker is sending it a copy over their one link waits on for the taker's
/// `Get`, which queues behind that copy's data (honest takers in the lab's flash crowd were
/// reported as never asking and benched); once that copy ends, `order_wait` holds again.
#[test]
fn a_giver_waits_on_while_its_taker_sends_it_a_copy_over_their_link() {
    let data = data(3_000);
    let (mut net, m) = setup(&data, 1_000, 2);
    // Peer 1 holds chunk 2.
    net.order(5, C, 2, 0, 1, Method::Get);
    assert_eq!(
        completed(&net.take_inbox(1)),
        vec![Completed { token: Token(5), hash: Some(m.hashes[2]), copy_us: 0 }]
    );
    net.connects_succeed = false;
    let t0 = net.now;
    // Peer 1 takes chunk 0 from peer 2 over a link that comes up but brings nothing yet.
    let take = TransferOrder { other: PeerId(2), connect: Some(ep(2)), ..taker_get_order(1, 0) };
    net.tell(1, Message::Transfer(take));
    let conn = net.log[1]
        .iter()
        .find_map(|t| match t {
            Transmit::Connect { conn, endpoint, .. } if *endpoint == ep(2) => Some(*conn),
            _ => None,
        })
        .unwrap();
    net.peer(1).handle_connected(t0, conn);
    net.pump();
    // And gives chunk 2 to peer 2, whose `Get` would come over that same link.
    net.tell(1, giver_order(9, 2, 2));
    net.advance(t0 + Span::from_secs(5));
    assert!(completed(&net.take_inbox(1)).is_empty(), "reported while its taker was sending");
    let failed =
        |e: &PeerEvent| matches!(e, PeerEvent::Node(NodeEvent::TransferFailed { token: Token(9), .. }));
    assert!(!net.peer_events(1).iter().any(failed), "the order to give was dropped");
    // The copy from peer 2 fails (its link closes): from then on `order_wait` runs out.
    net.advance(t0 + Span::from_secs(6));
    net.handle_closed(1, conn);
    net.pump();
    assert_eq!(completed(&net.take_inbox(1)), vec![Completed { token: Token(1), hash: None, copy_us: 0 }]);
    net.advance(t0 + Span::from_secs(10));
    assert_eq!(completed(&net.take_inbox(1)), vec![Completed { token: Token(9), hash: None, copy_us: 0 }]);
}

/// A tracker back from an outage is as untrusted as any: a malformed manifest for a live
/// download the peer already has is a `Problem`, never a panic (its hashes used to be sliced
/// past the viewer's own count before the manifest was checked), and the download keeps its
/// own manifest.
#[test]
fn a_malformed_manifest_after_a_tracker_outage_is_refused_not_trusted() {
    let (mut net, m) = Net::live(vec![Net::peer_cfg(1)], C, 100, 8_000);
    for i in 0..3 {
        push_live(&mut net, i);
    }
    let lm = viewer_told_of_three_chunks(&mut net, &m);
    net.tell(1, Message::Error(Notice::new(ErrorCode::GoingAway, "restarting")));
    net.advance(Time::from_nanos(2_000_000_000));
    let connects = net.log[1]
        .iter()
        .filter(|t| matches!(t, Transmit::Connect { endpoint, .. } if endpoint.host == "tracker"))
        .count();
    assert_eq!(connects, 2, "the peer reconnects");
    net.take_inbox(1);
    net.tell(1, Message::Welcome(pdtp_core::wire::Welcome { peer_id: PeerId(1), nonce: NONCE }));
    assert_eq!(net.take_inbox(1), vec![Message::AskInfo(pdtp_core::wire::AskInfo { path: "live".into() })]);
    // Ten chunks claimed, one hash.
    let mut bad = lm;
    bad.geometry.size = 1_000;
    bad.hashes.truncate(1);
    net.tell(1, Message::TellInfo(Box::new(TellInfo { content: C, manifest: bad, signature: None })));
    assert!(net.peer_events(1).iter().any(|e| matches!(
        e,
        PeerEvent::Node(NodeEvent::Problem(Notice { code: ErrorCode::Malformed, .. }))
    )));
    assert_eq!(net.peer(1).progress(C).map(|(_, n)| n), Some(3), "its own manifest stands");
}

/// A seek tells the tracker where the viewer plays: a `Request` from the first chunk not held
/// at or after the position (the tracker schedules from there first); nothing once every
/// chunk from there is held, and nothing after the download is complete.
#[test]
fn a_seek_requests_from_the_first_missing_chunk_at_the_position() {
    let data = data(10_001);
    let (mut net, _) = setup(&data, 1_000, 1);
    net.order(100, C, 6, 0, 1, Method::Get);
    net.take_inbox(1);
    let now = net.now;
    // Byte 5 500 is in chunk 5, not held: the request starts at chunk 5.
    net.peer(1).seek(now, C, 5_500);
    net.pump();
    assert_eq!(
        net.take_inbox(1),
        vec![Message::Request(Interest::range(C, pdtp_core::ByteRange::from(5_000)))]
    );
    // Byte 6 010 is in chunk 6, held: from chunk 7.
    net.peer(1).seek(now, C, 6_010);
    net.pump();
    assert_eq!(
        net.take_inbox(1),
        vec![Message::Request(Interest::range(C, pdtp_core::ByteRange::from(7_000)))]
    );
    assert!(net.peer(1).holds(C, 6) && !net.peer(1).holds(C, 7));
    assert_eq!(net.peer(1).content_size(C), Some(10_001));
    assert_eq!(net.peer(1).chunk_at(C, 10_000), Some((10, 10_000)));
    assert_eq!(net.peer(1).chunk_at(C, 10_001), None);
    // Past the end: nothing to ask for.
    net.peer(1).seek(now, C, 20_000);
    net.pump();
    assert!(net.take_inbox(1).is_empty());
    for (k, chunk) in (0..=10u32).filter(|&c| c != 6).enumerate() {
        net.order(200 + k as u64, C, chunk, 0, 1, Method::Get);
    }
    net.take_inbox(1);
    net.peer_events(1);
    net.peer(1).seek(now, C, 0);
    net.pump();
    assert!(net.take_inbox(1).is_empty(), "a complete download asked again");
}
