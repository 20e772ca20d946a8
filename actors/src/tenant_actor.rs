//! `TenantActor`: the ractor shell around one tenant's [`TenantCore`].
//!
//! It turns messages into calls on the core and carries out what the core decides: persisting
//! a changed record before it takes effect, handing usage and window counts to the recorder,
//! and stopping itself when the tenant has been idle long enough (passivation). Its OAuth
//! credentials' refreshes are driven by [`TenantOAuth`].

use std::sync::Arc;

use chrono::{DateTime, Utc};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster_derive::RactorMessage;

use crate::admission::{Admission, AdmissionRequest, Denial, ServerLookup, TenantSnapshot};
use crate::api_key::KeyHash;
use crate::clock::Clock;
use crate::deployer::{Deployer, ServerName};
use crate::deployments::{Rejection, Report, RetryPolicy, ServerRecord, ServerRequest};
use crate::hand_off::TenantHandOff;
use crate::mcp_sessions::{SessionError, SessionLimits};
use crate::policy::Policy;
use crate::quotas::{Quota, QuotaExceeded};
use crate::recorder::Recorder;
use crate::reply::Answer;
use crate::secret_store::{OAuthCredential, SecretError, SecretStore};
use crate::server_tools::ServerTools;
use crate::store::{Store, StoreError, UsageDelta};
use crate::supervisor::SupervisorMsg;
use crate::tenant::TenantPatch;
use crate::tenant_call::AnswerBy;
use crate::tenant_core::{Feature, PatchError, Proposal, TenantCore};
use crate::tenant_mcp_sessions::{McpSessionAnswer, McpSessionCall, TenantMcpSessions};
use crate::tenant_oauth::{OAuthCounts, RefreshAnswer, TenantOAuth};
use crate::tenant_servers::TenantServers;
use crate::tick_due::{MAX_TICK_GAP, TickDue};
use crate::token_endpoint::TokenEndpoint;

/// What every tenant actor of a node shares.
pub struct TenantEnv {
    pub store: Arc<dyn Store>,
    pub recorder: Recorder,
    pub clock: Arc<dyn Clock>,
    pub policy: Arc<Policy>,
    /// An actor with no request for this long writes its state out and stops.
    pub passivate_after: chrono::Duration,
    pub secrets: Arc<dyn SecretStore>,
    pub tokens: Arc<dyn TokenEndpoint>,
    /// OAuth access tokens are refreshed this long before they expire.
    pub refresh_before: chrono::Duration,
    /// What the tenants' OAuth shells saved or lost on the way (for the metrics).
    pub oauth_counts: Arc<OAuthCounts>,
    /// Brings tenants' own MCP servers up and down.
    pub deployer: Arc<dyn Deployer>,
    /// How failed deployments of those servers are retried.
    pub deploy_retry: RetryPolicy,
    /// Discovers a deployed server's tools and offers them to its tenant.
    pub server_tools: Arc<dyn ServerTools>,
    /// Bounds of each tenant's sessions of the gateway's MCP endpoint.
    pub mcp_sessions: SessionLimits,
}

#[derive(Debug, Clone, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum TenantError {
    #[error(transparent)]
    Patch(#[from] PatchError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("the tenant's `{0}` feature is disabled")]
    FeatureDisabled(String),
    /// A fault-injection call reached a node that does not obey them.
    #[error("fault injection is off on the tenant's node")]
    FaultInjectionOff,
    /// A custom server request was refused (conflict, not found, deployer unavailable).
    #[error(transparent)]
    Server(Rejection),
    /// A custom server request with an invalid field (the message says which).
    #[error("{0}")]
    InvalidServer(String),
    #[error("quota {} exhausted", .0.quota.name())]
    Quota(QuotaExceeded),
    /// The deployer could not free what it holds for the tenant (e.g. its Kubernetes namespace).
    #[error("the deployer cannot remove the tenant's servers yet: {0}")]
    Deployer(String),
    #[error(transparent)]
    McpSession(SessionError),
}

