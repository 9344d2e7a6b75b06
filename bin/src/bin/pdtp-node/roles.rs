//! The long-running roles: `tracker`, `seed` and `get`.

use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use pdtp_core::units::Bytes;
use pdtp_core::{Endpoint, PeerId};
use pdtp_net_mio::config::{Config, MAX_CHUNK_SIZE, parse_duration, parse_rate};
use pdtp_net_mio::driver::{
    Node, PeerNode, PeerOptions, RateLimits, Runtime, SeedNode, SeedOptions, Status, TrackerNode,
    TrackerOptions, load_bans, random_seed, tracker_config,
};
use pdtp_net_mio::listen::{bind_any, bind_exact};
use pdtp_net_mio::paths::PdtpUrl;
use pdtp_net_mio::sink::OutputKind;
use pdtp_sim::scenario::Scenario;

use crate::get_report::{GetReport, unix_now};
use crate::tracker_trust::TrackerPin;

/// A line on stderr that cannot kill a long-running node: `eprintln!` panics when stderr is
/// gone (a closed terminal, a reader that went away), and a tracker or seed must outlive that.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}
pub(crate) use say;

/// Loads a config, with `--policy-from`'s scenario (if given) replacing its policy and chunk
/// size: the same parser and validation the simulator used on that file.
fn load_config(conf: &Path, policy_from: Option<&Path>) -> Result<Config, String> {
    let mut c = Config::load(conf).map_err(|e| e.to_string())?;
    if let Some(path) = policy_from {
        let s = Scenario::load(path).map_err(|e| format!("--policy-from {e}"))?;
        let chunk = s.content.chunk_size.0;
        if chunk > u64::from(MAX_CHUNK_SIZE) {
            return Err(format!(
                "--policy-from {}: content.chunk_size: {} is over the node's limit of {MAX_CHUNK_SIZE} bytes",
                path.display(),
                s.content.chunk_size
            ));
        }
        c.policy = s.policy;
        // Checked just above to fit; the scenario's one content sets both kinds.
        c.chunk_size = chunk as u32;
        c.live_chunk_size = chunk as u32;
    }
    Ok(c)
}

/// `pdtp-node tracker --conf FILE [--policy-from SCENARIO]`: runs until killed.
pub fn tracker(conf: &Path, policy_from: Option<&Path>, verbose: u8) -> Result<(), String> {
    let c = load_config(conf, policy_from)?;
    crate::init_logs(verbose, c.quiet, c.debug);
    if c.seed_key.is_none() {
        tracing::warn!("{}: no seed_key, so every seed will be refused", conf.display());
    }
    let ip: IpAddr =
        c.host.parse().map_err(|_| format!("{}: host: '{}' is not an IP address", conf.display(), c.host))?;
    let addr = SocketAddr::new(ip, c.port);
    // The state file is read before anything binds: a bad one is named as such, whatever
    // the ports.
    let bans =
        c.state_file.as_deref().map(load_bans).transpose().map_err(|e| e.to_string())?.unwrap_or_default();
    let listener = bind_exact(addr).map_err(|e| format!("{e} (the tracker's port: change port)"))?;
    let stats = SocketAddr::new(ip, c.stats_port());
    let identity =
        c.tracker_identity.clone().or_else(pdtp_net_mio::identity::tracker_identity_path).ok_or_else(|| {
            format!(
                "{}: tracker_identity: required when neither HOME nor XDG_CONFIG_HOME is set (the tracker's key file)",
                conf.display()
            )
        })?;
    let link_key = pdtp_net_mio::identity::load_or_create_tracker_key(&identity)?;
    let public = link_key.public();
    let node = TrackerNode::new(TrackerOptions {
        config: tracker_config(&c),
        stats: Some(stats),
        name: c.public_name().to_owned(),
        shown_limits: (c.max_upload_rate.map(|r| r.0), c.max_download_rate.map(|r| r.0)),
        rng_seed: random_seed(),
        chunk_size: c.chunk_size,
        live_chunk_size: c.live_chunk_size,
        bans,
        state_file: c.state_file.clone(),
        link_key,
    })
    .map_err(|e| format!("{e} (the stats page uses port + 1: change port)"))?;
    let mut rt = Runtime::new(c.max_connections, c.hello_timeout).map_err(|e| e.to_string())?;
    rt.add(Node::Tracker(node), Some(listener), RateLimits::default(), 1).map_err(|e| e.to_string())?;
    if !c.quiet {
        say!("pdtp-node: tracker on {addr}; stats on http://{stats}/");
        let from = policy_from.map_or_else(|| conf.display().to_string(), |p| p.display().to_string());
        say!(
            "pdtp-node: policy ({from}): chunk_size: {}, live_chunk_size: {}, {}",
            Bytes(u64::from(c.chunk_size)),
            Bytes(u64::from(c.live_chunk_size)),
            c.policy
        );
        // What a viewer appends to a URL (and a seed's config names) so that only this
        // tracker is believed, whatever the path between them.
        say!(
            "pdtp-node: tracker link key {public} (from {}); pin it with pdtp://{}:{}/PATH#key={public} or tracker_key: {public}",
            identity.display(),
            c.vhost.as_deref().unwrap_or(&c.host),
            c.port
        );
    }
    loop {
        rt.turn(None).map_err(|e| format!("event loop: {e}"))?;
    }
}

