//! Rindle stores provider-asset states as plain strings; this maps them to the enum.

use crate::v1::ProviderAssetState;

impl ProviderAssetState {
    /// The string Rindle stores in `media_provider_assets.state`.
    pub fn as_db_str(self) -> &'static str {
        match self {
            ProviderAssetState::Unspecified => "unspecified",
            ProviderAssetState::Pending => "pending",
            ProviderAssetState::Uploading => "uploading",
            ProviderAssetState::Processing => "processing",
            ProviderAssetState::Ready => "ready",
            ProviderAssetState::Errored => "errored",
            ProviderAssetState::Deleted => "deleted",
        }
    }

    /// Parses a stored state string; `None` for anything Rindle does not define.
    pub fn from_db_str(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => ProviderAssetState::Pending,
            "uploading" => ProviderAssetState::Uploading,
            "processing" => ProviderAssetState::Processing,
            "ready" => ProviderAssetState::Ready,
            "errored" => ProviderAssetState::Errored,
            "deleted" => ProviderAssetState::Deleted,
            _ => return None,
        })
    }
}

impl std::fmt::Display for ProviderAssetState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_db_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_round_trips_through_its_db_string() {
        for s in [
            ProviderAssetState::Pending,
            ProviderAssetState::Uploading,
            ProviderAssetState::Processing,
            ProviderAssetState::Ready,
            ProviderAssetState::Errored,
            ProviderAssetState::Deleted,
        ] {
            assert_eq!(ProviderAssetState::from_db_str(s.as_db_str()), Some(s));
        }
        assert_eq!(ProviderAssetState::from_db_str("garbage"), None);
    }

    #[test]
    fn ingest_input_reads_the_reference_job_arguments() {
        let json = r#"{"asset_id":"0b6c3a52-7f7e-4d55-9d0e-1f2a3b4c5d6e","profile":"Elixir.MyApp.Profiles.Web",
            "variant_name":"web_720p","expected_storage_key":"a/b.mp4","expected_recipe_digest":"sha256:aa","extra":1}"#;
        let input: crate::IngestInput = serde_json::from_str(json).unwrap();
        assert_eq!(input.variant_name, "web_720p");
        let back = serde_json::to_value(&input).unwrap();
        assert_eq!(back["expected_recipe_digest"], "sha256:aa");
    }
}
