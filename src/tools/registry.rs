//! `ToolRegistry`: the shared integrations admins registered, with the tools discovered from them,
//! and the catalog selection and invocation use (shared tools plus each tenant's own servers').
//!
//! Integrations are kept in the store (collection `integrations`), so they survive restarts and
//! every node of a cluster sees them ([`ToolRegistry::reload`] picks up other nodes' changes).
//! A server that cannot be reached at registration is kept with status `unreachable`: an admin can
//! refresh it once it is up, instead of registering it again.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use connectors_actors::store::{Store, StoreError};
use connectors_actors::tenant::TenantId;
use serde::{Deserialize, Serialize};

use super::catalog::{Catalog, Tool};
use super::mcp_client::{McpError, McpPool, McpServer, McpTool, catalog_tools};
use super::selector::Selector;

const COLLECTION: &str = "integrations";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum IntegrationAuth {
    /// Calls carry the calling tenant's OAuth access token for this integration.
    OAuth,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum IntegrationStatus {
    Ready,
    /// `tools/list` failed at the last discovery; `error` says why.
    Unreachable,
}

/// A tool as discovered, enough to rebuild the catalog without asking the server again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscoveredTool {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub input_schema: serde_json::Value,
}

impl DiscoveredTool {
    fn from_mcp(tools: &[McpTool]) -> Vec<Self> {
        // Through the catalog conversion, so a schema is read one way everywhere.
        catalog_tools("_", "", tools)
            .into_iter()
            .map(|tool| Self { name: tool.name, description: tool.description, input_schema: tool.input_schema })
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Integration {
    pub name: String,
    pub url: String,
    pub category: String,
    pub description: String,
    pub auth: IntegrationAuth,
    pub status: IntegrationStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub tools: Vec<DiscoveredTool>,
    pub created_at: DateTime<Utc>,
    pub discovered_at: DateTime<Utc>,
}

impl Integration {
    pub fn server(&self) -> McpServer {
        McpServer::http(self.url.clone())
    }

    /// Whether a tenant's token for this integration may be sent to `url`: only to the host the
    /// integration was registered with, so a tenant's own server cannot collect it.
    pub fn may_receive_token(&self, url: &str) -> bool {
        let host = |text: &str| url::Url::parse(text).ok().and_then(|u| u.host_str().map(str::to_ascii_lowercase));
        host(&self.url).is_some_and(|own| host(url).as_ref() == Some(&own))
    }

    fn catalog_tools(&self) -> impl Iterator<Item = Tool> + '_ {
        self.tools
            .iter()
            .map(|tool| Tool::new(&self.name, &tool.name, &self.category, &tool.description, tool.input_schema.clone()))
    }
}

/// What an admin asks to register.
#[derive(Debug, Clone)]
pub struct NewIntegration {
    pub name: String,
    pub url: String,
    pub category: Option<String>,
    pub description: Option<String>,
    pub auth: IntegrationAuth,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("integration `{0}` already exists")]
    Conflict(String),
    #[error("integration `{0}` not found")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `<integration>` becomes the first part of tool ids: lowercase letters, digits, `-` and `_`.
pub fn valid_server_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// The tools of one tenant's own server, as the registry keeps them for the catalog.
type TenantServerTools = BTreeMap<(TenantId, String), Vec<Tool>>;

pub struct ToolRegistry {
    store: Arc<dyn Store>,
    mcp: Arc<McpPool>,
    selector: Arc<Selector>,
    integrations: RwLock<BTreeMap<String, Integration>>,
    tenant_servers: RwLock<TenantServerTools>,
    discovery_timeout: Duration,
}

impl ToolRegistry {
    /// Loads the registered integrations and puts their tools in the selector's catalog.
    pub async fn load(
        store: Arc<dyn Store>,
        mcp: Arc<McpPool>,
        selector: Arc<Selector>,
        discovery_timeout: Duration,
    ) -> Result<Self, StoreError> {
        let registry = Self {
            store,
            mcp,
            selector,
            integrations: RwLock::new(BTreeMap::new()),
            tenant_servers: RwLock::new(BTreeMap::new()),
            discovery_timeout,
        };
        registry.reload().await?;
        Ok(registry)
    }

    pub fn mcp(&self) -> &McpPool {
        &self.mcp
    }

    /// Reads the integrations from the store again (other nodes may have changed them).
    pub async fn reload(&self) -> Result<(), StoreError> {
        let mut loaded = BTreeMap::new();
        for (name, bytes) in self.store.entries(COLLECTION).await? {
            match serde_json::from_slice::<Integration>(&bytes) {
                Ok(integration) => {
                    loaded.insert(name, integration);
                }
                Err(error) => tracing::error!(integration = %name, %error, "unreadable integration record; skipped"),
            }
        }
        let changed = *self.integrations.read().unwrap_or_else(PoisonError::into_inner) != loaded;
        if changed {
            *self.integrations.write().unwrap_or_else(PoisonError::into_inner) = loaded;
            self.rebuild_catalog();
        }
        Ok(())
    }

    pub fn list(&self) -> Vec<Integration> {
        self.integrations.read().unwrap_or_else(PoisonError::into_inner).values().cloned().collect()
    }

    pub fn integration(&self, name: &str) -> Option<Integration> {
        self.integrations.read().unwrap_or_else(PoisonError::into_inner).get(name).cloned()
    }

