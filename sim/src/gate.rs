//! The regression gate: committed baselines for the shipped scenarios, each figure with its
//! tolerance, and the verdict of a run against them.
//!
//! `scenarios/baselines.yml` lists entries in two groups: `quick` (100–200 viewers, run by
//! the test suite on every change) and `full` (the shipped scenarios at full size, run on
//! demand by `sim gate`). Each entry names a scenario, the seeds to run and, per figure, a
//! baseline and a tolerance in the figure's own unit:
//!
//! ```yaml
//! quick:
//!   - scenario: quick/flashcrowd.yml
//!     seeds: [1]
//!     figures:
//!       ratio_to_t_min: { baseline: 1.254, tolerance: 0.02 }
//! ```
//!
//! A figure is a key of `report.json` (`origin_copies`) or a dotted path into it
//! (`completion_s.p50`), averaged over the entry's seeds. Whether lower or higher is better
//! is the figure's own property ([`direction`]). A figure worse than its baseline by more
//! than the tolerance fails the gate; one better by more than the tolerance passes and asks
//! for the baseline to be updated (so the gate keeps defending the better figure).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::adapters::core_factory;
use crate::engine::EndReason;
use crate::report::RunResult;
use crate::runner;
use crate::scenario::Scenario;

/// The baselines file.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baselines {
    /// Run by the test suite.
    #[serde(default)]
    pub quick: Vec<Entry>,
    /// Run by `sim gate` (with the quick ones).
    #[serde(default)]
    pub full: Vec<Entry>,
}

/// One scenario and the figures it must hold.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The scenario file, relative to the baselines file.
    pub scenario: PathBuf,
    /// Seeds to run (default: the scenario's own); figures are their mean.
    #[serde(default)]
    pub seeds: Vec<u64>,
    /// Figure → its baseline.
    pub figures: BTreeMap<String, Figure>,
}

/// A figure's committed value and how far it may move.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Figure {
    /// The value the gate defends.
    pub baseline: f64,
    /// How much worse (in the figure's unit) still passes.
    pub tolerance: f64,
}

/// Which way a figure improves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Better {
    /// Smaller is better (times, ratios, copies, overhead).
    Lower,
    /// Larger is better (continuity).
    Higher,
}

/// The figures the gate knows, with the way each improves. A baselines file naming any other
/// is refused: a typo must not turn into a figure that is never checked.
pub const FIGURES: &[(&str, Better)] = &[
    ("ratio_to_t_min", Better::Lower),
    ("ratio_to_t_arrivals", Better::Lower),
    ("makespan_s", Better::Lower),
    ("completion_s.p50", Better::Lower),
    ("completion_s.p90", Better::Lower),
    ("completion_s.p99", Better::Lower),
    ("completion_s.max", Better::Lower),
    ("origin_copies", Better::Lower),
    ("origin_cost_fraction", Better::Lower),
    ("control_overhead", Better::Lower),
    ("tracker_msgs_per_s_peak", Better::Lower),
    ("continuity_index", Better::Higher),
    ("startup_s.p50", Better::Lower),
    ("startup_s.p99", Better::Lower),
    ("live_lag_s.p50", Better::Lower),
    ("live_lag_s.p99", Better::Lower),
    ("stalls", Better::Lower),
    ("steady_state.mean_download_s", Better::Lower),
    ("steady_state.ratio", Better::Lower),
    ("steady_state.upload_use", Better::Higher),
];

/// How `key` improves; `None` for a figure the gate does not know.
pub fn direction(key: &str) -> Option<Better> {
    FIGURES.iter().find(|(k, _)| *k == key).map(|(_, b)| *b)
}

/// The gate's verdict on one figure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Within the tolerance of its baseline.
    Ok,
    /// Worse than its baseline by more than the tolerance: the gate fails.
    Worse,
    /// Better than its baseline by more than the tolerance: passes; update the baseline.
    Better,
    /// The run did not produce it (e.g. not every viewer completed): the gate fails.
    Missing,
}

/// One line of the gate's table.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The scenario, as the baselines file names it.
    pub scenario: String,
    /// The figure.
    pub figure: String,
    /// Its baseline and tolerance.
    pub expected: Figure,
    /// What the runs gave (mean over seeds).
    pub measured: Option<f64>,
    /// The verdict.
    pub verdict: Verdict,
}

