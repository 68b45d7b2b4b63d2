//! The ingest lifecycle events `rindle.provider.ingest.{start,stop,exception}`, emitted from
//! workflow code exactly once per execution: never while the SDK replays history.
//!
//! Events are `tracing` events whose `target` is the reference event name; the worker's
//! telemetry layer counts them as metrics. `duration` is in milliseconds of workflow time.

use std::time::SystemTime;

use rindle_proto::IngestInput;
use temporalio_sdk::WorkflowContext;

use crate::redact::{redact_id, safe_reason};

/// `cancelled` or `error`, as the reference's `exception.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExceptionKind {
    /// The ingest was cancelled (stale source, errored/deleted row, operator).
    Cancelled,
    /// The ingest failed.
    Error,
}

/// Remembers what every event of one execution repeats.
pub struct IngestEvents {
    profile: String,
    variant_name: String,
    started: Option<SystemTime>,
}

impl IngestEvents {
    /// Emits `start` and returns the handle for `stop`/`exception`.
    pub fn start<W>(ctx: &WorkflowContext<W>, input: &IngestInput) -> Self {
        let events = Self {
            profile: input.profile.clone(),
            variant_name: input.variant_name.clone(),
            started: ctx.workflow_time(),
        };
        if !ctx.is_replaying() {
            tracing::info!(
                target: "rindle.provider.ingest.start",
                profile = %events.profile,
                provider = "mux",
                asset_id = tracing::field::Empty,
                variant_name = %events.variant_name,
                "rindle.provider.ingest.start"
            );
        }
        events
    }

    fn duration_ms<W>(&self, ctx: &WorkflowContext<W>) -> u64 {
        match (self.started, ctx.workflow_time()) {
            (Some(a), Some(b)) => b
                .duration_since(a)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            _ => 0,
        }
    }

    /// Emits `stop`; `provider_asset_id` is redacted (`None` on AlreadyInProgress).
    pub fn stop<W>(&self, ctx: &WorkflowContext<W>, provider_asset_id: Option<&str>) {
        if ctx.is_replaying() {
            return;
        }
        let asset_id = provider_asset_id.map(redact_id);
        tracing::info!(
            target: "rindle.provider.ingest.stop",
            profile = %self.profile,
            provider = "mux",
            asset_id = asset_id.as_deref(),
            variant_name = %self.variant_name,
            duration = self.duration_ms(ctx),
            "rindle.provider.ingest.stop"
        );
    }

    /// Emits `exception`; `reason` (errors only) passes [`safe_reason`].
    pub fn exception<W>(
        &self,
        ctx: &WorkflowContext<W>,
        kind: ExceptionKind,
        reason: Option<&str>,
    ) {
        if ctx.is_replaying() {
            return;
        }
        let duration = self.duration_ms(ctx);
        match kind {
            ExceptionKind::Cancelled => tracing::warn!(
                target: "rindle.provider.ingest.exception",
                profile = %self.profile,
                provider = "mux",
                asset_id = tracing::field::Empty,
                variant_name = %self.variant_name,
                duration,
                kind = "cancelled",
                "rindle.provider.ingest.exception"
            ),
            ExceptionKind::Error => tracing::warn!(
                target: "rindle.provider.ingest.exception",
                profile = %self.profile,
                provider = "mux",
                asset_id = tracing::field::Empty,
                variant_name = %self.variant_name,
                duration,
                kind = "error",
                reason = %safe_reason(reason.unwrap_or("unknown")),
                "rindle.provider.ingest.exception"
            ),
        }
    }
}
