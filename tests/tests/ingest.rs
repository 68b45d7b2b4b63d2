//! End-to-end: the real worker against a real Temporal dev server, PostgreSQL (or SQLite),
//! real storage and the Mux simulator. Each test owns a `TestEnv`.

use std::time::Duration;

use temporalio_client::errors::WorkflowGetResultError;

use rindle_proto::{IngestOutcome, OutcomeKind, ProviderAssetState};
use rindle_tests::{
    capture,
    env::{Backend, EnvOptions, PROFILE, S3_PROFILE, TestEnv},
    mux_sim::{Route, Scripted},
};
use rindle_workflows::validate::workflow_id_for;

fn cancelled_reason(result: Result<IngestOutcome, WorkflowGetResultError>) -> (String, String) {
    match result {
        Err(WorkflowGetResultError::Cancelled { details, .. }) => {
            let outcome: IngestOutcome = details
                .deserialize()
                .expect("cancel details are an IngestOutcome");
            assert_eq!(outcome.kind(), OutcomeKind::Cancelled);
            let reason = outcome.cancel_reason.expect("cancel reason");
            (reason.code, reason.detail)
        }
        other => panic!("expected Canceled, got {other:?}"),
    }
}

fn failure_text(result: Result<IngestOutcome, WorkflowGetResultError>) -> String {
    match result {
        Err(WorkflowGetResultError::Failed(e)) => format!("{e:?}"),
        other => panic!("expected Failed, got {other:?}"),
    }
}

#[tokio::test]
async fn a_variant_is_pushed_to_mux_and_followed_until_ready() {
    let env = TestEnv::start().await;
    let s = env.seed().await;

    let outcome = env.ingest(&s.input).await.expect("ingest completes");
    assert_eq!(outcome.kind(), OutcomeKind::Ingested);
    assert_eq!(outcome.state(), ProviderAssetState::Ready);

    let creates = env.mux.create_requests();
    assert_eq!(creates.len(), 1, "exactly one POST /video/v1/assets");
    let body = &creates[0].body;
    let url = body["inputs"][0]["url"].as_str().expect("inputs[0].url");
    assert!(
        url.starts_with(&format!("http://{}/media/", env.http_addr)),
        "{url}"
    );
    assert_eq!(body["playback_policies"], serde_json::json!(["signed"]));
    assert_eq!(body["mp4_support"], "standard");
    assert_eq!(body["max_resolution_tier"], "1080p");
    let row = env.row(&s).await.expect("row exists");
    assert_eq!(body["passthrough"], format!("rndl:{}", row.id));

    // Mux can fetch what it was given: the signed URL serves the variant's bytes.
    let fetched = reqwest::get(url).await.unwrap();
    assert_eq!(fetched.status(), 200);
    assert_eq!(fetched.bytes().await.unwrap().as_ref(), s.bytes.as_slice());

    let asset = &env.mux.assets()[0];
    assert_eq!(row.state, ProviderAssetState::Ready);
    assert_eq!(row.provider_asset_id.as_deref(), Some(asset.id.as_str()));
    assert_eq!(row.playback_ids, asset.playback_ids);
    assert_eq!(outcome.playback_ids, asset.playback_ids);
    assert_eq!(row.playback_policy.as_deref(), Some("signed"));
    assert_eq!(
        outcome.provider_asset_id_redacted,
        format!("...{}", &asset.id[asset.id.len() - 4..])
    );

    // The signed URL never reaches workflow history.
    let history = env.history_json(&workflow_id_for(&s.input)).await;
    let query = url.split_once('?').unwrap().1;
    assert!(
        !history.contains(query),
        "the signed URL's query is in history"
    );
    assert!(!history.contains("sig="), "a signature is in history");
    env.shutdown().await;
}

