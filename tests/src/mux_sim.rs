//! A Mux simulator: an HTTP server we own that answers like Mux's asset API, records every
//! request, and can be scripted to fail.
//!
//! Tests use it in-process ([`MuxSim::start`]); the `mux-sim` binary serves the same thing for
//! manual runs, with a small JSON control API under `/_sim/` instead of the Rust methods.
//!
//! What it does by default:
//! - `POST /video/v1/assets` validates the body (`inputs[0].url`, `playback_policies`) and answers
//!   201 `{"data": asset}` with status `preparing` and one playback id per policy; 400
//!   `invalid_parameters` otherwise.
//! - `GET /video/v1/assets/{id}` → 200 `{"data": asset}` or 404 `not_found`.
//! - `DELETE /video/v1/assets/{id}` → 204, or 404 when unknown or already deleted, or 400 for a
//!   `preparing` asset when [`MuxSim::set_refuse_preparing_delete`] is on.
//! - `GET /video/v1/assets?limit&cursor` → `{"data": [newest first], "next_cursor"}`.
//! - Wrong or missing Basic auth → 401 `unauthorized`.
//!
//! Tests change that per request with [`MuxSim::script`] (one-shot replies, FIFO per route) and
//! [`MuxSim::set_delay`], move assets along with [`MuxSim::set_status`], and deliver signed
//! webhooks with [`MuxSim::send_webhook`]. Waiting for traffic uses a `Notify`, never a sleep loop.
//!
//! Benchmarks switch on the "send webhooks" mode with [`MuxSim::set_auto_webhooks`]: after each
//! successful create (its reply already on its way) the simulator marks the asset `ready` and
//! POSTs a signed `video.asset.ready` event to a configured URL, retrying a 503 or an unreachable
//! receiver a few times as Mux does. [`MuxSim::webhook_stats`] counts what happened.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Largest request body accepted; Mux requests are tiny.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Mux's default page size for list.
const DEFAULT_PAGE_LIMIT: usize = 25;

/// Mux's maximum page size for list.
const MAX_PAGE_LIMIT: usize = 100;

/// Mux limits `passthrough` to 255 characters.
const MAX_PASSTHROUGH_CHARS: usize = 255;

/// Length of a simulated asset id. Real ids are longer, but the shape ([A-Za-z0-9]) is the same.
const ASSET_ID_LEN: usize = 36;

/// Mux's real 429 body (muxinc/mux-elixir#42), whose shape differs from every other error.
pub const RATE_LIMITED_BODY: &str = "Too many requests, retry later.";

/// The API routes that can be scripted or delayed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    /// `POST /video/v1/assets`
    CreateAsset,
    /// `GET /video/v1/assets/{id}`
    GetAsset,
    /// `DELETE /video/v1/assets/{id}`
    DeleteAsset,
    /// `GET /video/v1/assets`
    ListAssets,
}

impl Route {
    /// The route of a request and its asset id, if it is one of the simulated API routes.
    fn of(method: &Method, path: &str) -> Option<(Route, Option<String>)> {
        let rest = path.strip_prefix("/video/v1/assets")?;
        let rest = rest.trim_end_matches('/');
        match (method, rest) {
            (&Method::POST, "") => Some((Route::CreateAsset, None)),
            (&Method::GET, "") => Some((Route::ListAssets, None)),
            (m, id) => {
                let id = id.strip_prefix('/')?;
                if id.is_empty() || id.contains('/') {
                    return None;
                }
                match *m {
                    Method::GET => Some((Route::GetAsset, Some(id.to_owned()))),
                    Method::DELETE => Some((Route::DeleteAsset, Some(id.to_owned()))),
                    _ => None,
                }
            }
        }
    }
}

/// A one-shot reply queued with [`MuxSim::script`], returned instead of the default behaviour.
#[derive(Clone, Debug)]
pub struct Scripted {
    /// HTTP status.
    pub status: u16,
    /// Extra response headers, such as `Retry-After`.
    pub headers: Vec<(String, String)>,
    /// JSON body; `Null` sends an empty body.
    pub body: Value,
    /// A non-JSON body (an HTML error page, garbage) sent as-is instead of `body`.
    pub raw_body: Option<String>,
    /// Wait this long before replying (after any route delay), for timeout tests.
    pub delay: Option<Duration>,
}

