//! The command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "connectors", version, about = "Connectors Gateway: a multi-tenant gateway for MCP tool servers")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve(ServeArgs),
    /// Measure tool selection on a labelled query set (../shared/tool-retrieval format).
    EvalSelection(EvalSelectionArgs),
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address the HTTP API listens on.
    #[arg(long, default_value = "127.0.0.1:3000", env = "CONNECTORS_LISTEN")]
    pub listen: SocketAddr,

    /// Directory of the embedded store (created if missing).
    #[arg(long, default_value = "./data", env = "CONNECTORS_DATA_DIR")]
    pub data_dir: PathBuf,

    /// Configuration file [default: config/multi-tenant.yaml when it exists].
    #[arg(long, env = "CONNECTORS_CONFIG")]
    pub config: Option<PathBuf>,
}

impl ServeArgs {
    /// The config file to load: the given one (which must exist), else the default if present.
    pub fn config_path(&self) -> Option<PathBuf> {
        self.config.clone().or_else(|| {
            let default = PathBuf::from("config/multi-tenant.yaml");
            default.exists().then_some(default)
        })
    }
}

#[derive(Debug, clap::Args)]
pub struct EvalSelectionArgs {
    /// Tools, one JSON object a line: `{id, name, integration, category, description, inputSchema}`.
    #[arg(long)]
    pub catalog: PathBuf,
    /// Labelled queries, one a line: `{query, gold: [ids]}`.
    #[arg(long)]
    pub queries: PathBuf,
    /// Past traffic replayed before the queries, one a line: `{query, tools: [ids]}`.
    #[arg(long)]
    pub history: Option<PathBuf>,
    /// Where to write one `{query, tools, latencyMs}` line per query.
    #[arg(long)]
    pub output: Option<PathBuf>,
}
