//! TEST-ONLY nodes (never used by `sim run`): a sender that pushes virtual chunks to every
//! viewer, viewers that count them and report to a tracker stub. They exercise the engine
//! before the core machines' adapters exist.

use std::collections::VecDeque;

use pdtp_core::wire::{Data, ErrorCode, Notice, Verdict};
use pdtp_core::{ContentId, Digest, Endpoint, Payload, Token, Transmit};

use pdtp_core::{ConnId, Message, Span, Time};

use crate::node::{NodeEvent, NodeFactory, NodeSpec, Role, SimNode};

const TAG: Digest = Digest([7; 32]);

struct Sender {
    peers: u32,
    chunks: u32,
    chunk_len: u32,
    pace: Option<Span>,
    connect_delay: Option<Span>,
    ghost: bool,
    failed: u32,
    out: VecDeque<Transmit>,
    conns: Vec<ConnId>,
    next_chunk: u32,
    timer: Option<Time>,
}

struct Viewer {
    chunks: u32,
    want_acks: u32,
    got: u32,
    acks: u32,
    next_conn: u32,
    tracker: Option<ConnId>,
    out: VecDeque<Transmit>,
    events: VecDeque<NodeEvent>,
}

struct TrackerStub {
    next_conn: u32,
    out: VecDeque<Transmit>,
}

pub(crate) fn data(chunk: u32, len: u32) -> Message {
    Message::Data(Data {
        token: Token(1),
        content: ContentId(0),
        chunk,
        payload: Payload::Virtual { len, tag: TAG },
    })
}

impl Sender {
    fn connect_all(&mut self) {
        for p in 0..self.peers {
            let endpoint = Endpoint { host: format!("peer{p}"), port: 1 };
            self.out.push_back(Transmit::Connect {
                conn: ConnId(p),
                endpoint,
                key: None,
                dial: pdtp_core::Dial::Plain,
            });
        }
        if self.ghost {
            let endpoint = Endpoint { host: "ghost".into(), port: 1 };
            // The next handle in sequence: the engine's connection table is indexed by
            // handle (core machines allocate them densely), so no far-off sentinel.
            self.out.push_back(Transmit::Connect {
                conn: ConnId(self.peers),
                endpoint,
                key: None,
                dial: pdtp_core::Dial::Plain,
            });
        }
    }

    fn send_round(&mut self) {
        if self.next_chunk >= self.chunks {
            return;
        }
        for &c in &self.conns {
            self.out.push_back(Transmit::Send { conn: c, msg: data(self.next_chunk, self.chunk_len) });
        }
        self.next_chunk += 1;
    }
}

impl SimNode for Sender {
    fn start(&mut self, now: Time) {
        match self.connect_delay {
            Some(d) => self.timer = Some(now + d),
            None => self.connect_all(),
        }
    }
    fn stop(&mut self, _now: Time) {}
    fn accept(&mut self, _now: Time, _remote: &str) -> Option<ConnId> {
        None
    }
    fn handle_connected(&mut self, now: Time, conn: ConnId) {
        self.conns.push(conn);
        if self.conns.len() as u32 == self.peers {
            match self.pace {
                None => (0..self.chunks).for_each(|_| self.send_round()),
                Some(_) => {
                    self.send_round();
                    self.timer = self.pace.map(|p| now + p);
                }
            }
        }
    }
    fn handle_closed(&mut self, _now: Time, conn: ConnId) {
        self.conns.retain(|&c| c != conn);
        self.failed += 1;
    }
    fn handle_message(&mut self, _now: Time, _conn: ConnId, _msg: Message) {}
    fn handle_timeout(&mut self, now: Time) {
        if self.connect_delay.take().is_some() {
            self.timer = None;
            self.connect_all();
            return;
        }
        if self.timer.is_some_and(|t| t <= now) {
            self.send_round();
            self.timer = (self.next_chunk < self.chunks).then(|| now + self.pace.unwrap_or(Span::ZERO));
        }
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }
    fn poll_event(&mut self) -> Option<NodeEvent> {
        (self.failed > 0).then(|| {
            self.failed -= 1;
            NodeEvent::TransferFailed
        })
    }
    fn poll_timeout(&self) -> Option<Time> {
        self.timer
    }
}

impl Viewer {
    fn check_done(&mut self) {
        if self.got == self.chunks && self.acks == self.want_acks {
            self.events.push_back(NodeEvent::Completed);
            self.acks += 1; // once
        }
    }
}

