//! End-to-end tests of the tool endpoints: the real binary, the project's example MCP server and
//! a server written with the official MCP Python SDK, all on loopback.

mod common;
#[path = "common/mcp_servers.rs"]
mod mcp_servers;

use common::{FAST, Gateway, free_port, send};
use mcp_servers::HttpServerProcess;
use reqwest::Method;
use serde_json::{Value, json};

/// Short tool-call deadline, so the timeout case is quick.
const CONFIG: &str = "gateway:\n  tickMillis: 100\n  flushIntervalMillis: 20\ntools:\n  callTimeoutSeconds: 1\n";

async fn tool_post(gateway: &Gateway, tenant: &str, key: &str, path: &str, body: Value) -> common::Resp {
    send(
        gateway
            .request(Method::POST, &format!("/api/v1/tools{path}"))
            .header("X-Tenant-ID", tenant)
            .bearer_auth(key)
            .json(&body),
    )
    .await
}

async fn tool_get(gateway: &Gateway, tenant: &str, key: &str, path: &str) -> common::Resp {
    send(gateway.request(Method::GET, &format!("/api/v1/tools{path}")).header("X-Tenant-ID", tenant).bearer_auth(key))
        .await
}

async fn register(gateway: &Gateway, body: Value) -> Value {
    let response = gateway.admin(Method::POST, "/integrations", Some(body)).await;
    response.expect(201);
    response.json()
}

fn text_of(result: &Value) -> String {
    result["result"]["content"].as_array().unwrap().iter().filter_map(|c| c["text"].as_str()).collect()
}

/// A tool result larger than `tools.maxResultBytes` is not passed on: 502 saying its size.
#[tokio::test]
async fn a_tool_result_over_the_limit_is_refused_with_its_size() {
    let server = HttpServerProcess::example(&[]);
    let config = "gateway:\n  tickMillis: 100\n  flushIntervalMillis: 20\ntools:\n  maxResultBytes: 2048\n";
    let gateway = Gateway::start(config, &[]).await;
    register(&gateway, json!({"name": "example", "url": server.url, "category": "testing"})).await;
    let (_, key) = gateway.create_tenant(json!({"id": "greedy", "name": "Greedy", "plan": "pro"})).await;
    let small = json!({"toolId": "example.fail", "parameters": {"message": "short"}});
    tool_post(&gateway, "greedy", &key, "/invoke", small).await.expect(200);
    let large = json!({"toolId": "example.fail", "parameters": {"message": "m".repeat(10_000)}});
    let refused = tool_post(&gateway, "greedy", &key, "/invoke", large).await;
    refused.expect_error(502, "upstream_error");
    assert!(refused.text.contains("more than the 2048"), "{}", refused.text);
}

/// A tenant's tool arguments are audited, but a huge one is stored as its size only.
#[tokio::test]
async fn a_huge_tool_argument_is_audited_as_its_size() {
    let server = HttpServerProcess::example(&[]);
    let gateway = Gateway::start(CONFIG, &[]).await;
    register(&gateway, json!({"name": "example", "url": server.url, "category": "testing"})).await;
    let (_, key) = gateway.create_tenant(json!({"id": "wordy", "name": "Wordy", "plan": "pro"})).await;
    let message = "m".repeat(200_000);
    let body = json!({"toolId": "example.fail", "parameters": {"message": message, "code": 7}});
    tool_post(&gateway, "wordy", &key, "/invoke", body).await.expect(200);
    let events = gateway
        .wait_audit("wordy", "the invocation", |events| events.iter().any(|e| e["action"] == "tools.invoke"))
        .await;
    let invoked = events.iter().find(|e| e["action"] == "tools.invoke").unwrap();
    assert_eq!(invoked["params"]["parameters"]["code"], 7, "{invoked}");
    assert_eq!(invoked["params"]["parameters"]["message"], json!({"truncated": true, "bytes": 200_002}));
}

