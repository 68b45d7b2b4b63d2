//! `rindle-bench`: what an ingest costs, measured side by side with the cheapest workflows the
//! same Temporal server can run (the floor), in one run on one machine.
//!
//! One process starts and owns everything: an in-memory Temporal dev server (free port), a fresh
//! PostgreSQL schema per phase, the Mux simulator in-process (no latency, sending signed
//! `video.asset.ready` webhooks after each create), and the real release worker
//! `rindle-ingest worker` as a subprocess (so that its CPU time and memory are its own). Phases:
//!
//! 1. **Warm-up** (not measured): a few ingests; their history says how many activities an
//!    ingest runs end to end.
//! 2. **Rounds** (default 3), each running, in an order rotated from round to round, and with
//!    the server left to go idle in between:
//!    - **ingests**, once per `[worker] max_concurrent_activities` value asked for: N ingests
//!      enqueued at once; throughput and latency to `processing` and `ready`, worker CPU and
//!      memory, history events per ingest ([`ingest`]);
//!    - **the floor**: N bare workflows with one no-op activity, and N with as many no-op
//!      activities as an ingest runs, on an in-process worker on the same server ([`floor`]).
//!
//!    The figures of the median round are printed; each ratio ours / floor is the median of
//!    the per-round ratios (ours and the floor measured minutes apart, not a run apart).
//! 3. **Parked**: P ingests left in `processing` (no webhooks, polling every 24 h), and the
//!    worker's resident memory then.
//!
//! Every figure is printed as a `key: value` line ([`report`]). Everything started is stopped
//! (and each schema dropped) on the way out, on error too.

pub mod floor;
pub mod history;
pub mod ingest;
pub mod procfs;
pub mod report;
pub mod server;
pub mod worker;

use std::{path::PathBuf, time::Duration};

use floor::{FloorFigures, FloorKind, FloorWorker};
use ingest::{BenchContext, IngestFigures, IngestSpec, Until};
use report::Report;
use server::DevServer;

/// What to measure and with what.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Ingests (and floor workflows of each kind) enqueued at once.
    pub n: usize,
    /// Rounds of the ingest and floor phases (interleaved; medians are reported).
    pub rounds: usize,
    /// Ingests parked in `processing` for the memory figure (0: skip).
    pub parked: usize,
    /// `[worker] max_concurrent_activities` values to run the ingest phase with; the first is the
    /// reference whose figures get the plain keys and the ratios.
    pub activity_slots: Vec<usize>,
    /// `max_concurrent_activities` of the parked phase.
    pub parked_activity_slots: usize,
    /// Workflow starts in flight at once.
    pub enqueue_concurrency: usize,
    /// The release `rindle-ingest` binary.
    pub worker_binary: PathBuf,
    /// Another `rindle-ingest` binary (e.g. built from an earlier commit) whose ingests run in
    /// the same rounds with the first activity-slot value: a before/after of a code change.
    pub baseline_worker_binary: Option<PathBuf>,
    /// The Temporal CLI.
    pub temporal_binary: String,
    /// Give up a phase when nothing moves for this long.
    pub stall_timeout: Duration,
    /// How the bench was invoked, for `BENCHMARKS.md`.
    pub command_line: String,
    /// Keep the dev server's and workers' logs here (default: a temporary directory).
    pub logs_dir: Option<PathBuf>,
    /// Extra arguments of `temporal server start-dev` (e.g. `--dynamic-config-value K=V`).
    pub server_args: Vec<String>,
}

/// The machine the figures come from.
#[derive(Debug, Clone)]
pub struct Machine {
    /// Logical CPUs.
    pub cores: usize,
    /// `model name` of `/proc/cpuinfo`.
    pub cpu_model: String,
    /// Total memory.
    pub mem_total_mib: u64,
}

/// The rounds of one worker configuration (binary and `max_concurrent_activities`).
#[derive(Debug, Clone)]
pub struct IngestSeries {
    /// Heading of its column in `BENCHMARKS.md`.
    pub title: String,
    /// Prefix of its keys: empty for the reference, `slots_K.` or `baseline.` for the others.
    pub key_prefix: String,
    /// The worker binary.
    pub worker_binary: PathBuf,
    /// `[worker] max_concurrent_activities`.
    pub activity_slots: usize,
    /// One per round.
    pub rounds: Vec<IngestFigures>,
}

impl IngestSeries {
    /// The round whose throughput (enqueue → closed) is the median.
    pub fn median(&self) -> &IngestFigures {
        &self.rounds[median_index(
            &self
                .rounds
                .iter()
                .map(|f| f.closed_per_s())
                .collect::<Vec<_>>(),
        )]
    }
}

/// The index of the median of `values` (the lower one of the middle two for an even count).
pub fn median_index(values: &[f64]) -> usize {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|a, b| values[*a].total_cmp(&values[*b]));
    order[(values.len().max(1) - 1) / 2]
}

