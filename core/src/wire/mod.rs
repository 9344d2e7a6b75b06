//! The PDTP wire vocabulary and its framing.
//!
//! One module per message family, one [`codec`] for framing and limits (STYLE 7). Every
//! message is decoded fully into a typed [`Message`] before any state is touched. The full
//! specification, with who sends what and when, is `docs/protocol.md`.

pub mod codec;
mod handshake;
mod info;
mod interest;
mod transfer;

pub use handshake::{ErrorCode, Hello, Notice, PROTOCOL_VERSION, Role, Welcome};

/// Bytes the encryption of a link adds to each record: its 2-byte length and its 16-byte
/// Poly1305 tag (docs/protocol.md, "The tracker link", "Peer links"). The simulator charges
/// it; the runtime's record layer (`pdtp_net_mio::secure`) is held to it.
pub const RECORD_OVERHEAD: u64 = 18;

/// The most plaintext one record carries (a Noise message of 65 535 bytes less its tag).
pub const MAX_RECORD_PLAINTEXT: u64 = 65_519;
pub use info::{AppendChunks, AskInfo, Publish, Published, TellInfo};
pub use interest::Interest;
pub use transfer::{Completed, Data, LinkSecret, Method, PeerRequest, Side, TransferOrder, Verdict};

use serde::{Deserialize, Serialize};

/// Every message of PDTP, tracker links and peer links alike.
///
/// `Data` is special on the wire: its payload travels as raw bytes after a small postcard
/// header (see [`codec`]); every other variant is one postcard body.
///
/// The three rare variants that carry manifests or hash lists are boxed (the wire format is
/// the same), so a message, which waits in every send queue, is 64 bytes instead of 120.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// First message on every connection, from the connecting side.
    Hello(Hello),
    /// Tracker's answer to `Hello` from a peer or seed.
    Welcome(Welcome),
    /// Peer → tracker: describe the content at a path.
    AskInfo(AskInfo),
    /// Tracker → peer: the manifest for a path.
    TellInfo(Box<TellInfo>),
    /// Seed → tracker: publish a content with its manifest, proving the seed key.
    Publish(Box<Publish>),
    /// Tracker → seed: the content id assigned to a publish.
    Published(Published),
    /// Seed → tracker, and tracker → viewers: a live manifest grew.
    AppendChunks(Box<AppendChunks>),
    /// Peer → tracker: want these bytes.
    Request(Interest),
    /// Peer → tracker: no longer want these bytes.
    Unrequest(Interest),
    /// Peer → tracker: can serve these bytes (whole chunks only).
    Provide(Interest),
    /// Peer → tracker: can no longer serve these bytes.
    Unprovide(Interest),
    /// Tracker → both ends of a scheduled transfer.
    Transfer(TransferOrder),
    /// Taker → tracker: the transfer ended (hash of what arrived, or failure).
    Completed(Completed),
    /// Tracker → giver: whether the taker's copy verified.
    Verdict(Verdict),
    /// Taker → giver on a peer link: send me this chunk.
    Get(PeerRequest),
    /// Giver → taker on a peer link: I am about to send this chunk (a `Data` follows).
    Put(PeerRequest),
    /// A fatal problem: the sender closes the connection after this.
    Error(Notice),
    /// A non-fatal problem: the connection stays open.
    Warning(Notice),
    /// Chunk bytes on a peer link. Framed by the codec as a header plus raw bytes, never
    /// through serde (hence skipped; it stays the last variant so the others' indexes hold).
    #[serde(skip)]
    Data(Data),
}

const _: () = assert!(std::mem::size_of::<Message>() <= 64, "a new large variant: box it");

impl Message {
    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Hello(_) => "hello",
            Message::Welcome(_) => "welcome",
            Message::AskInfo(_) => "ask_info",
            Message::TellInfo(_) => "tell_info",
            Message::Publish(_) => "publish",
            Message::Published(_) => "published",
            Message::AppendChunks(_) => "append_chunks",
            Message::Request(_) => "request",
            Message::Unrequest(_) => "unrequest",
            Message::Provide(_) => "provide",
            Message::Unprovide(_) => "unprovide",
            Message::Transfer(_) => "transfer",
            Message::Completed(_) => "completed",
            Message::Verdict(_) => "verdict",
            Message::Get(_) => "get",
            Message::Put(_) => "put",
            Message::Data(_) => "data",
            Message::Error(_) => "error",
            Message::Warning(_) => "warning",
        }
    }
}
