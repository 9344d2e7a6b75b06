//! Tracker unit tests: the tracker driven by hand-written messages.

use rand_core::SeedableRng;

use super::*;
use crate::auth;
use crate::chunks::{ByteRange, Geometry};
use crate::ids::{ContentId, Endpoint};
use crate::manifest::{Digest, LiveInfo, Manifest};
use crate::time::Span;
use crate::wire::{
    AppendChunks, AskInfo, Completed, Hello, Interest, Method, PROTOCOL_VERSION, Publish, Role, Side,
    TransferOrder,
};

const KEY: &[u8] = b"sekrit";

struct Bench {
    tr: Tracker,
    now: Time,
    /// Outputs seen by `connect` that were not its welcome.
    backlog: Vec<Transmit>,
    /// `connect` puts peer `id` at `2001:db8:0:id::1` instead of `10.0.0.id`.
    ipv6: bool,
}

fn chunk_hash(i: u32) -> Digest {
    Digest::of(&i.to_be_bytes())
}

fn manifest(path: &str, chunks: u32, chunk_size: u32) -> Manifest {
    Manifest {
        path: path.into(),
        geometry: Geometry::new(u64::from(chunks) * u64::from(chunk_size), chunk_size),
        hashes: (0..chunks).map(chunk_hash).collect(),
        live: None,
    }
}

impl Bench {
    fn new() -> Self {
        Self::with(TrackerConfig::with_key(KEY))
    }

    fn with(config: TrackerConfig) -> Self {
        let tr = Tracker::new(config, crate::Rng::seed_from_u64(7));
        Self { tr, now: Time::ZERO, backlog: Vec::new(), ipv6: false }
    }

    fn drain(&mut self) -> Vec<Transmit> {
        let mut out = std::mem::take(&mut self.backlog);
        out.extend(std::iter::from_fn(|| self.tr.poll_transmit()));
        out
    }

    fn connect(&mut self, id: u32, role: Role, port: Option<u16>) -> (ConnId, [u8; 16]) {
        let host = if self.ipv6 { format!("2001:db8:0:{id:x}::1") } else { format!("10.0.0.{id}") };
        self.connect_from(&host, id, role, port)
    }

    fn connect_from(&mut self, host: &str, id: u32, role: Role, port: Option<u16>) -> (ConnId, [u8; 16]) {
        let conn = self.tr.accept(self.now, host.to_owned()).unwrap();
        let hello = Hello { version: PROTOCOL_VERSION, peer_id: PeerId(id), listen_port: port, role };
        self.tr.handle_message(self.now, conn, Message::Hello(hello));
        let mut nonce = None;
        for t in std::iter::from_fn(|| self.tr.poll_transmit()).collect::<Vec<_>>() {
            match t {
                Transmit::Send { conn: c, msg: Message::Welcome(w) } if c == conn => nonce = Some(w.nonce),
                other => self.backlog.push(other),
            }
        }
        (conn, nonce.expect("a welcome"))
    }

    /// Seed `id` connects and publishes `m`: its connection, nonce and what the tracker sent.
    fn publish_as(&mut self, id: u32, m: Manifest) -> (ConnId, [u8; 16], Vec<Transmit>) {
        self.publish_stating(id, m, None, None)
    }

    /// Seed `id` connects and publishes `m` stating uplink `uplink_bps`, with a proof of
    /// `proved` (the stated uplink when `None`).
    fn publish_stating(
        &mut self,
        id: u32,
        m: Manifest,
        uplink_bps: Option<u64>,
        proved: Option<Option<u64>>,
    ) -> (ConnId, [u8; 16], Vec<Transmit>) {
        let (conn, nonce) = self.connect(id, Role::Seed, Some(7000));
        let proof = auth::publish_proof(KEY, &nonce, &m, proved.unwrap_or(uplink_bps));
        let publish = Publish { manifest: m, proof, signature: None, uplink_bps };
        self.tr.handle_message(self.now, conn, Message::Publish(Box::new(publish)));
        (conn, nonce, self.drain())
    }

    fn seed_with(&mut self, m: Manifest) -> (ConnId, ContentId) {
        let (conn, _, out) = self.publish_as(1, m);
        (conn, published(&out))
    }

    /// A seed publishing the empty live stream "show"; its connection and nonce.
    fn live_seed(&mut self) -> (ConnId, [u8; 16]) {
        let mut m = manifest("show", 0, 1000);
        m.live = Some(LiveInfo { bitrate_bps: 8_000, first_chunk: 0 });
        let (conn, nonce, _) = self.publish_as(1, m);
        (conn, nonce)
    }

    /// The live stream "show" with chunks 0 and 1 of 1000 bytes appended; its content id
    /// and the seed's connection.
    fn live_show_of_two_chunks(&mut self) -> (ContentId, ConnId) {
        self.live_show_of(2)
    }

    /// The live stream "show" with chunks `0..n` of 1000 bytes appended.
    fn live_show_of(&mut self, n: u32) -> (ContentId, ConnId) {
        let (seed_conn, nonce) = self.live_seed();
        let content = self.tr.content_id("show").unwrap();
        let hashes: Vec<Digest> = (0..n).map(chunk_hash).collect();
        let size = 1000 * u64::from(n);
        let proof = auth::append_proof(KEY, &nonce, content, 0, size, 0, &hashes);
        let append = AppendChunks {
            content,
            first: 0,
            new_size: size,
            hashes,
            window_start: 0,
            proof,
            signature: None,
        };
        self.tr.handle_message(self.now, seed_conn, Message::AppendChunks(Box::new(append)));
        self.drain();
        (content, seed_conn)
    }

    /// A viewer joining "show" and asking for it from its start on.
    fn live_viewer(&mut self, id: u32, content: ContentId) -> ConnId {
        let (conn, _) = self.connect(id, Role::Peer, Some(8000));
        self.tr.handle_message(self.now, conn, Message::AskInfo(AskInfo { path: "show".into() }));
        self.tr.handle_message(
            self.now,
            conn,
            Message::Request(Interest::range(content, ByteRange::from(0))),
        );
        conn
    }

    fn peer_requesting(&mut self, id: u32, content: ContentId) -> ConnId {
        let (conn, _) = self.connect(id, Role::Peer, Some(8000));
        self.tr.handle_message(self.now, conn, Message::Request(Interest::all(content)));
        conn
    }

    /// Peer `id` connects from `host` and requests `content`.
    fn peer_from(&mut self, host: &str, id: u32, content: ContentId) -> ConnId {
        let (conn, _) = self.connect_from(host, id, Role::Peer, Some(8000));
        self.tr.handle_message(self.now, conn, Message::Request(Interest::all(content)));
        conn
    }

    /// Peer `id` requests `content` and every order is completed honestly until none is left.
    fn peer_fetching_everything(&mut self, id: u32, content: ContentId) {
        self.peer_requesting(id, content);
        loop {
            let out = self.drain();
            if complete_all(self, &out, None) == 0 {
                break;
            }
        }
    }

    /// The taker on `conn` reports order `o` done, its chunk verified, the copy having taken
    /// `copy_us` (0: the taker already held it).
    fn complete(&mut self, conn: ConnId, o: &TransferOrder, copy_us: u32) {
        let done = Completed { token: o.token, hash: Some(chunk_hash(o.chunk)), copy_us };
        self.tr.handle_message(self.now, conn, Message::Completed(done));
    }

    /// Live "show" with the seed limited to one upload (`seed_limits.max_uploads = 1` in
    /// `cfg`): viewer 10 joins, gets chunk 0 from the seed in 100 ms (which measures the
    /// seed) and so holds it; the seed's only upload then goes to chunk 1. Returns the
    /// content, viewer 10's connection and the time it joined.
    fn first_viewer_holding_chunk_0(&mut self) -> (ContentId, ConnId, Time) {
        let (content, _) = self.live_show_of_two_chunks();
        let start = self.now;
        let first = self.live_viewer(10, content);
        let os = orders(&self.drain());
        let (_, o) = os.iter().find(|(c, o)| *c == first && o.side == Side::Taker).expect("an order");
        assert_eq!(o.chunk, 0);
        self.now = start + Span::from_millis(100);
        self.complete(first, o, 100_000);
        self.drain();
        (content, first, start)
    }

    fn advance(&mut self, span: Span) {
        self.now += span;
        self.tr.handle_timeout(self.now);
    }
}

/// For loops that drive takers to the end: whether to go on after a round that completed
/// `done` copies. Idle rounds advance time a second each (a taker that reported a failed or
/// corrupt copy waits up to 5 s before its next order); nine in a row end the loop.
fn keep_going(b: &mut Bench, idle: &mut u32, done: usize) -> bool {
    if done > 0 {
        *idle = 0;
        return true;
    }
    *idle += 1;
    b.advance(Span::from_secs(1));
    *idle <= 8
}

/// Orders in `out` for node `giver` to give chunk 0.
fn chunk_0_given_by(out: &[Transmit], giver: ConnId) -> usize {
    orders(out).into_iter().filter(|(c, o)| *c == giver && o.side == Side::Giver && o.chunk == 0).count()
}

/// The content id a `Published` among `out` gave.
fn published(out: &[Transmit]) -> ContentId {
    out.iter()
        .find_map(|t| match t {
            Transmit::Send { msg: Message::Published(p), .. } => Some(p.content),
            _ => None,
        })
        .expect("published")
}

fn orders(out: &[Transmit]) -> Vec<(ConnId, TransferOrder)> {
    out.iter()
        .filter_map(|t| match t {
            Transmit::Send { conn, msg: Message::Transfer(o) } => Some((*conn, o.clone())),
            _ => None,
        })
        .collect()
}

fn error_code(out: &[Transmit]) -> Option<ErrorCode> {
    out.iter().find_map(|t| match t {
        Transmit::Send { msg: Message::Error(n), .. } => Some(n.code),
        _ => None,
    })
}

fn closed(out: &[Transmit], conn: ConnId) -> bool {
    out.iter().any(|t| matches!(t, Transmit::Close { conn: c, .. } if *c == conn))
}

#[test]
fn message_before_hello_is_an_error_and_closes() {
    let mut b = Bench::new();
    let conn = b.tr.accept(b.now, "h".into()).unwrap();
    b.tr.handle_message(b.now, conn, Message::AskInfo(AskInfo { path: "x".into() }));
    let out = b.drain();
    assert_eq!(error_code(&out), Some(ErrorCode::HelloExpected));
    assert!(closed(&out, conn));
}

#[test]
fn duplicate_peer_id_is_refused() {
    let mut b = Bench::new();
    b.connect(5, Role::Peer, None);
    let conn = b.tr.accept(b.now, "h".into()).unwrap();
    let hello = Hello { version: PROTOCOL_VERSION, peer_id: PeerId(5), listen_port: None, role: Role::Peer };
    b.tr.handle_message(b.now, conn, Message::Hello(hello));
    let out = b.drain();
    assert_eq!(error_code(&out), Some(ErrorCode::DuplicatePeerId));
    assert!(closed(&out, conn));
}

#[test]
fn unknown_url_is_a_warning_and_keeps_the_connection() {
    let mut b = Bench::new();
    let (conn, _) = b.connect(5, Role::Peer, None);
    b.tr.handle_message(b.now, conn, Message::AskInfo(AskInfo { path: "nope.mp4".into() }));
    let out = b.drain();
    assert!(
        matches!(&out[..], [Transmit::Send { msg: Message::Warning(n), .. }] if n.code == ErrorCode::UnknownUrl)
    );
    assert!(!closed(&out, conn));
}

#[test]
fn publish_needs_the_seed_key() {
    let mut b = Bench::new();
    let (conn, nonce) = b.connect(1, Role::Seed, Some(7000));
    let m = manifest("a.bin", 3, 1000);
    let proof = auth::publish_proof(b"wrong key", &nonce, &m, None);
    b.tr.handle_message(
        b.now,
        conn,
        Message::Publish(Box::new(Publish { manifest: m.clone(), proof, signature: None, uplink_bps: None })),
    );
    let out = b.drain();
    assert_eq!(error_code(&out), Some(ErrorCode::Unauthorized));
    assert!(closed(&out, conn));

    // A peer with the right proof is still not a seed.
    let (conn, nonce) = b.connect(2, Role::Peer, Some(7000));
    let proof = auth::publish_proof(KEY, &nonce, &m, None);
    b.tr.handle_message(
        b.now,
        conn,
        Message::Publish(Box::new(Publish { manifest: m, proof, signature: None, uplink_bps: None })),
    );
    assert_eq!(error_code(&b.drain()), Some(ErrorCode::Unauthorized));
}

#[test]
fn a_proof_from_another_connection_is_refused() {
    let mut b = Bench::new();
    let (_, nonce_a) = b.connect(1, Role::Seed, Some(7000));
    let (conn_b, _) = b.connect(2, Role::Seed, Some(7001));
    let m = manifest("a.bin", 3, 1000);
    let replayed = auth::publish_proof(KEY, &nonce_a, &m, None);
    b.tr.handle_message(
        b.now,
        conn_b,
        Message::Publish(Box::new(Publish {
            manifest: m,
            proof: replayed,
            signature: None,
            uplink_bps: None,
        })),
    );
    assert_eq!(error_code(&b.drain()), Some(ErrorCode::Unauthorized));
}

