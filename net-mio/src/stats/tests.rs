use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread::JoinHandle;
use std::time::Duration;

use mio::{Events, Poll};

use super::*;

const BASE: Token = Token(100);

fn snapshot() -> StatsSnapshot {
    StatsSnapshot {
        node: "tracker.example".into(),
        role: "tracker".into(),
        version: "0.1.0".into(),
        uptime_s: 12.5,
        peers: vec![
            PeerStats {
                id: 1,
                addr: "127.0.0.1:8000".into(),
                role: "seed".into(),
                trust: 1.0,
                ..Default::default()
            },
            PeerStats {
                id: 2,
                addr: "127.0.0.1:8001".into(),
                role: "peer".into(),
                uploads: 2,
                downloads: 3,
                bytes_up: 10_000,
                bytes_down: 50_000,
                trust: 0.25,
                up_rate_bps: 2_000_000.0,
                up_slots: 3,
                banned: true,
                reachable: Some(false),
            },
        ],
        files: vec![
            FileStats {
                path: "<script>alert('x')</script>.mp4".into(),
                size: 12_345,
                chunk_size: 5_000,
                chunks: 3,
                peers: 2,
                progress: 0.5,
                origin_bytes: 15_000,
                peer_bytes: 10_000,
                remaining_bytes: Some(5_000_000),
                capacity_bps: Some(16e6),
                bound_s: Some(2.5),
                throughput_bps: Some(8e6),
                eta_s: Some(5.0),
                origin_share: Some(0.6),
                ..Default::default()
            },
            FileStats {
                path: "quote\"back\\slash\nnewline".into(),
                size: 1,
                chunk_size: 1,
                chunks: 1,
                ..Default::default()
            },
        ],
        transfers: vec![TransferStats { file: "<b>x</b>".into(), chunk: 2, giver: 1, taker: 2, age_s: 1.5 }],
        totals: Totals {
            origin_bytes: 15_000,
            peer_bytes: 10_000,
            transfers_completed: 5,
            ..Default::default()
        },
        limits: LimitStats { max_upload_rate: Some(2 << 20), max_download_rate: None },
        policy: Some(PolicyStats {
            chunk_size: 250_000,
            live_chunk_size: 125_000,
            settings: pdtp_core::policy::PolicySpec {
                copy_time: Some(pdtp_core::units::Duration(pdtp_core::Span::from_secs(1))),
                ..Default::default()
            },
        }),
        rates: RateStats { upload: 1_000.0, download: 2_000.0, peak_upload: 3_000.0, peak_download: 4_000.0 },
    }
}

struct Harness {
    poll: Poll,
    events: Events,
    server: StatsServer,
    now: Instant,
}

impl Harness {
    fn new(limits: StatsLimits) -> Self {
        let poll = Poll::new().unwrap();
        let mut server = StatsServer::bind("127.0.0.1:0".parse().unwrap(), limits).unwrap();
        server.register(poll.registry(), BASE).unwrap();
        Harness { poll, events: Events::with_capacity(64), server, now: Instant::now() }
    }

    fn addr(&self) -> SocketAddr {
        self.server.local_addr().unwrap()
    }

    /// Runs the loop on this thread until `done()` (bounded; timeouts are safety bounds only).
    fn run_until(&mut self, snap: &StatsSnapshot, mut done: impl FnMut(&StatsServer) -> bool) {
        for _ in 0..10_000 {
            if done(&self.server) {
                return;
            }
            self.poll.poll(&mut self.events, Some(Duration::from_millis(20))).unwrap();
            for ev in &self.events {
                assert!(self.server.owns(ev.token()));
                self.server.handle_event(self.poll.registry(), ev, self.now, snap);
            }
        }
        panic!("loop did not reach the expected state");
    }

    /// Sends `request` from a client thread and returns the whole response.
    fn exchange(&mut self, snap: &StatsSnapshot, request: impl AsRef<[u8]>) -> String {
        let addr = self.addr();
        let request = request.as_ref().to_vec();
        let client: JoinHandle<String> = std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            s.write_all(&request).unwrap();
            // The server may close with part of an oversized request unread, which resets the
            // connection after the response: keep what arrived before the reset.
            let mut out = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => out.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !out.is_empty() => break,
                    Err(e) => panic!("client read failed: {e}"),
                }
            }
            String::from_utf8(out).unwrap()
        });
        let mut handle = Some(client);
        self.run_until(snap, |_| handle.as_ref().is_some_and(JoinHandle::is_finished));
        handle.take().unwrap().join().unwrap()
    }
}

