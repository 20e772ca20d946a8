//! Answers that come after their asker stopped waiting. The owner counts an admission (and bills
//! it) only until a while before its asker's deadline, but an owner paused between counting and
//! answering, or an asking node paused while the answer waited in its socket, still makes an
//! answer late. The asker then has told its client the owner did not answer; it is handed the
//! answer when it comes, so that what was billed is also audited.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::oneshot;

use super::links::LinkError;
use super::wire::TenantAnswer;

/// How long a batch that timed out still waits for its answers. A pause longer than this (or a
/// link that breaks meanwhile) loses the answer.
pub const LATE_WAIT: Duration = Duration::from_secs(30);

/// Late answers awaited at once at most, in this process: past it, a request that timed out is
/// not followed (an admission its owner counted late stays unaudited), rather than memory
/// growing with the requests an overloaded owner leaves unanswered.
const AWAITED_MAX: usize = 10_000;
static AWAITED: AtomicUsize = AtomicUsize::new(0);

/// One of the [`AWAITED_MAX`] late answers that may be awaited at once.
#[derive(Debug)]
struct Awaited;

impl Awaited {
    fn take() -> Option<Self> {
        AWAITED.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < AWAITED_MAX).then_some(n + 1)).ok()?;
        Some(Awaited)
    }
}

impl Drop for Awaited {
    fn drop(&mut self) {
        AWAITED.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Why an ask got no answer in time.
#[derive(Debug)]
pub struct Unanswered {
    pub error: LinkError,
    /// When the ask timed out on its way in a batch: its answer, should it come within
    /// [`LATE_WAIT`].
    pub late: Option<LateAnswer>,
}

impl From<LinkError> for Unanswered {
    fn from(error: LinkError) -> Self {
        Self { error, late: None }
    }
}

/// The answer to an ask whose asker stopped waiting; see [`LateAnswer::arrived`].
#[derive(Debug)]
pub struct LateAnswer {
    answer: oneshot::Receiver<TenantAnswer>,
    _awaited: Awaited,
}

impl LateAnswer {
    /// A late answer and where the batch puts it; `None` when [`AWAITED_MAX`] are awaited.
    pub(super) fn channel() -> Option<(oneshot::Sender<TenantAnswer>, Self)> {
        let awaited = Awaited::take()?;
        let (sender, answer) = oneshot::channel();
        Some((sender, Self { answer, _awaited: awaited }))
    }

    /// The answer once it came, or `None` when it did not within [`LATE_WAIT`].
    pub async fn arrived(self) -> Option<TenantAnswer> {
        self.answer.await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_so_many_late_answers_are_awaited_at_once() {
        let awaited: Vec<_> = std::iter::from_fn(LateAnswer::channel).take(AWAITED_MAX + 1).collect();
        assert_eq!(awaited.len(), AWAITED_MAX, "the bound holds");
        assert!(LateAnswer::channel().is_none());
        drop(awaited);
        assert!(LateAnswer::channel().is_some(), "a slot comes back when its answer is dropped");
    }
}
