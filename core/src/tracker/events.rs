//! What the tracker tells its application (logs, stats, the simulator's metrics).

use super::trust::Outcome;
use crate::ids::{ChunkIndex, ContentId, PeerId, Token};
use crate::wire::{Notice, Role};

/// Something the application may want to know, drained with `Tracker::poll_event`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrackerEvent {
    /// A node said hello and was welcomed.
    Joined {
        /// Its id.
        peer: PeerId,
        /// Peer or seed.
        role: Role,
    },
    /// A node's connection ended.
    Left {
        /// Its id.
        peer: PeerId,
    },
    /// A seed published a content.
    Published {
        /// Assigned id.
        content: ContentId,
        /// Its path.
        path: String,
        /// Bytes per chunk, as the seed chunked it.
        chunk_size: u32,
        /// Whether it is a live stream.
        live: bool,
    },
    /// A transfer was ordered.
    Ordered {
        /// Its token.
        token: Token,
        /// Sender.
        giver: PeerId,
        /// Receiver.
        taker: PeerId,
        /// Content.
        content: ContentId,
        /// Chunk.
        chunk: ChunkIndex,
    },
    /// A transfer ended and was judged.
    Finished {
        /// Its token.
        token: Token,
        /// Sender.
        giver: PeerId,
        /// Receiver.
        taker: PeerId,
        /// Content.
        content: ContentId,
        /// Chunk.
        chunk: ChunkIndex,
        /// Bytes it added to the taker: the chunk's length, or 0 when the taker already
        /// held the chunk (so origin + peer bytes count each verified copy once).
        bytes: u32,
        /// How the taker's copy came out: verified, corrupt (wrong bytes served), or failed
        /// with nothing usable (the connection broke, the giver left or stalled).
        outcome: Outcome,
        /// Whether the giver is a seed (the origin paid for these bytes).
        from_origin: bool,
    },
    /// A transfer was cancelled (stalled, or one end left).
    Cancelled {
        /// Its token.
        token: Token,
        /// Whether it was cancelled because it did not start in time.
        stalled: bool,
    },
    /// A peer now holds every chunk of an on-demand content.
    Completed {
        /// The peer.
        peer: PeerId,
        /// The content.
        content: ContentId,
    },
    /// A node's reachability probe answered: others can connect to it, or not (then it is
    /// treated as a node that does not listen).
    Reach {
        /// The node.
        peer: PeerId,
        /// Whether the tracker's connection to its endpoint opened.
        reachable: bool,
    },
    /// A giver failed too often and will not be chosen again.
    Banned {
        /// The giver.
        peer: PeerId,
    },
    /// A warning or error was received from, or sent to, a node.
    Problem {
        /// The node, if it had said hello.
        peer: Option<PeerId>,
        /// What happened.
        notice: Notice,
    },
}