/// Splits a response into (status line, headers, body); checks Content-Length.
fn split(resp: &str) -> (&str, &str, &str) {
    let (head, body) = resp.split_once("\r\n\r\n").expect("a complete head");
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    let len: usize = headers
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .expect("Content-Length")
        .parse()
        .unwrap();
    assert_eq!(len, body.len(), "Content-Length matches the body");
    (status, headers, body)
}

#[test]
fn html_page_shows_the_snapshot_escaped() {
    let snap = snapshot();
    let mut h = Harness::new(StatsLimits::default());
    let resp = h.exchange(&snap, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let (status, headers, body) = split(&resp);
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(headers.contains("Content-Type: text/html"));
    assert!(body.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;.mp4"));
    assert!(
        !body.contains("<script>") && !body.contains("<b>x</b>"),
        "nothing from the snapshot is raw HTML"
    );
    assert!(body.contains("&lt;b&gt;x&lt;/b&gt;"));
    assert!(body.contains("127.0.0.1:8001") && body.contains("banned") && body.contains("0.25"));
    assert!(body.contains("40.0 %"), "peer share of traffic: 10000 / 25000");
    assert!(body.contains("<td>2Mbit/s</td><td>3</td>"), "the measured upload rate and slots are shown");
    assert!(body.contains("2.0 MiB/s"), "the upload cap is shown");
    assert!(body.contains("Scheduling policy"), "the tracker's policy is shown");
    assert!(
        body.contains(
            "at least 2.5 s at the measured uplinks (16.00 Mbit/s); now 8.00 Mbit/s (50 % of them), \
             done in about 5.0 s; the origin gave 60.0 % so far"
        ),
        "the distance to the bound is shown: {body}"
    );
    for row in
        ["<th class=l>giver</th><td class=l>fastest</td>", "<th class=l>copy_time</th><td class=l>1s</td>"]
    {
        assert!(body.contains(row), "policy row {row} in {body}");
    }
    assert_eq!(h.server.clients(), 0, "closed after the response");
    assert_eq!(h.server.served(), 1);
}

#[test]
fn json_round_trips() {
    let snap = snapshot();
    let mut h = Harness::new(StatsLimits::default());
    let resp = h.exchange(&snap, b"GET /stats.json?x=1 HTTP/1.0\r\n\r\n");
    let (status, headers, body) = split(&resp);
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(headers.contains("Content-Type: application/json"));
    let back: StatsSnapshot = serde_json::from_str(body).unwrap();
    assert_eq!(back, snap);
}

#[test]
fn metrics_follow_the_prometheus_text_grammar() {
    let snap = snapshot();
    let mut h = Harness::new(StatsLimits::default());
    let resp = h.exchange(&snap, b"GET /metrics HTTP/1.1\r\n\r\n");
    let (status, headers, body) = split(&resp);
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(headers.contains("Content-Type: text/plain; version=0.0.4"));
    let samples = check_exposition(body);
    assert!(samples.contains(&("pdtp_origin_bytes_total".into(), String::new(), 15_000.0)));
    assert!(samples.contains(&("pdtp_peers".into(), "role=\"peer\"".into(), 1.0)));
    assert!(samples.contains(&(
        "pdtp_rate_limit_bytes_per_second".into(),
        "direction=\"upload\"".into(),
        2097152.0
    )));
    assert!(
        samples
            .iter()
            .any(|(n, l, _)| n == "pdtp_file_size_bytes" && l == r#"path="quote\"back\\slash\nnewline""#),
        "label values escaped: {body}"
    );
    assert!(
        !samples.iter().any(|(n, l, _)| n == "pdtp_rate_limit_bytes_per_second" && l.contains("download"))
    );
    let of_first =
        |name: &str| samples.iter().find(|(n, l, _)| n == name && l.contains("alert")).map(|(_, _, v)| *v);
    assert_eq!(of_first("pdtp_file_bound_seconds"), Some(2.5));
    assert_eq!(of_first("pdtp_file_remaining_bytes"), Some(5e6));
    assert_eq!(of_first("pdtp_file_throughput_bits_per_second"), Some(8e6));
    assert_eq!(of_first("pdtp_file_origin_share_ratio"), Some(0.6));
    // A content without a bound has no sample.
    assert!(!samples.iter().any(|(n, l, _)| n == "pdtp_file_bound_seconds" && l.contains("quote")));
}

/// Validates exposition format 0.0.4 line by line; returns (name, labels, value) samples.
fn check_exposition(text: &str) -> Vec<(String, String, f64)> {
    fn is_name(s: &str) -> bool {
        let mut c = s.chars();
        c.next().is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
            && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == ':')
    }
    assert!(text.ends_with('\n'), "ends with a newline");
    let mut typed = BTreeSet::new();
    let mut helped = BTreeSet::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, _) = rest.split_once(' ').unwrap();
            assert!(is_name(name) && helped.insert(name.to_owned()), "HELP once per family: {line}");
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(is_name(name), "{line}");
            assert!(["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind), "{line}");
            assert!(typed.insert(name.to_owned()), "TYPE once per family: {line}");
            if kind == "counter" {
                assert!(name.ends_with("_total"), "counters end in _total: {line}");
            }
        } else {
            assert!(!line.starts_with('#') && !line.is_empty(), "unexpected line: {line:?}");
            let (name_labels, value) = line.rsplit_once(' ').unwrap();
            let (name, labels) = match name_labels.split_once('{') {
                Some((n, rest)) => (n, rest.strip_suffix('}').expect("labels close with }")),
                None => (name_labels, ""),
            };
            assert!(is_name(name), "{line}");
            assert!(typed.contains(name), "sample after its TYPE line: {line}");
            check_labels(labels, line);
            let v = match value {
                "NaN" => f64::NAN,
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
            };
            samples.push((name.to_owned(), labels.to_owned(), v));
        }
    }
    samples
}

/// `name="value"` pairs separated by commas; values use only \\, \" and \n escapes.
fn check_labels(labels: &str, line: &str) {
    let mut rest = labels;
    while !rest.is_empty() {
        let (name, after) = rest.split_once("=\"").unwrap_or_else(|| panic!("label without =\" in {line}"));
        assert!(!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "{line}");
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => {
                    let (_, e) = chars.next().unwrap();
                    assert!(matches!(e, '\\' | '"' | 'n'), "bad escape in {line}");
                }
                Some((i, '"')) => break i,
                Some((_, '\n')) => panic!("raw newline in {line}"),
                Some(_) => {}
                None => panic!("unterminated label value in {line}"),
            }
        };
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

#[test]
fn errors_have_the_right_status() {
    let snap = snapshot();
    let mut h = Harness::new(StatsLimits { max_request: 256, ..StatsLimits::default() });
    let status = |r: &str| r.lines().next().unwrap_or("").to_owned();
    let r = h.exchange(&snap, b"GET /nope HTTP/1.1\r\n\r\n");
    assert_eq!(status(&r), "HTTP/1.1 404 Not Found");
    let r = h.exchange(&snap, b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(status(&r), "HTTP/1.1 405 Method Not Allowed");
    assert!(r.contains("\r\nAllow: GET, HEAD\r\n"));
    split(&r);
    let r = h.exchange(&snap, b"\x01\x02garbage\r\n\r\n");
    assert_eq!(status(&r), "HTTP/1.1 400 Bad Request");
    let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(300));
    let r = h.exchange(&snap, long);
    assert_eq!(status(&r), "HTTP/1.1 431 Request Header Fields Too Large");
    let r = h.exchange(&snap, b"HEAD /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(status(&r), "HTTP/1.1 200 OK");
    assert!(r.ends_with("\r\n\r\n"), "HEAD has no body");
    assert_eq!(h.server.clients(), 0);
}

#[test]
fn idle_clients_are_closed_and_the_cap_refuses_more() {
    let snap = snapshot();
    let idle = Duration::from_secs(10);
    let mut h = Harness::new(StatsLimits { max_clients: 2, max_request: 1024, idle_timeout: idle });
    let addr = h.addr();
    let a = TcpStream::connect(addr).unwrap();
    let b = TcpStream::connect(addr).unwrap();
    h.run_until(&snap, |s| s.clients() == 2);
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    h.run_until(&snap, |s| s.refused() == 1);
    assert_eq!(h.server.clients(), 2);
    let mut refused = String::new();
    c.read_to_string(&mut refused).unwrap();
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");

    // Nothing closes before the idle deadline; everything silent at it does.
    let deadline = h.server.poll_timeout().unwrap();
    assert_eq!(deadline, h.now + idle);
    h.server.handle_timeout(h.poll.registry(), deadline - Duration::from_millis(1));
    assert_eq!(h.server.clients(), 2);
    h.server.handle_timeout(h.poll.registry(), deadline);
    assert_eq!(h.server.clients(), 0);
    assert_eq!(h.server.poll_timeout(), None);
    for mut s in [a, b] {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(s.read(&mut buf).unwrap(), 0, "the idle client sees the connection closed");
    }
}
