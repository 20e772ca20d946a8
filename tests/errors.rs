//! End-to-end tests of the error contract: request ids, the error body, malformed input and
//! oversized bodies, unknown routes — and never a 500.

mod common;

use std::collections::HashSet;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn every_response_carries_a_request_id_echoed_when_sent() {
    let gw = Gateway::start(FAST, &[]).await;
    let (_, key) = gw.create_tenant(json!({"id": "echo", "name": "E"})).await;
    let requests = || {
        vec![
            gw.request(Method::GET, "/healthz"),
            gw.request(Method::GET, "/readyz"),
            gw.request(Method::GET, "/metrics"),
            gw.admin_request(Method::GET, "/tenants"),
            gw.admin_request(Method::GET, "/tenants/echo"),
            gw.admin_request(Method::GET, "/tenants/ghost"),
            gw.request(Method::GET, "/api/v1/admin/tenants"),
            gw.tenant_request(Some("echo"), Some(&key)),
            gw.tenant_request(Some("echo"), None),
            gw.request(Method::GET, "/no/such/route"),
        ]
    };
    // Sent: echoed, in the header and in error bodies.
    for (i, request) in requests().into_iter().enumerate() {
        let rid = format!("client-rid-{i}-0f3e");
        let response = send(request.header("x-request-id", &rid)).await;
        assert_eq!(response.header("x-request-id").as_deref(), Some(rid.as_str()), "not echoed: {response:?}");
        if response.status >= 400 {
            assert_eq!(response.expect_error_shape()["requestId"], rid.as_str());
        }
    }
    // Not sent: generated, distinct.
    let mut seen = HashSet::new();
    for request in requests() {
        let response = send(request).await;
        let rid = response.request_id();
        assert!(!rid.is_empty(), "empty X-Request-Id");
        assert!(seen.insert(rid.clone()), "X-Request-Id {rid} generated twice");
        if response.status >= 400 {
            response.expect_error_shape();
        }
    }
}

#[tokio::test]
async fn unknown_routes_are_json_404() {
    let gw = Gateway::start(FAST, &[]).await;
    gw.get("/nope").await.expect_error(404, "not_found");
    gw.get("/api/v1/nope").await.expect_error(404, "not_found");
    gw.admin(Method::GET, "/nope", None).await.expect_error(404, "not_found");
    gw.admin(Method::GET, "/tenants/x/nope", None).await.expect_error(404, "not_found");
    // Fault injection is off: its route does not exist.
    gw.create_tenant(json!({"id": "sturdy", "name": "S"})).await;
    gw.admin(Method::POST, "/tenants/sturdy/crash", None).await.expect_error(404, "not_found");
    // A known path with a method it does not have: a 4xx with the error body.
    let wrong_method = send(gw.request(Method::DELETE, "/healthz")).await;
    assert!((400..500).contains(&wrong_method.status), "DELETE /healthz: {wrong_method:?}");
    wrong_method.expect_error_shape();
}

