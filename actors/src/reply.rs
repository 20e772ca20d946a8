//! Answers to callers that may have stopped waiting.
//!
//! A caller whose call timed out, or whose request was cancelled, has dropped its end of the
//! reply channel. The work it asked for is done (and stored) either way; only the answer has no
//! reader, so dropping it loses nothing. Every answer goes through [`Answer::answer`], so that this
//! is decided once rather than at each send.

/// The end of a reply channel a caller waits on.
pub trait Answer<T> {
    fn answer(self, value: T);
}

impl<T> Answer<T> for ractor::RpcReplyPort<T> {
    fn answer(self, value: T) {
        if self.send(value).is_err() {
            tracing::debug!("a caller stopped waiting before its answer; the answer is dropped");
        }
    }
}

impl<T> Answer<T> for tokio::sync::oneshot::Sender<T> {
    fn answer(self, value: T) {
        if self.send(value).is_err() {
            tracing::debug!("a caller stopped waiting before its answer; the answer is dropped");
        }
    }
}
