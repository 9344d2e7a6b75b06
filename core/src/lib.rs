//! PDTP core: the wire format and the sans-io state machines of the tracker, seed and peer.
//!
//! Nothing in this crate touches a socket, a file, a clock or the OS's randomness. Time comes
//! in as a [`Time`] argument, randomness as a seeded ChaCha generator, storage through the
//! [`ChunkStore`] trait, and every output is drained by the driver (the simulator in
//! `pdtp-sim`, the mio runtime in `pdtp-net-mio`).
//!
//! # The run loop
//!
//! Every machine (`Tracker`, `Seed`, `Peer`) has the same shape,
//! after quinn-proto and str0m:
//!
//! 1. **Mutate** it with one input: `handle_message`, `handle_connected`, `handle_closed`,
//!    `handle_timeout`, or a command such as `Peer::get`.
//! 2. **Drain** its outputs: `poll_transmit()` until `None` (send, connect, close), then
//!    `poll_event()` until `None` (what the application cares about).
//! 3. **Read** `poll_timeout()`: the earliest time it wants `handle_timeout`.
//! 4. **Wait** for the next input or that deadline, whichever is first, and go to 1.
//!
//! ```text
//!   driver                         machine
//!     | -- handle_*(now, ...) ------> |   mutate
//!     | <- poll_transmit() ---------- |   until None
//!     | <- poll_event() ------------- |   until None
//!     | <- poll_timeout() ----------- |   then wait
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
pub mod bitset;
pub mod bounds;
pub mod chunks;
pub mod ids;
pub mod manifest;
pub mod memstore;
pub mod node;
pub mod output;
pub mod payload;
pub mod peer;
pub mod policy;
pub mod seed;
pub mod signing;
pub mod store;
pub mod time;
pub mod tracker;
pub mod units;
pub mod wire;

pub use chunks::{ByteRange, Cover, Geometry};
pub use ids::{ChunkIndex, ConnId, ContentId, Endpoint, PeerId, Token};
pub use manifest::{Digest, LiveInfo, Manifest};
pub use output::{Dial, Transmit};
pub use payload::Payload;
pub use store::{ChunkStore, StoreError};
pub use time::{Span, Time};
pub use wire::Message;

/// The random generator every machine takes: seeded by the driver, never by the OS.
pub type Rng = rand_chacha::ChaCha8Rng;
