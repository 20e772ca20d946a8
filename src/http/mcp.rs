//! The gateway as an MCP server for each tenant: `POST`, `GET` and `DELETE /mcp`, the
//! streamable HTTP transport.
//!
//! Every request is a tenant-API request: the tenant comes from `X-Tenant-ID` or the key, and
//! the owning actor admits it (key, allow-list, suspension, rate windows) before anything else.
//! Two eras side by side, chosen by `MCP-Protocol-Version` as the official SDKs do:
//!
//! - absent or a handshake version (2024-11-05 … 2025-11-25): sessions. `initialize` opens one
//!   with the tenant's actor (which owns, bounds and persists it), `Mcp-Session-Id` names it on
//!   every later request, on any node; answers are JSON; `GET` opens the session's SSE stream
//!   (`notifications/tools/list_changed`), resumable with `Last-Event-ID` from the session's
//!   event log; `DELETE` ends the session.
//! - 2026-07-28: no session; each request carries its version and client in `params._meta`,
//!   and `Mcp-Method` / `Mcp-Name` must repeat the body's method and name.
//!
//! The methods themselves are in [`super::mcp_methods`], the GET stream in
//! [`super::mcp_stream`].

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use connectors_actors::audit::AuditResult;
use connectors_actors::mcp_sessions::SessionError;
use connectors_actors::tenant::TenantId;
use connectors_actors::tenant_actor::TenantError;
use connectors_actors::tenant_mcp_sessions::{McpSessionAnswer, McpSessionCall};
use serde_json::{Value, json};

use super::error::{ApiError, ErrorBody};
use super::mcp_methods::{self, Era, SESSION_VERSIONS, STATELESS_VERSIONS};
use super::mcp_rpc::{
    self, HEADER_MISMATCH, INVALID_PARAMS, INVALID_REQUEST, Incoming, METHOD_NOT_FOUND, RpcError, SESSION_NOT_FOUND,
    UNSUPPORTED_PROTOCOL_VERSION,
};
use super::tenant_api::{Admitted, admit, audit};
use crate::app::Gateway;

pub static SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");
pub static PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");
static METHOD: HeaderName = HeaderName::from_static("mcp-method");
static NAME: HeaderName = HeaderName::from_static("mcp-name");
pub static LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");

/// `params._meta` keys of the 2026-07-28 envelope.
const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";

/// Why a request to `/mcp` is not answered with a result: a refusal of the tenant API (its
/// error body) or of the protocol (a JSON-RPC error).
pub enum Refusal {
    Api(ApiError),
    Rpc(RpcError),
}

impl From<ApiError> for Refusal {
    fn from(error: ApiError) -> Self {
        Refusal::Api(error)
    }
}

impl From<RpcError> for Refusal {
    fn from(error: RpcError) -> Self {
        Refusal::Rpc(error)
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Api(error) => error.into_response(),
            Refusal::Rpc(error) => error.into_response(),
        }
    }
}

fn text<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok()).map(str::trim)
}

/// A request from a browser page of another site is refused (DNS rebinding): an `Origin` must
/// be this host's own or one the operator allows (`mcp.allowedOrigins`).
fn check_origin(gateway: &Gateway, headers: &HeaderMap) -> Result<(), RpcError> {
    let Some(origin) = headers.get(header::ORIGIN) else { return Ok(()) };
    let origin = origin.to_str().unwrap_or_default().trim_end_matches('/');
    let same_host = text(headers, &header::HOST)
        .is_some_and(|host| origin == format!("http://{host}") || origin == format!("https://{host}"));
    if same_host || gateway.config.mcp.allowed_origins.iter().any(|allowed| allowed == origin) {
        return Ok(());
    }
    Err(RpcError::new(StatusCode::FORBIDDEN, Value::Null, INVALID_REQUEST, "Forbidden: origin not allowed"))
}

