//! Activity *definitions*: names, inputs and outputs of every activity `IngestWorkflow`
//! calls. The implementations live in `rindle-activities` and are checked against these
//! at compile time (`#[activity(definition = …)]`).
//!
//! Names are explicit and stable because operators address activities by them
//! (`temporal activity reset --activity-id create-mux-asset …`). Nothing here ever carries a
//! signed URL or a credential: the URL is minted inside the activity that uses it.

use serde::{Deserialize, Serialize};
use temporalio_macros::activity_definitions;
use temporalio_sdk::activities::ActivityError;
use uuid::Uuid;

use rindle_proto::IngestInput;

/// The declared activities of an ingest (never instantiated: a namespace for the macro).
pub struct IngestActivityDefinitions;

#[activity_definitions]
impl IngestActivityDefinitions {
    /// Loads the source, checks freshness, ensures the provider row and decides what to do.
    #[activity(name = "prepare")]
    pub fn prepare(input: IngestInput) -> Result<PrepareOutput, ActivityError> {
        unimplemented!()
    }

    /// Checks that the profile's storage can sign a private URL for the variant; returns only
    /// a redacted form (the real URL is minted again, fresh, by `create_mux_asset`).
    #[activity(name = "sign_url")]
    pub fn sign_url(input: SignUrlInput) -> Result<SignUrlOutput, ActivityError> {
        unimplemented!()
    }

    /// Every write to the provider row after `prepare`: claim, promote, release.
    #[activity(name = "persist_row")]
    pub fn persist_row(input: PersistRowInput) -> Result<PersistRowOutput, ActivityError> {
        unimplemented!()
    }

    /// `POST /video/v1/assets` with a freshly signed source URL.
    #[activity(name = "create_mux_asset")]
    pub fn create_mux_asset(input: CreateMuxAssetInput) -> Result<CreatedMuxAsset, ActivityError> {
        unimplemented!()
    }

    /// `GET /video/v1/assets/{id}`: what Mux says now (the polling backstop).
    #[activity(name = "sync_mux_asset")]
    pub fn sync_mux_asset(input: SyncMuxAssetInput) -> Result<SyncMuxAssetOutput, ActivityError> {
        unimplemented!()
    }

    /// `DELETE /video/v1/assets/{id}`; a 404 counts as done.
    #[activity(name = "delete_mux_asset")]
    pub fn delete_mux_asset(
        input: DeleteMuxAssetInput,
    ) -> Result<DeleteMuxAssetOutput, ActivityError> {
        unimplemented!()
    }
}

/// Marker types of the definitions, named so the activities crate can point at them.
pub mod defs {
    pub use super::ingest_activity_definitions::{
        CreateMuxAsset, DeleteMuxAsset, PersistRow, Prepare, SignUrl, SyncMuxAsset,
    };
}

/// What `prepare` decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum PrepareOutput {
    /// Go on and push the variant.
    Proceed(Proceed),
    /// The row is past `pending` (or claimed by a running ingest): nothing to do.
    AlreadyInProgress {
        /// The row's state string.
        state: String,
    },
    /// The ingest must stop without calling Mux (stale source, errored/deleted row).
    Cancelled {
        /// Atom-like cancel code (see `CancelReason`).
        code: String,
        /// Detail: the stale reason or the row's `last_sync_error`.
        detail: String,
    },
}

/// Everything the rest of the ingest needs from `prepare`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proceed {
    /// `media_provider_assets.id` of the `(asset, profile, mux)` row.
    pub row_id: Uuid,
    /// The variant's file to push (not a secret).
    pub variant_storage_key: String,
    /// Playback policy from the profile (`signed` by default).
    pub playback_policy: String,
    /// Set when the row is `uploading` under an ingest that no longer runs.
    pub takeover: Option<Takeover>,
    /// Provider-lifecycle settings from the worker's configuration, recorded here so replays
    /// see the values the run started with.
    pub lifecycle: LifecycleSettings,
}

/// A claim left behind by an ingest that no longer runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Takeover {
    /// Run id of the dead claimant (`None`: the row was left `uploading` with no claim record,
    /// e.g. by Rindle's own Oban worker).
    pub previous_run_id: Option<String>,
    /// A Mux asset the dead claimant created but never promoted: deleted before going on.
    pub orphan_provider_asset_id: Option<String>,
}

/// Timer settings the workflow needs, read from the worker's configuration by `prepare`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct LifecycleSettings {
    /// Seconds between retries of a compensating Mux delete that Mux refused.
    pub delete_retry_interval_s: u64,
    /// Seconds between polls of Mux while the row is `processing` (the webhook backstop).
    pub poll_interval_s: u64,
    /// Polls never come more often than this.
    pub poll_floor_s: u64,
    /// Mux still `preparing` this long after `processing` began → `errored` (stuck).
    pub stuck_threshold_s: u64,
}

/// Input of `sign_url`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignUrlInput {
    /// Profile string; selects the storage backend and URL TTL.
    pub profile: String,
    /// The variant's storage key.
    pub storage_key: String,
}