/// A baselines file or a scenario it names that cannot be used; one line naming it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct GateError(pub String);

impl Baselines {
    /// Reads and checks a baselines file: every figure known, tolerances ≥ 0, seeds listed
    /// once. Scenario paths are resolved against the file's directory.
    pub fn load(path: &Path) -> Result<Self, GateError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| GateError(format!("{}: cannot read: {e}", path.display())))?;
        let mut b: Baselines = serde_norway::from_str(&text)
            .map_err(|e| GateError(format!("{}: {}", path.display(), e.to_string().replace('\n', " "))))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        for (group, entries) in [("quick", &mut b.quick), ("full", &mut b.full)] {
            for (i, e) in entries.iter_mut().enumerate() {
                let at = format!("{}: {group}[{i}]", path.display());
                if e.figures.is_empty() {
                    return Err(GateError(format!("{at}.figures: name at least one figure")));
                }
                for (key, f) in &e.figures {
                    if direction(key).is_none() {
                        let known: Vec<&str> = FIGURES.iter().map(|(k, _)| *k).collect();
                        return Err(GateError(format!(
                            "{at}.figures.{key}: not a figure the gate knows (one of {})",
                            known.join(", ")
                        )));
                    }
                    if !(f.tolerance >= 0.0 && f.tolerance.is_finite() && f.baseline.is_finite()) {
                        return Err(GateError(format!(
                            "{at}.figures.{key}: baseline and tolerance must be numbers, tolerance ≥ 0"
                        )));
                    }
                }
                if let Some(j) = (1..e.seeds.len()).find(|&j| e.seeds[..j].contains(&e.seeds[j])) {
                    return Err(GateError(format!("{at}.seeds[{j}]: {} is listed twice", e.seeds[j])));
                }
                e.scenario = dir.join(&e.scenario);
            }
        }
        Ok(b)
    }
}

impl Entry {
    /// The scenario runs the entry asks for, one per seed.
    pub fn runs(&self) -> Result<Vec<Scenario>, GateError> {
        let s = Scenario::load(&self.scenario).map_err(|e| GateError(e.0))?;
        if self.seeds.is_empty() {
            return Ok(vec![s]);
        }
        Ok(self.seeds.iter().map(|&seed| Scenario { seed, ..s.clone() }).collect())
    }

    /// Judges finished runs of this entry (one per seed).
    pub fn judge(&self, runs: &[RunResult]) -> Vec<Row> {
        let name = self.scenario.display().to_string();
        let complete = runs.iter().all(|r| r.report.end_reason == EndReason::AllDone);
        self.figures
            .iter()
            .map(|(key, &expected)| {
                // A run that did not finish has no honest figure: its makespan or continuity
                // would describe the part that ran.
                let values: Option<Vec<f64>> =
                    if complete { runs.iter().map(|r| figure(r, key)).collect() } else { None };
                let measured =
                    values.filter(|v| !v.is_empty()).map(|v| v.iter().sum::<f64>() / v.len() as f64);
                let verdict = match (measured, direction(key)) {
                    (Some(m), Some(better)) => verdict(m, expected, better),
                    _ => Verdict::Missing,
                };
                Row { scenario: name.clone(), figure: key.clone(), expected, measured, verdict }
            })
            .collect()
    }

    /// Runs every seed of the entry, in order (for [`Entry::judge`]).
    pub fn results(&self) -> Result<Vec<RunResult>, GateError> {
        Ok(self.runs()?.iter().map(run_one).collect())
    }
}

/// One gate run of a scenario, as `sim run` makes it.
pub fn run_one(s: &Scenario) -> RunResult {
    runner::run(s, "default", core_factory().as_mut(), &mut |_, _, _| {})
}

/// A figure of a run: a key of its `report.json` or a dotted path into it.
pub fn figure(run: &RunResult, key: &str) -> Option<f64> {
    let json = serde_json::to_value(&run.report).ok()?;
    key.split('.').try_fold(&json, |v, part| v.get(part))?.as_f64()
}

/// The verdict for a measured value against its baseline.
pub fn verdict(measured: f64, expected: Figure, better: Better) -> Verdict {
    // How much worse than the baseline, in the figure's unit (negative: better).
    let worse_by = match better {
        Better::Lower => measured - expected.baseline,
        Better::Higher => expected.baseline - measured,
    };
    if worse_by > expected.tolerance {
        Verdict::Worse
    } else if -worse_by > expected.tolerance {
        Verdict::Better
    } else {
        Verdict::Ok
    }
}

