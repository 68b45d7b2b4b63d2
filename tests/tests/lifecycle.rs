//! End-to-end: after `processing`, the ingest follows the Mux asset — signed webhooks
//! delivered as signals, the polling backstop, stuck detection and operator cancel.

use std::time::Duration;

use temporalio_client::{
    UntypedSignal, UntypedWorkflow, WorkflowCancelOptions, WorkflowSignalOptions,
    errors::WorkflowGetResultError,
};
use temporalio_common::data_converters::{PayloadConverter, RawValue};

use rindle_proto::{IngestOutcome, OutcomeKind, ProviderAssetState};
use rindle_tests::{
    capture,
    env::{EnvOptions, Seeded, TestEnv, WEBHOOK_SECRET},
    mux_sim::Route,
};
use rindle_workflows::validate::workflow_id_for;

/// Webhook-driven: the simulator never turns assets ready on its own, polls are rare.
fn webhook_driven() -> EnvOptions {
    EnvOptions {
        auto_ready: false,
        ingest_toml: "delete_retry_interval_s = 1\npoll_interval_s = 3600\npoll_floor_s = 1\n"
            .into(),
        ..Default::default()
    }
}

/// Starts an ingest and waits until its row is `processing`; returns the Mux asset id.
async fn processing(env: &TestEnv, s: &Seeded) -> String {
    env.start_ingest(&s.input).await;
    let row = env
        .wait_for_row_state(s, ProviderAssetState::Processing)
        .await;
    row.provider_asset_id.expect("provider id recorded")
}

fn cancelled(result: Result<IngestOutcome, WorkflowGetResultError>) -> IngestOutcome {
    match result {
        Err(WorkflowGetResultError::Cancelled { details, .. }) => {
            details.deserialize().expect("outcome details")
        }
        other => panic!("expected Canceled, got {other:?}"),
    }
}

#[tokio::test]
async fn a_ready_webhook_completes_the_ingest_and_duplicates_are_harmless() {
    let env = TestEnv::start_with(webhook_driven()).await;
    let s = env.seed().await;
    let asset = processing(&env, &s).await;

    // `created` changes nothing.
    let created = env.mux.webhook_event("video.asset.created", &asset);
    assert_eq!(
        env.post_webhook(&created, WEBHOOK_SECRET).await.status(),
        202
    );
    let status = env.status(&s.input).await;
    assert_eq!(status.state(), ProviderAssetState::Processing);
    assert!(status.provider_asset_id_redacted.starts_with("..."));

    env.mux.set_status(&asset, "ready");
    let ready = env.mux.webhook_event("video.asset.ready", &asset);
    assert_eq!(env.post_webhook(&ready, WEBHOOK_SECRET).await.status(), 202);
    // The same delivery again (Mux may resend after a 2xx): acknowledged, nothing done.
    assert_eq!(env.post_webhook(&ready, WEBHOOK_SECRET).await.status(), 200);

    let outcome = env
        .result(&workflow_id_for(&s.input))
        .await
        .expect("ingest completes");
    assert_eq!(outcome.kind(), OutcomeKind::Ingested);
    assert_eq!(outcome.state(), ProviderAssetState::Ready);
    let row = env.row(&s).await.unwrap();
    assert_eq!(row.state, ProviderAssetState::Ready);
    assert_eq!(
        row.playback_ids,
        env.mux.asset(&asset).unwrap().playback_ids
    );
    assert!(row.last_event_at.is_some());
    // A late `errored` older than `ready`, and a repeat `ready`, change nothing after the end.
    let mut late = env.mux.webhook_event("video.asset.errored", &asset);
    late["created_at"] = serde_json::json!("2000-01-01T00:00:00Z");
    assert!(
        env.post_webhook(&late, WEBHOOK_SECRET)
            .await
            .status()
            .is_success()
    );
    assert_eq!(env.row(&s).await.unwrap().state, ProviderAssetState::Ready);

    let processed = capture::events("rindle.provider.webhook.processed");
    assert!(
        processed
            .iter()
            .all(|e| e.field("secret_index") == Some("0")),
        "{processed:?}"
    );
    env.shutdown().await;
}

