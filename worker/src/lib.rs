//! The rindle-ingest service.
//!
//! # Layout
//! - [`config`]: typed settings (embedded defaults → TOML file → environment).
//! - [`cli`]: the `rindle-ingest` subcommands (`worker`, `migrate`, `enqueue`).
//! - [`app`]: builds the store, storage, Mux client and activities, and runs the Temporal
//!   worker beside the HTTP server until shutdown.
//! - [`http`]: health, Prometheus metrics, signed local media.
//! - [`enqueue`]: starting an ingest with job-level uniqueness.
//! - [`telemetry`]: log subscriber and the event-to-metric layer.

pub mod app;
pub mod cli;
pub mod config;
pub mod enqueue;
pub mod http;
pub mod telemetry;