/// `seed`'s flags, as typed.
pub struct SeedFlags<'a> {
    /// `--live NAME`: publish a stream read from stdin under this path.
    pub live: Option<String>,
    /// `--bitrate`: the live stream's nominal bitrate.
    pub bitrate: Option<&'a str>,
    /// `--max-upload-rate`.
    pub upload: Option<&'a str>,
    /// `--uplink`: the uplink stated to the tracker.
    pub uplink: Option<&'a str>,
    /// `--policy-from`: a scenario whose chunk size to use.
    pub policy_from: Option<&'a Path>,
}

/// `pdtp-node seed --conf FILE [--live NAME]`: runs until killed or refused.
pub fn seed(conf: &Path, flags: &SeedFlags<'_>, verbose: u8) -> Result<(), String> {
    let SeedFlags { ref live, bitrate, upload, uplink, policy_from } = *flags;
    // A stream's bitrate in the simulator's words (`1.2Mbit/s`; a unit is required), in bits.
    let live_bitrate_bps = match bitrate {
        Some(r) => pdtp_core::units::BitRate::parse(r).map_err(|e| format!("--bitrate {r}: {e}"))?.0,
        None => 0,
    };
    let live = live.clone();
    let c = load_config(conf, policy_from)?;
    crate::init_logs(verbose, c.quiet, c.debug);
    let file = conf.display();
    let root = c.file_root.clone().ok_or_else(|| format!("{file}: file_root: required to run a seed"))?;
    let key = c
        .seed_key
        .clone()
        .ok_or_else(|| format!("{file}: seed_key: required to run a seed (the tracker's key)"))?;
    let upload = match upload {
        Some(r) => Some(parse_rate(r).map_err(|e| format!("--max-upload-rate {r}: {e}"))?),
        None => c.max_upload_rate.map(|r| r.0),
    };
    let uplink_bps = match uplink {
        Some(r) => match parse_rate(r).map_err(|e| format!("--uplink {r}: {e}"))? {
            0 => return Err(format!("--uplink {r}: must be > 0 (leave it out if not known)")),
            bytes_per_s => Some(bytes_per_s),
        },
        None => c.uplink.map(|r| r.0),
    }
    .map(|bytes_per_s| bytes_per_s.saturating_mul(8));
    let identity = c.seed_identity.clone().or_else(pdtp_net_mio::identity::default_path).ok_or_else(|| {
        format!("{file}: seed_identity: required when neither HOME nor XDG_CONFIG_HOME is set (the seed's key file)")
    })?;
    let signing_key = pdtp_net_mio::identity::load_or_create(&identity)?;
    if !c.quiet {
        // What a viewer appends to a URL so that only this seed's content is accepted.
        say!(
            "pdtp-node seed: seed key {} (from {}); viewers pin it with pdtp://{}:{}/PATH#seed={}",
            signing_key.public(),
            identity.display(),
            c.vhost.as_deref().unwrap_or(&c.host),
            c.port,
            signing_key.public()
        );
    }
    let tracker = tracker_endpoint(&c);
    let mut pin = TrackerPin::new(&tracker, c.tracker_key, pdtp_net_mio::identity::known_trackers_path())?;
    let (listener, port) = bind_any(c.listen_port).map_err(|e| e.to_string())?;
    let now = Instant::now();
    let mut rt = Runtime::new(c.max_connections, c.hello_timeout).map_err(|e| e.to_string())?;
    let seed = SeedNode::new(
        rt.now(),
        SeedOptions {
            peer_id: PeerId(random_id()),
            tracker,
            key,
            file_root: root,
            chunk_size: c.chunk_size,
            live_chunk_size: c.live_chunk_size,
            listen_port: Some(port),
            live,
            live_bitrate_bps,
            sendfile: c.sendfile,
            signing_key: Some(signing_key),
            uplink_bps,
            tracker_key: pin.key,
            rng_seed: random_seed(),
        },
    )?;
    tracing::info!(elapsed = ?now.elapsed(), "hashed the files to publish");
    let limits = RateLimits { upload, download: c.max_download_rate.map(|r| r.0) };
    let id = rt
        .add(Node::Seed(seed), Some(listener), limits, u64::from(c.chunk_size.max(c.live_chunk_size)))
        .map_err(|e| e.to_string())?;
    loop {
        rt.turn(None).map_err(|e| format!("event loop: {e}"))?;
        pin.remember_learned(&rt, id)?;
        pin.tell();
        if let Some(Status::Failed(e)) = rt.status(id) {
            return Err(pin.explain(&rt, id, e));
        }
    }
}

