use std::collections::HashMap;

use super::*;
use crate::backends::vault_secret_store::KvVersion;

struct FakeEnv(HashMap<&'static str, &'static str>);

impl Env for FakeEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).map(|v| v.to_string())
    }
}

fn no_env() -> FakeEnv {
    FakeEnv(HashMap::new())
}

fn error_text(yaml: &str) -> String {
    Config::from_yaml(yaml, &no_env()).unwrap_err().to_string()
}

#[test]
fn every_shipped_config_file_loads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            Config::load(Some(&path), &no_env()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            seen += 1;
        }
    }
    assert!(seen >= 1, "config/ holds the documented multi-tenant.yaml");
}

#[test]
fn defaults_without_a_file() {
    let config = Config::load(None, &no_env()).unwrap();
    assert!(config.identity.multi_tenant && config.identity.require_api_key);
    assert_eq!(config.tenant_id_header.as_str(), "x-tenant-id");
    assert_eq!(config.max_body_bytes, 1024 * 1024);
    assert!(["free", "pro", "enterprise"].iter().all(|p| config.policy.has_plan(p)));
}

#[test]
fn unknown_keys_are_named_with_their_path() {
    let text = error_text("multiTenant:\n  rateLimits:\n    requestsPerMinut: 5\n");
    assert!(text.contains("multiTenant.rateLimits"), "{text}");
    assert!(text.contains("requestsPerMinut"), "{text}");
}

#[test]
fn wrong_types_are_named_with_their_path() {
    let text = error_text("multiTenant:\n  quotas:\n    maxToolInvocations: lots\n");
    assert!(text.contains("multiTenant.quotas.maxToolInvocations"), "{text}");
}

#[test]
fn inconsistent_values_are_refused() {
    assert!(error_text("multiTenant:\n  requireApiKey: false\n").contains("fallbackTenantId"));
    assert!(error_text("multiTenant:\n  fallbackTenantId: Not_Valid\n").contains("multiTenant.fallbackTenantId"));
    assert!(error_text("multiTenant:\n  defaultPlan: gold\n").contains("multiTenant.defaultPlan"));
    assert!(error_text("multiTenant:\n  pricing:\n    perToolInvocation: -1\n").contains("perToolInvocation"));
    assert!(error_text("gateway:\n  trustedProxies: [\"10.0.0.0/99\"]\n").contains("gateway.trustedProxies"));
    assert!(error_text("gateway:\n  tickMillis: 0\n").contains("gateway.tickMillis"));
    assert!(error_text("multiTenant:\n  tenantIdHeader: \"bad header\"\n").contains("tenantIdHeader"));
}

#[test]
fn the_recorder_bound_has_a_default_and_a_floor() {
    assert_eq!(Config::load(None, &no_env()).unwrap().recorder_max_pending_bytes, 64 * 1024 * 1024);
    let config = Config::from_yaml("recorder:\n  maxPendingBytes: 2097152\n", &no_env()).unwrap();
    assert_eq!(config.recorder_max_pending_bytes, 2 * 1024 * 1024);
    assert!(error_text("recorder:\n  maxPendingBytes: 1000\n").contains("recorder.maxPendingBytes"));
}

#[test]
fn the_store_cache_has_a_default_and_a_floor() {
    assert_eq!(Config::load(None, &no_env()).unwrap().store_cache_bytes, 64 * 1024 * 1024);
    let config = Config::from_yaml("store:\n  cacheBytes: 8388608\n", &no_env()).unwrap();
    assert_eq!(config.store_cache_bytes, 8 * 1024 * 1024);
    assert!(error_text("store:\n  cacheBytes: 4096\n").contains("store.cacheBytes"));
}

#[test]
fn environment_overrides_the_file() {
    let env = FakeEnv(HashMap::from([
        ("TENANT_ID_HEADER", "X-Org"),
        ("API_KEY_HEADER", "X-Api-Key"),
        ("RATE_LIMIT_ENABLED", "false"),
        ("MULTI_TENANT_ENABLED", "false"),
    ]));
    let config = Config::from_yaml("multiTenant:\n  fallbackTenantId: solo\n", &env).unwrap();
    assert_eq!(config.tenant_id_header.as_str(), "x-org");
    assert_eq!(config.api_key_header.as_str(), "x-api-key");
    assert!(!config.policy.rate_limits_enabled);
    assert!(!config.identity.multi_tenant);
    let bad = FakeEnv(HashMap::from([("RATE_LIMIT_ENABLED", "maybe")]));
    assert!(Config::from_yaml("", &bad).unwrap_err().to_string().contains("RATE_LIMIT_ENABLED"));
    let redis = FakeEnv(HashMap::from([("RATE_LIMIT_STORE", "memcached")]));
    assert!(Config::from_yaml("", &redis).unwrap_err().to_string().contains("rateLimits.store"));
}

