//! [`PgStore`]: the store on PostgreSQL, in the adopter's Rindle schema.
//!
//! Table names are qualified with the validated, quoted schema, formatted into the SQL (a
//! schema cannot be bound); every value is bound. A transaction that decides on a provider row
//! locks it first (`FOR UPDATE`) and only then touches its claim, in that order everywhere, so
//! concurrent writers queue instead of deadlocking.

use std::time::Duration;

use rindle_proto::ProviderAssetState::{self, Pending, Processing, Uploading};
use rindle_workflows::fsm;
use sqlx::postgres::{PgConnection, PgPoolOptions, PgRow};
use sqlx::{PgExecutor, PgPool, Row};
use uuid::Uuid;

use super::migrations;
use super::{
    Claim, ClaimOutcome, ClaimOwner, Freshness, PROVIDER_NAME, PromoteOutcome, ProviderRow,
    ROW_COLUMNS, RawProviderRow, RowUpdate, SourceLookup, StoreError, TransitionOutcome,
    check_freshness, db_err, now, parse_state, source_lookup, sync_error_binds, truncate_error,
    validate_schema,
};
use crate::telemetry;

/// The store on PostgreSQL: a pool and the schema holding Rindle's tables.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    schema: String,
    /// `"schema"`, quoted (so that a schema named like a keyword still works), for SQL text.
    s: String,
}

impl PgStore {
    pub(super) fn new(pool: PgPool, schema: &str) -> Result<Self, StoreError> {
        let schema = validate_schema(schema)?;
        Ok(Self {
            pool,
            schema: schema.to_owned(),
            s: format!("\"{schema}\""),
        })
    }

    pub(super) async fn connect(url: &str, schema: &str) -> Result<Self, StoreError> {
        validate_schema(schema)?;
        let pool = PgPoolOptions::new()
            // Each concurrent activity holds at most one connection, briefly; 10 covers a
            // worker's default activity slots without crowding an adopter's database.
            .max_connections(10)
            // Fail an activity attempt (retryable) rather than hang when the database is away.
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(db_err("connect"))?;
        Self::new(pool, schema)
    }

    /// The pool, for health checks and test introspection.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The schema holding the tables (unquoted).
    pub fn schema(&self) -> &str {
        &self.schema
    }

