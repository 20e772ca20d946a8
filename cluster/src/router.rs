//! `ShardRouter`: where the edge sends a tenant call. A tenant of a shard this node serves is
//! asked through the local directory; one of a shard another node owns is asked over that
//! node's link; one of a shard that is changing hands is answered "unavailable, retry" — never
//! admitted by two nodes. The same router answers peers' questions (it is the region's handler).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use connectors_actors::admission::Admission;
use connectors_actors::audit::AuditEvent;
use connectors_actors::recorder::Recorder;
use connectors_actors::supervisor::{DirectoryError, OwnershipGate, TenantDirectory};
use connectors_actors::tenant::{TenantId, TenantRecord};
use connectors_actors::tenant_call::{TenantCall, TenantReply};
use dashmap::DashMap;

use crate::audit_outbox::{AuditCounts, AuditOutbox};
use crate::ownership::{OwnershipEffect, ShardOwnership, ShardState};
use crate::shard_map::{NodeId, ShardMap, shard_of};
use crate::transport::links::{LinkError, Links};
use crate::transport::region::RegionHandler;
use crate::transport::wire::{
    self, AuditAnswer, AuditBatch, Refusal, ReleaseAnswer, ReleaseRequest, TenantAnswer, TenantRequest,
};

/// Retry-After for requests that meet a shard while it changes hands.
pub const MOVING_RETRY_AFTER_SECS: u64 = 1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("tenant `{0}` not found")]
    NotFound(TenantId),
    /// Ownership of the tenant's shard is moving, or its owner cannot be reached now.
    #[error("{reason}")]
    Unavailable { reason: String, retry_after: u64 },
}

impl RouteError {
    fn moving(tenant: &TenantId) -> Self {
        RouteError::Unavailable {
            reason: format!("tenant `{tenant}` is moving between nodes"),
            retry_after: MOVING_RETRY_AFTER_SECS,
        }
    }
}

impl From<DirectoryError> for RouteError {
    fn from(error: DirectoryError) -> Self {
        match error {
            DirectoryError::NotFound(id) => RouteError::NotFound(id),
            DirectoryError::NotOwner(id) => RouteError::moving(&id),
            other @ DirectoryError::Unavailable { .. } => {
                RouteError::Unavailable { reason: other.to_string(), retry_after: MOVING_RETRY_AFTER_SECS }
            }
        }
    }
}

/// This node's shard ownership: written by the membership shell, read by every request.
pub struct ShardTable {
    writer: Mutex<ShardOwnership>,
    current: ArcSwap<ShardOwnership>,
    /// Woken when a peer shows this node is behind (so the view is read again at once).
    pub behind: tokio::sync::Notify,
}

impl ShardTable {
    pub fn new(me: NodeId) -> Arc<Self> {
        let ownership = ShardOwnership::new(me);
        Arc::new(Self {
            current: ArcSwap::from_pointee(ownership.clone()),
            writer: Mutex::new(ownership),
            behind: tokio::sync::Notify::new(),
        })
    }

    pub fn snapshot(&self) -> Arc<ShardOwnership> {
        self.current.load_full()
    }

    /// Changes the ownership and publishes the result to readers.
    fn update<R>(&self, change: impl FnOnce(&mut ShardOwnership) -> R) -> R {
        let mut ownership = self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let result = change(&mut ownership);
        self.current.store(Arc::new(ownership.clone()));
        result
    }
}

impl OwnershipGate for ShardTable {
    fn owns(&self, tenant: &TenantId) -> bool {
        self.current.load().state(shard_of(tenant)) == ShardState::Active
    }
}

pub struct ShardRouter {
    table: Arc<ShardTable>,
    directory: Arc<TenantDirectory>,
    /// `None` on a single node.
    links: Option<Arc<Links>>,
    /// Records of tenants owned elsewhere, by fingerprint, from their owners' last full
    /// admission answers: an owner that finds the fingerprint current leaves the record out.
    /// A stale entry costs one full answer, never a wrong one (the owner compares).
    held_records: DashMap<TenantId, (u64, Arc<TenantRecord>)>,
    /// This node's recorder: audit events of the tenants it serves, and those of others that
    /// their owners could not take.
    recorder: Recorder,
    /// Audit events on their way to the owners of their tenants (`None` on a single node).
    outbox: Option<Arc<AuditOutbox>>,
    audit_counts: Arc<AuditCounts>,
}

/// How many tenant records the edge holds at most (all are dropped past the bound).
const HELD_RECORDS_MAX: usize = 100_000;

