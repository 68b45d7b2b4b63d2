//! Seeding helpers: write what Rindle itself would write (assets, variants) or force a row into
//! a state, so that tests can set up scenarios.
//!
//! They are public only because the `rindle-tests` crate uses them; production code never
//! calls them. [`Store::set_row_state_raw`] bypasses the FSM on purpose.

use uuid::Uuid;

use super::{Store, StoreError, db_err, now};

impl Store {
    /// Seeding helper (tests): inserts a `media_assets` row as Rindle leaves a promoted video
    /// (`kind = 'video'`, `state = 'available'`).
    pub async fn insert_asset(
        &self,
        id: Uuid,
        storage_key: &str,
        profile: &str,
    ) -> Result<(), StoreError> {
        const OP: &str = "insert_asset (seeding)";
        let sql = "INSERT INTO {t}media_assets
                       (id, state, storage_key, metadata, profile, kind, inserted_at, updated_at)
                   VALUES ($1, 'available', $2, '{}', $3, 'video', $4, $4)";
        let now = now();
        match self {
            Store::Postgres(pg) => sqlx::query(&qualify(sql, pg.schema()))
                .bind(id)
                .bind(storage_key)
                .bind(profile)
                .bind(now)
                .execute(pg.pool())
                .await
                .map(drop),
            Store::Sqlite(lite) => sqlx::query(&unqualify(sql))
                .bind(id.hyphenated())
                .bind(storage_key)
                .bind(profile)
                .bind(now)
                .execute(lite.pool())
                .await
                .map(drop),
        }
        .map_err(db_err(OP))
    }

    /// Seeding helper (tests): inserts a `media_variants` row as Rindle leaves a generated
    /// video variant (`state = 'ready'`, `output_kind = 'video'`).
    pub async fn insert_variant(
        &self,
        asset_id: Uuid,
        name: &str,
        recipe_digest: &str,
        storage_key: Option<&str>,
    ) -> Result<(), StoreError> {
        const OP: &str = "insert_variant (seeding)";
        let sql = "INSERT INTO {t}media_variants
                       (id, asset_id, name, state, recipe_digest, storage_key, output_kind,
                        inserted_at, updated_at)
                   VALUES ($1, $2, $3, 'ready', $4, $5, 'video', $6, $6)";
        let now = now();
        match self {
            Store::Postgres(pg) => sqlx::query(&qualify(sql, pg.schema()))
                .bind(Uuid::new_v4())
                .bind(asset_id)
                .bind(name)
                .bind(recipe_digest)
                .bind(storage_key)
                .bind(now)
                .execute(pg.pool())
                .await
                .map(drop),
            Store::Sqlite(lite) => sqlx::query(&unqualify(sql))
                .bind(Uuid::new_v4().hyphenated())
                .bind(asset_id.hyphenated())
                .bind(name)
                .bind(recipe_digest)
                .bind(storage_key)
                .bind(now)
                .execute(lite.pool())
                .await
                .map(drop),
        }
        .map_err(db_err(OP))
    }

    /// Seeding helper (tests): replaces an asset's `storage_key`, as a re-upload would.
    pub async fn set_asset_storage_key(
        &self,
        asset_id: Uuid,
        storage_key: &str,
    ) -> Result<(), StoreError> {
        let sql = "UPDATE {t}media_assets SET storage_key = $2, updated_at = $3 WHERE id = $1";
        self.seed_update(
            "set_asset_storage_key (seeding)",
            sql,
            asset_id,
            storage_key,
            None,
        )
        .await
    }

    /// Seeding helper (tests): replaces a variant's `recipe_digest`, as a recipe change would.
    pub async fn set_variant_recipe_digest(
        &self,
        asset_id: Uuid,
        variant_name: &str,
        recipe_digest: &str,
    ) -> Result<(), StoreError> {
        let sql = "UPDATE {t}media_variants SET recipe_digest = $2, updated_at = $3
                   WHERE asset_id = $1 AND name = $4";
        let op = "set_variant_recipe_digest (seeding)";
        self.seed_update(op, sql, asset_id, recipe_digest, Some(variant_name))
            .await
    }

    /// Seeding helper (tests only): writes a provider row's state directly, **bypassing the
    /// FSM and the claim**, to set up scenarios such as "a webhook moved the row on".
    pub async fn set_row_state_raw(&self, row_id: Uuid, state: &str) -> Result<(), StoreError> {
        let sql = "UPDATE {t}media_provider_assets SET state = $2, updated_at = $3 WHERE id = $1";
        self.seed_update("set_row_state_raw (seeding)", sql, row_id, state, None)
            .await
    }

    /// Seeding helper (tests only): writes a provider row's `last_sync_error` directly.
    pub async fn set_last_sync_error_raw(
        &self,
        row_id: Uuid,
        error: &str,
    ) -> Result<(), StoreError> {
        let sql = "UPDATE {t}media_provider_assets SET last_sync_error = $2, updated_at = $3 WHERE id = $1";
        self.seed_update(
            "set_last_sync_error_raw (seeding)",
            sql,
            row_id,
            error,
            None,
        )
        .await
    }

    /// Runs `UPDATE … WHERE id-ish = $1` with `$2` = `value`, `$3` = now and an optional `$4`.
    async fn seed_update(
        &self,
        op: &'static str,
        sql: &str,
        id: Uuid,
        value: &str,
        extra: Option<&str>,
    ) -> Result<(), StoreError> {
        let now = now();
        match self {
            Store::Postgres(pg) => {
                let sql = qualify(sql, pg.schema());
                let query = sqlx::query(&sql);
                let query = query.bind(id).bind(value).bind(now);
                let query = match extra {
                    Some(extra) => query.bind(extra),
                    None => query,
                };
                query.execute(pg.pool()).await.map(drop)
            }
            Store::Sqlite(lite) => {
                let sql = unqualify(sql);
                let query = sqlx::query(&sql);
                let query = query.bind(id.hyphenated()).bind(value).bind(now);
                let query = match extra {
                    Some(extra) => query.bind(extra),
                    None => query,
                };
                query.execute(lite.pool()).await.map(drop)
            }
        }
        .map_err(db_err(op))
    }
}

/// `{t}table` → `"schema".table` (the schema is validated when the store is built).
fn qualify(sql: &str, schema: &str) -> String {
    sql.replace("{t}", &format!("\"{schema}\"."))
}

/// `{t}table` → `table` (SQLite has one schema).
fn unqualify(sql: &str) -> String {
    sql.replace("{t}", "")
}
