//! End-to-end tests of the admin API (`/api/v1/admin`): tenants, keys, reports, audit.

mod common;

use std::collections::HashSet;

use chrono::Utc;
use common::*;
use reqwest::Method;
use serde_json::{Value, json};

/// Plans with values that differ from every built-in default, so resolution is visible.
const PLANS: &str = r#"
multiTenant:
  defaultPlan: pro
  rateLimits: {enabled: true, requestsPerMinute: 11, requestsPerHour: 4321, requestsPerDay: 98765}
  quotas: {maxCustomServers: 3, maxToolInvocations: 500, maxStorageMB: 77}
  plans:
    free:
      limits: {requestsPerMinute: 7}
      features: {customServers: false, oauth: true, advancedAnalytics: false}
    pro:
      limits: {requestsPerMinute: 1234, maxCustomServers: 9}
      features: {customServers: true, oauth: true, advancedAnalytics: false}
    enterprise:
      limits: {requestsPerMinute: 5555, requestsPerHour: 600000}
      features: {customServers: true, oauth: true, advancedAnalytics: true}
gateway:
  tickMillis: 100
  flushIntervalMillis: 20
"#;

#[tokio::test]
async fn create_returns_the_tenant_and_a_key_shown_once() {
    let gw = Gateway::start(FAST, &[]).await;
    let before = Utc::now() - chrono::Duration::seconds(1);
    let (created, key) = gw
        .create_tenant(json!({
            "id": "acme",
            "name": "Acme Inc",
            "email": "ops@acme.test",
            "plan": "pro",
            "limits": {"requestsPerMinute": 77},
            "features": {"advancedAnalytics": true},
            "security": {"allowedIPs": ["127.0.0.1", "10.0.0.0/8"]}
        }))
        .await;
    assert_tenant_shape(&created);
    assert_eq!(created["id"], "acme");
    assert_eq!(created["name"], "Acme Inc");
    assert_eq!(created["email"], "ops@acme.test");
    assert_eq!(created["plan"], "pro");
    assert_eq!(created["status"], "active");
    assert_eq!(created["limits"]["requestsPerMinute"], 77);
    assert_eq!(created["features"]["advancedAnalytics"], true);
    assert_eq!(created["security"]["allowedIPs"], json!(["127.0.0.1", "10.0.0.0/8"]));
    let created_at = assert_rfc3339(&created["createdAt"], "createdAt");
    assert!(created_at >= before && created_at <= Utc::now() + chrono::Duration::seconds(1), "createdAt {created_at}");
    // At least 128 bits of randomness: at least 22 base64 characters, and keys differ.
    assert!(key.len() >= 22, "api key too short to carry 128 random bits: {key:?}");
    let (_, other_key) = gw.create_tenant(json!({"id": "acme-2", "name": "Acme 2"})).await;
    assert_ne!(key, other_key);

    // GET: the same tenant, no key, plus this month's usage.
    let got = gw.admin(Method::GET, "/tenants/acme", None).await;
    got.expect(200);
    let got = got.json();
    assert_tenant_shape(&got);
    assert!(got.get("apiKey").is_none(), "GET must not show the key: {got}");
    assert!(!got.to_string().contains(&key), "GET leaks the key: {got}");
    for field in ["id", "name", "email", "plan", "status", "limits", "features", "security", "createdAt"] {
        assert_eq!(got[field], created[field], "field {field} differs between create and get");
    }
    assert_usage_shape(&got["usage"], "acme");
    assert_eq!(got["usage"]["month"], this_month());
    assert_eq!(got["usage"]["apiCalls"], 0);

    // The list holds both, without keys.
    let list = gw.admin(Method::GET, "/tenants", None).await;
    list.expect(200);
    let list = list.json();
    let ids: HashSet<&str> = list["tenants"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids, HashSet::from(["acme", "acme-2"]));
    assert_eq!(list["total"], 2);
    assert!(list.get("nextCursor").is_none_or(Value::is_null), "a complete list has no nextCursor: {list}");
    assert!(!list.to_string().contains("apiKey"), "the list shows keys: {list}");
    for tenant in list["tenants"].as_array().unwrap() {
        assert_tenant_shape(tenant);
    }
}

