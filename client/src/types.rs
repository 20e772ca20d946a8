//! The API's JSON shapes (docs/API.md, `openapi.json`), as this client sends and reads them.
//! Answers are read leniently: fields the gateway adds later are ignored, so an older client keeps
//! working against a newer gateway.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

// ----- tenants --------------------------------------------------------------------------------

/// A tenant's effective limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    pub requests_per_minute: u64,
    pub requests_per_hour: u64,
    pub requests_per_day: u64,
    pub max_custom_servers: u64,
    pub max_tool_invocations: u64,
    #[serde(rename = "maxStorageMB")]
    pub max_storage_mb: u64,
}

/// Limits to set; `None` leaves a limit as it is (on create: the plan's).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LimitSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests_per_hour: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests_per_day: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_custom_servers: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tool_invocations: Option<u64>,
    #[serde(rename = "maxStorageMB", skip_serializing_if = "Option::is_none")]
    pub max_storage_mb: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Features {
    pub custom_servers: bool,
    pub oauth: bool,
    pub advanced_analytics: bool,
}

/// Features to set; `None` leaves a feature as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FeatureSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_servers: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oauth: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advanced_analytics: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Security {
    /// CIDRs and single addresses; empty allows every address.
    #[serde(rename = "allowedIPs", default)]
    pub allowed_ips: Vec<String>,
}

/// `active` or `suspended`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantStatus {
    Active,
    Suspended,
}

impl TenantStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TenantStatus::Active => "active",
            TenantStatus::Suspended => "suspended",
        }
    }
}

/// What the gateway's MCP endpoint lists to the tenant's clients.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct McpListing {
    pub tool_list: ToolList,
    /// The categories listed (`categories`) or searched (`search`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
}

/// How the MCP endpoint's `tools/list` answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolList {
    /// Every tool the tenant may use.
    #[default]
    Full,
    /// Only the tools of the listed categories.
    Categories,
    /// The meta-tools `find_tools` and `call_tool`.
    Search,
}

/// The tenant object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    pub plan: String,
    pub status: TenantStatus,
    pub limits: Limits,
    pub features: Features,
    pub security: Security,
    #[serde(default)]
    pub mcp: McpListing,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// This month's usage (one tenant's read; absent from lists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageReport>,
}

/// The answer to a create: the tenant and its API key, shown this once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedTenant {
    #[serde(flatten)]
    pub tenant: Tenant,
    pub api_key: String,
}

/// The body of a tenant's creation.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewTenant {
    pub id: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitSettings>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub features: Option<FeatureSettings>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security: Option<Security>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mcp: Option<McpListing>,
}

impl NewTenant {
    pub fn new(id: impl Into<String>, name: impl Into<String>) -> Self {
        Self { id: id.into(), name: name.into(), ..Self::default() }
    }
}

/// The body of a tenant's update: only what is set is sent; limits and features merge key by key.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitSettings>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub features: Option<FeatureSettings>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security: Option<Security>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<TenantStatus>,
    /// Replaces the MCP listing as a whole.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mcp: Option<McpListing>,
}

/// Which tenants to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantQuery {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    pub plan: Option<String>,
    pub status: Option<TenantStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantPage {
    pub tenants: Vec<Tenant>,
    pub total: u64,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewApiKey {
    pub api_key: String,
}

// ----- usage, metrics, audit ------------------------------------------------------------------

/// A month's usage and its cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageReport {
    pub tenant_id: String,
    /// `YYYY-MM`.
    pub month: String,
    pub api_calls: u64,
    pub api_calls_cost: f64,
    pub tool_invocations: u64,
    pub tool_invocations_cost: f64,
    pub custom_servers: u64,
    pub custom_servers_cost: f64,
    pub total_cost: f64,
    pub currency: String,
}

/// A tenant's counters over a range of days.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantMetrics {
    pub tenant_id: String,
    pub start_date: String,
    pub end_date: String,
    pub requests: RequestCounts,
    pub tools: ToolCounts,
    pub servers: ServerCounts,
    pub tokens: Total<u64>,
    pub cost: Total<f64>,
    /// One entry per day with usage, oldest first; only with the `advancedAnalytics` feature.
    #[serde(default)]
    pub daily: Option<Vec<DailyUsage>>,
    /// Invocations per tool, most called first; only with the `advancedAnalytics` feature.
    #[serde(default)]
    pub by_tool: Option<ToolBreakdown>,
}

/// One day of a tenant's usage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DailyUsage {
    /// `YYYY-MM-DD`.
    pub date: String,
    pub requests: u64,
    pub api_calls: u64,
    pub rate_limited: u64,
    pub errors: u64,
    pub tool_invocations: u64,
    pub selections: u64,
    pub tokens: u64,
}