#[derive(RactorMessage)]
pub enum TenantMsg {
    Admit(AdmissionRequest, AnswerBy, RpcReplyPort<Admission>),
    /// One unit of a quota for work decided after admission.
    Charge(Quota, RpcReplyPort<Result<(), QuotaExceeded>>),
    Snapshot(RpcReplyPort<TenantSnapshot>),
    Patch(TenantPatch, RpcReplyPort<Result<TenantSnapshot, TenantError>>),
    RotateKey(KeyHash, Option<chrono::Duration>, RpcReplyPort<Result<(), TenantError>>),
    /// Deletes the tenant's credentials and then the tenant, then stops the actor.
    Delete(RpcReplyPort<Result<(), TenantError>>),
    /// Stores an OAuth credential; answers with it as stored (status, generation).
    StoreCredential(String, OAuthCredential, RpcReplyPort<Result<OAuthCredential, TenantError>>),
    /// Another node stored this integration's credential; schedule its refresh.
    CredentialStored(String, RpcReplyPort<Result<(), TenantError>>),
    /// Deletes an OAuth credential; answers whether there was one.
    DeleteCredential(String, RpcReplyPort<Result<bool, TenantError>>),
    /// The provider's answer to a refresh.
    RefreshDone(RefreshAnswer),
    /// Periodic: write out usage and window counts; passivate when idle.
    Tick,
    /// Write out usage and window counts now, and answer once the store has them.
    WriteOut(RpcReplyPort<Result<(), TenantError>>),
    /// A new custom server; the flag says whether a shared integration has its name.
    CreateServer(ServerRequest, bool, RpcReplyPort<Result<ServerRecord, TenantError>>),
    DeleteServer(ServerName, RpcReplyPort<Result<ServerRecord, TenantError>>),
    ListServers(RpcReplyPort<Result<Vec<ServerRecord>, TenantError>>),
    GetServer(ServerName, RpcReplyPort<Option<ServerRecord>>),
    /// The deployer's answer for a server (from the tenant's deployer worker).
    DeploymentReported(ServerName, Report),
    /// A discovery's answer: how many tools the server has, or why it did not say.
    DiscoveryDone(ServerName, Result<u64, String>),
    /// Answer once no OAuth refresh of the tenant is out (before it is handed to another node).
    Settle(RpcReplyPort<()>),
    /// Write everything out and answer with the state the tenant's next owner continues from.
    HandOff(RpcReplyPort<TenantHandOff>),
    /// Fault injection: panics, so supervision and recovery can be tested end to end.
    Crash,
    /// Fault injection: the next admission is answered this much after it was counted.
    StallNextAdmission(std::time::Duration, RpcReplyPort<Result<(), TenantError>>),
    /// A question about the tenant's sessions of the gateway's MCP endpoint.
    McpSession(McpSessionCall, RpcReplyPort<Result<McpSessionAnswer, TenantError>>),
}

pub struct TenantActor;

pub struct TenantState {
    pub core: TenantCore,
    pub oauth: TenantOAuth,
    pub servers: TenantServers,
    pub mcp_sessions: TenantMcpSessions,
    pub env: Arc<TenantEnv>,
    /// When this actor next needs a [`TenantMsg::Tick`], for the supervisor's round.
    pub tick_due: Arc<TickDue>,
    /// Fault injection: how long the next admission waits between being counted and answered.
    pub stall_next_admission: Option<std::time::Duration>,
}

impl TenantState {
    /// The earliest time a tick could find work: usage to write out, an idle tenant to
    /// passivate, an OAuth refresh or retry, a server to start; at the latest [`MAX_TICK_GAP`].
    fn next_tick(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let core = self.core.next_tick(now, self.env.passivate_after);
        [self.oauth.next_deadline(), self.servers.next_deadline()]
            .into_iter()
            .flatten()
            .fold(core, DateTime::min)
            .min(now + MAX_TICK_GAP)
    }

    async fn write_out(&mut self) {
        let flush = self.core.flush();
        let tenant = self.core.record().id.clone();
        for (day, counters) in flush.usage {
            let delta = UsageDelta { tenant: tenant.clone(), day, counters };
            if self.env.recorder.usage(delta).await.is_err() {
                tracing::error!(%tenant, "recorder stopped; usage not recorded");
            }
        }
        if let Some(checkpoint) = flush.checkpoint
            && self.env.recorder.checkpoint(tenant.clone(), checkpoint).await.is_err()
        {
            tracing::error!(%tenant, "recorder stopped; rate windows not checkpointed");
        }
    }
}

impl Actor for TenantActor {
    type Msg = TenantMsg;
    type State = TenantState;
    type Arguments = TenantState;

    async fn pre_start(&self, _: ActorRef<TenantMsg>, state: TenantState) -> Result<TenantState, ActorProcessingErr> {
        Ok(state)
    }

