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
use connectors_actors::audit::{AuditCursor, AuditQuery};
use connectors_actors::store::TenantFilter;
use connectors_actors::tenant::{
    AllowedIps, FeatureOverrides, FeaturePatch, LimitOverrides, LimitPatch, TenantId, TenantPatch, TenantStatus,
};
use connectors_actors::tenant_actor::TenantError;
use connectors_actors::tenant_core::PatchError;
use connectors_actors::usage::{Month, UsageCounters};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use super::RequestId;
use super::auth_throttle;
use super::error::ApiError;
use super::extract::{JsonBody, JsonObject, OptionalJsonBody, QueryParams, TenantPath, request_client_ip};
use super::views::TenantView;
use crate::app::Gateway;
use crate::billing::{metered_cost, usage_report};
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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecurityBody {
    #[serde(rename = "allowedIPs")]
    allowed_ips: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateTenant {
    id: String,
    name: String,
    email: Option<String>,
    plan: Option<String>,
    limits: Option<LimitOverrides>,
    features: Option<FeatureOverrides>,
    security: Option<SecurityBody>,
}

impl JsonObject for CreateTenant {
    const OBJECT_FIELDS: &'static [&'static str] = &["limits", "features", "security"];
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
    let now = gateway.clock.now();
    let api_key = keys::generate("ck_");
    let mut record = gateway.new_record(id.clone(), name, email, plan, now, KeyHash::of(&api_key));
    record.limits = body.limits.unwrap_or_default();
    record.features = body.features.unwrap_or_default();
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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    limit: Option<usize>,
    cursor: Option<String>,
    plan: Option<String>,
    status: Option<TenantStatus>,
}

pub async fn list_tenants(
    State(gateway): State<Arc<Gateway>>,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = page_limit(query.limit, 50)?;
    let after = query
        .cursor
        .as_deref()
        .map(|c| TenantId::parse(c).map_err(|_| ApiError::invalid(format!("invalid cursor `{c}`"))))
        .transpose()?;
    let filter = TenantFilter { plan: query.plan, status: query.status };
    let page = gateway.store.tenants(&filter, after.as_ref(), limit).await?;
    let tenants: Vec<_> = page.tenants.iter().map(|r| TenantView::from_record(&gateway.policy, r)).collect();
    Ok(Json(json!({
        "tenants": tenants,
        "total": page.total,
        "nextCursor": page.next.map(|id| id.to_string()),
    })))
}

fn page_limit(limit: Option<usize>, default: usize) -> Result<usize, ApiError> {
    match limit.unwrap_or(default) {
        n @ 1..=1000 => Ok(n),
        n => Err(ApiError::invalid(format!("`limit` {n} is out of range 1..=1000"))),
    }
}

pub async fn get_tenant(State(gateway): State<Arc<Gateway>>, TenantPath(id): TenantPath) -> Result<Response, ApiError> {
    let snapshot = gateway.router.snapshot(&id).await?;
    Ok(Json(TenantView::from_snapshot(&snapshot, &gateway.config.pricing)).into_response())
}

#[derive(Deserialize)]
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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FeaturePatchBody {
    #[serde(default, deserialize_with = "nullable")]
    custom_servers: Option<Option<bool>>,
    #[serde(default, deserialize_with = "nullable")]
    oauth: Option<Option<bool>>,
    #[serde(default, deserialize_with = "nullable")]
    advanced_analytics: Option<Option<bool>>,
}

#[derive(Deserialize)]
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
}

impl JsonObject for UpdateTenant {
    const OBJECT_FIELDS: &'static [&'static str] = &["limits", "features", "security"];
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
    };
    let started = gateway.clock.now();
    let snapshot = gateway.router.patch(&id, patch).await?.map_err(tenant_error)?;
    tracing::info!(tenant = %id, "tenant updated");
    gateway.audit_admin(&id, "admin.tenant.update", Some(raw), request_id.as_str(), started).await;
    Ok(Json(TenantView::from_snapshot(&snapshot, &gateway.config.pricing)).into_response())
}

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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RotateKey {
    grace_seconds: Option<u64>,
}

impl JsonObject for RotateKey {}

/// Longest grace an old key may get: 30 days.
const MAX_GRACE_SECONDS: u64 = 30 * 24 * 3600;

pub async fn rotate_key(
    State(gateway): State<Arc<Gateway>>,
    TenantPath(id): TenantPath,
    Extension(request_id): Extension<RequestId>,
    OptionalJsonBody(body): OptionalJsonBody<RotateKey>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({"apiKey": api_key})))
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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricsQuery {
    start_date: Option<String>,
    end_date: Option<String>,
}

/// Longest range one metrics request may cover.
const MAX_METRICS_DAYS: i64 = 3_660;

pub async fn metrics(
    State(gateway): State<Arc<Gateway>>,
    TenantPath(id): TenantPath,
    QueryParams(query): QueryParams<MetricsQuery>,
) -> Result<Json<Value>, ApiError> {
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
    let mut body = json!({
        "tenantId": id.to_string(),
        "startDate": start.to_string(),
        "endDate": end.to_string(),
        "requests": {"total": total.requests, "rateLimited": total.rate_limited, "errors": total.errors},
        "tools": {"invocations": total.tool_invocations, "selections": total.selections},
        "servers": {"custom": total.custom_servers},
        "tokens": {"total": total.tokens},
        "cost": {"total": metered_cost(&gateway.config.pricing, &total)},
    });
    // The breakdowns are what the `advancedAnalytics` feature buys.
    let record = gateway.store.tenant(&id).await?;
    if record.is_some_and(|record| gateway.policy.features(&record).advanced_analytics) {
        gateway.router.flush_audit().await;
        gateway.recorder.flush().await?;
        body["daily"] = super::analytics::daily(&days);
        body["byTool"] = super::analytics::by_tool(gateway.store.as_ref(), &id, start, end).await?;
    }
    Ok(Json(body))
}

#[derive(Deserialize)]
pub struct UsageQuery {
    month: Option<String>,
}

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

#[derive(Deserialize)]
pub struct AuditParams {
    since: Option<String>,
    until: Option<String>,
    action: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

fn parse_time(key: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| ApiError::invalid(format!("`{key}` `{text}` is not an RFC 3339 time")))
}

/// A tenant's audit log. It outlives the tenant: a deleted tenant's history stays readable.
pub async fn audit(
    State(gateway): State<Arc<Gateway>>,
    TenantPath(id): TenantPath,
    QueryParams(params): QueryParams<AuditParams>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({"events": page.events, "nextCursor": page.next.map(|c| c.encode())})))
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

/// Fault injection (only with `CONNECTORS_FAULT_INJECTION=1`): makes the tenant's actor panic.
pub async fn crash(State(gateway): State<Arc<Gateway>>, TenantPath(id): TenantPath) -> Result<StatusCode, ApiError> {
    if !gateway.fault_injection {
        return Err(ApiError::not_found("no such route"));
    }
    gateway.router.crash(&id).await?.map_err(tenant_error)?;
    tracing::warn!(tenant = %id, "fault injection: crashing the tenant actor");
    Ok(StatusCode::ACCEPTED)
}
