//! Fuzz-style test of the HTTP layer: random methods, paths, headers and bodies (mutations of
//! valid requests and plain garbage) sent to the real router, which must never answer 5xx and
//! must give every error the documented body.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use connectors::app::{Gateway, StartOptions};
use connectors::config::{Config, Env};
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};
use tower::ServiceExt;

struct NoEnv;

impl Env for NoEnv {
    fn var(&self, _: &str) -> Option<String> {
        None
    }
}

const ADMIN: &str = "fuzz-admin";

fn arb_path() -> impl Strategy<Value = String> {
    let segment = prop_oneof!["acme", "ghost", "[a-z0-9-]{0,60}", ".{0,12}", "%2e%2e", "A_B"];
    let template = prop_oneof![
        Just("/api/v1/admin/tenants".to_string()),
        Just("/api/v1/admin/tenants/{}".to_string()),
        Just("/api/v1/admin/tenants/{}/rotate-key".to_string()),
        Just("/api/v1/admin/tenants/{}/metrics?startDate=2026-01-01&endDate={}".to_string()),
        Just("/api/v1/admin/tenants/{}/usage?month={}".to_string()),
        Just("/api/v1/admin/tenants/{}/audit?limit={}&cursor={}".to_string()),
        Just("/api/v1/admin/tenants?limit={}&status={}".to_string()),
        Just("/api/v1/admin/tenants/{}/oauth".to_string()),
        Just("/api/v1/admin/tenants/{}/oauth/{}".to_string()),
        Just("/api/v1/tenant".to_string()),
        Just("/api/v1/admin/cluster".to_string()),
        Just("/api/v1/admin/integrations".to_string()),
        Just("/api/v1/admin/integrations/{}".to_string()),
        Just("/api/v1/admin/integrations/{}/refresh".to_string()),
        Just("/api/v1/tools?limit={}&cursor={}".to_string()),
        Just("/api/v1/tools/{}".to_string()),
        Just("/api/v1/tools/select".to_string()),
        Just("/api/v1/tools/invoke".to_string()),
        Just("/api/v1/tools/feedback".to_string()),
        Just("/{}".to_string()),
    ];
    (template, prop::collection::vec(segment, 3)).prop_map(|(t, segs)| {
        let mut out = t;
        for s in segs {
            let encoded: String =
                s.bytes()
                    .map(|b| {
                        if b.is_ascii_alphanumeric() || b == b'-' {
                            (b as char).to_string()
                        } else {
                            format!("%{b:02X}")
                        }
                    })
                    .collect();
            out = out.replacen("{}", &encoded, 1);
        }
        out
    })
}

