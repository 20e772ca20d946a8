//! `connectors admin ...`: the admin API from the command line, through the Rust client
//! (`connectors-client`). Human tables by default, the API's JSON with `--json`; a refused call
//! prints the gateway's message (with its code and request id) and exits non-zero.

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use connectors_client::types::{
    AuditEvent, AuditQuery, Credential, FeatureSettings, Integration, IntegrationAuth, LimitSettings, McpListing,
    NewCredential, NewIntegration, NewTenant, Security, Tenant, TenantQuery, TenantStatus, TenantUpdate, ToolList,
    UsageReport,
};
use connectors_client::{AdminApi, Error};

use crate::audit_follow::AuditFollow;
use serde::Serialize;

#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Any node's HTTP address.
    #[arg(long, global = true, default_value = "http://127.0.0.1:3000", env = "CONNECTORS_URL")]
    pub url: String,
    /// The admin API key.
    #[arg(long, global = true, env = "ADMIN_API_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create, list, read, change and delete tenants; rotate their keys.
    #[command(subcommand)]
    Tenants(TenantCommand),
    /// A tenant's OAuth credentials (tokens are never shown).
    #[command(subcommand)]
    Oauth(OAuthCommand),
    /// A tenant's usage of a month and its cost.
    Usage {
        tenant: String,
        /// `YYYY-MM` [default: this month].
        #[arg(long)]
        month: Option<String>,
    },
    /// A tenant's counters over a range of days.
    Metrics {
        tenant: String,
        /// First day, `YYYY-MM-DD`.
        #[arg(long)]
        start_date: Option<String>,
        /// Last day, inclusive, `YYYY-MM-DD`.
        #[arg(long)]
        end_date: Option<String>,
    },
    /// A tenant's audit log, oldest first.
    Audit(AuditArgs),
    /// Shared MCP servers offered to every tenant.
    #[command(subcommand)]
    Integrations(IntegrationCommand),
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    Create {
        /// Lowercase letters, digits and `-`, at most 56 characters.
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        plan: Option<String>,
        #[command(flatten)]
        limits: LimitArgs,
        #[command(flatten)]
        features: FeatureArgs,
        /// An allowed client address or CIDR (repeat for several).
        #[arg(long = "allowed-ip")]
        allowed_ips: Vec<String>,
        #[command(flatten)]
        mcp: McpArgs,
    },
    List {
        #[arg(long)]
        plan: Option<String>,
        #[arg(long)]
        status: Option<StatusArg>,
        /// Page size [default: the gateway's, 50].
        #[arg(long)]
        limit: Option<u32>,
        /// Start after this tenant id (the `nextCursor` of a previous page).
        #[arg(long)]
        cursor: Option<String>,
    },
    Get {
        id: String,
    },
    /// Change what is given; limits and features merge key by key.
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        plan: Option<String>,
        #[arg(long)]
        status: Option<StatusArg>,
        #[command(flatten)]
        limits: LimitArgs,
        #[command(flatten)]
        features: FeatureArgs,
        /// Replace the allow-list with these addresses or CIDRs (repeat for several).
        #[arg(long = "allowed-ip")]
        allowed_ips: Vec<String>,
        #[command(flatten)]
        mcp: McpArgs,
    },
    Delete {
        id: String,
    },
    /// Print a new API key (shown once).
    RotateKey {
        id: String,
        /// Seconds the old key keeps working [default: 0, it stops at once].
        #[arg(long)]
        grace_seconds: Option<u64>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StatusArg {
    Active,
    Suspended,
}

impl From<StatusArg> for TenantStatus {
    fn from(status: StatusArg) -> Self {
        match status {
            StatusArg::Active => TenantStatus::Active,
            StatusArg::Suspended => TenantStatus::Suspended,
        }
    }
}

#[derive(Debug, Args)]
pub struct LimitArgs {
    #[arg(long)]
    requests_per_minute: Option<u64>,
    #[arg(long)]
    requests_per_hour: Option<u64>,
    #[arg(long)]
    requests_per_day: Option<u64>,
    #[arg(long)]
    max_custom_servers: Option<u64>,
    #[arg(long)]
    max_tool_invocations: Option<u64>,
    #[arg(long = "max-storage-mb")]
    max_storage_mb: Option<u64>,
}

impl LimitArgs {
    fn settings(&self) -> Option<LimitSettings> {
        let settings = LimitSettings {
            requests_per_minute: self.requests_per_minute,
            requests_per_hour: self.requests_per_hour,
            requests_per_day: self.requests_per_day,
            max_custom_servers: self.max_custom_servers,
            max_tool_invocations: self.max_tool_invocations,
            max_storage_mb: self.max_storage_mb,
        };
        (settings != LimitSettings::default()).then_some(settings)
    }
}

#[derive(Debug, Args)]
pub struct FeatureArgs {
    #[arg(long)]
    custom_servers: Option<bool>,
    #[arg(long)]
    oauth: Option<bool>,
    #[arg(long)]
    advanced_analytics: Option<bool>,
}

impl FeatureArgs {
    fn settings(&self) -> Option<FeatureSettings> {
        let settings = FeatureSettings {
            custom_servers: self.custom_servers,
            oauth: self.oauth,
            advanced_analytics: self.advanced_analytics,
        };
        (settings != FeatureSettings::default()).then_some(settings)
    }
}

/// What the tenant's MCP clients are listed (`--mcp-tool-list`, with `--mcp-category`).
#[derive(Debug, Args)]
pub struct McpArgs {
    /// `full`: every tool; `categories`: those of the `--mcp-category` names; `search`: the
    /// meta-tools `find_tools` and `call_tool`.
    #[arg(long, value_enum)]
    mcp_tool_list: Option<ToolListArg>,
    /// A category listed or searched (repeat for several).
    #[arg(long = "mcp-category", requires = "mcp_tool_list")]
    mcp_categories: Vec<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ToolListArg {
    Full,
    Categories,
    Search,
}

impl McpArgs {
    fn listing(&self) -> Option<McpListing> {
        let tool_list = match self.mcp_tool_list? {
            ToolListArg::Full => ToolList::Full,
            ToolListArg::Categories => ToolList::Categories,
            ToolListArg::Search => ToolList::Search,
        };
        Some(McpListing { tool_list, categories: self.mcp_categories.clone() })
    }
}

fn security(allowed_ips: &[String]) -> Option<Security> {
    (!allowed_ips.is_empty()).then(|| Security { allowed_ips: allowed_ips.to_vec() })
}

#[derive(Debug, Subcommand)]
pub enum OAuthCommand {
    /// Store (or replace) a tenant's credential for an integration.
    Put {
        tenant: String,
        integration: String,
        /// Taken from the environment rather than the command line where possible (the command
        /// line is visible to other users of the machine).
        #[arg(long, env = "CONNECTORS_OAUTH_ACCESS_TOKEN", hide_env_values = true)]
        access_token: String,
        #[arg(long, env = "CONNECTORS_OAUTH_REFRESH_TOKEN", hide_env_values = true)]
        refresh_token: Option<String>,
        /// RFC 3339.
        #[arg(long)]
        expires_at: Option<String>,
        /// A scope (repeat for several).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        #[arg(long)]
        token_endpoint: Option<String>,
        #[arg(long)]
        client_id: Option<String>,
        #[arg(long, env = "CONNECTORS_OAUTH_CLIENT_SECRET", hide_env_values = true)]
        client_secret: Option<String>,
    },
    List {
        tenant: String,
    },
    Delete {
        tenant: String,
        integration: String,
    },
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    tenant: String,
    /// Events at or after this time (RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// Events before this time (RFC 3339).
    #[arg(long)]
    until: Option<String>,
    /// Only events of this action, e.g. `tools.invoke`.
    #[arg(long)]
    action: Option<String>,
    /// At most this many events (without --follow) [default: the gateway's page, 100].
    #[arg(long)]
    limit: Option<u32>,
    /// Keep printing new events as they are recorded, until interrupted.
    #[arg(long)]
    follow: bool,
    /// Seconds between two reads with --follow.
    #[arg(long, default_value_t = 2)]
    interval: u64,
}

#[derive(Debug, Subcommand)]
pub enum IntegrationCommand {
    /// Register a shared MCP server (streamable HTTP) and discover its tools.
    Create {
        #[arg(long)]
        name: String,
        /// The integration's MCP server (the global `--url` is the gateway's).
        #[arg(long = "server-url", id = "server_url")]
        url: String,
        #[arg(long)]
        category: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// `oauth`: calls carry the tenant's OAuth access token for this integration.
        #[arg(long, value_parser = ["oauth", "none"])]
        auth: Option<String>,
    },
    List,
    /// Discover an integration's tools again.
    Refresh {
        name: String,
    },
    Delete {
        name: String,
    },
}

/// Runs the command; the text to print on success.
pub async fn run(args: AdminArgs) -> Result<(), String> {
    let key = args.admin_key.as_deref().ok_or("the admin key is needed: set ADMIN_API_KEY or pass --admin-key")?;
    let api = AdminApi::new(&args.url, key).map_err(|e| e.to_string())?;
    let json = args.json;
    let text = match args.command {
        AdminCommand::Tenants(command) => tenants(&api, command, json).await,
        AdminCommand::Oauth(command) => oauth(&api, command, json).await,
        AdminCommand::Usage { tenant, month } => {
            let report = api.usage(&tenant, month.as_deref()).await.map_err(failure)?;
            if json { to_json(&report) } else { Ok(usage_table(&report)) }
        }
        AdminCommand::Metrics { tenant, start_date, end_date } => {
            let metrics = api.metrics(&tenant, start_date.as_deref(), end_date.as_deref()).await.map_err(failure)?;
            if json {
                to_json(&metrics)
            } else {
                Ok(fields(&[
                    ("tenant", metrics.tenant_id.clone()),
                    ("days", format!("{} .. {}", metrics.start_date, metrics.end_date)),
                    ("requests", metrics.requests.total.to_string()),
                    ("rate limited", metrics.requests.rate_limited.to_string()),
                    ("errors", metrics.requests.errors.to_string()),
                    ("tool invocations", metrics.tools.invocations.to_string()),
                    ("selections", metrics.tools.selections.to_string()),
                    ("custom servers", metrics.servers.custom.to_string()),
                    ("tokens", metrics.tokens.total.to_string()),
                    ("cost", format!("{:.2}", metrics.cost.total)),
                ]))
            }
        }
        AdminCommand::Audit(audit_args) => return audit(&api, audit_args, json).await,
        AdminCommand::Integrations(command) => integrations(&api, command, json).await,
    }?;
    print(&text);
    Ok(())
}

/// Prints a line; a closed pipe (`| head`) is not an error.
fn print(text: &str) {
    let _ = writeln!(std::io::stdout(), "{}", text.trim_end());
}

/// The gateway's message, its code and the request's id.
fn failure(error: Error) -> String {
    error.to_string()
}

fn to_json(value: &impl Serialize) -> Result<String, String> {
    serde_json::to_string_pretty(value).map_err(|e| e.to_string())
}

async fn tenants(api: &AdminApi, command: TenantCommand, json: bool) -> Result<String, String> {
    let tenants = api.tenants();
    match command {
        TenantCommand::Create { id, name, email, plan, limits, features, allowed_ips, mcp } => {
            let new = NewTenant {
                id,
                name,
                email,
                plan,
                limits: limits.settings(),
                features: features.settings(),
                security: security(&allowed_ips),
                mcp: mcp.listing(),
            };
            let created = tenants.create(&new).await.map_err(failure)?;
            if json {
                return to_json(&created);
            }
            let mut text = tenant_fields(&created.tenant);
            let _ = write!(text, "\nAPI key (shown only now): {}", created.api_key);
            Ok(text)
        }
        TenantCommand::List { plan, status, limit, cursor } => {
            let query = TenantQuery { limit, cursor, plan, status: status.map(Into::into) };
            let page = tenants.list(&query).await.map_err(failure)?;
            if json {
                return to_json(&page);
            }
            let mut text = tenant_table(&page.tenants);
            let _ = write!(text, "\n{} of {} tenants", page.tenants.len(), page.total);
            if let Some(next) = &page.next_cursor {
                let _ = write!(text, "; next page: --cursor {next}");
            }
            Ok(text)
        }
        TenantCommand::Get { id } => {
            let tenant = tenants.get(&id).await.map_err(failure)?;
            if json {
                return to_json(&tenant);
            }
            let mut text = tenant_fields(&tenant);
            if let Some(usage) = &tenant.usage {
                let _ = write!(text, "\n\n{}", usage_table(usage));
            }
            Ok(text)
        }
        TenantCommand::Update { id, name, email, plan, status, limits, features, allowed_ips, mcp } => {
            let update = TenantUpdate {
                name,
                email,
                plan,
                limits: limits.settings(),
                features: features.settings(),
                security: security(&allowed_ips),
                status: status.map(Into::into),
                mcp: mcp.listing(),
            };
            let tenant = tenants.update(&id, &update).await.map_err(failure)?;
            if json { to_json(&tenant) } else { Ok(tenant_fields(&tenant)) }
        }
        TenantCommand::Delete { id } => {
            tenants.delete(&id).await.map_err(failure)?;
            if json { to_json(&serde_json::json!({"deleted": id})) } else { Ok(format!("tenant `{id}` deleted")) }
        }
        TenantCommand::RotateKey { id, grace_seconds } => {
            let key = tenants.rotate_key(&id, grace_seconds).await.map_err(failure)?;
            if json {
                to_json(&serde_json::json!({"apiKey": key}))
            } else {
                Ok(format!("new API key of `{id}` (shown only now): {key}"))
            }
        }
    }
}

async fn oauth(api: &AdminApi, command: OAuthCommand, json: bool) -> Result<String, String> {
    match command {
        OAuthCommand::Put {
            tenant,
            integration,
            access_token,
            refresh_token,
            expires_at,
            scopes,
            token_endpoint,
            client_id,
            client_secret,
        } => {
            let credential = NewCredential {
                access_token,
                refresh_token,
                expires_at,
                scopes: (!scopes.is_empty()).then_some(scopes),
                token_endpoint,
                client_id,
                client_secret,
            };
            let stored = api.oauth().put(&tenant, &integration, &credential).await.map_err(failure)?;
            if json { to_json(&stored) } else { Ok(credential_table(std::slice::from_ref(&stored))) }
        }
        OAuthCommand::List { tenant } => {
            let credentials = api.oauth().list(&tenant).await.map_err(failure)?;
            if json {
                to_json(&serde_json::json!({"integrations": credentials}))
            } else {
                Ok(credential_table(&credentials))
            }
        }
        OAuthCommand::Delete { tenant, integration } => {
            api.oauth().delete(&tenant, &integration).await.map_err(failure)?;
            if json {
                to_json(&serde_json::json!({"deleted": integration}))
            } else {
                Ok(format!("credential of `{tenant}` for `{integration}` deleted"))
            }
        }
    }
}

async fn integrations(api: &AdminApi, command: IntegrationCommand, json: bool) -> Result<String, String> {
    let integrations = api.integrations();
    let shown = |integration: Integration| {
        if json { to_json(&integration) } else { Ok(integration_table(std::slice::from_ref(&integration))) }
    };
    match command {
        IntegrationCommand::Create { name, url, category, description, auth } => {
            let new =
                NewIntegration { name, url, category, description, auth: auth.map(|kind| IntegrationAuth { kind }) };
            shown(integrations.create(&new).await.map_err(failure)?)
        }
        IntegrationCommand::List => {
            let list = integrations.list().await.map_err(failure)?;
            if json { to_json(&serde_json::json!({"integrations": list})) } else { Ok(integration_table(&list)) }
        }
        IntegrationCommand::Refresh { name } => shown(integrations.refresh(&name).await.map_err(failure)?),
        IntegrationCommand::Delete { name } => {
            integrations.delete(&name).await.map_err(failure)?;
            if json {
                to_json(&serde_json::json!({"deleted": name}))
            } else {
                Ok(format!("integration `{name}` deleted"))
            }
        }
    }
}

/// Prints the audit log; with `--follow`, keeps reading, each event printed once (late ones
/// too, see `audit_follow`).
async fn audit(api: &AdminApi, args: AuditArgs, json: bool) -> Result<(), String> {
    let mut query = AuditQuery {
        since: args.since.clone(),
        until: args.until.clone(),
        action: args.action.clone(),
        limit: args.limit,
        cursor: None,
    };
    if !json {
        print(&audit_header());
    }
    let mut follow = AuditFollow::default();
    loop {
        let page = api.audit(&args.tenant, &query).await.map_err(failure)?;
        for event in page.events.iter().filter(|event| follow.is_new(event)) {
            print(&if json { serde_json::to_string(event).map_err(|e| e.to_string())? } else { audit_line(event) });
        }
        if let Some(next) = page.next_cursor {
            // More pages now; without --follow only when no --limit was asked for.
            if args.follow || args.limit.is_none() {
                query.cursor = Some(next);
                continue;
            }
        }
        if !args.follow {
            return Ok(());
        }
        query.cursor = None;
        query.limit = None;
        if let Some(since) = follow.next_since() {
            query.since = Some(since);
        }
        tokio::time::sleep(Duration::from_secs(args.interval.max(1))).await;
    }
}

// ----- rendering --------------------------------------------------------------------------------

/// `name: value` lines, names aligned.
fn fields(rows: &[(&str, String)]) -> String {
    let width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    rows.iter().map(|(name, value)| format!("{name:<width$}  {value}")).collect::<Vec<_>>().join("\n")
}

/// Columns padded to their widest cell.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let padded: Vec<String> = cells.zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        padded.join("  ").trim_end().to_string()
    };
    let mut out = vec![line(&mut header.iter().copied())];
    out.extend(rows.iter().map(|row| line(&mut row.iter().map(String::as_str))));
    out.join("\n")
}

