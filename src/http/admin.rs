//! The admin API (`/api/v1/admin`): tenants, their keys, metrics, usage bills and audit logs.
//!
//! Changes to an existing tenant go through its actor, which persists them before they take
//! effect, so the next request anywhere sees them. Every change is an audit event.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use connectors_actors::api_key::KeyHash;
use connectors_actors::audit::AuditEvent;
use connectors_actors::audit::{AuditCursor, AuditQuery};
use connectors_actors::store::TenantFilter;
use connectors_actors::tenant::{
    AllowedIps, FeatureOverrides, FeaturePatch, LimitOverrides, LimitPatch, McpListing, TenantId, TenantPatch,
    TenantStatus, ToolList,
};
use connectors_actors::tenant_actor::TenantError;
use connectors_actors::tenant_core::PatchError;
use connectors_actors::usage::{Month, UsageCounters};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::RequestId;
use super::auth_throttle;
use super::error::{ApiError, ErrorBody};
use super::extract::{JsonBody, JsonObject, OptionalJsonBody, QueryParams, TenantPath, request_client_ip};
use super::views::TenantView;
use crate::app::Gateway;
use crate::billing::{UsageReport, metered_cost, usage_report};
use crate::keys;

/// Admin routes need `Authorization: Bearer <admin key>`.
/// A client address that keeps presenting wrong keys is refused for a while (`auth_throttle`).
pub async fn require_admin(State(gateway): State<Arc<Gateway>>, request: Request, next: Next) -> Response {
    let address = request_client_ip(request.headers(), request.extensions(), &gateway.config.trusted_proxies);
    if let Err(refused) = auth_throttle::check(&gateway, address) {
        return refused.into_response();
    }
    let presented =
        request.headers().get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(bearer);
    match presented {
        Some(key) if KeyHash::of(key).matches(&gateway.admin_key) => next.run(request).await,
        _ => {
            let error = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "missing or invalid admin API key");
            auth_throttle::count(&gateway, address, &error);
            error.into_response()
        }
    }
}

/// The token of an `Authorization: Bearer <token>` value.
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// `Some(None)` for an explicit `null`, so a PATCH can clear a value.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = SecurityInput)]
pub struct SecurityBody {
    /// CIDRs and single addresses, v4 and v6; empty allows every address.
    #[serde(rename = "allowedIPs")]
    allowed_ips: Option<Vec<String>>,
}

/// What the tenant's MCP clients are listed: `full` (every tool), `categories` (those of
/// `categories`) or `search` (the meta-tools `find_tools` and `call_tool`, searching
/// `categories` when given).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = McpListingInput)]
pub struct McpListingBody {
    tool_list: ToolList,
    #[serde(default)]
    categories: Vec<String>,
}

fn valid_listing(body: McpListingBody) -> Result<McpListing, ApiError> {
    McpListing { tool_list: body.tool_list, categories: body.categories }
        .validated()
        .map_err(|e| ApiError::invalid(format!("`mcp`: {e}")))
}

/// The body of `POST /tenants`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateTenant {
    #[schema(pattern = "^[a-z0-9]([a-z0-9-]{0,54}[a-z0-9])?$")]
    id: String,
    name: String,
    email: Option<String>,
    plan: Option<String>,
    limits: Option<LimitOverrides>,
    features: Option<FeatureOverrides>,
    security: Option<SecurityBody>,
    mcp: Option<McpListingBody>,
}

impl JsonObject for CreateTenant {
    const OBJECT_FIELDS: &'static [&'static str] = &["limits", "features", "security", "mcp"];
}

fn valid_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::invalid("`name` must be 1 to 200 characters"));
    }
    Ok(name.to_string())
}

fn valid_email(email: &str) -> Result<String, ApiError> {
    let email = email.trim();
    let plausible =
        email.len() <= 254 && email.split_once('@').is_some_and(|(user, host)| !user.is_empty() && host.contains('.'));
    if !plausible {
        return Err(ApiError::invalid(format!("`email` `{email}` is not an email address")));
    }
    Ok(email.to_string())
}

