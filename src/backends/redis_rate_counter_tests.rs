//! The Redis rate counter against a real `redis-server` per test.

use std::time::{Duration, Instant};

use chrono::TimeZone;
use connectors_actors::rate_windows::RateWindows;
use redis::AsyncCommands;

use super::*;
use crate::backends::redis_server::RedisServer;

const PREFIX: &str = "connectors-test:";

fn acme() -> TenantId {
    TenantId::parse("acme").unwrap()
}

fn limits(per_minute: u64, per_hour: u64, per_day: u64) -> Limits {
    Limits {
        requests_per_minute: per_minute,
        requests_per_hour: per_hour,
        requests_per_day: per_day,
        max_custom_servers: 0,
        max_tool_invocations: 0,
        max_storage_mb: 0,
    }
}

/// 2026-01-31 at `h:m:s` UTC.
fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 31, h, m, s).unwrap()
}

fn remaining(status: &RateStatus) -> [u64; 3] {
    status.windows.map(|window| window.remaining)
}

async fn counter(server: &RedisServer) -> RedisRateCounter {
    RedisRateCounter::connect(&server.url(), PREFIX).await.expect("the test Redis answers")
}

#[tokio::test]
async fn every_hit_counts_in_all_three_windows() {
    let server = RedisServer::start();
    let counter = counter(&server).await;
    let limits = limits(10, 100, 1000);
    for _ in 0..3 {
        assert!(counter.hit(&acme(), &limits, at(12, 0, 30)).await.unwrap().admitted);
    }
    let status = counter.hit(&acme(), &limits, at(12, 0, 59)).await.unwrap();
    assert_eq!(remaining(&status), [6, 96, 996]);
    assert_eq!(
        status.windows.map(|w| w.reset),
        [at(12, 1, 0), at(13, 0, 0), Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap()].map(|t| t.timestamp())
    );
    assert_eq!(status.windows.map(|w| w.limit), [10, 100, 1000]);
    assert_eq!((status.admitted, status.now, status.retry_after()), (true, at(12, 0, 59).timestamp(), None));

    // A new minute starts from zero; the hour and the day go on.
    let next_minute = counter.hit(&acme(), &limits, at(12, 1, 0)).await.unwrap();
    assert_eq!(remaining(&next_minute), [9, 95, 995]);
    // Another tenant has counters of its own.
    let globex = TenantId::parse("globex").unwrap();
    assert_eq!(remaining(&counter.hit(&globex, &limits, at(12, 1, 0)).await.unwrap()), [9, 99, 999]);
}

#[tokio::test]
async fn admitted_hits_report_what_rate_windows_reports() {
    let server = RedisServer::start();
    let counter = counter(&server).await;
    let limits = limits(4, 10, 20);
    let mut windows = RateWindows::default();
    // Within every limit, across minute and hour boundaries: the two must agree exactly.
    let times =
        [at(12, 58, 1), at(12, 58, 59), at(12, 59, 0), at(12, 59, 30), at(12, 59, 59), at(13, 0, 0), at(13, 0, 1)];
    for now in times {
        let expected = windows.admit(now.timestamp(), [4, 10, 20]);
        assert_eq!(counter.hit(&acme(), &limits, now).await.unwrap(), expected, "at {now}");
    }
}

#[tokio::test]
async fn hits_over_a_limit_are_rejected_and_told_when_to_retry() {
    let server = RedisServer::start();
    let counter = counter(&server).await;
    let tight = limits(2, 3, 100);
    let now = at(12, 58, 30);
    assert_eq!(remaining(&counter.hit(&acme(), &tight, now).await.unwrap()), [1, 2, 99]);
    let last = counter.hit(&acme(), &tight, now).await.unwrap();
    assert_eq!((last.admitted, remaining(&last), last.retry_after()), (true, [0, 1, 98], None));

    let over = counter.hit(&acme(), &tight, now).await.unwrap();
    assert!(!over.admitted);
    // Rejected by the minute, yet counted in the hour and the day too (the original design's
    // behaviour, kept): the hour is now exhausted as well, so the wait runs to its end.
    assert_eq!(remaining(&over), [0, 0, 97]);
    assert_eq!(over.retry_after(), Some(90), "until 13:00, not the minute's 12:59");
    let next_minute = counter.hit(&acme(), &tight, at(12, 59, 40)).await.unwrap();
    assert!(!next_minute.admitted, "the hour is full");
    assert_eq!(remaining(&next_minute), [1, 0, 96]);
    assert_eq!(next_minute.retry_after(), Some(20), "until the hour ends");

    // A limit of 0 rejects everything, waiting for the window to end.
    let closed = counter.hit(&TenantId::parse("closed").unwrap(), &limits(0, 10, 10), now).await.unwrap();
    assert_eq!((closed.admitted, closed.retry_after()), (false, Some(30)));
}

#[tokio::test]
async fn window_keys_expire_when_their_window_ends() {
    let server = RedisServer::start();
    let counter = counter(&server).await;
    let mut redis = redis::Client::open(server.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let key = |window: &str, start: DateTime<Utc>| format!("{PREFIX}rate:acme:{window}:{}", start.timestamp());

    counter.hit(&acme(), &limits(10, 10, 10), at(12, 0, 30)).await.unwrap();
    let day_start = Utc.with_ymd_and_hms(2026, 1, 31, 0, 0, 0).unwrap();
    for (window, start, ttl) in
        [("minute", at(12, 0, 0), 30), ("hour", at(12, 0, 0), 3_570), ("day", day_start, 43_170)]
    {
        let left: i64 = redis.ttl(key(window, start)).await.unwrap();
        // A second may have ticked on the Redis clock since the hit.
        assert!((ttl - 1..=ttl).contains(&left), "{window}: {left} s left, not {ttl}");
    }

    // One second before midnight all three windows end together, a second later.
    let last_second = at(23, 59, 59);
    counter.hit(&acme(), &limits(10, 10, 10), last_second).await.unwrap();
    let keys = [key("minute", at(23, 59, 0)), key("hour", at(23, 0, 0)), key("day", day_start)];
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let live: u64 = redis.exists(&keys).await.unwrap();
        if live == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{live} window keys outlived their window");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn two_counters_on_one_redis_share_their_counts() {
    let server = RedisServer::start();
    let (first, second) = (counter(&server).await, counter(&server).await);
    let limits = limits(3, 100, 100);
    let now = at(12, 0, 0);
    assert_eq!(remaining(&first.hit(&acme(), &limits, now).await.unwrap()), [2, 99, 99]);
    assert_eq!(remaining(&second.hit(&acme(), &limits, now).await.unwrap()), [1, 98, 98]);
    assert!(first.hit(&acme(), &limits, now).await.unwrap().admitted);
    assert!(!second.hit(&acme(), &limits, now).await.unwrap().admitted, "the fourth hit, wherever it lands");

    let elsewhere = RedisRateCounter::connect(&server.url(), "other-gateway:").await.unwrap();
    assert_eq!(remaining(&elsewhere.hit(&acme(), &limits, now).await.unwrap()), [2, 99, 99], "prefixes do not share");
}

#[tokio::test]
async fn a_hit_while_redis_is_down_fails_as_a_backend_error() {
    let mut server = RedisServer::start();
    let counter = counter(&server).await;
    server.kill();
    let hit = tokio::time::timeout(Duration::from_secs(15), counter.hit(&acme(), &limits(1, 1, 1), at(12, 0, 0)))
        .await
        .expect("no hang");
    assert!(matches!(hit, Err(StoreError::Backend(_))), "{hit:?}");
}
