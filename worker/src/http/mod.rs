//! The worker's HTTP server.

pub mod media;
