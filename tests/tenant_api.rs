//! End-to-end tests of the tenant API (`/api/v1/tenant`): authentication, tenant selection,
//! suspension, IP allow-lists, rate limits and key rotation.

mod common;

use std::time::{Duration, Instant};

use chrono::Utc;
use common::*;
use reqwest::Method;
use serde_json::json;

/// Asserts the five rate-limit headers of a tenant-API response for a tenant whose minute
/// limit `limit` is the most constraining window (hour 50000, day 1000000).
fn assert_rate_headers(resp: &Resp, limit: u64, remaining: u64) {
    let now = Utc::now().timestamp() as u64;
    assert_eq!(resp.header_u64("x-ratelimit-limit"), limit, "X-RateLimit-Limit: {resp:?}");
    assert_eq!(resp.header_u64("x-ratelimit-remaining"), remaining, "X-RateLimit-Remaining: {resp:?}");
    let reset = resp.header_u64("x-ratelimit-reset");
    assert!(reset + 1 >= now && reset <= now + 61, "X-RateLimit-Reset {reset} is not within the minute after {now}");
    assert_eq!(reset % 60, 0, "X-RateLimit-Reset {reset} is not a UTC minute boundary");
    assert_eq!(
        resp.header("ratelimit-policy").as_deref(),
        Some(format!("\"minute\";q={limit};w=60, \"hour\";q=50000;w=3600, \"day\";q=1000000;w=86400").as_str()),
        "RateLimit-Policy"
    );
    let ratelimit = resp.header("ratelimit").unwrap_or_else(|| panic!("no RateLimit header: {resp:?}"));
    let prefix = format!("\"minute\";r={remaining};t=");
    let t: u64 = ratelimit
        .strip_prefix(&prefix)
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("RateLimit `{ratelimit}` is not `{prefix}<seconds>`"));
    assert!(t <= 60, "RateLimit t={t} is beyond the minute window");
    assert!(reset.abs_diff(now + t) <= 2, "RateLimit t={t} disagrees with X-RateLimit-Reset {reset} (now {now})");
}

#[tokio::test]
async fn tenant_get_returns_the_callers_tenant_without_key() {
    let gw = Gateway::start(FAST, &[]).await;
    let (created, key) =
        gw.create_tenant(json!({"id": "self", "name": "Self", "email": "me@self.test", "plan": "pro"})).await;
    gw.create_tenant(json!({"id": "other", "name": "Other"})).await;

    let with_header = gw.tenant_get(Some("self"), Some(&key)).await;
    with_header.expect(200);
    let body = with_header.json();
    assert_tenant_shape(&body);
    assert!(body.get("apiKey").is_none(), "the tenant API shows the key: {body}");
    assert!(!with_header.text.contains(&key), "the tenant API leaks the key");
    for field in ["id", "name", "email", "plan", "status", "limits", "features", "security", "createdAt"] {
        assert_eq!(body[field], created[field], "{field}");
    }
    assert_usage_shape(&body["usage"], "self");
    assert!(with_header.header("x-request-id").is_some());
    assert!(with_header.header("x-ratelimit-limit").is_some(), "no rate-limit headers on 200: {with_header:?}");

    // Without X-Tenant-ID: the key's own tenant.
    let without_header = gw.tenant_get(None, Some(&key)).await;
    without_header.expect(200);
    assert_eq!(without_header.json()["id"], "self");
}

