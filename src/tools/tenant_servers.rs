//! Tenants' own MCP servers, as the catalog and the MCP client see them: the [`ServerTools`]
//! adapter the tenant actor discovers tools with, and the [`PipeSource`] through which the MCP
//! pool speaks to a stdio server the [`LocalDeployer`] runs.
//!
//! A tenant's server tools are put in the catalog of the node whose actor discovered them (the
//! node that owns the tenant, which also runs its stdio processes); another node's catalog does
//! not have them.

use std::time::Duration;

use async_trait::async_trait;
use connectors_actors::deployer::{Endpoint, ServerName};
use connectors_actors::deployments::ServerRecord;
use connectors_actors::server_tools::ServerTools;
use connectors_actors::tenant::TenantId;

use super::mcp_client::{McpError, McpServer, PipeSource, catalog_tools};
use super::registry::ToolRegistry;
use crate::backends::local_deployer::LocalDeployer;

/// The MCP server behind a tenant's server endpoint.
pub fn endpoint_server(tenant: &TenantId, name: &str, endpoint: &Endpoint) -> McpServer {
    match endpoint {
        Endpoint::Http { url } => McpServer::http(url.clone()),
        Endpoint::Deployed { url } => McpServer::Deployed { url: url.clone() },
        Endpoint::Stdio => McpServer::Attached { tenant: tenant.to_string(), server: name.to_string() },
    }
}

pub struct RegistryServerTools {
    pub registry: std::sync::Weak<ToolRegistry>,
    pub discovery_timeout: Duration,
}

#[async_trait]
impl ServerTools for RegistryServerTools {
    async fn discover(&self, tenant: &TenantId, record: &ServerRecord) -> Result<u64, String> {
        let Some(registry) = self.registry.upgrade() else { return Err("the gateway is stopping".into()) };
        let Some(endpoint) = &record.endpoint else { return Err("the server has no endpoint".into()) };
        let server = endpoint_server(tenant, record.name.as_str(), endpoint);
        // A new deployment may be a new process or a changed server: start a fresh session.
        if matches!(endpoint, Endpoint::Stdio | Endpoint::Deployed { .. }) {
            registry.mcp().remove_server(&server);
        }
        let deadline = tokio::time::Instant::now() + self.discovery_timeout;
        match registry.mcp().list_tools(&server, None, deadline).await {
            Ok(tools) => {
                let catalog = catalog_tools(record.name.as_str(), &record.category, &tools);
                let count = catalog.len() as u64;
                registry.set_tenant_server_tools(tenant, record.name.as_str(), catalog);
                tracing::info!(%tenant, server = %record.name, tools = count, "custom server's tools discovered");
                Ok(count)
            }
            Err(McpError::Timeout) => Err("the server did not answer tools/list in time".into()),
            Err(error) => {
                tracing::warn!(%tenant, server = %record.name, %error, "custom server's tools not discovered");
                Err(error.for_caller())
            }
        }
    }

    async fn withdraw(&self, tenant: &TenantId, name: &ServerName) {
        let Some(registry) = self.registry.upgrade() else { return };
        registry.set_tenant_server_tools(tenant, name.as_str(), Vec::new());
        registry.mcp().remove_server(&endpoint_server(tenant, name.as_str(), &Endpoint::Stdio));
    }
}

#[async_trait]
impl PipeSource for LocalDeployer {
    async fn attach(
        &self,
        tenant: &str,
        server: &str,
    ) -> Result<(tokio::process::ChildStdout, tokio::process::ChildStdin), McpError> {
        let unreachable = |why: String| McpError::Unreachable(format!("stdio:{tenant}/{server}: {why}"));
        let tenant = TenantId::parse(tenant).map_err(|e| unreachable(e.to_string()))?;
        let name = ServerName::parse(server).map_err(|e| unreachable(e.to_string()))?;
        let pipes = LocalDeployer::attach(self, &tenant, &name).await.map_err(|e| unreachable(e.to_string()))?;
        Ok((pipes.stdout, pipes.stdin))
    }
}
