//! Framing: length-prefixed frames with postcard bodies and raw chunk payloads.
//!
//! Every message travels in one frame. A frame is a 4-byte big-endian length `L` counting
//! everything after it, one kind byte, and a body of `L - 1` bytes:
//!
//! ```text
//!  0                 4        5                                   4 + L
//!  +-----------------+--------+-----------------------------------+
//!  |  L: u32, BE     |  kind  |  body: L - 1 bytes                |
//!  +-----------------+--------+-----------------------------------+
//!
//!  kind 0  control       body = postcard(Message)              every variant but Data
//!  kind 1  data          body = postcard(DataHeader) ‖ payload  exactly DataHeader.len raw bytes
//!  kind 2  virtual data  body = postcard(DataHeader) ‖ tag      the 32-byte content tag
//! ```
//!
//! A chunk payload never goes through serde: [`encode_data_header`] writes the frame head so
//! a runtime can send the payload's [`Bytes`](bytes::Bytes) after it with vectored I/O, and
//! [`Decoder`] hands payloads out as slices of its receive buffer, without copying.
//!
//! # Limits and errors
//!
//! [`Limits`] bounds a control body and a chunk payload. The [`Decoder`] checks a frame's
//! declared length against them as soon as the length and kind bytes have arrived, before it
//! reserves anything for the frame, so a hostile length costs nothing. Every malformed input
//! becomes a [`DecodeError`]; nothing panics. Decoding is strict: a body is accepted only if
//! it is exactly what [`encode`] would produce for the decoded message (no trailing bytes, no
//! over-long varints), so `encode(decode(frame)) == frame` for every accepted frame. After the
//! first error the decoder is poisoned: the connection is expected to close.
//!
//! # Virtual payloads
//!
//! A kind-2 frame carries no bytes, only the digest they would have, and
//! [`Payload::verify`] accepts a virtual payload whose tag is the manifest's hash. Since the
//! manifest is public, a node that stores real bytes must never accept one from the network:
//! [`Decoder::new`] refuses kind 2 ([`DecodeError::VirtualRefused`]).
//! [`Decoder::virtual_payloads`] turns it on for tests and for a simulator that runs its
//! messages through the codec.

use bytes::{Buf, BufMut, BytesMut};
use serde::{Deserialize, Serialize};

use super::{Data, ErrorCode, Message, Notice};
use crate::ids::{ChunkIndex, ContentId, Token};
use crate::manifest::Digest;
use crate::payload::Payload;

/// Bytes before the body: the length prefix and the kind byte.
pub const FRAME_HEAD_LEN: usize = 5;

/// The longest postcard encoding of a [`DataHeader`]: four varints of 10, 5, 5 and 5 bytes.
pub const DATA_HEADER_MAX_LEN: usize = 25;

/// Bytes of a virtual payload's tag on the wire.
const TAG_LEN: usize = 32;

/// The byte after the length prefix: how to read the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// A postcard-encoded [`Message`] (any variant but `Data`).
    Control = 0,
    /// A [`DataHeader`] followed by the payload's raw bytes.
    Data = 1,
    /// A [`DataHeader`] followed by a 32-byte tag: a [`Payload::Virtual`].
    VirtualData = 2,
}

/// The largest frames a [`Decoder`] accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest control body in bytes (the postcard encoding of one message).
    ///
    /// A manifest carries 32 bytes per chunk, so this also bounds the chunk count of a
    /// `TellInfo` or `Publish`: 16 MiB holds about 500 000 chunk hashes.
    pub max_control: u32,
    /// Largest chunk payload in bytes (real or virtual).
    pub max_payload: u32,
}

/// The fixed fields of a `Data` frame, encoded with postcard before the payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataHeader {
    /// The transfer's token.
    pub token: Token,
    /// Which content.
    pub content: ContentId,
    /// Which chunk.
    pub chunk: ChunkIndex,
    /// Payload length in bytes (for a virtual payload: the length it stands for).
    pub len: u32,
}

/// Why a message could not be encoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A real payload longer than a `u32` can describe.
    #[error("payload of {len} bytes is longer than a frame can carry")]
    PayloadTooLarge {
        /// The payload's length.
        len: usize,
    },
    /// The frame would be longer than its `u32` length prefix can describe.
    #[error("frame of {len} bytes does not fit a u32 length prefix")]
    FrameTooLarge {
        /// Bytes after the length prefix.
        len: usize,
    },
    /// Postcard refused the message (it never does for the types of this crate).
    #[error("postcard could not encode the message: {0}")]
    Serialize(#[source] postcard::Error),
}

