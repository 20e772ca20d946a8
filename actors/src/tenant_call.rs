//! What the edge asks a tenant's actor, as data: the one vocabulary of calls to a tenant. A
//! [`TenantCall`] goes as it is from the edge to the actor (`TenantMsg::Call`), through the
//! [`TenantDirectory`] when this node owns the tenant, and across the cluster first when another
//! node does; the actor answers with a [`TenantReply`].

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
        call: &TenantCall,
        answer_by: AnswerBy,
    ) -> Result<TenantReply, DirectoryError> {
        match call {
            TenantCall::Created => {
                self.created(id);
                Ok(TenantReply::Done(Ok(())))
            }
            // Checked where the call is obeyed: a peer with fault injection on must not crash the
            // tenants of a node that has it off.
            TenantCall::Crash | TenantCall::StallNextAdmission { .. } if !self.fault_injection => {
                Ok(TenantReply::Done(Err(TenantError::FaultInjectionOff)))
            }
            call => self.call(id, |reply| TenantMsg::Call(call.clone(), answer_by, reply)).await,
        }
    }
}
