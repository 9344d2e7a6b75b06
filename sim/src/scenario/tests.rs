use super::*;
use pdtp_core::Span;

const BASE: &str = "
content: { size: 1MB, chunk_size: 250kB }
seeds: { upload: 100Mbit/s }
peers:
  - { count: 3, upload: 5Mbit/s, download: 20Mbit/s }
  - { count: 2, upload: 10Mbit/s, download: 50Mbit/s, latency: 30ms }
";

fn err(text: &str) -> String {
    Scenario::from_yaml(text, "x.yml").unwrap_err().0
}

#[test]
fn a_minimal_scenario_gets_documented_defaults() {
    let s = Scenario::from_yaml(BASE, "x.yml").unwrap();
    assert_eq!(s.peer_count(), 5);
    assert_eq!(s.file_bytes(), 1_000_000);
    assert_eq!(s.seeds.count, 1);
    assert_eq!(s.arrivals, Arrivals::AllAtOnce);
    assert_eq!(s.policy, PolicySpec::default(), "no policy section: the built-in policy");
    assert_eq!(s.peers[1].latency, Duration::parse("30ms").unwrap());
    assert_eq!(s.peers[0].latency, Duration::parse("20ms").unwrap());
    assert_eq!(s.cells().unwrap().len(), 1);
}

#[test]
fn arrivals_and_live_parse() {
    let s = Scenario::from_yaml(&format!("{BASE}arrivals: {{ uniform: {{ window: 10s }} }}\n"), "x").unwrap();
    assert_eq!(s.arrivals, Arrivals::Uniform { window: Duration::parse("10s").unwrap() });
    let s = Scenario::from_yaml(&format!("{BASE}arrivals: {{ poisson: {{ rate: 50 }} }}\n"), "x").unwrap();
    assert_eq!(s.arrivals, Arrivals::Poisson { rate: 50.0 });
    let s = Scenario::from_yaml(&format!("{BASE}arrivals: all_at_once\n"), "x").unwrap();
    assert_eq!(s.arrivals, Arrivals::AllAtOnce);
    // Given times, one per viewer, written back as read.
    let given = "arrivals: { at: [0s, 1.5s, 250ms, 2s, 26.737599ms] }\n";
    let s = Scenario::from_yaml(&format!("{BASE}{given}"), "x").unwrap();
    let d = |t: &str| Duration::parse(t).unwrap();
    assert_eq!(s.arrivals, Arrivals::At(vec![d("0s"), d("1.5s"), d("250ms"), d("2s"), d("26.737599ms")]));
    let again = Scenario::from_yaml(&serde_norway::to_string(&s).unwrap(), "x").unwrap();
    assert_eq!(again.arrivals, s.arrivals);
    assert_eq!(
        err(&format!("{BASE}arrivals: {{ at: [1s, 2s] }}\n")),
        "x.yml: arrivals.at: 2 times for 5 viewers (one per viewer, in the order of peers:)"
    );
    let live = BASE.replace("size: 1MB,", "live: { bitrate: 2Mbit/s, buffer: 4s, duration: 60s },");
    let s = Scenario::from_yaml(&live, "x").unwrap();
    assert_eq!(s.file_bytes(), 15_000_000);
}

#[test]
fn unknown_keys_are_named_with_their_place() {
    let e = err(&BASE.replace("{ count: 2, upload", "{ count: 2, uplaod"));
    assert!(e.starts_with("x.yml: "), "{e}");
    assert!(e.contains("uplaod") && e.contains("peers[1]"), "{e}");
    let e = err(&format!("{BASE}polcy: {{}}\n"));
    assert!(e.contains("polcy"), "{e}");
    assert!(!e.contains('\n'));
}

