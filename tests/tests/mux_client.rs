//! The Mux client against the Mux simulator: request shape, response unwrapping, error
//! classification, redaction, and "exactly one request per call" (no hidden retries).
//!
//! Every test starts its own simulator on port 0. Nothing sleeps to synchronise: each client call
//! is awaited, and the simulator has recorded the request before it answers.

use std::error::Error as _;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rindle_activities::mux::{
    CreateAssetRequest, DEFAULT_RETRY_AFTER, DeleteOutcome, MuxAssetStatus, MuxClient, MuxConfig,
    MuxError,
};
use rindle_tests::mux_sim::{MuxSim, Route, Scripted};
use secrecy::SecretString;
use serde_json::{Value, json};
use url::Url;

const CREATE_201: &str = include_str!("../../../shared/fixtures/mux/asset_create_201.json");
const GET_READY: &str = include_str!("../../../shared/fixtures/mux/asset_get_ready.json");
const GET_PROCESSING: &str = include_str!("../../../shared/fixtures/mux/asset_get_processing.json");

/// The fixture asset id; it must never appear in an error string.
const FIXTURE_ID: &str = "AbCd1234EfGh5678IjKl9012MnOp3456QrSt";

/// The signature part of the signed input URL; it must never appear in an error string.
const SIGNATURE: &str = "X-Amz-Signature=0123456789abcdef";

fn signed_url() -> String {
    format!(
        "https://storage.example/bucket/videos/v1.mp4?X-Amz-Expires=1800&{SIGNATURE}&X-Amz-Date=20260506T000000Z"
    )
}

fn fixture(text: &str) -> Value {
    serde_json::from_str(text).expect("fixture is JSON")
}

fn config(base_url: &str, (id, secret): (String, String), timeout_s: u64) -> MuxConfig {
    MuxConfig {
        base_url: Url::parse(base_url).expect("base url"),
        token_id: id,
        token_secret: SecretString::from(secret),
        request_timeout_s: timeout_s,
    }
}

fn client(sim: &MuxSim) -> MuxClient {
    MuxClient::new(&config(&sim.base_url(), sim.credentials(), 5)).expect("client")
}

fn request() -> CreateAssetRequest {
    CreateAssetRequest::new(SecretString::from(signed_url()), "signed")
}

/// A scripted reply to create: 201 with `data` wrapping `asset`.
fn created(asset: Value) -> Scripted {
    Scripted::status(201).json(json!({ "data": asset }))
}

/// `Display` of the error and of every source in its chain, joined.
fn display_chain(err: &MuxError) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(" | ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn assert_one_request(sim: &MuxSim) {
    let requests = sim.requests();
    assert_eq!(
        requests.len(),
        1,
        "expected exactly one request: {requests:?}"
    );
}

#[tokio::test]
async fn create_sends_the_reference_body_with_basic_auth() {
    let sim = MuxSim::start().await;
    let mux = client(&sim);
    let req = CreateAssetRequest {
        passthrough: Some("rndl:row-1:attempt-1".to_owned()),
        ..request()
    };

    let created = mux.create_asset(&req).await.expect("create");

    let sent = sim.create_requests();
    assert_eq!(sent.len(), 1);
    assert_one_request(&sim);
    // rindle-behavior §4.3, plus the passthrough.
    assert_eq!(
        sent[0].body,
        json!({
            "inputs": [{ "url": signed_url() }],
            "playback_policies": ["signed"],
            "mp4_support": "standard",
            "max_resolution_tier": "1080p",
            "passthrough": "rndl:row-1:attempt-1"
        })
    );
    let (id, secret) = sim.credentials();
    let expected_auth = format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")));
    assert_eq!(
        sent[0].authorization.as_deref(),
        Some(expected_auth.as_str())
    );
    assert_eq!(sent[0].content_type.as_deref(), Some("application/json"));
    assert_eq!(sent[0].query, None);

    let assets = sim.assets();
    assert_eq!(assets.len(), 1);
    assert_eq!(created.id, assets[0].id);
    assert_eq!(created.status, "preparing");
    assert_eq!(created.playback_ids, assets[0].playback_ids);
    assert_eq!(created.playback_ids.len(), 1);
    assert_eq!(assets[0].input_url, signed_url());
    assert_eq!(assets[0].playback_policies, ["signed"]);
    assert_eq!(
        assets[0].passthrough.as_deref(),
        Some("rndl:row-1:attempt-1")
    );
}

