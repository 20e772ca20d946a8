//! Where an MCP server is and how to start or reach it, and the bearer token sent to it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// One MCP server, as the catalog registered it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum McpServer {
    /// Streamable HTTP at this URL, e.g. `https://mcp.example.com/mcp`.
    Http { url: String },
    /// Streamable HTTP at a URL a deployer made for a tenant's server it runs (a Kubernetes
    /// Service): reached through the pool's client for such servers, which trusts the cluster's
    /// service names that the outbound policy refuses tenants' own URLs.
    Deployed { url: String },
    /// A child process speaking MCP over its stdin and stdout.
    Stdio(StdioCommand),
    /// A tenant's own stdio server, run by the deployer of this node: the pool asks its
    /// [`PipeSource`](super::PipeSource) for the process's stdio instead of spawning anything.
    Attached { tenant: String, server: String },
}

impl McpServer {
    pub fn http(url: impl Into<String>) -> Self {
        Self::Http { url: url.into() }
    }

    /// Whether a bearer token reaches this server: a child process has no HTTP request to carry it.
    pub fn carries_token(&self) -> bool {
        matches!(self, Self::Http { .. } | Self::Deployed { .. })
    }
}

impl fmt::Display for McpServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Http { url } | Self::Deployed { url } => f.write_str(url),
            Self::Stdio(command) => write!(f, "stdio:{}", command.program.display()),
            Self::Attached { tenant, server } => write!(f, "stdio:{tenant}/{server}"),
        }
    }
}

/// A child process to spawn. Its environment is cleared and holds only `env`, so the gateway's own
/// secrets never leak into a server's process; `program` should therefore be an absolute path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StdioCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub working_dir: Option<PathBuf>,
}

impl StdioCommand {
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self { program: program.into(), args: Vec::new(), env: BTreeMap::new(), working_dir: None }
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }

    pub fn working_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.working_dir = Some(dir.into());
        self
    }
}

/// An OAuth access token sent as `Authorization: Bearer <token>`; never printed.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BearerToken(String);

impl BearerToken {
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}