/// Why a byte stream is not a valid sequence of frames. The connection should be closed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// A frame's declared length is over the limit for its kind.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// The declared length `L` (bytes after the prefix).
        len: u32,
        /// The largest `L` accepted for this frame.
        max: u64,
    },
    /// A frame with length zero (it has no room for a kind byte).
    #[error("empty frame")]
    EmptyFrame,
    /// A kind byte other than 0, 1 or 2.
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// Postcard could not decode the body (bad variant, bad UTF-8, truncated body, ...).
    #[error("malformed frame body: {0}")]
    Malformed(#[source] postcard::Error),
    /// The body decoded but bytes were left over.
    #[error("{count} bytes left over after the frame body")]
    TrailingBytes {
        /// Bytes left over.
        count: usize,
    },
    /// The body decoded but is not the encoding postcard produces (e.g. an over-long varint).
    #[error("frame body is not in canonical postcard form")]
    NonCanonical,
    /// A data header declares a payload over the limit.
    #[error("payload of {len} bytes exceeds the limit of {max}")]
    PayloadTooLarge {
        /// Declared payload length.
        len: u32,
        /// [`Limits::max_payload`].
        max: u32,
    },
    /// A data frame carries a different number of payload bytes than its header declares.
    #[error("data header declares {declared} payload bytes, frame carries {actual}")]
    PayloadLengthMismatch {
        /// Length in the header.
        declared: u32,
        /// Bytes after the header.
        actual: usize,
    },
    /// A virtual-payload frame reached a decoder that moves real bytes only.
    #[error("virtual payloads are refused on this connection")]
    VirtualRefused,
    /// An earlier error poisoned this decoder.
    #[error("decoder already failed")]
    Poisoned,
}

/// An incremental frame decoder for one connection.
///
/// Feed it received bytes with [`push`](Self::push), split anywhere, and drain messages with
/// [`next`](Self::next) until it returns `Ok(None)`. Real payloads come out as slices of the
/// receive buffer (no copy). The first error poisons the decoder: later calls to `next`
/// return [`DecodeError::Poisoned`] and pushed bytes are dropped.
///
/// Virtual payloads (kind 2) are refused unless enabled with
/// [`virtual_payloads`](Self::virtual_payloads).
#[derive(Debug)]
pub struct Decoder {
    limits: Limits,
    buf: BytesMut,
    accept_virtual: bool,
    poisoned: bool,
}

/// Appends the whole frame for `msg` to `out`.
///
/// A real `Data` payload is copied into `out`; to avoid that copy use
/// [`encode_data_header`] and send the payload's `Bytes` after it. The encoder does not apply
/// [`Limits`]: a frame over the receiver's limits is refused by the receiver.
pub fn encode(msg: &Message, out: &mut BytesMut) -> Result<(), EncodeError> {
    match msg {
        Message::Data(data) => {
            if let Payload::Real(bytes) = &data.payload {
                out.reserve(FRAME_HEAD_LEN + DATA_HEADER_MAX_LEN + bytes.len());
            }
            encode_data_header(data, out)?;
            if let Payload::Real(bytes) = &data.payload {
                out.extend_from_slice(bytes);
            }
            Ok(())
        }
        _ => encode_control(msg, out),
    }
}

/// Appends the head of a `Data` frame to `out`: everything except a real payload's bytes.
///
/// For [`Payload::Real`] the caller must send exactly the payload's bytes right after what
/// this wrote. For [`Payload::Virtual`] this writes the whole frame (the tag included).
pub fn encode_data_header(data: &Data, out: &mut BytesMut) -> Result<(), EncodeError> {
    let (kind, len, payload_len, tag) = match &data.payload {
        Payload::Real(bytes) => {
            let len =
                u32::try_from(bytes.len()).map_err(|_| EncodeError::PayloadTooLarge { len: bytes.len() })?;
            (Kind::Data, len, bytes.len(), None)
        }
        Payload::Virtual { len, tag } => (Kind::VirtualData, *len, 0, Some(tag)),
    };
    let header = DataHeader { token: data.token, content: data.content, chunk: data.chunk, len };
    let written = header.encoded_len() + tag.map_or(0, |_| TAG_LEN);
    let frame_len = 1 + written + payload_len;
    let prefix = u32::try_from(frame_len).map_err(|_| EncodeError::FrameTooLarge { len: frame_len })?;
    let start = out.len();
    out.reserve(FRAME_HEAD_LEN + written);
    out.put_u32(prefix);
    out.put_u8(kind as u8);
    if let Err(e) = postcard::serialize_with_flavor(&header, Append(out)) {
        out.truncate(start);
        return Err(EncodeError::Serialize(e));
    }
    if let Some(tag) = tag {
        out.extend_from_slice(&tag.0);
    }
    Ok(())
}

