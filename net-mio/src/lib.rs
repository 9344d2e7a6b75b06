//! PDTP's real runtime: the pieces a single-threaded mio loop needs to drive the core's
//! tracker, seed and peer machines over real sockets, files and pipes.
//!
//! No threads, no async runtime: one `mio::Poll` per process. Every I/O object here is
//! non-blocking (or, for regular files, positioned and short), keeps its buffers bounded, and
//! reports backpressure to its caller instead of buffering without limit.
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`config`] | the YAML config of `pdtp-node`: the original DistribuStream keys plus ours, named errors |
//! | [`paths`] | `pdtp://` URLs and the path rules that keep every served file inside `file_root` |
//! | [`storage`] | [`pdtp_core::ChunkStore`]s on disk: `SeedStore`, `PeerStore`, streaming manifest hashing |
//! | [`sink`] | in-order output to a file, stdout or FIFO with a bounded queue and non-blocking pipes |
//! | [`ratelimit`] | exact token buckets and rate meters driven by explicit instants |
//! | [`stats`] | the stats page on port + 1: HTML, `/stats.json`, `/metrics` (Prometheus 0.0.4) |
//! | [`serve`] | `get --serve`: the content over HTTP/1.1 with ranges while it downloads |
//! | [`http`] | the HTTP listener, client slots, caps and response head both servers share |
//! | [`driver`] | the mio loop that hosts tracker, seed and peer machines over real TCP |
//! | [`delivery`] | in-order delivery of verified chunks from the `PeerStore` to the `Sink` |
//! | [`conn`] | a non-blocking TCP connection: bounded input, capped output queue, connect completion |
//! | [`secure`] | encrypted, authenticated tracker links: the Noise `NX` handshake and records |
//! | [`table`] | the connection table: cap and refuse, never-reused tokens, hello deadlines |
//! | [`clock`] | `Instant` ↔ core `Time` at the boundary |
//! | [`listen`] | listener binding with the peer's listen-port fallback |
//!
//! The loop that ties them to the machines is described in `docs/runtime.md`.
//!
//! Real time is allowed here (unlike in `pdtp-core` and `pdtp-sim`), hence the opt-out from
//! the workspace's determinism lints below.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod clock;
pub mod config;
pub mod conn;
pub mod delivery;
pub mod driver;
pub mod http;
pub mod identity;
pub mod listen;
pub mod paths;
pub mod ratelimit;
pub mod reuse;
pub mod secure;
pub mod serve;
pub mod sink;
pub mod stats;
pub mod storage;
pub mod table;