fn accepts(headers: &HeaderMap, media_type: &str) -> bool {
    let (kind, _) = media_type.split_once('/').unwrap_or((media_type, ""));
    let wildcard = format!("{kind}/*");
    headers.get_all(header::ACCEPT).iter().filter_map(|value| value.to_str().ok()).flat_map(|v| v.split(',')).any(
        |entry| {
            let range = entry.split(';').next().unwrap_or_default().trim();
            range == media_type || range == wildcard || range == "*/*"
        },
    )
}

fn not_acceptable(what: &str) -> RpcError {
    RpcError::new(StatusCode::NOT_ACCEPTABLE, Value::Null, INVALID_REQUEST, format!("Not Acceptable: {what}"))
}

/// The version a request names in `MCP-Protocol-Version`; one the endpoint does not speak is
/// the 400 the specification requires, naming the versions it does.
fn requested_version(headers: &HeaderMap) -> Result<Option<String>, RpcError> {
    let Some(value) = headers.get(&PROTOCOL_VERSION) else { return Ok(None) };
    let requested = value.to_str().unwrap_or_default().trim().to_string();
    if SESSION_VERSIONS.contains(&requested.as_str()) || STATELESS_VERSIONS.contains(&requested.as_str()) {
        return Ok(Some(requested));
    }
    Err(unsupported_version(Value::Null, &requested))
}

fn unsupported_version(id: Value, requested: &str) -> RpcError {
    RpcError::new(StatusCode::BAD_REQUEST, id, UNSUPPORTED_PROTOCOL_VERSION, "Unsupported protocol version")
        .with_data(json!({"supported": mcp_methods::all_versions(), "requested": requested}))
}

/// The session a request names; a value that cannot be one of ours is no session at all.
fn session_header(headers: &HeaderMap) -> Result<String, RpcError> {
    let value = headers.get(&SESSION_ID).ok_or_else(|| {
        RpcError::new(
            StatusCode::BAD_REQUEST,
            Value::Null,
            INVALID_REQUEST,
            "Bad Request: Mcp-Session-Id header is required",
        )
    })?;
    match value.to_str() {
        Ok(id) if (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic()) => Ok(id.to_string()),
        _ => Err(session_not_found(Value::Null)),
    }
}

fn session_not_found(id: Value) -> RpcError {
    RpcError::new(StatusCode::NOT_FOUND, id, SESSION_NOT_FOUND, "Session not found")
}

/// Asks the tenant's actor (on whichever node owns it) about its MCP sessions.
pub async fn session_call(
    gateway: &Gateway,
    tenant: &TenantId,
    call: McpSessionCall,
    request_id: &Value,
) -> Result<McpSessionAnswer, Refusal> {
    match gateway.router.mcp_session(tenant, call).await.map_err(ApiError::from)? {
        Ok(answer) => Ok(answer),
        Err(TenantError::McpSession(SessionError::NotFound)) => Err(session_not_found(request_id.clone()).into()),
        Err(other) => Err(super::admin::tenant_error(other).into()),
    }
}

/// The audit action of a method: a fixed set, never a client's string.
fn action(method: &str) -> &'static str {
    match method {
        "initialize" => "mcp.initialize",
        "ping" => "mcp.ping",
        "tools/list" => "mcp.tools.list",
        "tools/call" => "mcp.tools.call",
        "server/discover" => "mcp.server.discover",
        "notifications/initialized" => "mcp.notifications.initialized",
        _ => "mcp.request",
    }
}

fn json_answer(headers: HeaderMap, body: Value) -> Response {
    (StatusCode::OK, headers, Json(body)).into_response()
}

fn accepted(headers: HeaderMap) -> Response {
    (StatusCode::ACCEPTED, headers).into_response()
}

