//! `POST /webhooks/mux`: verified, deduplicated Mux events, routed to the ingest that owns
//! the row (as the `provider_event` signal) or, when that ingest no longer runs, applied to
//! the row directly with the same FSM rules.
//!
//! Answers: 405 not POST; 400 no secrets / bad signature / no event id; 200 verified but
//! nothing to do (a type we do not act on, or a duplicate); 202 accepted; 503 when the event
//! cannot be recorded or delivered now (Mux retries for 24 h). Always within 5 s.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
};
use secrecy::SecretString;
use serde::Deserialize;
use temporalio_client::{Client, UntypedSignal, WorkflowExecutionInfo, WorkflowSignalOptions};
use temporalio_common::data_converters::{PayloadConverter, RawValue};
use uuid::Uuid;

use rindle_activities::{
    store::{ProviderRow, RowUpdate, Store, TransitionOutcome},
    webhook::{self, MuxEvent},
};
use rindle_proto::ProviderAssetState;
use rindle_workflows::{
    ingest::PROVIDER_EVENT_SIGNAL,
    lifecycle::{self, Decision, ProviderReport},
};

/// Webhook settings (`[webhooks]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Signing secrets of the Mux webhook endpoints, newest first (rotation: keep the old one
    /// until Mux stops using it). Empty: every delivery is answered 400.
    #[serde(default)]
    pub secrets: Vec<SecretString>,
    /// Accepted age of the signature timestamp, in the past and in the future.
    #[serde(default = "default_tolerance_s")]
    pub tolerance_s: u64,
}

fn default_tolerance_s() -> u64 {
    300
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            secrets: Vec::new(),
            tolerance_s: default_tolerance_s(),
        }
    }
}

/// What the webhook handler needs.
#[derive(Clone)]
pub struct WebhookState {
    /// Store of record (dedup, routing, direct apply).
    pub store: Store,
    /// Temporal client (signals).
    pub client: Client,
    /// Secrets and tolerance.
    pub settings: Arc<WebhookSettings>,
}

/// Mux must get an answer within 5 s; leave margin.
const DEADLINE: Duration = Duration::from_millis(4500);

/// The `/webhooks/mux` route (other methods get 405 from the method router).
pub fn router(state: WebhookState) -> axum::Router {
    axum::Router::new()
        .route("/webhooks/mux", post(receive))
        .with_state(state)
}

async fn receive(
    State(state): State<WebhookState>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let signature = headers.get("mux-signature").and_then(|v| v.to_str().ok());
    let tolerance = Duration::from_secs(state.settings.tolerance_s);
    let secret_index = match webhook::verify(
        signature,
        &body,
        &state.settings.secrets,
        tolerance,
        SystemTime::now(),
    ) {
        Ok(i) => i,
        Err(e) => {
            event("rindle.provider.webhook.rejected", None, e.as_str());
            return (StatusCode::BAD_REQUEST, "invalid signature");
        }
    };
    let parsed = match webhook::parse_event(&body) {
        Ok(e) => e,
        Err(e) => {
            let reason = match e {
                webhook::EnvelopeError::MissingEventId => "missing_event_id",
                webhook::EnvelopeError::Invalid(_) => "invalid_body",
            };
            event(
                "rindle.provider.webhook.rejected",
                Some(secret_index),
                reason,
            );
            return (StatusCode::BAD_REQUEST, "invalid event");
        }
    };
    match tokio::time::timeout(DEADLINE, handle(&state, parsed)).await {
        Ok(Ok(Handled::Accepted)) => {
            event(
                "rindle.provider.webhook.processed",
                Some(secret_index),
                "accepted",
            );
            (StatusCode::ACCEPTED, "accepted")
        }
        Ok(Ok(Handled::Ignored(why))) => {
            event("rindle.provider.webhook.ignored", Some(secret_index), why);
            (StatusCode::OK, "ignored")
        }
        Ok(Err(why)) => {
            tracing::warn!(target: "rindle.webhooks", reason = %why, "webhook not delivered, Mux will retry");
            (StatusCode::SERVICE_UNAVAILABLE, "retry later")
        }
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "retry later"),
    }
}

