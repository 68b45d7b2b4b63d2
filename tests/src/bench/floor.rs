//! The floor: the cheapest workflows the same Temporal server can run, measured in the same run
//! as the ingests, so that the ingest figures can be read as a ratio to what the server allows.
//!
//! - [`BareOneWorkflow`] runs one no-op activity.
//! - [`BareManyWorkflow`] runs `n` no-op activities one after the other (`n` = the activities an
//!   ingest runs end to end, counted from a real ingest's history).
//!
//! Both run on a worker inside the bench process, on a task queue of their own, on a thread and
//! tokio runtime of their own (named `bench-floor`, so that its CPU time can be read from
//! `/proc/self/task`). The worker gets generous slots: the floor must measure the server, not a
//! queue size.

use std::{
    thread::JoinHandle,
    time::{Duration, SystemTime},
};

use futures::StreamExt as _;
use temporalio_client::{
    Client, ClientOptions, Connection, ConnectionOptions, WorkflowCountOptions,
    WorkflowStartOptions,
};
use temporalio_common::telemetry::TelemetryOptions;
use temporalio_macros::{activities, workflow, workflow_methods};
use temporalio_sdk::{
    ActivityOptions, Runtime, Worker, WorkerOptions, WorkflowContext, WorkflowResult,
    activities::{ActivityContext, ActivityError},
    runtime::RuntimeOptions,
    runtime::worker_tuner::{FixedSizeSlotSupplier, TunerHolder},
};
use uuid::Uuid;

use super::{
    history,
    ingest::{BenchContext, secs_between},
    procfs::{CpuUse, Probe},
    report::Percentiles,
};

/// The floor's task queue (never the ingest's).
pub const FLOOR_TASK_QUEUE: &str = "rindle_bench_floor";

/// Name of the floor worker's threads (at most 15 bytes: Linux truncates thread names).
pub const FLOOR_THREAD_NAME: &str = "bench-floor";

/// Activity and workflow-task slots of the floor worker.
const FLOOR_SLOTS: usize = 200;

/// The no-op activity.
pub struct NoopActivities;

#[activities]
impl NoopActivities {
    /// Does nothing and returns at once.
    #[activity(name = "noop")]
    pub async fn noop(_ctx: ActivityContext, _step: u32) -> Result<(), ActivityError> {
        Ok(())
    }
}

/// Options of one no-op activity: a regular activity, like the ingest's.
fn noop_options(step: u32) -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(30))
        .activity_id(format!("noop.{step}"))
        .build()
}

/// One no-op activity, then done.
#[workflow]
#[derive(Default)]
pub struct BareOneWorkflow;

#[workflow_methods]
impl BareOneWorkflow {
    /// Runs the activity.
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<()> {
        ctx.execute_activity(NoopActivities::noop, 0u32, noop_options(0))
            .await?;
        Ok(())
    }
}

/// `n` no-op activities in sequence, then done.
#[workflow]
#[derive(Default)]
pub struct BareManyWorkflow;

#[workflow_methods]
impl BareManyWorkflow {
    /// Runs the activities one after the other.
    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>, n: u32) -> WorkflowResult<()> {
        for step in 0..n {
            ctx.execute_activity(NoopActivities::noop, step, noop_options(step))
                .await?;
        }
        Ok(())
    }
}

/// The floor worker, running on its own thread until dropped (or [`FloorWorker::stop`]).
pub struct FloorWorker {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
}

