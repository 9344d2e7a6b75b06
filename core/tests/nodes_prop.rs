//! Property tests: arbitrary message sequences never panic a peer or a seed, and whatever a
//! peer delivers is verified, in order, and exactly the content's bytes.

#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use pdtp_core::memstore::MemStore;
use pdtp_core::peer::{Peer, PeerConfig, PeerEvent};
use pdtp_core::seed::{Seed, SeedConfig};
use pdtp_core::wire::{
    AppendChunks, Data, ErrorCode, Hello, Method, Notice, PROTOCOL_VERSION, PeerRequest, Published, Role,
    Side, TellInfo, TransferOrder, Verdict, Welcome,
};
use pdtp_core::{
    ConnId, ContentId, Digest, Endpoint, Geometry, LiveInfo, Manifest, Message, Payload, PeerId, Span, Time,
    Token,
};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use rand_core::SeedableRng;

const SIZE: usize = 2_500;
const CHUNK: u32 = 1_000;
const LIVE_CHUNK: u32 = 100;

fn file() -> Bytes {
    (0..SIZE).map(|i| (i * 7 % 253) as u8).collect::<Vec<_>>().into()
}

fn live_chunk(i: u32) -> Bytes {
    Bytes::from(vec![i as u8; LIVE_CHUNK as usize])
}

fn on_demand() -> Manifest {
    let d = file();
    let g = Geometry::new(SIZE as u64, CHUNK);
    let hashes = (0..g.num_chunks())
        .map(|i| Digest::of(&d[g.chunk_bytes(i).start as usize..g.chunk_bytes(i).end as usize]))
        .collect();
    Manifest { path: "a".into(), geometry: g, hashes, live: None }
}

fn live(n: u32) -> Manifest {
    Manifest {
        path: "b".into(),
        geometry: Geometry::new(u64::from(n * LIVE_CHUNK), LIVE_CHUNK),
        hashes: (0..n).map(|i| Digest::of(&live_chunk(i))).collect(),
        live: Some(LiveInfo { bitrate_bps: 8_000, first_chunk: 0 }),
    }
}

fn ep() -> Endpoint {
    Endpoint { host: "x".into(), port: 1 }
}

/// The right bytes for a chunk of content 0 ("a") or 1 ("b"), or the same length with the
/// first byte flipped (so only the digest can tell).
fn payload(content: u32, chunk: u32, good: bool) -> Payload {
    let bytes = if content == 0 {
        let g = on_demand().geometry;
        let r = g.chunk_bytes(chunk);
        file().slice(r.start as usize..r.end as usize)
    } else {
        live_chunk(chunk)
    };
    if good || bytes.is_empty() {
        return Payload::Real(bytes);
    }
    let mut v = bytes.to_vec();
    v[0] ^= 0x55;
    Payload::Real(v.into())
}

#[derive(Clone, Debug)]
enum Op {
    Get(bool),
    Accept,
    Connected(u32),
    Closed(u32),
    Advance(u64),
    Msg(u32, Message),
    /// A well-formed taker transfer: order, link, request, data (good or junk).
    Flow {
        token: u64,
        content: u32,
        chunk: u32,
        get: bool,
        good: bool,
    },
}

