//! Configuration: `config/multi-tenant.yaml` in the documented format, then the documented
//! environment overrides, validated into the values the gateway runs with.
//!
//! Unknown keys and wrong types are errors naming the key path (`multiTenant.rateLimits.foo`),
//! so a typo stops start-up instead of silently falling back to a default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use connectors_actors::allow_list::IpAllowList;
use connectors_actors::auth::IdentityRules;
use connectors_actors::policy::{Plan, Policy};
use connectors_actors::tenant::{FeatureOverrides, Features, LimitOverrides, Limits, TenantId};
use serde::Deserialize;

use crate::backends::neo4j_tool_graph::Neo4jConfig;
use crate::backends::vault_secret_store::{KvVersion, VaultConfig};
use crate::tools::co_usage_policy::CoUsagePolicy;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("config file {path}: `{key}`: {message}")]
    Parse { path: String, key: String, message: String },
    #[error("config: `{key}`: {message}")]
    Invalid { key: String, message: String },
}

/// The longest lead of a refresh before expiry: longer is a mistake (no provider's access token
/// lives that long), and the time arithmetic stays far from its bounds.
const MAX_REFRESH_BEFORE_SECONDS: u64 = 30 * 24 * 3600;

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.to_string(), message: message.into() }
}

/// The file as written. Every key is optional; defaults are those of the shipped file.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    multi_tenant: MultiTenantSection,
    #[serde(default)]
    gateway: GatewaySection,
    #[serde(default)]
    oauth: OAuthSection,
    #[serde(default)]
    vault: VaultSection,
    #[serde(default)]
    redis: RedisSection,
    #[serde(default)]
    cluster: ClusterSection,
    #[serde(default)]
    tools: ToolsSection,
    #[serde(default)]
    deployer: DeployerSection,
    #[serde(default)]
    audit: AuditSection,
    #[serde(default)]
    outbound: OutboundSection,
    #[serde(default)]
    recorder: RecorderSection,
    #[serde(default)]
    store: StoreSection,
    #[serde(default)]
    billing: BillingSection,
    #[serde(default)]
    mcp: McpSection,
}

/// `billing.webhook`: where closed monthly bills are posted (see `billing_webhook`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
struct BillingSection {
    webhook: Option<WebhookSection>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
struct WebhookSection {
    url: String,
    close_delay_seconds: u64,
    first_retry_seconds: u64,
    max_retry_seconds: u64,
    timeout_seconds: u64,
    poll_seconds: u64,
}

impl Default for WebhookSection {
    fn default() -> Self {
        Self {
            url: String::new(),
            close_delay_seconds: 600,
            first_retry_seconds: 30,
            max_retry_seconds: 3_600,
            timeout_seconds: 10,
            poll_seconds: 60,
        }
    }
}

/// The gateway's own MCP endpoint (`/mcp`): bounds of each tenant's sessions, and the browser
/// origins it answers.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
struct McpSection {
    max_sessions_per_tenant: u64,
    session_idle_seconds: u64,
    max_events_per_session: u64,
    allowed_origins: Vec<String>,
}

impl Default for McpSection {
    fn default() -> Self {
        let limits = connectors_actors::mcp_sessions::SessionLimits::default();
        Self {
            max_sessions_per_tenant: limits.max_sessions as u64,
            session_idle_seconds: limits.idle_timeout.num_seconds().unsigned_abs(),
            max_events_per_session: limits.max_events as u64,
            allowed_origins: Vec::new(),
        }
    }
}

/// The shortest `BILLING_WEBHOOK_SECRET` accepted.
const MIN_WEBHOOK_SECRET_CHARS: usize = 16;

/// `billing.webhook` with its secret, checked; `None` without a URL.
fn billing_webhook(
    section: Option<WebhookSection>,
    env: &dyn Env,
) -> Result<Option<crate::billing_webhook::WebhookSettings>, ConfigError> {
    let Some(section) = section.filter(|s| !s.url.trim().is_empty()) else { return Ok(None) };
    let url = url::Url::parse(section.url.trim())
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some())
        .ok_or_else(|| invalid("billing.webhook.url", format!("`{}` is not an http(s) URL", section.url)))?;
    let secret = env
        .var("BILLING_WEBHOOK_SECRET")
        .filter(|s| s.chars().count() >= MIN_WEBHOOK_SECRET_CHARS)
        .ok_or_else(|| {
            invalid(
                "BILLING_WEBHOOK_SECRET",
                format!("must be set, at least {MIN_WEBHOOK_SECRET_CHARS} characters, when billing.webhook.url is"),
            )
        })?;
    let seconds = |key: &str, value: u64| {
        if value == 0 || value > 366 * 24 * 3600 {
            Err(invalid(key, "must be between 1 and 31622400 (a year)"))
        } else {
            Ok(value)
        }
    };
    let first = seconds("billing.webhook.firstRetrySeconds", section.first_retry_seconds)?;
    let max = seconds("billing.webhook.maxRetrySeconds", section.max_retry_seconds)?;
    if max < first {
        return Err(invalid("billing.webhook.maxRetrySeconds", "must not be below firstRetrySeconds"));
    }
    let timeout = seconds("billing.webhook.timeoutSeconds", section.timeout_seconds)?;
    let duration = |s: u64| chrono::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX));
    Ok(Some(crate::billing_webhook::WebhookSettings {
        url,
        secret: zeroize::Zeroizing::new(secret.into_bytes()),
        close_delay: duration(section.close_delay_seconds.min(31 * 24 * 3600)),
        schedule: crate::billing_webhook::delivery::Schedule {
            first_retry: duration(first),
            max_retry: duration(max),
            // An attempt is this node's for twice its deadline: a slow answer is not sent twice.
            lease: duration(timeout * 2),
        },
        timeout: Duration::from_secs(timeout),
        poll: Duration::from_secs(seconds("billing.webhook.pollSeconds", section.poll_seconds)?),
    }))
}

