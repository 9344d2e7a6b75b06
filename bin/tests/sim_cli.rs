//! The `sim` command line: exit codes and one-line errors, and every shipped scenario loads.

// Test helpers outside #[test] functions: a failure to spawn is a test failure.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Command, Output};

fn sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pdtp-sim")).args(args).current_dir(root()).output().unwrap()
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn every_shipped_scenario_validates() {
    let list = |dir: &str| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(root().join("scenarios").join(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            // The gate's baselines live beside the scenarios but are not one.
            .filter(|n| n.ends_with(".yml") && n != "baselines.yml")
            .map(|n| if dir.is_empty() { n } else { format!("{dir}/{n}") })
            .collect();
        names.sort();
        names
    };
    // The simulator's scenarios, the gate's and the lab's (`pdtp-node lab` runs them in the
    // simulator too), and the families.
    let names: Vec<String> = ["", "quick", "lab", "family"].iter().flat_map(|d| list(d)).collect();
    for must in [
        "chunksweep.yml",
        "flashcrowd.yml",
        "live.yml",
        "smoke.yml",
        "quick/live.yml",
        "lab/ci.yml",
        "lab/flashcrowd.yml",
        "family/ondemand_judge.yml",
    ] {
        assert!(names.iter().any(|n| n == must), "{must} is shipped");
    }
    for name in names {
        let o = sim(&["check", &format!("scenarios/{name}")]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(out.contains("bounds:"), "{out}");
    }
}

/// `sim check` of a live stream gives its lag floor, and warns before a run when the stream
/// is past r_max or the buffer is short of 1.5 × the floor, with the chunk size that fits.
#[test]
fn check_states_the_live_floor_and_warns_with_a_chunk_size_that_fits() {
    let o = sim(&["check", "scenarios/live.yml"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.contains("lag floor: 1.71 s = 10 copy times"), "{out}");
    assert!(!out.contains("warning"), "{out}");

    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short.yml");
    let live = std::fs::read_to_string(root().join("scenarios/live.yml")).unwrap();
    let text = live.replace("buffer: 4s", "buffer: 2s").replace("bitrate: 5.25Mbit/s", "bitrate: 6Mbit/s");
    std::fs::write(&short, text).unwrap();
    let o = sim(&["check", short.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.contains("warning: the stream needs 1.03 × r_max"), "{out}");
    // 2 s ÷ (1.5 × 1.709 s) of 125 kB: 97.4 kB, said in whole kilobytes.
    assert!(out.contains("chunks of at most 97kB would fit it, or a buffer of 2.57 s"), "{out}");
}

#[test]
fn bad_input_is_one_line_naming_the_problem_with_exit_code_2() {
    let dir = std::env::temp_dir().join(format!("pdtp-sim-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        ("missing.yml", None, "cannot read"),
        (
            "typo.yml",
            Some(
                "content: {size: 1MB, chunk_size: 2kB}\nseeds: {upload: 1Mbit/s}\npeers: [{count: 1, uplaod: 1Mbit/s, download: 1Mbit/s}]\n",
            ),
            "uplaod",
        ),
        (
            "zero.yml",
            Some(
                "content: {size: 1MB, chunk_size: 2kB}\nseeds: {upload: 0Mbit/s}\npeers: [{count: 1, upload: 1Mbit/s, download: 1Mbit/s}]\n",
            ),
            "seeds.upload: must be > 0",
        ),
        (
            "big.yml",
            Some(
                "content: {size: 1MB, chunk_size: 2MB}\nseeds: {upload: 1Mbit/s}\npeers: [{count: 1, upload: 1Mbit/s, download: 1Mbit/s}]\n",
            ),
            "content.chunk_size (2MB) is larger than content.size (1MB)",
        ),
        (
            "seeds.yml",
            Some(
                "content: {size: 1MB, chunk_size: 2kB}\nseeds: {count: 2, upload: 1Mbit/s}\npeers: [{count: 1, upload: 1Mbit/s, download: 1Mbit/s}]\n",
            ),
            "more seeds than peers",
        ),
        ("yaml.yml", Some("content: {size: 1MB\n"), "line"),
        (
            "negative.yml",
            Some(
                "content: {size: 1MB, chunk_size: 2kB}\nseeds: {upload: 1Mbit/s}\npeers: [{count: 1, upload: -1Mbit/s, download: 1Mbit/s}]\n",
            ),
            "peers[0].upload: invalid rate '-1Mbit/s': must not be negative",
        ),
        (
            "crowd.yml",
            Some(
                "content: {size: 1MB, chunk_size: 2kB}\nseeds: {upload: 1Mbit/s}\npeers: [{count: 4000000000, upload: 1Mbit/s, download: 1Mbit/s}]\n",
            ),
            "peers: 4000000000 viewers in all",
        ),
        (
            "tiny.yml",
            Some(
                "content: {size: 1GB, chunk_size: 1B}\nseeds: {upload: 1Mbit/s}\npeers: [{count: 1, upload: 1Mbit/s, download: 1Mbit/s}]\n",
            ),
            "content.chunk_size: 1B makes 1000000000 chunks",
        ),
        (
            "axis.yml",
            Some(
                "content: {size: 1MB, chunk_size: 2kB}\nseeds: {upload: 1Mbit/s}\npeers: [{count: 1, upload: 1Mbit/s, download: 1Mbit/s}]\nsweep: {seeds: []}\n",
            ),
            "sweep: seeds is an empty list",
        ),
        (
            "slow.yml",
            Some(
                "content: {size: 100MB, chunk_size: 50MB}\nseeds: {upload: 1Mbit/s}\npeers: [{count: 1, upload: 2Mbit/s, download: 2Mbit/s}]\n",
            ),
            "content.chunk_size: a 50MB chunk takes 200 s over the slowest viewer download (2Mbit/s)",
        ),
    ];
    for (file, text, expect) in cases {
        let path = dir.join(file);
        if let Some(t) = text {
            std::fs::write(&path, t).unwrap();
        }
        for cmd in ["check", "run", "sweep"] {
            let o = sim(&[cmd, path.to_str().unwrap()]);
            assert_eq!(o.status.code(), Some(2), "{cmd} {file}: {}", stderr(&o));
            let e = stderr(&o);
            assert_eq!(e.lines().count(), 1, "{e}");
            assert!(e.contains(expect), "{cmd} {file}: {e}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_arguments_are_one_line_with_exit_code_2_and_a_bad_out_costs_no_run() {
    for args in [
        &["run", "scenarios/smoke.yml", "--seed", "abc"][..],
        &["run"],
        &["sweep", "scenarios/smoke.yml", "--jobs", "x"],
        &["bogus"],
        &["run", "scenarios/smoke.yml", "--seed", "-1"],
        &["sweep", "scenarios/smoke.yml", "--jobs", "0"],
        &["sweep", "scenarios/smoke.yml", "--jobs", "-1"],
    ] {
        let o = sim(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        let e = stderr(&o);
        assert_eq!(e.lines().count(), 1, "{args:?}: {e}");
        assert!(e.starts_with("sim: "), "{e}");
        if let Some(option) = args.iter().find(|a| a.starts_with("--")) {
            assert!(e.contains(option), "{args:?} names {option}: {e}");
        }
    }
    assert!(stderr(&sim(&["run"])).contains("<SCENARIO>"), "the missing argument is named");
    // The output directory is made before the run: no table means no run happened.
    let file = std::env::temp_dir().join(format!("pdtp-sim-cli-file-{}", std::process::id()));
    std::fs::write(&file, "not a directory").unwrap();
    let o = sim(&["run", "scenarios/smoke.yml", "--out", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).starts_with(&format!("sim: --out {}: cannot create", file.display())),
        "{}",
        stderr(&o)
    );
    assert!(!String::from_utf8_lossy(&o.stdout).contains("T_min"), "nothing ran");
    std::fs::remove_file(&file).unwrap();
}

#[test]
fn run_writes_a_report_a_table_and_plots() {
    let dir = std::env::temp_dir().join(format!("pdtp-sim-cli-run-{}", std::process::id()));
    let o = sim(&["run", "scenarios/smoke.yml", "--out", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("T_min"), "{table}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["peers"], 10);
    assert_eq!(report["peers_completed"], 10);
    assert!(report["ratio_to_t_min"].as_f64().unwrap() >= 1.0);
    for f in ["peers.csv", "completion_cdf.svg", "origin_upload.svg"] {
        assert!(dir.join(f).exists(), "{f} written");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The cells of a sweep's report, without the wall-clock fields.
fn sweep_cells(dir: &std::path::Path) -> Vec<serde_json::Value> {
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    let mut cells = report["cells"].as_array().unwrap().clone();
    for c in &mut cells {
        let c = c.as_object_mut().unwrap();
        for wall in ["events_per_s", "wall_s", "peak_rss_bytes"] {
            assert!(c.remove(wall).is_some(), "{wall} reported");
        }
    }
    cells
}

#[test]
fn a_sweep_writes_every_cell_with_its_parameters_the_same_on_one_job_or_all_cores() {
    let dir = std::env::temp_dir().join(format!("pdtp-sim-cli-sweep-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let smoke = std::fs::read_to_string(root().join("scenarios/smoke.yml")).unwrap();
    let grid = "sweep:\n  chunk_sizes: [50kB, 200kB]\n  policies: [{name: rarest}, {name: in_order, chunk: in_order}]\n  seeds: [1, 2]\n";
    let scenario = dir.join("grid.yml");
    std::fs::write(&scenario, format!("{smoke}{grid}")).unwrap();
    let (one, all) = (dir.join("one"), dir.join("all"));
    for (out, jobs) in [(&one, Some("1")), (&all, None)] {
        let mut args = vec!["sweep", scenario.to_str().unwrap(), "--out", out.to_str().unwrap()];
        args.extend(jobs.map(|j| ["--jobs", j]).into_iter().flatten());
        let o = sim(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        for f in ["sweep.csv", "sweep.svg"] {
            assert!(out.join(f).exists(), "{f} written");
        }
    }
    let cells = sweep_cells(&one);
    assert_eq!(cells.len(), 8, "2 chunk sizes x 2 policies x 2 seeds");
    let mut grid_points: Vec<(u64, String, u64)> = cells
        .iter()
        .map(|c| {
            (
                c["chunk_bytes"].as_u64().unwrap(),
                c["policy"].as_str().unwrap().to_string(),
                c["seed"].as_u64().unwrap(),
            )
        })
        .collect();
    grid_points.sort();
    grid_points.dedup();
    assert_eq!(grid_points.len(), 8, "every cell names a different grid point");
    assert!(cells.iter().all(|c| c["peers_completed"] == 10), "every cell completes");
    for c in &cells {
        // The cell's policy in full, its override applied.
        let chunk = if c["policy"] == "in_order" { "in_order" } else { "rarest_first" };
        assert_eq!(c["policy_settings"]["chunk"], chunk, "{c}");
        assert!(c["policy_settings"]["max_transfers"].is_u64(), "{c}");
    }
    assert_eq!(cells, sweep_cells(&all), "cells do not depend on how many run at once");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn what_cannot_be_read_or_written_is_named_and_run_says_it_ignores_a_sweep() {
    let dir = std::env::temp_dir().join(format!("pdtp-sim-cli-named-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("out/report.json")).unwrap();
    // A directory (or a FIFO, a device) is not a scenario: refused before any read.
    let o = sim(&["check", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stderr(&o).trim_end(), format!("sim: {}: cannot read: not a regular file", dir.display()));
    // `report.json` is a directory here: the error names the file, not only --out.
    let out = dir.join("out");
    let o = sim(&["run", "scenarios/smoke.yml", "--quiet", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains(&format!("cannot write: {}", out.join("report.json").display())), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
    let with_sweep = dir.join("sweep.yml");
    let smoke = std::fs::read_to_string(root().join("scenarios/smoke.yml")).unwrap();
    std::fs::write(&with_sweep, format!("{smoke}sweep: {{ seeds: [1, 2] }}\n")).unwrap();
    let o = sim(&["run", with_sweep.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("`run` ignores the file's sweep: section"), "{}", stderr(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `sim gate` prints the table and exits 0 when every figure holds, 1 when one is worse than
/// its baseline, 2 for a baselines file it cannot use.
#[test]
fn the_gate_command_passes_fails_and_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let smoke = root().join("scenarios/smoke.yml");
    let write = |name: &str, baseline: f64| {
        let p = dir.path().join(name);
        let text = format!(
            "quick:\n  - scenario: {}\n    figures:\n      origin_copies: {{ baseline: {baseline}, tolerance: 0.01 }}\n",
            smoke.display()
        );
        std::fs::write(&p, text).unwrap();
        p.to_string_lossy().into_owned()
    };
    // What smoke.yml gives, from the gate itself with a wide tolerance.
    let probe = dir.path().join("probe.yml");
    let text = format!(
        "quick:\n  - scenario: {}\n    figures:\n      origin_copies: {{ baseline: 0, tolerance: 1000 }}\n",
        smoke.display()
    );
    std::fs::write(&probe, text).unwrap();
    let o = sim(&["gate", probe.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let measured: f64 = out
        .lines()
        .find(|l| l.contains("origin_copies"))
        .and_then(|l| l.split_whitespace().nth(4))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no measured origin_copies in {out}"));

    let o = sim(&["gate", &write("same.yml", measured)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    assert!(String::from_utf8_lossy(&o.stdout).contains("every figure within its tolerance"));
    let o = sim(&["gate", &write("tight.yml", measured - 0.5)]);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("WORSE") && out.contains("gate: FAILS"), "{out}");
    let o = sim(&["gate", &write("loose.yml", measured + 0.5)]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("update the baseline"));

    std::fs::write(
        dir.path().join("bad.yml"),
        "quick: [ { scenario: x.yml, figures: { speed: { baseline: 1, tolerance: 0 } } } ]\n",
    )
    .unwrap();
    let o = sim(&["gate", dir.path().join("bad.yml").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("figures.speed: not a figure the gate knows"), "{}", stderr(&o));
}

/// `--version` names the protocol the machines speak, for both of the simulator's names.
#[test]
fn version_names_the_protocol() {
    let o = sim(&["--version"]);
    assert!(o.status.success());
    let v = String::from_utf8_lossy(&o.stdout).into_owned();
    let want = format!("(PDTP protocol {})", pdtp_core::wire::PROTOCOL_VERSION);
    assert!(v.starts_with("sim ") && v.contains(&want), "{v}");
    let node = Command::new(env!("CARGO_BIN_EXE_pdtp-node")).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&node.stdout).contains(&want));
}
