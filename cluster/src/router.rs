//! `ShardRouter`: where the edge sends a tenant call. A tenant of a shard this node serves is
//! asked through the local directory; one of a shard another node owns is asked over that
//! node's link; one of a shard that is changing hands is answered "unavailable, retry" — never
//! admitted by two nodes. The same router answers peers' questions (it is the region's handler).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use connectors_actors::admission::Admission;
use connectors_actors::audit::AuditEvent;
use connectors_actors::hand_off::TenantHandOff;
use connectors_actors::recorder::Recorder;
use connectors_actors::supervisor::{DirectoryError, OwnershipGate, TenantDirectory};
use connectors_actors::tenant::{TenantId, TenantRecord};
use connectors_actors::tenant_call::{AnswerBy, TenantCall, TenantReply};
use dashmap::DashMap;

use crate::audit_outbox::{AuditCounts, AuditOutbox};
use crate::ownership::{OwnershipConfig, OwnershipEffect, OwnershipInput, ReleaseVerdict, ShardOwnership, ShardState};
use crate::shard_map::{NodeId, ShardMap, shard_of};
use crate::transport::ask_batches::AskCounts;
use crate::transport::compact;
use crate::transport::late_answers::{LateAnswer, Unanswered};
use crate::transport::links::{LinkError, Links};
use crate::transport::region::RegionHandler;
use crate::transport::wire::{
    self, AuditAnswer, AuditBatch, HandOffAnswer, HandOffBatch, Refusal, ReleaseAnswer, ReleaseRequest, TenantAnswer,
    TenantRequest,
};

/// Retry-After for requests that meet a shard while it changes hands.
pub const MOVING_RETRY_AFTER_SECS: u64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("tenant `{0}` not found")]
    NotFound(TenantId),
    /// Ownership of the tenant's shard is moving, or its owner cannot be reached now.
    #[error("{reason}")]
    Unavailable { reason: String, retry_after: u64 },
    /// The owner did not answer in time, but may have done what it was asked: its answer may
    /// still come.
    #[error("{reason}")]
    Unanswered { reason: String, late: LateReply },
    /// The tenant's actor keeps crashing: it restarts after a pause, or is degraded for a while.
    /// The reason is the tenant's to read (it names no internals).
    #[error("{reason}")]
    Restarting { reason: String, retry_after: u64 },
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
            other @ DirectoryError::Restarting { .. } => {
                let retry_after = other.retry_after_secs(chrono::Utc::now()).unwrap_or(MOVING_RETRY_AFTER_SECS);
                RouteError::Restarting { reason: other.to_string(), retry_after }
            }
        }
    }
}

/// The owner's answer to a call this node stopped waiting for (see [`crate::transport::late_answers`]).
#[derive(Debug)]
pub struct LateReply {
    answer: LateAnswer,
    /// The record whose fingerprint the call sent, for an answer that leaves it out.
    held: Option<Arc<TenantRecord>>,
}

impl LateReply {
    /// Whether the owner's reply came (within
    /// [`crate::transport::late_answers::LATE_WAIT`]) and admitted the request, which it
    /// then counted and billed.
    pub async fn admitted(self) -> bool {
        let reply = self.answer.arrived().await.map(|answer| answer.into_reply(self.held));
        matches!(reply, Some(Ok(TenantReply::Admission(Admission { verdict: Ok(_), .. }))))
    }
}

/// This node's shard ownership: written by the membership shell, read by every request.
pub struct ShardTable {
    writer: Mutex<ShardOwnership>,
    current: ArcSwap<ShardOwnership>,
    /// Woken when a peer shows this node is behind (so the view is read again at once).
    pub behind: tokio::sync::Notify,
    /// Woken whenever a new ownership is published (held requests look again).
    changed: tokio::sync::Notify,
    /// A peer holds another view under our epoch: the membership must rejoin above it.
    conflict: std::sync::atomic::AtomicBool,
}