#[tokio::test]
async fn create_without_passthrough_omits_the_key() {
    let sim = MuxSim::start().await;
    client(&sim).create_asset(&request()).await.expect("create");
    let body = &sim.create_requests()[0].body;
    assert!(body.get("passthrough").is_none(), "{body}");
    assert_eq!(
        body.as_object().map(|o| o.len()),
        Some(4),
        "only the reference keys: {body}"
    );
}

#[tokio::test]
async fn create_unwraps_data_from_the_fixture() {
    let sim = MuxSim::start().await;
    sim.script(Route::CreateAsset, created(fixture(CREATE_201)));

    let created = client(&sim).create_asset(&request()).await.expect("create");

    assert_eq!(created.id, FIXTURE_ID);
    assert_eq!(created.playback_ids, ["playback-id-test-fixture-1234"]);
    assert_eq!(created.status, "preparing");
    assert!(
        !format!("{created:?}").contains(FIXTURE_ID),
        "Debug redacts the id"
    );
    assert_one_request(&sim);
}

#[tokio::test]
async fn playback_ids_keep_ids_of_objects_and_bare_strings_only() {
    let sim = MuxSim::start().await;
    let mux = client(&sim);
    let cases = [
        (
            json!([{"id": "a", "policy": "signed"}, "b", 42, {"policy": "public"}, null]),
            vec!["a", "b"],
        ),
        (Value::Null, vec![]),
        (json!({"id": "not-a-list"}), vec![]),
    ];
    for (playback_ids, expected) in cases {
        sim.script(
            Route::CreateAsset,
            created(json!({"id": FIXTURE_ID, "status": "preparing", "playback_ids": playback_ids})),
        );
        let got = mux.create_asset(&request()).await.expect("create");
        assert_eq!(got.playback_ids, expected, "for {playback_ids}");
    }
    // No `playback_ids` key at all (no policy given).
    sim.script(Route::CreateAsset, created(json!({"id": FIXTURE_ID})));
    let got = mux.create_asset(&request()).await.expect("create");
    assert!(got.playback_ids.is_empty());
    assert_eq!(sim.count("POST", "/video/v1/assets"), 4);
}

#[tokio::test]
async fn a_2xx_without_data_or_id_is_a_non_retryable_bad_response() {
    let sim = MuxSim::start().await;
    let mux = client(&sim);
    // The unwrapped fixture: `data` is missing.
    sim.script(
        Route::CreateAsset,
        Scripted::status(201).json(fixture(CREATE_201)),
    );
    sim.script(Route::CreateAsset, created(json!({"status": "preparing"})));
    sim.script(
        Route::CreateAsset,
        Scripted::status(201).text("<html>ok</html>"),
    );
    for _ in 0..3 {
        let err = mux.create_asset(&request()).await.expect_err("bad body");
        assert!(matches!(err, MuxError::Decode { .. }), "{err:?}");
        assert!(!err.is_retryable());
        assert_eq!(err.type_name(), "ProviderBadResponse");
        assert!(!display_chain(&err).contains(FIXTURE_ID));
    }
    assert_eq!(sim.requests().len(), 3);
}

#[tokio::test]
async fn get_reads_the_fixtures() {
    let sim = MuxSim::start().await;
    let mux = client(&sim);
    sim.script(
        Route::GetAsset,
        Scripted::status(200).json(json!({ "data": fixture(GET_READY) })),
    );
    sim.script(
        Route::GetAsset,
        Scripted::status(200).json(json!({ "data": fixture(GET_PROCESSING) })),
    );

    let ready = mux.get_asset(FIXTURE_ID).await.expect("get");
    assert_eq!(ready.id, FIXTURE_ID);
    assert_eq!(ready.status, MuxAssetStatus::Ready);
    assert_eq!(ready.playback_ids, ["playback-id-test-fixture-1234"]);
    assert!(ready.errors.is_empty());
    let processing = mux.get_asset(FIXTURE_ID).await.expect("get");
    assert_eq!(processing.status, MuxAssetStatus::Preparing);

    let requests = sim.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].method, "GET");
    assert_eq!(requests[0].path, format!("/video/v1/assets/{FIXTURE_ID}"));
    assert!(requests[0].authorized);
}