/// The exact size in bytes of the frame [`encode`] produces for `msg`, prefix included.
///
/// For `Data` this is arithmetic on the header and the payload's length (the payload bytes
/// are not read); for control messages it is one allocation-free postcard sizing pass.
pub fn encoded_len(msg: &Message) -> usize {
    match msg {
        Message::Data(data) => {
            let (len, tail) = match &data.payload {
                Payload::Real(bytes) => (u32::try_from(bytes.len()).unwrap_or(u32::MAX), bytes.len()),
                Payload::Virtual { len, .. } => (*len, TAG_LEN),
            };
            let header = DataHeader { token: data.token, content: data.content, chunk: data.chunk, len };
            FRAME_HEAD_LEN + header.encoded_len() + tail
        }
        // Sizing cannot fail: the `Size` flavor never refuses a byte and every type in a
        // control message serializes infallibly (only the skipped `Data` variant would not).
        _ => {
            FRAME_HEAD_LEN
                + postcard::serialize_with_flavor(msg, postcard::ser_flavors::Size::default()).unwrap_or(0)
        }
    }
}

impl Limits {
    /// The defaults: 16 MiB control bodies, 16 MiB chunk payloads.
    pub const DEFAULT: Self = Self::new(16 << 20, 16 << 20);

    /// Limits with the given largest control body and largest chunk payload, in bytes.
    pub const fn new(max_control: u32, max_payload: u32) -> Self {
        Self { max_control, max_payload }
    }

    /// The largest frame length `L` (bytes after the prefix) accepted for `kind`.
    pub fn max_frame_len(&self, kind: Kind) -> u64 {
        let body = match kind {
            Kind::Control => u64::from(self.max_control),
            Kind::Data => (DATA_HEADER_MAX_LEN as u64) + u64::from(self.max_payload),
            Kind::VirtualData => (DATA_HEADER_MAX_LEN + TAG_LEN) as u64,
        };
        1 + body
    }

    /// The largest frame length `L` accepted for any kind.
    fn max_any_frame_len(&self) -> u64 {
        [Kind::Control, Kind::Data, Kind::VirtualData]
            .into_iter()
            .map(|k| self.max_frame_len(k))
            .max()
            .unwrap_or(0)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl Kind {
    /// The kind for a kind byte, if it is one.
    pub fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            0 => Some(Kind::Control),
            1 => Some(Kind::Data),
            2 => Some(Kind::VirtualData),
            _ => None,
        }
    }
}

impl DataHeader {
    /// The exact length of this header's postcard encoding (at most [`DATA_HEADER_MAX_LEN`]).
    pub fn encoded_len(&self) -> usize {
        varint_len(self.token.0)
            + varint_len(u64::from(self.content.0))
            + varint_len(u64::from(self.chunk))
            + varint_len(u64::from(self.len))
    }
}

impl DecodeError {
    /// The notice to send before closing the connection over this error.
    ///
    /// Frames over a limit are reported as [`ErrorCode::Overloaded`], everything else as
    /// [`ErrorCode::Malformed`].
    pub fn notice(&self) -> Notice {
        let code = match self {
            DecodeError::FrameTooLarge { .. } | DecodeError::PayloadTooLarge { .. } => ErrorCode::Overloaded,
            _ => ErrorCode::Malformed,
        };
        Notice::new(code, self.to_string())
    }
}

impl Decoder {
    /// A decoder with an empty buffer that accepts real payloads only.
    pub fn new(limits: Limits) -> Self {
        Self { limits, buf: BytesMut::new(), accept_virtual: false, poisoned: false }
    }

    /// Whether kind-2 frames ([`Payload::Virtual`]) are accepted; off by default.
    ///
    /// Only for tests and simulations: a node that stores real bytes must refuse them (see
    /// the [module documentation](self)).
    pub fn virtual_payloads(mut self, accept: bool) -> Self {
        self.accept_virtual = accept;
        self
    }

