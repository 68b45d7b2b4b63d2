//! Local files, handed to Mux through the worker's own HTTP server.
//!
//! URL: `{public_base_url}/media/{backend}/{key}?expires={unix secs}&sig={hex}` where `sig` is
//! the lowercase hex HMAC-SHA256, keyed with the backend's `signing_secret`, of
//! `"GET\n{backend}\n{key}\n{expires}"`. The backend name is part of the signed message so a
//! URL minted for one local backend can never be replayed against another that happens to
//! share its secret. The key and backend name cannot contain `\n` (keys refuse control
//! characters, names are `[A-Za-z0-9._-]`), so the message is unambiguous.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use url::Url;

use super::{SignedUrl, StorageError, ttl_secs, validate_base_url, validate_key};

type HmacSha256 = Hmac<Sha256>;

/// The shortest signing secret we accept: 32 bytes (256 bits, SHA-256's output size), so
/// guessing the key is no easier than forging a signature.
const MIN_SECRET_LEN: usize = 32;

/// Why a media request's signature was refused. The HTTP layer answers all three with the
/// same 403 so a caller learns nothing; the distinction is for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LocalUrlError {
    /// `expires` or `sig` is missing, not a number, or not 64 hex digits.
    #[error("malformed media URL signature parameters")]
    Malformed,
    /// The signature does not match the backend, key and expiry.
    #[error("media URL signature does not match")]
    BadSignature,
    /// The signature is genuine but its expiry has passed.
    #[error("media URL has expired")]
    Expired,
}

/// A local storage backend: files under `root`, URLs signed for the worker's `/media` route.
///
/// Cheap to clone (shared state behind an `Arc`), so the HTTP router and the activities can
/// each hold one.
#[derive(Clone)]
pub struct LocalStorage {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    /// Canonical (symlink-free, absolute) so that `starts_with` checks are meaningful.
    root: PathBuf,
    public_base_url: Url,
    signing_secret: SecretString,
}

impl std::fmt::Debug for LocalStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStorage")
            .field("name", &self.inner.name)
            .field("root", &self.inner.root)
            .field("public_base_url", &self.inner.public_base_url.as_str())
            .finish_non_exhaustive()
    }
}

