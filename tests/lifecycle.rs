//! End-to-end tests of the process and the tenant actors' life: operations endpoints,
//! Prometheus counters, passivation, crash and supervised restart, graceful restart with
//! persistence, start-up failures, and secrets that must never reach logs or disk.

mod common;

use std::time::{Duration, Instant};

use chrono::Utc;
use common::*;
use reqwest::Method;
use serde_json::json;

/// Lifecycle timings: idle actors stop after 1 s, ticks and flushes are fast.
const QUICK: &str = "gateway:\n  passivateAfterSeconds: 1\n  tickMillis: 100\n  flushIntervalMillis: 20\n";

async fn gauge(gw: &Gateway, name: &str) -> f64 {
    let text = gw.metrics_text().await;
    metric(&text, name, &[]).unwrap_or_else(|| panic!("no `{name}` in /metrics:\n{text}"))
}

#[tokio::test]
async fn operations_endpoints_and_per_tenant_prometheus_counters() {
    let gw = Gateway::start(FAST, &[]).await;
    gw.get("/healthz").await.expect(200);
    gw.get("/readyz").await.expect(200);
    ensure_minute_room(6).await;
    let key = gw.create_limited("counted", 2).await;
    let (_, quiet_key) = gw.create_tenant(json!({"id": "quiet", "name": "Q", "plan": "pro"})).await;
    gw.tenant_get(Some("counted"), Some(&key)).await.expect(200);
    gw.tenant_get(Some("counted"), Some(&key)).await.expect(200);
    gw.tenant_get(Some("counted"), Some(&key)).await.expect_error(429, "rate_limited");
    gw.tenant_get(Some("counted"), Some("ck_wrong_000000000000000000000000")).await.expect_error(401, "unauthorized");
    gw.patch_tenant("counted", json!({"status": "suspended"})).await.expect(200);
    gw.tenant_get(Some("counted"), Some(&key)).await.expect_error(403, "tenant_suspended");
    gw.tenant_get(Some("quiet"), Some(&quiet_key)).await.expect(200);

    let response = gw.get("/metrics").await;
    response.expect(200);
    let content_type = response.header("content-type").unwrap_or_default();
    assert!(content_type.starts_with("text/plain"), "/metrics content-type {content_type:?}");
    let text = response.text;
    let counted = [("tenant", "counted")];
    assert_eq!(
        metric(&text, "connectors_tenant_requests_total", &counted),
        Some(5.0),
        "requests of `counted`:\n{text}"
    );
    assert_eq!(
        metric(&text, "connectors_tenant_rate_limited_total", &counted),
        Some(1.0),
        "rate-limited of `counted`:\n{text}"
    );
    assert_eq!(metric(&text, "connectors_tenant_denied_total", &counted), Some(2.0), "denied of `counted`:\n{text}");
    let quiet = [("tenant", "quiet")];
    assert_eq!(metric(&text, "connectors_tenant_requests_total", &quiet), Some(1.0), "{text}");
    assert_eq!(metric(&text, "connectors_tenant_rate_limited_total", &quiet).unwrap_or(0.0), 0.0, "{text}");
    assert_eq!(metric(&text, "connectors_tenant_denied_total", &quiet).unwrap_or(0.0), 0.0, "{text}");
    assert!(text.contains("# TYPE connectors_tenant_actors_active gauge"), "{text}");
    assert!(text.contains("# TYPE connectors_tenant_actor_restarts_total counter"), "{text}");
    assert!(metric(&text, "connectors_tenant_actors_active", &[]).is_some_and(|v| v >= 1.0), "an actor serves: {text}");
    assert_eq!(metric(&text, "connectors_tenant_actor_restarts_total", &[]), Some(0.0), "{text}");
}

