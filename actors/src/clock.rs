//! The `Clock` port: where actor shells read the time they pass to the pure state machines.

use chrono::{DateTime, Utc};

/// A source of wall-clock time (UTC). Tests and the simulator supply their own.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}
