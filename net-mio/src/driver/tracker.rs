//! The tracker node: the core `Tracker` plus its stats page on `port + 1`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mio::event::Event;
use mio::{Registry, Token};
use pdtp_core::policy::PolicySpec;
use pdtp_core::tracker::trust::Outcome;
use pdtp_core::tracker::{Bans, Tracker, TrackerConfig, TrackerEvent};
use pdtp_core::wire::codec::DecodeError;
use pdtp_core::wire::{Notice, Role};
use pdtp_core::{ConnId, Message, Span, Time, Transmit};
use rand_core::SeedableRng;

use super::{Cx, Hosted, Status};
use crate::config::Config;
use crate::secure::TrackerKey;
use crate::stats::{
    FileStats, LimitStats, PeerStats, PolicyStats, StatsLimits, StatsServer, StatsSnapshot, Totals,
    TransferStats,
};

/// The stats snapshot is rebuilt at most this often (a page load never walks the swarm twice).
const SNAPSHOT_EVERY: Duration = Duration::from_secs(1);

/// How a tracker node is set up.
#[derive(Clone, Debug)]
pub struct TrackerOptions {
    /// The machine's configuration.
    pub config: TrackerConfig,
    /// Where the stats page listens (`None`: no stats page).
    pub stats: Option<SocketAddr>,
    /// The name shown on the stats page.
    pub name: String,
    /// Upload / download caps shown on the stats page (bytes per second).
    pub shown_limits: (Option<u64>, Option<u64>),
    /// Mixed into the tracker's generator (transfer tokens, random choices, peer links'
    /// secrets), which is seeded from 32 bytes of OS randomness: secrets must not be
    /// guessable from a 64-bit seed.
    pub rng_seed: u64,
    /// The chunk sizes the tracker's config names for files and for live streams: the ones
    /// its policy was chosen for. Seeds chunk their content themselves; one that publishes
    /// another size is warned about.
    pub chunk_size: u32,
    /// See `chunk_size`.
    pub live_chunk_size: u32,
    /// Bans kept from an earlier run ([`load_bans`] of `state_file`).
    pub bans: Bans,
    /// Where the tracker writes its bans at each new one ([`save_bans`]); `None`: nowhere.
    pub state_file: Option<PathBuf>,
    /// The key every node's link to this tracker is encrypted with and proves it by
    /// (`secure`): nodes pin its public half.
    pub link_key: TrackerKey,
}

/// The bans kept in `file`, or none if it does not exist yet; an unreadable or malformed
/// file is an error naming it (a tracker must not start clean by accident).
pub fn load_bans(file: &Path) -> std::io::Result<Bans> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Bans::default()),
        Err(e) => return Err(std::io::Error::new(e.kind(), format!("state_file {}: {e}", file.display()))),
    };
    serde_json::from_str(&text).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "state_file {}: not a tracker state file ({e}); move it away to start clean",
                file.display()
            ),
        )
    })
}

/// Writes `bans` to `file` so that a crash mid-write leaves the old file whole: a temporary
/// file beside it, flushed to disk, then renamed over it.
pub fn save_bans(file: &Path, bans: &Bans) -> std::io::Result<()> {
    use std::io::Write;
    let mut tmp = file.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let json = serde_json::to_vec_pretty(bans).map_err(std::io::Error::other)?;
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&json)?;
    f.sync_all()?;
    std::fs::rename(&tmp, file)
}

/// A hosted tracker.
pub struct TrackerNode {
    tracker: Tracker,
    stats: Option<StatsServer>,
    name: String,
    shown_limits: (Option<u64>, Option<u64>),
    started: Instant,
    totals: Totals,
    snapshot: StatsSnapshot,
    snapshot_at: Option<Instant>,
    chunk_size: u32,
    live_chunk_size: u32,
    state_file: Option<PathBuf>,
    link_key: TrackerKey,
}

