//! The multi-tenant setup guide's configuration (tests/fixtures/guide-multi-tenant.yaml) and
//! environment (tests/fixtures/guide.env), accepted as written, and each key doing what the
//! guide says: the values it loads to, then the real binary run with it against a real
//! `redis-server` (headers, fallback tenant, required key, the Redis rate counter, every tenant's
//! Redis keys under its own prefix, each tenant's log lines in its own file).

mod common;
#[path = "common/redis_server.rs"]
mod redis_server;

use std::collections::HashMap;
use std::path::Path;

use common::*;
use connectors::backends::redis_namespace::RedisLayout;
use connectors::config::{Config, Env, RateLimitStore};
use reqwest::Method;
use serde_json::json;

const FIXTURE: &str = include_str!("fixtures/guide-multi-tenant.yaml");
const GUIDE_ENV: &str = include_str!("fixtures/guide.env");
const MASTER_KEY: &str = "2b7e151628aed2a6abf7158809cf4f3c762e7160f38b4da56a784d9045190cfe";

/// `NAME=value` lines; `#` comments and blank lines skipped.
fn guide_env() -> HashMap<String, String> {
    GUIDE_ENV
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (name, value) = line.split_once('=').expect("NAME=value");
            (name.to_string(), value.to_string())
        })
        .collect()
}

struct MapEnv(HashMap<String, String>);

impl Env for MapEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
}

#[test]
fn the_guides_file_and_environment_load_to_what_the_guide_says() {
    let config = Config::from_yaml(FIXTURE, &MapEnv(guide_env())).expect("the guide's configuration loads");
    assert!(config.identity.multi_tenant);
    assert_eq!(config.identity.fallback.as_ref().map(|t| t.as_str()), Some("default"));
    assert!(config.identity.require_api_key);
    assert_eq!(config.tenant_id_header.as_str(), "x-tenant-id");
    assert_eq!(config.api_key_header.as_str(), "authorization");
    let limits = &config.policy.default_limits;
    assert_eq!(
        (limits.requests_per_minute, limits.requests_per_hour, limits.requests_per_day),
        (1000, 50_000, 1_000_000)
    );
    assert_eq!((limits.max_custom_servers, limits.max_tool_invocations, limits.max_storage_mb), (10, 100_000, 1000));
    assert!(config.policy.rate_limits_enabled);
    assert_eq!(config.rate_limit_store, RateLimitStore::Redis);
    assert_eq!(config.redis_prefix, "tenant:", "a bare name is a namespace");
    assert_eq!(config.redis_layout, RedisLayout::Separate);
    assert!(config.separate_logs);
    let vault = config.vault.as_ref().expect("VAULT_ADDR selects Vault");
    assert_eq!((vault.addr.as_str(), vault.token.as_str()), ("http://vault:8200", "your-vault-token"));
    assert_eq!(vault.tenant_prefix, "connectors/tenants");
    assert!(vault.separate_keys, "separateVaultKeys: a Transit key per tenant");
}

#[test]
fn the_guides_isolation_keys_default_to_off_when_not_written() {
    let config = Config::from_yaml("multiTenant:\n  enabled: true\n", &MapEnv(HashMap::new())).unwrap();
    assert_eq!(config.redis_layout, RedisLayout::Shared);
    assert!(!config.separate_logs);
}

/// Every key in the Redis at `url`.
async fn redis_keys(url: &str) -> Vec<String> {
    let client = redis::Client::open(url).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(&mut connection).await.unwrap();
    keys.sort();
    keys
}

fn log_file(data_dir: &Path, tenant: &str) -> String {
    std::fs::read_to_string(data_dir.join("logs").join(format!("{tenant}.log"))).unwrap_or_default()
}