impl SimNode for Viewer {
    fn start(&mut self, _now: Time) {
        if self.want_acks > 0 {
            let endpoint = Endpoint { host: "tracker".into(), port: 6086 };
            self.out.push_back(Transmit::Connect {
                conn: ConnId(1_000_000),
                endpoint,
                key: None,
                dial: pdtp_core::Dial::Plain,
            });
            self.tracker = Some(ConnId(1_000_000));
        }
    }
    fn stop(&mut self, _now: Time) {}
    fn accept(&mut self, _now: Time, _remote: &str) -> Option<ConnId> {
        self.next_conn += 1;
        Some(ConnId(self.next_conn))
    }
    fn handle_connected(&mut self, _now: Time, _conn: ConnId) {}
    fn handle_closed(&mut self, _now: Time, _conn: ConnId) {
        self.events.push_back(NodeEvent::TransferFailed);
    }
    fn handle_message(&mut self, _now: Time, _conn: ConnId, msg: Message) {
        match msg {
            Message::Data(d) => {
                if d.payload.verify(d.payload.len(), &TAG) {
                    self.got += 1;
                    self.events.push_back(NodeEvent::ChunkVerified { chunk: d.chunk });
                    self.events.push_back(NodeEvent::InOrder { chunk: d.chunk });
                    if let (Some(t), true) = (self.tracker, self.want_acks > 0) {
                        for _ in 0..self.want_acks / self.chunks {
                            // Any small control message will do; the stub answers each.
                            let token = Token(u64::from(d.chunk));
                            let msg = Message::Verdict(Verdict { token, accepted: true });
                            self.out.push_back(Transmit::Send { conn: t, msg });
                        }
                    }
                } else {
                    self.events.push_back(NodeEvent::ChunkRejected { chunk: d.chunk });
                }
            }
            Message::Warning(_) => self.acks += 1,
            _ => {}
        }
        self.check_done();
    }
    fn handle_timeout(&mut self, _now: Time) {}
    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }
    fn poll_event(&mut self) -> Option<NodeEvent> {
        self.events.pop_front()
    }
    fn poll_timeout(&self) -> Option<Time> {
        None
    }
}

impl SimNode for TrackerStub {
    fn start(&mut self, _now: Time) {}
    fn stop(&mut self, _now: Time) {}
    fn accept(&mut self, _now: Time, _remote: &str) -> Option<ConnId> {
        self.next_conn += 1;
        Some(ConnId(self.next_conn))
    }
    fn handle_connected(&mut self, _now: Time, _conn: ConnId) {}
    fn handle_closed(&mut self, _now: Time, _conn: ConnId) {}
    fn handle_message(&mut self, _now: Time, conn: ConnId, _msg: Message) {
        let msg = Message::Warning(Notice::new(ErrorCode::Unexpected, ""));
        self.out.push_back(Transmit::Send { conn, msg });
    }
    fn handle_timeout(&mut self, _now: Time) {}
    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }
    fn poll_event(&mut self) -> Option<NodeEvent> {
        None
    }
    fn poll_timeout(&self) -> Option<Time> {
        None
    }
}

/// Builds the test nodes: seeds are senders, viewers count chunks, the tracker acknowledges.
pub(crate) struct TestFactory {
    /// Chunks each viewer gets.
    pub chunks: u32,
    /// Bytes per chunk.
    pub chunk_len: u32,
    /// Messages each viewer sends the tracker per chunk (each acknowledged).
    pub acks_per_chunk: u32,
    /// Send one chunk per interval instead of all at once (exercises timers).
    pub pace: Option<Span>,
    /// Wait this long before connecting to the viewers.
    pub connect_delay: Option<Span>,
    /// Also connect to a host that does not exist.
    pub ghost: bool,
}

impl NodeFactory for TestFactory {
    fn build(&mut self, spec: &NodeSpec<'_>) -> Box<dyn SimNode> {
        match spec.role {
            Role::Tracker => Box::new(TrackerStub { next_conn: 0, out: VecDeque::new() }),
            Role::Seed => Box::new(Sender {
                peers: spec.scenario.peer_count() as u32,
                chunks: self.chunks,
                chunk_len: self.chunk_len,
                pace: self.pace,
                connect_delay: self.connect_delay,
                ghost: self.ghost,
                failed: 0,
                out: VecDeque::new(),
                conns: Vec::new(),
                next_chunk: 0,
                timer: None,
            }),
            Role::Peer => Box::new(Viewer {
                chunks: self.chunks,
                want_acks: self.acks_per_chunk * self.chunks,
                got: 0,
                acks: 0,
                next_conn: 0,
                tracker: None,
                out: VecDeque::new(),
                events: VecDeque::new(),
            }),
        }
    }
}

/// Builds a TEST-ONLY relay swarm: the seed sends chunk `c` once, to viewer `c mod N`; each
/// viewer forwards what it got from the seed to every other viewer over a full mesh. The
/// origin uploads exactly one copy; everything else is peer-to-peer.
pub(crate) struct RelayFactory {
    /// Chunks in the content.
    pub chunks: u32,
    /// Bytes per chunk.
    pub chunk_len: u32,
}

struct RelaySeed {
    viewers: u32,
    chunks: u32,
    chunk_len: u32,
    connected: u32,
    out: VecDeque<Transmit>,
}