/// The core tracker configuration for a `pdtp-node` config file.
pub fn tracker_config(c: &Config) -> TrackerConfig {
    let key = c.seed_key.clone().unwrap_or_default().into_bytes();
    let mut t = TrackerConfig::with_key(key);
    c.policy.apply(&mut t);
    t.hello_timeout = Span::from_nanos(u64::try_from(c.hello_timeout.as_nanos()).unwrap_or(u64::MAX));
    t.max_connections = u32::try_from(c.max_connections).unwrap_or(u32::MAX);
    t.max_connections_per_host = c.max_connections_per_address;
    t.max_downloads_per_host = c.max_downloads_per_address;
    t.trust_records = c.trust_records;
    t.reach_probe = c.reach_probe.map(|d| Span::from_nanos(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)));
    t
}

impl TrackerNode {
    /// A tracker; binds the stats page if asked (a taken port is an error naming it).
    pub fn new(opts: TrackerOptions) -> std::io::Result<Self> {
        let stats = match opts.stats {
            Some(addr) => Some(StatsServer::bind(addr, StatsLimits::default()).map_err(|e| {
                std::io::Error::new(e.kind(), format!("cannot listen on {addr} for the stats page: {e}"))
            })?),
            None => None,
        };
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)
            .map_err(|e| std::io::Error::other(format!("no randomness from the OS for the tracker: {e}")))?;
        seed.iter_mut().zip(opts.rng_seed.to_le_bytes()).for_each(|(s, r)| *s ^= r);
        let rng = pdtp_core::Rng::from_seed(seed);
        let mut tracker = Tracker::new(opts.config, rng);
        tracker.restore_bans(&opts.bans);
        Ok(Self {
            tracker,
            state_file: opts.state_file,
            stats,
            name: opts.name,
            shown_limits: opts.shown_limits,
            started: Instant::now(),
            totals: Totals::default(),
            snapshot: StatsSnapshot::default(),
            snapshot_at: None,
            chunk_size: opts.chunk_size,
            live_chunk_size: opts.live_chunk_size,
            link_key: opts.link_key,
        })
    }

    /// The machine (read-only: stats, trust).
    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    /// Where the stats page listens.
    pub fn stats_addr(&self) -> Option<SocketAddr> {
        self.stats.as_ref().and_then(|s| s.local_addr().ok())
    }

    /// Counters kept from the tracker's events.
    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    /// Builds the snapshot the stats page shows.
    pub fn snapshot(&self, cx: &Cx<'_>) -> StatsSnapshot {
        let s = self.tracker.stats();
        let seeds = s.nodes.iter().filter(|n| n.role == Role::Seed).count() as u64;
        let peers = s.nodes.iter().filter(|n| n.role == Role::Peer).count() as u32;
        let cfg = self.tracker.config();
        // A content's verified bytes per second since the previous snapshot (the page's
        // reads, a second apart at the most often; a gap over a minute says nothing now).
        let since = self.snapshot_at.map(|at| cx.now.saturating_duration_since(at).as_secs_f64());
        let throughput = |c: &pdtp_core::tracker::ContentStats| {
            let dt = since.filter(|&d| (0.5..=60.0).contains(&d))?;
            let before = self.snapshot.files.iter().find(|f| f.path == c.path)?;
            let now = c.bytes_from_origin + c.bytes_from_peers;
            Some(now.saturating_sub(before.origin_bytes + before.peer_bytes) as f64 * 8.0 / dt)
        };
        StatsSnapshot {
            node: self.name.clone(),
            role: "tracker".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_s: cx.now.saturating_duration_since(self.started).as_secs_f64(),
            peers: s
                .nodes
                .iter()
                .map(|n| PeerStats {
                    id: n.peer.0,
                    addr: n.endpoint.as_ref().map_or_else(|| "-".to_owned(), ToString::to_string),
                    role: if n.role == Role::Seed { "seed" } else { "peer" }.into(),
                    uploads: u32::from(n.uploads),
                    downloads: u32::from(n.downloads),
                    bytes_up: n.bytes_up,
                    bytes_down: n.bytes_down,
                    trust: n.reputation,
                    up_rate_bps: n.up_rate * 8.0,
                    up_slots: u32::from(n.up_slots),
                    banned: n.banned,
                    reachable: n.reachable,
                })
                .collect(),
            files: s
                .contents
                .iter()
                .map(|c| {
                    // Seeds hold every chunk they publish; the rest are peers' copies.
                    let peer_copies = c.chunk_copies.saturating_sub(seeds * u64::from(c.chunks));
                    let rate = throughput(c);
                    let want = u64::from(c.chunks) * u64::from(peers);
                    FileStats {
                        path: c.path.clone(),
                        size: c.size,
                        chunk_size: c.chunk_size,
                        chunks: c.chunks,
                        live: c.live,
                        peers,
                        progress: if want == 0 { 0.0 } else { (peer_copies as f64 / want as f64).min(1.0) },
                        complete: c.completions,
                        origin_bytes: c.bytes_from_origin,
                        peer_bytes: c.bytes_from_peers,
                        r_max_bps: c.live_bounds.map(|b| b.r_max_bps),
                        load_vs_r_max: c.live_bounds.map(|b| b.load),
                        lag_floor_s: c.live_bounds.map(|b| b.floor_s),
                        remaining_bytes: c.on_demand.map(|b| b.remaining_bytes),
                        capacity_bps: c.on_demand.map(|b| b.capacity_bps),
                        bound_s: c.on_demand.and_then(|b| b.bound_s),
                        throughput_bps: rate,
                        eta_s: c
                            .on_demand
                            .zip(rate)
                            .filter(|&(_, t)| t > 0.0)
                            .map(|(b, t)| b.remaining_bytes as f64 * 8.0 / t),
                        origin_share: {
                            let all = c.bytes_from_origin + c.bytes_from_peers;
                            (all > 0).then(|| c.bytes_from_origin as f64 / all as f64)
                        },
                    }
                })
                .collect(),
            transfers: s
                .transfers
                .iter()
                .map(|x| TransferStats {
                    file: x.path.clone(),
                    chunk: x.chunk,
                    giver: x.giver.0,
                    taker: x.taker.0,
                    age_s: (cx.time - x.ordered).as_secs_f64(),
                })
                .collect(),
            totals: Totals { connections_refused: cx.refused, ..self.totals.clone() },
            limits: LimitStats {
                max_upload_rate: self.shown_limits.0,
                max_download_rate: self.shown_limits.1,
            },
            policy: Some(PolicyStats {
                chunk_size: self.chunk_size,
                live_chunk_size: self.live_chunk_size,
                settings: PolicySpec::of(cfg),
            }),
            rates: cx.rates.clone(),
        }
    }

    /// Warns when a seed publishes in another chunk size than the config's: the policy's
    /// slots and timeouts were chosen for that size.
    fn check_chunk_size(&self, path: &str, chunk_size: u32, live: bool) {
        let configured = if live { self.live_chunk_size } else { self.chunk_size };
        if chunk_size != configured {
            tracing::warn!(
                %path,
                published = chunk_size,
                configured,
                "a seed published in another chunk size than the tracker's config; the policy was chosen for the config's"
            );
        }
    }

    fn on_event(&mut self, e: TrackerEvent) {
        match e {
            TrackerEvent::Joined { peer, role } => tracing::info!(%peer, ?role, "joined"),
            TrackerEvent::Left { peer } => tracing::info!(%peer, "left"),
            TrackerEvent::Reach { peer, reachable: true } => tracing::info!(%peer, "reachable"),
            TrackerEvent::Reach { peer, reachable: false } => {
                tracing::info!(%peer, "unreachable (behind a NAT or a firewall): it will dial others")
            }
            TrackerEvent::Published { content, path, chunk_size, live } => {
                tracing::info!(content = content.0, %path, "published");
                self.check_chunk_size(&path, chunk_size, live);
            }
            TrackerEvent::Finished { token, outcome, bytes, from_origin, giver, taker, chunk, .. } => {
                // Paired with `Ordered` by token, a transfer's time (the lab reads these).
                tracing::trace!(?token, %giver, %taker, chunk, ?outcome, "finished");
                self.count_finished(outcome, bytes, from_origin, giver);
            }
            TrackerEvent::Cancelled { .. } => self.totals.transfers_failed += 1,
            TrackerEvent::Completed { peer, content } => {
                tracing::info!(%peer, content = content.0, "download complete")
            }
            TrackerEvent::Banned { peer } => {
                tracing::warn!(%peer, "banned as a giver");
                if let Some(file) = &self.state_file
                    && let Err(e) = save_bans(file, &self.tracker.bans())
                {
                    tracing::warn!(file = %file.display(), error = %e, "could not keep the bans");
                }
            }
            TrackerEvent::Problem { peer, notice } => {
                tracing::debug!(?peer, code = ?notice.code, detail = %notice.detail, "problem")
            }
            other => tracing::trace!(?other, "tracker event"),
        }
    }

    fn count_finished(&mut self, outcome: Outcome, bytes: u32, from_origin: bool, giver: pdtp_core::PeerId) {
        match outcome {
            Outcome::Verified => {
                self.totals.transfers_completed += 1;
                if from_origin {
                    self.totals.origin_bytes += u64::from(bytes);
                } else {
                    self.totals.peer_bytes += u64::from(bytes);
                }
            }
            Outcome::Corrupt => {
                self.totals.transfers_failed += 1;
                self.totals.chunks_corrupt += 1;
                tracing::warn!(%giver, "a chunk failed verification");
            }
            // Nothing usable arrived (the link broke, the giver left): a failure, not
            // corruption; counting it as corrupt alarmed operators of honest swarms.
            Outcome::Failed => self.totals.transfers_failed += 1,
        }
    }
}