/// `get`'s flags, as typed (parsed and checked by [`get`]); the help text is clap's.
#[derive(clap::Args, Debug)]
pub struct GetFlags {
    /// Port to accept other peers on (the next free one if taken).
    #[arg(long, default_value_t = 8000)]
    pub listen: u16,
    /// Cap on what we share with other peers (e.g. 1MiB/s).
    #[arg(long, value_name = "RATE")]
    pub max_upload_rate: Option<String>,
    /// Cap on what we download (e.g. 10MiB/s).
    #[arg(long, value_name = "RATE")]
    pub max_download_rate: Option<String>,
    /// Give up on a giver that has not delivered its chunk within this time (the tracker
    /// then schedules the chunk from someone else), e.g. 20s or 500ms.
    #[arg(long, value_name = "TIME", default_value = "20s")]
    pub stall_timeout: String,
    /// Keep serving other peers this long after the download is complete (e.g. 10m, 1h,
    /// 0s to leave at once); Ctrl-C stops it sooner. Default: 10m for a file, 10s after a
    /// live stream's end (for viewers a little behind).
    #[arg(long, value_name = "TIME")]
    pub seed_for: Option<String>,
    /// Live: play with this much buffer (e.g. 4s): a chunk still missing this long after
    /// the seed published it here is skipped, as a player would, and the download fetches
    /// what can still be played. Default: wait for every chunk.
    #[arg(long, value_name = "TIME")]
    pub buffer: Option<String>,
    /// Replace the output file if it exists (only once the new copy is complete and
    /// verified; until then it is written beside it as FILE.part). Resuming from an
    /// existing FILE.part does not need it.
    #[arg(long)]
    pub force: bool,
    /// If the tracker has no such content yet (a live stream that has not started), ask
    /// again every second for this long before giving up; 0s gives up at once.
    #[arg(long, value_name = "TIME", default_value = "60s")]
    pub wait: String,
    /// If the tracker goes away mid-download, carry on with the peers and reconnect for
    /// this long before giving up (a restarted tracker is rejoined at once).
    #[arg(long, value_name = "TIME", default_value = "10m")]
    pub tracker_wait: String,
    /// Once the download is complete, write its timing here as JSON (start and done
    /// times in unix seconds, bytes fetched and verified, bytes kept from FILE.part);
    /// `pdtp-node lab` reads it.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Also serve the file over HTTP on this address while it downloads (e.g.
    /// 127.0.0.1:8080; port 0 picks one, printed on stderr): a player can play and seek
    /// at http://ADDR/ (Range requests; only verified bytes, a read ahead of the download
    /// waits and is fetched first). Keeps serving after the download until Ctrl-C, or
    /// for --seed-for if given. Files only, not live streams.
    #[arg(long, value_name = "ADDR")]
    pub serve: Option<String>,
    /// Where to remember the seed key of each URL fetched without `#seed=KEY`, and pin it
    /// on later fetches of that URL (trust on first use); `none` neither remembers nor
    /// pins. Default: known_seeds beside the seed identity ($XDG_CONFIG_HOME/pdtp/ or
    /// ~/.config/pdtp/).
    #[arg(long, value_name = "FILE")]
    pub known_seeds: Option<PathBuf>,
    /// Where to remember the link key of each tracker reached without `#key=KEY` (by
    /// HOST:PORT), and require it on later runs (trust on first use); `none` neither
    /// remembers nor requires. Default: known_trackers beside known_seeds.
    #[arg(long, value_name = "FILE")]
    pub known_trackers: Option<PathBuf>,
}

