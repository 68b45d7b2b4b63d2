//! The in-memory Temporal dev server (`temporal server start-dev`) on a free port, as
//! `WorkflowEnvironment::start_local` runs it, but started here so that its banner and logs go
//! to a file (stdout carries only figures) and its process id is known (for its CPU time).

use std::{path::Path, process::Stdio, time::Duration};

use anyhow::Context as _;
use temporalio_client::{Client, ClientOptions, Connection, ConnectionOptions};

/// A running dev server; killed when dropped.
pub struct DevServer {
    child: tokio::process::Child,
    pid: u32,
    address: String,
}

impl DevServer {
    /// Starts `binary server start-dev` (in memory, headless) with `extra_args`, logging into
    /// `log`, and connects a client once it answers.
    pub async fn start(
        binary: &str,
        log: &Path,
        extra_args: &[String],
    ) -> anyhow::Result<(DevServer, Client)> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let log_file = std::fs::File::create(log)?;
        let mut child = tokio::process::Command::new(binary)
            .args(["server", "start-dev", "--headless", "--ip", "127.0.0.1"])
            .args(["--port", &port.to_string(), "--namespace", "default"])
            .args(["--log-format", "pretty", "--log-level", "error"])
            .args([
                "--dynamic-config-value",
                "frontend.enableServerVersionCheck=false",
            ])
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {binary} server start-dev"))?;
        let pid = child.id().context("the dev server exited at once")?;
        let address = format!("127.0.0.1:{port}");
        let url = url::Url::parse(&format!("http://{address}"))?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let client = loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if let Some(status) = child.try_wait()? {
                anyhow::bail!("the dev server exited ({status}); see {}", log.display());
            }
            let connection = Connection::connect(
                ConnectionOptions::new(url.clone())
                    .identity("rindle-bench".to_owned())
                    .build(),
            )
            .await;
            match connection {
                Ok(connection) => {
                    break Client::new(connection, ClientOptions::new("default").build())
                        .map_err(|e| anyhow::anyhow!("client: {e}"))?;
                }
                Err(e) if tokio::time::Instant::now() > deadline => {
                    anyhow::bail!("the dev server did not answer within 30 s: {e}")
                }
                Err(_) => {}
            }
        };
        Ok((
            DevServer {
                child,
                pid,
                address,
            },
            client,
        ))
    }

    /// `host:port` of the frontend.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Kills the server and waits for it.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