#[tokio::test]
async fn idle_tenants_passivate_and_resume_with_their_counts() {
    let gw = Gateway::start(QUICK, &[]).await;
    ensure_minute_room(15).await;
    let started = Utc::now();
    let key = gw.create_limited("napper", 5).await;
    for remaining in [4, 3, 2] {
        let response = gw.tenant_get(Some("napper"), Some(&key)).await;
        response.expect(200);
        assert_eq!(response.header_u64("x-ratelimit-remaining"), remaining);
    }
    assert!(gauge(&gw, "connectors_tenant_actors_active").await >= 1.0, "the tenant's actor is active after a request");
    let idle_since = Instant::now();
    eventually("the idle actor to passivate", Duration::from_secs(8), || async {
        let active = gauge(&gw, "connectors_tenant_actors_active").await;
        if active == 0.0 { Ok(()) } else { Err(format!("{active} actors active")) }
    })
    .await;
    let idle_for = idle_since.elapsed();
    assert!(idle_for <= Duration::from_secs(5), "passivation took {idle_for:?} with passivateAfterSeconds 1");
    // The counts of this minute continue: exactly two more, then 429.
    for remaining in [1, 0] {
        let response = gw.tenant_get(Some("napper"), Some(&key)).await;
        response.expect(200);
        assert_eq!(response.header_u64("x-ratelimit-remaining"), remaining, "after reactivation: {response:?}");
    }
    assert!(gauge(&gw, "connectors_tenant_actors_active").await >= 1.0, "a request reactivates the actor");
    gw.tenant_get(Some("napper"), Some(&key)).await.expect_error(429, "rate_limited");
    assert_eq!(minute_of(started), minute_of(Utc::now()), "the test crossed a minute boundary; its counts are void");
    // Usage survived passivation too.
    gw.wait_usage_api_calls("napper", 5).await;
}