impl Hosted for TrackerNode {
    fn accept(&mut self, now: Time, remote_host: String) -> Result<ConnId, Notice> {
        self.tracker.accept(now, remote_host)
    }
    fn accept_from(
        &mut self,
        now: Time,
        remote_host: String,
        remote_port: Option<u16>,
    ) -> Result<ConnId, Notice> {
        self.tracker.accept_from(now, remote_host, remote_port)
    }

    fn link_key(&self) -> Option<&TrackerKey> {
        Some(&self.link_key)
    }
    fn handle_message(&mut self, now: Time, conn: ConnId, msg: Message) {
        if let Message::AppendChunks(a) = &msg {
            // With the seed's "live chunk pushed", times each chunk's way to the tracker.
            tracing::trace!(first = a.first, count = a.hashes.len(), "append received");
        }
        self.tracker.handle_message(now, conn, msg);
    }
    fn handle_malformed(&mut self, now: Time, conn: ConnId, err: &DecodeError) -> bool {
        self.tracker.handle_malformed(now, conn, &err.to_string());
        true
    }
    fn handle_connected(&mut self, now: Time, conn: ConnId) {
        self.tracker.handle_connected(now, conn);
    }
    fn handle_closed(&mut self, now: Time, conn: ConnId) {
        self.tracker.handle_closed(now, conn);
    }
    fn handle_timeout(&mut self, now: Time) {
        self.tracker.handle_timeout(now);
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.tracker.poll_transmit()
    }
    fn poll_timeout(&self) -> Option<Time> {
        self.tracker.poll_timeout()
    }
    fn register(&mut self, registry: &Registry, base: Token) -> std::io::Result<()> {
        match self.stats.as_mut() {
            Some(s) => s.register(registry, base),
            None => Ok(()),
        }
    }
    fn extra_tokens(&self) -> usize {
        // The listener and its clients.
        self.stats.as_ref().map_or(0, |_| 1 + StatsLimits::default().max_clients)
    }
    fn extra_event(&mut self, cx: &mut Cx<'_>, event: &Event) {
        if self.snapshot_at.is_none_or(|at| cx.now.saturating_duration_since(at) >= SNAPSHOT_EVERY) {
            self.snapshot = self.snapshot(cx);
            self.snapshot_at = Some(cx.now);
        }
        if let Some(s) = self.stats.as_mut() {
            s.handle_event(cx.registry, event, cx.now, &self.snapshot);
        }
    }
    fn extra_timeout(&self) -> Option<Instant> {
        self.stats.as_ref().and_then(StatsServer::poll_timeout)
    }
    fn extra_timer(&mut self, cx: &mut Cx<'_>) {
        if let Some(s) = self.stats.as_mut() {
            s.handle_timeout(cx.registry, cx.now);
        }
    }
    fn after(&mut self, _cx: &mut Cx<'_>) {
        while let Some(e) = self.tracker.poll_event() {
            self.on_event(e);
        }
    }
    fn status(&self) -> Status {
        Status::Running
    }
}

