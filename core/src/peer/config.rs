//! The peer's configuration and the events it reports.

use crate::ids::{ChunkIndex, ContentId, Endpoint, PeerId};
use crate::node::NodeEvent;
use crate::payload::Payload;
use crate::signing::SeedKey;
use crate::time::Span;
use crate::wire::Notice;

/// How a peer behaves; [`PeerConfig::new`] fills in the defaults.
#[derive(Clone, Debug)]
pub struct PeerConfig {
    /// Our id in the swarm (unique per tracker).
    pub peer_id: PeerId,
    /// The port we accept peer links on, if any.
    pub listen_port: Option<u16>,
    /// Where the tracker listens.
    pub tracker: Endpoint,
    /// A transfer not under way this long after its order fails (default 20 s).
    pub stall_timeout: Span,
    /// A transfer under way but not finished this long after it started fails (default 120 s).
    pub transfer_timeout: Span,
    /// A transfer under way fails when nothing has arrived on its link for this long, so a
    /// giver that accepts a `Get` and sends nothing, or stops, is left well before
    /// `transfer_timeout`. It needs a driver that reports bytes as they come
    /// ([`super::Peer::handle_progress`]); default `None`, as in the simulator, which moves
    /// whole messages.
    pub progress_timeout: Option<Span>,
    /// How long a peer request waits for its matching order (default 5 s).
    pub order_wait: Span,
    /// Chunks of a live stream kept behind the live edge (default 64).
    pub live_window: u32,
    /// A live viewer starts this many chunks behind the live edge (default 2). Further back,
    /// the first chunks are better spread and playback can start sooner within the buffer.
    pub live_join_back: u32,
    /// Peer links with no transfer for this long are closed (default 30 s).
    pub link_idle: Span,
    /// Live: a chunk still missing this long after its append reached us is skipped (the
    /// player is past it): delivery moves on to the next chunk and the tracker is told we no
    /// longer want it, so a viewer that fell behind fetches chunks it can still play instead
    /// of late ones. Set it to the player's buffer. `None` (the default): never skip; a
    /// missing chunk holds delivery until the live window slides past it.
    pub playback_deadline: Option<Span>,
    /// Fault injection for tests and the simulator: flip a byte (or a virtual payload's tag)
    /// of every chunk we serve, so takers reject it. Never set in real deployments.
    pub corrupt_uploads: bool,
    /// The seed key the user pinned (`pdtp://host/path#seed=KEY`): a manifest or live append
    /// not signed by it is refused ([`PeerEvent::ManifestRefused`]), so a tracker or a path
    /// that lies about the content cannot make us deliver other bytes. `None`: a signed
    /// manifest is still checked against the key that signed it; an unsigned one is taken.
    pub seed_key: Option<SeedKey>,
    /// A tracker lost after its welcome is reconnected to, backing off up to this between
    /// attempts (default 30 s); the download goes on meanwhile and is announced again.
    /// `None`: a lost tracker ends the download (`PeerEvent::TrackerLost`).
    pub tracker_retry: Option<Span>,
    /// Whether `Deliver` carries the chunk's bytes (default): kept in memory from their
    /// arrival while within [`DELIVER_AHEAD`](super::DELIVER_AHEAD) bytes of the delivery
    /// point, read back from the store otherwise. `false`: a virtual payload (the length and
    /// the manifest's digest), for an application whose chunks are already in place (a file
    /// output written at the chunks' offsets), so nothing is read back.
    pub deliver_payloads: bool,
}

impl PeerConfig {
    /// The defaults for `peer_id` talking to `tracker`, not listening.
    pub fn new(peer_id: PeerId, tracker: Endpoint) -> Self {
        Self {
            peer_id,
            listen_port: None,
            tracker,
            stall_timeout: Span::from_secs(20),
            transfer_timeout: Span::from_secs(120),
            progress_timeout: None,
            order_wait: Span::from_secs(5),
            live_window: 64,
            live_join_back: super::download::LIVE_JOIN_BACK,
            link_idle: Span::from_secs(30),
            playback_deadline: None,
            corrupt_uploads: false,
            seed_key: None,
            tracker_retry: Some(Span::from_secs(30)),
            deliver_payloads: true,
        }
    }
}

/// What a peer reports to its application, drained with [`Peer::poll_event`](super::Peer::poll_event).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerEvent {
    /// The tracker accepted our `Hello`.
    Welcomed,
    /// A manifest arrived for a path we asked about; the download has started.
    ManifestReceived {
        /// Its content id.
        content: ContentId,
        /// Chunks described so far.
        num_chunks: u32,
        /// Whether it is a live stream.
        live: bool,
        /// The seed key that signed it (checked), if signed.
        signer: Option<SeedKey>,
    },
    /// A manifest or live append failed its signature check: nothing of it is used, and a
    /// live download stops taking appends.
    ManifestRefused {
        /// The path we asked about.
        path: String,
        /// What was wrong, for the user.
        reason: String,
    },
    /// Chunks the store still held from an earlier run of this download were checked
    /// against the manifest (right after `ManifestReceived`): `kept` of the `checked` ones
    /// hashed right and count as held (provided to the tracker, never fetched); the rest
    /// were discarded and are fetched like any other.
    Resumed {
        /// Which content.
        content: ContentId,
        /// Chunks the store offered ([`ChunkStore::leftovers`](crate::ChunkStore::leftovers)).
        checked: u32,
        /// Chunks whose length and SHA-256 matched the manifest.
        kept: u32,
        /// Their bytes.
        bytes: u64,
    },
    /// The tracker says the content's seed withdrew it (it changed at its source) and nobody
    /// else holds all of it: this version cannot be completed.
    Withdrawn {
        /// The tracker's words.
        detail: String,
    },
    /// The tracker knows no content at this path.
    UnknownUrl {
        /// The path we asked about.
        path: String,
    },
    /// A chunk arrived, matched the manifest and was stored.
    ChunkVerified {
        /// Which content.
        content: ContentId,
        /// Which chunk.
        chunk: ChunkIndex,
        /// The giver.
        from: PeerId,
        /// Its length.
        bytes: u32,
    },
    /// A chunk arrived that did not match the manifest: not stored, still wanted.
    ChunkRejected {
        /// Which content.
        content: ContentId,
        /// Which chunk.
        chunk: ChunkIndex,
        /// The giver.
        from: PeerId,
    },
    /// Verified bytes, strictly in order: each starts where the previous one ended.
    Deliver {
        /// Which content.
        content: ContentId,
        /// Byte offset of the payload within the content.
        offset: u64,
        /// The bytes.
        payload: Payload,
    },
    /// Every byte of an on-demand content was delivered.
    DownloadComplete {
        /// Which content.
        content: ContentId,
    },
    /// The tracker link is gone; nothing more will be scheduled.
    TrackerLost {
        /// The tracker's reason, if it sent one before closing (`Overloaded`, `BadVersion`…).
        notice: Option<Notice>,
    },
    /// An event of the engine peers share with seeds: a chunk served, a rejecting verdict on
    /// one, a failed transfer, a problem.
    Node(NodeEvent),
}

impl From<NodeEvent> for PeerEvent {
    fn from(e: NodeEvent) -> Self {
        PeerEvent::Node(e)
    }
}
