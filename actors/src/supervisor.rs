//! The tenant supervisor and the directory of active tenant actors.
//!
//! Tenants are activated on demand: the first request for a tenant asks the supervisor, which
//! loads the tenant from the store and spawns its actor linked to itself. A tenant actor that
//! crashes is restarted at once with its state reloaded from the store (its last checkpoint and
//! recorded usage); one that passivates is simply forgotten until its next request. So memory
//! follows the active tenants, not the registered ones.
//!
//! The edge reaches actors through [`TenantDirectory::call`], which looks the actor up without
//! going through the supervisor and retries once the actor it found has just stopped.
//!
//! A tenant whose actor keeps crashing (or failing to start) is restarted with back-off and,
//! after repeated crashes, refused as *degraded* for a while ([`CrashBackoff`]), so that one
//! tenant's poison state cannot spin a core.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use ractor::rpc::CallResult;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, ActorStatus, RpcReplyPort, SupervisionEvent};
use ractor_cluster_derive::RactorMessage;

use crate::absent_tenants::AbsentTenants;
use crate::crash_backoff::{AfterCrash, CrashBackoff, CrashPolicy};
use crate::hand_off::TenantHandOff;
use crate::reply::Answer;
use crate::store::StoreError;
use crate::tenant::TenantId;
use crate::tenant_actor::{TenantActor, TenantEnv, TenantMsg, TenantState};
use crate::tenant_core::TenantCore;
use crate::tenant_oauth::TenantOAuth;
use crate::tick_due::TickDue;
use crate::usage::Month;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    #[error("tenant `{0}` not found")]
    NotFound(TenantId),
    #[error("tenant `{tenant}` is unavailable: {reason}")]
    Unavailable { tenant: TenantId, reason: String },
    /// The tenant belongs to a shard this node does not own (now): it must not be activated here.
    #[error("tenant `{0}` is not owned by this node")]
    NotOwner(TenantId),
    /// The tenant's actor crashed and waits before it starts again; `degraded` after repeated
    /// crashes.
    #[error("{}", restarting_reason(.tenant, *.crashes, *.degraded, .until))]
    Restarting { tenant: TenantId, crashes: usize, degraded: bool, until: DateTime<Utc> },
}

fn restarting_reason(tenant: &TenantId, crashes: usize, degraded: bool, until: &DateTime<Utc>) -> String {
    let at = until.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    if degraded {
        format!(
            "tenant `{tenant}` is degraded: its actor crashed {crashes} times within a minute; it is tried again at {at}"
        )
    } else {
        format!("tenant `{tenant}` is restarting after {crashes} crashes; it starts again at {at}")
    }
}

