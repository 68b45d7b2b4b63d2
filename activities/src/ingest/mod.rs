//! `IngestActivities`: the implementations of the activities `IngestWorkflow` declares in
//! `rindle_workflows::activities`, each checked against its definition at compile time.
//!
//! - `prepare`: load + freshness + ensure the row + decide (see [`IngestActivities::decide`]).
//! - `sign_url`: pre-flight of the storage signer; returns only a redacted URL.
//! - `persist_row`: claim / promote / release, each one store transaction.
//! - `create_mux_asset`: signs a fresh URL and POSTs it; idempotent per claim.
//! - `delete_mux_asset`: DELETE, 404 is success, "still preparing" is retried later.
//!
//! The claim owner is always the calling workflow run, read from the activity's info.

mod errors;
mod liveness;
mod settings;

use std::{collections::HashMap, sync::Arc, time::Duration};

use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use uuid::Uuid;

use rindle_proto::{IngestInput, ProviderAssetState};
use rindle_workflows::activities::{
    CreateMuxAssetInput, CreatedMuxAsset, DeleteMuxAssetInput, DeleteMuxAssetOutput,
    PersistRowInput, PersistRowOutput, PrepareOutput, Proceed, SignUrlInput, SignUrlOutput,
    SyncMuxAssetInput, SyncMuxAssetOutput, Takeover, defs, failure_types,
};
use rindle_workflows::redact::redact_id;

use crate::mux::{CreateAssetRequest, DeleteOutcome, MuxClient, MuxError};
use crate::storage::StorageBackend;
use crate::store::{
    ClaimOutcome, ClaimOwner, Freshness, PromoteOutcome, ProviderRow, RowUpdate, SourceLookup,
    Store, StoreError, TransitionOutcome, check_freshness,
};

pub use errors::failure;
pub use liveness::RunLiveness;
pub use settings::{IngestSettings, ProfileSettings};

/// Everything the ingest activities share: built once at worker start-up.
pub struct IngestActivities {
    store: Store,
    storage: HashMap<String, StorageBackend>,
    profiles: HashMap<String, ProfileSettings>,
    mux: MuxClient,
    settings: IngestSettings,
}

/// A problem with the pieces handed to [`IngestActivities::new`].
#[derive(Debug, thiserror::Error)]
pub enum IngestSetupError {
    /// A profile names a storage backend that is not configured.
    #[error(
        "profiles.\"{profile}\".storage names {storage:?}, which is not configured under [storage]"
    )]
    UnknownStorage {
        /// The profile.
        profile: String,
        /// The missing backend name.
        storage: String,
    },
    /// A profile setting is out of range.
    #[error("{0}")]
    InvalidProfile(String),
}

impl IngestActivities {
    /// Bundles the pieces, checking that every profile points at a configured backend.
    pub fn new(
        store: Store,
        storage: HashMap<String, StorageBackend>,
        profiles: HashMap<String, ProfileSettings>,
        mux: MuxClient,
        settings: IngestSettings,
    ) -> Result<Self, IngestSetupError> {
        for (name, p) in &profiles {
            p.validate(name).map_err(IngestSetupError::InvalidProfile)?;
            if !storage.contains_key(&p.storage) {
                return Err(IngestSetupError::UnknownStorage {
                    profile: name.clone(),
                    storage: p.storage.clone(),
                });
            }
        }
        Ok(Self {
            store,
            storage,
            profiles,
            mux,
            settings,
        })
    }

    fn profile(&self, name: &str) -> Result<(&ProfileSettings, &StorageBackend), ActivityError> {
        let profile = self.profiles.get(name).ok_or_else(|| {
            errors::invalid_input(format!("profile {name:?} is not configured on this worker"))
        })?;
        // `new` checked that the backend exists.
        let backend = &self.storage[&profile.storage];
        Ok((profile, backend))
    }

