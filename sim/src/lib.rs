//! PDTP simulator: a deterministic discrete-event simulator that drives the real `core`
//! state machines over a flow-level network model (see `docs/simulator.md`).
//!
//! Layers, each its own module (STYLE 18):
//! - [`queue`]: the event queue, `(time, sequence)` ordered;
//! - [`network`]: the flow-level network model, a seeded machine of its own;
//! - [`scenario`]: YAML scenario files, validated with errors that name the field;
//! - [`engine`]: the run loop and the [`engine::SimNode`] trait node adapters implement;
//! - [`metrics`] and [`report`]: what a run measured and how it is written out.

#![warn(missing_docs)]

pub mod adapters;
pub mod engine;
pub mod gate;
pub mod metrics;
pub mod network;
pub mod node;
pub mod plot;
pub mod queue;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod store;
#[cfg(test)]
mod testnodes;
pub use pdtp_core::units;
pub mod wire_size;