#[tokio::test]
async fn limits_and_features_resolve_tenant_then_plan_then_defaults_and_patch_merges() {
    let gw = Gateway::start(PLANS, &[]).await;
    let (t, _) = gw
        .create_tenant(json!({"id": "resolve", "name": "R", "plan": "pro", "limits": {"requestsPerDay": 999}, "features": {"advancedAnalytics": true}}))
        .await;
    let expected = json!({
        "requestsPerMinute": 1234,  // plan
        "requestsPerHour": 4321,    // rateLimits default
        "requestsPerDay": 999,      // the tenant's own
        "maxCustomServers": 9,      // plan
        "maxToolInvocations": 500,  // quotas default
        "maxStorageMB": 77          // quotas default
    });
    assert_eq!(t["limits"], expected, "{t}");
    assert_eq!(t["features"], json!({"customServers": true, "oauth": true, "advancedAnalytics": true}));

    // Without a plan: defaultPlan.
    let (d, _) = gw.create_tenant(json!({"id": "default-plan", "name": "D"})).await;
    assert_eq!(d["plan"], "pro");
    assert_eq!(d["limits"]["requestsPerMinute"], 1234);

    // A new plan moves every limit the tenant did not pin; pinned ones stay.
    let moved = gw.patch_tenant("resolve", json!({"plan": "enterprise"})).await;
    moved.expect(200);
    let moved = moved.json();
    assert_tenant_shape(&moved);
    assert_eq!(moved["plan"], "enterprise");
    assert_eq!(moved["limits"]["requestsPerMinute"], 5555);
    assert_eq!(moved["limits"]["requestsPerHour"], 600000);
    assert_eq!(moved["limits"]["requestsPerDay"], 999);
    assert_eq!(moved["limits"]["maxCustomServers"], 3);

    // limits/features/security merge key by key.
    let merged =
        gw.patch_tenant("resolve", json!({"limits": {"requestsPerMinute": 42}, "features": {"oauth": false}})).await;
    merged.expect(200);
    let merged = merged.json();
    assert_eq!(merged["limits"]["requestsPerMinute"], 42);
    assert_eq!(merged["limits"]["requestsPerDay"], 999, "PATCH limits must merge, not replace: {merged}");
    assert_eq!(merged["features"], json!({"customServers": true, "oauth": false, "advancedAnalytics": true}));
    let renamed = gw.patch_tenant("resolve", json!({"name": "Renamed", "email": "r@r.test"})).await;
    renamed.expect(200);
    let renamed = renamed.json();
    assert_eq!(renamed["name"], "Renamed");
    assert_eq!(renamed["email"], "r@r.test");
    assert_eq!(renamed["limits"]["requestsPerMinute"], 42);
    assert_eq!(renamed["features"]["oauth"], false);
    assert_eq!(renamed["createdAt"], t["createdAt"]);
    assert!(assert_rfc3339(&renamed["updatedAt"], "updatedAt") >= assert_rfc3339(&t["updatedAt"], "updatedAt"));

    // GET agrees with the last PATCH.
    let got = gw.admin(Method::GET, "/tenants/resolve", None).await.json();
    for field in ["name", "email", "plan", "limits", "features", "security", "status"] {
        assert_eq!(got[field], renamed[field], "GET {field} differs from the PATCH answer");
    }

    // An unknown plan is refused, on create and on update, and changes nothing.
    gw.admin(Method::POST, "/tenants", Some(json!({"id": "nope", "name": "N", "plan": "platinum"})))
        .await
        .expect_error(400, "invalid_request");
    gw.admin(Method::GET, "/tenants/nope", None).await.expect_error(404, "not_found");
    gw.patch_tenant("resolve", json!({"plan": "platinum"})).await.expect_error(400, "invalid_request");
    assert_eq!(gw.admin(Method::GET, "/tenants/resolve", None).await.json()["plan"], "enterprise");
}