fn valid_plan(gateway: &Gateway, plan: &str) -> Result<String, ApiError> {
    if gateway.policy.has_plan(plan) {
        Ok(plan.to_string())
    } else {
        let plans: Vec<_> = gateway.policy.plans.keys().map(String::as_str).collect();
        Err(ApiError::invalid(format!("unknown plan `{plan}`; plans are {}", plans.join(", "))))
    }
}

fn valid_allow_list(entries: Vec<String>) -> Result<AllowedIps, ApiError> {
    AllowedIps::parse(entries).map_err(|e| ApiError::invalid(format!("`security.allowedIPs`: {e}")))
}

#[utoipa::path(
    post, path = "/api/v1/admin/tenants", tag = "admin", operation_id = "createTenant",
    request_body = CreateTenant,
    responses(
        (status = 201, description = "The tenant, with its API key (shown this once)", body = TenantView),
        (status = 409, description = "`conflict`: a tenant with this id exists", body = ErrorBody),
    )
)]
pub async fn create_tenant(
    State(gateway): State<Arc<Gateway>>,
    Extension(request_id): Extension<RequestId>,
    JsonBody { value: body, .. }: JsonBody<CreateTenant>,
) -> Result<Response, ApiError> {
    let id = TenantId::parse(&body.id).map_err(|e| ApiError::invalid(e.to_string()))?;
    let name = valid_name(&body.name)?;
    let email = body.email.as_deref().map(valid_email).transpose()?;
    let plan = body.plan.as_deref().map(|p| valid_plan(&gateway, p)).transpose()?;
    let allowed = body.security.and_then(|s| s.allowed_ips).map(valid_allow_list).transpose()?;
    let mcp = body.mcp.map(valid_listing).transpose()?.unwrap_or_default();
    let now = gateway.clock.now();
    let api_key = keys::generate("ck_");
    let mut record = gateway.new_record(id.clone(), name, email, plan, now, KeyHash::of(&api_key));
    record.limits = body.limits.unwrap_or_default();
    record.features = body.features.unwrap_or_default();
    record.mcp = mcp;
    if let Some(allowed) = allowed {
        record.apply(now, &TenantPatch { allowed_ips: Some(allowed), ..Default::default() });
    }
    gateway.store.create_tenant(&record).await?;
    tracing::info!(tenant = %id, plan = %record.plan, "tenant created");
    // The owner may have found the id absent a moment ago; it would answer 404 for a few seconds.
    gateway.directory.created(&id);
    if let Err(error) = gateway.router.created(&id).await {
        tracing::warn!(tenant = %id, %error, "the tenant's owner was not told of its creation; it may answer 404 for up to 5 s");
    }
    let params = json!({"name": record.name, "plan": record.plan});
    gateway.audit_admin(&id, "admin.tenant.create", Some(params), request_id.as_str(), now).await;
    let mut view = TenantView::from_record(&gateway.policy, &record);
    view.api_key = Some(api_key);
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Page size, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    cursor: Option<String>,
    plan: Option<String>,
    status: Option<TenantStatus>,
}

/// A page of tenants.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantPage<'a> {
    tenants: Vec<TenantView<'a>>,
    /// Tenants matching the filter, on every page.
    total: u64,
    /// Pass as `cursor` for the next page; null on the last page.
    next_cursor: Option<String>,
}

