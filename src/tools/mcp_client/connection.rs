//! One initialized MCP session with one server: connect, list tools, call a tool, each under a
//! deadline. A connection is shared (`&self` everywhere): rmcp multiplexes concurrent requests.

use std::process::Stdio;

use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation, PaginatedRequestParams, ProtocolVersion,
};
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{ChildStderr, Command};
use tokio::time::{Instant, timeout_at};

use super::pagination::collect_pages;
use super::{BearerToken, CallToolResult, McpError, McpServer, McpTool, StdioCommand};
use crate::outbound::{CheckedHttp, check_resolved};

pub struct McpConnection {
    server: McpServer,
    session: RunningService<RoleClient, ClientConfig>,
}

impl std::fmt::Debug for McpConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpConnection").field("server", &self.server).finish_non_exhaustive()
    }
}

impl McpConnection {
    /// Reaches `server` through `http` (which only connects where the outbound policy allows) and
    /// completes `initialize` before `deadline`. `token` is sent on every HTTP request of this
    /// connection; a stdio server never sees it.
    pub async fn connect(
        server: &McpServer,
        token: Option<&BearerToken>,
        http: &CheckedHttp,
        deadline: Instant,
    ) -> Result<Self, McpError> {
        let session = match timeout_at(deadline, start_session(server, token, http)).await {
            Ok(session) => session?,
            Err(_elapsed) => return Err(McpError::Timeout),
        };
        Ok(Self { server: server.clone(), session })
    }

    /// Completes `initialize` before `deadline` over the stdio of a process someone else runs.
    pub async fn from_pipes(
        server: &McpServer,
        stdout: tokio::process::ChildStdout,
        stdin: tokio::process::ChildStdin,
        deadline: Instant,
    ) -> Result<Self, McpError> {
        let session = match timeout_at(deadline, client_config().serve((stdout, stdin))).await {
            Ok(session) => session.map_err(McpError::from_initialize)?,
            Err(_elapsed) => return Err(McpError::Timeout),
        };
        Ok(Self { server: server.clone(), session })
    }

    pub fn server(&self) -> &McpServer {
        &self.server
    }

    /// The protocol version the server chose in `initialize`.
    pub fn protocol_version(&self) -> Option<String> {
        self.session.peer_info().map(|info| info.protocol_version.to_string())
    }

    /// Whether the session ended (the process exited, the transport failed, or it was closed).
    pub fn is_closed(&self) -> bool {
        self.session.is_closed() || self.session.peer().is_transport_closed()
    }

    /// Every tool of the server, following `nextCursor` page by page.
    pub async fn list_tools(&self, deadline: Instant) -> Result<Vec<McpTool>, McpError> {
        let peer = self.session.peer();
        let listing = collect_pages(|cursor| async move {
            let params = PaginatedRequestParams::default().with_cursor(cursor);
            let page = peer.list_tools(Some(params)).await.map_err(|error| McpError::from_service(error, false))?;
            Ok((page.tools, page.next_cursor))
        });
        timeout_at(deadline, listing).await.map_err(|_elapsed| McpError::Timeout)?
    }

    /// Calls `name` with `arguments`. A timeout drops the request, which tells the server with
    /// `notifications/cancelled`; the connection stays usable.
    pub async fn call_tool(
        &self,
        name: &str,
        arguments: serde_json::Map<String, serde_json::Value>,
        deadline: Instant,
    ) -> Result<CallToolResult, McpError> {
        let params = CallToolRequestParams::new(name.to_owned()).with_arguments(arguments);
        match timeout_at(deadline, self.session.peer().call_tool(params)).await {
            Ok(result) => result.map_err(|error| McpError::from_service(error, true)),
            Err(_elapsed) => Err(McpError::Timeout),
        }
    }

    /// Ends the session and, for stdio, the child process.
    pub async fn close(mut self) {
        if let Err(error) = self.session.close().await {
            tracing::debug!(server = %self.server, %error, "MCP session task ended abnormally");
        }
    }
}

/// How the gateway introduces itself in `initialize`.
fn client_config() -> ClientConfig {
    ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("connectors-gateway", env!("CARGO_PKG_VERSION")),
    )
    // The newest version that still has the `initialize` handshake: servers built on SDKs of
    // 2025 negotiate from it, and it keeps one session per connection.
    .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
}

async fn start_session(
    server: &McpServer,
    token: Option<&BearerToken>,
    http: &CheckedHttp,
) -> Result<RunningService<RoleClient, ClientConfig>, McpError> {
    match server {
        McpServer::Http { url } | McpServer::Deployed { url } => {
            // Refused early with a reason; the client's resolver checks again as it connects.
            let parsed = http.policy().check_url(url).map_err(McpError::Refused)?;
            check_resolved(http.policy(), &parsed).await.map_err(McpError::Refused)?;
            let mut config = StreamableHttpClientTransportConfig::with_uri(url.as_str());
            if let Some(token) = token {
                // rmcp adds the `Bearer ` prefix itself.
                config = config.auth_header(token.expose());
            }
            let transport = StreamableHttpClientTransport::with_client(http.client().clone(), config);
            client_config().serve(transport).await.map_err(McpError::from_initialize)
        }
        McpServer::Attached { .. } => {
            Err(McpError::Unreachable(format!("{server}: no deployer on this node runs this server")))
        }
        McpServer::Stdio(command) => {
            let (transport, stderr) = spawn(command)?;
            if let Some(stderr) = stderr {
                tokio::spawn(forward_stderr(server.to_string(), stderr));
            }
            client_config().serve(transport).await.map_err(McpError::from_initialize)
        }
    }
}

fn spawn(command: &StdioCommand) -> Result<(TokioChildProcess, Option<ChildStderr>), McpError> {
    let mut process = Command::new(&command.program);
    process.args(&command.args).env_clear().envs(&command.env);
    if let Some(dir) = &command.working_dir {
        process.current_dir(dir);
    }
    TokioChildProcess::builder(process)
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| McpError::Unreachable(format!("cannot start {}: {error}", command.program.display())))
}

/// A server's stderr goes to the log: piped so it cannot fill up and block the child.
async fn forward_stderr(server: String, stderr: ChildStderr) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::debug!(%server, "{line}");
    }
}