#[test]
fn prices_become_exact_micros() {
    let config = Config::from_yaml("multiTenant:\n  pricing:\n    perThousandApiCalls: 0.1\n", &no_env()).unwrap();
    assert_eq!(config.pricing.per_thousand_api_calls_micros, 100_000);
}

#[test]
fn oauth_refresh_lead_comes_from_the_file_or_the_environment() {
    let config = Config::from_yaml("oauth:\n  refreshBeforeSeconds: 120\n", &no_env()).unwrap();
    assert_eq!(config.oauth_refresh_before, Duration::from_secs(120));
    assert_eq!(Config::load(None, &no_env()).unwrap().oauth_refresh_before, Duration::from_secs(300));
    let env = FakeEnv(HashMap::from([("OAUTH_REFRESH_BEFORE_SECONDS", "60")]));
    assert_eq!(
        Config::from_yaml("oauth:\n  refreshBeforeSeconds: 120\n", &env).unwrap().oauth_refresh_before,
        Duration::from_secs(60)
    );
    let bad = FakeEnv(HashMap::from([("OAUTH_REFRESH_BEFORE_SECONDS", "soon")]));
    assert!(Config::from_yaml("", &bad).unwrap_err().to_string().contains("OAUTH_REFRESH_BEFORE_SECONDS"));
    assert!(error_text("oauth:\n  tokenTimeoutSeconds: 0\n").contains("oauth.tokenTimeoutSeconds"));
    let unbounded = error_text("oauth:\n  refreshBeforeSeconds: 18446744073709551615\n");
    assert!(unbounded.contains("oauth.refreshBeforeSeconds") && unbounded.contains("at most"), "{unbounded}");
    let from_env = FakeEnv(HashMap::from([("OAUTH_REFRESH_BEFORE_SECONDS", "2592001")]));
    assert!(Config::from_yaml("", &from_env).unwrap_err().to_string().contains("oauth.refreshBeforeSeconds"));
}

#[test]
fn vault_is_chosen_by_its_address_and_needs_a_token() {
    assert!(Config::load(None, &no_env()).unwrap().vault.is_none(), "embedded by default");
    let env = FakeEnv(HashMap::from([
        ("VAULT_ADDR", "http://127.0.0.1:8200"),
        ("VAULT_TOKEN", "s.token"),
        ("VAULT_TENANT_PREFIX", "gw/tenants"),
    ]));
    let yaml = "multiTenant:\n  isolation:\n    separateVaultKeys: true\nvault:\n  kvVersion: 1\n";
    let vault = Config::from_yaml(yaml, &env).unwrap().vault.expect("Vault when VAULT_ADDR is set");
    assert_eq!(vault.addr, "http://127.0.0.1:8200");
    assert_eq!(vault.tenant_prefix, "gw/tenants");
    assert_eq!(vault.kv_version, KvVersion::V1);
    assert!(vault.separate_keys);
    let no_token = FakeEnv(HashMap::from([("VAULT_ADDR", "http://127.0.0.1:8200")]));
    assert!(Config::from_yaml("", &no_token).unwrap_err().to_string().contains("VAULT_TOKEN"));
    let bad = Config::from_yaml("vault:\n  kvVersion: 3\n", &env).unwrap_err().to_string();
    assert!(bad.contains("vault.kvVersion"), "{bad}");
}