#[tokio::test]
async fn register_discover_select_and_invoke_with_the_example_server() {
    let server = HttpServerProcess::example(&[]);
    let gateway = Gateway::start(CONFIG, &[]).await;
    let integration =
        register(&gateway, json!({"name": "example", "url": server.url, "category": "testing", "description": "demo"}))
            .await;
    assert_eq!(integration["status"], "ready");
    assert_eq!(integration["toolsDiscovered"], 6);
    let listed = gateway.admin(Method::GET, "/integrations", None).await.json();
    assert_eq!(listed["integrations"][0]["name"], "example");
    gateway
        .admin(Method::POST, "/integrations", Some(json!({"name": "example", "url": server.url})))
        .await
        .expect_error(409, "conflict");
    gateway
        .admin(Method::POST, "/integrations", Some(json!({"name": "Bad.Name", "url": server.url})))
        .await
        .expect_error(400, "invalid_request");
    gateway
        .admin(Method::POST, "/integrations", Some(json!({"name": "x", "url": "ftp://nowhere"})))
        .await
        .expect_error(400, "invalid_request");

    let (_, key) = gateway.create_tenant(json!({"id": "acme", "name": "Acme", "plan": "pro"})).await;
    let selected = tool_post(&gateway, "acme", &key, "/select", json!({"query": "add two numbers"})).await;
    selected.expect(200);
    assert!(selected.header("x-ratelimit-limit").is_some(), "tool endpoints are rate limited like the rest");
    let body = selected.json();
    assert_eq!(body["tools"]["tier1"][0]["id"], "example.add", "{body}");
    assert_eq!(body["performance"]["totalTools"], 6);
    assert!(body["performance"]["tokenUsage"].as_u64().unwrap() <= 5000);
    let selection_id = body["selectionId"].as_str().unwrap().to_string();

    // A tight budget downgrades tiers; the usage never exceeds it.
    let tight = tool_post(
        &gateway,
        "acme",
        &key,
        "/select",
        json!({"query": "numbers", "options": {"tokenBudget": 60, "maxTools": 6}}),
    )
    .await
    .json();
    assert!(tight["performance"]["tokenUsage"].as_u64().unwrap() <= 60, "{tight}");
    tool_post(&gateway, "acme", &key, "/select", json!({"query": "x", "options": {"maxTools": 0}}))
        .await
        .expect_error(400, "invalid_request");
    tool_post(&gateway, "acme", &key, "/select", json!({"query": "x", "surprise": 1}))
        .await
        .expect_error(400, "invalid_request");

    let list = tool_get(&gateway, "acme", &key, "?limit=4").await.json();
    assert_eq!(list["total"], 6);
    assert_eq!(list["tools"].as_array().unwrap().len(), 4);
    let rest =
        tool_get(&gateway, "acme", &key, &format!("?cursor={}", list["nextCursor"].as_str().unwrap())).await.json();
    assert_eq!(rest["tools"].as_array().unwrap().len(), 2);
    assert_eq!(rest["nextCursor"], Value::Null);
    let one = tool_get(&gateway, "acme", &key, "/example.add").await.json();
    assert!(one["inputSchema"]["properties"]["a"]["type"].as_str().is_some(), "{one}");
    tool_get(&gateway, "acme", &key, "/example.nothing").await.expect_error(404, "not_found");

    let sum = tool_post(
        &gateway,
        "acme",
        &key,
        "/invoke",
        json!({"toolId": "example.add", "parameters": {"a": 2, "b": 3}, "selectionId": selection_id}),
    )
    .await;
    sum.expect(200);
    assert_eq!(text_of(&sum.json()), "5");
    assert_eq!(sum.json()["result"]["isError"], false);
    let failed = tool_post(
        &gateway,
        "acme",
        &key,
        "/invoke",
        json!({"toolId": "example.fail", "parameters": {"message": "boom"}}),
    )
    .await;
    assert_eq!(failed.json()["result"]["isError"], true, "a tool's own failure is a 200 result");
    tool_post(&gateway, "acme", &key, "/invoke", json!({"toolId": "example.nothing"}))
        .await
        .expect_error(404, "not_found");
    tool_post(&gateway, "acme", &key, "/invoke", json!({"toolId": "example.sleep", "parameters": {"ms": 3000}}))
        .await
        .expect_error(504, "upstream_timeout");
    tool_post(&gateway, "acme", &key, "/feedback", json!({"query": "sum these", "toolIds": ["example.add"]}))
        .await
        .expect(204);
    tool_post(&gateway, "acme", &key, "/feedback", json!({"toolIds": ["example.add"]}))
        .await
        .expect_error(400, "invalid_request");

    // Usage and audit: invocations of existing tools are counted and audited with the tool id.
    let usage = gateway.wait_usage_api_calls("acme", 12).await;
    assert_eq!(usage["toolInvocations"], 3, "add, fail, sleep (timed out) count; an unknown tool does not: {usage}");
    let events = gateway
        .wait_audit("acme", "invocations", |events| {
            events.iter().filter(|e| e["action"] == "tools.invoke").count() >= 4
        })
        .await;
    let add = events.iter().find(|e| e["toolId"] == "example.add").expect("an audit event for example.add");
    assert_eq!(add["result"], "success");
    assert_eq!(add["params"]["parameters"]["a"], 2);
    let metrics = gateway.metrics_text().await;
    assert!(
        common::metric(&metrics, "connectors_tenant_tool_invocations_total", &[("tenant", "acme")]).unwrap() >= 3.0
    );
    // Each invocation cost its tenant's owner one call: the admission, which also charged it.
    assert_eq!(common::metric(&metrics, "connectors_owner_calls_total", &[("call", "charge")]), None, "{metrics}");

    // Refresh finds tools again; delete removes them from every tenant's view.
    gateway.admin(Method::POST, "/integrations/example/refresh", None).await.expect(200);
    gateway.admin(Method::DELETE, "/integrations/example", None).await.expect(204);
    gateway.admin(Method::DELETE, "/integrations/example", None).await.expect_error(404, "not_found");
    assert_eq!(tool_get(&gateway, "acme", &key, "").await.json()["total"], 0);
}

