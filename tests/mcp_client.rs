//! The MCP client against real servers in real processes on loopback: the project's example server
//! (rmcp) over stdio and streamable HTTP, and a server written with the official Python SDK.
//!
//! The Python test installs `mcp<2` with pip when it is missing, and fails (never skips) when it
//! still cannot import it.

use std::sync::Arc;
use std::time::Duration;

use connectors::outbound::{CheckedHttp, OutboundPolicy};
use connectors::tools::mcp_client::{
    BearerToken, CallToolResult, McpConnection, McpError, McpPool, McpServer, StdioCommand, catalog_tools,
};
use mcp_servers::{HttpServerProcess, ensure_python_mcp_sdk, example_server_binary};
use serde_json::{Map, Value, json};
use tokio::time::Instant;

#[path = "common/mcp_servers.rs"]
mod mcp_servers;

const EXAMPLE_TOOLS: [&str; 6] = ["add", "echo", "exit", "fail", "sleep", "whoami"];

/// The client of a gateway whose operator allows its own loopback (where these servers run).
fn loopback_http() -> CheckedHttp {
    let policy = OutboundPolicy::new(false, &["127.0.0.1".into(), "localhost".into()]).unwrap();
    CheckedHttp::new(Arc::new(policy), reqwest::Client::builder()).expect("an HTTP client")
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(20)
}

fn arguments(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("arguments must be an object, not {other}"),
    }
}

fn text_of(result: &CallToolResult) -> String {
    result.content.iter().filter_map(|block| block.as_text()).map(|text| text.text.as_str()).collect()
}

/// What `whoami` saw in the `Authorization` header (`None` when there was none).
fn authorization_seen(result: &CallToolResult) -> Option<String> {
    let report: Value = serde_json::from_str(&text_of(result)).expect("whoami answers JSON");
    report["authorization"].as_str().map(str::to_owned)
}

// ---- the example server -------------------------------------------------------------------------

fn example_stdio(extra_args: &[&str]) -> McpServer {
    let mut args = vec!["--stdio"];
    args.extend_from_slice(extra_args);
    McpServer::Stdio(StdioCommand::new(example_server_binary()).args(args).working_dir(env!("CARGO_MANIFEST_DIR")))
}

async fn connect(server: &McpServer, token: Option<&BearerToken>) -> McpConnection {
    McpConnection::connect(server, token, &loopback_http(), soon()).await.expect("the client connects and initializes")
}

async fn assert_lists_every_example_tool(connection: &McpConnection) {
    let tools = connection.list_tools(soon()).await.expect("tools/list");
    let mut names: Vec<String> = tools.iter().map(|tool| tool.name.to_string()).collect();
    names.sort();
    assert_eq!(names, EXAMPLE_TOOLS);

    let catalog = catalog_tools("example", "testing", &tools);
    let add = catalog.iter().find(|tool| tool.id == "example.add").expect("add is in the catalog");
    assert_eq!(add.category, "testing");
    assert_eq!(add.description, "Adds two numbers and returns the sum");
    let mut parameters = add.parameters.clone();
    parameters.sort();
    assert_eq!(parameters, ["a", "b"]);
}

#[tokio::test]
async fn stdio_lists_every_tool_across_pages() {
    // Two tools a page: three `tools/list` requests joined by their cursors.
    let connection = connect(&example_stdio(&["--page-size", "2"]), None).await;
    assert_lists_every_example_tool(&connection).await;
    connection.close().await;
}

#[tokio::test]
async fn http_lists_every_tool_across_pages() {
    let process = HttpServerProcess::example(&["--page-size", "4"]);
    let connection = connect(&McpServer::http(&process.url), None).await;
    assert_lists_every_example_tool(&connection).await;
    connection.close().await;
}

#[tokio::test]
async fn stdio_calls_tools_and_carries_no_token() {
    let token = BearerToken::new("never-sent");
    let connection = connect(&example_stdio(&[]), Some(&token)).await;
    assert!(connection.protocol_version().is_some(), "initialize negotiated a version");

    let echoed = connection.call_tool("echo", arguments(json!({"text": "hello"})), soon()).await.expect("echo");
    assert_eq!((text_of(&echoed).as_str(), echoed.is_error), ("hello", Some(false)));
    let sum = connection.call_tool("add", arguments(json!({"a": 2, "b": 3.5})), soon()).await.expect("add");
    assert_eq!(text_of(&sum), "5.5");
    let whoami = connection.call_tool("whoami", Map::new(), soon()).await.expect("whoami");
    assert_eq!(authorization_seen(&whoami), None, "stdio has no HTTP request to carry a token");
    connection.close().await;
}