impl Scripted {
    /// A reply with this status and an empty body.
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Value::Null,
            raw_body: None,
            delay: None,
        }
    }

    /// Adds a response header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets a JSON body.
    pub fn json(mut self, body: Value) -> Self {
        self.body = body;
        self.raw_body = None;
        self
    }

    /// Sets a raw (non-JSON) body, sent as `text/plain` unless a content-type header is given.
    pub fn text(mut self, body: &str) -> Self {
        self.raw_body = Some(body.to_owned());
        self
    }

    /// Waits before replying.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Mux's 429: body `{"errors":["Too many requests, retry later."]}`, with `Retry-After` only
    /// when given (Mux has not been seen sending one).
    pub fn rate_limited(retry_after: Option<&str>) -> Self {
        let reply = Self::status(429).json(json!({ "errors": [RATE_LIMITED_BODY] }));
        match retry_after {
            Some(value) => reply.header("Retry-After", value),
            None => reply,
        }
    }

    /// A Mux-shaped error: `{"error":{"type": error_type, "messages": messages}}`.
    pub fn error(status: u16, error_type: &str, messages: &[&str]) -> Self {
        Self::status(status).json(mux_error_body(error_type, messages))
    }

    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut headers = HeaderMap::new();
        let body = if let Some(raw) = self.raw_body {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            Body::from(raw)
        } else if self.body.is_null() {
            Body::empty()
        } else {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            Body::from(self.body.to_string())
        };
        for (name, value) in &self.headers {
            match (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                (Ok(name), Ok(value)) => {
                    headers.insert(name, value);
                }
                _ => tracing::warn!(header = %name, "mux-sim: skipping an invalid scripted header"),
            }
        }
        (status, headers, body).into_response()
    }
}

/// One request the simulator received, as recorded on arrival (before delays and auth).
#[derive(Clone, Serialize)]
pub struct RecordedRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The raw query string, if any.
    pub query: Option<String>,
    /// The body parsed as JSON, or `Null` when empty or not JSON.
    pub body: Value,
    /// The body as received (lossy UTF-8).
    #[serde(skip)]
    pub raw_body: String,
    /// The `Authorization` header as sent (kept out of the control API's JSON).
    #[serde(skip)]
    pub authorization: Option<String>,
    /// Whether an `Authorization` header was present.
    pub has_authorization: bool,
    /// Whether it matched the simulator's credentials.
    pub authorized: bool,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
    /// When the request arrived.
    #[serde(skip)]
    pub received_at: std::time::SystemTime,
}

impl fmt::Debug for RecordedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordedRequest")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("query", &self.query)
            .field("body", &self.body)
            .field("has_authorization", &self.has_authorization)
            .field("authorized", &self.authorized)
            .field("content_type", &self.content_type)
            .finish_non_exhaustive()
    }
}

/// An asset as the simulator holds it.
#[derive(Clone, Debug, Serialize)]
pub struct SimAsset {
    /// The Mux asset id.
    pub id: String,
    /// `preparing`, `ready`, `errored`, or whatever a test set.
    pub status: String,
    /// Playback ids, one per entry of `playback_policies` (same order).
    pub playback_ids: Vec<String>,
    /// The policies sent at create.
    pub playback_policies: Vec<String>,
    /// The passthrough sent at create.
    pub passthrough: Option<String>,
    /// Whether a DELETE removed it (it then answers 404 and leaves the list).
    pub deleted: bool,
    /// `inputs[0].url` as sent (the signed URL).
    pub input_url: String,
    /// `mp4_support` as sent.
    pub mp4_support: Option<String>,
    /// `max_resolution_tier` as sent.
    pub max_resolution_tier: Option<String>,
    /// Unix seconds at creation.
    pub created_at: i64,
    /// `errors.messages` reported once errored.
    pub errors: Vec<String>,
}

impl SimAsset {
    /// The asset as Mux's API shows it (the object inside `data`).
    pub fn to_mux_json(&self) -> Value {
        let playback_ids: Vec<Value> = self
            .playback_ids
            .iter()
            .zip(&self.playback_policies)
            .map(|(id, policy)| json!({ "id": id, "policy": policy }))
            .collect();
        let mut asset = json!({
            "id": self.id,
            "status": self.status,
            "playback_ids": playback_ids,
            "playback_policies": self.playback_policies,
            "created_at": self.created_at.to_string(),
            "master_access": "none",
        });
        let obj = asset.as_object_mut().expect("a json! object literal");
        if let Some(v) = &self.mp4_support {
            obj.insert("mp4_support".to_owned(), json!(v));
        }
        if let Some(v) = &self.max_resolution_tier {
            obj.insert("max_resolution_tier".to_owned(), json!(v));
        }
        if let Some(v) = &self.passthrough {
            obj.insert("passthrough".to_owned(), json!(v));
        }
        if self.status == "errored" {
            obj.insert(
                "errors".to_owned(),
                json!({ "type": "invalid_input", "messages": self.errors }),
            );
        }
        asset
    }
}

/// How to start a simulator.
#[derive(Clone)]
pub struct SimOptions {
    /// The Basic-auth user the simulator accepts.
    pub token_id: String,
    /// The Basic-auth password the simulator accepts.
    pub token_secret: String,
    /// Start with [`MuxSim::set_refuse_preparing_delete`] on.
    pub refuse_preparing_delete: bool,
}

