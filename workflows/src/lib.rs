//! Deterministic workflow code of rindle-ingest. No I/O crate is reachable from here.
//!
//! # Layout
//! - [`fsm`]: the provider-asset FSM allowlist every state write is checked against.
//! - [`redact`]: redaction rules for provider ids, error reasons and URLs.

pub mod fsm;
pub mod redact;
