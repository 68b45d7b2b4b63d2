//! S3-compatible stores: SigV4 query-presigned GET URLs minted by `object_store`.
//!
//! Signing is local (no request to the store). When `public_endpoint` is set, the URL is
//! signed for that endpoint instead of `endpoint`: SigV4 binds the `host` header, so a URL
//! signed for an internal host cannot be rewritten to a public one afterwards.

use std::time::{Duration, SystemTime};

use chrono::NaiveDateTime;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::signer::{Method, Signer};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::{SignedUrl, StorageError, ttl_secs, validate_base_url, validate_key};

/// SigV4's limit on `X-Amz-Expires`: 7 days.
pub const MAX_PRESIGN_TTL: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// The settings of one S3 backend, borrowed from its configuration.
pub(super) struct S3Settings<'a> {
    pub name: &'a str,
    pub bucket: &'a str,
    pub region: &'a str,
    pub endpoint: Option<&'a Url>,
    pub public_endpoint: Option<&'a Url>,
    pub access_key_id: &'a str,
    pub secret_access_key: &'a SecretString,
    pub allow_http: bool,
    pub virtual_hosted_style: bool,
}

/// An S3-compatible backend that presigns GET URLs for Mux.
///
/// It holds only a signer (an `AmazonS3` client pointed at the endpoint Mux will use); the
/// worker itself never reads the objects. Cheap to clone.
#[derive(Clone)]
pub struct S3Storage {
    name: String,
    bucket: String,
    signer: AmazonS3,
}

impl std::fmt::Debug for S3Storage {
    // By hand: the client's own `Debug` would print its credential provider.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Storage")
            .field("name", &self.name)
            .field("bucket", &self.bucket)
            .finish_non_exhaustive()
    }
}

impl S3Storage {
    /// Validates the settings and builds the signer. No network access happens here.
    pub(super) fn new(s: S3Settings<'_>) -> Result<Self, StorageError> {
        let config = |key, reason: &str| StorageError::Config {
            backend: s.name.to_owned(),
            key,
            reason: reason.to_owned(),
        };
        for (key, value) in [
            ("bucket", s.bucket),
            ("region", s.region),
            ("access_key_id", s.access_key_id),
            ("secret_access_key", s.secret_access_key.expose_secret()),
        ] {
            if value.trim().is_empty() {
                return Err(config(key, "is empty"));
            }
        }
        if let Some(endpoint) = s.endpoint {
            validate_base_url(s.name, "endpoint", endpoint, s.allow_http)?;
        }
        if let Some(public) = s.public_endpoint {
            validate_base_url(s.name, "public_endpoint", public, s.allow_http)?;
        }

        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(s.bucket)
            .with_region(s.region)
            .with_access_key_id(s.access_key_id)
            .with_secret_access_key(s.secret_access_key.expose_secret())
            .with_allow_http(s.allow_http)
            .with_virtual_hosted_style_request(s.virtual_hosted_style);
        let (signing_endpoint, key) = match (s.public_endpoint, s.endpoint) {
            (Some(public), _) => (Some(public), "public_endpoint"),
            (None, endpoint) => (endpoint, "endpoint"),
        };
        if let Some(endpoint) = signing_endpoint {
            builder = builder.with_endpoint(endpoint.as_str().trim_end_matches('/'));
        }
        let signer = builder.build().map_err(|e| StorageError::Config {
            backend: s.name.to_owned(),
            key,
            reason: e.to_string(),
        })?;
        Ok(Self {
            name: s.name.to_owned(),
            bucket: s.bucket.to_owned(),
            signer,
        })
    }

    /// The backend's configured name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bucket the URLs point into.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Presigns a GET of `key` valid for `ttl` (whole seconds, 1 s to 7 days).
    pub async fn signed_url(&self, key: &str, ttl: Duration) -> Result<SignedUrl, StorageError> {
        validate_key(&self.name, key)?;
        let secs = ttl_secs(&self.name, ttl)?;
        if secs > MAX_PRESIGN_TTL.as_secs() {
            return Err(StorageError::InvalidTtl {
                backend: self.name.clone(),
                ttl,
                reason: "SigV4 presigned URLs cannot outlive 7 days (604800 s)",
            });
        }
        let path = Path::parse(key).map_err(|_| StorageError::InvalidKey {
            backend: self.name.clone(),
            key: key.to_owned(),
            reason: "is not a valid object path",
        })?;
        let before = SystemTime::now();
        let url = self
            .signer
            .signed_url(Method::GET, &path, Duration::from_secs(secs))
            .await
            .map_err(|source| StorageError::Sign {
                backend: self.name.clone(),
                key: key.to_owned(),
                source,
            })?;
        let expires_at = presigned_expiry(&url).unwrap_or(before + Duration::from_secs(secs));
        Ok(SignedUrl::new(url.into(), expires_at))
    }
}

