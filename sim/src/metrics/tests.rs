use super::*;
use pdtp_core::Span;

#[test]
fn t_min_takes_the_tightest_of_three_limits() {
    // 100 MB file, 100 Mbit/s seed, 1000 peers at 5 Mbit/s up, 20 Mbit/s slowest down.
    let f = 100_000_000;
    let t = t_min_s(f, 100e6, 1000.0 * 5e6, 20e6, 1000);
    // F/u_s = 8 s, F/d_min = 40 s, N·F/(u_s+Σu) = 8e11/5.1e9 ≈ 156.9 s.
    assert!((t - 8e11 / 5.1e9).abs() < 1e-9, "{t}");
    // One peer: the seed is the limit.
    assert!((t_min_s(f, 10e6, 5e6, 100e6, 1) - 80.0).abs() < 1e-9);
    // One peer with a slow download: the download is the limit.
    assert!((t_min_s(f, 100e6, 5e6, 10e6, 1) - 80.0).abs() < 1e-9);
}

#[test]
fn r_max_is_the_seed_or_the_shared_upload() {
    assert_eq!(r_max_bps(10e6, 90e6, 10), 10e6);
    assert_eq!(r_max_bps(10e6, 90e6, 100), 1e6);
}

#[test]
fn percentiles_are_nearest_rank() {
    let v: Vec<f64> = (1..=100).map(f64::from).collect();
    assert_eq!(percentile(&v, 0.5), Some(50.0));
    assert_eq!(percentile(&v, 0.99), Some(99.0));
    assert_eq!(percentile(&v, 1.0), Some(100.0));
    assert_eq!(percentile(&v, 0.0), Some(1.0));
    assert_eq!(percentile(&[], 0.5), None);
}

fn secs(s: f64) -> Time {
    Time::ZERO + Span::from_secs_f64(s)
}

#[test]
fn completion_counts_from_arrival_and_makespan_from_zero() {
    let mut r = Recorder::new(vec!["a".into(), "b".into()], None);
    r.arrive(0, secs(1.0));
    r.arrive(1, secs(2.0));
    r.peer_event(0, secs(5.0), NodeEvent::Completed);
    r.peer_event(0, secs(6.0), NodeEvent::Completed); // only the first counts
    r.payload(secs(0.5), None, Some(0), 1000, true);
    r.payload(secs(1.5), Some(0), Some(1), 600, false);
    r.tracker_handled(secs(0.1), 50);
    r.tracker_handled(secs(0.9), 50);
    r.tracker_message(secs(1.2), 50); // sent, not handled
    let m = r.finish(secs(10.0));
    assert_eq!(m.records[0].completion_s, Some(4.0));
    assert_eq!(m.records[1].completion_s, None);
    assert_eq!(m.makespan_s, Some(5.0));
    assert_eq!(m.origin_bytes, 1000);
    assert_eq!(m.payload_bytes, 1600);
    assert_eq!(m.records[0].uploaded_bytes, 600);
    assert_eq!(m.records[1].downloaded_bytes, 600);
    assert_eq!(m.tracker_msgs_per_s_peak, 2);
    assert_eq!(m.tracker_handled_per_s_peak, 2);
    assert_eq!(m.tracker_bytes, 150);
    assert_eq!(m.origin_per_s, vec![1000]);
}

#[test]
fn live_playback_counts_deadlines_and_stalls() {
    // τ = 1 s per chunk, 2 s buffer, 10 chunks.
    let clock = StreamClock { chunk_ns: 1e9, buffer: Span::from_secs(2), last_chunk: 9 };
    let mut r = Recorder::new(vec!["a".into()], Some(clock));
    r.arrive(0, secs(0.0));
    // Chunk 0 is produced at 1 s; ready at 1.5 s; playback starts at max(1.5, 1 + 2) = 3 s.
    r.peer_event(0, secs(1.5), NodeEvent::InOrder { chunk: 0 });
    // Deadlines: chunk j at 3 + j. Chunks 1..=3 on time, 4 late (deadline 7), 5 on time,
    // 6 late, 7..=9 on time.
    for (j, t) in [(1, 2.5), (2, 3.5), (3, 4.5), (4, 7.5), (5, 7.9), (6, 9.5), (7, 9.8), (8, 10.5), (9, 11.0)]
    {
        r.peer_event(0, secs(t), NodeEvent::InOrder { chunk: j });
    }
    let m = r.finish(secs(20.0));
    let p = &m.records[0];
    assert_eq!(p.startup_s, Some(3.0));
    assert_eq!(p.due_chunks, Some(10));
    assert_eq!(p.on_time_chunks, Some(8));
    assert_eq!(p.continuity, Some(0.8));
    assert_eq!(p.stalls, Some(2));
    // Lags: ready − produced(j) = t − (j + 1).
    let lags = [0.5, 0.5, 0.5, 0.5, 2.5, 1.9, 2.5, 1.8, 1.5, 1.0];
    let mean = lags.iter().sum::<f64>() / 10.0;
    assert!((p.live_lag_s.unwrap() - mean).abs() < 1e-9);
}

