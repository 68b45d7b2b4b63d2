//! One ingest phase: a fresh schema, N seeded assets and variants, the Mux simulator, the real
//! worker as a subprocess; then N ingests enqueued at once, and the time each row reaches
//! `processing` and `ready`.
//!
//! Transition times come from a trigger the bench adds to its own schema: every state change of
//! `media_provider_assets` is logged with `clock_timestamp()` (microseconds). Polling the rows
//! cannot see them: with webhooks sent at once a row is `processing` for a few milliseconds only,
//! and `updated_at` has a one-second resolution. The bench polls state counts (every 100 ms) only
//! to know when the phase is over.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use anyhow::Context as _;
use futures::StreamExt as _;
use sqlx::{PgPool, Row as _, postgres::PgPoolOptions};
use temporalio_client::Client;
use uuid::Uuid;

use rindle_activities::store::Store;
use rindle_proto::IngestInput;
use rindle_worker::enqueue::{Enqueued, enqueue};
use rindle_workflows::{TASK_QUEUE, validate::workflow_id_for};

use super::{
    history::{self, EventBreakdown},
    procfs::{CpuUse, Memory, Probe},
    report::Percentiles,
    worker::{WorkerProcess, WorkerSetup},
};
use crate::{
    db::TestDatabase,
    mux_sim::{AutoWebhooks, MuxSim, WebhookStats},
};

/// The profile bench ingests use (configured in the worker's embedded defaults).
pub const PROFILE: &str = "Elixir.MyApp.Profiles.Web";

/// The webhook signing secret bench workers accept.
const WEBHOOK_SECRET: &str = "whsec-bench-0123456789abcdef0123456789";

/// What the bench shares between phases.
pub struct BenchContext {
    /// Client of the dev server.
    pub client: Client,
    /// The dev server's `host:port`.
    pub temporal_address: String,
    /// The dev server's process, for its CPU time.
    pub server_pid: Option<u32>,
    /// Workflow starts in flight at once.
    pub enqueue_concurrency: usize,
    /// Give up when no row changes state for this long.
    pub stall_timeout: Duration,
    /// Where each phase's worker configuration and log go.
    pub logs_dir: PathBuf,
}

/// Where a phase is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// Every row `ready` (webhook-driven), every run closed.
    Ready,
    /// Every row `processing` (parked: waiting for a signal that does not come).
    Processing,
}

/// One ingest phase.
#[derive(Debug, Clone)]
pub struct IngestSpec {
    /// Ingests enqueued at once.
    pub n: usize,
    /// The `rindle-ingest` binary (release build).
    pub worker_binary: PathBuf,
    /// `[worker] max_concurrent_activities`.
    pub activity_slots: usize,
    /// Mux simulator sends `video.asset.ready` after each create.
    pub webhooks: bool,
    /// `[ingest] poll_interval_s`.
    pub poll_interval_s: u64,
    /// Where the phase ends.
    pub until: Until,
}

/// What one phase measured.
#[derive(Debug, Clone)]
pub struct IngestFigures {
    /// The phase.
    pub spec: IngestSpec,
    /// Seconds to start all N workflows.
    pub enqueue_s: f64,
    /// From the first enqueue to the last row reaching `processing`.
    pub to_processing_s: f64,
    /// From the first enqueue to the last row reaching `ready`.
    pub to_ready_s: Option<f64>,
    /// From the first enqueue to the last run closing.
    pub to_closed_s: Option<f64>,
    /// Enqueue → `processing`, per row.
    pub latency_to_processing_ms: Percentiles,
    /// Enqueue → `ready`, per row.
    pub latency_to_ready_ms: Option<Percentiles>,
    /// CPU used from the first enqueue to the end of the phase, by component.
    pub cpu: CpuUse,
    /// CPU seconds of the worker process over its whole life (start-up included).
    pub worker_cpu_total_s: f64,
    /// Worker memory when idle, before the first enqueue.
    pub worker_idle: Memory,
    /// Worker memory at the end of the phase (`hwm_kib`: the peak of the whole run).
    pub worker_end: Memory,
    /// Mean events per closed run's history.
    pub history_events_per_ingest: Option<f64>,
    /// Event types of one run's history.
    pub breakdown: Option<EventBreakdown>,
    /// What the simulator's webhooks did.
    pub webhooks: Option<WebhookStats>,
    /// Warnings and errors in the worker's log.
    pub worker_log_problems: usize,
    /// Runs that did not close Completed.
    pub not_completed: usize,
    /// Worker memory as rows got there: `(rows there, memory)` at each tenth.
    pub rss_curve: Vec<(usize, Memory)>,
}