    pub(super) async fn migrate(&self) -> Result<(), StoreError> {
        const OP: &str = "migrate";
        let s = &self.s;
        let mut tx = self.pool.begin().await.map_err(db_err(OP))?;
        // Several workers may start at once, and CREATE … IF NOT EXISTS is not race-free in
        // PostgreSQL: serialise migrators of this schema until commit.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind(format!("rindle_ingest.migrate.{}", self.schema))
            .execute(&mut *tx)
            .await
            .map_err(db_err(OP))?;
        // CREATE SCHEMA needs CREATE on the database even when the schema exists, which a
        // production role may lack: only ask when it is really missing.
        let schema_exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
                .bind(&self.schema)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err(OP))?;
        if !schema_exists {
            sqlx::raw_sql(&format!("CREATE SCHEMA IF NOT EXISTS {s}"))
                .execute(&mut *tx)
                .await
                .map_err(db_err(OP))?;
        }
        sqlx::raw_sql(&format!(
            "CREATE TABLE IF NOT EXISTS {s}.rindle_ingest_schema_migrations (
                 version integer PRIMARY KEY,
                 applied_at timestamp without time zone NOT NULL
             )"
        ))
        .execute(&mut *tx)
        .await
        .map_err(db_err(OP))?;
        let applied: Vec<i32> = sqlx::query_scalar(&format!(
            "SELECT version FROM {s}.rindle_ingest_schema_migrations"
        ))
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err(OP))?;
        for step in migrations::pending(&applied) {
            let ddl = step.postgres.replace(migrations::SCHEMA_PLACEHOLDER, s);
            sqlx::raw_sql(&ddl)
                .execute(&mut *tx)
                .await
                .map_err(db_err(OP))?;
            sqlx::query(&format!(
                "INSERT INTO {s}.rindle_ingest_schema_migrations (version, applied_at) VALUES ($1, $2)"
            ))
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
        executor: impl PgExecutor<'e>,
        asset_id: Uuid,
        variant_name: &str,
    ) -> Result<SourceLookup, StoreError> {
        let s = &self.s;
        let row: Option<(String, Option<String>, Option<String>)> = sqlx::query_as(&format!(
            "SELECT a.storage_key, v.storage_key, v.recipe_digest
             FROM {s}.media_assets a
             LEFT JOIN {s}.media_variants v ON v.asset_id = a.id AND v.name = $2
             WHERE a.id = $1"
        ))
        .bind(asset_id)
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
        let s = &self.s;
        let now = now();
        // Two statements on purpose: a row inserted by a concurrent transaction is invisible
        // to the snapshot of an INSERT … RETURNING that conflicts with it, but not to a
        // following SELECT. ON CONFLICT waits for that transaction, so the SELECT finds the row.
        sqlx::query(&format!(
            "INSERT INTO {s}.media_provider_assets
                 (id, asset_id, profile, provider_name, playback_ids, playback_policy, state,
                  raw_provider_metadata, inserted_at, updated_at)
             VALUES ($1, $2, $3, $4, '{{}}', $5, $6, '{{}}', $7, $7)
             ON CONFLICT (asset_id, profile, provider_name) DO NOTHING"
        ))
        .bind(Uuid::new_v4())
        .bind(asset_id)
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
        let s = &self.s;
        sqlx::query(&format!(
            "SELECT {ROW_COLUMNS} FROM {s}.media_provider_assets
             WHERE asset_id = $1 AND profile = $2 AND provider_name = $3"
        ))
        .bind(asset_id)
        .bind(profile)
        .bind(PROVIDER_NAME)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err("find_row"))?
        .map(|row| provider_row(&row))
        .transpose()
    }

    pub(super) async fn get_row(&self, row_id: Uuid) -> Result<Option<ProviderRow>, StoreError> {
        let s = &self.s;
        sqlx::query(&format!(
            "SELECT {ROW_COLUMNS} FROM {s}.media_provider_assets WHERE id = $1"
        ))
        .bind(row_id)
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
        let s = &self.s;
        sqlx::query(&format!(
            "SELECT {ROW_COLUMNS} FROM {s}.media_provider_assets
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
        executor: impl PgExecutor<'e>,
        row_id: Uuid,
    ) -> Result<Option<Claim>, StoreError> {
        const OP: &str = "get_claim";
        let s = &self.s;
        let row = sqlx::query(&format!(
            "SELECT row_id, workflow_id, run_id, claimed_at, released_at, created_provider_asset_id
             FROM {s}.rindle_ingest_claims WHERE row_id = $1"
        ))
        .bind(row_id)
        .fetch_optional(executor)
        .await
        .map_err(db_err(OP))?;
        row.map(|row| -> Result<Claim, sqlx::Error> {
            Ok(Claim {
                row_id: row.try_get("row_id")?,
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

    /// Locks the provider row for the rest of the transaction and returns its state
    /// (`None` if the row does not exist).
    async fn lock_row_state(
        &self,
        conn: &mut PgConnection,
        row_id: Uuid,
    ) -> Result<Option<ProviderAssetState>, StoreError> {
        let s = &self.s;
        let state: Option<String> = sqlx::query_scalar(&format!(
            "SELECT state FROM {s}.media_provider_assets WHERE id = $1 FOR UPDATE"
        ))
        .bind(row_id)
        .fetch_optional(conn)
        .await
        .map_err(db_err("lock provider row"))?;
        state.as_deref().map(parse_state).transpose()
    }

    /// The state a lost compare-and-set found, for `Lost`/`Conflict` outcomes.
    async fn current_state<'e>(
        &self,
        executor: impl PgExecutor<'e>,
        row_id: Uuid,
    ) -> Result<ProviderAssetState, StoreError> {
        let s = &self.s;
        let state: Option<String> = sqlx::query_scalar(&format!(
            "SELECT state FROM {s}.media_provider_assets WHERE id = $1"
        ))
        .bind(row_id)
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
        let s = &self.s;
        let now = now();
        let mut tx = self.pool.begin().await.map_err(db_err(OP))?;
        let claimed: Option<(Uuid, String)> = sqlx::query_as(&format!(
            "UPDATE {s}.media_provider_assets
             SET state = $3, last_sync_error = NULL, updated_at = $4
             WHERE id = $1 AND state = $2
             RETURNING asset_id, profile"
        ))
        .bind(row_id)
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
        sqlx::query(&format!(
            "INSERT INTO {s}.rindle_ingest_claims
                 (row_id, workflow_id, run_id, claimed_at, released_at, created_provider_asset_id)
             VALUES ($1, $2, $3, $4, NULL, NULL)
             ON CONFLICT (row_id) DO UPDATE SET
                 workflow_id = excluded.workflow_id, run_id = excluded.run_id,
                 claimed_at = excluded.claimed_at, released_at = NULL,
                 created_provider_asset_id = NULL"
        ))
        .bind(row_id)
        .bind(&owner.workflow_id)
        .bind(&owner.run_id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err(OP))?;
        tx.commit().await.map_err(db_err(OP))?;
        telemetry::state_change(&profile, asset_id, Pending, Uploading);
        Ok(ClaimOutcome::Claimed)
    }

    pub(super) async fn take_over_claim(
        &self,
        row_id: Uuid,
        previous_run_id: Option<&str>,
        owner: &ClaimOwner,
    ) -> Result<ClaimOutcome, StoreError> {
        const OP: &str = "take_over_claim";
        let s = &self.s;
        let now = now();
        let mut tx = self.pool.begin().await.map_err(db_err(OP))?;
        let current_state = self
            .lock_row_state(&mut tx, row_id)
            .await?
            .ok_or(StoreError::RowNotFound { row_id })?;
        if current_state != Uploading {
            return Ok(ClaimOutcome::Lost { current_state });
        }
        // The compare-and-set on the claim: only one of several concurrent successors wins.
        let swap_sql = match previous_run_id {
            Some(_) => format!(
                "UPDATE {s}.rindle_ingest_claims
                 SET workflow_id = $2, run_id = $3, claimed_at = $4, released_at = NULL
                 WHERE row_id = $1 AND run_id = $5"
            ),
            None => format!(
                "INSERT INTO {s}.rindle_ingest_claims
                     (row_id, workflow_id, run_id, claimed_at, released_at, created_provider_asset_id)
                 VALUES ($1, $2, $3, $4, NULL, NULL)
                 ON CONFLICT (row_id) DO NOTHING"
            ),
        };
        let swap = sqlx::query(&swap_sql)
            .bind(row_id)
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
        sqlx::query(&format!(
            "UPDATE {s}.media_provider_assets SET updated_at = $2 WHERE id = $1"
        ))
        .bind(row_id)
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
        let s = &self.s;
        let updated = sqlx::query(&format!(
            "UPDATE {s}.rindle_ingest_claims SET created_provider_asset_id = $4
             WHERE row_id = $1 AND workflow_id = $2 AND run_id = $3 AND released_at IS NULL"
        ))
        .bind(row_id)
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
        let s = &self.s;
        let now = now();
        let mut tx = self.pool.begin().await.map_err(db_err(OP))?;
        // Share-lock the source rows so the freshness we check is the freshness we commit
        // under: a concurrent change of the asset or variant waits for this transaction.
        sqlx::query(&format!(
            "SELECT 1 FROM {s}.media_assets WHERE id = $1 FOR SHARE"
        ))
        .bind(expected.asset_id)
        .execute(&mut *tx)
        .await
        .map_err(db_err(OP))?;
        sqlx::query(&format!(
            "SELECT 1 FROM {s}.media_variants WHERE asset_id = $1 AND name = $2 FOR SHARE"
        ))
        .bind(expected.asset_id)
        .bind(&expected.variant_name)
        .execute(&mut *tx)
        .await
        .map_err(db_err(OP))?;
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
            "UPDATE {s}.media_provider_assets
             SET state = $3, provider_asset_id = $4, playback_ids = $5,
                 raw_provider_metadata = '{{}}', last_sync_error = NULL, updated_at = $6
             WHERE id = $1 AND state = $2
             RETURNING {ROW_COLUMNS}"
        ))
        .bind(row_id)
        .bind(Uploading.as_db_str())
        .bind(Processing.as_db_str())
        .bind(provider_asset_id)
        .bind(playback_ids)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err(OP))?;
        let row = provider_row(&row)?;
        sqlx::query(&format!(
            "UPDATE {s}.rindle_ingest_claims SET released_at = $2 WHERE row_id = $1"
        ))
        .bind(row_id)
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
        let s = &self.s;
        let now = now();
        let mut tx = self.pool.begin().await.map_err(db_err(OP))?;
        if self.lock_row_state(&mut tx, row_id).await?.is_none() {
            return Ok(()); // the row (and its claim) went away with its asset
        }
        let released = sqlx::query(&format!(
            "UPDATE {s}.rindle_ingest_claims SET released_at = $4
             WHERE row_id = $1 AND workflow_id = $2 AND run_id = $3 AND released_at IS NULL"
        ))
        .bind(row_id)
        .bind(&owner.workflow_id)
        .bind(&owner.run_id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err(OP))?
        .rows_affected();
        if released == 1 {
            sqlx::query(&format!(
                "UPDATE {s}.media_provider_assets SET last_sync_error = $3, updated_at = $4
                 WHERE id = $1 AND state = $2"
            ))
            .bind(row_id)
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
        let s = &self.s;
        let (write_error, error) = sync_error_binds(update);
        let row = sqlx::query(&format!(
            "UPDATE {s}.media_provider_assets SET
                 state = $3,
                 playback_ids = COALESCE($4, playback_ids),
                 last_sync_error = CASE WHEN $5 THEN $6 ELSE last_sync_error END,
                 last_event_at = COALESCE($7, last_event_at),
                 provider_asset_id = COALESCE($8, provider_asset_id),
                 updated_at = $9
             WHERE id = $1 AND state = $2
             RETURNING {ROW_COLUMNS}"
        ))
        .bind(row_id)
        .bind(from.as_db_str())
        .bind(to.as_db_str())
        .bind(update.playback_ids.as_deref())
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
        let s = &self.s;
        sqlx::query_scalar(&format!(
            "SELECT EXISTS (SELECT 1 FROM {s}.rindle_ingest_webhook_events WHERE event_id = $1)"
        ))
        .bind(event_id)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err("is_webhook_event_recorded"))
    }

    pub(super) async fn record_webhook_event(&self, event_id: &str) -> Result<bool, StoreError> {
        let s = &self.s;
        let inserted = sqlx::query(&format!(
            "INSERT INTO {s}.rindle_ingest_webhook_events (event_id, received_at) VALUES ($1, $2)
             ON CONFLICT (event_id) DO NOTHING"
        ))
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
fn provider_row(row: &PgRow) -> Result<ProviderRow, StoreError> {
    let raw = (|| -> Result<RawProviderRow, sqlx::Error> {
        Ok(RawProviderRow {
            id: row.try_get("id")?,
            asset_id: row.try_get("asset_id")?,
            profile: row.try_get("profile")?,
            provider_name: row.try_get("provider_name")?,
            provider_asset_id: row.try_get("provider_asset_id")?,
            playback_ids: row.try_get("playback_ids")?,
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