#[tokio::test]
async fn bad_or_missing_keys_are_401_and_foreign_keys_403() {
    let gw = Gateway::start(FAST, &[]).await;
    let (_, key_a) = gw.create_tenant(json!({"id": "tenant-a", "name": "A"})).await;
    let (_, key_b) = gw.create_tenant(json!({"id": "tenant-b", "name": "B"})).await;

    gw.tenant_get(Some("tenant-a"), None).await.expect_error(401, "unauthorized");
    gw.tenant_get(None, None).await.expect_error(401, "unauthorized");
    gw.tenant_get(Some("tenant-a"), Some("ck_not_a_real_key_at_all_0000000000000000"))
        .await
        .expect_error(401, "unauthorized");
    gw.tenant_get(None, Some("ck_not_a_real_key_at_all_0000000000000000")).await.expect_error(401, "unauthorized");
    gw.tenant_get(Some("tenant-a"), Some("")).await.expect_error(401, "unauthorized");
    gw.tenant_get(Some("tenant-a"), Some(ADMIN_KEY)).await.expect_error(401, "unauthorized");
    // The key in a scheme other than Bearer, or bare.
    let basic = send(
        gw.request(Method::GET, "/api/v1/tenant")
            .header("X-Tenant-ID", "tenant-a")
            .header("authorization", format!("Basic {key_a}")),
    )
    .await;
    basic.expect_error(401, "unauthorized");
    let bare = send(
        gw.request(Method::GET, "/api/v1/tenant")
            .header("X-Tenant-ID", "tenant-a")
            .header("authorization", key_a.clone()),
    )
    .await;
    bare.expect_error(401, "unauthorized");

    // A's key for B: a mismatch, and B's own key still works.
    let mismatch = gw.tenant_get(Some("tenant-b"), Some(&key_a)).await;
    mismatch.expect_error(403, "tenant_mismatch");
    assert!(
        mismatch.header("x-ratelimit-limit").is_some(),
        "no rate-limit headers on a 403 of an existing tenant: {mismatch:?}"
    );
    gw.tenant_get(Some("tenant-b"), Some(&key_b)).await.expect(200);
    gw.tenant_get(Some("tenant-a"), Some(&key_a)).await.expect(200);
    assert_eq!(gw.tenant_get(None, Some(&key_b)).await.json()["id"], "tenant-b");

    // A refused authentication is a denied event in the tenant's log, without the key tried.
    let wrong = send(
        gw.tenant_request(Some("tenant-a"), Some("ck_wrong_guess_5f5f5f5f5f5f5f5f5f5f"))
            .header("x-request-id", "denied-req-1")
            .header("user-agent", "e2e-agent/2.0"),
    )
    .await;
    wrong.expect_error(401, "unauthorized");
    assert_eq!(wrong.request_id(), "denied-req-1");
    let events = gw
        .wait_audit("tenant-a", "a denied event for the wrong key", |events| {
            events.iter().any(|e| e["requestId"] == "denied-req-1")
        })
        .await;
    let denied = events.iter().find(|e| e["requestId"] == "denied-req-1").unwrap();
    assert_eq!(denied["result"], "denied", "{denied}");
    assert_eq!(denied["tenantId"], "tenant-a");
    let text = serde_json::to_string(&events).unwrap();
    assert!(
        !text.contains("ck_wrong_guess") && !text.contains(&key_a) && !text.contains(&key_b),
        "a key is in the audit log: {text}"
    );
}

#[tokio::test]
async fn tenant_requests_are_audited_as_tenant_get() {
    let gw = Gateway::start(FAST, &[]).await;
    let (_, key) = gw.create_tenant(json!({"id": "watched", "name": "W"})).await;
    let ok = send(
        gw.tenant_request(Some("watched"), Some(&key))
            .header("x-request-id", "tenant-req-1")
            .header("user-agent", "e2e-agent/3.1"),
    )
    .await;
    ok.expect(200);
    assert_eq!(ok.request_id(), "tenant-req-1");
    let events = gw
        .wait_audit("watched", "the tenant.get event", |events| events.iter().any(|e| e["requestId"] == "tenant-req-1"))
        .await;
    let event = events.iter().find(|e| e["requestId"] == "tenant-req-1").unwrap();
    assert_eq!(event["action"], "tenant.get", "{event}");
    assert_eq!(event["result"], "success", "{event}");
    assert_eq!(event["tenantId"], "watched");
    assert_eq!(event["ip"], "127.0.0.1", "{event}");
    assert_eq!(event["userAgent"], "e2e-agent/3.1", "{event}");
    assert!(event["duration"].is_number(), "{event}");
    assert_rfc3339(&event["timestamp"], "timestamp");
    assert!(!serde_json::to_string(&events).unwrap().contains(&key));
    let only_gets = gw.audit_events("watched", &[("action", "tenant.get")]).await;
    assert_eq!(only_gets.len(), 1, "{only_gets:#?}");
}

