//! [`MuxClient`]: one method per Mux call, one HTTP request per method call.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue};
use reqwest::{RequestBuilder, StatusCode};
use rindle_workflows::redact::redact_id;
use secrecy::ExposeSecret;
use serde_json::Value;
use url::Url;

use super::MuxConfig;
use super::error::{MuxError, Scrubber};
use super::types::{
    AssetPage, CreateAssetRequest, CreatedAsset, DeleteOutcome, MuxAsset, parse_asset,
    parse_created, parse_page, unwrap_data,
};

/// Largest response body read. Mux bodies are a few KiB; the cap stops a misbehaving proxy from
/// filling memory.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Connect timeout cap: a connection that takes longer than this is not going to answer in time.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Mux allows at most 100 assets per list page.
const MAX_PAGE_LIMIT: u32 = 100;

/// A Mux REST client. Cheap to clone (one `Arc`), so each activity can hold its own copy.
///
/// It never retries: not on errors, not on protocol NACKs (`reqwest::retry::never()`), not on
/// redirects. A create that is retried behind the activity's back could make a second asset, and
/// Temporal needs to see every failure to apply its retry policy and `Retry-After`.
#[derive(Clone)]
pub struct MuxClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base_url: Url,
    /// `Basic base64(id:secret)`, marked sensitive so that `Debug` of a request hides it.
    auth: HeaderValue,
    /// Kept to scrub it from any text Mux echoes back.
    token_secret: secrecy::SecretString,
}

impl fmt::Debug for MuxClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MuxClient")
            .field("base_url", &self.inner.base_url.as_str())
            .finish_non_exhaustive()
    }
}

/// Which call a response belongs to, for logs and decode errors.
#[derive(Clone, Copy)]
enum Op {
    Create,
    Get,
    Delete,
    List,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Create => "create_asset",
            Op::Get => "get_asset",
            Op::Delete => "delete_asset",
            Op::List => "list_assets",
        }
    }

    fn response(self) -> &'static str {
        match self {
            Op::Create => "create-asset response",
            Op::Get => "get-asset response",
            Op::Delete => "delete-asset response",
            Op::List => "list-assets response",
        }
    }
}

