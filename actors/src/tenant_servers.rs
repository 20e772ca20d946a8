//! The tenant actor's custom-server shell: it feeds the tenant's [`Deployments`] and carries out
//! what they decide, with the [`Store`](crate::store::Store) (collection `servers:<tenant>`, one
//! JSON entry per server), the [`Deployer`](crate::deployer::Deployer) and the
//! [`ServerTools`](crate::server_tools::ServerTools) port.
//!
//! Write-ahead: every [`Effect::Persist`] is written before the effects after it; a failed write
//! puts the state from before the input back (a request is answered with the error, a report is
//! fed again a moment later). Fenced: each entry is written only if the store still holds what
//! this actor last read or wrote there ([`Store::replace_entry`](crate::store::Store::replace_entry));
//! otherwise another node served the tenant meanwhile (this one was paused, or cut off, and has
//! not stopped yet), and the actor reloads what is stored before its next input instead of
//! undoing that node's work. Deploy and Stop calls of one server run one at a time, in order, on
//! that server's worker task (a build of one server that takes many minutes does not hold up
//! the stop of another); discoveries run on tasks of their own. Both answer with messages to the actor,
//! which keeps admitting requests meanwhile.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use ractor::ActorRef;
use tokio::sync::{broadcast, mpsc};

use crate::deployer::{DeployerEventKind, ServerName, ServerSource, SourceKind};
use crate::deployments::{
    Deployments, Effect, Input, Rejection, Report, ServerRecord, ServerRequest, ServerStatus, record_changes,
};
use crate::store::StoreError;
use crate::tenant::TenantId;
use crate::tenant_actor::{TenantEnv, TenantError, TenantMsg};
use crate::tenant_core::TenantCore;

/// The store collection of a tenant's servers.
pub fn collection(tenant: &TenantId) -> String {
    format!("servers:{tenant}")
}

/// The store collection naming (one empty entry each) the tenants that have servers, so that a
/// starting node can wake them and resume their deployments without waiting for a request.
pub const SERVER_TENANTS: &str = "server-tenants";

/// A deployer call for a server's worker.
enum Job {
    Deploy { name: ServerName, source: ServerSource, attempt: u32 },
    Stop { name: ServerName },
}

impl Job {
    fn server(&self) -> &ServerName {
        match self {
            Job::Deploy { name, .. } | Job::Stop { name } => name,
        }
    }
}

pub struct TenantServers {
    deployments: Deployments,
    /// What the store holds, as last written.
    persisted: Vec<ServerRecord>,
    /// Each entry's bytes as this actor last read or wrote them: what a write expects to replace.
    stored: BTreeMap<String, Vec<u8>>,
    /// A write found the store changed: reload before the next input.
    stale: bool,
    /// One worker per server, so that its calls keep their order.
    workers: BTreeMap<ServerName, mpsc::UnboundedSender<Job>>,
}

impl TenantServers {
    pub fn new(env: &TenantEnv) -> Self {
        let supported = SourceKind::ALL.into_iter().filter(|kind| env.deployer.supports(*kind));
        Self {
            deployments: Deployments::new(env.deploy_retry.clone(), supported),
            persisted: Vec::new(),
            stored: BTreeMap::new(),
            stale: false,
            workers: BTreeMap::new(),
        }
    }

    pub fn is_busy(&self) -> bool {
        self.deployments.is_busy()
    }

    /// Whether a deployer runs something for this tenant (every kind but `http`, unless failed).
    /// The actor does not passivate meanwhile: activating again would restore those servers as
    /// interrupted and deploy them again, and their tools would be unavailable in between.
    pub fn holds_deployments(&self) -> bool {
        self.deployments
            .servers()
            .any(|record| record.source.kind() != SourceKind::Http && record.status != ServerStatus::Failed)
    }

    pub fn count(&self) -> u64 {
        self.deployments.quota_count()
    }

    pub fn list(&self) -> Vec<ServerRecord> {
        self.deployments.records()
    }

    pub fn get(&self, name: &ServerName) -> Option<ServerRecord> {
        self.deployments.server(name).cloned()
    }

    /// Loads the persisted records and resumes interrupted work (after start, activation or a
    /// crash): ready servers' tools are offered again.
    pub async fn restore(&mut self, env: &TenantEnv, tenant: &TenantId, myself: &ActorRef<TenantMsg>) {
        forward_deployer_events(env, tenant, myself);
        if let Err(error) = self.reload(env, tenant, myself).await {
            tracing::error!(%tenant, %error, "cannot load custom servers; they resume at the next activation");
        }
    }

