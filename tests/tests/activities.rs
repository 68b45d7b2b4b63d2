//! Activity-level tests: each activity run twice as Temporal does after an answer was lost
//! (the first attempt committed, the worker crashed before reporting). A retry must land
//! where the first attempt did — never as "lost" — and never create a second Mux asset.

use std::collections::HashMap;

use secrecy::SecretString;
use temporalio_sdk::testing::{ActivityEnvironment, TestActivityInfoOptions};
use uuid::Uuid;

use rindle_activities::{
    ingest::{IngestActivities, IngestSettings, ProfileSettings},
    mux::{MuxClient, MuxConfig},
    storage::{StorageBackend, StorageBackendConfig},
};
use rindle_proto::{IngestInput, ProviderAssetState};
use rindle_tests::{db::TestDatabase, env::PROFILE, mux_sim::MuxSim};
use rindle_workflows::activities::{CreateMuxAssetInput, PersistRowInput, PersistRowOutput};

struct Fixture {
    db: TestDatabase,
    mux: MuxSim,
    env: ActivityEnvironment,
    input: IngestInput,
    row_id: Uuid,
    _media: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let db = TestDatabase::postgres().await;
    let mux = MuxSim::start().await;
    let media = tempfile::tempdir().unwrap();
    std::fs::write(media.path().join("v.mp4"), b"bytes").unwrap();
    let backend = StorageBackend::from_config(
        "local",
        &StorageBackendConfig::Local {
            root: media.path().to_owned(),
            public_base_url: "http://127.0.0.1:9/".parse().unwrap(),
            signing_secret: SecretString::from("s".repeat(32)),
        },
    )
    .unwrap();
    let (id, secret) = mux.credentials();
    let mut mux_config = MuxConfig::new(id, SecretString::from(secret));
    mux_config.base_url = mux.base_url().parse().unwrap();
    let profile: ProfileSettings = toml_profile();
    let acts = IngestActivities::new(
        db.store.clone(),
        HashMap::from([("local".to_owned(), backend)]),
        HashMap::from([(PROFILE.to_owned(), profile)]),
        MuxClient::new(&mux_config).unwrap(),
        IngestSettings::default(),
    )
    .unwrap();

    let asset_id = Uuid::new_v4();
    db.store
        .insert_asset(asset_id, "uploads/a.mov", PROFILE)
        .await
        .unwrap();
    db.store
        .insert_variant(asset_id, "web_720p", "sha256:d", Some("v.mp4"))
        .await
        .unwrap();
    let row = db
        .store
        .ensure_pending_row(asset_id, PROFILE, "signed")
        .await
        .unwrap();
    let input = IngestInput {
        asset_id: asset_id.to_string(),
        profile: PROFILE.to_owned(),
        variant_name: "web_720p".to_owned(),
        expected_storage_key: "uploads/a.mov".to_owned(),
        expected_recipe_digest: "sha256:d".to_owned(),
    };
    let info = TestActivityInfoOptions::builder()
        .workflow_id(Some(format!("{asset_id}:{PROFILE}:web_720p")))
        .workflow_run_id(Some("run-1".to_owned()))
        .build();
    let env = ActivityEnvironment::builder()
        .info(info)
        .register_activities(acts)
        .build();
    Fixture {
        db,
        mux,
        env,
        input,
        row_id: row.id,
        _media: media,
    }
}

fn toml_profile() -> ProfileSettings {
    serde_json::from_value(serde_json::json!({ "storage": "local" })).unwrap()
}

#[tokio::test]
async fn a_retried_claim_promote_and_create_land_where_the_first_attempt_did() {
    let f = fixture().await;
    let claim = PersistRowInput::Claim {
        row_id: f.row_id,
        takeover: None,
    };
    for _ in 0..2 {
        let out = f
            .env
            .run(IngestActivities::persist_row, claim.clone())
            .await
            .unwrap();
        assert_eq!(out, PersistRowOutput::Claimed);
    }

    let create = CreateMuxAssetInput {
        row_id: f.row_id,
        profile: PROFILE.to_owned(),
        storage_key: "v.mp4".to_owned(),
        playback_policy: "signed".to_owned(),
        passthrough: format!("rndl:{}", f.row_id),
    };
    let first = f
        .env
        .run(IngestActivities::create_mux_asset, create.clone())
        .await
        .unwrap();
    let second = f
        .env
        .run(IngestActivities::create_mux_asset, create)
        .await
        .unwrap();
    assert_eq!(
        first, second,
        "the retry returns the asset the first attempt created"
    );
    assert_eq!(f.mux.create_requests().len(), 1, "one Mux asset, not two");

    let promote = PersistRowInput::Promote {
        row_id: f.row_id,
        input: f.input.clone(),
        asset: first.clone(),
    };
    for _ in 0..2 {
        let out = f
            .env
            .run(IngestActivities::persist_row, promote.clone())
            .await
            .unwrap();
        assert_eq!(
            out,
            PersistRowOutput::Promoted {
                playback_ids: first.playback_ids.clone()
            }
        );
    }
    let row = f.db.store.get_row(f.row_id).await.unwrap().unwrap();
    assert_eq!(row.state, ProviderAssetState::Processing);
    assert_eq!(
        row.provider_asset_id.as_deref(),
        Some(first.provider_asset_id.as_str())
    );
}
