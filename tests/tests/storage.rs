//! Private signed URLs against real servers: an S3 protocol server that checks SigV4
//! (s3s-fs), and the worker's own `/media` route for local files. No test sleeps: expiry is
//! exercised by signing at an explicit past instant.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, RANGE};
use rindle_activities::storage::{
    LocalStorage, LocalUrlError, SignedUrl, StorageBackend, StorageBackendConfig, StorageError,
    verify_local_request,
};
use rindle_tests::s3::S3Server;
use secrecy::SecretString;
use sha2::Sha256;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use url::Url;

const TTL: Duration = Duration::from_secs(1800);
const SECRET: &str = "a-test-signing-secret-of-at-least-32-bytes";
const VIDEO: &[u8] = b"0123456789 pretend this is an mp4 file";
const OUTSIDE: &[u8] = b"TOP SECRET: outside the media root";

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

fn query_param(url: &str, name: &str) -> String {
    Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("{name} missing from the URL"))
}

fn with_query_param(url: &str, name: &str, value: &str) -> String {
    let mut url = Url::parse(url).unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == name {
                value.to_owned()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    url.into()
}

/// The same hex string with its first digit changed.
fn tampered(hex: &str) -> String {
    let first = if hex.starts_with('0') { '1' } else { '0' };
    format!("{first}{}", &hex[1..])
}

// ---------------------------------------------------------------------------------------------
// S3

async fn s3_backend(s3: &S3Server) -> StorageBackend {
    StorageBackend::from_config("s3", &s3.storage_config()).unwrap()
}

#[tokio::test]
async fn a_presigned_s3_get_returns_the_object_bytes() {
    let s3 = S3Server::start().await.unwrap();
    s3.put("variants/clip one.mp4", VIDEO).await.unwrap();
    let signed = s3_backend(&s3)
        .await
        .signed_url("variants/clip one.mp4", TTL)
        .await
        .unwrap();

    let response = http().get(signed.expose()).send().await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.bytes().await.unwrap(), VIDEO);
}