/// This node's clock as the ownership reads it: the membership table's heartbeats and the
/// lease are in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl ShardTable {
    pub fn new(me: NodeId) -> Arc<Self> {
        let ownership = ShardOwnership::new(me, OwnershipConfig::default());
        Arc::new(Self {
            current: ArcSwap::from_pointee(ownership.clone()),
            writer: Mutex::new(ownership),
            behind: tokio::sync::Notify::new(),
            changed: tokio::sync::Notify::new(),
            conflict: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Whether a view conflict was seen since the last call.
    pub fn take_conflict(&self) -> bool {
        self.conflict.swap(false, Ordering::Relaxed)
    }

    fn report_conflict(&self) {
        tracing::warn!("a peer holds another view under this node's epoch; rejoining above it");
        self.conflict.store(true, Ordering::Relaxed);
        self.behind.notify_one();
    }

    pub fn snapshot(&self) -> Arc<ShardOwnership> {
        self.current.load_full()
    }

    /// Feeds the ownership and publishes the result to readers when it may have changed.
    fn feed(&self, input: OwnershipInput) -> Vec<OwnershipEffect> {
        let tick = input == OwnershipInput::Tick;
        self.update(|ownership| {
            let effects = ownership.handle(now_ms(), input);
            (effects.is_empty() && tick, effects)
        })
    }

    /// Changes the ownership and publishes the result to readers unless told it is unchanged.
    fn update<R>(&self, change: impl FnOnce(&mut ShardOwnership) -> (bool, R)) -> R {
        let mut ownership = self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (unchanged, result) = change(&mut ownership);
        if !unchanged {
            self.current.store(Arc::new(ownership.clone()));
            self.changed.notify_waiters();
        }
        result
    }
}

impl OwnershipGate for ShardTable {
    fn owns(&self, tenant: &TenantId) -> bool {
        self.current.load().state(shard_of(tenant), now_ms()) == ShardState::Active
    }
}

/// How requests meeting a moving shard are held.
#[derive(Debug, Clone, Copy)]
pub struct HoldConfig {
    /// How long one request may be held at most before it is answered "unavailable, retry".
    pub deadline: Duration,
    /// Requests held at once at most; more are answered at once.
    pub max_held: usize,
}

impl Default for HoldConfig {
    fn default() -> Self {
        Self { deadline: Duration::from_secs(5), max_held: 10_000 }
    }
}

/// Requests held for moving shards: counts for the metrics.
#[derive(Debug, Default)]
pub struct HoldCounts {
    /// Requests that were held at least once.
    pub held: std::sync::atomic::AtomicU64,
    /// Held requests released to an owner in time.
    pub flushed: std::sync::atomic::AtomicU64,
    /// Held requests answered "unavailable" (deadline passed, or too many held).
    pub expired: std::sync::atomic::AtomicU64,
    /// The longest hold so far, in microseconds.
    pub longest_micros: std::sync::atomic::AtomicU64,
    /// Requests held right now.
    now: std::sync::atomic::AtomicUsize,
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
    hold: HoldConfig,
    hold_counts: HoldCounts,
    hand_off_counts: HandOffCounts,
    owner_calls: OwnerCalls,
}

/// Calls to tenants' owners other than admissions, by kind: what a request costs beyond its one
/// admission (admissions are counted per request, `connectors_tenant_requests_total`). Not on
/// the hot path, so a lock is cheap enough.
#[derive(Debug, Default)]
pub struct OwnerCalls(std::sync::Mutex<std::collections::BTreeMap<&'static str, u64>>);

impl OwnerCalls {
    fn count(&self, call: &TenantCall) {
        let mut counts = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *counts.entry(call.kind()).or_default() += 1;
    }

    pub fn counts(&self) -> Vec<(&'static str, u64)> {
        let counts = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        counts.iter().map(|(kind, count)| (*kind, *count)).collect()
    }
}

/// Tenants whose live state crossed a node link at a hand-off: for the metrics.
#[derive(Debug, Default)]
pub struct HandOffCounts {
    /// Released here and kept by their new owner.
    pub sent: std::sync::atomic::AtomicU64,
    /// Kept here, from their previous owner.
    pub received: std::sync::atomic::AtomicU64,
}

/// Tenants' states per hand-off message: a few hundred kilobytes at most.
const HAND_OFF_BATCH: usize = 256;

/// How many tenant records the edge holds at most (all are dropped past the bound).
const HELD_RECORDS_MAX: usize = 100_000;

impl ShardRouter {
    pub fn new(
        table: Arc<ShardTable>,
        directory: Arc<TenantDirectory>,
        links: Option<Arc<Links>>,
        recorder: Recorder,
        hold: HoldConfig,
    ) -> Arc<Self> {
        let audit_counts = Arc::new(AuditCounts::default());
        let outbox =
            links.as_ref().map(|links| AuditOutbox::start(links.clone(), recorder.clone(), audit_counts.clone()));
        let router = Arc::new(Self {
            table,
            directory,
            links,
            held_records: DashMap::new(),
            recorder,
            outbox,
            audit_counts,
            hold,
            hold_counts: HoldCounts::default(),
            hand_off_counts: HandOffCounts::default(),
            owner_calls: OwnerCalls::default(),
        });
        tokio::spawn(drive_ownership(Arc::downgrade(&router)));
        router
    }

    pub fn hold_counts(&self) -> &HoldCounts {
        &self.hold_counts
    }

    pub fn hand_off_counts(&self) -> &HandOffCounts {
        &self.hand_off_counts
    }

    pub fn owner_calls(&self) -> &OwnerCalls {
        &self.owner_calls
    }

    /// Requests sent to owners on other nodes (`None` on a single node).
    pub fn ask_counts(&self) -> Option<&AskCounts> {
        self.links.as_deref().map(Links::ask_counts)
    }

    /// Records an audit event: here when this node serves the tenant (or the owner is not
    /// known), else through the owner, batched (see [`AuditOutbox`]).
    pub async fn record_audit(&self, mut event: AuditEvent) {
        if let Some(outbox) = &self.outbox {
            let ownership = self.table.current.load();
            let shard = shard_of(&event.tenant_id);
            if ownership.state(shard, now_ms()) == ShardState::Elsewhere
                && let Some(owner) = ownership.map().owner(shard)
            {
                // If the owner's answer is lost, this node records the event too: the id lets
                // the store keep one.
                event.event_id.get_or_insert_with(|| format!("{:032x}", connectors_actors::unique_id::unique_id()));
                outbox.push(owner, event);
                return;
            }
        }
        if self.recorder.audit(event).await.is_err() {
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

    /// Asks the owner of `tenant`. A request that meets the tenant's shard while it changes
    /// hands is held until the new owner serves it (bounded in count and time), not refused.
    pub async fn ask(&self, tenant: &TenantId, call: TenantCall) -> Result<TenantReply, RouteError> {
        if !matches!(call, TenantCall::Admit(_)) {
            self.owner_calls.count(&call);
        }
        let shard = shard_of(tenant);
        // A guard, not a counted reference: on the local path the view is needed only for
        // this check, and a shared reference count would bounce between cores per request.
        let state = self.table.current.load().state(shard, now_ms());
        if state == ShardState::Active {
            match self.directory.ask(tenant, &call, AnswerBy::default()).await {
                Err(DirectoryError::NotOwner(_)) => {}
                answer => return Ok(answer?),
            }
        }
        let mut hold = Hold::new(self);
        loop {
            let changed = self.table.changed.notified();
            let now = now_ms();
            let state = self.table.current.load().state(shard, now);
            let moved = match state {
                ShardState::Active => match self.directory.ask(tenant, &call, AnswerBy::default()).await {
                    Err(DirectoryError::NotOwner(_)) => true,
                    answer => return hold.done(answer.map_err(RouteError::from)),
                },
                ShardState::Fenced => {
                    return hold.done(Err(RouteError::Unavailable {
                        reason: "this node lost contact with the cluster's membership table".into(),
                        retry_after: MOVING_RETRY_AFTER_SECS,
                    }));
                }
                ShardState::Acquiring => true,
                ShardState::Elsewhere => match self.forward(tenant, shard, &call).await {
                    Forwarded::Answer(answer) => return hold.done(answer),
                    Forwarded::Moved => true,
                },
            };
            debug_assert!(moved);
            hold.wait(changed, tenant).await?;
        }
    }

    /// Sends the call to the shard's owner in this node's view.
    async fn forward(&self, tenant: &TenantId, shard: crate::shard_map::ShardId, call: &TenantCall) -> Forwarded {
        let ownership = self.table.snapshot();
        let (Some(owner), Some(links)) = (ownership.map().owner(shard), self.links.as_ref()) else {
            // No view yet (or no owner at all): wait for one.
            return Forwarded::Moved;
        };
        let held = self.held_records.get(tenant).map(|entry| entry.value().clone());
        let request = TenantRequest {
            epoch: ownership.epoch(),
            tenant: tenant.clone(),
            call: call.clone(),
            held_record: held.as_ref().map(|(fingerprint, _)| *fingerprint),
            answer_by_ms: Some(
                now_ms().saturating_add(i64::try_from(links.deadline().as_millis()).unwrap_or(i64::MAX)),
            ),
        };
        let held = held.map(|(_, record)| record);
        let answer = match links.ask(owner, request).await {
            Ok(answer) => Ok(answer.into_reply(held)),
            // A call that may have reached the owner is never repeated: it may have been admitted.
            Err(Unanswered { error, late: Some(answer) }) => {
                let late = LateReply { answer, held };
                return Forwarded::Answer(Err(RouteError::Unanswered { reason: error.to_string(), late }));
            }
            Err(Unanswered { error, late: None }) => Err(error),
        };
        Forwarded::Answer(match answer {
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
                tracing::debug!(%tenant, %node, epoch, "owner in our view does not serve the tenant yet");
                return Forwarded::Moved;
            }
            // Not sent: the link to a new owner may still be coming up.
            Err(LinkError::NotConnected(_)) => return Forwarded::Moved,
            Ok(Err(refusal)) => Err(unavailable(refusal.to_string())),
            Err(error) => Err(unavailable(error.to_string())),
        })
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

    /// Installs a new view: its shard map, its members (of any status) and the time before which
    /// shards acquired in it may not be served (see `Membership::takeover_not_before_ms`).
    pub fn install(
        self: &Arc<Self>,
        map: ShardMap,
        members: Vec<NodeId>,
        takeover_not_before_ms: i64,
        fingerprint: u64,
    ) {
        // Hand-offs of the previous view may no longer be current; the store is.
        self.directory.forget_hand_offs();
        self.feed(OwnershipInput::View { map, members, takeover_not_before_ms, fingerprint });
    }

    /// This node may admit until then (ms since the Unix epoch).
    pub fn renew_lease(self: &Arc<Self>, until_ms: i64) {
        if self.table.current.load().lease_until_ms() != until_ms {
            self.feed(OwnershipInput::Lease { until_ms });
        }
    }

    fn feed(self: &Arc<Self>, input: OwnershipInput) {
        let effects = self.table.feed(input);
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
                OwnershipEffect::LeaseLost => {
                    tracing::warn!(
                        active = self.directory.active(),
                        "lease lost (no membership read for too long): writing tenant actors out, serving nothing until the shards are acquired again"
                    );
                    // At once, before any release or activation the effects that follow queue.
                    self.directory.write_out_all();
                }
                OwnershipEffect::AllActive { epoch, shards } => {
                    tracing::info!(epoch, shards, "serving every shard this node owns");
                    self.directory.activate_handed_over();
                    self.directory.wake_credential_holders();
                }
            }
        }
    }

    async fn release_unowned(self: Arc<Self>, epoch: u64) {
        let input = match self.directory.release_unowned().await {
            Ok(hand_offs) => {
                if !hand_offs.is_empty() {
                    let released = hand_offs.len();
                    let shipped = self.ship(hand_offs).await;
                    tracing::info!(epoch, released, shipped, "handed tenants of moved shards over to their new owners");
                }
                OwnershipInput::Released { epoch }
            }
            // Shutting down: the actors are stopped already, there is nothing left to release.
            Err(_) if self.directory.stopped() => return,
            Err(error) => {
                tracing::warn!(epoch, %error, "cannot release moved tenants yet; retrying");
                OwnershipInput::ReleaseFailed { epoch }
            }
        };
        self.feed(input);
    }

    /// Sends released tenants' state to their owners in the current view, before the release is
    /// confirmed to them. Best effort: what does not arrive, the new owner reads from the store
    /// (committed before this). Answers how many the owners kept.
    async fn ship(&self, hand_offs: Vec<TenantHandOff>) -> usize {
        let Some(links) = self.links.clone() else { return 0 };
        let ownership = self.table.snapshot();
        let mut by_owner: std::collections::BTreeMap<NodeId, Vec<TenantHandOff>> = Default::default();
        for hand_off in hand_offs {
            if let Some(owner) = ownership.map().owner_of(&hand_off.record.id) {
                by_owner.entry(owner.clone()).or_default().push(hand_off);
            }
        }
        let mut sending = tokio::task::JoinSet::new();
        for (owner, tenants) in by_owner {
            for chunk in tenants.chunks(HAND_OFF_BATCH) {
                let batch = HandOffBatch { epoch: ownership.epoch(), tenants: chunk.to_vec() };
                let (links, owner) = (links.clone(), owner.clone());
                sending.spawn(async move {
                    match links.hand_off(&owner, &batch).await {
                        Ok(answer) => answer.kept,
                        Err(error) => {
                            tracing::debug!(peer = %owner, %error, "hand-off not delivered; the owner reads the store");
                            0
                        }
                    }
                });
            }
        }
        let mut kept = 0;
        while let Some(sent) = sending.join_next().await {
            kept += sent.unwrap_or(0);
        }
        self.hand_off_counts.sent.fetch_add(kept as u64, Ordering::Relaxed);
        kept
    }

    async fn ask_release(self: Arc<Self>, peer: NodeId, epoch: u64) {
        let Some(links) = self.links.clone() else { return };
        let ownership = self.table.snapshot();
        if ownership.epoch() != epoch {
            // A newer view came meanwhile; its own asks are on their way.
            return;
        }
        let request = ReleaseRequest { from: ownership.me().clone(), epoch, view: Some(ownership.fingerprint()) };
        let input = match links.release(&peer, &request).await {
            Ok(ReleaseAnswer::Released) => OwnershipInput::Confirmed { peer, epoch },
            Ok(ReleaseAnswer::Conflict { .. }) => {
                self.table.report_conflict();
                OwnershipInput::NotConfirmed { peer, epoch }
            }
            Ok(ReleaseAnswer::NotYet { epoch: theirs }) => {
                if theirs > epoch {
                    self.table.behind.notify_one();
                }
                OwnershipInput::NotConfirmed { peer, epoch }
            }
            Err(error) => {
                tracing::debug!(%peer, epoch, %error, "release not confirmed yet");
                OwnershipInput::NotConfirmed { peer, epoch }
            }
        };
        self.feed(input);
    }

    /// A draining node has nothing left to hand off.
    pub fn handed_off(&self) -> bool {
        self.table.current.load().handed_off()
    }
}

/// Time for the ownership: asks are repeated and takeovers happen from its ticks.
async fn drive_ownership(router: std::sync::Weak<ShardRouter>) {
    let every = Duration::from_millis(OwnershipConfig::default().retry_ms.unsigned_abs());
    loop {
        tokio::time::sleep(every).await;
        let Some(router) = router.upgrade() else { return };
        router.feed(OwnershipInput::Tick);
    }
}

#[expect(clippy::large_enum_variant, reason = "a return value that lives briefly; boxing would allocate per request")]
enum Forwarded {
    Answer(Result<TenantReply, RouteError>),
    /// The owner in this node's view does not serve the tenant (yet); nothing was admitted.
    Moved,
}

/// One request held while its tenant's shard changes hands.
struct Hold<'a> {
    router: &'a ShardRouter,
    started: Instant,
    counted: bool,
}

impl<'a> Hold<'a> {
    fn new(router: &'a ShardRouter) -> Self {
        Self { router, started: Instant::now(), counted: false }
    }

    /// Waits for the ownership to change (or a short while: a remote owner's progress is not
    /// published here); fails once the deadline has passed or too many requests are held.
    async fn wait(&mut self, changed: tokio::sync::futures::Notified<'_>, tenant: &TenantId) -> Result<(), RouteError> {
        let counts = &self.router.hold_counts;
        if !self.counted {
            self.counted = true;
            counts.held.fetch_add(1, Ordering::Relaxed);
            if counts.now.fetch_add(1, Ordering::Relaxed) >= self.router.hold.max_held {
                return self.expire(tenant);
            }
        }
        let Some(left) = self.router.hold.deadline.checked_sub(self.started.elapsed()) else {
            return self.expire(tenant);
        };
        // A change or the poll interval, alike: the caller looks at the table again.
        tokio::time::timeout(left.min(HOLD_POLL), changed).await.ok();
        Ok(())
    }

    fn expire(&mut self, tenant: &TenantId) -> Result<(), RouteError> {
        self.router.hold_counts.expired.fetch_add(1, Ordering::Relaxed);
        self.release();
        Err(RouteError::moving(tenant))
    }

    fn done<T>(mut self, answer: Result<T, RouteError>) -> Result<T, RouteError> {
        if self.counted {
            let counts = &self.router.hold_counts;
            counts.flushed.fetch_add(1, Ordering::Relaxed);
            let micros = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
            counts.longest_micros.fetch_max(micros, Ordering::Relaxed);
            self.release();
        }
        answer
    }

    fn release(&mut self) {
        if std::mem::take(&mut self.counted) {
            self.router.hold_counts.now.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        self.release();
    }
}

/// How long a hand-off from a node at a newer view waits for this node to read that view.
const CATCH_UP: Duration = Duration::from_secs(1);

/// How often a held request looks again when nothing is published here.
const HOLD_POLL: Duration = Duration::from_millis(20);

/// Until when the owner may count `request`'s admission: a quarter of a link's deadline before its
/// asker stops waiting, so that the answer has that long to reach it (one that arrives after the
/// asker gave up would be billed and never audited). The asker stops waiting a link's deadline
/// after it sent the call, on its wall clock (the call may have waited in this node's socket while
/// the node was paused), or, from an older sender that does not say, after this node received it.
/// The two wall clocks are taken to agree to well within a deadline.
fn answer_by(deadline: Duration, request: &TenantRequest) -> Instant {
    let received = Instant::now();
    let asker_waits = match request.answer_by_ms {
        Some(by) => Duration::from_millis(u64::try_from(by.saturating_sub(now_ms())).unwrap_or(0)).min(deadline),
        None => deadline,
    };
    received + asker_waits.saturating_sub(deadline / 4)
}

fn unavailable(reason: String) -> RouteError {
    RouteError::Unavailable { reason, retry_after: MOVING_RETRY_AFTER_SECS }
}

#[async_trait]
impl RegionHandler for ShardRouter {
    async fn ask(&self, payload: Vec<u8>) -> Vec<u8> {
        let answer = match wire::decode::<TenantRequest>(&payload) {
            Ok(request) => self.answer(request).await,
            Err(wire::WireError::UnsupportedVersion(version)) => {
                TenantAnswer::Err(Refusal::UnsupportedVersion(version))
            }
            Err(error) => TenantAnswer::Err(Refusal::Unavailable(error.to_string())),
        };
        wire::encode(&answer)
    }

    async fn ask_batch(&self, payload: Vec<u8>) -> Vec<u8> {
        // Compact, or JSON from a node of a version before the compact form; answered alike.
        let compact_body = compact::compact_body(&payload);
        let requests = match compact_body {
            Some(body) => compact::decode_batch(body),
            None => wire::decode::<Vec<TenantRequest>>(&payload),
        };
        let answers = match requests {
            Ok(requests) => futures_util::future::join_all(requests.into_iter().map(|r| self.answer(r))).await,
            // No answers: the sender fails each of the batch's requests.
            Err(error) => {
                tracing::warn!(%error, "undecodable batch of tenant requests from a peer");
                Vec::new()
            }
        };
        match compact_body {
            Some(_) => compact::encode_answers(&answers),
            None => wire::encode(&answers),
        }
    }

    async fn release(&self, payload: Vec<u8>) -> Vec<u8> {
        let answer = match wire::decode::<ReleaseRequest>(&payload) {
            Ok(request) => {
                let (verdict, epoch) = self.table.update(|ownership| {
                    let verdict = ownership.answer_release(&request.from, request.epoch, request.view);
                    // Only a confirmation changes what readers see (a draining node's progress).
                    (verdict != ReleaseVerdict::Released, (verdict, ownership.epoch()))
                });
                match verdict {
                    ReleaseVerdict::Released => ReleaseAnswer::Released,
                    ReleaseVerdict::Conflict => {
                        self.table.report_conflict();
                        ReleaseAnswer::Conflict { epoch }
                    }
                    ReleaseVerdict::NotYet => {
                        if request.epoch > epoch {
                            self.table.behind.notify_one();
                        }
                        ReleaseAnswer::NotYet { epoch }
                    }
                }
            }
            Err(_) => ReleaseAnswer::NotYet { epoch: self.table.snapshot().epoch() },
        };
        wire::encode(&answer)
    }

    async fn audit(&self, payload: Vec<u8>) -> Vec<u8> {
        // Recorded whether or not this node still owns the tenants: the store is shared, and
        // refusing would only make the sender record them instead.
        let batch = match compact::compact_body(&payload) {
            Some(body) => compact::decode_audit(body),
            None => wire::decode::<AuditBatch>(&payload),
        };
        let answer = match batch {
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

    async fn hand_off(&self, payload: Vec<u8>) -> Vec<u8> {
        let answer = match wire::decode_hand_offs(&payload) {
            Ok(batch) => {
                // The sender moved to the view first: read it too before deciding.
                self.catch_up(batch.epoch).await;
                let (table, epoch) = (self.table.clone(), batch.epoch);
                // Only for shards this node is still acquiring in that very view: once a shard is
                // served, its tenants may have started from the store, which is then newer.
                let acquiring = move |tenant: &TenantId| {
                    let ownership = table.current.load();
                    ownership.epoch() == epoch && ownership.state(shard_of(tenant), now_ms()) == ShardState::Acquiring
                };
                let kept = self.directory.accept_hand_offs(batch.tenants, Box::new(acquiring)).await;
                self.hand_off_counts.received.fetch_add(kept as u64, Ordering::Relaxed);
                HandOffAnswer { kept }
            }
            Err(error) => {
                tracing::warn!(%error, "undecodable hand-off from a peer; its tenants start from the store");
                HandOffAnswer { kept: 0 }
            }
        };
        wire::encode(&answer)
    }

    fn epoch(&self) -> u64 {
        self.table.snapshot().epoch()
    }
}

impl ShardRouter {
    /// The owner's answer to a peer's request for one of its tenants.
    async fn answer(&self, request: TenantRequest) -> TenantAnswer {
        let answer_by = AnswerBy(self.links.as_ref().map(|links| answer_by(links.deadline(), &request)));
        let ownership = self.table.snapshot();
        let state = ownership.state(shard_of(&request.tenant), now_ms());
        let reply = if state == ShardState::Active {
            match self.directory.ask(&request.tenant, &request.call, answer_by).await {
                Err(DirectoryError::NotOwner(_)) => {
                    let now = self.table.snapshot();
                    Err(Refusal::NotOwner { node: now.me().clone(), epoch: now.epoch() })
                }
                reply => reply.map_err(Refusal::from),
            }
        } else if state == ShardState::Fenced {
            Err(Refusal::Unavailable("the owner lost contact with the cluster's membership table".into()))
        } else {
            if request.epoch > ownership.epoch() {
                self.table.behind.notify_one();
            }
            Err(Refusal::NotOwner { node: ownership.me().clone(), epoch: ownership.epoch() })
        };
        TenantAnswer::to_sender(reply, request.held_record)
    }

    /// Waits (briefly) until this node holds view `epoch` or a newer one.
    async fn catch_up(&self, epoch: u64) {
        let deadline = Instant::now() + CATCH_UP;
        loop {
            let changed = self.table.changed.notified();
            if self.table.current.load().epoch() >= epoch || Instant::now() >= deadline {
                return;
            }
            self.table.behind.notify_one();
            // A change or the poll interval, alike: the loop looks at the table again.
            tokio::time::timeout(HOLD_POLL, changed).await.ok();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(answer_by_ms: Option<i64>) -> TenantRequest {
        TenantRequest {
            epoch: 1,
            tenant: TenantId::parse("acme").unwrap(),
            call: TenantCall::Snapshot,
            held_record: None,
            answer_by_ms,
        }
    }

    #[test]
    fn a_call_is_late_by_its_askers_deadline_even_when_just_received() {
        let deadline = Duration::from_secs(2);
        // Sent 5 s ago with a 2 s deadline: it waited in the socket of a paused node.
        let stale = answer_by(deadline, &request(Some(now_ms() - 3_000)));
        std::thread::sleep(Duration::from_millis(2));
        assert!(AnswerBy(Some(stale)).has_passed());
        // Sent just now: a quarter of a deadline before the asker's, so the answer has time to arrive.
        let fresh = answer_by(deadline, &request(Some(now_ms() + 2_000)));
        assert!(fresh > Instant::now() + Duration::from_millis(1_400));
        assert!(fresh <= Instant::now() + Duration::from_millis(1_500));
        // From a sender that does not say: the same, counted from the receipt.
        let unsaid = answer_by(deadline, &request(None));
        assert!(unsaid > Instant::now() + Duration::from_millis(1_400));
        assert!(unsaid <= Instant::now() + Duration::from_millis(1_500));
    }
}
