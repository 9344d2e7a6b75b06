use std::time::Duration;

use mio::net::TcpListener;
use mio::{Events, Poll};

use super::*;

const LISTENER: Token = Token(0);
const CLIENT: Token = Token(1);
const SERVER: Token = Token(2);

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 11) as u8).collect()
}

/// A connected client/server pair on loopback, registered with one poll.
struct Pair {
    poll: Poll,
    events: Events,
    client: Conn,
    server: Conn,
}

impl Pair {
    fn new(client_limits: Limits, server_limits: Limits) -> Self {
        let mut poll = Poll::new().unwrap();
        let mut listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client = Conn::connect(addr, CLIENT, client_limits).unwrap();
        client.register(poll.registry()).unwrap();
        assert!(client.is_connecting());
        let mut events = Events::with_capacity(16);
        let mut server = None;
        let mut polls = 0;
        while server.is_none() || client.is_connecting() {
            polls += 1;
            assert!(polls < 1_000, "safety bound");
            poll.poll(&mut events, Some(Duration::from_secs(10))).unwrap();
            for ev in &events {
                match ev.token() {
                    LISTENER => {
                        let (s, _) = listener.accept().unwrap();
                        let mut c = Conn::accepted(s, SERVER, server_limits);
                        c.register(poll.registry()).unwrap();
                        server = Some(c);
                    }
                    CLIENT => {
                        client.on_ready(ev).unwrap();
                    }
                    SERVER => {
                        server.as_mut().unwrap().on_ready(ev).unwrap();
                    }
                    _ => unreachable!(),
                }
            }
            client.update_interest(poll.registry()).unwrap();
        }
        assert_eq!(client.interest(), Some(Interest::READABLE), "no write interest without output");
        Pair { poll, events, client, server: server.unwrap() }
    }

    /// One poll; feeds the events to both ends.
    fn poll_once(&mut self) {
        self.poll.poll(&mut self.events, Some(Duration::from_secs(10))).unwrap();
        for ev in &self.events {
            match ev.token() {
                CLIENT => {
                    self.client.on_ready(ev).unwrap();
                }
                SERVER => {
                    self.server.on_ready(ev).unwrap();
                }
                _ => {}
            }
        }
    }
}

#[test]
fn moves_large_data_both_ways_with_a_capped_queue() {
    let limits = Limits { read_limit: 64 * 1024, write_cap: 128 * 1024 };
    let mut p = Pair::new(limits, limits);
    let up = pattern(6 << 20, 1);
    let down = pattern(5 << 20, 2);
    let seg = 10_000;
    let (mut up_sent, mut down_sent) = (0, 0);
    let (mut got_up, mut got_down) = (Vec::new(), Vec::new());
    let mut max_queued = 0;
    let mut polls = 0;
    while got_up.len() < up.len() || got_down.len() < down.len() {
        // Produce only while under the cap.
        while !p.client.over_cap() && up_sent < up.len() {
            let end = (up_sent + seg).min(up.len());
            p.client.send(Bytes::copy_from_slice(&up[up_sent..end]));
            up_sent = end;
        }
        while !p.server.over_cap() && down_sent < down.len() {
            let end = (down_sent + seg).min(down.len());
            p.server.send(Bytes::copy_from_slice(&down[down_sent..end]));
            down_sent = end;
        }
        max_queued = max_queued.max(p.client.queued()).max(p.server.queued());
        p.client.flush(usize::MAX).unwrap();
        p.server.flush(usize::MAX).unwrap();
        p.server.fill(usize::MAX).unwrap();
        p.client.fill(usize::MAX).unwrap();
        assert!(p.server.read_buf().len() <= limits.read_limit);
        got_up.extend_from_slice(&p.server.read_buf().split());
        got_down.extend_from_slice(&p.client.read_buf().split());
        for c in [&mut p.client, &mut p.server] {
            c.update_interest(p.poll.registry()).unwrap();
            let pending = c.queued() > 0;
            assert_eq!(
                c.interest().unwrap().is_writable(),
                pending,
                "write interest only while output is pending"
            );
        }
        if p.client.may_read() || p.server.may_read() || p.client.may_write() || p.server.may_write() {
            continue; // Cached readiness: more to do without waiting.
        }
        if got_up.len() < up.len() || got_down.len() < down.len() {
            polls += 1;
            assert!(polls < 1_000_000, "safety bound");
            p.poll_once();
        }
    }
    assert!(max_queued < limits.write_cap + seg, "queue bounded by cap + one message: {max_queued}");
    assert!(got_up == up, "client -> server bytes differ");
    assert!(got_down == down, "server -> client bytes differ");
    assert_eq!(p.client.counters(), (down.len() as u64, up.len() as u64));
}

