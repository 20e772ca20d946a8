//! `TenantCore`: everything one tenant decides, as a state machine with the time passed in.
//!
//! It admits or refuses requests (auth check, rate windows, quotas), proposes changes to the
//! tenant's record (the shell persists them, then installs them), and accumulates usage and
//! window counts for the shell to write out. No I/O, no clock, no randomness.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};

use crate::admission::{Admission, AdmissionRequest, Denial, TenantSnapshot};
use crate::allow_list::IpAllowList;
use crate::api_key::KeyHash;
use crate::auth::check_access;
use crate::hand_off::TenantHandOff;
use crate::policy::Policy;
use crate::quotas::{Quota, QuotaExceeded, Quotas};

/// A feature a tenant's plan or record may switch off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    OAuth,
    CustomServers,
}
use crate::rate_windows::{RateWindows, WindowLimits};
use crate::store::Checkpoint;
use crate::tenant::{Features, Limits, TenantPatch, TenantRecord};
use crate::usage::{Month, UsageCounters};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum PatchError {
    #[error("unknown plan `{0}`")]
    UnknownPlan(String),
    #[error("the stored allow-list is invalid: {0}")]
    BadAllowList(String),
}

/// A validated new record, to be persisted and then installed.
#[derive(Debug, Clone)]
pub struct Proposal {
    pub record: TenantRecord,
    allow_list: IpAllowList,
}

/// What the shell writes out on a tick: usage per day and the window counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flush {
    pub usage: Vec<(NaiveDate, UsageCounters)>,
    pub checkpoint: Option<Checkpoint>,
}

#[derive(Debug, Clone)]
pub struct TenantCore {
    policy: Arc<Policy>,
    record: Arc<TenantRecord>,
    /// `record.fingerprint()`, computed once per record version (a node that asks for the
    /// tenant compares it with the record it holds, per request).
    record_fingerprint: u64,
    limits: Limits,
    features: Features,
    allow_list: IpAllowList,
    windows: RateWindows,
    windows_dirty: bool,
    quotas: Quotas,
    /// Usage not yet handed to the shell, per day.
    unflushed: Vec<(NaiveDate, UsageCounters)>,
    last_active: DateTime<Utc>,
}

impl TenantCore {
    /// Builds the tenant's state from what the store holds: its record, the last checkpoint of
    /// its windows and the usage recorded for the current month.
    pub fn new(
        policy: Arc<Policy>,
        record: TenantRecord,
        checkpoint: Option<Checkpoint>,
        month_usage: UsageCounters,
        now: DateTime<Utc>,
    ) -> Result<Self, PatchError> {
        let allow_list =
            IpAllowList::parse(&record.security.allowed_ips).map_err(|e| PatchError::BadAllowList(e.to_string()))?;
        Ok(Self {
            limits: policy.limits(&record),
            features: policy.features(&record),
            policy,
            record_fingerprint: record.fingerprint(),
            record: Arc::new(record),
            allow_list,
            windows: checkpoint.map(|c| RateWindows::restore(c.windows)).unwrap_or_default(),
            windows_dirty: false,
            quotas: Quotas::new(Month::of(now), month_usage),
            unflushed: Vec::new(),
            last_active: now,
        })
    }

    pub fn record(&self) -> &TenantRecord {
        &self.record
    }

    pub fn snapshot(&self, now: DateTime<Utc>) -> TenantSnapshot {
        let (month, usage) = self.quotas.usage(now);
        TenantSnapshot {
            record: self.record.clone(),
            record_fingerprint: Some(self.record_fingerprint),
            limits: self.limits,
            features: self.features,
            month,
            usage,
        }
    }

    fn window_limits(&self) -> WindowLimits {
        [self.limits.requests_per_minute, self.limits.requests_per_hour, self.limits.requests_per_day]
    }

    /// Decides one request: key, status, network, rate windows, then quota. Counts it in the
    /// usage either way.
    pub fn admit(&mut self, now: DateTime<Utc>, request: &AdmissionRequest) -> Admission {
        self.last_active = now;
        let secs = now.timestamp();
        let limits = self.window_limits();
        let rates_on = self.policy.rate_limits_enabled;
        let verdict = check_access(
            &self.record,
            &self.allow_list,
            now,
            request.key.as_ref(),
            request.key_required,
            request.client_ip,
        )
        .and_then(|()| match request.charge {
            Some(quota) => self.quotas.check(now, quota, &self.limits).map_err(Denial::QuotaExceeded),
            None => Ok(()),
        });
        // Rate windows count only requests that pass every other check.
        let (verdict, rate) = match verdict {
            Ok(()) if rates_on => {
                let status = self.windows.admit(secs, limits);
                if status.admitted {
                    self.windows_dirty = true;
                    (Ok(()), Some(status))
                } else {
                    let retry_after = status.retry_after().unwrap_or(1);
                    (Err(Denial::RateLimited { retry_after }), Some(status))
                }
            }
            Ok(()) => (Ok(()), None),
            Err(denial) => (Err(denial), rates_on.then(|| self.windows.peek(secs, limits))),
        };
        let mut usage = UsageCounters { requests: 1, ..Default::default() };
        match verdict {
            Ok(()) => {
                usage.api_calls = 1;
                if request.charge == Some(Quota::ToolInvocations) {
                    usage.tool_invocations = 1;
                }
                if request.selection {
                    usage.selections = 1;
                }
            }
            Err(Denial::RateLimited { .. }) => usage.rate_limited = 1,
            Err(_) => usage.errors = 1,
        }
        self.record_usage(now, &usage);
        Admission { verdict: verdict.map(|()| self.snapshot(now)), rate, server: None }
    }