/// How long a `get` of a file keeps serving after it is complete, unless told otherwise:
/// long enough for a flash crowd's latecomers (the simulator's steady state with seeds that
/// stay is cheaper for the origin), short enough not to surprise a user.
const SEED_FOR_FILES: Duration = Duration::from_secs(600);

/// The same after a live stream's end: viewers a little behind still need the last chunks,
/// and a viewer that left at once took the only copy with it (under a frugal origin the last
/// chunk then crept through ten viewers one sweep interval at a time: 16 s instead of none).
const SEED_FOR_LIVE: Duration = Duration::from_secs(10);

/// A `get` leaves a giver whose link has brought nothing for this long while a chunk is
/// under way (a mute or frozen giver; issue 17's probe: five identities that claimed every
/// chunk and sent nothing kept an honest 5 MB `get` from finishing in two minutes); the
/// whole chunk still has `--stall-timeout`. Not shorter: a chunk's first byte can wait
/// behind full queues at three links (the taker's `Get` up its uplink, the data up the
/// giver's and down the taker's); in the lab, whose shapers hold 2 s each, 3 s abandoned
/// live copies (wire bytes 1.079 × the payload against 1.073, completion p50 1.08 × the
/// model's against 1.03 at 10 s; one flash-crowd run each, 2026-12-07; at 10 s the held-out
/// lab swarms matched the model too, docs/lab.md).
const PROGRESS_TIMEOUT: Duration = Duration::from_secs(10);

/// "Until Ctrl-C" for a `get --serve` given no `--seed-for` (a century; `Instant` + it
/// must not overflow).
const SERVE_FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `--serve ADDR`: an `IP:PORT` (IPv6 in brackets) or a `HOST:PORT` that resolves here.
fn parse_serve_addr(s: &str) -> Result<std::net::SocketAddr, String> {
    use std::net::ToSocketAddrs as _;
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    let bad = || format!("--serve {s}: not an address to listen on (write IP:PORT, e.g. 127.0.0.1:8080)");
    s.to_socket_addrs().map_err(|_| bad())?.next().ok_or_else(bad)
}

/// How long a departing `get` waits for the tracker to acknowledge its last reports.
const DEPART_LIMIT: Duration = Duration::from_secs(2);

