//! `RefusalAudit`: which refused requests get an audit event of their own. The first
//! `per_minute` refusals of a tenant for one reason in a minute do; the rest are counted, and
//! one summary per tenant, reason and minute carries their number, so a client hammering a
//! limit (or a suspended tenant) cannot grow the audit log without bound. Pure: the edge
//! passes the time in and writes the events.

use std::collections::BTreeMap;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

use crate::tenant::TenantId;

/// Whether a refusal gets its own audit event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalEntry {
    Record,
    /// Counted into the minute's summary instead.
    Counted,
}

/// Refusals of one tenant for one reason in one minute that got no event of their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusalSummary {
    pub tenant: TenantId,
    pub reason: &'static str,
    pub minute: DateTime<Utc>,
    pub count: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Minute {
    recorded: u32,
    counted: u64,
}

#[derive(Debug, Clone)]
pub struct RefusalAudit {
    /// Events of their own per tenant, reason and minute; 0: every refusal gets one.
    per_minute: u32,
    minutes: BTreeMap<(DateTime<Utc>, TenantId, &'static str), Minute>,
}

fn minute_of(now: DateTime<Utc>) -> DateTime<Utc> {
    now.duration_trunc(TimeDelta::minutes(1)).unwrap_or(now)
}

impl RefusalAudit {
    pub fn new(per_minute: u32) -> Self {
        Self { per_minute, minutes: BTreeMap::new() }
    }

    /// A request of `tenant` was refused for `reason` at `now`.
    pub fn refused(&mut self, now: DateTime<Utc>, tenant: &TenantId, reason: &'static str) -> RefusalEntry {
        if self.per_minute == 0 {
            return RefusalEntry::Record;
        }
        let minute = self.minutes.entry((minute_of(now), tenant.clone(), reason)).or_default();
        if minute.recorded < self.per_minute {
            minute.recorded += 1;
            RefusalEntry::Record
        } else {
            minute.counted += 1;
            RefusalEntry::Counted
        }
    }

    /// The summaries of minutes over at `now`, which are forgotten.
    pub fn take_ended(&mut self, now: DateTime<Utc>) -> Vec<RefusalSummary> {
        let current = minute_of(now);
        let ended: Vec<_> = self.minutes.keys().take_while(|(minute, _, _)| *minute < current).cloned().collect();
        ended
            .into_iter()
            .filter_map(|key| {
                let counted = self.minutes.remove(&key)?.counted;
                let (minute, tenant, reason) = key;
                (counted > 0).then_some(RefusalSummary { tenant, reason, minute, count: counted })
            })
            .collect()
    }

    /// What `tenant` has counted so far, in minutes over or not (for a reader of its audit log,
    /// who must see every refusal answered before): the counts start again from zero.
    pub fn take_tenant(&mut self, tenant: &TenantId) -> Vec<RefusalSummary> {
        let mut summaries = Vec::new();
        for ((minute, of, reason), counts) in self.minutes.iter_mut() {
            if of == tenant && counts.counted > 0 {
                summaries.push(RefusalSummary {
                    tenant: of.clone(),
                    reason,
                    minute: *minute,
                    count: std::mem::take(&mut counts.counted),
                });
            }
        }
        summaries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).expect("a valid instant")
    }

    fn tenant(name: &str) -> TenantId {
        TenantId::parse(name).unwrap()
    }

    #[test]
    fn beyond_the_first_refusals_of_a_minute_only_a_count_is_kept() {
        let mut audit = RefusalAudit::new(3);
        let entries: Vec<_> = (0..10).map(|i| audit.refused(at(i), &tenant("a"), "rate_limited")).collect();
        assert_eq!(entries.iter().filter(|e| **e == RefusalEntry::Record).count(), 3);
        assert_eq!(audit.refused(at(11), &tenant("a"), "tenant_suspended"), RefusalEntry::Record, "per reason");
        assert_eq!(audit.refused(at(11), &tenant("b"), "rate_limited"), RefusalEntry::Record, "per tenant");
        assert!(audit.take_ended(at(59)).is_empty(), "the minute is not over");
        let summaries = audit.take_ended(at(60));
        assert_eq!(
            summaries,
            vec![RefusalSummary { tenant: tenant("a"), reason: "rate_limited", minute: at(0), count: 7 }]
        );
        assert!(audit.take_ended(at(120)).is_empty(), "taken once");
        assert_eq!(audit.refused(at(61), &tenant("a"), "rate_limited"), RefusalEntry::Record, "a new minute");
    }

    #[test]
    fn a_reader_takes_the_counts_so_far_and_nothing_is_counted_twice() {
        let mut audit = RefusalAudit::new(1);
        for i in 0..5 {
            audit.refused(at(i), &tenant("a"), "rate_limited");
        }
        assert_eq!(audit.take_tenant(&tenant("a"))[0].count, 4);
        assert!(audit.take_tenant(&tenant("a")).is_empty());
        audit.refused(at(30), &tenant("a"), "rate_limited");
        assert_eq!(audit.take_ended(at(60))[0].count, 1, "only what came after the read");
    }

    #[test]
    fn zero_records_every_refusal() {
        let mut audit = RefusalAudit::new(0);
        assert!((0..100).all(|i| audit.refused(at(i % 60), &tenant("a"), "x") == RefusalEntry::Record));
        assert!(audit.take_ended(at(600)).is_empty());
    }
}
