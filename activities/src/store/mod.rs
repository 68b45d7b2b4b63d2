//! The store of record: Rindle's provider rows, behind one interface over PostgreSQL
//! (production: the adopter's own Rindle tables) and SQLite (the embedded default).
//!
//! # Map
//! - this file: the row and outcome types, [`Store`] (an enum that dispatches to a backend,
//!   no trait objects), [`check_freshness`] and [`StoreError`].
//! - [`postgres`]: [`PgStore`], Rindle's tables in a configurable schema (`rindle` or `public`).
//! - [`sqlite`]: [`SqliteStore`], the same tables and columns in one file.
//! - `migrations`: the versioned DDL steps both backends apply (the SQL lives in `sql/`).
//! - `fixtures`: seeding helpers (`Store::insert_asset`, …) that write what Rindle itself
//!   would write, for tests.
//!
//! # Guarantees
//! - Every write of `media_provider_assets.state` is checked against the FSM allowlist
//!   ([`rindle_workflows::fsm::check`]) and then done as a compare-and-set
//!   (`UPDATE … WHERE id = $1 AND state = $from`), so concurrent writers cannot skip an edge.
//!   Each successful state write emits `rindle.provider_asset.state_change` after commit.
//! - An ingest owns a row in `uploading` through its claim (`rindle_ingest_claims`), which names
//!   its workflow run. Only the owner may promote the row; a released claim (definitive failure)
//!   or a claim of a run that no longer runs is taken over by the next ingest.
//! - Rindle's tables are created only if absent and never altered; our own state lives in
//!   tables prefixed `rindle_ingest_`.

use chrono::{NaiveDateTime, SubsecRound, Utc};
use rindle_proto::ProviderAssetState;
use rindle_workflows::fsm::InvalidTransition;
use rindle_workflows::redact::redact_id;
use sqlx::{PgPool, SqlitePool};
use uuid::Uuid;

mod fixtures;
mod migrations;
pub mod postgres;
pub mod sqlite;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// Rindle caps `last_sync_error` at this many characters (its changeset rejects longer text;
/// we cut instead, because a failure report must never fail to be written).
pub const LAST_SYNC_ERROR_MAX_CHARS: usize = 4096;

/// The provider name of every row this service writes (`media_provider_assets.provider_name`).
pub const PROVIDER_NAME: &str = "mux";

/// The columns of `media_provider_assets` that [`ProviderRow`] holds, in one order for both
/// backends' `SELECT`s and `RETURNING`s.
const ROW_COLUMNS: &str = "id, asset_id, profile, provider_name, provider_asset_id, playback_ids, \
     playback_policy, state, last_sync_error, last_event_at, updated_at, inserted_at";

/// One `media_provider_assets` row: the state of an asset+profile on Mux, shared by variants.
#[derive(Clone, PartialEq, Eq)]
pub struct ProviderRow {
    /// Primary key (client-generated UUID v4).
    pub id: Uuid,
    /// Rindle's `media_assets.id`.
    pub asset_id: Uuid,
    /// Rindle's profile string (`Elixir.`-prefixed module name).
    pub profile: String,
    /// Always [`PROVIDER_NAME`] for rows we write.
    pub provider_name: String,
    /// The Mux asset id; secret-grade, so `Debug` redacts it.
    pub provider_asset_id: Option<String>,
    /// Public Mux playback ids.
    pub playback_ids: Vec<String>,
    /// `"signed"` or `"public"`.
    pub playback_policy: Option<String>,
    /// The provider-asset FSM state.
    pub state: ProviderAssetState,
    /// The last failure reported against the row (at most 4096 characters).
    pub last_sync_error: Option<String>,
    /// `created_at` of the last provider event applied to the row.
    pub last_event_at: Option<NaiveDateTime>,
    /// Last write (UTC, naive, whole seconds).
    pub updated_at: NaiveDateTime,
    /// Creation (UTC, naive, whole seconds).
    pub inserted_at: NaiveDateTime,
}