#[test]
fn full_read_buffer_pauses_reading_and_backpressures_the_sender() {
    let mut p = Pair::new(Limits::default(), Limits { read_limit: 32 * 1024, write_cap: 1 << 20 });
    // More than loopback's kernel buffers can absorb, so the sender must feel it.
    let data = pattern(32 << 20, 3);
    p.client.send(Bytes::from(data.clone()));
    // The server never consumes: drive until it has paused and the sender is blocked.
    let mut polls = 0;
    loop {
        p.client.flush(usize::MAX).unwrap();
        p.server.fill(usize::MAX).unwrap();
        p.client.update_interest(p.poll.registry()).unwrap();
        if p.server.read_paused() && !p.client.may_write() {
            break;
        }
        if !p.client.may_write() && !p.server.may_read() {
            polls += 1;
            assert!(polls < 100_000, "safety bound");
            p.poll_once();
        }
    }
    assert_eq!(p.server.read_buf().len(), 32 * 1024, "stopped exactly at the read limit");
    assert!(p.server.read_paused());
    assert!(p.client.queued() > 0, "kernel buffers full: the sender's queue cannot drain");
    assert!(p.client.interest().unwrap().is_writable());

    // Consume and resume: everything arrives in order.
    let mut got = Vec::new();
    let mut polls = 0;
    while got.len() < data.len() {
        p.server.fill(usize::MAX).unwrap();
        got.extend_from_slice(&p.server.read_buf().split());
        p.client.flush(usize::MAX).unwrap();
        p.client.update_interest(p.poll.registry()).unwrap();
        if got.len() < data.len() && !p.server.may_read() && !p.client.may_write() {
            polls += 1;
            assert!(polls < 100_000, "safety bound");
            p.poll_once();
        }
    }
    assert!(got == data);
    assert_eq!(p.client.interest(), Some(Interest::READABLE));
}

#[test]
fn budgets_limit_each_call() {
    let mut p = Pair::new(Limits::default(), Limits::default());
    p.server.send(Bytes::from_static(b"hi"));
    assert_eq!(
        p.server.flush(usize::MAX).unwrap(),
        2,
        "a fresh connection writes without waiting for an event"
    );
    p.client.send(Bytes::from(pattern(10_000, 4)));
    assert_eq!(p.client.flush(1_000).unwrap(), 1_000, "write budget respected");
    assert_eq!(p.client.queued(), 9_000);
    p.client.flush(usize::MAX).unwrap();
    let mut got = 0;
    let mut polls = 0;
    while got < 10_000 {
        let f = p.server.fill(700).unwrap();
        assert!(f.bytes <= 700, "read budget respected");
        got += f.bytes;
        if f.bytes == 0 {
            polls += 1;
            assert!(polls < 1_000, "safety bound");
            p.poll_once();
        }
    }
    assert_eq!(p.server.read_buf().as_ref(), &pattern(10_000, 4)[..]);
}