#[tokio::test]
async fn built_in_plans_exist_without_a_plans_section() {
    let gw = Gateway::start(FAST, &[]).await;
    for plan in ["free", "pro", "enterprise"] {
        let (t, _) = gw.create_tenant(json!({"id": format!("on-{plan}"), "name": plan, "plan": plan})).await;
        assert_eq!(t["plan"], plan);
        assert_tenant_shape(&t);
    }
    gw.admin(Method::POST, "/tenants", Some(json!({"id": "on-gold", "name": "g", "plan": "gold"})))
        .await
        .expect_error(400, "invalid_request");
}

#[tokio::test]
async fn list_paginates_and_filters() {
    let gw = Gateway::start(FAST, &[]).await;
    for (id, plan) in [("t-a", "free"), ("t-b", "pro"), ("t-c", "pro"), ("t-d", "enterprise"), ("t-e", "pro")] {
        gw.create_tenant(json!({"id": id, "name": id, "plan": plan})).await;
    }
    gw.patch_tenant("t-c", json!({"status": "suspended"})).await.expect(200);

    // Pages of 2 cover every tenant exactly once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for page_no in 0.. {
        assert!(page_no < 10, "pagination does not end");
        let mut query = vec![("limit", "2".to_string())];
        if let Some(c) = &cursor {
            query.push(("cursor", c.clone()));
        }
        let page = send(gw.admin_request(Method::GET, "/tenants").query(&query)).await;
        page.expect(200);
        let page = page.json();
        let tenants = page["tenants"].as_array().unwrap();
        assert!(tenants.len() <= 2, "limit=2 returned {}", tenants.len());
        assert_eq!(page["total"], 5, "total counts all matching tenants: {page}");
        seen.extend(tenants.iter().map(|t| t["id"].as_str().unwrap().to_string()));
        match page.get("nextCursor") {
            Some(Value::String(next)) => cursor = Some(next.clone()),
            _ => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), seen.len(), "a tenant appeared twice: {seen:?}");
    assert_eq!(sorted, ["t-a", "t-b", "t-c", "t-d", "t-e"]);

    let ids = |v: &Value| -> Vec<String> {
        let mut ids: Vec<String> =
            v["tenants"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap().to_string()).collect();
        ids.sort();
        ids
    };
    let pro = send(gw.admin_request(Method::GET, "/tenants").query(&[("plan", "pro")])).await.json();
    assert_eq!(ids(&pro), ["t-b", "t-c", "t-e"]);
    assert_eq!(pro["total"], 3);
    let suspended = send(gw.admin_request(Method::GET, "/tenants").query(&[("status", "suspended")])).await.json();
    assert_eq!(ids(&suspended), ["t-c"]);
    let both =
        send(gw.admin_request(Method::GET, "/tenants").query(&[("status", "active"), ("plan", "pro")])).await.json();
    assert_eq!(ids(&both), ["t-b", "t-e"]);

    send(gw.admin_request(Method::GET, "/tenants").query(&[("limit", "abc")]))
        .await
        .expect_error(400, "invalid_request");
    send(gw.admin_request(Method::GET, "/tenants").query(&[("status", "sleeping")]))
        .await
        .expect_error(400, "invalid_request");
}

