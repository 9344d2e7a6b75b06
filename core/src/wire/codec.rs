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

use bytes::{BufMut, BytesMut};
use serde::{Deserialize, Serialize};

use super::{Data, Message};
use crate::ids::{ChunkIndex, ContentId, Token};
use crate::payload::Payload;

/// Bytes before the body: the length prefix and the kind byte.
pub const FRAME_HEAD_LEN: usize = 5;

/// The longest postcard encoding of a [`DataHeader`]: four varints of 10, 5, 5 and 5 bytes.
pub const DATA_HEADER_MAX_LEN: usize = 25;

/// Bytes of a virtual payload's tag on the wire.
pub(super) const TAG_LEN: usize = 32;

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

/// The size `msg` has on a real network: [`encoded_len`], except that a virtual payload
/// counts as the real bytes it stands for (a real frame of that length), not as its tag.
///
/// The simulator charges every message this size.
pub fn wire_len(msg: &Message) -> usize {
    match msg {
        Message::Data(data) => {
            let len = data.payload.len();
            let header = DataHeader { token: data.token, content: data.content, chunk: data.chunk, len };
            FRAME_HEAD_LEN + header.encoded_len() + len as usize
        }
        _ => encoded_len(msg),
    }
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
    pub(super) fn max_any_frame_len(&self) -> u64 {
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

mod decode;

#[cfg(fuzzing)]
pub use decode::fuzz_decode;
pub use decode::{DecodeError, Decoder};

#[cfg(test)]
mod tests;
