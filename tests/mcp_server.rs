//! The gateway as an MCP server (`/mcp`), spoken to in raw HTTP: one session opened on one
//! node of a three-node cluster and used through the others, its errors as the specification
//! names them, sessions that belong to one tenant only, and the stateless 2026-07-28 revision.
//! The tools come from the project's example MCP server, registered as a shared integration.

#[path = "common/cluster.rs"]
mod cluster_common;
mod common;
#[path = "common/mcp_servers.rs"]
mod mcp_servers;
#[path = "common/redis_server.rs"]
mod redis_server;

use std::time::Duration;

use cluster_common::Cluster;
use common::{Gateway, Resp, eventually, send};
use mcp_servers::HttpServerProcess;
use reqwest::Method;
use serde_json::{Value, json};

const ACCEPT_BOTH: &str = "application/json, text/event-stream";

/// A POST to `/mcp` of `node` as `tenant` with `key`, with extra headers.
async fn mcp_post(node: &Gateway, tenant: &str, key: &str, headers: &[(&str, &str)], body: Value) -> Resp {
    let mut request = node
        .request(Method::POST, "/mcp")
        .header("X-Tenant-ID", tenant)
        .bearer_auth(key)
        .header("Accept", ACCEPT_BOTH)
        .json(&body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    send(request).await
}

fn initialize(id: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw-e2e", "version": "1"}}})
}

fn request(id: u64, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// Asserts a JSON-RPC error answer: the status, the code, and the request's id.
fn expect_rpc_error(response: &Resp, status: u16, code: i64) -> Value {
    assert_eq!(response.status, status, "unexpected status; body: {}", response.text);
    let body = response.json();
    assert_eq!(body["jsonrpc"], "2.0", "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    body
}

fn tool_names(list: &Value) -> Vec<String> {
    list["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_string()).collect()
}

async fn register_example(node: &Gateway, server: &HttpServerProcess) {
    node.admin(
        Method::POST,
        "/integrations",
        Some(json!({"name": "example", "url": server.url, "category": "testing"})),
    )
    .await
    .expect(201);
}

/// Every node lists the example tools to `tenant` (nodes pick up integrations on their own).
async fn wait_tools_everywhere(cluster: &Cluster, tenant: &str, key: &str) {
    for node in &cluster.nodes {
        eventually("every node to know the example integration", Duration::from_secs(20), || async {
            let listed =
                send(node.request(Method::GET, "/api/v1/tools").header("X-Tenant-ID", tenant).bearer_auth(key)).await;
            match listed.json()["total"].as_u64() {
                Some(6) => Ok(()),
                other => Err(format!("{other:?} tools")),
            }
        })
        .await;
    }
}

#[tokio::test]
async fn one_session_is_served_by_every_node_and_belongs_to_its_tenant() {
    let server = HttpServerProcess::example(&["--page-size", "4"]);
    let cluster = Cluster::start(3).await;
    let [a, b, c] = [&cluster.nodes[0], &cluster.nodes[1], &cluster.nodes[2]];
    register_example(a, &server).await;
    let acme = a.create_limited("acme", 1000).await;
    let globex = b.create_limited("globex", 1000).await;
    wait_tools_everywhere(&cluster, "acme", &acme).await;

    // initialize on node a.
    let opened = mcp_post(a, "acme", &acme, &[], initialize(1)).await;
    opened.expect(200);
    assert!(opened.header("x-ratelimit-limit").is_some(), "admitted like every tenant request");
    let session = opened.header("mcp-session-id").expect("initialize answers a session id");
    let result = &opened.json()["result"];
    assert_eq!(result["protocolVersion"], "2025-06-18");
    assert_eq!(result["capabilities"]["tools"]["listChanged"], true);
    assert_eq!(result["serverInfo"]["name"], "connectors-gateway");
    let in_session = [("mcp-session-id", session.as_str()), ("mcp-protocol-version", "2025-06-18")];

    // initialized on b, list on c, call on b.
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    mcp_post(b, "acme", &acme, &in_session, note).await.expect(202);
    let listed = mcp_post(c, "acme", &acme, &in_session, request(2, "tools/list", json!({}))).await;
    listed.expect(200);
    let listed = listed.json();
    assert_eq!(listed["id"], 2);
    let names = tool_names(&listed);
    assert_eq!(
        names,
        ["example.add", "example.echo", "example.exit", "example.fail", "example.sleep", "example.whoami"]
    );
    let add = &listed["result"]["tools"][0];
    assert_eq!(add["inputSchema"]["type"], "object", "{add}");
    assert!(add["description"].as_str().is_some_and(|d| !d.is_empty()));
    let sum = mcp_post(
        b,
        "acme",
        &acme,
        &in_session,
        request(3, "tools/call", json!({"name": "example.add", "arguments": {"a": 2, "b": 3.5}})),
    )
    .await;
    sum.expect(200);
    let sum = sum.json();
    assert_eq!(sum["result"]["content"][0]["text"], "5.5", "{sum}");
    assert_eq!(sum["result"]["isError"], false);
    let failed = mcp_post(
        a,
        "acme",
        &acme,
        &in_session,
        request(4, "tools/call", json!({"name": "example.fail", "arguments": {"message": "no"}})),
    )
    .await
    .json();
    assert_eq!(failed["result"]["isError"], true, "a tool's own failure is its result: {failed}");
    let ping = mcp_post(c, "acme", &acme, &in_session, request(5, "ping", json!({}))).await.json();
    assert_eq!(ping["result"], json!({}));

    // Errors, as the specification names them.
    let unknown =
        mcp_post(a, "acme", &acme, &in_session, request(6, "tools/call", json!({"name": "example.nothing"}))).await;
    assert_eq!(expect_rpc_error(&unknown, 200, -32602)["id"], 6);
    let no_method = mcp_post(a, "acme", &acme, &in_session, request(7, "resources/list", json!({}))).await;
    expect_rpc_error(&no_method, 200, -32601);
    let no_session =
        mcp_post(b, "acme", &acme, &[("mcp-protocol-version", "2025-06-18")], request(8, "tools/list", json!({})))
            .await;
    expect_rpc_error(&no_session, 400, -32600);
    let made_up = [("mcp-session-id", "0123456789abcdef0123456789abcdef")];
    expect_rpc_error(&mcp_post(c, "acme", &acme, &made_up, request(9, "tools/list", json!({}))).await, 404, -32001);
    let bad_version = [("mcp-session-id", session.as_str()), ("mcp-protocol-version", "1999-01-01")];
    let refused = mcp_post(a, "acme", &acme, &bad_version, request(10, "tools/list", json!({}))).await;
    let body = expect_rpc_error(&refused, 400, -32022);
    assert_eq!(body["error"]["data"]["requested"], "1999-01-01");
    let evil = [("mcp-session-id", session.as_str()), ("origin", "http://evil.example")];
    assert_eq!(mcp_post(b, "acme", &acme, &evil, request(11, "ping", json!({}))).await.status, 403);
    let garbage =
        send(c.request(Method::POST, "/mcp").header("X-Tenant-ID", "acme").bearer_auth(&acme).body("{not json")).await;
    expect_rpc_error(&garbage, 400, -32700);
    mcp_post(a, "acme", "ck_wrong", &in_session, request(12, "ping", json!({})))
        .await
        .expect_error(401, "unauthorized");
    mcp_post(a, "acme", &globex, &in_session, request(13, "ping", json!({})))
        .await
        .expect_error(403, "tenant_mismatch");
    let no_sse = send(
        c.request(Method::GET, "/mcp")
            .header("X-Tenant-ID", "acme")
            .bearer_auth(&acme)
            .header("mcp-session-id", &session)
            .header("accept", "application/json"),
    )
    .await;
    assert_eq!(no_sse.status, 406, "{}", no_sse.text);

    // Another tenant cannot use acme's session, even through the node that opened it.
    let stolen = mcp_post(a, "globex", &globex, &in_session, request(14, "tools/list", json!({}))).await;
    expect_rpc_error(&stolen, 404, -32001);
    let theirs = mcp_post(b, "globex", &globex, &[], initialize(15)).await;
    let theirs = theirs.header("mcp-session-id").unwrap();
    assert_ne!(theirs, session);
    let crossed = [("mcp-session-id", theirs.as_str())];
    expect_rpc_error(&mcp_post(c, "acme", &acme, &crossed, request(16, "ping", json!({}))).await, 404, -32001);

    // The call went the way of tools/invoke: audited as such, and billed.
    a.wait_audit("acme", "the MCP requests", |events| {
        events.iter().any(|e| e["action"] == "mcp.initialize")
            && events.iter().any(|e| e["action"] == "tools.invoke" && e["toolId"] == "example.add")
            && events.iter().any(|e| e["action"] == "mcp.tools.list")
    })
    .await;
    eventually("the invocations to be billed", Duration::from_secs(10), || async {
        let usage = c.admin(Method::GET, "/tenants/acme/usage", None).await.json();
        if usage["toolInvocations"].as_u64() >= Some(2) { Ok(()) } else { Err(usage.to_string()) }
    })
    .await;

    // DELETE ends it on every node.
    let ended = send(
        a.request(Method::DELETE, "/mcp")
            .header("X-Tenant-ID", "acme")
            .bearer_auth(&acme)
            .header("mcp-session-id", &session),
    )
    .await;
    assert_eq!(ended.status, 204, "{}", ended.text);
    for node in [a, b, c] {
        expect_rpc_error(
            &mcp_post(node, "acme", &acme, &in_session, request(17, "ping", json!({}))).await,
            404,
            -32001,
        );
    }
}

#[tokio::test]
async fn a_session_outlives_the_restart_of_every_node() {
    let server = HttpServerProcess::example(&[]);
    let mut cluster = Cluster::start(3).await;
    register_example(&cluster.nodes[0], &server).await;
    let acme = cluster.nodes[0].create_limited("acme", 1000).await;
    wait_tools_everywhere(&cluster, "acme", &acme).await;
    let opened = mcp_post(&cluster.nodes[1], "acme", &acme, &[], initialize(1)).await;
    let session = opened.header("mcp-session-id").unwrap();
    let in_session = [("mcp-session-id", session.as_str())];

    // A rolling restart: each node drains (handing its tenants off) and comes back.
    for i in 0..3 {
        cluster.nodes[i].restart().await;
        cluster.wait_converged(3, Duration::from_secs(30)).await;
        let other = &cluster.nodes[(i + 1) % 3];
        let call = request(2, "tools/call", json!({"name": "example.echo", "arguments": {"text": "still here"}}));
        let echoed = mcp_post(other, "acme", &acme, &in_session, call).await;
        echoed.expect(200);
        assert_eq!(echoed.json()["result"]["content"][0]["text"], "still here");
    }
}

#[tokio::test]
async fn the_number_of_sessions_of_a_tenant_is_bounded() {
    let gateway = Gateway::start(
        "gateway:\n  tickMillis: 100\n  flushIntervalMillis: 20\nmcp:\n  maxSessionsPerTenant: 2\n",
        &[],
    )
    .await;
    let key = gateway.create_limited("acme", 1000).await;
    let mut sessions = Vec::new();
    for id in 0..2 {
        sessions.push(mcp_post(&gateway, "acme", &key, &[], initialize(id)).await.header("mcp-session-id").unwrap());
    }
    let body = mcp_post(&gateway, "acme", &key, &[], initialize(3)).await.expect_error(403, "quota_exceeded");
    assert_eq!((body["quota"].clone(), body["limit"].clone()), (json!("mcpSessions"), json!(2)));
    let ended = send(
        gateway
            .request(Method::DELETE, "/mcp")
            .header("X-Tenant-ID", "acme")
            .bearer_auth(&key)
            .header("mcp-session-id", &sessions[0]),
    )
    .await;
    assert_eq!(ended.status, 204);
    mcp_post(&gateway, "acme", &key, &[], initialize(4)).await.expect(200);
}

/// The 2026-07-28 revision: no session; `server/discover`, then self-contained requests whose
/// routing headers must repeat the body.
#[tokio::test]
async fn stateless_requests_carry_their_version_and_routing_headers() {
    let server = HttpServerProcess::example(&[]);
    let gateway = Gateway::start(common::FAST, &[]).await;
    register_example(&gateway, &server).await;
    let key = gateway.create_limited("acme", 1000).await;
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {}, "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"}});
    let modern = |method: &'static str, name: Option<&'static str>| {
        let mut headers = vec![("mcp-protocol-version", "2026-07-28"), ("mcp-method", method)];
        if let Some(name) = name {
            headers.push(("mcp-name", name));
        }
        headers
    };

    let discovered = mcp_post(
        &gateway,
        "acme",
        &key,
        &modern("server/discover", None),
        request(1, "server/discover", json!({"_meta": meta})),
    )
    .await;
    discovered.expect(200);
    assert!(discovered.header("mcp-session-id").is_none(), "no sessions in this revision");
    let result = &discovered.json()["result"];
    assert!(result["supportedVersions"].as_array().unwrap().contains(&json!("2026-07-28")), "{result}");
    assert_eq!(result["resultType"], "complete");

    let listed =
        mcp_post(&gateway, "acme", &key, &modern("tools/list", None), request(2, "tools/list", json!({"_meta": meta})))
            .await;
    assert_eq!(tool_names(&listed.json()).len(), 6);
    let call = request(3, "tools/call", json!({"_meta": meta, "name": "example.add", "arguments": {"a": 1, "b": 1}}));
    let added = mcp_post(&gateway, "acme", &key, &modern("tools/call", Some("example.add")), call.clone()).await;
    assert_eq!(added.json()["result"]["content"][0]["text"], "2", "{}", added.text);

    // Headers that disagree with the body, or are missing; an envelope without its fields; an
    // unknown method.
    let missing_method = [("mcp-protocol-version", "2026-07-28"), ("mcp-name", "example.add")];
    expect_rpc_error(&mcp_post(&gateway, "acme", &key, &missing_method, call.clone()).await, 400, -32020);
    let wrong_method = modern("tools/list", Some("example.add"));
    expect_rpc_error(&mcp_post(&gateway, "acme", &key, &wrong_method, call.clone()).await, 400, -32020);
    let wrong_name = modern("tools/call", Some("example.echo"));
    expect_rpc_error(&mcp_post(&gateway, "acme", &key, &wrong_name, call).await, 400, -32020);
    let bare = mcp_post(&gateway, "acme", &key, &modern("tools/list", None), request(4, "tools/list", json!({}))).await;
    expect_rpc_error(&bare, 400, -32602);
    let unknown = mcp_post(
        &gateway,
        "acme",
        &key,
        &modern("nothing/here", None),
        request(5, "nothing/here", json!({"_meta": meta})),
    )
    .await;
    expect_rpc_error(&unknown, 404, -32601);
    let mut old = meta.clone();
    old["io.modelcontextprotocol/protocolVersion"] = json!("2025-06-18");
    let mismatch =
        mcp_post(&gateway, "acme", &key, &modern("tools/list", None), request(6, "tools/list", json!({"_meta": old})))
            .await;
    expect_rpc_error(&mismatch, 400, -32020);
}

/// The names of a `find_tools` answer, best first.
fn found_names(answer: &Resp) -> Vec<String> {
    let body = answer.json();
    let tools = body["result"]["structuredContent"]["tools"].as_array().cloned().unwrap_or_default();
    tools.iter().map(|tool| tool["name"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn the_tool_list_follows_the_tenants_listing_and_searches_through_mcp_teach_the_selector() {
    let server = HttpServerProcess::example(&[]);
    let gateway = Gateway::start(common::FAST, &[]).await;
    register_example(&gateway, &server).await;
    let numbers = json!({"name": "numbers", "url": server.url, "category": "math"});
    gateway.admin(Method::POST, "/integrations", Some(numbers)).await.expect(201);
    let key = gateway.create_limited("acme", 1000).await;
    let set_listing = |listing: Value| {
        let gateway = &gateway;
        async move {
            let updated = gateway.admin(Method::PATCH, "/tenants/acme", Some(json!({"mcp": listing}))).await;
            updated.expect(200);
            updated.json()["mcp"].clone()
        }
    };
    let opened = mcp_post(&gateway, "acme", &key, &[], initialize(1)).await;
    let session = opened.header("mcp-session-id").expect("a session");
    let in_session = [("mcp-session-id", session.as_str()), ("mcp-protocol-version", "2025-06-18")];
    let call = |id: u64, name: &str, arguments: Value| {
        request(id, "tools/call", json!({"name": name, "arguments": arguments}))
    };

    // Full, the default: both integrations' tools.
    let listed = mcp_post(&gateway, "acme", &key, &in_session, request(2, "tools/list", json!({}))).await;
    assert_eq!(tool_names(&listed.json()).len(), 12, "{}", listed.text);

    // Categories: only the math tools are listed, and only they can be called.
    let shown = set_listing(json!({"toolList": "categories", "categories": [" Math "]})).await;
    assert_eq!(shown, json!({"toolList": "categories", "categories": ["Math"]}));
    let listed = mcp_post(&gateway, "acme", &key, &in_session, request(3, "tools/list", json!({}))).await;
    let names = tool_names(&listed.json());
    assert_eq!(names.len(), 6, "{names:?}");
    assert!(names.iter().all(|name| name.starts_with("numbers.")), "{names:?}");
    let added = mcp_post(&gateway, "acme", &key, &in_session, call(4, "numbers.add", json!({"a": 2, "b": 2}))).await;
    assert_eq!(added.json()["result"]["content"][0]["text"], "4", "{}", added.text);
    let hidden = mcp_post(&gateway, "acme", &key, &in_session, call(5, "example.add", json!({"a": 2, "b": 2}))).await;
    let refused = expect_rpc_error(&hidden, 200, -32602);
    assert_eq!(refused["error"]["message"], "Unknown tool: example.add");

    // Listings that cannot be kept are refused, and the one kept stays.
    for bad in [
        json!({"toolList": "categories"}),
        json!({"toolList": "full", "categories": ["math"]}),
        json!({"toolList": "everything"}),
        json!({"toolList": "search", "extra": 1}),
    ] {
        let refused = gateway.admin(Method::PATCH, "/tenants/acme", Some(json!({"mcp": bad}))).await;
        refused.expect_error(400, "invalid_request");
    }
    let kept = gateway.admin(Method::GET, "/tenants/acme", None).await.json();
    assert_eq!(kept["mcp"]["toolList"], "categories", "{kept}");

    // Search: two meta-tools; find_tools ranks, call_tool calls what it found.
    set_listing(json!({"toolList": "search"})).await;
    let listed = mcp_post(&gateway, "acme", &key, &in_session, request(6, "tools/list", json!({}))).await;
    assert_eq!(tool_names(&listed.json()), ["find_tools", "call_tool"]);
    let found =
        mcp_post(&gateway, "acme", &key, &in_session, call(7, "find_tools", json!({"query": "add two numbers"}))).await;
    let names = found_names(&found);
    assert!((1..=5).contains(&names.len()), "five tools at most unless asked for more: {names:?}");
    assert!(names[0].ends_with(".add"), "{names:?}");
    let first = &found.json()["result"]["structuredContent"]["tools"][0];
    assert_eq!(first["inputSchema"]["type"], "object", "{first}");
    let selection = found.json()["result"]["structuredContent"]["selectionId"].as_str().unwrap().to_string();
    let through =
        call(8, "call_tool", json!({"name": names[0], "arguments": {"a": 20, "b": 22}, "selectionId": selection}));
    let called = mcp_post(&gateway, "acme", &key, &in_session, through).await;
    assert_eq!(called.json()["result"]["content"][0]["text"], "42", "{}", called.text);
    // Arguments a model got wrong come back as a tool error it can read and correct.
    let wrong = mcp_post(&gateway, "acme", &key, &in_session, call(9, "find_tools", json!({"query": 3}))).await;
    assert_eq!(wrong.json()["result"]["isError"], true, "{}", wrong.text);
    let foreign = call(10, "call_tool", json!({"name": "example.echo", "selectionId": "sel_bogus"}));
    let wrong = mcp_post(&gateway, "acme", &key, &in_session, foreign).await;
    assert_eq!(wrong.json()["result"]["isError"], true, "{}", wrong.text);

    // A routine the selector has never seen: tools called through call_tool with the selection
    // that found them become its answer, for MCP clients and for tools/select alike.
    let routine = "the friday wrap-up";
    let first_found =
        mcp_post(&gateway, "acme", &key, &in_session, call(11, "find_tools", json!({"query": routine}))).await;
    assert_ne!(found_names(&first_found).first().map(String::as_str), Some("example.whoami"));
    for i in 0..8 {
        let query = json!({"query": format!("{routine} {i}")});
        let found = mcp_post(&gateway, "acme", &key, &in_session, call(20 + i, "find_tools", query)).await;
        let selection = found.json()["result"]["structuredContent"]["selectionId"].as_str().unwrap().to_string();
        let through = call(40 + i, "call_tool", json!({"name": "example.whoami", "selectionId": selection}));
        let called = mcp_post(&gateway, "acme", &key, &in_session, through).await;
        assert_ne!(called.json()["result"]["isError"], true, "{}", called.text);
    }
    let learned =
        mcp_post(&gateway, "acme", &key, &in_session, call(60, "find_tools", json!({"query": routine}))).await;
    assert_eq!(found_names(&learned).first().map(String::as_str), Some("example.whoami"), "{}", learned.text);
    let selected = send(
        gateway
            .request(Method::POST, "/api/v1/tools/select")
            .header("X-Tenant-ID", "acme")
            .bearer_auth(&key)
            .json(&json!({"query": routine})),
    )
    .await;
    assert_eq!(selected.json()["tools"]["tier1"][0]["id"], "example.whoami", "{}", selected.text);
    // Each find_tools is audited as a selection.
    let audited = gateway.audit_events("acme", &[("action", "tools.select")]).await;
    assert!(audited.len() >= 11, "{} selections audited", audited.len());
}
