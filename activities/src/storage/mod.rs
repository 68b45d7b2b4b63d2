//! Private signed URLs for variant files.
//!
//! Mux pulls each variant from a URL we hand it, so that URL must be readable by Mux and by
//! nobody else, and only for a short while. This module mints those URLs. A signed URL is a
//! bearer credential: [`SignedUrl`] keeps it out of `Debug`/`Display` and log lines.
//!
//! # Layout
//! - this file: [`StorageBackendConfig`] (one `[storage.<name>]` table of the configuration),
//!   [`StorageBackend`] (built once at start-up), [`SignedUrl`], [`StorageError`] and the key
//!   rules every backend shares.
//! - [`local`]: files on the worker's disk, served by the worker's own HTTP server
//!   (`/media/{backend}/{key}`) behind an HMAC-SHA256 signature: [`LocalStorage`],
//!   [`verify_local_request`], [`LocalUrlError`].
//! - [`s3`]: S3-compatible stores, presigned with SigV4 by `object_store`: [`S3Storage`].

pub mod local;
pub mod s3;

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

pub use local::{LocalStorage, LocalUrlError, verify_local_request};
pub use s3::S3Storage;

/// The configuration of one storage backend, as written in the worker's configuration file.
///
/// Profiles name a backend; the backend decides how a private URL is minted. The `kind` tag
/// selects the variant (`kind = "local"` or `kind = "s3"`), and unknown keys are rejected so
/// that a typo (`signing_secert`) fails at start-up instead of silently changing behaviour.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum StorageBackendConfig {
    /// Files under `root` on the worker's disk, served by the worker's HTTP server.
    Local {
        /// The directory that holds the variant files; keys are paths relative to it.
        root: PathBuf,
        /// Where the worker's HTTP server is reachable *by Mux* (e.g. `https://ingest.example.com`).
        #[serde(deserialize_with = "serde_url::required")]
        public_base_url: Url,
        /// The HMAC-SHA256 key of the media URLs; at least 32 bytes.
        signing_secret: SecretString,
    },
    /// An S3-compatible object store (AWS S3, MinIO, R2, …).
    S3 {
        /// The bucket that holds the variant files.
        bucket: String,
        /// The SigV4 signing region (`us-east-1` for most S3-compatible servers).
        region: String,
        /// An S3-compatible server's endpoint; AWS when absent.
        #[serde(default, deserialize_with = "serde_url::optional")]
        endpoint: Option<Url>,
        /// The host Mux can reach, when it differs from `endpoint` (the signature binds the
        /// host, so the URL is signed for this endpoint instead).
        #[serde(default, deserialize_with = "serde_url::optional")]
        public_endpoint: Option<Url>,
        /// The access key id of the credentials that sign the URLs.
        access_key_id: String,
        /// The secret access key of the credentials that sign the URLs.
        secret_access_key: SecretString,
        /// Allow `http://` endpoints (development and tests only: the URL carries a credential).
        #[serde(default)]
        allow_http: bool,
        /// Virtual-hosted-style URLs (`https://{bucket}.host/key`); path style when false.
        /// With an `endpoint`, the endpoint must then already include the bucket.
        #[serde(default)]
        virtual_hosted_style: bool,
    },
}

/// A storage backend ready to sign URLs, built once at start-up from its configuration.
///
/// All validation happens in [`StorageBackend::from_config`], so a misconfigured backend stops
/// the worker at start-up with a message naming the backend and the key, rather than failing
/// every ingest later.
#[derive(Debug, Clone)]
pub enum StorageBackend {
    /// Files on the worker's disk, served by the worker's `/media` route.
    Local(LocalStorage),
    /// An S3-compatible object store.
    S3(S3Storage),
}