fn message() -> impl Strategy<Value = Message> {
    let token = (0u64..4).prop_map(Token);
    let content = (0u32..3).prop_map(ContentId);
    let req = (token.clone(), content.clone(), 0u32..6).prop_map(|(token, content, chunk)| PeerRequest {
        token,
        content,
        chunk,
    });
    let code = prop_oneof![
        Just(ErrorCode::TokenRefused),
        Just(ErrorCode::ChunkUnavailable),
        Just(ErrorCode::UnknownUrl),
        Just(ErrorCode::Unauthorized),
        Just(ErrorCode::GoingAway),
    ];
    prop_oneof![
        (0u32..3).prop_map(|p| Message::Welcome(Welcome { peer_id: PeerId(p), nonce: [1; 16] })),
        (0u32..3).prop_map(|p| Message::Hello(Hello {
            version: PROTOCOL_VERSION,
            peer_id: PeerId(p),
            listen_port: None,
            role: Role::Peer
        })),
        (0u32..3, any::<bool>()).prop_map(|(k, bad)| {
            let (content, mut manifest) = match k {
                0 => (ContentId(0), on_demand()),
                1 => (ContentId(1), live(3)),
                _ => (ContentId(2), on_demand()),
            };
            if bad {
                manifest.hashes.pop();
            }
            Message::TellInfo(Box::new(TellInfo { content, manifest, signature: None }))
        }),
        (0u32..8, 1u32..3, 0u32..8).prop_map(|(first, n, window_start)| {
            Message::AppendChunks(Box::new(AppendChunks {
                content: ContentId(1),
                first,
                new_size: u64::from((first + n) * LIVE_CHUNK),
                hashes: (first..first + n).map(|i| Digest::of(&live_chunk(i))).collect(),
                window_start,
                proof: Digest::ZERO,
                signature: None,
            }))
        }),
        (token.clone(), content.clone(), 0u32..6, any::<bool>(), any::<bool>(), 0u32..3, any::<bool>())
            .prop_map(|(token, content, chunk, giver, get, other, connect)| {
                Message::Transfer(TransferOrder {
                    token,
                    content,
                    chunk,
                    side: if giver { Side::Giver } else { Side::Taker },
                    method: if get { Method::Get } else { Method::Put },
                    other: PeerId(other),
                    connect: connect.then(ep),
                    key: pdtp_core::wire::LinkSecret(Box::new([1; 32])),
                    punch: false,
                })
            }),
        (token.clone(), any::<bool>())
            .prop_map(|(token, accepted)| Message::Verdict(Verdict { token, accepted })),
        req.clone().prop_map(Message::Get),
        req.clone().prop_map(Message::Put),
        (req, any::<bool>()).prop_map(|(r, good)| Message::Data(Data {
            token: r.token,
            content: r.content,
            chunk: r.chunk,
            payload: payload(r.content.0, r.chunk, good),
        })),
        (code.clone(), token.clone())
            .prop_map(|(c, t)| Message::Warning(Notice::new(c, format!("token {:016x}: x", t.0)))),
        code.prop_map(|c| Message::Error(Notice::new(c, "a"))),
        Just(Message::Published(Published { path: "a".into(), content: ContentId(0) })),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => any::<bool>().prop_map(Op::Get),
        1 => Just(Op::Accept),
        1 => (0u32..5).prop_map(Op::Connected),
        1 => (0u32..5).prop_map(Op::Closed),
        1 => (0u64..30_000).prop_map(Op::Advance),
        6 => (0u64..6, 0u32..2, 0u32..8, any::<bool>(), proptest::bool::weighted(0.8))
            .prop_map(|(token, content, chunk, get, good)| Op::Flow { token, content, chunk, get, good }),
        8 => ((0u32..5), message()).prop_map(|(c, m)| Op::Msg(c, m)),
    ]
}