#[tokio::test]
async fn get_follows_the_simulated_lifecycle() {
    let sim = MuxSim::start().await;
    let mux = client(&sim);
    let req = CreateAssetRequest {
        passthrough: Some("rndl:7:1".to_owned()),
        ..request()
    };
    let created = mux.create_asset(&req).await.expect("create");

    let asset = mux.get_asset(&created.id).await.expect("get");
    assert_eq!(asset.status, MuxAssetStatus::Preparing);
    assert_eq!(asset.passthrough.as_deref(), Some("rndl:7:1"));
    assert_eq!(asset.playback_ids, created.playback_ids);

    sim.set_status(&created.id, "errored");
    let asset = mux.get_asset(&created.id).await.expect("get");
    assert_eq!(asset.status, MuxAssetStatus::Errored);
    assert_eq!(asset.errors.len(), 1);
}

#[tokio::test]
async fn get_of_an_unknown_asset_is_not_found() {
    let sim = MuxSim::start().await;
    let err = client(&sim)
        .get_asset(FIXTURE_ID)
        .await
        .expect_err("unknown");
    assert!(matches!(err, MuxError::NotFound), "{err:?}");
    assert!(!err.is_retryable());
    assert_eq!(err.type_name(), "ProviderNotFound");
    assert!(!display_chain(&err).contains(FIXTURE_ID));
    assert_one_request(&sim);
}

#[tokio::test]
async fn delete_is_idempotent() {
    let sim = MuxSim::start().await;
    let mux = client(&sim);
    let created = mux.create_asset(&request()).await.expect("create");

    assert_eq!(
        mux.delete_asset(&created.id).await.expect("delete"),
        DeleteOutcome::Deleted
    );
    assert_eq!(
        mux.delete_asset(&created.id).await.expect("delete again"),
        DeleteOutcome::AlreadyGone
    );
    assert_eq!(
        mux.delete_asset(FIXTURE_ID).await.expect("delete unknown"),
        DeleteOutcome::AlreadyGone
    );
    assert!(matches!(
        mux.get_asset(&created.id).await,
        Err(MuxError::NotFound)
    ));
    assert!(sim.assets()[0].deleted);
    assert_eq!(sim.count("DELETE", "/video/v1/assets/"), 3);
    assert_eq!(sim.requests().len(), 5);
}

