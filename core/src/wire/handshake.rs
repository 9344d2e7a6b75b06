//! Connection opening and problem reports: hello, welcome, error, warning.

use serde::{Deserialize, Serialize};

use crate::ids::{PeerId, Token};

/// The protocol version this crate speaks. 2: no `Started` message; `Completed` carries
/// the copy's duration (`copy_us`). 3: publishes, manifests and live appends carry an
/// optional seed signature. 4: a publish may state the seed's uplink (`Publish::uplink_bps`).
/// 5: an order carries its peer link's secret (`TransferOrder::key`); peer links are sealed.
/// 6: peer links are sealed with AES-256-GCM instead of ChaCha20-Poly1305 (same framing).
/// 7: an order may tell both ends behind NAT to punch through to each other
/// (`TransferOrder::punch`).
pub const PROTOCOL_VERSION: u16 = 8;

/// What a connecting node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    /// A viewer: downloads and shares.
    Peer,
    /// A publisher: must prove the tracker's seed key before publishing.
    Seed,
}

/// First message on every connection (to the tracker and between peers).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// [`PROTOCOL_VERSION`] of the sender.
    pub version: u16,
    /// The sender's id; the tracker refuses a duplicate.
    pub peer_id: PeerId,
    /// Port the sender accepts peer connections on, if it accepts any.
    pub listen_port: Option<u16>,
    /// What the sender is.
    pub role: Role,
}

/// Tracker → node: the hello was accepted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// The id the tracker registered (the one from `Hello`).
    pub peer_id: PeerId,
    /// A fresh random challenge; seeds bind their publish proofs to it.
    pub nonce: [u8; 16],
}

/// Machine-readable reason carried by `Error` and `Warning`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErrorCode {
    /// A message arrived before `Hello`, or `Hello` twice.
    HelloExpected,
    /// The protocol version is not supported.
    BadVersion,
    /// Another connected node already uses this peer id.
    DuplicatePeerId,
    /// A publish without a valid seed proof, or from a non-seed.
    Unauthorized,
    /// No content is published at that path.
    UnknownUrl,
    /// A content id the receiver does not know.
    UnknownContent,
    /// A byte range that starts past the end of the content.
    RangePastEnd,
    /// A transfer token that matches no order for this pair and chunk.
    TokenRefused,
    /// A frame that could not be decoded.
    Malformed,
    /// A message that makes no sense in the current state.
    Unexpected,
    /// The receiver is over a limit (connections, transfers, manifest size).
    Overloaded,
    /// The sender is shutting down.
    GoingAway,
    /// A chunk the giver does not hold (any more).
    ChunkUnavailable,
    /// Tracker → viewers: the seed withdrew the content (it changed at its source) and
    /// nobody else holds all of it, so the version being fetched cannot be completed.
    /// Version 7.
    Withdrawn,
}

impl ErrorCode {
    /// Every code, in wire order (a code's index here is its encoded discriminant).
    pub const ALL: [ErrorCode; 14] = [
        ErrorCode::HelloExpected,
        ErrorCode::BadVersion,
        ErrorCode::DuplicatePeerId,
        ErrorCode::Unauthorized,
        ErrorCode::UnknownUrl,
        ErrorCode::UnknownContent,
        ErrorCode::RangePastEnd,
        ErrorCode::TokenRefused,
        ErrorCode::Malformed,
        ErrorCode::Unexpected,
        ErrorCode::Overloaded,
        ErrorCode::GoingAway,
        ErrorCode::ChunkUnavailable,
        ErrorCode::Withdrawn,
    ];
}

/// An error or warning: a code, the transfer it concerns if any, and a readable detail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// What went wrong.
    pub code: ErrorCode,
    /// The transfer the notice is about (a refused token, an unavailable chunk), if any.
    pub token: Option<Token>,
    /// Details for a person reading logs.
    pub detail: String,
}

impl Notice {
    /// A notice about the connection as a whole.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self { code, token: None, detail: detail.into() }
    }

    /// A notice about one transfer.
    pub fn about(token: Token, code: ErrorCode, detail: impl Into<String>) -> Self {
        Self { code, token: Some(token), detail: detail.into() }
    }
}
