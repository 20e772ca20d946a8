//! `PeerHealth`: the decisions ractor_cluster leaves to us about one peer link — when to dial it
//! again (exponential back-off, reset by a working link) and when a link that stopped answering
//! pings is dead. Pure: the links shell passes the time and the outcomes, and does what it says.

use std::time::{Duration, Instant};

const FIRST_REDIAL: Duration = Duration::from_millis(100);
const MAX_REDIAL: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PingVerdict {
    Healthy,
    /// Missed, but not yet often enough in a row to give up on the link.
    Late,
    /// Missed `missed_pings` times in a row: drop the link (and dial again later).
    Dead,
}

#[derive(Debug, Clone)]
pub(crate) struct PeerHealth {
    missed_in_a_row: u32,
    /// The next dial may happen then; the delay after that doubles up to a cap.
    next_dial: Instant,
    backoff: Duration,
}

impl PeerHealth {
    pub(crate) fn new(now: Instant) -> Self {
        Self { missed_in_a_row: 0, next_dial: now, backoff: FIRST_REDIAL }
    }

    /// Whether to dial a missing link now; if so, the next dial waits longer.
    pub(crate) fn dial_due(&mut self, now: Instant) -> bool {
        if now < self.next_dial {
            return false;
        }
        self.next_dial = now + self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_REDIAL);
        true
    }

    /// A ping's outcome, given how many misses in a row make a link dead.
    pub(crate) fn pinged(&mut self, now: Instant, answered: bool, missed_pings: u32) -> PingVerdict {
        if answered {
            self.missed_in_a_row = 0;
            self.next_dial = now;
            self.backoff = FIRST_REDIAL;
            return PingVerdict::Healthy;
        }
        self.missed_in_a_row += 1;
        if self.missed_in_a_row >= missed_pings {
            self.missed_in_a_row = 0;
            PingVerdict::Dead
        } else {
            PingVerdict::Late
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dials_back_off_exponentially_up_to_a_cap_and_a_working_link_resets_them() {
        let start = Instant::now();
        let mut health = PeerHealth::new(start);
        let mut now = start;
        let mut delays = Vec::new();
        let mut last = None;
        while delays.len() < 8 {
            if health.dial_due(now) {
                if let Some(last) = last {
                    delays.push(now - last);
                }
                last = Some(now);
            }
            now += Duration::from_millis(10);
        }
        assert_eq!(delays[0], Duration::from_millis(100));
        assert_eq!(delays[1], Duration::from_millis(200));
        assert!(delays.windows(2).all(|pair| pair[1] >= pair[0]));
        assert_eq!(*delays.last().unwrap(), MAX_REDIAL);
        assert_eq!(health.pinged(now, true, 3), PingVerdict::Healthy);
        assert!(health.dial_due(now), "a link that worked is dialled again at once once lost");
    }

    #[test]
    fn a_link_is_dead_after_the_given_misses_in_a_row_only() {
        let now = Instant::now();
        let mut health = PeerHealth::new(now);
        assert_eq!(health.pinged(now, false, 3), PingVerdict::Late);
        assert_eq!(health.pinged(now, false, 3), PingVerdict::Late);
        assert_eq!(health.pinged(now, true, 3), PingVerdict::Healthy);
        assert_eq!(health.pinged(now, false, 3), PingVerdict::Late);
        assert_eq!(health.pinged(now, false, 3), PingVerdict::Late);
        assert_eq!(health.pinged(now, false, 3), PingVerdict::Dead);
        assert_eq!(health.pinged(now, false, 3), PingVerdict::Late, "counting starts again");
    }
}
