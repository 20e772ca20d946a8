//! End to end: `connectors migrate single-to-multi` on the data dir of a gateway that ran in
//! single-tenant mode, then the same data dir served in multi-tenant mode with the printed key.

mod common;

use std::process::Command;

use common::*;
use reqwest::Method;
use serde_json::json;

const ACCESS: &str = "at-migrate-3e8b1f0c7a9d2e4f";

const SINGLE_TENANT: &str = "gateway:\n  tickMillis: 100\n  flushIntervalMillis: 20\nmultiTenant:\n  enabled: false\n  requireApiKey: false\n  fallbackTenantId: local\n";
const MULTI_TENANT: &str = "gateway:\n  tickMillis: 100\n  flushIntervalMillis: 20\nmultiTenant:\n  enabled: true\n  fallbackTenantId: default\n";

/// Runs `connectors migrate single-to-multi ARGS` and returns (success, stdout, stderr).
fn migrate(args: &[&str]) -> (bool, String, String) {
    let mut command = Command::new(BIN);
    command.args(["migrate", "single-to-multi"]).args(args);
    for name in CONFIG_ENV {
        command.env_remove(name);
    }
    let output = command.output().expect("run connectors migrate");
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (output.status.success(), text(&output.stdout), text(&output.stderr))
}

#[tokio::test]
async fn a_single_tenant_data_dir_becomes_the_default_tenant_with_its_credentials_and_a_printed_key() {
    // Single-tenant mode: every request is `local`, no key needed; an OAuth credential stored.
    let mut gateway = Gateway::start(SINGLE_TENANT, &[]).await;
    gateway.tenant_get(None, None).await.expect(200);
    let credential = json!({"accessToken": ACCESS, "expiresAt": "2099-01-01T00:00:00Z", "scopes": ["repo"]});
    gateway.admin(Method::PUT, "/tenants/local/oauth/github", Some(credential)).await.expect(200);
    let status = gateway.stop_graceful().await;
    assert_eq!(status.code(), Some(0));

    let data_dir = gateway.data_dir();
    let data = data_dir.to_str().unwrap();
    let config = gateway.config_path().to_str().unwrap().to_string();
    let (ok, stdout, stderr) = migrate(&["--data-dir", data, "--config", &config]);
    assert!(ok, "migration failed: {stderr}");
    assert!(stdout.contains("OAuth credentials moved: github"), "{stdout}");
    assert!(!stdout.contains(ACCESS) && !stderr.contains(ACCESS), "a token was printed");
    let key = stdout.split_whitespace().find(|word| word.starts_with("ck_")).expect("the printed key").to_string();

    // Multi-tenant mode on the same data: the printed key is the default tenant's.
    gateway.write_config(MULTI_TENANT);
    gateway.start_again().await;
    let tenant = gateway.tenant_get(Some("default"), Some(&key)).await;
    assert_eq!(tenant.expect(200).json()["id"], "default");
    assert_eq!(
        gateway.tenant_get(None, Some(&key)).await.expect(200).json()["id"],
        "default",
        "the key names its tenant"
    );
    gateway.tenant_get(Some("default"), None).await.expect_error(401, "unauthorized");
    gateway.tenant_get(Some("default"), Some("ck_wrong")).await.expect_error(401, "unauthorized");

    let moved = gateway.admin(Method::GET, "/tenants/default/oauth", None).await;
    let integrations = moved.expect(200).json()["integrations"].clone();
    assert_eq!(integrations.as_array().map(Vec::len), Some(1), "{integrations}");
    assert_eq!(integrations[0]["integration"], "github");
    assert_eq!(integrations[0]["scopes"], json!(["repo"]));
    assert_eq!(integrations[0]["status"], "active");
    let left = gateway.admin(Method::GET, "/tenants/local/oauth", None).await;
    assert_eq!(left.expect(200).json()["integrations"], json!([]), "nothing left under the single-tenant id");
    let events = gateway
        .wait_audit("default", "the migration's audit event", |events| {
            events.iter().any(|e| e["action"] == "admin.migrate.single_to_multi")
        })
        .await;
    let event = events.iter().find(|e| e["action"] == "admin.migrate.single_to_multi").unwrap();
    assert_eq!(event["params"]["from"], "local");
    assert_eq!(event["params"]["oauthMoved"], json!(["github"]));

    // Run again while the gateway holds the data dir: refused, nothing changed.
    let (ok, _, stderr) = migrate(&["--data-dir", data, "--config", &config]);
    assert!(!ok, "a migration ran against a data dir in use");
    assert!(!stderr.is_empty());
    gateway.tenant_get(Some("default"), Some(&key)).await.expect(200);
}

#[tokio::test]
async fn without_a_single_tenant_id_the_migration_says_what_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "multiTenant:\n  enabled: true\n").unwrap();
    let data = dir.path().join("data");
    let (ok, _, stderr) = migrate(&["--data-dir", data.to_str().unwrap(), "--config", config.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("--from"), "{stderr}");
}
