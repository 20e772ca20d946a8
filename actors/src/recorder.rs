//! The recorder: audit events, usage and checkpoints written off the request path, in batches.
//!
//! Group commit: entries queue in a bounded channel; one task gathers them and commits them to
//! the [`Store`] in one transaction when the batch is full or `flush_interval` has passed,
//! whichever comes first. A full queue makes callers wait (back-pressure).
//!
//! When commits fail, the failed batches are held and tried again in rounds
//! (`commit_round`), later and later while nothing commits; a batch the store keeps
//! refusing is set aside whole with the [`QuarantineSink`], logged and counted, so that the
//! batches after it go through. What the recorder holds is bounded in bytes
//! (`max_pending_bytes`): past the bound it drops arriving audit events, never usage or
//! checkpoints, and counts them (`shedding`). This file is the task that does it; the decisions
//! are in those modules and `recorder_pending`. What a crash can lose: entries queued or held but
//! not yet committed.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::audit::AuditEvent;
use crate::commit_round::{Backoff, Round};
use crate::quarantine::QuarantineSink;
use crate::recorder_pending::Pending;
use crate::recorder_status::{RecorderState, RecorderStatus};
use crate::reply::Answer;
use crate::shedding::Offer;
use crate::store::{Batch, Checkpoint, Store, StoreError, UsageDelta};
use crate::tenant::TenantId;

#[derive(Debug, Clone, Copy)]
pub struct RecorderConfig {
    pub flush_interval: Duration,
    pub max_batch: usize,
    pub queue: usize,
    /// What may wait uncommitted, estimated in bytes; past it audit events are dropped.
    pub max_pending_bytes: usize,
}

enum Entry {
    /// Boxed: an audit event is large, and a queue slot is as large as its largest entry.
    Record(Box<Record>),
    /// Commit now if anything of this tenant (or of anyone, with `None`) is waiting.
    Flush(Option<TenantId>, oneshot::Sender<Result<(), StoreError>>),
}

enum Record {
    Audit(AuditEvent),
    Usage(UsageDelta),
    Checkpoint(TenantId, Checkpoint),
}

/// A handle to the recorder task; cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Entry>,
    status: Arc<RecorderStatus>,
}

#[derive(Debug, thiserror::Error)]
#[error("the recorder has stopped")]
pub struct RecorderStopped;

impl Recorder {
    /// Starts the recorder task. It ends, after a last commit, when every handle is dropped.
    /// Batches the store keeps refusing go to `quarantine`. A batch holds at most
    /// `config.max_batch` audit events, and no more than the store takes in one commit.
    pub fn start(
        store: Arc<dyn Store>,
        quarantine: Arc<dyn QuarantineSink>,
        config: RecorderConfig,
    ) -> (Self, JoinHandle<()>) {
        let config = RecorderConfig { max_batch: config.max_batch.min(store.max_commit_events()), ..config };
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        let status = Arc::new(RecorderStatus::default());
        let task = Task {
            store,
            quarantine,
            config,
            pending: Pending::new(config.max_pending_bytes),
            backoff: Backoff::new(config.flush_interval),
            quarantined: 0,
            status: status.clone(),
        };
        (Self { tx, status }, tokio::spawn(task.run(rx)))
    }

    /// Whether it sheds, what it holds and what it set aside.
    pub fn state(&self) -> RecorderState {
        self.status.state()
    }

    /// Queues `event`; it is dropped (and counted) while the recorder sheds.
    pub async fn audit(&self, event: AuditEvent) -> Result<(), RecorderStopped> {
        self.record(Record::Audit(event)).await
    }

    pub async fn usage(&self, delta: UsageDelta) -> Result<(), RecorderStopped> {
        self.record(Record::Usage(delta)).await
    }

    pub async fn checkpoint(&self, tenant: TenantId, checkpoint: Checkpoint) -> Result<(), RecorderStopped> {
        self.record(Record::Checkpoint(tenant, checkpoint)).await
    }

    async fn record(&self, record: Record) -> Result<(), RecorderStopped> {
        self.tx.send(Entry::Record(Box::new(record))).await.map_err(|_| RecorderStopped)
    }

    /// Commits everything queued before this call; returns once it is durable (or set aside).
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.request_flush(None).await
    }

    /// Makes the usage and checkpoints queued for `tenant` durable (a barrier before reloading
    /// the tenant); cheap when nothing of it is waiting.
    pub async fn flush_tenant(&self, tenant: &TenantId) -> Result<(), StoreError> {
        self.request_flush(Some(tenant.clone())).await
    }

    async fn request_flush(&self, tenant: Option<TenantId>) -> Result<(), StoreError> {
        let (reply, done) = oneshot::channel();
        let stopped = || StoreError::Backend("the recorder has stopped".into());
        self.tx.send(Entry::Flush(tenant, reply)).await.map_err(|_| stopped())?;
        done.await.map_err(|_| stopped())?
    }
}

/// The recorder task.
struct Task {
    store: Arc<dyn Store>,
    quarantine: Arc<dyn QuarantineSink>,
    config: RecorderConfig,
    pending: Pending,
    backoff: Backoff,
    /// Batches set aside so far.
    quarantined: u64,
    status: Arc<RecorderStatus>,
}

