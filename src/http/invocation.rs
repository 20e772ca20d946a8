//! Where a tool invocation goes, decided before its admission so that the admission — the one
//! call to the tenant's owner — also charges it.
//!
//! `tools/invoke` plans before it asks the owner: the tool is looked up (the selector's catalog,
//! in memory), a shared integration's OAuth token is read, and the admission request carries the
//! charge only when the call can go ahead. A tool on the tenant's own server names that server in
//! the admission instead: its owner answers the server's record with the verdict and charges only
//! when the server is ready. What the plan found wrong (no such tool, no usable credential) is
//! answered only after the admission, so an unauthenticated or rate-limited caller learns nothing
//! of the tenant's tools. The MCP endpoint's `tools/call` knows its tool only after admission (the
//! tenant's listing decides), so it plans then and charges in a second call.

use axum::http::StatusCode;
use connectors_actors::admission::ServerLookup;
use connectors_actors::deployer::{ServerName, ServerSource};
use connectors_actors::deployments::ServerRecord;
use connectors_actors::quotas::Quota;
use connectors_actors::secret_store::CredentialStatus;
use connectors_actors::tenant::TenantId;

use super::error::ApiError;
use crate::app::Gateway;
use crate::tools::catalog::Tool;
use crate::tools::mcp_client::{BearerToken, McpServer};
use crate::tools::registry::IntegrationAuth;
use crate::tools::tenant_servers::endpoint_server;

/// One invocation of `tool_id`, resolved as far as the edge can before admission.
pub struct InvocationPlan {
    pub tool_id: String,
    route: Result<Route, ApiError>,
}

enum Route {
    /// A shared integration's server, with the tenant's token when the integration needs one.
    Shared { tool: Tool, server: McpServer, token: Option<BearerToken> },
    /// The tenant's own server; `found` is what its owner answered with the admission (`None`
    /// from an owner of an older version, or before admission).
    Own { tool: Tool, name: ServerName, found: Option<ServerLookup> },
}

/// A planned invocation ready to be called.
pub struct Resolved {
    pub tool: Tool,
    pub server: McpServer,
    pub token: Option<BearerToken>,
}

impl InvocationPlan {
    /// Looks up `tool_id` among `tenant`'s tools and, for a shared integration, reads the token.
    pub async fn new(gateway: &Gateway, tenant: &TenantId, tool_id: &str) -> Self {
        let route = async {
            let tool = gateway
                .selector
                .tool(tenant, tool_id)
                .ok_or_else(|| ApiError::not_found(format!("tool `{tool_id}` not found")))?;
            if tool.owner.is_some() {
                let name = ServerName::parse(&tool.integration).map_err(|_| server_not_found(&tool.integration))?;
                return Ok(Route::Own { tool, name, found: None });
            }
            let integration = gateway
                .registry
                .integration(&tool.integration)
                .ok_or_else(|| ApiError::not_found(format!("tool `{}` not found", tool.id)))?;
            let token = match integration.auth {
                IntegrationAuth::None => None,
                IntegrationAuth::OAuth => Some(usable_token(gateway, tenant, &integration.name).await?),
            };
            Ok(Route::Shared { server: integration.server(), tool, token })
        }
        .await;
        Self { tool_id: tool_id.to_string(), route }
    }

    /// What the admission charges: an invocation that can go ahead (for the tenant's own server,
    /// the owner checks that it is ready).
    pub fn charge(&self) -> Option<Quota> {
        self.route.is_ok().then_some(Quota::ToolInvocations)
    }

    /// The tenant's own server whose record the admission should answer.
    pub fn server(&self) -> Option<ServerName> {
        match &self.route {
            Ok(Route::Own { name, .. }) => Some(name.clone()),
            _ => None,
        }
    }

    /// The plan with what the owner answered of the server it named.
    pub fn admitted(mut self, answered: Option<ServerLookup>) -> Self {
        if let Ok(Route::Own { found, .. }) = &mut self.route {
            *found = answered;
        }
        self
    }

    /// Where to call, or why the call cannot be made.
    pub async fn resolve(&self, gateway: &Gateway, tenant: &TenantId) -> Result<Resolved, ApiError> {
        match &self.route {
            Err(error) => Err(error.clone()),
            Ok(Route::Shared { tool, server, token }) => {
                Ok(Resolved { tool: tool.clone(), server: server.clone(), token: token.clone() })
            }
            Ok(Route::Own { tool, name, found }) => {
                let record = match found {
                    Some(ServerLookup::Found(record)) => Some(ServerRecord::clone(record)),
                    Some(ServerLookup::NotFound) => None,
                    None => gateway.router.get_server(tenant, name.clone()).await?,
                };
                let record = record.ok_or_else(|| server_not_found(name.as_str()))?;
                let (server, token) = own_server(gateway, tenant, &record).await?;
                Ok(Resolved { tool: tool.clone(), server, token })
            }
        }
    }
}

/// Where the tenant's own server is reached, and the tenant's token for the server's
/// `oauthIntegration`, if it names one.
async fn own_server(
    gateway: &Gateway,
    tenant: &TenantId,
    record: &ServerRecord,
) -> Result<(McpServer, Option<BearerToken>), ApiError> {
    let name = record.name.as_str();
    let Some(endpoint) = record.endpoint.as_ref().filter(|_| record.can_take_calls()) else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "server_not_ready",
            format!("custom server `{name}` is {}", record.status.as_str()),
        ));
    };
    let token = match &record.source {
        ServerSource::Http { url, oauth_integration: Some(integration) } => {
            // Checked again here: the integration may have moved since the server was registered.
            if !gateway.registry.integration(integration).is_some_and(|shared| shared.may_receive_token(url)) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    format!(
                        "custom server `{name}` is not on the host of `{integration}`; its token is not sent there"
                    ),
                ));
            }
            Some(usable_token(gateway, tenant, integration).await?)
        }
        _ => None,
    };
    Ok((endpoint_server(tenant, name, endpoint), token))
}

fn server_not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("custom server `{name}` not found"))
}

/// The tenant's access token for `integration`, if it can be used now; never a stale one.
pub async fn usable_token(gateway: &Gateway, tenant: &TenantId, integration: &str) -> Result<BearerToken, ApiError> {
    let credential = gateway
        .secrets
        .get(tenant, integration)
        .await?
        .ok_or_else(|| oauth_required(integration, "no OAuth credential is stored for this integration"))?;
    match credential.status_at(gateway.clock.now()) {
        CredentialStatus::NeedsReauth => {
            Err(oauth_required(integration, "the OAuth credential needs to be authorised again"))
        }
        CredentialStatus::Expired => Err(oauth_required(integration, "the OAuth access token has expired")),
        CredentialStatus::Active | CredentialStatus::Refreshing => Ok(BearerToken::new(credential.access_token)),
    }
}

pub fn oauth_required(integration: &str, why: &str) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "oauth_required", format!("`{integration}`: {why}"))
        .with_field("integration", integration)
}
