//! The regression gate's quick entries, run on every `cargo test`: each figure of
//! `scenarios/baselines.yml`'s `quick` group must be within its tolerance of its baseline,
//! and the gate must be able to fail: every figure, tightened by hand past its tolerance,
//! fails it.

use std::path::Path;

use pdtp_sim::gate::{self, Baselines, Better, Entry, Figure, Verdict};
use pdtp_sim::report::RunResult;

fn baselines() -> Baselines {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/baselines.yml");
    match Baselines::load(&path) {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    }
}

/// Every quick entry's runs, entries in parallel (each run is deterministic).
fn quick_runs(b: &Baselines) -> Vec<(Entry, Vec<RunResult>)> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = b
            .quick
            .iter()
            .map(|e| {
                scope.spawn(move || match e.results() {
                    Ok(results) => (e.clone(), results),
                    Err(err) => panic!("{err}"),
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| panic!("a gate run panicked"))).collect()
    })
}

#[test]
fn quick_baselines_hold_and_a_tightened_baseline_fails() {
    let b = baselines();
    assert!(b.quick.len() >= 4, "a quick entry per family: flash crowd, frugal, live, steady state");
    let runs = quick_runs(&b);
    let rows: Vec<gate::Row> = runs.iter().flat_map(|(e, r)| e.judge(r)).collect();
    let table = gate::table(&rows);
    eprint!("{table}");
    assert!(gate::passes(&rows), "the regression gate fails (scenarios/baselines.yml):\n{table}");

    // Tightening any baseline by more than its tolerance (towards better) must fail the gate.
    for (entry, results) in &runs {
        for (key, f) in &entry.figures {
            let step = f.tolerance * 2.0 + 1e-9;
            let tight = match gate::direction(key) {
                Some(Better::Lower) => f.baseline - step,
                Some(Better::Higher) => f.baseline + step,
                None => panic!("{key}: unknown figure"),
            };
            let mut tightened = entry.clone();
            tightened.figures.insert(key.clone(), Figure { baseline: tight, ..*f });
            let rows = tightened.judge(results);
            let row = rows.iter().find(|r| &r.figure == key).map(|r| r.verdict);
            assert_eq!(row, Some(Verdict::Worse), "{}: {key} tightened to {tight}", entry.scenario.display());
            assert!(!gate::passes(&rows));
        }
    }
}
