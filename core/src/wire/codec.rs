//! Framing: length-prefixed postcard frames, raw chunk payloads, bounded decoding.
//! (Being written: see docs/protocol.md.)
