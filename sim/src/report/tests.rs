use super::*;
use crate::engine::Engine;
use crate::testnodes::TestFactory;

fn run(extra: &str) -> RunResult {
    let text = format!(
        "name: t\ncontent: {{ size: 600kB, chunk_size: 100kB }}\n\
         seeds: {{ upload: 8Mbit/s }}\n\
         peers: [ {{ count: 4, upload: 5Mbit/s, download: 100Mbit/s }} ]\n{extra}"
    );
    let s = Scenario::from_yaml(&text, "t").unwrap();
    let mut f = TestFactory {
        chunks: 6,
        chunk_len: 100_000,
        acks_per_chunk: 1,
        pace: None,
        connect_delay: None,
        ghost: false,
    };
    let out = Engine::new(&s, &mut f).run(&mut |_, _, _| {});
    RunResult::new(&s, "default", out, 0.5)
}

fn json(r: &Report) -> serde_json::Value {
    serde_json::from_str(&to_json(r).unwrap()).unwrap()
}

#[test]
fn report_json_has_the_keys_issue_3_lists() {
    let r = run("");
    let v = json(&r.report);
    for key in [
        "peers",
        "file_bytes",
        "chunk_bytes",
        "t_min_s",
        "completion_s",
        "ratio_to_t_min",
        "origin_bytes",
        "origin_copies",
        "origin_cost_fraction",
        "control_overhead",
        "tracker_msgs_per_s_peak",
        "tracker_busy_peak",
        "events",
        "events_per_s",
        "wall_s",
        "peak_rss_bytes",
        "continuity_index",
        "startup_s",
        "stalls",
        "live_lag_s",
        "r_max_bps",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    for p in ["p50", "p90", "p99", "max"] {
        assert!(v["completion_s"][p].is_number(), "completion_s.{p}");
    }
    assert_eq!(v["peers"], 4);
    assert_eq!(v["file_bytes"], 600_000);
    assert_eq!(v["chunk_bytes"], 100_000);
    // The test sender uploads every chunk to every viewer: 4 copies, cost fraction 1.
    assert_eq!(v["origin_copies"], 4.0);
    assert_eq!(v["origin_cost_fraction"], 1.0);
    assert!(v["continuity_index"].is_null());
}

#[test]
fn same_scenario_and_seed_give_identical_json_apart_from_wall_clock_fields() {
    let strip = |r: &Report| {
        let mut v = json(r);
        for k in ["events_per_s", "wall_s", "peak_rss_bytes"] {
            v.as_object_mut().unwrap().remove(k);
        }
        serde_json::to_string(&v).unwrap()
    };
    let extra = "arrivals: { uniform: { window: 1s } }\nseed: 3\n";
    let (a, b) = (run(extra), run(extra));
    assert_eq!(strip(&a.report), strip(&b.report));
    assert_eq!(peers_csv(&a.peers), peers_csv(&b.peers));
    assert_ne!(strip(&a.report), strip(&run("arrivals: { uniform: { window: 1s } }\nseed: 4\n").report));
}

#[test]
fn no_run_finishes_below_the_bound() {
    // The test sender unicasts, so it is far above T_min; the check is that the bound and
    // the measured makespan are related the right way round.
    let r = run("");
    let ratio = r.report.ratio_to_t_min.unwrap();
    assert!(ratio >= 1.0, "{ratio}");
}

#[test]
fn writers_produce_every_file() {
    let r = run("");
    let dir = std::env::temp_dir().join(format!("pdtp-sim-report-{}", std::process::id()));
    r.write(&dir).unwrap();
    for f in ["report.json", "peers.csv", "completion_cdf.svg", "origin_upload.svg"] {
        let meta = std::fs::metadata(dir.join(f)).unwrap();
        assert!(meta.len() > 0, "{f}");
    }
    let csv = std::fs::read_to_string(dir.join("peers.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5);
    write_sweep(&dir, &[r.report.clone(), r.report.clone()]).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(v["cells"].as_array().unwrap().len(), 2);
    let sweep_csv = std::fs::read_to_string(dir.join("sweep.csv")).unwrap();
    assert!(sweep_csv.lines().nth(1).unwrap().ends_with(",all_done"), "{sweep_csv}");
    // Header, row, column key, the arrivals bound; a run that did not finish says so under
    // the table.
    assert!(r.report.t_arrivals_s.is_some());
    assert_eq!(table(std::slice::from_ref(&r.report)).lines().count(), 4);
    let mut cut = r.report.clone();
    cut.end_reason = EndReason::TimeLimit;
    cut.peers_completed = 3;
    let t = table(&[cut]);
    let note = format!("ended (time_limit) at {:.2} s with 3 of 4 viewers done", r.report.sim_time_s);
    assert!(t.lines().last().unwrap().ends_with(&note), "{t}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
#[ignore = "writes sample outputs to $PDTP_SIM_SAMPLE_DIR for eyeballing"]
fn write_sample_outputs() {
    let dir = std::env::var("PDTP_SIM_SAMPLE_DIR").unwrap();
    let r = run("");
    r.write(Path::new(&dir)).unwrap();
    let mut cells = Vec::new();
    for (i, p) in ["a", "b"].iter().enumerate() {
        for size in [5_000u64, 50_000, 500_000] {
            let mut c = r.report.clone();
            c.policy = p.to_string();
            c.chunk_bytes = size;
            c.ratio_to_t_min = Some(1.0 + (size as f64).ln() / 10.0 + i as f64 * 0.2);
            cells.push(c);
        }
    }
    write_sweep(&Path::new(&dir).join("sweep"), &cells).unwrap();
    print!("{}", table(&cells));
}

/// A peer-to-peer swarm (test-only relay nodes) over heterogeneous links: the origin pays one
/// copy, every byte is accounted for, and nobody beats the Kumar–Ross bound.
#[test]
fn a_relay_swarm_pays_one_origin_copy_and_respects_t_min() {
    use crate::testnodes::RelayFactory;
    {
        let text = "name: relay\ncontent: { size: 4MB, chunk_size: 100kB }\n\
             seeds: { upload: 20Mbit/s }\n\
             peers:\n\
             - { count: 8, upload: 2Mbit/s, download: 20Mbit/s, latency: 30ms }\n\
             - { count: 8, upload: 10Mbit/s, download: 50Mbit/s, latency: 10ms }\n";
        let s = Scenario::from_yaml(text, "t").unwrap();
        let out =
            Engine::new(&s, &mut RelayFactory { chunks: 40, chunk_len: 100_000 }).run(&mut |_, _, _| {});
        assert_eq!(out.bytes_uploaded, out.bytes_downloaded);
        let r = RunResult::new(&s, "relay", out, 0.0).report;
        assert_eq!(r.peers_completed, 16);
        assert_eq!(r.origin_bytes, 4_000_000);
        assert_eq!(r.origin_copies, 1.0);
        assert_eq!(r.origin_cost_fraction, 1.0 / 16.0);
        assert_eq!(r.payload_bytes, 16 * 4_000_000);
        let ratio = r.ratio_to_t_min.unwrap();
        assert!(ratio >= 1.0, "below the physical bound: {ratio}");
        // Slow uploaders forward as much as fast ones here, so the scheme is far from optimal.
        assert!(ratio < 10.0, "{ratio}");
        let share = r.share_ratio.unwrap();
        assert!(share.p10 > 0.0 && share.p90 >= share.p10);
    }
}

#[test]
fn end_reason_names_match_report_json() {
    for reason in [EndReason::AllDone, EndReason::TimeLimit, EndReason::Quiescent, EndReason::Livelock] {
        assert_eq!(serde_json::to_value(reason).unwrap(), reason.name());
    }
}

/// A Poisson swarm whose viewers leave after serving gets the fluid model's prediction,
/// and a run of it its mean over the middle half of the viewers by arrival; other swarms
/// get none.
#[test]
fn a_steady_swarm_is_set_beside_the_fluid_model() {
    let scenario = |extra: &str| {
        let text = format!(
            "name: t\ncontent: {{ size: 600kB, chunk_size: 100kB }}\nseeds: {{ upload: 8Mbit/s }}\n\
             peers: [ {{ count: 4, upload: 5Mbit/s, download: 100Mbit/s }} ]\n{extra}"
        );
        Scenario::from_yaml(&text, "t").unwrap()
    };
    let steady = |extra: &str| {
        let s = scenario(extra);
        Bounds::of(&s).steady(&s)
    };
    let fluid = steady("arrivals: { poisson: { rate: 2 } }\nseed_for: 1s\n").expect("Poisson and seed_for");
    // 4.8 Mbit at a 5 Mbit/s uplink is 0.96 s; 1 s of seeding and 8/(2·5) = 0.8 s of origin
    // take it below the downlink's 0.048 s, which binds.
    assert!((fluid.fluid_download_s() - 0.048).abs() < 1e-9, "{}", fluid.fluid_download_s());
    assert!(steady("").is_none(), "everyone at once");
    assert!(steady("arrivals: { poisson: { rate: 2 } }\n").is_none(), "viewers that stay");
    // Arrivals out of order; the middle half by arrival is the viewers at 1 s and 2 s.
    let record = |arrival: f64, took: f64| PeerRecord {
        arrival_s: Some(arrival),
        completion_s: Some(took),
        ..PeerRecord::default()
    };
    let records = [record(3.0, 9.0), record(1.0, 0.2), record(0.0, 5.0), record(2.0, 0.4)];
    let st = steady_state(&fluid, &records).unwrap();
    assert_eq!(st.viewers, 2);
    assert_eq!(st.link_download_s, st.fluid_download_s, "the downlinks bind here");
    assert!((st.mean_download_s - 0.3).abs() < 1e-9);
    assert!((st.ratio - 0.3 / 0.048).abs() < 1e-9);
}