    /// Reads the records the store holds and resumes from them (`Input::Restored`).
    async fn reload(
        &mut self,
        env: &TenantEnv,
        tenant: &TenantId,
        myself: &ActorRef<TenantMsg>,
    ) -> Result<(), TenantError> {
        let entries = env.store.entries(&collection(tenant)).await?;
        let mut records = Vec::new();
        for (name, bytes) in &entries {
            match serde_json::from_slice::<ServerRecord>(bytes) {
                Ok(record) => records.push(record),
                Err(error) => tracing::error!(%tenant, server = %name, %error, "unreadable server record; skipped"),
            }
        }
        self.stored = entries.into_iter().collect();
        self.stale = false;
        if records.is_empty() && self.persisted.is_empty() {
            return Ok(());
        }
        self.persisted = records.clone();
        self.run(env, tenant, myself, env.clock.now(), Input::Restored { records }).await
    }

    /// A new server: validated, within quota, persisted as `pending`, then started.
    pub async fn create(
        &mut self,
        env: &TenantEnv,
        tenant: &TenantId,
        myself: &ActorRef<TenantMsg>,
        core: &TenantCore,
        request: ServerRequest,
        clashes_with_integration: bool,
    ) -> Result<ServerRecord, TenantError> {
        let server = request.validate().map_err(|error| TenantError::InvalidServer(error.to_string()))?;
        let name = server.name.clone();
        core.room_for_custom_server(self.deployments.quota_count()).map_err(TenantError::Quota)?;
        let now = env.clock.now();
        let deployment_id = format!("dep_{}", uuid_like(tenant, &name, now));
        self.apply(env, tenant, myself, now, Input::Create { server, deployment_id, clashes_with_integration }).await?;
        let created = self.deployments.server(&name).cloned().ok_or(TenantError::Server(Rejection::NotFound(name)))?;
        // Started now; if this step cannot be persisted, the periodic tick starts it.
        if let Err(error) = self.apply(env, tenant, myself, now, Input::Tick).await {
            tracing::warn!(%tenant, %error, "cannot start a new server yet");
        }
        Ok(created)
    }

    /// Deletes a server; answers it as it was when the delete was accepted.
    pub async fn delete(
        &mut self,
        env: &TenantEnv,
        tenant: &TenantId,
        myself: &ActorRef<TenantMsg>,
        name: ServerName,
    ) -> Result<ServerRecord, TenantError> {
        let Some(before) = self.deployments.server(&name).cloned() else {
            return Err(TenantError::Server(Rejection::NotFound(name)));
        };
        let now = env.clock.now();
        self.apply(env, tenant, myself, now, Input::Delete { name: name.clone() }).await?;
        Ok(self.deployments.server(&name).cloned().unwrap_or(before))
    }