impl ShardRouter {
    pub fn new(
        table: Arc<ShardTable>,
        directory: Arc<TenantDirectory>,
        links: Option<Arc<Links>>,
        recorder: Recorder,
    ) -> Arc<Self> {
        let audit_counts = Arc::new(AuditCounts::default());
        let outbox =
            links.as_ref().map(|links| AuditOutbox::start(links.clone(), recorder.clone(), audit_counts.clone()));
        Arc::new(Self { table, directory, links, held_records: DashMap::new(), recorder, outbox, audit_counts })
    }

    /// Records an audit event: here when this node serves the tenant (or the owner is not
    /// known), else through the owner, batched (see [`AuditOutbox`]).
    pub async fn record_audit(&self, event: AuditEvent) {
        let owner = self.outbox.as_ref().and_then(|outbox| {
            let ownership = self.table.current.load();
            let shard = shard_of(&event.tenant_id);
            (ownership.state(shard) == ShardState::Elsewhere)
                .then(|| ownership.map().owner(shard).cloned())
                .flatten()
                .map(|owner| (outbox, owner))
        });
        if let Some((outbox, owner)) = owner {
            outbox.push(&owner, event);
        } else if self.recorder.audit(event).await.is_err() {
            tracing::error!("recorder stopped; audit event not recorded");
        }
    }

    /// Sends the audit events still waiting for their owners (before shutting down).
    pub async fn flush_audit(&self) {
        if let Some(outbox) = &self.outbox {
            outbox.flush().await;
        }
    }

    pub fn audit_counts(&self) -> &AuditCounts {
        &self.audit_counts
    }

    pub fn table(&self) -> &Arc<ShardTable> {
        &self.table
    }

    pub fn directory(&self) -> &Arc<TenantDirectory> {
        &self.directory
    }

    /// Asks the owner of `tenant`.
    pub async fn ask(&self, tenant: &TenantId, call: TenantCall) -> Result<TenantReply, RouteError> {
        let shard = shard_of(tenant);
        // A guard, not a counted reference: on the local path the view is needed only for
        // this check, and a shared reference count would bounce between cores per request.
        let state = self.table.current.load().state(shard);
        match state {
            ShardState::Active => Ok(self.directory.ask(tenant, call).await?),
            ShardState::Acquiring => Err(RouteError::moving(tenant)),
            ShardState::Elsewhere => {
                let ownership = self.table.snapshot();
                let (Some(owner), Some(links)) = (ownership.map().owner(shard), self.links.as_ref()) else {
                    return Err(RouteError::Unavailable {
                        reason: "this node has not joined the cluster yet".into(),
                        retry_after: MOVING_RETRY_AFTER_SECS,
                    });
                };
                let held = self.held_records.get(tenant).map(|entry| entry.value().clone());
                let request = TenantRequest {
                    epoch: ownership.epoch(),
                    tenant: tenant.clone(),
                    call,
                    held_record: held.as_ref().map(|(fingerprint, _)| *fingerprint),
                };
                let answer = links.ask(owner, &request).await.map(|answer| answer.into_reply(held.map(|(_, r)| r)));
                match answer {
                    Ok(Ok(reply)) => {
                        self.hold_record(tenant, &reply);
                        Ok(reply)
                    }
                    Ok(Err(Refusal::NotFound(id))) => {
                        self.held_records.remove(&id);
                        Err(RouteError::NotFound(id))
                    }
                    Ok(Err(Refusal::NotOwner { node, epoch })) => {
                        if epoch > ownership.epoch() {
                            self.table.behind.notify_one();
                        }
                        tracing::debug!(%tenant, %node, epoch, "owner in our view does not serve the tenant");
                        Err(RouteError::moving(tenant))
                    }
                    Ok(Err(refusal)) => Err(unavailable(refusal.to_string())),
                    Err(error) => Err(unavailable(error.to_string())),
                }
            }
        }
    }

    /// Keeps the record of a full admission answer for the tenant's next request.
    fn hold_record(&self, tenant: &TenantId, reply: &TenantReply) {
        let TenantReply::Admission(Admission { verdict: Ok(snapshot), .. }) = reply else { return };
        // An answer without the record carries the very record held: nothing to hash again.
        if self.held_records.get(tenant).is_some_and(|held| Arc::ptr_eq(&held.1, &snapshot.record)) {
            return;
        }
        if self.held_records.len() >= HELD_RECORDS_MAX {
            self.held_records.clear();
        }
        self.held_records.insert(tenant.clone(), (snapshot.record.fingerprint(), snapshot.record.clone()));
    }

    /// Installs a new view's shard map and carries out what the ownership decides.
    pub fn install(self: &Arc<Self>, map: ShardMap) {
        let effects = self.table.update(|ownership| ownership.install(map));
        self.carry_out(effects);
    }