#[tokio::test]
async fn admin_endpoints_require_the_admin_key() {
    let gw = Gateway::start(FAST, &[]).await;
    let (_, tenant_key) = gw.create_tenant(json!({"id": "guarded", "name": "G"})).await;
    let calls: &[(Method, &str)] = &[
        (Method::GET, "/api/v1/admin/tenants"),
        (Method::POST, "/api/v1/admin/tenants"),
        (Method::GET, "/api/v1/admin/tenants/guarded"),
        (Method::PATCH, "/api/v1/admin/tenants/guarded"),
        (Method::DELETE, "/api/v1/admin/tenants/guarded"),
        (Method::POST, "/api/v1/admin/tenants/guarded/rotate-key"),
        (Method::GET, "/api/v1/admin/tenants/guarded/metrics"),
        (Method::GET, "/api/v1/admin/tenants/guarded/usage"),
        (Method::GET, "/api/v1/admin/tenants/guarded/audit"),
    ];
    let body = json!({"id": "intruder", "name": "I", "status": "suspended"});
    for (method, path) in calls {
        let no_auth = send(gw.request(method.clone(), path).json(&body)).await;
        no_auth.expect_error(401, "unauthorized");
        let wrong = send(gw.request(method.clone(), path).bearer_auth("not-the-admin-key").json(&body)).await;
        wrong.expect_error(401, "unauthorized");
        let tenant = send(gw.request(method.clone(), path).bearer_auth(&tenant_key).json(&body)).await;
        tenant.expect_error(401, "unauthorized");
        let basic =
            send(gw.request(method.clone(), path).header("authorization", format!("Basic {ADMIN_KEY}")).json(&body))
                .await;
        basic.expect_error(401, "unauthorized");
    }
    // Nothing of the above went through.
    let got = gw.admin(Method::GET, "/tenants/guarded", None).await;
    got.expect(200);
    assert_eq!(got.json()["status"], "active");
    gw.admin(Method::GET, "/tenants/intruder", None).await.expect_error(404, "not_found");
    gw.tenant_get(Some("guarded"), Some(&tenant_key)).await.expect(200);
}

#[tokio::test]
async fn tenant_ids_are_validated_and_unknown_ones_are_404() {
    let gw = Gateway::start(FAST, &[]).await;
    let longest = "a".repeat(56);
    for good in ["a", "0", "a-b", "abc123", longest.as_str()] {
        gw.create_tenant(json!({"id": good, "name": "ok"})).await;
    }
    let too_long = "a".repeat(57);
    let mut failures = Failures::default();
    for bad in ["", "-a", "a-", "Upper", "a_b", "a.b", "a b", "ä", too_long.as_str()] {
        let response = gw.admin(Method::POST, "/tenants", Some(json!({"id": bad, "name": "bad"}))).await;
        failures.check(format!("create id {bad:?}"), response.error_mismatch(400, "invalid_request"));
    }
    // Wrong JSON type for the id.
    gw.admin(Method::POST, "/tenants", Some(json!({"id": 5, "name": "bad"})))
        .await
        .expect_error(400, "invalid_request");
    assert_eq!(gw.admin(Method::GET, "/tenants", None).await.json()["total"], 5, "a bad id was stored");

    // Duplicates conflict and leave the first alone.
    let dup = gw.admin(Method::POST, "/tenants", Some(json!({"id": "abc123", "name": "second"}))).await;
    dup.expect_error(409, "conflict");
    assert_eq!(gw.admin(Method::GET, "/tenants/abc123", None).await.json()["name"], "ok");

    // Malformed ids in paths are 400, well-formed unknown ones 404, on every tenant route.
    for (method, suffix, body) in [
        (Method::GET, "", None),
        (Method::PATCH, "", Some(json!({"name": "x"}))),
        (Method::DELETE, "", None),
        (Method::POST, "/rotate-key", None),
        (Method::GET, "/metrics", None),
        (Method::GET, "/usage", None),
        (Method::GET, "/audit", None),
    ] {
        for bad in ["Bad_Id", "-x", too_long.as_str()] {
            let response = gw.admin(method.clone(), &format!("/tenants/{bad}{suffix}"), body.clone()).await;
            failures
                .check(format!("{method} /tenants/{bad:.10}{suffix}"), response.error_mismatch(400, "invalid_request"));
        }
        let response = gw.admin(method.clone(), &format!("/tenants/ghost{suffix}"), body.clone()).await;
        failures.check(format!("{method} /tenants/ghost{suffix}"), response.error_mismatch(404, "not_found"));
    }
    failures.assert_none();
}

