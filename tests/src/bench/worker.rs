//! The real worker, `rindle-ingest worker`, as a subprocess of the bench: configured by a TOML
//! file plus environment (as an operator runs it), so that its CPU time and resident memory are
//! its own and can be read from `/proc/<pid>`.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::Context as _;

use super::procfs::{self, Memory};

/// What one worker process is configured with.
#[derive(Debug, Clone)]
pub struct WorkerSetup {
    /// `[worker] max_concurrent_activities`.
    pub activity_slots: usize,
    /// `[ingest] poll_interval_s`: the polling backstop of a `processing` row.
    pub poll_interval_s: u64,
    /// `[database] url`.
    pub database_url: String,
    /// `[database] schema`.
    pub schema: String,
    /// `[storage.local] root`.
    pub media_root: PathBuf,
    /// `[mux] base_url` (the simulator).
    pub mux_base_url: String,
    /// `MUX_TOKEN_ID` / `MUX_TOKEN_SECRET`.
    pub mux_credentials: (String, String),
    /// `[webhooks] secrets`.
    pub webhook_secret: String,
    /// `TEMPORAL_ADDRESS`.
    pub temporal_address: String,
}

/// The local-storage signing secret of bench workers.
const LOCAL_SECRET: &str = "bench-local-signing-secret-0123456789abcdef";

/// A running `rindle-ingest worker`; killed when dropped.
pub struct WorkerProcess {
    child: tokio::process::Child,
    pid: u32,
    http_addr: SocketAddr,
    log: PathBuf,
}

/// A TOML basic string (JSON's escapes are valid TOML escapes).
fn toml_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// The worker's configuration file.
pub fn config_toml(setup: &WorkerSetup, http_addr: SocketAddr) -> String {
    format!(
        r#"# Written by rindle-bench.
[worker]
max_concurrent_activities = {slots}

[database]
url = {db_url}
schema = {schema}

[http]
listen = "{http_addr}"

[mux]
base_url = {mux_url}
request_timeout_s = 10

[ingest]
poll_interval_s = {poll}

[webhooks]
secrets = [{secret}]

[storage.local]
kind = "local"
root = {root}
public_base_url = "http://{http_addr}"
signing_secret = "{LOCAL_SECRET}"
"#,
        slots = setup.activity_slots,
        db_url = toml_str(&setup.database_url),
        schema = toml_str(&setup.schema),
        mux_url = toml_str(&setup.mux_base_url),
        poll = setup.poll_interval_s,
        secret = toml_str(&setup.webhook_secret),
        root = toml_str(&setup.media_root.display().to_string()),
    )
}

fn free_addr() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

impl WorkerProcess {
    /// Writes the configuration into `dir`, starts `binary worker --config …` and waits until
    /// `/healthz` answers 200.
    pub async fn start(binary: &Path, setup: &WorkerSetup, dir: &Path) -> anyhow::Result<Self> {
        let http_addr = free_addr()?;
        let config = dir.join("rindle-ingest.toml");
        std::fs::write(&config, config_toml(setup, http_addr))?;
        let log = dir.join("worker.log");
        let log_file = std::fs::File::create(&log)?;
        let mut command = tokio::process::Command::new(binary);
        command
            .arg("--config")
            .arg(&config)
            .arg("worker")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .kill_on_drop(true);
        // Only what this run sets: no stray RINDLE_INGEST_*, TEMPORAL_* or RUST_LOG from the caller.
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            if k.starts_with("RINDLE_INGEST_") || k.starts_with("TEMPORAL_") || k == "RUST_LOG" {
                command.env_remove(&key);
            }
        }
        command
            .env("TEMPORAL_ADDRESS", &setup.temporal_address)
            .env("TEMPORAL_NAMESPACE", "default")
            .env("MUX_TOKEN_ID", &setup.mux_credentials.0)
            .env("MUX_TOKEN_SECRET", &setup.mux_credentials.1);
        let child = command
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;
        let pid = child.id().context("the worker exited at once")?;
        let mut worker = WorkerProcess {
            child,
            pid,
            http_addr,
            log,
        };
        worker.wait_healthy().await?;
        Ok(worker)
    }

    async fn wait_healthy(&mut self) -> anyhow::Result<()> {
        let url = format!("http://{}/healthz", self.http_addr);
        let http = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!(
                    "the worker exited ({status}) before it was healthy:\n{}",
                    self.log_tail()
                );
            }
            if let Ok(r) = http.get(&url).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!(
                    "the worker was not healthy within 60 s:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The webhook endpoint.
    pub fn webhook_url(&self) -> String {
        format!("http://{}/webhooks/mux", self.http_addr)
    }

    /// Resident memory now and at its peak.
    pub fn memory(&self) -> Memory {
        procfs::memory(self.pid).unwrap_or_default()
    }

    /// CPU seconds used since it started.
    pub fn cpu_s(&self) -> f64 {
        procfs::process_cpu_s(self.pid).unwrap_or(0.0)
    }

    /// Fails if the worker is no longer running (with the end of its log).
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            anyhow::bail!("the worker exited ({status}):\n{}", self.log_tail());
        }
        Ok(())
    }

    /// The last lines of the worker's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(30);
        format!(
            "--- {} (last {} lines) ---\n{}",
            self.log.display(),
            lines.len() - from,
            lines[from..].join("\n")
        )
    }

    /// Lines of the worker's log at WARN or ERROR level.
    pub fn log_problems(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(without_ansi)
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
            .count()
    }

    /// SIGTERM (graceful shutdown), then SIGKILL after 20 s.
    pub async fn stop(mut self) {
        let terminated = tokio::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status()
            .await
            .is_ok_and(|s| s.success());
        if terminated
            && tokio::time::timeout(Duration::from_secs(20), self.child.wait())
                .await
                .is_ok()
        {
            return;
        }
        let _ = self.child.kill().await;
    }
}

/// `line` without its ANSI colour sequences (`ESC [ … m`).
fn without_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::providers::Format as _;

    #[test]
    fn colour_codes_are_stripped_from_log_lines() {
        let line = "\u{1b}[2m2026-12-04T21:57:19Z\u{1b}[0m \u{1b}[33m WARN\u{1b}[0m x";
        assert_eq!(without_ansi(line), "2026-12-04T21:57:19Z  WARN x");
    }

    #[test]
    fn the_config_names_every_key_the_worker_needs() {
        let setup = WorkerSetup {
            activity_slots: 8,
            poll_interval_s: 60,
            database_url: "postgres://u:p@h/db".into(),
            schema: "rt_x".into(),
            media_root: "/tmp/m".into(),
            mux_base_url: "http://127.0.0.1:1".into(),
            mux_credentials: ("id".into(), "secret".into()),
            webhook_secret: "whsec".into(),
            temporal_address: "127.0.0.1:7233".into(),
        };
        let toml = config_toml(&setup, "127.0.0.1:8088".parse().unwrap());
        let figment = figment::Figment::from(figment::providers::Toml::string(
            rindle_worker::config::EMBEDDED_DEFAULTS,
        ))
        .merge(figment::providers::Toml::string(&toml))
        .merge(figment::providers::Toml::string(
            "[mux]\ntoken_id = \"id\"\ntoken_secret = \"secret\"",
        ));
        let settings = rindle_worker::config::Settings::from_figment(figment).unwrap();
        assert_eq!(settings.worker.max_concurrent_activities, 8);
        assert_eq!(settings.ingest.poll_interval_s, 60);
        assert_eq!(settings.database.schema, "rt_x");
    }
}
