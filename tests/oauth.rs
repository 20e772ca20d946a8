//! End-to-end tests of tenants' OAuth credentials through the admin API: stored encrypted,
//! never returned or logged, isolated per tenant, removed with the tenant, kept across restarts.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

const ACCESS: &str = "at-5f1c2e9a7b3d4c6e8f0a1b2c";
const REFRESH: &str = "rt-0d9e8f7a6b5c4d3e2f1a0b9c";
const CLIENT_SECRET: &str = "cs-a1b2c3d4e5f60718293a4b5c";

fn credential(scopes: &[&str]) -> Value {
    json!({
        "accessToken": ACCESS,
        "refreshToken": REFRESH,
        "expiresAt": "2099-01-01T00:00:00Z",
        "scopes": scopes,
        "tokenEndpoint": "http://127.0.0.1:9/token",
        "clientId": "client-1",
        "clientSecret": CLIENT_SECRET,
    })
}

fn assert_no_secret(text: &str, what: &str) {
    for secret in [ACCESS, REFRESH, CLIENT_SECRET] {
        assert!(!text.contains(secret), "{what} contains a secret: {text}");
    }
}

async fn tenant(gw: &Gateway, id: &str, features: Value) {
    gw.create_tenant(json!({"id": id, "name": id, "plan": "pro", "features": features})).await;
}

#[tokio::test]
async fn store_list_replace_and_delete_without_ever_returning_a_secret() {
    let gw = Gateway::start(FAST, &[]).await;
    tenant(&gw, "acme", json!({})).await;

    let stored = gw.admin(Method::PUT, "/tenants/acme/oauth/github", Some(credential(&["repo"]))).await;
    stored.expect(200);
    assert_eq!(
        stored.json(),
        json!({"integration": "github", "expiresAt": "2099-01-01T00:00:00Z", "scopes": ["repo"], "status": "active", "lastRefreshAt": null})
    );
    assert_no_secret(&stored.text, "the PUT response");

    let replaced = gw.admin(Method::PUT, "/tenants/acme/oauth/github", Some(credential(&["repo", "user"]))).await;
    replaced.expect(200);
    gw.admin(Method::PUT, "/tenants/acme/oauth/slack", Some(json!({"accessToken": ACCESS}))).await.expect(200);

    let listed = gw.admin(Method::GET, "/tenants/acme/oauth", None).await;
    listed.expect(200);
    assert_no_secret(&listed.text, "the list");
    assert_eq!(
        listed.json(),
        json!({"integrations": [
            {"integration": "github", "expiresAt": "2099-01-01T00:00:00Z", "scopes": ["repo", "user"], "status": "active", "lastRefreshAt": null},
            {"integration": "slack", "expiresAt": null, "scopes": [], "status": "active", "lastRefreshAt": null},
        ]})
    );

    gw.admin(Method::DELETE, "/tenants/acme/oauth/github", None).await.expect(204);
    gw.admin(Method::DELETE, "/tenants/acme/oauth/github", None).await.expect_error(404, "not_found");
    let listed = gw.admin(Method::GET, "/tenants/acme/oauth", None).await.json();
    assert_eq!(listed["integrations"].as_array().unwrap().len(), 1);

    let events = gw.wait_audit("acme", "oauth audit events", |e| {
        e.iter().filter(|e| e["action"].as_str().is_some_and(|a| a.starts_with("admin.oauth."))).count() == 4
    });
    let events = events.await;
    let text = serde_json::to_string(&events).unwrap();
    assert_no_secret(&text, "the audit log");
    assert!(text.contains("admin.oauth.store") && text.contains("admin.oauth.delete"));
}