    /// Appends received bytes. Dropped if the decoder is poisoned.
    pub fn push(&mut self, bytes: &[u8]) {
        if !self.poisoned {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// The next complete message, `Ok(None)` if more bytes are needed.
    ///
    /// Call it until it returns `Ok(None)` after every [`push`](Self::push). Once the
    /// current frame's head has arrived and passed the limits, the buffer is grown to hold
    /// the whole frame, so a large payload is received without repeated reallocation.
    #[allow(
        clippy::should_implement_trait,
        reason = "not an Iterator: Ok(None) means 'need more bytes', not the end of the stream"
    )]
    pub fn next(&mut self) -> Result<Option<Message>, DecodeError> {
        if self.poisoned {
            return Err(DecodeError::Poisoned);
        }
        match self.decode_frame() {
            Ok(msg) => Ok(msg),
            Err(e) => {
                self.poisoned = true;
                // Release the memory now; nothing buffered will ever be read.
                self.buf = BytesMut::new();
                Err(e)
            }
        }
    }

    /// Bytes received but not yet returned as messages.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Bytes the receive buffer can hold without growing (what the decoder has allocated).
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Whether an error has poisoned the decoder.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// The limits this decoder enforces.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    fn decode_frame(&mut self) -> Result<Option<Message>, DecodeError> {
        let Some(prefix) = self.buf.first_chunk::<4>() else {
            return Ok(None);
        };
        let len = u32::from_be_bytes(*prefix);
        if len == 0 {
            return Err(DecodeError::EmptyFrame);
        }
        let max = self.limits.max_any_frame_len();
        if u64::from(len) > max {
            return Err(DecodeError::FrameTooLarge { len, max });
        }
        let Some(&kind_byte) = self.buf.get(4) else {
            return Ok(None);
        };
        let kind = Kind::from_byte(kind_byte).ok_or(DecodeError::UnknownKind(kind_byte))?;
        if kind == Kind::VirtualData && !self.accept_virtual {
            return Err(DecodeError::VirtualRefused);
        }
        let max = self.limits.max_frame_len(kind);
        if u64::from(len) > max {
            return Err(DecodeError::FrameTooLarge { len, max });
        }
        let Ok(total) = usize::try_from(u64::from(len) + 4) else {
            // Only on a 16- or 32-bit target, for a frame no buffer there could hold.
            return Err(DecodeError::FrameTooLarge { len, max: (usize::MAX - 4) as u64 });
        };
        if self.buf.len() < total {
            self.buf.reserve(total - self.buf.len());
            return Ok(None);
        }
        let msg = match kind {
            Kind::Control => {
                let msg = decode_control(&self.buf[FRAME_HEAD_LEN..total])?;
                self.buf.advance(total);
                msg
            }
            Kind::VirtualData => {
                let (header, rest) = self.data_header(&self.buf[FRAME_HEAD_LEN..total])?;
                let (tag, rest) =
                    postcard::take_from_bytes::<Digest>(rest).map_err(DecodeError::Malformed)?;
                if !rest.is_empty() {
                    return Err(DecodeError::TrailingBytes { count: rest.len() });
                }
                self.buf.advance(total);
                data_message(header, Payload::Virtual { len: header.len, tag })
            }
            Kind::Data => {
                let (header, rest) = self.data_header(&self.buf[FRAME_HEAD_LEN..total])?;
                if rest.len() != header.len as usize {
                    return Err(DecodeError::PayloadLengthMismatch {
                        declared: header.len,
                        actual: rest.len(),
                    });
                }
                let payload_at = total - rest.len();
                let mut frame = self.buf.split_to(total);
                frame.advance(payload_at);
                data_message(header, Payload::Real(frame.freeze()))
            }
        };
        Ok(Some(msg))
    }

    /// Parses a data header off the front of `body`; checks its canonical form and limit.
    fn data_header<'a>(&self, body: &'a [u8]) -> Result<(DataHeader, &'a [u8]), DecodeError> {
        let (header, rest) = postcard::take_from_bytes::<DataHeader>(body).map_err(DecodeError::Malformed)?;
        if !is_encoding_of(&header, &body[..body.len() - rest.len()]) {
            return Err(DecodeError::NonCanonical);
        }
        if header.len > self.limits.max_payload {
            return Err(DecodeError::PayloadTooLarge { len: header.len, max: self.limits.max_payload });
        }
        Ok((header, rest))
    }
}

