//! The size a message costs on the wire — the ONE place the simulator decides it.
//!
//! It is the real codec's frame size (`pdtp_core::wire::codec::wire_len`): length prefix,
//! kind byte, postcard body, and for `Data` the header plus the payload's length in real
//! bytes (a virtual payload costs what the bytes it stands for would). On a link to or from
//! the tracker, which is encrypted, each message also pays its record's length and tag
//! ([`pdtp_core::wire::TRACKER_RECORD_OVERHEAD`]).

use pdtp_core::Message;

/// Bytes `msg` occupies on the wire, framing included.
pub fn encoded_len(msg: &Message) -> u64 {
    pdtp_core::wire::codec::wire_len(msg) as u64
}

/// Bytes `msg` occupies on an encrypted tracker link: its frame sealed in one record (a
/// message over 65 519 bytes, a huge manifest, would take a record per 65 519 bytes; the
/// model charges one).
pub fn tracker_link_len(msg: &Message) -> u64 {
    encoded_len(msg) + pdtp_core::wire::TRACKER_RECORD_OVERHEAD
}