impl FloorWorker {
    /// Connects to `temporal_address` (`host:port`) from a thread of its own and polls
    /// [`FLOOR_TASK_QUEUE`]; returns once the worker is built (it polls right after).
    pub fn start(temporal_address: &str) -> anyhow::Result<FloorWorker> {
        let url = url::Url::parse(&format!("http://{temporal_address}"))?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<anyhow::Result<()>>();
        let thread = std::thread::Builder::new()
            .name(FLOOR_THREAD_NAME.into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name(FLOOR_THREAD_NAME)
                    .enable_all()
                    .build()?;
                runtime.block_on(async move {
                    let built = async {
                        let connection = Connection::connect(
                            ConnectionOptions::new(url)
                                .identity("rindle-bench-floor".to_owned())
                                .build(),
                        )
                        .await?;
                        let client =
                            Client::new(connection, ClientOptions::new("default").build())?;
                        let sdk_runtime = Runtime::from_current_tokio(
                            RuntimeOptions::builder()
                                .telemetry_options(TelemetryOptions::builder().build())
                                .build()
                                .map_err(|e| anyhow::anyhow!("{e}"))?,
                        )?;
                        let options = WorkerOptions::new(FLOOR_TASK_QUEUE)
                            .register_workflow::<BareOneWorkflow>()?
                            .register_workflow::<BareManyWorkflow>()?
                            .register_activities(NoopActivities)
                            .tuner(
                                TunerHolder::builder()
                                    .workflow_task_slot_supplier(FixedSizeSlotSupplier::new(
                                        FLOOR_SLOTS,
                                    ))
                                    .activity_task_slot_supplier(FixedSizeSlotSupplier::new(
                                        FLOOR_SLOTS,
                                    ))
                                    .local_activity_task_slot_supplier(FixedSizeSlotSupplier::new(
                                        1,
                                    ))
                                    .nexus_task_slot_supplier(FixedSizeSlotSupplier::new(1))
                                    .build(),
                            )
                            .graceful_shutdown_period(Duration::from_secs(5))
                            .build();
                        let worker = Worker::new(&sdk_runtime, client, options)?;
                        anyhow::Ok((sdk_runtime, worker))
                    };
                    let (_sdk_runtime, mut worker) = match built.await {
                        Ok(built) => {
                            let _ = ready_tx.send(Ok(()));
                            built
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(anyhow::anyhow!("{e:#}")));
                            return Err(e);
                        }
                    };
                    let stop_worker = worker.shutdown_handle();
                    let on_stop = async move {
                        let _ = stop_rx.await;
                        stop_worker();
                    };
                    let (result, ()) = tokio::join!(worker.run(), on_stop);
                    result.map_err(|e| anyhow::anyhow!("floor worker: {e}"))
                })
            })?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(FloorWorker {
                stop: Some(stop_tx),
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e.context("start the floor worker"))
            }
            Err(_) => {
                let _ = thread.join();
                anyhow::bail!("the floor worker thread ended before it started")
            }
        }
    }

    /// Stops the worker and waits for its thread.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => anyhow::bail!("the floor worker thread panicked"),
            None => Ok(()),
        }
    }
}

impl Drop for FloorWorker {
    fn drop(&mut self) {
        if let Err(e) = self.stop_and_join() {
            eprintln!("warning: {e:#}");
        }
    }
}

/// Which floor workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloorKind {
    /// [`BareOneWorkflow`].
    One,
    /// [`BareManyWorkflow`] with this many activities.
    Many(u32),
}

impl FloorKind {
    /// The workflow type name.
    pub fn workflow_type(self) -> &'static str {
        match self {
            FloorKind::One => "BareOneWorkflow",
            FloorKind::Many(_) => "BareManyWorkflow",
        }
    }

    /// Activities per run.
    pub fn activities(self) -> u32 {
        match self {
            FloorKind::One => 1,
            FloorKind::Many(n) => n,
        }
    }
}

/// What one floor phase measured.
#[derive(Debug, Clone)]
pub struct FloorFigures {
    /// The workflow.
    pub kind: FloorKind,
    /// Runs started at once.
    pub n: usize,
    /// Seconds to start them all.
    pub enqueue_s: f64,
    /// From the first start to the last close.
    pub to_closed_s: f64,
    /// Start → close, per run.
    pub latency_ms: Percentiles,
    /// Mean events per history.
    pub history_events: f64,
    /// CPU used from the first start to the last close, by component (`floor_s`: the worker).
    pub cpu: CpuUse,
}

