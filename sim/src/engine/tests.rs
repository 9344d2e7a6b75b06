use super::*;
use crate::testnodes::{TestFactory, data};
use crate::wire_size::sealed_len;

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
    TestFactory {
        chunks,
        chunk_len: 100_000,
        acks_per_chunk: 0,
        pace: None,
        connect_delay: None,
        ghost: false,
    }
}

#[test]
fn one_sender_one_viewer_finishes_at_latency_plus_bytes_over_capacity() {
    let s = scenario("", 1);
    let out = run(&s, &mut factory(10));
    assert_eq!(out.reason, EndReason::AllDone);
    // Connect: one latency there, one back (30 ms each); then 10 sealed data frames back to back
    // at 1 MB/s; the last one propagates 30 ms.
    let frame = sealed_len(&data(0, 100_000)) as f64;
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
    let frame = sealed_len(&data(0, 100_000)) as f64;
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
        ghost: false,
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

/// Ten 100 kB chunks per viewer, each acknowledged with five tracker messages.
fn chatty_factory() -> TestFactory {
    TestFactory {
        chunks: 10,
        chunk_len: 100_000,
        acks_per_chunk: 5,
        pace: None,
        connect_delay: None,
        ghost: false,
    }
}

#[test]
fn tracker_processing_queues_messages() {
    // 4 viewers × 10 chunks × 5 messages each = 200 messages at 1 ms each: the tracker is
    // busy for 200 ms, so the last acknowledgement cannot come before that.
    let s = scenario("tracker: { processing: 1ms, latency: 5ms }\n", 4);
    let mut f = chatty_factory();
    let out = run(&s, &mut f);
    assert_eq!(out.reason, EndReason::AllDone);
    assert_eq!(out.measured.tracker_msgs, 400); // 200 handled + 200 replies
    assert!(out.measured.tracker_bytes > 0);
    assert!(out.end.as_secs_f64() >= 0.2);
    let fast = run(&scenario("", 4), &mut f);
    assert!(fast.end < out.end);
}

#[test]
fn a_saturated_tracker_handles_one_message_per_processing_time() {
    // 200 messages at 50 ms each keep the tracker busy for 10 s: every full second it
    // handles 20 (21 if a second's edges both land on a handling instant).
    let s = scenario("tracker: { processing: 50ms, latency: 5ms }\n", 4);
    let mut f = chatty_factory();
    let out = run(&s, &mut f);
    assert_eq!(out.reason, EndReason::AllDone);
    assert!(out.end.as_secs_f64() >= 10.0);
    assert!(
        (20..=21).contains(&out.measured.tracker_handled_per_s_peak),
        "{}",
        out.measured.tracker_handled_per_s_peak
    );
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
        ghost: false,
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

#[test]
fn a_connect_to_an_unknown_host_is_closed_one_round_trip_later() {
    let s = scenario("", 1);
    let mut f = factory(2);
    f.ghost = true;
    let out = run(&s, &mut f);
    assert_eq!(out.reason, EndReason::AllDone);
    assert_eq!(out.measured.failures, 1);
    assert_eq!(out.measured.payload_bytes, 200_000);
}

/// A node that always wants a timeout now: the run must stop, not hang.
struct Spinner;

impl SimNode for Spinner {
    fn start(&mut self, _now: Time) {}
    fn stop(&mut self, _now: Time) {}
    fn accept(&mut self, _now: Time, _remote: &str) -> Option<ConnId> {
        None
    }
    fn handle_connected(&mut self, _now: Time, _conn: ConnId) {}
    fn handle_closed(&mut self, _now: Time, _conn: ConnId) {}
    fn handle_message(&mut self, _now: Time, _conn: ConnId, _msg: Message) {}
    fn handle_timeout(&mut self, _now: Time) {}
    fn poll_transmit(&mut self) -> Option<pdtp_core::Transmit> {
        None
    }
    fn poll_event(&mut self) -> Option<NodeEvent> {
        None
    }
    fn poll_timeout(&self) -> Option<Time> {
        Some(Time::ZERO)
    }
}

struct SpinFactory;

impl NodeFactory for SpinFactory {
    fn build(&mut self, _spec: &crate::node::NodeSpec<'_>) -> Box<dyn SimNode> {
        Box::new(Spinner)
    }
}

#[test]
fn a_node_that_spins_at_one_instant_is_reported_as_livelock() {
    let s = scenario("", 1);
    let out = Engine::new(&s, &mut SpinFactory).with_livelock_limit(10_000).run(&mut |_, _, _| {});
    assert_eq!(out.reason, EndReason::Livelock);
    assert_eq!(out.end, Time::ZERO);
}

#[test]
fn hosts_resolve_to_their_own_node_and_nothing_else() {
    let text = "content: { size: 1MB, chunk_size: 100kB }\nseeds: { count: 2, upload: 8Mbit/s }\n\
                peers: [ { count: 3, upload: 5Mbit/s, download: 100Mbit/s } ]\n";
    let s = Scenario::from_yaml(text, "test").unwrap();
    let e = Engine::new(&s, &mut factory(1));
    for (ix, slot) in e.nodes.iter().enumerate() {
        assert_eq!(e.resolve(&slot.host), Some(ix as u32), "{}", slot.host);
    }
    assert_eq!(e.resolve("peer2"), Some(5));
    for unknown in ["peer3", "peer02", "seed2", "seed", "peer", "peer-1", "ghost", "Tracker", ""] {
        assert_eq!(e.resolve(unknown), None, "{unknown}");
    }
}

/// A sender that keeps writing to a viewer that has left: until the break reaches it, one
/// latency later, each message it writes is lost and counted, as are those already on the
/// way when the viewer left. The sender writes a 1 kB chunk every millisecond (1 ms on its
/// 8 Mbit/s uplink) and hears of the break 30 ms after it: about 30 messages on the way and
/// 30 written blind.
#[test]
fn messages_written_to_a_link_that_broke_unheard_are_counted_as_dropped() {
    // It comes back only after the run's end, so the run goes on past the break.
    let s = scenario("churn: { leave: 1.0, stay: 100ms, rejoin: 1.0, away: 10s }\ntime_limit: 1s\n", 1);
    let mut f = TestFactory { chunk_len: 1_000, pace: Some(Span::from_millis(1)), ..factory(1_000) };
    let out = run(&s, &mut f);
    assert_eq!(out.measured.records[0].departures, 1);
    assert!((55..=65).contains(&out.dropped_messages), "{} dropped", out.dropped_messages);
}