#[tokio::test]
async fn malformed_json_and_unknown_fields_are_400_and_write_nothing() {
    let gw = Gateway::start(FAST, &[]).await;
    gw.create_tenant(json!({"id": "stable", "name": "Stable", "plan": "pro", "limits": {"requestsPerMinute": 9}}))
        .await;
    let before = gw.admin(Method::GET, "/tenants/stable", None).await.json();

    let create_bodies: Vec<&str> = vec![
        "{\"id\": \"fresh\", \"name\": ",
        "{\"id\": \"fresh\", \"name\": \"F\"} trailing",
        "{'id': 'fresh'}",
        "",
        "null",
        "[]",
        "\"fresh\"",
        "{\"id\": \"fresh\"}",
        "{\"name\": \"F\"}",
        "{\"id\": \"fresh\", \"name\": \"F\", \"bogus\": 1}",
        "{\"id\": \"fresh\", \"name\": \"F\", \"status\": \"active\", \"apiKey\": \"mine\"}",
        "{\"id\": \"fresh\", \"name\": \"F\", \"limits\": {\"requestsPerMinutes\": 5}}",
        "{\"id\": \"fresh\", \"name\": \"F\", \"features\": {\"teleport\": true}}",
        "{\"id\": \"fresh\", \"name\": \"F\", \"security\": {\"allowedIps\": []}}",
        "{\"id\": \"fresh\", \"name\": 5}",
        "{\"id\": \"fresh\", \"name\": \"F\", \"email\": 5}",
        "{\"id\": \"fresh\", \"name\": \"F\", \"plan\": 1}",
        "{\"id\": \"fresh\", \"name\": \"F\", \"limits\": {\"requestsPerMinute\": \"ten\"}}",
        "{\"id\": \"fresh\", \"name\": \"F\", \"limits\": {\"requestsPerMinute\": -1}}",
        "{\"id\": \"fresh\", \"name\": \"F\", \"limits\": {\"requestsPerMinute\": 1.5}}",
        "{\"id\": \"fresh\", \"name\": \"F\", \"limits\": {\"requestsPerMinute\": 18446744073709551616}}",
        "{\"id\": \"fresh\", \"name\": \"F\", \"limits\": 5}",
        "{\"id\": \"fresh\", \"name\": \"F\", \"features\": {\"oauth\": \"yes\"}}",
        "{\"id\": \"fresh\", \"name\": \"F\", \"security\": {\"allowedIPs\": \"127.0.0.1\"}}",
    ];
    let mut failures = Failures::default();
    for body in &create_bodies {
        let response = gw.admin_raw(Method::POST, "/tenants", body.to_string()).await;
        failures.check(format!("POST /tenants {body}"), response.error_mismatch(400, "invalid_request"));
    }
    // Not UTF-8 at all.
    let binary = gw.admin_raw(Method::POST, "/tenants", vec![0xff_u8, 0xfe, b'{', 0x80]).await;
    binary.expect_error(400, "invalid_request");
    // Nested far deeper than any parser should recurse.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    gw.admin_raw(Method::POST, "/tenants", deep.clone()).await.expect_error(400, "invalid_request");
    gw.admin(Method::GET, "/tenants/fresh", None).await.expect_error(404, "not_found");

    let patch_bodies: Vec<&str> = vec![
        "{\"name\": ",
        "not json",
        "{\"name\": \"Changed\", \"bogus\": true}",
        "{\"name\": \"Changed\", \"id\": \"other\"}",
        "{\"name\": \"Changed\", \"createdAt\": \"2020-01-01T00:00:00Z\"}",
        "{\"name\": \"Changed\", \"status\": \"frozen\"}",
        "{\"name\": \"Changed\", \"status\": true}",
        "{\"name\": \"Changed\", \"limits\": {\"requestsPerMinute\": \"ten\"}}",
        "{\"name\": \"Changed\", \"limits\": {\"rpm\": 5}}",
        "{\"name\": \"Changed\", \"features\": {\"oauth\": 1}}",
        "{\"name\": \"Changed\", \"security\": {\"allowedIPs\": [1]}}",
        "{\"name\": \"Changed\", \"security\": {\"blockedIPs\": []}}",
        "{\"name\": \"Changed\", \"limits\": []}",
        "{\"name\": \"Changed\", \"security\": [[\"10.0.0.1\"]]}",
        "[{\"name\": \"Changed\"}]",
    ];
    for body in &patch_bodies {
        let response = gw.admin_raw(Method::PATCH, "/tenants/stable", body.to_string()).await;
        failures.check(format!("PATCH /tenants/stable {body}"), response.error_mismatch(400, "invalid_request"));
    }
    let response = gw.admin_raw(Method::PATCH, "/tenants/stable", deep).await;
    failures.check("PATCH with 100000 nested arrays", response.error_mismatch(400, "invalid_request"));
    let after = gw.admin(Method::GET, "/tenants/stable", None).await.json();
    for field in ["name", "email", "plan", "status", "limits", "features", "security", "createdAt", "updatedAt"] {
        let changed = (after[field] != before[field]).then(|| format!("{} -> {}", before[field], after[field]));
        failures.check(format!("refused PATCHes changed `{field}`"), changed);
    }
    failures.assert_none();
    assert_eq!(gw.admin(Method::GET, "/tenants", None).await.json()["total"], 1);
    assert!(!gw.stderr_text().contains("panicked"), "the server panicked:\n{}", gw.stderr_text());
}