impl Default for SimOptions {
    /// A fixed token id and a random secret, so a test that leaks the secret can find it.
    fn default() -> Self {
        Self {
            token_id: "mux-sim-token-id".to_owned(),
            token_secret: format!("mux-sim-secret-{}", uuid::Uuid::new_v4().simple()),
            refuse_preparing_delete: false,
        }
    }
}

impl fmt::Debug for SimOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimOptions")
            .field("token_id", &self.token_id)
            .field("token_secret", &"[REDACTED]")
            .field("refuse_preparing_delete", &self.refuse_preparing_delete)
            .finish()
    }
}

#[derive(Default)]
struct SimState {
    requests: Vec<RecordedRequest>,
    scripts: HashMap<Route, VecDeque<Scripted>>,
    delays: HashMap<Route, Duration>,
    /// Oldest first.
    assets: Vec<SimAsset>,
    refuse_preparing_delete: bool,
    /// A `preparing` asset turns `ready` when it is fetched (as if Mux finished meanwhile).
    auto_ready: bool,
    /// The "send webhooks" mode: where a `video.asset.ready` goes after each create.
    auto_webhooks: Option<AutoWebhooks>,
}

/// The "send webhooks" mode of [`MuxSim::set_auto_webhooks`]: after every successful create the
/// simulator marks the asset `ready` and delivers a signed `video.asset.ready` event here.
#[derive(Clone)]
pub struct AutoWebhooks {
    /// The receiver, such as `http://127.0.0.1:8088/webhooks/mux`.
    pub url: String,
    /// The signing secret of the webhook endpoint.
    pub secret: String,
    /// Wait this long after the create before the asset turns ready (zero: at once, after the
    /// create reply has been handed to the server).
    pub delay: Duration,
    /// Deliveries tried per event when the receiver answers 503 or cannot be reached.
    pub max_attempts: u32,
    /// Wait before the second attempt; doubled before each later one.
    pub retry_interval: Duration,
}

impl AutoWebhooks {
    /// At once, five attempts 200 ms apart and doubling (Mux retries for a day; a few here).
    pub fn new(url: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            secret: secret.into(),
            delay: Duration::ZERO,
            max_attempts: 5,
            retry_interval: Duration::from_millis(200),
        }
    }
}

impl fmt::Debug for AutoWebhooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AutoWebhooks")
            .field("url", &self.url)
            .field("secret", &"[REDACTED]")
            .field("delay", &self.delay)
            .field("max_attempts", &self.max_attempts)
            .field("retry_interval", &self.retry_interval)
            .finish()
    }
}

/// What the "send webhooks" mode did so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WebhookStats {
    /// Events scheduled (one per successful create while the mode was on).
    pub scheduled: usize,
    /// Events the receiver acknowledged with a 2xx.
    pub delivered: usize,
    /// Attempts answered 503 or not answered (each was retried or given up).
    pub retried: usize,
    /// Events answered with another status (not retried, as Mux treats 4xx).
    pub rejected: usize,
    /// Events given up after every attempt failed.
    pub failed: usize,
}

#[derive(Default)]
struct WebhookCounters {
    scheduled: AtomicUsize,
    delivered: AtomicUsize,
    retried: AtomicUsize,
    rejected: AtomicUsize,
    failed: AtomicUsize,
}

struct Shared {
    addr: SocketAddr,
    token_id: String,
    token_secret: String,
    expected_auth: String,
    state: Mutex<SimState>,
    /// Woken on every recorded request, for [`MuxSim::wait_for_requests`].
    arrivals: Notify,
    /// For webhooks; never retries (reqwest only retries protocol NACKs by default, and we say never).
    http: reqwest::Client,
    /// Counters of the "send webhooks" mode.
    webhooks: WebhookCounters,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, SimState> {
        // A panicking test thread must not take the simulator down with it for other assertions.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Stops the server when the last handle goes away.
struct ServerTask(JoinHandle<()>);

impl Drop for ServerTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A running simulator. Cheap to clone; the server stops when the last clone is dropped (or with
/// its tokio runtime).
#[derive(Clone)]
pub struct MuxSim {
    shared: Arc<Shared>,
    _server: Arc<ServerTask>,
}

impl fmt::Debug for MuxSim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MuxSim")
            .field("addr", &self.shared.addr)
            .finish_non_exhaustive()
    }
}

impl MuxSim {
    /// Starts a simulator on `127.0.0.1:0` with [`SimOptions::default`], on the current tokio
    /// runtime. Panics if the loopback port cannot be bound, because no test can run then.
    pub async fn start() -> MuxSim {
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        Self::start_on(addr, SimOptions::default())
            .await
            .expect("mux-sim: cannot bind 127.0.0.1:0")
    }

