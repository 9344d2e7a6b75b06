//! The size a message costs on the wire — the ONE place the simulator decides it.
//!
//! PLACEHOLDER: until `pdtp_core::wire::codec::encoded_len(&Message)` lands, this estimates
//! a frame as a 4-byte length prefix plus the message's postcard body (serialised for real,
//! so sizes follow the actual message contents), and a `Data` frame as a fixed header plus
//! the payload length. Switch the body of [`encoded_len`] to the codec's function when it
//! exists; nothing else in the simulator computes sizes.

use pdtp_core::Message;

/// Frame length prefix (placeholder estimate).
const FRAME_PREFIX: u64 = 4;
/// `Data` header: variant tag, token, content, chunk, payload length (placeholder estimate).
const DATA_HEADER: u64 = 1 + 8 + 5 + 5 + 5;

/// Bytes `msg` occupies on the wire, framing included.
pub fn encoded_len(msg: &Message) -> u64 {
    match msg {
        Message::Data(d) => FRAME_PREFIX + DATA_HEADER + u64::from(d.payload.len()),
        // Every non-Data message serialises; 64 bytes is a defensive fallback only.
        other => FRAME_PREFIX + postcard::to_allocvec(other).map_or(64, |v| v.len() as u64),
    }
}