#[tokio::test]
async fn suspended_tenants_are_refused_until_reactivated() {
    let gw = Gateway::start(FAST, &[]).await;
    ensure_minute_room(5).await;
    let key = gw.create_limited("paused", 100).await;
    gw.tenant_get(Some("paused"), Some(&key)).await.expect(200);
    let suspended = gw.patch_tenant("paused", json!({"status": "suspended"})).await;
    suspended.expect(200);
    assert_eq!(suspended.json()["status"], "suspended");
    let refused = gw.tenant_get(Some("paused"), Some(&key)).await;
    refused.expect_error(403, "tenant_suspended");
    assert_eq!(refused.header_u64("x-ratelimit-limit"), 100, "rate-limit headers on 403: {refused:?}");
    gw.tenant_get(None, Some(&key)).await.expect_error(403, "tenant_suspended");
    // Without a valid key the status is not revealed.
    gw.tenant_get(Some("paused"), Some("ck_wrong_key_000000000000000000000")).await.expect_error(401, "unauthorized");
    gw.patch_tenant("paused", json!({"status": "active"})).await.expect(200);
    gw.tenant_get(Some("paused"), Some(&key)).await.expect(200);
    gw.patch_tenant("paused", json!({"status": "deleted"})).await.expect_error(400, "invalid_request");
    assert_eq!(gw.admin(Method::GET, "/tenants/paused", None).await.json()["status"], "active");
}

#[tokio::test]
async fn allowed_ips_admit_only_listed_clients_and_bad_entries_change_nothing() {
    let gw = Gateway::start(FAST, &[]).await;
    let (_, key) = gw.create_tenant(json!({"id": "fenced", "name": "F", "plan": "pro"})).await;
    gw.tenant_get(Some("fenced"), Some(&key)).await.expect(200);

    // Elsewhere only: refused, with rate-limit headers.
    let patched =
        gw.patch_tenant("fenced", json!({"security": {"allowedIPs": ["10.0.0.0/8", "2001:db8::/32", "::1"]}})).await;
    patched.expect(200);
    assert_eq!(patched.json()["security"]["allowedIPs"], json!(["10.0.0.0/8", "2001:db8::/32", "::1"]));
    let refused = gw.tenant_get(Some("fenced"), Some(&key)).await;
    refused.expect_error(403, "ip_not_allowed");
    assert!(refused.header("x-ratelimit-limit").is_some(), "no rate-limit headers on 403 ip_not_allowed: {refused:?}");
    // X-Forwarded-For from an untrusted peer is not believed.
    let spoofed = send(gw.tenant_request(Some("fenced"), Some(&key)).header("x-forwarded-for", "10.1.2.3")).await;
    spoofed.expect_error(403, "ip_not_allowed");

    // A single address and a CIDR holding the client both admit it.
    gw.patch_tenant("fenced", json!({"security": {"allowedIPs": ["127.0.0.1"]}})).await.expect(200);
    gw.tenant_get(Some("fenced"), Some(&key)).await.expect(200);
    gw.patch_tenant("fenced", json!({"security": {"allowedIPs": ["192.0.2.1", "127.0.0.0/8"]}})).await.expect(200);
    gw.tenant_get(Some("fenced"), Some(&key)).await.expect(200);

    // A malformed entry: 400, and neither the list nor the other fields of the PATCH change.
    let before = gw.admin(Method::GET, "/tenants/fenced", None).await.json();
    for bad in ["300.1.1.1", "10.0.0.0/33", "not-an-ip", "", "2001:db8::/129", "1.2.3"] {
        let response =
            gw.patch_tenant("fenced", json!({"name": "Changed", "security": {"allowedIPs": ["127.0.0.1", bad]}})).await;
        response.expect_error(400, "invalid_request");
    }
    let after = gw.admin(Method::GET, "/tenants/fenced", None).await.json();
    assert_eq!(after["name"], before["name"]);
    assert_eq!(after["security"], before["security"]);
    assert_eq!(after["updatedAt"], before["updatedAt"]);
    gw.tenant_get(Some("fenced"), Some(&key)).await.expect(200);

    // Also on create: a bad list refuses the tenant entirely.
    let response = gw
        .admin(
            Method::POST,
            "/tenants",
            Some(json!({"id": "fenced-2", "name": "F2", "security": {"allowedIPs": ["999.0.0.1"]}})),
        )
        .await;
    response.expect_error(400, "invalid_request");
    gw.admin(Method::GET, "/tenants/fenced-2", None).await.expect_error(404, "not_found");

    // An empty list admits everyone again.
    gw.patch_tenant("fenced", json!({"security": {"allowedIPs": ["10.0.0.1"]}})).await.expect(200);
    gw.tenant_get(Some("fenced"), Some(&key)).await.expect_error(403, "ip_not_allowed");
    gw.patch_tenant("fenced", json!({"security": {"allowedIPs": []}})).await.expect(200);
    gw.tenant_get(Some("fenced"), Some(&key)).await.expect(200);
}

