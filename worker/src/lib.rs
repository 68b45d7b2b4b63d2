//! The rindle-ingest service: configuration, CLI, Temporal worker wiring, HTTP server.

pub mod http;