/// Runs one taker transfer against `p` as the tracker and the giver (peer 2) would.
fn flow(p: &mut Peer<MemStore>, now: Time, token: u64, content: u32, chunk: u32, get: bool, good: bool) {
    while p.poll_transmit().is_some() {}
    let token = Token(token);
    let (cid, method) = (ContentId(content), if get { Method::Get } else { Method::Put });
    let order = TransferOrder {
        token,
        content: cid,
        chunk,
        side: Side::Taker,
        method,
        other: PeerId(2),
        connect: get.then(ep),
        key: pdtp_core::wire::LinkSecret(Box::new([1; 32])),
        punch: false,
    };
    p.handle_message(now, ConnId(0), Message::Transfer(order));
    let data = Message::Data(Data { token, content: cid, chunk, payload: payload(content, chunk, good) });
    if get {
        let mut link = None;
        let mut asked = false;
        for _ in 0..4 {
            let Some(t) = p.poll_transmit() else { break };
            match t {
                pdtp_core::Transmit::Connect { conn, .. } => {
                    link = Some(conn);
                    p.handle_connected(now, conn);
                }
                pdtp_core::Transmit::Send { conn, msg: Message::Get(r) } if r.token == token => {
                    link = Some(conn);
                    asked = true;
                }
                _ => {}
            }
        }
        if let (Some(conn), true) = (link, asked) {
            p.handle_message(now, conn, data);
        }
    } else {
        let conn = p.accept(now).unwrap();
        p.handle_message(
            now,
            conn,
            Message::Hello(Hello {
                version: PROTOCOL_VERSION,
                peer_id: PeerId(2),
                listen_port: None,
                role: Role::Peer,
            }),
        );
        p.handle_message(now, conn, Message::Put(PeerRequest { token, content: cid, chunk }));
        p.handle_message(now, conn, data);
    }
}

/// Runs `ops` against a peer, checking invariants after each; returns how many `Deliver`s it saw.
fn run_peer(primed: bool, ops: Vec<Op>) -> usize {
    let mut cfg = PeerConfig::new(PeerId(1), ep());
    cfg.live_window = 3;
    let mut now = Time::ZERO;
    let mut p = Peer::new(now, cfg, MemStore::new(), pdtp_core::Rng::seed_from_u64(3));
    p.handle_connected(now, ConnId(0));
    if primed {
        // Start from a peer downloading both contents, so sequences reach transfers.
        p.handle_message(now, ConnId(0), Message::Welcome(Welcome { peer_id: PeerId(1), nonce: [1; 16] }));
        p.get(now, "a");
        p.get(now, "b");
        p.handle_message(
            now,
            ConnId(0),
            Message::TellInfo(Box::new(TellInfo {
                content: ContentId(0),
                manifest: on_demand(),
                signature: None,
            })),
        );
        p.handle_message(
            now,
            ConnId(0),
            Message::TellInfo(Box::new(TellInfo {
                content: ContentId(1),
                manifest: live(3),
                signature: None,
            })),
        );
    }
    let mut checker = Checker::default();
    let mut delivered = 0;
    for op in ops {
        match op {
            Op::Get(a) => p.get(now, if a { "a" } else { "b" }),
            Op::Accept => {
                p.accept(now).unwrap();
            }
            Op::Connected(c) => p.handle_connected(now, ConnId(c)),
            Op::Closed(c) => p.handle_closed(now, ConnId(c)),
            Op::Advance(ms) => {
                now += Span::from_millis(ms);
                p.handle_timeout(now);
                assert!(p.poll_timeout().is_none_or(|t| t > now), "an expired timer survived handle_timeout");
            }
            Op::Msg(c, m) => p.handle_message(now, ConnId(c), m),
            Op::Flow { token, content, chunk, get, good } => {
                flow(&mut p, now, token, content, chunk, get, good)
            }
        }
        while p.poll_transmit().is_some() {}
        while let Some(e) = p.poll_event() {
            if matches!(e, PeerEvent::Deliver { .. }) {
                delivered += 1;
            }
            checker.check(&e);
        }
        if let Some((have, total)) = p.progress(ContentId(0)) {
            assert!(have <= total);
        }
        assert!(p.store().chunk_count() <= 3 + 3, "live window bound (3) plus on-demand chunks (3)");
    }
    delivered
}

/// Checks every `Deliver` continues exactly where the previous one of its content ended and
/// carries the content's true bytes.
#[derive(Default)]
struct Checker {
    next: [Option<u64>; 3],
    completed: [bool; 3],
}

