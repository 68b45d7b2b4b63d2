//! [`SqliteStore`]: the store in one SQLite file, the embedded default.
//!
//! Same tables, columns and statements as [`super::postgres`], in SQLite's types: uuids bound as
//! hyphenated TEXT, `playback_ids` as a JSON array in TEXT. SQLite has one writer at a time, so
//! every transaction that decides before it writes opens with `BEGIN IMMEDIATE`: it takes the
//! write lock up front (waiting up to the busy timeout) instead of failing to upgrade a read
//! lock half-way, and it plays the part of PostgreSQL's `FOR UPDATE`.

use std::str::FromStr;
use std::time::Duration;

use rindle_proto::ProviderAssetState::{self, Pending, Processing, Uploading};
use rindle_workflows::fsm;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::types::Json;
use sqlx::{Row, Sqlite, SqliteExecutor, SqlitePool, Transaction};
use uuid::Uuid;
use uuid::fmt::Hyphenated;

use super::migrations;
use super::{
    Claim, ClaimOutcome, ClaimOwner, Freshness, PROVIDER_NAME, PromoteOutcome, ProviderRow,
    ROW_COLUMNS, RawProviderRow, RowUpdate, SourceLookup, StoreError, TransitionOutcome,
    check_freshness, db_err, now, parse_state, source_lookup, sync_error_binds, truncate_error,
};
use crate::telemetry;

