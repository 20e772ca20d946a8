//! The tenant API's edge: who is calling, the owning actor's admission decision, and the
//! audit event and metrics of every request, admitted or not.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use connectors_actors::admission::{AdmissionRequest, Denial, TenantSnapshot};
use connectors_actors::api_key::KeyHash;
use connectors_actors::audit::{AuditEvent, AuditResult};
use connectors_actors::auth::{is_mismatch, key_required, target_tenant};
use connectors_actors::quotas::Quota;
use connectors_actors::tenant::TenantId;
use connectors_cluster::router::{MOVING_RETRY_AFTER_SECS, RouteError};
use serde_json::Value;

use super::RequestId;
use super::admin::bearer;
use super::auth_throttle;
use super::error::ApiError;
use super::extract::request_client_ip;
use super::invocation::InvocationPlan;
use super::rate_headers::rate_headers;
use super::views::TenantView;
use crate::app::Gateway;
use crate::metrics::Outcome;

/// What the edge knows of a request before asking the tenant's actor.
pub struct Caller {
    pub request_id: String,
    pub ip: std::net::IpAddr,
    pub user_agent: Option<String>,
    /// The end user the tenant names (header `multiTenant.userIdHeader`), audited as `userId`.
    pub user_id: Option<String>,
    started: Instant,
    started_at: chrono::DateTime<chrono::Utc>,
    tenant_header: Option<TenantId>,
    key: Option<KeyHash>,
}

impl Caller {
    fn from_parts(gateway: &Gateway, parts: &Parts) -> Result<Self, ApiError> {
        let headers = &parts.headers;
        let text = |name: &axum::http::HeaderName| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
        let tenant_header = match text(&gateway.config.tenant_id_header).filter(|v| !v.is_empty()) {
            Some(value) if gateway.config.identity.multi_tenant => Some(
                TenantId::parse(value)
                    .map_err(|e| ApiError::invalid(format!("header {}: {e}", gateway.config.tenant_id_header)))?,
            ),
            _ => None,
        };
        let key_header = &gateway.config.api_key_header;
        let key = text(key_header).filter(|v| !v.is_empty()).and_then(|value| {
            if key_header == axum::http::header::AUTHORIZATION { bearer(value) } else { Some(value) }
        });
        let user_id = match headers.get(&gateway.config.user_id_header) {
            None => None,
            Some(value) => user_id(value)
                .map_err(|message| ApiError::invalid(format!("header {}: {message}", gateway.config.user_id_header)))?,
        };
        Ok(Self {
            request_id: parts.extensions.get::<RequestId>().map(|id| id.as_str().to_string()).unwrap_or_default(),
            user_id,
            ip: request_client_ip(headers, &parts.extensions, &gateway.config.trusted_proxies),
            user_agent: text(&axum::http::header::USER_AGENT).map(str::to_string),
            started: Instant::now(),
            started_at: gateway.clock.now(),
            tenant_header,
            key: key.map(KeyHash::of),
        })
    }
}

/// Longest user id taken from the user-id header.
const MAX_USER_ID_CHARS: usize = 256;

/// The user id a header carries: `None` when empty; an error for one too long or not printable
/// text, which an audit log should not store.
fn user_id(value: &axum::http::HeaderValue) -> Result<Option<String>, String> {
    let value = value.to_str().map_err(|_| "must be printable ASCII".to_string())?.trim();
    if value.is_empty() {
        return Ok(None);
    }
    if value.chars().count() > MAX_USER_ID_CHARS {
        return Err(format!("at most {MAX_USER_ID_CHARS} characters"));
    }
    if value.chars().any(|c| c.is_control()) {
        return Err("must be printable ASCII".into());
    }
    Ok(Some(value.to_string()))
}

/// An admitted request: the tenant as its actor saw it, and the headers to send back.
pub struct Admitted {
    pub caller: Caller,
    pub tenant: TenantSnapshot,
    pub headers: HeaderMap,
    /// The invocation planned before the admission, which charged it (`tools/invoke`).
    pub invocation: Option<InvocationPlan>,
}

/// Authenticates and admits a tenant-API request. A refusal is audited and counted here and
/// returned as the error response to send.
pub async fn admit(
    gateway: &Gateway,
    parts: &Parts,
    action: &str,
    charge: Option<Quota>,
    selection: bool,
) -> Result<Admitted, ApiError> {
    admit_asking(gateway, parts, action, Ask { charge, selection, invoke: None }).await
}