    /// Starts a simulator on `addr` (port 0 picks a free one), on the current tokio runtime.
    pub async fn start_on(addr: SocketAddr, opts: SimOptions) -> anyhow::Result<MuxSim> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("mux-sim: cannot bind {addr}"))?;
        let addr = listener.local_addr().context("mux-sim: no local address")?;
        let expected_auth = format!(
            "Basic {}",
            STANDARD.encode(format!("{}:{}", opts.token_id, opts.token_secret))
        );
        let http = reqwest::Client::builder()
            .retry(reqwest::retry::never())
            .build()
            .context("mux-sim: cannot build the webhook HTTP client")?;
        let shared = Arc::new(Shared {
            addr,
            token_id: opts.token_id,
            token_secret: opts.token_secret,
            expected_auth,
            state: Mutex::new(SimState {
                refuse_preparing_delete: opts.refuse_preparing_delete,
                ..SimState::default()
            }),
            arrivals: Notify::new(),
            http,
            webhooks: WebhookCounters::default(),
        });
        let app = router(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "mux-sim: server stopped");
            }
        });
        Ok(MuxSim {
            shared,
            _server: Arc::new(ServerTask(task)),
        })
    }

    /// The base URL to give the Mux client, such as `http://127.0.0.1:40123`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// The address the simulator listens on.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// The `(token_id, token_secret)` the simulator accepts as Basic auth.
    pub fn credentials(&self) -> (String, String) {
        (
            self.shared.token_id.clone(),
            self.shared.token_secret.clone(),
        )
    }

    /// Every API request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// The `POST /video/v1/assets` requests only.
    pub fn create_requests(&self) -> Vec<RecordedRequest> {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|r| r.method == "POST" && r.path == "/video/v1/assets")
            .cloned()
            .collect()
    }

    /// How many requests had this method (case-insensitive) and a path starting with `path_prefix`.
    pub fn count(&self, method: &str, path_prefix: &str) -> usize {
        count_matching(&self.shared.lock().requests, method, path_prefix)
    }

    /// Queues a one-shot reply for the next request on `route` (FIFO per route). It replaces the
    /// default behaviour for that one request, after the auth check.
    pub fn script(&self, route: Route, reply: Scripted) {
        self.shared
            .lock()
            .scripts
            .entry(route)
            .or_default()
            .push_back(reply);
    }

    /// Makes every reply on `route` wait `delay` first (zero removes the delay), for timeouts.
    pub fn set_delay(&self, route: Route, delay: Duration) {
        let mut state = self.shared.lock();
        if delay.is_zero() {
            state.delays.remove(&route);
        } else {
            state.delays.insert(route, delay);
        }
    }

    /// All assets ever created (deleted ones included, flagged), oldest first.
    pub fn assets(&self) -> Vec<SimAsset> {
        self.shared.lock().assets.clone()
    }

    /// One asset by id, if the simulator ever created it.
    pub fn asset(&self, id: &str) -> Option<SimAsset> {
        self.shared
            .lock()
            .assets
            .iter()
            .find(|a| a.id == id)
            .cloned()
    }

    /// Moves an asset to `status` (`ready`, `errored`, …), as Mux would after transcoding.
    /// Panics on an unknown id, because that is a bug in the test.
    pub fn set_status(&self, id: &str, status: &str) {
        assert!(
            set_asset_status(&mut self.shared.lock(), id, status),
            "mux-sim: set_status on unknown asset {id}"
        );
    }

    /// When on, a `preparing` asset turns `ready` the first time it is fetched (polled), so an
    /// ingest ends without webhooks.
    pub fn set_auto_ready(&self, on: bool) {
        self.shared.lock().auto_ready = on;
    }

    /// When on, DELETE of a `preparing` asset answers 400 "Can't delete a preparing asset", as
    /// Mux is reported to do.
    pub fn set_refuse_preparing_delete(&self, on: bool) {
        self.shared.lock().refuse_preparing_delete = on;
    }

    /// Switches the "send webhooks" mode on (`Some`) or off (`None`): after every successful
    /// create, the asset turns `ready` and a signed `video.asset.ready` event is POSTed to the
    /// target, asynchronously, retrying 503s and connection errors. Off by default.
    pub fn set_auto_webhooks(&self, target: Option<AutoWebhooks>) {
        self.shared.lock().auto_webhooks = target;
    }

    /// What the "send webhooks" mode did so far.
    pub fn webhook_stats(&self) -> WebhookStats {
        let c = &self.shared.webhooks;
        WebhookStats {
            scheduled: c.scheduled.load(Ordering::Relaxed),
            delivered: c.delivered.load(Ordering::Relaxed),
            retried: c.retried.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
        }
    }

    /// Adds an asset directly (no request recorded), for list and adoption tests. Returns its id.
    pub fn seed_asset(&self, status: &str, passthrough: Option<&str>) -> String {
        let asset = new_asset(
            "https://seed.invalid/video.mp4".to_owned(),
            vec!["signed".to_owned()],
            passthrough.map(str::to_owned),
            Some("standard".to_owned()),
            Some("1080p".to_owned()),
        );
        let id = asset.id.clone();
        let mut state = self.shared.lock();
        state.assets.push(asset);
        set_asset_status(&mut state, &id, status);
        id
    }

    /// Waits until at least `n` requests matching [`MuxSim::count`]'s rule have arrived, woken by
    /// each arrival; fails after `timeout`.
    pub async fn wait_for_requests(
        &self,
        method: &str,
        path_prefix: &str,
        n: usize,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.shared.arrivals.notified();
            tokio::pin!(arrived);
            // Register before counting, so an arrival between the count and the wait is not lost.
            arrived.as_mut().enable();
            let seen = self.count(method, path_prefix);
            if seen >= n {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                let seen = self.count(method, path_prefix);
                anyhow::ensure!(
                    seen >= n,
                    "mux-sim: waited {timeout:?} for {n} {method} {path_prefix} request(s), saw {seen}"
                );
                return Ok(());
            }
        }
    }

    /// Signs `event` like Mux (`mux-signature: t={ts},v1={hex hmac}`) and POSTs those exact bytes
    /// to `url`.
    pub async fn send_webhook(
        &self,
        url: &str,
        secret: &str,
        event: &Value,
        timestamp: i64,
    ) -> anyhow::Result<reqwest::Response> {
        post_webhook(&self.shared, url, secret, event, timestamp).await
    }

    /// A Mux-shaped webhook envelope for `kind` (such as `video.asset.ready`) about `asset_id`,
    /// with `data` built from the simulator's state of that asset (or a bare one if unknown).
    pub fn webhook_event(&self, kind: &str, asset_id: &str) -> Value {
        webhook_event(&self.shared, kind, asset_id)
    }
}

