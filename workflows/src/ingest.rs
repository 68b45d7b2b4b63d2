//! `IngestWorkflow`: push one Rindle variant to Mux and record the result in the
//! provider row, `pending → uploading → processing`.
//!
//! Read top to bottom: validate → `prepare` → (clean up a dead claimant's orphan) →
//! `sign_url` → claim → `create_mux_asset` → promote. Each compensation sits beside the
//! step it undoes: a created Mux asset is deleted when it cannot be promoted, and a claim is
//! released (with `last_sync_error`) on any definitive failure, so no row is left blocking a
//! later ingest and no Mux asset we created is left behind.

use std::time::Duration;

use temporalio_common::{RetryPolicy, error::IncomingError};
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{
    ActivityExecutionError, ActivityOptions, ApplicationFailure, WorkflowCancellationToken,
    WorkflowContext, WorkflowResult, WorkflowTermination,
};

use rindle_proto::{CancelReason, IngestInput, IngestOutcome, OutcomeKind, ProviderAssetState};

use crate::activities::{
    CreateMuxAssetInput, CreatedMuxAsset, DeleteMuxAssetInput, IngestActivityDefinitions as Acts,
    PersistRowInput, PersistRowOutput, PrepareOutput, Proceed, SignUrlInput, failure_types,
};
use crate::redact::redact_id;
use crate::telemetry::{ExceptionKind, IngestEvents};
use crate::validate::validate;

/// Task queue every rindle-ingest worker polls.
pub const TASK_QUEUE: &str = "rindle_provider";

/// One ingest of one variant into Mux. Workflow id `{asset_id}:{profile}:{variant_name}`.
#[workflow]
#[derive(Default)]
pub struct IngestWorkflow;

/// How an ingest ended, before it is mapped onto Temporal's Completed/Canceled/Failed.
enum Ended {
    Ingested(CreatedMuxAsset),
    AlreadyInProgress { state: String },
    Cancelled { code: String, detail: String, state: ProviderAssetState },
}

/// A definitive failure: what to report and how the workflow closes.
struct Failure {
    reason: String,
    termination: WorkflowTermination,
}

impl From<ActivityExecutionError> for Failure {
    fn from(e: ActivityExecutionError) -> Self {
        Failure { reason: failure_reason(&e), termination: e.into() }
    }
}

#[workflow_methods]
impl IngestWorkflow {
    /// Runs the ingest.
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>, input: IngestInput) -> WorkflowResult<IngestOutcome> {
        let events = IngestEvents::start(ctx, &input);
        match Self::ingest(ctx, &input).await {
            Ok(Ended::Ingested(asset)) => {
                events.stop(ctx, Some(&asset.provider_asset_id));
                Ok(IngestOutcome {
                    kind: OutcomeKind::Ingested as i32,
                    provider_asset_id_redacted: redact_id(&asset.provider_asset_id),
                    playback_ids: asset.playback_ids,
                    state: ProviderAssetState::Processing as i32,
                    cancel_reason: None,
                })
            }
            Ok(Ended::AlreadyInProgress { state }) => {
                events.stop(ctx, None);
                Ok(IngestOutcome {
                    kind: OutcomeKind::AlreadyInProgress as i32,
                    state: state_enum(&state) as i32,
                    ..Default::default()
                })
            }
            Ok(Ended::Cancelled { code, detail, state }) => {
                events.exception(ctx, ExceptionKind::Cancelled, None);
                Err(WorkflowTermination::cancelled_with_details(IngestOutcome {
                    kind: OutcomeKind::Cancelled as i32,
                    state: state as i32,
                    cancel_reason: Some(CancelReason { code, detail }),
                    ..Default::default()
                }))
            }
            Err(failure) => {
                events.exception(ctx, ExceptionKind::Error, Some(&failure.reason));
                Err(failure.termination)
            }
        }
    }
}

