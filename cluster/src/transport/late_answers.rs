//! Answers that come after their asker stopped waiting. The owner counts an admission (and bills
//! it) only until a while before its asker's deadline, but an owner paused between counting and
//! answering, or an asking node paused while the answer waited in its socket, still makes an
//! answer late. The asker then has told its client the owner did not answer; it is handed the
//! answer when it comes, so that what was billed is also audited.

use std::time::Duration;

use tokio::sync::oneshot;

use super::links::LinkError;
use super::wire::TenantAnswer;

/// How long a batch that timed out still waits for its answers. A pause longer than this (or a
/// link that breaks meanwhile) loses the answer.
pub const LATE_WAIT: Duration = Duration::from_secs(30);

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
pub struct LateAnswer(oneshot::Receiver<TenantAnswer>);

impl LateAnswer {
    /// A late answer and where the batch puts it.
    pub(super) fn channel() -> (oneshot::Sender<TenantAnswer>, Self) {
        let (sender, receiver) = oneshot::channel();
        (sender, Self(receiver))
    }

    /// The answer once it came, or `None` when it did not within [`LATE_WAIT`].
    pub async fn arrived(self) -> Option<TenantAnswer> {
        self.0.await.ok()
    }
}