/// `POST /mcp`
#[utoipa::path(
    post, path = "/mcp", tag = "mcp", operation_id = "mcpPost",
    request_body(content = Object, description = "One JSON-RPC message (MCP streamable HTTP)", content_type = "application/json"),
    responses(
        (status = 200, description = "The JSON-RPC answer; `initialize` also answers the `Mcp-Session-Id` header", body = Object, content_type = "application/json"),
        (status = 202, description = "A notification or response was accepted"),
        (status = 400, description = "A malformed message, a missing session id, or an unsupported `MCP-Protocol-Version` (JSON-RPC error)", body = Object),
        (status = 401, description = "`unauthorized`: missing or invalid API key", body = ErrorBody),
        (status = 403, description = "A refused `Origin`, or a tenant refusal (`quota_exceeded` with `quota: mcpSessions`, ...)", body = Object),
        (status = 404, description = "Unknown or ended session (JSON-RPC error -32001)", body = Object),
        (status = 406, description = "`Accept` allows neither JSON nor an event stream", body = Object),
        (status = 429, description = "`rate_limited`", body = ErrorBody),
    ),
    security(("tenantBearer" = [], "tenantId" = []), ("tenantBearer" = []))
)]
pub async fn post(State(gateway): State<Arc<Gateway>>, parts: Parts, body: Bytes) -> Result<Response, Refusal> {
    check_origin(&gateway, &parts.headers)?;
    if parts.headers.contains_key(header::ACCEPT) && !accepts(&parts.headers, "application/json") {
        return Err(not_acceptable("the client must accept application/json").into());
    }
    let message = mcp_rpc::incoming(&body)?;
    let method = match &message {
        Incoming::Request { method, .. } | Incoming::Notification { method } => method.as_str(),
        Incoming::Response => "response",
    };
    let admitted = admit(&gateway, &parts, action(method), None, false).await?;
    let version = requested_version(&parts.headers).map_err(|e| e.with_headers(admitted.headers.clone()))?;
    let outcome = match version.as_deref() {
        Some(version) if STATELESS_VERSIONS.contains(&version) => {
            stateless(&gateway, &parts.headers, &admitted, message).await
        }
        _ => in_session(&gateway, &parts.headers, &admitted, message).await,
    };
    outcome.map_err(|refusal| match refusal {
        Refusal::Api(error) => Refusal::Api(error.with_headers(admitted.headers.clone())),
        Refusal::Rpc(error) => Refusal::Rpc(error.with_headers(admitted.headers.clone())),
    })
}

/// A message of the handshake era: `initialize`, or one of a session's.
async fn in_session(
    gateway: &Gateway,
    headers: &HeaderMap,
    admitted: &Admitted,
    message: Incoming,
) -> Result<Response, Refusal> {
    let tenant = &admitted.tenant.record.id;
    if let Incoming::Request { id, method, params } = &message
        && method == "initialize"
    {
        if headers.contains_key(&SESSION_ID) {
            return Err(RpcError::new(
                StatusCode::BAD_REQUEST,
                id.clone(),
                INVALID_REQUEST,
                "Bad Request: initialize opens a session and must not name one",
            )
            .into());
        }
        let version = mcp_methods::negotiate(params.get("protocolVersion").and_then(Value::as_str));
        let session = uuid::Uuid::new_v4().simple().to_string();
        let open = McpSessionCall::Open { id: session.clone(), protocol_version: version.to_string() };
        session_call(gateway, tenant, open, id).await?;
        let client = params.get("clientInfo").and_then(|info| info.get("name")).cloned().unwrap_or(Value::Null);
        let params = json!({"protocolVersion": version, "client": client});
        audit(gateway, &admitted.caller, tenant, "mcp.initialize", AuditResult::Success, Some(params)).await;
        let mut answer_headers = admitted.headers.clone();
        answer_headers.insert(SESSION_ID.clone(), HeaderValue::try_from(session).expect("hex is a header value"));
        return Ok(json_answer(answer_headers, mcp_rpc::result(id, mcp_methods::initialize_result(version))));
    }
    let session = session_header(headers)?;
    let request_id = match &message {
        Incoming::Request { id, .. } => id.clone(),
        _ => Value::Null,
    };
    session_call(gateway, tenant, McpSessionCall::Touch { id: session.clone() }, &request_id).await?;
    match message {
        Incoming::Notification { method } => {
            if method == "notifications/initialized" {
                session_call(gateway, tenant, McpSessionCall::Initialized { id: session }, &Value::Null).await?;
            }
            audit(gateway, &admitted.caller, tenant, action(&method), AuditResult::Success, None).await;
            Ok(accepted(admitted.headers.clone()))
        }
        Incoming::Response => Ok(accepted(admitted.headers.clone())),
        Incoming::Request { id, method, params } => {
            let answer = mcp_methods::answer(gateway, admitted, Era::Session, &id, &method, &params).await;
            if method == "tools/list" && answer.is_ok() {
                let fingerprint = mcp_methods::catalog_fingerprint(&mcp_methods::visible_tools(gateway, admitted));
                session_call(gateway, tenant, McpSessionCall::CatalogSeen { id: session, fingerprint }, &id).await?;
            }
            respond(gateway, admitted, &id, &method, answer).await
        }
    }
}

