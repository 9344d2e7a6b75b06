//! The size a message costs on the wire — the ONE place the simulator decides it.
//!
//! It is the real codec's frame size (`pdtp_core::wire::codec::wire_len`): length prefix,
//! kind byte, postcard body, and for `Data` the header plus the payload's length in real
//! bytes (a virtual payload costs what the bytes it stands for would).

use pdtp_core::Message;

/// Bytes `msg` occupies on the wire, framing included.
pub fn encoded_len(msg: &Message) -> u64 {
    pdtp_core::wire::codec::wire_len(msg) as u64
}