#[test]
fn request_is_scheduled_from_the_seed_to_both_ends() {
    let mut b = Bench::new();
    let (seed_conn, content) = b.seed_with(manifest("a.bin", 3, 1000));
    let peer_conn = b.peer_requesting(10, content);
    let out = b.drain();
    let os = orders(&out);
    assert_eq!(os.len(), 6, "three chunks, two ends each: {os:?}");
    for (conn, o) in &os {
        if *conn == peer_conn {
            assert_eq!(o.side, Side::Taker);
            assert_eq!(o.method, Method::Get);
            assert_eq!(o.other, PeerId(1));
            assert_eq!(o.connect, Some(Endpoint { host: "10.0.0.1".into(), port: 7000 }));
        } else {
            assert_eq!(*conn, seed_conn);
            assert_eq!(o.side, Side::Giver);
            assert_eq!(o.connect, None);
        }
    }
}

#[test]
fn range_past_the_end_is_a_warning() {
    let mut b = Bench::new();
    let (_, content) = b.seed_with(manifest("a.bin", 3, 1000));
    let (conn, _) = b.connect(10, Role::Peer, Some(8000));
    let i = Interest::range(content, ByteRange::new(5_000, 6_000));
    b.tr.handle_message(b.now, conn, Message::Request(i));
    let out = b.drain();
    assert!(out.iter().any(
        |t| matches!(t, Transmit::Send { msg: Message::Warning(n), .. } if n.code == ErrorCode::RangePastEnd)
    ));
    assert!(orders(&out).is_empty());
}

#[test]
fn per_node_limits_hold_under_demand() {
    let mut b = Bench::new();
    let (seed_conn, content) = b.seed_with(manifest("a.bin", 50, 1000));
    for id in 10..40 {
        b.peer_requesting(id, content);
    }
    let out = b.drain();
    let os = orders(&out);
    let seed_uploads = os.iter().filter(|(c, _)| *c == seed_conn).count();
    assert_eq!(seed_uploads, 5, "the seed gives at most max_uploads at once");
    let stats = b.tr.stats();
    for n in &stats.nodes {
        assert!(n.uploads <= 5 && n.downloads <= 5 && n.uploads + n.downloads <= 10, "{n:?}");
    }
}

/// Completes every order in `out` addressed to a taker, with the right or a wrong hash.
fn complete_all(b: &mut Bench, out: &[Transmit], corrupt_from: Option<PeerId>) -> usize {
    let mut n = 0;
    for (conn, o) in orders(out) {
        if o.side != Side::Taker {
            continue;
        }
        let hash = if Some(o.other) == corrupt_from { Digest::of(b"garbage") } else { chunk_hash(o.chunk) };
        let done = Completed { token: o.token, hash: Some(hash), copy_us: 0 };
        b.tr.handle_message(b.now, conn, Message::Completed(done));
        n += 1;
    }
    n
}

/// Verdicts the tracker sent, as (connection, accepted).
fn verdicts(out: &[Transmit]) -> Vec<(ConnId, bool)> {
    out.iter()
        .filter_map(|t| match t {
            Transmit::Send { conn, msg: Message::Verdict(v) } => Some((*conn, v.accepted)),
            _ => None,
        })
        .collect()
}

/// A seed of a two-chunk file and peer 10 requesting it: the bench, the seed's and the
/// taker's connections, the content and the taker's two orders.
fn a_taker_of_two_chunks() -> (Bench, ConnId, ConnId, ContentId, Vec<TransferOrder>) {
    let mut b = Bench::new();
    let (seed_conn, content) = b.seed_with(manifest("a.bin", 2, 1000));
    let taker = b.peer_requesting(10, content);
    let os: Vec<TransferOrder> =
        orders(&b.drain()).into_iter().filter(|(_, o)| o.side == Side::Taker).map(|(_, o)| o).collect();
    assert_eq!(os.len(), 2);
    (b, seed_conn, taker, content, os)
}

#[test]
fn completion_makes_the_taker_a_holder_and_only_a_rejection_reaches_the_giver() {
    let (mut b, seed_conn, taker, content, os) = a_taker_of_two_chunks();
    // The first copy verifies: the giver hears nothing about it.
    let good = Completed { token: os[0].token, hash: Some(chunk_hash(os[0].chunk)), copy_us: 0 };
    b.tr.handle_message(b.now, taker, Message::Completed(good));
    assert_eq!(verdicts(&b.drain()), vec![]);
    // The second arrives wrong: the giver is told, so it can re-check its copy.
    let bad = Completed { token: os[1].token, hash: Some(Digest::of(b"garbage")), copy_us: 0 };
    b.tr.handle_message(b.now, taker, Message::Completed(bad));
    assert_eq!(verdicts(&b.drain()), vec![(seed_conn, false)]);
    // The chunk is ordered again once the taker's short wait is over (it reported a copy
    // gone wrong: 50 ms); this time it verifies, silently.
    b.advance(Span::from_millis(50));
    let out = b.drain();
    assert_eq!(complete_all(&mut b, &out, None), 1);
    assert_eq!(verdicts(&b.drain()), vec![]);
    let events: Vec<_> = std::iter::from_fn(|| b.tr.poll_event()).collect();
    assert!(events.contains(&TrackerEvent::Completed { peer: PeerId(10), content }));
    // A second peer can now be served by the first.
    b.peer_requesting(11, content);
    let os = orders(&b.drain());
    assert!(!os.is_empty());
    let stats = b.tr.stats();
    assert_eq!(stats.contents[0].bytes_from_origin, 2000);
    assert_eq!(stats.contents[0].chunk_copies, 4);
}

#[test]
fn a_copy_that_failed_is_not_reported_as_corrupt() {
    let (mut b, _, taker, _, os) = a_taker_of_two_chunks();
    // Nothing usable arrived (the giver went away mid-copy), then wrong bytes arrived.
    let failed = Completed { token: os[0].token, hash: None, copy_us: 0 };
    b.tr.handle_message(b.now, taker, Message::Completed(failed));
    let wrong = Completed { token: os[1].token, hash: Some(Digest::of(b"garbage")), copy_us: 0 };
    b.tr.handle_message(b.now, taker, Message::Completed(wrong));
    let judged: Vec<_> = std::iter::from_fn(|| b.tr.poll_event())
        .filter_map(|e| match e {
            TrackerEvent::Finished { chunk, outcome, .. } => Some((chunk, outcome)),
            _ => None,
        })
        .collect();
    assert_eq!(judged, vec![(os[0].chunk, trust::Outcome::Failed), (os[1].chunk, trust::Outcome::Corrupt)]);
}

#[test]
fn a_corrupting_giver_loses_reputation_and_is_routed_around() {
    let b = corrupting_giver_run(GiverPolicy::Random);
    let trust = b.tr.trust();
    assert!(trust.giver(PeerId(10)).reputation() < trust.giver(PeerId(1)).reputation());
    // Only the trust policy reads the edges, so no other policy keeps them.
    assert_eq!(trust.edge_count(), 0);
}

#[test]
fn under_the_trust_policy_a_corrupting_giver_loses_its_takers_trust() {
    let b = corrupting_giver_run(GiverPolicy::Trust);
    let trust = b.tr.trust();
    assert!(trust.edge_count() > 0);
    assert!(trust.trust(PeerId(20), PeerId(10)) < trust.trust(PeerId(20), PeerId(1)));
}

/// Peer 10 downloads honestly, then corrupts everything it gives to peers 20–29; checks it
/// is banned, never ordered from after the ban, and that everyone still finishes.
fn corrupting_giver_run(giver: GiverPolicy) -> Bench {
    let mut cfg = TrackerConfig::with_key(KEY);
    cfg.policy.giver = giver;
    corrupting_giver_run_with(cfg)
}

fn corrupting_giver_run_with(cfg: TrackerConfig) -> Bench {
    corrupting_giver_run_on(Bench::with(cfg))
}

fn corrupting_giver_run_on(mut b: Bench) -> Bench {
    let (_, content) = b.seed_with(manifest("a.bin", 40, 1000));
    // Peer 10 gets everything honestly first.
    b.peer_fetching_everything(10, content);
    // Peer 10 now turns bad; peers 20..30 download; everything 10 gives is corrupt.
    for id in 20..30 {
        b.peer_requesting(id, content);
    }
    let mut from_bad_after_ban = 0;
    let mut banned = false;
    let mut idle = 0;
    for _ in 0..400 {
        let out = b.drain();
        let done = complete_all(&mut b, &out, Some(PeerId(10)));
        // Events come out in the order things happened: nothing may be ordered from the
        // bad giver after its ban.
        for e in std::iter::from_fn(|| b.tr.poll_event()) {
            match e {
                TrackerEvent::Banned { peer: PeerId(10) } => banned = true,
                TrackerEvent::Ordered { giver, .. } if banned && giver == PeerId(10) => {
                    from_bad_after_ban += 1
                }
                _ => {}
            }
        }
        if !keep_going(&mut b, &mut idle, done) {
            break;
        }
    }
    assert!(banned, "the corrupting giver was banned");
    assert_eq!(from_bad_after_ban, 0, "no order from a banned giver");
    assert!(b.tr.trust().giver(PeerId(10)).corrupt >= 3);
    let stats = b.tr.stats();
    assert_eq!(stats.contents[0].completions, 11, "everyone still finished");
    b
}

/// Issue 17's probe: seven false "bad hash" reports got an honest giver banned. Three
/// identities at one address now say every copy from honest peer 10 is corrupt: one witness
/// bans nobody, however often it speaks, and everyone, liars included, still finishes.
#[test]
fn false_corruption_reports_from_one_address_ban_nobody() {
    let mut b = Bench::new();
    let (_, content) = b.seed_with(manifest("a.bin", 40, 1000));
    b.peer_fetching_everything(10, content);
    let liars: Vec<ConnId> = (20..23)
        .map(|id| {
            let (conn, _) = b.connect_from("10.9.9.9", id, Role::Peer, Some(8000));
            b.tr.handle_message(b.now, conn, Message::Request(Interest::all(content)));
            conn
        })
        .collect();
    for id in 30..34 {
        b.peer_requesting(id, content);
    }
    let mut lies = 0;
    let mut idle = 0;
    for _ in 0..800 {
        let out = b.drain();
        let mut n = 0;
        for (conn, o) in orders(&out).into_iter().filter(|(_, o)| o.side == Side::Taker) {
            let lying = liars.contains(&conn) && o.other == PeerId(10);
            lies += usize::from(lying);
            let hash = if lying { Digest::of(b"garbage") } else { chunk_hash(o.chunk) };
            b.tr.handle_message(
                b.now,
                conn,
                Message::Completed(Completed { token: o.token, hash: Some(hash), copy_us: 0 }),
            );
            n += 1;
        }
        if !keep_going(&mut b, &mut idle, n) {
            break;
        }
    }
    let events: Vec<_> = std::iter::from_fn(|| b.tr.poll_event()).collect();
    assert!(lies >= 3, "the liars were ordered from peer 10 only {lies} times");
    assert!(!events.iter().any(|e| matches!(e, TrackerEvent::Banned { .. })), "an honest giver was banned");
    assert_eq!(b.tr.stats().contents[0].completions, 8, "everyone finished");
}

/// The seed of a live stream is told when the stream outgrows what the swarm's measured
/// uplinks carry (here: a seed measured at 80 kbit/s, viewers not measured, an 8 kbit/s
/// stream; r_max = 80 kbit/s ÷ viewers), once per change, and when it fits again (after
/// 30 s, as measured rates wobble).
#[test]
fn a_live_seed_is_told_when_its_stream_outgrows_the_swarm() {
    let mut b = Bench::new();
    let (content, seed) = b.live_show_of_two_chunks();
    let first = b.live_viewer(10, content);
    let os = orders(&b.drain());
    let (_, o) = os.iter().find(|(c, o)| *c == first && o.side == Side::Taker).expect("an order").clone();
    b.now += Span::from_millis(100);
    b.complete(first, &o, 100_000);
    b.drain();
    let warnings = |b: &mut Bench| -> Vec<Notice> {
        b.drain()
            .into_iter()
            .filter_map(|t| match t {
                Transmit::Send { conn, msg: Message::Warning(n) } if conn == seed => Some(n),
                _ => None,
            })
            .collect()
    };
    b.advance(Span::from_secs(3));
    assert_eq!(warnings(&mut b), vec![], "one viewer: 0.1 x r_max");
    let crowd: Vec<ConnId> = (11..30).map(|id| b.live_viewer(id, content)).collect();
    b.advance(Span::from_secs(3));
    let w = warnings(&mut b);
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0].code, ErrorCode::Overloaded);
    assert!(w[0].detail.contains("'show'") && w[0].detail.contains("cannot carry"), "{}", w[0].detail);
    assert!(w[0].detail.contains("2.00 × r_max") && w[0].detail.contains("20 viewers"), "{}", w[0].detail);
    b.advance(Span::from_secs(3));
    assert_eq!(warnings(&mut b), vec![], "said once");
    for &c in &crowd[..15] {
        b.tr.handle_closed(b.now, c);
    }
    b.advance(Span::from_secs(3));
    assert_eq!(warnings(&mut b), vec![], "a better verdict waits");
    b.advance(Span::from_secs(30));
    let w = warnings(&mut b);
    assert!(w.len() == 1 && w[0].detail.contains("within what the swarm carries again"), "{w:?}");
}