impl IngestWorkflow {
    async fn ingest(ctx: &WorkflowContext<Self>, input: &IngestInput) -> Result<Ended, Failure> {
        if let Err(invalid) = validate(input, ctx.workflow_id()) {
            return Err(Failure {
                reason: "invalid_input".to_owned(),
                termination: ApplicationFailure::builder(invalid.to_string())
                    .type_name(failure_types::INVALID_INPUT.to_owned())
                    .non_retryable(true)
                    .build()
                    .into(),
            });
        }

        let proceed = match ctx
            .execute_activity(Acts::prepare, input.clone(), short_opts("prepare"))
            .await
        {
            Ok(PrepareOutput::Proceed(p)) => p,
            Ok(PrepareOutput::AlreadyInProgress { state }) => return Ok(Ended::AlreadyInProgress { state }),
            Ok(PrepareOutput::Cancelled { code, detail }) => {
                let state = match code.as_str() {
                    "provider_asset_errored" => ProviderAssetState::Errored,
                    "provider_asset_deleted" => ProviderAssetState::Deleted,
                    _ => ProviderAssetState::Unspecified,
                };
                return Ok(Ended::Cancelled { code, detail, state });
            }
            Err(e) => return Err(Self::cancelled_or(ctx, e)),
        };

        // A dead claimant may have created a Mux asset it never promoted: never leave it billed.
        if let Some(orphan) = proceed.takeover.as_ref().and_then(|t| t.orphan_provider_asset_id.clone()) {
            Self::delete_mux_asset(ctx, &proceed, orphan, "delete_orphan_mux_asset").await;
        }

        if let Err(e) = ctx
            .execute_activity(
                Acts::sign_url,
                SignUrlInput { profile: input.profile.clone(), storage_key: proceed.variant_storage_key.clone() },
                short_opts("sign_url"),
            )
            .await
        {
            return Err(Self::cancelled_or(ctx, e));
        }

        let claim = PersistRowInput::Claim { row_id: proceed.row_id, takeover: proceed.takeover.clone() };
        match ctx.execute_activity(Acts::persist_row, claim, short_opts("persist_row.claim")).await {
            Ok(PersistRowOutput::Claimed) => {}
            Ok(PersistRowOutput::ClaimLost { state }) | Ok(PersistRowOutput::LostClaim { state }) => {
                return Ok(Ended::AlreadyInProgress { state });
            }
            Ok(other) => return Err(unexpected("persist_row.claim", &other)),
            Err(e) => return Err(Self::cancelled_or(ctx, e)),
        }

        // From here on the row is ours: every exit either promotes it or releases it.
        let create = CreateMuxAssetInput {
            row_id: proceed.row_id,
            profile: input.profile.clone(),
            storage_key: proceed.variant_storage_key.clone(),
            playback_policy: proceed.playback_policy.clone(),
            passthrough: format!("rndl:{}", proceed.row_id),
        };
        let asset = match ctx.execute_activity(Acts::create_mux_asset, create, create_opts()).await {
            Ok(asset) => asset,
            Err(e) => return Self::release_and_end(ctx, &proceed, None, e).await,
        };

        let promote = PersistRowInput::Promote { row_id: proceed.row_id, input: input.clone(), asset: asset.clone() };
        match ctx.execute_activity(Acts::persist_row, promote, short_opts("persist_row.promote")).await {
            Ok(PersistRowOutput::Promoted { playback_ids }) => {
                Ok(Ended::Ingested(CreatedMuxAsset { playback_ids, ..asset }))
            }
            Ok(PersistRowOutput::Stale { reason }) => {
                // The source changed while Mux was called: the asset shows stale media.
                Self::delete_mux_asset(ctx, &proceed, asset.provider_asset_id, "delete_mux_asset").await;
                Self::release(ctx, &proceed, format!("stale_source: {reason}")).await?;
                Ok(Ended::Cancelled {
                    code: "stale_source".to_owned(),
                    detail: reason,
                    state: ProviderAssetState::Uploading,
                })
            }
            Ok(PersistRowOutput::LostClaim { state }) => {
                // Another ingest took the row over: its asset wins, ours must go.
                Self::delete_mux_asset(ctx, &proceed, asset.provider_asset_id, "delete_mux_asset").await;
                Ok(Ended::AlreadyInProgress { state })
            }
            Ok(other) => {
                Self::delete_mux_asset(ctx, &proceed, asset.provider_asset_id.clone(), "delete_mux_asset").await;
                Self::release(ctx, &proceed, format!("unexpected persist_row result: {other:?}")).await?;
                Err(unexpected("persist_row.promote", &other))
            }
            Err(e) => Self::release_and_end(ctx, &proceed, Some(asset.provider_asset_id), e).await,
        }
    }

    /// A definitive failure (or an operator cancel) after the claim: delete what we created,
    /// record why on the row and release the claim, then end accordingly.
    async fn release_and_end(
        ctx: &WorkflowContext<Self>,
        proceed: &Proceed,
        created: Option<String>,
        e: ActivityExecutionError,
    ) -> Result<Ended, Failure> {
        if let Some(id) = created {
            Self::delete_mux_asset(ctx, proceed, id, "delete_mux_asset").await;
        }
        if ctx.cancellation_token().is_cancelled() {
            let why = "operator_cancelled: the ingest was cancelled before the asset was recorded".to_owned();
            Self::release(ctx, proceed, why).await?;
            return Ok(operator_cancelled(ctx));
        }
        let failure = Failure::from(e);
        Self::release(ctx, proceed, failure.reason.clone()).await?;
        Err(failure)
    }

    /// Releases our claim with `last_sync_error`. Runs even after a cancel request.
    async fn release(ctx: &WorkflowContext<Self>, proceed: &Proceed, last_sync_error: String) -> Result<(), Failure> {
        let release = PersistRowInput::Release { row_id: proceed.row_id, last_sync_error };
        ctx.execute_activity(Acts::persist_row, release, detached(short_opts("persist_row.release")))
            .await
            .map(|_| ())
            .map_err(Failure::from)
    }