impl LocalStorage {
    /// Validates the settings of the local backend `name` and builds it. `root` must be an
    /// existing directory; `public_base_url` must be `http(s)` without query or fragment;
    /// `signing_secret` must be at least 32 bytes.
    pub(super) fn new(
        name: &str,
        root: &Path,
        public_base_url: &Url,
        signing_secret: SecretString,
    ) -> Result<Self, StorageError> {
        let config = |key, reason: String| StorageError::Config {
            backend: name.to_owned(),
            key,
            reason,
        };
        let name_ok = !name.is_empty()
            && name != "."
            && name != ".."
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !name_ok {
            return Err(config(
                "name",
                "a local backend's name appears in media URLs: use [A-Za-z0-9._-], not `.` or `..`"
                    .to_owned(),
            ));
        }
        let secret_len = signing_secret.expose_secret().len();
        if secret_len < MIN_SECRET_LEN {
            return Err(config(
                "signing_secret",
                format!("is {secret_len} bytes long; at least {MIN_SECRET_LEN} are required"),
            ));
        }
        // http is fine here: in development the worker is often reached over plain http.
        validate_base_url(name, "public_base_url", public_base_url, true)?;
        if public_base_url.cannot_be_a_base() {
            return Err(config("public_base_url", "cannot be a base URL".to_owned()));
        }
        let root = root
            .canonicalize()
            .map_err(|e| config("root", format!("{} cannot be opened: {e}", root.display())))?;
        if !root.is_dir() {
            return Err(config(
                "root",
                format!("{} is not a directory", root.display()),
            ));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                name: name.to_owned(),
                root,
                public_base_url: public_base_url.clone(),
                signing_secret,
            }),
        })
    }

    /// The backend's name: the `{backend}` segment of its media URLs.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The canonical root directory every key is resolved under.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Mints a media URL for `key`, valid for `ttl` from now.
    pub fn signed_url(&self, key: &str, ttl: Duration) -> Result<SignedUrl, StorageError> {
        self.signed_url_at(key, ttl, SystemTime::now())
    }

    /// Mints a media URL as if the clock read `now`: deterministic URLs for tests (e.g. one
    /// that is already expired) without sleeping or faking the system clock.
    pub fn signed_url_at(
        &self,
        key: &str,
        ttl: Duration,
        now: SystemTime,
    ) -> Result<SignedUrl, StorageError> {
        let inner = &self.inner;
        validate_key(&inner.name, key)?;
        let ttl_secs = ttl_secs(&inner.name, ttl)?;
        let expires = unix_secs(now)
            .checked_add(ttl_secs)
            .filter(|&e| e <= i64::MAX as u64)
            .ok_or_else(|| StorageError::InvalidTtl {
                backend: inner.name.clone(),
                ttl,
                reason: "it overflows the clock",
            })?;
        let sig = hex::encode(
            mac(
                &inner.signing_secret,
                &inner.name,
                key,
                &expires.to_string(),
            )
            .finalize()
            .into_bytes(),
        );

        let mut url = inner.public_base_url.clone();
        {
            let mut segments = url.path_segments_mut().map_err(|()| StorageError::Config {
                backend: inner.name.clone(),
                key: "public_base_url",
                reason: "cannot be a base URL".to_owned(),
            })?;
            segments
                .pop_if_empty()
                .push("media")
                .push(&inner.name)
                .extend(key.split('/'));
        }
        url.query_pairs_mut()
            .append_pair("expires", &expires.to_string())
            .append_pair("sig", &sig);
        Ok(SignedUrl::new(
            url.into(),
            UNIX_EPOCH + Duration::from_secs(expires),
        ))
    }

    /// Checks a media request's `expires` and `sig` against this backend, at `now`.
    pub fn verify(
        &self,
        key: &str,
        expires: &str,
        sig: &str,
        now: SystemTime,
    ) -> Result<(), LocalUrlError> {
        verify_local_request(
            &self.inner.signing_secret,
            &self.inner.name,
            key,
            expires,
            sig,
            now,
        )
    }

    /// The file `key` names, refusing anything that is not a regular file inside the root,
    /// including through symlinks (the path is canonicalized before the containment check,
    /// and the canonical path is what the caller should open).
    ///
    /// Blocking (file-system calls): from async code, run it on a blocking thread.
    pub fn resolve(&self, key: &str) -> Result<PathBuf, StorageError> {
        let inner = &self.inner;
        validate_key(&inner.name, key)?;
        let not_found = || StorageError::NotFound {
            backend: inner.name.clone(),
            key: key.to_owned(),
        };
        let io_error = |source| StorageError::Io {
            backend: inner.name.clone(),
            key: key.to_owned(),
            source,
        };
        let canonical = match inner.root.join(key).canonicalize() {
            Ok(path) => path,
            Err(e) if is_not_found(&e) => return Err(not_found()),
            Err(e) => return Err(io_error(e)),
        };
        if !canonical.starts_with(&inner.root) {
            return Err(StorageError::OutsideRoot {
                backend: inner.name.clone(),
                key: key.to_owned(),
            });
        }
        match canonical.metadata() {
            Ok(meta) if meta.is_file() => Ok(canonical),
            Ok(_) => Err(not_found()),
            Err(e) if is_not_found(&e) => Err(not_found()),
            Err(e) => Err(io_error(e)),
        }
    }
}