/// `pdtp-node get URL [-o FILE|-]`: downloads, then exits.
pub fn get(url: &str, output: Option<PathBuf>, flags: &GetFlags) -> Result<(), String> {
    let GetFlags {
        listen,
        ref max_upload_rate,
        ref max_download_rate,
        ref stall_timeout,
        ref seed_for,
        ref buffer,
        force,
        ref wait,
        ref tracker_wait,
        ref report,
        ref serve,
        ref known_seeds,
        ref known_trackers,
    } = *flags;
    let (upload, download) = (max_upload_rate.as_deref(), max_download_rate.as_deref());
    let (seed_for, buffer, report) = (seed_for.as_deref(), buffer.as_deref(), report.as_deref());
    let serve = serve.as_deref().map(parse_serve_addr).transpose()?;
    let wait = parse_duration(wait).map_err(|e| format!("--wait {wait}: {e}"))?;
    let tracker_wait =
        parse_duration(tracker_wait).map_err(|e| format!("--tracker-wait {tracker_wait}: {e}"))?;
    let started = unix_now();
    let url = PdtpUrl::parse(url).map_err(|e| e.to_string())?;
    let stall_timeout = parse_duration(stall_timeout)
        .and_then(|d| if d.is_zero() { Err("must be more than zero".into()) } else { Ok(d) })
        .map_err(|e| format!("--stall-timeout {stall_timeout}: {e}"))?;
    let seed_for =
        seed_for.map(|s| parse_duration(s).map_err(|e| format!("--seed-for {s}: {e}"))).transpose()?;
    let buffer = buffer
        .map(|s| {
            parse_duration(s)
                .and_then(|d| if d.is_zero() { Err("must be more than zero".into()) } else { Ok(d) })
                .map_err(|e| format!("--buffer {s}: {e}"))
        })
        .transpose()?;
    let rate = |flag: &str, r: Option<&str>| match r {
        Some(r) => parse_rate(r).map(Some).map_err(|e| format!("{flag} {r}: {e}")),
        None => Ok(None),
    };
    let limits = RateLimits {
        upload: rate("--max-upload-rate", upload)?,
        download: rate("--max-download-rate", download)?,
    };
    let output = output.unwrap_or_else(|| {
        PathBuf::from(url.path.rsplit('/').next().filter(|s| !s.is_empty()).unwrap_or("download"))
    });
    // A file already there may be somebody's only copy (or the very file a seed here
    // serves): it is replaced only when asked, and even then only by a complete copy.
    if !force && matches!(OutputKind::of(&output), OutputKind::File(_)) && output.is_file() {
        return Err(format!(
            "{}: exists; pass --force to replace it once the download is complete",
            output.display()
        ));
    }
    // Trust on first use: a URL without `#seed=` pins the key remembered for it, if any.
    // The URL as `PdtpUrl` prints it without its fragment: IPv6 in brackets, and a path
    // percent-escaped, so no space splits a `URL KEY` line.
    let url_key = PdtpUrl { seed_key: None, tracker_key: None, ..url.clone() }.to_string();
    let known_file = match known_seeds {
        Some(f) if f.as_os_str() == "none" => None,
        Some(f) => Some(f.clone()),
        None => pdtp_net_mio::identity::known_seeds_path(),
    };
    let remembered = match &known_file {
        Some(f) if url.seed_key.is_none() => pdtp_net_mio::identity::KnownSeeds::load(f)?.get(&url_key),
        _ => None,
    };
    let tracker = Endpoint { host: url.host.clone(), port: url.port };
    let trackers_file = match known_trackers {
        Some(f) if f.as_os_str() == "none" => None,
        Some(f) => Some(f.clone()),
        None => pdtp_net_mio::identity::known_trackers_path(),
    };
    let mut pin = TrackerPin::new(&tracker, url.tracker_key, trackers_file)?;
    let (listener, port) = bind_any(listen).map_err(|e| format!("--listen: {e}"))?;
    let mut rt = Runtime::new(1024, Duration::from_secs(10)).map_err(|e| e.to_string())?;
    let peer = PeerNode::new(
        rt.now(),
        PeerOptions {
            peer_id: PeerId(random_id()),
            tracker,
            path: url.path.clone(),
            output: OutputKind::of(&output),
            listen_port: Some(port),
            cache_dir: std::env::temp_dir(),
            corrupt_uploads: false,
            max_rejects: None,
            transfer_timeout: Some(stall_timeout),
            progress_timeout: Some(stall_timeout.min(PROGRESS_TIMEOUT)),
            playback_deadline: buffer,
            record_deliveries: report.is_some(),
            wait_for_content: (!wait.is_zero()).then_some(wait),
            tracker_patience: Some(tracker_wait),
            seed_key: url.seed_key.or(remembered),
            tracker_key: pin.key,
            serve,
            rng_seed: random_seed(),
        },
    )?;
    let serving = if let Some(addr) = peer.serve_addr() {
        say!("serving {} on http://{addr}/", url.path);
        true
    } else {
        false
    };
    // The smallest burst is one chunk; 256 kB covers the shipped configs until the manifest
    // says otherwise (the bucket allows at least this much at once).
    let id = rt.add(Node::Peer(peer), Some(listener), limits, 256 * 1024).map_err(|e| e.to_string())?;
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = ProgressBar::new(0);
        if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} chunks {elapsed} {msg}") {
            b.set_style(style);
        }
        b
    });
    let mut to_remember = known_file.clone().filter(|_| url.seed_key.is_none() && remembered.is_none());
    loop {
        rt.turn(Some(Duration::from_millis(200))).map_err(|e| format!("event loop: {e}"))?;
        pin.remember_learned(&rt, id)?;
        // Remembered once the download is done (a file written whole, a stream played out):
        // a download that fails says only why, in one line, and pins nothing.
        let done = matches!(rt.status(id), Some(Status::Done));
        if done {
            pin.tell();
        }
        if let (Some(file), Some(Node::Peer(p)), true) = (&to_remember, rt.node(id), done)
            && let Some(key) = p.signer()
        {
            pdtp_net_mio::identity::KnownSeeds::remember(file, &url_key, &key)?;
            say!(
                "first use of {url_key}: seed key {key} remembered in {} (later gets pin it)",
                file.display()
            );
            to_remember = None;
        }
        if let (Some(b), Some(Node::Peer(p))) = (&bar, rt.node(id)) {
            let (held, n) = p.progress();
            b.set_length(u64::from(n));
            b.set_position(u64::from(held));
        }
        match rt.status(id) {
            Some(Status::Done) => break,
            Some(Status::Failed(e)) => {
                if let Some(b) = &bar {
                    b.abandon();
                }
                return Err(match (remembered, &known_file) {
                    (Some(_), Some(f)) if e.contains("pin") => format!(
                        "{e} (the key remembered for {url_key} on first use, in {}: if the seed's key \
                         changed on purpose, delete that line or pin the new key with #seed=KEY)",
                        f.display()
                    ),
                    _ => pin.explain(&rt, id, e),
                });
            }
            _ => {}
        }
    }
    if let Some(path) = report {
        let done_unix_s = unix_now();
        let (verified_bytes, resumed_bytes, deliveries) = match rt.node(id) {
            Some(Node::Peer(p)) if p.is_live() => {
                (p.verified_bytes(), 0, p.deliveries().unwrap_or_default().to_vec())
            }
            Some(Node::Peer(p)) => (p.verified_bytes(), p.resumed_bytes(), Vec::new()),
            _ => (0, 0, Vec::new()),
        };
        GetReport { start_unix_s: started, done_unix_s, verified_bytes, resumed_bytes, deliveries }
            .write(path)?;
    }
    let live = matches!(rt.node(id), Some(Node::Peer(p)) if p.is_live());
    // A player may still be watching what --serve serves: stay until Ctrl-C unless told.
    let stay = match seed_for {
        Some(d) => d,
        None if serving => SERVE_FOREVER,
        None if live => SEED_FOR_LIVE,
        None => SEED_FOR_FILES,
    };
    if let Some(b) = &bar {
        b.finish_with_message(format!("done: {}", output.display()));
    }
    if !stay.is_zero() {
        stay_as_seed(&mut rt, id, stay, bar.is_some(), serving)?;
    }
    // Leave so that the tracker has read our last reports (exact byte accounting).
    if !rt.depart(id, DEPART_LIMIT).map_err(|e| format!("event loop: {e}"))? {
        tracing::debug!("the tracker did not acknowledge our departure in time");
    }
    Ok(())
}

