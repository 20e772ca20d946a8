//! Admin endpoints for tenants' OAuth credentials (`/api/v1/admin/tenants/{id}/oauth...`).
//!
//! Credentials go to the [`SecretStore`](connectors_actors::secret_store::SecretStore), which
//! keeps them encrypted; no endpoint ever returns a token or a client secret, and audit events
//! name the integration and scopes only.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use connectors_actors::secret_store::{CredentialStatus, OAuthCredential};
use connectors_actors::tenant::TenantId;
use connectors_actors::tenant_actor::TenantError;
use connectors_actors::tenant_oauth::generation_after;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::RequestId;
use super::admin::tenant_error;
use super::error::{ApiError, ErrorBody};
use super::extract::{JsonBody, JsonObject, TenantPath};
use crate::app::Gateway;

/// `{id}` and `{integration}` of a credential route, both validated.
pub struct CredentialPath {
    tenant: TenantId,
    integration: String,
}

impl<S: Send + Sync> FromRequestParts<S> for CredentialPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path((tenant, integration)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::invalid(rejection.body_text()))?;
        let tenant = TenantId::parse(&tenant).map_err(|e| ApiError::invalid(e.to_string()))?;
        Ok(Self { tenant, integration: valid_integration(&integration)?.to_string() })
    }
}

/// Integration names become tool id prefixes (`github.createIssue`): 1 to 63 lowercase letters,
/// digits, `-` and `_`, starting with a letter or digit.
fn valid_integration(name: &str) -> Result<&str, ApiError> {
    let bytes = name.as_bytes();
    let ok = (1..=63).contains(&bytes.len())
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-' || *b == b'_');
    if ok {
        Ok(name)
    } else {
        Err(ApiError::invalid(format!(
            "invalid integration name `{name}`: use 1 to 63 lowercase letters, digits, `-` and `_`"
        )))
    }
}

/// The body of `PUT /tenants/{id}/oauth/{integration}`. Tokens and secrets are stored
/// encrypted and never returned.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PutCredential {
    access_token: String,
    refresh_token: Option<String>,
    /// RFC 3339.
    #[schema(format = DateTime)]
    expires_at: Option<String>,
    scopes: Option<Vec<String>>,
    token_endpoint: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

impl JsonObject for PutCredential {}

/// Longest token or secret accepted: generous for JWTs, small enough to refuse junk.
const MAX_SECRET_LEN: usize = 16 * 1024;

fn secret_field(name: &str, value: Option<String>) -> Result<Option<String>, ApiError> {
    match value {
        Some(text) if text.is_empty() || text.len() > MAX_SECRET_LEN => {
            Err(ApiError::invalid(format!("`{name}` must be 1 to {MAX_SECRET_LEN} bytes")))
        }
        other => Ok(other),
    }
}

/// A token endpoint the gateway may call: http(s), https unless allow-listed, no refused address.
fn token_endpoint(gateway: &Gateway, value: Option<String>) -> Result<Option<String>, ApiError> {
    let Some(text) = value else { return Ok(None) };
    gateway
        .config
        .outbound
        .check_token_endpoint(&text)
        .map_err(|refused| ApiError::invalid(format!("`tokenEndpoint`: {refused}")))?;
    Ok(Some(text))
}

/// Stores the credential in the secret store from this node and tells the tenant's owner, which
/// reads it back: the secret never crosses the link between nodes. Answers it as stored.
async fn store_here(
    gateway: &Gateway,
    tenant: &TenantId,
    integration: &str,
    mut credential: OAuthCredential,
) -> Result<OAuthCredential, ApiError> {
    let snapshot = gateway.router.snapshot(tenant).await?;
    if !snapshot.features.oauth {
        return Err(tenant_error(TenantError::FeatureDisabled("oauth".into())));
    }
    let previous = gateway.secrets.get(tenant, integration).await?;
    credential.refresh_generation = generation_after(previous.as_ref(), &credential);
    gateway.secrets.put(tenant, integration, &credential).await?;
    if let Err(error) = gateway.router.credential_stored(tenant, integration.to_owned()).await?.map_err(tenant_error) {
        // Stored, but the refresh is not scheduled until the tenant's actor starts again.
        tracing::error!(%tenant, integration, code = error.code(), "the tenant's owner did not take the new credential");
        return Err(error);
    }
    Ok(gateway.secrets.get(tenant, integration).await?.unwrap_or(credential))
}

fn rfc3339(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// A stored credential, without its tokens and secrets.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialView {
    integration: String,
    /// When the access token expires (RFC 3339); null if it was given no expiry.
    #[schema(format = DateTime)]
    expires_at: Option<String>,
    scopes: Vec<String>,
    status: CredentialStatus,
    /// When the gateway last refreshed it (RFC 3339); null if never.
    #[schema(format = DateTime)]
    last_refresh_at: Option<String>,
}

impl CredentialView {
    fn of(integration: String, credential: &OAuthCredential, now: DateTime<Utc>) -> Self {
        Self {
            integration,
            expires_at: rfc3339(credential.expires_at),
            scopes: credential.scopes.clone(),
            status: credential.status_at(now),
            last_refresh_at: rfc3339(credential.last_refresh_at),
        }
    }
}