    /// Deletes a Mux asset we created; Mux refuses while it is `preparing`, so this retries
    /// with backoff. Its failure is logged and never changes the ingest's outcome.
    async fn delete_mux_asset(ctx: &WorkflowContext<Self>, proceed: &Proceed, provider_asset_id: String, id: &str) {
        let redacted = redact_id(&provider_asset_id);
        let result = ctx
            .execute_activity(
                Acts::delete_mux_asset,
                DeleteMuxAssetInput { provider_asset_id },
                detached(delete_opts(id, proceed.lifecycle.delete_retry_interval_s)),
            )
            .await;
        if ctx.is_replaying() {
            return;
        }
        match result {
            Ok(_) => tracing::info!(target: "rindle.workflows.ingest", asset_id = %redacted, "compensating_delete"),
            Err(e) => tracing::warn!(
                target: "rindle.workflows.ingest",
                asset_id = %redacted,
                error = %failure_reason(&e),
                "compensating_delete_failed"
            ),
        }
    }

    /// Before the claim there is nothing to undo: a cancel request ends as Canceled,
    /// anything else fails the workflow.
    fn cancelled_or(ctx: &WorkflowContext<Self>, e: ActivityExecutionError) -> Failure {
        if ctx.cancellation_token().is_cancelled() {
            return Failure {
                reason: "operator_cancelled".to_owned(),
                termination: WorkflowTermination::cancelled_with_details(IngestOutcome {
                    kind: OutcomeKind::Cancelled as i32,
                    cancel_reason: Some(CancelReason { code: "operator_cancelled".into(), detail: String::new() }),
                    ..Default::default()
                }),
            };
        }
        Failure::from(e)
    }
}

fn operator_cancelled<W>(ctx: &WorkflowContext<W>) -> Ended {
    Ended::Cancelled {
        code: "operator_cancelled".to_owned(),
        detail: ctx.cancellation_token().reason().unwrap_or_default(),
        state: ProviderAssetState::Uploading,
    }
}

fn unexpected(step: &str, output: &PersistRowOutput) -> Failure {
    Failure {
        reason: "unexpected_result".to_owned(),
        termination: ApplicationFailure::builder(format!("{step} answered {output:?}"))
            .type_name("UnexpectedResult".to_owned())
            .non_retryable(true)
            .build()
            .into(),
    }
}

fn state_enum(state: &str) -> ProviderAssetState {
    ProviderAssetState::from_db_str(state).unwrap_or(ProviderAssetState::Unspecified)
}

/// The failure's type name and message, e.g. `ProviderRejected: Mux answered 400 …`.
/// Activity errors never carry secrets (they are built that way in `rindle-activities`).
fn failure_reason(e: &ActivityExecutionError) -> String {
    match e.cause() {
        Some(cause) => {
            let message = &cause.failure().message;
            let type_name = match cause {
                IncomingError::Application(app) => app.type_name().unwrap_or("ApplicationError"),
                IncomingError::Timeout(_) => "Timeout",
                IncomingError::Cancelled(_) => "Cancelled",
                _ => "ActivityFailure",
            };
            format!("{type_name}: {message}")
        }
        None => e.to_string(),
    }
}

/// Options of the short database/storage activities: 5 attempts like the reference job.
fn short_opts(activity_id: &str) -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(30))
        .activity_id(activity_id.to_owned())
        .retry_policy(
            RetryPolicy::builder()
                .initial_interval(Duration::from_secs(1))
                .backoff_coefficient(2.0)
                .maximum_interval(Duration::from_secs(30))
                .maximum_attempts(5)
                .non_retryable_error_types([
                    failure_types::INVALID_INPUT,
                    failure_types::INVALID_TRANSITION,
                    failure_types::STORAGE_CONFIG,
                ])
                .build(),
        )
        .build()
}

/// The Mux create: 5 attempts, 5 min each (the reference job's budget). A 429 sets the next
/// attempt's delay from Retry-After (`next_retry_delay`), which overrides these intervals.
fn create_opts() -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(300))
        .activity_id("create_mux_asset".to_owned())
        .retry_policy(
            RetryPolicy::builder()
                .initial_interval(Duration::from_secs(2))
                .backoff_coefficient(2.0)
                .maximum_interval(Duration::from_secs(60))
                .maximum_attempts(5)
                .non_retryable_error_types([failure_types::PROVIDER_REJECTED, failure_types::STORAGE_CONFIG])
                .build(),
        )
        .build()
}

/// The compensating delete: Mux refuses to delete a `preparing` asset, so retry for a while.
fn delete_opts(activity_id: &str, retry_interval_s: u64) -> ActivityOptions {
    let interval = Duration::from_secs(retry_interval_s.max(1));
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(60))
        .activity_id(activity_id.to_owned())
        .retry_policy(
            RetryPolicy::builder()
                .initial_interval(interval)
                .backoff_coefficient(2.0)
                .maximum_interval(interval * 16)
                .maximum_attempts(12)
                .build(),
        )
        .build()
}

/// Compensations must run even when the workflow is being cancelled.
fn detached(mut opts: ActivityOptions) -> ActivityOptions {
    opts.cancellation_token = Some(WorkflowCancellationToken::new());
    opts
}
