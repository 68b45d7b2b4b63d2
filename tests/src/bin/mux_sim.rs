//! `mux-sim`: the Mux simulator as a standalone server, for running the worker by hand or from
//! scripts without a Mux account.
//!
//! It answers the asset API like Mux (see `rindle_tests::mux_sim`) and offers a JSON control API:
//! `GET /_sim/requests`, `GET /_sim/assets`, `POST /_sim/script`, `POST /_sim/delay`,
//! `POST /_sim/assets/{id}/status`, `POST /_sim/refuse_preparing_delete`, `POST /_sim/reset`.

use std::io::IsTerminal as _;
use std::net::SocketAddr;

use anyhow::Context as _;
use clap::Parser;
use rindle_tests::mux_sim::{MuxSim, SimOptions};
use tracing_subscriber::EnvFilter;

/// Serve a Mux API simulator until Ctrl-C or SIGTERM.
#[derive(Debug, Parser)]
#[command(name = "mux-sim", version, about)]
struct Cli {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "MUX_SIM_LISTEN", default_value = "127.0.0.1:4010")]
    listen: SocketAddr,
    /// The access token id clients must send as the Basic-auth user.
    #[arg(long, env = "MUX_TOKEN_ID")]
    token_id: String,
    /// The access token secret clients must send as the Basic-auth password.
    #[arg(long, env = "MUX_TOKEN_SECRET", hide_env_values = true)]
    token_secret: String,
    /// Answer 400 "Can't delete a preparing asset" to DELETE of a preparing asset, as Mux is
    /// reported to do.
    #[arg(long)]
    refuse_preparing_delete: bool,
    /// Turn a `preparing` asset `ready` the first time it is fetched, as if Mux had finished
    /// encoding (lets a local worker's polling backstop finish ingests without webhooks).
    #[arg(long)]
    auto_ready: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Logs go to stderr so that stdout carries only the "listening on" line scripts wait for.
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    let sim = MuxSim::start_on(
        cli.listen,
        SimOptions {
            token_id: cli.token_id,
            token_secret: cli.token_secret,
            refuse_preparing_delete: cli.refuse_preparing_delete,
        },
    )
    .await?;
    sim.set_auto_ready(cli.auto_ready);
    // The one line scripts wait for (it carries the port when --listen used port 0).
    println!("mux-sim listening on {}", sim.base_url());
    shutdown_signal().await?;
    tracing::info!("mux-sim: shutting down");
    Ok(())
}

/// Resolves on Ctrl-C, or on SIGTERM where there is one (how process managers stop us).
async fn shutdown_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot listen for SIGTERM")?;
        tokio::select! {
            res = tokio::signal::ctrl_c() => res.context("cannot listen for Ctrl-C"),
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c()
            .await
            .context("cannot listen for Ctrl-C")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }
}