    fn carry_out(self: &Arc<Self>, effects: Vec<OwnershipEffect>) {
        for effect in effects {
            match effect {
                OwnershipEffect::ReleaseUnowned { epoch } => {
                    let router = self.clone();
                    tokio::spawn(async move { router.release_unowned(epoch).await });
                }
                OwnershipEffect::AskRelease { peer, epoch } => {
                    let router = self.clone();
                    tokio::spawn(async move { router.ask_release(peer, epoch).await });
                }
                OwnershipEffect::AllActive { epoch, shards } => {
                    tracing::info!(epoch, shards, "serving every shard this node owns");
                    self.directory.wake_credential_holders();
                }
            }
        }
    }

    async fn release_unowned(&self, epoch: u64) {
        loop {
            match self.directory.release_unowned().await {
                Ok(released) => {
                    if released > 0 {
                        tracing::info!(epoch, released, "handed tenants of moved shards over to their new owners");
                    }
                    self.table.update(|ownership| ownership.released(epoch));
                    return;
                }
                Err(error) => {
                    tracing::warn!(epoch, %error, "cannot release moved tenants yet; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    async fn ask_release(self: Arc<Self>, peer: NodeId, epoch: u64) {
        let Some(links) = self.links.clone() else { return };
        let me = self.table.snapshot().me().clone();
        let request = ReleaseRequest { from: me, epoch };
        while self.table.snapshot().awaits(&peer, epoch) {
            match links.release(&peer, &request).await {
                Ok(ReleaseAnswer::Released) => {
                    let effects = self.table.update(|ownership| ownership.confirmed(&peer, epoch));
                    self.carry_out(effects);
                    return;
                }
                Ok(ReleaseAnswer::NotYet { .. }) => {}
                Err(LinkError::NotConnected(_)) => {}
                Err(error) => tracing::debug!(%peer, epoch, %error, "release not confirmed yet"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn unavailable(reason: String) -> RouteError {
    RouteError::Unavailable { reason, retry_after: MOVING_RETRY_AFTER_SECS }
}

#[async_trait]
impl RegionHandler for ShardRouter {
    async fn ask(&self, payload: Vec<u8>) -> Vec<u8> {
        let answer = match wire::decode::<TenantRequest>(&payload) {
            Ok(request) => {
                let ownership = self.table.snapshot();
                let reply = if ownership.state(shard_of(&request.tenant)) == ShardState::Active {
                    self.directory.ask(&request.tenant, request.call).await.map_err(Refusal::from)
                } else {
                    if request.epoch > ownership.epoch() {
                        self.table.behind.notify_one();
                    }
                    Err(Refusal::NotOwner { node: ownership.me().clone(), epoch: ownership.epoch() })
                };
                TenantAnswer::to_sender(reply, request.held_record)
            }
            Err(wire::WireError::UnsupportedVersion(version)) => {
                TenantAnswer::Err(Refusal::UnsupportedVersion(version))
            }
            Err(error) => TenantAnswer::Err(Refusal::Unavailable(error.to_string())),
        };
        wire::encode(&answer)
    }

    async fn release(&self, payload: Vec<u8>) -> Vec<u8> {
        let ownership = self.table.snapshot();
        let answer = match wire::decode::<ReleaseRequest>(&payload) {
            Ok(request) if ownership.has_released(request.epoch) => ReleaseAnswer::Released,
            Ok(request) => {
                if request.epoch > ownership.epoch() {
                    self.table.behind.notify_one();
                }
                ReleaseAnswer::NotYet { epoch: ownership.epoch() }
            }
            Err(_) => ReleaseAnswer::NotYet { epoch: ownership.epoch() },
        };
        wire::encode(&answer)
    }

    async fn audit(&self, payload: Vec<u8>) -> Vec<u8> {
        // Recorded whether or not this node still owns the tenants: the store is shared, and
        // refusing would only make the sender record them instead.
        let answer = match wire::decode::<AuditBatch>(&payload) {
            Ok(batch) => {
                let count = batch.events.len() as u64;
                let mut recorded = AuditAnswer::Recorded;
                for event in batch.events {
                    if self.recorder.audit(event).await.is_err() {
                        // Events before this one are recorded: the sender records them again.
                        recorded = AuditAnswer::NotRecorded;
                        break;
                    }
                }
                if recorded == AuditAnswer::Recorded {
                    self.audit_counts.received.fetch_add(count, std::sync::atomic::Ordering::Relaxed);
                }
                recorded
            }
            Err(error) => {
                tracing::warn!(%error, "undecodable audit batch from a peer");
                AuditAnswer::NotRecorded
            }
        };
        wire::encode(&answer)
    }

    fn epoch(&self) -> u64 {
        self.table.snapshot().epoch()
    }
}