/// `mcp.*`: see the section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpSettings {
    pub sessions: connectors_actors::mcp_sessions::SessionLimits,
    /// `Origin` values a request may carry besides none (non-browser clients send none).
    pub allowed_origins: Vec<String>,
}

/// Where the gateway may connect for tenants (MCP servers, token endpoints); see `OutboundPolicy`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
struct OutboundSection {
    /// Loopback, private, unique-local and carrier-NAT addresses become reachable.
    allow_private: bool,
    /// Host names, addresses or CIDR networks reachable whatever their kind (and by plain http for
    /// token endpoints).
    allowed_hosts: Vec<String>,
}

/// The recorder, which commits audit events, usage and rate checkpoints in batches.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
struct RecorderSection {
    /// What may wait uncommitted (estimated) while the store fails; past it new audit events
    /// are dropped and counted (usage and checkpoints never are).
    max_pending_bytes: u64,
}

impl Default for RecorderSection {
    fn default() -> Self {
        Self { max_pending_bytes: 64 * 1024 * 1024 }
    }
}

/// The embedded store (the redb file of a node without Redis).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
struct StoreSection {
    /// The memory the store keeps pages of its file in. Registered tenants live in the file, so
    /// this, not their number, bounds what they cost in memory.
    cache_bytes: u64,
}

impl Default for StoreSection {
    fn default() -> Self {
        Self { cache_bytes: 64 * 1024 * 1024 }
    }
}

/// The smallest `store.cacheBytes`: below it a B-tree's inner pages no longer stay cached.
const MIN_STORE_CACHE_BYTES: u64 = 1024 * 1024;

/// The smallest `recorder.maxPendingBytes`: less would drop audit events while the store is
/// healthy, between two commits.
const MIN_RECORDER_PENDING_BYTES: u64 = 1024 * 1024;

/// The audit log.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
struct AuditSection {
    /// Refused requests of a tenant audited one by one per reason and minute (on each node);
    /// the rest are counted into one summary event. 0: every refusal is audited.
    refusals_per_minute: u32,
    /// Audit events older than this are deleted (hourly, by every node); 0: kept for ever.
    retention_days: u32,
}

impl Default for AuditSection {
    fn default() -> Self {
        Self { refusals_per_minute: 10, retention_days: 365 }
    }
}

/// The local deployer of tenants' own servers.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
struct DeployerSection {
    /// Command templates `stdio` servers may run (see `CommandAllowList`).
    allowed_commands: Vec<crate::backends::command_allow_list::CommandEntry>,
    /// The user and group children run as when the gateway runs as root.
    run_as_user: u32,
    run_as_group: u32,
    /// Where servers' working directories are made; a private directory under the system's
    /// temporary directory by default.
    work_dir: Option<std::path::PathBuf>,
    /// Present: tenants' servers run on Kubernetes instead (see `KubernetesSection`).
    kubernetes: Option<crate::backends::kubernetes::KubernetesSection>,
}

impl Default for DeployerSection {
    fn default() -> Self {
        // nobody:nogroup on Debian and most distributions.
        Self { allowed_commands: Vec::new(), run_as_user: 65534, run_as_group: 65534, work_dir: None, kubernetes: None }
    }
}

/// How the local deployer runs tenants' `stdio` servers.
#[derive(Debug, Clone)]
pub struct StdioSettings {
    /// `deployer.allowedCommands`.
    pub allowed_commands: crate::backends::command_allow_list::CommandAllowList,
    /// `deployer.runAsUser` and `deployer.runAsGroup`: used when the gateway runs as root.
    pub run_as: (u32, u32),
    /// `deployer.workDir`.
    pub work_dir: Option<std::path::PathBuf>,
}

/// Talking to MCP servers, and what selection shares between tenants.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
struct ToolsSection {
    call_timeout_seconds: u64,
    discovery_timeout_seconds: u64,
    max_result_bytes: usize,
    co_usage: CoUsageSection,
    graph: ToolGraphSection,
    embedding_model: Option<std::path::PathBuf>,
}

impl Default for ToolsSection {
    fn default() -> Self {
        Self {
            call_timeout_seconds: 30,
            discovery_timeout_seconds: 10,
            max_result_bytes: 4 * 1024 * 1024,
            co_usage: CoUsageSection::default(),
            graph: ToolGraphSection::default(),
            embedding_model: None,
        }
    }
}

/// See [`CoUsagePolicy`].
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
struct CoUsageSection {
    min_tenants: Option<u64>,
    per_tenant_cap: u64,
}

impl Default for CoUsageSection {
    fn default() -> Self {
        Self { min_tenants: None, per_tenant_cap: CoUsagePolicy::default().per_tenant_cap }
    }
}

impl CoUsageSection {
    /// Unset: the policy's default, but 1 in single-tenant mode, where there is no other tenant
    /// to protect and a quorum would only switch co-usage off.
    fn min_tenants(&self, multi_tenant: bool) -> u64 {
        match self.min_tenants {
            Some(value) => value,
            None if multi_tenant => CoUsagePolicy::default().min_tenants,
            None => 1,
        }
    }
}