impl Task {
    async fn run(mut self, mut rx: mpsc::Receiver<Entry>) {
        let mut ticker = tokio::time::interval(self.config.flush_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                entry = rx.recv() => match entry {
                    None => break,
                    Some(Entry::Flush(tenant, reply)) => {
                        reply.answer(self.flush(tenant).await);
                    }
                    Some(Entry::Record(record)) => {
                        self.add(*record);
                        // Not while backing off: a failing store is not tried again per entry.
                        if self.pending.gathered_full(self.config.max_batch) && self.backoff.ready(Instant::now()) {
                            self.round().await;
                        }
                    }
                },
                _ = ticker.tick() => {
                    if self.backoff.ready(Instant::now()) {
                        self.round().await;
                    }
                }
            }
        }
        // Every handle is gone: commit what is left, retrying a few times before giving up loudly.
        for attempt in 1..=5 {
            self.round().await;
            if self.pending.is_empty() {
                return;
            }
            tokio::time::sleep(self.config.flush_interval * attempt).await;
        }
        tracing::error!(entries = self.pending.entries(), "recorder stopped with entries it could not commit");
    }

    fn add(&mut self, record: Record) {
        match record {
            Record::Audit(event) => {
                if self.pending.add_audit(event) == (Offer::Shed { started: true }) {
                    tracing::warn!(
                        pending_bytes = self.pending.bytes(),
                        max_pending_bytes = self.pending.max_bytes(),
                        "recorder: what waits uncommitted reached its bound; dropping new audit events \
                         (usage and rate checkpoints are kept) until the store takes commits again"
                    );
                }
            }
            Record::Usage(delta) => self.pending.add_usage(delta),
            Record::Checkpoint(tenant, checkpoint) => self.pending.add_checkpoint(tenant, checkpoint),
        }
        self.publish();
    }

    /// A round for a flush, whether or not the back-off has passed: `Ok` once nothing of
    /// `tenant` (of anyone, with `None`) waits any more.
    async fn flush(&mut self, tenant: Option<TenantId>) -> Result<(), StoreError> {
        let waits = |pending: &Pending| tenant.as_ref().map_or(!pending.is_empty(), |t| pending.holds(t));
        if !waits(&self.pending) {
            return Ok(());
        }
        let error = self.round().await;
        if !waits(&self.pending) {
            return Ok(());
        }
        Err(error.unwrap_or_else(|| StoreError::Backend("the recorder could not commit everything".into())))
    }

    /// One round (see `commit_round`); answers its last error.
    async fn round(&mut self) -> Option<StoreError> {
        let mut round = Round::default();
        let mut at = 0;
        while round.goes_on() {
            let Some(batch) = self.pending.batch(at, self.config.max_batch) else { break };
            match self.store.commit(batch.clone()).await {
                Ok(()) => {
                    self.pending.release(at);
                    round.committed();
                }
                // Refused for what it holds: again would be the same.
                Err(error) if !error.is_transient() => {
                    if self.set_aside(&batch, &error).await {
                        self.pending.release(at);
                    } else {
                        round.failed(at, error);
                        at += 1;
                    }
                }
                Err(error) => {
                    tracing::error!(
                        %error,
                        batch = %name(&batch),
                        entries = self.pending.entries(),
                        pending_bytes = self.pending.bytes(),
                        "recorder commit failed; holding the batch to retry"
                    );
                    round.failed(at, error);
                    at += 1;
                }
            }
        }
        // The latest first: letting go of one leaves the places of those before it as they are.
        for (at, error) in round.strikes().iter().rev() {
            if let Some(batch) = self.pending.strike(*at)
                && self.set_aside(&batch, error).await
            {
                self.pending.release(*at);
            }
        }
        self.backoff.after(&round, Instant::now());
        if let Some(stopped) = self.pending.settle() {
            tracing::warn!(
                shed = stopped.shed,
                shed_total = self.pending.shedding().total(),
                pending_bytes = self.pending.bytes(),
                "recorder: commits go through again; no longer dropping audit events"
            );
        }
        self.publish();
        round.into_error()
    }

    /// Hands `batch` to the quarantine sink; `false` (logged) if it could not take it, and the
    /// batch stays held.
    async fn set_aside(&mut self, batch: &Batch, error: &StoreError) -> bool {
        match self.quarantine.quarantine(batch, error).await {
            Ok(()) => {
                self.quarantined += 1;
                tracing::error!(
                    batch = %name(batch),
                    %error,
                    audit = batch.audit.len(),
                    usage = batch.usage.len(),
                    checkpoints = batch.checkpoints.len(),
                    to = %self.quarantine,
                    quarantined = self.quarantined,
                    "recorder set aside a batch the store keeps refusing; replay it once the cause is fixed"
                );
                true
            }
            Err(sink_error) => {
                tracing::error!(
                    batch = %name(batch),
                    %error,
                    %sink_error,
                    to = %self.quarantine,
                    "recorder cannot set aside a batch the store keeps refusing; holding it"
                );
                false
            }
        }
    }

    fn publish(&self) {
        self.status.publish(RecorderState {
            pending_bytes: self.pending.bytes() as u64,
            shedding: self.pending.shedding().active(),
            shed_events: self.pending.shedding().total(),
            quarantined_batches: self.quarantined,
        });
    }
}

/// A batch's id as the stores and the quarantine file write it.
fn name(batch: &Batch) -> String {
    batch.id.map_or_else(|| "(none)".to_string(), |id| format!("{id:032x}"))
}

#[cfg(test)]
#[path = "recorder_tests.rs"]
pub(crate) mod tests;
