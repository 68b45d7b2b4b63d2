//! The `rindle-ingest` command line: one binary, one subcommand per job.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Pushes Rindle video variants to Mux, on Temporal.
#[derive(Debug, Parser)]
#[command(name = "rindle-ingest", version)]
pub struct Cli {
    /// TOML configuration file; overrides the embedded defaults (env overrides both).
    #[arg(long, short, global = true, env = "RINDLE_INGEST_CONFIG")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the Temporal worker and its HTTP server until SIGINT/SIGTERM.
    Worker,
    /// Apply database migrations (creates Rindle's tables only if absent).
    Migrate,
    /// Start an ingest (or find the one that stands for it) and print `started` or `existing`.
    Enqueue(EnqueueArgs),
}

/// The ingest to start: flags, or the reference job arguments as JSON.
#[derive(Debug, Args)]
pub struct EnqueueArgs {
    /// The job arguments as JSON: {"asset_id","profile","variant_name","expected_storage_key","expected_recipe_digest"}.
    #[arg(long, conflicts_with_all = ["asset_id", "profile", "variant_name", "expected_storage_key", "expected_recipe_digest"])]
    pub json: Option<String>,
    /// `media_assets.id`.
    #[arg(long, required_unless_present = "json")]
    pub asset_id: Option<String>,
    /// Profile string, e.g. "Elixir.MyApp.Profiles.Web".
    #[arg(long, required_unless_present = "json")]
    pub profile: Option<String>,
    /// Variant name, e.g. "web_720p".
    #[arg(long, required_unless_present = "json")]
    pub variant_name: Option<String>,
    /// The asset's `storage_key` at enqueue time.
    #[arg(long, required_unless_present = "json")]
    pub expected_storage_key: Option<String>,
    /// The variant's `recipe_digest` at enqueue time.
    #[arg(long, required_unless_present = "json")]
    pub expected_recipe_digest: Option<String>,
}

impl EnqueueArgs {
    /// The workflow input these arguments describe.
    pub fn input(&self) -> Result<rindle_proto::IngestInput, String> {
        if let Some(json) = &self.json {
            return serde_json::from_str(json)
                .map_err(|e| format!("--json is not ingest input: {e}"));
        }
        Ok(rindle_proto::IngestInput {
            asset_id: self.asset_id.clone().unwrap_or_default(),
            profile: self.profile.clone().unwrap_or_default(),
            variant_name: self.variant_name.clone().unwrap_or_default(),
            expected_storage_key: self.expected_storage_key.clone().unwrap_or_default(),
            expected_recipe_digest: self.expected_recipe_digest.clone().unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn enqueue_takes_flags_or_json() {
        let cli = Cli::parse_from([
            "rindle-ingest",
            "enqueue",
            "--json",
            r#"{"asset_id":"a","profile":"p","variant_name":"v","expected_storage_key":"k","expected_recipe_digest":"d"}"#,
        ]);
        let Command::Enqueue(args) = cli.command else {
            panic!()
        };
        assert_eq!(args.input().unwrap().variant_name, "v");
        assert!(Cli::try_parse_from(["rindle-ingest", "enqueue", "--asset-id", "a"]).is_err());
    }
}