/// `tools.graph`: where learning lives when not in the embedded graph or Redis.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
struct ToolGraphSection {
    neo4j: Option<Neo4jSection>,
}

/// `tools.graph.neo4j`; `NEO4J_URI`, `NEO4J_USER` and `NEO4J_PASSWORD` override it.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
struct Neo4jSection {
    uri: Option<String>,
    user: Option<String>,
    password: Option<String>,
}

/// Deadlines and sizes of calls to MCP servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolLimits {
    /// One `tools/call`; past it the caller gets 504 `upstream_timeout`.
    pub call_timeout: Duration,
    /// One discovery (`initialize` and `tools/list`) of a server's tools.
    pub discovery_timeout: Duration,
    /// The largest tool result passed on to the caller, as JSON; a larger one is a 502.
    pub max_result_bytes: usize,
}

/// Where the Redis store keeps its keys; used when a Redis URL is given.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
struct RedisSection {
    tenant_prefix: String,
}

impl Default for RedisSection {
    fn default() -> Self {
        Self { tenant_prefix: "connectors:".into() }
    }
}

/// Timing of cluster mode, and the TLS of its links.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
struct ClusterSection {
    tls: ClusterTlsSection,
    heartbeat_millis: u64,
    failure_timeout_millis: u64,
    request_deadline_millis: u64,
    max_in_flight_per_peer: usize,
    drain_deadline_seconds: u64,
    hold_millis: u64,
    max_held_requests: usize,
}

impl Default for ClusterSection {
    fn default() -> Self {
        Self {
            heartbeat_millis: 500,
            failure_timeout_millis: 3_000,
            request_deadline_millis: 2_000,
            max_in_flight_per_peer: 4_096,
            drain_deadline_seconds: 30,
            hold_millis: 5_000,
            max_held_requests: 10_000,
            tls: ClusterTlsSection::default(),
        }
    }
}

/// Mutual TLS of the links between nodes: on when the three files are given.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
struct ClusterTlsSection {
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    server_name: Option<String>,
}

/// The name every node certificate carries when `cluster.tls.serverName` is not set.
pub const DEFAULT_CLUSTER_SERVER_NAME: &str = "connectors-cluster";

/// `cluster.tls.*`: this node's certificate and key, the cluster's CA, and the name (a SAN of
/// every node's certificate) a node checks its peers' certificates against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterTlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub ca_file: PathBuf,
    pub server_name: String,
}

/// How cluster mode is timed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterTiming {
    /// How often a node writes its heartbeat and reads the membership table.
    pub heartbeat: Duration,
    /// A node whose heartbeat is older than this is removed from the view.
    pub failure_timeout: Duration,
    /// Deadline of one request to another node.
    pub request_deadline: Duration,
    /// Requests in flight to one other node at most.
    pub max_in_flight_per_peer: usize,
    /// How long a node given SIGTERM may spend handing its shards off before it leaves anyway.
    pub drain_deadline: Duration,
    /// How long a request meeting a shard that changes hands is held before it is answered 503.
    pub hold: Duration,
    /// Requests held at once at most.
    pub max_held_requests: usize,
}

/// Which component counts requests against the rate limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimitStore {
    /// The tenant's actor: exact cluster-wide, no round trip to Redis (the default).
    Actor,
    /// The original design: `INCR`+`EXPIRE` in Redis per request (compatibility and baseline).
    Redis,
}

/// Where the Vault secret store keeps credentials; used when `VAULT_ADDR` is set.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
struct VaultSection {
    kv_mount: String,
    kv_version: u8,
    transit_mount: String,
    tenant_prefix: String,
}

