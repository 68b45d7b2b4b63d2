//! `rindle-ingest`: parses the command line, sets up telemetry, runs the subcommand.

use std::{process::ExitCode, time::Duration};

use clap::Parser;
use tokio::net::TcpListener;

use rindle_worker::{
    app,
    cli::{Cli, Command},
    config::Settings,
    enqueue::{Enqueued, enqueue},
    telemetry,
};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rindle-ingest: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(&settings.telemetry);
    match run(cli.command, settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(target: "rindle.worker", error = %e, "exiting");
            eprintln!("rindle-ingest: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, settings: Settings) -> Result<(), Box<dyn std::error::Error>> {
    match command {
        Command::Migrate => {
            let store = rindle_activities::store::Store::connect(
                &settings.database.url,
                &settings.database.schema,
            )
            .await?;
            store.migrate().await?;
            println!("migrations applied");
        }
        Command::Worker => {
            let listener = TcpListener::bind(settings.http.listen).await?;
            tracing::info!(target: "rindle.worker", addr = %listener.local_addr()?, "http listening");
            let client = app::connect_temporal().await?;
            app::run(settings, client, listener, shutdown_signal()).await?;
        }
        Command::Enqueue(args) => {
            let input = args.input()?;
            let client = app::connect_temporal().await?;
            let period = Duration::from_secs(settings.enqueue.uniqueness_period_s);
            let result = enqueue(&client, &settings.worker.task_queue, input, period).await?;
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