    /// Decides what an ingest does with the row as it is now.
    async fn decide(
        &self,
        ctx: &ActivityContext,
        row: ProviderRow,
        proceed: Proceed,
    ) -> Result<PrepareOutput, ActivityError> {
        let in_progress = |row: &ProviderRow| PrepareOutput::AlreadyInProgress {
            state: row.state.as_db_str().to_owned(),
        };
        match row.state {
            ProviderAssetState::Pending => Ok(PrepareOutput::Proceed(proceed)),
            ProviderAssetState::Processing | ProviderAssetState::Ready => Ok(in_progress(&row)),
            ProviderAssetState::Errored => Ok(PrepareOutput::Cancelled {
                code: "provider_asset_errored".to_owned(),
                detail: row.last_sync_error.clone().unwrap_or_default(),
            }),
            ProviderAssetState::Deleted => Ok(PrepareOutput::Cancelled {
                code: "provider_asset_deleted".to_owned(),
                detail: String::new(),
            }),
            ProviderAssetState::Uploading => {
                let claim = self
                    .store
                    .get_claim(row.id)
                    .await
                    .map_err(errors::from_store)?;
                let takeover = match claim {
                    Some(c)
                        if c.released_at.is_some()
                            || !RunLiveness::new(ctx)
                                .is_running(&c.workflow_id, &c.run_id)
                                .await? =>
                    {
                        Takeover {
                            previous_run_id: Some(c.run_id),
                            orphan_provider_asset_id: c.created_provider_asset_id,
                        }
                    }
                    Some(_) => return Ok(in_progress(&row)),
                    None => {
                        let idle = chrono::Utc::now().naive_utc() - row.updated_at;
                        if idle.num_seconds() < self.settings.unclaimed_uploading_grace_s as i64 {
                            return Ok(in_progress(&row));
                        }
                        Takeover {
                            previous_run_id: None,
                            orphan_provider_asset_id: None,
                        }
                    }
                };
                Ok(PrepareOutput::Proceed(Proceed {
                    takeover: Some(takeover),
                    ..proceed
                }))
            }
            ProviderAssetState::Unspecified => Err(failure(
                "CorruptRow",
                format!("provider row {} has an unknown state", row.id),
                true,
                None,
            )),
        }
    }
}

fn owner(ctx: &ActivityContext) -> ClaimOwner {
    let info = ctx.info();
    ClaimOwner {
        workflow_id: info.workflow_id.clone().unwrap_or_default(),
        run_id: info.workflow_run_id.clone().unwrap_or_default(),
    }
}

fn parse_asset_id(asset_id: &str) -> Result<Uuid, ActivityError> {
    Uuid::try_parse(asset_id)
        .map_err(|_| errors::invalid_input(format!("asset_id {asset_id:?} is not a UUID")))
}

#[activities]
impl IngestActivities {
    /// Loads the source, checks freshness, ensures the `pending` row and decides.
    #[activity(definition = defs::Prepare)]
    pub async fn prepare(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: IngestInput,
    ) -> Result<PrepareOutput, ActivityError> {
        let (profile, _) = self.profile(&input.profile)?;
        let asset_id = parse_asset_id(&input.asset_id)?;
        let source = match self
            .store
            .load_source(asset_id, &input.variant_name)
            .await
            .map_err(errors::from_store)?
        {
            SourceLookup::Found(s) => s,
            SourceLookup::AssetMissing => {
                return Err(failure(
                    failure_types::SOURCE_NOT_FOUND,
                    format!("media asset {asset_id} not found"),
                    false,
                    None,
                ));
            }
            SourceLookup::VariantMissing => {
                return Err(failure(
                    failure_types::SOURCE_NOT_FOUND,
                    format!(
                        "variant {:?} of media asset {asset_id} not found",
                        input.variant_name
                    ),
                    false,
                    None,
                ));
            }
        };
        if let Err(stale) = check_freshness(&source, &freshness(asset_id, &input)) {
            return Ok(PrepareOutput::Cancelled {
                code: "stale_source".to_owned(),
                detail: stale.as_str().to_owned(),
            });
        }
        let Some(variant_storage_key) = source.variant_storage_key else {
            return Err(failure(
                failure_types::SOURCE_NOT_FOUND,
                format!(
                    "variant {:?} of media asset {asset_id} has no stored file yet",
                    input.variant_name
                ),
                false,
                None,
            ));
        };
        let row = self
            .store
            .ensure_pending_row(asset_id, &input.profile, &profile.playback_policy)
            .await
            .map_err(errors::from_store)?;
        let proceed = Proceed {
            row_id: row.id,
            variant_storage_key,
            playback_policy: row
                .playback_policy
                .clone()
                .unwrap_or_else(|| profile.playback_policy.clone()),
            takeover: None,
            lifecycle: self.settings.lifecycle(),
        };
        self.decide(&ctx, row, proceed).await
    }