impl std::fmt::Debug for ProviderRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderRow")
            .field("id", &self.id)
            .field("asset_id", &self.asset_id)
            .field("profile", &self.profile)
            .field("provider_name", &self.provider_name)
            .field(
                "provider_asset_id",
                &self.provider_asset_id.as_deref().map(redact_id),
            )
            .field("playback_ids", &self.playback_ids)
            .field("playback_policy", &self.playback_policy)
            .field("state", &self.state)
            .field("last_sync_error", &self.last_sync_error)
            .field("last_event_at", &self.last_event_at)
            .field("updated_at", &self.updated_at)
            .field("inserted_at", &self.inserted_at)
            .finish()
    }
}

/// What an ingest reads from Rindle's asset and variant to sign and to check freshness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// `media_assets.storage_key`: the original's key, compared to the job's expectation.
    pub asset_storage_key: String,
    /// `media_variants.storage_key`: the file to sign; `None` while the variant has no output.
    pub variant_storage_key: Option<String>,
    /// `media_variants.recipe_digest`: compared to the job's expectation.
    pub variant_recipe_digest: String,
}

/// The result of looking up an ingest's source: missing rows are outcomes, not errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceLookup {
    /// Both the asset and the named variant exist.
    Found(Source),
    /// No `media_assets` row with that id.
    AssetMissing,
    /// The asset exists but has no variant of that name.
    VariantMissing,
}

/// What the job expected the source to be when it was enqueued (the reference job arguments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Freshness {
    /// Rindle's `media_assets.id`.
    pub asset_id: Uuid,
    /// The variant to ingest (`media_variants.name`).
    pub variant_name: String,
    /// The asset `storage_key` at enqueue time.
    pub expected_storage_key: String,
    /// The variant `recipe_digest` at enqueue time.
    pub expected_recipe_digest: String,
}

/// Why a source no longer matches its job: the ingest is cancelled, not failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaleReason {
    /// The asset was replaced (its `storage_key` changed).
    AssetChanged,
    /// The variant recipe changed (its `recipe_digest` changed).
    RecipeChanged,
}

impl StaleReason {
    /// The reference's reason atom, for outcomes and telemetry.
    pub fn as_str(self) -> &'static str {
        match self {
            StaleReason::AssetChanged => "asset_changed",
            StaleReason::RecipeChanged => "recipe_changed",
        }
    }
}

impl std::fmt::Display for StaleReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Checks a source against the job's expectation, the asset's `storage_key` first and then the
/// variant's `recipe_digest` (the reference's order, so the reported reason matches it).
pub fn check_freshness(source: &Source, expected: &Freshness) -> Result<(), StaleReason> {
    if source.asset_storage_key != expected.expected_storage_key {
        Err(StaleReason::AssetChanged)
    } else if source.variant_recipe_digest != expected.expected_recipe_digest {
        Err(StaleReason::RecipeChanged)
    } else {
        Ok(())
    }
}

/// The workflow run that claims a row; Temporal run ids are unique, so this names one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimOwner {
    /// Temporal workflow id (`{asset_id}:{profile}:{variant_name}`).
    pub workflow_id: String,
    /// Temporal run id of the execution holding the claim.
    pub run_id: String,
}

/// A `rindle_ingest_claims` row: which ingest owns a row in `uploading`, and what it created.
#[derive(Clone, PartialEq, Eq)]
pub struct Claim {
    /// The claimed `media_provider_assets.id`.
    pub row_id: Uuid,
    /// Workflow id of the owner.
    pub workflow_id: String,
    /// Run id of the owner.
    pub run_id: String,
    /// When the current owner took the claim.
    pub claimed_at: NaiveDateTime,
    /// Set when the owner finished (promoted) or gave up (definitive failure).
    pub released_at: Option<NaiveDateTime>,
    /// The Mux asset created under this claim, so a takeover can delete the orphan.
    /// Secret-grade, so `Debug` redacts it.
    pub created_provider_asset_id: Option<String>,
}

impl Claim {
    /// True if `owner` holds this claim and has not released it: the test every write by the
    /// owner is guarded by.
    pub fn is_held_by(&self, owner: &ClaimOwner) -> bool {
        self.released_at.is_none()
            && self.workflow_id == owner.workflow_id
            && self.run_id == owner.run_id
    }
}