#[tokio::test]
async fn deleting_a_preparing_asset_can_be_refused() {
    let sim = MuxSim::start().await;
    sim.set_refuse_preparing_delete(true);
    let mux = client(&sim);
    let created = mux.create_asset(&request()).await.expect("create");

    let err = mux.delete_asset(&created.id).await.expect_err("refused");
    match &err {
        MuxError::Rejected {
            status,
            error_type,
            messages,
        } => {
            assert_eq!(*status, 400);
            assert_eq!(error_type.as_deref(), Some("invalid_parameters"));
            assert_eq!(messages, &["Can't delete a preparing asset"]);
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert!(!err.is_retryable());
    assert!(!display_chain(&err).contains(&created.id));

    sim.set_status(&created.id, "ready");
    assert_eq!(
        mux.delete_asset(&created.id).await.expect("delete"),
        DeleteOutcome::Deleted
    );
    assert_eq!(sim.count("DELETE", "/video/v1/assets/"), 2);
}

#[tokio::test]
async fn list_pages_newest_first() {
    let sim = MuxSim::start().await;
    let mux = client(&sim);
    let mut ids = Vec::new();
    for n in 0..3 {
        let req = CreateAssetRequest {
            passthrough: Some(format!("rndl:{n}")),
            ..request()
        };
        ids.push(mux.create_asset(&req).await.expect("create").id);
    }

    let first = mux.list_assets(2, None).await.expect("list");
    let got: Vec<&str> = first.assets.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(got, [ids[2].as_str(), ids[1].as_str()]);
    let cursor = first.next_cursor.expect("a second page");
    let second = mux.list_assets(2, Some(&cursor)).await.expect("list");
    assert_eq!(second.assets.len(), 1);
    assert_eq!(second.assets[0].id, ids[0]);
    assert_eq!(second.assets[0].passthrough.as_deref(), Some("rndl:0"));
    assert_eq!(second.next_cursor, None);

    let lists: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET")
        .collect();
    assert_eq!(lists.len(), 2);
    assert_eq!(lists[0].query.as_deref(), Some("limit=2"));
    assert_eq!(
        lists[1].query.as_deref(),
        Some(format!("limit=2&cursor={cursor}").as_str())
    );
}

/// An IMF-fixdate `secs` seconds from now, as a server would write it.
fn http_date_in(secs: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(secs))
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

#[tokio::test]
async fn rate_limits_carry_the_delay_mux_asked_for() {
    // (Retry-After value, accepted range of the delay)
    let cases: Vec<(Option<String>, Duration, Duration)> = vec![
        (
            Some("2".to_owned()),
            Duration::from_secs(2),
            Duration::from_secs(2),
        ),
        (
            Some(http_date_in(120)),
            Duration::from_secs(110),
            Duration::from_secs(120),
        ),
        (None, DEFAULT_RETRY_AFTER, DEFAULT_RETRY_AFTER),
        (
            Some("soon".to_owned()),
            DEFAULT_RETRY_AFTER,
            DEFAULT_RETRY_AFTER,
        ),
        (
            Some("-3".to_owned()),
            DEFAULT_RETRY_AFTER,
            DEFAULT_RETRY_AFTER,
        ),
    ];
    for (retry_after, low, high) in cases {
        let sim = MuxSim::start().await;
        sim.script(
            Route::CreateAsset,
            Scripted::rate_limited(retry_after.as_deref()),
        );

        let err = client(&sim)
            .create_asset(&request())
            .await
            .expect_err("429");

        let MuxError::RateLimited { retry_after: delay } = err else {
            panic!("expected RateLimited for {retry_after:?}, got {err:?}");
        };
        assert!(
            (low..=high).contains(&delay),
            "Retry-After {retry_after:?} gave {delay:?}"
        );
        assert!(err.is_retryable());
        assert_eq!(err.retry_after(), Some(delay));
        assert_eq!(err.type_name(), "ProviderRateLimited");
        assert_one_request(&sim);
        assert!(sim.assets().is_empty(), "a 429 creates nothing");
    }
}

#[tokio::test]
async fn retry_after_ms_takes_precedence() {
    let sim = MuxSim::start().await;
    sim.script(
        Route::GetAsset,
        Scripted::rate_limited(Some("30")).header("retry-after-ms", "1500"),
    );
    let err = client(&sim).get_asset(FIXTURE_ID).await.expect_err("429");
    assert_eq!(err.retry_after(), Some(Duration::from_millis(1500)));
    assert_one_request(&sim);
}

#[tokio::test]
async fn server_errors_and_408_are_retryable() {
    let cases = [
        Scripted::error(500, "internal_error", &["Something went wrong"]),
        Scripted::status(502).text("<html><body>Bad Gateway</body></html>"),
        Scripted::status(503),
        Scripted::status(408).json(json!({"errors": ["Request timeout"]})),
    ];
    for reply in cases {
        let expected_status = reply.status;
        let sim = MuxSim::start().await;
        sim.script(Route::CreateAsset, reply);

        let err = client(&sim)
            .create_asset(&request())
            .await
            .expect_err("server error");

        match &err {
            MuxError::Server { status, .. } => assert_eq!(*status, expected_status),
            other => panic!("expected Server for {expected_status}, got {other:?}"),
        }
        assert!(err.is_retryable());
        assert_eq!(err.retry_after(), None);
        assert_eq!(err.type_name(), "ProviderUnavailable");
        assert_one_request(&sim);
    }
}

#[tokio::test]
async fn server_error_messages_come_from_the_body() {
    let sim = MuxSim::start().await;
    sim.script(
        Route::CreateAsset,
        Scripted::error(500, "internal_error", &["Something went wrong"]),
    );
    let err = client(&sim)
        .create_asset(&request())
        .await
        .expect_err("500");
    assert_eq!(
        err.to_string(),
        "Mux is unavailable (HTTP 500): Something went wrong"
    );
}

#[tokio::test]
async fn client_errors_are_rejected_with_type_and_messages() {
    let cases = [
        (
            Scripted::error(
                400,
                "invalid_parameters",
                &["Invalid input URL", "Bad policy"],
            ),
            400,
            Some("invalid_parameters"),
            vec!["Invalid input URL", "Bad policy"],
        ),
        (
            Scripted::error(422, "unprocessable_entity", &["Cannot process"]),
            422,
            Some("unprocessable_entity"),
            vec!["Cannot process"],
        ),
        (
            Scripted::status(403).text("Forbidden"),
            403,
            None,
            vec!["Forbidden"],
        ),
    ];
    for (reply, want_status, want_type, want_messages) in cases {
        let sim = MuxSim::start().await;
        sim.script(Route::CreateAsset, reply);

        let err = client(&sim)
            .create_asset(&request())
            .await
            .expect_err("4xx");

        match &err {
            MuxError::Rejected {
                status,
                error_type,
                messages,
            } => {
                assert_eq!(*status, want_status);
                assert_eq!(error_type.as_deref(), want_type);
                assert_eq!(messages, &want_messages);
            }
            other => panic!("expected Rejected for {want_status}, got {other:?}"),
        }
        assert!(!err.is_retryable());
        assert_eq!(err.retry_after(), None);
        assert_eq!(err.type_name(), "ProviderRejected");
        assert_one_request(&sim);
    }
}

#[tokio::test]
async fn wrong_credentials_are_rejected_as_unauthorized() {
    let sim = MuxSim::start().await;
    let (id, _) = sim.credentials();
    let wrong_secret = "not-the-secret-4242".to_owned();
    let mux = MuxClient::new(&config(&sim.base_url(), (id, wrong_secret.clone()), 5)).unwrap();

    let err = mux.create_asset(&request()).await.expect_err("401");

    match &err {
        MuxError::Rejected {
            status: 401,
            error_type,
            messages,
        } => {
            assert_eq!(error_type.as_deref(), Some("unauthorized"));
            assert!(!messages.is_empty());
        }
        other => panic!("expected Rejected 401, got {other:?}"),
    }
    assert!(!err.is_retryable());
    assert!(!display_chain(&err).contains(&wrong_secret));
    let sent = sim.requests();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].has_authorization && !sent[0].authorized);
    assert!(sim.assets().is_empty());
}

