//! End-to-end tests of OAuth refresh: the real binary refreshes credentials against a local
//! token endpoint that rotates refresh tokens and rejects reuse, as real providers do.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use base64::Engine;
use chrono::Utc;
use common::*;
use reqwest::Method;
use serde_json::{Value, json};

/// What the provider has seen and how it answers.
#[derive(Default)]
struct Provider {
    /// The one refresh token currently valid; every success rotates it.
    valid: String,
    issued: u32,
    calls: Vec<(HashMap<String, String>, Option<String>)>,
    /// Answer this many calls with 503 first.
    unavailable: u32,
    /// The `expires_in` of its answers (3600 when 0).
    expires_in: u64,
    /// How long it takes to answer, once a call is recorded.
    delay: Duration,
}

type Shared = Arc<Mutex<Provider>>;

async fn token(
    State(provider): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> impl IntoResponse {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
    let delay = {
        let mut p = provider.lock().unwrap();
        p.calls.push((form.clone(), auth));
        p.delay
    };
    tokio::time::sleep(delay).await;
    let mut p = provider.lock().unwrap();
    if p.unavailable > 0 {
        p.unavailable -= 1;
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({"error": "temporarily_unavailable"})));
    }
    if form.get("grant_type").map(String::as_str) != Some("refresh_token")
        || form.get("refresh_token") != Some(&p.valid)
    {
        return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "invalid_grant"})));
    }
    p.issued += 1;
    let n = p.issued + 1;
    p.valid = format!("rt-{n}-rotated-secret");
    let expires_in = if p.expires_in == 0 { 3600 } else { p.expires_in };
    let body = json!({"access_token": format!("at-{n}-fresh-secret"), "token_type": "Bearer", "expires_in": expires_in, "refresh_token": p.valid});
    (StatusCode::OK, axum::Json(body))
}

async fn provider(valid: &str) -> (Shared, String) {
    let shared: Shared = Arc::new(Mutex::new(Provider { valid: valid.into(), ..Default::default() }));
    let app = axum::Router::new().route("/token", post(token)).with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/token", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (shared, url)
}

fn calls(p: &Shared) -> usize {
    p.lock().unwrap().calls.len()
}

/// A credential whose refresh is due `due_in_secs` from now (refreshBefore is 300 s).
fn due_in(due_in_secs: i64, endpoint: &str, refresh_token: &str) -> Value {
    let expires = Utc::now() + chrono::Duration::seconds(300 + due_in_secs);
    json!({
        "accessToken": "at-1-initial-secret",
        "refreshToken": refresh_token,
        "expiresAt": expires.to_rfc3339(),
        "scopes": ["repo"],
        "tokenEndpoint": endpoint,
        "clientId": "gateway-client",
        "clientSecret": "cs-client-secret-value",
    })
}

