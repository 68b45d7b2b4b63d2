//! Builds the service from [`Settings`] and runs it: the Temporal worker and the HTTP server,
//! side by side, until a shutdown signal. `main` and the end-to-end tests both come here.

use std::{collections::HashMap, future::Future, sync::Arc, time::Duration};

use temporalio_client::{
    Client, ClientOptions, Connection, envconfig::LoadClientConfigProfileOptions,
};
use temporalio_common::telemetry::TelemetryOptions;
use temporalio_sdk::runtime::RuntimeOptions;
use temporalio_sdk::{
    Runtime, Worker, WorkerOptions,
    runtime::worker_tuner::{FixedSizeSlotSupplier, TunerHolder},
};
use tokio::net::TcpListener;

use rindle_activities::{
    ingest::IngestActivities, mux::MuxClient, storage::StorageBackend, store::Store,
};
use rindle_workflows::IngestWorkflow;

use crate::{config::Settings, http};

/// Why the service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The store could not be opened or migrated.
    #[error("database: {0}")]
    Store(#[from] rindle_activities::store::StoreError),
    /// A storage backend is misconfigured.
    #[error("storage.{name}: {source}")]
    Storage {
        /// Backend name.
        name: String,
        /// Why (boxed: the error is large and start-up only).
        #[source]
        source: Box<rindle_activities::storage::StorageError>,
    },
    /// The Mux client could not be built.
    #[error("mux: {0}")]
    Mux(#[from] rindle_activities::mux::MuxError),
    /// Profiles and backends do not fit together.
    #[error("{0}")]
    Setup(#[from] rindle_activities::ingest::IngestSetupError),
    /// Temporal connection or worker failure.
    #[error("temporal: {0}")]
    Temporal(String),
    /// The HTTP server failed.
    #[error("http: {0}")]
    Http(#[from] std::io::Error),
}

/// Connects to Temporal the way Temporal's CLI and SDKs do (`TEMPORAL_ADDRESS`,
/// `TEMPORAL_NAMESPACE`, `TEMPORAL_API_KEY`, `TEMPORAL_PROFILE` / `temporal.toml`).
pub async fn connect_temporal() -> Result<Client, AppError> {
    let (conn_opts, client_opts) =
        ClientOptions::load_from_config(LoadClientConfigProfileOptions::default())
            .map_err(|e| AppError::Temporal(format!("client configuration: {e}")))?;
    let connection = Connection::connect(conn_opts)
        .await
        .map_err(|e| AppError::Temporal(format!("connect: {e}")))?;
    Client::new(connection, client_opts).map_err(|e| AppError::Temporal(e.to_string()))
}

/// Opens the store of record, migrating it when configured to.
pub async fn open_store(settings: &Settings) -> Result<Store, AppError> {
    let store = Store::connect(&settings.database.url, &settings.database.schema).await?;
    if settings.database.migrate_on_start {
        store.migrate().await?;
    }
    Ok(store)
}

/// Builds every storage backend named in the configuration.
pub fn storage_backends(settings: &Settings) -> Result<HashMap<String, StorageBackend>, AppError> {
    settings
        .storage
        .iter()
        .map(|(name, cfg)| {
            StorageBackend::from_config(name, cfg)
                .map(|b| (name.clone(), b))
                .map_err(|source| AppError::Storage {
                    source: Box::new(source),
                    name: name.clone(),
                })
        })
        .collect()
}

/// Runs the worker and the HTTP server (on `listener`) until `shutdown` resolves.
///
/// Must be driven on the current thread: the SDK's worker future is not `Send`.
pub async fn run(
    settings: Settings,
    client: Client,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AppError> {
    let store = open_store(&settings).await?;
    let backends = storage_backends(&settings)?;
    let mux = MuxClient::new(&settings.mux)?;
    let activities = IngestActivities::new(
        store.clone(),
        backends.clone(),
        settings.profiles.clone(),
        mux,
        settings.ingest.clone(),
    )?;

    let runtime = Runtime::from_current_tokio(
        RuntimeOptions::builder()
            .telemetry_options(TelemetryOptions::builder().build())
            .build()
            .map_err(|e| AppError::Temporal(e.to_string()))?,
    )
    .map_err(|e| AppError::Temporal(e.to_string()))?;
    let slots = settings.worker.max_concurrent_activities.max(1);
    let options = WorkerOptions::new(settings.worker.task_queue.clone())
        .register_workflow::<IngestWorkflow>()
        .map_err(|e| AppError::Temporal(e.to_string()))?
        .register_activities(activities)
        .tuner(
            TunerHolder::builder()
                .workflow_task_slot_supplier(FixedSizeSlotSupplier::new(100))
                .activity_task_slot_supplier(FixedSizeSlotSupplier::new(slots))
                .local_activity_task_slot_supplier(FixedSizeSlotSupplier::new(slots))
                .nexus_task_slot_supplier(FixedSizeSlotSupplier::new(1))
                .build(),
        )
        .graceful_shutdown_period(Duration::from_secs(settings.worker.graceful_shutdown_s))
        .build();
    let webhooks = http::webhooks::WebhookState {
        store: store.clone(),
        client: client.clone(),
        settings: Arc::new(settings.webhooks.clone()),
    };
    let mut worker =
        Worker::new(&runtime, client, options).map_err(|e| AppError::Temporal(e.to_string()))?;
    let stop_worker = worker.shutdown_handle();

    let router = http::router(http::HttpState {
        store,
        backends: Arc::new(backends),
        webhooks,
    });
    let (stop_http_tx, stop_http_rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, router).with_graceful_shutdown(async {
        let _ = stop_http_rx.await;
    });
    tracing::info!(
        target: "rindle.worker",
        task_queue = %settings.worker.task_queue,
        "worker started"
    );

    let on_shutdown = async move {
        shutdown.await;
        tracing::info!(target: "rindle.worker", "shutting down");
        stop_worker();
        let _ = stop_http_tx.send(());
    };
    let (worker_result, http_result, ()) = tokio::join!(worker.run(), server, on_shutdown);
    worker_result.map_err(|e| AppError::Temporal(e.to_string()))?;
    http_result?;
    Ok(())
}
