//! `/api/v1/admin/integrations`: shared MCP servers offered to every tenant.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use super::extract::{JsonBody, JsonObject};
use crate::app::Gateway;
use crate::tools::registry::{Integration, IntegrationAuth, NewIntegration, RegistryError};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateIntegration {
    name: String,
    url: String,
    category: Option<String>,
    description: Option<String>,
    auth: Option<AuthBody>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthBody {
    #[serde(rename = "type")]
    kind: AuthKind,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum AuthKind {
    #[serde(rename = "oauth")]
    OAuth,
    None,
}

impl JsonObject for CreateIntegration {
    const OBJECT_FIELDS: &'static [&'static str] = &["auth"];
}

fn view(integration: &Integration) -> Value {
    let mut view = json!({
        "name": integration.name,
        "url": integration.url,
        "category": integration.category,
        "description": integration.description,
        "auth": {"type": match integration.auth { IntegrationAuth::OAuth => "oauth", IntegrationAuth::None => "none" }},
        "status": integration.status,
        "toolsDiscovered": integration.tools.len(),
        "tools": integration.tools.iter().map(|tool| format!("{}.{}", integration.name, tool.name)).collect::<Vec<_>>(),
        "discoveredAt": integration.discovered_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    });
    if let Some(error) = &integration.error {
        view["error"] = json!(error);
    }
    view
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

pub async fn create(
    State(gateway): State<Arc<Gateway>>,
    JsonBody { value: body, .. }: JsonBody<CreateIntegration>,
) -> Result<impl IntoResponse, ApiError> {
    let auth = match body.auth.map(|auth| auth.kind) {
        Some(AuthKind::OAuth) => IntegrationAuth::OAuth,
        Some(AuthKind::None) | None => IntegrationAuth::None,
    };
    let new =
        NewIntegration { name: body.name, url: body.url, category: body.category, description: body.description, auth };
    let integration = gateway.registry.register(new, gateway.clock.now()).await?;
    tracing::info!(integration = %integration.name, url = %integration.url, tools = integration.tools.len(), "integration registered");
    Ok((StatusCode::CREATED, Json(view(&integration))))
}

pub async fn list(State(gateway): State<Arc<Gateway>>) -> Result<Json<Value>, ApiError> {
    gateway.registry.reload().await?;
    let integrations: Vec<Value> = gateway.registry.list().iter().map(view).collect();
    Ok(Json(json!({"integrations": integrations})))
}

pub async fn refresh(State(gateway): State<Arc<Gateway>>, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    let integration = gateway.registry.refresh(&name, gateway.clock.now()).await?;
    Ok(Json(view(&integration)))
}

pub async fn delete(State(gateway): State<Arc<Gateway>>, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    gateway.registry.remove(&name).await?;
    tracing::info!(integration = %name, "integration deleted");
    Ok(StatusCode::NO_CONTENT)
}