#[tokio::test]
async fn the_s3_server_refuses_a_tampered_signature() {
    let s3 = S3Server::start().await.unwrap();
    s3.put("a.mp4", VIDEO).await.unwrap();
    let signed = s3_backend(&s3)
        .await
        .signed_url("a.mp4", TTL)
        .await
        .unwrap();
    let sig = query_param(signed.expose(), "X-Amz-Signature");
    let url = with_query_param(signed.expose(), "X-Amz-Signature", &tampered(&sig));

    let response = http().get(url).send().await.unwrap();

    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_s3_server_refuses_a_signature_reused_for_another_key() {
    let s3 = S3Server::start().await.unwrap();
    s3.put("a.mp4", VIDEO).await.unwrap();
    s3.put("b.mp4", OUTSIDE).await.unwrap();
    let signed = s3_backend(&s3)
        .await
        .signed_url("a.mp4", TTL)
        .await
        .unwrap();
    let url = signed.expose().replace("/a.mp4?", "/b.mp4?");

    let response = http().get(url).send().await.unwrap();

    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn s3_urls_expire_after_the_requested_ttl_and_never_later_than_seven_days() {
    // object_store signs with the current clock only, so the S3 server cannot be shown an
    // already-expired URL without sleeping; check what the server enforces instead.
    let s3 = S3Server::start().await.unwrap();
    let backend = s3_backend(&s3).await;
    let before = SystemTime::now();

    let signed = backend.signed_url("a.mp4", TTL).await.unwrap();

    assert_eq!(query_param(signed.expose(), "X-Amz-Expires"), "1800");
    let lifetime = signed.expires_at().duration_since(before).unwrap();
    assert!(
        lifetime > TTL - Duration::from_secs(2) && lifetime <= TTL,
        "{lifetime:?}"
    );
    let too_long = backend
        .signed_url("a.mp4", Duration::from_secs(7 * 24 * 3600 + 1))
        .await
        .unwrap_err();
    assert!(
        matches!(too_long, StorageError::InvalidTtl { .. }),
        "{too_long}"
    );
    assert!(!too_long.is_retryable());
}

#[tokio::test]
async fn public_endpoint_changes_the_signed_host_and_the_signature_binds_it() {
    let s3 = S3Server::start().await.unwrap();
    s3.put("a.mp4", VIDEO).await.unwrap();
    let internal = Url::parse(&s3.endpoint).unwrap();
    let port = internal.port().unwrap();
    // The same server under another name: "localhost" instead of "127.0.0.1".
    let public = Url::parse(&format!("http://localhost:{port}")).unwrap();
    let mut config = s3.storage_config();
    let StorageBackendConfig::S3 {
        public_endpoint, ..
    } = &mut config
    else {
        unreachable!()
    };
    *public_endpoint = Some(public);
    let backend = StorageBackend::from_config("s3", &config).unwrap();

    let signed = backend.signed_url("a.mp4", TTL).await.unwrap();

    let url = Url::parse(signed.expose()).unwrap();
    assert_eq!(url.host_str(), Some("localhost"));
    assert!(!signed.expose().contains("127.0.0.1"));
    let response = http().get(signed.expose()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.bytes().await.unwrap(), VIDEO);

    // A URL signed for the internal host does not work once its host is rewritten.
    let internal_url = s3_backend(&s3)
        .await
        .signed_url("a.mp4", TTL)
        .await
        .unwrap();
    let rewritten = internal_url.expose().replace("127.0.0.1", "localhost");
    let response = http().get(rewritten).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn s3_signed_urls_never_print_their_signature() {
    let s3 = S3Server::start().await.unwrap();
    let signed = s3_backend(&s3)
        .await
        .signed_url("a.mp4", TTL)
        .await
        .unwrap();
    assert_never_prints_its_query(&signed, &query_param(signed.expose(), "X-Amz-Signature"));
    assert!(signed.redacted().ends_with("/rindle-test/a.mp4?<redacted>"));
}

// ---------------------------------------------------------------------------------------------
// Local

/// The worker's media router on an ephemeral port, over a root with one video, a symlink
/// pointing out of the root, and a secret file next to (outside) the root.
struct LocalMedia {
    addr: SocketAddr,
    backend: StorageBackend,
    _dir: TempDir,
    server: JoinHandle<()>,
}

impl Drop for LocalMedia {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl LocalMedia {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("variants")).unwrap();
        std::fs::write(root.join("variants/720p.mp4"), VIDEO).unwrap();
        std::fs::create_dir(dir.path().join("outside")).unwrap();
        std::fs::write(dir.path().join("outside/secret.txt"), OUTSIDE).unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside/secret.txt"), root.join("link.mp4"))
            .unwrap();

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = local_config(root, &format!("http://{addr}"), SECRET);
        let backend = StorageBackend::from_config("local", &config).unwrap();
        let backends = HashMap::from([("any-name".to_owned(), backend.clone())]);
        let app = rindle_worker::http::media::router(Arc::new(backends));
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            addr,
            backend,
            _dir: dir,
            server,
        }
    }

    fn local(&self) -> &LocalStorage {
        match &self.backend {
            StorageBackend::Local(local) => local,
            StorageBackend::S3(_) => unreachable!(),
        }
    }

    async fn sign(&self, key: &str) -> SignedUrl {
        self.backend.signed_url(key, TTL).await.unwrap()
    }

    /// A request target (`path?query`) the client sends byte for byte, without the URL
    /// normalization (`..`, `%2e%2e`) an HTTP client library would apply.
    async fn raw_get(&self, target: &str) -> (u16, Vec<u8>) {
        let mut stream = TcpStream::connect(self.addr).await.unwrap();
        let request = format!(
            "GET {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        let head = String::from_utf8_lossy(&response);
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP response: {head}"));
        (status, response)
    }
}

fn local_config(root: PathBuf, public_base_url: &str, secret: &str) -> StorageBackendConfig {
    StorageBackendConfig::Local {
        root,
        public_base_url: Url::parse(public_base_url).unwrap(),
        signing_secret: SecretString::from(secret),
    }
}

/// A genuine signature for any key, even one `signed_url` refuses to sign (to prove the
/// route refuses escaping paths on its own, not only because their signature is wrong).
fn forge_with_the_real_secret(backend: &str, key: &str) -> (String, String) {
    let expires = (SystemTime::now() + TTL)
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("GET\n{backend}\n{key}\n{expires}").as_bytes());
    (expires, hex::encode(mac.finalize().into_bytes()))
}

async fn assert_forbidden(url: &str) {
    let response = http().get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN, "{url}");
    assert_eq!(response.text().await.unwrap(), "forbidden");
}

