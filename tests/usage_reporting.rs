//! End to end, what the setup guide promises in a tenant's metrics and audit log: `tokens.total`
//! counts the `tokenUsage` of the `tools/select` answers served, `X-User-ID` (or the configured
//! header) becomes the audit event's `userId`, and `advancedAnalytics` adds per-day and per-tool
//! breakdowns to the metrics of the tenants that have it.

mod common;
#[path = "common/mcp_servers.rs"]
mod mcp_servers;

use common::*;
use mcp_servers::HttpServerProcess;
use reqwest::Method;
use serde_json::{Value, json};

async fn tool_post(
    gateway: &Gateway,
    tenant: &str,
    key: &str,
    path: &str,
    body: Value,
    user: Option<(&str, &str)>,
) -> Resp {
    let mut request =
        gateway.request(Method::POST, &format!("/api/v1/tools{path}")).header("X-Tenant-ID", tenant).bearer_auth(key);
    if let Some((header, user)) = user {
        request = request.header(header, user);
    }
    send(request.json(&body)).await
}

async fn metrics(gateway: &Gateway, tenant: &str) -> Value {
    let path = format!("/tenants/{tenant}/metrics?startDate={}&endDate={}", today(), today());
    gateway.admin(Method::GET, &path, None).await.expect(200).json()
}

#[tokio::test]
async fn served_tokens_user_ids_and_advanced_analytics_are_reported() {
    let server = HttpServerProcess::example(&[]);
    let gateway = Gateway::start(FAST, &[]).await;
    let integration = json!({"name": "example", "url": server.url, "category": "testing"});
    gateway.admin(Method::POST, "/integrations", Some(integration)).await.expect(201);
    let (_, acme) = gateway.create_tenant(json!({"id": "acme", "name": "Acme", "plan": "enterprise"})).await;
    let (_, globex) = gateway.create_tenant(json!({"id": "globex", "name": "Globex", "plan": "pro"})).await;

    // tokens.total: the sum of the answers' tokenUsage.
    let mut served = 0;
    for query in ["add two numbers", "echo a message"] {
        let answer =
            tool_post(&gateway, "acme", &acme, "/select", json!({"query": query}), Some(("X-User-ID", "user-123")))
                .await;
        served += answer.expect(200).json()["performance"]["tokenUsage"].as_u64().unwrap();
    }
    assert!(served > 0);
    let acme_metrics = metrics(&gateway, "acme").await;
    assert_eq!(acme_metrics["tokens"]["total"], served, "{acme_metrics}");
    assert_eq!(acme_metrics["tools"]["selections"], 2);
    assert_eq!(metrics(&gateway, "globex").await["tokens"]["total"], 0, "another tenant's tokens are its own");

    // X-User-ID: the audit event's userId; absent without the header; refused when unfit.
    let invoke = json!({"toolId": "example.add", "parameters": {"a": 2, "b": 3}});
    tool_post(&gateway, "acme", &acme, "/invoke", invoke.clone(), Some(("X-User-ID", "user-123"))).await.expect(200);
    tool_post(&gateway, "acme", &acme, "/invoke", invoke.clone(), None).await.expect(200);
    let missing = json!({"toolId": "example.nothing", "parameters": {}});
    tool_post(&gateway, "acme", &acme, "/invoke", missing, Some(("X-User-ID", "user-9")))
        .await
        .expect_error(404, "not_found");
    let long = "u".repeat(300);
    tool_post(&gateway, "acme", &acme, "/invoke", invoke.clone(), Some(("X-User-ID", &long)))
        .await
        .expect_error(400, "invalid_request");
    let events = gateway
        .wait_audit("acme", "the invocations' events", |events| {
            events.iter().filter(|e| e["action"] == "tools.invoke").count() >= 3
        })
        .await;
    let invokes: Vec<&Value> = events.iter().filter(|e| e["action"] == "tools.invoke").collect();
    assert_eq!(invokes[0]["userId"], "user-123");
    assert!(invokes[1].get("userId").is_none(), "{}", invokes[1]);
    assert_eq!(invokes[2]["userId"], "user-9");
    let selects: Vec<&Value> = events.iter().filter(|e| e["action"] == "tools.select").collect();
    assert!(selects.iter().all(|e| e["userId"] == "user-123"), "{selects:?}");

    // advancedAnalytics (enterprise): per-day and per-tool breakdowns; pro: none.
    let acme_metrics = metrics(&gateway, "acme").await;
    let daily = acme_metrics["daily"].as_array().expect("daily breakdown").clone();
    assert_eq!(daily.len(), 1);
    assert_eq!(daily[0]["date"], today());
    assert_eq!(daily[0]["tokens"], served);
    assert_eq!(daily[0]["toolInvocations"], 2);
    assert_eq!(acme_metrics["byTool"]["complete"], true);
    assert_eq!(
        acme_metrics["byTool"]["tools"],
        json!([
            {"toolId": "example.add", "calls": 2, "errors": 0},
            {"toolId": "example.nothing", "calls": 1, "errors": 1},
        ])
    );
    tool_post(&gateway, "globex", &globex, "/invoke", invoke, None).await.expect(200);
    let globex_metrics = metrics(&gateway, "globex").await;
    assert!(globex_metrics.get("daily").is_none() && globex_metrics.get("byTool").is_none(), "{globex_metrics}");
    // Switching the feature on for globex shows its breakdowns at once.
    gateway.patch_tenant("globex", json!({"features": {"advancedAnalytics": true}})).await.expect(200);
    let globex_metrics = metrics(&gateway, "globex").await;
    assert_eq!(globex_metrics["byTool"]["tools"][0]["toolId"], "example.add", "{globex_metrics}");
}

#[tokio::test]
async fn the_user_id_header_is_configurable() {
    let config = format!("{FAST}multiTenant:\n  userIdHeader: X-End-User\n");
    let gateway = Gateway::start(&config, &[]).await;
    let (_, key) = gateway.create_tenant(json!({"id": "acme", "name": "Acme"})).await;
    send(gateway.tenant_request(Some("acme"), Some(&key)).header("X-End-User", "alice")).await.expect(200);
    send(gateway.tenant_request(Some("acme"), Some(&key)).header("X-User-ID", "bob")).await.expect(200);
    let events = gateway
        .wait_audit("acme", "two tenant.get events", |events| {
            events.iter().filter(|e| e["action"] == "tenant.get").count() >= 2
        })
        .await;
    let users: Vec<&Value> = events.iter().filter(|e| e["action"] == "tenant.get").map(|e| &e["userId"]).collect();
    assert_eq!(users, [&json!("alice"), &Value::Null]);
}
