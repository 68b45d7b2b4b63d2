//! The Mux REST client: create, get, delete and list video assets over plain HTTP.
//!
//! # Layout
//! - [`MuxConfig`] (here): base URL, API token, request timeout, read from the worker's config.
//! - `client`: [`MuxClient`], one method per Mux call. Each call sends exactly one HTTP request:
//!   the client never retries, because retries (and their backoff) belong to Temporal activities,
//!   and a hidden retry of a create would make a second asset.
//! - `types`: the create body ([`CreateAssetRequest`]) and what is read back ([`CreatedAsset`],
//!   [`MuxAsset`], [`AssetPage`], [`DeleteOutcome`]). Responses are unwrapped from `data`.
//! - `error`: [`MuxError`], classified by HTTP status first and body second (Mux's 429 body has
//!   its own shape), with [`MuxError::is_retryable`], [`MuxError::retry_after`] and
//!   [`parse_retry_after`] for the activity's retry decision.
//!
//! Nothing here logs or returns the signed input URL, the token secret or a raw asset id: the URL
//! and secret are [`secrecy::SecretString`]s, ids are redacted in `Debug`, and messages from Mux
//! are scrubbed before they are put into errors.

mod client;
mod error;
mod types;

use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Deserializer};
use url::Url;

pub use client::MuxClient;
pub use error::{DEFAULT_RETRY_AFTER, MAX_RETRY_AFTER, MuxError, parse_retry_after};
pub use types::{
    AssetPage, CreateAssetRequest, CreatedAsset, DeleteOutcome, MuxAsset, MuxAssetStatus,
    extract_playback_ids,
};

/// Mux's API host, used unless the config points elsewhere (the simulator, a proxy).
pub const DEFAULT_BASE_URL: &str = "https://api.mux.com";

/// Default per-request timeout in seconds: Mux answers a create in about a second, and 30 s still
/// ends a hung connection well before the activity's own start-to-close timeout.
pub const DEFAULT_REQUEST_TIMEOUT_S: u64 = 30;

/// How to reach Mux, read from the worker's config (`[mux]`, `MUX_TOKEN_ID`, `MUX_TOKEN_SECRET`).
///
/// `Debug` prints `[REDACTED]` for the secret (a property of [`SecretString`]).
#[derive(Clone, Debug, Deserialize)]
pub struct MuxConfig {
    /// Where the API lives; `https://api.mux.com` unless overridden (tests point it at the simulator).
    #[serde(
        default = "default_base_url",
        deserialize_with = "deserialize_base_url"
    )]
    pub base_url: Url,
    /// The access token id, sent as the Basic-auth user. Tokens are scoped to one Mux environment.
    pub token_id: String,
    /// The access token secret, sent as the Basic-auth password.
    pub token_secret: SecretString,
    /// Timeout of one whole request (connect to end of body), in seconds.
    #[serde(default = "default_request_timeout_s")]
    pub request_timeout_s: u64,
}

impl MuxConfig {
    /// A config for the real API with the default timeout, so callers and tests need only the token.
    pub fn new(token_id: impl Into<String>, token_secret: SecretString) -> Self {
        Self {
            base_url: default_base_url(),
            token_id: token_id.into(),
            token_secret,
            request_timeout_s: DEFAULT_REQUEST_TIMEOUT_S,
        }
    }

    /// The request timeout as a `Duration`.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_s)
    }
}

fn default_base_url() -> Url {
    // A constant that parses; covered by `default_config_targets_the_real_api`.
    Url::parse(DEFAULT_BASE_URL).expect("DEFAULT_BASE_URL is a valid URL")
}

fn default_request_timeout_s() -> u64 {
    DEFAULT_REQUEST_TIMEOUT_S
}

/// Parses `base_url` from a string, so the config does not depend on `url`'s `serde` feature.
fn deserialize_base_url<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Url, D::Error> {
    let raw = String::deserialize(deserializer)?;
    Url::parse(&raw).map_err(|e| serde::de::Error::custom(format!("invalid mux base_url: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn default_config_targets_the_real_api() {
        let cfg: MuxConfig =
            serde_json::from_str(r#"{"token_id":"id","token_secret":"s3cr3t"}"#).unwrap();
        assert_eq!(cfg.base_url.as_str(), "https://api.mux.com/");
        assert_eq!(cfg.request_timeout_s, 30);
        assert_eq!(cfg.token_secret.expose_secret(), "s3cr3t");
        assert!(!format!("{cfg:?}").contains("s3cr3t"));
    }

    #[test]
    fn base_url_and_timeout_can_be_overridden() {
        let cfg: MuxConfig = serde_json::from_str(
            r#"{"base_url":"http://127.0.0.1:4010","token_id":"id","token_secret":"s","request_timeout_s":5}"#,
        )
        .unwrap();
        assert_eq!(cfg.base_url.as_str(), "http://127.0.0.1:4010/");
        assert_eq!(cfg.request_timeout(), Duration::from_secs(5));
        let bad = serde_json::from_str::<MuxConfig>(
            r#"{"base_url":"not a url","token_id":"id","token_secret":"s"}"#,
        );
        assert!(bad.is_err());
    }
}