#[tokio::test]
async fn bad_requests_are_refused_and_store_nothing() {
    let gw = Gateway::start(FAST, &[]).await;
    tenant(&gw, "acme", json!({})).await;
    tenant(&gw, "closed", json!({"oauth": false})).await;
    let put = |path: &'static str, body: Value| gw.admin(Method::PUT, path, Some(body));

    put("/tenants/closed/oauth/github", credential(&["repo"])).await.expect_error(403, "feature_disabled");
    put("/tenants/ghost/oauth/github", credential(&["repo"])).await.expect_error(404, "not_found");
    put("/tenants/acme/oauth/Git Hub", credential(&["repo"])).await.expect_error(400, "invalid_request");
    put("/tenants/acme/oauth/github", json!({"refreshToken": REFRESH})).await.expect_error(400, "invalid_request");
    put("/tenants/acme/oauth/github", json!({"accessToken": ""})).await.expect_error(400, "invalid_request");
    put("/tenants/acme/oauth/github", json!({"accessToken": ACCESS, "expiresAt": "tomorrow"}))
        .await
        .expect_error(400, "invalid_request");
    put("/tenants/acme/oauth/github", json!({"accessToken": ACCESS, "tokenEndpoint": "ftp://x/token"}))
        .await
        .expect_error(400, "invalid_request");
    put("/tenants/acme/oauth/github", json!({"accessToken": ACCESS, "password": "x"}))
        .await
        .expect_error(400, "invalid_request");
    put("/tenants/acme/oauth/github", json!({"accessToken": ACCESS, "scopes": "repo"}))
        .await
        .expect_error(400, "invalid_request");
    gw.admin(Method::GET, "/tenants/ghost/oauth", None).await.expect_error(404, "not_found");
    for tenant in ["acme", "closed"] {
        let listed = gw.admin(Method::GET, &format!("/tenants/{tenant}/oauth"), None).await.json();
        assert_eq!(listed, json!({"integrations": []}), "{tenant}");
    }
    // A credential whose access token has already expired is stored, and says so.
    let expired = put("/tenants/acme/oauth/old", json!({"accessToken": ACCESS, "expiresAt": "2001-01-01T00:00:00Z"}));
    assert_eq!(expired.await.json()["status"], "expired");
}

#[tokio::test]
async fn credentials_are_isolated_and_go_with_their_tenant() {
    let gw = Gateway::start(FAST, &[]).await;
    tenant(&gw, "acme", json!({})).await;
    tenant(&gw, "globex", json!({})).await;
    gw.admin(Method::PUT, "/tenants/acme/oauth/github", Some(credential(&["acme-scope"]))).await.expect(200);
    gw.admin(Method::PUT, "/tenants/globex/oauth/github", Some(credential(&["globex-scope"]))).await.expect(200);
    let globex = gw.admin(Method::GET, "/tenants/globex/oauth", None).await.json();
    assert_eq!(globex["integrations"][0]["scopes"], json!(["globex-scope"]));

    gw.admin(Method::DELETE, "/tenants/acme", None).await.expect(204);
    gw.create_tenant(json!({"id": "acme", "name": "Acme again"})).await;
    let acme = gw.admin(Method::GET, "/tenants/acme/oauth", None).await.json();
    assert_eq!(acme, json!({"integrations": []}), "a deleted tenant's credentials are gone");
    let globex = gw.admin(Method::GET, "/tenants/globex/oauth", None).await.json();
    assert_eq!(globex["integrations"][0]["scopes"], json!(["globex-scope"]), "the other tenant keeps its own");
}

#[tokio::test]
async fn credentials_survive_a_restart_encrypted_under_a_private_key_file() {
    let mut gw = Gateway::start(FAST, &[("RUST_LOG", "debug")]).await;
    tenant(&gw, "acme", json!({})).await;
    gw.admin(Method::PUT, "/tenants/acme/oauth/github", Some(credential(&["repo"]))).await.expect(200);
    gw.restart().await;
    let listed = gw.admin(Method::GET, "/tenants/acme/oauth", None).await.json();
    assert_eq!(listed["integrations"][0]["integration"], "github");

    let key_file = gw.data_dir().join("master.key");
    let mode = std::fs::metadata(&key_file).expect("a master key file in the data dir").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the master key file is private");
    for secret in [ACCESS, REFRESH, CLIENT_SECRET] {
        assert!(gw.data_files_containing(secret).is_empty(), "a secret is on disk in plaintext");
    }
    assert_no_secret(&gw.stdout_text(), "stdout");
    assert_no_secret(&gw.stderr_text(), "stderr");
}

#[tokio::test]
async fn a_different_master_key_is_refused_at_start() {
    let original = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // base64 of 32 bytes
    let mut gw = Gateway::start(FAST, &[("CONNECTORS_MASTER_KEY", original)]).await;
    tenant(&gw, "acme", json!({})).await;
    gw.admin(Method::PUT, "/tenants/acme/oauth/github", Some(credential(&["repo"]))).await.expect(200);
    assert!(gw.stop_graceful().await.success());

    let other = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA="; // another 32 bytes
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_connectors"))
            .args(["serve", "--listen", &format!("127.0.0.1:{}", free_port()), "--data-dir"])
            .arg(gw.data_dir())
            .env("ADMIN_API_KEY", ADMIN_KEY)
            .env("CONNECTORS_MASTER_KEY", other)
            .stdin(std::process::Stdio::null())
            .output(),
    )
    .await
    .expect("a wrong master key stops start-up quickly")
    .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("master key"), "{stderr}");
    assert!(!stderr.contains(other) && !stderr.contains(original), "keys are never printed: {stderr}");
}