/// A connection that says hello and then nothing holds a slot of `max_connections` and gives
/// nothing: once the tracker is over half full, it is closed when it stayed silent another
/// hello timeout (1 023 of them used to lock every honest viewer out). One that asked
/// something stays, however quiet after; below half full, nobody is closed for it.
#[test]
fn a_connection_that_only_says_hello_is_closed() {
    let mut cfg = TrackerConfig::with_key(KEY);
    cfg.max_connections = 5;
    let mut b = Bench::with(cfg);
    b.seed_with(manifest("a.bin", 2, 1000));
    let (mute, _) = b.connect(20, Role::Peer, Some(8000));
    let (asker, _) = b.connect(21, Role::Peer, Some(8000));
    b.tr.handle_message(b.now, asker, Message::AskInfo(AskInfo { path: "a.bin".into() }));
    b.drain();
    b.advance(Span::from_secs(15));
    assert!(!closed(&b.drain(), mute), "within two hello timeouts");
    b.advance(Span::from_secs(7));
    let out = b.drain();
    assert!(closed(&out, mute), "silent after hello for 22 s");
    assert!(!closed(&out, asker), "it asked; its silence since is its own business");
    assert_eq!(error_code(&out), Some(ErrorCode::HelloExpected));

    // Half full or less (the default 4 096 connections): silence is not closed.
    let mut b = Bench::new();
    let (quiet, _) = b.connect(22, Role::Peer, Some(8000));
    b.drain();
    b.advance(Span::from_secs(30));
    assert!(!closed(&b.drain(), quiet), "an uncrowded tracker lets a quiet node be");
}

#[test]
fn a_transfer_its_taker_never_reports_is_rescheduled() {
    let mut b = Bench::new();
    let (_, content) = b.seed_with(manifest("a.bin", 1, 1000));
    b.peer_requesting(10, content);
    let first = orders(&b.drain());
    assert_eq!(first.len(), 2);
    let t = b.tr.poll_timeout().expect("a sweep is armed while an order is outstanding");
    assert!(t <= b.now + Span::from_secs(2));
    // An honest taker reports a failure itself within stall_timeout (20 s) +
    // transfer_timeout (120 s); the tracker waits that long.
    b.advance(Span::from_secs(130));
    assert!(orders(&b.drain()).is_empty(), "not overdue yet");
    b.advance(Span::from_secs(12));
    let again = orders(&b.drain());
    assert_eq!(again.len(), 2, "the chunk was ordered again once overdue");
    assert_ne!(again[0].1.token, first[0].1.token);
}

#[test]
fn handle_timeout_before_the_deadline_does_nothing() {
    let mut b = Bench::new();
    let (_, content) = b.seed_with(manifest("a.bin", 1, 1000));
    b.peer_requesting(10, content);
    b.drain();
    let deadline = b.tr.poll_timeout().unwrap();
    b.tr.handle_timeout(Time::from_nanos(deadline.as_nanos() - 1));
    assert_eq!(b.tr.poll_timeout(), Some(deadline));
    assert!(b.drain().is_empty());
}

#[test]
fn a_departing_giver_releases_its_orders() {
    let mut b = Bench::new();
    let (seed_conn, content) = b.seed_with(manifest("a.bin", 4, 1000));
    b.peer_requesting(10, content);
    b.drain();
    b.tr.handle_closed(b.now, seed_conn);
    let stats = b.tr.stats();
    assert_eq!(stats.active_transfers, 0);
    assert!(stats.nodes.iter().all(|n| n.downloads == 0));
}

/// A copy the taker verified counts, bytes and all, even when its order was cancelled first
/// (the giver left, or the tracker gave up on it): origin + peer bytes = verified bytes.
#[test]
fn a_verified_copy_reported_after_its_order_was_cancelled_is_counted_in_full() {
    let mut b = Bench::new();
    let (seed_conn, content) = b.seed_with(manifest("a.bin", 4, 1000));
    let taker = b.peer_requesting(10, content);
    let os: Vec<TransferOrder> = orders(&b.drain())
        .into_iter()
        .filter(|(c, o)| *c == taker && o.side == Side::Taker)
        .map(|(_, o)| o)
        .collect();
    assert_eq!(os.len(), 4);
    // The origin leaves with every order outstanding; its data had already arrived. A peer
    // joins in its place (it is given the departed origin's index): the copies are still
    // the origin's.
    b.tr.handle_closed(b.now, seed_conn);
    b.connect(99, Role::Peer, Some(8000));
    while b.tr.poll_event().is_some() {}
    for o in &os {
        b.complete(taker, o, 1000);
    }
    let finished: Vec<TrackerEvent> = std::iter::from_fn(|| b.tr.poll_event())
        .filter(|e| matches!(e, TrackerEvent::Finished { outcome: trust::Outcome::Verified, .. }))
        .collect();
    assert_eq!(finished.len(), 4, "each late copy is a verified transfer");
    assert!(
        finished.iter().all(|e| matches!(e, TrackerEvent::Finished { from_origin: true, bytes: 1000, .. }))
    );
    let c = &b.tr.stats().contents[0];
    assert_eq!((c.bytes_from_origin, c.bytes_from_peers), (4000, 0));
    // A late report of a corrupt copy, or a second report, counts nothing.
    b.complete(taker, &os[0], 1000);
    assert_eq!(b.tr.stats().contents[0].bytes_from_origin, 4000);
}

/// A taker's copy through an order the tracker gave up on, reported late, and its copy
/// through the order that replaced it count once, whichever report comes first: origin +
/// peer bytes stay equal to the verified copies (a CI run counted one chunk twice).
#[test]
fn a_chunk_reported_through_two_orders_is_counted_once() {
    for late_first in [true, false] {
        let mut b = Bench::new();
        let (_, content) = b.seed_with(manifest("a.bin", 1, 1000));
        let taker = b.peer_requesting(10, content);
        let taker_order = |out: &[Transmit]| {
            orders(out).into_iter().find(|(c, o)| *c == taker && o.side == Side::Taker).map(|(_, o)| o)
        };
        let first = taker_order(&b.drain()).expect("an order");
        // The taker never reports in time: the tracker cancels and orders the chunk again.
        b.advance(Span::from_secs(142));
        let second = taker_order(&b.drain()).expect("the chunk ordered again");
        assert_ne!(first.token, second.token);
        let (a, z) = if late_first { (&first, &second) } else { (&second, &first) };
        b.complete(taker, a, 1000);
        b.complete(taker, z, 0);
        let bytes: u32 = std::iter::from_fn(|| b.tr.poll_event())
            .filter_map(|e| match e {
                TrackerEvent::Finished { outcome: trust::Outcome::Verified, bytes, .. } => Some(bytes),
                _ => None,
            })
            .sum();
        let stats = b.tr.stats();
        let c = &stats.contents[0];
        assert_eq!(bytes, 1000, "late report first: {late_first}");
        assert_eq!((c.bytes_from_origin, c.bytes_from_peers), (1000, 0), "late report first: {late_first}");
        let down: u64 = stats.nodes.iter().map(|n| n.bytes_down).sum();
        assert_eq!(down, 1000, "late report first: {late_first}");
    }
}

#[test]
fn live_appends_reach_viewers_and_open_requests() {
    let mut b = Bench::new();
    let (conn, nonce) = b.live_seed();
    let content = b.tr.content_id("show").unwrap();
    let (viewer, _) = b.connect(10, Role::Peer, Some(8000));
    b.tr.handle_message(b.now, viewer, Message::AskInfo(AskInfo { path: "show".into() }));
    b.tr.handle_message(b.now, viewer, Message::Request(Interest::range(content, ByteRange::from(0))));
    b.drain();
    let hashes = vec![chunk_hash(0), chunk_hash(1)];
    let proof = auth::append_proof(KEY, &nonce, content, 0, 2000, 0, &hashes);
    let append =
        AppendChunks { content, first: 0, new_size: 2000, hashes, window_start: 0, proof, signature: None };
    b.tr.handle_message(b.now, conn, Message::AppendChunks(Box::new(append)));
    let out = b.drain();
    assert!(out.iter().any(|t| matches!(t, Transmit::Send { conn, msg: Message::AppendChunks(a) } if *conn == viewer && a.proof == Digest::ZERO)));
    let os = orders(&out);
    assert_eq!(
        os.iter().filter(|(c, _)| *c == viewer).count(),
        2,
        "the open-ended request covers new chunks"
    );

    // A forged append is refused.
    let hashes = vec![chunk_hash(2)];
    let bad = AppendChunks {
        content,
        first: 2,
        new_size: 3000,
        hashes,
        window_start: 0,
        proof: Digest::ZERO,
        signature: None,
    };
    b.tr.handle_message(b.now, conn, Message::AppendChunks(Box::new(bad)));
    assert_eq!(error_code(&b.drain()), Some(ErrorCode::Unauthorized));
}

/// A live seed whose link dropped while the tracker ran on publishes its stream again with
/// chunks made meanwhile: the tracker takes the new chunks as an append and the viewers hear
/// of them. A manifest that does not extend the stream, or another seed's, is refused.
#[test]
fn a_live_seed_published_again_with_more_chunks_appends_them() {
    let mut b = Bench::new();
    let (content, seed_conn) = b.live_show_of_two_chunks();
    let viewer = b.live_viewer(10, content);
    b.tr.handle_closed(b.now, seed_conn);
    b.drain();
    let publish = |b: &mut Bench, id: u32, hashes: Vec<Digest>| {
        let mut m = manifest("show", 0, 1000);
        m.geometry = Geometry::new(1000 * hashes.len() as u64, 1000);
        m.hashes = hashes;
        m.live = Some(LiveInfo { bitrate_bps: 8_000, first_chunk: 0 });
        let (conn, _, out) = b.publish_as(id, m);
        b.tr.handle_closed(b.now, conn);
        b.drain();
        out
    };
    let warned = |out: &[Transmit]| {
        out.iter().any(|t| matches!(t, Transmit::Send { msg: Message::Warning(n), .. } if n.code == ErrorCode::Unexpected))
    };

    // Another seed, or a stream whose chunk 1 changed, is not this stream.
    let forged = vec![chunk_hash(0), chunk_hash(9), chunk_hash(2)];
    assert!(warned(&publish(&mut b, 1, forged)));
    assert!(warned(&publish(&mut b, 2, (0..3).map(chunk_hash).collect())));

    let out = publish(&mut b, 1, (0..4).map(chunk_hash).collect());
    assert!(!warned(&out), "{out:?}");
    assert!(
        out.iter()
            .any(|t| matches!(t, Transmit::Send { msg: Message::Published(p), .. } if p.content == content))
    );
    let to_viewer = out.iter().find_map(|t| match t {
        Transmit::Send { conn, msg: Message::AppendChunks(a) } if *conn == viewer => Some(a),
        _ => None,
    });
    let a = to_viewer.expect("the viewer hears of the new chunks");
    assert_eq!((a.first, a.new_size, a.hashes.clone()), (2, 4000, vec![chunk_hash(2), chunk_hash(3)]));
    assert_eq!(b.tr.contents[b.tr.ix(content)].num_chunks(), 4);
}

/// With `urgent_chunks`, a live viewer's next chunks go first, in order, where rarest-first
/// would fetch a later, rarer one: viewer 10 holds chunk 0 and viewer 11 chunks 1 and 2, so
/// for viewer 10 chunk 3 (the seed's only) is the rarest, but chunk 1 is the one its player
/// needs next.
#[test]
fn urgent_chunks_put_a_live_viewers_next_chunks_first() {
    let first_order = |urgent: u32| {
        let mut cfg = TrackerConfig::with_key(KEY);
        cfg.limits.max_downloads = 1;
        cfg.urgent_chunks = urgent;
        let mut b = Bench::with(cfg);
        let (content, _) = b.live_show_of(5);
        let join = |b: &mut Bench, id: u32, held: ByteRange, request: bool| {
            let (conn, _) = b.connect(id, Role::Peer, Some(8000));
            b.tr.handle_message(b.now, conn, Message::AskInfo(AskInfo { path: "show".into() }));
            b.tr.handle_message(b.now, conn, Message::Provide(Interest::range(content, held)));
            if request {
                b.tr.handle_message(
                    b.now,
                    conn,
                    Message::Request(Interest::range(content, ByteRange::from(0))),
                );
            }
            conn
        };
        join(&mut b, 11, ByteRange::new(1000, 3000), false);
        b.drain();
        let viewer = join(&mut b, 10, ByteRange::new(0, 1000), true);
        let os = orders(&b.drain());
        os.iter().find(|(c, o)| *c == viewer && o.side == Side::Taker).map(|(_, o)| o.chunk)
    };
    assert_eq!(first_order(0), Some(3), "rarest-first without urgent chunks");
    assert_eq!(first_order(2), Some(1));
}