/// Audits a request (a tool call audits itself, as `tools.invoke`) and answers it in JSON.
async fn respond(
    gateway: &Gateway,
    admitted: &Admitted,
    id: &Value,
    method: &str,
    answer: Result<Value, RpcError>,
) -> Result<Response, Refusal> {
    if method != "tools/call" {
        let result = if answer.is_ok() { AuditResult::Success } else { AuditResult::Error };
        let tenant = &admitted.tenant.record.id;
        audit(gateway, &admitted.caller, tenant, action(method), result, None).await;
    }
    match answer {
        Ok(result) => Ok(json_answer(admitted.headers.clone(), mcp_rpc::result(id, result))),
        Err(error) => Err(error.into()),
    }
}

/// A request of the 2026-07-28 revision: self-contained, checked rung by rung as the
/// specification orders them (envelope, routing headers, version), answered in JSON.
async fn stateless(
    gateway: &Gateway,
    headers: &HeaderMap,
    admitted: &Admitted,
    message: Incoming,
) -> Result<Response, Refusal> {
    let (id, method, params) = match message {
        // The revision defines no notifications from the client over HTTP: acknowledged, dropped.
        Incoming::Notification { .. } => return Ok(accepted(admitted.headers.clone())),
        Incoming::Response => {
            return Err(RpcError::new(
                StatusCode::BAD_REQUEST,
                Value::Null,
                INVALID_REQUEST,
                "Body must be a single JSON-RPC request or notification object",
            )
            .into());
        }
        Incoming::Request { id, method, params } => (id, method, params),
    };
    stateless_envelope(headers, &id, &method, &params)?;
    let answer = mcp_methods::answer(gateway, admitted, Era::Stateless, &id, &method, &params).await;
    let answer = answer.map_err(|mut error| {
        error.status = match error.code {
            METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
            INVALID_PARAMS | INVALID_REQUEST => StatusCode::BAD_REQUEST,
            _ => StatusCode::OK,
        };
        error
    });
    respond(gateway, admitted, &id, &method, answer).await
}

/// The rungs of the 2026-07-28 request ladder, first failure wins.
fn stateless_envelope(headers: &HeaderMap, id: &Value, method: &str, params: &Value) -> Result<(), RpcError> {
    let fail = |code: i64, message: String| RpcError::new(StatusCode::BAD_REQUEST, id.clone(), code, message);
    let meta = params.get("_meta").and_then(Value::as_object).ok_or_else(|| {
        fail(
            INVALID_PARAMS,
            format!(
                "params._meta must be an object carrying `{META_PROTOCOL_VERSION}` and `{META_CLIENT_CAPABILITIES}`"
            ),
        )
    })?;
    let missing: Vec<&str> =
        [META_PROTOCOL_VERSION, META_CLIENT_CAPABILITIES].into_iter().filter(|key| !meta.contains_key(*key)).collect();
    if !missing.is_empty() {
        return Err(fail(INVALID_PARAMS, format!("params._meta is missing {}", missing.join(", "))));
    }
    for name in [&PROTOCOL_VERSION, &METHOD, &NAME] {
        if headers.get_all(name).iter().count() > 1 {
            return Err(fail(HEADER_MISMATCH, format!("{name} header appears more than once")));
        }
    }
    let body_version = &meta[META_PROTOCOL_VERSION];
    if text(headers, &PROTOCOL_VERSION).is_none_or(|header| body_version.as_str() != Some(header)) {
        return Err(fail(
            HEADER_MISMATCH,
            "mcp-protocol-version header does not match the request envelope's protocol version".into(),
        ));
    }
    if text(headers, &METHOD) != Some(method) {
        return Err(fail(HEADER_MISMATCH, "mcp-method header does not match the request body's method".into()));
    }
    let name_field = match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        _ => None,
    };
    if let Some(field) = name_field
        && text(headers, &NAME) != params.get(field).and_then(Value::as_str)
    {
        return Err(fail(HEADER_MISMATCH, format!("mcp-name header does not match the request body's {field}")));
    }
    let version = body_version.as_str().unwrap_or_default();
    if !STATELESS_VERSIONS.contains(&version) {
        return Err(unsupported_version(id.clone(), version));
    }
    Ok(())
}