    async fn post_start(&self, myself: ActorRef<TenantMsg>, state: &mut TenantState) -> Result<(), ActorProcessingErr> {
        let tenant = state.core.record().id.clone();
        Box::pin(state.oauth.restore(&state.env, &tenant, &myself)).await;
        Box::pin(state.servers.restore(&state.env, &tenant, &myself)).await;
        let now = state.env.clock.now();
        let count = state.servers.count();
        state.core.record_custom_servers(now, count);
        state.tick_due.set(state.next_tick(now));
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<TenantMsg>,
        message: TenantMsg,
        state: &mut TenantState,
    ) -> Result<(), ActorProcessingErr> {
        let now = state.env.clock.now();
        match message {
            TenantMsg::Admit(_, answer_by, reply) if answer_by.has_passed() => {
                let tenant = &state.core.record().id;
                tracing::debug!(%tenant, "an admission came after its asker stopped waiting; not counted");
                reply.answer(Admission { verdict: Err(Denial::Late), rate: None, server: None });
            }
            TenantMsg::Admit(request, _, reply) => {
                let server = request.server.as_ref().map(|name| match state.servers.get(name) {
                    Some(record) => ServerLookup::Found(Box::new(record)),
                    None => ServerLookup::NotFound,
                });
                let mut admission = state.core.admit(now, &request.for_server(server.as_ref()));
                admission.server = server.filter(|_| admission.verdict.is_ok());
                if let Some(stall) = state.stall_next_admission.take() {
                    Box::pin(tokio::time::sleep(stall)).await;
                }
                reply.answer(admission);
            }
            TenantMsg::Charge(quota, reply) => {
                reply.answer(state.core.charge(now, quota));
            }
            TenantMsg::Snapshot(reply) => {
                reply.answer(state.core.snapshot(now));
            }
            TenantMsg::GetServer(name, reply) => {
                reply.answer(state.servers.get(&name));
            }
            TenantMsg::Settle(reply) => state.oauth.when_settled(reply),
            TenantMsg::Crash => panic!("fault injection: tenant actor crash requested"),
            TenantMsg::StallNextAdmission(stall, reply) => {
                tracing::warn!(tenant = %state.core.record().id, ?stall, "fault injection: the next admission stalls");
                state.stall_next_admission = Some(stall);
                reply.answer(Ok(()));
            }
            // Boxed: the actor's task is as large as its largest pending future, and thousands
            // of idle actors would each carry the space of these rare, I/O-bound branches.
            other => Box::pin(handle_io(myself, other, state, now)).await,
        }
        state.tick_due.set(state.next_tick(now));
        Ok(())
    }

    async fn post_stop(&self, _: ActorRef<TenantMsg>, state: &mut TenantState) -> Result<(), ActorProcessingErr> {
        state.write_out().await;
        Ok(())
    }
}