#[cfg(test)]
mod tests {
    use pdtp_core::{ContentId, PeerId, Token};

    use super::*;

    fn finished(outcome: Outcome) -> TrackerEvent {
        TrackerEvent::Finished {
            token: Token(1),
            giver: PeerId(2),
            taker: PeerId(3),
            content: ContentId(0),
            chunk: 0,
            bytes: 1000,
            outcome,
            from_origin: false,
        }
    }

    /// A tracker with no stats page, keeping its bans in `state_file` if given.
    fn options(state_file: Option<PathBuf>) -> TrackerOptions {
        TrackerOptions {
            config: TrackerConfig::with_key(b"key".to_vec()),
            stats: None,
            name: "t".into(),
            shown_limits: (None, None),
            rng_seed: 1,
            chunk_size: 1000,
            live_chunk_size: 1000,
            bans: Bans::default(),
            state_file,
            link_key: TrackerKey::from_secret([1; 32]),
        }
    }

    #[test]
    fn a_failed_copy_counts_as_failed_and_only_wrong_bytes_as_corrupt() {
        let mut node = TrackerNode::new(options(None)).expect("no stats page to bind");
        node.on_event(finished(Outcome::Verified));
        node.on_event(finished(Outcome::Failed));
        node.on_event(finished(Outcome::Corrupt));
        let t = node.totals();
        assert_eq!((t.transfers_completed, t.transfers_failed, t.chunks_corrupt), (1, 2, 1));
        assert_eq!(t.peer_bytes, 1000);
    }

    /// A tracker with a state file starts with the bans in it; no file is a clean start; a
    /// file that is not a state file stops the tracker with a line naming it.
    #[test]
    fn a_tracker_starts_with_the_bans_of_its_state_file() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let file = dir.path().join("state.json");
        let node = |file: &Path| {
            let bans = load_bans(file)?;
            TrackerNode::new(TrackerOptions { bans, ..options(Some(file.to_owned())) })
        };
        assert_eq!(node(&file).expect("no file yet").tracker().bans(), Bans::default());
        let bans = Bans { peers: vec![PeerId(7)], hosts: vec!["10.1.2.3".into()] };
        save_bans(&file, &bans).expect("saved");
        assert!(!dir.path().join("state.json.tmp").exists(), "the temporary file was renamed");
        assert_eq!(node(&file).expect("a state file").tracker().bans(), bans);
        std::fs::write(&file, "{\"peers\": [7], \"hostz\": []}").expect("written");
        let err = node(&file).err().expect("a malformed state file is refused").to_string();
        assert!(err.contains("state.json") && err.contains("hostz"), "{err}");
    }
}
