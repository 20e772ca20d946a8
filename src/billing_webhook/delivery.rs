//! The delivery of one closed monthly bill to the billing webhook, as a pure state machine: when
//! to send, which node sends, what an answer changes. At least once: a bill is sent until the
//! receiver acknowledges it (a 2xx), each attempt with the same idempotency key and the same body,
//! so that the receiver can drop repeats (a lost acknowledgement, a node crashing between the
//! acknowledgement and recording it).

use chrono::{DateTime, Duration, Utc};
use connectors_actors::backoff::doubled;
use connectors_actors::tenant::TenantId;
use connectors_actors::usage::Month;
use serde::{Deserialize, Serialize};

/// How attempts are spaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// The wait after the first failure; doubled after each further one.
    pub first_retry: Duration,
    /// The longest wait between two attempts.
    pub max_retry: Duration,
    /// How long an attempt is this node's: another node that finds the delivery claimed leaves
    /// it alone until then (longer than the request's deadline).
    pub lease: Duration,
}

/// One tenant's bill of one month and where its delivery stands (kept in the store).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub tenant: TenantId,
    pub month: String,
    /// Sent as `Idempotency-Key` and in the body: the same for every attempt.
    pub idempotency_key: String,
    /// The JSON sent, fixed when the month was closed.
    pub body: String,
    /// Attempts made so far.
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    /// A node is sending until then.
    pub claimed_until: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// What to do with a delivery now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Send,
    /// Nothing before then.
    WaitUntil(DateTime<Utc>),
    /// Acknowledged: never sent again.
    Done,
}

/// How the receiver answered one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A 2xx status.
    Acknowledged(u16),
    /// Another status.
    Refused(u16),
    /// No answer: connection refused, timeout.
    Failed(String),
}

/// What one attempt came to, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub number: u32,
    pub answer: Answer,
    /// The next attempt, when this one was not acknowledged.
    pub retry_at: Option<DateTime<Utc>>,
}

/// The idempotency key of `tenant`'s bill for `month`.
pub fn idempotency_key(tenant: &TenantId, month: Month) -> String {
    format!("bill-{tenant}-{month}")
}

impl Delivery {
    /// A bill closed at `now`, to be sent at once.
    pub fn new(tenant: TenantId, month: Month, body: String, now: DateTime<Utc>) -> Self {
        Self {
            idempotency_key: idempotency_key(&tenant, month),
            tenant,
            month: month.to_string(),
            body,
            attempts: 0,
            next_attempt_at: now,
            claimed_until: None,
            delivered_at: None,
            last_error: None,
        }
    }

    pub fn step(&self, now: DateTime<Utc>) -> Step {
        if self.delivered_at.is_some() {
            return Step::Done;
        }
        let not_before = match self.claimed_until {
            Some(claim) => claim.max(self.next_attempt_at),
            None => self.next_attempt_at,
        };
        if not_before > now { Step::WaitUntil(not_before) } else { Step::Send }
    }

    /// This node makes the next attempt: others see the delivery claimed for `schedule.lease`.
    pub fn claim(&mut self, now: DateTime<Utc>, schedule: &Schedule) {
        self.claimed_until = Some(now + schedule.lease);
    }

    /// Takes the answer to the attempt this node claimed.
    pub fn answered(&mut self, now: DateTime<Utc>, answer: Answer, schedule: &Schedule) -> Attempt {
        self.attempts = self.attempts.saturating_add(1);
        self.claimed_until = None;
        let retry_at = match &answer {
            Answer::Acknowledged(_) => {
                self.delivered_at = Some(now);
                self.last_error = None;
                None
            }
            Answer::Refused(status) => Some(self.retry(now, format!("HTTP {status}"), schedule)),
            Answer::Failed(error) => Some(self.retry(now, error.clone(), schedule)),
        };
        Attempt { number: self.attempts, answer, retry_at }
    }

    fn retry(&mut self, now: DateTime<Utc>, error: String, schedule: &Schedule) -> DateTime<Utc> {
        self.last_error = Some(error);
        self.next_attempt_at = now + doubled(schedule.first_retry, schedule.max_retry, self.attempts);
        self.next_attempt_at
    }
}

/// The months whose bills close at `now`: every month after `closed_through` that ended at least
/// `close_delay` ago (late usage of a month's last seconds lands in the meantime). With nothing
/// closed yet, the last ended month alone: enabling the webhook does not resend history.
pub fn months_to_close(closed_through: Option<Month>, now: DateTime<Utc>, close_delay: Duration) -> Vec<Month> {
    let Some(last_ended) = previous(Month::of(now - close_delay)) else { return Vec::new() };
    let Some(mut month) = closed_through else { return vec![last_ended] };
    let mut months = Vec::new();
    while month < last_ended {
        let Some(next) = next(month) else { break };
        months.push(next);
        month = next;
    }
    months
}

fn previous(month: Month) -> Option<Month> {
    Some(Month::containing(month.first_day()?.pred_opt()?))
}

fn next(month: Month) -> Option<Month> {
    let first = month.first_day()?;
    Some(Month::containing(first.checked_add_months(chrono::Months::new(1))?))
}

#[cfg(test)]
#[path = "delivery_tests.rs"]
mod tests;
