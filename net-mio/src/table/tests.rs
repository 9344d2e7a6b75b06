use std::io::Read;
use std::net::TcpStream;

use mio::{Events, Interest, Poll};

use super::*;

const LISTENER: Token = Token(0);

struct Node {
    poll: Poll,
    events: Events,
    listener: TcpListener,
    table: ConnTable,
    now: Instant,
}

impl Node {
    fn new(max: usize) -> Self {
        let poll = Poll::new().unwrap();
        let mut listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE).unwrap();
        let table = ConnTable::new(Token(10), max, Duration::from_secs(10), Limits::default());
        Node { poll, events: Events::with_capacity(64), listener, table, now: Instant::now() }
    }

    /// Polls until `done` (bounded; the timeout is a safety bound).
    fn run_until(&mut self, mut done: impl FnMut(&ConnTable) -> bool) -> Vec<Token> {
        let mut accepted = Vec::new();
        for _ in 0..1_000 {
            if done(&self.table) {
                return accepted;
            }
            self.poll.poll(&mut self.events, Some(Duration::from_millis(50))).unwrap();
            for ev in &self.events {
                if ev.token() == LISTENER {
                    accepted.extend(
                        self.table.accept_all(&self.listener, self.poll.registry(), self.now, false).kept,
                    );
                } else if let Some(c) = self.table.get_mut(ev.token()) {
                    c.on_ready(ev).unwrap();
                }
            }
        }
        panic!("did not reach the expected state");
    }
}

fn expect_closed(mut s: TcpStream) {
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buf = [0u8; 8];
    match s.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("expected the server to close, got {other:?}"),
    }
}

/// A connection refused at the cap reads one `Error(Overloaded)` frame, then the end.
fn expect_overloaded(mut s: TcpStream) {
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    let mut d = pdtp_core::wire::codec::Decoder::new(pdtp_core::wire::codec::Limits::DEFAULT);
    d.push(&got);
    match d.next() {
        Ok(Some(pdtp_core::Message::Error(n))) => {
            assert_eq!(n.code, pdtp_core::wire::ErrorCode::Overloaded);
            assert!(n.detail.contains("limit of 3 connections"), "{}", n.detail);
        }
        other => panic!("expected an Overloaded error frame, got {other:?} from {} bytes", got.len()),
    }
    assert_eq!(d.next(), Ok(None), "nothing after it");
}

#[test]
fn refuses_past_the_cap_and_never_reuses_tokens() {
    let mut node = Node::new(3);
    let addr = node.listener.local_addr().unwrap();
    let clients: Vec<TcpStream> = (0..5).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let accepted = node.run_until(|t| t.len() + t.refused() as usize == 5);
    assert_eq!(accepted, [Token(10), Token(11), Token(12)]);
    assert_eq!((node.table.len(), node.table.refused()), (3, 2));
    let mut clients = clients.into_iter();
    let kept: Vec<TcpStream> = clients.by_ref().take(3).collect();
    for refused in clients {
        expect_overloaded(refused);
    }

    assert!(node.table.remove(Token(11), node.poll.registry()));
    assert!(!node.table.remove(Token(11), node.poll.registry()));
    let _again = TcpStream::connect(addr).unwrap();
    let accepted = node.run_until(|t| t.len() == 3);
    assert_eq!(accepted, [Token(13)], "a fresh token, not the freed 11");
    assert_eq!(node.table.tokens().collect::<Vec<_>>(), [Token(10), Token(12), Token(13)]);
    drop(kept);
}

#[test]
fn silent_connections_are_closed_at_the_hello_deadline() {
    let mut node = Node::new(16);
    let addr = node.listener.local_addr().unwrap();
    let talker = TcpStream::connect(addr).unwrap();
    let silent = TcpStream::connect(addr).unwrap();
    let accepted = node.run_until(|t| t.len() == 2);
    let (talker_token, silent_token) = (accepted[0], accepted[1]);

    // The loop marks a connection once it has decoded its Hello.
    node.table.hello_received(talker_token);

    let deadline = node.table.poll_timeout().unwrap();
    assert_eq!(deadline, node.now + Duration::from_secs(10));
    let reg = node.poll.registry();
    assert!(node.table.handle_timeout(reg, deadline - Duration::from_millis(1)).is_empty());
    assert_eq!(node.table.handle_timeout(reg, deadline), [silent_token]);
    assert_eq!(node.table.len(), 1);
    assert!(node.table.get_mut(talker_token).is_some(), "the one that said hello stays");
    assert_eq!(node.table.poll_timeout(), None);
    expect_closed(silent);
    drop(talker);
}

#[test]
fn outgoing_connections_count_against_the_cap() {
    let mut node = Node::new(1);
    let addr = node.listener.local_addr().unwrap();
    let t = node.table.connect(addr, node.poll.registry()).unwrap();
    assert_eq!(t, Token(10));
    assert_eq!(node.table.poll_timeout(), None, "we speak first: no hello deadline");
    let e = node.table.connect(addr, node.poll.registry()).unwrap_err().to_string();
    assert!(e.contains("connection cap of 1 reached"), "{e}");
}
