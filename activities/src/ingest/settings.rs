//! Runtime settings the activities need, deserialized from the worker's configuration.

use serde::Deserialize;

/// One Rindle profile: where its files live and how Mux should treat them.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProfileSettings {
    /// Name of the storage backend (a key of `[storage.*]`).
    pub storage: String,
    /// Lifetime of the signed source URL Mux fetches (reference: 1800 s).
    #[serde(default = "default_url_ttl_s")]
    pub url_ttl_s: u64,
    /// `signed` (reference default) or `public`.
    #[serde(default = "default_playback_policy")]
    pub playback_policy: String,
    /// Mux `max_resolution_tier`.
    #[serde(default = "default_max_resolution_tier")]
    pub max_resolution_tier: String,
    /// Mux `mp4_support` (reference: `standard`, deprecated by Mux but still accepted).
    #[serde(default = "default_mp4_support")]
    pub mp4_support: String,
}

fn default_url_ttl_s() -> u64 {
    1800
}
fn default_playback_policy() -> String {
    "signed".to_owned()
}
fn default_max_resolution_tier() -> String {
    "1080p".to_owned()
}
fn default_mp4_support() -> String {
    "standard".to_owned()
}

/// Ingest-wide settings.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IngestSettings {
    /// A row left `uploading` with no claim record (e.g. by Rindle's own Oban worker, whose job
    /// timeout is 5 min) is taken over once it has not changed for this long.
    pub unclaimed_uploading_grace_s: u64,
    /// First retry interval of a compensating Mux delete that Mux refused (asset `preparing`).
    pub delete_retry_interval_s: u64,
    /// Seconds between polls of Mux while a row is `processing` (the webhook backstop).
    pub poll_interval_s: u64,
    /// Polls never come more often than this (Mux rate-limits GETs).
    pub poll_floor_s: u64,
    /// Mux still `preparing` this long after `processing` began → `errored` (stuck).
    pub stuck_threshold_s: u64,
}

impl Default for IngestSettings {
    fn default() -> Self {
        Self {
            unclaimed_uploading_grace_s: 600,
            delete_retry_interval_s: 30,
            poll_interval_s: 300,
            poll_floor_s: 30,
            stuck_threshold_s: 7200,
        }
    }
}

impl IngestSettings {
    /// The timer settings recorded in the workflow's history by `prepare`.
    pub fn lifecycle(&self) -> rindle_workflows::activities::LifecycleSettings {
        rindle_workflows::activities::LifecycleSettings {
            delete_retry_interval_s: self.delete_retry_interval_s,
            poll_interval_s: self.poll_interval_s,
            poll_floor_s: self.poll_floor_s,
            stuck_threshold_s: self.stuck_threshold_s,
        }
    }
}

impl ProfileSettings {
    /// Checks values Mux or the store would reject later, naming the key.
    pub fn validate(&self, profile: &str) -> Result<(), String> {
        if !matches!(self.playback_policy.as_str(), "signed" | "public") {
            return Err(format!(
                "profiles.\"{profile}\".playback_policy must be \"signed\" or \"public\""
            ));
        }
        if self.url_ttl_s == 0 || self.url_ttl_s > 7 * 24 * 3600 {
            return Err(format!(
                "profiles.\"{profile}\".url_ttl_s must be between 1 and 604800"
            ));
        }
        Ok(())
    }
}
