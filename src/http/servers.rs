//! `/api/v1/mcp/servers`: a tenant's own MCP servers. The tenant's actor owns each deployment
//! request (a persisted state machine); this edge admits the request, checks what only the
//! node knows (whether a shared integration has the name) and shows the records.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use connectors_actors::audit::AuditResult;
use connectors_actors::deployer::ServerName;
use connectors_actors::deployer::ServerSource;
use connectors_actors::deployments::ServerStatus;
use connectors_actors::deployments::{ServerRecord, ServerRequest};
use connectors_actors::tenant::TenantId;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::admin::tenant_error;
use super::error::{ApiError, ErrorBody};
use super::extract::{JsonBody, JsonObject};
use super::tenant_api::{Admitted, admit, audit};
use crate::app::Gateway;

impl JsonObject for ServerRequest {
    const OBJECT_FIELDS: &'static [&'static str] = &["source"];
}

/// The API's view of a server.
/// A tenant's own MCP server as the API shows it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerView {
    name: String,
    deployment_id: String,
    category: String,
    description: Option<String>,
    source: ServerSource,
    /// `pending` → `deploying` → `ready` or `failed`; `deleting` once deleted.
    status: ServerStatus,
    /// `tenant-<id>`.
    namespace: String,
    /// Where its MCP endpoint is, once deployed.
    endpoint: Option<String>,
    tools_discovered: u64,
    /// RFC 3339.
    #[schema(value_type = String, format = DateTime)]
    created_at: chrono::DateTime<chrono::Utc>,
    /// Why it failed (or why the last attempt failed, while retrying).
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn server_view(tenant: &TenantId, record: &ServerRecord) -> ServerView {
    ServerView {
        name: record.name.to_string(),
        deployment_id: record.deployment_id.clone(),
        category: record.category.clone(),
        description: record.description.clone(),
        source: record.source.clone(),
        status: record.status,
        namespace: namespace(tenant),
        endpoint: record.endpoint.as_ref().map(ToString::to_string),
        tools_discovered: record.tools_discovered,
        created_at: record.created_at,
        error: record.error.clone(),
    }
}

/// The answer to a server's creation: its deployment has started.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerAccepted {
    deployment_id: String,
    name: String,
    /// Always `pending`.
    status: ServerStatus,
    namespace: String,
}

/// The tenant's own servers.
#[derive(Serialize, ToSchema)]
pub struct ServerList {
    servers: Vec<ServerView>,
}

fn namespace(tenant: &TenantId) -> String {
    format!("tenant-{tenant}")
}

/// Admits a request and refuses it when the tenant's `customServers` feature is off.
async fn admit_servers(gateway: &Gateway, parts: &Parts, action: &str) -> Result<Admitted, ApiError> {
    let admitted = admit(gateway, parts, action, None, false).await?;
    if !admitted.tenant.features.custom_servers {
        let tenant = admitted.tenant.record.id.clone();
        audit(
            gateway,
            &admitted.caller,
            &tenant,
            action,
            AuditResult::Denied,
            Some(json!({"reason": "feature_disabled"})),
        )
        .await;
        return Err(ApiError::forbidden("feature_disabled", "the tenant's `customServers` feature is disabled")
            .with_headers(admitted.headers));
    }
    Ok(admitted)
}

/// `POST /api/v1/mcp/servers`: 202 once the request is persisted as `pending`.
#[utoipa::path(
    post, path = "/api/v1/mcp/servers", tag = "tenant", operation_id = "createServer",
    request_body = ServerRequest,
    responses(
        (status = 202, description = "Accepted: its deployment has started", body = ServerAccepted),
        (status = 403, description = "`feature_disabled` (`customServers`), `quota_exceeded` (`maxCustomServers`), or another refusal", body = ErrorBody),
        (status = 409, description = "`conflict`: a server or integration has this name", body = ErrorBody),
        (status = 422, description = "`deployer_unavailable`: `github` and `docker` sources need the Kubernetes deployer", body = ErrorBody),
    )
)]
pub async fn create(
    State(gateway): State<Arc<Gateway>>,
    parts: Parts,
    JsonBody { value: request, .. }: JsonBody<ServerRequest>,
) -> Result<Response, ApiError> {
    let admitted = admit_servers(&gateway, &parts, "mcp.servers.create").await?;
    let tenant = admitted.tenant.record.id.clone();
    let headers = admitted.headers.clone();
    let params =
        json!({"name": request.name, "sourceType": request.source.kind().as_str(), "category": request.category});
    let outcome = async {
        // Validated here for a quick 400; the actor validates again.
        request.clone().validate().map_err(|error| ApiError::invalid(error.to_string()))?;
        if let ServerSource::Http { url, oauth_integration } = &request.source {
            http_source_allowed(&gateway, url, oauth_integration.as_deref())?;
        }
        let clashes = gateway.registry.integration(&request.name).is_some();
        gateway.router.create_server(&tenant, request, clashes).await?.map_err(tenant_error)
    }
    .await;
    let result = if outcome.is_ok() { AuditResult::Success } else { AuditResult::Error };
    let mut audited = params;
    if let Err(error) = &outcome {
        audited["error"] = json!(error.code());
    }
    audit(&gateway, &admitted.caller, &tenant, "mcp.servers.create", result, Some(audited)).await;
    let record = outcome.map_err(|error| error.with_headers(headers.clone()))?;
    let body = ServerAccepted {
        deployment_id: record.deployment_id,
        name: record.name.to_string(),
        status: ServerStatus::Pending,
        namespace: namespace(&tenant),
    };
    Ok((StatusCode::ACCEPTED, headers, Json(body)).into_response())
}

