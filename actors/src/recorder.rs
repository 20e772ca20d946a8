//! The recorder: audit events, usage and checkpoints written off the request path, in batches.
//!
//! Group commit: entries queue in a bounded channel; one task gathers them and commits them to
//! the [`Store`] in one transaction when the batch is full or `flush_interval` has passed,
//! whichever comes first. A failed commit keeps the batch and retries at the next interval, so
//! entries are never dropped silently. A full queue makes callers wait (back-pressure) rather
//! than lose events. What a crash can lose: entries queued but not yet committed, at most one
//! `flush_interval` of them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::audit::AuditEvent;
use crate::store::{Batch, Checkpoint, Store, StoreError, UsageDelta};
use crate::tenant::TenantId;
use crate::usage::UsageCounters;

#[derive(Debug, Clone, Copy)]
pub struct RecorderConfig {
    pub flush_interval: Duration,
    pub max_batch: usize,
    pub queue: usize,
}

enum Entry {
    Audit(AuditEvent),
    Usage(UsageDelta),
    Checkpoint(TenantId, Checkpoint),
    /// Commit now if anything of this tenant (or of anyone, with `None`) is waiting.
    Flush(Option<TenantId>, oneshot::Sender<Result<(), StoreError>>),
}

/// A handle to the recorder task; cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Entry>,
}

#[derive(Debug, thiserror::Error)]
#[error("the recorder has stopped")]
pub struct RecorderStopped;

impl Recorder {
    /// Starts the recorder task. It ends, after a last commit, when every handle is dropped.
    pub fn start(store: Arc<dyn Store>, config: RecorderConfig) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        let task = tokio::spawn(run(store, config, rx));
        (Self { tx }, task)
    }

    pub async fn audit(&self, event: AuditEvent) -> Result<(), RecorderStopped> {
        self.tx.send(Entry::Audit(event)).await.map_err(|_| RecorderStopped)
    }

    pub async fn usage(&self, delta: UsageDelta) -> Result<(), RecorderStopped> {
        self.tx.send(Entry::Usage(delta)).await.map_err(|_| RecorderStopped)
    }

    pub async fn checkpoint(&self, tenant: TenantId, checkpoint: Checkpoint) -> Result<(), RecorderStopped> {
        self.tx.send(Entry::Checkpoint(tenant, checkpoint)).await.map_err(|_| RecorderStopped)
    }

    /// Commits everything queued before this call; returns once it is durable.
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

/// A batch id no other batch of any process gets: a random per-process half and a counter.
fn next_batch_id() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static PROCESS: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    // `RandomState` is seeded from the system's randomness once per process.
    let process = *PROCESS.get_or_init(|| std::collections::hash_map::RandomState::new().build_hasher().finish());
    (u128::from(process) << 64) | u128::from(NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Entries gathered since the last commit. Usage for the same tenant and day is summed and only
/// the newest checkpoint of a tenant is kept, so a batch stays small under load. A batch whose
/// commit failed is kept whole and committed first next time, so order is preserved.
#[derive(Default)]
struct Pending {
    audit: Vec<AuditEvent>,
    usage: HashMap<(TenantId, NaiveDate), UsageCounters>,
    checkpoints: HashMap<TenantId, Checkpoint>,
    failed: Option<Arc<Batch>>,
}

impl Pending {
    fn len(&self) -> usize {
        let failed = self.failed.as_ref().map_or(0, |b| b.audit.len() + b.usage.len() + b.checkpoints.len());
        self.audit.len() + self.usage.len() + self.checkpoints.len() + failed
    }

    fn add(&mut self, entry: Entry) {
        match entry {
            Entry::Audit(event) => self.audit.push(event),
            Entry::Usage(delta) => self.usage.entry((delta.tenant, delta.day)).or_default().add(&delta.counters),
            Entry::Checkpoint(tenant, checkpoint) => {
                self.checkpoints.insert(tenant, checkpoint);
            }
            Entry::Flush(..) => unreachable!("flush requests are answered, not batched"),
        }
    }

    fn holds(&self, tenant: &TenantId) -> bool {
        let in_failed = self.failed.as_ref().is_some_and(|b| {
            b.checkpoints.iter().any(|(t, _)| t == tenant) || b.usage.iter().any(|u| &u.tenant == tenant)
        });
        in_failed || self.checkpoints.contains_key(tenant) || self.usage.keys().any(|(t, _)| t == tenant)
    }

    /// Moves the gathered entries into a batch (no copies).
    fn take_batch(&mut self) -> Batch {
        Batch {
            id: Some(next_batch_id()),
            audit: std::mem::take(&mut self.audit),
            usage: std::mem::take(&mut self.usage)
                .into_iter()
                .map(|((tenant, day), counters)| UsageDelta { tenant, day, counters })
                .collect(),
            checkpoints: std::mem::take(&mut self.checkpoints).into_iter().collect(),
        }
    }

    async fn commit(&mut self, store: &dyn Store) -> Result<(), StoreError> {
        if let Some(failed) = self.failed.clone() {
            store.commit(failed).await.inspect_err(|error| self.log_failure(error))?;
            self.failed = None;
        }
        if self.len() == 0 {
            return Ok(());
        }
        let batch = Arc::new(self.take_batch());
        store.commit(batch.clone()).await.inspect_err(|error| {
            self.failed = Some(batch);
            self.log_failure(error);
        })
    }

    fn log_failure(&self, error: &StoreError) {
        tracing::error!(%error, entries = self.len(), "recorder commit failed; keeping the batch to retry");
    }
}

async fn run(store: Arc<dyn Store>, config: RecorderConfig, mut rx: mpsc::Receiver<Entry>) {
    let mut pending = Pending::default();
    let mut ticker = tokio::time::interval(config.flush_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            entry = rx.recv() => match entry {
                None => break,
                Some(Entry::Flush(tenant, reply)) => {
                    let needed = tenant.is_none_or(|t| pending.holds(&t));
                    let result = if needed { pending.commit(store.as_ref()).await } else { Ok(()) };
                    let _ = reply.send(result);
                }
                Some(entry) => {
                    pending.add(entry);
                    if pending.len() >= config.max_batch {
                        let _ = pending.commit(store.as_ref()).await;
                    }
                }
            },
            _ = ticker.tick() => {
                let _ = pending.commit(store.as_ref()).await;
            }
        }
    }
    // Every handle is gone: commit what is left, retrying a few times before giving up loudly.
    for attempt in 1..=5 {
        if pending.commit(store.as_ref()).await.is_ok() {
            return;
        }
        tokio::time::sleep(config.flush_interval * attempt).await;
    }
    tracing::error!(entries = pending.len(), "recorder stopped with entries it could not commit");
}