impl DirectoryError {
    /// Seconds until the tenant may be asked again, for a refusal that says so.
    pub fn retry_after_secs(&self, now: DateTime<Utc>) -> Option<u64> {
        match self {
            DirectoryError::Restarting { until, .. } => {
                let millis = u64::try_from((*until - now).num_milliseconds()).unwrap_or(0);
                Some(millis.div_ceil(1_000).max(1))
            }
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot release tenants: {0}")]
pub struct ReleaseError(pub String);

/// Which tenants this node may activate: those of the shards it owns in its current view.
/// A single node owns every tenant; in a cluster, the shard router decides.
pub trait OwnershipGate: Send + Sync + 'static {
    fn owns(&self, tenant: &TenantId) -> bool;
}

/// Active tenant actors of this node, readable by every request without a message hop.
pub struct TenantDirectory {
    actors: DashMap<TenantId, ActorRef<TenantMsg>>,
    /// The running supervisor; replaced when one dies (see [`keep_supervisor`]).
    supervisor: std::sync::RwLock<ActorRef<SupervisorMsg>>,
    /// Set when the node stops the supervisor on purpose, so it is not started again.
    stopping: std::sync::atomic::AtomicBool,
    supervisor_restarts: AtomicU64,
    /// Ids recently found not to exist, answered without asking the supervisor.
    absent: AbsentTenants,
    /// Store reads that found no tenant (each one a trip through the supervisor).
    absent_lookups: AtomicU64,
    call_timeout: Duration,
    restarts: AtomicU64,
    degraded: AtomicU64,
    /// Ticks the supervisor's rounds sent to tenant actors (only to those due).
    ticks: AtomicU64,
    /// Whether this node obeys fault-injection calls (`TenantCall::Crash`), whoever sends them.
    pub(crate) fault_injection: bool,
}

impl TenantDirectory {
    fn supervisor(&self) -> ActorRef<SupervisorMsg> {
        self.supervisor.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Sends the supervisor `message`; when it is not running (it died and is being started
    /// again, or the node stops) the message is lost, and the log says which. Answers whether it
    /// was sent.
    fn tell(&self, message: SupervisorMsg, what: &'static str) -> bool {
        let sent = self.supervisor().cast(message);
        if let Err(error) = &sent {
            tracing::warn!(%error, what, "the tenant supervisor is not running; message dropped");
        }
        sent.is_ok()
    }

    /// Tenant `id` was just created: it is no longer absent.
    pub fn created(&self, id: &TenantId) {
        self.absent.forget(id);
    }

    /// Lookups of tenants that turned out not to exist, since start.
    pub fn absent_lookups(&self) -> u64 {
        self.absent_lookups.load(Ordering::Relaxed)
    }

    /// Times a dead supervisor was replaced since start.
    pub fn supervisor_restarts(&self) -> u64 {
        self.supervisor_restarts.load(Ordering::Relaxed)
    }

    /// Fault injection: the supervisor panics (and is started again).
    pub fn crash_supervisor(&self) {
        self.tell(SupervisorMsg::Crash, "crash");
    }

    /// Asks tenant `id`'s actor, activating it when needed. Retries when the actor stopped
    /// (passivated or crashed) between lookup and call: messages queued to a stopping actor are
    /// dropped unanswered, and the next activation reloads what it wrote out.
    pub async fn call<R, F>(&self, id: &TenantId, build: F) -> Result<R, DirectoryError>
    where
        R: Send + 'static,
        F: Fn(RpcReplyPort<R>) -> TenantMsg,
    {
        const ATTEMPTS: usize = 3;
        let unavailable = |reason: &str| DirectoryError::Unavailable { tenant: id.clone(), reason: reason.into() };
        for _ in 0..ATTEMPTS {
            let actor = self.actor(id).await?;
            match actor.call(&build, Some(self.call_timeout)).await {
                Ok(CallResult::Success(reply)) => return Ok(reply),
                Ok(CallResult::Timeout) => return Err(unavailable("the tenant actor did not answer in time")),
                Ok(CallResult::SenderError) | Err(_) => {
                    self.actors.remove_if(id, |_, current| current.get_id() == actor.get_id());
                }
            }
        }
        Err(unavailable("the tenant actor kept stopping"))
    }

    async fn actor(&self, id: &TenantId) -> Result<ActorRef<TenantMsg>, DirectoryError> {
        if let Some(actor) = self.actors.get(id) {
            return Ok(actor.clone());
        }
        if self.absent.is_absent(id, std::time::Instant::now()) {
            return Err(DirectoryError::NotFound(id.clone()));
        }
        let activated =
            self.supervisor().call(|reply| SupervisorMsg::Activate(id.clone(), reply), Some(self.call_timeout)).await;
        match activated {
            Ok(CallResult::Success(Err(DirectoryError::NotFound(_)))) => {
                self.absent_lookups.fetch_add(1, Ordering::Relaxed);
                self.absent.remember(id, std::time::Instant::now());
                Err(DirectoryError::NotFound(id.clone()))
            }
            Ok(CallResult::Success(result)) => result,
            _ => {
                Err(DirectoryError::Unavailable { tenant: id.clone(), reason: "the supervisor did not answer".into() })
            }
        }
    }

    /// The supervisor has stopped (the node is shutting down).
    pub fn stopped(&self) -> bool {
        self.stopping.load(Ordering::Relaxed) && self.supervisor().get_status() == ActorStatus::Stopped
    }

    /// Number of tenant actors alive on this node.
    pub fn active(&self) -> usize {
        self.actors.len()
    }

    /// Ticks sent to tenant actors since start.
    pub fn ticks(&self) -> u64 {
        self.ticks.load(Ordering::Relaxed)
    }

    /// Tenant actors restarted after a crash since start.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// Tenants refused as degraded (their actor kept crashing), as of the supervisor's last tick.
    pub fn degraded(&self) -> u64 {
        self.degraded.load(Ordering::Relaxed)
    }

    /// Stops the actors of tenants this node no longer owns, and answers once their state is
    /// written to the store, so that the new owner starts from it; with the state of each, for
    /// the new owner to continue from without reading the store.
    pub async fn release_unowned(&self) -> Result<Vec<TenantHandOff>, ReleaseError> {
        match self.supervisor().call(SupervisorMsg::ReleaseUnowned, None).await {
            Ok(CallResult::Success(result)) => result,
            _ => Err(ReleaseError("the supervisor did not answer".into())),
        }
    }

    /// Takes every tenant actor out of the directory at once (no request reaches them from
    /// now on) and has the supervisor stop them, each writing its state out, without handing
    /// their state to anyone; hand-offs kept are dropped. For a node whose lease ran out: what
    /// its actors hold may be older than what another node served meanwhile, and the store
    /// merges it where a hand-off would be taken as it is. Activations and releases queue
    /// behind the write-out.
    pub fn write_out_all(&self) {
        let actors: Vec<(TenantId, ActorRef<TenantMsg>)> =
            self.actors.iter().map(|entry| (entry.key().clone(), entry.value().clone())).collect();
        for (id, actor) in &actors {
            self.actors.remove_if(id, |_, current| current.get_id() == actor.get_id());
        }
        self.tell(SupervisorMsg::WriteOut(actors), "write-out");
    }

    /// Keeps hand-offs from a previous owner for tenants of shards this node is acquiring:
    /// `accept` says which (checked by the supervisor, in turn with activations, so that no
    /// tenant already activated from the store gets an older state later). Answers how many
    /// were kept.
    pub async fn accept_hand_offs(
        &self,
        hand_offs: Vec<TenantHandOff>,
        accept: Box<dyn Fn(&TenantId) -> bool + Send>,
    ) -> usize {
        let supervisor = self.supervisor();
        let kept = supervisor.call(|reply| SupervisorMsg::Arrived(hand_offs, accept, reply), Some(self.call_timeout));
        match kept.await {
            Ok(CallResult::Success(kept)) => kept,
            _ => 0,
        }
    }

    /// Forgets the hand-offs not used yet (a new view: they may no longer be current).
    pub fn forget_hand_offs(&self) {
        self.tell(SupervisorMsg::ForgetArrivals, "forget hand-offs");
    }

    /// Starts the actors of the tenants handed over to this node (their shards are now served
    /// here), so their first requests find them warm.
    pub fn activate_handed_over(&self) {
        self.tell(SupervisorMsg::ActivateArrivals, "activate hand-offs");
    }

    /// Activates, a few at a time, the owned tenants holding OAuth credentials, so that their
    /// refreshes get scheduled, and those with custom servers, so that their deployments resume
    /// and their tools are offered on this node (at start-up and whenever this node takes over
    /// shards). Idle ones passivate again and leave a wake-up behind.
    pub fn wake_credential_holders(&self) {
        self.tell(SupervisorMsg::WakeCredentialHolders, "wake credential holders");
    }

    /// Stops every tenant actor (each writes its state out) and then the supervisor. A refresh
    /// out is let finish first (within the call timeout), so that its rotated token is stored:
    /// the provider has consumed the old one.
    pub async fn shutdown(&self, timeout: Duration) {
        let mut settling = tokio::task::JoinSet::new();
        for entry in self.actors.iter() {
            let (actor, call_timeout) = (entry.value().clone(), self.call_timeout);
            settling.spawn(async move {
                matches!(actor.call(TenantMsg::Settle, Some(call_timeout)).await, Ok(CallResult::Success(())))
            });
        }
        let mut unsettled = 0;
        while let Some(settled) = settling.join_next().await {
            unsettled += usize::from(!matches!(settled, Ok(true)));
        }
        if unsettled > 0 {
            tracing::warn!(unsettled, "stopping tenant actors whose OAuth refresh did not finish in time");
        }
        self.stopping.store(true, Ordering::Relaxed);
        let supervisor = self.supervisor();
        supervisor.stop_children_and_wait(Some("shutdown".into()), Some(timeout)).await;
        if let Err(error) = supervisor.stop_and_wait(Some("shutdown".into()), Some(timeout)).await {
            tracing::warn!(%error, "the tenant supervisor did not stop in time");
        }
    }
}

#[derive(RactorMessage)]
pub enum SupervisorMsg {
    Activate(TenantId, RpcReplyPort<Result<ActorRef<TenantMsg>, DirectoryError>>),
    /// Periodic: every active tenant gets a `Tick`; passivated tenants due for work are woken.
    Tick,
    /// A passivating tenant has OAuth work due at this time: activate it then.
    WakeAt(TenantId, DateTime<Utc>),
    /// Stop the actors of tenants no longer owned; answer with their state, once written out.
    ReleaseUnowned(RpcReplyPort<Result<Vec<TenantHandOff>, ReleaseError>>),
    WakeCredentialHolders,
    /// Hand-offs from a previous owner; the function says which tenants may take one.
    Arrived(Vec<TenantHandOff>, Box<dyn Fn(&TenantId) -> bool + Send>, RpcReplyPort<usize>),
    ForgetArrivals,
    ActivateArrivals,
    /// Stop these actors (taken out of the directory), writing their state out, with no
    /// hand-off; drop the hand-offs kept (see [`TenantDirectory::write_out_all`]).
    WriteOut(Vec<(TenantId, ActorRef<TenantMsg>)>),
    /// Fault injection: panic, as a bug in a handler would.
    Crash,
}

pub struct TenantSupervisor;

/// How long a tenant found absent is answered 404 without a store read; creation ends it sooner.
const ABSENT_TTL: Duration = Duration::from_secs(5);
/// Absent ids remembered at most.
const ABSENT_MAX: usize = 100_000;

/// How a supervisor starts: the node's first, which makes the directory, or one replacing a
/// supervisor that died, which takes the directory over.
pub enum Start {
    First(tokio::sync::oneshot::Sender<Arc<TenantDirectory>>),
    Again(Arc<TenantDirectory>),
}

/// Starts a new supervisor whenever the running one dies other than by the node stopping it (a
/// bug in a handler panicked). Its tenant actors died with it, unwritten: each is activated again
/// from the store on its next request, as after a crash of its own, and hand-offs it kept are
/// lost (those tenants load from the store too).
async fn keep_supervisor(
    args: SupervisorArgs,
    directory: std::sync::Weak<TenantDirectory>,
    mut running: ractor::concurrency::JoinHandle<()>,
) {
    loop {
        if let Err(error) = running.await {
            tracing::error!(%error, "the tenant supervisor's task failed");
        }
        let Some(directory) = directory.upgrade() else { return };
        if directory.stopping.load(Ordering::Relaxed) {
            return;
        }
        directory.actors.clear();
        directory.supervisor_restarts.fetch_add(1, Ordering::Relaxed);
        tracing::error!(
            "the tenant supervisor died; starting a new one (its tenant actors are activated again on demand)"
        );
        running = loop {
            match Actor::spawn(None, TenantSupervisor, (args.clone(), Start::Again(directory.clone()))).await {
                Ok((_, running)) => break running,
                Err(error) => {
                    tracing::error!(%error, "a new tenant supervisor did not start; trying again in a second");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
    }
}

/// Passivated tenants activated per tick at most, so that wake-ups (a burst at start-up) and the
/// activations requests are waiting for take turns.
const WAKE_UPS_PER_TICK: usize = 64;

#[derive(Clone)]
pub struct SupervisorArgs {
    pub env: Arc<TenantEnv>,
    pub gate: Arc<dyn OwnershipGate>,
    pub tick: Duration,
    pub call_timeout: Duration,
    /// `CONNECTORS_FAULT_INJECTION` on this node.
    pub fault_injection: bool,
}

pub struct SupervisorState {
    env: Arc<TenantEnv>,
    gate: Arc<dyn OwnershipGate>,
    directory: Arc<TenantDirectory>,
    /// Every tenant actor started and not yet seen to terminate.
    tenants_by_actor: HashMap<ActorId, Started>,
    tick: Duration,
    /// Passivated tenants to activate at a time (their next OAuth refresh or expiry).
    wake_ups: BTreeSet<(DateTime<Utc>, TenantId)>,
    /// State handed over by the tenants' previous owner, not yet used by an activation.
    arrivals: HashMap<TenantId, TenantHandOff>,
    /// Released actors that had not stopped by their deadline: until they have, no release is
    /// complete (one still running could admit beside the new owner).
    stuck: Vec<(TenantId, ActorRef<TenantMsg>)>,
    crashes: CrashBackoff,
}

/// A tenant actor the supervisor started: whose, and when it wants its next tick.
struct Started {
    tenant: TenantId,
    tick_due: Arc<TickDue>,
}

impl TenantSupervisor {
    /// Starts the supervisor; the returned directory is how the rest of the node reaches tenants.
    pub async fn start(args: SupervisorArgs) -> Result<Arc<TenantDirectory>, ractor::SpawnErr> {
        let (directory_tx, directory_rx) = tokio::sync::oneshot::channel();
        let (_, running) = Actor::spawn(None, TenantSupervisor, (args.clone(), Start::First(directory_tx))).await?;
        let directory = directory_rx
            .await
            .map_err(|_| ractor::SpawnErr::StartupFailed("the supervisor stopped before it started".into()))?;
        tokio::spawn(keep_supervisor(args, Arc::downgrade(&directory), running));
        Ok(directory)
    }

    async fn activate(
        myself: &ActorRef<SupervisorMsg>,
        state: &mut SupervisorState,
        id: &TenantId,
    ) -> Result<ActorRef<TenantMsg>, DirectoryError> {
        if let Some(actor) = state.directory.actors.get(id) {
            return Ok(actor.clone());
        }
        if !state.gate.owns(id) {
            return Err(DirectoryError::NotOwner(id.clone()));
        }
        let unavailable = |reason: String| DirectoryError::Unavailable { tenant: id.clone(), reason };
        let env = state.env.clone();
        let now = env.clock.now();
        if let Err(wait) = state.crashes.may_start(now, id) {
            return Err(DirectoryError::Restarting {
                tenant: id.clone(),
                crashes: wait.crashes,
                degraded: wait.degraded,
                until: wait.until,
            });
        }
        let handed_over =
            state.arrivals.remove(id).and_then(|hand_off| TenantCore::from_hand_off(env.policy.clone(), hand_off, now));
        let core = match handed_over {
            Some(core) => core,
            None => Self::load(&env, id, now).await?,
        }
        .map_err(|e| unavailable(e.to_string()))?;
        let tick_due = Arc::new(TickDue::now());
        let tenant_state = TenantState {
            core,
            oauth: TenantOAuth::new(env.refresh_before),
            servers: crate::tenant_servers::TenantServers::new(&env),
            mcp_sessions: crate::tenant_mcp_sessions::TenantMcpSessions::new(env.mcp_sessions),
            env: env.clone(),
            tick_due: tick_due.clone(),
            stall_next_admission: None,
        };
        let (actor, _) = match Actor::spawn_linked(None, TenantActor, tenant_state, myself.get_cell()).await {
            Ok(spawned) => spawned,
            Err(error) => {
                // A start that fails (a panic in `pre_start`) counts as a crash.
                Self::crashed(state, id, now);
                return Err(unavailable(error.to_string()));
            }
        };
        state.tenants_by_actor.insert(actor.get_id(), Started { tenant: id.clone(), tick_due });
        state.directory.actors.insert(id.clone(), actor.clone());
        Ok(actor)
    }

    /// The tenant's state as the store holds it.
    async fn load(
        env: &TenantEnv,
        id: &TenantId,
        now: DateTime<Utc>,
    ) -> Result<Result<TenantCore, crate::tenant_core::PatchError>, DirectoryError> {
        let store_failed = |e: StoreError| DirectoryError::Unavailable { tenant: id.clone(), reason: e.to_string() };
        // What this tenant's previous actor wrote out may still sit in the recorder's queue.
        env.recorder.flush_tenant(id).await.map_err(store_failed)?;
        let record =
            env.store.tenant(id).await.map_err(store_failed)?.ok_or_else(|| DirectoryError::NotFound(id.clone()))?;
        let checkpoint = env.store.checkpoint(id).await.map_err(store_failed)?;
        let usage = env.store.usage_of_month(id, Month::of(now)).await.map_err(store_failed)?;
        Ok(TenantCore::new(env.policy.clone(), record, checkpoint, usage, now))
    }

    /// Tenants with credentials are listed off the supervisor and woken a batch per tick, so a
    /// large or slow secret store never holds up activations.
    fn wake_credential_holders(state: &SupervisorState) {
        // Through the directory: the wake-ups reach a supervisor started meanwhile to replace
        // this one, and those that reach none are logged.
        let (secrets, clock, gate, directory) =
            (state.env.secrets.clone(), state.env.clock.clone(), state.gate.clone(), state.directory.clone());
        let store = state.env.store.clone();
        let (gate2, clock2, directory2) = (state.gate.clone(), state.env.clock.clone(), state.directory.clone());
        // Tenants with custom servers: their deployments resume and their tools are offered again.
        tokio::spawn(async move {
            match store.entries(crate::tenant_servers::SERVER_TENANTS).await {
                Ok(entries) => {
                    let now = clock2.now();
                    let ids = entries.into_iter().filter_map(|(name, _)| TenantId::parse(&name).ok());
                    for id in ids.filter(|id| gate2.owns(id)) {
                        // No supervisor: the rest would be dropped too.
                        if !directory2.tell(SupervisorMsg::WakeAt(id, now), "wake a tenant with custom servers") {
                            break;
                        }
                    }
                }
                Err(error) => {
                    tracing::error!(%error, "cannot list tenants with custom servers; they resume on a request")
                }
            }
        });
        tokio::spawn(async move {
            match secrets.tenants().await {
                Ok(tenants) => {
                    let now = clock.now();
                    for id in tenants.into_iter().filter(|id| gate.owns(id)) {
                        // No supervisor: the rest would be dropped too.
                        if !directory.tell(SupervisorMsg::WakeAt(id, now), "wake a tenant with OAuth credentials") {
                            break;
                        }
                    }
                }
                Err(error) => tracing::error!(
                    %error,
                    "cannot list tenants with OAuth credentials; their refreshes wait for a request"
                ),
            }
        });
    }

    async fn release_unowned(state: &mut SupervisorState) -> Result<Vec<TenantHandOff>, ReleaseError> {
        let unowned: Vec<(TenantId, ActorRef<TenantMsg>)> = state
            .directory
            .actors
            .iter()
            .filter(|entry| !state.gate.owns(entry.key()))
            .map(|entry| (entry.key().clone(), entry.value().clone()))
            .collect();
        let hand_offs = Self::stop(state, unowned, true).await;
        if let Some((id, _)) = state.stuck.first() {
            return Err(ReleaseError(format!(
                "the actor of tenant `{id}` (and {} more) has not stopped yet",
                state.stuck.len() - 1
            )));
        }
        state.wake_ups.retain(|(_, id)| state.gate.owns(id));
        state.arrivals.retain(|id, _| !state.gate.owns(id));
        // Committed before the new owners hear of the release: the store is their fallback.
        state.env.recorder.flush().await.map_err(|e| ReleaseError(e.to_string()))?;
        Ok(hand_offs)
    }

    /// Takes the actors out of the directory and stops them, each writing its state out as it
    /// stops; with their hand-offs if `hand_off`. Those that do not stop by their deadline are
    /// kept in `stuck`: no release completes until they have.
    async fn stop(
        state: &mut SupervisorState,
        actors: Vec<(TenantId, ActorRef<TenantMsg>)>,
        hand_off: bool,
    ) -> Vec<TenantHandOff> {
        let mut stopping = tokio::task::JoinSet::new();
        for (id, actor) in &actors {
            state.directory.actors.remove_if(id, |_, current| current.get_id() == actor.get_id());
            let (actor, timeout) = (actor.clone(), state.directory.call_timeout);
            // All at once: a hand-off of many tenants costs one round of stops, not one per tenant.
            let id = id.clone();
            stopping.spawn(async move {
                // A refresh out is let finish, so its rotated token is stored before the move. One
                // that does not finish in time stores its answer itself (`RefreshAnswer`).
                if !matches!(actor.call(TenantMsg::Settle, Some(timeout)).await, Ok(CallResult::Success(()))) {
                    tracing::warn!(tenant = %id, "released with an OAuth refresh still out; its answer is stored when it comes");
                }
                let hand_off = match hand_off {
                    true => match actor.call(TenantMsg::HandOff, Some(timeout)).await {
                        Ok(CallResult::Success(hand_off)) => Some(hand_off),
                        _ => {
                            tracing::warn!(tenant = %id, "the tenant actor gave no hand-off; its next owner starts from the store");
                            None
                        }
                    },
                    false => None,
                };
                // Each writes its state out to the recorder (again) as it stops. One that does
                // not stop in time is kept as stuck, below.
                if let Err(error) = actor.stop_and_wait(Some("released".into()), Some(timeout)).await {
                    tracing::warn!(tenant = %id, %error, "the released tenant actor did not stop in time");
                }
                let stopped = actor.get_status() == ActorStatus::Stopped;
                (hand_off, (!stopped).then_some((id, actor)))
            });
        }
        let mut hand_offs = Vec::with_capacity(actors.len());
        while let Some(stopped) = stopping.join_next().await {
            match stopped {
                Ok((hand_off, stuck)) => {
                    hand_offs.extend(hand_off);
                    state.stuck.extend(stuck);
                }
                // Only a panic (a bug) ends a stop task early; its hand-off is lost, and the new
                // owner starts that tenant from the store.
                Err(error) => tracing::error!(%error, "stopping a released tenant actor failed"),
            }
        }
        state.stuck.retain(|(_, actor)| actor.get_status() != ActorStatus::Stopped);
        hand_offs
    }

    /// A node whose lease ran out: its actors are written out, not handed over.
    async fn write_out(state: &mut SupervisorState, actors: Vec<(TenantId, ActorRef<TenantMsg>)>) {
        let count = actors.len();
        Self::stop(state, actors, false).await;
        state.arrivals.clear();
        match state.env.recorder.flush().await {
            Ok(()) => tracing::info!(tenants = count, "lease lost: tenant state written out for whoever serves next"),
            Err(error) => tracing::warn!(
                tenants = count,
                %error,
                "lease lost: tenant state stays queued in the recorder; the next owner flushes it first"
            ),
        }
    }

    /// Records a crash and schedules the restart it allows (a wake-up); answers whether that is
    /// now.
    fn crashed(state: &mut SupervisorState, id: &TenantId, now: DateTime<Utc>) -> bool {
        match state.crashes.crashed(now, id) {
            AfterCrash::RestartNow => return true,
            AfterCrash::RestartAt(at) => {
                tracing::warn!(tenant = %id, restart_at = %at, "tenant actor crashed again; restarting it after a pause");
                state.wake_ups.insert((at, id.clone()));
            }
            AfterCrash::Degraded { until, crashes } => {
                tracing::error!(
                    tenant = %id,
                    crashes,
                    until = %until,
                    "tenant actor keeps crashing: tenant degraded, its requests are refused until then"
                );
                state.wake_ups.insert((until, id.clone()));
            }
        }
        state.directory.degraded.store(state.crashes.degraded(now) as u64, Ordering::Relaxed);
        false
    }

    fn forget(state: &mut SupervisorState, actor: ActorId) -> Option<TenantId> {
        let id = state.tenants_by_actor.remove(&actor)?.tenant;
        state.directory.actors.remove_if(&id, |_, current| current.get_id() == actor);
        Some(id)
    }
}

impl Actor for TenantSupervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = (SupervisorArgs, Start);

    async fn pre_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        (args, start): Self::Arguments,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let directory = match start {
            Start::First(directory_tx) => {
                let directory = Arc::new(TenantDirectory {
                    actors: DashMap::new(),
                    supervisor: std::sync::RwLock::new(myself),
                    stopping: std::sync::atomic::AtomicBool::new(false),
                    supervisor_restarts: AtomicU64::new(0),
                    absent: AbsentTenants::new(ABSENT_TTL, ABSENT_MAX),
                    absent_lookups: AtomicU64::new(0),
                    call_timeout: args.call_timeout,
                    restarts: AtomicU64::new(0),
                    degraded: AtomicU64::new(0),
                    ticks: AtomicU64::new(0),
                    fault_injection: args.fault_injection,
                });
                // The receiver waits in `start`; it is gone only if `start` was cancelled.
                directory_tx.answer(directory.clone());
                directory
            }
            Start::Again(directory) => {
                *directory.supervisor.write().unwrap_or_else(std::sync::PoisonError::into_inner) = myself;
                directory
            }
        };
        Ok(SupervisorState {
            env: args.env,
            gate: args.gate,
            directory,
            tenants_by_actor: HashMap::new(),
            tick: args.tick,
            wake_ups: BTreeSet::new(),
            arrivals: HashMap::new(),
            stuck: Vec::new(),
            crashes: CrashBackoff::new(CrashPolicy::default()),
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        // Tenants with credentials are woken once the router serves their shards
        // (`TenantDirectory::wake_credential_holders`).
        myself.send_interval(state.tick, || SupervisorMsg::Tick);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<SupervisorMsg>,
        message: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SupervisorMsg::Activate(id, reply) => {
                let result = Self::activate(&myself, state, &id).await;
                reply.answer(result);
            }
            SupervisorMsg::Tick => {
                let now = state.env.clock.now();
                for (actor_id, started) in &state.tenants_by_actor {
                    // A stopping actor (out of the directory) needs no tick: it writes its state
                    // out as it stops.
                    if started.tick_due.is_due(now)
                        && let Some(actor) = state.directory.actors.get(&started.tenant)
                        && actor.get_id() == *actor_id
                    {
                        actor.cast(TenantMsg::Tick).ok();
                        state.directory.ticks.fetch_add(1, Ordering::Relaxed);
                    }
                }
                state.crashes.forget_old(now);
                state.directory.degraded.store(state.crashes.degraded(now) as u64, Ordering::Relaxed);
                let mut woken = 0;
                while let Some((at, id)) = state.wake_ups.first().cloned()
                    && at <= now
                    && woken < WAKE_UPS_PER_TICK
                {
                    woken += 1;
                    state.wake_ups.pop_first();
                    if let Err(error) = Self::activate(&myself, state, &id).await
                        && !matches!(error, DirectoryError::NotOwner(_))
                    {
                        tracing::warn!(tenant = %id, %error, "cannot start a tenant due for work (a refresh, a restart)");
                    }
                }
            }
            SupervisorMsg::WakeAt(id, at) => {
                state.wake_ups.insert((at, id));
            }
            SupervisorMsg::ReleaseUnowned(reply) => {
                reply.answer(Self::release_unowned(state).await);
            }
            SupervisorMsg::WakeCredentialHolders => Self::wake_credential_holders(state),
            SupervisorMsg::Arrived(hand_offs, accept, reply) => {
                let before = state.arrivals.len();
                for hand_off in hand_offs {
                    let id = hand_off.record.id.clone();
                    if accept(&id) && !state.directory.actors.contains_key(&id) {
                        state.arrivals.insert(id, hand_off);
                    }
                }
                reply.answer(state.arrivals.len().saturating_sub(before));
            }
            SupervisorMsg::ForgetArrivals => state.arrivals.clear(),
            SupervisorMsg::Crash => panic!("fault injection: the tenant supervisor panics"),
            SupervisorMsg::WriteOut(actors) => Self::write_out(state, actors).await,
            SupervisorMsg::ActivateArrivals => {
                let ids: Vec<TenantId> = state.arrivals.keys().cloned().collect();
                for id in ids {
                    if let Err(error) = Self::activate(&myself, state, &id).await
                        && !matches!(error, DirectoryError::NotOwner(_))
                    {
                        tracing::warn!(tenant = %id, %error, "cannot start a tenant handed over to this node");
                    }
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupervisorMsg>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                if let Some(id) = Self::forget(state, cell.get_id()) {
                    tracing::debug!(tenant = %id, reason = reason.as_deref().unwrap_or(""), "tenant actor stopped");
                }
            }
            SupervisionEvent::ActorFailed(cell, error) => {
                if let Some(id) = Self::forget(state, cell.get_id()) {
                    state.directory.restarts.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(tenant = %id, %error, "tenant actor crashed; restarting it from its stored state");
                    if !Self::crashed(state, &id, state.env.clock.now()) {
                        return Ok(());
                    }
                    match Self::activate(&myself, state, &id).await {
                        Ok(_) => tracing::info!(tenant = %id, "tenant actor restarted"),
                        Err(DirectoryError::NotFound(_) | DirectoryError::NotOwner(_)) => {}
                        Err(error) => tracing::error!(tenant = %id, %error, "restart failed; the next request retries"),
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}