#[tokio::test]
async fn forwarded_for_is_believed_from_trusted_proxies() {
    let config = "gateway:\n  trustedProxies: [\"127.0.0.1\"]\n  tickMillis: 100\n  flushIntervalMillis: 20\n";
    let gw = Gateway::start(config, &[]).await;
    let (_, key) = gw
        .create_tenant(json!({"id": "proxied", "name": "P", "plan": "pro", "security": {"allowedIPs": ["203.0.113.7", "2001:db8::/32"]}}))
        .await;
    let via = |xff: Option<&'static str>, rid: &'static str| {
        let mut request = gw.tenant_request(Some("proxied"), Some(&key)).header("x-request-id", rid);
        if let Some(xff) = xff {
            request = request.header("x-forwarded-for", xff);
        }
        send(request)
    };
    via(Some("203.0.113.7"), "xff-ok").await.expect(200);
    via(Some("2001:db8::5"), "xff-v6").await.expect(200);
    via(Some("198.51.100.1"), "xff-other").await.expect_error(403, "ip_not_allowed");
    via(None, "xff-none").await.expect_error(403, "ip_not_allowed");
    // The audit event records the client, not the proxy.
    let events = gw
        .wait_audit("proxied", "the forwarded request's event", |e| e.iter().any(|e| e["requestId"] == "xff-ok"))
        .await;
    let event = events.iter().find(|e| e["requestId"] == "xff-ok").unwrap();
    assert_eq!(event["ip"], "203.0.113.7", "{event}");
}

#[tokio::test]
async fn configured_header_names_carry_tenant_and_raw_key() {
    let config = "multiTenant:\n  tenantIdHeader: X-Org-ID\n  apiKeyHeader: X-API-Key\ngateway:\n  tickMillis: 100\n  flushIntervalMillis: 20\n";
    let gw = Gateway::start(config, &[]).await;
    let (_, key) = gw.create_tenant(json!({"id": "org-one", "name": "One"})).await;
    gw.create_tenant(json!({"id": "org-two", "name": "Two"})).await;
    let get = || gw.request(Method::GET, "/api/v1/tenant");
    let ok = send(get().header("X-Org-ID", "org-one").header("X-API-Key", &key)).await;
    ok.expect(200);
    assert_eq!(ok.json()["id"], "org-one");
    assert_eq!(send(get().header("X-API-Key", &key)).await.json()["id"], "org-one");
    // The default header names mean nothing now.
    send(get().header("X-Org-ID", "org-one").bearer_auth(&key)).await.expect_error(401, "unauthorized");
    send(get().header("X-Org-ID", "org-one").header("X-API-Key", format!("Bearer {key}")))
        .await
        .expect_error(401, "unauthorized");
    send(get().header("X-Org-ID", "org-two").header("X-API-Key", &key)).await.expect_error(403, "tenant_mismatch");
    // X-Tenant-ID is no longer the tenant header: the key's own tenant answers.
    let ignored = send(get().header("X-Tenant-ID", "org-two").header("X-API-Key", &key)).await;
    ignored.expect(200);
    assert_eq!(ignored.json()["id"], "org-one");
}