impl Default for VaultSection {
    fn default() -> Self {
        Self {
            kv_mount: "secret".into(),
            kv_version: 2,
            transit_mount: "transit".into(),
            tenant_prefix: "connectors/tenants".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
struct OAuthSection {
    refresh_before_seconds: u64,
    token_timeout_seconds: u64,
}

impl Default for OAuthSection {
    fn default() -> Self {
        Self { refresh_before_seconds: 300, token_timeout_seconds: 10 }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
struct MultiTenantSection {
    enabled: bool,
    tenant_id_header: String,
    api_key_header: String,
    user_id_header: String,
    fallback_tenant_id: Option<String>,
    require_api_key: bool,
    rate_limits: RateLimitSection,
    quotas: QuotaSection,
    features: FeatureOverrides,
    isolation: IsolationSection,
    default_plan: String,
    plans: Option<BTreeMap<String, PlanSection>>,
    pricing: PricingSection,
}

impl Default for MultiTenantSection {
    fn default() -> Self {
        Self {
            enabled: true,
            tenant_id_header: "X-Tenant-ID".into(),
            api_key_header: "Authorization".into(),
            user_id_header: "X-User-ID".into(),
            fallback_tenant_id: None,
            require_api_key: true,
            rate_limits: RateLimitSection::default(),
            quotas: QuotaSection::default(),
            features: FeatureOverrides::default(),
            isolation: IsolationSection::default(),
            default_plan: "free".into(),
            plans: None,
            pricing: PricingSection::default(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
struct RateLimitSection {
    enabled: bool,
    store: String,
    requests_per_minute: u64,
    requests_per_hour: u64,
    requests_per_day: u64,
}

impl Default for RateLimitSection {
    fn default() -> Self {
        Self {
            enabled: true,
            store: "actor".into(),
            requests_per_minute: 1_000,
            requests_per_hour: 50_000,
            requests_per_day: 1_000_000,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
struct QuotaSection {
    max_custom_servers: u64,
    max_tool_invocations: u64,
    #[serde(rename = "maxStorageMB")]
    max_storage_mb: u64,
}

impl Default for QuotaSection {
    fn default() -> Self {
        Self { max_custom_servers: 5, max_tool_invocations: 100_000, max_storage_mb: 1_024 }
    }
}

/// Isolation between tenants' secrets; read by the secret store.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct IsolationSection {
    /// Encrypt each tenant's Vault values with its own Transit key as well.
    pub separate_vault_keys: bool,
    /// Keep each tenant's Redis keys under its own prefix (see `redis_namespace`).
    pub separate_redis_namespace: bool,
    /// Write each tenant's log lines to `<logs dir>/<tenant>.log` as well (see `tenant_logs`).
    pub separate_logs: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
struct PlanSection {
    limits: LimitOverrides,
    features: FeatureOverrides,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
struct PricingSection {
    currency: String,
    per_thousand_api_calls: f64,
    per_tool_invocation: f64,
    per_custom_server_month: f64,
}

impl Default for PricingSection {
    fn default() -> Self {
        Self {
            currency: "USD".into(),
            per_thousand_api_calls: 0.5,
            per_tool_invocation: 0.002,
            per_custom_server_month: 10.0,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
struct GatewaySection {
    trusted_proxies: Vec<String>,
    auth_failures_per_minute: u32,
    max_body_bytes: usize,
    passivate_after_seconds: u64,
    tick_millis: u64,
    flush_interval_millis: u64,
    call_timeout_millis: u64,
    shutdown_grace_seconds: u64,
}

impl Default for GatewaySection {
    fn default() -> Self {
        Self {
            trusted_proxies: Vec::new(),
            auth_failures_per_minute: 60,
            max_body_bytes: 1024 * 1024,
            passivate_after_seconds: 300,
            tick_millis: 1_000,
            flush_interval_millis: 1_000,
            call_timeout_millis: 5_000,
            shutdown_grace_seconds: 10,
        }
    }
}

/// Features of a tenant whose plan and config say nothing about them.
const DEFAULT_FEATURES: Features = Features { custom_servers: true, oauth: true, advanced_analytics: false };

/// Prices of the usage bill, in millionths of the currency unit so sums are exact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pricing {
    pub currency: String,
    pub per_thousand_api_calls_micros: u64,
    pub per_tool_invocation_micros: u64,
    pub per_custom_server_month_micros: u64,
}

/// Everything the gateway runs with, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub identity: IdentityRules,
    pub tenant_id_header: axum::http::HeaderName,
    pub api_key_header: axum::http::HeaderName,
    /// `multiTenant.userIdHeader`: names the tenant's end user, audited as `userId`.
    pub user_id_header: axum::http::HeaderName,
    pub policy: Policy,
    pub pricing: Pricing,
    pub trusted_proxies: IpAllowList,
    /// Failed authentications a client address may have within a minute before its requests are
    /// refused (429) for the rest of it; 0: never.
    pub auth_failures_per_minute: u32,
    /// `audit.refusalsPerMinute`: see `RefusalAudit`.
    pub audit_refusals_per_minute: u32,
    /// `audit.retentionDays`: audit events older than this are deleted; `None`: kept for ever.
    pub audit_retention: Option<chrono::Duration>,
    /// `recorder.maxPendingBytes`: see `RecorderConfig::max_pending_bytes`.
    pub recorder_max_pending_bytes: usize,
    /// `store.cacheBytes`: the embedded store's page cache.
    pub store_cache_bytes: usize,
    pub max_body_bytes: usize,
    pub passivate_after: Duration,
    pub tick: Duration,
    pub flush_interval: Duration,
    pub call_timeout: Duration,
    /// How long a shutdown waits for open connections before closing them.
    pub shutdown_grace: Duration,
    /// OAuth access tokens are refreshed this long before they expire.
    pub oauth_refresh_before: Duration,
    /// Deadline of one call to a provider's token endpoint.
    pub oauth_token_timeout: Duration,
    /// The Vault secret store when `VAULT_ADDR` is set; else the embedded encrypted file.
    pub vault: Option<VaultConfig>,
    pub rate_limit_store: RateLimitStore,
    /// Prefix of every Redis key (`redis.tenantPrefix`, `REDIS_TENANT_PREFIX`).
    pub redis_prefix: String,
    /// `multiTenant.isolation.separateRedisNamespace`.
    pub redis_layout: crate::backends::redis_namespace::RedisLayout,
    /// `multiTenant.isolation.separateLogs`: each tenant's log lines also go to a file of its own.
    pub separate_logs: bool,
    pub cluster: ClusterTiming,
    /// `cluster.tls.*`; `None`: links between nodes are plaintext.
    pub cluster_tls: Option<ClusterTlsFiles>,
    pub tools: ToolLimits,
    /// `tools.coUsage`: which tool co-usage is shared between tenants.
    pub co_usage: CoUsagePolicy,
    /// `tools.embeddingModel` / `CONNECTORS_EMBEDDING_MODEL`: the directory of a sentence-embedding
    /// model (all-MiniLM-L6-v2) selection ranks by meaning with; `None`, by words alone.
    pub embedding_model: Option<std::path::PathBuf>,
    /// `tools.graph.neo4j` / `NEO4J_URI`: learning lives in Neo4j (else Redis when given, else
    /// the embedded graph).
    pub neo4j: Option<Neo4jConfig>,
    /// `deployer.*`: what tenants' `stdio` servers may run, and how.
    pub stdio: StdioSettings,
    /// `deployer.kubernetes`: when set, tenants' servers run on this cluster, not on this node.
    pub kubernetes: Option<crate::backends::kubernetes::KubernetesSettings>,
    /// `outbound.*`: the addresses outbound calls may reach.
    pub outbound: std::sync::Arc<crate::outbound::OutboundPolicy>,
    /// `METRICS_TOKEN`: when set, `GET /metrics` needs it as a bearer token (its series name
    /// every tenant); when not, `/metrics` is open, for a listener only the scraper can reach.
    pub metrics_token: Option<connectors_actors::api_key::KeyHash>,
    /// `billing.webhook` (and `BILLING_WEBHOOK_SECRET`): `None`, no webhook.
    pub billing_webhook: Option<crate::billing_webhook::WebhookSettings>,
    /// `mcp.*`: the gateway's own MCP endpoint.
    pub mcp: McpSettings,
}

/// Shortest `METRICS_TOKEN` accepted.
const MIN_METRICS_TOKEN_CHARS: usize = 16;

/// Reads the environment variables that override the file (an injectable lookup so tests need
/// not touch the process environment).
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl Config {
    /// Loads `path` if given (it must exist), applies the environment, validates.
    pub fn load(path: Option<&Path>, env: &dyn Env) -> Result<Self, ConfigError> {
        let file = match path {
            Some(path) => {
                let display = path.display().to_string();
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: display.clone(), source })?;
                parse_file(&display, &text)?
            }
            None => FileConfig::default(),
        };
        Self::build(file, env)
    }

    /// Parses YAML text (used by tests and by `load`).
    pub fn from_yaml(text: &str, env: &dyn Env) -> Result<Self, ConfigError> {
        Self::build(parse_file("<inline>", text)?, env)
    }

    fn build(mut file: FileConfig, env: &dyn Env) -> Result<Self, ConfigError> {
        apply_env(&mut file, env)?;
        let mt = file.multi_tenant;
        let gw = file.gateway;
        let oauth = file.oauth;
        let vault = vault_config(file.vault, &mt.isolation, env)?;
        let neo4j = neo4j_config(file.tools.graph.neo4j.unwrap_or_default(), env)?;
        let header = |key: &str, value: &str| {
            axum::http::HeaderName::try_from(value)
                .map_err(|_| invalid(key, format!("`{value}` is not a valid HTTP header name")))
        };
        let tenant_id_header = header("multiTenant.tenantIdHeader", &mt.tenant_id_header)?;
        let api_key_header = header("multiTenant.apiKeyHeader", &mt.api_key_header)?;
        let user_id_header = header("multiTenant.userIdHeader", &mt.user_id_header)?;
        let fallback = match &mt.fallback_tenant_id {
            Some(id) => Some(TenantId::parse(id).map_err(|e| invalid("multiTenant.fallbackTenantId", e.to_string()))?),
            None => None,
        };
        if !mt.require_api_key && fallback.is_none() {
            return Err(invalid(
                "multiTenant.requireApiKey",
                "`false` needs `multiTenant.fallbackTenantId`: the tenant to serve requests without a key as",
            ));
        }
        if !mt.enabled && fallback.is_none() {
            return Err(invalid(
                "multiTenant.enabled",
                "`false` (single-tenant mode) needs `multiTenant.fallbackTenantId`",
            ));
        }
        let rate_limit_store = match mt.rate_limits.store.as_str() {
            "actor" => RateLimitStore::Actor,
            "redis" => RateLimitStore::Redis,
            other => {
                return Err(invalid(
                    "multiTenant.rateLimits.store",
                    format!("`{other}` is not a rate-limit store: `actor` (the default) or `redis`"),
                ));
            }
        };
        let cl = file.cluster;
        let cluster_tls = cluster_tls(cl.tls)?;
        let membership = connectors_cluster::membership::MembershipConfig {
            heartbeat_interval_ms: i64::try_from(cl.heartbeat_millis).unwrap_or(i64::MAX),
            failure_timeout_ms: i64::try_from(cl.failure_timeout_millis).unwrap_or(i64::MAX),
        };
        if cl.heartbeat_millis > 0 {
            membership.check().map_err(|e| invalid("cluster.failureTimeoutMillis", e.to_string()))?;
        }
        let default_limits = Limits {
            requests_per_minute: mt.rate_limits.requests_per_minute,
            requests_per_hour: mt.rate_limits.requests_per_hour,
            requests_per_day: mt.rate_limits.requests_per_day,
            max_custom_servers: mt.quotas.max_custom_servers,
            max_tool_invocations: mt.quotas.max_tool_invocations,
            max_storage_mb: mt.quotas.max_storage_mb,
        };
        let plans: BTreeMap<String, Plan> = match mt.plans {
            Some(plans) => {
                plans.into_iter().map(|(name, p)| (name, Plan { limits: p.limits, features: p.features })).collect()
            }
            None => builtin_plans(),
        };
        for name in plans.keys() {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                return Err(invalid(
                    &format!("multiTenant.plans.{name}"),
                    "plan names are letters, digits, `-` and `_`",
                ));
            }
        }
        let plan_names: Vec<&str> = plans.keys().map(String::as_str).collect();
        let kubernetes = file
            .deployer
            .kubernetes
            .take()
            .map(|section| section.check(&plan_names))
            .transpose()
            .map_err(|(key, message)| invalid(&key, message))?;
        if !plans.contains_key(&mt.default_plan) {
            return Err(invalid(
                "multiTenant.defaultPlan",
                format!("no plan named `{}` in multiTenant.plans", mt.default_plan),
            ));
        }
        let pricing = Pricing {
            currency: non_empty("multiTenant.pricing.currency", mt.pricing.currency)?,
            per_thousand_api_calls_micros: micros(
                "multiTenant.pricing.perThousandApiCalls",
                mt.pricing.per_thousand_api_calls,
            )?,
            per_tool_invocation_micros: micros(
                "multiTenant.pricing.perToolInvocation",
                mt.pricing.per_tool_invocation,
            )?,
            per_custom_server_month_micros: micros(
                "multiTenant.pricing.perCustomServerMonth",
                mt.pricing.per_custom_server_month,
            )?,
        };
        let trusted_proxies =
            IpAllowList::parse(&gw.trusted_proxies).map_err(|e| invalid("gateway.trustedProxies", e.to_string()))?;
        if gw.max_body_bytes == 0 {
            return Err(invalid("gateway.maxBodyBytes", "must be at least 1"));
        }
        let positive =
            |key: &str, value: u64| if value == 0 { Err(invalid(key, "must be greater than 0")) } else { Ok(value) };
        if file.store.cache_bytes < MIN_STORE_CACHE_BYTES {
            return Err(invalid("store.cacheBytes", format!("must be at least {MIN_STORE_CACHE_BYTES} (1 MiB)")));
        }
        if file.recorder.max_pending_bytes < MIN_RECORDER_PENDING_BYTES {
            return Err(invalid(
                "recorder.maxPendingBytes",
                format!("must be at least {MIN_RECORDER_PENDING_BYTES} (1 MiB)"),
            ));
        }
        if oauth.refresh_before_seconds > MAX_REFRESH_BEFORE_SECONDS {
            return Err(invalid(
                "oauth.refreshBeforeSeconds",
                format!("must be at most {MAX_REFRESH_BEFORE_SECONDS} (30 days)"),
            ));
        }
        Ok(Self {
            identity: IdentityRules { multi_tenant: mt.enabled, require_api_key: mt.require_api_key, fallback },
            tenant_id_header,
            api_key_header,
            user_id_header,
            policy: Policy {
                default_limits,
                default_features: mt.features.over(&DEFAULT_FEATURES),
                plans,
                default_plan: mt.default_plan,
                rate_limits_enabled: mt.rate_limits.enabled,
            },
            pricing,
            trusted_proxies,
            auth_failures_per_minute: gw.auth_failures_per_minute,
            audit_refusals_per_minute: file.audit.refusals_per_minute,
            audit_retention: (file.audit.retention_days > 0)
                .then(|| chrono::Duration::days(i64::from(file.audit.retention_days))),
            recorder_max_pending_bytes: usize::try_from(file.recorder.max_pending_bytes).unwrap_or(usize::MAX),
            store_cache_bytes: usize::try_from(file.store.cache_bytes).unwrap_or(usize::MAX),
            max_body_bytes: gw.max_body_bytes,
            passivate_after: Duration::from_secs(positive(
                "gateway.passivateAfterSeconds",
                gw.passivate_after_seconds,
            )?),
            tick: Duration::from_millis(positive("gateway.tickMillis", gw.tick_millis)?),
            flush_interval: Duration::from_millis(positive("gateway.flushIntervalMillis", gw.flush_interval_millis)?),
            call_timeout: Duration::from_millis(positive("gateway.callTimeoutMillis", gw.call_timeout_millis)?),
            shutdown_grace: Duration::from_secs(gw.shutdown_grace_seconds),
            oauth_refresh_before: Duration::from_secs(oauth.refresh_before_seconds),
            oauth_token_timeout: Duration::from_secs(positive(
                "oauth.tokenTimeoutSeconds",
                oauth.token_timeout_seconds,
            )?),
            vault,
            neo4j,
            rate_limit_store,
            tools: ToolLimits {
                call_timeout: Duration::from_secs(positive(
                    "tools.callTimeoutSeconds",
                    file.tools.call_timeout_seconds,
                )?),
                discovery_timeout: Duration::from_secs(positive(
                    "tools.discoveryTimeoutSeconds",
                    file.tools.discovery_timeout_seconds,
                )?),
                max_result_bytes: positive("tools.maxResultBytes", file.tools.max_result_bytes as u64)? as usize,
            },
            mcp: McpSettings {
                sessions: connectors_actors::mcp_sessions::SessionLimits {
                    max_sessions: positive("mcp.maxSessionsPerTenant", file.mcp.max_sessions_per_tenant)? as usize,
                    idle_timeout: chrono::Duration::seconds(
                        positive("mcp.sessionIdleSeconds", file.mcp.session_idle_seconds)?.min(i64::MAX as u64) as i64,
                    ),
                    max_events: positive("mcp.maxEventsPerSession", file.mcp.max_events_per_session)? as usize,
                },
                allowed_origins: file.mcp.allowed_origins.iter().map(|o| o.trim_end_matches('/').to_string()).collect(),
            },
            co_usage: CoUsagePolicy {
                min_tenants: positive("tools.coUsage.minTenants", file.tools.co_usage.min_tenants(mt.enabled))?,
                per_tenant_cap: positive("tools.coUsage.perTenantCap", file.tools.co_usage.per_tenant_cap)?,
            },
            embedding_model: env
                .var("CONNECTORS_EMBEDDING_MODEL")
                .map(std::path::PathBuf::from)
                .or(file.tools.embedding_model)
                .filter(|path| !path.as_os_str().is_empty()),
            stdio: StdioSettings {
                allowed_commands: crate::backends::command_allow_list::CommandAllowList::new(
                    file.deployer.allowed_commands,
                )
                .map_err(|error| invalid("deployer.allowedCommands", error.to_string()))?,
                run_as: (file.deployer.run_as_user, file.deployer.run_as_group),
                work_dir: file.deployer.work_dir,
            },
            kubernetes,
            outbound: std::sync::Arc::new(
                crate::outbound::OutboundPolicy::new(file.outbound.allow_private, &file.outbound.allowed_hosts)
                    .map_err(|error| invalid("outbound.allowedHosts", error))?,
            ),
            metrics_token: metrics_token(env)?,
            billing_webhook: billing_webhook(file.billing.webhook, env)?,
            redis_prefix: redis_prefix(non_empty("redis.tenantPrefix", file.redis.tenant_prefix)?),
            redis_layout: crate::backends::redis_namespace::RedisLayout::new(mt.isolation.separate_redis_namespace),
            separate_logs: mt.isolation.separate_logs,
            cluster: ClusterTiming {
                heartbeat: Duration::from_millis(positive("cluster.heartbeatMillis", cl.heartbeat_millis)?),
                failure_timeout: Duration::from_millis(cl.failure_timeout_millis),
                request_deadline: Duration::from_millis(positive(
                    "cluster.requestDeadlineMillis",
                    cl.request_deadline_millis,
                )?),
                max_in_flight_per_peer: positive("cluster.maxInFlightPerPeer", cl.max_in_flight_per_peer as u64)?
                    as usize,
                drain_deadline: Duration::from_secs(positive(
                    "cluster.drainDeadlineSeconds",
                    cl.drain_deadline_seconds,
                )?),
                hold: Duration::from_millis(cl.hold_millis),
                max_held_requests: cl.max_held_requests,
            },
            cluster_tls,
        })
    }
}

fn parse_file(path: &str, text: &str) -> Result<FileConfig, ConfigError> {
    // An empty file is an empty mapping, not an error.
    if text.trim().is_empty() {
        return Ok(FileConfig::default());
    }
    let deserializer = serde_norway::Deserializer::from_str(text);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let key = error.path().to_string();
        ConfigError::Parse { path: path.to_string(), key, message: error.into_inner().to_string() }
    })
}

/// The documented environment variables, which win over the file.
fn apply_env(file: &mut FileConfig, env: &dyn Env) -> Result<(), ConfigError> {
    let mt = &mut file.multi_tenant;
    if let Some(value) = env.var("MULTI_TENANT_ENABLED") {
        mt.enabled = parse_bool("MULTI_TENANT_ENABLED", &value)?;
    }
    if let Some(value) = env.var("TENANT_ID_HEADER") {
        mt.tenant_id_header = value;
    }
    if let Some(value) = env.var("API_KEY_HEADER") {
        mt.api_key_header = value;
    }
    if let Some(value) = env.var("RATE_LIMIT_ENABLED") {
        mt.rate_limits.enabled = parse_bool("RATE_LIMIT_ENABLED", &value)?;
    }
    if let Some(value) = env.var("RATE_LIMIT_STORE") {
        mt.rate_limits.store = value;
    }
    if let Some(value) = env.var("REDIS_TENANT_PREFIX") {
        file.redis.tenant_prefix = value;
    }
    if let Some(value) = env.var("OUTBOUND_ALLOW_PRIVATE") {
        file.outbound.allow_private = parse_bool("OUTBOUND_ALLOW_PRIVATE", &value)?;
    }
    if let Some(value) = env.var("OUTBOUND_ALLOWED_HOSTS") {
        file.outbound.allowed_hosts =
            value.split(',').map(str::trim).filter(|h| !h.is_empty()).map(String::from).collect();
    }
    if let Some(value) = env.var("OAUTH_REFRESH_BEFORE_SECONDS") {
        file.oauth.refresh_before_seconds = value
            .parse()
            .map_err(|_| invalid("OAUTH_REFRESH_BEFORE_SECONDS", format!("`{value}` is not a number of seconds")))?;
    }
    Ok(())
}

/// TLS needs the three files; a part of them is a mistake, not plaintext.
fn cluster_tls(section: ClusterTlsSection) -> Result<Option<ClusterTlsFiles>, ConfigError> {
    let server_name = section.server_name.unwrap_or_else(|| DEFAULT_CLUSTER_SERVER_NAME.to_string());
    match (section.cert_file, section.key_file, section.ca_file) {
        (None, None, None) => Ok(None),
        (Some(cert_file), Some(key_file), Some(ca_file)) => {
            Ok(Some(ClusterTlsFiles { cert_file, key_file, ca_file, server_name }))
        }
        (cert, key, _) => {
            let missing = if cert.is_none() {
                "cluster.tls.certFile"
            } else if key.is_none() {
                "cluster.tls.keyFile"
            } else {
                "cluster.tls.caFile"
            };
            Err(invalid(missing, "TLS of the cluster links needs certFile, keyFile and caFile together"))
        }
    }
}

fn metrics_token(env: &dyn Env) -> Result<Option<connectors_actors::api_key::KeyHash>, ConfigError> {
    let Some(token) = env.var("METRICS_TOKEN") else { return Ok(None) };
    if token.chars().count() < MIN_METRICS_TOKEN_CHARS || token.chars().any(char::is_whitespace) {
        return Err(invalid(
            "METRICS_TOKEN",
            format!("must be at least {MIN_METRICS_TOKEN_CHARS} characters, without whitespace"),
        ));
    }
    Ok(Some(connectors_actors::api_key::KeyHash::of(&token)))
}

/// A URI (`tools.graph.neo4j.uri` or `NEO4J_URI`) switches the tool graph to Neo4j; the password
/// is then required, the user defaults to `neo4j`. The environment wins over the file.
fn neo4j_config(section: Neo4jSection, env: &dyn Env) -> Result<Option<Neo4jConfig>, ConfigError> {
    let from = |name: &str, value: Option<String>| env.var(name).or(value);
    let Some(uri) = from("NEO4J_URI", section.uri) else {
        if section.user.is_some() || section.password.is_some() {
            return Err(invalid("tools.graph.neo4j.uri", "must be set (or NEO4J_URI) when the section is given"));
        }
        return Ok(None);
    };
    let uri = non_empty("tools.graph.neo4j.uri", uri)?;
    if !["bolt://", "bolt+s://", "bolt+ssc://", "neo4j://", "neo4j+s://", "neo4j+ssc://"]
        .iter()
        .any(|scheme| uri.starts_with(scheme))
    {
        return Err(invalid("tools.graph.neo4j.uri", format!("`{uri}` is not a bolt:// or neo4j:// URI")));
    }
    let user = non_empty("tools.graph.neo4j.user", from("NEO4J_USER", section.user).unwrap_or_else(|| "neo4j".into()))?;
    let password = from("NEO4J_PASSWORD", section.password)
        .ok_or_else(|| invalid("tools.graph.neo4j.password", "must be set (or NEO4J_PASSWORD) with a Neo4j URI"))?;
    Ok(Some(Neo4jConfig { uri, user, password }))
}

/// `VAULT_ADDR` switches the secret store to Vault; `VAULT_TOKEN` is then required and
/// `VAULT_TENANT_PREFIX` overrides `vault.tenantPrefix`.
fn vault_config(
    section: VaultSection,
    isolation: &IsolationSection,
    env: &dyn Env,
) -> Result<Option<VaultConfig>, ConfigError> {
    let Some(addr) = env.var("VAULT_ADDR") else { return Ok(None) };
    let token = env.var("VAULT_TOKEN").ok_or_else(|| invalid("VAULT_TOKEN", "must be set when VAULT_ADDR is"))?;
    let kv_version = match section.kv_version {
        1 => KvVersion::V1,
        2 => KvVersion::V2,
        other => return Err(invalid("vault.kvVersion", format!("`{other}` is not a KV version (1 or 2)"))),
    };
    let mut config = VaultConfig::new(addr, token);
    config.tenant_prefix = env.var("VAULT_TENANT_PREFIX").unwrap_or(section.tenant_prefix);
    config.kv_mount = non_empty("vault.kvMount", section.kv_mount)?;
    config.kv_version = kv_version;
    config.transit_mount = non_empty("vault.transitMount", section.transit_mount)?;
    config.separate_keys = isolation.separate_vault_keys;
    Ok(Some(config))
}

/// A prefix written as a bare name (`REDIS_TENANT_PREFIX=tenant`, as the setup guide has it) is
/// a namespace: keys are `tenant:…`, not `tenant…`.
fn redis_prefix(prefix: String) -> String {
    if prefix.ends_with(|c: char| c.is_ascii_alphanumeric()) { format!("{prefix}:") } else { prefix }
}

fn parse_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(invalid(key, format!("`{value}` is not a boolean (true/false)"))),
    }
}

fn non_empty(key: &str, value: String) -> Result<String, ConfigError> {
    if value.trim().is_empty() { Err(invalid(key, "must not be empty")) } else { Ok(value) }
}

fn micros(key: &str, price: f64) -> Result<u64, ConfigError> {
    if !price.is_finite() || !(0.0..=1e9).contains(&price) {
        return Err(invalid(key, format!("`{price}` is not a price (a non-negative number)")));
    }
    Ok((price * 1_000_000.0).round() as u64)
}

/// Plans when the file defines none.
fn builtin_plans() -> BTreeMap<String, Plan> {
    let plan = |rpm, rph, rpd, servers, invocations, storage, custom_servers, advanced_analytics| Plan {
        limits: LimitOverrides {
            requests_per_minute: Some(rpm),
            requests_per_hour: Some(rph),
            requests_per_day: Some(rpd),
            max_custom_servers: Some(servers),
            max_tool_invocations: Some(invocations),
            max_storage_mb: Some(storage),
        },
        features: FeatureOverrides {
            custom_servers: Some(custom_servers),
            oauth: Some(true),
            advanced_analytics: Some(advanced_analytics),
        },
    };
    BTreeMap::from([
        ("free".to_string(), plan(60, 1_000, 10_000, 0, 1_000, 100, false, false)),
        ("pro".to_string(), plan(1_000, 50_000, 1_000_000, 5, 100_000, 1_024, true, false)),
        ("enterprise".to_string(), plan(10_000, 500_000, 10_000_000, 50, 10_000_000, 10_240, true, true)),
    ])
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