    /// Proves the profile's storage can sign the variant's URL; returns it redacted.
    #[activity(definition = defs::SignUrl)]
    pub async fn sign_url(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: SignUrlInput,
    ) -> Result<SignUrlOutput, ActivityError> {
        let (profile, backend) = self.profile(&input.profile)?;
        let signed = backend
            .signed_url(&input.storage_key, Duration::from_secs(profile.url_ttl_s))
            .await
            .map_err(errors::from_storage)?;
        Ok(SignUrlOutput {
            url_redacted: signed.redacted(),
            ttl_s: profile.url_ttl_s,
        })
    }

    /// Claim, promote or release the provider row, as this workflow run.
    #[activity(definition = defs::PersistRow)]
    pub async fn persist_row(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: PersistRowInput,
    ) -> Result<PersistRowOutput, ActivityError> {
        let owner = owner(&ctx);
        let out = match input {
            PersistRowInput::Claim { row_id, takeover } => {
                let outcome = match takeover {
                    None => self.store.claim_row(row_id, &owner).await,
                    Some(t) => {
                        self.store
                            .take_over_claim(row_id, t.previous_run_id.as_deref(), &owner)
                            .await
                    }
                }
                .map_err(errors::from_store)?;
                match outcome {
                    ClaimOutcome::Claimed => PersistRowOutput::Claimed,
                    // A retry after our own claim committed (its answer was lost): still ours.
                    ClaimOutcome::Lost {
                        current_state: ProviderAssetState::Uploading,
                    } if self.holds_claim(row_id, &owner).await? => PersistRowOutput::Claimed,
                    ClaimOutcome::Lost { current_state } => PersistRowOutput::ClaimLost {
                        state: current_state.as_db_str().to_owned(),
                    },
                }
            }
            PersistRowInput::Promote {
                row_id,
                input,
                asset,
            } => {
                let asset_id = parse_asset_id(&input.asset_id)?;
                let outcome = self
                    .store
                    .promote(
                        row_id,
                        &owner,
                        &freshness(asset_id, &input),
                        &asset.provider_asset_id,
                        &asset.playback_ids,
                    )
                    .await
                    .map_err(errors::from_store)?;
                match outcome {
                    PromoteOutcome::Promoted(row) => PersistRowOutput::Promoted {
                        playback_ids: row.playback_ids,
                    },
                    PromoteOutcome::Stale(reason) => PersistRowOutput::Stale {
                        reason: reason.as_str().to_owned(),
                    },
                    PromoteOutcome::SourceMissing => PersistRowOutput::Stale {
                        reason: "source_missing".to_owned(),
                    },
                    PromoteOutcome::LostClaim { current_state } => {
                        // A retry after our own promote committed (its answer was lost): the row
                        // already carries our asset, which must not be deleted as a loser's.
                        let row = self
                            .store
                            .get_row(row_id)
                            .await
                            .map_err(errors::from_store)?;
                        match row {
                            Some(row)
                                if row.provider_asset_id.as_deref()
                                    == Some(asset.provider_asset_id.as_str()) =>
                            {
                                PersistRowOutput::Promoted {
                                    playback_ids: row.playback_ids,
                                }
                            }
                            _ => PersistRowOutput::LostClaim {
                                state: current_state.as_db_str().to_owned(),
                            },
                        }
                    }
                }
            }
            PersistRowInput::Transition {
                row_id,
                from,
                to,
                playback_ids,
                last_sync_error,
                occurred_at,
            } => {
                let parse = |s: &str| {
                    ProviderAssetState::from_db_str(s).ok_or_else(|| {
                        errors::invalid_input(format!("unknown provider-asset state {s:?}"))
                    })
                };
                let update = RowUpdate {
                    playback_ids,
                    last_sync_error: last_sync_error.map(Some),
                    last_event_at: occurred_at
                        .as_deref()
                        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                        .map(|t| t.naive_utc()),
                    provider_asset_id: None,
                };
                match self
                    .store
                    .transition(row_id, parse(&from)?, parse(&to)?, update)
                    .await
                    .map_err(errors::from_store)?
                {
                    TransitionOutcome::Applied(row) => PersistRowOutput::Transitioned {
                        state: row.state.as_db_str().to_owned(),
                    },
                    TransitionOutcome::Conflict { current_state } => PersistRowOutput::Conflict {
                        state: current_state.as_db_str().to_owned(),
                    },
                }
            }
            PersistRowInput::Release {
                row_id,
                last_sync_error,
            } => {
                self.store
                    .release_claim(row_id, &owner, &last_sync_error)
                    .await
                    .map_err(errors::from_store)?;
                PersistRowOutput::Released
            }
        };
        Ok(out)
    }

