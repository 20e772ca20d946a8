//! The official MCP client SDKs against the gateway's MCP endpoint on a three-node cluster,
//! through a round-robin load balancer, so that one session's requests are served by different
//! nodes: the Python SDK (`mcp` 2.3.0, PyPI) and the TypeScript SDK
//! (`@modelcontextprotocol/sdk` 1.32.2, npm). Each is installed on first use into a cache outside
//! the repository (see `common/cached_packages.rs`); the test fails, never skips, when that is
//! impossible. The client scripts are in `tests/mcp_clients/`.

#[path = "common/cached_packages.rs"]
mod cached_packages;
#[path = "common/cluster.rs"]
mod cluster_common;
mod common;
#[path = "common/mcp_servers.rs"]
mod mcp_servers;
#[path = "common/redis_server.rs"]
mod redis_server;
#[path = "common/round_robin_proxy.rs"]
mod round_robin_proxy;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use cluster_common::Cluster;
use common::{Gateway, eventually, send};
use mcp_servers::HttpServerProcess;
use reqwest::Method;
use round_robin_proxy::RoundRobinProxy;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

const PYTHON_SDK: &str = "mcp==2.3.0";
const TYPESCRIPT_SDK: &str = "@modelcontextprotocol/sdk@1.32.2";

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp_clients")
}

fn python() -> PathBuf {
    cached_packages::python_venv("mcp-2.3.0", &[PYTHON_SDK], "import mcp.client.client, httpx2").join("bin/python")
}

fn typescript_node_modules() -> PathBuf {
    cached_packages::npm_packages("mcp-sdk-1.32.2", &[TYPESCRIPT_SDK], "@modelcontextprotocol/sdk/package.json")
        .join("node_modules")
}

/// A client script: JSON lines out, a line in when the test has done its part.
struct ScriptClient {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl ScriptClient {
    fn spawn(command: &mut Command) -> Self {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("the client script starts");
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Self { child, stdin, lines }
    }

    /// The next line, which must be event `event`.
    async fn expect(&mut self, event: &str) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(120), self.lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("no `{event}` from the client within 120 s"))
            .expect("read the client's output");
        let Some(line) = line else {
            let status = self.child.wait().await.expect("the client's exit status");
            panic!("the client exited ({status}) before `{event}`");
        };
        let value: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert_eq!(value["event"], event, "unexpected event: {value}");
        value
    }

    async fn go_on(&mut self) {
        self.stdin.write_all(b"go\n").await.expect("write to the client");
        self.stdin.flush().await.unwrap();
    }

    async fn finished(mut self) {
        self.expect("done").await;
        let status = self.child.wait().await.expect("the client's exit status");
        assert!(status.success(), "the client exited with {status}");
    }
}

async fn register(node: &Gateway, name: &str, server: &HttpServerProcess) {
    node.admin(Method::POST, "/integrations", Some(json!({"name": name, "url": server.url, "category": "testing"})))
        .await
        .expect(201);
}

/// Every node lists `count` tools to `tenant`.
async fn wait_tool_count(cluster: &Cluster, tenant: &str, key: &str, count: u64) {
    for node in &cluster.nodes {
        eventually("every node to know the integrations", Duration::from_secs(20), || async {
            let listed =
                send(node.request(Method::GET, "/api/v1/tools").header("X-Tenant-ID", tenant).bearer_auth(key)).await;
            match listed.json()["total"].as_u64() {
                Some(n) if n == count => Ok(()),
                other => Err(format!("{other:?} tools")),
            }
        })
        .await;
    }
}

fn names(event: &Value) -> Vec<String> {
    event["names"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_string()).collect()
}