/// The store on SQLite: a pool over one database file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    pub(super) fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    pub(super) async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(db_err("connect"))?
            .create_if_missing(true)
            // WAL lets readers (and a second process, such as a test or an operator's
            // sqlite3) read while the worker writes.
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            // Writers queue on the file lock; 5 s is far above any of our transactions.
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        // An in-memory database lives as long as its connections and shares its cache
        // between them, where SQLite reports lock conflicts at once instead of waiting on
        // the busy timeout: keep exactly one connection, forever.
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let pool_options = if in_memory {
            SqlitePoolOptions::new()
                .max_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            // Writes are serialised by SQLite anyway; a few connections let reads overlap.
            SqlitePoolOptions::new().max_connections(4)
        };
        let pool = pool_options
            .connect_with(options)
            .await
            .map_err(db_err("connect"))?;
        Ok(Self::new(pool))
    }

    /// The pool, for health checks and test introspection.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// A transaction that holds the write lock from its first statement.
    async fn begin_immediate(
        &self,
        op: &'static str,
    ) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_err(op))
    }

    pub(super) async fn migrate(&self) -> Result<(), StoreError> {
        const OP: &str = "migrate";
        // BEGIN IMMEDIATE serialises concurrent migrators (several workers on one file).
        let mut tx = self.begin_immediate(OP).await?;
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS rindle_ingest_schema_migrations (
                 version INTEGER PRIMARY KEY NOT NULL,
                 applied_at TEXT NOT NULL
             )",
        )
        .execute(&mut *tx)
        .await
        .map_err(db_err(OP))?;
        let applied: Vec<i32> =
            sqlx::query_scalar("SELECT version FROM rindle_ingest_schema_migrations")
                .fetch_all(&mut *tx)
                .await
                .map_err(db_err(OP))?;
        for step in migrations::pending(&applied) {
            sqlx::raw_sql(step.sqlite)
                .execute(&mut *tx)
                .await
                .map_err(db_err(OP))?;
            sqlx::query(
                "INSERT INTO rindle_ingest_schema_migrations (version, applied_at) VALUES ($1, $2)",
            )
            .bind(step.version)
            .bind(now())
            .execute(&mut *tx)
            .await
            .map_err(db_err(OP))?;
        }
        tx.commit().await.map_err(db_err(OP))
    }

    pub(super) async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(db_err("ping"))?;
        Ok(())
    }

    pub(super) async fn load_source(
        &self,
        asset_id: Uuid,
        variant_name: &str,
    ) -> Result<SourceLookup, StoreError> {
        self.load_source_with(&self.pool, asset_id, variant_name)
            .await
    }

    /// The source lookup, on the pool or inside a transaction.
    async fn load_source_with<'e>(
        &self,
        executor: impl SqliteExecutor<'e>,
        asset_id: Uuid,
        variant_name: &str,
    ) -> Result<SourceLookup, StoreError> {
        let row: Option<(String, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT a.storage_key, v.storage_key, v.recipe_digest
             FROM media_assets a
             LEFT JOIN media_variants v ON v.asset_id = a.id AND v.name = $2
             WHERE a.id = $1",
        )
        .bind(asset_id.hyphenated())
        .bind(variant_name)
        .fetch_optional(executor)
        .await
        .map_err(db_err("load_source"))?;
        Ok(source_lookup(row))
    }

    pub(super) async fn ensure_pending_row(
        &self,
        asset_id: Uuid,
        profile: &str,
        playback_policy: &str,
    ) -> Result<ProviderRow, StoreError> {
        const OP: &str = "ensure_pending_row";
        let now = now();
        sqlx::query(
            "INSERT INTO media_provider_assets
                 (id, asset_id, profile, provider_name, playback_ids, playback_policy, state,
                  raw_provider_metadata, inserted_at, updated_at)
             VALUES ($1, $2, $3, $4, '[]', $5, $6, '{}', $7, $7)
             ON CONFLICT (asset_id, profile, provider_name) DO NOTHING",
        )
        .bind(Uuid::new_v4().hyphenated())
        .bind(asset_id.hyphenated())
        .bind(profile)
        .bind(PROVIDER_NAME)
        .bind(playback_policy)
        .bind(Pending.as_db_str())
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(db_err(OP))?;
        // `None` only if the row was deleted in between (its asset was): report it as such.
        self.find_row(asset_id, profile)
            .await?
            .ok_or_else(|| db_err(OP)(sqlx::Error::RowNotFound))
    }

    pub(super) async fn find_row(
        &self,
        asset_id: Uuid,
        profile: &str,
    ) -> Result<Option<ProviderRow>, StoreError> {
        sqlx::query(&format!(
            "SELECT {ROW_COLUMNS} FROM media_provider_assets
             WHERE asset_id = $1 AND profile = $2 AND provider_name = $3"
        ))
        .bind(asset_id.hyphenated())
        .bind(profile)
        .bind(PROVIDER_NAME)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err("find_row"))?
        .map(|row| provider_row(&row))
        .transpose()
    }

    pub(super) async fn get_row(&self, row_id: Uuid) -> Result<Option<ProviderRow>, StoreError> {
        sqlx::query(&format!(
            "SELECT {ROW_COLUMNS} FROM media_provider_assets WHERE id = $1"
        ))
        .bind(row_id.hyphenated())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err("get_row"))?
        .map(|row| provider_row(&row))
        .transpose()
    }

    pub(super) async fn find_row_by_provider_asset_id(
        &self,
        provider_asset_id: &str,
    ) -> Result<Option<ProviderRow>, StoreError> {
        sqlx::query(&format!(
            "SELECT {ROW_COLUMNS} FROM media_provider_assets
             WHERE provider_name = $1 AND provider_asset_id = $2"
        ))
        .bind(PROVIDER_NAME)
        .bind(provider_asset_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err("find_row_by_provider_asset_id"))?
        .map(|row| provider_row(&row))
        .transpose()
    }

    pub(super) async fn get_claim(&self, row_id: Uuid) -> Result<Option<Claim>, StoreError> {
        self.get_claim_with(&self.pool, row_id).await
    }

    /// The claim lookup, on the pool or inside a transaction.
    async fn get_claim_with<'e>(
        &self,
        executor: impl SqliteExecutor<'e>,
        row_id: Uuid,
    ) -> Result<Option<Claim>, StoreError> {
        const OP: &str = "get_claim";
        let row = sqlx::query(
            "SELECT row_id, workflow_id, run_id, claimed_at, released_at, created_provider_asset_id
             FROM rindle_ingest_claims WHERE row_id = $1",
        )
        .bind(row_id.hyphenated())
        .fetch_optional(executor)
        .await
        .map_err(db_err(OP))?;
        row.map(|row| -> Result<Claim, sqlx::Error> {
            Ok(Claim {
                row_id: row.try_get::<Hyphenated, _>("row_id")?.into_uuid(),
                workflow_id: row.try_get("workflow_id")?,
                run_id: row.try_get("run_id")?,
                claimed_at: row.try_get("claimed_at")?,
                released_at: row.try_get("released_at")?,
                created_provider_asset_id: row.try_get("created_provider_asset_id")?,
            })
        })
        .transpose()
        .map_err(db_err(OP))
    }

    /// The provider row's state inside a `BEGIN IMMEDIATE` transaction, which already holds
    /// the write lock (`None` if the row does not exist).
    async fn lock_row_state(
        &self,
        conn: &mut SqliteConnection,
        row_id: Uuid,
    ) -> Result<Option<ProviderAssetState>, StoreError> {
        let state: Option<String> =
            sqlx::query_scalar("SELECT state FROM media_provider_assets WHERE id = $1")
                .bind(row_id.hyphenated())
                .fetch_optional(conn)
                .await
                .map_err(db_err("lock provider row"))?;
        state.as_deref().map(parse_state).transpose()
    }

    /// The state a lost compare-and-set found, for `Lost`/`Conflict` outcomes.
    async fn current_state<'e>(
        &self,
        executor: impl SqliteExecutor<'e>,
        row_id: Uuid,
    ) -> Result<ProviderAssetState, StoreError> {
        let state: Option<String> =
            sqlx::query_scalar("SELECT state FROM media_provider_assets WHERE id = $1")
                .bind(row_id.hyphenated())
                .fetch_optional(executor)
                .await
                .map_err(db_err("read provider row state"))?;
        parse_state(&state.ok_or(StoreError::RowNotFound { row_id })?)
    }

    pub(super) async fn claim_row(
        &self,
        row_id: Uuid,
        owner: &ClaimOwner,
    ) -> Result<ClaimOutcome, StoreError> {
        const OP: &str = "claim_row";
        fsm::check(Pending, Uploading)?;
        let now = now();
        let mut tx = self.begin_immediate(OP).await?;
        let claimed: Option<(Hyphenated, String)> = sqlx::query_as(
            "UPDATE media_provider_assets
             SET state = $3, last_sync_error = NULL, updated_at = $4
             WHERE id = $1 AND state = $2
             RETURNING asset_id, profile",
        )
        .bind(row_id.hyphenated())
        .bind(Pending.as_db_str())
        .bind(Uploading.as_db_str())
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err(OP))?;
        let Some((asset_id, profile)) = claimed else {
            let current_state = self.current_state(&mut *tx, row_id).await?;
            return Ok(ClaimOutcome::Lost { current_state });
        };
        sqlx::query(
            "INSERT INTO rindle_ingest_claims
                 (row_id, workflow_id, run_id, claimed_at, released_at, created_provider_asset_id)
             VALUES ($1, $2, $3, $4, NULL, NULL)
             ON CONFLICT (row_id) DO UPDATE SET
                 workflow_id = excluded.workflow_id, run_id = excluded.run_id,
                 claimed_at = excluded.claimed_at, released_at = NULL,
                 created_provider_asset_id = NULL",
        )
        .bind(row_id.hyphenated())
        .bind(&owner.workflow_id)
        .bind(&owner.run_id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err(OP))?;
        tx.commit().await.map_err(db_err(OP))?;
        telemetry::state_change(&profile, asset_id.into_uuid(), Pending, Uploading);
        Ok(ClaimOutcome::Claimed)
    }

    pub(super) async fn take_over_claim(
        &self,
        row_id: Uuid,
        previous_run_id: Option<&str>,
        owner: &ClaimOwner,
    ) -> Result<ClaimOutcome, StoreError> {
        const OP: &str = "take_over_claim";
        let now = now();
        let mut tx = self.begin_immediate(OP).await?;
        let current_state = self
            .lock_row_state(&mut tx, row_id)
            .await?
            .ok_or(StoreError::RowNotFound { row_id })?;
        if current_state != Uploading {
            return Ok(ClaimOutcome::Lost { current_state });
        }
        // The compare-and-set on the claim: only one of several concurrent successors wins.
        let swap_sql = match previous_run_id {
            Some(_) => {
                "UPDATE rindle_ingest_claims
                 SET workflow_id = $2, run_id = $3, claimed_at = $4, released_at = NULL
                 WHERE row_id = $1 AND run_id = $5"
            }
            None => {
                "INSERT INTO rindle_ingest_claims
                     (row_id, workflow_id, run_id, claimed_at, released_at, created_provider_asset_id)
                 VALUES ($1, $2, $3, $4, NULL, NULL)
                 ON CONFLICT (row_id) DO NOTHING"
            }
        };
        let swap = sqlx::query(swap_sql)
            .bind(row_id.hyphenated())
            .bind(&owner.workflow_id)
            .bind(&owner.run_id)
            .bind(now);
        let swap = match previous_run_id {
            Some(previous_run_id) => swap.bind(previous_run_id),
            None => swap,
        };
        let swapped = swap
            .execute(&mut *tx)
            .await
            .map_err(db_err(OP))?
            .rows_affected()
            == 1;
        if !swapped {
            return Ok(ClaimOutcome::Lost { current_state });
        }
        sqlx::query("UPDATE media_provider_assets SET updated_at = $2 WHERE id = $1")
            .bind(row_id.hyphenated())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_err(OP))?;
        tx.commit().await.map_err(db_err(OP))?;
        Ok(ClaimOutcome::Claimed)
    }

    pub(super) async fn record_created_asset(
        &self,
        row_id: Uuid,
        owner: &ClaimOwner,
        provider_asset_id: &str,
    ) -> Result<(), StoreError> {
        let updated = sqlx::query(
            "UPDATE rindle_ingest_claims SET created_provider_asset_id = $4
             WHERE row_id = $1 AND workflow_id = $2 AND run_id = $3 AND released_at IS NULL",
        )
        .bind(row_id.hyphenated())
        .bind(&owner.workflow_id)
        .bind(&owner.run_id)
        .bind(provider_asset_id)
        .execute(&self.pool)
        .await
        .map_err(db_err("record_created_asset"))?
        .rows_affected();
        if updated == 1 {
            Ok(())
        } else {
            Err(StoreError::NotClaimOwner {
                row_id,
                run_id: owner.run_id.clone(),
            })
        }
    }

    pub(super) async fn promote(
        &self,
        row_id: Uuid,
        owner: &ClaimOwner,
        expected: &Freshness,
        provider_asset_id: &str,
        playback_ids: &[String],
    ) -> Result<PromoteOutcome, StoreError> {
        const OP: &str = "promote";
        fsm::check(Uploading, Processing)?;
        let now = now();
        let mut tx = self.begin_immediate(OP).await?;
        let source = match self
            .load_source_with(&mut *tx, expected.asset_id, &expected.variant_name)
            .await?
        {
            SourceLookup::Found(source) => source,
            SourceLookup::AssetMissing | SourceLookup::VariantMissing => {
                return Ok(PromoteOutcome::SourceMissing);
            }
        };
        if let Err(reason) = check_freshness(&source, expected) {
            return Ok(PromoteOutcome::Stale(reason));
        }
        let current_state = self
            .lock_row_state(&mut tx, row_id)
            .await?
            .ok_or(StoreError::RowNotFound { row_id })?;
        let claim = self.get_claim_with(&mut *tx, row_id).await?;
        if current_state != Uploading || !claim.is_some_and(|claim| claim.is_held_by(owner)) {
            return Ok(PromoteOutcome::LostClaim { current_state });
        }
        let row = sqlx::query(&format!(
            "UPDATE media_provider_assets
             SET state = $3, provider_asset_id = $4, playback_ids = $5,
                 raw_provider_metadata = '{{}}', last_sync_error = NULL, updated_at = $6
             WHERE id = $1 AND state = $2
             RETURNING {ROW_COLUMNS}"
        ))
        .bind(row_id.hyphenated())
        .bind(Uploading.as_db_str())
        .bind(Processing.as_db_str())
        .bind(provider_asset_id)
        .bind(Json(playback_ids))
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err(OP))?;
        let row = provider_row(&row)?;
        sqlx::query("UPDATE rindle_ingest_claims SET released_at = $2 WHERE row_id = $1")
            .bind(row_id.hyphenated())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_err(OP))?;
        tx.commit().await.map_err(db_err(OP))?;
        telemetry::state_change(&row.profile, row.asset_id, Uploading, Processing);
        Ok(PromoteOutcome::Promoted(row))
    }

    pub(super) async fn release_claim(
        &self,
        row_id: Uuid,
        owner: &ClaimOwner,
        last_sync_error: &str,
    ) -> Result<(), StoreError> {
        const OP: &str = "release_claim";
        let now = now();
        let mut tx = self.begin_immediate(OP).await?;
        if self.lock_row_state(&mut tx, row_id).await?.is_none() {
            return Ok(()); // the row (and its claim) went away with its asset
        }
        let released = sqlx::query(
            "UPDATE rindle_ingest_claims SET released_at = $4
             WHERE row_id = $1 AND workflow_id = $2 AND run_id = $3 AND released_at IS NULL",
        )
        .bind(row_id.hyphenated())
        .bind(&owner.workflow_id)
        .bind(&owner.run_id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err(OP))?
        .rows_affected();
        if released == 1 {
            sqlx::query(
                "UPDATE media_provider_assets SET last_sync_error = $3, updated_at = $4
                 WHERE id = $1 AND state = $2",
            )
            .bind(row_id.hyphenated())
            .bind(Uploading.as_db_str())
            .bind(truncate_error(last_sync_error))
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_err(OP))?;
        }
        tx.commit().await.map_err(db_err(OP))
    }

    pub(super) async fn transition(
        &self,
        row_id: Uuid,
        from: ProviderAssetState,
        to: ProviderAssetState,
        update: &RowUpdate,
    ) -> Result<TransitionOutcome, StoreError> {
        const OP: &str = "transition";
        fsm::check(from, to)?;
        let (write_error, error) = sync_error_binds(update);
        let row = sqlx::query(&format!(
            "UPDATE media_provider_assets SET
                 state = $3,
                 playback_ids = COALESCE($4, playback_ids),
                 last_sync_error = CASE WHEN $5 THEN $6 ELSE last_sync_error END,
                 last_event_at = COALESCE($7, last_event_at),
                 provider_asset_id = COALESCE($8, provider_asset_id),
                 updated_at = $9
             WHERE id = $1 AND state = $2
             RETURNING {ROW_COLUMNS}"
        ))
        .bind(row_id.hyphenated())
        .bind(from.as_db_str())
        .bind(to.as_db_str())
        .bind(update.playback_ids.as_deref().map(Json))
        .bind(write_error)
        .bind(error)
        .bind(update.last_event_at)
        .bind(update.provider_asset_id.as_deref())
        .bind(now())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err(OP))?;
        let Some(row) = row else {
            let current_state = self.current_state(&self.pool, row_id).await?;
            return Ok(TransitionOutcome::Conflict { current_state });
        };
        let row = provider_row(&row)?;
        telemetry::state_change(&row.profile, row.asset_id, from, to);
        Ok(TransitionOutcome::Applied(row))
    }

    pub(super) async fn is_webhook_event_recorded(
        &self,
        event_id: &str,
    ) -> Result<bool, StoreError> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM rindle_ingest_webhook_events WHERE event_id = $1)",
        )
        .bind(event_id)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err("is_webhook_event_recorded"))
    }

    pub(super) async fn record_webhook_event(&self, event_id: &str) -> Result<bool, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO rindle_ingest_webhook_events (event_id, received_at) VALUES ($1, $2)
             ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(event_id)
        .bind(now())
        .execute(&self.pool)
        .await
        .map_err(db_err("record_webhook_event"))?
        .rows_affected();
        Ok(inserted == 1)
    }
}

/// Decodes a `SELECT {ROW_COLUMNS}` / `RETURNING {ROW_COLUMNS}` row.
fn provider_row(row: &SqliteRow) -> Result<ProviderRow, StoreError> {
    let raw = (|| -> Result<RawProviderRow, sqlx::Error> {
        Ok(RawProviderRow {
            id: row.try_get::<Hyphenated, _>("id")?.into_uuid(),
            asset_id: row.try_get::<Hyphenated, _>("asset_id")?.into_uuid(),
            profile: row.try_get("profile")?,
            provider_name: row.try_get("provider_name")?,
            provider_asset_id: row.try_get("provider_asset_id")?,
            playback_ids: row.try_get::<Json<Vec<String>>, _>("playback_ids")?.0,
            playback_policy: row.try_get("playback_policy")?,
            state: row.try_get("state")?,
            last_sync_error: row.try_get("last_sync_error")?,
            last_event_at: row.try_get("last_event_at")?,
            updated_at: row.try_get("updated_at")?,
            inserted_at: row.try_get("inserted_at")?,
        })
    })()
    .map_err(db_err("decode media_provider_assets row"))?;
    raw.into_row()
}