/// A tenant's stored credentials.
#[derive(Serialize, ToSchema)]
pub struct CredentialList {
    integrations: Vec<CredentialView>,
}

/// The tenant as its actor sees it; 404 when it does not exist.
async fn require_tenant(
    gateway: &Gateway,
    id: &TenantId,
) -> Result<connectors_actors::admission::TenantSnapshot, ApiError> {
    Ok(gateway.router.snapshot(id).await?)
}

#[utoipa::path(
    put, path = "/api/v1/admin/tenants/{id}/oauth/{integration}", tag = "admin", operation_id = "putOAuthCredential",
    params(
        ("id" = String, Path, description = "Tenant id"),
        ("integration" = String, Path, description = "Integration name", pattern = "^[a-z0-9][a-z0-9_-]{0,62}$"),
    ),
    request_body = PutCredential,
    responses(
        (status = 200, description = "Stored", body = CredentialView),
        (status = 403, description = "`feature_disabled`: the tenant's `oauth` feature is off", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    )
)]
pub async fn put_credential(
    State(gateway): State<Arc<Gateway>>,
    path: CredentialPath,
    Extension(request_id): Extension<RequestId>,
    JsonBody { value: body, .. }: JsonBody<PutCredential>,
) -> Result<Json<CredentialView>, ApiError> {
    let access_token = secret_field("accessToken", Some(body.access_token))?.unwrap_or_default();
    let expires_at = body
        .expires_at
        .as_deref()
        .map(|t| {
            DateTime::parse_from_rfc3339(t)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| ApiError::invalid(format!("`expiresAt` `{t}` is not an RFC 3339 time")))
        })
        .transpose()?;
    let scopes = body.scopes.unwrap_or_default();
    if scopes.iter().any(|s| s.is_empty() || s.len() > 256 || s.contains(char::is_whitespace)) {
        return Err(ApiError::invalid("`scopes` are non-empty strings without spaces"));
    }
    let credential = OAuthCredential {
        access_token,
        refresh_token: secret_field("refreshToken", body.refresh_token)?,
        expires_at,
        scopes,
        token_endpoint: token_endpoint(&gateway, body.token_endpoint)?,
        client_id: secret_field("clientId", body.client_id)?,
        client_secret: secret_field("clientSecret", body.client_secret)?,
        status: CredentialStatus::Active,
        last_refresh_at: None,
        refresh_generation: 0,
    };
    let started = gateway.clock.now();
    let credential = store_here(&gateway, &path.tenant, &path.integration, credential).await?;
    tracing::info!(tenant = %path.tenant, integration = %path.integration, "OAuth credential stored");
    let params = json!({
        "integration": path.integration,
        "scopes": credential.scopes,
        "expiresAt": rfc3339(credential.expires_at),
        "refreshable": credential.refreshable(),
    });
    gateway.audit_admin(&path.tenant, "admin.oauth.store", Some(params), request_id.as_str(), started).await;
    Ok(Json(CredentialView::of(path.integration, &credential, gateway.clock.now())))
}

#[utoipa::path(
    get, path = "/api/v1/admin/tenants/{id}/oauth", tag = "admin", operation_id = "listOAuthCredentials",
    params(("id" = String, Path, description = "Tenant id")),
    responses(
        (status = 200, description = "The tenant's credentials, without tokens", body = CredentialList),
        (status = 404, description = "`not_found`", body = ErrorBody),
    )
)]
pub async fn list_credentials(
    State(gateway): State<Arc<Gateway>>,
    TenantPath(id): TenantPath,
) -> Result<Json<CredentialList>, ApiError> {
    require_tenant(&gateway, &id).await?;
    let now = gateway.clock.now();
    let integrations = gateway
        .secrets
        .list(&id)
        .await?
        .into_iter()
        .map(|(integration, credential)| CredentialView::of(integration, &credential, now))
        .collect();
    Ok(Json(CredentialList { integrations }))
}

#[utoipa::path(
    delete, path = "/api/v1/admin/tenants/{id}/oauth/{integration}", tag = "admin", operation_id = "deleteOAuthCredential",
    params(
        ("id" = String, Path, description = "Tenant id"),
        ("integration" = String, Path, description = "Integration name", pattern = "^[a-z0-9][a-z0-9_-]{0,62}$"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "`not_found`: no such tenant or credential", body = ErrorBody),
    )
)]
pub async fn delete_credential(
    State(gateway): State<Arc<Gateway>>,
    path: CredentialPath,
    Extension(request_id): Extension<RequestId>,
) -> Result<StatusCode, ApiError> {
    let started = gateway.clock.now();
    let removed =
        gateway.router.delete_credential(&path.tenant, path.integration.clone()).await?.map_err(tenant_error)?;
    if !removed {
        return Err(ApiError::not_found(format!("no credential for integration `{}`", path.integration)));
    }
    tracing::info!(tenant = %path.tenant, integration = %path.integration, "OAuth credential deleted");
    let params = json!({"integration": path.integration});
    gateway.audit_admin(&path.tenant, "admin.oauth.delete", Some(params), request_id.as_str(), started).await;
    Ok(StatusCode::NO_CONTENT)
}