enum Handled {
    Accepted,
    Ignored(&'static str),
}

async fn handle(state: &WebhookState, parsed: MuxEvent) -> Result<Handled, String> {
    let report = ProviderReport::from_event_type(&parsed.event.r#type);
    if report == ProviderReport::Other {
        return Ok(Handled::Ignored("unhandled_type"));
    }
    let event_id = parsed.event.event_id.clone();
    if state
        .store
        .is_webhook_event_recorded(&event_id)
        .await
        .map_err(|e| e.to_string())?
    {
        return Ok(Handled::Ignored("duplicate"));
    }
    let Some(row) = find_row(&state.store, &parsed).await? else {
        // The row is not visible yet (our promote has not committed): Mux will resend.
        return Err("no provider row for the asset yet".to_owned());
    };
    if !signal_owner(state, &row, &parsed).await? {
        apply_directly(&state.store, row, &parsed).await?;
    }
    state
        .store
        .record_webhook_event(&event_id)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Handled::Accepted)
}

/// The row by provider asset id, or by the `rndl:{row_id}` passthrough we stamp on creates.
async fn find_row(store: &Store, parsed: &MuxEvent) -> Result<Option<ProviderRow>, String> {
    let id = &parsed.event.provider_asset_id;
    if !id.is_empty()
        && let Some(row) = store
            .find_row_by_provider_asset_id(id)
            .await
            .map_err(|e| e.to_string())?
    {
        return Ok(Some(row));
    }
    let Some(row_id) = parsed
        .passthrough
        .as_deref()
        .and_then(|p| p.strip_prefix("rndl:"))
        .and_then(|r| Uuid::try_parse(r).ok())
    else {
        return Ok(None);
    };
    store.get_row(row_id).await.map_err(|e| e.to_string())
}

/// Signals the ingest run that claimed the row; false when that run no longer runs.
async fn signal_owner(
    state: &WebhookState,
    row: &ProviderRow,
    parsed: &MuxEvent,
) -> Result<bool, String> {
    let Some(claim) = state
        .store
        .get_claim(row.id)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(false);
    };
    let handle = WorkflowExecutionInfo::builder()
        .namespace(state.client.options().namespace.clone())
        .workflow_id(claim.workflow_id.clone())
        .run_id(claim.run_id.clone())
        .build()
        .bind_untyped(state.client.clone());
    let payload = RawValue::from_value(&parsed.event, &PayloadConverter::default());
    match handle
        .signal(
            UntypedSignal::new(PROVIDER_EVENT_SIGNAL),
            payload,
            WorkflowSignalOptions::default(),
        )
        .await
    {
        Ok(()) => Ok(true),
        Err(e) => {
            let text = e.to_string().to_ascii_lowercase();
            if text.contains("not found") || text.contains("completed") || text.contains("already")
            {
                Ok(false)
            } else {
                Err(format!("signal: {e}"))
            }
        }
    }
}

/// Applies the event to the row with the workflow's own rules (its ingest no longer runs).
async fn apply_directly(
    store: &Store,
    mut row: ProviderRow,
    parsed: &MuxEvent,
) -> Result<(), String> {
    let report = ProviderReport::from_event_type(&parsed.event.r#type);
    let occurred = lifecycle::occurred_at(&parsed.event);
    // One retry on a concurrent change: re-decide against the fresh row.
    for _ in 0..2 {
        let last = row.last_event_at.map(|t| t.and_utc());
        let Decision::Apply { from, to } = lifecycle::decide(row.state, report, last, occurred)
        else {
            return Ok(());
        };
        let update = RowUpdate {
            playback_ids: (!parsed.event.playback_ids.is_empty())
                .then(|| parsed.event.playback_ids.clone()),
            last_sync_error: (to == ProviderAssetState::Errored)
                .then(|| Some(lifecycle::errored_message(&parsed.event.error_messages))),
            last_event_at: occurred.map(|t| t.naive_utc()),
            provider_asset_id: None,
        };
        match store
            .transition(row.id, from, to, update)
            .await
            .map_err(|e| e.to_string())?
        {
            TransitionOutcome::Applied(_) => return Ok(()),
            TransitionOutcome::Conflict { .. } => {
                row = store
                    .get_row(row.id)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or("row vanished")?;
            }
        }
    }
    Err("row kept changing".to_owned())
}

/// `rindle.provider.webhook.{processed,ignored,rejected}`: the secret index, never the
/// secret or the body.
fn event(name: &'static str, secret_index: Option<usize>, reason: &'static str) {
    match name {
        "rindle.provider.webhook.processed" => {
            tracing::info!(target: "rindle.provider.webhook.processed", provider = "mux", secret_index, reason, "rindle.provider.webhook.processed")
        }
        "rindle.provider.webhook.ignored" => {
            tracing::info!(target: "rindle.provider.webhook.ignored", provider = "mux", secret_index, reason, "rindle.provider.webhook.ignored")
        }
        _ => {
            tracing::warn!(target: "rindle.provider.webhook.rejected", provider = "mux", secret_index, reason, "rindle.provider.webhook.rejected")
        }
    }
}