/// Whether the gate passes: no figure worse or missing.
pub fn passes(rows: &[Row]) -> bool {
    rows.iter().all(|r| matches!(r.verdict, Verdict::Ok | Verdict::Better))
}

/// The table of every row, aligned, with a last line saying what to do.
pub fn table(rows: &[Row]) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{:<36} {:<22} {:>10} {:>9} {:>10}  verdict",
        "scenario", "figure", "baseline", "± tol", "measured"
    );
    for r in rows {
        let measured = r.measured.map_or_else(|| "-".to_owned(), num);
        let verdict = match r.verdict {
            Verdict::Ok => "ok",
            Verdict::Worse => "WORSE",
            Verdict::Better => "better: update the baseline",
            Verdict::Missing => "MISSING (the run did not finish)",
        };
        let _ = writeln!(
            o,
            "{:<36} {:<22} {:>10} {:>9} {:>10}  {verdict}",
            short(&r.scenario),
            r.figure,
            num(r.expected.baseline),
            num(r.expected.tolerance),
            measured
        );
    }
    let worse = rows.iter().filter(|r| matches!(r.verdict, Verdict::Worse | Verdict::Missing)).count();
    let better = rows.iter().filter(|r| r.verdict == Verdict::Better).count();
    match (worse, better) {
        (0, 0) => o.push_str("gate: every figure within its tolerance\n"),
        (0, b) => {
            let _ = writeln!(
                o,
                "gate: passes; {b} figure(s) better than their baseline: update scenarios/baselines.yml"
            );
        }
        (w, _) => {
            let _ = writeln!(
                o,
                "gate: FAILS: {w} figure(s) worse than their baseline by more than the tolerance"
            );
        }
    }
    o
}

/// Four decimals, six for small figures (control overhead is a few 1e-4).
fn num(v: f64) -> String {
    if v != 0.0 && v.abs() < 0.01 { format!("{v:.6}") } else { format!("{v:.4}") }
}

/// The scenario path from `scenarios/` on, for the table.
fn short(path: &str) -> &str {
    path.find("scenarios/").map_or(path, |i| &path[i..])
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOL: Figure = Figure { baseline: 1.20, tolerance: 0.02 };

    #[test]
    fn a_figure_is_judged_by_its_direction() {
        assert_eq!(verdict(1.21, TOL, Better::Lower), Verdict::Ok);
        assert_eq!(verdict(1.23, TOL, Better::Lower), Verdict::Worse);
        assert_eq!(verdict(1.17, TOL, Better::Lower), Verdict::Better);
        assert_eq!(verdict(1.17, TOL, Better::Higher), Verdict::Worse);
        assert_eq!(verdict(1.23, TOL, Better::Higher), Verdict::Better);
        assert_eq!(direction("continuity_index"), Some(Better::Higher));
        assert_eq!(direction("completion_s.p50"), Some(Better::Lower));
        assert_eq!(direction("completion.p50"), None);
    }

    #[test]
    fn a_bad_baselines_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let write = |text: &str| {
            let p = dir.path().join("b.yml");
            std::fs::write(&p, text).unwrap();
            Baselines::load(&p).unwrap_err().0
        };
        let e = write(
            "quick:\n  - scenario: x.yml\n    figures: { completion.p50: { baseline: 1, tolerance: 0.1 } }\n",
        );
        assert!(e.contains("quick[0].figures.completion.p50: not a figure the gate knows"), "{e}");
        let e = write(
            "quick:\n  - scenario: x.yml\n    figures: { makespan_s: { baseline: 1, tolerance: -1 } }\n",
        );
        assert!(e.contains("tolerance ≥ 0"), "{e}");
        let e = write(
            "quick:\n  - scenario: x.yml\n    seeds: [1, 1]\n    figures: { makespan_s: { baseline: 1, tolerance: 1 } }\n",
        );
        assert!(e.contains("quick[0].seeds[1]: 1 is listed twice"), "{e}");
        let e = write("quick:\n  - scenario: x.yml\n    figures: {}\n");
        assert!(e.contains("name at least one figure"), "{e}");
        let e = write("slow: []\n");
        assert!(e.contains("unknown field `slow`"), "{e}");
    }
}