#[test]
fn the_end_of_a_live_stream_reaches_viewers_who_ask_later() {
    let mut b = Bench::new();
    let (conn, nonce) = b.live_seed();
    let content = b.tr.content_id("show").unwrap();
    let hashes = vec![chunk_hash(0)];
    let proof = auth::append_proof(KEY, &nonce, content, 0, 1000, 0, &hashes);
    let append =
        AppendChunks { content, first: 0, new_size: 1000, hashes, window_start: 0, proof, signature: None };
    b.tr.handle_message(b.now, conn, Message::AppendChunks(Box::new(append)));
    let proof = auth::append_proof(KEY, &nonce, content, 1, 1000, 0, &[]);
    let end = AppendChunks {
        content,
        first: 1,
        new_size: 1000,
        hashes: Vec::new(),
        window_start: 0,
        proof,
        signature: None,
    };
    b.tr.handle_message(b.now, conn, Message::AppendChunks(Box::new(end)));
    b.drain();

    let (late, _) = b.connect(10, Role::Peer, Some(8000));
    b.tr.handle_message(b.now, late, Message::AskInfo(AskInfo { path: "show".into() }));
    let to_late: Vec<_> = b
        .drain()
        .into_iter()
        .filter_map(|t| match t {
            Transmit::Send { conn, msg } if conn == late => Some(msg),
            _ => None,
        })
        .collect();
    assert!(
        matches!(&to_late[..], [Message::TellInfo(_), Message::AppendChunks(a)]
        if a.hashes.is_empty() && a.first == 1 && a.new_size == 1000 && a.proof == Digest::ZERO),
        "the late viewer gets the manifest, then the end mark: {to_late:?}"
    );

    // Nothing is appended after the end.
    let hashes = vec![chunk_hash(1)];
    let proof = auth::append_proof(KEY, &nonce, content, 1, 2000, 0, &hashes);
    let more =
        AppendChunks { content, first: 1, new_size: 2000, hashes, window_start: 0, proof, signature: None };
    b.tr.handle_message(b.now, conn, Message::AppendChunks(Box::new(more)));
    let out = b.drain();
    assert!(
        out.iter().any(|t| matches!(t, Transmit::Send { msg: Message::Warning(n), .. } if n.code == ErrorCode::Unexpected)),
        "{out:?}"
    );
    assert!(
        !out.iter().any(|t| matches!(t, Transmit::Send { msg: Message::AppendChunks(_), .. })),
        "{out:?}"
    );
}

/// A tracker whose origin sends a chunk only while no peer can supply it.
fn frugal_bench() -> Bench {
    let mut cfg = TrackerConfig::with_key(KEY);
    cfg.policy = Policy::ORIGIN_FRUGAL;
    Bench::with(cfg)
}

#[test]
fn frugal_origin_sends_each_chunk_about_once() {
    let mut b = frugal_bench();
    let (seed_conn, content) = b.seed_with(manifest("a.bin", 20, 1000));
    for id in 10..30 {
        b.peer_requesting(id, content);
    }
    let mut from_seed = 0;
    for _ in 0..500 {
        let out = b.drain();
        from_seed += orders(&out).iter().filter(|(c, _)| *c == seed_conn).count();
        if complete_all(&mut b, &out, None) == 0 {
            b.advance(Span::from_secs(2));
            if orders(&b.drain()).is_empty() && b.tr.stats().contents[0].completions == 20 {
                break;
            }
        }
    }
    assert_eq!(b.tr.stats().contents[0].completions, 20);
    assert_eq!(from_seed, 20, "every chunk left the origin exactly once");
}

/// One taker's word bans nobody, but that taker shuns the giver it accused: here the only
/// other holder, so a frugal origin serves it instead of waiting for a copy it cannot use.
#[test]
fn a_frugal_origin_serves_a_chunk_whose_only_peer_holder_its_taker_shuns() {
    let mut b = frugal_bench();
    let (seed_conn, content) = b.seed_with(manifest("a.bin", 10, 1000));
    // Peer 10 gets the whole file from the origin, then corrupts all it gives.
    b.peer_fetching_everything(10, content);
    b.peer_requesting(20, content);
    let mut from_seed = 0;
    let mut idle = 0;
    for _ in 0..200 {
        let out = b.drain();
        from_seed += orders(&out).iter().filter(|(c, _)| *c == seed_conn).count();
        let done = complete_all(&mut b, &out, Some(PeerId(10)));
        if !keep_going(&mut b, &mut idle, done) {
            break;
        }
    }
    assert!(!b.tr.stats().nodes.iter().any(|n| n.banned), "one taker's word banned a giver");
    // Before: peer 10 still counted as a copy, so the origin held back and peer 20 waited.
    assert_eq!(b.tr.stats().contents[0].completions, 2, "peer 20 finished from the origin");
    assert!(from_seed >= 5, "{from_seed} orders from the origin");
}

/// Sweeps until the tracker stops asking for a timeout; false if it never does.
fn settles(b: &mut Bench) -> bool {
    for _ in 0..50 {
        let Some(t) = b.tr.poll_timeout() else { return true };
        b.now = t;
        b.tr.handle_timeout(t);
        b.drain();
    }
    false
}

#[test]
fn an_unrequested_chunk_in_flight_is_not_queued_again_when_its_transfer_fails() {
    let mut b = Bench::new();
    let (_, content) = b.seed_with(manifest("a.bin", 1, 1000));
    let peer = b.peer_requesting(10, content);
    let os = orders(&b.drain());
    let (_, o) = os.iter().find(|(c, _)| *c == peer).expect("an order to the taker");
    b.tr.handle_message(b.now, peer, Message::Unrequest(Interest::all(content)));
    b.tr.handle_message(
        b.now,
        peer,
        Message::Completed(Completed { token: o.token, hash: None, copy_us: 0 }),
    );
    assert!(orders(&b.drain()).is_empty(), "the chunk is no longer wanted");
    assert!(settles(&mut b), "no demand is left, so the sweep disarms");
    assert!(orders(&b.drain()).is_empty());
}

#[test]
fn an_unrequest_below_the_live_window_clears_the_demand() {
    let mut b = Bench::new();
    let (conn, nonce) = b.live_seed();
    let content = b.tr.content_id("show").unwrap();
    let (viewer, _) = b.connect(10, Role::Peer, Some(8000));
    b.tr.handle_message(b.now, viewer, Message::AskInfo(AskInfo { path: "show".into() }));
    b.tr.handle_message(b.now, viewer, Message::Request(Interest::range(content, ByteRange::from(0))));
    // Eight chunks: five go in flight (the download limit), three stay pending.
    let hashes: Vec<_> = (0..8).map(chunk_hash).collect();
    let proof = auth::append_proof(KEY, &nonce, content, 0, 8000, 0, &hashes);
    let append =
        AppendChunks { content, first: 0, new_size: 8000, hashes, window_start: 0, proof, signature: None };
    b.tr.handle_message(b.now, conn, Message::AppendChunks(Box::new(append)));
    let inflight: Vec<_> = orders(&b.drain()).into_iter().filter(|(c, _)| *c == viewer).collect();
    assert_eq!(inflight.len(), 5);
    // The seed's window moves past all eight before the viewer's unrequest arrives.
    let hashes = vec![chunk_hash(8)];
    let proof = auth::append_proof(KEY, &nonce, content, 8, 9000, 8, &hashes);
    let append =
        AppendChunks { content, first: 8, new_size: 9000, hashes, window_start: 8, proof, signature: None };
    b.tr.handle_message(b.now, conn, Message::AppendChunks(Box::new(append)));
    let range = ByteRange::new(0, 8000);
    b.tr.handle_message(b.now, viewer, Message::Unrequest(Interest::range(content, range)));
    for (_, o) in &inflight {
        b.tr.handle_message(
            b.now,
            viewer,
            Message::Completed(Completed { token: o.token, hash: None, copy_us: 0 }),
        );
    }
    for (_, o) in orders(&b.drain()).into_iter().filter(|(c, _)| *c == viewer) {
        assert_eq!(o.chunk, 8, "only the chunk inside the window is ordered");
        b.tr.handle_message(
            b.now,
            viewer,
            Message::Completed(Completed { token: o.token, hash: Some(chunk_hash(8)), copy_us: 0 }),
        );
    }
    b.drain();
    assert!(settles(&mut b), "no demand is left below the window, so the sweep disarms");
}

#[test]
fn an_unmeasured_giver_gets_unmeasured_slots_and_a_fixed_one_max_uploads() {
    for (slots, unmeasured, want) in [
        (UploadSlots::Measured { copy_time: Span::from_secs(1) }, 2, 2),
        (UploadSlots::Measured { copy_time: Span::from_secs(1) }, 3, 3),
        (UploadSlots::Fixed, 2, 5),
    ] {
        let mut cfg = TrackerConfig::with_key(KEY);
        cfg.upload_slots = slots;
        cfg.unmeasured_slots = unmeasured;
        let mut b = Bench::with(cfg);
        let (seed_conn, content) = b.seed_with(manifest("a.bin", 50, 1000));
        for id in 10..40 {
            b.peer_requesting(id, content);
        }
        let out = b.drain();
        let from_seed = orders(&out).into_iter().filter(|(c, o)| *c != seed_conn && o.side == Side::Taker);
        assert_eq!(from_seed.count(), want, "{slots:?} with {unmeasured} unmeasured slots");
    }
}

/// A tracker whose slots follow measured rates (1 s copies, 2 slots until measured), its
/// seeds allowed `seed_uploads` uploads.
fn measured_slots_bench(seed_uploads: u16) -> Bench {
    let mut cfg = TrackerConfig::with_key(KEY);
    cfg.upload_slots = UploadSlots::Measured { copy_time: Span::from_secs(1) };
    cfg.unmeasured_slots = 2;
    cfg.seed_limits.max_uploads = seed_uploads;
    Bench::with(cfg)
}

#[test]
fn a_streams_first_chunk_is_not_piled_onto_an_unmeasured_giver() {
    let mut b = measured_slots_bench(1);
    let (content, first, _) = b.first_viewer_holding_chunk_0();
    // Four viewers join: their first chunk is urgent, and only the first viewer, whose
    // uplink is not measured yet, can give it now. It gets its two unmeasured slots' worth.
    for id in 20..24 {
        b.live_viewer(id, content);
    }
    let given = chunk_0_given_by(&b.drain(), first);
    assert_eq!(given, 2, "an unmeasured giver took {given} first chunks at once");
}

/// A seed that states its uplink is scheduled at that rate from its first copy: its slots
/// follow the stated rate at once, and a copy its taker's downlink slowed does not pull the
/// rate below it. A stated uplink the proof does not cover is refused.
#[test]
fn a_seed_that_states_its_uplink_gets_the_slots_for_it_at_once() {
    let mut b = measured_slots_bench(32);
    // 80 000 bit/s on the wire carry 9 564 B/s of payload: 1000-byte copies of 1 s, 10 slots.
    let (seed, _, out) = b.publish_stating(1, manifest("a.bin", 50, 1000), Some(80_000), None);
    let content = published(&out);
    let takers: Vec<ConnId> = (10..40).map(|id| b.peer_requesting(id, content)).collect();
    let given = orders(&b.drain())
        .into_iter()
        .filter(|(c, o)| *c != seed && o.side == Side::Taker)
        .collect::<Vec<_>>();
    assert_eq!(given.len(), 10, "slots for the stated uplink, not the 2 unmeasured ones");
    // One copy, slowed to 200 B/s by its taker: the seed's rate stays at what it stated.
    let (taker, order) = &given[0];
    assert!(takers.contains(taker));
    b.now += Span::from_secs(5);
    b.complete(*taker, order, 5_000_000);
    let seed_idx = b.tr.by_id[&PeerId(1)];
    let rate = b.tr.up_rates[seed_idx.0 as usize];
    assert!((rate - 9564.0).abs() < 1.0, "the seed's rate fell to {rate} B/s");
    assert_eq!(b.tr.loads[seed_idx.0 as usize].up_slots, 10);

    // A man in the middle raising the claim breaks the proof.
    let (_, _, out) = b.publish_stating(2, manifest("b.bin", 5, 1000), Some(8_000_000), Some(Some(80_000)));
    assert_eq!(error_code(&out), Some(ErrorCode::Unauthorized));
}

/// Copies from one giver to one taker share a connection and move one after the other, and
/// the giver's uplink is shared by its connections, not its orders. Here a 1000 B/s uplink
/// serves taker X three chunks (a, b, d) and taker Y one (c): X's connection and Y's move at
/// 500 B/s each until a and c end at 2 s, then b and d alone at 1000 B/s. Every `Get` left
/// at the start. Each copy must measure the uplink at 1000 B/s: counting b and d as moving
/// beside a (or beside c) overstated it, and timing b and d from their `Get` understated it.
#[test]
fn copies_queued_on_one_connection_measure_the_uplink_at_its_rate() {
    let mut cfg = TrackerConfig::with_key(KEY);
    // Once measured at 1000 B/s the seed has one slot: no new order of its own joins in.
    cfg.upload_slots = UploadSlots::Measured { copy_time: Span::from_millis(500) };
    cfg.unmeasured_slots = 4;
    cfg.limits.max_downloads = 3;
    let mut b = Bench::with(cfg);
    let (_, content) = b.seed_with(manifest("a.bin", 10, 1000));
    let x = b.peer_requesting(10, content);
    let y = b.peer_requesting(11, content);
    let os = orders(&b.drain());
    let to = |conn: ConnId| -> Vec<TransferOrder> {
        os.iter().filter(|(c, o)| *c == conn && o.side == Side::Taker).map(|(_, o)| o.clone()).collect()
    };
    let (xs, ys) = (to(x), to(y));
    assert_eq!((xs.len(), ys.len()), (3, 1), "three downloads for X, the seed's fourth slot for Y");
    let start = b.now;
    let copies = [(x, &xs[0], 2), (y, &ys[0], 2), (x, &xs[1], 3), (x, &xs[2], 4)];
    for (conn, o, secs) in copies {
        b.now = start + Span::from_secs(secs);
        b.complete(conn, o, 1_000_000 * secs as u32);
        let rate = b.tr.up_rates.iter().copied().fold(0.0f32, f32::max);
        assert!((rate - 1000.0).abs() < 1.0, "after chunk {}: {rate} B/s", o.chunk);
        // Every copy's `Get` left as it was ordered: no order lead.
        assert!(b.tr.order_lead < 0.001, "order lead {} s", b.tr.order_lead);
    }
}