/// Chunked transfer encoding of `body` in one chunk, with the final empty chunk.
fn chunked(body: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", body.len()).into_bytes();
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n0\r\n\r\n");
    out
}

#[tokio::test]
async fn bodies_over_the_default_limit_are_413() {
    let gw = Gateway::start(FAST, &[]).await;
    // A valid create padded past 1 MiB, announced with Content-Length and sent chunked.
    let body = json!({"id": "huge", "name": "n".repeat(1024 * 1024)}).to_string().into_bytes();
    assert!(body.len() > 1024 * 1024);
    let head = gw.raw_admin_head("POST", "/tenants", Some(body.len()));
    let response = gw.raw_exchange(head, body.clone()).await;
    response.expect_error(413, "payload_too_large");
    assert_eq!(response.request_id(), "raw-POST-1");
    let head = gw.raw_admin_head("POST", "/tenants", None);
    gw.raw_exchange(head, chunked(&body)).await.expect_error(413, "payload_too_large");
    gw.admin(Method::GET, "/tenants/huge", None).await.expect_error(404, "not_found");
    // The server is still fine; an oversized PATCH changes nothing.
    gw.create_tenant(json!({"id": "small", "name": "S"})).await;
    let huge_patch = json!({"name": "m".repeat(2 * 1024 * 1024)}).to_string().into_bytes();
    let head = gw.raw_admin_head("PATCH", "/tenants/small", Some(huge_patch.len()));
    gw.raw_exchange(head, huge_patch).await.expect_error(413, "payload_too_large");
    assert_eq!(gw.admin(Method::GET, "/tenants/small", None).await.json()["name"], "S");
    // Just under the limit is not refused for its size.
    let name_len = 1024 * 1024 - 64;
    let fits = json!({"name": "f".repeat(name_len)}).to_string().into_bytes();
    assert!(fits.len() <= 1024 * 1024);
    let head = gw.raw_admin_head("PATCH", "/tenants/small", Some(fits.len()));
    let response = gw.raw_exchange(head, fits).await;
    assert_ne!(
        response.status,
        413,
        "a body within 1 MiB was refused as too large: {}",
        &response.text[..response.text.len().min(300)]
    );
    assert!(response.status < 500, "{}", &response.text[..response.text.len().min(300)]);
}

#[tokio::test]
async fn max_body_bytes_is_configurable() {
    let gw = Gateway::start("gateway:\n  maxBodyBytes: 300\n  tickMillis: 100\n  flushIntervalMillis: 20\n", &[]).await;
    let small = json!({"id": "tiny", "name": "T"});
    assert!(small.to_string().len() < 300);
    gw.create_tenant(small).await;
    let padded = json!({"id": "padded", "name": "p".repeat(400)}).to_string().into_bytes();
    let head = gw.raw_admin_head("POST", "/tenants", Some(padded.len()));
    gw.raw_exchange(head, padded).await.expect_error(413, "payload_too_large");
    gw.admin(Method::GET, "/tenants/padded", None).await.expect_error(404, "not_found");
}