impl IngestFigures {
    /// Ingests per second from the first enqueue to the last run closed (or, for a phase that
    /// ends in `processing`, to the last row there).
    pub fn closed_per_s(&self) -> f64 {
        self.spec.n as f64 / self.to_closed_s.unwrap_or(self.to_processing_s).max(1e-9)
    }

    /// Local activities one ingest runs (from its history's markers).
    pub fn local_activities_per_ingest(&self) -> Option<usize> {
        self.breakdown.as_ref().map(|b| b.local_activities)
    }

    /// Regular activities one ingest runs end to end (from its history): the ones the server
    /// dispatches, as the floor's are.
    pub fn activities_per_ingest(&self) -> Option<usize> {
        self.breakdown
            .as_ref()
            .map(|b| b.count("ActivityTaskScheduled"))
    }
}

/// Adds the transition log to the bench's own schema.
async fn install_state_log(pool: &PgPool, schema: &str) -> anyhow::Result<()> {
    let sql = format!(
        r#"
CREATE TABLE "{schema}".bench_state_log (
    seq bigserial PRIMARY KEY,
    asset_id uuid NOT NULL,
    state text NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE FUNCTION "{schema}".bench_log_state() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.state IS DISTINCT FROM OLD.state THEN
        INSERT INTO "{schema}".bench_state_log (asset_id, state) VALUES (NEW.asset_id, NEW.state);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER bench_log_state AFTER INSERT OR UPDATE ON "{schema}".media_provider_assets
    FOR EACH ROW EXECUTE FUNCTION "{schema}".bench_log_state();
"#
    );
    sqlx::raw_sql(&sql)
        .execute(pool)
        .await
        .context("install the state log")?;
    Ok(())
}

/// Seeds `n` assets, each with one variant and its file under `media_root`.
async fn seed(store: &Store, media_root: &Path, n: usize) -> anyhow::Result<Vec<IngestInput>> {
    let seeded: Vec<anyhow::Result<IngestInput>> = futures::stream::iter(0..n)
        .map(|_| async move {
            let asset_id = Uuid::new_v4();
            let storage_key = format!("uploads/{asset_id}/source.mov");
            let digest = format!("sha256:{}", Uuid::new_v4().simple());
            let variant_name = "web_720p";
            let variant_key = format!("bench/{asset_id}/{variant_name}.mp4");
            let path = media_root.join(&variant_key);
            std::fs::create_dir_all(path.parent().expect("a parent"))?;
            std::fs::write(&path, format!("fake mp4 bytes of {asset_id}"))?;
            store.insert_asset(asset_id, &storage_key, PROFILE).await?;
            store
                .insert_variant(asset_id, variant_name, &digest, Some(&variant_key))
                .await?;
            Ok(IngestInput {
                asset_id: asset_id.to_string(),
                profile: PROFILE.to_owned(),
                variant_name: variant_name.to_owned(),
                expected_storage_key: storage_key,
                expected_recipe_digest: digest,
            })
        })
        .buffer_unordered(8)
        .collect()
        .await;
    seeded.into_iter().collect()
}

/// Starts every ingest, `concurrency` at a time; returns when each start was sent.
async fn enqueue_all(
    client: &Client,
    inputs: &[IngestInput],
    concurrency: usize,
) -> anyhow::Result<Vec<SystemTime>> {
    let results: Vec<(usize, SystemTime, anyhow::Result<Enqueued>)> =
        futures::stream::iter(inputs.iter().enumerate())
            .map(|(i, input)| async move {
                let at = SystemTime::now();
                let result = enqueue(
                    client,
                    TASK_QUEUE,
                    input.clone(),
                    Duration::from_secs(86_400),
                )
                .await
                .map_err(anyhow::Error::from);
                (i, at, result)
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
    let mut times = vec![SystemTime::UNIX_EPOCH; inputs.len()];
    for (i, at, result) in results {
        match result? {
            Enqueued::Started { .. } => times[i] = at,
            other => anyhow::bail!("ingest {i} was not started anew: {other:?}"),
        }
    }
    Ok(times)
}

/// Row counts by state.
async fn state_counts(pool: &PgPool, schema: &str) -> anyhow::Result<HashMap<String, usize>> {
    let rows = sqlx::query(&format!(
        r#"SELECT state, count(*) AS n FROM "{schema}".media_provider_assets GROUP BY state"#
    ))
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get::<String, _>("state"), r.get::<i64, _>("n") as usize))
        .collect())
}