#[utoipa::path(
    get, path = "/api/v1/admin/tenants", tag = "admin", operation_id = "listTenants",
    params(ListQuery),
    responses((status = 200, description = "A page of tenants, by id", body = TenantPage))
)]
pub async fn list_tenants(
    State(gateway): State<Arc<Gateway>>,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Response, ApiError> {
    let limit = page_limit(query.limit, 50)?;
    let after = query
        .cursor
        .as_deref()
        .map(|c| TenantId::parse(c).map_err(|_| ApiError::invalid(format!("invalid cursor `{c}`"))))
        .transpose()?;
    let filter = TenantFilter { plan: query.plan, status: query.status };
    let page = gateway.store.tenants(&filter, after.as_ref(), limit).await?;
    let tenants = page.tenants.iter().map(|r| TenantView::from_record(&gateway.policy, r)).collect();
    let next_cursor = page.next.map(|id| id.to_string());
    Ok(Json(TenantPage { tenants, total: page.total, next_cursor }).into_response())
}

fn page_limit(limit: Option<usize>, default: usize) -> Result<usize, ApiError> {
    match limit.unwrap_or(default) {
        n @ 1..=1000 => Ok(n),
        n => Err(ApiError::invalid(format!("`limit` {n} is out of range 1..=1000"))),
    }
}

#[utoipa::path(
    get, path = "/api/v1/admin/tenants/{id}", tag = "admin", operation_id = "getTenant",
    params(("id" = String, Path, description = "Tenant id")),
    responses(
        (status = 200, description = "The tenant and this month's usage", body = TenantView),
        (status = 404, description = "`not_found`", body = ErrorBody),
    )
)]
pub async fn get_tenant(State(gateway): State<Arc<Gateway>>, TenantPath(id): TenantPath) -> Result<Response, ApiError> {
    let snapshot = gateway.router.snapshot(&id).await?;
    Ok(gateway.tenant_json.response(&snapshot, &gateway.config.pricing))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LimitPatchBody {
    #[serde(default, deserialize_with = "nullable")]
    requests_per_minute: Option<Option<u64>>,
    #[serde(default, deserialize_with = "nullable")]
    requests_per_hour: Option<Option<u64>>,
    #[serde(default, deserialize_with = "nullable")]
    requests_per_day: Option<Option<u64>>,
    #[serde(default, deserialize_with = "nullable")]
    max_custom_servers: Option<Option<u64>>,
    #[serde(default, deserialize_with = "nullable")]
    max_tool_invocations: Option<Option<u64>>,
    #[serde(default, deserialize_with = "nullable", rename = "maxStorageMB")]
    max_storage_mb: Option<Option<u64>>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FeaturePatchBody {
    #[serde(default, deserialize_with = "nullable")]
    custom_servers: Option<Option<bool>>,
    #[serde(default, deserialize_with = "nullable")]
    oauth: Option<Option<bool>>,
    #[serde(default, deserialize_with = "nullable")]
    advanced_analytics: Option<Option<bool>>,
}

/// The body of `PATCH /tenants/{id}`: what is given changes; `null` clears a limit, feature or
/// email back to the plan's.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateTenant {
    name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    email: Option<Option<String>>,
    plan: Option<String>,
    limits: Option<LimitPatchBody>,
    features: Option<FeaturePatchBody>,
    security: Option<SecurityBody>,
    status: Option<TenantStatus>,
    /// Replaces the MCP listing as a whole.
    mcp: Option<McpListingBody>,
}

impl JsonObject for UpdateTenant {
    const OBJECT_FIELDS: &'static [&'static str] = &["limits", "features", "security", "mcp"];
}

pub fn tenant_error(error: TenantError) -> ApiError {
    match error {
        TenantError::Patch(PatchError::UnknownPlan(plan)) => ApiError::invalid(format!("unknown plan `{plan}`")),
        TenantError::Patch(other) => ApiError::invalid(other.to_string()),
        TenantError::Store(store) => store.into(),
        TenantError::Secret(secret) => secret.into(),
        TenantError::FeatureDisabled(feature) => {
            ApiError::forbidden("feature_disabled", format!("the tenant's `{feature}` feature is disabled"))
        }
        TenantError::Server(rejection) => {
            use connectors_actors::deployments::Rejection;
            let message = rejection.to_string();
            match rejection {
                Rejection::Conflict(_) | Rejection::IntegrationClash(_) => ApiError::conflict(message),
                Rejection::NotFound(_) => ApiError::not_found(message),
                Rejection::DeployerUnavailable(kind) => {
                    ApiError::new(axum::http::StatusCode::UNPROCESSABLE_ENTITY, "deployer_unavailable", message)
                        .with_field("sourceType", kind.as_str())
                }
            }
        }
        TenantError::InvalidServer(message) => ApiError::invalid(message),
        error @ TenantError::FaultInjectionOff => ApiError::forbidden("forbidden", error.to_string()),
        TenantError::Quota(exceeded) => {
            super::tenant_api::denial_error(connectors_actors::admission::Denial::QuotaExceeded(exceeded))
        }
        TenantError::Deployer(detail) => ApiError::unavailable(detail),
        TenantError::McpSession(error) => {
            use connectors_actors::mcp_sessions::SessionError;
            let message = error.to_string();
            match error {
                SessionError::NotFound | SessionError::UnknownEvent(_) => ApiError::not_found(message),
                SessionError::Exists => ApiError::conflict(message),
                SessionError::TooMany { limit } => ApiError::forbidden(
                    "quota_exceeded",
                    format!("{message}; end one (DELETE /mcp) or wait for one to expire"),
                )
                .with_field("quota", "mcpSessions")
                .with_field("limit", limit as u64)
                .with_field("used", limit as u64),
            }
        }
    }
}