#[tokio::test]
async fn the_tenants_oauth_token_is_injected_and_never_a_stale_one() {
    let server = HttpServerProcess::example(&[]);
    let gateway = Gateway::start(CONFIG, &[]).await;
    register(&gateway, json!({"name": "secure", "url": server.url, "auth": {"type": "oauth"}})).await;
    let (_, key) = gateway.create_tenant(json!({"id": "acme", "name": "Acme", "plan": "pro"})).await;
    let (_, other_key) = gateway.create_tenant(json!({"id": "globex", "name": "Globex", "plan": "pro"})).await;

    let missing = tool_post(&gateway, "acme", &key, "/invoke", json!({"toolId": "secure.whoami"})).await;
    let body = missing.expect_error(409, "oauth_required");
    assert_eq!(body["integration"], "secure");

    let credential = json!({"accessToken": "acme-access-token-1", "expiresAt": "2099-01-01T00:00:00Z"});
    gateway.admin(Method::PUT, "/tenants/acme/oauth/secure", Some(credential)).await.expect(200);
    let whoami = tool_post(&gateway, "acme", &key, "/invoke", json!({"toolId": "secure.whoami"})).await;
    whoami.expect(200);
    assert!(text_of(&whoami.json()).contains("Bearer acme-access-token-1"), "{}", whoami.text);
    // Another tenant's credential is never used for it.
    tool_post(&gateway, "globex", &other_key, "/invoke", json!({"toolId": "secure.whoami"}))
        .await
        .expect_error(409, "oauth_required");

    // An expired access token without a way to refresh it is not sent.
    let expired = json!({"accessToken": "acme-access-token-2", "expiresAt": "2001-01-01T00:00:00Z"});
    gateway.admin(Method::PUT, "/tenants/acme/oauth/secure", Some(expired)).await.expect(200);
    tool_post(&gateway, "acme", &key, "/invoke", json!({"toolId": "secure.whoami"}))
        .await
        .expect_error(409, "oauth_required");
    assert!(!gateway.stderr_text().contains("acme-access-token"), "a token reached the log");
    // A call refused for its credential is not charged: only the one that went out counts.
    let usage = gateway.wait_usage_api_calls("acme", 3).await;
    assert_eq!(usage["toolInvocations"], 1, "{usage}");
}

#[tokio::test]
async fn broken_and_missing_servers_are_upstream_errors() {
    let mut server = HttpServerProcess::example(&[]);
    let gateway = Gateway::start(CONFIG, &[]).await;
    register(&gateway, json!({"name": "flaky", "url": server.url})).await;
    let unreachable =
        register(&gateway, json!({"name": "ghost", "url": format!("http://127.0.0.1:{}/mcp", free_port())})).await;
    assert_eq!(unreachable["status"], "unreachable", "{unreachable}");
    assert_eq!(unreachable["toolsDiscovered"], 0);
    let (_, key) = gateway.create_tenant(json!({"id": "acme", "name": "Acme", "plan": "pro"})).await;
    tool_post(&gateway, "acme", &key, "/invoke", json!({"toolId": "flaky.echo", "parameters": {"text": "hi"}}))
        .await
        .expect(200);
    server.kill();
    tool_post(&gateway, "acme", &key, "/invoke", json!({"toolId": "flaky.echo", "parameters": {"text": "hi"}}))
        .await
        .expect_error(502, "upstream_error");
    gateway.admin(Method::POST, "/integrations/flaky/refresh", None).await.expect(200);
    let after = gateway.admin(Method::GET, "/integrations", None).await.json();
    let flaky = after["integrations"].as_array().unwrap().iter().find(|i| i["name"] == "flaky").unwrap().clone();
    assert_eq!(flaky["status"], "unreachable", "{flaky}");
}

