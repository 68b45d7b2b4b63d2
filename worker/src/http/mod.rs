//! The worker's HTTP server: `/healthz`, `/metrics` (Prometheus), `/media` (signed local
//! files for Mux to fetch) and `/webhooks/mux`.

pub mod media;
pub mod webhooks;

use std::{collections::HashMap, sync::Arc};

use axum::{Router, extract::State, http::StatusCode, routing::get};

use rindle_activities::{storage::StorageBackend, store::Store};

/// What the handlers share.
#[derive(Clone)]
pub struct HttpState {
    /// The store of record (health checks).
    pub store: Store,
    /// Storage backends (local media).
    pub backends: Arc<HashMap<String, StorageBackend>>,
    /// Mux webhooks.
    pub webhooks: webhooks::WebhookState,
}

/// All routes of the worker's HTTP server.
pub fn router(state: HttpState) -> Router {
    let metrics = crate::telemetry::metrics_handle();
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(move || async move { metrics.render() }))
        .with_state(state.clone())
        .merge(media::router(state.backends.clone()))
        .merge(webhooks::router(state.webhooks.clone()))
}

async fn healthz(State(state): State<HttpState>) -> (StatusCode, &'static str) {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ok"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database unavailable"),
    }
}
