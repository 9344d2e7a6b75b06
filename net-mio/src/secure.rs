//! Encrypted, authenticated tracker links: the Noise `NX` handshake, then records.
//!
//! Every connection to a tracker starts with a Noise handshake (`snow`, the maintained Rust
//! implementation of the Noise Protocol Framework) and carries nothing in clear after it:
//!
//! ```text
//!   node (initiator)                         tracker (responder, static key s)
//!     -> e                                    (32 bytes)
//!     <- e, ee, s, es                         (96 bytes: the tracker's key, proved)
//!     -> record(Hello …) …                    <- record(Welcome …) …
//! ```
//!
//! `NX` because a node need not have a key of its own (peers are named by their `PeerId`,
//! seeds prove their seed key inside the link) and may not know the tracker's key yet: the
//! tracker sends it, encrypted and proved by `es`, and the node checks it against the key it
//! pinned (a `#key=` in the URL, `tracker_key` in a config, or the one remembered from first
//! use) before it sends a byte of its own. One round trip, whichever way the key is known.
//!
//! On the wire each Noise message is a 2-byte big-endian length and the message (at most
//! 65 535 bytes, so a record holds up to 65 519 bytes of plaintext). ChaCha20-Poly1305 with a
//! counter nonce per direction: a record changed, dropped, replayed or reordered on the way
//! fails to decrypt and the link closes. The prologue binds the protocol's name, so a Noise
//! handshake meant for something else cannot be replayed here.
//!
//! **Peer links** need no handshake: the tracker hands both ends of a transfer the same fresh
//! secret in their orders (`TransferOrder::key`, over their encrypted tracker links). The
//! connecting end sends the secret's 16-byte id in clear ([`LinkSecret::id`]), the accepting
//! end finds the secret among its orders, and from then on both seal records the same way,
//! AES-256-GCM under a key per direction derived from the secret and a counter nonce.
//! Only the two ends the tracker named (and the tracker) can read or write the link.
//!
//! This module is pure (no sockets): the driver hands it the bytes it reads and sends the
//! bytes it returns. The handshake's ephemeral keys come from the OS through `snow`.

use std::fmt;
use std::str::FromStr;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use pdtp_core::wire::LinkSecret;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, Tag, UnboundKey};

/// The Noise protocol of every tracker link.
const NOISE_PARAMS: &str = "Noise_NX_25519_ChaChaPoly_BLAKE2s";
/// Bound into the handshake: both ends must mean this protocol.
const PROLOGUE: &[u8] = b"pdtp tracker link v1";
// The simulator charges every tracker-link message this much.
const _: () = assert!((LEN_PREFIX + TAG_LEN) as u64 == pdtp_core::wire::RECORD_OVERHEAD);
const _: () = assert!(MAX_PLAIN as u64 == pdtp_core::wire::MAX_RECORD_PLAINTEXT);

/// The largest Noise message.
const MAX_MESSAGE: usize = 65_535;
/// Bytes an encrypted record adds to its plaintext (the Poly1305 tag).
const TAG_LEN: usize = 16;
/// The most plaintext one record carries.
const MAX_PLAIN: usize = MAX_MESSAGE - TAG_LEN;
/// The length prefix of a record.
const LEN_PREFIX: usize = 2;
/// A node's first handshake message: its ephemeral key, nothing else.
const FIRST_MESSAGE: usize = 32;
/// Plaintext a node may queue before the handshake finishes (its `Hello` and little else).
const MAX_HELD: usize = 1 << 20;
/// Room for one handshake message: NX's are 32 and 96 bytes with empty payloads.
const HANDSHAKE_ROOM: usize = 256;

/// A tracker's public link key (X25519), as the tracker prints it and a URL pins it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkKey(pub [u8; 32]);

impl fmt::Display for LinkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LinkKey({self})")
    }
}

impl serde::Serialize for LinkKey {
    /// As it prints: 64 hex digits.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl FromStr for LinkKey {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // The same 64-hex-digit form as a seed key: one parser for both.
        let key = s.trim().parse::<pdtp_core::signing::SeedKey>();
        key.map(|k| Self(k.0)).map_err(|_| "a tracker key is 64 hex digits (as the tracker prints at start)")
    }
}