impl std::fmt::Debug for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claim")
            .field("row_id", &self.row_id)
            .field("workflow_id", &self.workflow_id)
            .field("run_id", &self.run_id)
            .field("claimed_at", &self.claimed_at)
            .field("released_at", &self.released_at)
            .field(
                "created_provider_asset_id",
                &self.created_provider_asset_id.as_deref().map(redact_id),
            )
            .finish()
    }
}

/// The result of trying to own a row: losing a race is an outcome, not an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// The caller now owns the row (in `uploading`).
    Claimed,
    /// Another writer got there first; the row is in `current_state`.
    Lost {
        /// The row's state when the claim was refused.
        current_state: ProviderAssetState,
    },
}

/// The result of moving an uploaded row to `processing`.
// The row is returned by value once per call, never stored in bulk: boxing buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromoteOutcome {
    /// The row is now `processing` with the provider ids; the claim is released.
    Promoted(ProviderRow),
    /// The source changed since the job was enqueued; nothing was written.
    Stale(StaleReason),
    /// The asset or the variant is gone; nothing was written.
    SourceMissing,
    /// The caller no longer owns the row (claim taken over or released, or the row moved on);
    /// nothing was written.
    LostClaim {
        /// The row's state at the time.
        current_state: ProviderAssetState,
    },
}

/// Optional column writes that ride along with a state transition; `None` keeps the column.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RowUpdate {
    /// Replace the playback ids.
    pub playback_ids: Option<Vec<String>>,
    /// `Some(None)` clears the error, `Some(Some(e))` sets it (cut to 4096 characters).
    pub last_sync_error: Option<Option<String>>,
    /// The provider event's `created_at`.
    pub last_event_at: Option<NaiveDateTime>,
    /// Set the Mux asset id (upload-linked events learn it late). Redacted in `Debug`.
    pub provider_asset_id: Option<String>,
}

impl std::fmt::Debug for RowUpdate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowUpdate")
            .field("playback_ids", &self.playback_ids)
            .field("last_sync_error", &self.last_sync_error)
            .field("last_event_at", &self.last_event_at)
            .field(
                "provider_asset_id",
                &self.provider_asset_id.as_deref().map(redact_id),
            )
            .finish()
    }
}

/// The result of an FSM-checked compare-and-set on a row's state.
// Returned by value once per call (see `PromoteOutcome`).
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransitionOutcome {
    /// The row moved; here it is as written.
    Applied(ProviderRow),
    /// The row was no longer in `from`; nothing was written.
    Conflict {
        /// The row's state at the time.
        current_state: ProviderAssetState,
    },
}

/// Everything that can go wrong in the store. Lost races and stale sources are outcomes
/// ([`ClaimOutcome`], [`PromoteOutcome`], …), not errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A query failed; `op` names the store operation.
    #[error("database error in {op}")]
    Database {
        /// The store operation that failed (for example `claim_row`).
        op: &'static str,
        /// The driver error.
        #[source]
        source: sqlx::Error,
    },
    /// The FSM allowlist forbids the requested edge; nothing was written.
    #[error(transparent)]
    InvalidTransition(#[from] InvalidTransition),
    /// The configured PostgreSQL schema is not a plain lowercase identifier.
    #[error("invalid schema name {0:?}: expected ^[a-z_][a-z0-9_]{{0,62}}$")]
    InvalidSchemaName(String),
    /// The database URL's scheme is neither PostgreSQL nor SQLite. Holds only the scheme,
    /// because the URL may carry a password.
    #[error(
        "unsupported database URL scheme {0:?}: expected postgres://, postgresql:// or sqlite:"
    )]
    UnsupportedUrl(String),
    /// A stored value this service cannot interpret (for example an unknown state string).
    #[error("corrupt {table} row: column {column} holds {value:?}")]
    CorruptRow {
        /// The table read.
        table: &'static str,
        /// The column holding the value.
        column: &'static str,
        /// The value found.
        value: String,
    },
    /// The provider row does not exist (deleted, or cascaded away with its asset).
    #[error("provider row {row_id} not found")]
    RowNotFound {
        /// The `media_provider_assets.id` looked for.
        row_id: Uuid,
    },
    /// The caller does not hold the row's claim, so it may not write under it.
    #[error("run {run_id} does not hold the claim on provider row {row_id}")]
    NotClaimOwner {
        /// The `media_provider_assets.id`.
        row_id: Uuid,
        /// The caller's run id.
        run_id: String,
    },
}

