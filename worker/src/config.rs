//! Typed configuration: embedded defaults, then a TOML file, then environment variables.
//!
//! - Environment overrides use the prefix `RINDLE_INGEST_` and `__` between keys, e.g.
//!   `RINDLE_INGEST_DATABASE__URL=postgres://…`.
//! - Mux credentials come from `MUX_TOKEN_ID` / `MUX_TOKEN_SECRET`, like Mux's own SDKs.
//! - The Temporal connection is not configured here: it follows Temporal's conventions
//!   (`TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`, `TEMPORAL_API_KEY`, `temporal.toml` profiles).
//!
//! A missing or wrong setting is an error at start-up that names the key.

use std::{collections::HashMap, net::SocketAddr, path::Path};

use figment::{
    Figment,
    providers::{Env, Format, Toml},
};
use serde::Deserialize;

use crate::http::webhooks::WebhookSettings;
use rindle_activities::{
    ingest::{IngestSettings, ProfileSettings},
    mux::MuxConfig,
    storage::StorageBackendConfig,
};

/// The defaults compiled into the binary: SQLite, local storage, one example profile.
pub const EMBEDDED_DEFAULTS: &str = include_str!("../rindle-ingest.default.toml");

/// Everything the service reads at start-up.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Worker tuning.
    pub worker: WorkerSettings,
    /// The store of record.
    pub database: DatabaseSettings,
    /// The worker's HTTP server.
    pub http: HttpSettings,
    /// Mux API access.
    pub mux: MuxConfig,
    /// Ingest behaviour.
    #[serde(default)]
    pub ingest: IngestSettings,
    /// Job-level uniqueness of `enqueue`.
    pub enqueue: EnqueueSettings,
    /// Storage backends by name.
    pub storage: HashMap<String, StorageBackendConfig>,
    /// Rindle profiles (e.g. `"Elixir.MyApp.Profiles.Web"`) by name.
    pub profiles: HashMap<String, ProfileSettings>,
    /// Logs and metrics.
    pub telemetry: TelemetrySettings,
    /// Mux webhook endpoint (`/webhooks/mux`).
    #[serde(default)]
    pub webhooks: WebhookSettings,
}

/// Temporal worker tuning.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    /// The task queue (`rindle_provider`, like the reference's Oban queue).
    pub task_queue: String,
    /// Activities run at once by this worker (reference: `rindle_provider: 4`).
    pub max_concurrent_activities: usize,
    /// Seconds in-flight activities get to finish on SIGINT/SIGTERM.
    pub graceful_shutdown_s: u64,
}

/// Where Rindle's tables live.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `postgres://…` (production: the adopter's Rindle database) or `sqlite:…` (embedded).
    pub url: String,
    /// PostgreSQL schema of Rindle's tables: `rindle` (Rindle's default) or `public`.
    pub schema: String,
    /// Apply migrations when the worker starts.
    pub migrate_on_start: bool,
}

/// The worker's HTTP server (health, local media, metrics, webhooks).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Address to listen on.
    pub listen: SocketAddr,
}

/// Job-level uniqueness.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnqueueSettings {
    /// After a *completed* ingest, a new start of the same id within this period returns the
    /// completed run (reference: 86 400 s).
    pub uniqueness_period_s: u64,
}

/// Logs and metrics.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    /// `text` or `json`.
    pub log_format: LogFormat,
    /// `RUST_LOG`-style filter used when `RUST_LOG` is unset.
    pub log_filter: String,
}

/// Log line format.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable.
    Text,
    /// One JSON object per line.
    Json,
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file, an environment variable or a value is wrong; figment names the key.
    #[error("configuration: {0}")]
    Invalid(#[from] Box<figment::Error>),
    /// The config file named on the command line does not exist.
    #[error("configuration file {0} does not exist")]
    MissingFile(String),
}

impl Settings {
    /// Loads defaults, then `file` (if given, it must exist), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        Self::from_figment(sources(file)?)
    }

    /// Extracts settings from an already-assembled figment (tests build one directly).
    pub fn from_figment(figment: Figment) -> Result<Settings, ConfigError> {
        figment
            .extract()
            .map_err(|e| ConfigError::Invalid(Box::new(e)))
    }
}

/// Embedded defaults, then `file` (if given, it must exist), then the environment.
pub fn sources(file: Option<&Path>) -> Result<Figment, ConfigError> {
    let mut figment = Figment::from(Toml::string(EMBEDDED_DEFAULTS));
    if let Some(path) = file {
        if !path.exists() {
            return Err(ConfigError::MissingFile(path.display().to_string()));
        }
        figment = figment.merge(Toml::file(path));
    }
    Ok(figment.merge(env_overrides()))
}

/// One section of the configuration, for commands that need only that much (`migrate` needs
/// no Mux token, `enqueue` no storage secret).
pub fn section<T: serde::de::DeserializeOwned>(
    figment: &Figment,
    key: &str,
) -> Result<T, ConfigError> {
    figment
        .extract_inner(key)
        .map_err(|e| ConfigError::Invalid(Box::new(e)))
}

/// `RINDLE_INGEST_A__B` → `a.b`, and Mux's own variable names.
pub fn env_overrides() -> Figment {
    Figment::new()
        .merge(Env::prefixed("RINDLE_INGEST_").split("__"))
        .merge(
            Env::raw()
                .only(&["MUX_TOKEN_ID", "MUX_TOKEN_SECRET"])
                .map(|k| match k.as_str() {
                    "MUX_TOKEN_ID" => "mux.token_id".into(),
                    _ => "mux.token_secret".into(),
                }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_mux(extra: &str) -> Figment {
        Figment::from(Toml::string(EMBEDDED_DEFAULTS)).merge(Toml::string(&format!(
            "[mux]\ntoken_id = \"id\"\ntoken_secret = \"secret\"\n[storage.local]\nsigning_secret = \"{}\"\n{extra}",
            "s".repeat(32)
        )))
    }

    #[test]
    fn the_embedded_defaults_load_once_credentials_are_given() {
        let s = Settings::from_figment(with_mux("")).unwrap();
        assert_eq!(s.worker.task_queue, "rindle_provider");
        assert_eq!(s.worker.max_concurrent_activities, 4);
        assert_eq!(s.enqueue.uniqueness_period_s, 86_400);
        assert!(s.database.url.starts_with("sqlite:"));
        let web = &s.profiles["Elixir.MyApp.Profiles.Web"];
        assert_eq!(
            (web.url_ttl_s, web.playback_policy.as_str()),
            (1800, "signed")
        );
    }

    #[test]
    fn a_missing_mux_token_is_an_error_naming_the_key() {
        let err =
            Settings::from_figment(Figment::from(Toml::string(EMBEDDED_DEFAULTS))).unwrap_err();
        assert!(err.to_string().contains("mux"), "{err}");
    }

    #[test]
    fn an_unknown_key_is_an_error_naming_it() {
        let err =
            Settings::from_figment(with_mux("[worker]\nmax_concurent_activities = 3")).unwrap_err();
        assert!(
            err.to_string().contains("max_concurent_activities"),
            "{err}"
        );
    }
}