#[utoipa::path(
    patch, path = "/api/v1/admin/tenants/{id}", tag = "admin", operation_id = "updateTenant",
    params(("id" = String, Path, description = "Tenant id")),
    request_body = UpdateTenant,
    responses(
        (status = 200, description = "The tenant as changed", body = TenantView),
        (status = 404, description = "`not_found`", body = ErrorBody),
    )
)]
pub async fn update_tenant(
    State(gateway): State<Arc<Gateway>>,
    TenantPath(id): TenantPath,
    Extension(request_id): Extension<RequestId>,
    JsonBody { value: body, raw }: JsonBody<UpdateTenant>,
) -> Result<Response, ApiError> {
    let patch = TenantPatch {
        name: body.name.as_deref().map(valid_name).transpose()?,
        email: body.email.map(|e| e.as_deref().map(valid_email).transpose()).transpose()?,
        plan: body.plan.as_deref().map(|p| valid_plan(&gateway, p)).transpose()?,
        status: body.status,
        limits: body.limits.map_or_else(LimitPatch::default, |l| LimitPatch {
            requests_per_minute: l.requests_per_minute,
            requests_per_hour: l.requests_per_hour,
            requests_per_day: l.requests_per_day,
            max_custom_servers: l.max_custom_servers,
            max_tool_invocations: l.max_tool_invocations,
            max_storage_mb: l.max_storage_mb,
        }),
        features: body.features.map_or_else(FeaturePatch::default, |f| FeaturePatch {
            custom_servers: f.custom_servers,
            oauth: f.oauth,
            advanced_analytics: f.advanced_analytics,
        }),
        allowed_ips: body.security.and_then(|s| s.allowed_ips).map(valid_allow_list).transpose()?,
        mcp: body.mcp.map(valid_listing).transpose()?,
    };
    let started = gateway.clock.now();
    let snapshot = gateway.router.patch(&id, patch).await?.map_err(tenant_error)?;
    tracing::info!(tenant = %id, "tenant updated");
    gateway.audit_admin(&id, "admin.tenant.update", Some(raw), request_id.as_str(), started).await;
    Ok(gateway.tenant_json.response(&snapshot, &gateway.config.pricing))
}

#[utoipa::path(
    delete, path = "/api/v1/admin/tenants/{id}", tag = "admin", operation_id = "deleteTenant",
    params(("id" = String, Path, description = "Tenant id")),
    responses(
        (status = 204, description = "Deleted: its keys stop working at once; its audit history is kept"),
        (status = 404, description = "`not_found`", body = ErrorBody),
    )
)]
pub async fn delete_tenant(
    State(gateway): State<Arc<Gateway>>,
    TenantPath(id): TenantPath,
    Extension(request_id): Extension<RequestId>,
) -> Result<StatusCode, ApiError> {
    let started = gateway.clock.now();
    gateway.router.delete(&id).await?.map_err(tenant_error)?;
    gateway.metrics.forget(&id);
    tracing::info!(tenant = %id, "tenant deleted");
    gateway.audit_admin(&id, "admin.tenant.delete", None, request_id.as_str(), started).await;
    Ok(StatusCode::NO_CONTENT)
}

/// The (optional) body of `POST /tenants/{id}/rotate-key`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RotateKey {
    /// How long the old key keeps working, at most 30 days (default 0: it stops at once).
    #[schema(maximum = 2592000)]
    grace_seconds: Option<u64>,
}

/// A new API key, shown once.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewApiKey {
    api_key: String,
}

impl JsonObject for RotateKey {}

