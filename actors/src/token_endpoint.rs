//! The `TokenEndpoint` port: how a tenant actor exchanges a refresh token for new tokens
//! (the OAuth 2.0 refresh-token grant). The HTTP adapter lives in the `connectors` crate.

use async_trait::async_trait;
use chrono::Duration;

use crate::refresh_schedule::FailureKind;
use crate::secret_store::OAuthCredential;

/// New tokens from the provider.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshedTokens {
    pub access_token: String,
    /// Lifetime of the new access token; `None` when the provider does not say.
    pub expires_in: Option<Duration>,
    /// The rotated refresh token; `None` keeps the old one.
    pub refresh_token: Option<String>,
    pub scopes: Vec<String>,
}

impl std::fmt::Debug for RefreshedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshedTokens")
            .field("access_token", &"[REDACTED]")
            .field("expires_in", &self.expires_in)
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "[REDACTED]"))
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// Why a refresh failed: how the schedule should take it, and a reason safe to log and audit
/// (never a token or a secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshFailure {
    pub kind: FailureKind,
    pub reason: String,
}

#[async_trait]
pub trait TokenEndpoint: Send + Sync + 'static {
    /// Sends `credential`'s refresh token to its token endpoint.
    async fn refresh(&self, credential: &OAuthCredential) -> Result<RefreshedTokens, RefreshFailure>;
}