#[tokio::test]
async fn http_sends_the_bearer_token_on_every_request() {
    let process = HttpServerProcess::example(&[]);
    let token = BearerToken::new("tenant-access-token");
    let connection = connect(&McpServer::http(&process.url), Some(&token)).await;
    for _ in 0..2 {
        let whoami = connection.call_tool("whoami", Map::new(), soon()).await.expect("whoami");
        assert_eq!(authorization_seen(&whoami).as_deref(), Some("Bearer tenant-access-token"));
    }
    let anonymous = connect(&McpServer::http(&process.url), None).await;
    let whoami = anonymous.call_tool("whoami", Map::new(), soon()).await.expect("whoami");
    assert_eq!(authorization_seen(&whoami), None);
}

#[tokio::test]
async fn a_call_past_its_deadline_times_out_and_the_connection_survives() {
    for server in [None, Some(HttpServerProcess::example(&[]))] {
        let server = server.as_ref().map_or_else(|| example_stdio(&[]), |process| McpServer::http(&process.url));
        let connection = connect(&server, None).await;
        let started = Instant::now();
        let deadline = started + Duration::from_millis(300);
        let outcome = connection.call_tool("sleep", arguments(json!({"ms": 5_000})), deadline).await;
        assert_eq!(outcome, Err(McpError::Timeout), "{server}");
        assert!(started.elapsed() < Duration::from_secs(2), "the deadline, not the tool, ended the call");

        let echoed = connection.call_tool("echo", arguments(json!({"text": "still here"})), soon()).await;
        assert_eq!(text_of(&echoed.expect("the connection is still usable")), "still here", "{server}");
    }
}

#[tokio::test]
async fn a_deadline_already_past_times_out_the_handshake() {
    let outcome = McpConnection::connect(&example_stdio(&[]), None, &loopback_http(), Instant::now()).await;
    assert_eq!(outcome.map(|_| ()), Err(McpError::Timeout));
}

#[tokio::test]
async fn a_server_that_is_not_listening_is_unreachable() {
    // A port that was free a moment ago: nothing listens there now.
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).expect("a port");
    let server = McpServer::http(format!("http://127.0.0.1:{}/mcp", port.port()));
    let outcome = McpConnection::connect(&server, None, &loopback_http(), soon()).await;
    assert!(matches!(outcome, Err(McpError::Unreachable(_))), "{outcome:?}");

    let missing = McpServer::Stdio(StdioCommand::new("/nonexistent/mcp-server"));
    let outcome = McpConnection::connect(&missing, None, &loopback_http(), soon()).await;
    assert!(matches!(outcome, Err(McpError::Unreachable(_))), "{outcome:?}");
}

#[tokio::test]
async fn a_live_loopback_server_is_refused_unless_the_operator_allows_it() {
    let process = HttpServerProcess::example(&[]);
    let port = process.url.split(':').nth(2).and_then(|rest| rest.split('/').next()).expect("a port in the URL");
    let strict = CheckedHttp::new(Arc::new(OutboundPolicy::default()), reqwest::Client::builder()).unwrap();
    for url in
        [process.url.clone(), format!("http://localhost:{port}/mcp"), format!("http://[::ffff:127.0.0.1]:{port}/mcp")]
    {
        let outcome = McpConnection::connect(&McpServer::http(&url), None, &strict, soon()).await;
        let Err(McpError::Refused(refused)) = outcome else { panic!("{url}: {outcome:?}") };
        assert!(refused.to_string().contains("loopback"), "{refused}");
    }
    // The same server, allowed: the refusal was the policy, not the server.
    assert_lists_every_example_tool(&connect(&McpServer::http(&process.url), None).await).await;
}

#[tokio::test]
async fn tool_failures_are_surfaced() {
    let process = HttpServerProcess::example(&[]);
    for server in [example_stdio(&[]), McpServer::http(&process.url)] {
        let connection = connect(&server, None).await;
        // The tool ran and failed: a result with isError, as tools/invoke passes it on.
        let failed = connection.call_tool("fail", arguments(json!({"message": "boom"})), soon()).await;
        let failed = failed.expect("a tool's own failure is a result");
        assert_eq!((failed.is_error, text_of(&failed).as_str()), (Some(true), "boom"), "{server}");
        // The server refused the call itself.
        let unknown = connection.call_tool("no-such-tool", Map::new(), soon()).await;
        assert!(matches!(unknown, Err(McpError::ToolError { .. })), "{server}: {unknown:?}");
        // Arguments that do not fit the schema: rmcp reports that in-band, as the spec asks.
        let bad_arguments = connection.call_tool("add", arguments(json!({"a": "two"})), soon()).await;
        assert_eq!(bad_arguments.map(|result| result.is_error), Ok(Some(true)), "{server}");
    }
}

