//! A whole swarm on loopback in one loop: a tracker, seeds and peers on ephemeral ports.
//! Used by `pdtp-node demo` and by the integration tests.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use pdtp_core::signing::{SeedKey, SigningKey};
use pdtp_core::tracker::TrackerConfig;
use pdtp_core::{Endpoint, PeerId};

use super::{
    Node, NodeId, PeerNode, PeerOptions, RateLimits, Runtime, SeedNode, SeedOptions, Status, TrackerNode,
    TrackerOptions, random_seed,
};
use crate::listen::{bind_exact, bind_with_fallback};
use crate::secure::{LinkKey, TrackerKey};
use crate::sink::OutputKind;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// The signing secret of every seed the harness adds (one operator, one identity).
const SEED_SECRET: [u8; 32] = [0x5e; 32];

/// The public key the harness's seeds sign with (what a viewer pins).
pub fn seed_key() -> SeedKey {
    SigningKey::from_secret(SEED_SECRET).public()
}

/// A tracker (with its stats page) in a fresh loop, ready for seeds and peers.
pub struct Swarm {
    /// The loop hosting everything.
    pub rt: Runtime,
    /// The tracker's node.
    pub tracker: NodeId,
    /// Where the tracker listens.
    pub tracker_addr: SocketAddr,
    /// The tracker's link key (every seed and peer the harness adds pins it).
    pub tracker_key: LinkKey,
    /// The seed key the tracker accepts.
    pub key: String,
    /// Bytes per chunk for seeds.
    pub chunk_size: u32,
    next_id: u32,
}

impl Swarm {
    /// A loop with a tracker on `127.0.0.1:<ephemeral>` and its stats page on another.
    pub fn new(config: TrackerConfig, chunk_size: u32) -> Result<Self, String> {
        Self::with_limits(config, chunk_size, 4096, Duration::from_secs(10))
    }