#[tokio::test]
async fn delete_stops_keys_at_once_and_keeps_audit_history() {
    let gw = Gateway::start(FAST, &[]).await;
    let (_, key) = gw.create_tenant(json!({"id": "doomed", "name": "D"})).await;
    gw.tenant_get(Some("doomed"), Some(&key)).await.expect(200);
    let deleted = gw.admin(Method::DELETE, "/tenants/doomed", None).await;
    deleted.expect(204);
    assert!(deleted.text.is_empty(), "204 with a body: {:?}", deleted.text);
    gw.tenant_get(Some("doomed"), Some(&key)).await.expect_error(401, "unauthorized");
    gw.tenant_get(None, Some(&key)).await.expect_error(401, "unauthorized");
    gw.admin(Method::GET, "/tenants/doomed", None).await.expect_error(404, "not_found");
    gw.admin(Method::DELETE, "/tenants/doomed", None).await.expect_error(404, "not_found");
    gw.patch_tenant("doomed", json!({"name": "zombie"})).await.expect_error(404, "not_found");
    assert_eq!(gw.admin(Method::GET, "/tenants", None).await.json()["total"], 0);
    // The audit history is kept.
    let events = gw
        .wait_audit("doomed", "create, get and delete events of the deleted tenant", |events| {
            let actions: Vec<&str> = events.iter().filter_map(|e| e["action"].as_str()).collect();
            actions.contains(&"admin.tenant.create")
                && actions.contains(&"tenant.get")
                && actions.contains(&"admin.tenant.delete")
        })
        .await;
    let delete = events.iter().find(|e| e["action"] == "admin.tenant.delete").unwrap();
    assert_eq!(delete["userId"], "admin");
    assert_eq!(delete["result"], "success");
    assert_eq!(delete["requestId"], deleted.request_id());
}

#[tokio::test]
async fn usage_report_counts_admitted_calls_and_prices_them() {
    let config = "multiTenant:\n  pricing: {currency: EUR, perThousandApiCalls: 2.0, perToolInvocation: 0.01, perCustomServerMonth: 3.0}\ngateway:\n  tickMillis: 100\n  flushIntervalMillis: 20\n";
    let gw = Gateway::start(config, &[]).await;
    ensure_minute_room(8).await;
    let key = gw.create_limited("billed", 3).await;
    for _ in 0..3 {
        gw.tenant_get(Some("billed"), Some(&key)).await.expect(200);
    }
    gw.tenant_get(Some("billed"), Some(&key)).await.expect_error(429, "rate_limited");
    gw.tenant_get(Some("billed"), Some("wrong-key")).await.expect_error(401, "unauthorized");

    let usage = gw.wait_usage_api_calls("billed", 3).await;
    assert_usage_shape(&usage, "billed");
    assert_eq!(usage["month"], this_month());
    assert!(approx(&usage["apiCallsCost"], 0.006), "3 calls at 2.0 per 1000: {usage}");
    assert_eq!(usage["toolInvocations"], 0);
    assert!(approx(&usage["toolInvocationsCost"], 0.0), "{usage}");
    assert_eq!(usage["customServers"], 0);
    assert!(approx(&usage["customServersCost"], 0.0), "{usage}");
    assert!(approx(&usage["totalCost"], 0.006), "{usage}");
    assert_eq!(usage["currency"], "EUR");

    // The tenant object carries the same report.
    let tenant = gw.admin(Method::GET, "/tenants/billed", None).await.json();
    assert_eq!(tenant["usage"], usage, "GET /tenants/{{id}} usage differs from the usage report");

    // Explicit months: this one, and an empty past one.
    let explicit = send(gw.admin_request(Method::GET, "/tenants/billed/usage").query(&[("month", this_month())])).await;
    explicit.expect(200);
    assert_eq!(explicit.json(), usage);
    let past = send(gw.admin_request(Method::GET, "/tenants/billed/usage").query(&[("month", "2020-01")])).await;
    past.expect(200);
    let past = past.json();
    assert_usage_shape(&past, "billed");
    assert_eq!(past["month"], "2020-01");
    assert_eq!(past["apiCalls"], 0);
    assert!(approx(&past["totalCost"], 0.0), "{past}");

    let mut failures = Failures::default();
    for bad in ["2024-13", "2024-00", "2024-1", "24-01", "2024/01", "abc", "2024-01-01"] {
        let response = send(gw.admin_request(Method::GET, "/tenants/billed/usage").query(&[("month", bad)])).await;
        failures.check(format!("usage month={bad}"), response.error_mismatch(400, "invalid_request"));
    }
    failures.assert_none();
}

