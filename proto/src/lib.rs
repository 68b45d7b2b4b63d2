//! Wire contracts of rindle-ingest.
//!
//! # Layout
//! - `proto/rindle/ingest/v1/ingest.proto`: the source of truth, compiled by `build.rs`
//!   (protox + prost + pbjson, no system `protoc`).
//! - [`v1`]: the generated types. Their serde impls keep the proto field names, so
//!   `IngestInput` reads exactly the reference job arguments
//!   `{"asset_id","profile","variant_name","expected_storage_key","expected_recipe_digest"}`,
//!   and unknown fields are ignored (lenient payloads never wedge a workflow).
//! - [`state`]: the mapping between [`v1::ProviderAssetState`] and the strings stored in
//!   Rindle's `media_provider_assets.state` column.

/// Generated contract types, package `rindle.ingest.v1`.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/rindle.ingest.v1.rs"));
    include!(concat!(env!("OUT_DIR"), "/rindle.ingest.v1.serde.rs"));
}

pub mod state;

pub use v1::{
    CancelReason, IngestInput, IngestOutcome, IngestStatus, OutcomeKind, ProviderAssetState,
    ProviderEvent,
};
