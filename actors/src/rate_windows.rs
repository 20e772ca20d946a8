//! `RateWindows`: exact fixed-window rate limiting per tenant, aligned to UTC.
//!
//! Three windows, one minute, one hour and one day long, aligned to the UTC minute, hour and
//! day boundaries (epoch seconds are UTC-aligned, so alignment is `t - t % span`). A request is
//! admitted only if every window has room, and an admitted request counts in all three. This
//! decides; it does not read clocks, persist, or format headers.

use serde::{Deserialize, Serialize};

/// The three windows, in the order their limits and counts are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Window {
    Minute,
    Hour,
    Day,
}

impl Window {
    pub const ALL: [Window; 3] = [Window::Minute, Window::Hour, Window::Day];

    pub fn span_secs(self) -> i64 {
        match self {
            Window::Minute => 60,
            Window::Hour => 3_600,
            Window::Day => 86_400,
        }
    }

    /// The name used in the IETF `RateLimit-Policy` and `RateLimit` headers.
    pub fn name(self) -> &'static str {
        match self {
            Window::Minute => "minute",
            Window::Hour => "hour",
            Window::Day => "day",
        }
    }

    fn start_of(self, now_secs: i64) -> i64 {
        now_secs - now_secs.rem_euclid(self.span_secs())
    }
}

/// The limit of each window: `[minute, hour, day]`.
pub type WindowLimits = [u64; 3];

/// Requests admitted in the current instance of one window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowCount {
    /// Epoch second at which the counted window began.
    pub start: i64,
    pub count: u64,
}

impl WindowCount {
    /// Of two counts of a window, the one of the later instance, or the larger of one instance.
    pub fn latest(self, other: WindowCount) -> WindowCount {
        std::cmp::max_by_key(self, other, |window| (window.start, window.count))
    }
}

/// The state of one window as seen by a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowStatus {
    pub window: Window,
    pub limit: u64,
    pub remaining: u64,
    /// Epoch second at which this window resets.
    pub reset: i64,
}

/// The outcome of a rate check, with what the response headers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateStatus {
    pub admitted: bool,
    pub now: i64,
    pub windows: [WindowStatus; 3],
}

impl RateStatus {
    /// The most constraining window: the least remaining; on a tie, the one resetting last
    /// (it is the one that keeps the caller waiting).
    pub fn constraining(&self) -> WindowStatus {
        let mut best = self.windows[0];
        for status in &self.windows[1..] {
            if (status.remaining, -status.reset) < (best.remaining, -best.reset) {
                best = *status;
            }
        }
        best
    }

    /// Seconds until every exhausted window has room again; `None` when the request was admitted.
    pub fn retry_after(&self) -> Option<u64> {
        if self.admitted {
            return None;
        }
        let wait = self.windows.iter().filter(|w| w.remaining == 0).map(|w| w.reset - self.now).max().unwrap_or(1);
        Some(wait.max(1) as u64)
    }
}

/// Counts of the three windows of one tenant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateWindows {
    counts: [WindowCount; 3],
}

impl RateWindows {
    /// Restores counts from a checkpoint.
    pub fn restore(counts: [WindowCount; 3]) -> Self {
        Self { counts }
    }

    pub fn counts(&self) -> [WindowCount; 3] {
        self.counts
    }

    /// Admits a request at `now_secs` if every window has room, and counts it.
    pub fn admit(&mut self, now_secs: i64, limits: WindowLimits) -> RateStatus {
        let current = self.current(now_secs);
        let admitted = current.iter().zip(limits).all(|(count, limit)| count.count < limit);
        if admitted {
            for (slot, fresh) in self.counts.iter_mut().zip(current) {
                *slot = WindowCount { start: fresh.start, count: fresh.count + 1 };
            }
        }
        let mut status = self.peek(now_secs, limits);
        status.admitted = admitted;
        status
    }

    /// The windows as they stand at `now_secs`, without counting anything.
    pub fn peek(&self, now_secs: i64, limits: WindowLimits) -> RateStatus {
        let current = self.current(now_secs);
        let windows = std::array::from_fn(|i| {
            let window = Window::ALL[i];
            WindowStatus {
                window,
                limit: limits[i],
                remaining: limits[i].saturating_sub(current[i].count),
                reset: current[i].start + window.span_secs(),
            }
        });
        RateStatus { admitted: true, now: now_secs, windows }
    }

    /// Counts of the window instances containing `now_secs`. A clock that steps back stays in
    /// the window already counted rather than reopening an earlier one.
    fn current(&self, now_secs: i64) -> [WindowCount; 3] {
        std::array::from_fn(|i| {
            let start = Window::ALL[i].start_of(now_secs);
            let counted = self.counts[i];
            if start > counted.start { WindowCount { start, count: 0 } } else { counted }
        })
    }
}

#[cfg(test)]
#[path = "rate_windows_tests.rs"]
mod tests;