    /// Creates the Mux asset from a freshly signed URL. If this claim already created one
    /// (an earlier attempt whose result was lost), that asset is returned instead of a second.
    #[activity(definition = defs::CreateMuxAsset)]
    pub async fn create_mux_asset(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: CreateMuxAssetInput,
    ) -> Result<CreatedMuxAsset, ActivityError> {
        let owner = owner(&ctx);
        if let Some(existing) = self.already_created(input.row_id, &owner).await? {
            return Ok(existing);
        }
        let (profile, backend) = self.profile(&input.profile)?;
        let signed = backend
            .signed_url(&input.storage_key, Duration::from_secs(profile.url_ttl_s))
            .await
            .map_err(errors::from_storage)?;
        let request = CreateAssetRequest {
            input_url: signed.expose().to_owned().into(),
            playback_policy: input.playback_policy.clone(),
            mp4_support: profile.mp4_support.clone(),
            max_resolution_tier: profile.max_resolution_tier.clone(),
            passthrough: Some(input.passthrough.clone()),
        };
        let created = self.mux.create_asset(&request).await.map_err(|e| {
            tracing::warn!(target: "rindle.activities.mux", source = %signed.redacted(), error = %e, "create_asset_failed");
            errors::from_mux(e)
        })?;
        tracing::info!(target: "rindle.activities.mux", asset_id = %redact_id(&created.id), "create_asset");
        match self
            .store
            .record_created_asset(input.row_id, &owner, &created.id)
            .await
        {
            Ok(()) => {}
            Err(StoreError::NotClaimOwner { .. }) => {
                // Another ingest took the row over while Mux was answering (this run was
                // thought dead): nobody will promote this asset, so it must not stay billed.
                let gone = self.mux.delete_asset(&created.id).await;
                tracing::warn!(
                    target: "rindle.activities.mux",
                    asset_id = %redact_id(&created.id),
                    deleted = gone.is_ok(),
                    "created_asset_after_losing_claim"
                );
                return Err(failure(
                    "ClaimLost",
                    "the row was taken over by another ingest while the Mux asset was created"
                        .to_owned(),
                    true,
                    None,
                ));
            }
            // The id is in the activity result either way; this record only helps a takeover.
            Err(e) => tracing::warn!(
                target: "rindle.activities.mux",
                asset_id = %redact_id(&created.id),
                error = %e,
                "record_created_asset_failed"
            ),
        }
        Ok(CreatedMuxAsset {
            provider_asset_id: created.id,
            playback_ids: created.playback_ids,
        })
    }