/// The median of `values` (the lower middle one for an even count; 0 when empty).
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values[median_index(values)]
}

/// The floor phases of every round.
#[derive(Debug, Clone, Default)]
pub struct FloorSeries {
    /// One per round.
    pub rounds: Vec<FloorFigures>,
}

impl FloorSeries {
    /// The round whose throughput is the median.
    pub fn median(&self) -> &FloorFigures {
        &self.rounds[median_index(&self.rounds.iter().map(|f| f.per_s()).collect::<Vec<_>>())]
    }
}

/// Everything one run measured.
#[derive(Debug, Clone)]
pub struct BenchResults {
    /// When the run started (UTC, RFC 3339).
    pub started_at: String,
    /// The machine.
    pub machine: Machine,
    /// How it was invoked.
    pub command_line: String,
    /// Ingests per phase.
    pub n: usize,
    /// Rounds of every ingest and floor phase.
    pub rounds: usize,
    /// Starts in flight at once.
    pub enqueue_concurrency: usize,
    /// One per activity-slot value, the reference first.
    pub ingests: Vec<IngestSeries>,
    /// The one-activity floor.
    pub floor_one: FloorSeries,
    /// The n-activity floor.
    pub floor_many: FloorSeries,
    /// The parked phase.
    pub parked: Option<IngestFigures>,
    /// Seconds the whole run took.
    pub duration_s: f64,
}

impl BenchResults {
    /// The key prefix of an ingest series.
    pub fn prefix_of(&self, index: usize) -> String {
        self.ingests[index].key_prefix.clone()
    }
}

/// One phase of a round.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// The ingests of the `index`-th series.
    Ingest(usize),
    /// A floor.
    Floor(FloorKind),
}

/// The ingest series of a run: one per activity-slot value, then the baseline binary's.
fn series(opts: &BenchOptions) -> anyhow::Result<Vec<IngestSeries>> {
    let mut series: Vec<IngestSeries> = opts
        .activity_slots
        .iter()
        .enumerate()
        .map(|(i, &slots)| IngestSeries {
            title: format!("{slots} activity slots"),
            key_prefix: if i == 0 {
                String::new()
            } else {
                format!("slots_{slots}.")
            },
            worker_binary: opts.worker_binary.clone(),
            activity_slots: slots,
            rounds: Vec::new(),
        })
        .collect();
    if let Some(baseline) = &opts.baseline_worker_binary {
        anyhow::ensure!(baseline.exists(), "{} does not exist", baseline.display());
        let slots = opts.activity_slots[0];
        series.push(IngestSeries {
            title: format!(
                "{slots} activity slots, baseline binary `{}`",
                baseline.file_name().map_or_else(
                    || baseline.display().to_string(),
                    |n| n.to_string_lossy().into_owned()
                )
            ),
            key_prefix: "baseline.".to_owned(),
            worker_binary: baseline.clone(),
            activity_slots: slots,
            rounds: Vec::new(),
        });
    }
    Ok(series)
}

/// Waits until the dev server has (nearly) stopped working on earlier phases: less than 3 % of
/// a core over one second, for at most 30 s.
async fn quiesce(server_pid: Option<u32>) {
    let Some(pid) = server_pid else { return };
    let started = std::time::Instant::now();
    let mut last = procfs::process_cpu_s(pid).unwrap_or(0.0);
    while started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = procfs::process_cpu_s(pid).unwrap_or(0.0);
        if now - last < 0.03 {
            return;
        }
        last = now;
    }
    eprintln!("  (the dev server was still busy after 30 s)");
}