#[test]
fn end_of_stream_is_reported_and_drops_read_interest() {
    let mut p = Pair::new(Limits::default(), Limits::default());
    p.client.send(Bytes::from_static(b"bye"));
    p.client.flush(usize::MAX).unwrap();
    let client = std::mem::replace(
        &mut p.client,
        // A placeholder so the pair stays whole; it is never polled.
        Conn::accepted(
            TcpStream::connect(p.server.local_addr().unwrap()).unwrap(),
            Token(99),
            Limits::default(),
        ),
    );
    client.close(p.poll.registry());
    let mut polls = 0;
    while !p.server.is_eof() {
        p.server.fill(usize::MAX).unwrap();
        if !p.server.is_eof() {
            polls += 1;
            assert!(polls < 1_000, "safety bound");
            p.poll_once();
        }
    }
    assert_eq!(p.server.read_buf().as_ref(), b"bye");
    p.server.update_interest(p.poll.registry()).unwrap();
    assert_eq!(p.server.interest(), None, "nothing left to wait for");
}

#[test]
fn refused_connect_is_an_error() {
    // Take a free port, then close the listener so nothing listens there.
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut poll = Poll::new().unwrap();
    let mut events = Events::with_capacity(4);
    let mut c = match Conn::connect(addr, CLIENT, Limits::default()) {
        Ok(c) => c,
        Err(ConnError::Connect { .. }) => return, // refused synchronously: also correct
        Err(e) => panic!("{e}"),
    };
    c.register(poll.registry()).unwrap();
    assert!(c.interest().unwrap().is_writable(), "connect in progress wants WRITABLE");
    for _ in 0..100 {
        poll.poll(&mut events, Some(Duration::from_secs(10))).unwrap();
        for ev in &events {
            match c.on_ready(ev) {
                Err(e @ ConnError::Connect { .. }) => {
                    let msg = e.to_string();
                    assert!(msg.contains(&addr.to_string()) && msg.contains("refused"), "{msg}");
                    return;
                }
                other => assert!(matches!(other, Ok(false)), "{other:?}"),
            }
        }
    }
    panic!("the refused connect was never reported");
}

#[test]
fn file_ranges_go_out_between_memory_segments_and_reads_fill_a_callers_buffer() {
    let mut p = Pair::new(Limits::default(), Limits::default());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.bin");
    let body = pattern(300_000, 9);
    std::fs::write(&path, &body).unwrap();
    let file = Arc::new(File::open(&path).unwrap());
    p.client.send(Bytes::from_static(b"head"));
    p.client.send_file(FileRange { file: Arc::clone(&file), offset: 1_000, len: 250_000 });
    p.client.send(Bytes::from_static(b"tail"));
    assert_eq!(p.client.queued(), 250_008);
    let mut want = b"head".to_vec();
    want.extend_from_slice(&body[1_000..251_000]);
    want.extend_from_slice(b"tail");

    let mut got = BytesMut::new();
    let mut polls = 0;
    while got.len() < want.len() {
        p.client.flush(usize::MAX).unwrap();
        let f = p.server.fill_into(&mut got, usize::MAX).unwrap();
        assert!(f.bytes <= Limits::default().read_limit, "one call reads at most the read limit");
        if f.bytes == 0 {
            polls += 1;
            assert!(polls < 10_000, "safety bound");
            p.poll_once();
        }
    }
    assert!(got[..] == want[..]);
    assert_eq!(p.client.queued(), 0);
    assert_eq!(p.client.counters().1, want.len() as u64);
}

#[test]
fn a_file_shorter_than_its_range_fails_the_connection() {
    let mut p = Pair::new(Limits::default(), Limits::default());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("short.bin");
    std::fs::write(&path, b"only ten b").unwrap();
    let file = Arc::new(File::open(&path).unwrap());
    p.client.send_file(FileRange { file, offset: 0, len: 100 });
    let mut result = Ok(0);
    for _ in 0..100 {
        result = p.client.flush(usize::MAX);
        if result.is_err() {
            break;
        }
        p.poll_once();
    }
    assert!(result.is_err(), "sendfile past the end writes zero bytes: an error, not a hang");
}
