//! Exponential back-off, one formula for every retry and restart of the actors.

use chrono::Duration;

/// The wait after the `nth` failure in a row (1, 2, ...): `first`, doubled each time, at most `max`.
pub fn doubled(first: Duration, max: Duration, nth: u32) -> Duration {
    let doublings = nth.saturating_sub(1).min(20);
    first.checked_mul(1 << doublings).map_or(max, |delay| delay.min(max))
}