/// Tool invocations of a date range, per tool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolBreakdown {
    pub tools: Vec<ToolCalls>,
    /// False when the range held more invocations than were counted.
    pub complete: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolCalls {
    pub tool_id: String,
    pub calls: u64,
    pub errors: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestCounts {
    pub total: u64,
    pub rate_limited: u64,
    pub errors: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCounts {
    pub invocations: u64,
    pub selections: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerCounts {
    pub custom: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Total<T> {
    pub total: T,
}

/// `success`, `denied` or `error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditResult {
    Success,
    Denied,
    Error,
}

/// One event of a tenant's audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    /// RFC 3339.
    pub timestamp: String,
    pub tenant_id: String,
    #[serde(default)]
    pub user_id: Option<String>,
    pub action: String,
    #[serde(default)]
    pub tool_id: Option<String>,
    #[serde(default)]
    pub params: Option<Value>,
    pub result: AuditResult,
    /// Milliseconds.
    pub duration: u64,
    #[serde(default)]
    pub ip: Option<String>,
    #[serde(default)]
    pub user_agent: Option<String>,
    pub request_id: String,
}

/// Which audit events to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// RFC 3339.
    pub since: Option<String>,
    /// RFC 3339.
    pub until: Option<String>,
    pub action: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    pub next_cursor: Option<String>,
}

// ----- OAuth credentials ----------------------------------------------------------------------

/// A credential to store for a tenant and an integration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewCredential {
    pub access_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

/// A stored credential, without its tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Credential {
    pub integration: String,
    pub expires_at: Option<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    /// `active`, `refreshing`, `needs_reauth` or `expired`.
    pub status: String,
    #[serde(default)]
    pub last_refresh_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialList {
    pub integrations: Vec<Credential>,
}

// ----- integrations and the cluster -----------------------------------------------------------

/// A shared MCP server (streamable HTTP) to offer to every tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewIntegration {
    pub name: String,
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<IntegrationAuth>,
}

/// `{"type": "oauth" | "none"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntegrationAuth {
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Integration {
    pub name: String,
    pub url: String,
    pub category: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub auth: Option<IntegrationAuth>,
    /// `ready` or `unreachable`.
    pub status: String,
    pub tools_discovered: u64,
    #[serde(default)]
    pub tools: Vec<String>,
    #[serde(default)]
    pub error: Option<String>,
    /// RFC 3339: when its tools were last discovered.
    #[serde(default)]
    pub discovered_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntegrationList {
    pub integrations: Vec<Integration>,
}

/// The cluster as the asked node sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterView {
    pub node_id: String,
    pub epoch: u64,
    pub nodes: Vec<ClusterNode>,
    pub shards: Shards,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterNode {
    pub id: String,
    pub addr: String,
    /// `up`, `joining`, `draining` or `down`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_addr: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shards {
    pub total: u64,
    pub owned: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served: Option<u64>,
}

// ----- tools ------------------------------------------------------------------------------------

/// Options of a selection; `None` takes the gateway's default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SelectOptions {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tools: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_budget: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_categories: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include_schemas: Option<bool>,
}

/// The answer to a selection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Selection {
    pub selection_id: String,
    pub query: String,
    pub tools: Tiers,
    pub performance: SelectionPerformance,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tiers {
    pub tier1: Vec<RankedTool>,
    pub tier2: Vec<RankedTool>,
    pub tier3: Vec<ToolReference>,
}

/// A tool of tier 1 (`parameters` empty) or tier 2.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RankedTool {
    pub id: String,
    pub name: String,
    pub category: String,
    pub description: String,
    pub score: f64,
    #[serde(default)]
    pub parameters: Vec<String>,
    #[serde(default)]
    pub input_schema: Option<Value>,
}

/// A tool of tier 3: fetch the rest from `loadUrl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolReference {
    pub id: String,
    pub name: String,
    pub load_url: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SelectionPerformance {
    pub total_tools: u64,
    pub token_usage: u64,
    pub token_budget: u64,
    pub latency_ms: f64,
}

/// A tool; `input_schema` is there when one tool was read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tool {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub integration: String,
    pub category: String,
    pub description: String,
    #[serde(default)]
    pub parameters: Vec<String>,
    #[serde(default)]
    pub input_schema: Option<Value>,
}

/// Which tools to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolQuery {
    pub category: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolPage {
    pub tools: Vec<Tool>,
    pub total: u64,
    pub next_cursor: Option<String>,
}

/// The answer to an invocation. `result` is the MCP `CallToolResult` (`content`, `isError`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Invocation {
    pub tool_id: String,
    pub result: Value,
    pub latency_ms: f64,
}

impl Invocation {
    /// Whether the tool reported a failure (`result.isError`).
    pub fn is_error(&self) -> bool {
        self.result["isError"] == Value::Bool(true)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct InvokeBody<'a> {
    pub tool_id: &'a str,
    pub parameters: &'a Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selection_id: Option<&'a str>,
}

/// Which tools served a query: name the selection, or the query itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Feedback {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selection_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    pub tool_ids: Vec<String>,
}

// ----- the tenant's own MCP servers -------------------------------------------------------------

/// Where a server comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ServerSource {
    Github {
        url: String,
    },
    Docker {
        image: String,
    },
    Http {
        url: String,
        #[serde(rename = "oauthIntegration", default, skip_serializing_if = "Option::is_none")]
        oauth_integration: Option<String>,
    },
    Stdio {
        command: String,
        #[serde(default)]
        args: Vec<String>,
    },
}

/// A server to deploy for the tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewServer {
    pub name: String,
    pub source: ServerSource,
    pub category: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The answer to a server's creation: its deployment started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentStarted {
    pub deployment_id: String,
    pub name: String,
    pub status: String,
    pub namespace: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Server {
    pub name: String,
    pub category: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub deployment_id: Option<String>,
    pub source: ServerSource,
    /// `pending`, `deploying`, `ready`, `failed` or `deleting`.
    pub status: String,
    pub namespace: String,
    pub endpoint: Option<String>,
    pub tools_discovered: u64,
    pub created_at: String,
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerList {
    pub servers: Vec<Server>,
}
