//! `AuditOutbox`: audit events of tenants another node owns, on their way back to the owner
//! (the edge serves, the owner records). They are batched per owner and sent every few
//! milliseconds, off the request path. An owner that cannot take a batch (no link, a timeout,
//! an older node) leaves it to this node's own recorder, so no event is silently lost; after a
//! timeout the owner may have recorded the batch too: each event carries an id, and the store
//! keeps the first record of an id (for a day), so it is in the log once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use connectors_actors::audit::AuditEvent;
use connectors_actors::recorder::Recorder;
use tokio::sync::Notify;

use crate::shard_map::NodeId;
use crate::transport::links::Links;
use crate::transport::wire::{AuditAnswer, AuditBatch};

/// How often pending events are sent.
const SEND_EVERY: Duration = Duration::from_millis(20);
/// Events per batch at most; an owner with this many pending is sent to at once.
const BATCH_MAX: usize = 512;

/// Audit events by where they were recorded, for `/metrics`.
#[derive(Debug, Default)]
pub struct AuditCounts {
    /// Sent to their tenant's owner, which recorded them.
    pub sent: AtomicU64,
    /// Received from other nodes for tenants this node owns, and recorded.
    pub received: AtomicU64,
    /// Of tenants owned elsewhere, recorded here because the owner could not take them.
    pub kept: AtomicU64,
}

pub struct AuditOutbox {
    pending: Mutex<HashMap<NodeId, Vec<AuditEvent>>>,
    full: Arc<Notify>,
    links: Arc<Links>,
    recorder: Recorder,
    counts: Arc<AuditCounts>,
}

impl AuditOutbox {
    /// Starts the sending task; it ends when the outbox is dropped.
    pub fn start(links: Arc<Links>, recorder: Recorder, counts: Arc<AuditCounts>) -> Arc<Self> {
        let full = Arc::new(Notify::new());
        let outbox = Arc::new(Self { pending: Mutex::default(), full: full.clone(), links, recorder, counts });
        tokio::spawn(send_pending(Arc::downgrade(&outbox), full));
        outbox
    }

    /// Queues `event` for `owner`.
    pub fn push(&self, owner: &NodeId, event: AuditEvent) {
        let mut pending = self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // The owner's id is cloned only for its first event since the last send.
        let Some(events) = pending.get_mut(owner) else {
            pending.insert(owner.clone(), vec![event]);
            return;
        };
        events.push(event);
        if events.len() >= BATCH_MAX {
            self.full.notify_one();
        }
    }

    /// Sends everything pending now (or records it here); returns when that is done.
    pub async fn flush(&self) {
        let pending = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        for (owner, mut events) in pending {
            while !events.is_empty() {
                let rest = events.split_off(events.len().min(BATCH_MAX));
                let batch = AuditBatch { events: std::mem::replace(&mut events, rest) };
                if let Err(batch) = self.send(&owner, batch).await {
                    // One failure is enough: the rest would likely wait out the same deadline.
                    self.keep(batch.events.into_iter().chain(std::mem::take(&mut events))).await;
                }
            }
        }
    }

    /// Sends `batch` to `owner`; gives it back when the owner did not record it.
    async fn send(&self, owner: &NodeId, batch: AuditBatch) -> Result<(), AuditBatch> {
        let count = batch.events.len();
        let reason = match self.links.audit(owner, &batch).await {
            Ok(AuditAnswer::Recorded) => {
                self.counts.sent.fetch_add(count as u64, Ordering::Relaxed);
                return Ok(());
            }
            Ok(AuditAnswer::NotRecorded) => "the owner did not record them".to_string(),
            Err(error) => error.to_string(),
        };
        tracing::warn!(%owner, events = count, %reason, "audit events recorded here instead of by their owner");
        Err(batch)
    }

    /// Records events of other nodes' tenants with this node's recorder.
    async fn keep(&self, events: impl Iterator<Item = AuditEvent>) {
        for event in events {
            if self.recorder.audit(event).await.is_err() {
                tracing::error!("recorder stopped; audit event not recorded");
                return;
            }
            self.counts.kept.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn send_pending(outbox: Weak<AuditOutbox>, full: Arc<Notify>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(SEND_EVERY) => {}
            _ = full.notified() => {}
        }
        let Some(outbox) = outbox.upgrade() else { return };
        outbox.flush().await;
    }
}