/// A tracker's static link key pair.
#[derive(Clone)]
pub struct TrackerKey {
    secret: [u8; 32],
    public: LinkKey,
}

impl TrackerKey {
    /// The key pair of a 32-byte secret (any bytes: X25519 clamps them).
    pub fn from_secret(secret: [u8; 32]) -> Self {
        let public = curve25519_dalek::MontgomeryPoint::mul_base_clamped(secret).to_bytes();
        Self { secret, public: LinkKey(public) }
    }

    /// What nodes pin.
    pub fn public(&self) -> LinkKey {
        self.public
    }
}

impl fmt::Debug for TrackerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TrackerKey({})", self.public)
    }
}

/// Why a secure link failed; the driver closes it and says this.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecureError {
    /// The tracker proved a key other than the pinned one.
    #[error(
        "the tracker's key is {got}, not the pinned {pinned} (another tracker, or someone in the middle)"
    )]
    WrongKey {
        /// The key it proved.
        got: LinkKey,
        /// The key we expected.
        pinned: LinkKey,
    },
    /// A handshake message did not verify or had the wrong shape.
    #[error("the encrypted link's handshake failed (not a PDTP tracker link, or changed on the way)")]
    Handshake,
    /// A record did not decrypt.
    #[error("a record on the encrypted link did not verify (changed, dropped or replayed on the way)")]
    BadRecord,
    /// More plaintext queued before the handshake finished than any node sends.
    #[error("over {MAX_HELD} bytes queued before the link's handshake finished")]
    HeldTooMuch,
}

enum State {
    /// The tracker's end before the node's first message: its secret key.
    Listening(Box<[u8; 32]>),
    /// The node's end, waiting for the tracker's message.
    Handshake(Box<snow::HandshakeState>),
    Open(Box<snow::TransportState>),
    /// A peer link's accepting end, before the connecting end's link id has found its secret.
    AwaitingKey,
    /// A peer link, sealed with its order's secret.
    Peer(Box<PeerCipher>),
    Failed,
}

/// Bytes of a peer link's id, sent in clear first by the connecting end.
const LINK_ID_LEN: usize = 16;

/// A peer link's two directions: AES-256-GCM keys derived from the order's secret and a
/// counter nonce each. AES-GCM because peer links carry the bulk of every byte and, with
/// the AES and carry-less multiply instructions of today's CPUs, it seals several times
/// faster than ChaCha20-Poly1305 (docs/performance.md); each direction's key is used on
/// one link only, so counter nonces never repeat under a key.
struct PeerCipher {
    send: LessSafeKey,
    recv: LessSafeKey,
    sent: u64,
    received: u64,
}

impl PeerCipher {
    fn new(secret: &LinkSecret, connecting: bool) -> Self {
        let (out, inn) = (secret.derive(b"pdtp peer link c2a v1"), secret.derive(b"pdtp peer link a2c v1"));
        let (send, recv) = if connecting { (out, inn) } else { (inn, out) };
        // ring refuses only a key of the wrong length; any 32 bytes are an AES-256 key.
        #[allow(clippy::expect_used)]
        let key =
            |k: [u8; 32]| LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &k).expect("a 32-byte AES-256 key"));
        Self { send: key(send), recv: key(recv), sent: 0, received: 0 }
    }

    fn nonce(n: u64) -> Nonce {
        let mut b = [0u8; 12];
        b[4..].copy_from_slice(&n.to_le_bytes());
        Nonce::assume_unique_for_key(b)
    }

    /// Seals the concatenation of `parts` into records on `out` (one copy of each byte,
    /// encrypted in place).
    fn seal(&mut self, parts: &[&[u8]], out: &mut Vec<Bytes>) -> Result<(), SecureError> {
        let mut left: usize = parts.iter().map(|p| p.len()).sum();
        let records = left.div_ceil(MAX_PLAIN).max(1);
        let mut buf = BytesMut::with_capacity(left + records * (LEN_PREFIX + TAG_LEN));
        let mut rest = parts.iter().copied().filter(|p| !p.is_empty());
        let mut cur: &[u8] = &[];
        for _ in 0..records {
            let len = left.min(MAX_PLAIN);
            let at = buf.len();
            // At most MAX_PLAIN + TAG_LEN = 65 535.
            buf.put_u16(u16::try_from(len + TAG_LEN).map_err(|_| SecureError::BadRecord)?);
            let mut need = len;
            while need > 0 {
                if cur.is_empty() {
                    cur = rest.next().ok_or(SecureError::BadRecord)?;
                }
                let take = need.min(cur.len());
                buf.extend_from_slice(&cur[..take]);
                cur = &cur[take..];
                need -= take;
            }
            let tag = self
                .send
                .seal_in_place_separate_tag(Self::nonce(self.sent), Aad::empty(), &mut buf[at + LEN_PREFIX..])
                .map_err(|_| SecureError::BadRecord)?;
            self.sent += 1;
            buf.extend_from_slice(tag.as_ref());
            left -= len;
        }
        out.push(buf.freeze());
        Ok(())
    }

    /// Opens one record (`msg`: ciphertext and tag) onto the end of `plain`.
    fn open(&mut self, msg: &[u8], plain: &mut BytesMut) -> Result<usize, SecureError> {
        let (ct, tag) = msg.split_at(msg.len().checked_sub(TAG_LEN).ok_or(SecureError::BadRecord)?);
        let start = plain.len();
        plain.extend_from_slice(ct);
        let tag = Tag::try_from(tag).map_err(|_| SecureError::BadRecord)?;
        let opened = self.recv.open_in_place_separate_tag(
            Self::nonce(self.received),
            Aad::empty(),
            tag,
            &mut plain[start..],
            0..,
        );
        if opened.is_err() {
            // Nothing of a record that does not verify stays in `plain`.
            plain.truncate(start);
            return Err(SecureError::BadRecord);
        }
        self.received += 1;
        Ok(ct.len())
    }
}

