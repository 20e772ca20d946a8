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
    /// Measure tool selection on a labelled query set (catalog and queries as JSON lines).
    EvalSelection(EvalSelectionArgs),
    /// Look at a running cluster.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Administer a running gateway: tenants, OAuth credentials, usage, audit logs, integrations.
    Admin(crate::admin_cli::AdminArgs),
    /// Print the OpenAPI 3.1 document of the HTTP API (what `openapi.json` holds).
    Openapi,
    /// Move data between installation modes.
    #[command(subcommand)]
    Migrate(MigrateCommand),
}

#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// Give a single-tenant installation's data (its tenant and OAuth credentials) to a tenant of
    /// a multi-tenant one, and print that tenant's new API key. Run it with the gateway stopped.
    SingleToMulti(SingleToMultiArgs),
}

#[derive(Debug, clap::Args)]
pub struct SingleToMultiArgs {
    /// The data directory of the single-tenant gateway.
    #[arg(long, default_value = "./data", env = "CONNECTORS_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Its configuration file [default: config/multi-tenant.yaml when it exists].
    #[arg(long, env = "CONNECTORS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Its Redis URL, if it kept its data in Redis.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,
    /// The tenant single-tenant mode served [default: the config's multiTenant.fallbackTenantId].
    #[arg(long)]
    pub from: Option<String>,
    /// The tenant that receives the data (created when missing).
    #[arg(long, default_value = crate::migrate::DEFAULT_TARGET)]
    pub tenant: String,
    /// Its name, when it is created.
    #[arg(long, default_value = "Default Tenant")]
    pub name: String,
    /// Its plan [default: the single-tenant tenant's plan for a new tenant; unchanged otherwise].
    #[arg(long)]
    pub plan: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Print the view (nodes, statuses, epoch) and the shard placement of a running cluster, as
    /// the node at --url sees it.
    Status(ClusterStatusArgs),
}

#[derive(Debug, clap::Args)]
pub struct ClusterStatusArgs {
    /// Any node's HTTP address.
    #[arg(long, default_value = "http://127.0.0.1:3000", env = "CONNECTORS_URL")]
    pub url: String,
    /// The admin API key.
    #[arg(long, env = "ADMIN_API_KEY", hide_env_values = true)]
    pub admin_key: String,
    /// Print the node's answer as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
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

    /// Redis URL: tenants, keys, usage and audit live in Redis instead of the data dir. With
    /// --node-id and --cluster-listen this node joins the cluster that shares this Redis.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,

    /// This node's name in the cluster (unique, stable across restarts).
    #[arg(long, env = "CONNECTORS_NODE_ID")]
    pub node_id: Option<String>,

    /// Address the node-to-node listener binds to (peers connect here).
    #[arg(long, env = "CONNECTORS_CLUSTER_LISTEN")]
    pub cluster_listen: Option<SocketAddr>,

    /// The `host:port` peers dial to reach this node (a DNS name or an IP) [default: the
    /// --cluster-listen address, which must then not be 0.0.0.0 or [::]].
    #[arg(long, env = "CONNECTORS_CLUSTER_ADVERTISE")]
    pub cluster_advertise: Option<String>,
}

/// What cluster mode needs, checked together.
pub struct ClusterArgs {
    pub node_id: String,
    pub listen: SocketAddr,
    /// What peers dial; `None`: the listen address.
    pub advertise: Option<String>,
}

impl ServeArgs {
    /// Cluster mode is on when --node-id and --cluster-listen are given, with a Redis URL.
    pub fn cluster(&self) -> Result<Option<ClusterArgs>, String> {
        match (&self.node_id, self.cluster_listen) {
            (None, None) => Ok(None),
            (Some(node_id), Some(listen)) => {
                if self.redis_url.is_none() {
                    return Err("cluster mode needs --redis-url (or REDIS_URL) as well".into());
                }
                let valid = !node_id.is_empty()
                    && node_id.len() <= 64
                    && node_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
                if !valid {
                    return Err(format!("--node-id `{node_id}`: use 1 to 64 letters, digits, `-` or `_`"));
                }
                let advertise = crate::cluster_settings::advertise(listen, self.cluster_advertise.as_deref())
                    .map_err(|e| e.to_string())?;
                Ok(Some(ClusterArgs { node_id: node_id.clone(), listen, advertise }))
            }
            (Some(_), None) => Err("--node-id needs --cluster-listen (and --redis-url)".into()),
            (None, Some(_)) => Err("--cluster-listen needs --node-id (and --redis-url)".into()),
        }
    }

    /// The config file to load: the given one (which must exist), else the default if present.
    pub fn config_path(&self) -> Option<PathBuf> {
        config_path(self.config.clone())
    }
}

/// The config file to load: `given` (which must exist), else the default if present.
pub fn config_path(given: Option<PathBuf>) -> Option<PathBuf> {
    given.or_else(|| {
        let default = PathBuf::from("config/multi-tenant.yaml");
        default.exists().then_some(default)
    })
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
    /// A sentence-embedding model's directory (all-MiniLM-L6-v2): ranks by meaning as well as
    /// by words, as the gateway does with `tools.embeddingModel`.
    #[arg(long, env = "CONNECTORS_EMBEDDING_MODEL")]
    pub embedding_model: Option<PathBuf>,
}
