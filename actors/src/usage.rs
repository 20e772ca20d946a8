//! Usage counters: what a tenant did in a day or a calendar month (UTC).

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// Additive counters. A day's and a month's usage have the same shape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UsageCounters {
    /// Every tenant-API request attributed to the tenant, admitted or not.
    pub requests: u64,
    /// Admitted requests: what the bill calls API calls.
    pub api_calls: u64,
    /// Requests refused with 429.
    pub rate_limited: u64,
    /// Requests refused for any other reason (authentication, IP, suspension, quota) or failed.
    pub errors: u64,
    pub tool_invocations: u64,
    pub selections: u64,
    pub tokens: u64,
    /// Highest number of custom servers the tenant had at once (a gauge, merged with `max`).
    pub custom_servers: u64,
}

impl UsageCounters {
    pub fn add(&mut self, other: &UsageCounters) {
        self.requests += other.requests;
        self.api_calls += other.api_calls;
        self.rate_limited += other.rate_limited;
        self.errors += other.errors;
        self.tool_invocations += other.tool_invocations;
        self.selections += other.selections;
        self.tokens += other.tokens;
        self.custom_servers = self.custom_servers.max(other.custom_servers);
    }
}

/// A calendar month, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Month {
    pub year: i32,
    pub month: u32,
}

impl Month {
    pub fn of(now: DateTime<Utc>) -> Self {
        Self::containing(now.date_naive())
    }

    pub fn containing(day: NaiveDate) -> Self {
        Self { year: day.year(), month: day.month() }
    }

    /// Parses `YYYY-MM`.
    pub fn parse(text: &str) -> Option<Self> {
        let (year, month) = text.split_once('-')?;
        if year.len() != 4 || month.len() != 2 {
            return None;
        }
        let month = Self { year: year.parse().ok()?, month: month.parse().ok()? };
        month.first_day().map(|_| month)
    }

    pub fn first_day(&self) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(self.year, self.month, 1)
    }

    /// A sortable number, `YYYYMM`.
    pub fn key(&self) -> u32 {
        self.year as u32 * 100 + self.month
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_parse_and_print() {
        let m = Month::parse("2026-02").unwrap();
        assert_eq!(m.to_string(), "2026-02");
        assert_eq!(m.key(), 202602);
        for bad in ["2026-13", "2026-2", "26-02", "2026/02", "", "2026-00"] {
            assert!(Month::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn add_sums_counters_and_keeps_the_custom_server_peak() {
        let mut a = UsageCounters { requests: 2, custom_servers: 3, ..Default::default() };
        a.add(&UsageCounters { requests: 5, custom_servers: 1, ..Default::default() });
        assert_eq!(a.requests, 7);
        assert_eq!(a.custom_servers, 3);
    }
}
