//! The tenant API (`/api/v1`): tools, the tenant's own MCP servers, and its tenant object.

use reqwest::Method;
use reqwest::header::{AUTHORIZATION, HeaderMap};
use serde_json::{Map, Value};

use crate::error::Error;
use crate::transport::{Call, RetryPolicy, Transport};
use crate::types::{
    DeploymentStarted, Feedback, Invocation, InvokeBody, NewServer, SelectOptions, Selection, Server, ServerList,
    Tenant, Tool, ToolPage, ToolQuery,
};

/// A tenant's client: every request carries `Authorization: Bearer <api key>` and
/// `X-Tenant-ID: <tenant id>`.
#[derive(Debug, Clone)]
pub struct Connectors {
    transport: Transport,
}

impl Connectors {
    /// `base_url` is the gateway's address, e.g. `https://gateway.example.com`.
    pub fn new(base_url: &str, tenant_id: &str, api_key: &str) -> Result<Self, Error> {
        let mut headers = HeaderMap::new();
        let (name, value) = Transport::header("x-tenant-id", tenant_id)?;
        headers.insert(name, value);
        let (_, value) = Transport::header("authorization", &format!("Bearer {api_key}"))?;
        headers.insert(AUTHORIZATION, value);
        Ok(Self { transport: Transport::new(base_url, headers)? })
    }

    /// The same client with another retry policy for 429 and 503.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.transport.retry = retry;
        self
    }

    pub fn tools(&self) -> Tools<'_> {
        Tools(&self.transport)
    }

    pub fn mcp(&self) -> Mcp<'_> {
        Mcp(&self.transport)
    }

    pub fn tenant(&self) -> TenantSelf<'_> {
        TenantSelf(&self.transport)
    }
}

/// `/api/v1/tools`
#[derive(Debug, Clone, Copy)]
pub struct Tools<'a>(&'a Transport);

impl Tools<'_> {
    /// `POST /tools/select`: the tools for a query, tiered to fit the token budget.
    pub async fn select(&self, query: &str, options: Option<&SelectOptions>) -> Result<Selection, Error> {
        let mut body = serde_json::json!({ "query": query });
        if let Some(options) = options {
            body["options"] = serde_json::to_value(options).map_err(|e| Error::InvalidSetting(e.to_string()))?;
        }
        self.0.json(Call::new(Method::POST, &["api", "v1", "tools", "select"]).body(&body)?).await
    }

    /// `GET /tools`: a page of the tools this tenant may use.
    pub async fn list(&self, query: &ToolQuery) -> Result<ToolPage, Error> {
        let call = Call::get(&["api", "v1", "tools"]).query(&[
            ("category", query.category.clone()),
            ("limit", query.limit.map(|n| n.to_string())),
            ("cursor", query.cursor.clone()),
        ]);
        self.0.json(call).await
    }

    /// `GET /tools/{id}`: one tool with its `inputSchema`.
    pub async fn get(&self, id: &str) -> Result<Tool, Error> {
        self.0.json(Call::get(&["api", "v1", "tools", id])).await
    }

    /// `POST /tools/invoke`. A tool's own failure is a result with `isError`
    /// ([`Invocation::is_error`]), not an `Err`.
    pub async fn invoke(
        &self,
        tool_id: &str,
        parameters: &Map<String, Value>,
        selection_id: Option<&str>,
    ) -> Result<Invocation, Error> {
        let body = InvokeBody { tool_id, parameters, selection_id };
        self.0.json(Call::new(Method::POST, &["api", "v1", "tools", "invoke"]).body(&body)?).await
    }

    /// `POST /tools/feedback`: which tools served a query.
    pub async fn feedback(&self, feedback: &Feedback) -> Result<(), Error> {
        self.0.empty(Call::new(Method::POST, &["api", "v1", "tools", "feedback"]).body(feedback)?).await
    }
}

/// `/api/v1/mcp/servers`: the tenant's own MCP servers.
#[derive(Debug, Clone, Copy)]
pub struct Mcp<'a>(&'a Transport);

impl Mcp<'_> {
    /// `POST /mcp/servers`: starts the server's deployment.
    pub async fn add(&self, server: &NewServer) -> Result<DeploymentStarted, Error> {
        self.0.json(Call::new(Method::POST, &["api", "v1", "mcp", "servers"]).body(server)?).await
    }

    pub async fn list(&self) -> Result<Vec<Server>, Error> {
        let list: ServerList = self.0.json(Call::get(&["api", "v1", "mcp", "servers"])).await?;
        Ok(list.servers)
    }

    pub async fn get(&self, name: &str) -> Result<Server, Error> {
        self.0.json(Call::get(&["api", "v1", "mcp", "servers", name])).await
    }

    /// `DELETE /mcp/servers/{name}`: the server as it is being deleted (`status: deleting`).
    pub async fn delete(&self, name: &str) -> Result<Server, Error> {
        self.0.json(Call::new(Method::DELETE, &["api", "v1", "mcp", "servers", name])).await
    }
}

/// `/api/v1/tenant`: the caller's own tenant.
#[derive(Debug, Clone, Copy)]
pub struct TenantSelf<'a>(&'a Transport);

impl TenantSelf<'_> {
    /// The tenant object (no key) and this month's usage.
    pub async fn get(&self) -> Result<Tenant, Error> {
        self.0.json(Call::get(&["api", "v1", "tenant"])).await
    }
}