/// Feeds `data` to a decoder with small limits, in two parts, until it errors or needs more;
/// every message it yields must re-encode to exactly the bytes it came from.
///
/// The harness for a one-line cargo-fuzz target (STYLE 16).
#[cfg(fuzzing)]
pub fn fuzz_decode(data: &[u8]) {
    fuzz_harness(data);
}

#[cfg(any(fuzzing, test))]
fn fuzz_harness(data: &[u8]) {
    let limits = Limits::new(64 << 10, 64 << 10);
    let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let mut decoder = Decoder::new(limits).virtual_payloads(true);
    let mut stream = Vec::new();
    for part in [&data[..split], &data[split..]] {
        decoder.push(part);
        stream.extend_from_slice(part);
        loop {
            match decoder.next() {
                Ok(Some(msg)) => {
                    let mut out = BytesMut::new();
                    assert!(encode(&msg, &mut out).is_ok(), "a decoded message must encode");
                    assert_eq!(out.len(), encoded_len(&msg));
                    assert!(stream.starts_with(&out), "re-encoding differs from the input");
                    stream.drain(..out.len());
                }
                Ok(None) => break,
                Err(_) => return,
            }
            let bound = 2 * (data.len() + limits.max_any_frame_len() as usize + 64);
            assert!(decoder.capacity() <= bound, "the receive buffer outgrew its bound");
        }
    }
}

/// Decodes a control body: exactly one canonical postcard `Message`.
fn decode_control(body: &[u8]) -> Result<Message, DecodeError> {
    let (msg, rest) = postcard::take_from_bytes::<Message>(body).map_err(DecodeError::Malformed)?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes { count: rest.len() });
    }
    if !is_encoding_of(&msg, body) {
        return Err(DecodeError::NonCanonical);
    }
    Ok(msg)
}

fn data_message(header: DataHeader, payload: Payload) -> Message {
    Message::Data(Data { token: header.token, content: header.content, chunk: header.chunk, payload })
}

fn encode_control(msg: &Message, out: &mut BytesMut) -> Result<(), EncodeError> {
    // Size first (allocation-free and cheap), then serialize straight into reserved space.
    let body_len = postcard::serialize_with_flavor(msg, postcard::ser_flavors::Size::default())
        .map_err(EncodeError::Serialize)?;
    let frame_len = 1 + body_len;
    let prefix = u32::try_from(frame_len).map_err(|_| EncodeError::FrameTooLarge { len: frame_len })?;
    let start = out.len();
    out.reserve(FRAME_HEAD_LEN + body_len);
    out.put_u32(prefix);
    out.put_u8(Kind::Control as u8);
    out.resize(start + FRAME_HEAD_LEN + body_len, 0);
    match postcard::to_slice(msg, &mut out[start + FRAME_HEAD_LEN..]) {
        Ok(written) if written.len() == body_len => Ok(()),
        // Unreachable: the sizing pass and this one serialize the same value.
        Ok(_) => {
            out.truncate(start);
            Err(EncodeError::Serialize(postcard::Error::SerializeBufferFull))
        }
        Err(e) => {
            out.truncate(start);
            Err(EncodeError::Serialize(e))
        }
    }
}

/// Whether serializing `value` produces exactly `bytes` (checked without allocating).
fn is_encoding_of<T: Serialize>(value: &T, bytes: &[u8]) -> bool {
    postcard::serialize_with_flavor(value, SameAs { expected: bytes, pos: 0 }).is_ok()
}

/// Bytes of the postcard varint encoding of `v`.
fn varint_len(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// A postcard flavor that appends to a `BytesMut`.
struct Append<'a>(&'a mut BytesMut);

impl postcard::ser_flavors::Flavor for Append<'_> {
    type Output = ();

    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.0.put_u8(byte);
        Ok(())
    }

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// A postcard flavor that compares the serialization with `expected`, byte for byte.
struct SameAs<'a> {
    expected: &'a [u8],
    pos: usize,
}

impl postcard::ser_flavors::Flavor for SameAs<'_> {
    type Output = ();

    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        if self.expected.get(self.pos) == Some(&byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(postcard::Error::SerializeBufferFull)
        }
    }

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        let end = self.pos + data.len();
        if self.expected.get(self.pos..end) == Some(data) {
            self.pos = end;
            Ok(())
        } else {
            Err(postcard::Error::SerializeBufferFull)
        }
    }

    fn finalize(self) -> postcard::Result<()> {
        if self.pos == self.expected.len() { Ok(()) } else { Err(postcard::Error::SerializeBufferFull) }
    }
}

#[cfg(test)]
mod tests;
