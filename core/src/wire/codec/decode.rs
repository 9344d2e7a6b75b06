//! The incremental, bounded, strict frame decoder (the format is in [`super`]).

use bytes::{Buf, BytesMut};
use serde::Serialize;

use super::{DataHeader, FRAME_HEAD_LEN, Kind, Limits};
#[cfg(any(fuzzing, test))]
use super::{encode, encoded_len};
use crate::manifest::Digest;
use crate::payload::Payload;
use crate::wire::{Data, ErrorCode, Message, Notice};

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

/// The most a [`Decoder`] reserves ahead of the bytes it holds for an incomplete frame.
pub const RESERVE_STEP: usize = 64 * 1024;

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
    /// Received bytes; visible to the codec's tests, which check payloads are not copied.
    pub(super) buf: BytesMut,
    accept_virtual: bool,
    poisoned: bool,
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
    /// the [codec documentation](super)).
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

    /// Lets `fill` append received bytes straight into the receive buffer, so a runtime can
    /// read from its socket into the decoder without an intermediate buffer and a copy.
    ///
    /// `fill` must only append (what it appends is treated exactly as if it had been
    /// [`push`](Self::push)ed); call [`next`](Self::next) afterwards as after a push. While
    /// the decoder is poisoned, `fill` gets an empty scratch buffer that is then dropped.
    pub fn fill_with<R>(&mut self, fill: impl FnOnce(&mut BytesMut) -> R) -> R {
        if self.poisoned {
            return fill(&mut BytesMut::new());
        }
        fill(&mut self.buf)
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
            // Room for the next step of the frame only, not the whole announced length: a
            // peer that announces a 16 MiB manifest and sends a few bytes must not pin 16 MiB
            // (a hundred such connections held 1.7 GB). Memory follows the bytes that came;
            // a chunk frame of a few hundred kB grows by a few doublings.
            self.buf.reserve((total - self.buf.len()).min(RESERVE_STEP));
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
pub(super) fn fuzz_harness(data: &[u8]) {
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

/// Whether serializing `value` produces exactly `bytes` (checked without allocating).
fn is_encoding_of<T: Serialize>(value: &T, bytes: &[u8]) -> bool {
    postcard::serialize_with_flavor(value, SameAs { expected: bytes, pos: 0 }).is_ok()
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
