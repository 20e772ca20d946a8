//! One commit round of the recorder: the batches it held back from failed commits, oldest
//! first, then the entries gathered since, as new batches. What this file decides: when a round
//! gives up, which failures count against a batch rather than the store, and when the next round
//! may start.
//!
//! A batch the store refuses for what it holds (any error but a transient one) is set aside at
//! once. A transient error is ambiguous: the store may be down, or this batch may be what breaks
//! it (too large, a value the backend rejects). The round then goes on to the next batch, which
//! tells the two apart: if another commit of the round succeeds, the failure counts against the
//! batch (a strike), and a batch with [`STRIKES_TO_QUARANTINE`] strikes is set aside. Two
//! transient failures in a row end the round: the store is likely down, and trying every batch
//! would hammer it. Rounds that commit nothing then wait longer and longer.

use std::time::Duration;

use tokio::time::Instant;

use crate::backoff::doubled;
use crate::store::StoreError;

/// Rounds in a row in which a batch failed while another commit succeeded before it is set aside.
pub(crate) const STRIKES_TO_QUARANTINE: u32 = 3;

/// The longest wait between rounds while the store fails (the interval, if that is longer).
const MAX_RETRY_WAIT: Duration = Duration::from_secs(30);

/// What happened so far in one round.
#[derive(Debug, Default)]
pub(crate) struct Round {
    /// Batches (by their place among the held ones) that failed transiently, with the error.
    failed: Vec<(usize, StoreError)>,
    failed_in_a_row: u32,
    committed: bool,
}

impl Round {
    /// Whether to try the next batch.
    pub(crate) fn goes_on(&self) -> bool {
        self.failed_in_a_row < 2
    }

    pub(crate) fn committed(&mut self) {
        self.committed = true;
        self.failed_in_a_row = 0;
    }

    pub(crate) fn failed(&mut self, at: usize, error: StoreError) {
        self.failed.push((at, error));
        self.failed_in_a_row += 1;
    }

    /// The failures that count against their batch: another commit of the round succeeded.
    pub(crate) fn strikes(&self) -> &[(usize, StoreError)] {
        if self.committed { &self.failed } else { &[] }
    }

    /// Whether the store seems down: something failed and nothing committed.
    pub(crate) fn fruitless(&self) -> bool {
        !self.committed && !self.failed.is_empty()
    }

    /// The last error of the round, if any.
    pub(crate) fn into_error(self) -> Option<StoreError> {
        self.failed.into_iter().next_back().map(|(_, error)| error)
    }
}

/// When the next round may start.
#[derive(Debug)]
pub(crate) struct Backoff {
    interval: Duration,
    fruitless: u32,
    not_before: Option<Instant>,
}

impl Backoff {
    pub(crate) fn new(interval: Duration) -> Self {
        Self { interval, fruitless: 0, not_before: None }
    }

    /// Whether a round may start now (a flush does not wait for it).
    pub(crate) fn ready(&self, now: Instant) -> bool {
        self.not_before.is_none_or(|at| now >= at)
    }

    /// A round that ended at `now`: a fruitless one doubles the wait before the next.
    pub(crate) fn after(&mut self, round: &Round, now: Instant) {
        if !round.fruitless() {
            self.fruitless = 0;
            self.not_before = None;
            return;
        }
        self.fruitless = self.fruitless.saturating_add(1);
        let wait = |d: Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        let wait = doubled(wait(self.interval), wait(MAX_RETRY_WAIT.max(self.interval)), self.fruitless)
            .to_std()
            .unwrap_or(MAX_RETRY_WAIT);
        self.not_before = Some(now + wait);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn down() -> StoreError {
        StoreError::Backend("down".into())
    }

    #[test]
    fn two_failures_with_nothing_committed_end_a_round_without_strikes() {
        let mut round = Round::default();
        round.failed(0, down());
        assert!(round.goes_on());
        round.failed(1, down());
        assert!(!round.goes_on());
        assert!(round.strikes().is_empty());
        assert!(round.fruitless());
    }

    #[test]
    fn failures_in_a_round_with_a_commit_are_strikes() {
        let mut round = Round::default();
        round.failed(0, down());
        round.committed();
        round.failed(1, down());
        assert!(round.goes_on());
        round.failed(2, down());
        assert!(!round.goes_on());
        assert_eq!(round.strikes().iter().map(|(at, _)| *at).collect::<Vec<_>>(), [0, 1, 2]);
        assert!(!round.fruitless());
    }

    #[test]
    fn fruitless_rounds_wait_longer_each_time_up_to_a_bound() {
        let start = Instant::now();
        let mut backoff = Backoff::new(Duration::from_secs(1));
        let mut fruitless = Round::default();
        fruitless.failed(0, down());
        let mut waits = Vec::new();
        for _ in 0..8 {
            backoff.after(&fruitless, start);
            let wait = (1..=60).find(|s| backoff.ready(start + Duration::from_secs(*s))).unwrap();
            waits.push(wait);
        }
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
        backoff.after(&Round::default(), start);
        assert!(backoff.ready(start));
    }
}