impl Checker {
    fn check(&mut self, e: &PeerEvent) {
        match e {
            PeerEvent::Deliver { content, offset, payload: Payload::Real(b) } => {
                let i = content.0 as usize;
                assert!(!self.completed[i], "delivery after DownloadComplete");
                if let Some(n) = self.next[i] {
                    assert!(*offset >= n, "delivery went backwards");
                    if content.0 != 1 {
                        assert_eq!(*offset, n, "gap in on-demand delivery");
                    }
                }
                self.next[i] = Some(offset + b.len() as u64);
                if content.0 == 1 {
                    let chunk = (*offset / u64::from(LIVE_CHUNK)) as u32;
                    assert!(b == &live_chunk(chunk), "wrong live bytes delivered at {offset}");
                } else {
                    let want = file().slice(*offset as usize..*offset as usize + b.len());
                    assert!(b == &want, "wrong bytes delivered at {offset}");
                }
            }
            PeerEvent::Deliver { .. } => panic!("virtual payload from a MemStore"),
            PeerEvent::DownloadComplete { content } => {
                let i = content.0 as usize;
                assert_eq!(self.next[i], Some(SIZE as u64), "complete before every byte was delivered");
                self.completed[i] = true;
            }
            _ => {}
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn peer_survives_any_sequence(primed in any::<bool>(), ops in proptest::collection::vec(op(), 1..80)) {
        run_peer(primed, ops);
    }

    #[test]
    fn seed_survives_any_sequence(ops in proptest::collection::vec(op(), 1..60)) {
        let mut now = Time::ZERO;
        let store = MemStore::new().with_file("a", file());
        let mut s = Seed::new(now, SeedConfig::new(PeerId(0), ep(), b"k".to_vec()), store, pdtp_core::Rng::seed_from_u64(4));
        s.handle_connected(now, ConnId(0));
        for op in ops {
            match op {
                Op::Get(_) => s.publish(now, on_demand()),
                Op::Accept => { s.accept(now).unwrap(); }
                Op::Connected(c) => s.handle_connected(now, ConnId(c)),
                Op::Closed(c) => s.handle_closed(now, ConnId(c)),
                Op::Advance(ms) => {
                    now += Span::from_millis(ms);
                    s.handle_timeout(now);
                    prop_assert!(s.poll_timeout().is_none_or(|t| t > now));
                }
                Op::Msg(c, m) => s.handle_message(now, ConnId(c), m),
                Op::Flow { token, chunk, get, .. } => {
                    // A giver transfer: the taker (peer 2) asks on an accepted link.
                    let order = TransferOrder {
                        token: Token(token),
                        content: ContentId(0),
                        chunk,
                        side: Side::Giver,
                        method: Method::Get,
                        other: PeerId(2),
                        connect: None,
                        key: pdtp_core::wire::LinkSecret(Box::new([1; 32])),
                        punch: false,
                    };
                    let conn = s.accept(now).unwrap();
                    let hello = Hello { version: PROTOCOL_VERSION, peer_id: PeerId(2), listen_port: None, role: Role::Peer };
                    s.handle_message(now, conn, Message::Hello(hello));
                    let req = PeerRequest { token: Token(token), content: ContentId(0), chunk };
                    if get {
                        s.handle_message(now, ConnId(0), Message::Transfer(order));
                        s.handle_message(now, conn, Message::Get(req));
                    } else {
                        s.handle_message(now, conn, Message::Get(req));
                        s.handle_message(now, ConnId(0), Message::Transfer(order));
                    }
                }
            }
            while s.poll_transmit().is_some() {}
            while s.poll_event().is_some() {}
        }
    }
}

/// The generator must reach real transfers, or the property above proves little.
#[test]
fn sequences_reach_deliveries() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = proptest::collection::vec(op(), 40..80);
    let total: usize = (0..100)
        .map(|_| run_peer(true, strategy.new_tree(&mut runner).map(|t| t.current()).unwrap_or_default()))
        .sum();
    assert!(total >= 20, "only {total} deliveries in 100 primed sequences");
}