fn tenant_fields(tenant: &Tenant) -> String {
    let l = &tenant.limits;
    let f = &tenant.features;
    fields(&[
        ("id", tenant.id.clone()),
        ("name", tenant.name.clone()),
        ("email", tenant.email.clone().unwrap_or_else(|| "-".into())),
        ("plan", tenant.plan.clone()),
        ("status", tenant.status.as_str().to_string()),
        (
            "limits",
            format!(
                "{}/min {}/h {}/day, {} custom servers, {} invocations/month, {} MB",
                l.requests_per_minute,
                l.requests_per_hour,
                l.requests_per_day,
                l.max_custom_servers,
                l.max_tool_invocations,
                l.max_storage_mb
            ),
        ),
        (
            "features",
            format!("customServers={} oauth={} advancedAnalytics={}", f.custom_servers, f.oauth, f.advanced_analytics),
        ),
        (
            "allowed IPs",
            if tenant.security.allowed_ips.is_empty() { "any".into() } else { tenant.security.allowed_ips.join(", ") },
        ),
        ("MCP tools", mcp_listing(&tenant.mcp)),
        ("created", tenant.created_at.clone()),
        ("updated", tenant.updated_at.clone()),
    ])
}

fn mcp_listing(listing: &McpListing) -> String {
    let mode = match listing.tool_list {
        ToolList::Full => "full",
        ToolList::Categories => "categories",
        ToolList::Search => "search (find_tools, call_tool)",
    };
    if listing.categories.is_empty() { mode.into() } else { format!("{mode}: {}", listing.categories.join(", ")) }
}