/// Longest grace an old key may get: 30 days.
const MAX_GRACE_SECONDS: u64 = 30 * 24 * 3600;

#[utoipa::path(
    post, path = "/api/v1/admin/tenants/{id}/rotate-key", tag = "admin", operation_id = "rotateTenantKey",
    params(("id" = String, Path, description = "Tenant id")),
    request_body(content = Option<RotateKey>, description = "Optional"),
    responses(
        (status = 200, description = "The new key", body = NewApiKey),
        (status = 404, description = "`not_found`", body = ErrorBody),
    )
)]
pub async fn rotate_key(
    State(gateway): State<Arc<Gateway>>,
    TenantPath(id): TenantPath,
    Extension(request_id): Extension<RequestId>,
    OptionalJsonBody(body): OptionalJsonBody<RotateKey>,
) -> Result<Json<NewApiKey>, ApiError> {
    let grace_seconds = body.and_then(|b| b.grace_seconds).unwrap_or(0);
    if grace_seconds > MAX_GRACE_SECONDS {
        return Err(ApiError::invalid(format!("`graceSeconds` must be at most {MAX_GRACE_SECONDS}")));
    }
    let grace = (grace_seconds > 0).then_some(grace_seconds as i64);
    let api_key = keys::generate("ck_");
    let hash = KeyHash::of(&api_key);
    let started = gateway.clock.now();
    gateway.router.rotate_key(&id, hash, grace).await?.map_err(tenant_error)?;
    tracing::info!(tenant = %id, grace_seconds, "tenant key rotated");
    let params = json!({"graceSeconds": grace_seconds});
    gateway.audit_admin(&id, "admin.tenant.rotate_key", Some(params), request_id.as_str(), started).await;
    Ok(Json(NewApiKey { api_key }))
}

/// Makes the tenant's latest usage (on its owner) and the audit events this node recorded
/// durable before they are read, so reads follow writes.
async fn settle_usage(gateway: &Gateway, id: &TenantId) -> Result<(), ApiError> {
    gateway.router.write_out(id).await?;
    gateway.recorder.flush_tenant(id).await?;
    Ok(())
}

/// Exactly `YYYY-MM-DD` (chrono alone would also take `2024-5-1`).
fn parse_day(key: &str, text: &str) -> Result<NaiveDate, ApiError> {
    let invalid = || ApiError::invalid(format!("`{key}` `{text}` is not a date (YYYY-MM-DD)"));
    if text.len() != 10 {
        return Err(invalid());
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| invalid())
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct MetricsQuery {
    /// First day, `YYYY-MM-DD` (default: the first of `endDate`'s month).
    #[param(format = Date)]
    start_date: Option<String>,
    /// Last day, inclusive, `YYYY-MM-DD` (default: today, UTC).
    #[param(format = Date)]
    end_date: Option<String>,
}

/// A tenant's counters over a range of days.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantMetrics {
    tenant_id: String,
    #[schema(format = Date)]
    start_date: String,
    #[schema(format = Date)]
    end_date: String,
    requests: RequestCounts,
    tools: ToolCounts,
    servers: ServerCounts,
    tokens: TokenCounts,
    cost: CostTotal,
    /// One entry per day with usage (`date, requests, apiCalls, rateLimited, errors,
    /// toolInvocations, selections, tokens`); only with the `advancedAnalytics` feature.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    daily: Option<serde_json::Value>,
    /// `{tools: [{toolId, calls, errors}], complete}`, most called first; only with the
    /// `advancedAnalytics` feature.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    by_tool: Option<serde_json::Value>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestCounts {
    total: u64,
    rate_limited: u64,
    errors: u64,
}

#[derive(Serialize, ToSchema)]
pub struct ToolCounts {
    invocations: u64,
    selections: u64,
}

#[derive(Serialize, ToSchema)]
pub struct ServerCounts {
    custom: u64,
}

#[derive(Serialize, ToSchema)]
pub struct TokenCounts {
    total: u64,
}

#[derive(Serialize, ToSchema)]
pub struct CostTotal {
    total: f64,
}

/// Longest range one metrics request may cover.
const MAX_METRICS_DAYS: i64 = 3_660;