/// Signs `event` like Mux and POSTs those exact bytes to `url`.
async fn post_webhook(
    shared: &Shared,
    url: &str,
    secret: &str,
    event: &Value,
    timestamp: i64,
) -> anyhow::Result<reqwest::Response> {
    let body = serde_json::to_vec(event).context("mux-sim: webhook event to JSON")?;
    let signature = mux_signature(secret, timestamp, &body);
    shared
        .http
        .post(url)
        .header("content-type", "application/json")
        .header("mux-signature", signature)
        .body(body)
        .send()
        .await
        .with_context(|| format!("mux-sim: POST webhook to {url}"))
}

/// The envelope of [`MuxSim::webhook_event`].
fn webhook_event(shared: &Shared, kind: &str, asset_id: &str) -> Value {
    let asset = shared
        .lock()
        .assets
        .iter()
        .find(|a| a.id == asset_id)
        .cloned();
    let created_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let (object_type, object_id, data) = if kind == "video.upload.asset_created" {
        let upload_id = format!("upload{}", random_id(ASSET_ID_LEN - 6));
        let data = json!({
            "id": upload_id,
            "asset_id": asset_id,
            "status": "asset_created",
            "passthrough": asset.as_ref().and_then(|a| a.passthrough.clone()),
        });
        ("upload", upload_id, data)
    } else {
        let mut data = match &asset {
            Some(asset) => asset.to_mux_json(),
            None => json!({ "id": asset_id, "status": status_for_kind(kind) }),
        };
        if asset.as_ref().is_some_and(|a| a.deleted) || kind == "video.asset.deleted" {
            data["status"] = json!("deleted");
        }
        if kind == "video.asset.created" && data.get("playback_ids").is_none() {
            // Mux sends `null` here before ids exist.
            data["playback_ids"] = Value::Null;
        }
        ("asset", asset_id.to_owned(), data)
    };
    json!({
        "type": kind,
        "id": uuid::Uuid::new_v4().to_string(),
        "created_at": created_at,
        "object": { "type": object_type, "id": object_id },
        "environment": { "name": "Simulator", "id": "mux-sim" },
        "data": data,
        "attempts": [],
    })
}

