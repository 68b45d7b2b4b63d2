//! `rindle-bench`: what an ingest costs next to the cheapest workflows the same Temporal server
//! runs, measured in one run (see `rindle_tests::bench` and `BENCHMARKS.md`).
//!
//! Prints one `key: value` line per figure on stdout; progress goes to stderr. Normally run by
//! `scripts/bench.sh`, which builds the release binaries and starts PostgreSQL first.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::Parser;
use tracing_subscriber::EnvFilter;

use rindle_tests::bench::{self, BenchOptions, report};

/// Benchmark rindle-ingest against the floor of its Temporal server.
#[derive(Debug, Parser)]
#[command(name = "rindle-bench", version, about, args_override_self = true)]
struct Cli {
    /// Ingests enqueued at once (and bare workflows of each floor kind).
    #[arg(long, default_value_t = 1000)]
    n: usize,
    /// Rounds of the ingest and floor phases (interleaved, order rotated; medians reported).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Ingests parked in `processing` for the memory figure (0 skips the phase).
    #[arg(long, default_value_t = 10_000)]
    parked: usize,
    /// `[worker] max_concurrent_activities` values to run the ingest phase with, comma-separated;
    /// the first one is the reference (plain keys, ratios).
    #[arg(long, value_delimiter = ',', default_value = "4,16,64")]
    activity_slots: Vec<usize>,
    /// `max_concurrent_activities` of the parked phase (default: the largest of --activity-slots).
    #[arg(long)]
    parked_activity_slots: Option<usize>,
    /// Workflow starts in flight at once.
    #[arg(long, default_value_t = 64)]
    enqueue_concurrency: usize,
    /// The release `rindle-ingest` binary (default: next to this one).
    #[arg(long)]
    worker_binary: Option<PathBuf>,
    /// Also run the ingests, in the same rounds and with the first --activity-slots value, with
    /// this other `rindle-ingest` binary (e.g. built from an earlier commit): a before/after.
    #[arg(long)]
    baseline_worker_binary: Option<PathBuf>,
    /// Write the results into this Markdown file (between its generated-section markers).
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Give up a phase when no state changes for this many seconds.
    #[arg(long, default_value_t = 180)]
    stall_timeout_s: u64,
    /// Fail unless every required figure was printed (the CI smoke run).
    #[arg(long)]
    check: bool,
    /// Keep the dev server's and the workers' configuration and logs in this directory.
    #[arg(long)]
    logs_dir: Option<PathBuf>,
    /// An extra argument of `temporal server start-dev` (repeatable), e.g.
    /// `--server-arg=--dynamic-config-value --server-arg=history.cacheMaxSize=8192`.
    #[arg(long, allow_hyphen_values = true)]
    server_arg: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let worker_binary = cli.worker_binary.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("rindle-ingest")))
            .unwrap_or_else(|| PathBuf::from("target/release/rindle-ingest"))
    });
    let opts = BenchOptions {
        n: cli.n,
        rounds: cli.rounds,
        parked: cli.parked,
        parked_activity_slots: cli
            .parked_activity_slots
            .or_else(|| cli.activity_slots.iter().copied().max())
            .unwrap_or(4),
        activity_slots: cli.activity_slots.clone(),
        enqueue_concurrency: cli.enqueue_concurrency,
        worker_binary,
        baseline_worker_binary: cli.baseline_worker_binary.clone(),
        temporal_binary: rindle_tests::env::temporal_binary(),
        stall_timeout: Duration::from_secs(cli.stall_timeout_s),
        logs_dir: cli.logs_dir.clone(),
        server_args: cli.server_arg.clone(),
        command_line: std::env::var("RINDLE_BENCH_COMMAND")
            .unwrap_or_else(|_| std::env::args().collect::<Vec<_>>().join(" ")),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench-main")
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rindle-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    // On SIGINT/SIGTERM the run is dropped: every guard (worker process, dev server, schemas,
    // floor worker) cleans up on the way out.
    let outcome = runtime.block_on(async {
        tokio::select! {
            result = bench::run(&opts) => Some(result),
            () = shutdown_signal() => None,
        }
    });
    let (results, report) = match outcome {
        Some(Ok(done)) => done,
        Some(Err(e)) => {
            eprintln!("rindle-bench: {e:#}");
            return ExitCode::FAILURE;
        }
        None => {
            eprintln!("rindle-bench: interrupted");
            return ExitCode::from(130);
        }
    };
    if let Some(path) = &cli.markdown {
        let generated = report::markdown(&results, &report);
        if let Err(e) = report::update_markdown(path, &generated) {
            eprintln!("rindle-bench: write {}: {e:#}", path.display());
            return ExitCode::FAILURE;
        }
        eprintln!("==> wrote {}", path.display());
    }
    if cli.check {
        let missing: Vec<&str> = report::REQUIRED_KEYS
            .iter()
            .copied()
            .filter(|k| !report.lines().iter().any(|(key, _)| key == k))
            .collect();
        if !missing.is_empty() {
            eprintln!("rindle-bench: figures missing: {}", missing.join(", "));
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! { () = ctrl_c => {}, () = term => {} }
}
