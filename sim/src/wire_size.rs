//! The size a message costs on the wire — the ONE place the simulator decides it.
//!
//! It is the real codec's frame size (`pdtp_core::wire::codec::wire_len`): length prefix,
//! kind byte, postcard body, and for `Data` the header plus the payload's length in real
//! bytes (a virtual payload costs what the bytes it stands for would). Every link is
//! encrypted, so each message also pays its records' lengths and tags
//! ([`pdtp_core::wire::RECORD_OVERHEAD`] per record of at most
//! [`pdtp_core::wire::MAX_RECORD_PLAINTEXT`] bytes). Not charged: the 16-byte link id a peer
//! link opens with.

use pdtp_core::Message;

/// Bytes `msg` occupies on the wire, framing included.
pub fn encoded_len(msg: &Message) -> u64 {
    pdtp_core::wire::codec::wire_len(msg) as u64
}

/// Bytes `msg` occupies on an encrypted link: its frame sealed in records.
pub fn sealed_len(msg: &Message) -> u64 {
    let frame = encoded_len(msg);
    let records = frame.div_ceil(pdtp_core::wire::MAX_RECORD_PLAINTEXT).max(1);
    frame + records * pdtp_core::wire::RECORD_OVERHEAD
}