    /// Registers a shared integration and discovers its tools.
    pub async fn register(&self, new: NewIntegration, now: DateTime<Utc>) -> Result<Integration, RegistryError> {
        if !valid_server_name(&new.name) {
            return Err(RegistryError::Invalid(format!(
                "`name` `{}`: use 1 to 63 lowercase letters, digits, `-` or `_`, starting with a letter or digit",
                new.name
            )));
        }
        let url = self
            .mcp
            .outbound()
            .check_url(&new.url)
            .map_err(|refused| RegistryError::Invalid(format!("`url`: {refused}")))?;
        if self.integration(&new.name).is_some() || self.stored(&new.name).await?.is_some() {
            return Err(RegistryError::Conflict(new.name));
        }
        let mut integration = Integration {
            name: new.name,
            url: url.to_string(),
            category: new.category.unwrap_or_else(|| "general".into()),
            description: new.description.unwrap_or_default(),
            auth: new.auth,
            status: IntegrationStatus::Unreachable,
            error: None,
            tools: Vec::new(),
            created_at: now,
            discovered_at: now,
        };
        self.discover(&mut integration, now).await;
        self.save(&integration).await?;
        Ok(integration)
    }

    /// Discovers an integration's tools again.
    pub async fn refresh(&self, name: &str, now: DateTime<Utc>) -> Result<Integration, RegistryError> {
        let mut integration = match self.stored(name).await? {
            Some(integration) => integration,
            None => return Err(RegistryError::NotFound(name.to_string())),
        };
        // Connections opened before may hold a server that has since changed.
        self.mcp.remove_server(&integration.server());
        self.discover(&mut integration, now).await;
        self.save(&integration).await?;
        Ok(integration)
    }

    pub async fn remove(&self, name: &str) -> Result<(), RegistryError> {
        if !self.store.delete_entry(COLLECTION, name).await? {
            return Err(RegistryError::NotFound(name.to_string()));
        }
        if let Some(gone) = self.integrations.write().unwrap_or_else(PoisonError::into_inner).remove(name) {
            self.mcp.remove_server(&gone.server());
        }
        self.rebuild_catalog();
        Ok(())
    }

    /// Replaces the tools of `tenant`'s own server `server` (empty: the server is gone).
    pub fn set_tenant_server_tools(&self, tenant: &TenantId, server: &str, tools: Vec<Tool>) {
        {
            let mut servers = self.tenant_servers.write().unwrap_or_else(PoisonError::into_inner);
            let key = (tenant.clone(), server.to_string());
            if tools.is_empty() {
                servers.remove(&key);
            } else {
                servers.insert(key, tools.into_iter().map(|tool| tool.owned_by(tenant.clone())).collect());
            }
        }
        self.rebuild_catalog();
    }

    /// One `tools/list` within the discovery timeout; a failure is kept as the status.
    async fn discover(&self, integration: &mut Integration, now: DateTime<Utc>) {
        let deadline = tokio::time::Instant::now() + self.discovery_timeout;
        integration.discovered_at = now;
        match self.mcp.list_tools(&integration.server(), None, deadline).await {
            Ok(tools) => {
                integration.tools = DiscoveredTool::from_mcp(&tools);
                integration.status = IntegrationStatus::Ready;
                integration.error = None;
                tracing::info!(integration = %integration.name, tools = tools.len(), "tools discovered");
            }
            Err(error) => {
                tracing::warn!(integration = %integration.name, %error, "tool discovery failed");
                integration.status = IntegrationStatus::Unreachable;
                integration.error = Some(discovery_error(&error));
            }
        }
    }

    async fn stored(&self, name: &str) -> Result<Option<Integration>, StoreError> {
        // A single entry is read through the collection: integrations are few.
        Ok(self
            .store
            .entries(COLLECTION)
            .await?
            .into_iter()
            .find(|(stored, _)| stored == name)
            .and_then(|(_, bytes)| serde_json::from_slice(&bytes).ok()))
    }

    async fn save(&self, integration: &Integration) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(integration).map_err(|e| StoreError::Backend(e.to_string()))?;
        self.store.put_entry(COLLECTION, &integration.name, &bytes).await?;
        self.integrations
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(integration.name.clone(), integration.clone());
        self.rebuild_catalog();
        Ok(())
    }

    fn rebuild_catalog(&self) {
        let mut tools: Vec<Tool> = Vec::new();
        for integration in self.integrations.read().unwrap_or_else(PoisonError::into_inner).values() {
            tools.extend(integration.catalog_tools());
        }
        for server_tools in self.tenant_servers.read().unwrap_or_else(PoisonError::into_inner).values() {
            tools.extend(server_tools.iter().cloned());
        }
        // Ids are unique by construction (an integration name is unique, a tool name unique per
        // server); a duplicate would be a server listing one name twice: keep the first.
        let mut seen = std::collections::HashSet::new();
        tools.retain(|tool| seen.insert((tool.id.clone(), tool.owner.clone())));
        match Catalog::new(tools) {
            // With an encoder, new tools are embedded in the background and rank by words until then.
            Ok(catalog) => drop(self.selector.replace_catalog(catalog)),
            Err(error) => tracing::error!(%error, "catalog not rebuilt"),
        }
    }
}

/// What an admin is told about a failed discovery (no internals of the client).
fn discovery_error(error: &McpError) -> String {
    match error {
        McpError::Timeout => "the server did not answer tools/list in time".into(),
        McpError::Unauthorized { .. } => "the server refused the request (401/403)".into(),
        other => other.to_string(),
    }
}