    /// When [`Self::tick`] next has work: a pending server to start or a retry.
    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        self.deployments.next_deadline()
    }

    /// Starts what is due (pending servers, retries).
    pub async fn tick(&mut self, env: &TenantEnv, tenant: &TenantId, myself: &ActorRef<TenantMsg>) {
        let now = env.clock.now();
        if self.deployments.next_deadline().is_some_and(|due| due <= now)
            && let Err(error) = self.apply(env, tenant, myself, now, Input::Tick).await
        {
            tracing::warn!(%tenant, %error, "custom servers' due work postponed");
        }
    }

    /// An answer of the deployer or of a discovery.
    pub async fn report(
        &mut self,
        env: &TenantEnv,
        tenant: &TenantId,
        myself: &ActorRef<TenantMsg>,
        message: TenantMsg,
    ) {
        let input = match &message {
            TenantMsg::DeploymentReported(name, report) => {
                Input::DeployerReported { name: name.clone(), report: report.clone() }
            }
            TenantMsg::DiscoveryDone(name, Ok(count)) => Input::ToolsDiscovered { name: name.clone(), count: *count },
            TenantMsg::DiscoveryDone(name, Err(error)) => {
                Input::DiscoveryFailed { name: name.clone(), error: error.clone() }
            }
            _ => return,
        };
        let now = env.clock.now();
        if let Err(error) = self.apply(env, tenant, myself, now, input).await {
            // Nothing changed: hear the report again shortly.
            tracing::warn!(%tenant, %error, "custom server report not recorded; retrying");
            let (myself, tenant) = (myself.clone(), tenant.clone());
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                // A stopped actor needs no report: its next activation resumes from the records.
                if myself.cast(message).is_err() {
                    tracing::debug!(%tenant, "custom server report dropped with its stopped actor");
                }
            });
        }
    }

    /// The tenant is being deleted: every server is stopped, its tools withdrawn and its record
    /// deleted.
    pub async fn delete_all(&mut self, env: &TenantEnv, tenant: &TenantId) -> Result<(), TenantError> {
        for record in self.deployments.records() {
            if record.source.kind() != SourceKind::Http
                && let Err(error) = env.deployer.stop(tenant, &record.name).await
            {
                tracing::warn!(%tenant, server = %record.name, %error, "cannot stop a deleted tenant's server");
            }
            env.server_tools.withdraw(tenant, &record.name).await;
        }
        // What the deployer holds for the tenant as a whole (its Kubernetes namespace): a
        // failure leaves the tenant in place, so the delete can be retried.
        env.deployer.remove_tenant(tenant).await.map_err(|error| TenantError::Deployer(error.to_string()))?;
        let collection = collection(tenant);
        for (name, _) in env.store.entries(&collection).await? {
            env.store.delete_entry(&collection, &name).await?;
        }
        env.store.delete_entry(SERVER_TENANTS, tenant.as_str()).await?;
        self.persisted.clear();
        // Their calls under way finish; no other is sent.
        self.workers.clear();
        self.deployments = Deployments::new(env.deploy_retry.clone(), [SourceKind::Http]);
        Ok(())
    }

    /// Applies `input` and carries out its effects in order; see the module's doc. After a write
    /// found the store changed, what is stored is reloaded first.
    async fn apply(
        &mut self,
        env: &TenantEnv,
        tenant: &TenantId,
        myself: &ActorRef<TenantMsg>,
        now: DateTime<Utc>,
        input: Input,
    ) -> Result<(), TenantError> {
        if self.stale {
            tracing::warn!(%tenant, "custom servers changed on another node; reloading them");
            self.reload(env, tenant, myself).await?;
        }
        self.run(env, tenant, myself, now, input).await
    }

    async fn run(
        &mut self,
        env: &TenantEnv,
        tenant: &TenantId,
        myself: &ActorRef<TenantMsg>,
        now: DateTime<Utc>,
        input: Input,
    ) -> Result<(), TenantError> {
        let saved = self.deployments.clone();
        let effects = self.deployments.handle(now, input).map_err(TenantError::Server)?;
        for effect in effects {
            match effect {
                Effect::Persist(after) => {
                    if let Err(error) = self.persist(env, tenant, after).await {
                        self.deployments = saved;
                        self.stale |= matches!(error, StoreError::Changed(_));
                        return Err(error.into());
                    }
                }
                Effect::Deploy { name, source, attempt } => {
                    self.send(env, tenant, myself, Job::Deploy { name, source, attempt })
                }
                Effect::Stop { name } => self.send(env, tenant, myself, Job::Stop { name }),
                Effect::Discover { name, .. } => {
                    let Some(record) = self.deployments.server(&name).cloned() else { continue };
                    let (tools, tenant, myself) = (env.server_tools.clone(), tenant.clone(), myself.clone());
                    tokio::spawn(async move {
                        let found = tools.discover(&tenant, &record).await;
                        // A stopped actor's next activation discovers its ready servers again.
                        if myself.cast(TenantMsg::DiscoveryDone(name, found)).is_err() {
                            tracing::debug!(%tenant, "tool discovery answered after its actor stopped; dropped");
                        }
                    });
                }
                Effect::Removed { name } => env.server_tools.withdraw(tenant, &name).await,
            }
        }
        Ok(())
    }

    /// Writes the changed entries and deletes the removed ones.
    async fn persist(
        &mut self,
        env: &TenantEnv,
        tenant: &TenantId,
        after: Vec<ServerRecord>,
    ) -> Result<(), StoreError> {
        let collection = collection(tenant);
        if self.persisted.is_empty() && !after.is_empty() {
            env.store.put_entry(SERVER_TENANTS, tenant.as_str(), b"").await?;
        }
        let (written, deleted) = record_changes(&self.persisted, &after);
        let changes = written
            .into_iter()
            .map(|record| Ok((record.name.as_str(), Some(serde_json::to_vec(record)?))))
            .chain(deleted.into_iter().map(|name| Ok((name.as_str(), None))))
            .collect::<Result<Vec<_>, serde_json::Error>>()
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        for (name, bytes) in changes {
            let expected = self.stored.get(name).map(Vec::as_slice);
            if !env.store.replace_entry(&collection, name, expected, bytes.as_deref()).await? {
                return Err(StoreError::Changed(format!("custom server `{name}` of tenant `{tenant}`")));
            }
            match bytes {
                Some(bytes) => self.stored.insert(name.to_owned(), bytes),
                None => self.stored.remove(name),
            };
        }
        if after.is_empty() && !self.persisted.is_empty() {
            env.store.delete_entry(SERVER_TENANTS, tenant.as_str()).await?;
        }
        self.persisted = after;
        Ok(())
    }

    fn send(&mut self, env: &TenantEnv, tenant: &TenantId, myself: &ActorRef<TenantMsg>, job: Job) {
        let server = job.server().clone();
        let worker = self.workers.entry(server.clone()).or_insert_with(|| spawn_worker(env, tenant, myself));
        if let Err(mpsc::error::SendError(job)) = worker.send(job) {
            // The worker ended (it cannot, while its sender lives); start another.
            let worker = spawn_worker(env, tenant, myself);
            // A new worker holds its receiver until its sender is dropped: this send cannot fail.
            worker.send(job).ok();
            self.workers.insert(server, worker);
        }
    }
}

