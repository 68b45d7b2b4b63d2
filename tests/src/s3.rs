//! A real S3 protocol server for tests: `s3s-fs` over a temporary directory, with SigV4
//! authentication turned on, so presigned URLs are checked exactly as a real store checks them
//! (a wrong signature, host or expiry is refused with 403).
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let s3 = rindle_tests::s3::S3Server::start().await?;
//! s3.put("variants/a.mp4", b"bytes".to_vec()).await?;
//! let backend = rindle_activities::storage::StorageBackend::from_config("s3", &s3.storage_config())?;
//! # Ok(()) }
//! ```

use std::path::Path as FsPath;

use anyhow::Context as _;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use object_store::ObjectStoreExt as _;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use rindle_activities::storage::StorageBackendConfig;
use s3s::auth::SimpleAuth;
use s3s::service::{S3Service, S3ServiceBuilder};
use secrecy::SecretString;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use url::Url;

/// A running S3 server on `127.0.0.1` with one empty bucket. Stopped (and its files
/// deleted) on `Drop`.
pub struct S3Server {
    /// `http://127.0.0.1:{port}`: path-style requests, plain HTTP.
    pub endpoint: String,
    /// The only access key the server accepts.
    pub access_key: String,
    /// The secret key of `access_key`.
    pub secret_key: String,
    /// The bucket created at start-up.
    pub bucket: String,
    /// The region clients sign for (the server accepts any).
    pub region: String,
    store: AmazonS3,
    accept_loop: JoinHandle<()>,
    // Declared last: dropped after the server task is told to stop.
    root: TempDir,
}

impl S3Server {
    /// Starts a server on an ephemeral port with a fresh bucket and random credentials.
    pub async fn start() -> anyhow::Result<Self> {
        let root = tempfile::tempdir().context("creating the S3 root directory")?;
        let bucket = "rindle-test".to_owned();
        std::fs::create_dir(root.path().join(&bucket)).context("creating the bucket directory")?;
        let access_key = format!("AKTEST{}", uuid::Uuid::new_v4().simple()).to_uppercase();
        let secret_key = format!("secret-{}", uuid::Uuid::new_v4().simple());
        let region = "us-east-1".to_owned();

        let fs = s3s_fs::FileSystem::new(root.path())
            .map_err(|e| anyhow::anyhow!("s3s-fs over {}: {e:?}", root.path().display()))?;
        let mut service = S3ServiceBuilder::new(fs);
        service.set_auth(SimpleAuth::from_single(
            access_key.clone(),
            secret_key.clone(),
        ));
        let service = service.build();

        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the S3 server")?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let accept_loop = tokio::spawn(accept_loop(listener, service));

        let store = AmazonS3Builder::new()
            .with_endpoint(&endpoint)
            .with_allow_http(true)
            .with_region(&region)
            .with_bucket_name(&bucket)
            .with_access_key_id(&access_key)
            .with_secret_access_key(&secret_key)
            .build()
            .context("building the S3 test client")?;

        Ok(Self {
            endpoint,
            access_key,
            secret_key,
            bucket,
            region,
            store,
            accept_loop,
            root,
        })
    }

    /// Uploads `bytes` as `key` (through the S3 API, signed like any client).
    pub async fn put(&self, key: &str, bytes: impl Into<Vec<u8>>) -> anyhow::Result<()> {
        let path = Path::parse(key).with_context(|| format!("object key {key:?}"))?;
        let bytes: Vec<u8> = bytes.into();
        self.store
            .put(&path, bytes.into())
            .await
            .with_context(|| format!("uploading {key:?} to the test S3 server"))?;
        Ok(())
    }

    /// A client of the server, for whatever else a test needs (get, head, delete, list).
    pub fn store(&self) -> &AmazonS3 {
        &self.store
    }

    /// The server's data directory (objects live under `{root}/{bucket}/{key}`).
    pub fn root(&self) -> &FsPath {
        self.root.path()
    }

    /// A storage backend configuration for this server (path style, `allow_http`, no
    /// `public_endpoint`).
    pub fn storage_config(&self) -> StorageBackendConfig {
        StorageBackendConfig::S3 {
            bucket: self.bucket.clone(),
            region: self.region.clone(),
            endpoint: Some(Url::parse(&self.endpoint).expect("the endpoint is a valid URL")),
            public_endpoint: None,
            access_key_id: self.access_key.clone(),
            secret_access_key: SecretString::from(self.secret_key.clone()),
            allow_http: true,
            virtual_hosted_style: false,
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        // Dropping the loop's `JoinSet` aborts every open connection too.
        self.accept_loop.abort();
    }
}

async fn accept_loop(listener: TcpListener, service: S3Service) {
    let http = ConnBuilder::new(TokioExecutor::new());
    let mut connections = JoinSet::new();
    loop {
        let socket = match listener.accept().await {
            Ok((socket, _)) => socket,
            Err(error) => {
                tracing::warn!(%error, "test S3 server: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let conn = http
            .serve_connection(TokioIo::new(socket), service.clone())
            .into_owned();
        connections.spawn(async move {
            let _ = conn.await;
        });
        while connections.try_join_next().is_some() {}
    }
}