impl StorageBackend {
    /// Validates `cfg` and builds the backend called `name` (the name appears in error
    /// messages and, for local backends, in the media URLs).
    pub fn from_config(name: &str, cfg: &StorageBackendConfig) -> Result<Self, StorageError> {
        match cfg {
            StorageBackendConfig::Local {
                root,
                public_base_url,
                signing_secret,
            } => LocalStorage::new(name, root, public_base_url, signing_secret.clone())
                .map(Self::Local),
            StorageBackendConfig::S3 {
                bucket,
                region,
                endpoint,
                public_endpoint,
                access_key_id,
                secret_access_key,
                allow_http,
                virtual_hosted_style,
            } => S3Storage::new(s3::S3Settings {
                name,
                bucket,
                region,
                endpoint: endpoint.as_ref(),
                public_endpoint: public_endpoint.as_ref(),
                access_key_id,
                secret_access_key,
                allow_http: *allow_http,
                virtual_hosted_style: *virtual_hosted_style,
            })
            .map(Self::S3),
        }
    }

    /// The backend's configured name, for logs and error messages.
    pub fn name(&self) -> &str {
        match self {
            Self::Local(local) => local.name(),
            Self::S3(s3) => s3.name(),
        }
    }

    /// Mints a private GET URL for `key`, valid for `ttl` (whole seconds, at least one).
    ///
    /// The key is checked first (non-empty, relative, no `.`/`..`/empty segment, no control
    /// character or backslash) so that no backend ever signs a URL that could reach outside
    /// its root or bucket prefix.
    pub async fn signed_url(&self, key: &str, ttl: Duration) -> Result<SignedUrl, StorageError> {
        match self {
            Self::Local(local) => local.signed_url(key, ttl),
            Self::S3(s3) => s3.signed_url(key, ttl).await,
        }
    }
}

/// A private URL that grants whoever holds it read access to one file until it expires.
///
/// It is a bearer credential, so the URL is held as a secret: `Debug` and `Display` print
/// only the URL without its query string, followed by `?<redacted>`. Call [`SignedUrl::expose`]
/// only where the URL leaves the process on purpose (the Mux create-asset request body).
/// It deliberately implements no `Serialize`, so it cannot slip into a workflow payload.
#[derive(Clone)]
pub struct SignedUrl {
    url: SecretString,
    expires_at: SystemTime,
}

impl SignedUrl {
    fn new(url: String, expires_at: SystemTime) -> Self {
        Self {
            url: SecretString::from(url),
            expires_at,
        }
    }

    /// The full URL, signature included: only for handing it to its intended reader.
    pub fn expose(&self) -> &str {
        self.url.expose_secret()
    }

    /// The URL without its query string (where the signature lives), for logs and errors.
    pub fn redacted(&self) -> String {
        format!(
            "{}?<redacted>",
            rindle_workflows::redact::strip_query(self.expose())
        )
    }

    /// The instant after which the URL is refused, so callers can tell whether it is still
    /// worth handing out.
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }
}