    /// Like [`Swarm::new`], with the loop's connection cap and hello deadline.
    pub fn with_limits(
        config: TrackerConfig,
        chunk_size: u32,
        max_connections: usize,
        hello_timeout: Duration,
    ) -> Result<Self, String> {
        let key = String::from_utf8_lossy(&config.seed_key).into_owned();
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|e| format!("no randomness for the tracker's key: {e}"))?;
        let link_key = TrackerKey::from_secret(secret);
        let mut rt = Runtime::new(max_connections, hello_timeout).map_err(|e| e.to_string())?;
        let listener = bind_exact(SocketAddr::new(LOOPBACK, 0)).map_err(|e| e.to_string())?;
        let tracker_addr = listener.local_addr().map_err(|e| e.to_string())?;
        let node = TrackerNode::new(TrackerOptions {
            config,
            stats: Some(SocketAddr::new(LOOPBACK, 0)),
            name: "demo".into(),
            shown_limits: (None, None),
            rng_seed: random_seed(),
            chunk_size,
            live_chunk_size: chunk_size,
            bans: Default::default(),
            state_file: None,
            link_key: link_key.clone(),
        })
        .map_err(|e| e.to_string())?;
        let tracker = rt
            .add(Node::Tracker(node), Some(listener), RateLimits::default(), 1)
            .map_err(|e| e.to_string())?;
        let tracker_key = link_key.public();
        Ok(Self { rt, tracker, tracker_addr, tracker_key, key, chunk_size, next_id: 1 })
    }

    /// The tracker's endpoint.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint { host: self.tracker_addr.ip().to_string(), port: self.tracker_addr.port() }
    }

    /// The tracker node.
    pub fn tracker(&self) -> Option<&TrackerNode> {
        match self.rt.node(self.tracker)? {
            Node::Tracker(t) => Some(t),
            _ => None,
        }
    }

    /// A seed publishing everything under `root`, authenticating with `key`; returns once the
    /// tracker accepted every file (or refused the seed), so peers added next find them.
    pub fn add_seed(&mut self, root: &Path, key: &str, limits: RateLimits) -> Result<NodeId, String> {
        self.add_seed_with(root, key, limits, false)
    }

    /// Like [`Swarm::add_seed`]; `sendfile` sends chunk payloads with `sendfile(2)`.
    pub fn add_seed_with(
        &mut self,
        root: &Path,
        key: &str,
        limits: RateLimits,
        sendfile: bool,
    ) -> Result<NodeId, String> {
        let (listener, port) = bind_with_fallback(LOOPBACK, 0).map_err(|e| e.to_string())?;
        let peer_id = self.take_id();
        let now = self.rt.now();
        let seed = SeedNode::new(
            now,
            SeedOptions {
                peer_id,
                tracker: self.endpoint(),
                key: key.to_owned(),
                file_root: root.to_owned(),
                chunk_size: self.chunk_size,
                live_chunk_size: self.chunk_size,
                listen_port: Some(port),
                live: None,
                live_bitrate_bps: 0,
                sendfile,
                // Every harness seed signs, so every swarm test checks signed manifests.
                signing_key: Some(SigningKey::from_secret(SEED_SECRET)),
                uplink_bps: None,
                tracker_key: Some(self.tracker_key),
                rng_seed: random_seed(),
            },
        )?;
        let burst = u64::from(self.chunk_size);
        let id = self.rt.add(Node::Seed(seed), Some(listener), limits, burst).map_err(|e| e.to_string())?;
        // Peers added next must find the files: wait until they are published (or refused).
        let settled = |rt: &Runtime| match rt.node(id) {
            Some(Node::Seed(s)) => s.all_published() || rt.status(id) != Some(Status::Running),
            _ => true,
        };
        self.rt.run_until(Duration::from_secs(10), settled).map_err(|e| e.to_string())?;
        Ok(id)
    }

    /// A peer downloading `path` into `output`; `corrupt` makes it corrupt what it serves.
    pub fn add_peer(&mut self, path: &str, output: &Path, corrupt: bool) -> Result<NodeId, String> {
        self.add_peer_limited(path, output, corrupt, RateLimits::default())
    }

    /// Like [`Swarm::add_peer`], with upload/download caps for that peer.
    pub fn add_peer_limited(
        &mut self,
        path: &str,
        output: &Path,
        corrupt: bool,
        limits: RateLimits,
    ) -> Result<NodeId, String> {
        self.add_peer_with(path, output, limits, |o| o.corrupt_uploads = corrupt)
    }

    /// Adds a peer whose options `tweak` adjusts (fault injection, timeouts) before it starts.
    pub fn add_peer_with(
        &mut self,
        path: &str,
        output: &Path,
        limits: RateLimits,
        tweak: impl FnOnce(&mut PeerOptions),
    ) -> Result<NodeId, String> {
        let (listener, port) = bind_with_fallback(LOOPBACK, 0).map_err(|e| e.to_string())?;
        let peer_id = self.take_id();
        let now = self.rt.now();
        let mut opts = PeerOptions {
            peer_id,
            tracker: self.endpoint(),
            path: path.to_owned(),
            output: OutputKind::of(output),
            listen_port: Some(port),
            cache_dir: cache_dir(output),
            corrupt_uploads: false,
            max_rejects: None,
            transfer_timeout: None,
            progress_timeout: None,
            playback_deadline: None,
            record_deliveries: false,
            wait_for_content: None,
            seed_key: None,
            tracker_key: Some(self.tracker_key),
            tracker_patience: None,
            serve: None,
            rng_seed: random_seed(),
        };
        tweak(&mut opts);
        let peer = PeerNode::new(now, opts)?;
        let burst = u64::from(self.chunk_size);
        self.rt.add(Node::Peer(peer), Some(listener), limits, burst).map_err(|e| e.to_string())
    }

    /// Reserves a peer id for a node the caller runs itself (a fake peer in a test).
    pub fn reserve_id(&mut self) -> PeerId {
        self.take_id()
    }

    /// A hosted peer (seeds and peers get ids 1, 2, ... in the order they are added).
    pub fn peer(&self, id: NodeId) -> Option<&PeerNode> {
        match self.rt.node(id)? {
            Node::Peer(p) => Some(p),
            _ => None,
        }
    }

    /// Runs until every listed node is done or failed, or `limit` passes; returns whether all
    /// of them finished (done or failed).
    pub fn run_until_finished(&mut self, nodes: &[NodeId], limit: Duration) -> Result<bool, String> {
        self.rt
            .run_until(limit, |rt| nodes.iter().all(|&n| !matches!(rt.status(n), Some(Status::Running))))
            .map_err(|e| e.to_string())
    }

    fn take_id(&mut self) -> PeerId {
        let id = PeerId(self.next_id);
        self.next_id += 1;
        id
    }
}

fn cache_dir(output: &Path) -> PathBuf {
    output.parent().filter(|p| !p.as_os_str().is_empty()).map_or_else(std::env::temp_dir, Path::to_owned)
}