fn arb_body() -> impl Strategy<Value = Vec<u8>> {
    let valid = prop_oneof![
        Just(r#"{"id":"fz-1","name":"Fuzz"}"#.to_string()),
        Just(r#"{"limits":{"requestsPerMinute":5},"security":{"allowedIPs":["10.0.0.0/8"]}}"#.to_string()),
        Just(r#"{"graceSeconds":5}"#.to_string()),
        Just(r#"{"status":"suspended","features":{"oauth":null}}"#.to_string()),
        Just(r#"{"accessToken":"t","refreshToken":"r","expiresAt":"2030-01-01T00:00:00Z","scopes":["a"],"tokenEndpoint":"http://127.0.0.1:9/t"}"#.to_string()),
        Just(r#"{"query":"add two numbers","options":{"maxTools":3,"tokenBudget":100,"allowedCategories":["x"]}}"#.to_string()),
        Just(r#"{"toolId":"fz.echo","parameters":{"text":"hi"},"selectionId":"sel_e30"}"#.to_string()),
        Just(r#"{"query":"q","toolIds":["fz.echo"]}"#.to_string()),
        Just(r#"{"name":"fz","url":"http://127.0.0.1:9/mcp","auth":{"type":"oauth"}}"#.to_string()),
    ];
    prop_oneof![
        valid.clone().prop_map(String::into_bytes),
        // Valid requests with one byte changed or cut short.
        (valid.clone(), any::<prop::sample::Index>(), any::<u8>()).prop_map(|(v, i, b)| {
            let mut bytes = v.into_bytes();
            let at = i.index(bytes.len());
            bytes[at] = b;
            bytes
        }),
        (valid, any::<prop::sample::Index>()).prop_map(|(v, i)| {
            let bytes = v.into_bytes();
            bytes[..i.index(bytes.len())].to_vec()
        }),
        prop::collection::vec(any::<u8>(), 0..64),
        Just(br#"{"id":"x","name":"y","limits":{"requestsPerMinute":-1}}"#.to_vec()),
        Just(br#"{"id":"x","name":"y","plan":7}"#.to_vec()),
        Just(br#"[1,2,3]"#.to_vec()),
    ]
}

fn arb_request() -> impl Strategy<Value = (Method, String, Option<String>, Option<String>, Vec<u8>)> {
    let method = prop_oneof![
        Just(Method::GET),
        Just(Method::POST),
        Just(Method::PATCH),
        Just(Method::DELETE),
        Just(Method::PUT)
    ];
    let auth = prop::option::weighted(
        0.9,
        prop_oneof![8 => Just(format!("Bearer {ADMIN}")), 1 => Just("Bearer ".to_string()), 1 => "[ -~]{0,40}"],
    );
    let tenant = prop::option::of(prop_oneof![Just("acme".to_string()), "[ -~]{0,20}"]);
    (method, arb_path(), auth, tenant, arb_body())
}

#[test]
fn no_request_gets_a_server_error_or_an_undocumented_error_body() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let router = runtime.block_on(async {
        let config = Config::from_yaml("gateway:\n  flushIntervalMillis: 20\n", &NoEnv).unwrap();
        let options = StartOptions {
            data_dir: dir.path(),
            admin_key: Some(ADMIN.into()),
            master_key: None,
            fault_injection: false,
            http_addr: "127.0.0.1:3000".parse().unwrap(),
            redis_url: None,
            cluster: None,
        };
        let gateway: Arc<Gateway> = Gateway::start(config, options).await.unwrap();
        let router = connectors::http::router(gateway);
        let create = Request::post("/api/v1/admin/tenants")
            .header("authorization", format!("Bearer {ADMIN}"))
            .body(Body::from(r#"{"id":"acme","name":"Acme"}"#))
            .unwrap();
        assert_eq!(router.clone().oneshot(create).await.unwrap().status(), StatusCode::CREATED);
        router
    });
    let statuses = std::sync::Mutex::new(std::collections::BTreeMap::<u16, usize>::new());
    let mut runner = TestRunner::new(RunnerConfig { cases: 400, ..RunnerConfig::default() });
    runner
        .run(&arb_request(), |(method, path, auth, tenant, body)| {
            let mut request = Request::builder().method(method.clone()).uri(&path);
            if let Some(auth) = &auth {
                request = request.header("authorization", auth.as_str());
            }
            if let Some(tenant) = &tenant {
                request = request.header("x-tenant-id", tenant.as_str());
            }
            let Ok(request) = request.body(Body::from(body.clone())) else {
                return Ok(()); // not a representable HTTP request (e.g. control bytes in a header)
            };
            let (status, headers, bytes) = runtime.block_on(async {
                let response = router.clone().oneshot(request).await.unwrap();
                let (parts, body) = response.into_parts();
                (parts.status, parts.headers, axum::body::to_bytes(body, usize::MAX).await.unwrap())
            });
            *statuses.lock().unwrap().entry(status.as_u16()).or_default() += 1;
            prop_assert!(!status.is_server_error(), "{method} {path} -> {status}: {}", String::from_utf8_lossy(&bytes));
            prop_assert!(headers.contains_key("x-request-id"));
            if status.is_client_error() {
                let value: serde_json::Value = serde_json::from_slice(&bytes)
                    .map_err(|e| TestCaseError::fail(format!("{method} {path} -> {status}: body is not JSON ({e})")))?;
                prop_assert!(
                    value["code"].is_string() && value["error"].is_string() && value["requestId"].is_string(),
                    "{value}"
                );
                prop_assert_eq!(value["requestId"].as_str(), headers["x-request-id"].to_str().ok());
            }
            if status == StatusCode::OK && method == Method::DELETE {
                prop_assert!(false, "DELETE answers 204, never 200");
            }
            Ok(())
        })
        .unwrap();
    // The generator must reach handlers, not just the router's 404s and the auth check.
    let statuses = statuses.into_inner().unwrap();
    eprintln!("statuses seen: {statuses:?}");
    for expected in [200u16, 400, 401, 404, 405] {
        assert!(statuses.contains_key(&expected), "no {expected} among {statuses:?}");
    }
}