#[utoipa::path(
    get, path = "/api/v1/admin/tenants/{id}/metrics", tag = "admin", operation_id = "getTenantMetrics",
    params(("id" = String, Path, description = "Tenant id"), MetricsQuery),
    responses(
        (status = 200, description = "The counters of the days asked", body = TenantMetrics),
        (status = 404, description = "`not_found`", body = ErrorBody),
    )
)]
pub async fn metrics(
    State(gateway): State<Arc<Gateway>>,
    TenantPath(id): TenantPath,
    QueryParams(query): QueryParams<MetricsQuery>,
) -> Result<Json<TenantMetrics>, ApiError> {
    let today = gateway.clock.now().date_naive();
    let end = query.end_date.as_deref().map(|d| parse_day("endDate", d)).transpose()?.unwrap_or(today);
    let start = match query.start_date.as_deref() {
        Some(d) => parse_day("startDate", d)?,
        None => Month::containing(end).first_day().unwrap_or(end),
    };
    if start > end {
        return Err(ApiError::invalid("`startDate` is after `endDate`"));
    }
    if (end - start).num_days() >= MAX_METRICS_DAYS {
        return Err(ApiError::invalid(format!("a metrics range covers at most {MAX_METRICS_DAYS} days")));
    }
    settle_usage(&gateway, &id).await?;
    let days = gateway.store.usage_by_day(&id, start, end).await?;
    let mut total = UsageCounters::default();
    for (_, day) in &days {
        total.add(day);
    }
    let mut metrics = TenantMetrics {
        tenant_id: id.to_string(),
        start_date: start.to_string(),
        end_date: end.to_string(),
        requests: RequestCounts { total: total.requests, rate_limited: total.rate_limited, errors: total.errors },
        tools: ToolCounts { invocations: total.tool_invocations, selections: total.selections },
        servers: ServerCounts { custom: total.custom_servers },
        tokens: TokenCounts { total: total.tokens },
        cost: CostTotal { total: metered_cost(&gateway.config.pricing, &total) },
        daily: None,
        by_tool: None,
    };
    // The breakdowns are what the `advancedAnalytics` feature buys.
    let record = gateway.store.tenant(&id).await?;
    if record.is_some_and(|record| gateway.policy.features(&record).advanced_analytics) {
        gateway.router.flush_audit().await;
        gateway.recorder.flush().await?;
        metrics.daily = Some(super::analytics::daily(&days));
        metrics.by_tool = Some(super::analytics::by_tool(gateway.store.as_ref(), &id, start, end).await?);
    }
    Ok(Json(metrics))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// `YYYY-MM` (default: this month, UTC).
    #[param(pattern = "^[0-9]{4}-[0-9]{2}$")]
    month: Option<String>,
}

#[utoipa::path(
    get, path = "/api/v1/admin/tenants/{id}/usage", tag = "admin", operation_id = "getTenantUsage",
    params(("id" = String, Path, description = "Tenant id"), UsageQuery),
    responses(
        (status = 200, description = "The month's usage and its cost", body = UsageReport),
        (status = 404, description = "`not_found`", body = ErrorBody),
    )
)]
pub async fn usage(
    State(gateway): State<Arc<Gateway>>,
    TenantPath(id): TenantPath,
    QueryParams(query): QueryParams<UsageQuery>,
) -> Result<Response, ApiError> {
    let month = match query.month.as_deref() {
        Some(text) => {
            Month::parse(text).ok_or_else(|| ApiError::invalid(format!("`month` `{text}` is not YYYY-MM")))?
        }
        None => Month::of(gateway.clock.now()),
    };
    settle_usage(&gateway, &id).await?;
    let counters = gateway.store.usage_of_month(&id, month).await?;
    Ok(Json(usage_report(&gateway.config.pricing, &id, month, &counters)).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Events at or after this time (RFC 3339).
    #[param(format = DateTime)]
    since: Option<String>,
    /// Events before this time (RFC 3339).
    #[param(format = DateTime)]
    until: Option<String>,
    /// Only events of this action (e.g. `tools.invoke`, `admin.tenant.update`).
    action: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// The `nextCursor` of the previous page.
    cursor: Option<String>,
}

/// A page of a tenant's audit log, oldest first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditLogPage {
    events: Vec<AuditEvent>,
    /// Pass as `cursor` for the next page; null on the last page.
    next_cursor: Option<String>,
}

