//! What the edge asks a tenant's actor, as data. The same calls serve a tenant owned by this
//! node (answered through the [`TenantDirectory`]) and one owned by another node (they cross the
//! cluster as JSON and are answered there the same way).

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::admission::{Admission, AdmissionRequest, TenantSnapshot};
use crate::api_key::KeyHash;
use crate::deployer::ServerName;
use crate::deployments::{ServerRecord, ServerRequest};
use crate::quotas::{Quota, QuotaExceeded};
use crate::secret_store::OAuthCredential;
use crate::supervisor::{DirectoryError, TenantDirectory};
use crate::tenant::{TenantId, TenantPatch};
use crate::tenant_actor::{TenantError, TenantMsg};
use crate::tenant_mcp_sessions::{McpSessionAnswer, McpSessionCall};

/// Variants are matched by name on the wire: add new ones, never rename or remove one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum TenantCall {
    Admit(AdmissionRequest),
    /// One unit of a quota for work decided after admission (a tool invocation).
    Charge(Quota),
    Snapshot,
    Patch(TenantPatch),
    RotateKey {
        key: KeyHash,
        grace_seconds: Option<i64>,
    },
    /// Deletes the tenant's credentials, then the tenant.
    Delete,
    /// Sent by nodes of earlier versions; see [`TenantCall::CredentialStored`].
    StoreCredential {
        integration: String,
        credential: OAuthCredential,
    },
    DeleteCredential {
        integration: String,
    },
    /// Writes the tenant's usage and window counts out to the recorder.
    WriteOut,
    /// Fault injection: the actor panics.
    Crash,
    /// Fault injection: the actor's next admission is counted at once but answered `millis`
    /// later, as by an owner paused between the two.
    StallNextAdmission {
        millis: u64,
    },
    /// A new custom server (the flag: a shared integration has its name).
    CreateServer {
        request: ServerRequest,
        clashes_with_integration: bool,
    },
    DeleteServer {
        name: ServerName,
    },
    ListServers,
    GetServer {
        name: ServerName,
    },
    /// The tenant was just created (by any node): the owner stops answering that it is absent.
    Created,
    /// The node that took an admin's credential stored it in the secret store itself; the owner
    /// reads it from there (the secret never crosses the link) and schedules its refresh.
    CredentialStored {
        integration: String,
    },
    /// A question about the tenant's sessions of the gateway's MCP endpoint.
    McpSession(McpSessionCall),
}

impl TenantCall {
    /// The call's name, for the metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            TenantCall::Admit(_) => "admit",
            TenantCall::Charge(_) => "charge",
            TenantCall::Snapshot => "snapshot",
            TenantCall::Patch(_) => "patch",
            TenantCall::RotateKey { .. } => "rotate_key",
            TenantCall::Delete => "delete",
            TenantCall::StoreCredential { .. } => "store_credential",
            TenantCall::DeleteCredential { .. } => "delete_credential",
            TenantCall::WriteOut => "write_out",
            TenantCall::Crash => "crash",
            TenantCall::StallNextAdmission { .. } => "stall_next_admission",
            TenantCall::CreateServer { .. } => "create_server",
            TenantCall::DeleteServer { .. } => "delete_server",
            TenantCall::ListServers => "list_servers",
            TenantCall::GetServer { .. } => "get_server",
            TenantCall::Created => "created",
            TenantCall::CredentialStored { .. } => "credential_stored",
            TenantCall::McpSession(_) => "mcp_session",
        }
    }
}

/// When the node that asked stops waiting for the answer. An admission reaching the actor after
/// it is refused uncounted ([`Denial::Late`](crate::admission::Denial::Late)): its asker has told
/// its client the request failed, and counting it would bill what nobody audits (the owner was
/// paused, say, with the call in its mailbox). Local calls have none: their asker waits.
#[derive(Debug, Clone, Copy, Default)]
pub struct AnswerBy(pub Option<Instant>);

