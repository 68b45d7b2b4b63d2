//! `IngestWorkflow`: push one Rindle variant to Mux and record the result in the
//! provider row, `pending → uploading → processing`.
//!
//! Read top to bottom: validate → `prepare` → (clean up a dead claimant's orphan) →
//! `sign_url` → claim → `create_mux_asset` → promote → follow the Mux asset (provider-event
//! signals, a polling backstop, stuck detection) until `ready`, `errored` or `deleted`.
//! Each compensation sits beside the
//! step it undoes: a created Mux asset is deleted when it cannot be promoted, and a claim is
//! released (with `last_sync_error`) on any definitive failure, so no row is left blocking a
//! later ingest and no Mux asset we created is left behind.

use std::{
    collections::{HashSet, VecDeque},
    time::{Duration, SystemTime},
};

use temporalio_common::data_converters::RawValue;
use temporalio_common::{RetryPolicy, error::IncomingError};
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{
    ActivityCancellationType, ActivityExecutionError, ActivityOptions, ApplicationFailure,
    LocalActivityOptions, SyncWorkflowContext, WorkflowCancellationToken, WorkflowContext,
    WorkflowContextView, WorkflowResult, WorkflowTermination,
};

use rindle_proto::{
    CancelReason, IngestInput, IngestOutcome, IngestStatus, OutcomeKind, ProviderAssetState,
    ProviderEvent,
};

use crate::activities::{
    CreateMuxAssetInput, CreatedMuxAsset, DeleteMuxAssetInput, IngestActivityDefinitions as Acts,
    PersistRowInput, PersistRowOutput, PrepareOutput, Proceed, SignUrlInput, SyncMuxAssetInput,
    failure_types,
};
use crate::lifecycle::{self, Decision, PollVerdict, ProviderReport};
use crate::redact::redact_id;
use crate::telemetry::{ExceptionKind, IngestEvents};
use crate::validate::validate;

/// Task queue every rindle-ingest worker polls.
pub const TASK_QUEUE: &str = "rindle_provider";

/// Patch id: `sign_url` runs as a local activity (see `ingest`).
const SIGN_URL_LOCAL_PATCH: &str = "sign-url-local-activity";

/// Name of the signal that delivers provider events.
pub const PROVIDER_EVENT_SIGNAL: &str = "provider_event";

/// One ingest of one variant into Mux. Workflow id `{asset_id}:{profile}:{variant_name}`.
#[workflow]
#[derive(Default)]
pub struct IngestWorkflow {
    /// What the `status` query answers.
    status: IngestStatus,
    /// Provider events received and not yet applied.
    inbox: VecDeque<ProviderEvent>,
    /// Event ids already received (Mux may deliver an event more than once).
    seen_events: HashSet<String>,
}

/// How an ingest ended, before it is mapped onto Temporal's Completed/Canceled/Failed.
enum Ended {
    Ingested {
        asset: CreatedMuxAsset,
        state: ProviderAssetState,
    },
    AlreadyInProgress {
        state: String,
    },
    Cancelled {
        code: String,
        detail: String,
        state: ProviderAssetState,
    },
}

/// A definitive failure: what to report and how the workflow closes.
struct Failure {
    reason: String,
    termination: WorkflowTermination,
}

impl From<ActivityExecutionError> for Failure {
    fn from(e: ActivityExecutionError) -> Self {
        Failure {
            reason: failure_reason(&e),
            termination: e.into(),
        }
    }
}