/// One session through the load balancer: initialize, list and call, then the tenant's tools
/// change twice while the session's stream is open, the second time after the node serving the
/// stream was restarted; the client reconnects with `Last-Event-ID` and is told.
async fn one_session_across_nodes(client_command: impl Fn(&str, &str, &str) -> Command) {
    let example = HttpServerProcess::example(&[]);
    let second = HttpServerProcess::example(&[]);
    let mut cluster = Cluster::start(3).await;
    register(&cluster.nodes[0], "example", &example).await;
    let key = cluster.nodes[1].create_limited("acme", 10_000).await;
    let other = cluster.nodes[2].create_limited("globex", 10_000).await;
    wait_tool_count(&cluster, "acme", &key, 6).await;
    let proxy = RoundRobinProxy::start(cluster.nodes.iter().map(|node| node.url("")).collect()).await;

    let mut client = ScriptClient::spawn(&mut client_command(&format!("{}/mcp", proxy.url), "acme", &key));
    assert_eq!(client.expect("initialized").await["protocolVersion"], "2025-11-25");
    let listed = client.expect("tools").await;
    assert!(names(&listed).contains(&"example.add".to_string()), "{listed}");
    assert_eq!(client.expect("called").await, json!({"event": "called", "text": "5", "isError": false}));

    // The tools change while the session's stream is open.
    client.expect("waiting").await;
    eventually("the session's GET stream", Duration::from_secs(20), || async {
        if proxy.served().iter().any(|s| s.http_method == "GET") { Ok(()) } else { Err("no GET yet".to_string()) }
    })
    .await;
    register(&cluster.nodes[2], "second", &second).await;
    client.go_on().await;
    assert_eq!(client.expect("list_changed").await["count"], 1);

    // The node serving the stream restarts; the tools change again meanwhile.
    client.expect("waiting").await;
    let stream_node = proxy.served().iter().rev().find(|s| s.http_method == "GET").unwrap().node;
    let before_restart = proxy.served().len();
    cluster.nodes[stream_node].restart().await;
    proxy.set_backend(stream_node, cluster.nodes[stream_node].url(""));
    cluster.wait_converged(3, Duration::from_secs(30)).await;
    cluster.nodes[0].admin(Method::DELETE, "/integrations/second", None).await.expect(204);
    // Nodes reload shared integrations on their own schedule: the list below may go to any node.
    wait_tool_count(&cluster, "acme", &key, 6).await;
    client.go_on().await;
    assert_eq!(client.expect("list_changed").await["count"], 2);
    // The proxy's round robin may send the reconnect to the restarted node itself: either way the
    // session and its event log come from the tenant's owner, not from the node's memory.
    proxy.served()[before_restart..]
        .iter()
        .find(|s| s.http_method == "GET" && s.last_event_id.is_some())
        .expect("the client reopened its stream with Last-Event-ID");

    let listed = client.expect("tools").await;
    assert!(names(&listed).iter().all(|name| !name.starts_with("second.")), "{listed}");
    assert_eq!(client.expect("called").await["text"], "42");
    client.finished().await;

    // The session's requests were served by more than one node.
    let posts: BTreeSet<usize> = proxy
        .served()
        .iter()
        .filter(|s| s.http_method == "POST" && s.rpc_method.as_deref() != Some("initialize"))
        .map(|s| s.node)
        .collect();
    assert!(posts.len() >= 2, "{:?}", proxy.served());
    let opened_on = proxy.served().iter().find(|s| s.rpc_method.as_deref() == Some("initialize")).unwrap().node;
    assert!(posts.iter().any(|node| *node != opened_on), "{:?}", proxy.served());

    // Another tenant's key sees none of it.
    let audit = cluster.nodes[0].audit_events("acme", &[("action", "tools.invoke")]).await;
    assert!(audit.len() >= 2, "the SDK's calls went the way of tools/invoke: {audit:?}");
    assert!(cluster.nodes[0].audit_events("globex", &[("action", "tools.invoke")]).await.is_empty());
    drop(other);
}

#[tokio::test]
async fn python_sdk_session_across_nodes() {
    let python = python();
    one_session_across_nodes(|url, tenant, key| {
        let mut command = Command::new(&python);
        command.arg(clients_dir().join("python_client.py")).args(["session", url, tenant, key]);
        command
    })
    .await;
}

#[tokio::test]
async fn python_sdk_stateless_revision() {
    let python = python();
    let example = HttpServerProcess::example(&[]);
    let gateway = Gateway::start(common::FAST, &[]).await;
    register(&gateway, "example", &example).await;
    let key = gateway.create_limited("acme", 1000).await;
    let url = gateway.url("/mcp");
    let mut client = ScriptClient::spawn(Command::new(&python).arg(clients_dir().join("python_client.py")).args([
        "stateless",
        &url,
        "acme",
        &key,
    ]));
    assert_eq!(client.expect("adopted").await["protocolVersion"], "2026-07-28");
    assert_eq!(names(&client.expect("tools").await).len(), 6);
    assert_eq!(client.expect("called").await["text"], "3");
    client.finished().await;
}

#[tokio::test]
async fn typescript_sdk_session_across_nodes() {
    let node_modules = typescript_node_modules();
    one_session_across_nodes(|url, tenant, key| {
        let mut command = Command::new("node");
        command
            .arg(clients_dir().join("typescript_client.cjs"))
            .args(["session", url, tenant, key])
            .env("MCP_SDK_NODE_MODULES", &node_modules);
        command
    })
    .await;
}