impl StoreError {
    /// True if trying again later may succeed: connectivity, I/O, pool exhaustion, lock
    /// contention, serialization failures and server shutdowns. Refused transitions, bad
    /// configuration, corrupt rows and constraint violations are not.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Database { source, .. } => sqlx_error_is_retryable(source),
            StoreError::InvalidTransition(_)
            | StoreError::InvalidSchemaName(_)
            | StoreError::UnsupportedUrl(_)
            | StoreError::CorruptRow { .. }
            | StoreError::RowNotFound { .. }
            | StoreError::NotClaimOwner { .. } => false,
        }
    }
}

fn sqlx_error_is_retryable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            if db
                .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .is_some()
            {
                sqlstate_is_retryable(&code)
            } else {
                code.parse().is_ok_and(sqlite_code_is_retryable)
            }
        }
        _ => false,
    }
}

/// PostgreSQL SQLSTATEs worth retrying: 08 connection exception, 53 insufficient resources,
/// 58 system error (I/O), 40001 serialization failure, 40P01 deadlock, 55P03 lock not
/// available, 57P01..57P03 admin shutdown, crash shutdown, cannot connect now.
fn sqlstate_is_retryable(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || code.starts_with("58")
        || matches!(
            code,
            "40001" | "40P01" | "55P03" | "57P01" | "57P02" | "57P03"
        )
}

/// SQLite extended result codes worth retrying: SQLITE_BUSY (5), SQLITE_LOCKED (6) and
/// SQLITE_IOERR (10), whose primary code is the low byte.
fn sqlite_code_is_retryable(code: i32) -> bool {
    matches!(code & 0xff, 5 | 6 | 10)
}

/// Wraps a driver error with the operation it interrupted (for `map_err`).
fn db_err(op: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Database { op, source }
}

/// The time we write into Rindle's `timestamp` columns: UTC, naive, whole seconds, because
/// Rindle's Ecto schemas use `timestamps()` (`:naive_datetime`, truncated to seconds).
fn now() -> NaiveDateTime {
    Utc::now().naive_utc().trunc_subsecs(0)
}

/// Cuts an error text to [`LAST_SYNC_ERROR_MAX_CHARS`] characters, on a character boundary.
fn truncate_error(text: &str) -> &str {
    match text.char_indices().nth(LAST_SYNC_ERROR_MAX_CHARS) {
        Some((cut, _)) => &text[..cut],
        None => text,
    }
}

/// The `last_sync_error` part of a [`RowUpdate`] as SQL binds: (write it?, the new value).
fn sync_error_binds(update: &RowUpdate) -> (bool, Option<String>) {
    match &update.last_sync_error {
        None => (false, None),
        Some(error) => (true, error.as_deref().map(|e| truncate_error(e).to_owned())),
    }
}

/// Checks a schema name before it is formatted into SQL (it cannot be bound).
fn validate_schema(schema: &str) -> Result<&str, StoreError> {
    let mut chars = schema.chars();
    let valid = schema.len() <= 63
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid {
        Ok(schema)
    } else {
        Err(StoreError::InvalidSchemaName(schema.to_owned()))
    }
}

/// Parses a stored state string.
fn parse_state(state: &str) -> Result<ProviderAssetState, StoreError> {
    ProviderAssetState::from_db_str(state).ok_or_else(|| StoreError::CorruptRow {
        table: "media_provider_assets",
        column: "state",
        value: state.to_owned(),
    })
}

/// A provider row as both backends decode it, before the state string is checked.
struct RawProviderRow {
    id: Uuid,
    asset_id: Uuid,
    profile: String,
    provider_name: String,
    provider_asset_id: Option<String>,
    playback_ids: Vec<String>,
    playback_policy: Option<String>,
    state: String,
    last_sync_error: Option<String>,
    last_event_at: Option<NaiveDateTime>,
    updated_at: NaiveDateTime,
    inserted_at: NaiveDateTime,
}

