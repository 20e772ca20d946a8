//! The tenant requests on their way to one peer, sent as batches: one message per scheduling
//! tick instead of one per request, answered by one message. The first request queued starts a
//! flush, which yields once, so that the tasks about to ask the same peer queue theirs too, then
//! takes the queue whole; requests queued while a batch is on its way start the next one
//! (batches are pipelined, never waited for). Under load this turns dozens of messages, each with
//! its own frame, write and wake-ups on both nodes, into one; alone, a request goes as a batch of
//! one.

use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use tokio::sync::oneshot;

use super::compact::CompactRequest;
use super::late_answers::Unanswered;
use super::wire::TenantAnswer;

/// Requests per message at most: a longer queue goes as several messages.
pub(super) const MAX_BATCH: usize = 256;

/// A request, in the batch's compact form, and where its answer goes.
pub(super) struct QueuedAsk {
    pub(super) request: CompactRequest,
    pub(super) answer: oneshot::Sender<Result<TenantAnswer, Unanswered>>,
}

#[derive(Default)]
pub(super) struct AskQueue(Mutex<Vec<QueuedAsk>>);

impl AskQueue {
    /// Queues `ask`. True when the queue was empty: the caller starts the flush that takes it.
    pub(super) fn push(&self, ask: QueuedAsk) -> bool {
        let mut queue = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        queue.push(ask);
        queue.len() == 1
    }

    pub(super) fn take(&self) -> Vec<QueuedAsk> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }
}

/// Whether the peer at the other end of a link reads batches: asked once per link, with an
/// empty batch (a node of a version before batches drops it, and the ask times out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Batching {
    Unknown,
    Probing,
    Yes,
    /// Requests go one by one, as to every node before batches.
    No,
}

/// Requests this node sent to their tenants' owners, for the metrics.
#[derive(Debug, Default)]
pub struct AskCounts {
    /// Sent one per message, to a peer that does not read batches (or before it was asked).
    pub alone: AtomicU64,
    /// Sent in batches.
    pub batched: AtomicU64,
    /// Batches sent: `batched / batches` is the mean batch size.
    pub batches: AtomicU64,
    /// Batched requests that got no answer within the link's deadline (their clients were
    /// answered 503).
    pub timed_out: AtomicU64,
    /// Of those, answered after all (see [`super::late_answers`]).
    pub answered_late: AtomicU64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask() -> (QueuedAsk, oneshot::Receiver<Result<TenantAnswer, Unanswered>>) {
        let (answer, answered) = oneshot::channel();
        (QueuedAsk { request: CompactRequest::Json(b"{}".to_vec()), answer }, answered)
    }

    #[test]
    fn only_the_first_request_after_a_take_starts_a_flush_and_a_take_gets_them_all() {
        let queue = AskQueue::default();
        let (first, _a) = ask();
        let (second, _b) = ask();
        let (third, _c) = ask();
        assert!(queue.push(first), "the first request starts the flush");
        assert!(!queue.push(second), "a flush is already on its way");
        assert!(!queue.push(third));
        assert_eq!(queue.take().len(), 3);
        assert!(queue.take().is_empty());
        let (fourth, _d) = ask();
        assert!(queue.push(fourth), "after a take, the next request starts the next flush");
    }
}