fn parse_time(key: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| ApiError::invalid(format!("`{key}` `{text}` is not an RFC 3339 time")))
}

/// A tenant's audit log. It outlives the tenant: a deleted tenant's history stays readable.
#[utoipa::path(
    get, path = "/api/v1/admin/tenants/{id}/audit", tag = "admin", operation_id = "getTenantAudit",
    params(("id" = String, Path, description = "Tenant id"), AuditParams),
    responses(
        (status = 200, description = "A page of audit events", body = AuditLogPage),
        (status = 404, description = "`not_found`: no such tenant, and it left no history", body = ErrorBody),
    )
)]
pub async fn audit(
    State(gateway): State<Arc<Gateway>>,
    TenantPath(id): TenantPath,
    QueryParams(params): QueryParams<AuditParams>,
) -> Result<Json<AuditLogPage>, ApiError> {
    let query = AuditQuery {
        since: params.since.as_deref().map(|t| parse_time("since", t)).transpose()?,
        until: params.until.as_deref().map(|t| parse_time("until", t)).transpose()?,
        action: params.action,
        limit: page_limit(params.limit, 100)?,
        after: params
            .cursor
            .as_deref()
            .map(|c| AuditCursor::decode(c).ok_or_else(|| ApiError::invalid(format!("invalid cursor `{c}`"))))
            .transpose()?,
    };
    gateway.write_refusals_of(&id).await;
    gateway.router.flush_audit().await;
    gateway.recorder.flush().await?;
    let page = gateway.store.audit(&id, &query).await?;
    if page.events.is_empty() && query.after.is_none() && gateway.store.tenant(&id).await?.is_none() {
        return Err(ApiError::not_found(format!("tenant `{id}` not found")));
    }
    Ok(Json(AuditLogPage { events: page.events, next_cursor: page.next.map(|c| c.encode()) }))
}

/// Fault injection (only with `CONNECTORS_FAULT_INJECTION=1`): makes this node's tenant
/// supervisor panic; a new one takes over.
pub async fn crash_supervisor(State(gateway): State<Arc<Gateway>>) -> Result<StatusCode, ApiError> {
    if !gateway.fault_injection {
        return Err(ApiError::not_found("no such route"));
    }
    tracing::warn!("fault injection: crashing the tenant supervisor");
    gateway.directory.crash_supervisor();
    Ok(StatusCode::ACCEPTED)
}

/// Body of `POST /admin/tenants/{id}/stall`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stall {
    /// How long the next admission waits between being counted and answered (at most a minute).
    millis: u64,
}

impl JsonObject for Stall {}

/// Fault injection (only with `CONNECTORS_FAULT_INJECTION=1`): the tenant's next admission is
/// counted at once and answered `millis` later, as by an owner paused between the two.
pub async fn stall(
    State(gateway): State<Arc<Gateway>>,
    TenantPath(id): TenantPath,
    JsonBody { value: Stall { millis }, .. }: JsonBody<Stall>,
) -> Result<StatusCode, ApiError> {
    if !gateway.fault_injection {
        return Err(ApiError::not_found("no such route"));
    }
    if millis > 60_000 {
        return Err(ApiError::invalid("millis: at most 60000"));
    }
    gateway.router.stall_next_admission(&id, millis).await?.map_err(tenant_error)?;
    tracing::warn!(tenant = %id, millis, "fault injection: the tenant's next admission stalls");
    Ok(StatusCode::ACCEPTED)
}

/// Fault injection (only with `CONNECTORS_FAULT_INJECTION=1`): makes the tenant's actor panic.
pub async fn crash(State(gateway): State<Arc<Gateway>>, TenantPath(id): TenantPath) -> Result<StatusCode, ApiError> {
    if !gateway.fault_injection {
        return Err(ApiError::not_found("no such route"));
    }
    gateway.router.crash(&id).await?.map_err(tenant_error)?;
    tracing::warn!(tenant = %id, "fault injection: crashing the tenant actor");
    Ok(StatusCode::ACCEPTED)
}