    /// Consumes one unit of `quota` for work decided after admission (a tool invocation, once
    /// the tool is known to exist), or says the quota is exhausted.
    pub fn charge(&mut self, now: DateTime<Utc>, quota: Quota) -> Result<(), crate::quotas::QuotaExceeded> {
        self.quotas.check(now, quota, &self.limits)?;
        if quota == Quota::ToolInvocations {
            self.record_usage(now, &UsageCounters { tool_invocations: 1, ..Default::default() });
        }
        Ok(())
    }

    /// Records how many custom servers the tenant has now (a gauge: the month keeps its peak).
    pub fn record_custom_servers(&mut self, now: DateTime<Utc>, count: u64) {
        self.record_usage(now, &UsageCounters { custom_servers: count, ..Default::default() });
    }

    /// Counts usage in the month's quotas and in the day's counters still to be written out.
    fn record_usage(&mut self, now: DateTime<Utc>, usage: &UsageCounters) {
        self.quotas.record(now, usage);
        let day = now.date_naive();
        match self.unflushed.last_mut() {
            Some((last, counters)) if *last == day => counters.add(usage),
            _ => self.unflushed.push((day, *usage)),
        }
    }

    /// The record after `patch`, validated; not yet in effect (see [`TenantCore::install`]).
    pub fn propose_patch(&self, now: DateTime<Utc>, patch: &TenantPatch) -> Result<Proposal, PatchError> {
        if let Some(plan) = &patch.plan
            && !self.policy.has_plan(plan)
        {
            return Err(PatchError::UnknownPlan(plan.clone()));
        }
        let mut record = TenantRecord::clone(&self.record);
        record.apply(now, patch);
        let allow_list =
            IpAllowList::parse(&record.security.allowed_ips).map_err(|e| PatchError::BadAllowList(e.to_string()))?;
        Ok(Proposal { record, allow_list })
    }

    /// The record with `new_key` as the tenant's key; not yet in effect.
    pub fn propose_rotation(&self, now: DateTime<Utc>, new_key: KeyHash, grace: Option<chrono::Duration>) -> Proposal {
        let mut record = TenantRecord::clone(&self.record);
        record.rotate_key(now, new_key, grace);
        Proposal { record, allow_list: self.allow_list.clone() }
    }

    /// Puts a proposal into effect once it is durable. Limits apply to the very next request.
    pub fn install(&mut self, proposal: Proposal) {
        self.allow_list = proposal.allow_list;
        self.limits = self.policy.limits(&proposal.record);
        self.features = self.policy.features(&proposal.record);
        self.record_fingerprint = proposal.record.fingerprint();
        self.record = Arc::new(proposal.record);
    }

    /// Usage and window counts accumulated since the last flush.
    pub fn flush(&mut self) -> Flush {
        let checkpoint = std::mem::take(&mut self.windows_dirty).then(|| Checkpoint { windows: self.windows.counts() });
        Flush { usage: std::mem::take(&mut self.unflushed), checkpoint }
    }

    /// Whether the tenant may use `feature` now: `Err` names it (as the API spells it).
    pub fn gate(&self, feature: Feature) -> Result<(), &'static str> {
        let (allowed, name) = match feature {
            Feature::OAuth => (self.features.oauth, "oauth"),
            Feature::CustomServers => (self.features.custom_servers, "customServers"),
        };
        if allowed { Ok(()) } else { Err(name) }
    }

    /// Whether one more custom server fits the tenant's quota, with `used` of them now.
    pub fn room_for_custom_server(&self, used: u64) -> Result<(), QuotaExceeded> {
        let limit = self.limits.max_custom_servers;
        if used < limit { Ok(()) } else { Err(QuotaExceeded { quota: Quota::CustomServers, limit, used }) }
    }

    /// The live state a new owner continues from (see [`TenantHandOff`]).
    pub fn hand_off(&self, now: DateTime<Utc>) -> TenantHandOff {
        let (month, usage) = self.quotas.usage(now);
        TenantHandOff { record: (*self.record).clone(), windows: self.windows.counts(), month, usage }
    }

    /// Continues from a previous owner's hand-off; `None` when it is of another month than `now`
    /// (the store's counts of this month are the ones to start from then).
    pub fn from_hand_off(
        policy: Arc<Policy>,
        hand_off: TenantHandOff,
        now: DateTime<Utc>,
    ) -> Option<Result<Self, PatchError>> {
        (hand_off.month == Month::of(now)).then(|| {
            let checkpoint = Checkpoint { windows: hand_off.windows };
            Self::new(policy, hand_off.record, Some(checkpoint), hand_off.usage, now)
        })
    }

    /// Whether the tenant has had no request for `idle_for`.
    pub fn is_idle(&self, now: DateTime<Utc>, idle_for: chrono::Duration) -> bool {
        now - self.last_active >= idle_for
    }

    /// When this tenant next has periodic work: at once while it holds usage or window counts
    /// not written out, else when it will have been idle for `idle_for` (and may passivate).
    pub fn next_tick(&self, now: DateTime<Utc>, idle_for: chrono::Duration) -> DateTime<Utc> {
        if self.windows_dirty || !self.unflushed.is_empty() { now } else { self.last_active + idle_for }
    }
}

#[cfg(test)]
#[path = "tenant_core_tests.rs"]
mod tests;
