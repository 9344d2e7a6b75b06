use super::*;

fn conf_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../conf")
}

fn err(text: &str) -> String {
    Config::parse("conf/x.yml", text).unwrap_err().to_string()
}

#[test]
fn shipped_configs_load() {
    let example = Config::load(&conf_dir().join("example.yml")).unwrap();
    assert_eq!(example.port, 6086);
    assert_eq!(example.stats_port(), 6087);
    assert_eq!((example.chunk_size, example.live_chunk_size), (250_000, 125_000));
    assert_eq!(example.listen_port, 8000);
    assert_eq!(example.policy, PolicySpec::default());
    assert!(!example.debug);

    let debug = Config::load(&conf_dir().join("debug.yml")).unwrap();
    assert_eq!(debug.chunk_size, 5000);
    assert_eq!(debug.policy.max_transfers, 10);
    assert!(debug.debug);
    assert_eq!(debug.max_upload_rate, Some(Rate(1024 * 1024)));

    let big = Config::load(&conf_dir().join("bigchunk.yml")).unwrap();
    assert_eq!(big.chunk_size, 250_000);
    assert!(big.quiet);
    assert_eq!(big.policy.stall_timeout.0, pdtp_core::Span::from_secs(30));
}

/// Every shipped scenario's policy section, pasted into a node config as is, gives the node
/// the same policy the simulator ran, and its chunk size (with units) reads the same too.
#[test]
fn a_scenario_policy_section_is_a_config_policy_section() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut seen = 0;
    // The simulator's scenarios, the gate's, the families and the lab's (which the lab's
    // tracker runs the same way).
    let files = ["", "quick", "family", "lab"]
        .into_iter()
        .flat_map(|d| std::fs::read_dir(dir.join(d)).unwrap().map(|e| e.unwrap().path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yml"));
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let doc: serde_norway::Value = serde_norway::from_str(&text).unwrap();
        let Some(policy) = doc.get("policy") else { continue };
        let chunk = &doc["content"]["chunk_size"];
        let mut conf = serde_norway::Mapping::new();
        conf.insert("policy".into(), policy.clone());
        conf.insert("chunk_size".into(), chunk.clone());
        let c = Config::parse("pasted.yml", &serde_norway::to_string(&conf).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let want: PolicySpec = serde_norway::from_value(policy.clone()).unwrap();
        assert_eq!(c.policy, want, "{}", path.display());
        let want_chunk = pdtp_core::units::Bytes::parse(chunk.as_str().unwrap()).unwrap();
        assert_eq!(u64::from(c.chunk_size), want_chunk.0, "{}", path.display());
        seen += 1;
    }
    assert!(seen >= 4, "the shipped scenarios with a policy section: {seen}");
}

#[test]
fn empty_file_gives_defaults() {
    let c = Config::parse("e.yml", "# nothing\n").unwrap();
    assert_eq!(c, Config::default());
    assert_eq!((c.chunk_size, c.live_chunk_size), (DEFAULT_CHUNK_SIZE, DEFAULT_LIVE_CHUNK_SIZE));
    assert_eq!(c.port, 6086);
    assert_eq!(c.listen_port, 8000);
    assert_eq!(c.policy, PolicySpec::default());
    assert_eq!(c.hello_timeout, Duration::from_secs(10));
    assert_eq!(c.max_connections, 1024);
    assert_eq!(c.max_upload_rate, None);
    assert_eq!(c.public_name(), "127.0.0.1");
}

#[test]
fn unknown_key_is_named_with_a_hint() {
    assert_eq!(err("prot: 6086\n"), "conf/x.yml: unknown key 'prot' (did you mean 'port'?)");
    assert_eq!(err("colour: blue\n"), "conf/x.yml: unknown key 'colour'");
}

#[test]
fn bad_values_are_named() {
    assert_eq!(err("chunk_size: 0\n"), "conf/x.yml: chunk_size: must be > 0");
    assert!(err("chunk_size: 999999999\n").starts_with("conf/x.yml: chunk_size: must be at most"));
    assert_eq!(
        err("port: 70000\n"),
        "conf/x.yml: port: invalid value: integer `70000`, expected a port number (0 to 65535)"
    );
    assert!(err("port: 65535\n").starts_with("conf/x.yml: port: must be < 65535"));
    assert_eq!(
        err("port: abc\n"),
        "conf/x.yml: port: invalid type: string \"abc\", expected a port number (0 to 65535)"
    );
    assert!(
        err("chunk_size: 1.5\n").ends_with("not a whole number of bytes"),
        "{}",
        err("chunk_size: 1.5\n")
    );
    assert_eq!(Config::parse("c.yml", "chunk_size: 250kB\n").unwrap().chunk_size, 250_000);
    assert!(err("quiet: maybe\n").starts_with("conf/x.yml: quiet: "));
    assert_eq!(err("seed_key: short\n"), "conf/x.yml: seed_key: must be at least 16 characters");
    assert_eq!(
        err("policy:\n  max_uploads: 25\n"),
        "conf/x.yml: policy.max_uploads: must be ≤ max_transfers (24)"
    );
    assert_eq!(err("policy: { max_transfers: 0 }\n"), "conf/x.yml: policy.max_transfers: must be > 0");
    assert_eq!(err("policy: { stall_timeout: 0s }\n"), "conf/x.yml: policy.stall_timeout: must be > 0");
    let e = err("policy: { stall_timeout: 3 fortnights }\n");
    assert!(
        e.starts_with("conf/x.yml: policy.stall_timeout: ") && e.contains("unknown unit 'fortnights'"),
        "{e}"
    );
    let e = err("policy: { chnk: rarest_first }\n");
    assert!(e.starts_with("conf/x.yml: policy.chnk: unknown field `chnk`, expected one of `chunk`"), "{e}");
    let e = err("policy: { giver: quickest }\n");
    assert!(e.starts_with("conf/x.yml: policy.giver: unknown variant `quickest`"), "{e}");
    assert!(err("policy: { max_uploads: lots }\n").contains("expected a whole number"));
    assert_eq!(err("policy: 3\n").split(": ").nth(1), Some("policy"));
    // The old top-level keys say where they went.
    assert_eq!(
        err("max_transfers: 10\n"),
        "conf/x.yml: max_transfers: now a key of the policy section: write it as `policy: { max_transfers: … }`"
    );
    assert!(err("stall_timeout: 20s\n").starts_with("conf/x.yml: stall_timeout: now a key of the policy"));
    assert!(err("max_upload_rate: 2 parsecs\n").contains("max_upload_rate: '2 parsecs': unknown unit"));
    assert_eq!(
        err("max_upload_rate: 0\n"),
        "conf/x.yml: max_upload_rate: must be > 0 (leave it out for no limit)"
    );
    assert_eq!(err("uplink: 0\n"), "conf/x.yml: uplink: must be > 0 (leave it out if not known)");
    assert_eq!(err("trust_records: 0\n"), "conf/x.yml: trust_records: must be at least 1");
    assert_eq!(
        err("tracker_key: abc\n"),
        "conf/x.yml: tracker_key: a tracker key is 64 hex digits (as the tracker prints at start)"
    );
    assert_eq!(
        err("tracker_identity: ''\n"),
        "conf/x.yml: tracker_identity: must not be empty (leave it out for the default)"
    );
    assert!(err("- a\n- b\n").contains("expected a mapping"));
    assert!(err("port: [\n").starts_with("conf/x.yml: "));
}

#[test]
fn human_units() {
    let c = Config::parse("r.yml", "max_upload_rate: 2MiB/s\nmax_download_rate: 8Mbit/s\n").unwrap();
    assert_eq!(c.max_upload_rate, Some(Rate(2 * 1024 * 1024)));
    assert_eq!(c.max_download_rate, Some(Rate(1_000_000)));
    let c = Config::parse("r.yml", "uplink: 16Mbit/s\n").unwrap();
    assert_eq!(c.uplink, Some(Rate(2_000_000)));
    let c = Config::parse("r.yml", "max_upload_rate: 1500\nhello_timeout: 2.5\n").unwrap();
    assert_eq!(c.max_upload_rate, Some(Rate(1500)));
    assert_eq!(c.hello_timeout, Duration::from_millis(2500));
    assert_eq!(parse_rate("500 kB/s"), Ok(500_000));
    assert_eq!(parse_rate("1GiB"), Ok(1 << 30));
    assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
    assert!(parse_rate("fast").is_err());
    assert_eq!(Rate(2 * 1024 * 1024).to_string(), "2.00 MiB/s");
    assert_eq!(Rate(10).to_string(), "10 B/s");
}

#[test]
fn missing_file_is_named() {
    let e = Config::load(Path::new("/nonexistent/conf.yml")).unwrap_err().to_string();
    assert!(e.starts_with("/nonexistent/conf.yml: cannot read:"), "{e}");
}

#[test]
fn a_tracker_key_pins_the_trackers_link_key() {
    let hex = "ab".repeat(32);
    let c = Config::parse("k.yml", &format!("tracker_key: {hex}\ntracker_identity: /tmp/t-id\n")).unwrap();
    assert_eq!(c.tracker_key, Some(hex.parse().unwrap()));
    assert_eq!(c.tracker_identity.as_deref(), Some(std::path::Path::new("/tmp/t-id")));
}