/// One encrypted link, either end.
pub struct SecureLink {
    state: State,
    /// The key the tracker must prove (initiator only).
    pin: Option<LinkKey>,
    /// The tracker's proved key, once known.
    remote: Option<LinkKey>,
    /// Plaintext sealed before the handshake finished, sent when it does.
    held: BytesMut,
}

impl fmt::Debug for SecureLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Listening(_) | State::Handshake(_) => "handshake",
            State::Open(_) => "open",
            State::AwaitingKey => "awaiting its key",
            State::Peer(_) => "peer link",
            State::Failed => "failed",
        };
        f.debug_struct("SecureLink").field("state", &state).field("remote", &self.remote).finish()
    }
}

fn builder() -> snow::Builder<'static> {
    #[allow(clippy::expect_used)] // a constant this module's tests parse
    let params = NOISE_PARAMS.parse().expect("the Noise parameters parse");
    snow::Builder::new(params)
}

impl SecureLink {
    /// A node's end of a link to a tracker, which must prove `pin` if given; returns the
    /// first handshake message to send.
    pub fn initiator(pin: Option<LinkKey>) -> Result<(Self, Bytes), SecureError> {
        let mut hs = builder()
            .prologue(PROLOGUE)
            .and_then(snow::Builder::build_initiator)
            .map_err(|_| SecureError::Handshake)?;
        let mut out = BytesMut::new();
        write_message(&mut out, HANDSHAKE_ROOM, |buf| hs.write_message(&[], buf))?;
        let link = Self { state: State::Handshake(Box::new(hs)), pin, remote: None, held: BytesMut::new() };
        Ok((link, out.freeze()))
    }

    /// The tracker's end of a link (it answers the node's first message).
    pub fn responder(key: &TrackerKey) -> Self {
        Self { state: State::Listening(Box::new(key.secret)), pin: None, remote: None, held: BytesMut::new() }
    }

    /// A peer link's connecting end, sealed with its order's `secret`; returns the link id to
    /// send first, in clear.
    pub fn peer_connecting(secret: &LinkSecret) -> (Self, Bytes) {
        let link = Self {
            state: State::Peer(Box::new(PeerCipher::new(secret, true))),
            pin: None,
            remote: None,
            held: BytesMut::new(),
        };
        (link, Bytes::copy_from_slice(&secret.id()))
    }

    /// A peer link's accepting end: it reads the link id first ([`SecureLink::wanted_key`]).
    pub fn peer_accepting() -> Self {
        Self { state: State::AwaitingKey, pin: None, remote: None, held: BytesMut::new() }
    }