/// Serves other peers for `stay` after a complete download (the output closed first, so a
/// player reading it sees the end); stops early if the tracker goes away.
fn stay_as_seed(
    rt: &mut Runtime,
    id: pdtp_net_mio::driver::NodeId,
    stay: Duration,
    tell: bool,
    serving: bool,
) -> Result<(), String> {
    let registry = rt.registry().try_clone().map_err(|e| format!("event loop: {e}"))?;
    if let Some(Node::Peer(p)) = rt.node_mut(id) {
        p.close_output(&registry).map_err(|e| format!("closing the output: {e}"))?;
    }
    if tell && serving && stay == SERVE_FOREVER {
        say!("download complete; serving over HTTP and seeding until Ctrl-C");
    } else if tell {
        say!("seeding for {} (Ctrl-C to stop)", humantime(stay));
    }
    let end = Instant::now() + stay;
    while Instant::now() < end {
        rt.turn(Some(end - Instant::now())).map_err(|e| format!("event loop: {e}"))?;
        // Without a tracker nobody is left to seed for, but an HTTP player may still watch.
        if !serving && matches!(rt.node(id), Some(Node::Peer(p)) if p.tracker_lost()) {
            tracing::info!("the tracker went away; nothing left to serve");
            break;
        }
    }
    Ok(())
}

/// `600 s` as `10m`, `90 s` as `90s`.
fn humantime(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 && s % 60 == 0 { format!("{}m", s / 60) } else { format!("{}s", d.as_secs_f64()) }
}

/// Where a seed finds its tracker: the config's host (a wildcard address means this machine).
fn tracker_endpoint(c: &Config) -> Endpoint {
    let host = match c.host.parse::<IpAddr>() {
        Ok(ip) if ip.is_unspecified() => "127.0.0.1".to_owned(),
        _ => c.host.clone(),
    };
    Endpoint { host, port: c.port }
}

fn random_id() -> u32 {
    // Truncation intended: any 32 random bits will do for an id.
    random_seed() as u32
}