#[tokio::test]
async fn without_required_keys_the_fallback_tenant_serves_keyless_requests() {
    let config = "multiTenant:\n  requireApiKey: false\n  fallbackTenantId: default\ngateway:\n  tickMillis: 100\n  flushIntervalMillis: 20\n";
    let mut gw = Gateway::start(config, &[]).await;
    // The fallback tenant exists from the start.
    let fallback = gw.admin(Method::GET, "/tenants/default", None).await;
    fallback.expect(200);
    assert_tenant_shape(&fallback.json());
    let keyless = gw.tenant_get(None, None).await;
    keyless.expect(200);
    assert_eq!(keyless.json()["id"], "default");
    // A tenant with a key is still reached with it, and only with it.
    let (_, key) = gw.create_tenant(json!({"id": "keyed", "name": "K"})).await;
    assert_eq!(gw.tenant_get(None, Some(&key)).await.json()["id"], "keyed");
    gw.tenant_get(Some("keyed"), None).await.expect_error(401, "unauthorized");
    gw.tenant_get(Some("keyed"), Some("ck_wrong_000000000000000000000000")).await.expect_error(401, "unauthorized");
    // Restarting does not create it twice or lose it.
    gw.restart().await;
    assert_eq!(gw.tenant_get(None, None).await.json()["id"], "default");
    let list = gw.admin(Method::GET, "/tenants", None).await.json();
    assert_eq!(list["total"], 2, "{list}");
}

#[tokio::test]
async fn rate_limits_count_down_and_refuse_with_429() {
    let gw = Gateway::start(FAST, &[]).await;
    ensure_minute_room(6).await;
    let started = Utc::now();
    let key = gw.create_limited("metered", 3).await;
    for remaining in [2, 1, 0] {
        let ok = gw.tenant_get(Some("metered"), Some(&key)).await;
        ok.expect(200);
        assert_rate_headers(&ok, 3, remaining);
    }
    let limited = send(gw.tenant_request(Some("metered"), Some(&key)).header("x-request-id", "limited-1")).await;
    let body = limited.expect_error(429, "rate_limited");
    assert_eq!(body["requestId"], "limited-1");
    assert_rate_headers(&limited, 3, 0);
    let retry_after = limited.header_u64("retry-after");
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    assert_eq!(body["retryAfter"], retry_after, "retryAfter in the body equals Retry-After: {body}");
    let reset = limited.header_u64("x-ratelimit-reset");
    let now = Utc::now().timestamp() as u64;
    assert!(
        retry_after.abs_diff(reset.saturating_sub(now)) <= 2,
        "Retry-After {retry_after} vs reset {reset} (now {now})"
    );
    // Still refused; other tenants are not affected.
    gw.tenant_get(Some("metered"), Some(&key)).await.expect_error(429, "rate_limited");
    let other = gw.create_limited("unmetered", 3).await;
    gw.tenant_get(Some("unmetered"), Some(&other)).await.expect(200);
    assert_eq!(minute_of(started), minute_of(Utc::now()), "the test crossed a minute boundary; its counts are void");
}