/// A join chunk may go past a measured holder's rate slots, but only while the copy can land
/// before the chunk's live deadline: a 1000 B/s holder with two slots takes a third joiner
/// (1000 B shared three ways: 3 s) but not a fourth (4 s), with 3.5 s left.
#[test]
fn a_join_chunk_goes_past_slots_only_if_it_can_land_before_the_deadline() {
    let mut cfg = TrackerConfig::with_key(KEY);
    cfg.upload_slots = UploadSlots::Measured { copy_time: Span::from_secs(1) };
    cfg.unmeasured_slots = 2;
    cfg.seed_limits.max_uploads = 1;
    cfg.live_deadline = Some(Span::from_secs(5));
    let mut b = Bench::with(cfg);
    let (content, first, start) = b.first_viewer_holding_chunk_0();
    // A second viewer takes chunk 0 from it, which measures its uplink at 1000 B/s (two
    // slots at a copy_time of 1 s), then leaves.
    let second = b.live_viewer(11, content);
    let os = orders(&b.drain());
    let (_, o) = os.iter().find(|(c, o)| *c == second && o.side == Side::Taker).expect("an order");
    assert_eq!(o.other, PeerId(10));
    b.now += Span::from_secs(1);
    b.complete(second, o, 1_000_000);
    b.tr.handle_closed(b.now, second);
    b.drain();
    // At 1.5 s, 3.5 s before chunk 0's deadline, four viewers join.
    b.now = start + Span::from_millis(1_500);
    for id in 20..24 {
        b.live_viewer(id, content);
    }
    assert_eq!(chunk_0_given_by(&b.drain(), first), 3, "two slots and one copy past them that lands in time");
}

#[test]
fn measured_upload_slots_follow_the_givers_rate() {
    let mut cfg = TrackerConfig::with_key(KEY);
    cfg.upload_slots = UploadSlots::Measured { copy_time: Span::from_secs(1) };
    cfg.unmeasured_slots = 5; // as many as max_uploads, so five copies share the uplink
    cfg.limits.max_downloads = 1; // to five takers, not down one connection
    let mut b = Bench::with(cfg);
    let (seed_conn, content) = b.seed_with(manifest("a.bin", 50, 1000));
    for id in 10..40 {
        b.peer_requesting(id, content);
    }
    let out = b.drain();
    let from_seed: Vec<_> =
        orders(&out).into_iter().filter(|(c, o)| *c != seed_conn && o.side == Side::Taker).collect();
    assert_eq!(from_seed.len(), 5, "not measured yet: unmeasured_slots");
    // Five copies share the seed's uplink and one took 10 s: 100 B/s each, 500 B/s in all,
    // so one 1000-byte chunk per copy_time is floor(0.5) + 1 = 1 slot.
    let (conn, o) = &from_seed[0];
    b.now += Span::from_secs(10);
    b.complete(*conn, o, 10_000_000);
    let seed_uploads =
        |b: &Bench| b.tr.stats().nodes.iter().find(|n| n.role == Role::Seed).map(|n| n.uploads).unwrap_or(0);
    assert_eq!(seed_uploads(&b), 4, "no new upload while four are outstanding");
    let rest: Vec<_> = from_seed[1..].iter().map(|(c, o)| (*c, o.clone())).collect();
    b.drain();
    for (conn, o) in rest {
        // copy_us 0: no data moved (the taker held the chunk already), nothing measured.
        b.complete(conn, &o, 0);
        assert!(seed_uploads(&b) <= 4);
    }
    assert_eq!(seed_uploads(&b), 1, "the slow seed now runs one upload at a time");
}

#[test]
fn queue_ahead_lends_one_slot_shortly_before_an_upload_ends() {
    let mut cfg = TrackerConfig::with_key(KEY);
    cfg.upload_slots = UploadSlots::Measured { copy_time: Span::from_secs(1) };
    cfg.unmeasured_slots = 5;
    cfg.queue_ahead = true;
    // One download each, so the seed's five first copies go to five takers and share its
    // uplink (copies to one taker would share a connection and move one after another).
    cfg.limits.max_downloads = 1;
    let mut b = Bench::with(cfg);
    let (_, content) = b.seed_with(manifest("a.bin", 50, 1000));
    for id in 10..40 {
        b.peer_requesting(id, content);
    }
    let seed_uploads =
        |b: &Bench| b.tr.stats().nodes.iter().find(|n| n.role == Role::Seed).map(|n| n.uploads).unwrap_or(0);
    // Measure the seed at 500 B/s (one slot), as in the test above, with an order lead of
    // 0.5 s (the copy began half a second after its order).
    let first: Vec<_> = orders(&b.drain()).into_iter().filter(|(_, o)| o.side == Side::Taker).collect();
    let (conn, o) = &first[0];
    b.now += Span::from_millis(10_500);
    b.complete(*conn, o, 10_000_000);
    for (conn, o) in &first[1..] {
        b.complete(*conn, o, 0);
    }
    assert_eq!(seed_uploads(&b), 1, "one slot once measured");
    let from_seed = |out: &[Transmit]| {
        orders(out).into_iter().filter(|(_, o)| o.side == Side::Taker && o.other == PeerId(1))
    };
    let (conn, o) = from_seed(&b.drain()).next().expect("the seed's next upload");
    // Expected to start one order lead (0.5 s) after its order and to end 2 s later: the
    // tracker orders the next one before then (1.5 order leads before).
    let end = b.now + Span::from_millis(2_500);
    let mut next = Vec::new();
    while next.is_empty() {
        let wake = b.tr.poll_timeout().unwrap();
        assert!(wake < end, "no order ahead before {end:?}");
        b.now = b.now.max(wake);
        b.tr.handle_timeout(b.now);
        next = from_seed(&b.drain()).collect();
    }
    assert_eq!(next.len(), 1, "the next upload is ordered ahead");
    assert_eq!(seed_uploads(&b), 2);
    b.now = end;
    b.complete(conn, &o, 2_000_000);
    let more = from_seed(&b.drain()).count();
    assert_eq!(more, 0, "the lent slot is returned, not added to");
    assert_eq!(seed_uploads(&b), 1);
}

/// TCP shares an uplink unevenly: here a 1000 B/s uplink gives one of its two connections
/// 750 B/s and the other 250 B/s, so 1000 B copies on the first take 1.33 s (rate sample
/// 750 × 2 moving = 1500 B/s) and on the second 4 s (500 B/s), three of the first for each
/// of the second. Averaging the samples' rates settles at 1250 B/s (the fast connection's
/// samples are both high and frequent); averaging time per byte settles at the uplink's rate.
#[test]
fn uneven_sharing_of_an_uplink_does_not_inflate_its_measured_rate() {
    let mut rate = 0.0f32;
    let mut last_cycle = Vec::new();
    for _ in 0..20 {
        last_cycle.clear();
        for sample in [1500.0, 1500.0, 1500.0, 500.0] {
            rate = super::transfers::smoothed_rate(rate, sample);
            last_cycle.push(rate);
        }
    }
    let mean = last_cycle.iter().sum::<f32>() / last_cycle.len() as f32;
    assert!((mean - 1000.0).abs() < 25.0, "settles around {mean} B/s");
    // Even samples: the rate itself.
    let even = (0..10).fold(0.0f32, |r, _| super::transfers::smoothed_rate(r, 1000.0));
    assert!((even - 1000.0).abs() < 1e-3, "{even}");
}

/// Copies that a round trip bounds: each 25 kB copy takes 0.5 s however few share the
/// uplink (its own sample, rate × sharers, reads 200 kB/s), but one is verified every 50 ms,
/// so the uplink delivers 500 kB/s. The rate follows what was delivered; by the copies alone
/// it would stay at 200 kB/s and give the giver too few slots to fill its uplink.
#[test]
fn round_trip_bound_copies_do_not_read_as_a_slow_uplink() {
    let mut uplink = super::transfers::Delivered::default();
    let mut rate = 0.0;
    for i in 0..60u64 {
        rate = uplink.record(Time::from_nanos(50_000_000 * i), 25_000, 200_000.0);
    }
    assert!((rate - 500_000.0).abs() < 10_000.0, "rated {rate} B/s");
}

/// Copies that started together end together (a fairly shared uplink): sixteen 250 kB
/// copies verified at one instant every 4 s are 1 MB/s, not a burst at many times that.
#[test]
fn copies_ending_together_do_not_read_as_a_burst() {
    let mut uplink = super::transfers::Delivered::default();
    for batch in 0..5u64 {
        for _ in 0..16 {
            let rate = uplink.record(Time::from_nanos(4_000_000_000 * batch), 250_000, 1_000_000.0);
            assert!(rate <= 1_010_000.0, "batch {batch}: rated {rate} B/s");
        }
    }
}

/// A taker that asks for a file and then never asks its giver for the chunk (issue 17's
/// silent taker): the giver says so (`Completed` with no hash, from the giver), the order is
/// cancelled at once, the seed's only upload slot goes to an honest taker, and the silent one
/// may hold half as many downloads; its verified copies earn them back.
#[test]
fn a_giver_reclaims_an_order_its_taker_never_started() {
    let mut cfg = TrackerConfig::with_key(KEY);
    cfg.seed_limits.max_uploads = 1;
    cfg.limits.max_downloads = 8;
    let mut b = Bench::with(cfg);
    let (seed, content) = b.seed_with(manifest("a.bin", 4, 1000));
    let silent = b.peer_requesting(10, content);
    let os = orders(&b.drain());
    let (_, to_giver) =
        os.iter().find(|(c, o)| *c == seed && o.side == Side::Giver).expect("an order").clone();
    let honest = b.peer_requesting(11, content);
    assert!(orders(&b.drain()).is_empty(), "the seed's one slot is taken by the silent taker");
    // A taker cannot report for the giver: its own `Completed` with no hash is its failure.
    let unstarted = Completed { token: to_giver.token, hash: None, copy_us: 0 };
    b.tr.handle_message(b.now, seed, Message::Completed(unstarted));
    let events: Vec<_> = std::iter::from_fn(|| b.tr.poll_event()).collect();
    assert!(
        events.iter().any(
            |e| matches!(e, TrackerEvent::Cancelled { token, stalled: false } if *token == to_giver.token)
        ),
        "{events:?}"
    );
    let next = orders(&b.drain());
    assert!(
        next.iter().any(|(c, o)| *c == honest && o.side == Side::Taker),
        "the freed slot goes to the honest taker first: {next:?}"
    );
    let load = b.tr.loads[b.tr.by_id[&PeerId(10)].0 as usize];
    assert_eq!(load.down_cap, 4, "half of 8 downloads");
    assert_eq!(load.benched_until, b.now + Span::from_secs(5));
    // The trust of the giver is untouched: it did nothing wrong.
    assert_eq!(b.tr.trust.giver(PeerId(1)).transfers, 0);
    let _ = silent;
}

/// A taker that reports every copy failed the moment it gets the order (issue 17's probe:
/// 548 000 orders in 25 s) is benched twice as long per failure since its last verified copy
/// (50 ms, 100 ms, … 5 s): over ten seconds it gets a few orders, not thousands, while an
/// honest taker beside it gets the whole file.
#[test]
fn a_taker_reporting_instant_failures_gets_few_orders() {
    lying_taker_gets_few_orders(None);
}

/// The same with a taker that reports every order done with a wrong hash, never having
/// fetched it: it was not benched at all, and on real sockets seven such takers made the
/// tracker hand out 672 000 orders in two minutes while an honest `get` beside them got
/// nothing (the liars, furthest from done, won every slot the seed freed).
#[test]
fn a_taker_reporting_false_bad_hashes_gets_few_orders() {
    lying_taker_gets_few_orders(Some(Digest::of(b"not what was sent")));
}

fn lying_taker_gets_few_orders(report: Option<Digest>) {
    let mut b = Bench::new();
    let (_, content) = b.seed_with(manifest("a.bin", 40, 1000));
    let liar = b.peer_requesting(10, content);
    let honest = b.peer_requesting(11, content);
    let start = b.now;
    let (mut to_liar, mut to_honest) = (0, 0);
    while b.now < start + Span::from_secs(10) {
        for (conn, o) in orders(&b.drain()) {
            if o.side != Side::Taker {
                continue;
            }
            if conn == liar {
                to_liar += 1;
                let lie = Completed { token: o.token, hash: report, copy_us: 1000 };
                b.tr.handle_message(b.now, liar, Message::Completed(lie));
            } else if conn == honest {
                to_honest += 1;
                b.complete(honest, &o, 1000);
            }
        }
        b.advance(Span::from_millis(1));
    }
    assert!(to_liar <= 40, "{to_liar} orders to a taker that lies about each at once");
    assert_eq!(to_honest, 40, "the honest taker got every chunk");
}