    /// The link id at the front of `wire`, once it has come, while the accepting end of a
    /// peer link waits for its secret: the driver looks it up among its orders.
    pub fn wanted_key(&self, wire: &BytesMut) -> Option<[u8; LINK_ID_LEN]> {
        match self.state {
            State::AwaitingKey => wire.get(..LINK_ID_LEN).and_then(|id| id.try_into().ok()),
            _ => None,
        }
    }

    /// The accepting end found the secret of the id at the front of `wire`: it takes the id
    /// off and seals the link with it (what it was asked to send meanwhile goes on `out`).
    pub fn accept_key(
        &mut self,
        wire: &mut BytesMut,
        secret: &LinkSecret,
        out: &mut Vec<Bytes>,
    ) -> Result<(), SecureError> {
        if self.wanted_key(wire).is_some_and(|id| id == secret.id()) {
            wire.advance(LINK_ID_LEN);
            self.state = State::Peer(Box::new(PeerCipher::new(secret, false)));
            return self.flush_held(out);
        }
        Ok(())
    }

    /// The tracker's proved key (initiator, after the handshake).
    pub fn remote_key(&self) -> Option<LinkKey> {
        self.remote
    }

    /// Whether records flow (the handshake is done, or a peer link's key is known).
    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Open(_) | State::Peer(_))
    }

    /// Takes every whole record off the front of `wire`: handshake messages are answered on
    /// `out`; the plaintext of records is appended to `plain`. Returns the plaintext bytes
    /// added. An error leaves the link failed: close it.
    pub fn open(
        &mut self,
        wire: &mut BytesMut,
        plain: &mut BytesMut,
        out: &mut Vec<Bytes>,
    ) -> Result<usize, SecureError> {
        let r = self.open_inner(wire, plain, out);
        if r.is_err() {
            self.state = State::Failed;
        }
        r
    }

    fn open_inner(
        &mut self,
        wire: &mut BytesMut,
        plain: &mut BytesMut,
        out: &mut Vec<Bytes>,
    ) -> Result<usize, SecureError> {
        let mut added = 0;
        while wire.len() >= LEN_PREFIX && !matches!(self.state, State::AwaitingKey) {
            let len = usize::from(u16::from_be_bytes([wire[0], wire[1]]));
            if wire.len() < LEN_PREFIX + len {
                break;
            }
            wire.advance(LEN_PREFIX);
            let msg = wire.split_to(len);
            match &mut self.state {
                State::Open(t) => {
                    if len < TAG_LEN {
                        return Err(SecureError::BadRecord);
                    }
                    let start = plain.len();
                    plain.resize(start + len - TAG_LEN, 0);
                    let opened = t.read_message(&msg, &mut plain[start..]);
                    // Nothing of a record that does not verify stays in `plain`.
                    plain.truncate(start + *opened.as_ref().unwrap_or(&0));
                    added += opened.map_err(|_| SecureError::BadRecord)?;
                }
                State::Peer(c) => added += c.open(&msg, plain)?,
                State::Handshake(_) => self.finish_initiator(&msg, out)?,
                State::Listening(_) => self.answer_initiator(&msg, out)?,
                State::AwaitingKey | State::Failed => return Err(SecureError::BadRecord),
            }
        }
        Ok(added)
    }

    /// The tracker answers `-> e` with `<- e, ee, s, es` and is open.
    fn answer_initiator(&mut self, msg: &[u8], out: &mut Vec<Bytes>) -> Result<(), SecureError> {
        // Any 32 bytes are an ephemeral key, so only the length tells a node's first message
        // from something else (a node that speaks PDTP in clear sends a 4-byte frame length
        // first, which reads as a record of 0 bytes).
        if msg.len() != FIRST_MESSAGE {
            return Err(SecureError::Handshake);
        }
        let State::Listening(secret) = std::mem::replace(&mut self.state, State::Failed) else {
            return Err(SecureError::Handshake);
        };
        let mut hs = builder()
            .local_private_key(&secret[..])
            .and_then(|b| b.prologue(PROLOGUE))
            .and_then(snow::Builder::build_responder)
            .map_err(|_| SecureError::Handshake)?;
        let mut payload = [0u8; MAX_MESSAGE];
        hs.read_message(msg, &mut payload).map_err(|_| SecureError::Handshake)?;
        let mut reply = BytesMut::new();
        write_message(&mut reply, HANDSHAKE_ROOM, |buf| hs.write_message(&[], buf))?;
        out.push(reply.freeze());
        self.state = State::Open(Box::new(hs.into_transport_mode().map_err(|_| SecureError::Handshake)?));
        self.flush_held(out)
    }

    /// The node reads `<- e, ee, s, es`, checks the tracker's key and is open.
    fn finish_initiator(&mut self, msg: &[u8], out: &mut Vec<Bytes>) -> Result<(), SecureError> {
        let State::Handshake(hs) = std::mem::replace(&mut self.state, State::Failed) else {
            return Err(SecureError::Handshake);
        };
        let mut hs = hs;
        let mut payload = [0u8; MAX_MESSAGE];
        hs.read_message(msg, &mut payload).map_err(|_| SecureError::Handshake)?;
        let got = hs
            .get_remote_static()
            .and_then(|k| <[u8; 32]>::try_from(k).ok())
            .map(LinkKey)
            .ok_or(SecureError::Handshake)?;
        if let Some(pinned) = self.pin.filter(|p| *p != got) {
            return Err(SecureError::WrongKey { got, pinned });
        }
        self.remote = Some(got);
        self.state = State::Open(Box::new(hs.into_transport_mode().map_err(|_| SecureError::Handshake)?));
        self.flush_held(out)
    }

    /// Seals `plain` into records on `out`; before the handshake finishes it is held and
    /// sealed when it does.
    pub fn seal(&mut self, plain: &[u8], out: &mut Vec<Bytes>) -> Result<(), SecureError> {
        self.seal_parts(&[plain], out)
    }

    /// Seals the concatenation of `parts` (a frame head and a chunk's bytes) like
    /// [`SecureLink::seal`], without joining them first on a peer link.
    pub fn seal_parts(&mut self, parts: &[&[u8]], out: &mut Vec<Bytes>) -> Result<(), SecureError> {
        match &mut self.state {
            State::Peer(c) => c.seal(parts, out),
            State::Open(t) => seal_records(t, &parts.concat(), out),
            State::Failed => Err(SecureError::BadRecord),
            State::Listening(_) | State::Handshake(_) | State::AwaitingKey => {
                let plain = parts.concat();
                if self.held.len() + plain.len() > MAX_HELD {
                    return Err(SecureError::HeldTooMuch);
                }
                self.held.extend_from_slice(&plain);
                Ok(())
            }
        }
    }

    fn flush_held(&mut self, out: &mut Vec<Bytes>) -> Result<(), SecureError> {
        let held = std::mem::take(&mut self.held);
        match &mut self.state {
            State::Open(t) if !held.is_empty() => seal_records(t, &held, out),
            State::Peer(c) if !held.is_empty() => c.seal(&[&held], out),
            _ => Ok(()),
        }
    }
}