/// Checks a local media URL's signature, then its expiry, at `now`.
///
/// `backend` and `key` are the (percent-decoded) path segments after `/media/`; `expires`
/// and `sig` are the query parameters. The comparison is constant-time (`hmac`'s
/// `verify_slice`), so response timing leaks nothing about the expected signature. The
/// signature is checked before the expiry so a tampered `expires` is a bad signature.
pub fn verify_local_request(
    secret: &SecretString,
    backend: &str,
    key: &str,
    expires: &str,
    sig: &str,
    now: SystemTime,
) -> Result<(), LocalUrlError> {
    let well_formed_expires =
        !expires.is_empty() && expires.len() <= 20 && expires.bytes().all(|b| b.is_ascii_digit());
    let expires_secs: u64 = match well_formed_expires.then(|| expires.parse()) {
        Some(Ok(secs)) => secs,
        _ => return Err(LocalUrlError::Malformed),
    };
    let well_formed_sig =
        sig.len() == 64 && sig.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let sig = match well_formed_sig.then(|| hex::decode(sig)) {
        Some(Ok(bytes)) => bytes,
        _ => return Err(LocalUrlError::Malformed),
    };
    mac(secret, backend, key, expires)
        .verify_slice(&sig)
        .map_err(|_| LocalUrlError::BadSignature)?;
    if unix_secs(now) >= expires_secs {
        return Err(LocalUrlError::Expired);
    }
    Ok(())
}

/// The HMAC over the signed message `"GET\n{backend}\n{key}\n{expires}"`.
fn mac(secret: &SecretString, backend: &str, key: &str, expires: &str) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret.expose_secret().as_bytes())
        .expect("HMAC accepts keys of any length");
    for part in [
        b"GET\n" as &[u8],
        backend.as_bytes(),
        b"\n",
        key.as_bytes(),
        b"\n",
        expires.as_bytes(),
    ] {
        mac.update(part);
    }
    mac
}