#[test]
fn bad_values_name_the_field() {
    let e = err(&BASE.replace("upload: 10Mbit/s", "upload: 0Mbit/s"));
    assert_eq!(e, "x.yml: peers[1].upload: must be > 0");
    let e = err(&BASE.replace("chunk_size: 250kB", "chunk_size: 2MB"));
    assert_eq!(e, "x.yml: content.chunk_size (2MB) is larger than content.size (1MB)");
    let e = err(&BASE.replace("seeds: { upload", "seeds: { count: 6, upload"));
    assert!(e.contains("more seeds than peers"), "{e}");
    let e = err(&BASE.replace("upload: 5Mbit/s", "upload: -5Mbit/s"));
    assert!(e.contains("peers[0].upload"), "{e}");
    let e = err(&BASE.replace("upload: 5Mbit/s", "upload: 5Mbits"));
    assert!(e.contains("unknown unit 'Mbits'"), "{e}");
    let e = err(&format!("{BASE}faults: {{ failure: 1.5 }}\n"));
    assert_eq!(e, "x.yml: faults.failure: must be a probability in [0, 1]");
    let e = err(&format!("{BASE}policy: {{ max_uploads: 30 }}\n"));
    assert!(e.starts_with("x.yml: policy.max_uploads:"), "{e}");
    let e = err("content: [");
    assert!(e.starts_with("x.yml: "), "{e}");
}

#[test]
fn values_that_would_run_but_mean_nothing_are_named() {
    let live = BASE.replace("size: 1MB,", "live: { bitrate: 2Mbit/s, buffer: 0s, duration: 60s },");
    assert_eq!(err(&live), "x.yml: content.live.buffer: must be > 0");
    let e = err(&format!("{BASE}arrivals: {{ uniform: {{ window: 0s }} }}\n"));
    assert!(e.starts_with("x.yml: arrivals.uniform.window: must be > 0"), "{e}");
    // A window given to all_at_once would be dropped without a word.
    let e = err(&format!("{BASE}arrivals: {{ all_at_once: {{ window: 5s }} }}\n"));
    assert!(e.contains("all_at_once takes no parameters"), "{e}");
    assert!(Scenario::from_yaml(&format!("{BASE}arrivals: {{ all_at_once: }}\n"), "x").is_ok());
    assert!(Scenario::from_yaml(&format!("{BASE}arrivals: {{ all_at_once: {{}} }}\n"), "x").is_ok());
    let e = err(&format!("{BASE}faults: {{ corruption: 1 }}\n"));
    assert!(e.starts_with("x.yml: faults.corruption: must be < 1"), "{e}");
    let e = err(&format!("{BASE}sweep: {{ seeds: [1, 2, 1] }}\n"));
    assert_eq!(e, "x.yml: sweep.seeds[2]: 1 is listed twice");
    let e = err(&format!("{BASE}sweep: {{ chunk_sizes: [100kB, 0.1MB] }}\n"));
    assert_eq!(e, "x.yml: sweep.chunk_sizes[1]: 100kB is listed twice");
}

#[test]
fn a_chunk_that_cannot_reach_a_viewer_in_time_is_refused() {
    // The slowest viewer download is 20 Mbit/s: 300 MB take 120 s (the limit), 301 MB do not.
    let big = |chunk: &str| {
        BASE.replace("size: 1MB, chunk_size: 250kB", &format!("size: 1GB, chunk_size: {chunk}"))
    };
    assert!(Scenario::from_yaml(&big("300MB"), "x").is_ok(), "a 5 Mbit/s uplink alone is no reason");
    assert_eq!(
        err(&big("301MB")),
        "x.yml: content.chunk_size: a 301MB chunk takes 120 s over the slowest viewer download \
         (20Mbit/s), longer than a transfer may run (120 s); use smaller chunks"
    );
    let e = err(&format!("{}sweep: {{ chunk_sizes: [1MB, 400MB] }}\n", big("1MB")));
    assert!(e.starts_with("x.yml: sweep.chunk_sizes[1]: a 400MB chunk takes"), "{e}");
    // No giver at all fast enough: every upload, the origin's included, is 1 Mbit/s.
    let slow = "content: { size: 100MB, chunk_size: 16MB }\nseeds: { upload: 1Mbit/s }\n\
                peers: [ { count: 2, upload: 1Mbit/s, download: 100Mbit/s } ]\n";
    assert!(
        err(slow).contains("a 16MB chunk takes 128 s over the fastest upload (1Mbit/s)"),
        "{}",
        err(slow)
    );
}

