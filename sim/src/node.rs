//! What the engine needs from a node: the [`SimNode`] trait the core adapters implement.
//!
//! The trait mirrors the core machines' sans-io shape (`handle_*`, `poll_*`), plus the few
//! things only a simulator does: start a node when it arrives, stop it when it churns away,
//! and accept incoming connections. An adapter around `pdtp_core`'s `Tracker`, `Seed` or
//! `Peer` forwards each call and translates the machine's events into [`NodeEvent`]s, which
//! is all the metrics need.
//!
//! ```text
//!   engine                                   adapter -> core machine
//!     | -- start / stop / accept ------------> |
//!     | -- handle_message/connected/closed --> |   mutate
//!     | -- handle_timeout (when due) --------> |
//!     | <- poll_transmit() ------------------- |   until None: Send, Connect, Close
//!     | <- poll_event() ---------------------- |   until None: for the metrics
//!     | <- poll_timeout() -------------------- |   next deadline
//! ```

use pdtp_core::{ChunkIndex, ConnId, Message, Time, Transmit};

use crate::scenario::Scenario;

/// The kind of a node, which decides how its traffic is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The tracker (one per run).
    Tracker,
    /// An origin seed.
    Seed,
    /// A viewer.
    Peer,
}

/// What happened inside a node that the metrics care about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeEvent {
    /// A chunk arrived and verified.
    ChunkVerified {
        /// The chunk.
        chunk: ChunkIndex,
    },
    /// Chunk `chunk` became deliverable in order (every earlier wanted chunk is there):
    /// the moment a player could play it.
    InOrder {
        /// The chunk.
        chunk: ChunkIndex,
    },
    /// A chunk arrived but failed verification.
    ChunkRejected {
        /// The chunk.
        chunk: ChunkIndex,
    },
    /// A transfer failed or stalled (for the failure counters).
    TransferFailed,
    /// The viewer holds the whole content (on demand) or the stream's last chunk (live).
    Completed,
    /// The viewer lost its tracker connection before it was done: its player starts it
    /// again (the engine's `PLAYER_RESTART`).
    TrackerLost,
}

/// A node driven by the engine. Implemented by thin adapters over the core machines.
///
/// Every call takes the current simulated time. After each call the engine drains
/// `poll_transmit` and `poll_event` to `None` and then reads `poll_timeout`.
pub trait SimNode: Send {
    /// The node comes online: a viewer arrives (or returns after churn), a seed publishes.
    fn start(&mut self, now: Time);

    /// The node leaves abruptly. The engine has already dropped its connections and will
    /// report no `handle_closed` for them; stored chunks may be kept for a later `start`.
    fn stop(&mut self, now: Time);

    /// An incoming connection from the node named `remote_host`; `None` refuses it (the
    /// connecting side then sees `handle_closed`).
    fn accept(&mut self, now: Time, remote_host: &str) -> Option<ConnId>;

    /// An outgoing connection asked for with [`Transmit::Connect`] is established.
    fn handle_connected(&mut self, now: Time, conn: ConnId);

    /// A connection was closed by the other side or broke.
    fn handle_closed(&mut self, now: Time, conn: ConnId);

    /// A message arrived on `conn`.
    fn handle_message(&mut self, now: Time, conn: ConnId, msg: Message);

    /// The deadline from `poll_timeout` has passed.
    fn handle_timeout(&mut self, now: Time);

    /// The next instruction for the network.
    fn poll_transmit(&mut self) -> Option<Transmit>;

    /// The next event for the metrics.
    fn poll_event(&mut self) -> Option<NodeEvent>;

    /// When the node next wants `handle_timeout`.
    ///
    /// Changes only after one of the `handle_*`, `start`, `stop` or `accept` calls.
    fn poll_timeout(&self) -> Option<Time>;
}

/// The tracker's port in simulated endpoints (the engine routes by host; ports are nominal).
pub const TRACKER_PORT: u16 = 6086;
/// Viewers' and seeds' listen port in simulated endpoints (nominal, as above).
pub const PEER_PORT: u16 = 8000;

/// Everything a factory needs to build one node.
#[derive(Clone, Debug)]
pub struct NodeSpec<'a> {
    /// The scenario (content, policy, limits).
    pub scenario: &'a Scenario,
    /// The node's kind.
    pub role: Role,
    /// The node's index within its role (seed 0, peer 17...).
    pub index: u32,
    /// The node's host name: other nodes' `Endpoint.host` for it.
    pub host: &'a str,
    /// The tracker's host name.
    pub tracker_host: &'a str,
    /// The peer class index (viewers only).
    pub class: Option<usize>,
    /// A seed for the node's own random generator, drawn from the run's generator.
    pub rng_seed: u64,
    /// The path the seeds publish and the viewers request (`pdtp://tracker/<path>`).
    pub content_path: &'a str,
    /// The seed key the tracker accepts and the seeds prove (drawn per run).
    pub seed_key: &'a [u8; 32],
}

/// Builds the nodes of a run. The real one wraps `pdtp_core` machines.
pub trait NodeFactory {
    /// Builds one node.
    fn build(&mut self, spec: &NodeSpec<'_>) -> Box<dyn SimNode>;
}