/// Authenticates and admits a `tools/invoke` of `tool_id`, charged in the same call to the
/// tenant's owner when the tool can be called (see [`InvocationPlan`]).
pub async fn admit_invocation(gateway: &Gateway, parts: &Parts, tool_id: &str) -> Result<Admitted, ApiError> {
    admit_asking(gateway, parts, "tools.invoke", Ask { charge: None, selection: false, invoke: Some(tool_id) }).await
}

/// What a request asks of its tenant's owner besides being admitted.
struct Ask<'a> {
    charge: Option<Quota>,
    selection: bool,
    /// The tool a `tools/invoke` calls, planned before the admission.
    invoke: Option<&'a str>,
}

async fn admit_asking(gateway: &Gateway, parts: &Parts, action: &str, ask: Ask<'_>) -> Result<Admitted, ApiError> {
    let caller = Caller::from_parts(gateway, parts)?;
    auth_throttle::check(gateway, caller.ip)?;
    let ip = caller.ip;
    let admitted = authenticate_and_admit(gateway, caller, action, ask).await;
    if let Err(error) = &admitted {
        auth_throttle::count(gateway, ip, error);
    }
    admitted
}

async fn authenticate_and_admit(
    gateway: &Gateway,
    caller: Caller,
    action: &str,
    ask: Ask<'_>,
) -> Result<Admitted, ApiError> {
    let rules = &gateway.config.identity;
    // The key's owner is looked up only when needed: no tenant header, or a refused key.
    let mut owner: Option<TenantId> = None;
    if caller.tenant_header.is_none() && rules.multi_tenant {
        owner = routed_owner(gateway, caller.key.as_ref()).await?;
    }
    let Some(target) = target_tenant(rules, caller.tenant_header.as_ref(), owner.as_ref()) else {
        return Err(ApiError::unauthorized());
    };
    tracing::Span::current().record("tenant_id", target.as_str());
    let plan = match ask.invoke {
        // In the Redis counter mode the counter may still refuse an admitted request, so the
        // invocation is charged after it instead (`invoke_tool`).
        Some(tool_id) if gateway.rate_counter.is_none() => Some(InvocationPlan::new(gateway, &target, tool_id).await),
        _ => None,
    };
    let request = AdmissionRequest {
        key: caller.key,
        key_required: key_required(rules, &target),
        client_ip: caller.ip,
        charge: ask.charge.or_else(|| plan.as_ref().and_then(InvocationPlan::charge)),
        selection: ask.selection,
        server: plan.as_ref().and_then(InvocationPlan::server),
    };
    let mut admission = match gateway.router.admit(&target, request).await {
        Ok(admission) => admission,
        Err(RouteError::NotFound(_)) => {
            // No such tenant: a mismatch if the key is someone else's, else just unauthorized.
            let owner = fresh_owner(gateway, caller.key.as_ref()).await?;
            tracing::debug!(tenant = %target, "request for an unknown tenant");
            return Err(if owner.is_some() { mismatch() } else { ApiError::unauthorized() });
        }
        Err(RouteError::Unanswered { reason, late }) => {
            // The owner may have admitted (and billed) the request after this node stopped
            // waiting; if it did, the audit log says so once its answer comes.
            let params = Some(serde_json::json!({"error": "owner_answered_late"}));
            let event = audit_record(&caller, &target, action, None, AuditResult::Error, params);
            let router = gateway.router.clone();
            tokio::spawn(async move {
                if late.admitted().await {
                    tracing::warn!(tenant = %event.tenant_id, request = %event.request_id,
                        "admitted by its owner after this node answered 503; audited as owner_answered_late");
                    router.record_audit(event).await;
                }
            });
            return Err(RouteError::Unavailable { reason, retry_after: MOVING_RETRY_AFTER_SECS }.into());
        }
        Err(other) => return Err(other.into()),
    };
    if let (Some(counter), Ok(tenant)) = (&gateway.rate_counter, &admission.verdict)
        && gateway.config.policy.rate_limits_enabled
    {
        // Compatibility mode (`RATE_LIMIT_STORE=redis`): the original design's Redis counter
        // decides, after the actor has authenticated the caller.
        let status = counter.hit(&target, &tenant.limits, gateway.clock.now()).await?;
        if let Some(retry_after) = status.retry_after() {
            admission.verdict = Err(Denial::RateLimited { retry_after });
        }
        admission.rate = Some(status);
    }
    let headers = admission.rate.as_ref().map(rate_headers).unwrap_or_default();
    match admission.verdict {
        Ok(tenant) => {
            gateway.metrics.count(&target, Outcome::Admitted);
            let invocation = plan.map(|plan| plan.admitted(admission.server));
            Ok(Admitted { caller, tenant, headers, invocation })
        }
        Err(denial) => {
            if denial == Denial::Unauthorized {
                owner = fresh_owner(gateway, caller.key.as_ref()).await?;
            }
            let error = match denial {
                Denial::Unauthorized if is_mismatch(&target, owner.as_ref()) => mismatch(),
                denial => denial_error(denial),
            };
            let outcome =
                if matches!(denial, Denial::RateLimited { .. }) { Outcome::RateLimited } else { Outcome::Denied };
            gateway.metrics.count(&target, outcome);
            let reason = error_code(&error);
            if gateway.audit_refusal(caller.started_at, &target, reason) {
                let params = Some(serde_json::json!({"reason": reason}));
                audit(gateway, &caller, &target, action, AuditResult::Denied, params).await;
            }
            Err(error.with_headers(headers))
        }
    }
}