/// The exact instant a SigV4 presigned URL stops working: `X-Amz-Date + X-Amz-Expires`.
fn presigned_expiry(url: &Url) -> Option<SystemTime> {
    let (mut date, mut expires) = (None, None);
    for (k, v) in url.query_pairs() {
        match &*k {
            "X-Amz-Date" => date = NaiveDateTime::parse_from_str(&v, "%Y%m%dT%H%M%SZ").ok(),
            "X-Amz-Expires" => expires = v.parse::<u64>().ok(),
            _ => {}
        }
    }
    let signed_at = u64::try_from(date?.and_utc().timestamp()).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(signed_at.checked_add(expires?)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings<'a>(
        endpoint: Option<&'a Url>,
        public: Option<&'a Url>,
        secret: &'a SecretString,
    ) -> S3Settings<'a> {
        S3Settings {
            name: "s3",
            bucket: "media",
            region: "us-east-1",
            endpoint,
            public_endpoint: public,
            access_key_id: "AKID",
            secret_access_key: secret,
            allow_http: true,
            virtual_hosted_style: false,
        }
    }

    #[tokio::test]
    async fn urls_are_path_style_presigned_gets_for_the_public_endpoint_when_set() {
        let secret = SecretString::from("secret");
        let internal = Url::parse("http://minio.internal:9000").unwrap();
        let public = Url::parse("https://media.example.com").unwrap();
        let s3 = S3Storage::new(settings(Some(&internal), Some(&public), &secret)).unwrap();
        let before = SystemTime::now();
        let signed = s3
            .signed_url("v/a b.mp4", Duration::from_secs(1800))
            .await
            .unwrap();
        let url = Url::parse(signed.expose()).unwrap();
        assert_eq!(url.host_str(), Some("media.example.com"));
        assert_eq!(url.path(), "/media/v/a%20b.mp4");
        let expires: Vec<_> = url
            .query_pairs()
            .filter(|(k, _)| k == "X-Amz-Expires")
            .map(|(_, v)| v.into_owned())
            .collect();
        assert_eq!(expires, ["1800"]);
        let lifetime = signed.expires_at().duration_since(before).unwrap();
        assert!(lifetime <= Duration::from_secs(1800) && lifetime > Duration::from_secs(1790));
        assert_eq!(
            signed.to_string(),
            "https://media.example.com/media/v/a%20b.mp4?<redacted>"
        );
    }

    #[tokio::test]
    async fn ttls_beyond_seven_days_are_refused() {
        let secret = SecretString::from("secret");
        let s3 = S3Storage::new(settings(None, None, &secret)).unwrap();
        let err = s3
            .signed_url("a.mp4", MAX_PRESIGN_TTL + Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::InvalidTtl { .. }), "{err}");
        assert!(!err.is_retryable());
        s3.signed_url("a.mp4", MAX_PRESIGN_TTL).await.unwrap();
    }

    #[test]
    fn missing_credentials_and_plain_http_without_allow_http_are_configuration_errors() {
        let empty = SecretString::from("");
        let err = S3Storage::new(settings(None, None, &empty)).unwrap_err();
        assert!(
            matches!(
                err,
                StorageError::Config {
                    key: "secret_access_key",
                    ..
                }
            ),
            "{err}"
        );

        let secret = SecretString::from("secret");
        let http = Url::parse("http://minio:9000").unwrap();
        let mut s = settings(Some(&http), None, &secret);
        s.allow_http = false;
        let err = S3Storage::new(s).unwrap_err();
        assert!(
            matches!(
                err,
                StorageError::Config {
                    key: "endpoint",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn debug_output_omits_the_credentials() {
        let secret = SecretString::from("very-secret-key");
        let s3 = S3Storage::new(settings(None, None, &secret)).unwrap();
        let debug = format!("{s3:?}");
        assert!(
            !debug.contains("very-secret-key") && !debug.contains("AKID"),
            "{debug}"
        );
    }
}
