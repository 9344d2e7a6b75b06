//! `pdtp-node demo`: a tracker, a seed and N peers on loopback in one loop, a generated file,
//! every copy compared with the source.

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use pdtp_core::policy::PolicySpec;
use pdtp_core::tracker::TrackerConfig;
use pdtp_net_mio::config::parse_rate;
use pdtp_net_mio::driver::{Node, RateLimits, Runtime, Status, Swarm, random_seed};

/// How long the demo may take before it gives up.
const LIMIT: Duration = Duration::from_secs(300);

/// Optional rate caps for the demo, as given on the command line.
pub struct Caps {
    /// The seed's upload cap.
    pub origin: Option<String>,
    /// Each peer's upload cap.
    pub peer_upload: Option<String>,
}

/// Runs the demo and prints its outcome; an error if a copy is missing or differs.
pub fn run(peers: usize, size: u64, chunk_size: u32, caps: &Caps, json: bool) -> Result<(), String> {
    let rate = |flag: &str, r: &Option<String>| match r {
        Some(r) => parse_rate(r).map(Some).map_err(|e| format!("{flag} {r}: {e}")),
        None => Ok(None),
    };
    let origin_rate = rate("--origin-rate", &caps.origin)?;
    let peer_rate = rate("--peer-upload-rate", &caps.peer_upload)?;
    if peers == 0 {
        return Err("--peers: must be at least 1".into());
    }
    if chunk_size == 0 || chunk_size > pdtp_net_mio::config::MAX_CHUNK_SIZE {
        return Err(format!("--chunk-size: must be 1..={}", pdtp_net_mio::config::MAX_CHUNK_SIZE));
    }
    let len = usize::try_from(size).map_err(|_| "--size: too large for this machine".to_owned())?;
    let dir = tempfile::tempdir().map_err(|e| format!("creating a temporary directory: {e}"))?;
    let root = dir.path().join("files");
    std::fs::create_dir(&root).map_err(|e| format!("{}: {e}", root.display()))?;
    let source_path = root.join("demo.bin");
    write_random_file(&source_path, len, random_seed()).map_err(|e| format!("writing the demo file: {e}"))?;

    let key = format!("demo-key-{:016x}", random_seed());
    // The tracker runs the built-in policy, as `pdtp-node tracker` does without a policy section.
    let mut config = TrackerConfig::with_key(key.clone());
    PolicySpec::default().apply(&mut config);
    let mut swarm = Swarm::new(config, chunk_size)?;
    let started = Instant::now();
    swarm.add_seed(&root, &key, RateLimits { upload: origin_rate, download: None })?;
    let outs: Vec<_> = (0..peers).map(|i| dir.path().join(format!("peer-{i}.bin"))).collect();
    let limits = RateLimits { upload: peer_rate, download: None };
    let ids = outs
        .iter()
        .map(|o| swarm.add_peer_limited("demo.bin", o, false, limits))
        .collect::<Result<Vec<_>, _>>()?;
    let finished = swarm.run_until_finished(&ids, LIMIT)?;
    let wall = started.elapsed();

    // The last `Completed` messages may still be in flight to the tracker: wait (briefly)
    // until every delivered byte is accounted for.
    let want = size * peers as u64;
    let tracker = swarm.tracker;
    let accounted = |rt: &Runtime| match rt.node(tracker) {
        Some(Node::Tracker(t)) => t.totals().origin_bytes + t.totals().peer_bytes >= want,
        _ => true,
    };
    let _ = swarm.rt.run_until(Duration::from_secs(2), accounted);
    let totals = swarm.tracker().map(|t| t.totals().clone()).unwrap_or_default();

    let mut verified = 0;
    let mut failures = Vec::new();
    for (i, (id, out)) in ids.iter().zip(&outs).enumerate() {
        match swarm.rt.status(*id) {
            Some(Status::Done) => match same_bytes(&source_path, out) {
                Ok(true) => verified += 1,
                Ok(false) => failures.push(format!("peer {i}: its copy differs from the source")),
                Err(e) => failures.push(format!("peer {i}: {e}")),
            },
            Some(Status::Failed(e)) => failures.push(format!("peer {i}: {e}")),
            _ => failures.push(format!("peer {i}: not finished after {LIMIT:?}")),
        }
    }
    let all_verified = finished && verified == peers;
    let wall_s = wall.as_secs_f64();
    if json {
        let v = serde_json::json!({
            "all_verified": all_verified,
            "peers": peers,
            "verified": verified,
            "file_bytes": size,
            "chunk_size": chunk_size,
            "origin_rate": origin_rate,
            "peer_upload_rate": peer_rate,
            "wall_s": wall_s,
            "origin_bytes": totals.origin_bytes,
            "peer_bytes": totals.peer_bytes,
            "origin_copies": if size == 0 { 0.0 } else { totals.origin_bytes as f64 / size as f64 },
            "failures": failures,
        });
        println!("{v}");
    } else {
        let total = (totals.origin_bytes + totals.peer_bytes).max(1) as f64;
        println!("pdtp demo: 1 tracker, 1 seed, {peers} peers on 127.0.0.1, one {size}-byte file");
        println!("  wall time       {wall_s:.3} s");
        println!("  copies verified {verified}/{peers} (byte-for-byte against the source)");
        println!(
            "  from the origin {} bytes ({:.1} %, {:.2} copies of the file)",
            totals.origin_bytes,
            100.0 * totals.origin_bytes as f64 / total,
            totals.origin_bytes as f64 / size.max(1) as f64
        );
        println!(
            "  from peers      {} bytes ({:.1} %)",
            totals.peer_bytes,
            100.0 * totals.peer_bytes as f64 / total
        );
        for f in &failures {
            println!("  FAILED: {f}");
        }
    }
    if all_verified { Ok(()) } else { Err(format!("{} of {peers} copies not verified", peers - verified)) }
}

/// Writes `len` pseudo-random bytes (xorshift64*, not compressible) to `path`, 1 MiB at a time.
pub(crate) fn write_random_file(path: &Path, len: usize, seed: u64) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut x = seed | 1;
    let mut left = len;
    let mut buf = Vec::with_capacity(1 << 20);
    while left > 0 {
        buf.clear();
        while buf.len() < (1 << 20).min(left) {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            buf.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
        }
        buf.truncate((1 << 20).min(left));
        f.write_all(&buf)?;
        left -= buf.len();
    }
    f.flush()
}

/// Whether two files hold the same bytes, compared 1 MiB at a time.
pub(crate) fn same_bytes(a: &Path, b: &Path) -> std::io::Result<bool> {
    let (mut fa, mut fb) = (std::fs::File::open(a)?, std::fs::File::open(b)?);
    if fa.metadata()?.len() != fb.metadata()?.len() {
        return Ok(false);
    }
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = fa.read(&mut ba)?;
        if n == 0 {
            return Ok(true);
        }
        fb.read_exact(&mut bb[..n])?;
        if ba[..n] != bb[..n] {
            return Ok(false);
        }
    }
}