#[test]
fn a_live_chunk_larger_than_the_stream_names_the_stream() {
    let live = BASE.replace("size: 1MB,", "live: { bitrate: 1kbit/s, buffer: 4s, duration: 1s },");
    assert_eq!(
        err(&live),
        "x.yml: content.chunk_size (250kB) is larger than the stream (content.live.bitrate × duration = \
         1kbit/s × 1s = 125B)"
    );
}

#[test]
fn a_byte_order_mark_is_read_past_and_deep_brackets_are_refused_quickly() {
    assert!(Scenario::from_yaml(&format!("\u{feff}{BASE}"), "x").is_ok());
    // 100 000 nested brackets took the parser about 23 s.
    let deep = format!("{BASE}name: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    assert_eq!(err(&deep), "x.yml: line 7: brackets nested more than 64 deep");
    // Brackets in quotes and comments do not count, nor does an apostrophe hide the rest.
    let quoted = format!("{BASE}name: \"{}\" # {}\n", "[".repeat(100), "{".repeat(100));
    assert!(Scenario::from_yaml(&quoted, "x").is_ok());
    let apostrophe = format!("{BASE}name: viewer's\npolicy: {}{}\n", "{".repeat(70), "}".repeat(70));
    assert!(err(&apostrophe).contains("line 8: brackets nested"));
    // A quote inside a plain scalar, or escaped in a quoted one, opens nothing: 70 classes
    // on one line each stay one level deep (each used to leave one open).
    let classes: String = (0..70)
        .map(|i| {
            format!("  - {{ name: Bob's \"laptop\" {i}, count: 1, download: 10Mbit/s, upload: 2Mbit/s }}\n")
        })
        .collect();
    let many = format!(
        "content: {{ size: 1MB, chunk_size: 250kB }}\nseeds: {{ upload: 100Mbit/s }}\npeers:\n{classes}"
    );
    assert_eq!(Scenario::from_yaml(&many, "x").map(|s| s.peers.len()), Ok(70));
    let escaped = many.replace("Bob's \"laptop\" ", "\"Bob \\\" { ").replace(", count", "\", count");
    assert!(escaped.contains(r#"name: "Bob \" { 0", count"#), "{escaped}");
    assert_eq!(Scenario::from_yaml(&escaped, "x").map(|s| s.peers.len()), Ok(70));
}

#[test]
fn a_sweep_expands_to_its_grid() {
    let text = format!(
        "{BASE}sweep:\n  chunk_sizes: [5kB, 50kB, 250kB]\n  seeds: [1, 2]\n  policies:\n    - {{ name: a, chunk: in_order }}\n    - {{ name: b, giver: random, copy_time: 2s, stall_timeout: 3s, queue_ahead: false }}\n"
    );
    let s = Scenario::from_yaml(&text, "x").unwrap();
    let cells = s.cells().unwrap();
    assert_eq!(cells.len(), 12);
    assert_eq!(cells[0].chunk_size, Bytes(5_000));
    assert_eq!(cells[0].scenario.content.chunk_size, Bytes(5_000));
    assert_eq!(cells[0].scenario.policy.chunk, pdtp_core::tracker::ChunkPolicy::InOrder);
    assert_eq!(cells[2].policy, "b");
    assert_eq!(cells[2].scenario.policy.giver, pdtp_core::tracker::GiverPolicy::Random);
    assert_eq!(cells[2].scenario.policy.copy_time, Some(Duration(Span::from_secs(2))));
    assert_eq!(cells[2].scenario.policy.stall_timeout, Duration(Span::from_secs(3)));
    // What a policy does not name stays the base's (here the built-in policy's).
    assert_eq!(cells[0].scenario.policy.copy_time, Some(Duration(Span::from_secs(1))));
    assert!(!cells[2].scenario.policy.queue_ahead && cells[0].scenario.policy.queue_ahead);
    // Without a processing axis, labels are the policy names and processing is the scenario's.
    assert!(cells.iter().all(|c| c.scenario.tracker == s.tracker));
    assert_eq!(cells[3].seed, 2);
    assert!(cells.iter().all(|c| c.scenario.sweep.is_none()));
    let e = err(&text.replace("5kB", "5MB"));
    assert!(e.contains("sweep.chunk_sizes[0] (5MB) is larger than content.size (1MB)"), "{e}");
    let e = err(&text.replace("copy_time: 2s", "copy_time: 0s"));
    assert!(e.contains("sweep.policies[1].copy_time"), "{e}");
    let e = err(&text.replace("copy_time: 2s,", "copy_time: 2s, unmeasured_slots: 0,"));
    assert!(e.contains("sweep.policies[1].unmeasured_slots"), "{e}");
    let s = Scenario::from_yaml(&text.replace("copy_time: 2s,", "copy_time: 2s, unmeasured_slots: 4,"), "x")
        .unwrap();
    assert_eq!(
        (
            s.cells().unwrap()[2].scenario.policy.unmeasured_slots,
            s.cells().unwrap()[0].scenario.policy.unmeasured_slots
        ),
        (4, 2)
    );
}

#[test]
fn a_sweep_over_tracker_processing_labels_its_cells() {
    let text =
        format!("{BASE}sweep:\n  chunk_sizes: [5kB]\n  tracker_processing: [1us, 50us]\n  seeds: [1, 2]\n");
    let cells = Scenario::from_yaml(&text, "x").unwrap().cells().unwrap();
    let got: Vec<(String, u64, u64)> = cells
        .iter()
        .map(|c| (c.policy.clone(), c.seed, c.scenario.tracker.processing.0.as_nanos()))
        .collect();
    let want = [
        ("default @1us", 1, 1_000),
        ("default @1us", 2, 1_000),
        ("default @50us", 1, 50_000),
        ("default @50us", 2, 50_000),
    ];
    assert_eq!(got, want.map(|(p, s, n)| (p.to_string(), s, n)));
    let e = err(&text.replace("[1us, 50us]", "[1us, fast]"));
    assert!(e.contains("sweep") && e.contains("tracker_processing"), "{e}");
}

#[test]
fn seed_for_is_a_duration_or_a_distribution() {
    let d = |text: &str| Duration::parse(text).unwrap();
    let with = |v: &str| Scenario::from_yaml(&format!("{BASE}seed_for: {v}\n"), "x.yml").map(|s| s.seed_for);
    assert_eq!(Scenario::from_yaml(BASE, "x.yml").unwrap().seed_for, None);
    assert_eq!(with("2min"), Ok(Some(SeedFor::Fixed(d("2min")))));
    assert_eq!(with("{ fixed: 0s }"), Ok(Some(SeedFor::Fixed(d("0s")))));
    assert_eq!(with("{ exponential: 30s }"), Ok(Some(SeedFor::Exponential(d("30s")))));
    let e = with("{ uniform: 3s }").unwrap_err().0;
    assert!(e.contains("seed_for") && e.contains("unknown variant `uniform`"), "{e}");
    let e = with("forever").unwrap_err().0;
    assert!(e.contains("seed_for") && e.contains("invalid duration 'forever'"), "{e}");
    assert!(with("{ fixed: 1s, exponential: 2s }").unwrap_err().0.contains("give one distribution"));
}

#[test]
fn sweep_variants_overlay_the_scenario_and_label_their_cells() {
    let text = format!(
        "{BASE}name: fam\narrivals: {{ uniform: {{ window: 5s }} }}\nsweep:\n  variants:\n\
         \x20   - {{ name: big, content.size: 3MB, peers.0: {{ count: 7, upload: 1Mbit/s, download: 9Mbit/s }} }}\n\
         \x20   - {{ name: poisson, arrivals: {{ poisson: {{ rate: 4 }} }} }}\n\
         \x20 seeds: [1, 2]\n"
    );
    // `peers.0` is not a path into a list; a variant sets whole lists.
    assert!(Scenario::from_yaml(&text, "x").unwrap_err().0.contains("sweep.variants[0] ('big')"));
    let text = text.replace(
        "peers.0: { count: 7, upload: 1Mbit/s, download: 9Mbit/s }",
        "peers: [ { count: 7, upload: 1Mbit/s, download: 9Mbit/s } ]",
    );
    let cells = Scenario::from_yaml(&text, "x").unwrap().cells().unwrap();
    assert_eq!(cells.len(), 4);
    let big = &cells[0].scenario;
    assert_eq!((cells[0].variant.as_str(), big.label()), ("big", "fam/big"));
    assert_eq!((big.file_bytes(), big.peer_count()), (3_000_000, 7));
    assert_eq!(
        big.arrivals,
        Arrivals::Uniform { window: Duration::parse("5s").unwrap() },
        "kept from the base"
    );
    assert!(big.sweep.is_none());
    assert_eq!(cells[2].scenario.arrivals, Arrivals::Poisson { rate: 4.0 }, "replaced whole");
    assert_eq!(cells[2].scenario.file_bytes(), 1_000_000);
    assert_eq!((cells[1].seed, cells[3].seed), (2, 2));
}

#[test]
fn a_bad_variant_is_named() {
    let with = |v: &str| {
        Scenario::from_yaml(&format!("{BASE}sweep:\n  variants:\n    - {v}\n"), "x.yml").unwrap_err().0
    };
    let e = with("{ name: a, content.sise: 3MB }");
    assert!(e.contains("sweep.variants[0] ('a')") && e.contains("unknown field `sise`"), "{e}");
    let e = with("{ name: a, seeds.upload: 0Mbit/s }");
    assert!(e.contains("sweep.variants[0] ('a'): seeds.upload: must be > 0"), "{e}");
    let e = with("{ name: a, content.chunk_size: 2MB }");
    assert!(e.contains("larger than content.size"), "{e}");
    let e = with("{ name: a, sweep: { seeds: [3] } }");
    assert!(e.contains("a variant cannot hold a sweep"), "{e}");
    let e = with("{ name: a }\n    - { name: a, seed: 3 }");
    assert!(e.contains("sweep.variants[1].name: 'a' is used twice"), "{e}");
    let e = with("{ content.size: 3MB }");
    assert!(e.contains("missing field `name`"), "{e}");
}

/// A variant's overlay writes the whole scenario out and reads it back: every shipped
/// scenario must survive that unchanged (units print exactly; arrivals and `seed_for` read
/// back as written).
#[test]
fn every_shipped_scenario_survives_an_overlay_round_trip() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut seen = 0;
    for dir in [root.clone(), root.join("quick")] {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "yml") || path.ends_with("baselines.yml") {
                continue;
            }
            let s = Scenario::load(&path).unwrap();
            let mut same = serde_norway::Mapping::new();
            same.insert("seed".into(), s.seed.into());
            let back = Named { name: "same".into(), overrides: same }.apply_scenario(&s).unwrap();
            let mut plain = s.clone();
            plain.sweep = None;
            assert_eq!(back, plain, "{}", path.display());
            seen += 1;
        }
    }
    assert!(seen >= 10, "{seen}");
}

#[test]
fn a_scenario_written_out_reads_back_the_same() {
    for arrivals in ["all_at_once", "{ uniform: { window: 10s } }", "{ poisson: { rate: 2.5 } }"] {
        let text = format!(
            "{BASE}arrivals: {arrivals}\nseed_for: 30s\npolicy: {{ origin: frugal, copy_time: 1s }}\n"
        );
        let s = Scenario::from_yaml(&text, "x").unwrap();
        let written = serde_norway::to_string(&s).unwrap();
        assert_eq!(Scenario::from_yaml(&written, "written").unwrap(), s, "{written}");
    }
}