#[tokio::test]
async fn metrics_report_counts_requests_by_outcome_over_a_date_range() {
    let gw = Gateway::start(FAST, &[]).await;
    ensure_minute_room(8).await;
    let key = gw.create_limited("measured", 2).await;
    for _ in 0..2 {
        gw.tenant_get(Some("measured"), Some(&key)).await.expect(200);
    }
    gw.tenant_get(Some("measured"), Some(&key)).await.expect_error(429, "rate_limited");
    gw.tenant_get(Some("measured"), Some(&key)).await.expect_error(429, "rate_limited");
    gw.tenant_get(Some("measured"), Some("not-a-key")).await.expect_error(401, "unauthorized");
    gw.wait_usage_api_calls("measured", 2).await;

    let report = eventually("metrics to count 5 requests", std::time::Duration::from_secs(3), || async {
        let response = gw.admin(Method::GET, "/tenants/measured/metrics", None).await;
        if response.status != 200 {
            return Err(response.text);
        }
        let report = response.json();
        if report["requests"]["total"] == 5 { Ok(report) } else { Err(report.to_string()) }
    })
    .await;
    let first_of_month = format!("{}-01", this_month());
    assert_eq!(report["tenantId"], "measured");
    assert_eq!(report["startDate"], first_of_month.as_str(), "default startDate is the first of this month");
    assert_eq!(report["endDate"], today().as_str(), "default endDate is today");
    assert_eq!(report["requests"]["rateLimited"], 2, "{report}");
    assert_eq!(report["requests"]["errors"], 1, "the refused authentication is an error: {report}");
    assert_eq!(report["tools"]["invocations"], 0);
    assert_eq!(report["tools"]["selections"], 0);
    assert_eq!(report["servers"]["custom"], 0);
    assert!(report["tokens"]["total"].is_u64(), "{report}");
    assert!(approx(&report["cost"]["total"], 0.001), "2 calls at 0.50 per 1000: {report}");

    // An explicit range holding today gives the same counts; a past range gives zeros.
    let ranged = send(
        gw.admin_request(Method::GET, "/tenants/measured/metrics")
            .query(&[("startDate", today()), ("endDate", today())]),
    )
    .await;
    ranged.expect(200);
    let ranged = ranged.json();
    assert_eq!(ranged["startDate"], today().as_str());
    assert_eq!(ranged["requests"], report["requests"]);
    let past = send(
        gw.admin_request(Method::GET, "/tenants/measured/metrics")
            .query(&[("startDate", "2020-01-01"), ("endDate", "2020-01-31")]),
    )
    .await;
    past.expect(200);
    let past = past.json();
    assert_eq!((past["startDate"].as_str(), past["endDate"].as_str()), (Some("2020-01-01"), Some("2020-01-31")));
    assert_eq!(past["requests"]["total"], 0);
    assert!(approx(&past["cost"]["total"], 0.0));

    let mut failures = Failures::default();
    for query in [
        vec![("startDate", "2024-02-30")],
        vec![("endDate", "yesterday")],
        vec![("startDate", "2024-5-1")],
        vec![("startDate", "20240501")],
        vec![("startDate", "2024-05-01T00:00:00Z")],
        vec![("startDate", "2024-05-02"), ("endDate", "2024-05-01")],
    ] {
        let response = send(gw.admin_request(Method::GET, "/tenants/measured/metrics").query(&query)).await;
        failures.check(format!("metrics {query:?}"), response.error_mismatch(400, "invalid_request"));
    }
    failures.assert_none();
}