#[tokio::test]
async fn an_errored_webhook_records_muxs_messages() {
    let env = TestEnv::start_with(webhook_driven()).await;
    let s = env.seed().await;
    let asset = processing(&env, &s).await;
    env.mux.set_status(&asset, "errored");
    let mut errored = env.mux.webhook_event("video.asset.errored", &asset);
    errored["data"]["errors"] =
        serde_json::json!({"type":"input_error","messages":["Failed to fetch input"]});
    assert_eq!(
        env.post_webhook(&errored, WEBHOOK_SECRET).await.status(),
        202
    );
    let outcome = env.result(&workflow_id_for(&s.input)).await.unwrap();
    assert_eq!(outcome.state(), ProviderAssetState::Errored);
    let row = env.row(&s).await.unwrap();
    assert_eq!(row.state, ProviderAssetState::Errored);
    assert!(
        row.last_sync_error
            .unwrap()
            .contains("Failed to fetch input")
    );
    env.shutdown().await;
}

#[tokio::test]
async fn every_webhook_answer_code() {
    let opts = EnvOptions {
        webhook_secrets: vec![
            "old-secret-0123456789abcdef0123".into(),
            WEBHOOK_SECRET.into(),
        ],
        ..webhook_driven()
    };
    let env = TestEnv::start_with(opts).await;
    let s = env.seed().await;
    let asset = processing(&env, &s).await;
    let http = reqwest::Client::new();

    assert_eq!(
        http.get(env.webhook_url()).send().await.unwrap().status(),
        405
    );
    // Missing, tampered, unknown-secret, stale and future signatures.
    let event = env.mux.webhook_event("video.asset.created", &asset);
    let body = serde_json::to_vec(&event).unwrap();
    assert_eq!(
        http.post(env.webhook_url())
            .body(body.clone())
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    let now = chrono::Utc::now().timestamp();
    let post = |header: String, body: Vec<u8>| {
        let http = http.clone();
        let url = env.webhook_url();
        async move {
            http.post(url)
                .header("Mux-Signature", header)
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let good = rindle_activities::webhook::sign(WEBHOOK_SECRET, now, &body);
    let mut tampered = body.clone();
    tampered.push(b' ');
    assert_eq!(post(good.clone(), tampered).await, 400);
    assert_eq!(
        post(
            rindle_activities::webhook::sign("not-configured", now, &body),
            body.clone()
        )
        .await,
        400
    );
    assert_eq!(
        post(
            rindle_activities::webhook::sign(WEBHOOK_SECRET, now - 301, &body),
            body.clone()
        )
        .await,
        400
    );
    assert_eq!(
        post(
            rindle_activities::webhook::sign(WEBHOOK_SECRET, now + 301, &body),
            body.clone()
        )
        .await,
        400
    );
    // Either secret verifies (rotation); the header name is case-insensitive.
    assert_eq!(post(good, body.clone()).await, 202);
    let old = env.mux.webhook_event("video.asset.created", &asset);
    assert_eq!(
        env.post_webhook(&old, "old-secret-0123456789abcdef0123")
            .await
            .status(),
        202
    );
    // No event id.
    let mut no_id = env.mux.webhook_event("video.asset.created", &asset);
    no_id.as_object_mut().unwrap().remove("id");
    assert_eq!(env.post_webhook(&no_id, WEBHOOK_SECRET).await.status(), 400);
    // A verified type we do not act on.
    let other = env
        .mux
        .webhook_event("video.asset.static_renditions.ready", &asset);
    assert_eq!(env.post_webhook(&other, WEBHOOK_SECRET).await.status(), 200);
    // An asset we have no row for (yet): Mux must retry.
    let unknown = env
        .mux
        .webhook_event("video.asset.ready", "UnknownAsset0000000000000000000000000");
    assert_eq!(
        env.post_webhook(&unknown, WEBHOOK_SECRET).await.status(),
        503
    );

    let rejected = capture::events("rindle.provider.webhook.rejected");
    assert!(rejected.len() >= 4, "{rejected:?}");
    let with_old = capture::events("rindle.provider.webhook.processed");
    assert!(
        with_old
            .iter()
            .any(|e| e.field("secret_index") == Some("0")),
        "{with_old:?}"
    );
    assert!(
        with_old
            .iter()
            .any(|e| e.field("secret_index") == Some("1")),
        "{with_old:?}"
    );
    env.shutdown().await;
}

#[tokio::test]
async fn a_webhook_without_secrets_configured_is_a_400() {
    let env = TestEnv::start_with(EnvOptions {
        webhook_secrets: vec![],
        ..webhook_driven()
    })
    .await;
    let event = env.mux.webhook_event("video.asset.created", "Anything0000");
    assert_eq!(env.post_webhook(&event, WEBHOOK_SECRET).await.status(), 400);
    env.shutdown().await;
}

#[tokio::test]
async fn out_of_order_deliveries_are_harmless() {
    let env = TestEnv::start_with(webhook_driven()).await;
    let s = env.seed().await;
    let asset = processing(&env, &s).await;
    env.mux.set_status(&asset, "ready");
    let ready = env.mux.webhook_event("video.asset.ready", &asset);
    let created = env.mux.webhook_event("video.asset.created", &asset);
    // `ready` first, then the older `created`.
    assert_eq!(env.post_webhook(&ready, WEBHOOK_SECRET).await.status(), 202);
    assert!(
        env.post_webhook(&created, WEBHOOK_SECRET)
            .await
            .status()
            .is_success()
    );
    let outcome = env.result(&workflow_id_for(&s.input)).await.unwrap();
    assert_eq!(outcome.state(), ProviderAssetState::Ready);
    env.shutdown().await;
}

#[tokio::test]
async fn a_webhook_for_a_closed_ingest_is_applied_to_the_row() {
    let env = TestEnv::start_with(webhook_driven()).await;
    let s = env.seed().await;
    let asset = processing(&env, &s).await;
    env.mux.set_status(&asset, "ready");
    env.post_webhook(
        &env.mux.webhook_event("video.asset.ready", &asset),
        WEBHOOK_SECRET,
    )
    .await;
    env.result(&workflow_id_for(&s.input)).await.unwrap();
    // The ingest is closed; Mux later deletes the asset.
    let deleted = env.mux.webhook_event("video.asset.deleted", &asset);
    assert_eq!(
        env.post_webhook(&deleted, WEBHOOK_SECRET).await.status(),
        202
    );
    assert_eq!(
        env.row(&s).await.unwrap().state,
        ProviderAssetState::Deleted
    );
    env.shutdown().await;
}

#[tokio::test]
async fn polling_reaches_ready_with_webhooks_switched_off() {
    let env = TestEnv::start_with(EnvOptions {
        auto_ready: false,
        webhook_secrets: vec![],
        ingest_toml: "poll_interval_s = 1\npoll_floor_s = 1\n".into(),
        ..Default::default()
    })
    .await;
    let s = env.seed().await;
    let asset = processing(&env, &s).await;
    env.mux
        .wait_for_requests(
            "GET",
            &format!("/video/v1/assets/{asset}"),
            1,
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    env.mux.set_status(&asset, "ready");
    let outcome = env.result(&workflow_id_for(&s.input)).await.unwrap();
    assert_eq!(outcome.state(), ProviderAssetState::Ready);
    let resolved = capture::events("rindle.provider.sync.resolved");
    assert_eq!(resolved.len(), 1, "{resolved:?}");
    assert!(resolved[0].field("age_ms").is_some());
    assert!(capture::events("rindle.provider.sync.stuck").is_empty());
    env.shutdown().await;
}

#[tokio::test]
async fn an_asset_is_stuck_only_while_mux_still_says_preparing() {
    let env = TestEnv::start_with(EnvOptions {
        auto_ready: false,
        ingest_toml: "poll_interval_s = 1\npoll_floor_s = 1\nstuck_threshold_s = 2\n".into(),
        ..Default::default()
    })
    .await;
    let s = env.seed().await;
    processing(&env, &s).await;
    let outcome = env.result(&workflow_id_for(&s.input)).await.unwrap();
    assert_eq!(outcome.state(), ProviderAssetState::Errored);
    let row = env.row(&s).await.unwrap();
    assert_eq!(
        row.last_sync_error.as_deref(),
        Some("stuck in processing past threshold")
    );
    assert_eq!(capture::events("rindle.provider.sync.stuck").len(), 1);

    // Past the same threshold, a Mux that says `ready` wins: never stuck. (The poll's answer
    // is held 2.5 s, so it always arrives after the threshold.)
    env.mux.set_auto_ready(true);
    env.mux
        .set_delay(Route::GetAsset, Duration::from_millis(2500));
    let s2 = env.seed().await;
    processing(&env, &s2).await;
    let outcome = env.result(&workflow_id_for(&s2.input)).await.unwrap();
    assert_eq!(outcome.state(), ProviderAssetState::Ready);
    assert_eq!(
        capture::events("rindle.provider.sync.stuck").len(),
        1,
        "only the first was stuck"
    );
    let resolved = capture::events("rindle.provider.sync.resolved");
    let age_ms: u64 = resolved[0].field("age_ms").unwrap().parse().unwrap();
    assert!(
        age_ms >= 2000,
        "resolved past the threshold, at {age_ms} ms"
    );
    env.shutdown().await;
}

#[tokio::test]
async fn a_mux_404_while_polling_marks_the_row_errored() {
    let env = TestEnv::start_with(EnvOptions {
        auto_ready: false,
        ..Default::default()
    })
    .await;
    let s = env.seed().await;
    processing(&env, &s).await;
    env.mux.script(
        Route::GetAsset,
        rindle_tests::mux_sim::Scripted::error(404, "not_found", &["Asset not found"]),
    );
    let outcome = env.result(&workflow_id_for(&s.input)).await.unwrap();
    assert_eq!(outcome.state(), ProviderAssetState::Errored);
    assert_eq!(
        env.row(&s).await.unwrap().last_sync_error.as_deref(),
        Some("mux asset not found")
    );
    env.shutdown().await;
}

#[tokio::test]
async fn an_operator_cancel_deletes_the_asset_once_mux_lets_it() {
    let env = TestEnv::start_with(webhook_driven()).await;
    env.mux.set_refuse_preparing_delete(true);
    let s = env.seed().await;
    let asset = processing(&env, &s).await;
    let handle = env
        .client
        .get_workflow_handle::<UntypedWorkflow>(workflow_id_for(&s.input));
    handle
        .cancel(
            WorkflowCancelOptions::builder()
                .reason("operator says stop")
                .build(),
        )
        .await
        .unwrap();
    // Mux refuses while preparing; once it has finished, the retried delete goes through.
    env.mux
        .wait_for_requests("DELETE", "/video/v1/assets/", 1, Duration::from_secs(60))
        .await
        .unwrap();
    env.mux.set_status(&asset, "errored");

    let outcome = cancelled(env.result(&workflow_id_for(&s.input)).await);
    let reason = outcome.cancel_reason.clone().unwrap();
    assert_eq!(reason.code, "operator_cancelled");
    assert!(env.mux.asset(&asset).unwrap().deleted);
    assert!(env.mux.count("DELETE", "/video/v1/assets/") >= 2);
    let row = env.row(&s).await.unwrap();
    assert_eq!(row.state, ProviderAssetState::Errored);
    assert!(row.last_sync_error.unwrap().contains("operator_cancelled"));
    let exceptions: Vec<_> = capture::events("rindle.provider.ingest.exception")
        .into_iter()
        .filter(|e| e.field("variant_name") == Some(s.input.variant_name.as_str()))
        .collect();
    assert_eq!(exceptions.len(), 1);
    assert_eq!(exceptions[0].field("kind"), Some("cancelled"));
    env.shutdown().await;
}

#[tokio::test]
async fn an_operator_cancel_before_any_asset_exists_leaves_the_row_reusable() {
    let env = TestEnv::start_with(webhook_driven()).await;
    let s = env.seed().await;
    env.mux.script(
        Route::CreateAsset,
        rindle_tests::mux_sim::Scripted::rate_limited(Some("600")),
    );
    env.start_ingest(&s.input).await;
    env.mux
        .wait_for_requests("POST", "/video/v1/assets", 1, Duration::from_secs(60))
        .await
        .unwrap();
    let handle = env
        .client
        .get_workflow_handle::<UntypedWorkflow>(workflow_id_for(&s.input));
    handle
        .cancel(WorkflowCancelOptions::builder().build())
        .await
        .unwrap();
    let outcome = cancelled(env.result(&workflow_id_for(&s.input)).await);
    assert_eq!(outcome.cancel_reason.unwrap().code, "operator_cancelled");
    assert!(env.mux.assets().is_empty(), "no asset was created");
    let row = env.row(&s).await.unwrap();
    assert_eq!(row.state, ProviderAssetState::Uploading);
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
async fn a_malformed_signal_leaves_the_workflow_healthy() {
    let env = TestEnv::start_with(webhook_driven()).await;
    let s = env.seed().await;
    let asset = processing(&env, &s).await;
    let handle = env
        .client
        .get_workflow_handle::<UntypedWorkflow>(workflow_id_for(&s.input));
    let converter = PayloadConverter::default();
    for garbage in [
        serde_json::json!(123),
        serde_json::json!({"event_id": 5, "type": []}),
        serde_json::json!("x"),
    ] {
        handle
            .signal(
                UntypedSignal::new("provider_event"),
                RawValue::from_value(&garbage, &converter),
                WorkflowSignalOptions::default(),
            )
            .await
            .unwrap();
    }
    // Still answering queries, and still applying good events.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while env.status(&s.input).await.events_ignored < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "signals were not all seen"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    env.mux.set_status(&asset, "ready");
    env.post_webhook(
        &env.mux.webhook_event("video.asset.ready", &asset),
        WEBHOOK_SECRET,
    )
    .await;
    let outcome = env.result(&workflow_id_for(&s.input)).await.unwrap();
    assert_eq!(outcome.state(), ProviderAssetState::Ready);
    env.shutdown().await;
}
