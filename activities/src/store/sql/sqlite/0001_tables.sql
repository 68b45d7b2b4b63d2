-- rindle-ingest schema step 1 (SQLite).
--
-- The same tables, columns, defaults, NOT NULLs, foreign keys and index names as the
-- PostgreSQL step. SQLite has no uuid, array, jsonb or timestamp types: uuids are hyphenated
-- TEXT, playback_ids and jsonb columns are JSON TEXT, timestamps are TEXT
-- ('YYYY-MM-DD HH:MM:SS', UTC), booleans are INTEGER.

CREATE TABLE IF NOT EXISTS media_assets (
    id TEXT PRIMARY KEY NOT NULL,
    state TEXT NOT NULL DEFAULT 'staged',
    storage_key TEXT NOT NULL,
    content_type TEXT,
    byte_size INTEGER,
    filename TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    recipe_digest TEXT,
    profile TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'image',
    width INTEGER,
    height INTEGER,
    duration_ms INTEGER,
    has_video_track INTEGER,
    has_audio_track INTEGER,
    error_reason TEXT,
    inserted_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS media_assets_state_index ON media_assets (state);
CREATE UNIQUE INDEX IF NOT EXISTS media_assets_storage_key_index ON media_assets (storage_key);
CREATE INDEX IF NOT EXISTS media_assets_kind_index ON media_assets (kind);

CREATE TABLE IF NOT EXISTS media_variants (
    id TEXT PRIMARY KEY NOT NULL,
    asset_id TEXT NOT NULL
        CONSTRAINT media_variants_asset_id_fkey REFERENCES media_assets (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'planned',
    recipe_digest TEXT NOT NULL,
    storage_key TEXT,
    error_reason TEXT,
    generated_at TEXT,
    byte_size INTEGER,
    content_type TEXT,
    output_kind TEXT NOT NULL DEFAULT 'image',
    duration_ms INTEGER,
    width INTEGER,
    height INTEGER,
    inserted_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS media_variants_asset_id_name_index ON media_variants (asset_id, name);
CREATE INDEX IF NOT EXISTS media_variants_state_index ON media_variants (state);
CREATE INDEX IF NOT EXISTS media_variants_output_kind_index ON media_variants (output_kind);

CREATE TABLE IF NOT EXISTS media_provider_assets (
    id TEXT PRIMARY KEY NOT NULL,
    asset_id TEXT NOT NULL
        CONSTRAINT media_provider_assets_asset_id_fkey REFERENCES media_assets (id) ON DELETE CASCADE,
    profile TEXT NOT NULL,
    provider_name TEXT NOT NULL,
    provider_asset_id TEXT,
    playback_ids TEXT NOT NULL DEFAULT '[]',
    playback_policy TEXT,
    ingest_mode TEXT,
    state TEXT NOT NULL DEFAULT 'pending',
    last_event_id TEXT,
    last_event_at TEXT,
    last_sync_error TEXT,
    raw_provider_metadata TEXT NOT NULL DEFAULT '{}',
    mux_passthrough TEXT,
    provider_upload_id TEXT,
    inserted_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS media_provider_assets_provider_name_provider_asset_id_index
    ON media_provider_assets (provider_name, provider_asset_id) WHERE provider_asset_id IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS media_provider_assets_asset_id_profile_provider_name_index
    ON media_provider_assets (asset_id, profile, provider_name);
CREATE INDEX IF NOT EXISTS media_provider_assets_state_index ON media_provider_assets (state);
CREATE INDEX IF NOT EXISTS media_provider_assets_state_updated_at_index
    ON media_provider_assets (state, updated_at);
CREATE UNIQUE INDEX IF NOT EXISTS media_provider_assets_provider_name_mux_passthrough_index
    ON media_provider_assets (provider_name, mux_passthrough) WHERE mux_passthrough IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS media_provider_assets_provider_name_provider_upload_id_index
    ON media_provider_assets (provider_name, provider_upload_id) WHERE provider_upload_id IS NOT NULL;

-- Our own state (see the PostgreSQL step for what each table is for).
CREATE TABLE IF NOT EXISTS rindle_ingest_claims (
    row_id TEXT PRIMARY KEY NOT NULL REFERENCES media_provider_assets (id) ON DELETE CASCADE,
    workflow_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    claimed_at TEXT NOT NULL,
    released_at TEXT,
    created_provider_asset_id TEXT
);

CREATE TABLE IF NOT EXISTS rindle_ingest_webhook_events (
    event_id TEXT PRIMARY KEY NOT NULL,
    received_at TEXT NOT NULL
);