fn tenant_table(tenants: &[Tenant]) -> String {
    let rows: Vec<Vec<String>> = tenants
        .iter()
        .map(|t| {
            vec![
                t.id.clone(),
                t.name.clone(),
                t.plan.clone(),
                t.status.as_str().to_string(),
                t.limits.requests_per_minute.to_string(),
                t.created_at.clone(),
            ]
        })
        .collect();
    table(&["ID", "NAME", "PLAN", "STATUS", "RPM", "CREATED"], &rows)
}

fn usage_table(report: &UsageReport) -> String {
    let money = |amount: f64| format!("{amount:.2} {}", report.currency);
    table(
        &["USAGE", "COUNT", "COST"],
        &[
            vec!["api calls".into(), report.api_calls.to_string(), money(report.api_calls_cost)],
            vec!["tool invocations".into(), report.tool_invocations.to_string(), money(report.tool_invocations_cost)],
            vec!["custom servers".into(), report.custom_servers.to_string(), money(report.custom_servers_cost)],
            vec![format!("total ({} {})", report.tenant_id, report.month), String::new(), money(report.total_cost)],
        ],
    )
}

fn credential_table(credentials: &[Credential]) -> String {
    let rows: Vec<Vec<String>> = credentials
        .iter()
        .map(|c| {
            vec![
                c.integration.clone(),
                c.status.clone(),
                c.expires_at.clone().unwrap_or_else(|| "-".into()),
                if c.scopes.is_empty() { "-".into() } else { c.scopes.join(" ") },
                c.last_refresh_at.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    table(&["INTEGRATION", "STATUS", "EXPIRES", "SCOPES", "LAST REFRESH"], &rows)
}

fn integration_table(integrations: &[Integration]) -> String {
    let rows: Vec<Vec<String>> = integrations
        .iter()
        .map(|i| {
            vec![
                i.name.clone(),
                i.status.clone(),
                i.tools_discovered.to_string(),
                i.auth.as_ref().map_or_else(|| "none".into(), |a| a.kind.clone()),
                i.category.clone(),
                i.url.clone(),
            ]
        })
        .collect();
    table(&["NAME", "STATUS", "TOOLS", "AUTH", "CATEGORY", "URL"], &rows)
}

fn audit_header() -> String {
    "TIME  ACTION  RESULT  TOOL  DURATION  IP  REQUEST".to_string()
}

fn audit_line(event: &AuditEvent) -> String {
    let result = serde_json::to_value(event.result).ok().and_then(|v| v.as_str().map(str::to_string));
    [
        event.timestamp.clone(),
        event.action.clone(),
        result.unwrap_or_default(),
        event.tool_id.clone().unwrap_or_else(|| "-".into()),
        format!("{}ms", event.duration),
        event.ip.clone().unwrap_or_else(|| "-".into()),
        event.request_id.clone(),
    ]
    .join("  ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_pad_every_column_to_its_widest_cell() {
        let text = table(&["ID", "NAME"], &[vec!["acme".into(), "Acme Inc".into()], vec!["b".into(), "B".into()]]);
        assert_eq!(text, "ID    NAME\nacme  Acme Inc\nb     B");
    }

    #[test]
    fn limits_and_features_are_sent_only_when_one_is_given() {
        let none = LimitArgs {
            requests_per_minute: None,
            requests_per_hour: None,
            requests_per_day: None,
            max_custom_servers: None,
            max_tool_invocations: None,
            max_storage_mb: None,
        };
        assert_eq!(none.settings(), None);
        let some = LimitArgs { requests_per_minute: Some(5), ..none };
        assert_eq!(some.settings().and_then(|s| s.requests_per_minute), Some(5));
        let features = FeatureArgs { custom_servers: None, oauth: Some(false), advanced_analytics: None };
        assert_eq!(features.settings().and_then(|s| s.oauth), Some(false));
    }
}