fn mismatch() -> ApiError {
    ApiError::forbidden("tenant_mismatch", "the API key belongs to another tenant")
}

fn error_code(error: &ApiError) -> &'static str {
    match error.status() {
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        _ => "forbidden",
    }
}

/// The tenant a key names, to route a request without a tenant header: remembered from an
/// earlier lookup, else from the store. A remembered answer may be stale (the key was rotated
/// out): that costs nothing in safety, because the tenant's actor checks the key itself, and a
/// refused key is looked up afresh ([`fresh_owner`]).
async fn routed_owner(gateway: &Gateway, key: Option<&KeyHash>) -> Result<Option<TenantId>, ApiError> {
    match key.and_then(|key| gateway.key_owners.get(key)) {
        Some(owner) => Ok(Some(owner.clone())),
        None => fresh_owner(gateway, key).await,
    }
}

/// The tenant of a still-valid key, straight from the store (refusals must be exact); the
/// answer replaces what was remembered.
async fn fresh_owner(gateway: &Gateway, key: Option<&KeyHash>) -> Result<Option<TenantId>, ApiError> {
    let Some(key) = key else { return Ok(None) };
    let now = gateway.clock.now();
    let owner = gateway.store.key_owner(key).await?.filter(|o| o.is_valid_at(now)).map(|o| o.tenant);
    match &owner {
        Some(tenant) => {
            // Bounded: only valid keys are remembered, and all are forgotten past the bound.
            if gateway.key_owners.len() >= KEY_OWNERS_REMEMBERED {
                gateway.key_owners.clear();
            }
            gateway.key_owners.insert(*key, tenant.clone());
        }
        None => {
            gateway.key_owners.remove(key);
        }
    }
    Ok(owner)
}

/// How many key-to-tenant answers the edge remembers at most.
const KEY_OWNERS_REMEMBERED: usize = 100_000;

pub fn denial_error(denial: Denial) -> ApiError {
    match denial {
        Denial::Unauthorized => ApiError::unauthorized(),
        Denial::Suspended => ApiError::forbidden("tenant_suspended", "the tenant is suspended"),
        Denial::IpNotAllowed => {
            ApiError::forbidden("ip_not_allowed", "the client address is not on the tenant's allow-list")
        }
        Denial::RateLimited { retry_after } => {
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "rate limit exceeded; retry later")
                .with_field("retryAfter", retry_after)
        }
        Denial::QuotaExceeded(q) => {
            ApiError::forbidden("quota_exceeded", format!("quota {} exhausted", q.quota.name()))
                .with_field("quota", q.quota.name())
                .with_field("limit", q.limit)
                .with_field("used", q.used)
        }
        Denial::Late => ApiError::unavailable("the tenant's owner answered after this node stopped waiting"),
    }
}

/// Writes the audit event of a tenant-API request.
pub async fn audit(
    gateway: &Gateway,
    caller: &Caller,
    tenant: &TenantId,
    action: &str,
    result: AuditResult,
    params: Option<Value>,
) {
    audit_event(gateway, caller, tenant, action, None, result, params).await;
}