impl RawProviderRow {
    fn into_row(self) -> Result<ProviderRow, StoreError> {
        Ok(ProviderRow {
            state: parse_state(&self.state)?,
            id: self.id,
            asset_id: self.asset_id,
            profile: self.profile,
            provider_name: self.provider_name,
            provider_asset_id: self.provider_asset_id,
            playback_ids: self.playback_ids,
            playback_policy: self.playback_policy,
            last_sync_error: self.last_sync_error,
            last_event_at: self.last_event_at,
            updated_at: self.updated_at,
            inserted_at: self.inserted_at,
        })
    }
}

/// Turns the `(asset storage_key, variant storage_key, variant recipe_digest)` of the shared
/// `media_assets LEFT JOIN media_variants` lookup into a [`SourceLookup`]. `recipe_digest` is
/// `NOT NULL`, so a `NULL` there means the join found no variant.
fn source_lookup(row: Option<(String, Option<String>, Option<String>)>) -> SourceLookup {
    match row {
        None => SourceLookup::AssetMissing,
        Some((_, _, None)) => SourceLookup::VariantMissing,
        Some((asset_storage_key, variant_storage_key, Some(variant_recipe_digest))) => {
            SourceLookup::Found(Source {
                asset_storage_key,
                variant_storage_key,
                variant_recipe_digest,
            })
        }
    }
}

/// The store of record, on one of its two backends. Cheap to clone (it holds a pool).
#[derive(Debug, Clone)]
pub enum Store {
    /// PostgreSQL: production, Rindle's tables in a configured schema.
    Postgres(PgStore),
    /// SQLite: the embedded default.
    Sqlite(SqliteStore),
}

/// Calls the same method on whichever backend `$store` is.
macro_rules! dispatch {
    ($store:expr, $backend:ident => $call:expr) => {
        match $store {
            Store::Postgres($backend) => $call,
            Store::Sqlite($backend) => $call,
        }
    };
}

impl Store {
    /// Opens the store named by `url`: `postgres://…` or `postgresql://…` (tables in `schema`),
    /// or `sqlite:…` (`schema` ignored; the file is created if missing).
    pub async fn connect(url: &str, schema: &str) -> Result<Store, StoreError> {
        let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
        match scheme {
            "postgres" | "postgresql" => Ok(Store::Postgres(PgStore::connect(url, schema).await?)),
            "sqlite" => Ok(Store::Sqlite(SqliteStore::connect(url).await?)),
            other => Err(StoreError::UnsupportedUrl(other.to_owned())),
        }
    }

    /// Wraps an existing PostgreSQL pool (the caller chose its size and options).
    pub fn from_pg_pool(pool: PgPool, schema: &str) -> Result<Store, StoreError> {
        Ok(Store::Postgres(PgStore::new(pool, schema)?))
    }

    /// Wraps an existing SQLite pool (the caller set WAL, busy timeout and foreign keys).
    pub fn from_sqlite_pool(pool: SqlitePool) -> Store {
        Store::Sqlite(SqliteStore::new(pool))
    }

