//! Transfer orders, their reports, and the peer-to-peer get/put/data exchange.

use serde::{Deserialize, Serialize};

use crate::ids::{ChunkIndex, ContentId, Endpoint, PeerId, Token};
use crate::manifest::Digest;
use crate::payload::Payload;

/// Which end of a transfer a node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Side {
    /// Sends the chunk.
    Giver,
    /// Receives the chunk.
    Taker,
}

/// Who connects to whom: the taker connects and gets, or the giver connects and puts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Method {
    /// The taker connects to the giver and asks for the chunk.
    Get,
    /// The giver connects to the taker and pushes the chunk.
    Put,
}

/// The secret of one transfer's peer link, which the tracker hands to both ends in their
/// orders (over their encrypted tracker links): the link between them is sealed with keys
/// derived from it, with no handshake of its own (docs/protocol.md, "Peer links").
// Boxed: an order is in every `Message`, whose size stays small (`wire::Message`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkSecret(pub Box<[u8; 32]>);

impl LinkSecret {
    /// What the connecting end sends in clear so the accepting end can find the secret
    /// among its orders: 16 bytes of a hash of it, which say nothing of it.
    pub fn id(&self) -> [u8; 16] {
        let full = self.derive(b"pdtp peer link id v1");
        let mut id = [0u8; 16];
        id.copy_from_slice(&full[..16]);
        id
    }

    /// The key for one direction of the link (`label` names it): BLAKE3 of the label keyed
    /// with the secret.
    pub fn derive(&self, label: &[u8]) -> [u8; 32] {
        *blake3::keyed_hash(&self.0, label).as_bytes()
    }
}

impl core::fmt::Debug for LinkSecret {
    /// Never the secret itself: logs show orders.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "LinkSecret(…)")
    }
}

/// Tracker → each end: move chunk `chunk` of `content` between you and `other`.
///
/// Both ends receive an order with the same token. The connecting end (taker for `Get`,
/// giver for `Put`) gets `connect: Some(endpoint of other)`; the accepting end gets `None`
/// and accepts a peer request only if it carries this token from `other`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferOrder {
    /// Authorisation for exactly this pair and chunk.
    pub token: Token,
    /// Which content.
    pub content: ContentId,
    /// Which chunk.
    pub chunk: ChunkIndex,
    /// The receiver's role in the transfer.
    pub side: Side,
    /// Who connects.
    pub method: Method,
    /// The other end.
    pub other: PeerId,
    /// Where to connect, for the connecting end.
    pub connect: Option<Endpoint>,
    /// The peer link's secret, the same in both ends' orders (version 5).
    pub key: LinkSecret,
    /// Both ends behind NAT: each dials the other's `connect` at once from its listening
    /// port (a hole punch; `method` is `Get`, the giver's end accepts the link). Version 7.
    pub punch: bool,
}

/// Taker → tracker: the transfer ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completed {
    /// The transfer.
    pub token: Token,
    /// SHA-256 of the bytes received, or `None` if nothing usable arrived.
    pub hash: Option<Digest>,
    /// How long the copy took at the taker, in microseconds: from sending its `Get` (or
    /// accepting the giver's `Put`) to the last byte of `Data`; 0 when no data moved. The
    /// tracker measures givers' upload rates with it (until protocol version 2 a separate
    /// `Started` message marked the start).
    pub copy_us: u32,
}

/// Tracker → giver: whether the taker's copy matched the manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// The transfer.
    pub token: Token,
    /// `true` if the hash matched; `false` if the giver served wrong bytes.
    pub accepted: bool,
}

/// A `Get` or `Put` on a peer link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerRequest {
    /// The token from the tracker's order.
    pub token: Token,
    /// Which content.
    pub content: ContentId,
    /// Which chunk.
    pub chunk: ChunkIndex,
}

/// Chunk bytes on a peer link.
///
/// It never goes through serde as a whole: the codec writes a postcard header and then the
/// payload as raw bytes (see [`super::codec`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Data {
    /// The token of the transfer these bytes belong to.
    pub token: Token,
    /// Which content.
    pub content: ContentId,
    /// Which chunk.
    pub chunk: ChunkIndex,
    /// The bytes (or a virtual stand-in in the simulator).
    pub payload: Payload,
}
