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

use crate::admission::{Admission, Denial, ServerLookup};
use crate::clock::Clock;
use crate::deployer::{Deployer, ServerName};
use crate::deployments::{Rejection, Report, RetryPolicy};
use crate::hand_off::TenantHandOff;
use crate::mcp_sessions::{SessionError, SessionLimits};
use crate::policy::Policy;
use crate::quotas::QuotaExceeded;
use crate::recorder::Recorder;
use crate::reply::Answer;
use crate::secret_store::{SecretError, SecretStore};
use crate::server_tools::ServerTools;
use crate::store::{Store, StoreError, UsageDelta};
use crate::supervisor::SupervisorMsg;
use crate::tenant_call::{AnswerBy, TenantCall, TenantReply};
use crate::tenant_core::{Feature, PatchError, Proposal, TenantCore};
use crate::tenant_mcp_sessions::TenantMcpSessions;
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

/// What a tenant's actor is sent: the edge's calls (from this node or a peer, the same
/// [`TenantCall`] that crosses the cluster), and the actor's own work.
#[derive(RactorMessage)]
pub enum TenantMsg {
    /// A call of the edge, answered with its [`TenantReply`].
    Call(TenantCall, AnswerBy, RpcReplyPort<TenantReply>),
    /// The provider's answer to a refresh.
    RefreshDone(RefreshAnswer),
    /// Periodic: write out usage and window counts; passivate when idle.
    Tick,
    /// The deployer's answer for a server (from the tenant's deployer worker).
    DeploymentReported(ServerName, Report),
    /// A discovery's answer: how many tools the server has, or why it did not say.
    DiscoveryDone(ServerName, Result<u64, String>),
    /// Answer once no OAuth refresh of the tenant is out (before it is handed to another node).
    Settle(RpcReplyPort<()>),
    /// Write everything out and answer with the state the tenant's next owner continues from.
    HandOff(RpcReplyPort<TenantHandOff>),
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
            TenantMsg::Call(TenantCall::Admit(_), answer_by, reply) if answer_by.has_passed() => {
                let tenant = &state.core.record().id;
                tracing::debug!(%tenant, "an admission came after its asker stopped waiting; not counted");
                reply.answer(TenantReply::Admission(Admission {
                    verdict: Err(Denial::Late),
                    rate: None,
                    server: None,
                }));
            }
            TenantMsg::Call(TenantCall::Admit(request), _, reply) => {
                let server = request.server.as_ref().map(|name| match state.servers.get(name) {
                    Some(record) => ServerLookup::Found(Box::new(record)),
                    None => ServerLookup::NotFound,
                });
                let mut admission = state.core.admit(now, &request.for_server(server.as_ref()));
                admission.server = server.filter(|_| admission.verdict.is_ok());
                if let Some(stall) = state.stall_next_admission.take() {
                    Box::pin(tokio::time::sleep(stall)).await;
                }
                reply.answer(TenantReply::Admission(admission));
            }
            TenantMsg::Call(TenantCall::Charge(quota), _, reply) => {
                reply.answer(TenantReply::Charged(state.core.charge(now, quota)));
            }
            TenantMsg::Call(TenantCall::Snapshot, _, reply) => {
                reply.answer(TenantReply::Snapshot(state.core.snapshot(now)));
            }
            TenantMsg::Call(TenantCall::GetServer { name }, _, reply) => {
                reply.answer(TenantReply::MaybeServer(state.servers.get(&name)));
            }
            TenantMsg::Call(TenantCall::ListServers, _, reply) => {
                reply.answer(TenantReply::Servers(Ok(state.servers.list())));
            }
            // Answered by the directory without the actor; acknowledged should one reach it.
            TenantMsg::Call(TenantCall::Created, _, reply) => reply.answer(TenantReply::Done(Ok(()))),
            TenantMsg::Call(TenantCall::Crash, _, reply) => {
                // Answered first: the asker learns that the crash it asked for happens.
                reply.answer(TenantReply::Done(Ok(())));
                panic!("fault injection: tenant actor crash requested");
            }
            TenantMsg::Call(TenantCall::StallNextAdmission { millis }, _, reply) => {
                let stall = std::time::Duration::from_millis(millis);
                tracing::warn!(tenant = %state.core.record().id, ?stall, "fault injection: the next admission stalls");
                state.stall_next_admission = Some(stall);
                reply.answer(TenantReply::Done(Ok(())));
            }
            TenantMsg::Settle(reply) => state.oauth.when_settled(reply),
            // Boxed: the actor's task is as large as its largest pending future, and thousands
            // of idle actors would each carry the space of these rare, I/O-bound branches.
            TenantMsg::Call(call, _, reply) => Box::pin(answer_io(myself, call, reply, state, now)).await,
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

/// The calls that wait on the store, the secret store, the deployer or the recorder.
async fn answer_io(
    myself: ActorRef<TenantMsg>,
    call: TenantCall,
    reply: RpcReplyPort<TenantReply>,
    state: &mut TenantState,
    now: chrono::DateTime<chrono::Utc>,
) {
    let tenant = state.core.record().id.clone();
    let env = state.env.clone();
    let answer = match call {
        TenantCall::Patch(patch) => TenantReply::Patched(match state.core.propose_patch(now, &patch) {
            Ok(record) => persist_and_install(state, record).await.map(|()| state.core.snapshot(now)),
            Err(error) => Err(error.into()),
        }),
        TenantCall::RotateKey { key, grace_seconds } => {
            let record = state.core.propose_rotation(now, key, grace_seconds.map(chrono::Duration::seconds));
            TenantReply::Done(persist_and_install(state, record).await)
        }
        TenantCall::Delete => {
            // Servers and credentials first: if that fails the tenant still exists and the
            // delete can be retried.
            let result = match state.servers.delete_all(&env, &tenant).await {
                Err(error) => Err(error),
                Ok(()) => match env.secrets.delete_tenant(&tenant).await {
                    Ok(()) => env.store.delete_tenant(&tenant).await.map_err(TenantError::from),
                    Err(error) => Err(error.into()),
                },
            };
            if result.is_ok() {
                // Stops once this message is handled: the answer below still goes out.
                myself.stop(Some("deleted".into()));
            }
            TenantReply::Done(result)
        }
        TenantCall::StoreCredential { integration, credential } => {
            TenantReply::Credential(match state.core.gate(Feature::OAuth) {
                Err(feature) => Err(TenantError::FeatureDisabled(feature.into())),
                Ok(()) => {
                    state.oauth.store(&env, &tenant, &myself, integration, credential).await.map_err(TenantError::from)
                }
            })
        }
        TenantCall::CredentialStored { integration } => TenantReply::Done(
            state.oauth.stored_elsewhere(&env, &tenant, &myself, integration).await.map_err(TenantError::from),
        ),
        TenantCall::DeleteCredential { integration } => TenantReply::CredentialDeleted(
            state.oauth.remove(&env, &tenant, integration).await.map_err(TenantError::from),
        ),
        TenantCall::CreateServer { request, clashes_with_integration } => {
            TenantReply::Server(match state.core.gate(Feature::CustomServers) {
                Err(feature) => Err(TenantError::FeatureDisabled(feature.into())),
                Ok(()) => {
                    let created = state
                        .servers
                        .create(&env, &tenant, &myself, &state.core, request, clashes_with_integration)
                        .await;
                    let count = state.servers.count();
                    state.core.record_custom_servers(now, count);
                    created
                }
            })
        }
        TenantCall::DeleteServer { name } => {
            TenantReply::Server(state.servers.delete(&env, &tenant, &myself, name).await)
        }
        TenantCall::WriteOut => {
            state.write_out().await;
            TenantReply::Done(env.recorder.flush_tenant(&tenant).await.map_err(TenantError::from))
        }
        TenantCall::McpSession(call) => TenantReply::McpSession(state.mcp_sessions.call(&env, &tenant, call).await),
        TenantCall::Admit(_)
        | TenantCall::Charge(_)
        | TenantCall::Snapshot
        | TenantCall::GetServer { .. }
        | TenantCall::ListServers
        | TenantCall::Created
        | TenantCall::Crash
        | TenantCall::StallNextAdmission { .. } => unreachable!("answered without I/O in `handle`"),
    };
    reply.answer(answer);
}

/// The actor's own work: timers, and answers from the workers it started.
async fn handle_io(
    myself: ActorRef<TenantMsg>,
    message: TenantMsg,
    state: &mut TenantState,
    now: chrono::DateTime<chrono::Utc>,
) {
    match message {
        TenantMsg::RefreshDone(answer) => {
            let tenant = state.core.record().id.clone();
            state.oauth.refreshed(&state.env, &tenant, &myself, answer).await;
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
        TenantMsg::HandOff(reply) => {
            state.write_out().await;
            reply.answer(state.core.hand_off(now));
        }
        TenantMsg::Call(..) | TenantMsg::Settle(_) => unreachable!("answered in `handle`"),
    }
}

/// A changed record takes effect only once the store has it: a failed write changes nothing.
async fn persist_and_install(state: &mut TenantState, proposal: Proposal) -> Result<(), TenantError> {
    state.env.store.update_tenant(&proposal.record).await?;
    state.core.install(proposal);
    Ok(())
}
