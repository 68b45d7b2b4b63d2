//! `rindle-ingest`: parses the command line, sets up telemetry, runs the subcommand.

use std::{process::ExitCode, time::Duration};

use clap::Parser;
use figment::Figment;
use tokio::net::TcpListener;

use rindle_worker::{
    app,
    cli::{Cli, Command},
    config::{self, DatabaseSettings, EnqueueSettings, Settings, TelemetrySettings},
    enqueue::{Enqueued, enqueue},
    telemetry,
};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let figment = match config::sources(cli.config.as_deref()) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("rindle-ingest: {e}");
            return ExitCode::from(2);
        }
    };
    match config::section::<TelemetrySettings>(&figment, "telemetry") {
        Ok(t) => telemetry::init(&t),
        Err(e) => {
            eprintln!("rindle-ingest: {e}");
            return ExitCode::from(2);
        }
    }
    match run(cli.command, figment).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(target: "rindle.worker", error = %e, "exiting");
            eprintln!("rindle-ingest: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Each command reads only the configuration it needs; `worker` reads and checks all of it.
async fn run(command: Command, figment: Figment) -> Result<(), Box<dyn std::error::Error>> {
    match command {
        Command::Migrate => {
            let database: DatabaseSettings = config::section(&figment, "database")?;
            let store =
                rindle_activities::store::Store::connect(&database.url, &database.schema).await?;
            store.migrate().await?;
            println!("migrations applied");
        }
        Command::Worker => {
            let settings = Settings::from_figment(figment)?;
            let listener = TcpListener::bind(settings.http.listen).await?;
            tracing::info!(target: "rindle.worker", addr = %listener.local_addr()?, "http listening");
            let client = app::connect_temporal().await?;
            app::run(settings, client, listener, shutdown_signal()).await?;
        }
        Command::Enqueue(args) => {
            let input = args.input()?;
            let client = app::connect_temporal().await?;
            let period: EnqueueSettings = config::section(&figment, "enqueue")?;
            let task_queue: String = config::section(&figment, "worker.task_queue")?;
            let period = Duration::from_secs(period.uniqueness_period_s);
            let result = enqueue(&client, &task_queue, input, period).await?;
            match &result {
                Enqueued::Started {
                    workflow_id,
                    run_id,
                } => println!("started {workflow_id} run {run_id}"),
                Enqueued::Existing {
                    workflow_id,
                    run_id,
                    status,
                } => {
                    println!("existing {workflow_id} run {run_id} ({status})")
                }
            }
        }
    }
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