/// The "send webhooks" mode: after a create, turn the asset ready and deliver the event.
fn schedule_ready_webhook(shared: &Arc<Shared>, asset_id: String) {
    let Some(target) = shared.lock().auto_webhooks.clone() else {
        return;
    };
    shared.webhooks.scheduled.fetch_add(1, Ordering::Relaxed);
    let shared = shared.clone();
    tokio::spawn(async move {
        // Let the create reply go out first (or wait as configured).
        if target.delay.is_zero() {
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(target.delay).await;
        }
        set_asset_status(&mut shared.lock(), &asset_id, "ready");
        // One event, resent as is (same id) on each attempt, re-signed with a fresh timestamp.
        let event = webhook_event(&shared, "video.asset.ready", &asset_id);
        let counters = &shared.webhooks;
        let mut wait = target.retry_interval;
        for attempt in 1..=target.max_attempts.max(1) {
            let now = chrono::Utc::now().timestamp();
            match post_webhook(&shared, &target.url, &target.secret, &event, now).await {
                Ok(reply) if reply.status().is_success() => {
                    counters.delivered.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Ok(reply) if reply.status() != StatusCode::SERVICE_UNAVAILABLE => {
                    tracing::warn!(status = %reply.status(), "mux-sim: webhook rejected");
                    counters.rejected.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Ok(_) | Err(_) => {
                    counters.retried.fetch_add(1, Ordering::Relaxed);
                }
            }
            if attempt < target.max_attempts {
                tokio::time::sleep(wait).await;
                wait = wait.saturating_mul(2);
            }
        }
        tracing::warn!(asset_id = %asset_id, "mux-sim: webhook given up");
        counters.failed.fetch_add(1, Ordering::Relaxed);
    });
}

/// The `mux-signature` header value for `body` signed with `secret` at `timestamp`, exactly as Mux
/// computes it: `t={ts},v1={lowercase hex HMAC-SHA256(secret, "{ts}.{body}")}`.
pub fn mux_signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any size");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// A Mux error body: `{"error":{"type":…,"messages":[…]}}`.
pub fn mux_error_body(error_type: &str, messages: &[&str]) -> Value {
    json!({ "error": { "type": error_type, "messages": messages } })
}

fn status_for_kind(kind: &str) -> &'static str {
    match kind {
        "video.asset.ready" => "ready",
        "video.asset.errored" => "errored",
        "video.asset.deleted" => "deleted",
        _ => "preparing",
    }
}

fn count_matching(requests: &[RecordedRequest], method: &str, path_prefix: &str) -> usize {
    requests
        .iter()
        .filter(|r| r.method.eq_ignore_ascii_case(method) && r.path.starts_with(path_prefix))
        .count()
}

fn set_asset_status(state: &mut SimState, id: &str, status: &str) -> bool {
    let Some(asset) = state.assets.iter_mut().find(|a| a.id == id) else {
        return false;
    };
    asset.status = status.to_owned();
    if status == "errored" && asset.errors.is_empty() {
        asset
            .errors
            .push("The input file could not be fetched (simulated)".to_owned());
    }
    true
}

/// `len` random characters from `[A-Za-z0-9]`, like Mux ids.
fn random_id(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for byte in uuid::Uuid::new_v4().into_bytes() {
            // 248 is the largest multiple of 62 below 256: rejecting above it keeps the draw uniform.
            if byte < 248 && out.len() < len {
                out.push(char::from(ALPHABET[usize::from(byte) % ALPHABET.len()]));
            }
        }
    }
    out
}

fn new_asset(
    input_url: String,
    playback_policies: Vec<String>,
    passthrough: Option<String>,
    mp4_support: Option<String>,
    max_resolution_tier: Option<String>,
) -> SimAsset {
    SimAsset {
        id: random_id(ASSET_ID_LEN),
        status: "preparing".to_owned(),
        playback_ids: playback_policies
            .iter()
            .map(|_| random_id(ASSET_ID_LEN))
            .collect(),
        playback_policies,
        passthrough,
        deleted: false,
        input_url,
        mp4_support,
        max_resolution_tier,
        created_at: chrono::Utc::now().timestamp(),
        errors: Vec::new(),
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/_sim/requests", get(control_requests))
        .route("/_sim/assets", get(control_assets))
        .route("/_sim/assets/{id}/status", post(control_set_status))
        .route("/_sim/script", post(control_script))
        .route("/_sim/delay", post(control_delay))
        .route(
            "/_sim/refuse_preparing_delete",
            post(control_refuse_preparing_delete),
        )
        .route("/_sim/reset", post(control_reset))
        .fallback(api)
        .with_state(shared)
}

fn mux_error(status: StatusCode, error_type: &str, message: &str) -> Response {
    (status, Json(mux_error_body(error_type, &[message]))).into_response()
}

/// Every Mux API request: record, delay, authenticate, then a scripted or the default reply.
async fn api(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return mux_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_parameters",
            "Request body too large",
        );
    };
    let header = |name: HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let authorization = header(AUTHORIZATION);
    let authorized = authorization.as_deref() == Some(shared.expected_auth.as_str());
    let recorded = RecordedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        raw_body: String::from_utf8_lossy(&bytes).into_owned(),
        has_authorization: authorization.is_some(),
        authorization,
        authorized,
        content_type: header(CONTENT_TYPE),
        user_agent: header(USER_AGENT),
        received_at: std::time::SystemTime::now(),
    };
    tracing::debug!(method = %recorded.method, path = %recorded.path, "mux-sim: request");
    let route = Route::of(&parts.method, parts.uri.path());
    let delay = {
        let mut state = shared.lock();
        state.requests.push(recorded);
        route
            .as_ref()
            .and_then(|(r, _)| state.delays.get(r).copied())
    };
    shared.arrivals.notify_waiters();

    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    if !authorized {
        return mux_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized request",
        );
    }
    let Some((route, id)) = route else {
        return mux_error(StatusCode::NOT_FOUND, "not_found", "Not found");
    };
    let scripted = shared
        .lock()
        .scripts
        .get_mut(&route)
        .and_then(VecDeque::pop_front);
    if let Some(reply) = scripted {
        if let Some(delay) = reply.delay {
            tokio::time::sleep(delay).await;
        }
        return reply.into_response();
    }
    let id = id.unwrap_or_default();
    match route {
        Route::CreateAsset => {
            let (reply, created) = create_asset(&shared, &bytes);
            if let Some(id) = created {
                schedule_ready_webhook(&shared, id);
            }
            reply
        }
        Route::GetAsset => get_asset(&shared, &id),
        Route::DeleteAsset => delete_asset(&shared, &id),
        Route::ListAssets => list_assets(&shared, parts.uri.query().unwrap_or("")),
    }
}