fn seal_records(t: &mut snow::TransportState, plain: &[u8], out: &mut Vec<Bytes>) -> Result<(), SecureError> {
    let mut buf = BytesMut::with_capacity(
        plain.len() + plain.len().div_ceil(MAX_PLAIN).max(1) * (LEN_PREFIX + TAG_LEN),
    );
    for piece in plain.chunks(MAX_PLAIN) {
        write_message(&mut buf, piece.len() + TAG_LEN, |b| t.write_message(piece, b))?;
    }
    out.push(buf.freeze());
    Ok(())
}

/// Appends one length-prefixed Noise message of at most `room` bytes that `write` produces
/// (`room` fits the message: zero-filling a whole 64 KiB frame for every small control
/// message would cost more than sealing it).
fn write_message(
    out: &mut BytesMut,
    room: usize,
    write: impl FnOnce(&mut [u8]) -> Result<usize, snow::Error>,
) -> Result<(), SecureError> {
    let at = out.len();
    out.put_u16(0);
    out.resize(at + LEN_PREFIX + room.min(MAX_MESSAGE), 0);
    let n = write(&mut out[at + LEN_PREFIX..]).map_err(|_| SecureError::Handshake)?;
    out.truncate(at + LEN_PREFIX + n);
    let len = u16::try_from(n).map_err(|_| SecureError::Handshake)?;
    out[at..at + LEN_PREFIX].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests;