#[test]
fn startup_counts_from_the_return_of_a_viewer_that_left_before_playing() {
    let clock = StreamClock { chunk_ns: 1e9, buffer: Span::from_secs(2), last_chunk: 99 };
    let mut r = Recorder::new(vec!["a".into()], Some(clock));
    r.arrive(0, secs(10.0));
    r.leave(0, secs(10.5)); // gone before any chunk arrived
    r.arrive(0, secs(40.0));
    // Joins at chunk 37 (produced at 38 s), ready at 40.5 s: plays at 38 + 2 = 40 → 40.5.
    r.peer_event(0, secs(40.5), NodeEvent::InOrder { chunk: 37 });
    let m = r.finish(secs(41.0));
    assert_eq!(m.records[0].startup_s, Some(0.5));
}

#[test]
fn a_viewer_that_never_plays_has_zero_continuity_and_only_due_chunks_count() {
    let clock = StreamClock { chunk_ns: 1e9, buffer: Span::from_secs(2), last_chunk: 99 };
    let mut r = Recorder::new(vec!["a".into(), "b".into()], Some(clock));
    r.arrive(0, secs(4.5)); // edge is chunk 3 (produced at 4 s); play would start at 6 s
    r.arrive(1, secs(0.0));
    r.peer_event(1, secs(1.0), NodeEvent::InOrder { chunk: 0 });
    r.leave(1, secs(5.5)); // deadlines 3, 4, 5 passed: 3 chunks due, only chunk 0 present
    let m = r.finish(secs(10.0));
    assert_eq!(m.records[0].startup_s, None);
    assert_eq!(m.records[0].due_chunks, Some(5)); // deadlines 6, 7, 8, 9, 10
    assert_eq!(m.records[0].continuity, Some(0.0));
    assert_eq!(m.records[1].due_chunks, Some(3));
    assert_eq!(m.records[1].on_time_chunks, Some(1));
    assert_eq!(m.records[1].stalls, Some(1));
}

#[test]
fn deadlines_while_a_viewer_is_away_are_not_due() {
    // τ = 1 s, 2 s buffer: chunk 0 produced at 1 s, playback from 3 s, chunk j due at 3 + j.
    let clock = StreamClock { chunk_ns: 1e9, buffer: Span::from_secs(2), last_chunk: 99 };
    let mut r = Recorder::new(vec!["a".into()], Some(clock));
    r.arrive(0, secs(0.0));
    for j in 0..3 {
        r.peer_event(0, secs(1.5 + f64::from(j)), NodeEvent::InOrder { chunk: j });
    }
    // Away from 5.5 s to 8.5 s: deadlines 6, 7 and 8 (chunks 3, 4, 5) fall while it is gone.
    r.leave(0, secs(5.5));
    r.arrive(0, secs(8.5));
    for j in 6..8 {
        r.peer_event(0, secs(f64::from(j) + 2.5), NodeEvent::InOrder { chunk: j });
    }
    let m = r.finish(secs(10.0));
    // Deadlines 3..=10 are chunks 0..=7; three of them fell while away.
    assert_eq!(m.records[0].due_chunks, Some(5));
    assert_eq!(m.records[0].on_time_chunks, Some(5));
    assert_eq!(m.records[0].continuity, Some(1.0));
    assert_eq!(m.records[0].stalls, Some(0));
}

#[test]
fn a_viewer_with_nothing_due_reports_no_continuity() {
    // τ = 1 s, 2 s buffer: a viewer arriving at 1 s would play chunk 0 (produced at 1 s)
    // from 3 s; it leaves at 2.5 s for good, before anything was due: no share to report,
    // rather than a perfect one.
    let clock = StreamClock { chunk_ns: 1e9, buffer: Span::from_secs(2), last_chunk: 9 };
    let mut r = Recorder::new(vec!["a".into()], Some(clock));
    r.arrive(0, secs(1.0));
    r.leave(0, secs(2.5));
    let m = r.finish(secs(20.0));
    assert_eq!(m.records[0].due_chunks, Some(0));
    assert_eq!(m.records[0].continuity, None);
}

#[test]
fn the_arrivals_bound_counts_capacity_from_each_arrival() {
    // 8 Mbit file (1 MB); seed 1 Mbit/s; two viewers with 1 Mbit/s up, 100 Mbit/s down.
    let f = 1_000_000;
    let at_zero = [(0.0, 1e6, 100e6), (0.0, 1e6, 100e6)];
    // All at time zero it is T_min: N·F/(u_s + Σu) = 16/3 s (F/u_s = 8 s binds here).
    assert_eq!(t_arrivals_s(f, 1e6, &at_zero), t_min_s(f, 1e6, 2e6, 100e6, 2));
    // A faster seed: the swarm term binds, 16 Mbit / 12 Mbit/s = 4/3 s at time zero; one
    // viewer arriving at 1 s brings its 1 Mbit/s a second late: (16 + 1) / 12 s.
    let staggered = [(0.0, 1e6, 100e6), (1.0, 1e6, 100e6)];
    assert!((t_arrivals_s(f, 10e6, &at_zero) - 16.0 / 12.0).abs() < 1e-12);
    assert!((t_arrivals_s(f, 10e6, &staggered) - 17.0 / 12.0).abs() < 1e-12);
    // A late viewer with a slow download: its own arrival plus F/d.
    let late = [(0.0, 1e6, 100e6), (5.0, 1e6, 2e6)];
    assert!((t_arrivals_s(f, 10e6, &late) - 9.0).abs() < 1e-12);
}
