//! Rendering a [`StatsSnapshot`] as an HTML page and as Prometheus text (format 0.0.4).

use std::fmt::Write as _;

use pdtp_core::bounds::BUFFER_MARGIN;

use super::snapshot::{FileStats, StatsSnapshot};

/// The policy as a two-column table of its config keys (escaped like everything else).
fn policy(o: &mut String, p: &super::snapshot::PolicyStats) {
    let _ = write!(
        o,
        "<h2>Scheduling policy</h2>\n<table><tr><th class=l>chunk_size</th><td class=l>{}</td></tr>",
        bytes(u64::from(p.chunk_size))
    );
    // Every key as the config writes it (serde_json orders them by name).
    if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(&p.settings) {
        for (k, v) in map {
            let shown = match v {
                serde_json::Value::String(s) => s,
                serde_json::Value::Null => "unset".to_owned(),
                other => other.to_string(),
            };
            let _ = write!(
                o,
                "<tr><th class=l>{}</th><td class=l>{}</td></tr>",
                html_escape(&k),
                html_escape(&shown)
            );
        }
    }
    o.push_str("</table>\n");
}

/// The human page: every string from the snapshot goes through [`html_escape`].
pub fn html(s: &StatsSnapshot) -> String {
    let mut o = String::with_capacity(4096 + 200 * (s.peers.len() + s.files.len() + s.transfers.len()));
    let title = format!("PDTP {} {}", html_escape(&s.role), html_escape(&s.node));
    // `write!` into a String cannot fail; the results are ignored throughout.
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"5\"><title>{title}</title>\
         <style>body{{font-family:sans-serif;margin:1.5em}}table{{border-collapse:collapse;margin-bottom:1.5em}}\
         td,th{{border:1px solid #ccc;padding:.2em .6em;text-align:right}}td.l,th.l{{text-align:left}}</style>\
         </head><body>\n<h1>{title}</h1>\n<p>version {} · up {} · refreshes every 5 s · \
         <a href=\"/stats.json\">JSON</a> · <a href=\"/metrics\">metrics</a></p>\n",
        html_escape(&s.version),
        duration(s.uptime_s),
    );

    let t = &s.totals;
    let _ = write!(
        o,
        "<h2>Traffic</h2>\n<table><tr><th class=l>from the origin</th><td>{}</td></tr>\
         <tr><th class=l>from peers</th><td>{} ({:.1} %)</td></tr>\
         <tr><th class=l>transfers verified / failed</th><td>{} / {}</td></tr>\
         <tr><th class=l>corrupt chunks</th><td>{}</td></tr>\
         <tr><th class=l>connections refused (cap)</th><td>{}</td></tr></table>\n",
        bytes(t.origin_bytes),
        bytes(t.peer_bytes),
        100.0 * s.peer_share(),
        t.transfers_completed,
        t.transfers_failed,
        t.chunks_corrupt,
        t.connections_refused,
    );

    let l = &s.limits;
    let r = &s.rates;
    let _ = write!(
        o,
        "<h2>Limits and rates</h2>\n<table><tr><th class=l></th><th>limit</th><th>now</th><th>peak</th></tr>\
         <tr><th class=l>upload</th><td>{}</td><td>{}</td><td>{}</td></tr>\
         <tr><th class=l>download</th><td>{}</td><td>{}</td><td>{}</td></tr></table>\n",
        l.max_upload_rate.map_or_else(|| "none".to_owned(), rate),
        rate(r.upload as u64),
        rate(r.peak_upload as u64),
        l.max_download_rate.map_or_else(|| "none".to_owned(), rate),
        rate(r.download as u64),
        rate(r.peak_download as u64),
    );
    if let Some(p) = &s.policy {
        policy(&mut o, p);
    }

    let _ = write!(
        o,
        "<h2>Files ({})</h2>\n<table><tr><th class=l>path</th><th>size</th><th>chunks</th><th>chunk size</th>\
         <th>kind</th><th>peers</th><th>progress</th><th>complete</th><th>origin</th><th>peers sent</th></tr>\n",
        s.files.len()
    );
    for f in &s.files {
        let _ = writeln!(
            o,
            "<tr><td class=l>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1} %</td>\
             <td>{}</td><td>{}</td><td>{}</td></tr>",
            html_escape(&f.path),
            bytes(f.size),
            f.chunks,
            bytes(u64::from(f.chunk_size)),
            if f.live { "live" } else { "on demand" },
            f.peers,
            100.0 * f.progress.clamp(0.0, 1.0),
            f.complete,
            bytes(f.origin_bytes),
            bytes(f.peer_bytes),
        );
    }
    o.push_str("</table>\n");
    for f in s.files.iter().filter(|f| !f.live) {
        let Some(left) = f.remaining_bytes else { continue };
        let mbit = |b: Option<f64>| b.map_or_else(|| "-".to_owned(), |v| format!("{:.2}", v / 1e6));
        let secs = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1} s"));
        let share = match (f.throughput_bps, f.capacity_bps) {
            (Some(t), Some(c)) if c > 0.0 => format!(" ({:.0} % of them)", 100.0 * t / c),
            _ => String::new(),
        };
        let _ = writeln!(
            o,
            "<p class=bound>{}: {} left to copy; at least {} at the measured uplinks ({} Mbit/s); \
             now {} Mbit/s{share}, done in about {}; the origin gave {} so far</p>",
            html_escape(&f.path),
            bytes(left),
            secs(f.bound_s),
            mbit(f.capacity_bps),
            mbit(f.throughput_bps),
            secs(f.eta_s),
            f.origin_share.map_or_else(|| "-".to_owned(), |v| format!("{:.1} %", 100.0 * v)),
        );
    }
    for f in s.files.iter().filter(|f| f.live) {
        if let (Some(r), Some(load), Some(floor)) = (f.r_max_bps, f.load_vs_r_max, f.lag_floor_s) {
            let _ = writeln!(
                o,
                "<p>{}: r_max {:.2} Mbit/s from measured uplinks, the stream at {load:.2} × r_max; \
                 lag floor {floor:.2} s (viewers' buffers should be at least {:.2} s)</p>",
                html_escape(&f.path),
                r / 1e6,
                BUFFER_MARGIN * floor
            );
        }
    }

    let _ = write!(
        o,
        "<h2>Peers ({})</h2>\n<table><tr><th>id</th><th class=l>address</th><th class=l>role</th><th>up</th>\
         <th>down</th><th>sent</th><th>received</th><th>measured up</th><th>slots</th><th>trust</th>\
         <th class=l>status</th></tr>\n",
        s.peers.len()
    );
    for p in &s.peers {
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td class=l>{}</td><td class=l>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{:.2}</td><td class=l>{}</td></tr>",
            p.id,
            html_escape(&p.addr),
            html_escape(&p.role),
            p.uploads,
            p.downloads,
            bytes(p.bytes_up),
            bytes(p.bytes_down),
            if p.up_rate_bps > 0.0 {
                pdtp_core::units::BitRate(p.up_rate_bps as u64).to_string()
            } else {
                "-".into()
            },
            if p.up_slots > 0 { p.up_slots.to_string() } else { "-".into() },
            p.trust,
            match (p.banned, p.reachable) {
                (true, _) => "banned",
                (false, Some(false)) => "ok, unreachable: dials out",
                (false, _) => "ok",
            },
        );
    }
    o.push_str("</table>\n");

    let _ = write!(
        o,
        "<h2>Transfers ({})</h2>\n<table><tr><th class=l>file</th><th>chunk</th><th>giver</th><th>taker</th>\
         <th>ordered</th></tr>\n",
        s.transfers.len()
    );
    for x in &s.transfers {
        let _ = writeln!(
            o,
            "<tr><td class=l>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} ago</td></tr>",
            html_escape(&x.file),
            x.chunk,
            x.giver,
            x.taker,
            duration(x.age_s),
        );
    }
    o.push_str("</table>\n</body></html>\n");
    o
}