#[tokio::test]
async fn the_pool_reuses_a_connection_and_reconnects_after_it_broke() {
    let pool = McpPool::new(loopback_http());
    let server = example_stdio(&[]);
    let first = pool.connection(&server, None, soon()).await.expect("connects");
    let again = pool.connection(&server, None, soon()).await.expect("reuses");
    assert!(Arc::ptr_eq(&first, &again), "a live connection is reused");

    // The server process dies in the middle of a call.
    let outcome = pool.call_tool(&server, None, "exit", Map::new(), soon()).await;
    assert!(matches!(outcome, Err(McpError::Unreachable(_))), "{outcome:?}");

    let echoed = pool.call_tool(&server, None, "echo", arguments(json!({"text": "back"})), soon()).await;
    assert_eq!(text_of(&echoed.expect("the pool reconnected")), "back");
    let replacement = pool.connection(&server, None, soon()).await.expect("connected");
    assert!(!Arc::ptr_eq(&first, &replacement), "the broken connection was replaced");
    assert_eq!(pool.len(), 1);
}

#[tokio::test]
async fn the_pool_keeps_one_connection_per_token() {
    let process = HttpServerProcess::example(&[]);
    let server = McpServer::http(&process.url);
    let pool = McpPool::new(loopback_http());
    let (alice, bob) = (BearerToken::new("alice-token"), BearerToken::new("bob-token"));
    for (token, expected) in
        [(Some(&alice), Some("Bearer alice-token")), (Some(&bob), Some("Bearer bob-token")), (None, None)]
    {
        let whoami = pool.call_tool(&server, token, "whoami", Map::new(), soon()).await.expect("whoami");
        assert_eq!(authorization_seen(&whoami).as_deref(), expected);
    }
    let alice_connection = pool.connection(&server, Some(&alice), soon()).await.expect("alice's");
    let bob_connection = pool.connection(&server, Some(&bob), soon()).await.expect("bob's");
    assert!(!Arc::ptr_eq(&alice_connection, &bob_connection));
    assert_eq!(pool.len(), 3);

    let tools = pool.list_tools(&server, Some(&alice), soon()).await.expect("tools/list");
    assert_eq!(tools.len(), EXAMPLE_TOOLS.len());
    pool.remove_server(&server);
    assert!(pool.is_empty());
}

// ---- a server written with the official Python SDK ---------------------------------------------

#[tokio::test]
async fn python_sdk_server_lists_calls_and_sees_the_injected_token() {
    ensure_python_mcp_sdk();
    let process = HttpServerProcess::python();
    let token = BearerToken::new("python-tenant-token");
    let connection = connect(&McpServer::http(&process.url), Some(&token)).await;

    let tools = connection.list_tools(soon()).await.expect("tools/list");
    let mut names: Vec<String> = tools.iter().map(|tool| tool.name.to_string()).collect();
    names.sort();
    assert_eq!(names, ["add", "echo", "fail", "sleep", "whoami"]);
    let catalog = catalog_tools("python", "testing", &tools);
    let echo = catalog.iter().find(|tool| tool.id == "python.echo").expect("echo is in the catalog");
    assert_eq!(echo.parameters, ["text"]);

    let echoed = connection.call_tool("echo", arguments(json!({"text": "from rust"})), soon()).await.expect("echo");
    assert_eq!(text_of(&echoed), "from rust");
    let sum = connection.call_tool("add", arguments(json!({"a": 2, "b": 3})), soon()).await.expect("add");
    assert_eq!(text_of(&sum), "5.0");
    let whoami = connection.call_tool("whoami", Map::new(), soon()).await.expect("whoami");
    assert_eq!(authorization_seen(&whoami).as_deref(), Some("Bearer python-tenant-token"));

    let failed = connection.call_tool("fail", arguments(json!({"message": "python boom"})), soon()).await;
    let failed = failed.expect("a tool's own failure is a result");
    assert_eq!(failed.is_error, Some(true));
    assert!(text_of(&failed).contains("python boom"), "{failed:?}");

    let slow =
        connection.call_tool("sleep", arguments(json!({"ms": 5_000})), Instant::now() + Duration::from_millis(300));
    assert_eq!(slow.await, Err(McpError::Timeout));
    connection.close().await;
}