/// Givers that claim every chunk and never send (issue 17's "mute givers"): the taker
/// reports each stalled copy after its progress timeout, shuns that giver for two minutes, and
/// is not benched for the wait, so the seed serves it. Before, each report benched the
/// taker and the mute givers were ordered again and again: the probe's honest `get` never
/// finished in two minutes, nor does this taker in a minute.
#[test]
fn a_taker_shuns_givers_that_stall_on_it_and_is_not_benched_for_waiting() {
    let mut b = Bench::new();
    let (seed_conn, content) = b.seed_with(manifest("a.bin", 40, 1000));
    let mute: Vec<PeerId> = (20..25).map(PeerId).collect();
    for id in &mute {
        let (conn, _) = b.connect(id.0, Role::Peer, Some(8000 + id.0 as u16));
        b.tr.handle_message(b.now, conn, Message::Provide(Interest::all(content)));
    }
    let honest = b.peer_requesting(10, content);
    let start = b.now;
    let stall = Span::from_secs(10);
    // Orders to the honest taker from mute givers, reported failed `stall` after they came.
    let mut waiting: Vec<(Time, crate::Token)> = Vec::new();
    let (mut from_mute, mut from_seed) = (0, 0);
    while b.now < start + Span::from_secs(60) && b.tr.stats().contents[0].completions == 0 {
        for (conn, o) in orders(&b.drain()) {
            if conn == seed_conn {
                from_seed += 1;
            } else if conn == honest && mute.contains(&o.other) {
                from_mute += 1;
                waiting.push((b.now + stall, o.token));
            } else if conn == honest {
                b.complete(honest, &o, 1000);
            }
        }
        for (_, token) in waiting.extract_if(.., |(at, _)| *at <= b.now) {
            let failed = Completed { token, hash: None, copy_us: 0 };
            b.tr.handle_message(b.now, honest, Message::Completed(failed));
        }
        b.advance(Span::from_millis(10));
    }
    let took = b.now.saturating_since(start);
    assert_eq!(b.tr.stats().contents[0].completions, 1, "the honest taker finished");
    // Two waits at most: the tracker serves each report as it comes, so a slot freed by the
    // first stall of a round can go to a mute giver whose own report is next in line.
    assert!(took < Span::from_secs(25), "the mute givers were ordered again and again: took {took:?}");
    assert!(from_mute <= 2 * mute.len(), "{from_mute} orders from mute givers");
    assert!(from_seed >= 30, "{from_seed} orders from the seed");
    assert!(!b.tr.stats().nodes.iter().any(|n| n.banned), "one taker's word banned nobody");
}

/// A taker shuns a giver that stalled on it for two minutes only (`STALL_SHUN`): the giver
/// (here the only holder left) is ordered for it again after that, so a giver that stalled
/// once on a congested moment is not lost to that taker for good.
#[test]
fn a_stall_is_shunned_for_a_while_not_for_good() {
    let mut b = Bench::new();
    let (seed, content) = b.seed_with(manifest("a.bin", 4, 1000));
    b.peer_fetching_everything(20, content);
    b.tr.handle_closed(b.now, seed);
    b.drain();
    let taker = b.peer_requesting(10, content);
    let first = orders(&b.drain());
    let stalled: Vec<&TransferOrder> = first.iter().filter(|(c, _)| *c == taker).map(|(_, o)| o).collect();
    assert!(!stalled.is_empty(), "orders from the only holder");
    b.advance(Span::from_secs(10));
    for o in stalled {
        let failed = Completed { token: o.token, hash: None, copy_us: 0 };
        b.tr.handle_message(b.now, taker, Message::Completed(failed));
    }
    let ordered_again = |b: &mut Bench, until: Span| {
        let end = b.now + until;
        while b.now < end {
            if orders(&b.drain()).iter().any(|(c, _)| *c == taker) {
                return true;
            }
            b.advance(Span::from_secs(1));
        }
        false
    };
    assert!(!ordered_again(&mut b, Span::from_secs(100)), "shunned right after the stall");
    assert!(ordered_again(&mut b, Span::from_secs(60)), "not ordered again after the shun");
}

/// Takers that ask for everything and never fetch (issue 17's "silent takers"): each order
/// to one holds a seed slot until the seed reports it not started (`order_wait`, 5 s); the
/// silent takers, wanting every chunk, outranked the honest viewer for each slot freed,
/// and were benched 5 s a time. Now each waste benches twice as long as the last and
/// ranks the waster after takers that wasted less. Here the honest viewer took 52 s
/// before, 27 s with the doubling bench alone, 17 s with both: the fresh identities still
/// take the slots freed in the first rounds (nothing tells them from the honest one yet).
#[test]
fn takers_that_waste_orders_lose_the_seeds_slots_to_one_that_does_not() {
    // Two upload slots, as an origin whose uplink is not measured yet has.
    let mut cfg = TrackerConfig::with_key(KEY);
    cfg.seed_limits.max_uploads = 2;
    let mut b = Bench::with(cfg);
    let (seed, content) = b.seed_with(manifest("a.bin", 40, 1000));
    let silent: Vec<PeerId> = (30..35).map(PeerId).collect();
    for id in &silent {
        b.peer_requesting(id.0, content);
    }
    let start = b.now;
    let order_wait = Span::from_secs(5);
    let mut honest = None;
    let mut unasked: Vec<(Time, crate::Token)> = Vec::new();
    // The honest viewer's copies take 100 ms each.
    let mut copying: Vec<(Time, TransferOrder)> = Vec::new();
    while b.now < start + Span::from_secs(300) && b.tr.stats().contents[0].completions == 0 {
        if honest.is_none() && b.now >= start + Span::from_millis(500) {
            honest = Some(b.peer_requesting(10, content));
        }
        for (conn, o) in orders(&b.drain()) {
            if conn == seed && silent.contains(&o.other) {
                unasked.push((b.now + order_wait, o.token));
            } else if Some(conn) == honest && o.side == Side::Taker {
                copying.push((b.now + Span::from_millis(100), o));
            }
        }
        for (_, token) in unasked.extract_if(.., |(at, _)| *at <= b.now) {
            let not_started = Completed { token, hash: None, copy_us: 0 };
            b.tr.handle_message(b.now, seed, Message::Completed(not_started));
        }
        let now = b.now;
        for (_, o) in copying.extract_if(.., |(at, _)| *at <= now) {
            b.complete(honest.unwrap_or(seed), &o, 100_000);
        }
        b.advance(Span::from_millis(10));
    }
    let took = b.now.saturating_since(start);
    assert_eq!(b.tr.stats().contents[0].completions, 1, "the honest viewer finished");
    assert!(took < Span::from_secs(20), "the silent takers kept the seed's slots: took {took:?}");
}

/// A file changed at its source is published again: a new version of the path (a new
/// content id, the new manifest for every later `AskInfo`) once the seed that published the
/// old one is gone or is the one publishing; refused while another seed still serves the
/// old one. Before, a path kept its first manifest until the tracker restarted, so a seed
/// restarted on a changed file was refused for good.
#[test]
fn a_changed_file_is_published_again_as_a_new_version() {
    let mut b = Bench::new();
    let (first, old) = b.seed_with(manifest("a.bin", 4, 1000));
    let mut changed = manifest("a.bin", 5, 1000);
    changed.hashes[0] = Digest::of(b"other bytes");
    let ask = |b: &mut Bench, id: u32| {
        let (viewer, _) = b.connect(id, Role::Peer, Some(8000));
        b.tr.handle_message(b.now, viewer, Message::AskInfo(AskInfo { path: "a.bin".into() }));
        b.drain().into_iter().find_map(|t| match t {
            Transmit::Send { msg: Message::TellInfo(t), .. } => Some((t.content, t.manifest.root())),
            _ => None,
        })
    };
    // Another seed while the first is connected: refused, the first version stands.
    let (_, _, out) = b.publish_as(2, changed.clone());
    let refused = out.iter().any(|t| {
        matches!(t, Transmit::Send { msg: Message::Warning(n), .. }
            if n.detail.contains("already published with a different manifest"))
    });
    assert!(refused, "{out:?}");
    assert_eq!(ask(&mut b, 10), Some((old, manifest("a.bin", 4, 1000).root())));
    // The first seed leaves (restarted on the changed file): the next publish is taken.
    b.tr.handle_closed(b.now, first);
    b.drain();
    let (seed, nonce, out) = b.publish_as(3, changed.clone());
    let new = published(&out);
    assert_ne!(new, old, "a new version gets its own id");
    assert_eq!(ask(&mut b, 11), Some((new, changed.root())));
    // The publishing seed itself publishing yet another version on its link: taken too.
    let third = manifest("a.bin", 6, 1000);
    let proof = auth::publish_proof(KEY, &nonce, &third, None);
    let publish = Publish { manifest: third.clone(), proof, signature: None, uplink_bps: None };
    b.tr.handle_message(b.now, seed, Message::Publish(Box::new(publish)));
    let newest = published(&b.drain());
    assert!(newest != new && newest != old);
    assert_eq!(ask(&mut b, 12), Some((newest, third.root())));
}

/// A signed publish is checked and its signature handed out with the manifest; a signed
/// live stream's appends must be signed by the same key, and viewers get the signatures.
#[test]
fn seed_signatures_are_checked_and_forwarded() {
    use crate::signing::{Chain, SigningKey};
    let key = SigningKey::from_secret([9; 32]);
    let mut b = Bench::new();
    let (conn, nonce) = b.connect(1, Role::Seed, Some(7000));
    let m = manifest("a.bin", 3, 1000);
    let good = key.sign(&Chain::of(&m).statement(3000, false));
    let proof = auth::publish_proof(KEY, &nonce, &m, None);
    let mut forged = good;
    forged.sig.0[0] ^= 1;
    let bad = Publish { manifest: m.clone(), proof, signature: Some(forged), uplink_bps: None };
    b.tr.handle_message(b.now, conn, Message::Publish(Box::new(bad)));
    let out = b.drain();
    assert_eq!(error_code(&out), Some(ErrorCode::Unauthorized), "a forged signature is refused");
    assert!(closed(&out, conn));

    let (conn, nonce) = b.connect(2, Role::Seed, Some(7001));
    let proof = auth::publish_proof(KEY, &nonce, &m, None);
    let publish = Publish { manifest: m, proof, signature: Some(good), uplink_bps: None };
    b.tr.handle_message(b.now, conn, Message::Publish(Box::new(publish)));
    b.drain();
    let (viewer, _) = b.connect(3, Role::Peer, Some(8000));
    b.tr.handle_message(b.now, viewer, Message::AskInfo(AskInfo { path: "a.bin".into() }));
    let told = b.drain().into_iter().find_map(|t| match t {
        Transmit::Send { msg: Message::TellInfo(t), .. } => Some(t.signature),
        _ => None,
    });
    assert_eq!(told, Some(Some(good)));

    // A signed live stream.
    let mut b = Bench::new();
    let mut live = manifest("show", 0, 1000);
    live.live = Some(LiveInfo { bitrate_bps: 8_000, first_chunk: 0 });
    let mut chain = Chain::of(&live);
    let (seed, nonce) = b.connect(1, Role::Seed, Some(7000));
    let proof = auth::publish_proof(KEY, &nonce, &live, None);
    let signature = Some(key.sign(&chain.statement(0, false)));
    b.tr.handle_message(
        b.now,
        seed,
        Message::Publish(Box::new(Publish { manifest: live, proof, signature, uplink_bps: None })),
    );
    b.drain();
    let content = b.tr.content_id("show").unwrap();
    let viewer = b.live_viewer(2, content);
    b.drain();
    let hashes = vec![chunk_hash(0)];
    chain.push(&hashes[0]);
    let signature = Some(key.sign(&chain.statement(1000, false)));
    let proof = auth::append_proof(KEY, &nonce, content, 0, 1000, 0, &hashes);
    let append =
        AppendChunks { content, first: 0, new_size: 1000, hashes, window_start: 0, proof, signature };
    b.tr.handle_message(b.now, seed, Message::AppendChunks(Box::new(append)));
    let forwarded = b.drain().into_iter().find_map(|t| match t {
        Transmit::Send { conn, msg: Message::AppendChunks(a) } if conn == viewer => Some(a.signature),
        _ => None,
    });
    assert_eq!(forwarded, Some(signature), "the viewer gets the seed's signature");
    let hashes = vec![chunk_hash(1)];
    let proof = auth::append_proof(KEY, &nonce, content, 1, 2000, 0, &hashes);
    let unsigned =
        AppendChunks { content, first: 1, new_size: 2000, hashes, window_start: 0, proof, signature: None };
    b.tr.handle_message(b.now, seed, Message::AppendChunks(Box::new(unsigned)));
    let out = b.drain();
    assert_eq!(error_code(&out), Some(ErrorCode::Unauthorized), "an unsigned append to a signed stream");
    assert!(closed(&out, seed));
}

/// One address cannot hold the tracker's table with many identities: past
/// `max_connections_per_host` it is refused with `Overloaded`; a closed connection frees its
/// place; loopback (the tracker's own host) is exempt.
#[test]
fn connections_per_address_are_capped_with_an_explicit_overloaded() {
    let mut cfg = TrackerConfig::with_key(KEY);
    cfg.max_connections_per_host = 3;
    let mut b = Bench::with(cfg);
    let conns: Vec<_> = (0..3).map(|_| b.tr.accept(b.now, "10.9.9.9".into()).unwrap()).collect();
    let refused = b.tr.accept(b.now, "10.9.9.9".into()).unwrap_err();
    assert_eq!(refused.code, ErrorCode::Overloaded);
    assert!(refused.detail.contains("10.9.9.9"), "{}", refused.detail);
    assert!(b.tr.accept(b.now, "10.9.9.8".into()).is_ok(), "another address is not affected");
    b.tr.handle_closed(b.now, conns[0]);
    assert!(b.tr.accept(b.now, "10.9.9.9".into()).is_ok(), "a closed connection frees its place");
    for _ in 0..10 {
        assert!(b.tr.accept(b.now, "127.0.0.1".into()).is_ok(), "loopback is exempt");
    }
}

