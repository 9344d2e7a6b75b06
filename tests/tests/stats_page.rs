//! The tracker's stats page on a real socket, served from the same loop as the swarm.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use pdtp_core::tracker::TrackerConfig;
use pdtp_net_mio::driver::{RateLimits, Status, Swarm};
use pdtp_tests::{KEY, run_polling, write_random_file};

const LIMIT: Duration = Duration::from_secs(30);

/// GETs `path` from the stats page while the loop keeps running; returns (status line, body).
fn get(swarm: &mut Swarm, path: &str) -> (String, String) {
    let addr = swarm.tracker().unwrap().stats_addr().unwrap();
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    s.set_nonblocking(true).unwrap();
    let mut resp = Vec::new();
    let done = run_polling(&mut swarm.rt, LIMIT, || {
        let mut buf = [0u8; 4096];
        match s.read(&mut buf) {
            Ok(0) => true,
            Ok(n) => {
                resp.extend_from_slice(&buf[..n]);
                false
            }
            Err(_) => false,
        }
    });
    assert!(done, "no complete response for {path}");
    let text = String::from_utf8(resp).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

/// Checks Prometheus text format 0.0.4: `# HELP`/`# TYPE` lines, then samples
/// `name{label="value",...} number` with a TYPE declared for each metric family first.
fn assert_prometheus(text: &str) {
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    let mut typed = std::collections::BTreeSet::new();
    let mut samples = 0;
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split(' ');
            let name = it.next().unwrap();
            assert!(name_ok(name), "bad name in {line}");
            let kind = it.next().unwrap();
            assert!(["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind), "{line}");
            typed.insert(name.to_owned());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            assert!(name_ok(rest.split(' ').next().unwrap()), "{line}");
            continue;
        }
        assert!(!line.starts_with('#'), "unknown comment form: {line}");
        let (series, value) = line.rsplit_once(' ').unwrap();
        assert!(value.parse::<f64>().is_ok() || ["+Inf", "-Inf", "NaN"].contains(&value), "{line}");
        let name = series.split('{').next().unwrap();
        assert!(name_ok(name), "{line}");
        assert!(typed.contains(name), "sample before its TYPE: {line}");
        if let Some(labels) = series.strip_prefix(name).filter(|l| !l.is_empty()) {
            assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
            for pair in labels[1..labels.len() - 1].split("\",").filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').unwrap();
                assert!(name_ok(k) && v.starts_with('"'), "{line}");
            }
        }
        samples += 1;
    }
    assert!(samples > 0, "no samples");
}

#[test]
fn stats_json_parses_metrics_are_prometheus_text_and_the_html_page_loads() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let source = write_random_file(&root, "<b>odd name</b>.bin", 200_000, 9);
    let mut swarm = Swarm::new(TrackerConfig::with_key(KEY), 16 * 1024).unwrap();
    swarm.add_seed(&root, KEY, RateLimits::default()).unwrap();
    let peers: Vec<_> = (0..3)
        .map(|i| swarm.add_peer("<b>odd name</b>.bin", &dir.path().join(format!("p{i}")), false).unwrap())
        .collect();
    assert!(swarm.run_until_finished(&peers, LIMIT).unwrap());
    assert!(peers.iter().all(|p| swarm.rt.status(*p) == Some(Status::Done)));
    // The snapshot is rebuilt at most once a second: wait for one taken after the downloads.
    swarm.rt.run_until(Duration::from_millis(1100), |_| false).unwrap();

    let (status, body) = get(&mut swarm, "/stats.json");
    assert_eq!(status, "HTTP/1.1 200 OK");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["role"], "tracker");
    assert_eq!(v["files"][0]["path"], "<b>odd name</b>.bin");
    assert_eq!(v["files"][0]["size"], source.len() as u64);
    assert_eq!(v["peers"].as_array().unwrap().len(), 4, "a seed and three peers");
    let moved = v["totals"]["origin_bytes"].as_u64().unwrap() + v["totals"]["peer_bytes"].as_u64().unwrap();
    assert!(moved > 0 && moved <= 3 * source.len() as u64);

    let (status, body) = get(&mut swarm, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_prometheus(&body);
    assert!(body.contains("pdtp_origin_bytes_total"));

    let (status, body) = get(&mut swarm, "/");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(body.starts_with("<!DOCTYPE html>") && body.trim_end().ends_with("</html>"));
    assert!(body.contains("&lt;b&gt;odd name&lt;/b&gt;.bin") && !body.contains("<b>odd name"), "escaped");

    let (status, _) = get(&mut swarm, "/nope");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
}

#[test]
fn the_transfer_table_lists_active_transfers_with_both_ends_and_the_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    write_random_file(&root, "slow & steady.bin", 400_000, 4);
    let mut swarm = Swarm::new(TrackerConfig::with_key(KEY), 16 * 1024).unwrap();
    // A slow origin keeps transfers in flight while the page is read.
    swarm.add_seed(&root, KEY, RateLimits { upload: Some(64 * 1024), download: None }).unwrap();
    let peer = swarm.add_peer("slow & steady.bin", &dir.path().join("p"), false).unwrap();
    let mut seen = None;
    for _ in 0..60 {
        let (status, body) = get(&mut swarm, "/stats.json");
        assert_eq!(status, "HTTP/1.1 200 OK");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        if !v["transfers"].as_array().unwrap().is_empty() {
            seen = Some(v);
            break;
        }
        // The snapshot is rebuilt at most once a second.
        swarm.rt.run_until(Duration::from_millis(250), |_| false).unwrap();
    }
    let v = seen.expect("no transfer listed while the download ran");
    let peers = v["peers"].as_array().unwrap();
    let id_of = |role: &str| peers.iter().find(|p| p["role"] == role).unwrap()["id"].as_u64().unwrap();
    let (seed_id, peer_id) = (id_of("seed"), id_of("peer"));
    let transfers = v["transfers"].as_array().unwrap();
    assert!(transfers.len() <= 5, "at most max_downloads at once: {transfers:?}");
    for t in transfers {
        assert_eq!(t["file"], "slow & steady.bin");
        assert_eq!(t["giver"].as_u64(), Some(seed_id));
        assert_eq!(t["taker"].as_u64(), Some(peer_id));
        assert!(t["chunk"].as_u64().unwrap() < 25, "400 000 bytes in 16 KiB chunks: {t}");
        assert!(t["age_s"].as_f64().unwrap() >= 0.0);
    }
    let (_, html) = get(&mut swarm, "/");
    assert!(html.contains("slow &amp; steady.bin</td>"), "the table row, escaped");
    assert!(swarm.run_until_finished(&[peer], LIMIT).unwrap());
}