/// `DELETE /mcp`: the client ends its session.
#[utoipa::path(
    delete, path = "/mcp", tag = "mcp", operation_id = "mcpDelete",
    params(("Mcp-Session-Id" = String, Header, description = "The session to end")),
    responses(
        (status = 204, description = "The session ended"),
        (status = 404, description = "Unknown or ended session", body = Object),
    ),
    security(("tenantBearer" = [], "tenantId" = []), ("tenantBearer" = []))
)]
pub async fn delete(State(gateway): State<Arc<Gateway>>, parts: Parts) -> Result<Response, Refusal> {
    check_origin(&gateway, &parts.headers)?;
    let admitted = admit(&gateway, &parts, "mcp.session.delete", None, false).await?;
    let tenant = &admitted.tenant.record.id;
    let with_headers = |error: RpcError| Refusal::Rpc(error.with_headers(admitted.headers.clone()));
    let session = session_header(&parts.headers).map_err(with_headers)?;
    match session_call(&gateway, tenant, McpSessionCall::Close { id: session }, &Value::Null).await {
        Ok(_) => {}
        Err(Refusal::Rpc(error)) => return Err(with_headers(error)),
        Err(Refusal::Api(error)) => return Err(Refusal::Api(error.with_headers(admitted.headers.clone()))),
    }
    audit(&gateway, &admitted.caller, tenant, "mcp.session.delete", AuditResult::Success, None).await;
    Ok((StatusCode::NO_CONTENT, admitted.headers).into_response())
}