#[tokio::test]
async fn the_invocation_quota_is_enforced_and_tenants_are_isolated() {
    let server = HttpServerProcess::example(&[]);
    let gateway = Gateway::start(FAST, &[]).await;
    register(&gateway, json!({"name": "example", "url": server.url})).await;
    let (_, key) = gateway
        .create_tenant(json!({"id": "acme", "name": "Acme", "plan": "pro", "limits": {"maxToolInvocations": 2}}))
        .await;
    for _ in 0..2 {
        tool_post(&gateway, "acme", &key, "/invoke", json!({"toolId": "example.echo", "parameters": {"text": "x"}}))
            .await
            .expect(200);
    }
    let over =
        tool_post(&gateway, "acme", &key, "/invoke", json!({"toolId": "example.echo", "parameters": {"text": "x"}}))
            .await;
    let body = over.expect_error(403, "quota_exceeded");
    assert_eq!(
        (body["quota"].as_str(), body["limit"].as_u64(), body["used"].as_u64()),
        (Some("maxToolInvocations"), Some(2), Some(2))
    );

    // What one tenant teaches selection never reaches another's ranking.
    let (_, globex) = gateway.create_tenant(json!({"id": "globex", "name": "Globex", "plan": "pro"})).await;
    let query = json!({"query": "the quarterly ritual"});
    let before = tool_post(&gateway, "globex", &globex, "/select", query.clone()).await.json();
    for i in 0..8 {
        tool_post(
            &gateway,
            "acme",
            &key,
            "/feedback",
            json!({"query": format!("the quarterly ritual {i}"), "toolIds": ["example.whoami"]}),
        )
        .await
        .expect(204);
    }
    let taught = tool_post(&gateway, "acme", &key, "/select", query.clone()).await.json();
    assert_eq!(taught["tools"]["tier1"][0]["id"], "example.whoami", "acme learned: {taught}");
    let after = tool_post(&gateway, "globex", &globex, "/select", query).await.json();
    assert_eq!(before["tools"], after["tools"], "globex's ranking is untouched");
}

#[tokio::test]
async fn an_integration_written_with_the_python_sdk_works_end_to_end() {
    let server = HttpServerProcess::python();
    let gateway = Gateway::start(CONFIG, &[]).await;
    let integration = register(&gateway, json!({"name": "py", "url": server.url, "auth": {"type": "oauth"}})).await;
    assert_eq!(integration["toolsDiscovered"], 5, "{integration}");
    let (_, key) = gateway.create_tenant(json!({"id": "acme", "name": "Acme", "plan": "pro"})).await;
    let credential = json!({"accessToken": "py-token-7", "expiresAt": "2099-01-01T00:00:00Z"});
    gateway.admin(Method::PUT, "/tenants/acme/oauth/py", Some(credential)).await.expect(200);
    let selected = tool_post(&gateway, "acme", &key, "/select", json!({"query": "echo some text back"})).await.json();
    assert_eq!(selected["tools"]["tier1"][0]["id"], "py.echo", "{selected}");
    let echoed =
        tool_post(&gateway, "acme", &key, "/invoke", json!({"toolId": "py.echo", "parameters": {"text": "hello"}}))
            .await;
    assert_eq!(text_of(&echoed.json()), "hello");
    let whoami = tool_post(&gateway, "acme", &key, "/invoke", json!({"toolId": "py.whoami"})).await;
    assert!(text_of(&whoami.json()).contains("Bearer py-token-7"), "{}", whoami.text);
    tool_post(&gateway, "acme", &key, "/invoke", json!({"toolId": "py.sleep", "parameters": {"ms": 3000}}))
        .await
        .expect_error(504, "upstream_timeout");
}

#[tokio::test]
async fn integrations_and_learning_survive_a_restart() {
    let server = HttpServerProcess::example(&[]);
    let mut gateway = Gateway::start(FAST, &[]).await;
    register(&gateway, json!({"name": "example", "url": server.url})).await;
    let (_, key) = gateway.create_tenant(json!({"id": "acme", "name": "Acme", "plan": "pro"})).await;
    for i in 0..8 {
        tool_post(
            &gateway,
            "acme",
            &key,
            "/feedback",
            json!({"query": format!("the monday routine {i}"), "toolIds": ["example.whoami"]}),
        )
        .await
        .expect(204);
    }
    gateway.restart().await;
    let listed = gateway.admin(Method::GET, "/integrations", None).await.json();
    assert_eq!(listed["integrations"][0]["toolsDiscovered"], 6);
    let selected = tool_post(&gateway, "acme", &key, "/select", json!({"query": "the monday routine"})).await.json();
    assert_eq!(selected["tools"]["tier1"][0]["id"], "example.whoami", "{selected}");
}

