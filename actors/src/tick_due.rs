//! When an active tenant's actor next needs the supervisor's periodic tick. The actor keeps it
//! current after every message; the supervisor's round sends ticks only to actors that are due,
//! so a node with many active but quiet tenants does not wake each of them every tick.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};

/// The longest an active actor goes without a tick, whatever it said: a bound on what a state
/// the actor did not foresee (a passivation that was blocked, then unblocked without a message)
/// can delay.
pub const MAX_TICK_GAP: chrono::Duration = chrono::Duration::seconds(60);

/// Milliseconds since the epoch of the next tick the actor needs; shared by the actor (which
/// writes it) and the supervisor (which reads it).
#[derive(Debug)]
pub struct TickDue(AtomicI64);

impl TickDue {
    /// Due at once: a new actor is ticked at the next round until it says otherwise.
    pub fn now() -> Self {
        Self(AtomicI64::new(i64::MIN))
    }

    pub fn set(&self, at: DateTime<Utc>) {
        self.0.store(at.timestamp_millis(), Ordering::Relaxed);
    }

    pub fn is_due(&self, now: DateTime<Utc>) -> bool {
        self.0.load(Ordering::Relaxed) <= now.timestamp_millis()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_actor_is_due_at_once_and_then_when_it_says() {
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let due = TickDue::now();
        assert!(due.is_due(DateTime::<Utc>::MIN_UTC));
        due.set(at);
        assert!(!due.is_due(at - chrono::Duration::milliseconds(1)));
        assert!(due.is_due(at));
    }
}
