//! PDTP's real runtime: the building blocks a single-threaded mio loop needs.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

pub mod config;
pub mod conn;
pub mod paths;
pub mod ratelimit;
pub mod sink;
pub mod stats;
pub mod storage;