    /// Asks Mux for the asset's status (the polling backstop); a 404 is reported, not an error.
    #[activity(definition = defs::SyncMuxAsset)]
    pub async fn sync_mux_asset(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: SyncMuxAssetInput,
    ) -> Result<SyncMuxAssetOutput, ActivityError> {
        match self.mux.get_asset(&input.provider_asset_id).await {
            Ok(asset) => Ok(SyncMuxAssetOutput {
                status: asset.status.as_str().to_owned(),
                playback_ids: asset.playback_ids,
                error_messages: asset.errors,
            }),
            Err(MuxError::NotFound) => Ok(SyncMuxAssetOutput {
                status: "not_found".to_owned(),
                playback_ids: Vec::new(),
                error_messages: Vec::new(),
            }),
            Err(e) => Err(errors::from_mux(e)),
        }
    }

    /// Deletes a Mux asset; 404 is done, a refusal while `preparing` is retried later.
    #[activity(definition = defs::DeleteMuxAsset)]
    pub async fn delete_mux_asset(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: DeleteMuxAssetInput,
    ) -> Result<DeleteMuxAssetOutput, ActivityError> {
        match self.mux.delete_asset(&input.provider_asset_id).await {
            Ok(DeleteOutcome::Deleted) => Ok(DeleteMuxAssetOutput { deleted: true }),
            Ok(DeleteOutcome::AlreadyGone) => Ok(DeleteMuxAssetOutput { deleted: false }),
            Err(MuxError::Rejected {
                status: 400,
                messages,
                ..
            }) if messages
                .iter()
                .any(|m| m.to_ascii_lowercase().contains("preparing")) =>
            {
                Err(failure(
                    "ProviderAssetBusy",
                    "Mux refuses to delete an asset while it is preparing".to_owned(),
                    false,
                    None,
                ))
            }
            Err(e) => Err(errors::from_mux(e)),
        }
    }
}

impl IngestActivities {
    /// Whether `owner` holds the row's claim (an earlier attempt of this activity took it).
    async fn holds_claim(&self, row_id: Uuid, owner: &ClaimOwner) -> Result<bool, ActivityError> {
        let claim = self
            .store
            .get_claim(row_id)
            .await
            .map_err(errors::from_store)?;
        Ok(claim.is_some_and(|c| c.is_held_by(owner)))
    }

    /// The asset an earlier attempt of this claim created, if the claim recorded one.
    async fn already_created(
        &self,
        row_id: Uuid,
        owner: &ClaimOwner,
    ) -> Result<Option<CreatedMuxAsset>, ActivityError> {
        let claim = self
            .store
            .get_claim(row_id)
            .await
            .map_err(errors::from_store)?;
        let Some(id) = claim
            .filter(|c| c.run_id == owner.run_id && c.released_at.is_none())
            .and_then(|c| c.created_provider_asset_id)
        else {
            return Ok(None);
        };
        match self.mux.get_asset(&id).await {
            Ok(asset) => Ok(Some(CreatedMuxAsset {
                provider_asset_id: asset.id,
                playback_ids: asset.playback_ids,
            })),
            Err(MuxError::NotFound) => Ok(None),
            Err(e) => Err(errors::from_mux(e)),
        }
    }
}

fn freshness(asset_id: Uuid, input: &IngestInput) -> Freshness {
    Freshness {
        asset_id,
        variant_name: input.variant_name.clone(),
        expected_storage_key: input.expected_storage_key.clone(),
        expected_recipe_digest: input.expected_recipe_digest.clone(),
    }
}