impl fmt::Debug for SignedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedUrl")
            .field("url", &self.redacted())
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl fmt::Display for SignedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Why a URL could not be signed or a file could not be resolved.
///
/// Every variant names the backend, so an operator can tell which configuration to fix.
/// None carries a signature or a secret.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The storage key is unusable (empty, absolute, `..`, …): a caller bug or a corrupt row.
    #[error("storage backend `{backend}`: invalid key {key:?}: {reason}")]
    InvalidKey {
        /// The backend asked to sign or resolve the key.
        backend: String,
        /// The offending key.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The backend's configuration is wrong; raised at start-up by [`StorageBackend::from_config`].
    #[error("storage backend `{backend}`: invalid `{key}`: {reason}")]
    Config {
        /// The backend being built.
        backend: String,
        /// The configuration key that is wrong.
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The requested lifetime cannot be signed.
    #[error("storage backend `{backend}`: a TTL of {ttl:?} is not allowed: {reason}")]
    InvalidTtl {
        /// The backend asked to sign.
        backend: String,
        /// The requested lifetime.
        ttl: Duration,
        /// The allowed range.
        reason: &'static str,
    },
    /// The signer failed (for S3: credentials or crypto provider).
    #[error("storage backend `{backend}`: could not sign a URL for {key:?}")]
    Sign {
        /// The backend asked to sign.
        backend: String,
        /// The key being signed.
        key: String,
        /// The signer's error.
        #[source]
        source: object_store::Error,
    },
    /// The key names no regular file under a local backend's root.
    #[error("storage backend `{backend}`: no file for key {key:?}")]
    NotFound {
        /// The local backend.
        backend: String,
        /// The key that was looked up.
        key: String,
    },
    /// The key resolves (through a symlink) to a path outside a local backend's root.
    #[error("storage backend `{backend}`: key {key:?} resolves outside the backend's root")]
    OutsideRoot {
        /// The local backend.
        backend: String,
        /// The key that was looked up.
        key: String,
    },
    /// A file-system error other than "not found" while resolving a local key.
    #[error("storage backend `{backend}`: I/O error resolving key {key:?}")]
    Io {
        /// The local backend.
        backend: String,
        /// The key that was looked up.
        key: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl StorageError {
    /// Whether trying again may succeed, so activities can fail non-retryably at once on
    /// configuration and input errors instead of burning their retry budget.
    ///
    /// Signing errors count as retryable: a credential provider may fail transiently.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Sign { .. } | Self::Io { .. } => true,
            Self::InvalidKey { .. }
            | Self::Config { .. }
            | Self::InvalidTtl { .. }
            | Self::NotFound { .. }
            | Self::OutsideRoot { .. } => false,
        }
    }
}

/// Checks the rules every backend shares for a storage key, so that no URL is ever signed
/// for a key that could climb out of a root or a bucket prefix.
fn validate_key(backend: &str, key: &str) -> Result<(), StorageError> {
    let reason = if key.is_empty() {
        Some("is empty")
    } else if key.starts_with('/') {
        Some("is absolute")
    } else if key.len() > 1024 {
        Some("is longer than 1024 bytes")
    } else if key.chars().any(char::is_control) {
        Some("contains a control character")
    } else if key.contains('\\') {
        Some("contains a backslash")
    } else if key
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        Some("has a `.` or `..` segment")
    } else if key.split('/').any(str::is_empty) {
        Some("has an empty path segment")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(StorageError::InvalidKey {
            backend: backend.to_owned(),
            key: key.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// The TTL in whole seconds, at least one (a zero-second URL is born expired, and SigV4
/// requires `X-Amz-Expires >= 1`).
fn ttl_secs(backend: &str, ttl: Duration) -> Result<u64, StorageError> {
    match ttl.as_secs() {
        0 => Err(StorageError::InvalidTtl {
            backend: backend.to_owned(),
            ttl,
            reason: "it must be at least 1 second",
        }),
        secs => Ok(secs),
    }
}

/// Checks an endpoint-like URL (scheme, no query or fragment, `http` only when allowed).
fn validate_base_url(
    backend: &str,
    key: &'static str,
    url: &Url,
    allow_http: bool,
) -> Result<(), StorageError> {
    let fail = |reason: String| {
        Err(StorageError::Config {
            backend: backend.to_owned(),
            key,
            reason,
        })
    };
    match url.scheme() {
        "https" => {}
        "http" if allow_http => {}
        "http" => return fail("uses http:// but `allow_http` is false".to_owned()),
        other => return fail(format!("scheme {other:?} is not http or https")),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return fail("has no host".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return fail("must not have a query string or fragment".to_owned());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return fail("must not carry credentials".to_owned());
    }
    Ok(())
}

/// `Url` fields deserialized from strings with a clear message, independent of whether the
/// `url` crate's own `serde` feature is enabled somewhere in the build.
mod serde_url {
    use serde::{Deserialize, Deserializer, de::Error as _};
    use url::Url;

    fn parse<E: serde::de::Error>(raw: &str) -> Result<Url, E> {
        Url::parse(raw).map_err(|e| E::custom(format!("invalid URL {raw:?}: {e}")))
    }

    pub(super) fn required<'de, D: Deserializer<'de>>(d: D) -> Result<Url, D::Error> {
        let raw = String::deserialize(d)?;
        parse(&raw)
    }

    pub(super) fn optional<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Url>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(raw) if raw.trim().is_empty() => Err(D::Error::custom("empty URL")),
            Some(raw) => parse(&raw).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid_reason(key: &str) -> &'static str {
        match validate_key("b", key) {
            Err(StorageError::InvalidKey { reason, .. }) => reason,
            other => panic!("{key:?} was accepted: {other:?}"),
        }
    }

    #[test]
    fn ordinary_keys_are_accepted() {
        for key in [
            "a.mp4",
            "assets/0b4e/variants/720p.mp4",
            "with space/ünïcödé.mp4",
            "..hidden/x..y/...",
        ] {
            validate_key("b", key).unwrap_or_else(|e| panic!("{key:?}: {e}"));
        }
    }

    #[test]
    fn keys_that_could_escape_a_root_are_refused() {
        assert_eq!(invalid_reason(""), "is empty");
        assert_eq!(invalid_reason("/etc/passwd"), "is absolute");
        assert_eq!(invalid_reason("../x"), "has a `.` or `..` segment");
        assert_eq!(invalid_reason("a/../../x"), "has a `.` or `..` segment");
        assert_eq!(invalid_reason("a/./x"), "has a `.` or `..` segment");
        assert_eq!(invalid_reason("a//x"), "has an empty path segment");
        assert_eq!(invalid_reason("a/"), "has an empty path segment");
        assert_eq!(invalid_reason("a\\..\\x"), "contains a backslash");
        assert_eq!(invalid_reason("a\nb"), "contains a control character");
        assert_eq!(invalid_reason("a\0b"), "contains a control character");
    }

    #[test]
    fn a_zero_ttl_is_refused() {
        assert!(matches!(
            ttl_secs("b", Duration::from_millis(999)),
            Err(StorageError::InvalidTtl { .. })
        ));
        assert_eq!(ttl_secs("b", Duration::from_secs(1800)).unwrap(), 1800);
    }

    #[test]
    fn signed_urls_print_without_their_query_string() {
        let url = SignedUrl::new(
            "https://h/media/local/a.mp4?expires=1&sig=deadbeef".to_owned(),
            SystemTime::UNIX_EPOCH,
        );
        assert_eq!(url.to_string(), "https://h/media/local/a.mp4?<redacted>");
        assert_eq!(url.redacted(), "https://h/media/local/a.mp4?<redacted>");
        assert!(!format!("{url:?}").contains("deadbeef"));
        assert!(!format!("{url:#?}").contains("expires=1"));
        assert!(url.expose().ends_with("sig=deadbeef"));
    }

    #[test]
    fn configuration_errors_name_the_backend_and_the_key() {
        let err = validate_base_url(
            "media",
            "public_base_url",
            &Url::parse("http://h").unwrap(),
            false,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "storage backend `media`: invalid `public_base_url`: uses http:// but `allow_http` is false"
        );
        assert!(!err.is_retryable());
    }

    #[test]
    fn local_configuration_deserializes_from_toml_like_json() {
        let cfg: StorageBackendConfig = serde_json::from_value(serde_json::json!({
            "kind": "local",
            "root": "/srv/media",
            "public_base_url": "https://ingest.example.com",
            "signing_secret": "x",
        }))
        .unwrap();
        assert!(matches!(cfg, StorageBackendConfig::Local { .. }));
        assert!(!format!("{cfg:?}").contains("\"x\""));
    }

    #[test]
    fn s3_configuration_defaults_to_https_and_path_style() {
        let cfg: StorageBackendConfig = serde_json::from_value(serde_json::json!({
            "kind": "s3",
            "bucket": "b",
            "region": "us-east-1",
            "access_key_id": "AK",
            "secret_access_key": "SK",
        }))
        .unwrap();
        let StorageBackendConfig::S3 {
            allow_http,
            virtual_hosted_style,
            endpoint,
            public_endpoint,
            ..
        } = cfg
        else {
            panic!("not s3")
        };
        assert!(!allow_http && !virtual_hosted_style);
        assert!(endpoint.is_none() && public_endpoint.is_none());
    }

    #[test]
    fn unknown_configuration_keys_and_bad_urls_are_refused() {
        let typo = serde_json::from_value::<StorageBackendConfig>(serde_json::json!({
            "kind": "local",
            "root": "/srv/media",
            "public_base_url": "https://ingest.example.com",
            "signing_secert": "x",
        }));
        assert!(typo.is_err());
        let bad_url = serde_json::from_value::<StorageBackendConfig>(serde_json::json!({
            "kind": "s3",
            "bucket": "b",
            "region": "r",
            "endpoint": "not a url",
            "access_key_id": "AK",
            "secret_access_key": "SK",
        }))
        .unwrap_err();
        assert!(bad_url.to_string().contains("invalid URL"), "{bad_url}");
    }
}
