//! End to end: what a tenant (or a careless admin) can make the gateway connect to. The real
//! binary, the project's example MCP server on loopback playing the internal service a tenant
//! tries to reach.

mod common;
#[path = "common/mcp_servers.rs"]
mod mcp_servers;

use std::time::{Duration, Instant};

use common::{FAST, Gateway, free_port, send};
use mcp_servers::HttpServerProcess;
use reqwest::Method;
use serde_json::{Value, json};

/// A gateway with the shipped outbound policy: nothing private is reachable.
async fn strict_gateway() -> Gateway {
    Gateway::start(FAST, &[("OUTBOUND_ALLOWED_HOSTS", "")]).await
}

async fn create_server(gateway: &Gateway, tenant: &str, key: &str, source: Value) -> common::Resp {
    let body = json!({"name": "internal", "category": "testing", "source": source});
    let request =
        gateway.request(Method::POST, "/api/v1/mcp/servers").header("X-Tenant-ID", tenant).bearer_auth(key).json(&body);
    send(request).await
}

/// The server's view once it is ready, or its deployment failed at least once.
async fn settled(gateway: &Gateway, tenant: &str, key: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let request =
            gateway.request(Method::GET, "/api/v1/mcp/servers/internal").header("X-Tenant-ID", tenant).bearer_auth(key);
        let view = send(request).await.json();
        if view["status"] == "ready" || view["error"].is_string() {
            return view;
        }
        assert!(Instant::now() < deadline, "never settled: {view}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().and_then(|rest| rest.split('/').next()).and_then(|p| p.parse().ok()).expect("a port")
}

#[tokio::test]
async fn a_tenant_cannot_point_its_server_at_the_gateways_loopback() {
    let internal = HttpServerProcess::example(&[]);
    let port = port_of(&internal.url);
    let gateway = strict_gateway().await;
    let (_, key) = gateway.create_tenant(json!({"id": "acme", "name": "Acme", "plan": "pro"})).await;

    // A literal loopback, metadata or private address is refused when registered.
    for url in [
        internal.url.clone(),
        format!("http://[::ffff:127.0.0.1]:{port}/mcp"),
        "http://169.254.169.254/latest/meta-data/".into(),
        "http://10.0.0.1/mcp".into(),
    ] {
        let refused = create_server(&gateway, "acme", &key, json!({"type": "http", "url": url})).await;
        refused.expect_error(400, "invalid_request");
        assert!(refused.text.contains("does not connect to"), "{url}: {}", refused.text);
    }

    // A name is checked when it is resolved, at every connection: it resolves to loopback here.
    let by_name = format!("http://localhost:{port}/mcp");
    create_server(&gateway, "acme", &key, json!({"type": "http", "url": by_name})).await.expect(202);
    let view = settled(&gateway, "acme", &key).await;
    assert_ne!(view["status"], "ready", "{view}");
    assert!(view["error"].as_str().unwrap().contains("loopback"), "{view}");
}

#[tokio::test]
async fn integrations_and_token_endpoints_on_private_addresses_are_refused() {
    let internal = HttpServerProcess::example(&[]);
    let gateway = strict_gateway().await;
    gateway.create_tenant(json!({"id": "acme", "name": "Acme", "plan": "pro"})).await;

    let integration = json!({"name": "internal", "url": internal.url});
    let refused = gateway.admin(Method::POST, "/integrations", Some(integration)).await;
    refused.expect_error(400, "invalid_request");
    assert!(refused.text.contains("loopback"), "{}", refused.text);

    for (endpoint, why) in [
        ("http://127.0.0.1:9/token", "loopback"),
        ("http://idp.example.com/token", "https"),
        ("https://169.254.169.254/token", "link-local"),
    ] {
        let credential = json!({"accessToken": "at-1", "refreshToken": "rt-1", "tokenEndpoint": endpoint});
        let refused = gateway.admin(Method::PUT, "/tenants/acme/oauth/github", Some(credential)).await;
        refused.expect_error(400, "invalid_request");
        assert!(refused.text.contains(why), "{endpoint}: {}", refused.text);
    }
}

#[tokio::test]
async fn a_tenants_token_goes_only_to_its_integrations_host() {
    // The test's policy allows loopback, so only the host rule stands between the token and the
    // tenant's own server.
    let shared = HttpServerProcess::example(&[]);
    let own = HttpServerProcess::example(&[]);
    let gateway = Gateway::start(FAST, &[]).await;
    let (_, key) = gateway.create_tenant(json!({"id": "acme", "name": "Acme", "plan": "pro"})).await;
    let integration = json!({"name": "github", "url": shared.url, "auth": {"type": "oauth"}});
    gateway.admin(Method::POST, "/integrations", Some(integration)).await.expect(201);

    let elsewhere = format!("http://localhost:{}/mcp", port_of(&own.url));
    let source = json!({"type": "http", "url": elsewhere, "oauthIntegration": "github"});
    let refused = create_server(&gateway, "acme", &key, source).await;
    refused.expect_error(400, "invalid_request");
    assert!(refused.text.contains("only sent to the host"), "{}", refused.text);

    let unknown = json!({"type": "http", "url": own.url, "oauthIntegration": "gitlab"});
    create_server(&gateway, "acme", &key, unknown).await.expect_error(400, "invalid_request");

    // The integration's own host is fine.
    let same_host = json!({"type": "http", "url": own.url, "oauthIntegration": "github"});
    create_server(&gateway, "acme", &key, same_host).await.expect(202);
}

#[tokio::test]
async fn connection_failures_tell_a_tenant_nothing_about_ports() {
    let gateway = Gateway::start(FAST, &[]).await;
    let (_, key) = gateway.create_tenant(json!({"id": "acme", "name": "Acme", "plan": "pro"})).await;
    let closed = format!("http://127.0.0.1:{}/mcp", free_port());
    create_server(&gateway, "acme", &key, json!({"type": "http", "url": closed})).await.expect(202);
    let view = settled(&gateway, "acme", &key).await;
    assert_eq!(view["error"], "tool discovery failed: the server could not be reached", "{view}");
    assert!(gateway.stderr_text().contains("custom server's tools not discovered"), "the operator's log has the cause");
}
