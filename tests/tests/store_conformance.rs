//! Store conformance: one suite, written once against [`Store`], run on PostgreSQL and SQLite.
//!
//! Every scenario is an `async fn(&Store)` below; the `conformance!` macro at the end
//! instantiates each one as a `#[tokio::test]` in `mod postgres` and in `mod sqlite`, each on a
//! fresh database. Races are real (concurrent calls on a pool), never timed: no sleeps.

use chrono::NaiveDate;
use rindle_activities::store::{
    ClaimOutcome, ClaimOwner, Freshness, LAST_SYNC_ERROR_MAX_CHARS, PromoteOutcome, ProviderRow,
    RowUpdate, Source, SourceLookup, StaleReason, Store, StoreError, TransitionOutcome,
    check_freshness,
};
use rindle_proto::ProviderAssetState::{Deleted, Errored, Pending, Processing, Ready, Uploading};
use uuid::Uuid;

const PROFILE: &str = "Elixir.MyApp.Profiles.Web";
const VARIANT: &str = "web_720p";
const STORAGE_KEY: &str = "assets/a1/original.mp4";
const DIGEST: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

const RINDLE_INDEXES: [&str; 12] = [
    "media_assets_state_index",
    "media_assets_storage_key_index",
    "media_assets_kind_index",
    "media_variants_asset_id_name_index",
    "media_variants_state_index",
    "media_variants_output_kind_index",
    "media_provider_assets_provider_name_provider_asset_id_index",
    "media_provider_assets_asset_id_profile_provider_name_index",
    "media_provider_assets_state_index",
    "media_provider_assets_state_updated_at_index",
    "media_provider_assets_provider_name_mux_passthrough_index",
    "media_provider_assets_provider_name_provider_upload_id_index",
];

// ---------------------------------------------------------------------------------------------
// Helpers

fn owner(name: &str) -> ClaimOwner {
    ClaimOwner {
        workflow_id: format!("wf-{name}"),
        run_id: format!("run-{name}"),
    }
}

/// An asset with one variant and its `pending` provider row, as an ingest finds them.
struct Seeded {
    asset_id: Uuid,
    row: ProviderRow,
    expected: Freshness,
}

async fn seed(store: &Store) -> Seeded {
    let asset_id = Uuid::new_v4();
    store
        .insert_asset(asset_id, STORAGE_KEY, PROFILE)
        .await
        .unwrap();
    store
        .insert_variant(asset_id, VARIANT, DIGEST, Some("variants/a1/web_720p.mp4"))
        .await
        .unwrap();
    let row = store
        .ensure_pending_row(asset_id, PROFILE, "signed")
        .await
        .unwrap();
    let expected = Freshness {
        asset_id,
        variant_name: VARIANT.to_owned(),
        expected_storage_key: STORAGE_KEY.to_owned(),
        expected_recipe_digest: DIGEST.to_owned(),
    };
    Seeded {
        asset_id,
        row,
        expected,
    }
}

/// [`seed`], then claimed by `owner("a")`.
async fn seed_claimed(store: &Store) -> (Seeded, ClaimOwner) {
    let seeded = seed(store).await;
    let a = owner("a");
    assert_eq!(
        store.claim_row(seeded.row.id, &a).await.unwrap(),
        ClaimOutcome::Claimed
    );
    (seeded, a)
}

async fn row(store: &Store, row_id: Uuid) -> ProviderRow {
    store
        .get_row(row_id)
        .await
        .unwrap()
        .expect("the row exists")
}

fn ids(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|id| (*id).to_owned()).collect()
}

