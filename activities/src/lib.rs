//! Activity implementations of rindle-ingest and every piece of I/O they do.
//!
//! # Layout
//! - [`store`]: the store of record (Rindle's tables on PostgreSQL, or SQLite as the
//!   embedded default) behind one interface; every state write is an FSM-checked
//!   compare-and-set.
//! - [`storage`]: private signed URLs for variant files (local HMAC URLs served by the
//!   worker, S3-compatible presigned GETs).
//! - [`mux`]: the Mux REST client (no client-level retries; errors classified by status).
//! - [`telemetry`]: the reference's telemetry events, with redaction.
//! - [`webhook`]: Mux webhook signature verification and envelope parsing.
//! - [`ingest`]: `IngestActivities`, the implementations of the activity definitions
//!   declared in `rindle_workflows::activities`, built from the pieces above.

pub mod ingest;
pub mod mux;
pub mod storage;
pub mod store;
pub mod telemetry;
pub mod webhook;