fn render_counts(counts: &HashMap<String, usize>) -> String {
    let mut v: Vec<_> = counts.iter().collect();
    v.sort();
    v.iter()
        .map(|(s, n)| format!("{s}={n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Polls state counts until every row is where `until` says, the worker dies, or nothing
/// changes for `stall_timeout`. Returns the worker's memory each time another tenth of the
/// rows got there.
async fn wait_for_rows(
    pool: &PgPool,
    schema: &str,
    n: usize,
    until: Until,
    worker: &mut WorkerProcess,
    stall_timeout: Duration,
    label: &str,
) -> anyhow::Result<Vec<(usize, Memory)>> {
    let step = n.div_ceil(10).max(1);
    let mut curve = Vec::new();
    let mut last: HashMap<String, usize> = HashMap::new();
    let mut last_change = tokio::time::Instant::now();
    let mut last_print = tokio::time::Instant::now();
    loop {
        let counts = state_counts(pool, schema).await?;
        let get = |s: &str| counts.get(s).copied().unwrap_or(0);
        let done = match until {
            Until::Ready => get("ready"),
            Until::Processing => get("processing") + get("ready"),
        };
        if done >= (curve.len() + 1) * step {
            curve.push((done, worker.memory()));
        }
        if done >= n {
            return Ok(curve);
        }
        if counts != last {
            last = counts.clone();
            last_change = tokio::time::Instant::now();
        } else if last_change.elapsed() > stall_timeout {
            anyhow::bail!(
                "{label}: no row changed state for {stall_timeout:?} ({})\n{}",
                render_counts(&counts),
                worker.log_tail()
            );
        }
        if last_print.elapsed() > Duration::from_secs(10) {
            eprintln!("  {label}: {}", render_counts(&counts));
            last_print = tokio::time::Instant::now();
        }
        worker.check_alive()?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// First time each asset's row entered `state`.
async fn transition_times(
    pool: &PgPool,
    schema: &str,
    state: &str,
) -> anyhow::Result<HashMap<Uuid, SystemTime>> {
    let rows = sqlx::query(&format!(
        r#"SELECT asset_id, min(at) AS at FROM "{schema}".bench_state_log
           WHERE state = $1 GROUP BY asset_id"#
    ))
    .bind(state)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let at: chrono::DateTime<chrono::Utc> = r.get("at");
            (r.get::<Uuid, _>("asset_id"), SystemTime::from(at))
        })
        .collect())
}

/// Latencies from each enqueue to `reached`, and the time from `t0` to the last of them.
fn latencies(
    inputs: &[IngestInput],
    enqueued: &[SystemTime],
    reached: &HashMap<Uuid, SystemTime>,
    t0: SystemTime,
) -> anyhow::Result<(Percentiles, f64)> {
    let mut ms = Vec::with_capacity(inputs.len());
    let mut last = t0;
    for (input, at) in inputs.iter().zip(enqueued) {
        let id: Uuid = input.asset_id.parse()?;
        let reached = *reached
            .get(&id)
            .with_context(|| format!("no transition logged for asset {id}"))?;
        ms.push(secs_between(*at, reached) * 1000.0);
        last = last.max(reached);
    }
    Ok((Percentiles::of(ms), secs_between(t0, last)))
}

/// `b - a` in seconds, negative when `b` is earlier.
pub fn secs_between(a: SystemTime, b: SystemTime) -> f64 {
    match b.duration_since(a) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// Runs one ingest phase.
/// Runs one ingest phase; the worker's configuration and log go to `logs_dir/{slug}`.
pub async fn run(
    ctx: &BenchContext,
    spec: &IngestSpec,
    label: &str,
    slug: &str,
) -> anyhow::Result<IngestFigures> {
    let db = TestDatabase::postgres().await;
    let schema = db.schema();
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect(&db.url())
        .await
        .context("connect to PostgreSQL")?;
    install_state_log(&pool, &schema).await?;

    let media_root = tempfile::tempdir()?;
    let seed_started = std::time::Instant::now();
    let inputs = seed(&db.store, media_root.path(), spec.n).await?;
    eprintln!(
        "  {label}: seeded {} assets in {:.1} s",
        spec.n,
        seed_started.elapsed().as_secs_f64()
    );

    let sim = MuxSim::start().await;
    let work_dir = ctx.logs_dir.join(slug);
    std::fs::create_dir_all(&work_dir)?;
    let setup = WorkerSetup {
        activity_slots: spec.activity_slots,
        poll_interval_s: spec.poll_interval_s,
        database_url: db.url(),
        schema: schema.clone(),
        media_root: media_root.path().to_owned(),
        mux_base_url: sim.base_url(),
        mux_credentials: sim.credentials(),
        webhook_secret: WEBHOOK_SECRET.to_owned(),
        temporal_address: ctx.temporal_address.clone(),
    };
    let mut worker = WorkerProcess::start(&spec.worker_binary, &setup, &work_dir).await?;
    if spec.webhooks {
        sim.set_auto_webhooks(Some(AutoWebhooks::new(
            worker.webhook_url(),
            WEBHOOK_SECRET,
        )));
    }
    // Let the worker's pollers settle before reading its idle footprint.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let worker_idle = worker.memory();

    let probe = Probe {
        worker: Some(worker.pid()),
        server: ctx.server_pid,
    };
    let before = probe.snapshot();
    let t0 = SystemTime::now();
    let ((enqueued, enqueue_done), rss_curve) = tokio::try_join!(
        async {
            let times = enqueue_all(&ctx.client, &inputs, ctx.enqueue_concurrency).await?;
            anyhow::Ok((times, SystemTime::now()))
        },
        wait_for_rows(
            &pool,
            &schema,
            spec.n,
            spec.until,
            &mut worker,
            ctx.stall_timeout,
            label,
        )
    )?;
    let after = probe.snapshot();
    let worker_cpu_total_s = worker.cpu_s();
    // Parked runs go on to start their timers after the promote: let that settle.
    if spec.until == Until::Processing {
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let worker_end = worker.memory();

    let processing = transition_times(&pool, &schema, "processing").await?;
    let (latency_to_processing_ms, to_processing_s) =
        latencies(&inputs, &enqueued, &processing, t0)?;
    let (latency_to_ready_ms, to_ready_s) = if spec.until == Until::Ready {
        let ready = transition_times(&pool, &schema, "ready").await?;
        let (p, s) = latencies(&inputs, &enqueued, &ready, t0)?;
        (Some(p), Some(s))
    } else {
        (None, None)
    };

    let (mut history_events_per_ingest, mut breakdown, mut to_closed_s) = (None, None, None);
    let mut not_completed = 0;
    if spec.until == Until::Ready {
        let ids: Vec<String> = inputs.iter().map(workflow_id_for).collect();
        let described = history::describe_closed(&ctx.client, &ids).await?;
        not_completed = described.iter().filter(|d| !d.completed).count();
        history_events_per_ingest = Some(
            described
                .iter()
                .map(|d| d.history_length as f64)
                .sum::<f64>()
                / described.len().max(1) as f64,
        );
        to_closed_s = described
            .iter()
            .map(|d| d.close)
            .max()
            .map(|last| secs_between(t0, last));
        breakdown = Some(history::event_breakdown(&ctx.client, &ids[0]).await?);
    }
    let webhooks = spec.webhooks.then(|| sim.webhook_stats());
    let worker_log_problems = worker.log_problems();
    worker.stop().await;
    drop(pool);
    drop(db);

    Ok(IngestFigures {
        spec: spec.clone(),
        enqueue_s: secs_between(t0, enqueue_done),
        to_processing_s,
        to_ready_s,
        to_closed_s,
        latency_to_processing_ms,
        latency_to_ready_ms,
        cpu: before.until(&after),
        worker_cpu_total_s,
        worker_idle,
        worker_end,
        history_events_per_ingest,
        breakdown,
        webhooks,
        worker_log_problems,
        not_completed,
        rss_curve,
    })
}
