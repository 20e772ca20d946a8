//! Live MCP connections reused per server and token, reconnected when they broke.
//!
//! A connection's token is fixed when it opens (rmcp sets the header per transport), so the key is
//! the server plus a digest of the token: tenants with their own tokens for one integration get
//! their own sessions, and a refreshed token opens a new one. Stdio servers never see a token, so
//! their key leaves it out.

use std::collections::HashMap;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::outbound::CheckedHttp;

use super::{BearerToken, CallToolResult, McpConnection, McpError, McpServer, McpTool};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PoolKey {
    server: McpServer,
    /// SHA-256 of the token, so the map never holds a second copy of it.
    token_digest: Option<[u8; 32]>,
}

impl PoolKey {
    fn new(server: &McpServer, token: Option<&BearerToken>) -> Self {
        let token_digest =
            token.filter(|_| server.carries_token()).map(|token| Sha256::digest(token.expose().as_bytes()).into());
        Self { server: server.clone(), token_digest }
    }
}

/// One key's connection; its lock is held while connecting so concurrent callers share one
/// handshake instead of racing to open several.
type Slot = Arc<Mutex<Option<Arc<McpConnection>>>>;

/// Hands out the stdio of a process run by someone else (the local deployer), for
/// [`McpServer::Attached`] servers.
#[async_trait::async_trait]
pub trait PipeSource: Send + Sync + 'static {
    async fn attach(
        &self,
        tenant: &str,
        server: &str,
    ) -> Result<(tokio::process::ChildStdout, tokio::process::ChildStdin), McpError>;
}

pub struct McpPool {
    slots: std::sync::Mutex<HashMap<PoolKey, Slot>>,
    http: CheckedHttp,
    pipes: Option<Arc<dyn PipeSource>>,
    /// The client for [`McpServer::Deployed`] servers; `http` when there is none.
    deployed: Option<CheckedHttp>,
}

impl std::fmt::Debug for McpPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpPool").field("servers", &self.len()).finish_non_exhaustive()
    }
}

impl McpPool {
    /// A pool that reaches HTTP servers through `http`.
    pub fn new(http: CheckedHttp) -> Self {
        Self { slots: Default::default(), http, pipes: None, deployed: None }
    }

    /// A pool that also reaches [`McpServer::Attached`] servers through `pipes`.
    pub fn with_pipes(http: CheckedHttp, pipes: Arc<dyn PipeSource>) -> Self {
        Self { slots: Default::default(), http, pipes: Some(pipes), deployed: None }
    }

    /// A pool that reaches [`McpServer::Deployed`] servers through `deployed` (a client whose
    /// policy trusts the deployer's own addresses) and every other HTTP server through `http`.
    pub fn with_deployed(http: CheckedHttp, deployed: CheckedHttp) -> Self {
        Self { slots: Default::default(), http, pipes: None, deployed: Some(deployed) }
    }

    /// Where this pool may connect.
    pub fn outbound(&self) -> &crate::outbound::OutboundPolicy {
        self.http.policy()
    }

    /// The live connection for `server` and `token`, opened (or reopened, if it broke) before `deadline`.
    pub async fn connection(
        &self,
        server: &McpServer,
        token: Option<&BearerToken>,
        deadline: Instant,
    ) -> Result<Arc<McpConnection>, McpError> {
        let slot = self.slot(PoolKey::new(server, token));
        let mut current = slot.lock().await;
        if let Some(connection) = current.as_ref().filter(|connection| !connection.is_closed()) {
            return Ok(Arc::clone(connection));
        }
        let connection = match (server, &self.pipes) {
            (McpServer::Attached { tenant, server: name }, Some(pipes)) => {
                let (stdout, stdin) = pipes.attach(tenant, name).await?;
                McpConnection::from_pipes(server, stdout, stdin, deadline).await?
            }
            (McpServer::Deployed { .. }, _) => {
                let http = self.deployed.as_ref().unwrap_or(&self.http);
                McpConnection::connect(server, token, http, deadline).await?
            }
            _ => McpConnection::connect(server, token, &self.http, deadline).await?,
        };
        let connection = Arc::new(connection);
        *current = Some(Arc::clone(&connection));
        Ok(connection)
    }

    pub async fn list_tools(
        &self,
        server: &McpServer,
        token: Option<&BearerToken>,
        deadline: Instant,
    ) -> Result<Vec<McpTool>, McpError> {
        let connection = self.connection(server, token, deadline).await?;
        let outcome = connection.list_tools(deadline).await;
        self.forget_if_broken(server, token, &connection, &outcome).await;
        outcome
    }

    /// Calls a tool on a pooled connection. A call is never retried on another connection: the server
    /// may have run it already.
    pub async fn call_tool(
        &self,
        server: &McpServer,
        token: Option<&BearerToken>,
        name: &str,
        arguments: serde_json::Map<String, serde_json::Value>,
        deadline: Instant,
    ) -> Result<CallToolResult, McpError> {
        let connection = self.connection(server, token, deadline).await?;
        let outcome = connection.call_tool(name, arguments, deadline).await;
        self.forget_if_broken(server, token, &connection, &outcome).await;
        outcome
    }

    /// Drops every connection to `server`, whatever its token (the server was deleted or changed).
    pub fn remove_server(&self, server: &McpServer) {
        self.lock_slots().retain(|key, _| &key.server != server);
    }

    /// How many keys have a slot; a slot may hold a closed connection until next used.
    pub fn len(&self) -> usize {
        self.lock_slots().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn slot(&self, key: PoolKey) -> Slot {
        Arc::clone(self.lock_slots().entry(key).or_default())
    }

    fn lock_slots(&self) -> std::sync::MutexGuard<'_, HashMap<PoolKey, Slot>> {
        // The map is only touched in short critical sections that cannot panic midway.
        self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Empties the slot after an error that left `connection` unusable, unless a newer connection
    /// already replaced it.
    async fn forget_if_broken<T>(
        &self,
        server: &McpServer,
        token: Option<&BearerToken>,
        connection: &Arc<McpConnection>,
        outcome: &Result<T, McpError>,
    ) {
        let broken = matches!(outcome, Err(error) if error.breaks_connection()) || connection.is_closed();
        if !broken {
            return;
        }
        let slot = self.slot(PoolKey::new(server, token));
        let mut current = slot.lock().await;
        if current.as_ref().is_some_and(|held| Arc::ptr_eq(held, connection)) {
            *current = None;
        }
    }
}