#[tokio::test]
async fn audit_records_admin_changes_with_filters_and_pagination() {
    let gw = Gateway::start(FAST, &[]).await;
    let create = send(
        gw.admin_request(Method::POST, "/tenants")
            .header("x-request-id", "req-create-1")
            .header("user-agent", "e2e-admin/1.0")
            .json(&json!({"id": "audited", "name": "A"})),
    )
    .await;
    create.expect(201);
    assert_eq!(create.request_id(), "req-create-1");
    let key = create.json()["apiKey"].as_str().unwrap().to_string();
    let patch = send(
        gw.admin_request(Method::PATCH, "/tenants/audited")
            .header("x-request-id", "req-patch-1")
            .json(&json!({"name": "A2"})),
    )
    .await;
    patch.expect(200);
    let rotate =
        send(gw.admin_request(Method::POST, "/tenants/audited/rotate-key").header("x-request-id", "req-rotate-1"))
            .await;
    rotate.expect(200);
    let new_key = rotate.json()["apiKey"].as_str().unwrap().to_string();
    gw.patch_tenant("audited", json!({"limits": {"requestsPerMinute": 100}})).await.expect(200);

    let events = gw
        .wait_audit("audited", "create, 2 updates and a rotation", |events| {
            let count = |a: &str| events.iter().filter(|e| e["action"] == a).count();
            count("admin.tenant.create") == 1
                && count("admin.tenant.update") == 2
                && count("admin.tenant.rotate_key") == 1
        })
        .await;
    assert_eq!(events.len(), 4, "only the four admin changes are in the log: {events:#?}");
    let mut last = None;
    for event in &events {
        assert_eq!(event["tenantId"], "audited");
        assert_eq!(event["userId"], "admin");
        assert_eq!(event["result"], "success");
        assert!(event["duration"].is_number(), "duration: {event}");
        assert!(event["requestId"].as_str().is_some_and(|s| !s.is_empty()), "requestId: {event}");
        let at = assert_rfc3339(&event["timestamp"], "timestamp");
        assert!(last.is_none_or(|l| l <= at), "events are not oldest first: {events:#?}");
        last = Some(at);
    }
    assert_eq!(events[0]["action"], "admin.tenant.create");
    assert_eq!(events[0]["requestId"], "req-create-1");
    assert_eq!(events[1]["action"], "admin.tenant.update");
    assert_eq!(events[1]["requestId"], "req-patch-1");
    assert_eq!(events[2]["action"], "admin.tenant.rotate_key");
    assert_eq!(events[2]["requestId"], "req-rotate-1");
    let text = serde_json::to_string(&events).unwrap();
    assert!(
        !text.contains(&key) && !text.contains(&new_key) && !text.contains(ADMIN_KEY),
        "a key is in the audit log: {text}"
    );

    // Filters.
    let updates = gw.audit_events("audited", &[("action", "admin.tenant.update")]).await;
    assert_eq!(updates.len(), 2);
    assert!(updates.iter().all(|e| e["action"] == "admin.tenant.update"));
    assert!(gw.audit_events("audited", &[("since", "2999-01-01T00:00:00Z")]).await.is_empty());
    assert!(gw.audit_events("audited", &[("until", "2000-01-01T00:00:00Z")]).await.is_empty());
    assert_eq!(
        gw.audit_events("audited", &[("since", "2000-01-01T00:00:00Z"), ("until", "2999-01-01T00:00:00Z")]).await,
        events
    );
    let from_patch = events[1]["timestamp"].as_str().unwrap();
    let since_patch = gw.audit_events("audited", &[("since", from_patch)]).await;
    assert!(
        !since_patch.is_empty() && since_patch.iter().all(|e| e["action"] != "admin.tenant.create"),
        "since: {since_patch:#?}"
    );

    // Pages of one event walk the whole log in the same order.
    let paged = gw.audit_events("audited", &[("limit", "1")]).await;
    assert_eq!(paged, events);
    let first = send(gw.admin_request(Method::GET, "/tenants/audited/audit").query(&[("limit", "1")])).await.json();
    assert_eq!(first["events"].as_array().unwrap().len(), 1);
    assert!(first["nextCursor"].is_string(), "{first}");

    let mut failures = Failures::default();
    for query in [
        [("since", "yesterday")],
        [("until", "2024-13-01T00:00:00Z")],
        [("since", "2024-01-01")],
        [("limit", "abc")],
        [("cursor", "garbage")],
    ] {
        let response = send(gw.admin_request(Method::GET, "/tenants/audited/audit").query(&query)).await;
        failures.check(format!("audit {query:?}"), response.error_mismatch(400, "invalid_request"));
    }
    failures.assert_none();
}

