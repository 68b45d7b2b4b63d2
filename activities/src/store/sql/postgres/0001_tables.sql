-- rindle-ingest schema step 1 (PostgreSQL).
--
-- Rindle's tables, column for column as Rindle.Migration.V1 creates them (reference §2.1-2.3),
-- created only if absent: an adopter's existing tables are left exactly as they are.
-- {schema} is replaced by the validated, quoted schema name.

CREATE TABLE IF NOT EXISTS {schema}.media_assets (
    id uuid PRIMARY KEY,
    state varchar(255) NOT NULL DEFAULT 'staged',
    storage_key varchar(255) NOT NULL,
    content_type varchar(255),
    byte_size bigint,
    filename varchar(255),
    metadata jsonb NOT NULL DEFAULT '{}',
    recipe_digest varchar(255),
    profile varchar(255) NOT NULL,
    kind varchar(255) NOT NULL DEFAULT 'image',
    width integer,
    height integer,
    duration_ms bigint,
    has_video_track boolean,
    has_audio_track boolean,
    error_reason text,
    inserted_at timestamp without time zone NOT NULL,
    updated_at timestamp without time zone NOT NULL
);
CREATE INDEX IF NOT EXISTS media_assets_state_index ON {schema}.media_assets (state);
CREATE UNIQUE INDEX IF NOT EXISTS media_assets_storage_key_index ON {schema}.media_assets (storage_key);
CREATE INDEX IF NOT EXISTS media_assets_kind_index ON {schema}.media_assets (kind);

CREATE TABLE IF NOT EXISTS {schema}.media_variants (
    id uuid PRIMARY KEY,
    asset_id uuid NOT NULL
        CONSTRAINT media_variants_asset_id_fkey REFERENCES {schema}.media_assets (id) ON DELETE CASCADE,
    name varchar(255) NOT NULL,
    state varchar(255) NOT NULL DEFAULT 'planned',
    recipe_digest varchar(255) NOT NULL,
    storage_key varchar(255),
    error_reason text,
    generated_at timestamp without time zone,
    byte_size bigint,
    content_type varchar(255),
    output_kind varchar(255) NOT NULL DEFAULT 'image',
    duration_ms bigint,
    width integer,
    height integer,
    inserted_at timestamp without time zone NOT NULL,
    updated_at timestamp without time zone NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS media_variants_asset_id_name_index ON {schema}.media_variants (asset_id, name);
CREATE INDEX IF NOT EXISTS media_variants_state_index ON {schema}.media_variants (state);
CREATE INDEX IF NOT EXISTS media_variants_output_kind_index ON {schema}.media_variants (output_kind);

CREATE TABLE IF NOT EXISTS {schema}.media_provider_assets (
    id uuid PRIMARY KEY,
    asset_id uuid NOT NULL
        CONSTRAINT media_provider_assets_asset_id_fkey REFERENCES {schema}.media_assets (id) ON DELETE CASCADE,
    profile varchar(255) NOT NULL,
    provider_name varchar(255) NOT NULL,
    provider_asset_id varchar(255),
    playback_ids varchar(255)[] NOT NULL DEFAULT '{}',
    playback_policy varchar(255),
    ingest_mode varchar(255),
    state varchar(255) NOT NULL DEFAULT 'pending',
    last_event_id varchar(255),
    last_event_at timestamp without time zone,
    last_sync_error text,
    raw_provider_metadata jsonb NOT NULL DEFAULT '{}',
    mux_passthrough varchar(255),
    provider_upload_id varchar(255),
    inserted_at timestamp without time zone NOT NULL,
    updated_at timestamp without time zone NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS media_provider_assets_provider_name_provider_asset_id_index
    ON {schema}.media_provider_assets (provider_name, provider_asset_id) WHERE provider_asset_id IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS media_provider_assets_asset_id_profile_provider_name_index
    ON {schema}.media_provider_assets (asset_id, profile, provider_name);
CREATE INDEX IF NOT EXISTS media_provider_assets_state_index ON {schema}.media_provider_assets (state);
CREATE INDEX IF NOT EXISTS media_provider_assets_state_updated_at_index
    ON {schema}.media_provider_assets (state, updated_at);
CREATE UNIQUE INDEX IF NOT EXISTS media_provider_assets_provider_name_mux_passthrough_index
    ON {schema}.media_provider_assets (provider_name, mux_passthrough) WHERE mux_passthrough IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS media_provider_assets_provider_name_provider_upload_id_index
    ON {schema}.media_provider_assets (provider_name, provider_upload_id) WHERE provider_upload_id IS NOT NULL;

-- Our own state. One claim per provider row: which ingest run owns it while it is
-- 'uploading', and which Mux asset that run created (so a takeover can delete the orphan).
CREATE TABLE IF NOT EXISTS {schema}.rindle_ingest_claims (
    row_id uuid PRIMARY KEY REFERENCES {schema}.media_provider_assets (id) ON DELETE CASCADE,
    workflow_id text NOT NULL,
    run_id text NOT NULL,
    claimed_at timestamp without time zone NOT NULL,
    released_at timestamp without time zone,
    created_provider_asset_id text
);

-- Durable webhook dedup: a Mux event id is processed once.
CREATE TABLE IF NOT EXISTS {schema}.rindle_ingest_webhook_events (
    event_id text PRIMARY KEY,
    received_at timestamp without time zone NOT NULL
);
