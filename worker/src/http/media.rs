//! `GET|HEAD /media/{backend}/{*key}?expires=…&sig=…`: local variant files, served to Mux.
//!
//! A local storage backend hands Mux a URL on this route (see
//! [`rindle_activities::storage::local`]). A request is served only when its signature is
//! genuine for that backend and key and has not expired; otherwise the answer is a bare
//! `403 forbidden`, whatever the reason (tampered, other key, missing parameter, expired,
//! path escaping the root), so a caller learns nothing. The signature is checked before the
//! file system is touched, so unsigned requests cannot even probe which files exist. A
//! genuine URL for a missing file is `404 not found`.
//!
//! Files are served by tower-http's `ServeFile`, so `Range` requests (Mux fetches with
//! ranges) get `206 Partial Content`, and `HEAD` works. Requests are logged without their
//! query string: the signature is a bearer credential.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rindle_activities::storage::{LocalStorage, LocalUrlError, StorageBackend, StorageError};
use tower_http::services::ServeFile;

/// The route the media URLs of every local backend point at.
pub const MEDIA_ROUTE: &str = "/media/{backend}/{*key}";

/// The local backends the route serves, by their own name (the `{backend}` URL segment).
type LocalBackends = Arc<HashMap<String, LocalStorage>>;

/// The media router for the worker's HTTP server: serves the local backends among
/// `backends` (S3 backends are ignored: Mux fetches those from S3 directly).
///
/// Backends are indexed by their own name, the one given to `StorageBackend::from_config`
/// and written into their URLs, so the map's keys do not matter. Mount it with
/// `Router::merge`; it carries its own state (`Router<()>`).
pub fn router(backends: Arc<HashMap<String, StorageBackend>>) -> Router {
    let locals: HashMap<String, LocalStorage> = backends
        .values()
        .filter_map(|backend| match backend {
            StorageBackend::Local(local) => Some((local.name().to_owned(), local.clone())),
            StorageBackend::S3(_) => None,
        })
        .collect();
    Router::new()
        .route(MEDIA_ROUTE, get(serve_media))
        .with_state(Arc::new(locals))
}

/// Why a request was refused; logged, never sent.
#[derive(Debug, Clone, Copy)]
enum Denied {
    UnparsablePath,
    UnknownBackend,
    Signature(LocalUrlError),
    BadKey,
    OutsideRoot,
}

impl Denied {
    fn reason(self) -> &'static str {
        match self {
            Self::UnparsablePath => "unparsable_path",
            Self::UnknownBackend => "unknown_backend",
            Self::Signature(LocalUrlError::Malformed) => "malformed_signature",
            Self::Signature(LocalUrlError::BadSignature) => "bad_signature",
            Self::Signature(LocalUrlError::Expired) => "expired",
            Self::BadKey => "invalid_key",
            Self::OutsideRoot => "outside_root",
        }
    }
}

async fn serve_media(
    State(backends): State<LocalBackends>,
    path: Result<Path<(String, String)>, PathRejection>,
    RawQuery(query): RawQuery,
    req: Request,
) -> Response {
    let method = req.method().clone();
    // The path only: the query string holds the signature.
    let logged_path = req.uri().path().to_owned();
    let response = match authorize(&backends, path, query.as_deref()) {
        Err(denied) => deny(denied),
        Ok((storage, key)) => serve(storage, key, req).await,
    };
    tracing::info!(
        target: "rindle_ingest::http::media",
        method = %method,
        path = %logged_path,
        status = response.status().as_u16(),
        "media request"
    );
    response
}

/// Checks the URL: known local backend, well-formed parameters, genuine unexpired signature.
fn authorize(
    backends: &LocalBackends,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Option<&str>,
) -> Result<(LocalStorage, String), Denied> {
    let Path((backend, key)) = path.map_err(|_| Denied::UnparsablePath)?;
    let storage = backends.get(&backend).ok_or(Denied::UnknownBackend)?;
    let (expires, sig) = signature_params(query.unwrap_or_default())
        .ok_or(Denied::Signature(LocalUrlError::Malformed))?;
    storage
        .verify(&key, &expires, &sig, SystemTime::now())
        .map_err(Denied::Signature)?;
    Ok((storage.clone(), key))
}

/// `expires` and `sig`, each present exactly once.
fn signature_params(query: &str) -> Option<(String, String)> {
    let (mut expires, mut sig) = (None, None);
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let slot = match &*name {
            "expires" => &mut expires,
            "sig" => &mut sig,
            _ => continue,
        };
        if slot.replace(value.into_owned()).is_some() {
            return None;
        }
    }
    Some((expires?, sig?))
}

/// Resolves the (already authorized) key under the backend's root and serves the file.
async fn serve(storage: LocalStorage, key: String, req: Request) -> Response {
    let resolved = tokio::task::spawn_blocking(move || storage.resolve(&key)).await;
    let file = match resolved {
        Ok(Ok(file)) => file,
        Ok(Err(StorageError::NotFound { .. })) => return not_found(),
        Ok(Err(StorageError::InvalidKey { .. })) => return deny(Denied::BadKey),
        Ok(Err(StorageError::OutsideRoot { .. })) => return deny(Denied::OutsideRoot),
        Ok(Err(other)) => return internal_error(&other),
        Err(join) => return internal_error(&join),
    };
    match ServeFile::new(file).try_call(req).await {
        Ok(response) => response.map(Body::new),
        Err(io) => internal_error(&io),
    }
}

fn deny(denied: Denied) -> Response {
    tracing::warn!(target: "rindle_ingest::http::media", reason = denied.reason(), "media request refused");
    (StatusCode::FORBIDDEN, "forbidden").into_response()
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found").into_response()
}

fn internal_error(error: &dyn std::error::Error) -> Response {
    tracing::error!(target: "rindle_ingest::http::media", error = %error, "media request failed");
    (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_params_must_each_appear_exactly_once() {
        assert_eq!(
            signature_params("expires=1&sig=ab&x=y"),
            Some(("1".to_owned(), "ab".to_owned()))
        );
        assert_eq!(signature_params("sig=ab"), None);
        assert_eq!(signature_params("expires=1"), None);
        assert_eq!(signature_params(""), None);
        assert_eq!(signature_params("expires=1&sig=ab&sig=cd"), None);
    }
}