/// Prometheus text exposition format 0.0.4.
pub fn prometheus(s: &StatsSnapshot) -> String {
    let mut m = Metrics(String::with_capacity(2048));
    m.family("pdtp_uptime_seconds", "gauge", "Seconds since the node started.");
    m.sample("pdtp_uptime_seconds", &[], s.uptime_s);

    m.family("pdtp_peers", "gauge", "Connected peers, by role.");
    for role in ["peer", "seed"] {
        let n = s.peers.iter().filter(|p| p.role == role).count();
        m.sample("pdtp_peers", &[("role", role)], n as f64);
    }
    m.family("pdtp_peers_banned", "gauge", "Peers the tracker no longer schedules.");
    m.sample("pdtp_peers_banned", &[], s.peers.iter().filter(|p| p.banned).count() as f64);

    let t = &s.totals;
    let counters = [
        ("pdtp_origin_bytes_total", "Payload bytes uploaded by seeds.", t.origin_bytes),
        ("pdtp_peer_bytes_total", "Payload bytes peers uploaded to each other.", t.peer_bytes),
        ("pdtp_transfers_completed_total", "Transfers verified.", t.transfers_completed),
        ("pdtp_transfers_failed_total", "Transfers failed (corrupt, stalled or closed).", t.transfers_failed),
        ("pdtp_chunks_corrupt_total", "Chunks that failed verification.", t.chunks_corrupt),
        (
            "pdtp_connections_refused_total",
            "Connections refused at the connection cap.",
            t.connections_refused,
        ),
    ];
    for (name, help, value) in counters {
        m.family(name, "counter", help);
        m.sample(name, &[], value as f64);
    }

    m.family("pdtp_transfers_active", "gauge", "Transfers ordered and not yet reported finished.");
    m.sample("pdtp_transfers_active", &[], s.transfers.len() as f64);

    m.family("pdtp_rate_bytes_per_second", "gauge", "Rate reached over the last window, by direction.");
    m.sample("pdtp_rate_bytes_per_second", &[("direction", "upload")], s.rates.upload);
    m.sample("pdtp_rate_bytes_per_second", &[("direction", "download")], s.rates.download);
    m.family("pdtp_rate_peak_bytes_per_second", "gauge", "Highest rate reached, by direction.");
    m.sample("pdtp_rate_peak_bytes_per_second", &[("direction", "upload")], s.rates.peak_upload);
    m.sample("pdtp_rate_peak_bytes_per_second", &[("direction", "download")], s.rates.peak_download);
    m.family(
        "pdtp_rate_limit_bytes_per_second",
        "gauge",
        "Configured rate cap, by direction (absent: none).",
    );
    for (dir, lim) in [("upload", s.limits.max_upload_rate), ("download", s.limits.max_download_rate)] {
        if let Some(v) = lim {
            m.sample("pdtp_rate_limit_bytes_per_second", &[("direction", dir)], v as f64);
        }
    }

    m.family("pdtp_file_size_bytes", "gauge", "Size of each published content.");
    for f in &s.files {
        m.sample("pdtp_file_size_bytes", &[("path", &f.path)], f.size as f64);
    }
    m.family("pdtp_file_progress_ratio", "gauge", "Chunks held by peers over chunks wanted, per content.");
    for f in &s.files {
        m.sample("pdtp_file_progress_ratio", &[("path", &f.path)], f.progress);
    }
    m.family("pdtp_file_peers", "gauge", "Peers wanting or holding each content.");
    for f in &s.files {
        m.sample("pdtp_file_peers", &[("path", &f.path)], f64::from(f.peers));
    }
    type Pick = fn(&FileStats) -> Option<f64>;
    let per_file: [(&str, &str, Pick); 4] = [
        (
            "pdtp_file_remaining_bytes",
            "On demand: chunk bytes still to copy to the nodes that want them.",
            |f| f.remaining_bytes.map(|b| b as f64),
        ),
        (
            "pdtp_file_bound_seconds",
            "On demand: the least time the rest can take at the measured uplinks.",
            |f| f.bound_s,
        ),
        (
            "pdtp_file_throughput_bits_per_second",
            "Bytes verified per second, in bits, since the last snapshot.",
            |f| f.throughput_bps,
        ),
        ("pdtp_file_origin_share_ratio", "The origin's share of the bytes verified so far.", |f| {
            f.origin_share
        }),
    ];
    for (name, help, pick) in per_file {
        m.family(name, "gauge", help);
        for f in &s.files {
            if let Some(v) = pick(f) {
                m.sample(name, &[("path", &f.path)], v);
            }
        }
    }
    m.family("pdtp_peer_trust", "gauge", "Trust of each peer, 0 to 1.");
    for p in &s.peers {
        m.sample("pdtp_peer_trust", &[("peer", &p.id.to_string()), ("role", &p.role)], p.trust);
    }
    m.family(
        "pdtp_peer_upload_rate_bits_per_second",
        "gauge",
        "Each peer's upload rate as measured from its verified copies (0 until measured).",
    );
    for p in &s.peers {
        let id = p.id.to_string();
        m.sample("pdtp_peer_upload_rate_bits_per_second", &[("peer", &id), ("role", &p.role)], p.up_rate_bps);
    }
    m.0
}

/// Escapes `& < > " '` for HTML text and attribute values.
pub fn html_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// Escapes a Prometheus label value: backslash, double quote and newline.
pub fn label_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '"' => o.push_str("\\\""),
            '\n' => o.push_str("\\n"),
            c => o.push(c),
        }
    }
    o
}

struct Metrics(String);

impl Metrics {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        // HELP text escapes backslash and newline; ours are constants without either.
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", label_escape(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {}", prom_value(value));
    }
}

/// A sample value as Prometheus spells it (`NaN`, `+Inf`, `-Inf`, else a Go-parsable float).
fn prom_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf".to_owned() } else { "-Inf".to_owned() }
    } else {
        format!("{v}")
    }
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[u]) }
}

fn rate(bps: u64) -> String {
    format!("{}/s", bytes(bps))
}

fn duration(secs: f64) -> String {
    let s = if secs.is_finite() && secs > 0.0 { secs } else { 0.0 };
    if s < 60.0 {
        format!("{s:.1} s")
    } else if s < 3600.0 {
        format!("{}m {:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!("{}h {:02}m", (s / 3600.0) as u64, ((s % 3600.0) / 60.0) as u64)
    }
}