impl FloorFigures {
    /// Workflows per second from the first start to the last close.
    pub fn per_s(&self) -> f64 {
        self.n as f64 / self.to_closed_s.max(1e-9)
    }
}

async fn start_one(client: &Client, kind: FloorKind, id: String) -> anyhow::Result<()> {
    let options = WorkflowStartOptions::new(FLOOR_TASK_QUEUE, id).build();
    match kind {
        FloorKind::One => client
            .start_workflow(BareOneWorkflow::run, (), options)
            .await
            .map(drop),
        FloorKind::Many(n) => client
            .start_workflow(BareManyWorkflow::run, n, options)
            .await
            .map(drop),
    }
    .map_err(|e| anyhow::anyhow!("start a floor workflow: {e}"))
}

/// Starts `n` floor workflows at once (bounded like the ingests) and waits until all closed.
pub async fn run(ctx: &BenchContext, kind: FloorKind, n: usize) -> anyhow::Result<FloorFigures> {
    let tag = &Uuid::new_v4().simple().to_string()[..8];
    let ids: Vec<String> = (0..n)
        .map(|i| format!("bench-floor-{}-{tag}-{i}", kind.workflow_type()))
        .collect();
    let probe = Probe {
        worker: None,
        server: ctx.server_pid,
    };
    let query = format!(
        "WorkflowType = '{}' AND ExecutionStatus = 'Completed'",
        kind.workflow_type()
    );
    let client = &ctx.client;
    // Earlier rounds' runs of the same type are closed already: count from there.
    let count = || async {
        client
            .count_workflows(query.clone(), WorkflowCountOptions::default())
            .await
            .map(|c| c.count())
            .map_err(|e| anyhow::anyhow!("count workflows: {e}"))
    };
    let already = count().await?;
    let before = probe.snapshot();
    let t0 = SystemTime::now();
    let starting = async {
        let results: Vec<(usize, SystemTime, anyhow::Result<()>)> =
            futures::stream::iter(ids.iter().cloned().enumerate())
                .map(|(i, id)| async move {
                    let at = SystemTime::now();
                    (i, at, start_one(client, kind, id).await)
                })
                .buffer_unordered(ctx.enqueue_concurrency.max(1))
                .collect()
                .await;
        let mut times = vec![SystemTime::UNIX_EPOCH; n];
        for (i, at, result) in results {
            result?;
            times[i] = at;
        }
        anyhow::Ok((times, SystemTime::now()))
    };
    let waiting = async {
        let mut last = usize::MAX;
        let mut last_change = tokio::time::Instant::now();
        loop {
            let done = count().await?.saturating_sub(already);
            if done >= n {
                return anyhow::Ok(());
            }
            if done != last {
                last = done;
                last_change = tokio::time::Instant::now();
            } else if last_change.elapsed() > ctx.stall_timeout {
                anyhow::bail!("floor {}: stuck at {done}/{n} closed", kind.workflow_type());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let ((started, enqueue_done), ()) = tokio::try_join!(starting, waiting)?;
    let after = probe.snapshot();
    let described = history::describe_closed(client, &ids).await?;
    let latency_ms = Percentiles::of(
        described
            .iter()
            .zip(&started)
            .map(|(d, at)| secs_between(*at, d.close) * 1000.0)
            .collect(),
    );
    let last_close = described.iter().map(|d| d.close).max().unwrap_or(t0);
    Ok(FloorFigures {
        kind,
        n,
        enqueue_s: secs_between(t0, enqueue_done),
        to_closed_s: secs_between(t0, last_close),
        latency_ms,
        history_events: described
            .iter()
            .map(|d| d.history_length as f64)
            .sum::<f64>()
            / described.len().max(1) as f64,
        cpu: before.until(&after),
    })
}