/// A tracker capping each address at 4 downloads (3 per identity), with a seed that can
/// give 100 at once.
fn per_address_bench() -> Bench {
    let mut cfg = TrackerConfig::with_key(KEY);
    cfg.max_downloads_per_host = 4;
    cfg.limits.max_downloads = 3;
    cfg.seed_limits.max_uploads = 100;
    cfg.seed_limits.max_transfers = 100;
    Bench::with(cfg)
}

/// Identities are free, addresses are not: three identities from one address hold at most
/// `max_downloads_per_host` (4) orders together, though each alone could hold 3; another
/// address gets its own 3 beside them; a finished copy frees a place that one of the
/// address's waiting identities takes at once; loopback is exempt.
#[test]
fn one_address_holds_at_most_its_download_cap_across_identities() {
    let mut b = per_address_bench();
    let (_, content) = b.seed_with(manifest("a.bin", 60, 1000));
    let join = |b: &mut Bench, host: &str, id: u32| b.peer_from(host, id, content);
    let crowd: Vec<ConnId> = (10..13).map(|id| join(&mut b, "10.9.9.9", id)).collect();
    let other = join(&mut b, "10.9.9.8", 20);
    let local: Vec<ConnId> = (30..33).map(|id| join(&mut b, "127.0.0.1", id)).collect();
    let os = orders(&b.drain());
    let taking = |conns: &[ConnId], os: &[(ConnId, TransferOrder)]| {
        os.iter().filter(|(c, o)| conns.contains(c) && o.side == Side::Taker).count()
    };
    assert_eq!(taking(&crowd, &os), 4, "one address, three identities");
    assert_eq!(taking(&[other], &os), 3, "another address");
    assert_eq!(taking(&local, &os), 9, "loopback is exempt");
    let (conn, o) = os.iter().find(|(c, o)| crowd.contains(c) && o.side == Side::Taker).unwrap().clone();
    b.complete(conn, &o, 1000);
    let more = orders(&b.drain());
    assert_eq!(taking(&crowd, &more), 1, "the freed place goes back to the address, no more");
    // The identity holding most of the address's orders leaves: the two waiting take its
    // places (they are scheduled again when the address's count drops below the cap).
    let all: Vec<_> = os.iter().chain(&more).cloned().collect();
    let holds = |c: ConnId| all.iter().filter(|(x, o)| *x == c && o.side == Side::Taker).count();
    let leaving = *crowd.iter().max_by_key(|&&c| (holds(c), c)).unwrap();
    let freed = holds(leaving) - usize::from(leaving == conn);
    assert!(freed >= 2, "the leaver held {freed}");
    b.tr.handle_closed(b.now, leaving);
    let rest: Vec<ConnId> = crowd.iter().copied().filter(|&c| c != leaving).collect();
    assert_eq!(taking(&rest, &orders(&b.drain())), freed, "the waiting identities take the freed places");
}

/// Nodes that come and go leave nothing behind (issue 17: memory bounded by what is
/// connected at once): 2 000 identities from 2 000 addresses, each connecting, asking for a
/// file and leaving, keep the tracker's per-node, per-address and trust tables at the size
/// they had with one of them connected; one that wasted an order (benched, its downloads
/// cut) leaves, and the newcomer given its index takes at once and in full.
#[test]
fn nodes_that_come_and_go_leave_the_trackers_tables_as_they_were() {
    let mut b = per_address_bench();
    let (seed, content) = b.seed_with(manifest("a.bin", 20, 1000));
    let sizes =
        |t: &Tracker| (t.nodes.len(), t.loads.len(), t.up_rates.len(), t.hosts.len(), t.trust.peer_count());
    let join =
        |b: &mut Bench, k: u32| b.peer_from(&format!("10.{}.{}.7", k / 250, k % 250), 100 + k, content);
    let first = join(&mut b, 0);
    b.drain();
    let one_connected = sizes(&b.tr);
    b.tr.handle_closed(b.now, first);
    for k in 1..2000 {
        let conn = join(&mut b, k);
        b.drain();
        b.tr.handle_closed(b.now, conn);
        b.drain();
    }
    let last = join(&mut b, 2000);
    b.drain();
    assert_eq!(sizes(&b.tr), one_connected, "nodes, loads, rates, addresses, trust records");
    b.tr.handle_closed(b.now, last);
    // A taker that wastes an order is benched and has its downloads cut; it leaves.
    let waster = join(&mut b, 5000);
    let os = orders(&b.drain());
    let (_, to_giver) = os.iter().find(|(c, o)| *c == seed && o.side == Side::Giver).unwrap().clone();
    let unstarted = Completed { token: to_giver.token, hash: None, copy_us: 0 };
    b.tr.handle_message(b.now, seed, Message::Completed(unstarted));
    b.drain();
    b.tr.handle_closed(b.now, waster);
    b.drain();
    // The next one gets its index and nothing of its record: all 3 downloads at once.
    let newcomer = join(&mut b, 5001);
    let taking = orders(&b.drain()).iter().filter(|(c, o)| *c == newcomer && o.side == Side::Taker).count();
    assert_eq!(taking, 3);
    assert_eq!(sizes(&b.tr), one_connected);
}

/// A node given a departed holder's index, coming to hold the same chunk, is listed once as
/// its holder, not twice (the departed node's entry stays until read): a list naming it
/// twice made it twice as likely to be sampled as a giver, which cut the origin's share of
/// a churning swarm by 5 % (quick/steady.yml, six seeds).
#[test]
fn a_reused_index_is_listed_once_as_a_chunks_holder() {
    let mut b = Bench::new();
    let (_, content) = b.seed_with(manifest("a.bin", 1, 1000));
    let fetch = |b: &mut Bench, id: u32| {
        let conn = b.peer_requesting(id, content);
        let os = orders(&b.drain());
        let (_, o) = os.iter().find(|(c, o)| *c == conn && o.side == Side::Taker).expect("an order").clone();
        b.complete(conn, &o, 1000);
        b.drain();
        conn
    };
    let first = fetch(&mut b, 10);
    let idx = b.tr.by_id[&PeerId(10)];
    b.tr.handle_closed(b.now, first);
    fetch(&mut b, 11);
    assert_eq!(b.tr.by_id[&PeerId(11)], idx, "the departed node's index is reused");
    let listed = b.tr.contents[0].holders[0].iter().filter(|&&h| h == idx).count();
    assert_eq!(listed, 1);
}

/// Bans outlive a restart: a tracker that banned peer 10 (and its address) hands its bans to
/// a fresh one, where peer 10 and a new identity from its address start banned, another
/// address does not.
#[test]
fn bans_handed_to_a_restarted_tracker_still_hold() {
    let b = corrupting_giver_run(GiverPolicy::Random);
    let bans = b.tr.bans();
    assert_eq!(bans.peers, vec![PeerId(10)]);
    assert_eq!(bans.hosts, vec!["10.0.0.10".to_owned()]);
    let mut fresh = Bench::new();
    fresh.tr.restore_bans(&bans);
    fresh.connect(10, Role::Peer, Some(8000));
    fresh.connect_from("10.0.0.10", 77, Role::Peer, Some(8000));
    fresh.connect(78, Role::Peer, Some(8000));
    let banned =
        |b: &Bench, id: u32| b.tr.stats().nodes.iter().find(|n| n.peer == PeerId(id)).unwrap().banned;
    assert!(banned(&fresh, 10), "the banned identity");
    assert!(banned(&fresh, 77), "a new identity from the banned address");
    assert!(!banned(&fresh, 78), "another address");
    assert_eq!(fresh.tr.bans(), bans, "what it hands on in turn");
}

/// A banned giver's address stays banned: the same host under a new `PeerId` starts banned
/// (never ordered from), another host does not; with `ban_hosts` off, it starts clean.
#[test]
fn a_banned_givers_address_bans_its_new_identities() {
    let mut b = corrupting_giver_run(GiverPolicy::LeastLoaded);
    b.connect_from("10.0.0.10", 77, Role::Peer, Some(8000));
    b.connect_from("10.0.0.11", 78, Role::Peer, Some(8000));
    let banned =
        |b: &Bench, id: u32| b.tr.stats().nodes.iter().find(|n| n.peer == PeerId(id)).unwrap().banned;
    assert!(banned(&b, 77), "a new identity from the banned giver's address");
    assert!(!banned(&b, 78), "an identity from another address");

    let mut cfg = TrackerConfig::with_key(KEY);
    cfg.ban_hosts = false;
    let mut b = corrupting_giver_run_with(cfg);
    b.connect_from("10.0.0.10", 77, Role::Peer, Some(8000));
    assert!(!b.tr.stats().nodes.iter().find(|n| n.peer == PeerId(77)).unwrap().banned);
}

/// An IPv6 host draws fresh addresses from its /64 at will: the per-address cap and the
/// address ban count the /64, not the address; the next /64 and IPv4 addresses are apart;
/// an IPv4-mapped address is its IPv4 address.
#[test]
fn an_ipv6_host_is_capped_and_banned_by_its_slash_64() {
    let mut cfg = TrackerConfig::with_key(KEY);
    cfg.max_connections_per_host = 2;
    let mut b = Bench::with(cfg);
    b.tr.accept(b.now, "2001:db8:1:2::1".into()).unwrap();
    b.tr.accept(b.now, "2001:db8:1:2:ffff:ffff:ffff:ffff".into()).unwrap();
    let refused = b.tr.accept(b.now, "2001:db8:1:2::99".into()).unwrap_err();
    assert_eq!(refused.code, ErrorCode::Overloaded);
    assert!(refused.detail.contains("2001:db8:1:2::/64"), "{}", refused.detail);
    assert!(b.tr.accept(b.now, "2001:db8:1:3::1".into()).is_ok(), "the next /64");
    b.tr.accept(b.now, "::ffff:10.1.1.1".into()).unwrap();
    b.tr.accept(b.now, "10.1.1.1".into()).unwrap();
    assert!(b.tr.accept(b.now, "10.1.1.1".into()).is_err(), "a mapped address is its IPv4 one");
    assert!(b.tr.accept(b.now, "10.1.1.2".into()).is_ok());

    let banned =
        |b: &Bench, id: u32| b.tr.stats().nodes.iter().find(|n| n.peer == PeerId(id)).unwrap().banned;
    // The corrupting giver (peer 10) at 2001:db8:0:a::1: its whole /64 is banned.
    let mut b = Bench::new();
    b.ipv6 = true;
    let mut b = corrupting_giver_run_on(b);
    b.connect_from("2001:db8:0:a:1234::77", 40, Role::Peer, Some(8000));
    b.connect_from("2001:db8:0:b::1", 41, Role::Peer, Some(8000));
    assert!(banned(&b, 40), "a new identity from elsewhere in the banned giver's /64");
    assert!(!banned(&b, 41), "an identity from the next /64");
    // The same giver on IPv4: its address mapped into IPv6 is the same address.
    let mut b = corrupting_giver_run(GiverPolicy::LeastLoaded);
    b.connect_from("::ffff:10.0.0.10", 42, Role::Peer, Some(8000));
    assert!(banned(&b, 42), "the banned giver's IPv4 address, mapped into IPv6");
    assert_eq!(super::address_group("2001:db8:5:6:a:b:c:d"), "2001:db8:5:6::/64");
    assert_eq!(super::address_group("fe80::1"), "fe80:0:0:0::/64");
    assert_eq!(super::address_group("tracker.example"), "tracker.example");
}

/// A content's id is its path's: a tracker started again gives each path the id it had, in
/// whatever order the seeds publish, so downloads carry on across a restart.
#[test]
fn content_ids_do_not_depend_on_the_order_of_publishing() {
    let ids = |paths: &[&str]| {
        let mut b = Bench::new();
        let (conn, nonce) = b.connect(1, Role::Seed, Some(7000));
        for p in paths {
            let m = manifest(p, 2, 1000);
            let proof = auth::publish_proof(KEY, &nonce, &m, None);
            b.tr.handle_message(
                b.now,
                conn,
                Message::Publish(Box::new(Publish { manifest: m, proof, signature: None, uplink_bps: None })),
            );
        }
        b.drain();
        let mut v: Vec<_> = paths.iter().map(|p| (p.to_string(), b.tr.content_id(p).unwrap())).collect();
        v.sort();
        v
    };
    let first = ids(&["a.mp4", "b.mp4", "dir/c.ts"]);
    assert_eq!(first, ids(&["dir/c.ts", "b.mp4", "a.mp4"]));
    assert_ne!(first[0].1, first[1].1);
}

/// A viewer's ranged request for a file moves its position there: its next orders are the
/// chunks from that position on, in order, whatever the chunk policy would pick.
#[test]
fn a_ranged_request_for_a_file_moves_its_viewer_to_that_position() {
    let mut b = Bench::new();
    let (_, content) = b.seed_with(manifest("film.mp4", 100, 1000));
    let viewer = b.peer_requesting(10, content);
    let taken = |out: &[Transmit]| -> Vec<TransferOrder> {
        orders(out)
            .into_iter()
            .filter(|(c, o)| *c == viewer && o.side == Side::Taker)
            .map(|(_, o)| o)
            .collect()
    };
    let first = taken(&b.drain());
    assert!(!first.is_empty());
    // The player seeks to byte 60 500, in chunk 60.
    b.tr.handle_message(b.now, viewer, Message::Request(Interest::range(content, ByteRange::from(60_500))));
    for o in &first {
        b.complete(viewer, o, 1_000);
    }
    let next = taken(&b.drain());
    assert!(!next.is_empty());
    let expect: Vec<u32> =
        (60..100).filter(|c| !first.iter().any(|o| o.chunk == *c)).take(next.len()).collect();
    let got: Vec<u32> = next.iter().map(|o| o.chunk).collect();
    assert_eq!(got, expect, "first orders {:?}", first.iter().map(|o| o.chunk).collect::<Vec<_>>());
}