/// Output of `sign_url`: never the URL itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignUrlOutput {
    /// The URL without its query string.
    pub url_redacted: String,
    /// TTL the URL was signed for.
    pub ttl_s: u64,
}

/// Input of `persist_row`. The claim owner is the calling workflow run (from the activity's
/// info), so it is not passed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum PersistRowInput {
    /// `pending → uploading` (or take over a dead claim), naming this workflow run.
    Claim {
        /// The provider row.
        row_id: Uuid,
        /// Present when taking over a dead claim.
        takeover: Option<Takeover>,
    },
    /// Atomic promote `uploading → processing` after re-checking freshness.
    Promote {
        /// The provider row.
        row_id: Uuid,
        /// The workflow input, for the freshness re-check.
        input: IngestInput,
        /// The created Mux asset.
        asset: CreatedMuxAsset,
    },
    /// A provider report moves the row `from` → `to` (FSM-checked compare-and-set).
    Transition {
        /// The provider row.
        row_id: Uuid,
        /// Expected current state (db string).
        from: String,
        /// Target state (db string).
        to: String,
        /// New playback ids, when the report carries them.
        playback_ids: Option<Vec<String>>,
        /// `last_sync_error` to record (errored).
        last_sync_error: Option<String>,
        /// When the provider event happened (RFC 3339), recorded as `last_event_at`.
        occurred_at: Option<String>,
    },
    /// Definitive failure: record `last_sync_error`, release the claim.
    Release {
        /// The provider row.
        row_id: Uuid,
        /// Why (already free of secrets; cut to 4096 chars by the store).
        last_sync_error: String,
    },
}

/// Output of `persist_row`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum PersistRowOutput {
    /// The row is ours (`uploading`).
    Claimed,
    /// Another ingest got there first.
    ClaimLost {
        /// The row's state string.
        state: String,
    },
    /// The row is `processing` with the provider id and playback ids.
    Promoted {
        /// Playback ids as stored.
        playback_ids: Vec<String>,
    },
    /// The source changed while Mux was called.
    Stale {
        /// `asset_changed` | `recipe_changed` | `source_missing`.
        reason: String,
    },
    /// Our claim was taken over (we were thought dead).
    LostClaim {
        /// The row's state string.
        state: String,
    },
    /// The claim was released.
    Released,
    /// The row moved to `state`.
    Transitioned {
        /// The new state.
        state: String,
    },
    /// The row was no longer in the expected state.
    Conflict {
        /// The row's actual state.
        state: String,
    },
}

/// Input of `create_mux_asset`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateMuxAssetInput {
    /// The provider row (recorded with the created id so a takeover can clean up).
    pub row_id: Uuid,
    /// Profile string (storage backend, TTL, resolution tier).
    pub profile: String,
    /// The variant's storage key, signed inside the activity.
    pub storage_key: String,
    /// `signed` | `public`.
    pub playback_policy: String,
    /// Correlation tag stamped on the Mux asset (`rndl:{row_id}`), ≤ 255 chars.
    pub passthrough: String,
}

/// The Mux asset `create_mux_asset` made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreatedMuxAsset {
    /// Mux asset id.
    pub provider_asset_id: String,
    /// Public playback ids.
    pub playback_ids: Vec<String>,
}

/// Input of `sync_mux_asset`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncMuxAssetInput {
    /// Mux asset id.
    pub provider_asset_id: String,
}

/// What Mux says about an asset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncMuxAssetOutput {
    /// `preparing` | `ready` | `errored` | `not_found` | anything else Mux says.
    pub status: String,
    /// Current playback ids.
    pub playback_ids: Vec<String>,
    /// `errors.messages` when errored.
    pub error_messages: Vec<String>,
}

/// Input of `delete_mux_asset`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeleteMuxAssetInput {
    /// Mux asset id.
    pub provider_asset_id: String,
}

/// Output of `delete_mux_asset`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeleteMuxAssetOutput {
    /// False when Mux already had no such asset (404).
    pub deleted: bool,
}

/// Activity failure type names the workflow and operators rely on.
pub mod failure_types {
    /// Input that can never succeed (bad UUID, unknown profile, …): non-retryable.
    pub const INVALID_INPUT: &str = "InvalidInput";
    /// The asset or variant row is missing (retryable: it may not be committed yet).
    pub const SOURCE_NOT_FOUND: &str = "SourceNotFound";
    /// Mux answered a 4xx other than 408/429: non-retryable.
    pub const PROVIDER_REJECTED: &str = "ProviderRejected";
    /// Mux answered 429; the next attempt waits for Retry-After.
    pub const PROVIDER_RATE_LIMITED: &str = "ProviderRateLimited";
    /// The storage backend cannot sign the URL (configuration): non-retryable.
    pub const STORAGE_CONFIG: &str = "StorageConfig";
    /// An FSM edge the allowlist forbids: non-retryable.
    pub const INVALID_TRANSITION: &str = "InvalidTransition";
}