#[tokio::test]
async fn a_quiet_active_tenant_gets_no_ticks_until_it_has_work() {
    // Ticks every 100 ms; an idle actor would passivate only after the default 300 s.
    let gw = Gateway::start("gateway:\n  tickMillis: 100\n  flushIntervalMillis: 20\n", &[]).await;
    let key = gw.create_limited("quiet", 1_000).await;
    gw.tenant_get(Some("quiet"), Some(&key)).await.expect(200);
    // The request's counts are written out at a tick; then the actor has nothing due.
    eventually("the request's usage written out", Duration::from_secs(8), || async {
        let ticks = gauge(&gw, "connectors_tenant_ticks_total").await;
        if ticks >= 1.0 { Ok(()) } else { Err(format!("{ticks} ticks")) }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let settled = gauge(&gw, "connectors_tenant_ticks_total").await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(gauge(&gw, "connectors_tenant_ticks_total").await, settled, "15 rounds passed a quiet actor by");
    assert_eq!(gauge(&gw, "connectors_tenant_actors_active").await, 1.0, "the actor stays active meanwhile");
    // A request gives it counts to write out: it is ticked again.
    gw.tenant_get(Some("quiet"), Some(&key)).await.expect(200);
    eventually("a tick after the next request", Duration::from_secs(8), || async {
        let ticks = gauge(&gw, "connectors_tenant_ticks_total").await;
        if ticks > settled { Ok(()) } else { Err(format!("{ticks} ticks")) }
    })
    .await;
}

#[tokio::test]
async fn a_crashed_tenant_actor_is_restarted_with_its_checkpointed_state() {
    let gw = Gateway::start(FAST, &[("CONNECTORS_FAULT_INJECTION", "1")]).await;
    ensure_minute_room(15).await;
    let started = Utc::now();
    let key = gw.create_limited("fragile", 5).await;
    for _ in 0..3 {
        gw.tenant_get(Some("fragile"), Some(&key)).await.expect(200);
    }
    // Past a few ticks (100 ms), so the counts are checkpointed.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(gauge(&gw, "connectors_tenant_actor_restarts_total").await, 0.0);

    // The crash route is an admin route.
    send(gw.request(Method::POST, "/api/v1/admin/tenants/fragile/crash")).await.expect_error(401, "unauthorized");
    send(gw.request(Method::POST, "/api/v1/admin/tenants/fragile/crash").bearer_auth(&key))
        .await
        .expect_error(401, "unauthorized");
    gw.admin(Method::POST, "/tenants/ghost/crash", None).await.expect_error(404, "not_found");
    gw.admin(Method::POST, "/tenants/fragile/crash", None).await.expect(202);

    eventually("the supervisor to restart the actor", Duration::from_secs(5), || async {
        let restarts = gauge(&gw, "connectors_tenant_actor_restarts_total").await;
        if restarts >= 1.0 { Ok(()) } else { Err(format!("{restarts} restarts")) }
    })
    .await;
    gw.get("/healthz").await.expect(200);
    // The tenant answers; its counts continue from the checkpoint (3 of 5 used).
    let first = eventually("the tenant to answer after its crash", Duration::from_secs(5), || async {
        let response = gw.tenant_get(Some("fragile"), Some(&key)).await;
        match response.status {
            200 => Ok(response),
            503 => Err(format!("503 {}", response.text)),
            _ => panic!("after the crash: {response:?}"),
        }
    })
    .await;
    assert_eq!(first.header_u64("x-ratelimit-remaining"), 1, "counts restarted from scratch or were lost: {first:?}");
    let second = gw.tenant_get(Some("fragile"), Some(&key)).await;
    second.expect(200);
    assert_eq!(second.header_u64("x-ratelimit-remaining"), 0);
    gw.tenant_get(Some("fragile"), Some(&key)).await.expect_error(429, "rate_limited");
    assert_eq!(minute_of(started), minute_of(Utc::now()), "the test crossed a minute boundary; its counts are void");
    // Its tenant object and usage are intact.
    let tenant = gw.admin(Method::GET, "/tenants/fragile", None).await.json();
    assert_eq!(tenant["limits"]["requestsPerMinute"], 5);
    gw.wait_usage_api_calls("fragile", 5).await;
}

/// A tenant whose actor crashes at every turn is restarted with back-off and, after five crashes
/// within a minute, refused as degraded (503 with the reason and `Retry-After`) rather than
/// restarted in a loop; other tenants are not affected.
#[tokio::test]
async fn a_tenant_actor_that_keeps_crashing_is_refused_as_degraded_not_restarted_in_a_loop() {
    let gw = Gateway::start(FAST, &[("CONNECTORS_FAULT_INJECTION", "1")]).await;
    let key = gw.create_limited("poison", 1_000).await;
    let other = gw.create_limited("healthy", 1_000).await;
    let started = std::time::Instant::now();
    let mut crashes = 0;
    let refused = loop {
        assert!(started.elapsed() < Duration::from_secs(20), "never degraded after {crashes} crashes");
        let response = gw.tenant_get(Some("poison"), Some(&key)).await;
        if response.status == 503 && response.text.contains("degraded") {
            break response;
        }
        if gw.admin(Method::POST, "/tenants/poison/crash", None).await.status == 202 {
            crashes += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(crashes, 5, "degraded at the fifth crash within a minute");
    refused.expect_error(503, "unavailable");
    let retry_after = refused.header_u64("retry-after");
    assert!((1..=30).contains(&retry_after), "Retry-After {retry_after}");
    assert!(refused.text.contains("crashed 5 times"), "{}", refused.text);
    // No restart loop: one restart per crash at most, while the back-off holds it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(gauge(&gw, "connectors_tenant_actor_restarts_total").await <= 5.0);
    assert_eq!(gauge(&gw, "connectors_tenants_degraded").await, 1.0);
    gw.tenant_get(Some("poison"), Some(&key)).await.expect_error(503, "unavailable");
    gw.tenant_get(Some("healthy"), Some(&other)).await.expect(200);
}

#[tokio::test]
async fn graceful_restart_keeps_tenants_keys_limits_usage_audit_and_windows() {
    let mut gw = Gateway::start(FAST, &[]).await;
    ensure_minute_room(20).await;
    let started = Utc::now();

    // keeper: rotated key, limit 5/min, 3 requests made.
    let first_key = gw.create_limited("keeper", 5).await;
    let rotated = gw.admin(Method::POST, "/tenants/keeper/rotate-key", None).await;
    rotated.expect(200);
    let key = rotated.json()["apiKey"].as_str().unwrap().to_string();
    gw.patch_tenant("keeper", json!({"name": "Keeper", "features": {"advancedAnalytics": true}})).await.expect(200);
    for _ in 0..3 {
        gw.tenant_get(Some("keeper"), Some(&key)).await.expect(200);
    }
    // sleeper: suspended. fence: an allow-list without us. overlap: rotated with a long grace.
    let (_, sleeper_key) = gw.create_tenant(json!({"id": "sleeper", "name": "S"})).await;
    gw.patch_tenant("sleeper", json!({"status": "suspended"})).await.expect(200);
    let (_, fence_key) =
        gw.create_tenant(json!({"id": "fence", "name": "F", "security": {"allowedIPs": ["10.0.0.1"]}})).await;
    let (_, overlap_old) = gw.create_tenant(json!({"id": "overlap", "name": "O", "plan": "pro"})).await;
    let overlap = gw.admin(Method::POST, "/tenants/overlap/rotate-key", Some(json!({"graceSeconds": 120}))).await;
    overlap.expect(200);
    let overlap_new = overlap.json()["apiKey"].as_str().unwrap().to_string();

    gw.wait_usage_api_calls("keeper", 3).await;
    let audit_before = gw
        .wait_audit("keeper", "keeper's 6 events", |events| {
            events.iter().filter(|e| e["action"] == "tenant.get").count() == 3
                && events.iter().any(|e| e["action"] == "admin.tenant.rotate_key")
                && events.iter().any(|e| e["action"] == "admin.tenant.update")
        })
        .await;
    let keeper_before = gw.admin(Method::GET, "/tenants/keeper", None).await.json();
    let list_before = gw.admin(Method::GET, "/tenants", None).await.json();

    let status = gw.stop_graceful().await;
    assert_eq!(status.code(), Some(0), "exit after SIGTERM: {status}; stderr:\n{}", gw.stderr_text());
    gw.start_again().await;

    // Tenants and their settings.
    let keeper_after = gw.admin(Method::GET, "/tenants/keeper", None).await.json();
    for field in ["id", "name", "email", "plan", "status", "limits", "features", "security", "createdAt", "updatedAt"] {
        assert_eq!(keeper_after[field], keeper_before[field], "{field} changed across the restart");
    }
    assert_eq!(keeper_after["usage"]["apiCalls"], 3, "usage lost: {keeper_after}");
    let list_after = gw.admin(Method::GET, "/tenants", None).await.json();
    assert_eq!(list_after["total"], list_before["total"]);
    // Audit history, unchanged.
    assert_eq!(gw.audit_events("keeper", &[]).await, audit_before, "the audit log changed across the restart");
    // Keys: the rotated-out one stays dead, the current one works, and the minute's count goes on.
    gw.tenant_get(Some("keeper"), Some(&first_key)).await.expect_error(401, "unauthorized");
    for remaining in [1, 0] {
        let response = gw.tenant_get(Some("keeper"), Some(&key)).await;
        response.expect(200);
        assert_eq!(
            response.header_u64("x-ratelimit-remaining"),
            remaining,
            "rate window lost across the restart: {response:?}"
        );
    }
    gw.tenant_get(Some("keeper"), Some(&key)).await.expect_error(429, "rate_limited");
    assert_eq!(minute_of(started), minute_of(Utc::now()), "the test crossed a minute boundary; its counts are void");
    // Status, allow-list and the grace period survive too.
    gw.tenant_get(Some("sleeper"), Some(&sleeper_key)).await.expect_error(403, "tenant_suspended");
    gw.tenant_get(Some("fence"), Some(&fence_key)).await.expect_error(403, "ip_not_allowed");
    gw.tenant_get(Some("overlap"), Some(&overlap_old)).await.expect(200);
    gw.tenant_get(Some("overlap"), Some(&overlap_new)).await.expect(200);
    gw.wait_usage_api_calls("keeper", 5).await;

    // And once more: a second stop is clean as well.
    let status = gw.stop_graceful().await;
    assert_eq!(status.code(), Some(0), "second exit after SIGTERM: {status}");
}

#[tokio::test]
async fn no_key_reaches_logs_audit_or_disk() {
    let mut gw = Gateway::start(FAST, &[("RUST_LOG", "debug")]).await;
    let (_, first) = gw.create_tenant(json!({"id": "secretive", "name": "S", "plan": "pro"})).await;
    let (_, neighbour) = gw.create_tenant(json!({"id": "neighbour", "name": "N", "plan": "pro"})).await;
    let graced = gw.admin(Method::POST, "/tenants/secretive/rotate-key", Some(json!({"graceSeconds": 60}))).await;
    graced.expect(200);
    let second = graced.json()["apiKey"].as_str().unwrap().to_string();
    let rotated = gw.admin(Method::POST, "/tenants/secretive/rotate-key", None).await;
    rotated.expect(200);
    let third = rotated.json()["apiKey"].as_str().unwrap().to_string();
    let guess = "ck_guessed_9d8c7b6a5f4e3d2c1b0a";

    gw.tenant_get(Some("secretive"), Some(&third)).await.expect(200);
    gw.tenant_get(Some("secretive"), Some(&second)).await.expect_error(401, "unauthorized");
    gw.tenant_get(Some("secretive"), Some(guess)).await.expect_error(401, "unauthorized");
    gw.tenant_get(None, Some(guess)).await.expect_error(401, "unauthorized");
    gw.tenant_get(Some("neighbour"), Some(&third)).await.expect_error(403, "tenant_mismatch");
    gw.tenant_get(Some("neighbour"), Some(&neighbour)).await.expect(200);
    send(gw.request(Method::GET, "/api/v1/admin/tenants").bearer_auth(&third)).await.expect_error(401, "unauthorized");
    send(gw.request(Method::GET, "/api/v1/admin/tenants").bearer_auth(guess)).await.expect_error(401, "unauthorized");
    gw.wait_audit("secretive", "the denied guesses", |events| {
        events.iter().filter(|e| e["result"] == "denied").count() >= 2
    })
    .await;
    gw.wait_audit("neighbour", "the mismatch", |events| events.iter().any(|e| e["result"] == "denied")).await;

    let secrets = [first.as_str(), second.as_str(), third.as_str(), neighbour.as_str(), guess, ADMIN_KEY];
    for tenant in ["secretive", "neighbour"] {
        let audit = serde_json::to_string(&gw.audit_events(tenant, &[]).await).unwrap();
        for secret in secrets {
            assert!(!audit.contains(secret), "the audit log of {tenant} holds a key `{secret}`: {audit}");
        }
    }
    let status = gw.stop_graceful().await;
    assert_eq!(status.code(), Some(0), "exit after SIGTERM: {status}");
    let output = format!("{}\n{}", gw.stdout_text(), gw.stderr_text());
    assert!(!output.trim().is_empty(), "no process output was captured, so the check below would prove nothing");
    for secret in secrets {
        assert!(!output.contains(secret), "the process output holds a key `{secret}`:\n{output}");
        let files = gw.data_files_containing(secret);
        assert!(files.is_empty(), "data files hold a key `{secret}`: {files:?}");
    }
}

#[tokio::test]
async fn sigterm_flushes_what_was_not_yet_written() {
    // Nothing is flushed or checkpointed by time during this test: only shutdown writes.
    let config = "gateway:\n  tickMillis: 600000\n  flushIntervalMillis: 600000\n";
    let mut gw = Gateway::start(config, &[]).await;
    ensure_minute_room(15).await;
    let started = Utc::now();
    let key = gw.create_limited("hasty", 5).await;
    for i in 0..3 {
        send(gw.tenant_request(Some("hasty"), Some(&key)).header("x-request-id", format!("hasty-{i}")))
            .await
            .expect(200);
    }
    let status = gw.stop_graceful().await;
    assert_eq!(status.code(), Some(0), "exit after SIGTERM: {status}; stderr:\n{}", gw.stderr_text());
    gw.start_again().await;
    let usage = gw.admin(Method::GET, "/tenants/hasty/usage", None).await;
    usage.expect(200);
    assert_eq!(usage.json()["apiCalls"], 3, "usage not flushed at shutdown: {}", usage.text);
    let events = gw.audit_events("hasty", &[("action", "tenant.get")]).await;
    let ids: Vec<&str> = events.iter().filter_map(|e| e["requestId"].as_str()).collect();
    assert_eq!(ids, ["hasty-0", "hasty-1", "hasty-2"], "audit not flushed at shutdown: {events:#?}");
    for remaining in [1, 0] {
        let response = gw.tenant_get(Some("hasty"), Some(&key)).await;
        response.expect(200);
        assert_eq!(
            response.header_u64("x-ratelimit-remaining"),
            remaining,
            "rate window not saved at shutdown: {response:?}"
        );
    }
    gw.tenant_get(Some("hasty"), Some(&key)).await.expect_error(429, "rate_limited");
    assert_eq!(minute_of(started), minute_of(Utc::now()), "the test crossed a minute boundary; its counts are void");
}

#[tokio::test]
async fn sigterm_does_not_wait_forever_for_a_stalled_client() {
    use tokio::io::AsyncWriteExt;
    let mut gw = Gateway::start(FAST, &[]).await;
    // A request whose body never finishes arriving.
    let mut stalled = tokio::net::TcpStream::connect(gw.url("").trim_start_matches("http://")).await.expect("connect");
    let head = format!(
        "POST /api/v1/admin/tenants HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_KEY}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"id\":"
    );
    stalled.write_all(head.as_bytes()).await.expect("write");
    // And an idle keep-alive connection.
    gw.get("/healthz").await.expect(200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopping = Instant::now();
    let status = gw.stop_graceful().await;
    let took = stopping.elapsed();
    assert!(took < Duration::from_secs(12), "shutdown took {took:?}");
    assert_eq!(status.code(), Some(0), "exit after SIGTERM with a stalled client: {status}");
    drop(stalled);
}

#[tokio::test]
async fn a_generated_admin_key_is_printed_once_kept_as_a_hash_and_persists() {
    let mut gw = Gateway::start_with_admin_key(FAST, &[], None).await;
    let output = format!("{}\n{}", gw.stdout_text(), gw.stderr_text());
    // Some word of the output is the key: try every long token.
    let candidates: Vec<String> = output
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .filter(|w| w.len() >= 22)
        .map(str::to_string)
        .collect();
    let mut found = None;
    for candidate in &candidates {
        let response = send(gw.request(Method::GET, "/api/v1/admin/tenants").bearer_auth(candidate)).await;
        if response.status == 200 {
            found = Some(candidate.clone());
            break;
        }
    }
    let key = found.unwrap_or_else(|| panic!("no word of the start-up output is a working admin key:\n{output}"));
    gw.set_admin_key(&key);
    send(gw.request(Method::GET, "/api/v1/admin/tenants").bearer_auth("ck_admin_wrong"))
        .await
        .expect_error(401, "unauthorized");
    gw.create_tenant(json!({"id": "made-by-generated", "name": "G"})).await;
    gw.restart().await;
    // Same key after a restart, not printed again, never on disk in clear.
    let again = gw.admin(Method::GET, "/tenants/made-by-generated", None).await;
    again.expect(200);
    let output = format!("{}\n{}", gw.stdout_text(), gw.stderr_text());
    assert_eq!(output.matches(key.as_str()).count(), 1, "the generated key must be printed exactly once:\n{output}");
    let files = gw.data_files_containing(&key);
    assert!(files.is_empty(), "the admin key is stored in clear in {files:?}");
}

#[tokio::test]
async fn bad_configuration_stops_start_up_with_a_message() {
    let cases: &[(&str, &str)] = &[
        ("multiTenant:\n  rateLimits:\n    requestsPerMinut: 5\n", "requestsPerMinut"),
        ("gateways:\n  tickMillis: 100\n", "gateways"),
        ("gateway:\n  tickMillis: fast\n", "tickMillis"),
        ("multiTenant:\n  requireApiKey: maybe\n", "requireApiKey"),
        ("multiTenant:\n  plans:\n    pro:\n      limits: {requestsPerMinute: many}\n", "requestsPerMinute"),
        ("gateway:\n  trustedProxies: [\"not-a-cidr\"]\n", "trustedProxies"),
        ("tools:\n  embeddingModel: /nonexistent/all-MiniLM-L6-v2\n", "embeddingModel"),
    ];
    for (yaml, named) in cases {
        let started = Instant::now();
        let failed = run_expecting_exit(Some(yaml), "127.0.0.1:0", Duration::from_secs(10)).await;
        assert!(!failed.status.success(), "started with a bad config {yaml:?}: {}", failed.status);
        assert!(
            failed.stderr.contains(named),
            "stderr does not name `{named}` for config {yaml:?}:\n{}{}",
            failed.stderr,
            failed.stdout
        );
        assert!(started.elapsed() < Duration::from_secs(10));
    }
    let bad_listen = run_expecting_exit(Some(FAST), "not-an-address", Duration::from_secs(10)).await;
    assert!(!bad_listen.status.success(), "started with --listen not-an-address");
    assert!(
        bad_listen.stderr.to_lowercase().contains("listen") || bad_listen.stderr.contains("not-an-address"),
        "stderr does not name the listen address:\n{}",
        bad_listen.stderr
    );
}

#[tokio::test]
async fn a_missing_config_file_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent.yaml");
    let args =
        ["--listen".to_string(), "127.0.0.1:0".to_string(), "--config".to_string(), missing.display().to_string()];
    let failed = run_args_expecting_exit(&args, &[], Duration::from_secs(10)).await;
    assert!(!failed.status.success(), "started with a missing config file");
    assert!(failed.stderr.contains("absent.yaml"), "stderr does not name the missing file:\n{}", failed.stderr);
}

/// `audit.retentionDays`: events past the retention are deleted soon after start (and hourly),
/// a deleted tenant's log included; younger ones stay.
#[tokio::test]
async fn audit_events_past_their_retention_are_deleted() {
    use connectors::backends::redb_store::RedbStore;
    use connectors_actors::audit::{AuditEvent, AuditResult};
    use connectors_actors::store::{Batch, Store};
    use connectors_actors::tenant::TenantId;

    let config = "gateway:\n  tickMillis: 100\n  flushIntervalMillis: 20\naudit:\n  retentionDays: 30\n";
    let mut gw = Gateway::start(config, &[]).await;
    let (_, key) = gw.create_tenant(json!({"id": "old-timer", "name": "Old timer"})).await;
    gw.tenant_get(Some("old-timer"), Some(&key)).await.expect(200);
    gw.wait_audit("old-timer", "the recent request", |events| events.len() == 2).await;
    let status = gw.stop_graceful().await;
    assert_eq!(status.code(), Some(0));

    // Older events, written as the recorder would have written them back then.
    let event = |tenant: &str, days_ago: i64, request_id: &str| AuditEvent {
        timestamp: Utc::now() - chrono::Duration::days(days_ago),
        tenant_id: TenantId::parse(tenant).unwrap(),
        user_id: None,
        action: "tenant.get".into(),
        tool_id: None,
        params: None,
        result: AuditResult::Success,
        duration: 1,
        ip: None,
        user_agent: None,
        request_id: request_id.into(),
        event_id: None,
    };
    {
        let store = RedbStore::open(&gw.data_dir().join("connectors.redb"), 8 << 20).unwrap();
        let audit = vec![event("old-timer", 40, "forty"), event("old-timer", 10, "ten"), event("gone", 40, "gone")];
        let batch = Batch { id: None, audit, usage: Vec::new(), checkpoints: Vec::new() };
        store.commit(std::sync::Arc::new(batch)).await.unwrap();
    }
    gw.start_again().await;
    let kept = eventually("the old events to be deleted", Duration::from_secs(10), || async {
        let events = gw.audit_events("old-timer", &[]).await;
        let ids: Vec<String> = events.iter().map(|e| e["requestId"].as_str().unwrap_or_default().to_string()).collect();
        if ids.iter().any(|id| id == "forty") { Err(format!("{ids:?}")) } else { Ok(ids) }
    })
    .await;
    assert!(kept.iter().any(|id| id == "ten"), "{kept:?}");
    assert_eq!(kept.len(), 3, "the creation, the recent request and the ten-day-old one: {kept:?}");
    // A log outlives its tenant, not its retention: with its events gone, there is nothing to read.
    gw.admin(Method::GET, "/tenants/gone/audit", None).await.expect_error(404, "not_found");
}

/// A bug that kills the tenant supervisor itself does not take the node down: a new supervisor
/// takes over and every tenant is served again, its counts from the last checkpoint.
#[tokio::test]
async fn a_dead_supervisor_is_replaced_and_tenants_are_served_again() {
    let gw = Gateway::start(FAST, &[("CONNECTORS_FAULT_INJECTION", "1")]).await;
    let keys = [gw.create_limited("alpha", 1000).await, gw.create_limited("beta", 1000).await];
    for (id, key) in ["alpha", "beta"].iter().zip(&keys) {
        gw.tenant_get(Some(id), Some(key)).await.expect(200);
    }
    send(gw.request(Method::POST, "/api/v1/admin/supervisor/crash")).await.expect_error(401, "unauthorized");
    gw.admin(Method::POST, "/supervisor/crash", None).await.expect(202);

    eventually("a new supervisor to take over", Duration::from_secs(5), || async {
        let restarts = gauge(&gw, "connectors_supervisor_restarts_total").await;
        if restarts >= 1.0 { Ok(()) } else { Err(format!("{restarts} supervisor restarts")) }
    })
    .await;
    for (id, key) in ["alpha", "beta"].iter().zip(&keys) {
        eventually("the tenant to answer again", Duration::from_secs(5), || async {
            let response = gw.tenant_get(Some(id), Some(key)).await;
            if response.status == 200 { Ok(()) } else { Err(format!("{} {}", response.status, response.text)) }
        })
        .await;
    }
    // A tenant created after the restart is activated by the new supervisor.
    let key = gw.create_limited("gamma", 1000).await;
    gw.tenant_get(Some("gamma"), Some(&key)).await.expect(200);
    gw.get("/readyz").await.expect(200);
    assert!(gw.stderr_text().contains("the tenant supervisor died"), "the log says what happened");
}

/// A flood of requests for tenants that do not exist costs one store read per id, not one per
/// request, while a real tenant is served all along; a tenant created while its id is remembered
/// as absent is served at once.
#[tokio::test]
async fn a_flood_of_unknown_tenants_costs_a_store_read_per_id_and_real_ones_go_on() {
    // Per-address throttling of failed authentication is off: this flood comes from one address,
    // where a real one would come from many.
    let config = format!("{FAST}  authFailuresPerMinute: 0\n");
    let gw = Gateway::start(&config, &[]).await;
    let key = gw.create_limited("real", 100_000).await;
    let lookups = || async { gauge(&gw, "connectors_absent_tenant_lookups_total").await };
    let before = lookups().await;

    for round in 0..10 {
        let mut flood = tokio::task::JoinSet::new();
        for i in 0..20 {
            let request = gw.request(Method::GET, "/api/v1/tenant").header("X-Tenant-ID", format!("ghost-{i}"));
            flood.spawn(send(request.bearer_auth("ck_made_up")));
        }
        while let Some(response) = flood.join_next().await {
            let response = response.expect("the request task ran");
            assert!(matches!(response.status, 401 | 404), "round {round}: {response:?}");
        }
        gw.tenant_get(Some("real"), Some(&key)).await.expect(200);
    }
    let reads = lookups().await - before;
    assert!(reads <= 20.0, "200 requests for 20 unknown ids cost {reads} store reads");
    assert!(reads >= 1.0, "the lookups are counted");

    // `ghost-0` is remembered as absent; created now, it is served at once.
    let (_, ghost_key) = gw.create_tenant(json!({"id": "ghost-0", "name": "Ghost"})).await;
    gw.tenant_get(Some("ghost-0"), Some(&ghost_key)).await.expect(200);
}
