//! Test servers and harness for rindle-ingest's end-to-end tests.
//!
//! # Layout
//! - [`env`]: `TestEnv`, one object that starts and owns a Temporal dev server, a database,
//!   the Mux simulator, storage and the real worker for one test.
//! - [`db`]: per-test PostgreSQL schemas (dropped on `Drop`) and SQLite files.
//! - [`mux_sim`]: the Mux simulator, an HTTP server we own (also the `mux-sim` binary).
//! - [`s3`]: a real S3 protocol server (s3s-fs) that checks SigV4 signatures.
//! - [`capture`]: captured telemetry events, for assertions.
//! - [`bench`]: `rindle-bench`, the ingest benchmark against the floor of its Temporal server.

pub mod bench;
pub mod capture;
pub mod db;
pub mod env;
pub mod mux_sim;
pub mod s3;
