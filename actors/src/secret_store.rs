//! The `SecretStore` port: where tenants' OAuth credentials are kept, encrypted, one per
//! tenant and integration. Adapters (the embedded encrypted file, Vault) live in the
//! `connectors` crate and must all pass its one contract suite.
//!
//! Credentials never leave through `Debug` or `Display`: tokens and client secrets print as
//! `[REDACTED]`, so a stray `tracing::debug!(?credential)` leaks nothing.

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::tenant::TenantId;

/// Where a credential stands.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialStatus {
    Active,
    Refreshing,
    NeedsReauth,
    Expired,
}

impl CredentialStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Refreshing => "refreshing",
            Self::NeedsReauth => "needs_reauth",
            Self::Expired => "expired",
        }
    }
}

/// One tenant's OAuth credential for one integration.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OAuthCredential {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub scopes: Vec<String>,
    pub token_endpoint: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub status: CredentialStatus,
    pub last_refresh_at: Option<DateTime<Utc>>,
    /// Changes whenever the refresh token does, so an answer for an older token is recognised as
    /// stale and a token is never sent twice (see `refresh_schedule`).
    #[serde(default)]
    pub refresh_generation: u64,
}

impl OAuthCredential {
    /// It can be refreshed: it has a refresh token and a token endpoint to send it to.
    pub fn refreshable(&self) -> bool {
        self.refresh_token.is_some() && self.token_endpoint.is_some()
    }

    /// The status as of `now`: an active credential whose access token has expired is expired.
    pub fn status_at(&self, now: DateTime<Utc>) -> CredentialStatus {
        match (self.status, self.expires_at) {
            (CredentialStatus::Active, Some(end)) if end <= now => CredentialStatus::Expired,
            (status, _) => status,
        }
    }
}

impl fmt::Debug for OAuthCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |present: bool| if present { "[REDACTED]" } else { "None" };
        f.debug_struct("OAuthCredential")
            .field("access_token", &"[REDACTED]")
            .field("refresh_token", &redacted(self.refresh_token.is_some()))
            .field("expires_at", &self.expires_at)
            .field("scopes", &self.scopes)
            .field("token_endpoint", &self.token_endpoint)
            .field("client_id", &self.client_id)
            .field("client_secret", &redacted(self.client_secret.is_some()))
            .field("status", &self.status)
            .field("last_refresh_at", &self.last_refresh_at)
            .field("refresh_generation", &self.refresh_generation)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum SecretError {
    /// The backend cannot be reached or refused the operation.
    #[error("secret store failed: {0}")]
    Backend(String),
    /// A stored value failed authentication: it was altered or belongs elsewhere.
    #[error("a stored secret failed its integrity check: {0}")]
    Tampered(String),
    /// The configured master key is not the one the secrets were sealed with.
    #[error("the master key does not open this secret store: {0}")]
    WrongMasterKey(String),
}

#[async_trait]
pub trait SecretStore: Send + Sync + 'static {
    /// Stores (or replaces) the credential of `tenant` for `integration`, atomically.
    async fn put(&self, tenant: &TenantId, integration: &str, credential: &OAuthCredential) -> Result<(), SecretError>;

    /// Replaces the credential of `tenant` for `integration` only if the stored one is still
    /// `expected` (compare-and-set); answers whether it did. Every read-modify-write of a
    /// credential goes through it, so a node that lost the tenant (paused past its lease) cannot
    /// write over what the next owner wrote meanwhile, nor start a refresh the next owner already
    /// sent. Atomic in every adapter but Vault's KV version 1, which has no check-and-set.
    async fn replace(
        &self,
        tenant: &TenantId,
        integration: &str,
        expected: &OAuthCredential,
        credential: &OAuthCredential,
    ) -> Result<bool, SecretError>;

    async fn get(&self, tenant: &TenantId, integration: &str) -> Result<Option<OAuthCredential>, SecretError>;

    /// Every credential of `tenant`, by integration name in ascending order.
    async fn list(&self, tenant: &TenantId) -> Result<Vec<(String, OAuthCredential)>, SecretError>;

    /// Removes one credential; `false` if there was none.
    async fn delete(&self, tenant: &TenantId, integration: &str) -> Result<bool, SecretError>;

    /// Whether the backend answers now (for readiness probes); cheap.
    async fn check(&self) -> Result<(), SecretError>;

    /// Tenants that hold at least one credential, in id order (to schedule their refreshes at
    /// start-up).
    async fn tenants(&self) -> Result<Vec<TenantId>, SecretError>;

    /// Removes every credential of `tenant` and destroys whatever key protected them, so copies
    /// of old ciphertext (backups) stay unreadable.
    async fn delete_tenant(&self, tenant: &TenantId) -> Result<(), SecretError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secrets() {
        let credential = OAuthCredential {
            access_token: "at-secret".into(),
            refresh_token: Some("rt-secret".into()),
            expires_at: None,
            scopes: vec!["repo".into()],
            token_endpoint: Some("https://idp.example/token".into()),
            client_id: Some("client".into()),
            client_secret: Some("cs-secret".into()),
            status: CredentialStatus::Active,
            last_refresh_at: None,
            refresh_generation: 0,
        };
        let text = format!("{credential:?}");
        assert!(!text.contains("at-secret") && !text.contains("rt-secret") && !text.contains("cs-secret"));
        assert!(text.contains("repo"));
    }

    #[test]
    fn an_active_credential_past_its_expiry_reads_as_expired() {
        let now = Utc::now();
        let mut credential = OAuthCredential {
            access_token: "a".into(),
            refresh_token: None,
            expires_at: Some(now),
            scopes: vec![],
            token_endpoint: None,
            client_id: None,
            client_secret: None,
            status: CredentialStatus::Active,
            last_refresh_at: None,
            refresh_generation: 0,
        };
        assert_eq!(credential.status_at(now), CredentialStatus::Expired);
        credential.status = CredentialStatus::NeedsReauth;
        assert_eq!(credential.status_at(now), CredentialStatus::NeedsReauth);
    }
}