/// "No such file", including a key that walks through a regular file (`a.mp4/x`).
fn is_not_found(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// Seconds since the Unix epoch; instants before it count as 0 (they only make URLs older).
fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn storage(root: &Path) -> LocalStorage {
        LocalStorage::new(
            "local",
            root,
            &Url::parse("http://media.test:8080/base/").unwrap(),
            SecretString::from(SECRET),
        )
        .unwrap()
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn a_url_carries_the_backend_the_encoded_key_the_expiry_and_the_signature() {
        let dir = tempfile::tempdir().unwrap();
        let signed = storage(dir.path())
            .signed_url_at("a b/c?.mp4", Duration::from_secs(60), at(1_000))
            .unwrap();
        let expected_sig = hex::encode(
            mac(&SecretString::from(SECRET), "local", "a b/c?.mp4", "1060")
                .finalize()
                .into_bytes(),
        );
        assert_eq!(
            signed.expose(),
            format!(
                "http://media.test:8080/base/media/local/a%20b/c%3F.mp4?expires=1060&sig={expected_sig}"
            )
        );
        assert_eq!(signed.expires_at(), at(1_060));
    }

    #[test]
    fn a_genuine_signature_verifies_until_it_expires() {
        let secret = SecretString::from(SECRET);
        let sig = hex::encode(
            mac(&secret, "local", "k.mp4", "1060")
                .finalize()
                .into_bytes(),
        );
        assert_eq!(
            verify_local_request(&secret, "local", "k.mp4", "1060", &sig, at(1_059)),
            Ok(())
        );
        assert_eq!(
            verify_local_request(&secret, "local", "k.mp4", "1060", &sig, at(1_060)),
            Err(LocalUrlError::Expired)
        );
    }

    #[test]
    fn a_signature_for_another_key_backend_expiry_or_secret_is_refused() {
        let secret = SecretString::from(SECRET);
        let sig = hex::encode(
            mac(&secret, "local", "k.mp4", "1060")
                .finalize()
                .into_bytes(),
        );
        let now = at(1_000);
        let bad = Err(LocalUrlError::BadSignature);
        assert_eq!(
            verify_local_request(&secret, "local", "other.mp4", "1060", &sig, now),
            bad
        );
        assert_eq!(
            verify_local_request(&secret, "other", "k.mp4", "1060", &sig, now),
            bad
        );
        assert_eq!(
            verify_local_request(&secret, "local", "k.mp4", "9999", &sig, now),
            bad
        );
        let other_secret = SecretString::from("x".repeat(32));
        assert_eq!(
            verify_local_request(&other_secret, "local", "k.mp4", "1060", &sig, now),
            bad
        );
        let mut flipped = sig.clone().into_bytes();
        flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(
            verify_local_request(&secret, "local", "k.mp4", "1060", &flipped, now),
            bad
        );
    }

    #[test]
    fn malformed_parameters_are_refused_before_any_signature_check() {
        let secret = SecretString::from(SECRET);
        let sig = hex::encode(mac(&secret, "local", "k", "1060").finalize().into_bytes());
        let now = at(1_000);
        let malformed = Err(LocalUrlError::Malformed);
        for expires in ["", "-1", "+1060", "10.5", "1e9", "99999999999999999999999"] {
            assert_eq!(
                verify_local_request(&secret, "local", "k", expires, &sig, now),
                malformed
            );
        }
        for sig in [
            "",
            "zz",
            &sig[..63],
            &sig.to_uppercase(),
            &format!("{sig}00"),
        ] {
            assert_eq!(
                verify_local_request(&secret, "local", "k", "1060", sig, now),
                malformed
            );
        }
    }

    #[test]
    fn short_secrets_bad_names_and_missing_roots_are_configuration_errors() {
        let dir = tempfile::tempdir().unwrap();
        let url = Url::parse("https://h").unwrap();
        let key_of = |r: Result<LocalStorage, StorageError>| match r {
            Err(StorageError::Config { key, .. }) => key,
            other => panic!("accepted: {other:?}"),
        };
        assert_eq!(
            key_of(LocalStorage::new(
                "l",
                dir.path(),
                &url,
                SecretString::from("short")
            )),
            "signing_secret"
        );
        assert_eq!(
            key_of(LocalStorage::new(
                "a/b",
                dir.path(),
                &url,
                SecretString::from(SECRET)
            )),
            "name"
        );
        assert_eq!(
            key_of(LocalStorage::new(
                "l",
                &dir.path().join("missing"),
                &url,
                SecretString::from(SECRET)
            )),
            "root"
        );
        assert_eq!(
            key_of(LocalStorage::new(
                "l",
                dir.path(),
                &Url::parse("ftp://h").unwrap(),
                SecretString::from(SECRET)
            )),
            "public_base_url"
        );
    }

    #[test]
    fn resolve_finds_files_and_refuses_directories_missing_files_and_symlinks_out_of_root() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.txt"), b"secret").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("v")).unwrap();
        std::fs::write(dir.path().join("v/a.mp4"), b"video").unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("secret.txt"),
            dir.path().join("v/link.mp4"),
        )
        .unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("out")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("v/a.mp4"), dir.path().join("inside.mp4"))
            .unwrap();
        let s = storage(dir.path());

        assert_eq!(
            std::fs::read(s.resolve("v/a.mp4").unwrap()).unwrap(),
            b"video"
        );
        assert_eq!(
            std::fs::read(s.resolve("inside.mp4").unwrap()).unwrap(),
            b"video"
        );
        assert!(matches!(s.resolve("v"), Err(StorageError::NotFound { .. })));
        assert!(matches!(
            s.resolve("v/missing.mp4"),
            Err(StorageError::NotFound { .. })
        ));
        assert!(matches!(
            s.resolve("v/link.mp4"),
            Err(StorageError::OutsideRoot { .. })
        ));
        assert!(matches!(
            s.resolve("out/secret.txt"),
            Err(StorageError::OutsideRoot { .. })
        ));
        assert!(matches!(
            s.resolve("../secret.txt"),
            Err(StorageError::InvalidKey { .. })
        ));
        assert!(matches!(
            s.resolve("/etc/passwd"),
            Err(StorageError::InvalidKey { .. })
        ));
    }
}