#[test]
fn neo4j_is_chosen_by_its_uri_and_needs_a_password() {
    assert!(Config::load(None, &no_env()).unwrap().neo4j.is_none(), "embedded or Redis by default");
    let yaml = "tools:\n  graph:\n    neo4j:\n      uri: bolt://graph.internal:7687\n      password: from-file\n";
    let neo4j = Config::from_yaml(yaml, &no_env()).unwrap().neo4j.expect("Neo4j when a URI is given");
    assert_eq!(
        (neo4j.uri.as_str(), neo4j.user.as_str(), neo4j.password.as_str()),
        ("bolt://graph.internal:7687", "neo4j", "from-file")
    );
    assert!(!format!("{neo4j:?}").contains("from-file"), "the password is not shown");
    let env = FakeEnv(HashMap::from([
        ("NEO4J_URI", "neo4j+s://other:7687"),
        ("NEO4J_USER", "gw"),
        ("NEO4J_PASSWORD", "env"),
    ]));
    let neo4j = Config::from_yaml(yaml, &env).unwrap().neo4j.unwrap();
    assert_eq!(
        (neo4j.uri.as_str(), neo4j.user.as_str(), neo4j.password.as_str()),
        ("neo4j+s://other:7687", "gw", "env")
    );
    let errors = [
        ("tools:\n  graph:\n    neo4j:\n      uri: bolt://g:7687\n", "tools.graph.neo4j.password"),
        ("tools:\n  graph:\n    neo4j:\n      uri: http://g:7474\n      password: p\n", "tools.graph.neo4j.uri"),
        ("tools:\n  graph:\n    neo4j:\n      password: p\n", "tools.graph.neo4j.uri"),
        ("tools:\n  graph:\n    neo4j:\n      url: bolt://g:7687\n", "url"),
    ];
    for (yaml, key) in errors {
        let error = Config::from_yaml(yaml, &no_env()).unwrap_err().to_string();
        assert!(error.contains(key), "{yaml}: {error}");
    }
}

#[test]
fn cluster_timing_redis_prefix_and_the_rate_limit_store() {
    let config = Config::load(None, &no_env()).unwrap();
    assert_eq!(config.rate_limit_store, RateLimitStore::Actor);
    assert_eq!(config.redis_prefix, "connectors:");
    assert_eq!(config.cluster.heartbeat, Duration::from_millis(500));
    assert_eq!(config.cluster.failure_timeout, Duration::from_millis(3_000));

    let yaml = "redis:\n  tenantPrefix: 'gw1:'\ncluster:\n  heartbeatMillis: 100\n  failureTimeoutMillis: 400\n  requestDeadlineMillis: 250\n  maxInFlightPerPeer: 16\n  drainDeadlineSeconds: 7\n  holdMillis: 300\n  maxHeldRequests: 9\n";
    let config = Config::from_yaml(yaml, &no_env()).unwrap();
    assert_eq!(config.redis_prefix, "gw1:");
    assert_eq!(
        config.cluster,
        ClusterTiming {
            heartbeat: Duration::from_millis(100),
            failure_timeout: Duration::from_millis(400),
            request_deadline: Duration::from_millis(250),
            max_in_flight_per_peer: 16,
            drain_deadline: Duration::from_secs(7),
            hold: Duration::from_millis(300),
            max_held_requests: 9,
        }
    );
    let env = FakeEnv(HashMap::from([("RATE_LIMIT_STORE", "redis"), ("REDIS_TENANT_PREFIX", "other:")]));
    let config = Config::from_yaml(yaml, &env).unwrap();
    assert_eq!(config.rate_limit_store, RateLimitStore::Redis);
    assert_eq!(config.redis_prefix, "other:");

    assert!(
        error_text("cluster:\n  heartbeatMillis: 1000\n  failureTimeoutMillis: 1500\n")
            .contains("cluster.failureTimeoutMillis")
    );
    assert!(error_text("cluster:\n  heartbeatMillis: 0\n").contains("cluster.heartbeatMillis"));
    assert!(error_text("cluster:\n  drainDeadlineSeconds: 0\n").contains("cluster.drainDeadlineSeconds"));
    assert!(error_text("cluster:\n  heartbeat: 1\n").contains("cluster"));
    assert!(error_text("redis:\n  tenantPrefix: ''\n").contains("redis.tenantPrefix"));
}

#[test]
fn a_metrics_token_comes_from_the_environment_and_must_be_long_enough() {
    let none = FakeEnv(HashMap::new());
    assert_eq!(Config::from_yaml("", &none).unwrap().metrics_token, None, "open by default");
    let env = FakeEnv(HashMap::from([("METRICS_TOKEN", "scrape-token-0123456789")]));
    let token = Config::from_yaml("", &env).unwrap().metrics_token.expect("a token");
    assert!(token.matches(&connectors_actors::api_key::KeyHash::of("scrape-token-0123456789")));
    for bad in ["short", "has whitespace in the middle"] {
        let env = FakeEnv(HashMap::from([("METRICS_TOKEN", bad)]));
        let error = Config::from_yaml("", &env).unwrap_err().to_string();
        assert!(error.contains("METRICS_TOKEN"), "{error}");
    }
}

