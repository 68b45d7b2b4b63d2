//! Test servers and harness for rindle-ingest's end-to-end tests.
//!
//! # Layout
//! - [`db`]: per-test PostgreSQL schemas (dropped on `Drop`) and SQLite files.
//! - [`mux_sim`]: the Mux simulator, an HTTP server we own (also the `mux-sim` binary).
//! - [`s3`]: a real S3 protocol server (s3s-fs) that checks SigV4 signatures.

pub mod db;
pub mod mux_sim;
pub mod s3;