#[tokio::test]
async fn connection_refused_is_a_retryable_transport_error() {
    // Bind a port, then free it, so nothing listens there.
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let base = format!("http://{addr}");
    let creds = ("id".to_owned(), "secret-refused-7777".to_owned());
    let mux = MuxClient::new(&config(&base, creds, 5)).unwrap();

    let err = mux.create_asset(&request()).await.expect_err("refused");

    assert!(matches!(err, MuxError::Transport { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert_eq!(err.type_name(), "ProviderTransport");
    let text = display_chain(&err);
    assert!(
        !text.contains(SIGNATURE) && !text.contains("secret-refused-7777"),
        "{text}"
    );
}

#[tokio::test]
async fn a_slow_mux_times_out_as_transport_after_one_request() {
    let sim = MuxSim::start().await;
    // Far longer than the client's 1 s timeout; the runtime drops the pending reply at the end.
    sim.set_delay(Route::CreateAsset, Duration::from_secs(60));
    let mux = MuxClient::new(&config(&sim.base_url(), sim.credentials(), 1)).unwrap();

    let err = mux.create_asset(&request()).await.expect_err("timeout");

    match &err {
        MuxError::Transport { source } => assert!(source.is_timeout(), "{source:?}"),
        other => panic!("expected Transport, got {other:?}"),
    }
    assert!(err.is_retryable());
    assert!(err.to_string().contains("timed out"), "{err}");
    assert_one_request(&sim);
}

#[tokio::test]
async fn a_slow_scripted_reply_times_out_too() {
    let sim = MuxSim::start().await;
    sim.script(
        Route::GetAsset,
        Scripted::status(200)
            .json(json!({ "data": fixture(GET_READY) }))
            .delay(Duration::from_secs(60)),
    );
    let mux = MuxClient::new(&config(&sim.base_url(), sim.credentials(), 1)).unwrap();
    let err = mux.get_asset(FIXTURE_ID).await.expect_err("timeout");
    assert!(matches!(err, MuxError::Transport { .. }), "{err:?}");
    assert!(
        !display_chain(&err).contains(FIXTURE_ID),
        "the URL is stripped"
    );
    assert_one_request(&sim);
}

#[tokio::test]
async fn no_error_reveals_the_signed_url_the_secret_or_the_asset_id() {
    let sim = MuxSim::start().await;
    let (_, secret) = sim.credentials();
    let mux = client(&sim);
    let echo = format!(
        "Could not fetch {} for asset {FIXTURE_ID} (token {secret})",
        signed_url()
    );

    let mut errors = Vec::new();
    sim.script(
        Route::CreateAsset,
        Scripted::error(400, "invalid_parameters", &[&echo]),
    );
    errors.push(mux.create_asset(&request()).await.expect_err("400"));
    sim.script(Route::CreateAsset, Scripted::status(500).text(&echo));
    errors.push(mux.create_asset(&request()).await.expect_err("500"));
    sim.script(
        Route::CreateAsset,
        Scripted::status(429).json(json!({ "errors": [echo] })),
    );
    errors.push(mux.create_asset(&request()).await.expect_err("429"));
    sim.script(Route::GetAsset, Scripted::error(403, "forbidden", &[&echo]));
    errors.push(mux.get_asset(FIXTURE_ID).await.expect_err("403"));
    sim.script(
        Route::DeleteAsset,
        Scripted::error(400, "invalid_parameters", &[&echo]),
    );
    errors.push(mux.delete_asset(FIXTURE_ID).await.expect_err("400"));
    errors.push(mux.get_asset(FIXTURE_ID).await.expect_err("404"));

    for err in &errors {
        for text in [display_chain(err), format!("{err:?}")] {
            assert!(!text.contains(SIGNATURE), "signature leaked: {text}");
            assert!(!text.contains(&secret), "token secret leaked: {text}");
            assert!(!text.contains(FIXTURE_ID), "asset id leaked: {text}");
        }
    }
    // The messages are still useful: the URL without its query, the id redacted.
    let first = errors[0].to_string();
    assert!(
        first.contains("https://storage.example/bucket/videos/v1.mp4"),
        "{first}"
    );
    assert_eq!(sim.requests().len(), errors.len());
}

#[tokio::test]
async fn client_config_is_checked_up_front() {
    let good = ("id".to_owned(), "s3cr3t-value".to_owned());
    for (base, creds, timeout) in [
        ("ftp://mux.example", good.clone(), 5),
        (
            "http://127.0.0.1:9",
            ("".to_owned(), "s3cr3t-value".to_owned()),
            5,
        ),
        ("http://127.0.0.1:9", ("id".to_owned(), " ".to_owned()), 5),
        ("http://127.0.0.1:9", good.clone(), 0),
    ] {
        let err = MuxClient::new(&config(base, creds, timeout)).expect_err("invalid config");
        assert!(matches!(err, MuxError::Invalid { .. }), "{err:?}");
        assert!(!err.is_retryable());
        assert!(!err.to_string().contains("s3cr3t-value"), "{err}");
    }
    let mux = MuxClient::new(&config("http://127.0.0.1:9", good, 5)).unwrap();
    assert!(matches!(
        mux.get_asset("").await,
        Err(MuxError::Invalid { .. })
    ));
}

#[tokio::test]
async fn a_base_url_with_a_path_prefix_is_kept() {
    let sim = MuxSim::start().await;
    // A prefix the simulator does not serve: the 404 proves where the client went.
    let mux = MuxClient::new(&config(
        &format!("{}/proxy/", sim.base_url()),
        sim.credentials(),
        5,
    ))
    .unwrap();
    let _ = mux.list_assets(10, None).await;
    assert_eq!(sim.requests()[0].path, "/proxy/video/v1/assets");
}

// ---- the simulator itself ----

#[tokio::test]
async fn the_simulator_validates_create_bodies() {
    let sim = MuxSim::start().await;
    let (id, secret) = sim.credentials();
    let http = reqwest::Client::new();
    let url = format!("{}/video/v1/assets", sim.base_url());
    // The deprecated singular keys, a missing url, and a non-array policy list are all refused.
    for body in [
        json!({"input": "https://x.example/v.mp4", "playback_policy": "signed"}),
        json!({"inputs": [{}], "playback_policies": ["signed"]}),
        json!({"inputs": [{"url": "https://x.example/v.mp4"}], "playback_policies": "signed"}),
    ] {
        let resp = http
            .post(&url)
            .basic_auth(&id, Some(&secret))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400, "{body}");
        let reply: Value = resp.json().await.unwrap();
        assert_eq!(reply["error"]["type"], "invalid_parameters");
    }
    assert!(sim.assets().is_empty());
    assert_eq!(sim.create_requests().len(), 3);
}

#[tokio::test]
async fn the_control_api_scripts_and_reports() {
    let sim = MuxSim::start().await;
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{}/_sim/script", sim.base_url()))
        .json(&json!({
            "route": "create_asset", "status": 429,
            "headers": {"Retry-After": "3"}, "body": {"errors": ["Too many requests, retry later."]}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);

    let err = client(&sim)
        .create_asset(&request())
        .await
        .expect_err("429");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));

    let recorded: Value = http
        .get(format!("{}/_sim/requests", sim.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(recorded[0]["method"], "POST");
    assert_eq!(recorded[0]["authorized"], true);
    assert!(
        recorded[0].get("authorization").is_none(),
        "credentials stay out of the control API"
    );
}

#[tokio::test]
async fn wait_for_requests_wakes_on_arrival() {
    let sim = MuxSim::start().await;
    let mux = client(&sim);
    let waiter = {
        let sim = sim.clone();
        tokio::spawn(async move {
            sim.wait_for_requests("post", "/video/v1/assets", 2, Duration::from_secs(10))
                .await
        })
    };
    mux.create_asset(&request()).await.unwrap();
    mux.create_asset(&request()).await.unwrap();
    waiter.await.unwrap().expect("two creates arrived");

    let err = sim
        .wait_for_requests("DELETE", "/video/v1/assets", 1, Duration::from_millis(50))
        .await
        .expect_err("no delete was sent");
    assert!(err.to_string().contains("saw 0"), "{err}");
}

#[tokio::test]
async fn webhooks_are_signed_like_mux() {
    use axum::body::Bytes;
    use axum::http::HeaderMap;
    use hmac::{Hmac, Mac};
    use sha2::Sha256;
    use tokio::sync::mpsc;

    let sim = MuxSim::start().await;
    let created = client(&sim)
        .create_asset(&CreateAssetRequest {
            passthrough: Some("rndl:9:1".to_owned()),
            ..request()
        })
        .await
        .unwrap();
    sim.set_status(&created.id, "ready");

    let (tx, mut rx) = mpsc::unbounded_channel::<(HeaderMap, Bytes)>();
    let app = axum::Router::new().route(
        "/webhooks/mux",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((headers, body));
                ""
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhooks/mux", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let event = sim.webhook_event("video.asset.ready", &created.id);
    assert_eq!(event["type"], "video.asset.ready");
    assert_eq!(event["object"]["id"], created.id.as_str());
    assert_eq!(event["data"]["status"], "ready");
    assert_eq!(event["data"]["passthrough"], "rndl:9:1");
    assert_eq!(
        event["data"]["playback_ids"][0]["id"],
        created.playback_ids[0].as_str()
    );

    let resp = sim
        .send_webhook(&url, "whsec-test", &event, 1_700_000_000)
        .await
        .unwrap();
    assert!(resp.status().is_success());

    let (headers, body) = rx.recv().await.expect("the webhook arrived");
    let mut mac = Hmac::<Sha256>::new_from_slice(b"whsec-test").unwrap();
    mac.update(b"1700000000.");
    mac.update(&body);
    let expected = format!(
        "t=1700000000,v1={}",
        hex::encode(mac.finalize().into_bytes())
    );
    assert_eq!(headers["mux-signature"].to_str().unwrap(), expected);
    let sent: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(sent, event);
}