#[tokio::test]
async fn concurrent_creates_of_one_id_admit_exactly_one() {
    let gw = Gateway::start(FAST, &[]).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..12 {
        let request =
            gw.admin_request(Method::POST, "/tenants").json(&json!({"id": "contested", "name": format!("racer {i}")}));
        tasks.spawn(async move { send(request).await });
    }
    let mut keys = Vec::new();
    let mut conflicts = 0;
    while let Some(result) = tasks.join_next().await {
        let response = result.expect("create task");
        match response.status {
            201 => keys.push(response.json()["apiKey"].as_str().unwrap().to_string()),
            409 => {
                response.expect_error(409, "conflict");
                conflicts += 1;
            }
            _ => panic!("unexpected response to a racing create: {response:?}"),
        }
    }
    assert_eq!((keys.len(), conflicts), (1, 11), "exactly one create must win");
    gw.tenant_get(Some("contested"), Some(&keys[0])).await.expect(200);
    assert_eq!(gw.admin(Method::GET, "/tenants", None).await.json()["total"], 1);
}

/// A client that keeps calling for a suspended tenant cannot grow its audit log without bound:
/// the first refusals of a minute are events of their own, the rest one summary with their
/// count, which a reader of the log sees at once.
#[tokio::test]
async fn refusals_beyond_a_few_a_minute_are_audited_as_one_count() {
    let config = "gateway:\n  tickMillis: 100\n  flushIntervalMillis: 20\naudit:\n  refusalsPerMinute: 3\n";
    let gw = Gateway::start(config, &[]).await;
    ensure_minute_room(10).await;
    let (_, key) = gw.create_tenant(json!({"id": "hammer", "name": "Hammer"})).await;
    gw.patch_tenant("hammer", json!({"status": "suspended"})).await.expect(200);
    for _ in 0..10 {
        gw.tenant_get(Some("hammer"), Some(&key)).await.expect_error(403, "tenant_suspended");
    }
    let log = gw.admin(Method::GET, "/tenants/hammer/audit?limit=100", None).await.json();
    let events = log["events"].as_array().expect("events");
    let single = events.iter().filter(|e| e["action"] == "tenant.get" && e["result"] == "denied").count();
    assert_eq!(single, 3, "{log}");
    let summaries: Vec<&Value> = events.iter().filter(|e| e["action"] == "requests.refused").collect();
    assert_eq!(summaries.len(), 1, "{log}");
    assert_eq!(summaries[0]["result"], "denied");
    assert_eq!(summaries[0]["params"]["count"], 7);
    assert_eq!(summaries[0]["params"]["reason"], "forbidden");
    // Read again: nothing new, nothing counted twice.
    let again = gw.admin(Method::GET, "/tenants/hammer/audit?limit=100", None).await.json();
    assert_eq!(again["events"].as_array().unwrap().len(), events.len());
}
