//! Simulator throughput: events per second on a scaled-down flash crowd, driving the real
//! core machines (200 viewers, a 20 MB file in 250 kB chunks).
//!
//! The whole-run figure for `scenarios/flashcrowd.yml` (1 000 viewers × 100 MB) is measured
//! with the `sim` binary and recorded in `docs/performance.md`; this bench tracks the engine's
//! per-event cost between changes.

#![allow(clippy::expect_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pdtp_sim::adapters::core_factory;
use pdtp_sim::runner;
use pdtp_sim::scenario::Scenario;

const SCENARIO: &str = "
name: bench
seed: 1
time_limit: 10min
content: { size: 20MB, chunk_size: 250kB }
seeds: { upload: 100Mbit/s, latency: 5ms }
peers:
  - { name: dsl,   count: 80, download: 20Mbit/s,  upload: 5Mbit/s,  latency: 30ms }
  - { name: cable, count: 80, download: 50Mbit/s,  upload: 10Mbit/s, latency: 20ms }
  - { name: fibre, count: 40, download: 100Mbit/s, upload: 40Mbit/s, latency: 10ms }
arrivals: { uniform: { window: 2s } }
tracker: { processing: 20us }
";

fn bench_sim(c: &mut Criterion) {
    let scenario = Scenario::from_yaml(SCENARIO, "bench").expect("the bench scenario is valid");
    let events = runner::run(&scenario, "bench", core_factory().as_mut(), &mut |_, _, _| {}).report.events;
    let mut group = c.benchmark_group("sim");
    group.sample_size(10);
    group.throughput(Throughput::Elements(events));
    group.bench_function("flashcrowd_200x20MB_events", |b| {
        b.iter(|| runner::run(&scenario, "bench", core_factory().as_mut(), &mut |_, _, _| {}).report.events)
    });
    group.finish();
}

criterion_group!(benches, bench_sim);
criterion_main!(benches);