impl AnswerBy {
    pub fn has_passed(self) -> bool {
        self.0.is_some_and(|by| Instant::now() > by)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum TenantReply {
    Admission(Admission),
    Charged(Result<(), QuotaExceeded>),
    Snapshot(TenantSnapshot),
    Patched(Result<TenantSnapshot, TenantError>),
    Done(Result<(), TenantError>),
    Credential(Result<OAuthCredential, TenantError>),
    CredentialDeleted(Result<bool, TenantError>),
    Server(Result<ServerRecord, TenantError>),
    Servers(Result<Vec<ServerRecord>, TenantError>),
    MaybeServer(Option<ServerRecord>),
    McpSession(Result<McpSessionAnswer, TenantError>),
}

impl TenantDirectory {
    /// Answers `call` with tenant `id`'s actor on this node, activating it when needed.
    pub async fn ask(
        &self,
        id: &TenantId,
        call: TenantCall,
        answer_by: AnswerBy,
    ) -> Result<TenantReply, DirectoryError> {
        Ok(match call {
            TenantCall::Admit(request) => TenantReply::Admission(
                self.call(id, |reply| TenantMsg::Admit(request.clone(), answer_by, reply)).await?,
            ),
            TenantCall::Charge(quota) => {
                TenantReply::Charged(self.call(id, |reply| TenantMsg::Charge(quota, reply)).await?)
            }
            TenantCall::Snapshot => TenantReply::Snapshot(self.call(id, TenantMsg::Snapshot).await?),
            TenantCall::Patch(patch) => {
                TenantReply::Patched(self.call(id, |reply| TenantMsg::Patch(patch.clone(), reply)).await?)
            }
            TenantCall::RotateKey { key, grace_seconds } => {
                let grace = grace_seconds.map(chrono::Duration::seconds);
                TenantReply::Done(self.call(id, |reply| TenantMsg::RotateKey(key, grace, reply)).await?)
            }
            TenantCall::Delete => TenantReply::Done(self.call(id, TenantMsg::Delete).await?),
            TenantCall::StoreCredential { integration, credential } => TenantReply::Credential(
                self.call(id, |reply| TenantMsg::StoreCredential(integration.clone(), credential.clone(), reply))
                    .await?,
            ),
            TenantCall::DeleteCredential { integration } => TenantReply::CredentialDeleted(
                self.call(id, |reply| TenantMsg::DeleteCredential(integration.clone(), reply)).await?,
            ),
            TenantCall::WriteOut => TenantReply::Done(self.call(id, TenantMsg::WriteOut).await?),
            TenantCall::CreateServer { request, clashes_with_integration } => TenantReply::Server(
                self.call(id, |reply| TenantMsg::CreateServer(request.clone(), clashes_with_integration, reply))
                    .await?,
            ),
            TenantCall::DeleteServer { name } => {
                TenantReply::Server(self.call(id, |reply| TenantMsg::DeleteServer(name.clone(), reply)).await?)
            }
            TenantCall::ListServers => TenantReply::Servers(self.call(id, TenantMsg::ListServers).await?),
            TenantCall::GetServer { name } => {
                TenantReply::MaybeServer(self.call(id, |reply| TenantMsg::GetServer(name.clone(), reply)).await?)
            }
            TenantCall::CredentialStored { integration } => {
                TenantReply::Done(self.call(id, |reply| TenantMsg::CredentialStored(integration.clone(), reply)).await?)
            }
            TenantCall::McpSession(call) => {
                TenantReply::McpSession(self.call(id, |reply| TenantMsg::McpSession(call.clone(), reply)).await?)
            }
            TenantCall::Created => {
                self.created(id);
                TenantReply::Done(Ok(()))
            }
            // Checked where the call is obeyed: a peer with fault injection on must not crash the
            // tenants of a node that has it off.
            TenantCall::Crash | TenantCall::StallNextAdmission { .. } if !self.fault_injection => {
                TenantReply::Done(Err(TenantError::FaultInjectionOff))
            }
            TenantCall::Crash => {
                // Activate first, so that there is an actor to crash.
                self.call(id, TenantMsg::Snapshot).await?;
                self.cast_if_active(id, TenantMsg::Crash);
                TenantReply::Done(Ok(()))
            }
            TenantCall::StallNextAdmission { millis } => {
                let stall = std::time::Duration::from_millis(millis);
                TenantReply::Done(self.call(id, |reply| TenantMsg::StallNextAdmission(stall, reply)).await?)
            }
        })
    }
}