/// The messages that wait on the store or the recorder.
async fn handle_io(
    myself: ActorRef<TenantMsg>,
    message: TenantMsg,
    state: &mut TenantState,
    now: chrono::DateTime<chrono::Utc>,
) {
    match message {
        TenantMsg::Patch(patch, reply) => {
            let result = match state.core.propose_patch(now, &patch) {
                Ok(record) => persist_and_install(state, record).await.map(|()| state.core.snapshot(now)),
                Err(error) => Err(error.into()),
            };
            reply.answer(result);
        }
        TenantMsg::RotateKey(key, grace, reply) => {
            let record = state.core.propose_rotation(now, key, grace);
            reply.answer(persist_and_install(state, record).await);
        }
        TenantMsg::Delete(reply) => {
            let tenant = state.core.record().id.clone();
            // Servers and credentials first: if that fails the tenant still exists and the
            // delete can be retried.
            let env = state.env.clone();
            let stopped = state.servers.delete_all(&env, &tenant).await;
            let result = match stopped {
                Err(error) => Err(error),
                Ok(()) => match state.env.secrets.delete_tenant(&tenant).await {
                    Ok(()) => state.env.store.delete_tenant(&tenant).await.map_err(TenantError::from),
                    Err(error) => Err(error.into()),
                },
            };
            let deleted = result.is_ok();
            reply.answer(result);
            if deleted {
                myself.stop(Some("deleted".into()));
            }
        }
        TenantMsg::StoreCredential(integration, credential, reply) => {
            if let Err(feature) = state.core.gate(Feature::OAuth) {
                reply.answer(Err(TenantError::FeatureDisabled(feature.into())));
                return;
            }
            let tenant = state.core.record().id.clone();
            let stored = state.oauth.store(&state.env, &tenant, &myself, integration, credential).await;
            reply.answer(stored.map_err(TenantError::from));
        }
        TenantMsg::CredentialStored(integration, reply) => {
            let tenant = state.core.record().id.clone();
            let scheduled = state.oauth.stored_elsewhere(&state.env, &tenant, &myself, integration).await;
            reply.answer(scheduled.map_err(TenantError::from));
        }
        TenantMsg::DeleteCredential(integration, reply) => {
            let tenant = state.core.record().id.clone();
            let removed = state.oauth.remove(&state.env, &tenant, integration).await;
            reply.answer(removed.map_err(TenantError::from));
        }
        TenantMsg::RefreshDone(answer) => {
            let tenant = state.core.record().id.clone();
            state.oauth.refreshed(&state.env, &tenant, &myself, answer).await;
        }
        TenantMsg::CreateServer(request, clashes, reply) => {
            if let Err(feature) = state.core.gate(Feature::CustomServers) {
                reply.answer(Err(TenantError::FeatureDisabled(feature.into())));
                return;
            }
            let tenant = state.core.record().id.clone();
            let env = state.env.clone();
            let created = state.servers.create(&env, &tenant, &myself, &state.core, request, clashes).await;
            let count = state.servers.count();
            state.core.record_custom_servers(now, count);
            reply.answer(created);
        }
        TenantMsg::DeleteServer(name, reply) => {
            let tenant = state.core.record().id.clone();
            let env = state.env.clone();
            reply.answer(state.servers.delete(&env, &tenant, &myself, name).await);
        }
        TenantMsg::ListServers(reply) => {
            reply.answer(Ok(state.servers.list()));
        }
        message @ (TenantMsg::DeploymentReported(..) | TenantMsg::DiscoveryDone(..)) => {
            let tenant = state.core.record().id.clone();
            let env = state.env.clone();
            state.servers.report(&env, &tenant, &myself, message).await;
            let count = state.servers.count();
            state.core.record_custom_servers(now, count);
        }
        TenantMsg::Tick => {
            state.write_out().await;
            let tenant = state.core.record().id.clone();
            state.oauth.tick(&state.env, &tenant, &myself).await;
            let env = state.env.clone();
            state.servers.tick(&env, &tenant, &myself).await;
            if state.core.is_idle(now, state.env.passivate_after)
                && !state.oauth.is_refreshing()
                && !state.servers.is_busy()
                && !state.servers.holds_deployments()
            {
                // A passivated tenant's refreshes must still happen on time: the supervisor
                // wakes it up for the next one.
                if let Some(at) = state.oauth.next_deadline() {
                    let left =
                        myself.try_get_supervisor().map(|s| s.send_message(SupervisorMsg::WakeAt(tenant.clone(), at)));
                    if !matches!(left, Some(Ok(()))) {
                        // The supervisor is stopping (and its actors with it): what wakes the
                        // tenant now is its next request or the next start's wake-ups.
                        tracing::warn!(%tenant, wake_at = %at, "no supervisor took the wake-up of a passivating tenant; its OAuth work waits for its next activation");
                    }
                }
                tracing::debug!(%tenant, "passivating idle tenant");
                myself.stop(Some("passivated".into()));
            }
        }
        TenantMsg::WriteOut(reply) => {
            state.write_out().await;
            let tenant = state.core.record().id.clone();
            reply.answer(state.env.recorder.flush_tenant(&tenant).await.map_err(TenantError::from));
        }
        TenantMsg::McpSession(call, reply) => {
            let tenant = state.core.record().id.clone();
            let env = state.env.clone();
            reply.answer(state.mcp_sessions.call(&env, &tenant, call).await);
        }
        TenantMsg::HandOff(reply) => {
            state.write_out().await;
            reply.answer(state.core.hand_off(now));
        }
        TenantMsg::Admit(..)
        | TenantMsg::Charge(..)
        | TenantMsg::Snapshot(_)
        | TenantMsg::GetServer(..)
        | TenantMsg::Settle(_)
        | TenantMsg::Crash
        | TenantMsg::StallNextAdmission(..) => {
            unreachable!("answered without I/O in `handle`")
        }
    }
}

/// A changed record takes effect only once the store has it: a failed write changes nothing.
async fn persist_and_install(state: &mut TenantState, proposal: Proposal) -> Result<(), TenantError> {
    state.env.store.update_tenant(&proposal.record).await?;
    state.core.install(proposal);
    Ok(())
}
