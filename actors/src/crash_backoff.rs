//! `CrashBackoff`: when the actor of a tenant that keeps crashing may start again.
//!
//! A crash is restarted at once the first time; each further crash within `window` waits twice
//! as long as the one before (from `first_delay`, at most `max_delay`), and the `degrade_after`-th
//! crash within `window` makes the tenant *degraded* for `max_delay`: its requests are refused
//! with the reason (503 with `Retry-After`) instead of restarting an actor that panics on start
//! or on every message in a hot loop. A start that fails counts as a crash. Crashes older than
//! `window` are forgotten. Pure: the supervisor passes the time in.

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Duration, Utc};

use crate::tenant::TenantId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrashPolicy {
    pub first_delay: Duration,
    pub max_delay: Duration,
    pub window: Duration,
    pub degrade_after: usize,
}

impl Default for CrashPolicy {
    fn default() -> Self {
        Self {
            first_delay: Duration::milliseconds(100),
            max_delay: Duration::seconds(30),
            window: Duration::seconds(60),
            degrade_after: 5,
        }
    }
}

/// What to do after a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterCrash {
    RestartNow,
    RestartAt(DateTime<Utc>),
    /// The `crashes`-th crash within the window: refuse the tenant's requests until then.
    Degraded {
        until: DateTime<Utc>,
        crashes: usize,
    },
}

/// Why a tenant's actor may not start yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotYet {
    pub until: DateTime<Utc>,
    pub crashes: usize,
    pub degraded: bool,
}

#[derive(Debug, Clone, Default)]
struct Crashes {
    recent: VecDeque<DateTime<Utc>>,
    not_before: Option<DateTime<Utc>>,
    degraded: bool,
}

#[derive(Debug, Clone, Default)]
pub struct CrashBackoff {
    policy: CrashPolicy,
    tenants: HashMap<TenantId, Crashes>,
}

impl CrashBackoff {
    pub fn new(policy: CrashPolicy) -> Self {
        Self { policy, tenants: HashMap::new() }
    }

    /// The tenant's actor crashed (or failed to start) at `now`.
    pub fn crashed(&mut self, now: DateTime<Utc>, tenant: &TenantId) -> AfterCrash {
        let policy = self.policy;
        let crashes = self.tenants.entry(tenant.clone()).or_default();
        crashes.recent.retain(|at| now - *at < policy.window);
        crashes.recent.push_back(now);
        let count = crashes.recent.len();
        if count >= policy.degrade_after {
            let until = now + policy.max_delay;
            crashes.not_before = Some(until);
            crashes.degraded = true;
            return AfterCrash::Degraded { until, crashes: count };
        }
        crashes.degraded = false;
        if count == 1 {
            crashes.not_before = None;
            return AfterCrash::RestartNow;
        }
        // The second crash is the first that waits.
        let waits = u32::try_from(count - 1).unwrap_or(u32::MAX);
        let at = now + crate::backoff::doubled(policy.first_delay, policy.max_delay, waits);
        crashes.not_before = Some(at);
        AfterCrash::RestartAt(at)
    }

    /// Whether the tenant's actor may start at `now`.
    pub fn may_start(&self, now: DateTime<Utc>, tenant: &TenantId) -> Result<(), NotYet> {
        match self.tenants.get(tenant) {
            Some(crashes) if crashes.not_before.is_some_and(|at| now < at) => Err(NotYet {
                until: crashes.not_before.unwrap_or(now),
                crashes: crashes.recent.len(),
                degraded: crashes.degraded,
            }),
            _ => Ok(()),
        }
    }

    /// Forgets tenants with no crash within the window and nothing to wait for.
    pub fn forget_old(&mut self, now: DateTime<Utc>) {
        let window = self.policy.window;
        self.tenants.retain(|_, crashes| {
            crashes.recent.back().is_some_and(|last| now - *last < window)
                || crashes.not_before.is_some_and(|at| now < at)
        });
    }

    /// Tenants refused as degraded at `now`.
    pub fn degraded(&self, now: DateTime<Utc>) -> usize {
        self.tenants.values().filter(|c| c.degraded && c.not_before.is_some_and(|at| now < at)).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_800_000_000_000 + ms).expect("a valid instant")
    }

    fn tenant() -> TenantId {
        TenantId::parse("crashy").unwrap()
    }

    #[test]
    fn the_first_crash_restarts_at_once_and_the_next_ones_back_off() {
        let mut backoff = CrashBackoff::new(CrashPolicy::default());
        assert_eq!(backoff.crashed(at(0), &tenant()), AfterCrash::RestartNow);
        assert_eq!(backoff.may_start(at(0), &tenant()), Ok(()));
        assert_eq!(backoff.crashed(at(10), &tenant()), AfterCrash::RestartAt(at(110)));
        assert_eq!(backoff.may_start(at(50), &tenant()), Err(NotYet { until: at(110), crashes: 2, degraded: false }));
        assert_eq!(backoff.may_start(at(110), &tenant()), Ok(()));
        assert_eq!(backoff.crashed(at(120), &tenant()), AfterCrash::RestartAt(at(320)));
        assert_eq!(backoff.crashed(at(330), &tenant()), AfterCrash::RestartAt(at(730)));
        assert!(backoff.may_start(at(0), &TenantId::parse("other").unwrap()).is_ok(), "per tenant");
    }

    #[test]
    fn a_tenant_that_keeps_crashing_is_degraded_for_the_longest_delay_then_tried_again() {
        let mut backoff = CrashBackoff::new(CrashPolicy::default());
        for i in 0..4 {
            assert!(!matches!(backoff.crashed(at(i * 1_000), &tenant()), AfterCrash::Degraded { .. }));
        }
        let until = at(4_000) + Duration::seconds(30);
        assert_eq!(backoff.crashed(at(4_000), &tenant()), AfterCrash::Degraded { until, crashes: 5 });
        assert_eq!(backoff.degraded(at(5_000)), 1);
        assert_eq!(backoff.may_start(at(5_000), &tenant()), Err(NotYet { until, crashes: 5, degraded: true }));
        assert_eq!(backoff.may_start(until, &tenant()), Ok(()));
        assert_eq!(backoff.degraded(until), 0);
    }

    #[test]
    fn crashes_older_than_the_window_are_forgotten() {
        let mut backoff = CrashBackoff::new(CrashPolicy::default());
        for i in 0..4 {
            backoff.crashed(at(i * 1_000), &tenant());
        }
        // A minute after the first: three in the window, then one more is the fourth, not the fifth.
        assert!(matches!(backoff.crashed(at(60_000), &tenant()), AfterCrash::RestartAt(_)));
        backoff.forget_old(at(200_000));
        assert_eq!(backoff.crashed(at(200_000), &tenant()), AfterCrash::RestartNow, "a fresh start");
    }

    #[test]
    fn delays_never_exceed_the_longest() {
        let policy = CrashPolicy { degrade_after: usize::MAX, ..CrashPolicy::default() };
        let mut backoff = CrashBackoff::new(policy);
        let mut now = at(0);
        for _ in 0..100 {
            if let AfterCrash::RestartAt(when) = backoff.crashed(now, &tenant()) {
                assert!(when - now <= policy.max_delay);
            }
            now += Duration::milliseconds(1);
        }
    }
}