#[tokio::test]
async fn telemetry_is_emitted_once_with_redacted_ids() {
    let env = TestEnv::start().await;
    let s = env.seed().await;
    env.ingest(&s.input).await.expect("ingest completes");
    let asset_id = env.mux.assets()[0].id.clone();

    let mine = |target: &str| {
        capture::events(target)
            .into_iter()
            .filter(|e| e.field("variant_name") == Some(s.input.variant_name.as_str()))
            .collect::<Vec<_>>()
    };
    let start = mine("rindle.provider.ingest.start");
    assert_eq!(start.len(), 1, "{start:?}");
    assert_eq!(start[0].field("profile"), Some(PROFILE));
    assert_eq!(start[0].field("provider"), Some("mux"));
    assert_eq!(start[0].field("asset_id"), None);
    let stop = mine("rindle.provider.ingest.stop");
    assert_eq!(stop.len(), 1, "{stop:?}");
    assert_eq!(
        stop[0].field("asset_id"),
        Some(format!("...{}", &asset_id[asset_id.len() - 4..]).as_str())
    );
    assert!(stop[0].field("duration").is_some());
    assert!(mine("rindle.provider.ingest.exception").is_empty());

    let changes: Vec<(String, String)> = capture::events("rindle.provider_asset.state_change")
        .into_iter()
        .filter(|e| e.field("asset_id") == Some(s.input.asset_id.as_str()))
        .map(|e| {
            (
                e.field("from").unwrap().to_owned(),
                e.field("to").unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        vec![
            ("pending".into(), "uploading".into()),
            ("uploading".into(), "processing".into()),
            ("processing".into(), "ready".into()),
        ]
    );
    // No event anywhere carries the raw Mux id or a signature.
    for e in capture::all_events() {
        for v in e.fields.values() {
            assert!(!v.contains(&asset_id), "raw provider id in {e:?}");
            assert!(!v.contains("sig="), "signature in {e:?}");
        }
    }
    env.shutdown().await;
}

#[tokio::test]
async fn a_rerun_on_a_processing_row_calls_mux_zero_times() {
    let env = TestEnv::start().await;
    for state in ["processing", "ready"] {
        let s = env.seed().await;
        let row = env
            .store()
            .ensure_pending_row(s.asset_id, PROFILE, "signed")
            .await
            .unwrap();
        env.store().set_row_state_raw(row.id, state).await.unwrap();
        let outcome = env.ingest(&s.input).await.expect("rerun completes");
        assert_eq!(outcome.kind(), OutcomeKind::AlreadyInProgress);
        assert_eq!(outcome.state().as_db_str(), state);
    }
    // A rerun of an id whose ingest already completed: nothing is called either.
    let s = env.seed().await;
    env.ingest(&s.input).await.expect("first ingest");
    let outcome = env.ingest(&s.input).await.expect("second ingest");
    assert_eq!(outcome.kind(), OutcomeKind::AlreadyInProgress);
    assert_eq!(env.mux.create_requests().len(), 1);
    env.shutdown().await;
}

#[tokio::test]
async fn a_source_changed_before_create_cancels_without_calling_mux_or_writing_a_row() {
    let env = TestEnv::start().await;
    let s = env.seed().await;
    env.store()
        .set_asset_storage_key(s.asset_id, "uploads/replaced.mov")
        .await
        .unwrap();
    let (code, detail) = cancelled_reason(env.ingest(&s.input).await);
    assert_eq!(
        (code.as_str(), detail.as_str()),
        ("stale_source", "asset_changed")
    );
    assert!(env.mux.requests().is_empty());
    assert!(env.row(&s).await.is_none());

    let s2 = env.seed().await;
    env.store()
        .set_variant_recipe_digest(s2.asset_id, &s2.input.variant_name, "sha256:new")
        .await
        .unwrap();
    let (code, detail) = cancelled_reason(env.ingest(&s2.input).await);
    assert_eq!(
        (code.as_str(), detail.as_str()),
        ("stale_source", "recipe_changed")
    );
    assert!(env.mux.requests().is_empty());
    env.shutdown().await;
}

/// Changes the source while Mux is answering the create, then checks the compensation.
async fn drift_after_create(delete_fails: bool) {
    let env = TestEnv::start().await;
    let s = env.seed().await;
    env.mux
        .set_delay(Route::CreateAsset, Duration::from_secs(4));
    if delete_fails {
        env.mux.script(
            Route::DeleteAsset,
            Scripted::status(403)
                .json(serde_json::json!({"error":{"type":"forbidden","messages":["no"]}})),
        );
    }
    env.start_ingest(&s.input).await;
    env.mux
        .wait_for_requests("POST", "/video/v1/assets", 1, Duration::from_secs(60))
        .await
        .unwrap();
    env.store()
        .set_variant_recipe_digest(s.asset_id, &s.input.variant_name, "sha256:changed")
        .await
        .unwrap();

    let (code, detail) = cancelled_reason(env.result(&workflow_id_for(&s.input)).await);
    assert_eq!(
        (code.as_str(), detail.as_str()),
        ("stale_source", "recipe_changed")
    );
    let created = env.mux.assets()[0].id.clone();
    let deletes: Vec<_> = env
        .mux
        .requests()
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .collect();
    assert_eq!(deletes.len(), 1, "one compensating delete");
    assert_eq!(deletes[0].path, format!("/video/v1/assets/{created}"));
    assert_eq!(env.mux.assets()[0].deleted, !delete_fails);

    // The row is not wedged: it stays `uploading` with the reason, and its claim is released.
    let row = env.row(&s).await.unwrap();
    assert_eq!(row.state, ProviderAssetState::Uploading);
    assert!(row.last_sync_error.unwrap().contains("stale_source"));
    assert!(
        env.store()
            .get_claim(row.id)
            .await
            .unwrap()
            .unwrap()
            .released_at
            .is_some()
    );
    env.shutdown().await;
}

#[tokio::test]
async fn a_source_changed_after_create_deletes_the_created_asset_and_cancels() {
    drift_after_create(false).await;
}

#[tokio::test]
async fn a_failed_compensating_delete_does_not_change_the_cancel() {
    drift_after_create(true).await;
}

#[tokio::test]
async fn errored_and_deleted_rows_are_left_alone_and_mux_is_never_called() {
    let env = TestEnv::start().await;
    for (state, code) in [
        ("errored", "provider_asset_errored"),
        ("deleted", "provider_asset_deleted"),
    ] {
        let s = env.seed().await;
        let row = env
            .store()
            .ensure_pending_row(s.asset_id, PROFILE, "signed")
            .await
            .unwrap();
        env.store().set_row_state_raw(row.id, state).await.unwrap();
        if state == "errored" {
            env.store()
                .set_last_sync_error_raw(row.id, "Mux said: input unreadable")
                .await
                .unwrap();
        }
        let before = env.row(&s).await.unwrap();
        let (got, detail) = cancelled_reason(env.ingest(&s.input).await);
        assert_eq!(got, code);
        if state == "errored" {
            assert_eq!(detail, "Mux said: input unreadable");
        }
        let after = env.row(&s).await.unwrap();
        assert_eq!(
            (after.state, after.updated_at),
            (before.state, before.updated_at)
        );
    }
    assert!(env.mux.requests().is_empty());
    env.shutdown().await;
}

#[tokio::test]
async fn a_429_is_retried_after_its_retry_after_and_is_not_an_exception() {
    let env = TestEnv::start().await;
    let s = env.seed().await;
    env.mux
        .script(Route::CreateAsset, Scripted::rate_limited(Some("3")));
    let outcome = env
        .ingest(&s.input)
        .await
        .expect("ingest completes after the 429");
    assert_eq!(outcome.kind(), OutcomeKind::Ingested);
    let creates = env.mux.create_requests();
    assert_eq!(creates.len(), 2);
    let gap = creates[1]
        .received_at
        .duration_since(creates[0].received_at)
        .unwrap();
    assert!(
        gap >= Duration::from_millis(2900),
        "second attempt came {gap:?} after the 429"
    );
    assert!(
        capture::events("rindle.provider.ingest.exception")
            .iter()
            .all(|e| e.field("variant_name") != Some(s.input.variant_name.as_str()))
    );
    env.shutdown().await;
}

#[tokio::test]
async fn a_mux_rejection_fails_once_records_the_error_and_a_rerun_takes_the_row_over() {
    let env = TestEnv::start().await;
    let s = env.seed().await;
    env.mux.script(
        Route::CreateAsset,
        Scripted::status(400).json(serde_json::json!({"error":{"type":"invalid_parameters","messages":["input url invalid"]}})),
    );
    let text = failure_text(env.ingest(&s.input).await);
    assert!(text.contains("ProviderRejected"), "{text}");
    assert_eq!(env.mux.create_requests().len(), 1, "a 4xx is not retried");
    let row = env.row(&s).await.unwrap();
    assert_eq!(row.state, ProviderAssetState::Uploading);
    let error = row.last_sync_error.unwrap();
    assert!(
        error.contains("ProviderRejected") && error.contains("input url invalid"),
        "{error}"
    );
    assert!(
        !error.contains("sig="),
        "no secret in last_sync_error: {error}"
    );

    let exceptions: Vec<_> = capture::events("rindle.provider.ingest.exception")
        .into_iter()
        .filter(|e| e.field("variant_name") == Some(s.input.variant_name.as_str()))
        .collect();
    assert_eq!(exceptions.len(), 1);
    assert_eq!(exceptions[0].field("kind"), Some("error"));

    // The row does not block a later ingest.
    let outcome = env.ingest(&s.input).await.expect("rerun completes");
    assert_eq!(outcome.kind(), OutcomeKind::Ingested);
    assert_eq!(env.row(&s).await.unwrap().state, ProviderAssetState::Ready);
    env.shutdown().await;
}

#[tokio::test]
async fn every_invalid_input_fails_at_once_and_writes_nothing() {
    let env = TestEnv::start().await;
    let s = env.seed().await;
    let mut cases = Vec::new();
    let mut i = s.input.clone();
    i.asset_id = "not-a-uuid".into();
    cases.push((i, None));
    let mut i = s.input.clone();
    i.profile = String::new();
    cases.push((i, None));
    let mut i = s.input.clone();
    i.variant_name = "a:b".into();
    cases.push((
        i,
        Some(format!("{}:{}:a_b", s.input.asset_id, s.input.profile)),
    ));
    let mut i = s.input.clone();
    i.variant_name = "v".repeat(256);
    cases.push((i, None));
    let mut i = s.input.clone();
    i.profile = "Elixir.Unknown.Profile".into();
    cases.push((i, None));
    cases.push((s.input.clone(), Some(format!("{}:wrong", s.input.asset_id))));

    for (n, (input, workflow_id)) in cases.into_iter().enumerate() {
        let workflow_id =
            workflow_id.unwrap_or_else(|| format!("invalid-{n}:{}", workflow_id_for(&input)));
        env.start_ingest_as(&input, &workflow_id).await;
        let text = failure_text(env.result(&workflow_id).await);
        assert!(text.contains("InvalidInput"), "case {n}: {text}");
    }
    assert!(env.row(&s).await.is_none(), "no row written");
    assert!(env.mux.requests().is_empty(), "Mux never called");
    env.shutdown().await;
}

#[tokio::test]
async fn two_variants_of_one_asset_and_profile_create_exactly_one_mux_asset() {
    let env = TestEnv::start().await;
    let a = env.seed().await;
    let b = env.add_variant(&a, "web_1080p").await;
    env.mux
        .set_delay(Route::CreateAsset, Duration::from_secs(2));
    env.start_ingest(&a.input).await;
    env.start_ingest(&b.input).await;
    let ra = env.result(&workflow_id_for(&a.input)).await.unwrap();
    let rb = env.result(&workflow_id_for(&b.input)).await.unwrap();
    let mut kinds = vec![ra.kind(), rb.kind()];
    kinds.sort_by_key(|k| *k as i32);
    assert_eq!(
        kinds,
        vec![OutcomeKind::Ingested, OutcomeKind::AlreadyInProgress]
    );
    assert_eq!(env.mux.create_requests().len(), 1);
    env.shutdown().await;
}

#[tokio::test]
async fn enqueue_joins_a_running_ingest_and_honours_the_uniqueness_period() {
    use rindle_worker::enqueue::{Enqueued, enqueue};
    let env = TestEnv::start().await;
    let s = env.seed().await;
    let day = Duration::from_secs(86_400);
    env.mux
        .set_delay(Route::CreateAsset, Duration::from_secs(2));

    let first = enqueue(&env.client, "rindle_provider", s.input.clone(), day)
        .await
        .unwrap();
    assert!(matches!(first, Enqueued::Started { .. }), "{first:?}");
    let second = enqueue(&env.client, "rindle_provider", s.input.clone(), day)
        .await
        .unwrap();
    assert!(
        matches!(&second, Enqueued::Existing { status, .. } if status == "running"),
        "{second:?}"
    );
    env.result(&workflow_id_for(&s.input)).await.unwrap();

    let third = enqueue(&env.client, "rindle_provider", s.input.clone(), day)
        .await
        .unwrap();
    assert!(
        matches!(&third, Enqueued::Existing { status, .. } if status == "completed"),
        "{third:?}"
    );
    // After the period, a new run starts.
    let fourth = enqueue(
        &env.client,
        "rindle_provider",
        s.input.clone(),
        Duration::ZERO,
    )
    .await
    .unwrap();
    assert!(matches!(fourth, Enqueued::Started { .. }), "{fourth:?}");
    env.result(&workflow_id_for(&s.input)).await.unwrap();

    // After a failed run, a new run starts at once.
    let f = env.seed().await;
    env.mux.script(
        Route::CreateAsset,
        Scripted::status(422)
            .json(serde_json::json!({"error":{"type":"invalid","messages":["bad"]}})),
    );
    assert!(matches!(
        enqueue(&env.client, "rindle_provider", f.input.clone(), day)
            .await
            .unwrap(),
        Enqueued::Started { .. }
    ));
    failure_text(env.result(&workflow_id_for(&f.input)).await);
    assert!(matches!(
        enqueue(&env.client, "rindle_provider", f.input.clone(), day)
            .await
            .unwrap(),
        Enqueued::Started { .. }
    ));
    env.result(&workflow_id_for(&f.input)).await.unwrap();

    let mut bad = s.input.clone();
    bad.asset_id = "nope".into();
    assert!(
        enqueue(&env.client, "rindle_provider", bad, day)
            .await
            .is_err()
    );
    env.shutdown().await;
}

#[tokio::test]
async fn an_ingest_started_with_the_temporal_cli_completes() {
    let env = TestEnv::start().await;
    let s = env.seed().await;
    let input = serde_json::to_string(&s.input).unwrap();
    let out = std::process::Command::new(rindle_tests::env::temporal_binary())
        .args([
            "workflow",
            "start",
            "--address",
            &env.temporal_address,
            "--type",
            "IngestWorkflow",
        ])
        .args([
            "--task-queue",
            "rindle_provider",
            "--workflow-id",
            &workflow_id_for(&s.input),
            "--input",
            &input,
        ])
        .output()
        .expect("run the temporal CLI");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let outcome = env.result(&workflow_id_for(&s.input)).await.unwrap();
    assert_eq!(outcome.kind(), OutcomeKind::Ingested);
    env.shutdown().await;
}

#[tokio::test]
async fn the_embedded_sqlite_store_runs_the_same_ingest() {
    let env = TestEnv::start_with(EnvOptions {
        backend: Backend::Sqlite,
        ..Default::default()
    })
    .await;
    let s = env.seed().await;
    let outcome = env.ingest(&s.input).await.expect("ingest completes");
    assert_eq!(outcome.kind(), OutcomeKind::Ingested);
    assert_eq!(env.row(&s).await.unwrap().state, ProviderAssetState::Ready);
    env.shutdown().await;
}

#[tokio::test]
async fn a_variant_in_s3_is_pushed_with_a_presigned_url_mux_can_fetch() {
    let env = TestEnv::start_with(EnvOptions {
        s3: true,
        ..Default::default()
    })
    .await;
    let s = env.seed_for(S3_PROFILE, "web_720p").await;
    let outcome = env.ingest(&s.input).await.expect("ingest completes");
    assert_eq!(outcome.kind(), OutcomeKind::Ingested);
    let url = env.mux.create_requests()[0].body["inputs"][0]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(url.contains("X-Amz-Signature="), "{url}");
    let fetched = reqwest::get(&url).await.unwrap();
    assert_eq!(fetched.status(), 200);
    assert_eq!(fetched.bytes().await.unwrap().as_ref(), s.bytes.as_slice());
    env.shutdown().await;
}

#[tokio::test]
async fn a_row_left_uploading_by_a_terminated_ingest_is_taken_over_and_no_asset_is_left_billed() {
    use temporalio_client::{UntypedWorkflow, WorkflowTerminateOptions};
    let env = TestEnv::start().await;
    let s = env.seed().await;
    env.mux
        .set_delay(Route::CreateAsset, Duration::from_secs(3));
    env.start_ingest(&s.input).await;
    env.mux
        .wait_for_requests("POST", "/video/v1/assets", 1, Duration::from_secs(60))
        .await
        .unwrap();
    // The run dies while Mux is still answering its create: its claim is never released.
    let handle = env
        .client
        .get_workflow_handle::<UntypedWorkflow>(workflow_id_for(&s.input));
    handle
        .terminate(
            WorkflowTerminateOptions::builder()
                .reason("operator terminated")
                .build(),
        )
        .await
        .unwrap();
    env.mux.set_delay(Route::CreateAsset, Duration::ZERO);

    let outcome = env
        .ingest(&s.input)
        .await
        .expect("the next ingest takes over");
    assert_eq!(outcome.kind(), OutcomeKind::Ingested);
    assert_eq!(env.row(&s).await.unwrap().state, ProviderAssetState::Ready);
    // The dead run's asset, created after it lost the row, is deleted: one live asset remains.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let assets = env.mux.assets();
        if assets.len() == 2 && assets.iter().filter(|a| !a.deleted).count() == 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{assets:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    env.shutdown().await;
}