/// Runs every phase, printing figures at the end of the rounds and of the parked phase;
/// returns them with the printed lines.
pub async fn run(opts: &BenchOptions) -> anyhow::Result<(BenchResults, Report)> {
    anyhow::ensure!(opts.n > 0, "--n must be at least 1");
    anyhow::ensure!(opts.rounds > 0, "--rounds must be at least 1");
    anyhow::ensure!(
        !opts.activity_slots.is_empty(),
        "at least one activity-slot value is needed"
    );
    anyhow::ensure!(
        opts.worker_binary.exists(),
        "{} does not exist: build it with `cargo build --release -p rindle-worker -p rindle-tests --bins`",
        opts.worker_binary.display()
    );
    let started = std::time::Instant::now();
    let mut report = Report::default();
    let machine = Machine {
        cores: procfs::cores(),
        cpu_model: procfs::cpu_model(),
        mem_total_mib: procfs::mem_total_mib(),
    };
    report.put("machine.cores", machine.cores);
    report.put("machine.cpu_model", &machine.cpu_model);
    report.put("machine.mem_total_mib", machine.mem_total_mib);
    // Anything else busy on the machine skews every figure: say so in the output.
    report.put("machine.loadavg_1m_at_start", procfs::loadavg_1m());
    report.put("config.n", opts.n);
    report.put("config.rounds", opts.rounds);
    report.put("config.parked", opts.parked);
    report.put("config.enqueue_concurrency", opts.enqueue_concurrency);

    let temp_logs = tempfile::tempdir()?;
    let logs_dir = match &opts.logs_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            dir.clone()
        }
        None => temp_logs.path().to_owned(),
    };
    let (server, client) = DevServer::start(
        &opts.temporal_binary,
        &logs_dir.join("temporal.log"),
        &opts.server_args,
    )
    .await?;
    let ctx = BenchContext {
        client,
        temporal_address: server.address().to_owned(),
        server_pid: Some(server.pid()),
        enqueue_concurrency: opts.enqueue_concurrency,
        stall_timeout: opts.stall_timeout,
        logs_dir,
    };
    let mut results = BenchResults {
        started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        machine,
        command_line: opts.command_line.clone(),
        n: opts.n,
        rounds: opts.rounds,
        enqueue_concurrency: opts.enqueue_concurrency,
        ingests: series(opts)?,
        floor_one: FloorSeries::default(),
        floor_many: FloorSeries::default(),
        parked: None,
        duration_s: 0.0,
    };
    let ingest_spec = |n: usize, slots: usize, binary: &PathBuf| IngestSpec {
        n,
        worker_binary: binary.clone(),
        activity_slots: slots,
        webhooks: true,
        // Webhook-driven: the polling backstop must not be what finishes ingests.
        poll_interval_s: 3600,
        until: Until::Ready,
    };

    // Warm-up (not measured): starts the server's caches and counts an ingest's activities.
    let warm_n = opts.n.min(100);
    eprintln!("==> warm-up: {warm_n} ingests (not measured)");
    let warm = ingest::run(
        &ctx,
        &ingest_spec(warm_n, opts.activity_slots[0], &opts.worker_binary),
        "warm-up",
        "warm-up",
    )
    .await?;
    let activities = warm.activities_per_ingest().unwrap_or(6) as u32;
    quiesce(ctx.server_pid).await;

    let floor_worker = FloorWorker::start(&ctx.temporal_address)?;
    let mut phases: Vec<Phase> = (0..results.ingests.len()).map(Phase::Ingest).collect();
    phases.push(Phase::Floor(FloorKind::One));
    phases.push(Phase::Floor(FloorKind::Many(activities)));
    for round in 0..opts.rounds {
        // Each round starts one phase later, so that no configuration always runs first.
        let mut order = phases.clone();
        order.rotate_left(round % phases.len());
        for phase in order {
            match phase {
                Phase::Ingest(i) => {
                    let series = &results.ingests[i];
                    let slots = series.activity_slots;
                    let label = format!("round {}: ingests, {}", round + 1, series.title);
                    let slug = format!(
                        "round{}-ingest-{}slots-{slots}",
                        round + 1,
                        series.key_prefix.replace('.', "-")
                    );
                    let spec = ingest_spec(opts.n, slots, &series.worker_binary);
                    let figures = ingest::run(&ctx, &spec, &label, &slug).await?;
                    eprintln!("==> {label}: {:.1} ingests/s", figures.closed_per_s());
                    results.ingests[i].rounds.push(figures);
                }
                Phase::Floor(kind) => {
                    let figures = floor::run(&ctx, kind, opts.n).await?;
                    eprintln!(
                        "==> round {}: floor, {} no-op activities: {:.1} workflows/s",
                        round + 1,
                        kind.activities(),
                        figures.per_s()
                    );
                    match kind {
                        FloorKind::One => results.floor_one.rounds.push(figures),
                        FloorKind::Many(_) => results.floor_many.rounds.push(figures),
                    }
                }
            }
            quiesce(ctx.server_pid).await;
        }
    }
    floor_worker.stop()?;
    for i in 0..results.ingests.len() {
        report.put_ingest(&results.prefix_of(i), &results.ingests[i]);
    }
    report.put_floor(&results.floor_one);
    report.put_floor(&results.floor_many);
    for i in 0..results.ingests.len() {
        report.put_ratios(
            &results.prefix_of(i),
            &results.ingests[i],
            &results.floor_one,
            &results.floor_many,
        );
    }

    if opts.parked > 0 {
        let label = format!("parked ({} activity slots)", opts.parked_activity_slots);
        eprintln!("==> {label}: {} ingests left in processing", opts.parked);
        let spec = IngestSpec {
            n: opts.parked,
            worker_binary: opts.worker_binary.clone(),
            activity_slots: opts.parked_activity_slots,
            webhooks: false,
            poll_interval_s: 86_400,
            until: Until::Processing,
        };
        let slug = format!("parked-slots-{}", opts.parked_activity_slots);
        let parked = ingest::run(&ctx, &spec, &label, &slug).await?;
        report.put_parked(&parked);
        results.parked = Some(parked);
    } else {
        report.put("parked.count", 0);
    }

    drop(ctx);
    server.stop().await;
    results.duration_s = started.elapsed().as_secs_f64();
    report.put("bench.duration_s", format!("{:.1}", results.duration_s));
    Ok((results, report))
}
