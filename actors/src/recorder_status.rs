//! What the recorder shows of itself, for `/readyz` and `/metrics`: the recorder task
//! publishes a snapshot after every change, readers load it without waiting on the task.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The recorder's state at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecorderState {
    /// Estimated memory of what waits to be committed.
    pub pending_bytes: u64,
    /// Whether arriving audit events are dropped now (the pending bytes reached the bound).
    pub shedding: bool,
    /// Audit events dropped since start.
    pub shed_events: u64,
    /// Batches set aside since start because the store kept refusing them.
    pub quarantined_batches: u64,
}

/// The latest [`RecorderState`], shared.
#[derive(Debug, Default)]
pub struct RecorderStatus {
    pending_bytes: AtomicU64,
    shedding: AtomicBool,
    shed_events: AtomicU64,
    quarantined_batches: AtomicU64,
}

impl RecorderStatus {
    /// The latest state; its fields are each current, not necessarily of the same instant.
    pub fn state(&self) -> RecorderState {
        RecorderState {
            pending_bytes: self.pending_bytes.load(Ordering::Relaxed),
            shedding: self.shedding.load(Ordering::Relaxed),
            shed_events: self.shed_events.load(Ordering::Relaxed),
            quarantined_batches: self.quarantined_batches.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn publish(&self, state: RecorderState) {
        self.pending_bytes.store(state.pending_bytes, Ordering::Relaxed);
        self.shedding.store(state.shedding, Ordering::Relaxed);
        self.shed_events.store(state.shed_events, Ordering::Relaxed);
        self.quarantined_batches.store(state.quarantined_batches, Ordering::Relaxed);
    }
}