fn invalid(message: &str) -> Response {
    mux_error(StatusCode::BAD_REQUEST, "invalid_parameters", message)
}

/// The default create; also returns the new asset's id.
fn create_asset(shared: &Shared, bytes: &Bytes) -> (Response, Option<String>) {
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(bytes) else {
        return (invalid("The request body must be a JSON object"), None);
    };
    let Some(input_url) = body
        .get("inputs")
        .and_then(Value::as_array)
        .and_then(|inputs| inputs.first())
        .and_then(|input| input.get("url"))
        .and_then(Value::as_str)
        .filter(|url| !url.is_empty())
    else {
        return (invalid("inputs[0].url is required"), None);
    };
    let Some(policies) = body.get("playback_policies").and_then(Value::as_array) else {
        return (invalid("playback_policies must be an array"), None);
    };
    let mut playback_policies = Vec::new();
    for policy in policies {
        match policy.as_str() {
            Some(p @ ("public" | "signed" | "drm")) => playback_policies.push(p.to_owned()),
            _ => {
                return (
                    invalid("playback_policies may only contain public, signed or drm"),
                    None,
                );
            }
        }
    }
    let passthrough = match body.get("passthrough") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) if p.chars().count() <= MAX_PASSTHROUGH_CHARS => Some(p.clone()),
        Some(_) => {
            return (
                invalid("passthrough must be a string of at most 255 characters"),
                None,
            );
        }
    };
    let string_field = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_owned);
    let asset = new_asset(
        input_url.to_owned(),
        playback_policies,
        passthrough,
        string_field("mp4_support"),
        string_field("max_resolution_tier"),
    );
    let data = asset.to_mux_json();
    let id = asset.id.clone();
    shared.lock().assets.push(asset);
    (
        (StatusCode::CREATED, Json(json!({ "data": data }))).into_response(),
        Some(id),
    )
}

fn asset_not_found() -> Response {
    mux_error(StatusCode::NOT_FOUND, "not_found", "Asset not found")
}

fn get_asset(shared: &Shared, id: &str) -> Response {
    let mut state = shared.lock();
    let auto_ready = state.auto_ready;
    match state.assets.iter_mut().find(|a| a.id == id && !a.deleted) {
        Some(asset) => {
            if auto_ready && asset.status == "preparing" {
                asset.status = "ready".to_owned();
            }
            Json(json!({ "data": asset.to_mux_json() })).into_response()
        }
        None => asset_not_found(),
    }
}

fn delete_asset(shared: &Shared, id: &str) -> Response {
    let mut state = shared.lock();
    let refuse = state.refuse_preparing_delete;
    let Some(asset) = state.assets.iter_mut().find(|a| a.id == id && !a.deleted) else {
        return asset_not_found();
    };
    if refuse && asset.status == "preparing" {
        return invalid("Can't delete a preparing asset");
    }
    asset.deleted = true;
    StatusCode::NO_CONTENT.into_response()
}

