//! Rate-limit response headers: `X-RateLimit-*`, and the IETF `RateLimit-Policy` / `RateLimit`
//! fields, from a tenant's window status.

use std::cell::RefCell;

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use connectors_actors::rate_windows::RateStatus;

static LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
static REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
static RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
static POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

pub fn rate_headers(status: &RateStatus) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(6);
    let top = status.constraining();
    headers.insert(LIMIT.clone(), HeaderValue::from(top.limit));
    headers.insert(REMAINING.clone(), HeaderValue::from(top.remaining));
    headers.insert(RESET.clone(), HeaderValue::from(top.reset));
    headers.insert(POLICY.clone(), policy(status));
    let until_reset = (top.reset - status.now).max(0);
    let current = format!("\"{}\";r={};t={}", top.window.name(), top.remaining, until_reset);
    // Built from numbers and fixed names: always a valid header value.
    headers.insert(RATELIMIT.clone(), HeaderValue::try_from(current).expect("ASCII rate limit"));
    if let Some(wait) = status.retry_after() {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(wait));
    }
    headers
}

/// The `RateLimit-Policy` value, which depends on the three limits only. Tenants mostly share
/// their plan's limits, so each thread keeps the last few values and hands out shared copies
/// instead of formatting the same text on every request.
fn policy(status: &RateStatus) -> HeaderValue {
    const KEPT: usize = 8;
    thread_local! {
        static RECENT: RefCell<Vec<([u64; 3], HeaderValue)>> = const { RefCell::new(Vec::new()) };
    }
    let limits = status.windows.map(|w| w.limit);
    RECENT.with_borrow_mut(|recent| {
        if let Some((_, value)) = recent.iter().find(|(kept, _)| *kept == limits) {
            return value.clone();
        }
        let text = status
            .windows
            .iter()
            .map(|w| format!("\"{}\";q={};w={}", w.window.name(), w.limit, w.window.span_secs()))
            .collect::<Vec<_>>()
            .join(", ");
        // Built from numbers and fixed names: always a valid header value.
        let value = HeaderValue::try_from(text).expect("ASCII policy");
        if recent.len() == KEPT {
            recent.remove(0);
        }
        recent.push((limits, value.clone()));
        value
    })
}

#[cfg(test)]
mod tests {
    use connectors_actors::rate_windows::RateWindows;

    use super::*;

    #[test]
    fn headers_follow_the_documented_format() {
        let mut windows = RateWindows::default();
        let now = 1_798_761_600 + 43; // 43 s into a minute
        let status = windows.admit(now, [1000, 50000, 1000000]);
        let h = rate_headers(&status);
        assert_eq!(h["ratelimit-policy"], "\"minute\";q=1000;w=60, \"hour\";q=50000;w=3600, \"day\";q=1000000;w=86400");
        assert_eq!(h["ratelimit"], "\"minute\";r=999;t=17");
        assert_eq!(h["x-ratelimit-limit"], "1000");
        assert_eq!(h["x-ratelimit-remaining"], "999");
        assert_eq!(h["x-ratelimit-reset"], (1_798_761_600 + 60).to_string().as_str());
        assert!(h.get(header::RETRY_AFTER).is_none());
        let refused = windows.admit(now, [1, 50000, 1000000]);
        assert_eq!(rate_headers(&refused)[header::RETRY_AFTER], "17");
        // Kept policies never leak from one set of limits to another.
        assert_eq!(
            rate_headers(&refused)["ratelimit-policy"],
            "\"minute\";q=1;w=60, \"hour\";q=50000;w=3600, \"day\";q=1000000;w=86400"
        );
        assert_eq!(rate_headers(&status)["ratelimit-policy"], h["ratelimit-policy"]);
    }
}