    /// Creates Rindle's tables if absent and our `rindle_ingest_` tables, applying each
    /// versioned step once. Idempotent, and safe to run from several workers at once.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        dispatch!(self, s => s.migrate().await)
    }

    /// Checks that the database answers (`SELECT 1`), for health checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(self, s => s.ping().await)
    }

    /// Reads the asset's and the variant's keys and digest, for signing and freshness.
    pub async fn load_source(
        &self,
        asset_id: Uuid,
        variant_name: &str,
    ) -> Result<SourceLookup, StoreError> {
        dispatch!(self, s => s.load_source(asset_id, variant_name).await)
    }

    /// Returns the `(asset_id, profile, 'mux')` row, inserting it as `pending` if absent.
    /// Race-free (insert-or-nothing, then read); an existing row is returned in whatever
    /// state it is and never changed.
    pub async fn ensure_pending_row(
        &self,
        asset_id: Uuid,
        profile: &str,
        playback_policy: &str,
    ) -> Result<ProviderRow, StoreError> {
        dispatch!(self, s => s.ensure_pending_row(asset_id, profile, playback_policy).await)
    }

    /// Reads a provider row by id.
    pub async fn get_row(&self, row_id: Uuid) -> Result<Option<ProviderRow>, StoreError> {
        dispatch!(self, s => s.get_row(row_id).await)
    }

    /// Finds the `(asset_id, profile, 'mux')` row without creating it (read-only lookups).
    pub async fn find_row(
        &self,
        asset_id: Uuid,
        profile: &str,
    ) -> Result<Option<ProviderRow>, StoreError> {
        dispatch!(self, s => s.find_row(asset_id, profile).await)
    }

    /// Finds the Mux row holding `provider_asset_id` (webhooks and sync address rows this way).
    pub async fn find_row_by_provider_asset_id(
        &self,
        provider_asset_id: &str,
    ) -> Result<Option<ProviderRow>, StoreError> {
        dispatch!(self, s => s.find_row_by_provider_asset_id(provider_asset_id).await)
    }

    /// Reads the claim on a row, if any ingest ever claimed it.
    pub async fn get_claim(&self, row_id: Uuid) -> Result<Option<Claim>, StoreError> {
        dispatch!(self, s => s.get_claim(row_id).await)
    }

    /// Moves a `pending` row to `uploading` and records `owner` as its claimant, in one
    /// transaction. `Lost` if the row was not `pending`.
    pub async fn claim_row(
        &self,
        row_id: Uuid,
        owner: &ClaimOwner,
    ) -> Result<ClaimOutcome, StoreError> {
        dispatch!(self, s => s.claim_row(row_id, owner).await)
    }

    /// Takes over an `uploading` row whose owner no longer runs. A compare-and-set on the
    /// claim: with `Some(run)`, only if `run` still holds it; with `None`, only if the row has
    /// no claim at all. The state stays `uploading`. The previous owner's
    /// `created_provider_asset_id` is kept (it is the orphan the new owner must clean up)
    /// until the new owner records its own.
    pub async fn take_over_claim(
        &self,
        row_id: Uuid,
        previous_run_id: Option<&str>,
        owner: &ClaimOwner,
    ) -> Result<ClaimOutcome, StoreError> {
        dispatch!(self, s => s.take_over_claim(row_id, previous_run_id, owner).await)
    }

    /// Remembers in the claim which Mux asset `owner` created, so that whoever takes the row
    /// over can delete it. Fails with [`StoreError::NotClaimOwner`] if `owner` lost the claim.
    pub async fn record_created_asset(
        &self,
        row_id: Uuid,
        owner: &ClaimOwner,
        provider_asset_id: &str,
    ) -> Result<(), StoreError> {
        dispatch!(self, s => s.record_created_asset(row_id, owner, provider_asset_id).await)
    }

    /// Moves the owner's `uploading` row to `processing` with the Mux ids, in one transaction
    /// that re-checks the source's freshness and the claim first, then releases the claim.
    pub async fn promote(
        &self,
        row_id: Uuid,
        owner: &ClaimOwner,
        expected: &Freshness,
        provider_asset_id: &str,
        playback_ids: &[String],
    ) -> Result<PromoteOutcome, StoreError> {
        dispatch!(
            self,
            s => s.promote(row_id, owner, expected, provider_asset_id, playback_ids).await
        )
    }

    /// Records a definitive failure: writes `last_sync_error` (cut to 4096 characters) on the
    /// owner's `uploading` row and releases the claim. The row stays `uploading` (the FSM has
    /// no edge back to `pending`) but unowned, so the next ingest takes it over. Idempotent;
    /// a no-op for a caller that does not hold the claim.
    pub async fn release_claim(
        &self,
        row_id: Uuid,
        owner: &ClaimOwner,
        last_sync_error: &str,
    ) -> Result<(), StoreError> {
        dispatch!(self, s => s.release_claim(row_id, owner, last_sync_error).await)
    }

    /// Moves a row `from` → `to` if the FSM allows the edge (else `Err(InvalidTransition)`,
    /// nothing written) and the row is still in `from` (else `Conflict`), applying `update`.
    pub async fn transition(
        &self,
        row_id: Uuid,
        from: ProviderAssetState,
        to: ProviderAssetState,
        update: RowUpdate,
    ) -> Result<TransitionOutcome, StoreError> {
        dispatch!(self, s => s.transition(row_id, from, to, &update).await)
    }

    /// True if `event_id` was already recorded: lets a handler skip a duplicate and record the
    /// event only once it has been applied (so a failed delivery is retried by Mux).
    pub async fn is_webhook_event_recorded(&self, event_id: &str) -> Result<bool, StoreError> {
        dispatch!(self, s => s.is_webhook_event_recorded(event_id).await)
    }

    /// Durable webhook dedup: `true` the first time `event_id` is seen, `false` after.
    pub async fn record_webhook_event(&self, event_id: &str) -> Result<bool, StoreError> {
        dispatch!(self, s => s.record_webhook_event(event_id).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_cut_to_4096_characters_on_a_char_boundary() {
        let long = "é".repeat(5000);
        let cut = truncate_error(&long);
        assert_eq!(cut.chars().count(), LAST_SYNC_ERROR_MAX_CHARS);
        assert_eq!(truncate_error("short"), "short");
    }

    #[test]
    fn schema_names_must_be_plain_lowercase_identifiers() {
        for ok in [
            "rindle",
            "public",
            "_x",
            "rt_0123456789abcdef",
            &"a".repeat(63),
        ] {
            assert!(validate_schema(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Rindle",
            "1abc",
            "a-b",
            "a\"; DROP",
            "a.b",
            &"a".repeat(64),
        ] {
            assert!(
                matches!(validate_schema(bad), Err(StoreError::InvalidSchemaName(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn only_transient_failures_are_retryable() {
        let io = StoreError::Database {
            op: "get_row",
            source: sqlx::Error::Io(std::io::Error::other("reset")),
        };
        assert!(io.is_retryable());
        assert!(
            StoreError::Database {
                op: "get_row",
                source: sqlx::Error::PoolTimedOut
            }
            .is_retryable()
        );
        assert!(
            !StoreError::Database {
                op: "get_row",
                source: sqlx::Error::RowNotFound
            }
            .is_retryable()
        );
        let refused = rindle_workflows::fsm::check(
            ProviderAssetState::Processing,
            ProviderAssetState::Deleted,
        )
        .unwrap_err();
        assert!(!StoreError::from(refused).is_retryable());
        assert!(!StoreError::InvalidSchemaName("X".into()).is_retryable());
        assert!(sqlstate_is_retryable("40001"));
        assert!(sqlstate_is_retryable("08006"));
        assert!(!sqlstate_is_retryable("23505"));
        assert!(sqlite_code_is_retryable(517)); // SQLITE_BUSY_SNAPSHOT
        assert!(!sqlite_code_is_retryable(2067)); // SQLITE_CONSTRAINT_UNIQUE
    }

    #[test]
    fn error_messages_name_their_context_once() {
        let e = StoreError::Database {
            op: "claim_row",
            source: sqlx::Error::PoolTimedOut,
        };
        assert_eq!(e.to_string(), "database error in claim_row");
        assert_eq!(
            StoreError::UnsupportedUrl("mysql".into()).to_string(),
            "unsupported database URL scheme \"mysql\": expected postgres://, postgresql:// or sqlite:"
        );
    }

    #[test]
    fn debug_output_redacts_provider_ids() {
        let update = RowUpdate {
            provider_asset_id: Some("AbCdEfGh1234".into()),
            ..RowUpdate::default()
        };
        let shown = format!("{update:?}");
        assert!(
            shown.contains("...1234") && !shown.contains("AbCdEfGh"),
            "{shown}"
        );
    }

    #[test]
    fn freshness_checks_the_asset_before_the_recipe() {
        let source = Source {
            asset_storage_key: "new".into(),
            variant_storage_key: None,
            variant_recipe_digest: "new".into(),
        };
        let expected = Freshness {
            asset_id: Uuid::nil(),
            variant_name: "v".into(),
            expected_storage_key: "old".into(),
            expected_recipe_digest: "old".into(),
        };
        assert_eq!(
            check_freshness(&source, &expected),
            Err(StaleReason::AssetChanged)
        );
    }
}