async fn credential(gw: &Gateway, tenant: &str, integration: &str) -> Value {
    let listed = gw.admin(Method::GET, &format!("/tenants/{tenant}/oauth"), None).await.json();
    listed["integrations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["integration"] == integration)
        .cloned()
        .unwrap_or_else(|| panic!("no {integration} in {listed}"))
}

async fn wait_calls(p: &Shared, n: usize, within: Duration) {
    eventually(&format!("{n} calls to the token endpoint"), within, || async {
        let seen = calls(p);
        if seen >= n { Ok(()) } else { Err(format!("{seen} calls")) }
    })
    .await
}

#[tokio::test]
async fn a_credential_is_refreshed_once_before_expiry_and_its_refresh_token_rotates() {
    let (p, url) = provider("rt-1-initial-secret").await;
    let gw = Gateway::start(FAST, &[]).await;
    gw.create_tenant(json!({"id": "acme", "name": "Acme"})).await;
    gw.admin(Method::PUT, "/tenants/acme/oauth/github", Some(due_in(2, &url, "rt-1-initial-secret"))).await.expect(200);

    wait_calls(&p, 1, Duration::from_secs(15)).await;
    let (form, auth) = p.lock().unwrap().calls[0].clone();
    assert_eq!(form.get("grant_type").map(String::as_str), Some("refresh_token"));
    assert_eq!(form.get("refresh_token").map(String::as_str), Some("rt-1-initial-secret"));
    assert!(!form.contains_key("client_secret"), "the secret travels in the Basic header only");
    let basic = auth.expect("client authentication").strip_prefix("Basic ").unwrap().to_string();
    let decoded = base64::engine::general_purpose::STANDARD.decode(basic).unwrap();
    assert_eq!(String::from_utf8(decoded).unwrap(), "gateway-client:cs-client-secret-value");

    let refreshed = eventually("the refreshed credential", Duration::from_secs(5), || async {
        let c = credential(&gw, "acme", "github").await;
        if c["lastRefreshAt"].is_string() { Ok(c) } else { Err(c.to_string()) }
    })
    .await;
    assert_eq!(refreshed["status"], "active");
    let expires = assert_rfc3339(&refreshed["expiresAt"], "expiresAt");
    assert!(expires > Utc::now() + chrono::Duration::seconds(3000), "the new expiry comes from expires_in");

    // Exactly once: the new expiry is an hour away, so nothing more happens.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(calls(&p), 1);
    let events =
        gw.wait_audit("acme", "a refresh audit event", |e| e.iter().any(|e| e["action"] == "oauth.refresh")).await;
    let refresh = events.iter().find(|e| e["action"] == "oauth.refresh").unwrap();
    assert_eq!(refresh["result"], "success");

    // The rotated tokens are stored encrypted, like the first ones.
    for secret in ["at-2-fresh-secret", "rt-2-rotated-secret", "rt-1-initial-secret", "cs-client-secret-value"] {
        assert!(gw.data_files_containing(secret).is_empty(), "{secret} on disk in plaintext");
        assert!(!gw.stdout_text().contains(secret) && !gw.stderr_text().contains(secret), "{secret} in the log");
        assert!(!serde_json::to_string(&events).unwrap().contains(secret), "{secret} in the audit log");
    }
}

/// A provider's `expires_in` past the calendar's end is a token without expiry: stored, never a
/// crash of the tenant's actor.
#[tokio::test]
async fn an_expiry_past_the_end_of_the_calendar_is_stored_as_none() {
    let (p, url) = provider("rt-1-initial-secret").await;
    p.lock().unwrap().expires_in = 1_000_000_000_000_000;
    let gw = Gateway::start(FAST, &[]).await;
    gw.create_tenant(json!({"id": "acme", "name": "Acme"})).await;
    gw.admin(Method::PUT, "/tenants/acme/oauth/github", Some(due_in(1, &url, "rt-1-initial-secret"))).await.expect(200);

    let refreshed = eventually("the refreshed credential", Duration::from_secs(15), || async {
        let c = credential(&gw, "acme", "github").await;
        if c["lastRefreshAt"].is_string() { Ok(c) } else { Err(c.to_string()) }
    })
    .await;
    assert_eq!(refreshed["status"], "active", "{refreshed}");
    assert!(refreshed["expiresAt"].is_null(), "{refreshed}");
    assert!(!gw.stderr_text().contains("panicked"), "{}", gw.stderr_text());
    assert_eq!(calls(&p), 1);
}

#[tokio::test]
async fn a_refused_refresh_token_needs_reauthorization_and_is_never_retried() {
    let (p, url) = provider("rt-the-provider-knows").await;
    let gw = Gateway::start(FAST, &[]).await;
    gw.create_tenant(json!({"id": "acme", "name": "Acme"})).await;
    gw.admin(Method::PUT, "/tenants/acme/oauth/github", Some(due_in(1, &url, "rt-revoked-secret"))).await.expect(200);
    wait_calls(&p, 1, Duration::from_secs(15)).await;
    eventually("needs_reauth", Duration::from_secs(5), || async {
        let c = credential(&gw, "acme", "github").await;
        if c["status"] == "needs_reauth" { Ok(()) } else { Err(c.to_string()) }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(calls(&p), 1, "a refused token is not sent again");
    let events = gw.audit_events("acme", &[("action", "oauth.refresh")]).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["result"], "error");
}

#[tokio::test]
async fn transient_failures_are_retried_until_the_refresh_succeeds() {
    let (p, url) = provider("rt-1-initial-secret").await;
    p.lock().unwrap().unavailable = 2;
    let gw = Gateway::start(FAST, &[]).await;
    gw.create_tenant(json!({"id": "acme", "name": "Acme"})).await;
    gw.admin(Method::PUT, "/tenants/acme/oauth/github", Some(due_in(1, &url, "rt-1-initial-secret"))).await.expect(200);
    // Back-off: about 1 s, then about 2 s (with jitter).
    wait_calls(&p, 3, Duration::from_secs(20)).await;
    let c = eventually("the refresh after two 503s", Duration::from_secs(5), || async {
        let c = credential(&gw, "acme", "github").await;
        if c["lastRefreshAt"].is_string() { Ok(c) } else { Err(c.to_string()) }
    })
    .await;
    assert_eq!(c["status"], "active");
    assert_eq!(p.lock().unwrap().issued, 1);
}

#[tokio::test]
async fn a_restart_refreshes_nothing_needlessly_and_catches_up_on_what_is_due() {
    let (p, url) = provider("rt-due-secret").await;
    let mut gw = Gateway::start(FAST, &[]).await;
    gw.create_tenant(json!({"id": "acme", "name": "Acme"})).await;
    gw.create_tenant(json!({"id": "globex", "name": "Globex"})).await;
    // Far from its deadline: must not be refreshed by a restart.
    gw.admin(Method::PUT, "/tenants/acme/oauth/github", Some(due_in(7200, &url, "rt-far-secret"))).await.expect(200);
    assert!(gw.stop_graceful().await.success());
    // Due while the gateway is down (stored directly before the stop would race the deadline):
    // start, store it due in 6 s, stop at once, then start again after the deadline.
    gw.start_again().await;
    gw.admin(Method::PUT, "/tenants/globex/oauth/slack", Some(due_in(6, &url, "rt-due-secret"))).await.expect(200);
    assert!(gw.stop_graceful().await.success());
    assert_eq!(calls(&p), 0);
    tokio::time::sleep(Duration::from_secs(7)).await;
    gw.start_again().await;

    wait_calls(&p, 1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let seen: Vec<String> = p.lock().unwrap().calls.iter().map(|(f, _)| f["refresh_token"].clone()).collect();
    assert_eq!(seen, vec!["rt-due-secret".to_string()], "only the due credential, once");
    assert_eq!(credential(&gw, "acme", "github").await["lastRefreshAt"], Value::Null);
}

/// A graceful stop while a refresh is out waits for its answer and stores the rotated token: the
/// provider has consumed the old refresh token, so a lost answer would leave the user to
/// authorise again.
#[tokio::test]
async fn a_graceful_stop_during_a_refresh_stores_its_rotated_token() {
    let (p, url) = provider("rt-1-initial-secret").await;
    p.lock().unwrap().delay = Duration::from_millis(1_500);
    let mut gw = Gateway::start(FAST, &[]).await;
    gw.create_tenant(json!({"id": "acme", "name": "Acme"})).await;
    gw.admin(Method::PUT, "/tenants/acme/oauth/github", Some(due_in(1, &url, "rt-1-initial-secret"))).await.expect(200);
    wait_calls(&p, 1, Duration::from_secs(10)).await;
    assert!(gw.stop_graceful().await.success());
    gw.start_again().await;
    let stored = credential(&gw, "acme", "github").await;
    assert_eq!(stored["status"], "active", "{stored}");
    assert!(!stored["lastRefreshAt"].is_null(), "the rotated token was lost: {stored}");
    assert_eq!(calls(&p), 1, "the refresh token was sent once");
}

#[tokio::test]
async fn a_passivated_tenant_is_woken_up_for_its_refresh() {
    let (p, url) = provider("rt-1-initial-secret").await;
    let config = "gateway:\n  passivateAfterSeconds: 1\n  tickMillis: 100\n  flushIntervalMillis: 20\n";
    let gw = Gateway::start(config, &[]).await;
    gw.create_tenant(json!({"id": "acme", "name": "Acme"})).await;
    gw.admin(Method::PUT, "/tenants/acme/oauth/github", Some(due_in(9, &url, "rt-1-initial-secret"))).await.expect(200);
    eventually("the tenant passivates", Duration::from_secs(8), || async {
        let text = gw.metrics_text().await;
        let active = metric(&text, "connectors_tenant_actors_active", &[]).unwrap_or(-1.0);
        if active == 0.0 { Ok(()) } else { Err(format!("{active} active")) }
    })
    .await;
    assert_eq!(calls(&p), 0, "passivated before the deadline");
    wait_calls(&p, 1, Duration::from_secs(15)).await;
    // The provider records a call before it answers it: the refresh is done once it is stored.
    eventually("the woken tenant to store its refreshed token", Duration::from_secs(5), || async {
        let c = credential(&gw, "acme", "github").await;
        if c["lastRefreshAt"].is_string() { Ok(()) } else { Err(c.to_string()) }
    })
    .await;
    assert_eq!(p.lock().unwrap().issued, 1);
}
