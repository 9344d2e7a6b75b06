//! Engine tests with TEST-ONLY nodes (never used by `sim run`): a sender that pushes
//! virtual chunks to every viewer, viewers that count them and report to a tracker stub.

use std::collections::VecDeque;

use pdtp_core::wire::{Data, ErrorCode, Notice, Started};
use pdtp_core::{ContentId, Digest, Endpoint, Payload, Token, Transmit};

use super::*;
use crate::node::NodeSpec;

const TAG: Digest = Digest([7; 32]);

struct Sender {
    peers: u32,
    chunks: u32,
    chunk_len: u32,
    pace: Option<Span>,
    connect_delay: Option<Span>,
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

fn data(chunk: u32, len: u32) -> Message {
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
            self.out.push_back(Transmit::Connect { conn: ConnId(p), endpoint });
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
        None
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
            self.out.push_back(Transmit::Connect { conn: ConnId(1_000_000), endpoint });
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
                            let msg = Message::Started(Started { token: Token(u64::from(d.chunk)) });
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
        let msg = Message::Warning(Notice { code: ErrorCode::Unexpected, detail: String::new() });
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

struct TestFactory {
    chunks: u32,
    chunk_len: u32,
    acks_per_chunk: u32,
    pace: Option<Span>,
    connect_delay: Option<Span>,
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

fn scenario(extra: &str, peers: u32) -> Scenario {
    let text = format!(
        "content: {{ size: 1MB, chunk_size: 100kB }}\n\
         seeds: {{ upload: 8Mbit/s, latency: 10ms }}\n\
         peers: [ {{ count: {peers}, upload: 5Mbit/s, download: 100Mbit/s, latency: 20ms }} ]\n\
         {extra}"
    );
    let text = if extra.contains("tracker:") {
        text
    } else {
        format!("{text}\ntracker: {{ processing: 0s, latency: 5ms }}\n")
    };
    Scenario::from_yaml(&text, "test").unwrap()
}

fn run(s: &Scenario, f: &mut TestFactory) -> RunOutput {
    Engine::new(s, f).run(&mut |_, _, _| {})
}

fn factory(chunks: u32) -> TestFactory {
    TestFactory { chunks, chunk_len: 100_000, acks_per_chunk: 0, pace: None, connect_delay: None }
}

#[test]
fn one_sender_one_viewer_finishes_at_latency_plus_bytes_over_capacity() {
    let s = scenario("", 1);
    let out = run(&s, &mut factory(10));
    assert_eq!(out.reason, EndReason::AllDone);
    // Connect: one latency there, one back (30 ms each); then 10 data frames back to back
    // at 1 MB/s; the last one propagates 30 ms.
    let frame = encoded_len(&data(0, 100_000)) as f64;
    let expect = 0.030 * 3.0 + 10.0 * frame / 1e6;
    let got = out.measured.records[0].completion_s.unwrap();
    assert!((got - expect).abs() < 1e-6, "got {got}, expected {expect}");
    assert_eq!(out.measured.payload_bytes, 1_000_000);
    assert_eq!(out.measured.origin_bytes, 1_000_000);
}

#[test]
fn two_viewers_share_the_sender_upload() {
    let s = scenario("", 2);
    let out = run(&s, &mut factory(10));
    let frame = encoded_len(&data(0, 100_000)) as f64;
    let expect = 0.030 * 3.0 + 2.0 * 10.0 * frame / 1e6;
    for r in &out.measured.records {
        let got = r.completion_s.unwrap();
        assert!((got - expect).abs() < 1e-6, "got {got}, expected {expect}");
    }
}

#[test]
fn bytes_are_conserved_and_runs_are_reproducible() {
    let s = scenario("arrivals: { uniform: { window: 50ms } }\nfaults: { corruption: 0.3 }\nseed: 9\n", 5);
    let mut f = TestFactory {
        chunks: 6,
        chunk_len: 100_000,
        acks_per_chunk: 1,
        pace: None,
        connect_delay: Some(Span::from_millis(100)),
    };
    let a = run(&s, &mut f);
    let b = run(&s, &mut f);
    assert_eq!(a, b);
    assert_eq!(a.bytes_uploaded, a.bytes_downloaded);
    let up: u64 = a.measured.records.iter().map(|r| r.uploaded_bytes).sum::<u64>() + a.measured.origin_bytes;
    let down: u64 = a.measured.records.iter().map(|r| r.downloaded_bytes).sum();
    assert_eq!(up, down);
    assert_eq!(a.measured.payload_bytes, 5 * 6 * 100_000);
    // Corruption shows up as rejected chunks, and the viewers that saw one never complete.
    let rejected: u32 = a.measured.records.iter().map(|r| r.rejected_chunks).sum();
    assert!(rejected > 0);
    let incomplete = a.measured.records.iter().filter(|r| r.done_s.is_none()).count();
    assert!(incomplete > 0);
    assert_eq!(a.reason, EndReason::Quiescent);
    // A different seed gives a different run.
    let mut s2 = s.clone();
    s2.seed = 10;
    assert_ne!(run(&s2, &mut f).measured.records, a.measured.records);
}

#[test]
fn tracker_processing_queues_messages() {
    // 4 viewers × 10 chunks × 5 messages each = 200 messages at 1 ms each: the tracker is
    // busy for 200 ms, so the last acknowledgement cannot come before that.
    let s = scenario("tracker: { processing: 1ms, latency: 5ms }\n", 4);
    let mut f =
        TestFactory { chunks: 10, chunk_len: 100_000, acks_per_chunk: 5, pace: None, connect_delay: None };
    let out = run(&s, &mut f);
    assert_eq!(out.reason, EndReason::AllDone);
    assert_eq!(out.measured.tracker_msgs, 400); // 200 handled + 200 replies
    assert!(out.measured.tracker_bytes > 0);
    assert!(out.end.as_secs_f64() >= 0.2);
    let fast = run(&scenario("", 4), &mut f);
    assert!(fast.end < out.end);
}

#[test]
fn node_timers_fire_when_due() {
    let s = scenario("", 1);
    let mut f = TestFactory {
        chunks: 5,
        chunk_len: 1_000,
        acks_per_chunk: 0,
        pace: Some(Span::from_millis(100)),
        connect_delay: None,
    };
    let out = run(&s, &mut f);
    // Chunks go out at 60 ms + k·100 ms; the last (k = 4) arrives 30 ms (+ a millisecond of
    // transmission) after 460 ms.
    let done = out.measured.records[0].done_s.unwrap();
    assert!(done > 0.49 && done < 0.492, "{done}");
}

#[test]
fn churned_viewers_are_cut_off_and_counted() {
    let s = scenario("churn: { leave: 1.0, stay: 100ms }\n", 3);
    let out = run(&s, &mut factory(10));
    assert_eq!(out.reason, EndReason::AllDone);
    assert!(out.measured.records.iter().all(|r| r.departures == 1 && r.done_s.is_none()));
    assert!(out.measured.payload_bytes < 3 * 1_000_000);
    assert_eq!(out.bytes_uploaded, out.bytes_downloaded);
}

#[test]
fn the_time_limit_stops_a_run() {
    let s = scenario("time_limit: 500ms\n", 1);
    let out = run(&s, &mut factory(10));
    assert_eq!(out.reason, EndReason::TimeLimit);
    assert_eq!(out.end, Time::ZERO + Span::from_millis(500));
}