/// `GET /mcp`: the session's stream (see [`super::mcp_stream`]).
#[utoipa::path(
    get, path = "/mcp", tag = "mcp", operation_id = "mcpStream",
    params(
        ("Mcp-Session-Id" = String, Header, description = "The session whose stream is read"),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event, on any node"),
    ),
    responses(
        (status = 200, description = "Server-sent events: `notifications/tools/list_changed`", content_type = "text/event-stream"),
        (status = 404, description = "Unknown or ended session", body = Object),
        (status = 406, description = "`Accept` does not allow `text/event-stream`", body = Object),
    ),
    security(("tenantBearer" = [], "tenantId" = []), ("tenantBearer" = []))
)]
pub async fn get(State(gateway): State<Arc<Gateway>>, parts: Parts) -> Result<Response, Refusal> {
    check_origin(&gateway, &parts.headers)?;
    if text(&parts.headers, &PROTOCOL_VERSION).is_some_and(|v| STATELESS_VERSIONS.contains(&v)) {
        // The stateless revision has no stream of its own to open.
        let allow = [(header::ALLOW, HeaderValue::from_static("POST, DELETE"))];
        return Ok((StatusCode::METHOD_NOT_ALLOWED, allow).into_response());
    }
    if !accepts(&parts.headers, "text/event-stream") {
        return Err(not_acceptable("the client must accept text/event-stream").into());
    }
    let admitted = admit(&gateway, &parts, "mcp.stream", None, false).await?;
    let with_headers = |error: RpcError| Refusal::Rpc(error.with_headers(admitted.headers.clone()));
    requested_version(&parts.headers).map_err(with_headers)?;
    let session = session_header(&parts.headers).map_err(with_headers)?;
    let last_event = text(&parts.headers, &LAST_EVENT_ID).map(str::to_string);
    let tenant = admitted.tenant.record.id.clone();
    let opened = super::mcp_stream::open(gateway.clone(), tenant.clone(), session.clone(), last_event).await;
    let body = match opened {
        Ok(body) => body,
        Err(Refusal::Rpc(error)) => return Err(with_headers(error)),
        Err(Refusal::Api(error)) => return Err(Refusal::Api(error.with_headers(admitted.headers.clone()))),
    };
    audit(&gateway, &admitted.caller, &tenant, "mcp.stream", AuditResult::Success, None).await;
    let mut headers = admitted.headers;
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, no-transform"));
    headers.insert(SESSION_ID.clone(), HeaderValue::try_from(session).expect("checked to be visible ASCII"));
    Ok((StatusCode::OK, headers, body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(HeaderName::try_from(*name).unwrap(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn stateless_params(version: &str) -> Value {
        json!({"name": "example.add", "_meta": {META_PROTOCOL_VERSION: version, META_CLIENT_CAPABILITIES: {}}})
    }

    #[test]
    fn accept_ranges_are_matched_with_wildcards_and_parameters() {
        assert!(accepts(&headers(&[("accept", "application/json, text/event-stream")]), "text/event-stream"));
        assert!(accepts(&headers(&[("accept", "text/*;q=0.5")]), "text/event-stream"));
        assert!(accepts(&headers(&[("accept", "*/*")]), "application/json"));
        assert!(!accepts(&headers(&[("accept", "text/html")]), "application/json"));
        assert!(!accepts(&headers(&[]), "text/event-stream"));
    }

    #[test]
    fn the_stateless_ladder_checks_envelope_then_headers_then_version() {
        let id = json!(1);
        let good = [("mcp-protocol-version", "2026-07-28"), ("mcp-method", "tools/call"), ("mcp-name", "example.add")];
        let params = stateless_params("2026-07-28");
        assert!(stateless_envelope(&headers(&good), &id, "tools/call", &params).is_ok());

        let code = |pairs: &[(&str, &str)], params: &Value| {
            stateless_envelope(&headers(pairs), &id, "tools/call", params).unwrap_err().code
        };
        assert_eq!(code(&good, &json!({"name": "example.add"})), INVALID_PARAMS);
        assert_eq!(code(&good[..2], &params), HEADER_MISMATCH, "no Mcp-Name");
        assert_eq!(code(&[good[0], good[2]], &params), HEADER_MISMATCH, "no Mcp-Method");
        assert_eq!(code(&[good[0], ("mcp-method", "tools/list"), good[2]], &params), HEADER_MISMATCH);
        let twice = [good[0], good[1], good[1], good[2]];
        assert_eq!(code(&twice, &params), HEADER_MISMATCH);
        let old = [("mcp-protocol-version", "2025-06-18"), good[1], good[2]];
        let error = stateless_envelope(&headers(&old), &id, "tools/call", &stateless_params("2025-06-18")).unwrap_err();
        assert_eq!((error.code, error.status), (UNSUPPORTED_PROTOCOL_VERSION, StatusCode::BAD_REQUEST));
        assert_eq!(error.data.clone().unwrap()["requested"], "2025-06-18");
    }

    #[test]
    fn unknown_versions_are_refused_with_the_supported_ones() {
        assert_eq!(requested_version(&headers(&[])).unwrap(), None);
        assert_eq!(
            requested_version(&headers(&[("mcp-protocol-version", "2025-06-18")])).unwrap().unwrap(),
            "2025-06-18"
        );
        let error = requested_version(&headers(&[("mcp-protocol-version", "1999-01-01")])).unwrap_err();
        assert_eq!((error.status, error.code), (StatusCode::BAD_REQUEST, UNSUPPORTED_PROTOCOL_VERSION));
        assert!(error.data.clone().unwrap()["supported"].as_array().unwrap().contains(&json!("2025-11-25")));
    }
}