/// Runs backend-specific SQL; `{t}` stands for the schema prefix (`"rt_…".` or nothing).
async fn exec(store: &Store, sql: &str) {
    match store {
        Store::Postgres(pg) => {
            let sql = sql.replace("{t}", &format!("\"{}\".", pg.schema()));
            sqlx::raw_sql(&sql).execute(pg.pool()).await.map(drop)
        }
        Store::Sqlite(lite) => sqlx::raw_sql(&sql.replace("{t}", ""))
            .execute(lite.pool())
            .await
            .map(drop),
    }
    .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Runs a backend-specific query returning one text column; `{t}` as in [`exec`], `$1` is
/// bound to `arg`.
async fn texts(store: &Store, sql: &str, arg: &str) -> Vec<String> {
    match store {
        Store::Postgres(pg) => {
            let sql = sql.replace("{t}", &format!("\"{}\".", pg.schema()));
            sqlx::query_scalar(&sql)
                .bind(arg)
                .fetch_all(pg.pool())
                .await
        }
        Store::Sqlite(lite) => {
            sqlx::query_scalar(&sql.replace("{t}", ""))
                .bind(arg)
                .fetch_all(lite.pool())
                .await
        }
    }
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

async fn index_names(store: &Store) -> Vec<String> {
    match store {
        Store::Postgres(pg) => {
            let sql = "SELECT indexname::text FROM pg_indexes WHERE schemaname = $1";
            texts(store, sql, pg.schema()).await
        }
        Store::Sqlite(_) => {
            let sql = "SELECT name FROM sqlite_master WHERE type = 'index' AND name <> $1";
            texts(store, sql, "").await
        }
    }
}

async fn column_names(store: &Store, table: &str) -> Vec<String> {
    match store {
        Store::Postgres(pg) => {
            let sql = format!(
                "SELECT column_name::text FROM information_schema.columns
                 WHERE table_schema = '{}' AND table_name = $1 ORDER BY ordinal_position",
                pg.schema()
            );
            texts(store, &sql, table).await
        }
        Store::Sqlite(_) => {
            texts(
                store,
                "SELECT name FROM pragma_table_info($1) ORDER BY cid",
                table,
            )
            .await
        }
    }
}

async fn provider_row_count(store: &Store, asset_id: Uuid) -> usize {
    let sql =
        "SELECT CAST(id AS TEXT) FROM {t}media_provider_assets WHERE CAST(asset_id AS TEXT) = $1";
    texts(store, sql, &asset_id.to_string()).await.len()
}

async fn raw_provider_metadata(store: &Store, row_id: Uuid) -> serde_json::Value {
    let sql = "SELECT CAST(raw_provider_metadata AS TEXT) FROM {t}media_provider_assets
               WHERE CAST(id AS TEXT) = $1";
    let text = texts(store, sql, &row_id.to_string())
        .await
        .pop()
        .expect("the row exists");
    serde_json::from_str(&text).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Migrations (on a database that has not been migrated yet)

async fn migrate_is_idempotent_and_safe_to_run_concurrently(store: &Store) {
    let (first, second) = tokio::join!(store.migrate(), store.migrate());
    first.unwrap();
    second.unwrap();
    store.migrate().await.unwrap();

    let versions = texts(
        store,
        "SELECT CAST(version AS TEXT) FROM {t}rindle_ingest_schema_migrations WHERE $1 = $1",
        "",
    )
    .await;
    assert_eq!(versions, ["1"], "each step is recorded once");
    seed(store).await; // and the tables work
}

async fn migrate_leaves_pre_existing_rindle_tables_untouched(store: &Store) {
    // An adopter's media_assets, with a column of its own and a row.
    let ddl = match store {
        Store::Postgres(pg) => format!(
            "CREATE SCHEMA \"{s}\";
             CREATE TABLE \"{s}\".media_assets (
                 id uuid PRIMARY KEY, state varchar(255) NOT NULL DEFAULT 'staged',
                 storage_key varchar(255) NOT NULL, content_type varchar(255), byte_size bigint,
                 filename varchar(255), metadata jsonb NOT NULL DEFAULT '{{}}',
                 recipe_digest varchar(255), profile varchar(255) NOT NULL,
                 kind varchar(255) NOT NULL DEFAULT 'image', width integer, height integer,
                 duration_ms bigint, has_video_track boolean, has_audio_track boolean,
                 error_reason text, inserted_at timestamp(0) NOT NULL,
                 updated_at timestamp(0) NOT NULL, tenant_id text);",
            s = pg.schema()
        ),
        Store::Sqlite(_) => "CREATE TABLE media_assets (
                 id TEXT PRIMARY KEY NOT NULL, state TEXT NOT NULL DEFAULT 'staged',
                 storage_key TEXT NOT NULL, content_type TEXT, byte_size INTEGER, filename TEXT,
                 metadata TEXT NOT NULL DEFAULT '{}', recipe_digest TEXT, profile TEXT NOT NULL,
                 kind TEXT NOT NULL DEFAULT 'image', width INTEGER, height INTEGER,
                 duration_ms INTEGER, has_video_track INTEGER, has_audio_track INTEGER,
                 error_reason TEXT, inserted_at TEXT NOT NULL, updated_at TEXT NOT NULL,
                 tenant_id TEXT);"
            .to_owned(),
    };
    exec(store, &ddl).await;
    let asset_id = Uuid::new_v4();
    exec(
        store,
        &format!(
            "INSERT INTO {{t}}media_assets (id, storage_key, profile, kind, inserted_at, updated_at, tenant_id)
             VALUES ('{asset_id}', '{STORAGE_KEY}', '{PROFILE}', 'video',
                     '2026-01-02 03:04:05', '2026-01-02 03:04:05', 'acme')"
        ),
    )
    .await;
    let columns_before = column_names(store, "media_assets").await;
    assert!(columns_before.contains(&"tenant_id".to_owned()));

    store.migrate().await.unwrap();

    assert_eq!(column_names(store, "media_assets").await, columns_before);
    let tenant = texts(
        store,
        "SELECT tenant_id FROM {t}media_assets WHERE CAST(id AS TEXT) = $1",
        &asset_id.to_string(),
    )
    .await;
    assert_eq!(tenant, ["acme"]);
    // The adopter's row works with our tables.
    store
        .insert_variant(asset_id, VARIANT, DIGEST, None)
        .await
        .unwrap();
    assert!(matches!(
        store.load_source(asset_id, VARIANT).await.unwrap(),
        SourceLookup::Found(_)
    ));
    store
        .ensure_pending_row(asset_id, PROFILE, "signed")
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// Schema (on a migrated database)

async fn migrate_creates_rindles_tables_with_their_exact_index_names(store: &Store) {
    store.ping().await.unwrap();
    let indexes = index_names(store).await;
    for name in RINDLE_INDEXES {
        assert!(
            indexes.iter().any(|i| i == name),
            "missing index {name} in {indexes:?}"
        );
    }
    for table in [
        "rindle_ingest_claims",
        "rindle_ingest_webhook_events",
        "rindle_ingest_schema_migrations",
    ] {
        assert!(
            !column_names(store, table).await.is_empty(),
            "missing table {table}"
        );
    }
    let provider_columns = column_names(store, "media_provider_assets").await;
    assert_eq!(
        provider_columns,
        [
            "id",
            "asset_id",
            "profile",
            "provider_name",
            "provider_asset_id",
            "playback_ids",
            "playback_policy",
            "ingest_mode",
            "state",
            "last_event_id",
            "last_event_at",
            "last_sync_error",
            "raw_provider_metadata",
            "mux_passthrough",
            "provider_upload_id",
            "inserted_at",
            "updated_at",
        ]
    );
    if let Store::Postgres(pg) = store {
        let sql = "SELECT conname::text FROM pg_constraint
                   WHERE connamespace = CAST($1 AS regnamespace) AND contype = 'f'";
        let foreign_keys = texts(store, sql, pg.schema()).await;
        for name in [
            "media_variants_asset_id_fkey",
            "media_provider_assets_asset_id_fkey",
        ] {
            assert!(
                foreign_keys.iter().any(|f| f == name),
                "missing {name} in {foreign_keys:?}"
            );
        }
    }
}

async fn playback_ids_round_trip_as_a_string_array(store: &Store) {
    if let Store::Postgres(pg) = store {
        let sql = format!(
            "SELECT udt_name::text FROM information_schema.columns
             WHERE table_schema = '{}' AND table_name = 'media_provider_assets' AND column_name = $1",
            pg.schema()
        );
        assert_eq!(texts(store, &sql, "playback_ids").await, ["_varchar"]);
    }
    let (seeded, a) = seed_claimed(store).await;
    assert!(seeded.row.playback_ids.is_empty());
    let awkward = ids(&["plain", "with,comma", "with \"quote\"", "{braces}", "ünï"]);
    let outcome = store
        .promote(seeded.row.id, &a, &seeded.expected, "mux-asset-1", &awkward)
        .await
        .unwrap();
    assert!(matches!(outcome, PromoteOutcome::Promoted(ref r) if r.playback_ids == awkward));
    assert_eq!(row(store, seeded.row.id).await.playback_ids, awkward);
}

// ---------------------------------------------------------------------------------------------
// Source lookup

async fn load_source_finds_the_asset_and_its_variant(store: &Store) {
    let seeded = seed(store).await;
    assert_eq!(
        store.load_source(seeded.asset_id, VARIANT).await.unwrap(),
        SourceLookup::Found(Source {
            asset_storage_key: STORAGE_KEY.to_owned(),
            variant_storage_key: Some("variants/a1/web_720p.mp4".to_owned()),
            variant_recipe_digest: DIGEST.to_owned(),
        })
    );
}

async fn load_source_reports_a_missing_asset(store: &Store) {
    let lookup = store.load_source(Uuid::new_v4(), VARIANT).await.unwrap();
    assert_eq!(lookup, SourceLookup::AssetMissing);
}

async fn load_source_reports_a_missing_variant(store: &Store) {
    let seeded = seed(store).await;
    let lookup = store
        .load_source(seeded.asset_id, "web_1080p")
        .await
        .unwrap();
    assert_eq!(lookup, SourceLookup::VariantMissing);
}

// ---------------------------------------------------------------------------------------------
// The pending row

async fn ensure_pending_row_creates_a_pending_mux_row_once(store: &Store) {
    let seeded = seed(store).await;
    let created = &seeded.row;
    assert_eq!(created.asset_id, seeded.asset_id);
    assert_eq!(created.profile, PROFILE);
    assert_eq!(created.provider_name, "mux");
    assert_eq!(created.state, Pending);
    assert_eq!(created.playback_policy.as_deref(), Some("signed"));
    assert_eq!(created.provider_asset_id, None);
    assert!(created.playback_ids.is_empty());
    assert_eq!(
        raw_provider_metadata(store, created.id).await,
        serde_json::json!({})
    );

    let again = store
        .ensure_pending_row(seeded.asset_id, PROFILE, "signed")
        .await
        .unwrap();
    assert_eq!(&again, created);
    assert_eq!(
        store.get_row(created.id).await.unwrap().as_ref(),
        Some(created)
    );
    let found = store.find_row(seeded.asset_id, PROFILE).await.unwrap();
    assert_eq!(found.as_ref(), Some(created));
    let other_profile = store
        .find_row(seeded.asset_id, "Elixir.MyApp.Profiles.Other")
        .await;
    assert_eq!(other_profile.unwrap(), None);
}

async fn ensure_pending_row_never_changes_an_existing_rows_state(store: &Store) {
    let (seeded, _) = seed_claimed(store).await;
    let before = row(store, seeded.row.id).await;
    let again = store
        .ensure_pending_row(seeded.asset_id, PROFILE, "public")
        .await
        .unwrap();
    assert_eq!(again, before);
    assert_eq!(again.state, Uploading);
    assert_eq!(again.playback_policy.as_deref(), Some("signed"));
}

async fn ten_concurrent_ensure_pending_row_calls_create_exactly_one_row(store: &Store) {
    let asset_id = Uuid::new_v4();
    store
        .insert_asset(asset_id, STORAGE_KEY, PROFILE)
        .await
        .unwrap();
    let calls = (0..10).map(|_| store.ensure_pending_row(asset_id, PROFILE, "signed"));
    let rows: Vec<ProviderRow> = futures::future::try_join_all(calls).await.unwrap();
    assert!(
        rows.iter().all(|r| r.id == rows[0].id),
        "every call returns the same row"
    );
    assert_eq!(provider_row_count(store, asset_id).await, 1);
}

// ---------------------------------------------------------------------------------------------
// Claims

async fn two_concurrent_claims_yield_exactly_one_winner(store: &Store) {
    let seeded = seed(store).await;
    let (a, b) = (owner("a"), owner("b"));
    let (first, second) = tokio::join!(
        store.claim_row(seeded.row.id, &a),
        store.claim_row(seeded.row.id, &b)
    );
    let outcomes = [first.unwrap(), second.unwrap()];
    let lost = ClaimOutcome::Lost {
        current_state: Uploading,
    };
    let winner = match outcomes {
        [ClaimOutcome::Claimed, l] if l == lost => &a,
        [l, ClaimOutcome::Claimed] if l == lost => &b,
        other => panic!("expected one Claimed and one Lost(uploading), got {other:?}"),
    };
    let claim = store
        .get_claim(seeded.row.id)
        .await
        .unwrap()
        .expect("a claim");
    assert!(claim.is_held_by(winner));
    assert_eq!(claim.created_provider_asset_id, None);
    let claimed_row = row(store, seeded.row.id).await;
    assert_eq!(claimed_row.state, Uploading);
    assert_eq!(claimed_row.last_sync_error, None);
}

async fn claim_row_loses_when_the_row_is_past_pending(store: &Store) {
    let seeded = seed(store).await;
    store
        .set_row_state_raw(seeded.row.id, "processing")
        .await
        .unwrap();
    let outcome = store.claim_row(seeded.row.id, &owner("a")).await.unwrap();
    assert_eq!(
        outcome,
        ClaimOutcome::Lost {
            current_state: Processing
        }
    );
    assert_eq!(store.get_claim(seeded.row.id).await.unwrap(), None);
}

async fn take_over_claim_succeeds_only_from_the_run_that_holds_the_claim(store: &Store) {
    let (seeded, a) = seed_claimed(store).await;
    let (b, c) = (owner("b"), owner("c"));

    let wrong = store
        .take_over_claim(seeded.row.id, Some("run-nobody"), &b)
        .await
        .unwrap();
    assert_eq!(
        wrong,
        ClaimOutcome::Lost {
            current_state: Uploading
        }
    );
    assert!(
        store
            .get_claim(seeded.row.id)
            .await
            .unwrap()
            .unwrap()
            .is_held_by(&a)
    );

    let right = store
        .take_over_claim(seeded.row.id, Some(a.run_id.as_str()), &b)
        .await
        .unwrap();
    assert_eq!(right, ClaimOutcome::Claimed);
    let claim = store.get_claim(seeded.row.id).await.unwrap().unwrap();
    assert!(claim.is_held_by(&b) && !claim.is_held_by(&a));
    assert_eq!(row(store, seeded.row.id).await.state, Uploading);

    let none_while_claimed = store
        .take_over_claim(seeded.row.id, None, &c)
        .await
        .unwrap();
    assert_eq!(
        none_while_claimed,
        ClaimOutcome::Lost {
            current_state: Uploading
        }
    );
    assert!(
        store
            .get_claim(seeded.row.id)
            .await
            .unwrap()
            .unwrap()
            .is_held_by(&b)
    );
}

async fn take_over_claim_without_a_previous_run_claims_an_unclaimed_uploading_row(store: &Store) {
    let seeded = seed(store).await;
    store
        .set_row_state_raw(seeded.row.id, "uploading")
        .await
        .unwrap();
    let a = owner("a");
    let outcome = store
        .take_over_claim(seeded.row.id, None, &a)
        .await
        .unwrap();
    assert_eq!(outcome, ClaimOutcome::Claimed);
    assert!(
        store
            .get_claim(seeded.row.id)
            .await
            .unwrap()
            .unwrap()
            .is_held_by(&a)
    );
}

async fn take_over_claim_loses_when_the_row_is_not_uploading(store: &Store) {
    let seeded = seed(store).await;
    let outcome = store
        .take_over_claim(seeded.row.id, None, &owner("a"))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        ClaimOutcome::Lost {
            current_state: Pending
        }
    );
    assert_eq!(store.get_claim(seeded.row.id).await.unwrap(), None);
}

async fn the_created_asset_is_remembered_for_whoever_takes_over(store: &Store) {
    let (seeded, a) = seed_claimed(store).await;
    store
        .record_created_asset(seeded.row.id, &a, "mux-asset-a")
        .await
        .unwrap();
    let claim = store.get_claim(seeded.row.id).await.unwrap().unwrap();
    assert_eq!(
        claim.created_provider_asset_id.as_deref(),
        Some("mux-asset-a")
    );

    let b = owner("b");
    let taken = store
        .take_over_claim(seeded.row.id, Some(a.run_id.as_str()), &b)
        .await
        .unwrap();
    assert_eq!(taken, ClaimOutcome::Claimed);
    let claim = store.get_claim(seeded.row.id).await.unwrap().unwrap();
    assert_eq!(
        claim.created_provider_asset_id.as_deref(),
        Some("mux-asset-a"),
        "the orphan to clean up"
    );

    store
        .record_created_asset(seeded.row.id, &b, "mux-asset-b")
        .await
        .unwrap();
    let claim = store.get_claim(seeded.row.id).await.unwrap().unwrap();
    assert_eq!(
        claim.created_provider_asset_id.as_deref(),
        Some("mux-asset-b")
    );

    let refused = store
        .record_created_asset(seeded.row.id, &a, "mux-asset-a2")
        .await;
    assert!(
        matches!(refused, Err(StoreError::NotClaimOwner { .. })),
        "{refused:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Promote

async fn promote_moves_the_row_to_processing_with_the_provider_ids(store: &Store) {
    let (seeded, a) = seed_claimed(store).await;
    let id = seeded.row.id;
    exec(
        store,
        &format!("UPDATE {{t}}media_provider_assets SET raw_provider_metadata = '{{\"x\":1}}' WHERE id = '{id}'"),
    )
    .await;
    let playback = ids(&["pb-1", "pb-2"]);
    let outcome = store
        .promote(id, &a, &seeded.expected, "mux-asset-1", &playback)
        .await
        .unwrap();
    let PromoteOutcome::Promoted(promoted) = outcome else {
        panic!("expected Promoted, got {outcome:?}");
    };
    assert_eq!(promoted.state, Processing);
    assert_eq!(promoted.provider_asset_id.as_deref(), Some("mux-asset-1"));
    assert_eq!(promoted.playback_ids, playback);
    assert_eq!(promoted.last_sync_error, None);
    assert_eq!(row(store, id).await, promoted);
    assert_eq!(
        raw_provider_metadata(store, id).await,
        serde_json::json!({})
    );
    let claim = store.get_claim(id).await.unwrap().unwrap();
    assert!(
        claim.released_at.is_some(),
        "the work is done, the claim released"
    );

    let found = store
        .find_row_by_provider_asset_id("mux-asset-1")
        .await
        .unwrap();
    assert_eq!(found.map(|r| r.id), Some(id));
    assert_eq!(
        store
            .find_row_by_provider_asset_id("mux-asset-unknown")
            .await
            .unwrap(),
        None
    );
}

async fn promote_refuses_a_changed_asset_storage_key_and_writes_nothing(store: &Store) {
    let (seeded, a) = seed_claimed(store).await;
    // Both changed: the asset is reported, because it is checked first.
    store
        .set_asset_storage_key(seeded.asset_id, "assets/a1/replaced.mp4")
        .await
        .unwrap();
    store
        .set_variant_recipe_digest(seeded.asset_id, VARIANT, "sha256:bb")
        .await
        .unwrap();
    let before = row(store, seeded.row.id).await;
    let outcome = store
        .promote(
            seeded.row.id,
            &a,
            &seeded.expected,
            "mux-asset-1",
            &ids(&["pb"]),
        )
        .await
        .unwrap();
    assert_eq!(outcome, PromoteOutcome::Stale(StaleReason::AssetChanged));
    assert_eq!(row(store, seeded.row.id).await, before);
    assert!(
        store
            .get_claim(seeded.row.id)
            .await
            .unwrap()
            .unwrap()
            .is_held_by(&a)
    );
}

async fn promote_refuses_a_changed_recipe_digest(store: &Store) {
    let (seeded, a) = seed_claimed(store).await;
    store
        .set_variant_recipe_digest(seeded.asset_id, VARIANT, "sha256:bb")
        .await
        .unwrap();
    let before = row(store, seeded.row.id).await;
    let outcome = store
        .promote(
            seeded.row.id,
            &a,
            &seeded.expected,
            "mux-asset-1",
            &ids(&["pb"]),
        )
        .await
        .unwrap();
    assert_eq!(outcome, PromoteOutcome::Stale(StaleReason::RecipeChanged));
    assert_eq!(row(store, seeded.row.id).await, before);
}

async fn promote_by_a_run_that_does_not_hold_the_claim_writes_nothing(store: &Store) {
    let (seeded, _a) = seed_claimed(store).await;
    let before = row(store, seeded.row.id).await;
    let outcome = store
        .promote(
            seeded.row.id,
            &owner("b"),
            &seeded.expected,
            "mux-asset-1",
            &ids(&["pb"]),
        )
        .await
        .unwrap();
    assert_eq!(
        outcome,
        PromoteOutcome::LostClaim {
            current_state: Uploading
        }
    );
    assert_eq!(row(store, seeded.row.id).await, before);
}

async fn promote_reports_a_missing_source(store: &Store) {
    let (seeded, a) = seed_claimed(store).await;
    let mut expected = seeded.expected.clone();
    expected.variant_name = "gone".to_owned();
    let outcome = store
        .promote(seeded.row.id, &a, &expected, "mux-asset-1", &[])
        .await
        .unwrap();
    assert_eq!(outcome, PromoteOutcome::SourceMissing);
    assert_eq!(row(store, seeded.row.id).await.state, Uploading);
}

// ---------------------------------------------------------------------------------------------
// Release

async fn release_claim_cuts_the_error_and_leaves_the_row_uploading_for_a_takeover(store: &Store) {
    let (seeded, a) = seed_claimed(store).await;
    let error = "é".repeat(LAST_SYNC_ERROR_MAX_CHARS + 100);
    store
        .release_claim(seeded.row.id, &a, &error)
        .await
        .unwrap();

    let released = row(store, seeded.row.id).await;
    assert_eq!(released.state, Uploading);
    let written = released
        .last_sync_error
        .clone()
        .expect("the error is written");
    assert_eq!(written.chars().count(), LAST_SYNC_ERROR_MAX_CHARS);
    let claim = store.get_claim(seeded.row.id).await.unwrap().unwrap();
    assert!(claim.released_at.is_some() && !claim.is_held_by(&a));

    // Idempotent: a repeat changes nothing.
    store
        .release_claim(seeded.row.id, &a, "another error")
        .await
        .unwrap();
    assert_eq!(row(store, seeded.row.id).await, released);
    assert_eq!(
        store.get_claim(seeded.row.id).await.unwrap().unwrap(),
        claim
    );

    // The released owner can no longer promote; the next ingest takes the row over.
    let late = store
        .promote(seeded.row.id, &a, &seeded.expected, "mux-asset-1", &[])
        .await
        .unwrap();
    assert_eq!(
        late,
        PromoteOutcome::LostClaim {
            current_state: Uploading
        }
    );
    let b = owner("b");
    let taken = store
        .take_over_claim(seeded.row.id, Some(a.run_id.as_str()), &b)
        .await
        .unwrap();
    assert_eq!(taken, ClaimOutcome::Claimed);
    assert!(
        store
            .get_claim(seeded.row.id)
            .await
            .unwrap()
            .unwrap()
            .is_held_by(&b)
    );
}

async fn release_claim_by_a_run_that_does_not_hold_the_claim_writes_nothing(store: &Store) {
    let (seeded, a) = seed_claimed(store).await;
    let before = row(store, seeded.row.id).await;
    store
        .release_claim(seeded.row.id, &owner("b"), "not mine")
        .await
        .unwrap();
    assert_eq!(row(store, seeded.row.id).await, before);
    assert!(
        store
            .get_claim(seeded.row.id)
            .await
            .unwrap()
            .unwrap()
            .is_held_by(&a)
    );
}

// ---------------------------------------------------------------------------------------------
// Transitions

async fn transition_rejects_a_forbidden_edge_without_writing(store: &Store) {
    let seeded = seed(store).await;
    store
        .set_row_state_raw(seeded.row.id, "processing")
        .await
        .unwrap();
    let before = row(store, seeded.row.id).await;
    let update = RowUpdate {
        last_sync_error: Some(Some("x".into())),
        ..RowUpdate::default()
    };
    let refused = store
        .transition(seeded.row.id, Processing, Deleted, update)
        .await;
    assert!(
        matches!(refused, Err(StoreError::InvalidTransition(_))),
        "{refused:?}"
    );
    assert!(!refused.unwrap_err().is_retryable());
    assert_eq!(row(store, seeded.row.id).await, before);
}

async fn transition_reports_a_conflict_when_the_state_moved(store: &Store) {
    let seeded = seed(store).await;
    let before = row(store, seeded.row.id).await;
    let outcome = store
        .transition(seeded.row.id, Uploading, Processing, RowUpdate::default())
        .await
        .unwrap();
    assert_eq!(
        outcome,
        TransitionOutcome::Conflict {
            current_state: Pending
        }
    );
    assert_eq!(row(store, seeded.row.id).await, before);
}

async fn transition_applies_the_row_update_and_keeps_what_it_does_not_name(store: &Store) {
    let (seeded, a) = seed_claimed(store).await;
    let id = seeded.row.id;
    store
        .promote(id, &a, &seeded.expected, "mux-asset-1", &ids(&["pb-1"]))
        .await
        .unwrap();

    let event_at = NaiveDate::from_ymd_opt(2026, 5, 24)
        .and_then(|d| d.and_hms_micro_opt(10, 11, 12, 345_678))
        .unwrap();
    let errored = RowUpdate {
        last_sync_error: Some(Some("x".repeat(LAST_SYNC_ERROR_MAX_CHARS * 2))),
        last_event_at: Some(event_at),
        ..RowUpdate::default()
    };
    let TransitionOutcome::Applied(row_errored) = store
        .transition(id, Processing, Errored, errored)
        .await
        .unwrap()
    else {
        panic!("expected Applied");
    };
    assert_eq!(row_errored.state, Errored);
    assert_eq!(
        row_errored.last_sync_error.as_ref().map(String::len),
        Some(LAST_SYNC_ERROR_MAX_CHARS)
    );
    assert_eq!(row_errored.last_event_at, Some(event_at));
    assert_eq!(row_errored.playback_ids, ids(&["pb-1"]), "kept");
    assert_eq!(
        row_errored.provider_asset_id.as_deref(),
        Some("mux-asset-1"),
        "kept"
    );

    // errored -> processing -> ready, clearing the error and replacing the playback ids.
    let back = RowUpdate {
        last_sync_error: Some(None),
        ..RowUpdate::default()
    };
    store
        .transition(id, Errored, Processing, back)
        .await
        .unwrap();
    let ready = RowUpdate {
        playback_ids: Some(ids(&["pb-2", "pb-3"])),
        provider_asset_id: Some("mux-asset-2".into()),
        ..RowUpdate::default()
    };
    let outcome = store
        .transition(id, Processing, Ready, ready)
        .await
        .unwrap();
    let TransitionOutcome::Applied(row_ready) = outcome else {
        panic!("expected Applied, got {outcome:?}");
    };
    assert_eq!(row_ready.state, Ready);
    assert_eq!(row_ready.last_sync_error, None);
    assert_eq!(row_ready.playback_ids, ids(&["pb-2", "pb-3"]));
    assert_eq!(row_ready.provider_asset_id.as_deref(), Some("mux-asset-2"));
    assert_eq!(row_ready.last_event_at, Some(event_at), "kept");
    assert_eq!(row(store, id).await, row_ready);
}

// ---------------------------------------------------------------------------------------------
// Webhooks

async fn record_webhook_event_reports_each_event_id_once(store: &Store) {
    assert!(!store.is_webhook_event_recorded("evt_1").await.unwrap());
    assert!(store.record_webhook_event("evt_1").await.unwrap());
    assert!(store.is_webhook_event_recorded("evt_1").await.unwrap());
    assert!(!store.record_webhook_event("evt_1").await.unwrap());
    assert!(store.record_webhook_event("evt_2").await.unwrap());
}

// ---------------------------------------------------------------------------------------------
// Without a database

#[test]
fn freshness_is_checked_asset_first_then_recipe() {
    let expected = Freshness {
        asset_id: Uuid::new_v4(),
        variant_name: VARIANT.to_owned(),
        expected_storage_key: "k".to_owned(),
        expected_recipe_digest: "d".to_owned(),
    };
    let source = |key: &str, digest: &str| Source {
        asset_storage_key: key.to_owned(),
        variant_storage_key: None,
        variant_recipe_digest: digest.to_owned(),
    };
    assert_eq!(check_freshness(&source("k", "d"), &expected), Ok(()));
    assert_eq!(
        check_freshness(&source("k2", "d"), &expected),
        Err(StaleReason::AssetChanged)
    );
    assert_eq!(
        check_freshness(&source("k", "d2"), &expected),
        Err(StaleReason::RecipeChanged)
    );
    assert_eq!(
        check_freshness(&source("k2", "d2"), &expected),
        Err(StaleReason::AssetChanged)
    );
    assert_eq!(StaleReason::AssetChanged.as_str(), "asset_changed");
    assert_eq!(StaleReason::RecipeChanged.as_str(), "recipe_changed");
}

#[tokio::test]
async fn connect_rejects_unsupported_urls_and_invalid_schemas_before_connecting() {
    let unsupported = Store::connect("mysql://root:secret@localhost/db", "rindle").await;
    match unsupported {
        Err(e @ StoreError::UnsupportedUrl(_)) => assert!(!e.to_string().contains("secret")),
        other => panic!("expected UnsupportedUrl, got {other:?}"),
    }
    let invalid = Store::connect("postgres://nowhere.invalid/db", "Robert'); DROP").await;
    assert!(
        matches!(invalid, Err(StoreError::InvalidSchemaName(_))),
        "{invalid:?}"
    );
}

#[tokio::test]
async fn connecting_by_url_reaches_the_same_postgres_tables() {
    let db = rindle_tests::db::TestDatabase::postgres().await;
    let seeded = seed(&db.store).await;
    let by_url = Store::connect(&db.url(), &db.schema()).await.unwrap();
    assert_eq!(
        by_url.get_row(seeded.row.id).await.unwrap(),
        Some(seeded.row)
    );
}

#[test]
fn provider_rows_redact_their_provider_asset_id_in_debug_output() {
    let at = NaiveDate::from_ymd_opt(2026, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap();
    let row = ProviderRow {
        id: Uuid::nil(),
        asset_id: Uuid::nil(),
        profile: PROFILE.to_owned(),
        provider_name: "mux".to_owned(),
        provider_asset_id: Some("AbCdEfGhIjKl5678".to_owned()),
        playback_ids: vec![],
        playback_policy: None,
        state: Pending,
        last_sync_error: None,
        last_event_at: None,
        updated_at: at,
        inserted_at: at,
    };
    let shown = format!("{row:?}");
    assert!(
        shown.contains("...5678") && !shown.contains("AbCdEfGh"),
        "{shown}"
    );
}

// ---------------------------------------------------------------------------------------------
// Instantiation: every scenario on both backends.

macro_rules! conformance {
    (unmigrated: [$($unmigrated:ident),* $(,)?], migrated: [$($migrated:ident),* $(,)?] $(,)?) => {
        conformance!(@backend postgres, postgres_unmigrated, postgres, [$($unmigrated),*], [$($migrated),*]);
        conformance!(@backend sqlite, sqlite_unmigrated, sqlite, [$($unmigrated),*], [$($migrated),*]);
    };
    (@backend $backend:ident, $empty:ident, $ready:ident, [$($unmigrated:ident),*], [$($migrated:ident),*]) => {
        mod $backend {
            use rindle_tests::db::TestDatabase;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $unmigrated() {
                    let db = TestDatabase::$empty().await;
                    super::$unmigrated(&db.store).await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $migrated() {
                    let db = TestDatabase::$ready().await;
                    super::$migrated(&db.store).await;
                }
            )*
        }
    };
}

conformance! {
    unmigrated: [
        migrate_is_idempotent_and_safe_to_run_concurrently,
        migrate_leaves_pre_existing_rindle_tables_untouched,
    ],
    migrated: [
        migrate_creates_rindles_tables_with_their_exact_index_names,
        playback_ids_round_trip_as_a_string_array,
        load_source_finds_the_asset_and_its_variant,
        load_source_reports_a_missing_asset,
        load_source_reports_a_missing_variant,
        ensure_pending_row_creates_a_pending_mux_row_once,
        ensure_pending_row_never_changes_an_existing_rows_state,
        ten_concurrent_ensure_pending_row_calls_create_exactly_one_row,
        two_concurrent_claims_yield_exactly_one_winner,
        claim_row_loses_when_the_row_is_past_pending,
        take_over_claim_succeeds_only_from_the_run_that_holds_the_claim,
        take_over_claim_without_a_previous_run_claims_an_unclaimed_uploading_row,
        take_over_claim_loses_when_the_row_is_not_uploading,
        the_created_asset_is_remembered_for_whoever_takes_over,
        promote_moves_the_row_to_processing_with_the_provider_ids,
        promote_refuses_a_changed_asset_storage_key_and_writes_nothing,
        promote_refuses_a_changed_recipe_digest,
        promote_by_a_run_that_does_not_hold_the_claim_writes_nothing,
        promote_reports_a_missing_source,
        release_claim_cuts_the_error_and_leaves_the_row_uploading_for_a_takeover,
        release_claim_by_a_run_that_does_not_hold_the_claim_writes_nothing,
        transition_rejects_a_forbidden_edge_without_writing,
        transition_reports_a_conflict_when_the_state_moved,
        transition_applies_the_row_update_and_keeps_what_it_does_not_name,
        record_webhook_event_reports_each_event_id_once,
    ],
}