#[tokio::test]
async fn the_gateway_runs_with_the_guides_configuration_and_each_key_has_its_effect() {
    let redis = redis_server::RedisServer::start();
    let url = redis.url();
    // The guide's environment, but this test's Redis, and no Vault to reach here (Vault with
    // separateVaultKeys is the vault_secret_store tests' subject).
    let mut env = guide_env();
    env.insert("REDIS_URL".into(), url.clone());
    env.remove("VAULT_ADDR");
    env.remove("VAULT_TOKEN");
    env.remove("VAULT_TENANT_PREFIX");
    env.insert("CONNECTORS_MASTER_KEY".into(), MASTER_KEY.into());
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let gateway = Gateway::start(FIXTURE, &env).await;

    // fallbackTenantId: created at start.
    gateway.admin(Method::GET, "/tenants/default", None).await.expect(200);
    let (acme, acme_key) = gateway.create_tenant(json!({"id": "acme", "name": "Acme", "plan": "pro"})).await;
    assert_eq!(acme["id"], "acme");
    let (_, globex_key) = gateway.create_tenant(json!({"id": "globex", "name": "Globex"})).await;

    // tenantIdHeader, apiKeyHeader, requireApiKey.
    let ok = gateway.tenant_get(Some("acme"), Some(&acme_key)).await;
    assert_eq!(ok.expect(200).json()["id"], "acme");
    gateway.tenant_get(Some("acme"), None).await.expect_error(401, "unauthorized");
    gateway.tenant_get(Some("acme"), Some(&globex_key)).await.expect_error(403, "tenant_mismatch");
    // RATE_LIMIT_STORE=redis: the counters are Redis keys, with the limit of acme's plan.
    assert_eq!(ok.header_u64("x-ratelimit-limit"), 1000);

    // separateLogs: a line about acme lands in logs/acme.log, not in globex's.
    gateway.admin(Method::POST, "/tenants/acme/rotate-key", Some(json!({}))).await.expect(200);
    let data_dir = gateway.data_dir();
    let acme_log = eventually("acme's log line", std::time::Duration::from_secs(10), || async {
        let text = log_file(&data_dir, "acme");
        if text.contains("tenant key rotated") { Ok(text) } else { Err(text) }
    })
    .await;
    assert!(!acme_log.contains("globex"), "{acme_log}");
    assert!(!log_file(&data_dir, "globex").contains("tenant key rotated"));
    assert!(gateway.stderr_text().contains("tenant key rotated"), "the process log keeps every line");

    // separateRedisNamespace (with REDIS_TENANT_PREFIX=tenant): every key naming acme is under
    // `tenant:` + `tenant:acme:`; the rest are the gateway's own.
    let credential = json!({"accessToken": "at-guide-0a1b2c3d", "scopes": ["repo"]});
    gateway.admin(Method::PUT, "/tenants/acme/oauth/github", Some(credential)).await.expect(200);
    gateway.wait_usage_api_calls("acme", 1).await;
    // No `checkpoint`: with RATE_LIMIT_STORE=redis the Redis counter limits, not the actor's windows.
    let kinds =
        ["record", "keys", "audit", "usage:days", "usage:month:", "secrets:cred", "secrets:tenant-key", "rate:minute"];
    let keys = eventually("acme's keys in Redis", std::time::Duration::from_secs(10), || async {
        let keys = redis_keys(&url).await;
        let missing: Vec<&str> = kinds
            .iter()
            .copied()
            .filter(|kind| !keys.iter().any(|key| key.starts_with(&format!("tenant:tenant:acme:{kind}"))))
            .collect();
        if missing.is_empty() { Ok(keys) } else { Err(format!("missing {missing:?} in {keys:?}")) }
    })
    .await;
    assert!(keys.iter().all(|key| key.starts_with("tenant:")), "{keys:?}");
    let acme_keys: Vec<&String> = keys.iter().filter(|key| key.contains("acme")).collect();
    assert!(acme_keys.iter().all(|key| key.starts_with("tenant:tenant:acme:")), "{acme_keys:?}");
}