#[test]
fn stdio_templates_and_the_outbound_policy_load_and_bad_ones_are_named() {
    let yaml = "deployer:\n  allowedCommands:\n    - /opt/mcp/notes\n    - command: python3\n      args: [\"-m\", \"mcp_server_*\"]\n  runAsUser: 1234\n  runAsGroup: 5678\noutbound:\n  allowPrivate: true\n  allowedHosts: [\"10.0.0.0/8\", \"tools.internal\"]\n";
    let config = Config::from_yaml(yaml, &no_env()).unwrap();
    assert!(config.stdio.allowed_commands.permits("python3", &["-m".into(), "mcp_server_git".into()]));
    assert!(!config.stdio.allowed_commands.permits("python3", &["-c".into(), "1".into()]));
    assert!(config.stdio.allowed_commands.permits("/opt/mcp/notes", &[]));
    assert_eq!(config.stdio.run_as, (1234, 5678));
    assert!(config.outbound.check_url("http://10.1.2.3/").is_ok());

    assert!(error_text("deployer:\n  allowedCommands: [\"./server\"]\n").contains("deployer.allowedCommands"));
    let misplaced = "deployer:\n  allowedCommands:\n    - command: node\n      args: [\"**\", \"x\"]\n";
    assert!(error_text(misplaced).contains("`**` may only come last"));
    assert!(error_text("outbound:\n  allowedHosts: [\"not a host\"]\n").contains("outbound.allowedHosts"));

    let env = FakeEnv(HashMap::from([("OUTBOUND_ALLOWED_HOSTS", "127.0.0.1, idp.internal")]));
    let config = Config::from_yaml("", &env).unwrap();
    assert!(config.outbound.check_token_endpoint("http://idp.internal/token").is_ok());
    assert!(Config::from_yaml("", &no_env()).unwrap().outbound.check_url("http://127.0.0.1/").is_err());
}

#[test]
fn the_co_usage_quorum_defaults_by_mode_and_is_at_least_one() {
    let policy = |yaml: &str| Config::from_yaml(yaml, &no_env()).unwrap().co_usage;
    assert_eq!(policy(""), CoUsagePolicy { min_tenants: 3, per_tenant_cap: 5 });
    let single = "multiTenant:\n  enabled: false\n  fallbackTenantId: solo\n";
    assert_eq!(policy(single).min_tenants, 1, "one tenant has no one to be protected from");
    assert_eq!(policy(&format!("{single}tools:\n  coUsage:\n    minTenants: 2\n")).min_tenants, 2);
    let set = policy("tools:\n  coUsage:\n    minTenants: 10\n    perTenantCap: 1\n");
    assert_eq!(set, CoUsagePolicy { min_tenants: 10, per_tenant_cap: 1 });
    assert!(error_text("tools:\n  coUsage:\n    minTenants: 0\n").contains("tools.coUsage.minTenants"));
    assert!(error_text("tools:\n  coUsage:\n    perTenantCap: 0\n").contains("tools.coUsage.perTenantCap"));
    assert!(error_text("tools:\n  coUsage:\n    quorum: 3\n").contains("tools.coUsage"));
}

#[test]
fn cluster_links_are_plaintext_unless_the_three_tls_files_are_given() {
    assert_eq!(Config::load(None, &no_env()).unwrap().cluster_tls, None);
    let yaml = "cluster:\n  tls:\n    certFile: /tls/node.pem\n    keyFile: /tls/node.key\n    caFile: /tls/ca.pem\n";
    let tls = Config::from_yaml(yaml, &no_env()).unwrap().cluster_tls.unwrap();
    assert_eq!(tls.cert_file, Path::new("/tls/node.pem"));
    assert_eq!(tls.key_file, Path::new("/tls/node.key"));
    assert_eq!(tls.ca_file, Path::new("/tls/ca.pem"));
    assert_eq!(tls.server_name, DEFAULT_CLUSTER_SERVER_NAME);
    let named = Config::from_yaml(&format!("{yaml}    serverName: gw.internal\n"), &no_env()).unwrap();
    assert_eq!(named.cluster_tls.unwrap().server_name, "gw.internal");
}

#[test]
fn a_partial_cluster_tls_setting_names_the_missing_key() {
    let text = error_text("cluster:\n  tls:\n    certFile: /tls/node.pem\n    caFile: /tls/ca.pem\n");
    assert!(text.contains("cluster.tls.keyFile"), "{text}");
    let text = error_text("cluster:\n  tls:\n    keyFile: /tls/node.key\n");
    assert!(text.contains("cluster.tls.certFile"), "{text}");
}