#[tokio::test]
async fn odd_requests_never_get_a_5xx() {
    let gw = Gateway::start(FAST, &[]).await;
    let (_, key) = gw.create_tenant(json!({"id": "target", "name": "T"})).await;
    let long_id = "a".repeat(5000);
    let cases: Vec<(Method, String, Option<String>)> = vec![
        (Method::GET, "/api/v1/admin/tenants/%FF".into(), None),
        (Method::GET, "/api/v1/admin/tenants/a%2Fb".into(), None),
        (Method::GET, "/api/v1/admin/tenants/%00".into(), None),
        (Method::GET, format!("/api/v1/admin/tenants/{long_id}"), None),
        (Method::GET, "/api/v1/admin/tenants/target/../target".into(), None),
        (Method::GET, "/api/v1/admin/tenants?limit=-1".into(), None),
        (Method::GET, "/api/v1/admin/tenants?limit=99999999999999999999999".into(), None),
        (Method::GET, "/api/v1/admin/tenants?cursor=%FF%FE".into(), None),
        (Method::GET, "/api/v1/admin/tenants/target/audit?limit=0".into(), None),
        (Method::GET, "/api/v1/admin/tenants/target/audit?since=2024-01-01T00:00:00%2B25:00".into(), None),
        (Method::GET, "/api/v1/admin/tenants/target/metrics?startDate=0000-01-01&endDate=9999-12-31".into(), None),
        (Method::GET, "/api/v1/admin/tenants/target/metrics?startDate=-262144-01-01".into(), None),
        (Method::GET, "/api/v1/admin/tenants/target/usage?month=9999-12".into(), None),
        (Method::GET, "/api/v1/admin/tenants/target/usage?month=0000-01".into(), None),
        (Method::PATCH, "/api/v1/admin/tenants/target".into(), Some("{\"limits\":{\"requestsPerMinute\":0}}".into())),
        (
            Method::PATCH,
            "/api/v1/admin/tenants/target".into(),
            Some(format!("{{\"name\":\"{}\"}}", "\\u0000".repeat(10))),
        ),
        (
            Method::POST,
            "/api/v1/admin/tenants/target/rotate-key".into(),
            Some("{\"graceSeconds\": 99999999999999}".into()),
        ),
        (Method::PUT, "/api/v1/admin/tenants/target".into(), Some("{}".into())),
        (Method::POST, "/api/v1/tenant".into(), Some("{}".into())),
    ];
    for (method, path, body) in cases {
        let mut request = gw.request(method.clone(), &path).bearer_auth(ADMIN_KEY);
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body);
        }
        let response = send(request).await;
        assert!(response.status < 500, "{method} {path}: {response:?}");
        if response.status >= 400 {
            response.expect_error_shape();
        }
    }
    // Tenant API with odd headers.
    let odd_headers: Vec<(&str, String)> = vec![
        ("X-Tenant-ID", "NOT VALID".into()),
        ("X-Tenant-ID", long_id.clone()),
        ("X-Tenant-ID", "".into()),
        ("X-Forwarded-For", "garbage, ::::, 999.1.1.1".into()),
        ("Authorization", "Bearer".into()),
        ("Authorization", format!("Bearer {}", "k".repeat(8000))),
    ];
    for (name, value) in odd_headers {
        let response =
            send(gw.request(Method::GET, "/api/v1/tenant").bearer_auth(&key).header(name, value.clone())).await;
        assert!(response.status < 500, "{name}: {value:.40}: {response:?}");
        if response.status >= 400 {
            response.expect_error_shape();
        }
    }
    // A tenant header that is not a tenant id is refused, whatever the key.
    let bad_header = send(gw.tenant_request(Some("NOT VALID"), Some(&key))).await;
    assert!(matches!(bad_header.status, 400 | 401 | 403), "{bad_header:?}");
    // Still serving, the tenant still there.
    gw.get("/healthz").await.expect(200);
    let tenant: Value = gw.admin(Method::GET, "/tenants/target", None).await.json();
    assert_eq!(tenant["id"], "target");
    assert!(!gw.stderr_text().contains("panicked"), "the server panicked:\n{}", gw.stderr_text());
}

/// `/metrics` names every tenant: with `METRICS_TOKEN` set it answers only to that bearer token.
#[tokio::test]
async fn metrics_answer_only_to_the_metrics_token_when_one_is_set() {
    const TOKEN: &str = "scrape-token-0123456789";
    let gw = Gateway::start(FAST, &[("METRICS_TOKEN", TOKEN)]).await;
    let (_, key) = gw.create_tenant(json!({"id": "listed", "name": "Listed"})).await;
    gw.tenant_get(Some("listed"), Some(&key)).await.expect(200);
    send(gw.request(Method::GET, "/metrics")).await.expect_error(401, "unauthorized");
    send(gw.request(Method::GET, "/metrics").bearer_auth("scrape-token-wrong-0000"))
        .await
        .expect_error(401, "unauthorized");
    send(gw.request(Method::GET, "/metrics").bearer_auth(&key)).await.expect_error(401, "unauthorized");
    let scraped = send(gw.request(Method::GET, "/metrics").bearer_auth(TOKEN)).await;
    scraped.expect(200);
    assert!(scraped.text.contains("tenant=\"listed\""), "{}", scraped.text);
    // Health and readiness stay open for probes.
    gw.get("/healthz").await.expect(200);
    gw.get("/readyz").await.expect(200);
}
