//! Deterministic workflow code of rindle-ingest. No I/O crate is reachable from here.
//!
//! # Layout
//! - [`ingest`]: `IngestWorkflow`, one ingest of one variant into Mux.
//! - [`activities`]: the activity definitions it calls (names, inputs, outputs); implemented
//!   in `rindle-activities`.
//! - [`lifecycle`]: pure decisions for provider events and polls after `processing`.
//! - [`validate`]: input checks done before any activity.
//! - [`fsm`]: the provider-asset FSM allowlist every state write is checked against.
//! - [`telemetry`]: `rindle.provider.ingest.*` events, emitted once per execution.
//! - [`redact`]: redaction rules for provider ids, error reasons and URLs.

pub mod activities;
pub mod fsm;
pub mod ingest;
pub mod lifecycle;
pub mod redact;
pub mod telemetry;
pub mod validate;

pub use ingest::{IngestWorkflow, TASK_QUEUE};
