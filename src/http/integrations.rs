//! `/api/v1/admin/integrations`: shared MCP servers offered to every tenant.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::{JsonBody, JsonObject};
use crate::app::Gateway;
use crate::tools::registry::{Integration, IntegrationAuth, IntegrationStatus, NewIntegration, RegistryError};

/// The body of `POST /integrations`: a shared MCP server (streamable HTTP) offered to every tenant.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateIntegration {
    name: String,
    url: String,
    category: Option<String>,
    description: Option<String>,
    auth: Option<AuthBody>,
}

/// How the integration's calls are authorised.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthBody {
    /// `oauth`: calls carry the calling tenant's OAuth access token for this integration.
    #[serde(rename = "type")]
    kind: IntegrationAuth,
}

impl JsonObject for CreateIntegration {
    const OBJECT_FIELDS: &'static [&'static str] = &["auth"];
}

/// A shared integration as the API shows it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationView {
    name: String,
    url: String,
    category: String,
    description: String,
    auth: AuthBody,
    /// `unreachable` when the last `tools/list` failed (`error` says why).
    status: IntegrationStatus,
    tools_discovered: usize,
    /// The ids of its tools.
    tools: Vec<String>,
    /// When its tools were last discovered (RFC 3339).
    #[schema(format = DateTime)]
    discovered_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn view(integration: &Integration) -> IntegrationView {
    IntegrationView {
        name: integration.name.clone(),
        url: integration.url.clone(),
        category: integration.category.clone(),
        description: integration.description.clone(),
        auth: AuthBody { kind: integration.auth },
        status: integration.status,
        tools_discovered: integration.tools.len(),
        tools: integration.tools.iter().map(|tool| format!("{}.{}", integration.name, tool.name)).collect(),
        discovered_at: integration.discovered_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        error: integration.error.clone(),
    }
}

/// Every shared integration.
#[derive(Serialize, ToSchema)]
pub struct IntegrationList {
    integrations: Vec<IntegrationView>,
}

impl From<RegistryError> for ApiError {
    fn from(error: RegistryError) -> Self {
        match error {
            RegistryError::Conflict(name) => ApiError::conflict(format!("integration `{name}` already exists")),
            RegistryError::NotFound(name) => ApiError::not_found(format!("integration `{name}` not found")),
            RegistryError::Invalid(message) => ApiError::invalid(message),
            RegistryError::Store(store) => store.into(),
        }
    }
}

#[utoipa::path(
    post, path = "/api/v1/admin/integrations", tag = "admin", operation_id = "createIntegration",
    request_body = CreateIntegration,
    responses(
        (status = 201, description = "Registered; its tools were discovered with MCP `tools/list`", body = IntegrationView),
        (status = 409, description = "`conflict`: an integration with this name exists", body = ErrorBody),
    )
)]
pub async fn create(
    State(gateway): State<Arc<Gateway>>,
    JsonBody { value: body, .. }: JsonBody<CreateIntegration>,
) -> Result<impl IntoResponse, ApiError> {
    let auth = body.auth.map_or(IntegrationAuth::None, |auth| auth.kind);
    let new =
        NewIntegration { name: body.name, url: body.url, category: body.category, description: body.description, auth };
    let integration = gateway.registry.register(new, gateway.clock.now()).await?;
    tracing::info!(integration = %integration.name, url = %integration.url, tools = integration.tools.len(), "integration registered");
    Ok((StatusCode::CREATED, Json(view(&integration))))
}

#[utoipa::path(
    get, path = "/api/v1/admin/integrations", tag = "admin", operation_id = "listIntegrations",
    responses((status = 200, description = "Every shared integration", body = IntegrationList))
)]
pub async fn list(State(gateway): State<Arc<Gateway>>) -> Result<Json<IntegrationList>, ApiError> {
    gateway.registry.reload().await?;
    Ok(Json(IntegrationList { integrations: gateway.registry.list().iter().map(view).collect() }))
}

#[utoipa::path(
    post, path = "/api/v1/admin/integrations/{name}/refresh", tag = "admin", operation_id = "refreshIntegration",
    params(("name" = String, Path, description = "Integration name")),
    responses(
        (status = 200, description = "Its tools, discovered again", body = IntegrationView),
        (status = 404, description = "`not_found`", body = ErrorBody),
    )
)]
pub async fn refresh(
    State(gateway): State<Arc<Gateway>>,
    Path(name): Path<String>,
) -> Result<Json<IntegrationView>, ApiError> {
    let integration = gateway.registry.refresh(&name, gateway.clock.now()).await?;
    Ok(Json(view(&integration)))
}

#[utoipa::path(
    delete, path = "/api/v1/admin/integrations/{name}", tag = "admin", operation_id = "deleteIntegration",
    params(("name" = String, Path, description = "Integration name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "`not_found`", body = ErrorBody),
    )
)]
pub async fn delete(State(gateway): State<Arc<Gateway>>, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    gateway.registry.remove(&name).await?;
    tracing::info!(integration = %name, "integration deleted");
    Ok(StatusCode::NO_CONTENT)
}