/// Writes the audit event of a tenant-API request about one tool.
pub async fn audit_event(
    gateway: &Gateway,
    caller: &Caller,
    tenant: &TenantId,
    action: &str,
    tool_id: Option<&str>,
    result: AuditResult,
    params: Option<Value>,
) {
    gateway.record_audit(audit_record(caller, tenant, action, tool_id, result, params)).await;
}

/// The audit event of a tenant-API request, as of now.
fn audit_record(
    caller: &Caller,
    tenant: &TenantId,
    action: &str,
    tool_id: Option<&str>,
    result: AuditResult,
    params: Option<Value>,
) -> AuditEvent {
    AuditEvent {
        timestamp: caller.started_at,
        tenant_id: tenant.clone(),
        user_id: caller.user_id.clone(),
        action: action.to_string(),
        tool_id: tool_id.map(str::to_string),
        params: params.map(|params| capped(params, 0)),
        result,
        duration: caller.started.elapsed().as_millis() as u64,
        ip: Some(caller.ip.to_string()),
        user_agent: caller.user_agent.clone(),
        request_id: caller.request_id.clone(),
        event_id: None,
    }
}

/// Largest audited value, serialized: a larger one is replaced by its size, so that a tenant's
/// megabyte of tool arguments is not stored again in its audit log.
const MAX_AUDITED_BYTES: usize = 2_048;

/// `value`, with every value larger than [`MAX_AUDITED_BYTES`] replaced by
/// `{"truncated": true, "bytes": n}`; objects are capped field by field (two levels deep: the
/// event's fields and the tool's parameters), so that small fields stay readable.
fn capped(value: Value, depth: u8) -> Value {
    let bytes = serde_json::to_vec(&value).map_or(usize::MAX, |encoded| encoded.len());
    if bytes <= MAX_AUDITED_BYTES {
        return value;
    }
    match value {
        Value::Object(fields) if depth < 2 => {
            Value::Object(fields.into_iter().map(|(name, field)| (name, capped(field, depth + 1))).collect())
        }
        _ => serde_json::json!({"truncated": true, "bytes": bytes}),
    }
}

/// `GET /api/v1/tenant`: the caller's own tenant and this month's usage.
#[utoipa::path(
    get, path = "/api/v1/tenant", tag = "tenant", operation_id = "getOwnTenant",
    responses((status = 200, description = "The caller's tenant (no key) and this month's usage", body = TenantView))
)]
pub async fn get_tenant(State(gateway): State<Arc<Gateway>>, parts: Parts) -> Result<Response, ApiError> {
    let admitted = admit(&gateway, &parts, "tenant.get", None, false).await?;
    let body = gateway.tenant_json.response(&admitted.tenant, &gateway.config.pricing);
    audit(&gateway, &admitted.caller, &admitted.tenant.record.id, "tenant.get", AuditResult::Success, None).await;
    Ok((admitted.headers, body).into_response())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_user_id_header_is_taken_trimmed_or_refused_when_unfit_for_the_audit_log() {
        let header = |bytes: &[u8]| axum::http::HeaderValue::from_bytes(bytes).unwrap();
        assert_eq!(user_id(&header(b" user-123 ")), Ok(Some("user-123".into())));
        assert_eq!(user_id(&header(b"")), Ok(None));
        assert!(user_id(&header("jos\u{e9}".as_bytes())).is_err(), "not ASCII");
        assert!(user_id(&header(b"a\tb")).is_err());
        assert!(user_id(&header("u".repeat(257).as_bytes())).is_err());
        assert!(user_id(&header("u".repeat(256).as_bytes())).is_ok());
    }

    #[test]
    fn audited_values_are_capped_field_by_field() {
        let big = "x".repeat(10_000);
        let params = json!({"parameters": {"message": big, "n": 3}, "error": "upstream_error"});
        let audited = capped(params, 0);
        assert_eq!(audited["parameters"]["n"], 3, "small fields stay");
        assert_eq!(audited["error"], "upstream_error");
        assert_eq!(audited["parameters"]["message"], json!({"truncated": true, "bytes": 10_002}));
        let small = json!({"query": "add two numbers", "returned": 3});
        assert_eq!(capped(small.clone(), 0), small);
        let deep = json!({"a": {"b": {"c": "y".repeat(5_000)}}});
        assert_eq!(capped(deep, 0)["a"]["b"], json!({"truncated": true, "bytes": 5_008}));
    }
}
