//! `Quotas`: a tenant's usage in the current calendar month (UTC) and the monthly limits on it.
//!
//! It keeps the month's counters in memory (the store has them too, written in batches), rolls
//! them over at the month boundary, and says whether a charge still fits.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::tenant::Limits;
use crate::usage::{Month, UsageCounters};

/// A limited resource, named as in the API's `quota` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Quota {
    /// Custom MCP servers the tenant has at once.
    CustomServers,
    /// Tool invocations per calendar month.
    ToolInvocations,
}

impl Quota {
    pub fn name(self) -> &'static str {
        match self {
            Quota::CustomServers => "maxCustomServers",
            Quota::ToolInvocations => "maxToolInvocations",
        }
    }

    fn limit(self, limits: &Limits) -> u64 {
        match self {
            Quota::CustomServers => limits.max_custom_servers,
            Quota::ToolInvocations => limits.max_tool_invocations,
        }
    }

    fn used(self, usage: &UsageCounters) -> u64 {
        match self {
            Quota::CustomServers => usage.custom_servers,
            Quota::ToolInvocations => usage.tool_invocations,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaExceeded {
    pub quota: Quota,
    pub limit: u64,
    pub used: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quotas {
    month: Month,
    used: UsageCounters,
}

impl Quotas {
    /// Starts from the usage already recorded for `month`.
    pub fn new(month: Month, used: UsageCounters) -> Self {
        Self { month, used }
    }

    /// The month counted and its usage so far, as of `now`.
    pub fn usage(&self, now: DateTime<Utc>) -> (Month, UsageCounters) {
        let month = Month::of(now);
        if month > self.month { (month, UsageCounters::default()) } else { (self.month, self.used) }
    }

    /// Whether one more unit of `quota` fits under `limits` at `now`.
    pub fn check(&self, now: DateTime<Utc>, quota: Quota, limits: &Limits) -> Result<(), QuotaExceeded> {
        let (_, used) = self.usage(now);
        let (limit, used) = (quota.limit(limits), quota.used(&used));
        if used < limit { Ok(()) } else { Err(QuotaExceeded { quota, limit, used }) }
    }

    /// Adds usage that happened at `now`, starting a fresh month when one has begun.
    pub fn record(&mut self, now: DateTime<Utc>, delta: &UsageCounters) {
        let month = Month::of(now);
        if month > self.month {
            self.month = month;
            self.used = UsageCounters::default();
        }
        self.used.add(delta);
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn limits(max_tool_invocations: u64) -> Limits {
        Limits {
            requests_per_minute: 10,
            requests_per_hour: 10,
            requests_per_day: 10,
            max_custom_servers: 2,
            max_tool_invocations,
            max_storage_mb: 10,
        }
    }

    #[test]
    fn tool_invocations_are_limited_per_month_and_reset_with_the_month() {
        let jan = Utc.with_ymd_and_hms(2027, 1, 31, 23, 59, 59).unwrap();
        let feb = Utc.with_ymd_and_hms(2027, 2, 1, 0, 0, 0).unwrap();
        let mut q = Quotas::new(Month::of(jan), UsageCounters::default());
        let one = UsageCounters { tool_invocations: 1, ..Default::default() };
        assert!(q.check(jan, Quota::ToolInvocations, &limits(2)).is_ok());
        q.record(jan, &one);
        q.record(jan, &one);
        let err = q.check(jan, Quota::ToolInvocations, &limits(2)).unwrap_err();
        assert_eq!((err.quota.name(), err.limit, err.used), ("maxToolInvocations", 2, 2));
        assert!(q.check(feb, Quota::ToolInvocations, &limits(2)).is_ok(), "a new month starts at zero");
        assert_eq!(q.usage(feb), (Month::of(feb), UsageCounters::default()));
        q.record(feb, &one);
        assert_eq!(q.usage(feb).1.tool_invocations, 1);
    }

    #[test]
    fn custom_servers_are_limited_by_the_peak_gauge() {
        let now = Utc.with_ymd_and_hms(2027, 3, 3, 3, 3, 3).unwrap();
        let mut q = Quotas::new(Month::of(now), UsageCounters::default());
        q.record(now, &UsageCounters { custom_servers: 2, ..Default::default() });
        let err = q.check(now, Quota::CustomServers, &limits(5)).unwrap_err();
        assert_eq!((err.limit, err.used), (2, 2));
    }
}