#[tokio::test]
async fn patched_limits_apply_to_the_very_next_request() {
    let gw = Gateway::start(FAST, &[]).await;
    ensure_minute_room(6).await;
    let started = Utc::now();
    let key = gw.create_limited("elastic", 2).await;
    gw.tenant_get(Some("elastic"), Some(&key)).await.expect(200);
    gw.tenant_get(Some("elastic"), Some(&key)).await.expect(200);
    gw.tenant_get(Some("elastic"), Some(&key)).await.expect_error(429, "rate_limited");
    // Raised to 5: two admitted already, so three more.
    let patched = gw.patch_tenant("elastic", json!({"limits": {"requestsPerMinute": 5}})).await;
    patched.expect(200);
    assert_eq!(patched.json()["limits"]["requestsPerMinute"], 5);
    let next = gw.tenant_get(Some("elastic"), Some(&key)).await;
    next.expect(200);
    assert_rate_headers(&next, 5, 2);
    // Lowered to 1: refused at once.
    gw.patch_tenant("elastic", json!({"limits": {"requestsPerMinute": 1}})).await.expect(200);
    let refused = gw.tenant_get(Some("elastic"), Some(&key)).await;
    refused.expect_error(429, "rate_limited");
    assert_eq!(refused.header_u64("x-ratelimit-limit"), 1);
    assert_eq!(refused.header_u64("x-ratelimit-remaining"), 0);
    assert_eq!(minute_of(started), minute_of(Utc::now()), "the test crossed a minute boundary; its counts are void");
}

#[tokio::test]
async fn rotate_key_without_grace_stops_the_old_key_at_once() {
    let gw = Gateway::start(FAST, &[]).await;
    let (_, old) = gw.create_tenant(json!({"id": "rotor", "name": "R", "plan": "pro"})).await;
    gw.tenant_get(Some("rotor"), Some(&old)).await.expect(200);
    let rotated = gw.admin(Method::POST, "/tenants/rotor/rotate-key", None).await;
    rotated.expect(200);
    let body = rotated.json();
    let new = body["apiKey"].as_str().unwrap_or_else(|| panic!("no apiKey: {body}")).to_string();
    assert!(new.len() >= 22 && new != old, "new key {new:?}");
    gw.tenant_get(Some("rotor"), Some(&old)).await.expect_error(401, "unauthorized");
    gw.tenant_get(None, Some(&old)).await.expect_error(401, "unauthorized");
    gw.tenant_get(Some("rotor"), Some(&new)).await.expect(200);
    // An explicit empty body is the same; the key before stops at once too.
    let again = gw.admin(Method::POST, "/tenants/rotor/rotate-key", Some(json!({}))).await;
    again.expect(200);
    let newest = again.json()["apiKey"].as_str().unwrap().to_string();
    gw.tenant_get(Some("rotor"), Some(&new)).await.expect_error(401, "unauthorized");
    gw.tenant_get(Some("rotor"), Some(&newest)).await.expect(200);
    // The tenant object never shows a key.
    let tenant = gw.admin(Method::GET, "/tenants/rotor", None).await;
    assert!(!tenant.text.contains(&newest) && !tenant.text.contains("apiKey"), "{}", tenant.text);
    // Bad bodies change nothing.
    for bad in [json!({"graceSeconds": -1}), json!({"graceSeconds": "2"}), json!({"grace": 2})] {
        gw.admin(Method::POST, "/tenants/rotor/rotate-key", Some(bad)).await.expect_error(400, "invalid_request");
    }
    gw.tenant_get(Some("rotor"), Some(&newest)).await.expect(200);
}

#[tokio::test]
async fn rotate_key_with_grace_keeps_the_old_key_for_the_grace_period_only() {
    let gw = Gateway::start(FAST, &[]).await;
    let (_, old) = gw.create_tenant(json!({"id": "graceful", "name": "G", "plan": "pro"})).await;
    let sent = Instant::now();
    let rotated = gw.admin(Method::POST, "/tenants/graceful/rotate-key", Some(json!({"graceSeconds": 2}))).await;
    rotated.expect(200);
    let new = rotated.json()["apiKey"].as_str().unwrap().to_string();
    gw.tenant_get(Some("graceful"), Some(&old)).await.expect(200);
    gw.tenant_get(Some("graceful"), Some(&new)).await.expect(200);
    // Poll until the old key stops; it must stop, and not much before or after 2 s.
    let stopped_after = eventually("the old key to stop working", Duration::from_secs(6), || async {
        let response = gw.tenant_get(Some("graceful"), Some(&old)).await;
        match response.status {
            401 => Ok(sent.elapsed()),
            200 => Err("still 200".to_string()),
            _ => Err(format!("unexpected {} {}", response.status, response.text)),
        }
    })
    .await;
    assert!(
        stopped_after >= Duration::from_millis(1500),
        "the old key stopped after {stopped_after:?}, before its 2 s grace"
    );
    // Upper bound with room for a slow request on a loaded machine.
    assert!(
        stopped_after <= Duration::from_millis(4000),
        "the old key still worked {stopped_after:?} after a 2 s grace"
    );
    gw.tenant_get(Some("graceful"), Some(&new)).await.expect(200);
}