/// A response as read: status, headers and (capped) body.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl MuxClient {
    /// Builds the client from config: checks the base URL and token, and fixes the timeout and the
    /// no-retry, no-redirect policy once for every call.
    pub fn new(cfg: &MuxConfig) -> Result<Self, MuxError> {
        let invalid = |detail: String| MuxError::Invalid {
            what: "configuration",
            detail,
        };
        let mut base_url = cfg.base_url.clone();
        if !matches!(base_url.scheme(), "http" | "https") || base_url.cannot_be_a_base() {
            return Err(invalid(format!(
                "base_url must be an http(s) URL, got scheme `{}`",
                base_url.scheme()
            )));
        }
        base_url.set_query(None);
        base_url.set_fragment(None);
        if cfg.token_id.trim().is_empty() {
            return Err(invalid("token_id is empty".to_owned()));
        }
        let secret = cfg.token_secret.expose_secret();
        if secret.trim().is_empty() {
            return Err(invalid("token_secret is empty".to_owned()));
        }
        if cfg.request_timeout_s == 0 {
            return Err(invalid("request_timeout_s must be at least 1".to_owned()));
        }
        let credentials = STANDARD.encode(format!("{}:{secret}", cfg.token_id));
        let mut auth = HeaderValue::from_str(&format!("Basic {credentials}"))
            .map_err(|_| invalid("token does not fit in an HTTP header".to_owned()))?;
        auth.set_sensitive(true);

        let timeout = cfg.request_timeout();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(MAX_CONNECT_TIMEOUT))
            // Retries belong to Temporal; see the type's doc.
            .retry(reqwest::retry::never())
            // Mux does not redirect API calls; following one could replay a POST elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("rindle-ingest/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| invalid(format!("cannot build the HTTP client: {}", e.without_url())))?;

        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base_url,
                auth,
                token_secret: cfg.token_secret.clone(),
            }),
        })
    }

    /// Creates an asset from a signed source URL (`POST /video/v1/assets`), because that is how a
    /// variant gets into Mux. Returns the id and playback ids to persist at once.
    ///
    /// One request, never retried here: a timeout may still have created the asset, so the caller
    /// must look for it (by passthrough) before trying again.
    pub async fn create_asset(&self, req: &CreateAssetRequest) -> Result<CreatedAsset, MuxError> {
        let url = self.assets_url(None)?;
        let input_url = req.input_url.expose_secret();
        let input_query = input_url.split_once('?').map_or("", |(_, query)| query);
        let scrub = self.scrubber(&[input_url, input_query], None);
        let reply = self
            .execute(Op::Create, self.inner.http.post(url).json(&req.to_body()))
            .await?;
        if !reply.status.is_success() {
            return Err(MuxError::from_status(
                reply.status,
                &reply.headers,
                &reply.body,
                &scrub,
            ));
        }
        let body = decode_json(&reply.body, Op::Create)?;
        let created = parse_created(unwrap_data(&body, Op::Create.response())?)?;
        tracing::debug!(
            mux.asset_id = %redact_id(&created.id),
            mux.status = %created.status,
            playback_ids = created.playback_ids.len(),
            "mux asset created"
        );
        Ok(created)
    }

    /// Reads one asset (`GET /video/v1/assets/{id}`), for the polling backstop and for checks
    /// before a delete. A 404 is [`MuxError::NotFound`].
    pub async fn get_asset(&self, id: &str) -> Result<MuxAsset, MuxError> {
        let url = self.assets_url(Some(id))?;
        let scrub = self.scrubber(&[], Some(id));
        let reply = self.execute(Op::Get, self.inner.http.get(url)).await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Err(MuxError::NotFound);
        }
        if !reply.status.is_success() {
            return Err(MuxError::from_status(
                reply.status,
                &reply.headers,
                &reply.body,
                &scrub,
            ));
        }
        let body = decode_json(&reply.body, Op::Get)?;
        parse_asset(unwrap_data(&body, Op::Get.response())?, Op::Get.response())
    }

    /// Deletes an asset (`DELETE /video/v1/assets/{id}`), for superseded or abandoned assets.
    /// Idempotent: a 404 is [`DeleteOutcome::AlreadyGone`]. Mux is reported to refuse deleting a
    /// `preparing` asset with a 400, which comes back as [`MuxError::Rejected`].
    pub async fn delete_asset(&self, id: &str) -> Result<DeleteOutcome, MuxError> {
        let url = self.assets_url(Some(id))?;
        let scrub = self.scrubber(&[], Some(id));
        let reply = self
            .execute(Op::Delete, self.inner.http.delete(url))
            .await?;
        match reply.status {
            StatusCode::NOT_FOUND => Ok(DeleteOutcome::AlreadyGone),
            s if s.is_success() => Ok(DeleteOutcome::Deleted),
            s => Err(MuxError::from_status(
                s,
                &reply.headers,
                &reply.body,
                &scrub,
            )),
        }
    }

    /// Lists assets (`GET /video/v1/assets?limit&cursor`), for sweeps that adopt assets created
    /// just before a crash by their passthrough. `limit` is clamped to 1..=100 (Mux's maximum).
    pub async fn list_assets(
        &self,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<AssetPage, MuxError> {
        let mut url = self.assets_url(None)?;
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("limit", &limit.clamp(1, MAX_PAGE_LIMIT).to_string());
            if let Some(cursor) = cursor.filter(|c| !c.is_empty()) {
                query.append_pair("cursor", cursor);
            }
        }
        let scrub = self.scrubber(&[], None);
        let reply = self.execute(Op::List, self.inner.http.get(url)).await?;
        if !reply.status.is_success() {
            return Err(MuxError::from_status(
                reply.status,
                &reply.headers,
                &reply.body,
                &scrub,
            ));
        }
        parse_page(&decode_json(&reply.body, Op::List)?)
    }

    /// `{base}/video/v1/assets[/{id}]`, the id percent-encoded as one path segment so that it
    /// cannot reach another path.
    fn assets_url(&self, id: Option<&str>) -> Result<Url, MuxError> {
        if id.is_some_and(|id| id.trim().is_empty()) {
            return Err(MuxError::Invalid {
                what: "asset id",
                detail: "the asset id is empty".to_owned(),
            });
        }
        let mut url = self.inner.base_url.clone();
        {
            let mut segments = url.path_segments_mut().map_err(|()| MuxError::Invalid {
                what: "configuration",
                detail: "base_url cannot take a path".to_owned(),
            })?;
            segments.pop_if_empty().extend(["video", "v1", "assets"]);
            if let Some(id) = id {
                segments.push(id);
            }
        }
        Ok(url)
    }

    fn scrubber<'a>(&'a self, secrets: &[&'a str], asset_id: Option<&'a str>) -> Scrubber<'a> {
        let mut all = secrets.to_vec();
        all.push(self.inner.token_secret.expose_secret());
        Scrubber {
            secrets: all,
            asset_id,
        }
    }

    /// Sends one request and reads the reply. A transport failure, or a broken body on a 2xx, is
    /// [`MuxError::Transport`]; a broken body on an error status leaves the body empty, because the
    /// status alone classifies it.
    async fn execute(&self, op: Op, request: RequestBuilder) -> Result<Reply, MuxError> {
        let started = Instant::now();
        let response = request
            .header(AUTHORIZATION, self.inner.auth.clone())
            .header(ACCEPT, "application/json")
            .send()
            .await
            .map_err(MuxError::transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = match read_capped(response).await {
            Ok(body) => body,
            Err(e) if status.is_success() => return Err(MuxError::transport(e)),
            Err(_) => Vec::new(),
        };
        tracing::debug!(
            mux.op = op.name(),
            http.status = status.as_u16(),
            elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "mux response"
        );
        Ok(Reply {
            status,
            headers,
            body,
        })
    }
}

/// Reads the body, keeping at most [`MAX_BODY_BYTES`].
async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_BODY_BYTES.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_BODY_BYTES {
            break;
        }
    }
    Ok(body)
}

/// Parses a 2xx body as JSON; the error names the position only, never the content.
fn decode_json(body: &[u8], op: Op) -> Result<Value, MuxError> {
    serde_json::from_slice(body).map_err(|e| MuxError::Decode {
        what: op.response(),
        detail: if body.is_empty() {
            "the body is empty".to_owned()
        } else {
            format!(
                "the body is not JSON (line {}, column {})",
                e.line(),
                e.column()
            )
        },
    })
}