/// Only an open-ended ranged request moves a file viewer's position: a closed range (a chunk
/// its store lost, asked for again) leaves the viewer in its chunk policy's order.
#[test]
fn a_closed_range_request_does_not_move_a_file_viewers_position() {
    let mut b = Bench::new();
    let (_, content) = b.seed_with(manifest("film.mp4", 100, 1000));
    let viewer = b.peer_requesting(10, content);
    b.drain();
    let focus = |b: &Bench| {
        let node = b.tr.nodes.iter().flatten().find(|n| n.id == PeerId(10)).unwrap();
        node.content(content).unwrap().focus
    };
    let closed = ByteRange::new(60_000, 61_000);
    b.tr.handle_message(b.now, viewer, Message::Request(Interest::range(content, closed)));
    assert_eq!(focus(&b), None);
    b.tr.handle_message(b.now, viewer, Message::Request(Interest::range(content, ByteRange::from(60_500))));
    assert_eq!(focus(&b), Some(60));
}

/// `live_copy_time` sets upload slots after a copy of a live content, and only there: the
/// same copy of a file leaves the slots to `copy_time`.
#[test]
fn live_copy_time_sets_slots_after_live_copies_only() {
    let seed_slots = |live: bool, live_copy_time: Option<Span>| {
        let mut cfg = TrackerConfig::with_key(KEY);
        cfg.upload_slots = UploadSlots::Measured { copy_time: Span::from_secs(1) };
        cfg.live_copy_time = live_copy_time;
        cfg.limits.max_downloads = 1;
        let mut b = Bench::with(cfg);
        let content = if live { b.live_show_of(4).0 } else { b.seed_with(manifest("a.bin", 4, 1000)).1 };
        let viewer = if live { b.live_viewer(10, content) } else { b.peer_requesting(10, content) };
        let os = orders(&b.drain());
        let (_, o) = os.iter().find(|(c, o)| *c == viewer && o.side == Side::Taker).expect("an order");
        // 1000 bytes in 1 ms, the seed's only copy: 1 MB/s.
        b.now += Span::from_millis(1);
        b.complete(viewer, o, 1_000);
        b.drain();
        b.tr.loads.iter().find(|l| l.seed).map(|l| l.up_slots)
    };
    // 1 MB/s × 1 s ÷ 1000 B + 1 (max_uploads caps it where slots are used); × 2 ms + 1 = 3.
    assert_eq!(seed_slots(true, None), Some(1001));
    assert_eq!(seed_slots(true, Some(Span::from_millis(2))), Some(3));
    assert_eq!(seed_slots(false, Some(Span::from_millis(2))), Some(1001));
}

/// The stats give a live content's bounds from measured uplinks once the seed's is measured:
/// here the seed sent one 1000-byte chunk in 1 ms (8 Mbit/s) to the one viewer, not measured.
#[test]
fn stats_give_a_live_streams_bounds_from_measured_uplinks() {
    let mut b = Bench::new();
    let (content, _) = b.live_show_of(4);
    let viewer = b.live_viewer(10, content);
    let bounds = |b: &Bench| b.tr.stats().contents[0].live_bounds;
    let os = orders(&b.drain());
    assert_eq!(bounds(&b), None, "the seed's uplink is not measured yet");
    let (_, o) = os.iter().find(|(c, o)| *c == viewer && o.side == Side::Taker).expect("an order");
    b.now += Span::from_millis(1);
    b.complete(viewer, o, 1_000);
    let lb = bounds(&b).expect("bounds once the seed is measured");
    // r_max = min(8 Mbit/s, (8 + 0) / 1 viewer); the stream is 8 kbit/s; one hop of a chunk
    // at the mean uplink of the two nodes (4 Mbit/s): 2 ms.
    assert!((lb.r_max_bps - 8e6).abs() < 1.0, "{lb:?}");
    assert!((lb.load - 0.001).abs() < 1e-9, "{lb:?}");
    assert_eq!(lb.depth, 1);
    assert!((lb.floor_s - 0.002).abs() < 1e-9, "{lb:?}");
}

/// The stats give an on-demand content's distance to its bound: the chunk bytes still
/// wanted, those only the origin holds, and once the origin is measured the least time the
/// rest can take; nothing once nobody wants any.
#[test]
fn stats_give_an_on_demand_contents_remaining_work_and_bound() {
    let mut b = Bench::new();
    let (_, content) = b.seed_with(manifest("a.bin", 4, 1000));
    let viewer = b.peer_requesting(10, content);
    let bound = |b: &Bench| b.tr.stats().contents[0].on_demand;
    let os = orders(&b.drain());
    let before = bound(&b).expect("chunks are wanted");
    assert_eq!((before.remaining_bytes, before.origin_only_bytes), (4000, 4000));
    assert_eq!(before.bound_s, None, "the origin is not measured yet");
    // One 1000-byte copy in 1 ms from the seed: 8 Mbit/s; the viewer uploads nothing yet.
    let (_, o) = os.iter().find(|(c, o)| *c == viewer && o.side == Side::Taker).expect("an order");
    b.now += Span::from_millis(1);
    b.complete(viewer, o, 1_000);
    b.drain();
    let after = bound(&b).expect("three chunks still wanted");
    assert_eq!((after.remaining_bytes, after.origin_only_bytes), (3000, 3000));
    assert!((after.origin_up_bps - 8e6).abs() < 1.0 && (after.capacity_bps - 8e6).abs() < 1.0, "{after:?}");
    // 3000 bytes at 8 Mbit/s, from the origin alone: 3 ms.
    assert!((after.bound_s.unwrap() - 0.003).abs() < 1e-9, "{after:?}");
    // Every chunk delivered: nothing left to bound.
    let mut pending: Vec<_> =
        os.iter().filter(|(c, x)| *c == viewer && x.side == Side::Taker && x != o).collect();
    let mut later = Vec::new();
    for _ in 0..8 {
        for (_, x) in pending.drain(..) {
            b.now += Span::from_millis(1);
            b.complete(viewer, x, 1_000);
        }
        later = orders(&b.drain());
        pending = later.iter().filter(|(c, x)| *c == viewer && x.side == Side::Taker).collect();
        if pending.is_empty() {
            break;
        }
    }
    assert!(later.iter().all(|(c, _)| *c != viewer), "orders left: {later:?}");
    assert_eq!(bound(&b), None);
}

/// The tracker's connect-back probe in `out` to `host:port`.
fn probe_to(out: &[Transmit], host: &str, port: u16) -> ConnId {
    out.iter()
        .find_map(|t| match t {
            Transmit::Connect { conn, endpoint, .. } if endpoint.host == host && endpoint.port == port => {
                Some(*conn)
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("a probe to {host}:{port} in {out:?}"))
}

fn reach_events(b: &mut Bench) -> Vec<(PeerId, bool)> {
    std::iter::from_fn(|| b.tr.poll_event())
        .filter_map(|e| match e {
            TrackerEvent::Reach { peer, reachable } => Some((peer, reachable)),
            _ => None,
        })
        .collect()
}

/// A tracker probing every listening node (3 s), with seed 1 (listening on 7000) publishing
/// "a.bin" of 4 chunks, its probe opened (and closed at once): the bench, the seed's
/// connection and the content.
fn probing_bench() -> (Bench, ConnId, ContentId) {
    let mut cfg = TrackerConfig::with_key(KEY);
    cfg.reach_probe = Some(Span::from_secs(3));
    let mut b = Bench::with(cfg);
    let (seed_conn, _, out) = b.publish_as(1, manifest("a.bin", 4, 1000));
    let content = published(&out);
    let seed_probe = probe_to(&out, "10.0.0.1", 7000);
    b.tr.handle_connected(b.now, seed_probe);
    assert!(closed(&b.drain(), seed_probe), "a probe that opened is closed at once");
    (b, seed_conn, content)
}

#[test]
fn a_node_behind_a_nat_is_dialled_by_nobody_and_dials_reachable_takers() {
    let (mut b, seed_conn, content) = probing_bench();

    // Peer 10's probe is refused (its NAT has nothing at that port): it is unreachable.
    b.peer_requesting(10, content);
    let out = b.drain();
    let probe = probe_to(&out, "10.0.0.10", 8000);
    b.tr.handle_closed(b.now, probe);
    assert_eq!(reach_events(&mut b), vec![(PeerId(1), true), (PeerId(10), false)]);
    assert!(b.tr.stats().nodes.iter().any(|n| n.peer == PeerId(10) && n.reachable == Some(false)));
    // It still takes from the reachable seed, dialling it.
    let mut out = out;
    out.extend(b.drain());
    assert!(orders(&out).iter().all(|(_, o)| o.other != PeerId(10) || o.method == Method::Get));
    while complete_all(&mut b, &out, None) > 0 {
        out = b.drain();
    }
    // The seed leaves; peer 11, reachable, can only take from peer 10, which dials it.
    b.tr.handle_closed(b.now, seed_conn);
    let (c11, _) = b.connect(11, Role::Peer, Some(8000));
    let p11 = probe_to(&b.drain(), "10.0.0.11", 8000);
    b.tr.handle_connected(b.now, p11);
    b.tr.handle_message(b.now, c11, Message::Request(Interest::all(content)));
    let os = orders(&b.drain());
    assert!(!os.is_empty(), "peer 11 gets orders from peer 10");
    for (_, o) in &os {
        assert_eq!(o.method, Method::Put, "the unreachable giver dials: {o:?}");
        match o.side {
            Side::Giver => assert_eq!(o.connect, Some(Endpoint { host: "10.0.0.11".into(), port: 8000 })),
            Side::Taker => assert_eq!(o.connect, None),
        }
    }
    // Peer 12's probe does not open in time: unreachable too, and two unreachable nodes whose
    // NAT mappings the tracker does not know (these dialled it from no known port) are never
    // paired.
    let (c12, _) = b.connect(12, Role::Peer, Some(8000));
    let p12 = probe_to(&b.drain(), "10.0.0.12", 8000);
    b.advance(Span::from_secs(3));
    assert!(closed(&b.drain(), p12), "a probe past its time is closed");
    b.tr.handle_message(b.now, c12, Message::Request(Interest::all(content)));
    assert!(orders(&b.drain()).iter().all(|(c, _)| *c != c12), "no order between two unreachable nodes");
    assert!(reach_events(&mut b).contains(&(PeerId(12), false)));
}

#[test]
fn without_probes_every_listening_node_is_dialled() {
    let mut b = Bench::new();
    let (_, content) = b.seed_with(manifest("a.bin", 2, 1000));
    b.peer_requesting(10, content);
    let out = b.drain();
    assert!(!out.iter().any(|t| matches!(t, Transmit::Connect { .. })), "no probes: {out:?}");
    assert!(orders(&out).iter().all(|(_, o)| o.method == Method::Get));
}

#[test]
fn two_nodes_behind_nat_are_told_to_punch_once_until_it_connects() {
    let (mut b, seed_conn, content) = probing_bench();
    // Two nodes behind NAT, each dialling the tracker from its listening port 8000, which
    // its NAT maps to 40000 + id.
    let join = |b: &mut Bench, id: u32| {
        let host = format!("10.0.0.{id}");
        let conn = b.tr.accept_from(b.now, host.clone(), Some(40_000 + id as u16)).unwrap();
        let hello = Hello {
            version: PROTOCOL_VERSION,
            peer_id: PeerId(id),
            listen_port: Some(8000),
            role: Role::Peer,
        };
        b.tr.handle_message(b.now, conn, Message::Hello(hello));
        let probe = probe_to(&b.drain(), &host, 8000);
        b.tr.handle_closed(b.now, probe);
        conn
    };
    let c10 = join(&mut b, 10);
    b.tr.handle_message(b.now, c10, Message::Request(Interest::all(content)));
    let mut out = b.drain();
    while complete_all(&mut b, &out, None) > 0 {
        out = b.drain();
    }
    b.tr.handle_closed(b.now, seed_conn);
    let c11 = join(&mut b, 11);
    b.tr.handle_message(b.now, c11, Message::Request(Interest::all(content)));
    let os = orders(&b.drain());
    // One order only while the pair is untried, both ends dialling the other's mapping.
    assert_eq!(os.len(), 2, "one punch at a time: {os:?}");
    for (conn, o) in &os {
        assert!(o.punch && o.method == Method::Get, "{o:?}");
        let (other_port, other_host) =
            if *conn == c10 { (40_011, "10.0.0.11") } else { (40_010, "10.0.0.10") };
        assert_eq!(o.connect, Some(Endpoint { host: other_host.into(), port: other_port }), "{o:?}");
    }
    // The punch fails: the pair is remembered and never ordered again, and neither end is
    // benched or blamed for it.
    let (_, taker_order) = os.iter().find(|(c, _)| *c == c11).unwrap();
    let failed = Completed { token: taker_order.token, hash: None, copy_us: 0 };
    b.tr.handle_message(b.now, c11, Message::Completed(failed));
    b.advance(Span::from_secs(10));
    assert!(orders(&b.drain()).is_empty(), "a failed pair is not tried again");
    let stats = b.tr.stats();
    assert!(stats.nodes.iter().all(|n| !n.banned && n.reputation >= 0.5), "{:?}", stats.nodes);
}
