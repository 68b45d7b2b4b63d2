//! The reference's telemetry events as `tracing` events.
//!
//! Each event is emitted with `target` equal to its reference name (for example
//! `rindle.provider_asset.state_change`), so a subscriber layer can count them as metrics
//! and filter them by name. Fields never carry a raw provider id, a signed URL or a secret.

use rindle_proto::ProviderAssetState;
use uuid::Uuid;

/// `rindle.provider_asset.state_change`: a provider row moved `from` → `to`.
/// `asset_id` is Rindle's `media_assets.id` (not a provider id, so not redacted).
pub fn state_change(
    profile: &str,
    asset_id: Uuid,
    from: ProviderAssetState,
    to: ProviderAssetState,
) {
    tracing::info!(
        target: "rindle.provider_asset.state_change",
        profile,
        provider = "mux",
        asset_id = %asset_id,
        from = from.as_db_str(),
        to = to.as_db_str(),
        "rindle.provider_asset.state_change"
    );
}