#[workflow_methods]
impl IngestWorkflow {
    /// Runs the ingest.
    #[run]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        input: IngestInput,
    ) -> WorkflowResult<IngestOutcome> {
        let events = IngestEvents::start(ctx, &input);
        match Self::ingest(ctx, &input).await {
            Ok(Ended::Ingested { asset, state }) => {
                events.stop(ctx, Some(&asset.provider_asset_id));
                Ok(IngestOutcome {
                    kind: OutcomeKind::Ingested as i32,
                    provider_asset_id_redacted: redact_id(&asset.provider_asset_id),
                    playback_ids: ctx.state(|s| s.status.playback_ids.clone()),
                    state: state as i32,
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
            Ok(Ended::Cancelled {
                code,
                detail,
                state,
            }) => {
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

    /// Receives a provider event. Lenient: any payload is accepted here, and one that does
    /// not parse as a `ProviderEvent` is logged and dropped, so it can never wedge the run.
    #[signal(name = "provider_event")]
    pub fn provider_event(&mut self, ctx: &mut SyncWorkflowContext<Self>, payload: RawValue) {
        let parsed = payload
            .payloads
            .first()
            .and_then(|p| serde_json::from_slice::<ProviderEvent>(&p.data).ok());
        match parsed {
            Some(event)
                if !event.event_id.is_empty()
                    && self.seen_events.insert(event.event_id.clone()) =>
            {
                self.inbox.push_back(event);
            }
            Some(_) => self.status.events_ignored += 1,
            None => {
                self.status.events_ignored += 1;
                if !ctx.is_replaying() {
                    tracing::warn!(target: "rindle.workflows.ingest", "malformed provider_event signal ignored");
                }
            }
        }
    }

    /// The ingest's state, redacted provider id, playback ids, last error and timestamps.
    #[query(name = "status")]
    pub fn status(&self, _ctx: &WorkflowContextView) -> IngestStatus {
        self.status.clone()
    }
}

impl IngestWorkflow {
    async fn ingest(ctx: &WorkflowContext<Self>, input: &IngestInput) -> Result<Ended, Failure> {
        let now = rfc3339(ctx.workflow_time());
        ctx.state_mut(|s| {
            s.status.started_at = now.clone();
            s.status.updated_at = now;
        });
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
            Ok(PrepareOutput::AlreadyInProgress { state }) => {
                set_state(ctx, state_enum(&state));
                return Ok(Ended::AlreadyInProgress { state });
            }
            Ok(PrepareOutput::Cancelled { code, detail }) => {
                let state = match code.as_str() {
                    "provider_asset_errored" => ProviderAssetState::Errored,
                    "provider_asset_deleted" => ProviderAssetState::Deleted,
                    _ => ProviderAssetState::Unspecified,
                };
                return Ok(Ended::Cancelled {
                    code,
                    detail,
                    state,
                });
            }
            Err(e) => return Err(Self::cancelled_or(ctx, e)),
        };

        // A dead claimant may have created a Mux asset it never promoted: never leave it billed.
        if let Some(orphan) = proceed
            .takeover
            .as_ref()
            .and_then(|t| t.orphan_provider_asset_id.clone())
        {
            Self::delete_mux_asset(ctx, &proceed, orphan, "delete_orphan_mux_asset").await;
        }

        let sign = SignUrlInput {
            profile: input.profile.clone(),
            storage_key: proceed.variant_storage_key.clone(),
        };
        // URL signing is a sub-millisecond, side-effect-free check: a local activity saves a
        // server round trip and three history events per ingest. Runs recorded before this
        // change replay through the regular activity.
        let signed = if ctx.patched(SIGN_URL_LOCAL_PATCH) {
            ctx.execute_local_activity(Acts::sign_url, sign, local_opts("sign_url"))
                .await
        } else {
            ctx.execute_activity(Acts::sign_url, sign, short_opts("sign_url"))
                .await
        };
        if let Err(e) = signed {
            return Err(Self::cancelled_or(ctx, e));
        }

        let claim = PersistRowInput::Claim {
            row_id: proceed.row_id,
            takeover: proceed.takeover.clone(),
        };
        match ctx
            .execute_activity(Acts::persist_row, claim, short_opts("persist_row.claim"))
            .await
        {
            Ok(PersistRowOutput::Claimed) => set_state(ctx, ProviderAssetState::Uploading),
            Ok(PersistRowOutput::ClaimLost { state })
            | Ok(PersistRowOutput::LostClaim { state }) => {
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
        let asset = match ctx
            .execute_activity(Acts::create_mux_asset, create, create_opts())
            .await
        {
            Ok(asset) => asset,
            Err(e) => return Self::release_and_end(ctx, &proceed, None, e).await,
        };
        // A cancel that arrived while Mux was creating the asset: it exists now, so undo it.
        if ctx.cancellation_token().is_cancelled() {
            Self::delete_mux_asset(ctx, &proceed, asset.provider_asset_id, "delete_mux_asset")
                .await;
            let why = "operator_cancelled: the ingest was cancelled while the asset was created"
                .to_owned();
            Self::release(ctx, &proceed, why).await?;
            return Ok(operator_cancelled(ctx));
        }

        let promote = PersistRowInput::Promote {
            row_id: proceed.row_id,
            input: input.clone(),
            asset: asset.clone(),
        };
        match ctx
            .execute_activity(
                Acts::persist_row,
                promote,
                short_opts("persist_row.promote"),
            )
            .await
        {
            Ok(PersistRowOutput::Promoted { playback_ids }) => {
                let asset = CreatedMuxAsset {
                    playback_ids,
                    ..asset
                };
                let now = rfc3339(ctx.workflow_time());
                ctx.state_mut(|s| {
                    s.status.provider_asset_id_redacted = redact_id(&asset.provider_asset_id);
                    s.status.playback_ids = asset.playback_ids.clone();
                    s.status.processing_since = now;
                });
                set_state(ctx, ProviderAssetState::Processing);
                Self::follow(ctx, &proceed, asset).await
            }
            Ok(PersistRowOutput::Stale { reason }) => {
                // The source changed while Mux was called: the asset shows stale media.
                Self::delete_mux_asset(ctx, &proceed, asset.provider_asset_id, "delete_mux_asset")
                    .await;
                Self::release(ctx, &proceed, format!("stale_source: {reason}")).await?;
                Ok(Ended::Cancelled {
                    code: "stale_source".to_owned(),
                    detail: reason,
                    state: ProviderAssetState::Uploading,
                })
            }
            Ok(PersistRowOutput::LostClaim { state }) => {
                // Another ingest took the row over: its asset wins, ours must go.
                Self::delete_mux_asset(ctx, &proceed, asset.provider_asset_id, "delete_mux_asset")
                    .await;
                Ok(Ended::AlreadyInProgress { state })
            }
            Ok(other) => {
                Self::delete_mux_asset(
                    ctx,
                    &proceed,
                    asset.provider_asset_id.clone(),
                    "delete_mux_asset",
                )
                .await;
                Self::release(
                    ctx,
                    &proceed,
                    format!("unexpected persist_row result: {other:?}"),
                )
                .await?;
                Err(unexpected("persist_row.promote", &other))
            }
            Err(e) => Self::release_and_end(ctx, &proceed, Some(asset.provider_asset_id), e).await,
        }
    }

    /// Follows the Mux asset until the row is `ready`, `errored` or `deleted`: applies
    /// provider events as they arrive, polls Mux on a timer as a backstop, and decides
    /// "stuck" only from what Mux says. An operator cancel deletes the asset (unless ready).
    async fn follow(
        ctx: &WorkflowContext<Self>,
        proceed: &Proceed,
        asset: CreatedMuxAsset,
    ) -> Result<Ended, Failure> {
        let settings = &proceed.lifecycle;
        let poll_every =
            Duration::from_secs(settings.poll_interval_s.max(settings.poll_floor_s).max(1));
        let stuck_after = Duration::from_secs(settings.stuck_threshold_s);
        let since = ctx.workflow_time().unwrap_or(SystemTime::UNIX_EPOCH);
        let mut state = ProviderAssetState::Processing;
        let mut last_event_at = None;
        loop {
            while let Some(event) = ctx.state_mut(|s| s.inbox.pop_front()) {
                if event.provider_asset_id != asset.provider_asset_id {
                    ctx.state_mut(|s| s.status.events_ignored += 1);
                    continue;
                }
                let report = ProviderReport::from_event_type(&event.r#type);
                let at = lifecycle::occurred_at(&event);
                match lifecycle::decide(state, report, last_event_at, at) {
                    Decision::Apply { from, to } => {
                        let error = (to == ProviderAssetState::Errored)
                            .then(|| lifecycle::errored_message(&event.error_messages));
                        let playback_ids =
                            (!event.playback_ids.is_empty()).then(|| event.playback_ids.clone());
                        state = match Self::transition(
                            ctx,
                            proceed,
                            from,
                            to,
                            playback_ids,
                            error,
                            Some(event.occurred_at.clone()),
                        )
                        .await
                        {
                            Ok(s) => s,
                            Err(e) => return Self::abandon(ctx, proceed, &asset, state, e).await,
                        };
                        last_event_at = at.or(last_event_at);
                        ctx.state_mut(|s| {
                            s.status.events_applied += 1;
                            s.status.last_event_at = event.occurred_at.clone();
                        });
                    }
                    Decision::Ignore(_) => ctx.state_mut(|s| s.status.events_ignored += 1),
                }
            }
            if is_terminal(state) {
                return Ok(Ended::Ingested { asset, state });
            }

            let woke_by_event = temporalio_sdk::workflows::select! {
                _ = ctx.timer(poll_every) => false,
                _ = ctx.wait_condition(|s: &Self| !s.inbox.is_empty()) => true,
            };
            if ctx.cancellation_token().is_cancelled() {
                return Self::operator_cancel(ctx, proceed, &asset, state).await;
            }
            if woke_by_event {
                continue;
            }

            let polled = ctx
                .execute_activity(
                    Acts::sync_mux_asset,
                    SyncMuxAssetInput {
                        provider_asset_id: asset.provider_asset_id.clone(),
                    },
                    short_opts("sync_mux_asset"),
                )
                .await;
            let mux = match polled {
                Ok(mux) => mux,
                Err(_) if ctx.cancellation_token().is_cancelled() => {
                    return Self::operator_cancel(ctx, proceed, &asset, state).await;
                }
                // Mux unreachable for a whole retry budget: try again at the next poll.
                Err(_) => continue,
            };
            let report = match mux.status.as_str() {
                "not_found" => ProviderReport::Deleted,
                "ready" => ProviderReport::Ready,
                "errored" => ProviderReport::Errored,
                "preparing" => ProviderReport::Preparing,
                _ => ProviderReport::Other,
            };
            let now = ctx.workflow_time().unwrap_or(since);
            let age = now.duration_since(since).unwrap_or_default();
            let (to, error) = match lifecycle::poll_verdict(report, age, stuck_after) {
                PollVerdict::KeepWaiting => continue,
                PollVerdict::Stuck => (
                    ProviderAssetState::Errored,
                    "stuck in processing past threshold".to_owned(),
                ),
                PollVerdict::Resolved(ProviderReport::Ready) => {
                    (ProviderAssetState::Ready, String::new())
                }
                // A 404 means the asset is gone from Mux: the row cannot play, record why.
                PollVerdict::Resolved(ProviderReport::Deleted) => (
                    ProviderAssetState::Errored,
                    "mux asset not found".to_owned(),
                ),
                PollVerdict::Resolved(_) => (
                    ProviderAssetState::Errored,
                    lifecycle::errored_message(&mux.error_messages),
                ),
            };
            let stuck = error == "stuck in processing past threshold";
            sync_event(
                ctx,
                if stuck {
                    "rindle.provider.sync.stuck"
                } else {
                    "rindle.provider.sync.resolved"
                },
                age,
                to,
            );
            let playback_ids = (!mux.playback_ids.is_empty()).then_some(mux.playback_ids);
            let error = (!error.is_empty()).then_some(error);
            state = match Self::transition(ctx, proceed, state, to, playback_ids, error, None).await
            {
                Ok(s) => s,
                Err(e) => return Self::abandon(ctx, proceed, &asset, state, e).await,
            };
        }
    }

    /// One FSM-checked compare-and-set of the row; returns the row's state afterwards.
    async fn transition(
        ctx: &WorkflowContext<Self>,
        proceed: &Proceed,
        from: ProviderAssetState,
        to: ProviderAssetState,
        playback_ids: Option<Vec<String>>,
        last_sync_error: Option<String>,
        occurred_at: Option<String>,
    ) -> Result<ProviderAssetState, ActivityExecutionError> {
        let input = PersistRowInput::Transition {
            row_id: proceed.row_id,
            from: from.as_db_str().to_owned(),
            to: to.as_db_str().to_owned(),
            playback_ids: playback_ids.clone(),
            last_sync_error: last_sync_error.clone(),
            occurred_at,
        };
        let out = ctx
            .execute_activity(
                Acts::persist_row,
                input,
                short_opts("persist_row.transition"),
            )
            .await?;
        let state = match out {
            PersistRowOutput::Transitioned { state } | PersistRowOutput::Conflict { state } => {
                state_enum(&state)
            }
            _ => from,
        };
        ctx.state_mut(|s| {
            if let Some(ids) = playback_ids {
                s.status.playback_ids = ids;
            }
            if let Some(e) = last_sync_error {
                s.status.last_error = e;
            }
        });
        set_state(ctx, state);
        Ok(state)
    }

    /// An operator cancelled the ingest while it followed the asset: delete the asset unless
    /// it is playable, record why on the row, and close as Canceled.
    async fn operator_cancel(
        ctx: &WorkflowContext<Self>,
        proceed: &Proceed,
        asset: &CreatedMuxAsset,
        state: ProviderAssetState,
    ) -> Result<Ended, Failure> {
        let reason = ctx.cancellation_token().reason().unwrap_or_default();
        let mut final_state = state;
        if state == ProviderAssetState::Processing {
            Self::delete_mux_asset(
                ctx,
                proceed,
                asset.provider_asset_id.clone(),
                "delete_mux_asset",
            )
            .await;
            let why = format!("operator_cancelled: ingest cancelled while processing {reason}")
                .trim_end()
                .to_owned();
            let input = PersistRowInput::Transition {
                row_id: proceed.row_id,
                from: state.as_db_str().to_owned(),
                to: ProviderAssetState::Errored.as_db_str().to_owned(),
                playback_ids: None,
                last_sync_error: Some(why),
                occurred_at: None,
            };
            if let Ok(
                PersistRowOutput::Transitioned { state } | PersistRowOutput::Conflict { state },
            ) = ctx
                .execute_activity(
                    Acts::persist_row,
                    input,
                    detached(short_opts("persist_row.cancel")),
                )
                .await
            {
                final_state = state_enum(&state);
            }
        }
        Ok(Ended::Cancelled {
            code: "operator_cancelled".to_owned(),
            detail: reason,
            state: final_state,
        })
    }

    /// A transition failed for good while following the asset (or was cancelled).
    async fn abandon(
        ctx: &WorkflowContext<Self>,
        proceed: &Proceed,
        asset: &CreatedMuxAsset,
        state: ProviderAssetState,
        e: ActivityExecutionError,
    ) -> Result<Ended, Failure> {
        if ctx.cancellation_token().is_cancelled() {
            return Self::operator_cancel(ctx, proceed, asset, state).await;
        }
        Err(Failure::from(e))
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
            let why = "operator_cancelled: the ingest was cancelled before the asset was recorded"
                .to_owned();
            Self::release(ctx, proceed, why).await?;
            return Ok(operator_cancelled(ctx));
        }
        let failure = Failure::from(e);
        Self::release(ctx, proceed, failure.reason.clone()).await?;
        Err(failure)
    }

    /// Releases our claim with `last_sync_error`. Runs even after a cancel request.
    async fn release(
        ctx: &WorkflowContext<Self>,
        proceed: &Proceed,
        last_sync_error: String,
    ) -> Result<(), Failure> {
        let release = PersistRowInput::Release {
            row_id: proceed.row_id,
            last_sync_error,
        };
        ctx.execute_activity(
            Acts::persist_row,
            release,
            detached(short_opts("persist_row.release")),
        )
        .await
        .map(|_| ())
        .map_err(Failure::from)
    }

    /// Deletes a Mux asset we created; Mux refuses while it is `preparing`, so this retries
    /// with backoff. Its failure is logged and never changes the ingest's outcome.
    async fn delete_mux_asset(
        ctx: &WorkflowContext<Self>,
        proceed: &Proceed,
        provider_asset_id: String,
        id: &str,
    ) {
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
            Ok(_) => {
                tracing::info!(target: "rindle.workflows.ingest", asset_id = %redacted, "compensating_delete")
            }
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
                    cancel_reason: Some(CancelReason {
                        code: "operator_cancelled".into(),
                        detail: String::new(),
                    }),
                    ..Default::default()
                }),
            };
        }
        Failure::from(e)
    }
}

fn is_terminal(state: ProviderAssetState) -> bool {
    matches!(
        state,
        ProviderAssetState::Ready | ProviderAssetState::Errored | ProviderAssetState::Deleted
    )
}

fn set_state(ctx: &WorkflowContext<IngestWorkflow>, state: ProviderAssetState) {
    let now = rfc3339(ctx.workflow_time());
    ctx.state_mut(|s| {
        s.status.state = state as i32;
        s.status.updated_at = now;
    });
}

fn rfc3339(t: Option<SystemTime>) -> String {
    t.map(|t| chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339())
        .unwrap_or_default()
}

/// `rindle.provider.sync.{resolved,stuck}` with `age_ms` since the row became `processing`.
fn sync_event(
    ctx: &WorkflowContext<IngestWorkflow>,
    name: &'static str,
    age: Duration,
    to: ProviderAssetState,
) {
    if ctx.is_replaying() {
        return;
    }
    let age_ms = age.as_millis() as u64;
    if name == "rindle.provider.sync.stuck" {
        tracing::warn!(target: "rindle.provider.sync.stuck", provider = "mux", age_ms, to = to.as_db_str(), "rindle.provider.sync.stuck");
    } else {
        tracing::info!(target: "rindle.provider.sync.resolved", provider = "mux", age_ms, to = to.as_db_str(), "rindle.provider.sync.resolved");
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

/// Options of a local activity: the same 5-attempt budget as the short activities.
fn local_opts(activity_id: &str) -> LocalActivityOptions {
    LocalActivityOptions::builder()
        .activity_id(activity_id.to_owned())
        .start_to_close_timeout(Duration::from_secs(10))
        .retry_policy(
            RetryPolicy::builder()
                .initial_interval(Duration::from_secs(1))
                .backoff_coefficient(2.0)
                .maximum_interval(Duration::from_secs(30))
                .maximum_attempts(5)
                .non_retryable_error_types([
                    failure_types::INVALID_INPUT,
                    failure_types::STORAGE_CONFIG,
                ])
                .build(),
        )
        .build()
}

/// The Mux create: 5 attempts, 5 min each (the reference job's budget). A 429 sets the next
/// attempt's delay from Retry-After (`next_retry_delay`), which overrides these intervals.
/// On a cancel request the workflow waits for a running attempt to finish (it may create an
/// asset, which must then be deleted) instead of abandoning it.
fn create_opts() -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(300))
        .activity_id("create_mux_asset".to_owned())
        .cancellation_type(ActivityCancellationType::WaitCancellationCompleted)
        .retry_policy(
            RetryPolicy::builder()
                .initial_interval(Duration::from_secs(2))
                .backoff_coefficient(2.0)
                .maximum_interval(Duration::from_secs(60))
                .maximum_attempts(5)
                .non_retryable_error_types([
                    failure_types::PROVIDER_REJECTED,
                    failure_types::STORAGE_CONFIG,
                ])
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