struct RelayViewer {
    me: u32,
    viewers: u32,
    chunks: u32,
    from_seed: Vec<ConnId>,
    next_conn: u32,
    /// Outgoing connections to the other viewers, once connected.
    mesh: Vec<ConnId>,
    /// Chunks to forward to connections that are not open yet.
    backlog: Vec<Message>,
    got: Vec<bool>,
    count: u32,
    out: VecDeque<Transmit>,
    events: VecDeque<NodeEvent>,
}

impl SimNode for RelaySeed {
    fn start(&mut self, _now: Time) {
        for p in 0..self.viewers {
            let endpoint = Endpoint { host: format!("peer{p}"), port: 1 };
            self.out.push_back(Transmit::Connect {
                conn: ConnId(p),
                endpoint,
                key: None,
                dial: pdtp_core::Dial::Plain,
            });
        }
    }
    fn stop(&mut self, _now: Time) {}
    fn accept(&mut self, _now: Time, _remote: &str) -> Option<ConnId> {
        None
    }
    fn handle_connected(&mut self, _now: Time, _conn: ConnId) {
        self.connected += 1;
        if self.connected == self.viewers {
            for c in 0..self.chunks {
                let conn = ConnId(c % self.viewers);
                self.out.push_back(Transmit::Send { conn, msg: data(c, self.chunk_len) });
            }
        }
    }
    fn handle_closed(&mut self, _now: Time, _conn: ConnId) {}
    fn handle_message(&mut self, _now: Time, _conn: ConnId, _msg: Message) {}
    fn handle_timeout(&mut self, _now: Time) {}
    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }
    fn poll_event(&mut self) -> Option<NodeEvent> {
        None
    }
    fn poll_timeout(&self) -> Option<Time> {
        None
    }
}

impl RelayViewer {
    fn forward(&mut self, msg: &Message) {
        for &c in &self.mesh {
            self.out.push_back(Transmit::Send { conn: c, msg: msg.clone() });
        }
    }
}

impl SimNode for RelayViewer {
    fn start(&mut self, _now: Time) {
        for p in (0..self.viewers).filter(|&p| p != self.me) {
            let endpoint = Endpoint { host: format!("peer{p}"), port: 1 };
            self.out.push_back(Transmit::Connect {
                conn: ConnId(1_000_000 + p),
                endpoint,
                key: None,
                dial: pdtp_core::Dial::Plain,
            });
        }
    }
    fn stop(&mut self, _now: Time) {}
    fn accept(&mut self, _now: Time, remote: &str) -> Option<ConnId> {
        self.next_conn += 1;
        if remote.starts_with("seed") {
            self.from_seed.push(ConnId(self.next_conn));
        }
        Some(ConnId(self.next_conn))
    }
    fn handle_connected(&mut self, _now: Time, conn: ConnId) {
        // Send the new link everything forwarded so far.
        for msg in &self.backlog {
            self.out.push_back(Transmit::Send { conn, msg: msg.clone() });
        }
        self.mesh.push(conn);
    }
    fn handle_closed(&mut self, _now: Time, _conn: ConnId) {}
    fn handle_message(&mut self, _now: Time, conn: ConnId, msg: Message) {
        let Message::Data(d) = &msg else { return };
        if self.from_seed.contains(&conn) {
            self.forward(&msg);
            self.backlog.push(msg.clone());
        }
        if !self.got[d.chunk as usize] {
            self.got[d.chunk as usize] = true;
            self.count += 1;
            self.events.push_back(NodeEvent::ChunkVerified { chunk: d.chunk });
            if self.count == self.chunks {
                self.events.push_back(NodeEvent::Completed);
            }
        }
    }
    fn handle_timeout(&mut self, _now: Time) {}
    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }
    fn poll_event(&mut self) -> Option<NodeEvent> {
        self.events.pop_front()
    }
    fn poll_timeout(&self) -> Option<Time> {
        None
    }
}

impl NodeFactory for RelayFactory {
    fn build(&mut self, spec: &NodeSpec<'_>) -> Box<dyn SimNode> {
        let viewers = spec.scenario.peer_count() as u32;
        match spec.role {
            Role::Tracker => Box::new(TrackerStub { next_conn: 0, out: VecDeque::new() }),
            Role::Seed => Box::new(RelaySeed {
                viewers,
                chunks: self.chunks,
                chunk_len: self.chunk_len,
                connected: 0,
                out: VecDeque::new(),
            }),
            Role::Peer => Box::new(RelayViewer {
                me: spec.index,
                viewers,
                chunks: self.chunks,
                from_seed: Vec::new(),
                next_conn: 0,
                mesh: Vec::new(),
                backlog: Vec::new(),
                got: vec![false; self.chunks as usize],
                count: 0,
                out: VecDeque::new(),
                events: VecDeque::new(),
            }),
        }
    }
}