/// Newest first; the cursor is the (encoded) id of the last asset of the previous page, so pages
/// stay stable when assets are added meanwhile.
fn list_assets(shared: &Shared, query: &str) -> Response {
    let mut limit = DEFAULT_PAGE_LIMIT;
    let mut after: Option<String> = None;
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "limit" => match value.parse::<usize>() {
                Ok(n) if n >= 1 => limit = n.min(MAX_PAGE_LIMIT),
                _ => return invalid("limit must be a positive integer"),
            },
            "cursor" => {
                let decoded = URL_SAFE_NO_PAD
                    .decode(value.as_bytes())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok());
                match decoded {
                    Some(id) => after = Some(id),
                    None => return invalid("Invalid cursor"),
                }
            }
            _ => {}
        }
    }
    let state = shared.lock();
    let newest_first: Vec<&SimAsset> = state.assets.iter().rev().collect();
    let start = match &after {
        None => 0,
        Some(id) => match newest_first.iter().position(|a| &a.id == id) {
            Some(i) => i + 1,
            None => return invalid("Invalid cursor"),
        },
    };
    let remaining: Vec<&SimAsset> = newest_first[start..]
        .iter()
        .copied()
        .filter(|a| !a.deleted)
        .collect();
    let page: Vec<&SimAsset> = remaining.iter().copied().take(limit).collect();
    let next_cursor = if remaining.len() > page.len() {
        page.last().map(|a| URL_SAFE_NO_PAD.encode(a.id.as_bytes()))
    } else {
        None
    };
    let data: Vec<Value> = page.iter().map(|a| a.to_mux_json()).collect();
    Json(json!({ "data": data, "next_cursor": next_cursor })).into_response()
}

async fn control_requests(State(shared): State<Arc<Shared>>) -> Json<Vec<RecordedRequest>> {
    Json(shared.lock().requests.clone())
}

async fn control_assets(State(shared): State<Arc<Shared>>) -> Json<Vec<SimAsset>> {
    Json(shared.lock().assets.clone())
}

#[derive(Deserialize)]
struct StatusBody {
    status: String,
}

async fn control_set_status(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Json(body): Json<StatusBody>,
) -> StatusCode {
    if set_asset_status(&mut shared.lock(), &id, &body.status) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
}

#[derive(Deserialize)]
struct ScriptBody {
    route: Route,
    status: u16,
    #[serde(default)]
    headers: HashMap<String, String>,
    #[serde(default)]
    body: Value,
    #[serde(default)]
    raw_body: Option<String>,
    #[serde(default)]
    delay_ms: u64,
}

async fn control_script(
    State(shared): State<Arc<Shared>>,
    Json(script): Json<ScriptBody>,
) -> StatusCode {
    let reply = Scripted {
        status: script.status,
        headers: script.headers.into_iter().collect(),
        body: script.body,
        raw_body: script.raw_body,
        delay: (script.delay_ms > 0).then(|| Duration::from_millis(script.delay_ms)),
    };
    shared
        .lock()
        .scripts
        .entry(script.route)
        .or_default()
        .push_back(reply);
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct DelayBody {
    route: Route,
    delay_ms: u64,
}

async fn control_delay(
    State(shared): State<Arc<Shared>>,
    Json(body): Json<DelayBody>,
) -> StatusCode {
    let mut state = shared.lock();
    if body.delay_ms == 0 {
        state.delays.remove(&body.route);
    } else {
        state
            .delays
            .insert(body.route, Duration::from_millis(body.delay_ms));
    }
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct ToggleBody {
    on: bool,
}

async fn control_refuse_preparing_delete(
    State(shared): State<Arc<Shared>>,
    Json(body): Json<ToggleBody>,
) -> StatusCode {
    shared.lock().refuse_preparing_delete = body.on;
    StatusCode::NO_CONTENT
}

async fn control_reset(State(shared): State<Arc<Shared>>) -> StatusCode {
    *shared.lock() = SimState::default();
    StatusCode::NO_CONTENT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_recognised() {
        assert_eq!(
            Route::of(&Method::POST, "/video/v1/assets"),
            Some((Route::CreateAsset, None))
        );
        assert_eq!(
            Route::of(&Method::GET, "/video/v1/assets/"),
            Some((Route::ListAssets, None))
        );
        assert_eq!(
            Route::of(&Method::GET, "/video/v1/assets/abc"),
            Some((Route::GetAsset, Some("abc".to_owned())))
        );
        assert_eq!(
            Route::of(&Method::DELETE, "/video/v1/assets/abc"),
            Some((Route::DeleteAsset, Some("abc".to_owned())))
        );
        assert_eq!(Route::of(&Method::PUT, "/video/v1/assets/abc"), None);
        assert_eq!(Route::of(&Method::GET, "/video/v1/assetsx"), None);
        assert_eq!(Route::of(&Method::GET, "/video/v1/assets/a/b"), None);
    }

    #[test]
    fn ids_look_like_mux_ids() {
        let id = random_id(ASSET_ID_LEN);
        assert_eq!(id.len(), ASSET_ID_LEN);
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(id, random_id(ASSET_ID_LEN));
    }

    #[test]
    fn signatures_match_muxs_recipe() {
        // HMAC-SHA256("secret", "1700000000.{}"), computed independently.
        let header = mux_signature("secret", 1_700_000_000, b"{}");
        let mut mac = Hmac::<Sha256>::new_from_slice(b"secret").unwrap();
        mac.update(b"1700000000.{}");
        let expected = hex::encode(mac.finalize().into_bytes());
        assert_eq!(header, format!("t=1700000000,v1={expected}"));
    }
}