#[tokio::test]
async fn concurrent_requests_never_exceed_the_limit() {
    let gw = Gateway::start(FAST, &[]).await;
    ensure_minute_room(10).await;
    let started = Utc::now();
    let key = gw.create_limited("crowded", 10).await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..40 {
        let request = gw.tenant_request(Some("crowded"), Some(&key));
        tasks.spawn(async move { send(request).await });
    }
    let (mut admitted, mut limited) = (0, 0);
    while let Some(result) = tasks.join_next().await {
        let response = result.expect("request task");
        match response.status {
            200 => admitted += 1,
            429 => {
                response.expect_error(429, "rate_limited");
                limited += 1;
            }
            _ => panic!("unexpected response under concurrency: {response:?}"),
        }
    }
    assert_eq!(minute_of(started), minute_of(Utc::now()), "the test crossed a minute boundary; its counts are void");
    assert_eq!((admitted, limited), (10, 30), "a limit of 10 admitted {admitted} of 40 concurrent requests");
    gw.wait_usage_api_calls("crowded", 10).await;
    // Every request is audited: the admitted ones and the first ten refusals one by one
    // (`audit.refusalsPerMinute`), the other twenty counted in one summary.
    let events = gw
        .wait_audit("crowded", "20 tenant events", |events| {
            events.iter().filter(|e| e["action"] == "tenant.get").count() >= 20
        })
        .await;
    assert_eq!(events.iter().filter(|e| e["action"] == "tenant.get").count(), 20, "{events:#?}");
    assert_eq!(events.iter().filter(|e| e["action"] == "tenant.get" && e["result"] == "success").count(), 10);
    let counted: u64 = events
        .iter()
        .filter(|e| e["action"] == "requests.refused" && e["params"]["reason"] == "rate_limited")
        .map(|e| e["params"]["count"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(counted, 20, "{events:#?}");
}

#[tokio::test]
async fn the_most_constraining_window_is_the_one_reported() {
    let gw = Gateway::start(FAST, &[]).await;
    let (_, key) = gw
        .create_tenant(json!({"id": "hourly", "name": "H", "limits": {"requestsPerMinute": 100, "requestsPerHour": 2, "requestsPerDay": 1000}}))
        .await;
    let first = gw.tenant_get(Some("hourly"), Some(&key)).await;
    first.expect(200);
    let now = Utc::now().timestamp() as u64;
    assert_eq!(first.header_u64("x-ratelimit-limit"), 2, "{first:?}");
    assert_eq!(first.header_u64("x-ratelimit-remaining"), 1, "{first:?}");
    let reset = first.header_u64("x-ratelimit-reset");
    assert!(
        reset > now && reset <= now + 3600 && reset % 3600 == 0,
        "X-RateLimit-Reset {reset} is not the next hour boundary after {now}"
    );
    assert_eq!(
        first.header("ratelimit-policy").as_deref(),
        Some("\"minute\";q=100;w=60, \"hour\";q=2;w=3600, \"day\";q=1000;w=86400"),
        "{first:?}"
    );
    let ratelimit = first.header("ratelimit").unwrap_or_default();
    let t: u64 = ratelimit
        .strip_prefix("\"hour\";r=1;t=")
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("RateLimit `{ratelimit}` is not `\"hour\";r=1;t=<seconds>`"));
    assert!(t <= 3600 && reset.abs_diff(now + t) <= 2, "RateLimit t={t} vs reset {reset}");
    gw.tenant_get(Some("hourly"), Some(&key)).await.expect(200);
    let limited = gw.tenant_get(Some("hourly"), Some(&key)).await;
    let body = limited.expect_error(429, "rate_limited");
    let retry_after = limited.header_u64("retry-after");
    assert!((1..=3600).contains(&retry_after), "Retry-After {retry_after}");
    assert_eq!(body["retryAfter"], retry_after);
    assert_eq!(limited.header_u64("x-ratelimit-remaining"), 0);
}

/// Requests without `X-Tenant-ID` are routed by the key's owner, which the edge remembers; a
/// rotated-out or deleted tenant's key must still be refused at once.
#[tokio::test]
async fn keys_without_a_tenant_header_stop_at_once_after_rotation_and_deletion() {
    let gw = Gateway::start(FAST, &[]).await;
    let (_, old_key) = gw.create_tenant(json!({"id": "acme", "name": "Acme"})).await;
    gw.tenant_get(None, Some(&old_key)).await.expect(200);
    gw.tenant_get(None, Some(&old_key)).await.expect(200);

    let rotated = gw.admin(Method::POST, "/tenants/acme/rotate-key", None).await;
    rotated.expect(200);
    let new_key = rotated.json()["apiKey"].as_str().unwrap().to_string();
    gw.tenant_get(None, Some(&old_key)).await.expect_error(401, "unauthorized");
    gw.tenant_get(None, Some(&old_key)).await.expect_error(401, "unauthorized");
    let own = gw.tenant_get(None, Some(&new_key)).await;
    own.expect(200);
    assert_eq!(own.json()["id"], "acme");

    gw.admin(Method::DELETE, "/tenants/acme", None).await.expect(204);
    gw.tenant_get(None, Some(&new_key)).await.expect_error(401, "unauthorized");
}

/// A client address that keeps failing to authenticate (wrong keys, unknown tenants, a wrong
/// admin key) is refused with 429 before any lookup for the rest of its minute, even with a
/// right key; other addresses are not affected.
#[tokio::test]
async fn an_address_that_keeps_failing_to_authenticate_is_refused_for_a_while() {
    const ATTACKER: &str = "203.0.113.7";
    const NEIGHBOUR: &str = "203.0.113.8";
    const OTHER: &str = "198.51.100.1";
    const WRONG: &str = "ck_wrong_guess_0123456789abcdef0123";
    let config = "gateway:\n  tickMillis: 100\n  flushIntervalMillis: 20\n  trustedProxies: ['127.0.0.1']\n  authFailuresPerMinute: 5\n";
    let gw = Gateway::start(config, &[]).await;
    let (_, key) = gw.create_tenant(json!({"id": "target", "name": "Target"})).await;
    let from = |address: &str, tenant: &str, key: &str| {
        gw.tenant_request(Some(tenant), Some(key)).header("X-Forwarded-For", address)
    };
    for attempt in 0..5 {
        let tenant = if attempt % 2 == 0 { "target" } else { "no-such-tenant" };
        send(from(ATTACKER, tenant, WRONG)).await.expect_error(401, "unauthorized");
    }
    let refused = send(from(ATTACKER, "target", &key)).await;
    refused.expect_error(429, "rate_limited");
    assert!((1..=60).contains(&refused.header_u64("retry-after")), "{refused:?}");
    send(gw.admin_request(Method::GET, "/tenants").header("X-Forwarded-For", ATTACKER))
        .await
        .expect_error(429, "rate_limited");
    send(from(OTHER, "target", &key)).await.expect(200);
    gw.admin(Method::GET, "/tenants", None).await.expect(200);

    // Wrong admin keys count too.
    let admin_from = |key: &str| {
        gw.request(Method::GET, "/api/v1/admin/tenants").bearer_auth(key).header("X-Forwarded-For", NEIGHBOUR)
    };
    for _ in 0..5 {
        send(admin_from("not-the-admin-key")).await.expect_error(401, "unauthorized");
    }
    send(admin_from(common::ADMIN_KEY)).await.expect_error(429, "rate_limited");
}
