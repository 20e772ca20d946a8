//! `RunToCompletion`: a future polled in place, whose remainder goes on in a task of its own if
//! it is dropped before it is done.
//!
//! hyper drops a request's future when its client goes away. A handler cut off between the
//! tenant owner's admission (which counts and bills) and the audit write would leave a request
//! billed but never audited; one cut off after a store write, a change nobody answered for.
//! Spawning every handler would prevent that at the price of a task per request; this pays only
//! for the requests whose clients leave (the heap box of the future is the cost of the others).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

pub struct RunToCompletion<F: Future + Send + 'static> {
    /// `None` once it has answered.
    rest: Option<Pin<Box<F>>>,
}

impl<F: Future + Send + 'static> RunToCompletion<F> {
    pub fn new(future: F) -> Self {
        Self { rest: Some(Box::pin(future)) }
    }
}

impl<F> Future for RunToCompletion<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let Some(rest) = self.rest.as_mut() else {
            panic!("RunToCompletion polled after it answered");
        };
        let output = std::task::ready!(rest.as_mut().poll(cx));
        self.rest = None;
        Poll::Ready(output)
    }
}

impl<F: Future + Send + 'static> Drop for RunToCompletion<F> {
    fn drop(&mut self) {
        if let Some(rest) = self.rest.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            // The boxed future moves as a whole: what it pinned stays where it is.
            runtime.spawn(async move {
                rest.await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_future_dropped_half_way_runs_to_its_end_and_one_not_dropped_answers_in_place() {
        let finished = Arc::new(AtomicBool::new(false));
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let flag = finished.clone();
        let mut request = Box::pin(RunToCompletion::new(async move {
            wait.await.ok();
            flag.store(true, Ordering::SeqCst);
        }));
        // Started, then its "client" goes away.
        assert!(tokio::time::timeout(Duration::from_millis(20), request.as_mut()).await.is_err());
        drop(request);
        go.send(()).unwrap();
        for _ in 0..100 {
            if finished.load(Ordering::SeqCst) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(finished.load(Ordering::SeqCst), "the rest of the future ran");

        assert_eq!(RunToCompletion::new(async { 7 }).await, 7);
    }
}
