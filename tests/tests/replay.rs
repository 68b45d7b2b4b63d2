//! Replay tests: workflow histories must replay against the current `IngestWorkflow`
//! without nondeterminism. The committed fixtures under `tests/fixtures/histories/` were
//! recorded from real runs (regenerate with `RINDLE_WRITE_HISTORY_FIXTURES=1`); a change to
//! the workflow that breaks in-flight ingests fails here first.

use std::path::PathBuf;

use temporalio_client::{UntypedWorkflow, WorkflowCancelOptions, WorkflowHistory};
use temporalio_sdk::workflow_replayer::{WorkflowReplayer, WorkflowReplayerOptions};

use rindle_proto::ProviderAssetState;
use rindle_tests::{
    env::{EnvOptions, TestEnv, WEBHOOK_SECRET},
    mux_sim::{Route, Scripted},
};
use rindle_workflows::{IngestWorkflow, validate::workflow_id_for};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/histories")
}

fn replayer() -> WorkflowReplayer {
    let options = WorkflowReplayerOptions::new()
        .register_workflow::<IngestWorkflow>()
        .expect("register")
        .build();
    WorkflowReplayer::new(options).expect("replayer")
}

async fn replay(json: &[u8]) {
    let history = WorkflowHistory::from_json(json).expect("history JSON");
    replayer()
        .replay_workflow(history)
        .await
        .expect("replays deterministically");
}

#[tokio::test]
async fn recorded_histories_replay_deterministically() {
    let mut count = 0;
    for entry in std::fs::read_dir(fixtures()).expect("fixtures folder") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            replay(&std::fs::read(&path).unwrap()).await;
            count += 1;
        }
    }
    assert!(count >= 3, "expected the recorded fixtures, found {count}");
}

/// Runs the main paths (webhook to ready, Mux rejection, operator cancel) and replays their
/// fresh histories; with `RINDLE_WRITE_HISTORY_FIXTURES=1` also records them as fixtures.
#[tokio::test]
async fn fresh_histories_replay_deterministically() {
    let env = TestEnv::start_with(EnvOptions {
        auto_ready: false,
        ingest_toml: "delete_retry_interval_s = 1\npoll_interval_s = 3600\npoll_floor_s = 1\n"
            .into(),
        ..Default::default()
    })
    .await;

    let ready = env.seed().await;
    env.start_ingest(&ready.input).await;
    let asset = env
        .wait_for_row_state(&ready, ProviderAssetState::Processing)
        .await
        .provider_asset_id
        .unwrap();
    env.mux.set_status(&asset, "ready");
    env.post_webhook(
        &env.mux.webhook_event("video.asset.ready", &asset),
        WEBHOOK_SECRET,
    )
    .await;
    env.result(&workflow_id_for(&ready.input)).await.unwrap();

    let rejected = env.seed().await;
    env.mux.script(
        Route::CreateAsset,
        Scripted::error(400, "invalid_parameters", &["bad input"]),
    );
    let _ = env.ingest(&rejected.input).await;

    let cancelled = env.seed().await;
    env.start_ingest(&cancelled.input).await;
    env.wait_for_row_state(&cancelled, ProviderAssetState::Processing)
        .await;
    let handle = env
        .client
        .get_workflow_handle::<UntypedWorkflow>(workflow_id_for(&cancelled.input));
    handle
        .cancel(WorkflowCancelOptions::builder().build())
        .await
        .unwrap();
    let _ = env.result(&workflow_id_for(&cancelled.input)).await;

    for (name, seeded) in [
        ("ready_via_webhook", &ready),
        ("mux_rejected", &rejected),
        ("operator_cancelled", &cancelled),
    ] {
        let json = env.history_json(&workflow_id_for(&seeded.input)).await;
        replay(json.as_bytes()).await;
        if std::env::var("RINDLE_WRITE_HISTORY_FIXTURES").is_ok() {
            std::fs::write(fixtures().join(format!("{name}.json")), &json).unwrap();
        }
    }
    env.shutdown().await;
}
