//! `RedisRateCounter`: the original Connectors design's rate limiter, one Redis round trip per
//! request. Kept as a compatibility mode (`RATE_LIMIT_STORE=redis`) and as the baseline the
//! actor-owned `RateWindows` is benchmarked against; the default path never calls it.
//!
//! Per request and per fixed UTC window (minute, hour, day, aligned as in `RateWindows`), `INCR`
//! the window's counter and `EXPIRE` it at the window's end, all six commands in one round trip.
//! The request is admitted iff every count, this request included, is within its limit. It
//! answers with the same [`RateStatus`] as `RateWindows`, so the HTTP layer sets the same headers.
//!
//! Kept as the original behaved, weaknesses included (the reasons the default moved to actors):
//! - Rejected requests are counted too: a client retrying while over its minute limit also uses
//!   up its hour and day budgets, and `remaining` stays 0 until the window ends.
//! - Every request waits for Redis, and a Redis outage fails every request (the caller decides
//!   whether that means admit or reject).
//!
//! Keys, after the prefix: `rate:<tenant id>:<minute|hour|day>:<window start, epoch seconds>`,
//! an integer that expires when its window ends.

use chrono::{DateTime, Utc};
use connectors_actors::rate_windows::{RateStatus, Window, WindowStatus};
use connectors_actors::store::StoreError;
use connectors_actors::tenant::{Limits, TenantId};

use super::redis_connection::RedisConnection;
use super::redis_namespace::RedisLayout;

pub struct RedisRateCounter {
    redis: RedisConnection,
    prefix: String,
    layout: RedisLayout,
}

impl RedisRateCounter {
    /// Connects to the Redis at `url`, keeping counters under `prefix`. Fails within a few
    /// seconds, naming the URL (not its password), when Redis does not answer.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, StoreError> {
        Ok(Self {
            redis: RedisConnection::connect(url).await?,
            prefix: prefix.to_string(),
            layout: RedisLayout::Shared,
        })
    }

    /// Keeps tenants' counters as `layout` says (see `redis_namespace`).
    pub fn with_layout(mut self, layout: RedisLayout) -> Self {
        self.layout = layout;
        self
    }

    /// Counts one request of `tenant` at `now` in all three windows and says whether it is
    /// admitted, with every window's state for the rate-limit headers
    /// ([`RateStatus::retry_after`] for a rejection).
    pub async fn hit(&self, tenant: &TenantId, limits: &Limits, now: DateTime<Utc>) -> Result<RateStatus, StoreError> {
        let now_secs = now.timestamp();
        let limits = [limits.requests_per_minute, limits.requests_per_hour, limits.requests_per_day];
        let starts = Window::ALL.map(|window| now_secs - now_secs.rem_euclid(window.span_secs()));
        // MULTI/EXEC costs no extra round trip and keeps a counter from ever missing its expiry
        // (a lost connection between INCR and EXPIRE would leave it forever). The TTL is relative
        // to `now`, so a clock difference between gateway and Redis shifts expiry, not counts.
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (window, start) in Window::ALL.into_iter().zip(starts) {
            let key = self.key(tenant, window, start);
            let end = start + window.span_secs();
            pipe.incr(&key, 1).expire(&key, end - now_secs).ignore();
        }
        let counts: [u64; 3] =
            pipe.query_async(&mut self.redis.handle()).await.map_err(|err| self.redis.failure(err))?;
        let windows: [WindowStatus; 3] = std::array::from_fn(|i| {
            let window = Window::ALL[i];
            WindowStatus {
                window,
                limit: limits[i],
                remaining: limits[i].saturating_sub(counts[i]),
                reset: starts[i] + window.span_secs(),
            }
        });
        let admitted = counts.iter().zip(limits).all(|(count, limit)| *count <= limit);
        Ok(RateStatus { admitted, now: now_secs, windows })
    }

    fn key(&self, tenant: &TenantId, window: Window, start: i64) -> String {
        self.layout.tenant_key(&self.prefix, "rate", tenant.as_str(), &format!(":{}:{start}", window.name()))
    }
}

#[cfg(test)]
#[path = "redis_rate_counter_tests.rs"]
mod tests;