/// Tools often used together are shared between tenants only once enough of them agree: one
/// tenant hammering feedback for a pair changes no one else's ranking, three tenants do.
#[tokio::test]
async fn one_tenant_cannot_teach_co_usage_to_the_others_but_three_can() {
    let server = HttpServerProcess::example(&[]);
    // The defaults: a quorum of 3 tenants, 5 queries each at most.
    let gateway = Gateway::start(FAST, &[]).await;
    register(&gateway, json!({"name": "example", "url": server.url})).await;
    let mut keys = Vec::new();
    for id in ["mallory", "victim", "acme", "globex", "initech"] {
        keys.push((id, gateway.create_tenant(json!({"id": id, "name": id, "plan": "pro"})).await.1));
    }
    let [mallory, victim, honest @ ..] = keys.as_slice() else { unreachable!() };
    let ranking = || async {
        let selected = tool_post(&gateway, victim.0, &victim.1, "/select", json!({"query": "add two numbers"})).await;
        let body = selected.json();
        let tiers = ["tier1", "tier2", "tier3"]
            .iter()
            .flat_map(|tier| body["tools"][tier].as_array().cloned().unwrap_or_default());
        tiers.map(|tool| tool["id"].as_str().unwrap().to_string()).collect::<Vec<_>>()
    };
    let before = ranking().await;
    assert_eq!(before[0], "example.add", "{before:?}");
    assert!(!before.contains(&"example.whoami".to_string()), "{before:?}");
    let pair = |query: String| json!({"query": query, "toolIds": ["example.add", "example.whoami"]});

    for n in 0..40 {
        tool_post(&gateway, mallory.0, &mallory.1, "/feedback", pair(format!("sum it {n}"))).await.expect(204);
    }
    assert_eq!(ranking().await, before, "one tenant's feedback reached another's ranking");

    for (id, key) in honest {
        tool_post(&gateway, id, key, "/feedback", pair(format!("add up what {id} owes"))).await.expect(204);
    }
    let after = ranking().await;
    assert_eq!(after[0], "example.add", "{after:?}");
    assert!(after.contains(&"example.whoami".to_string()), "three tenants' co-usage is shared: {after:?}");
}

/// With `tools.embeddingModel` (CONNECTORS_TEST_EMBEDDING_MODEL, which `.ci/run` sets), a query
/// that shares no word with any tool still finds the one it means, once the catalog is embedded;
/// the log says selection ranks by meaning.
#[tokio::test]
async fn with_an_embedding_model_selection_finds_a_tool_by_meaning() {
    let Ok(model) = std::env::var("CONNECTORS_TEST_EMBEDDING_MODEL") else {
        println!(
            "skipped: CONNECTORS_TEST_EMBEDDING_MODEL not set (scripts/fetch-embedding-model.sh prints a directory for it)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("catalog.jsonl");
    let tool = |name: &str, description: &str| {
        json!({"name": name, "integration": "office", "description": description, "inputSchema": {"type": "object"}})
            .to_string()
    };
    let lines = [
        tool("getForecast", "Predicts sunshine, showers or snow over the coming days for a town."),
        tool("sendEmail", "Sends a message to a mailbox."),
        tool("createInvoice", "Bills a customer for goods sold."),
        tool("translateText", "Renders a passage in another language."),
    ];
    std::fs::write(&catalog, lines.join("\n")).unwrap();
    let server = HttpServerProcess::example(&["--catalog", catalog.to_str().unwrap()]);
    let gateway = Gateway::start(&format!("{CONFIG}  embeddingModel: {model}\n"), &[]).await;
    assert!(gateway.stderr_text().contains("ranks by meaning"), "{}", gateway.stderr_text());
    register(&gateway, json!({"name": "office", "url": server.url, "category": "office"})).await;
    let (_, key) = gateway.create_tenant(json!({"id": "acme", "name": "Acme", "plan": "pro"})).await;
    let query = json!({"query": "will it rain in Lisbon tomorrow?", "options": {"maxTools": 1}});
    // The tools are embedded in the background after discovery; until then they rank by words.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let selected = tool_post(&gateway, "acme", &key, "/select", query.clone()).await;
        selected.expect(200);
        let body = selected.json();
        if body["tools"]["tier1"][0]["id"] == "office.getForecast" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not found by meaning within 60 s: {body}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