/// The task that calls the deployer for one server of a tenant, one call at a time.
fn spawn_worker(env: &TenantEnv, tenant: &TenantId, myself: &ActorRef<TenantMsg>) -> mpsc::UnboundedSender<Job> {
    let (sender, mut jobs) = mpsc::unbounded_channel::<Job>();
    let (deployer, tenant, myself) = (env.deployer.clone(), tenant.clone(), myself.clone());
    tokio::spawn(async move {
        while let Some(job) = jobs.recv().await {
            let (name, report) = match job {
                Job::Deploy { name, source, attempt } => {
                    let report = match deployer.deploy(&tenant, &name, &source).await {
                        Ok(endpoint) => Report::Ready { attempt, endpoint },
                        Err(error) => Report::Failed { attempt, error },
                    };
                    (name, report)
                }
                Job::Stop { name } => {
                    let report = match deployer.stop(&tenant, &name).await {
                        Ok(()) => Report::Stopped,
                        Err(error) => Report::StopFailed { error: error.to_string() },
                    };
                    (name, report)
                }
            };
            // If the actor is gone, its next activation resumes from the persisted records.
            if myself.cast(TenantMsg::DeploymentReported(name, report)).is_err() {
                tracing::debug!(%tenant, "deployer report dropped with its stopped actor");
            }
        }
    });
    sender
}

/// Forwards what the deployer reports on its own about this tenant's servers (a server that
/// kept dying and is given up) to the actor, for as long as the actor runs.
fn forward_deployer_events(env: &TenantEnv, tenant: &TenantId, myself: &ActorRef<TenantMsg>) {
    if !env.deployer.supports(SourceKind::Stdio) {
        return;
    }
    let mut events = env.deployer.events();
    let (tenant, myself) = (tenant.clone(), myself.clone());
    tokio::spawn(async move {
        loop {
            let received = tokio::select! {
                received = events.recv() => received,
                () = tokio::time::sleep(std::time::Duration::from_secs(30)) => {
                    if matches!(myself.get_status(), ractor::ActorStatus::Stopped | ractor::ActorStatus::Stopping) {
                        return;
                    }
                    continue;
                }
            };
            match received {
                Ok(event) if event.tenant == tenant => {
                    if let DeployerEventKind::GaveUp { error } = event.kind {
                        let report = Report::GaveUp { error };
                        if myself.cast(TenantMsg::DeploymentReported(event.name, report)).is_err() {
                            return;
                        }
                    }
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}

/// A deployment id unique enough to tell deployments apart: tenant, name and time hashed.
fn uuid_like(tenant: &TenantId, name: &ServerName, now: DateTime<Utc>) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (tenant.as_str(), name.as_str(), now.timestamp_nanos_opt()).hash(&mut hasher);
    format!("{:016x}{:08x}", hasher.finish(), now.timestamp_subsec_nanos())
}
