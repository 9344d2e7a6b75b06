//! Peer links on real sockets are sealed with the secret of the order they serve: a taker
//! played by hand that holds a real order from the tracker gets its chunk only on a link
//! sealed with that order's secret. The same token on a link under another secret (what an
//! eavesdropper who saw a token, but not the order, could try) gets nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// The test waits on the wall clock for what a seed does not send.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use pdtp_core::tracker::TrackerConfig;
use pdtp_core::wire::{
    AskInfo, Hello, Interest, LinkSecret, PROTOCOL_VERSION, PeerRequest, Role, TransferOrder,
};
use pdtp_core::{Digest, Message};
use pdtp_net_mio::driver::{RateLimits, Swarm, resolve};
use pdtp_tests::{KEY, PeerLinkIn, TrackerLink, run_polling, write_random_file};

const LIMIT: Duration = Duration::from_secs(30);
const CHUNK: usize = 16 * 1024;

/// A hand-played taker's order for some chunk of `f.bin`, held by the seed.
fn an_order(swarm: &mut Swarm) -> (pdtp_core::PeerId, TrackerLink, TransferOrder) {
    let id = swarm.reserve_id();
    let mut tracker = TrackerLink::connect(swarm.tracker_addr, Some(swarm.tracker_key));
    tracker.send(&Message::Hello(Hello {
        version: PROTOCOL_VERSION,
        peer_id: id,
        listen_port: None,
        role: Role::Peer,
    }));
    tracker.send(&Message::AskInfo(AskInfo { path: "f.bin".into() }));
    let mut order = None;
    assert!(run_polling(&mut swarm.rt, LIMIT, || {
        for msg in tracker.pump() {
            match msg {
                Message::TellInfo(t) => tracker.send(&Message::Request(Interest::all(t.content))),
                Message::Transfer(o) if order.is_none() => order = Some(o),
                _ => {}
            }
        }
        order.is_some()
    }));
    (id, tracker, order.unwrap())
}

/// Runs the swarm for `wait` (or until `done`), pumping `link`; returns what came on it.
fn listen(
    swarm: &mut Swarm,
    link: &mut PeerLinkIn,
    wait: Duration,
    mut done: impl FnMut(&[Message]) -> bool,
) -> Vec<Message> {
    let mut got = Vec::new();
    let end = Instant::now() + wait;
    run_polling(&mut swarm.rt, wait, || {
        got.extend(link.pump(&[]));
        done(&got) || Instant::now() >= end
    });
    got
}

#[test]
fn a_chunk_moves_only_on_a_link_sealed_with_its_orders_secret() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let source = write_random_file(&root, "f.bin", 4 * CHUNK + 3, 41);
    let mut swarm = Swarm::new(TrackerConfig::with_key(KEY), CHUNK as u32).unwrap();
    swarm.add_seed(&root, KEY, RateLimits::default()).unwrap();
    let (me, _tracker, order) = an_order(&mut swarm);
    let endpoint = order.connect.clone().expect("a Get order names the seed's endpoint");
    let addr = resolve(&endpoint.host, endpoint.port).unwrap();
    let hello =
        Message::Hello(Hello { version: PROTOCOL_VERSION, peer_id: me, listen_port: None, role: Role::Peer });
    let get = Message::Get(PeerRequest { token: order.token, content: order.content, chunk: order.chunk });

    // The right token under another secret: nothing comes.
    let mut wrong = PeerLinkIn::connect(addr, &LinkSecret(Box::new([0x77; 32])));
    wrong.send(&hello);
    wrong.send(&get);
    let got = listen(&mut swarm, &mut wrong, Duration::from_secs(2), |_| false);
    assert!(got.is_empty(), "a link under another secret got {got:?}");

    // The order's own secret: the chunk comes, and it is the file's.
    let mut right = PeerLinkIn::connect(addr, &order.key);
    right.send(&hello);
    right.send(&get);
    let got = listen(&mut swarm, &mut right, LIMIT, |m| m.iter().any(|m| matches!(m, Message::Data(_))));
    let data = got.iter().find_map(|m| if let Message::Data(d) = m { Some(d) } else { None });
    let data = data.expect("no chunk on the link sealed with the order's secret");
    let at = data.chunk as usize * CHUNK;
    let expect = &source[at..(at + CHUNK).min(source.len())];
    assert_eq!(data.payload.digest(), Digest::of(expect), "the chunk is the file's");
}

/// A connection to a seed's peer port that names no order's secret is held unread: what it
/// sends waits, up to a bound, for a secret that never comes (the socket's buffers then fill
/// and the sender blocks), instead of filling the seed's memory until the hello deadline.
#[test]
fn a_peer_link_without_a_known_secret_cannot_fill_the_seeds_memory() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    write_random_file(&root, "f.bin", 4 * CHUNK, 42);
    let mut swarm = Swarm::new(TrackerConfig::with_key(KEY), CHUNK as u32).unwrap();
    swarm.add_seed(&root, KEY, RateLimits::default()).unwrap();
    let (_me, _tracker, order) = an_order(&mut swarm);
    let endpoint = order.connect.clone().unwrap();
    let mut s = std::net::TcpStream::connect(resolve(&endpoint.host, endpoint.port).unwrap()).unwrap();
    s.write_all(&[0xab; 16]).unwrap();
    s.set_nonblocking(true).unwrap();
    let junk = vec![0u8; 64 * 1024];
    let mut sent = 0usize;
    run_polling(&mut swarm.rt, Duration::from_secs(2), || {
        while let Ok(n) = s.write(&junk) {
            sent += n;
            if sent > 256 << 20 {
                return true;
            }
        }
        false
    });
    // The seed holds at most 1 MiB; the rest is what loopback's socket buffers take.
    assert!(sent < 32 << 20, "the seed took {sent} bytes on a link it cannot open");
}
