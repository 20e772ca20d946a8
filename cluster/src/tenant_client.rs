//! Typed calls to a tenant's owner, wherever it lives: what the HTTP edge uses.

use connectors_actors::admission::{Admission, AdmissionRequest, TenantSnapshot};
use connectors_actors::api_key::KeyHash;
use connectors_actors::deployer::ServerName;
use connectors_actors::deployments::{ServerRecord, ServerRequest};
use connectors_actors::quotas::{Quota, QuotaExceeded};
use connectors_actors::tenant::{TenantId, TenantPatch};
use connectors_actors::tenant_actor::TenantError;
use connectors_actors::tenant_call::{TenantCall, TenantReply};
use connectors_actors::tenant_mcp_sessions::{McpSessionAnswer, McpSessionCall};

use crate::router::{RouteError, ShardRouter};

impl ShardRouter {
    pub async fn admit(&self, tenant: &TenantId, request: AdmissionRequest) -> Result<Admission, RouteError> {
        match self.ask(tenant, TenantCall::Admit(request)).await? {
            TenantReply::Admission(admission) => Ok(admission),
            other => Err(unexpected(other)),
        }
    }

    pub async fn charge(&self, tenant: &TenantId, quota: Quota) -> Result<Result<(), QuotaExceeded>, RouteError> {
        match self.ask(tenant, TenantCall::Charge(quota)).await? {
            TenantReply::Charged(result) => Ok(result),
            other => Err(unexpected(other)),
        }
    }

    pub async fn snapshot(&self, tenant: &TenantId) -> Result<TenantSnapshot, RouteError> {
        match self.ask(tenant, TenantCall::Snapshot).await? {
            TenantReply::Snapshot(snapshot) => Ok(snapshot),
            other => Err(unexpected(other)),
        }
    }

    pub async fn patch(
        &self,
        tenant: &TenantId,
        patch: TenantPatch,
    ) -> Result<Result<TenantSnapshot, TenantError>, RouteError> {
        match self.ask(tenant, TenantCall::Patch(patch)).await? {
            TenantReply::Patched(result) => Ok(result),
            other => Err(unexpected(other)),
        }
    }

    pub async fn rotate_key(
        &self,
        tenant: &TenantId,
        key: KeyHash,
        grace_seconds: Option<i64>,
    ) -> Result<Result<(), TenantError>, RouteError> {
        self.done(tenant, TenantCall::RotateKey { key, grace_seconds }).await
    }

    pub async fn delete(&self, tenant: &TenantId) -> Result<Result<(), TenantError>, RouteError> {
        self.done(tenant, TenantCall::Delete).await
    }

    pub async fn write_out(&self, tenant: &TenantId) -> Result<(), RouteError> {
        self.done(tenant, TenantCall::WriteOut).await?.map_err(|error| RouteError::Unavailable {
            reason: error.to_string(),
            retry_after: crate::router::MOVING_RETRY_AFTER_SECS,
        })
    }

    /// Tells the tenant's owner that it was just created (see `TenantCall::Created`).
    pub async fn created(&self, tenant: &TenantId) -> Result<(), RouteError> {
        self.done(tenant, TenantCall::Created).await?.map_err(|error| RouteError::Unavailable {
            reason: error.to_string(),
            retry_after: crate::router::MOVING_RETRY_AFTER_SECS,
        })
    }

    pub async fn crash(&self, tenant: &TenantId) -> Result<Result<(), TenantError>, RouteError> {
        self.done(tenant, TenantCall::Crash).await
    }

    pub async fn stall_next_admission(
        &self,
        tenant: &TenantId,
        millis: u64,
    ) -> Result<Result<(), TenantError>, RouteError> {
        self.done(tenant, TenantCall::StallNextAdmission { millis }).await
    }

    /// Tells the tenant's owner that its credential for `integration` was stored (it reads it
    /// from the secret store).
    pub async fn credential_stored(
        &self,
        tenant: &TenantId,
        integration: String,
    ) -> Result<Result<(), TenantError>, RouteError> {
        self.done(tenant, TenantCall::CredentialStored { integration }).await
    }

    pub async fn delete_credential(
        &self,
        tenant: &TenantId,
        integration: String,
    ) -> Result<Result<bool, TenantError>, RouteError> {
        match self.ask(tenant, TenantCall::DeleteCredential { integration }).await? {
            TenantReply::CredentialDeleted(result) => Ok(result),
            other => Err(unexpected(other)),
        }
    }

    /// A new custom server of the tenant (`clashes_with_integration`: a shared integration has its name).
    pub async fn create_server(
        &self,
        tenant: &TenantId,
        request: ServerRequest,
        clashes_with_integration: bool,
    ) -> Result<Result<ServerRecord, TenantError>, RouteError> {
        match self.ask(tenant, TenantCall::CreateServer { request, clashes_with_integration }).await? {
            TenantReply::Server(result) => Ok(result),
            other => Err(unexpected(other)),
        }
    }

    pub async fn delete_server(
        &self,
        tenant: &TenantId,
        name: ServerName,
    ) -> Result<Result<ServerRecord, TenantError>, RouteError> {
        match self.ask(tenant, TenantCall::DeleteServer { name }).await? {
            TenantReply::Server(result) => Ok(result),
            other => Err(unexpected(other)),
        }
    }

    pub async fn list_servers(&self, tenant: &TenantId) -> Result<Result<Vec<ServerRecord>, TenantError>, RouteError> {
        match self.ask(tenant, TenantCall::ListServers).await? {
            TenantReply::Servers(result) => Ok(result),
            other => Err(unexpected(other)),
        }
    }

    pub async fn get_server(&self, tenant: &TenantId, name: ServerName) -> Result<Option<ServerRecord>, RouteError> {
        match self.ask(tenant, TenantCall::GetServer { name }).await? {
            TenantReply::MaybeServer(server) => Ok(server),
            other => Err(unexpected(other)),
        }
    }

    /// A question about the tenant's MCP sessions, answered by its owner.
    pub async fn mcp_session(
        &self,
        tenant: &TenantId,
        call: McpSessionCall,
    ) -> Result<Result<McpSessionAnswer, TenantError>, RouteError> {
        match self.ask(tenant, TenantCall::McpSession(call)).await? {
            TenantReply::McpSession(result) => Ok(result),
            other => Err(unexpected(other)),
        }
    }

    async fn done(&self, tenant: &TenantId, call: TenantCall) -> Result<Result<(), TenantError>, RouteError> {
        match self.ask(tenant, call).await? {
            TenantReply::Done(result) => Ok(result),
            other => Err(unexpected(other)),
        }
    }
}

/// A reply of the wrong kind: a peer running an incompatible build.
fn unexpected(reply: TenantReply) -> RouteError {
    let kind = format!("{reply:?}");
    let kind = kind.split('(').next().unwrap_or("?");
    tracing::error!(reply = kind, "a tenant's owner answered with an unexpected kind of reply");
    RouteError::Unavailable { reason: format!("unexpected reply `{kind}`"), retry_after: 1 }
}