#[tokio::test]
async fn a_signed_local_url_serves_the_file() {
    let media = LocalMedia::start().await;
    let signed = media.sign("variants/720p.mp4").await;
    assert!(
        signed.expose().starts_with(&format!(
            "http://{}/media/local/variants/720p.mp4?expires=",
            media.addr
        )),
        "{}",
        signed.redacted()
    );

    let response = http().get(signed.expose()).send().await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.bytes().await.unwrap(), VIDEO);
}

#[tokio::test]
async fn a_range_request_gets_206_and_only_the_requested_bytes() {
    let media = LocalMedia::start().await;
    let signed = media.sign("variants/720p.mp4").await;

    let response = http()
        .get(signed.expose())
        .header(RANGE, "bytes=2-5")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        response.headers()[CONTENT_RANGE],
        format!("bytes 2-5/{}", VIDEO.len()).as_str()
    );
    assert_eq!(response.bytes().await.unwrap(), &VIDEO[2..=5]);
}

#[tokio::test]
async fn a_head_request_reports_the_length_without_a_body() {
    let media = LocalMedia::start().await;
    let signed = media.sign("variants/720p.mp4").await;

    let response = http().head(signed.expose()).send().await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[CONTENT_LENGTH],
        VIDEO.len().to_string().as_str()
    );
    assert!(response.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_tampered_signature_or_expiry_is_forbidden() {
    let media = LocalMedia::start().await;
    let signed = media.sign("variants/720p.mp4").await;
    let sig = query_param(signed.expose(), "sig");
    let expires: u64 = query_param(signed.expose(), "expires").parse().unwrap();

    assert_forbidden(&with_query_param(signed.expose(), "sig", &tampered(&sig))).await;
    let later = (expires + 3600).to_string();
    assert_forbidden(&with_query_param(signed.expose(), "expires", &later)).await;
}

#[tokio::test]
async fn a_signature_reused_for_another_key_or_backend_is_forbidden() {
    let media = LocalMedia::start().await;
    let signed = media.sign("variants/720p.mp4").await;

    assert_forbidden(&signed.expose().replace("/720p.mp4?", "/1080p.mp4?")).await;
    assert_forbidden(&signed.expose().replace("/media/local/", "/media/other/")).await;
}

#[tokio::test]
async fn missing_or_duplicated_signature_parameters_are_forbidden() {
    let media = LocalMedia::start().await;
    let signed = media.sign("variants/720p.mp4").await;
    let bare = rindle_workflows::redact::strip_query(signed.expose()).to_owned();
    let expires = query_param(signed.expose(), "expires");
    let sig = query_param(signed.expose(), "sig");

    assert_forbidden(&bare).await;
    assert_forbidden(&format!("{bare}?expires={expires}")).await;
    assert_forbidden(&format!("{bare}?sig={sig}")).await;
    assert_forbidden(&format!("{bare}?expires={expires}&sig={sig}&sig={sig}")).await;
    assert_forbidden(&format!("{bare}?expires=&sig=")).await;
}

#[tokio::test]
async fn an_expired_url_is_forbidden() {
    let media = LocalMedia::start().await;
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    let expired = media
        .local()
        .signed_url_at("variants/720p.mp4", Duration::from_secs(60), an_hour_ago)
        .unwrap();

    assert_forbidden(expired.expose()).await;
}

#[tokio::test]
async fn a_genuine_url_for_a_missing_file_is_not_found() {
    let media = LocalMedia::start().await;
    let signed = media.sign("variants/missing.mp4").await;

    let response = http().get(signed.expose()).send().await.unwrap();

    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn path_traversal_never_serves_a_file_outside_the_root() {
    let media = LocalMedia::start().await;
    let attempts = [
        // (request path after /media/local/, key the attacker signs)
        ("../outside/secret.txt", "../outside/secret.txt"),
        ("%2e%2e/outside/secret.txt", "../outside/secret.txt"),
        (
            "variants/%2E%2E/%2e%2e/outside/secret.txt",
            "variants/../../outside/secret.txt",
        ),
        ("..%2foutside%2fsecret.txt", "../outside/secret.txt"),
        ("/etc/passwd", "/etc/passwd"),
        ("%2Fetc%2Fpasswd", "/etc/passwd"),
        ("..%5coutside%5csecret.txt", "..\\outside\\secret.txt"),
    ];
    for (path, key) in attempts {
        // Unsigned (a signature for another key), then signed with the real secret.
        let signed = media.sign("variants/720p.mp4").await;
        let stolen_query = Url::parse(signed.expose())
            .unwrap()
            .query()
            .unwrap()
            .to_owned();
        let (expires, sig) = forge_with_the_real_secret("local", key);
        for query in [stolen_query, format!("expires={expires}&sig={sig}")] {
            let (status, body) = media.raw_get(&format!("/media/local/{path}?{query}")).await;
            assert!(
                status == 403 || status == 404,
                "{path}: {status} {}",
                String::from_utf8_lossy(&body)
            );
            assert!(
                !body.windows(OUTSIDE.len()).any(|w| w == OUTSIDE),
                "{path} leaked"
            );
        }
    }
}

#[tokio::test]
async fn a_symlink_out_of_the_root_is_forbidden_even_with_a_genuine_url() {
    let media = LocalMedia::start().await;
    let signed = media.sign("link.mp4").await;

    let response = http().get(signed.expose()).send().await.unwrap();

    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(response.text().await.unwrap(), "forbidden");
}

#[tokio::test]
async fn keys_that_could_escape_the_root_are_never_signed() {
    let media = LocalMedia::start().await;
    for key in ["", "../x.mp4", "a/../../x.mp4", "/etc/passwd", "a//b.mp4"] {
        let err = media.backend.signed_url(key, TTL).await.unwrap_err();
        assert!(
            matches!(err, StorageError::InvalidKey { .. }),
            "{key:?}: {err}"
        );
        assert!(!err.is_retryable());
    }
}

#[tokio::test]
async fn local_signed_urls_never_print_their_signature() {
    let media = LocalMedia::start().await;
    let signed = media.sign("variants/720p.mp4").await;
    assert_never_prints_its_query(&signed, &query_param(signed.expose(), "sig"));
    assert_eq!(
        signed.to_string(),
        format!(
            "http://{}/media/local/variants/720p.mp4?<redacted>",
            media.addr
        )
    );
}

#[test]
fn verify_local_request_accepts_a_url_until_its_expiry_instant() {
    let dir = tempfile::tempdir().unwrap();
    let config = local_config(dir.path().to_owned(), "https://media.example.com", SECRET);
    let StorageBackend::Local(local) = StorageBackend::from_config("local", &config).unwrap()
    else {
        unreachable!()
    };
    let signed_at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let signed = local
        .signed_url_at("variants/720p.mp4", Duration::from_secs(60), signed_at)
        .unwrap();
    let expires = query_param(signed.expose(), "expires");
    let sig = query_param(signed.expose(), "sig");
    let secret = SecretString::from(SECRET);
    let verify =
        |now| verify_local_request(&secret, "local", "variants/720p.mp4", &expires, &sig, now);

    assert_eq!(signed.expires_at(), signed_at + Duration::from_secs(60));
    assert_eq!(verify(signed_at), Ok(()));
    assert_eq!(verify(signed_at + Duration::from_secs(59)), Ok(()));
    assert_eq!(
        verify(signed_at + Duration::from_secs(60)),
        Err(LocalUrlError::Expired)
    );
    assert_eq!(
        verify_local_request(
            &secret,
            "local",
            "variants/other.mp4",
            &expires,
            &sig,
            signed_at
        ),
        Err(LocalUrlError::BadSignature)
    );
}

#[test]
fn configuration_errors_name_the_backend_and_the_wrong_key() {
    let dir = tempfile::tempdir().unwrap();
    let short = local_config(dir.path().to_owned(), "https://h", "too-short");
    let err = StorageBackend::from_config("media", &short).unwrap_err();
    assert_eq!(
        err.to_string(),
        "storage backend `media`: invalid `signing_secret`: is 9 bytes long; at least 32 are required"
    );

    let missing_root = local_config(dir.path().join("nope"), "https://h", SECRET);
    let err = StorageBackend::from_config("media", &missing_root).unwrap_err();
    assert!(
        matches!(&err, StorageError::Config { backend, key: "root", .. } if backend == "media"),
        "{err}"
    );
}

fn assert_never_prints_its_query(signed: &SignedUrl, signature: &str) {
    for printed in [
        format!("{signed:?}"),
        format!("{signed:#?}"),
        signed.to_string(),
        signed.redacted(),
    ] {
        assert!(!printed.contains(signature), "{printed}");
        assert!(printed.contains("?<redacted>"), "{printed}");
        assert!(
            !printed.contains("sig=") && !printed.contains("X-Amz-"),
            "{printed}"
        );
    }
}