/// An `http` source's URL must be one the gateway may call, and a server that asks for the
/// tenant's token of an integration must be on that integration's host.
fn http_source_allowed(gateway: &Gateway, url: &str, oauth_integration: Option<&str>) -> Result<(), ApiError> {
    gateway.config.outbound.check_url(url).map_err(|refused| ApiError::invalid(format!("`source.url`: {refused}")))?;
    let Some(name) = oauth_integration else { return Ok(()) };
    match gateway.registry.integration(name) {
        Some(integration) if integration.may_receive_token(url) => Ok(()),
        Some(integration) => Err(ApiError::invalid(format!(
            "`source.oauthIntegration`: a token for `{name}` is only sent to the host of `{}`",
            integration.url
        ))),
        None => Err(ApiError::invalid(format!("`source.oauthIntegration`: no integration `{name}` is registered"))),
    }
}

/// `GET /api/v1/mcp/servers`
#[utoipa::path(
    get, path = "/api/v1/mcp/servers", tag = "tenant", operation_id = "listServers",
    responses(
        (status = 200, description = "The tenant's own servers", body = ServerList),
        (status = 403, description = "`feature_disabled` (`customServers`), or another refusal", body = ErrorBody),
    )
)]
pub async fn list(State(gateway): State<Arc<Gateway>>, parts: Parts) -> Result<Response, ApiError> {
    let admitted = admit_servers(&gateway, &parts, "mcp.servers.list").await?;
    let tenant = admitted.tenant.record.id.clone();
    let records = match gateway.router.list_servers(&tenant).await {
        Ok(Ok(records)) => records,
        Ok(Err(error)) => return Err(tenant_error(error).with_headers(admitted.headers)),
        Err(error) => return Err(ApiError::from(error).with_headers(admitted.headers)),
    };
    let servers = records.iter().map(|record| server_view(&tenant, record)).collect();
    Ok((admitted.headers, Json(ServerList { servers })).into_response())
}

/// `GET /api/v1/mcp/servers/{name}`
#[utoipa::path(
    get, path = "/api/v1/mcp/servers/{name}", tag = "tenant", operation_id = "getServer",
    params(("name" = String, Path, description = "Server name")),
    responses(
        (status = 200, description = "The server", body = ServerView),
        (status = 403, description = "`feature_disabled` (`customServers`), or another refusal", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    )
)]
pub async fn get(
    State(gateway): State<Arc<Gateway>>,
    parts: Parts,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let admitted = admit_servers(&gateway, &parts, "mcp.servers.get").await?;
    let tenant = admitted.tenant.record.id.clone();
    let not_found = || ApiError::not_found(format!("server `{name}` not found")).with_headers(admitted.headers.clone());
    let Ok(server) = ServerName::parse(&name) else { return Err(not_found()) };
    match gateway.router.get_server(&tenant, server).await {
        Ok(Some(record)) => Ok((admitted.headers, Json(server_view(&tenant, &record))).into_response()),
        Ok(None) => Err(not_found()),
        Err(error) => Err(ApiError::from(error).with_headers(admitted.headers)),
    }
}

/// `DELETE /api/v1/mcp/servers/{name}`: 202 with status `deleting`; the server is gone once
/// its deployer stopped it (at once for `http` and `pending` servers).
#[utoipa::path(
    delete, path = "/api/v1/mcp/servers/{name}", tag = "tenant", operation_id = "deleteServer",
    params(("name" = String, Path, description = "Server name")),
    responses(
        (status = 202, description = "Accepted: its status is `deleting`, then it is gone", body = ServerView),
        (status = 403, description = "`feature_disabled` (`customServers`), or another refusal", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    )
)]
pub async fn delete(
    State(gateway): State<Arc<Gateway>>,
    parts: Parts,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let admitted = admit_servers(&gateway, &parts, "mcp.servers.delete").await?;
    let tenant = admitted.tenant.record.id.clone();
    let outcome = match ServerName::parse(&name) {
        Err(_) => Err(ApiError::not_found(format!("server `{name}` not found"))),
        Ok(server) => match gateway.router.delete_server(&tenant, server).await {
            Ok(result) => result.map_err(tenant_error),
            Err(error) => Err(error.into()),
        },
    };
    let mut audited = json!({"name": name});
    if let Err(error) = &outcome {
        audited["error"] = json!(error.code());
    }
    let result = if outcome.is_ok() { AuditResult::Success } else { AuditResult::Error };
    audit(&gateway, &admitted.caller, &tenant, "mcp.servers.delete", result, Some(audited)).await;
    let record = outcome.map_err(|error| error.with_headers(admitted.headers.clone()))?;
    let mut view = server_view(&tenant, &record);
    view.status = ServerStatus::Deleting;
    Ok((StatusCode::ACCEPTED, admitted.headers, Json(view)).into_response())
}
