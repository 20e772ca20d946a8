//! End-to-end tests of tenants' own MCP servers (`/api/v1/mcp/servers`): the real binary, the
//! project's example MCP server over streamable HTTP and as an allow-listed stdio child process.
//!
//! A `stdio` command that is not on the operator's allow-list is accepted (202) and its
//! deployment then fails (`status: failed`, `error` naming the allow-list): the allow-list is
//! the deployer's policy, checked where the process would run, and the API answers before
//! the deployment starts.

mod common;
#[path = "common/mcp_servers.rs"]
mod mcp_servers;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{FAST, Gateway, free_port, send};
use mcp_servers::{HttpServerProcess, example_server_binary, example_server_for_anyone};
use reqwest::Method;
use serde_json::{Value, json};

async fn servers(
    gateway: &Gateway,
    tenant: &str,
    key: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> common::Resp {
    let mut request =
        gateway.request(method, &format!("/api/v1/mcp/servers{path}")).header("X-Tenant-ID", tenant).bearer_auth(key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    send(request).await
}

async fn create(gateway: &Gateway, tenant: &str, key: &str, body: Value) -> common::Resp {
    servers(gateway, tenant, key, Method::POST, "", Some(body)).await
}

async fn server(gateway: &Gateway, tenant: &str, key: &str, name: &str) -> common::Resp {
    servers(gateway, tenant, key, Method::GET, &format!("/{name}"), None).await
}

/// Polls the server until `done` holds for its view (up to `within`); returns the view.
async fn wait_for(
    gateway: &Gateway,
    tenant: &str,
    key: &str,
    name: &str,
    within: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let response = server(gateway, tenant, key, name).await;
        let view = if response.status == 200 { response.json() } else { json!({"httpStatus": response.status}) };
        if done(&view) {
            return view;
        }
        assert!(Instant::now() < deadline, "server `{name}` never got there; last: {view}\n{}", gateway.stderr_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_ready(gateway: &Gateway, tenant: &str, key: &str, name: &str) -> Value {
    wait_for(gateway, tenant, key, name, Duration::from_secs(30), |view| view["status"] == "ready").await
}

async fn tool_ids(gateway: &Gateway, tenant: &str, key: &str) -> Vec<String> {
    let request =
        gateway.request(Method::GET, "/api/v1/tools?limit=1000").header("X-Tenant-ID", tenant).bearer_auth(key);
    let listed = send(request).await;
    listed.expect(200);
    listed.json()["tools"].as_array().unwrap().iter().map(|tool| tool["id"].as_str().unwrap().to_string()).collect()
}

async fn invoke(gateway: &Gateway, tenant: &str, key: &str, tool: &str, parameters: Value) -> common::Resp {
    let request = gateway
        .request(Method::POST, "/api/v1/tools/invoke")
        .header("X-Tenant-ID", tenant)
        .bearer_auth(key)
        .json(&json!({"toolId": tool, "parameters": parameters}));
    send(request).await
}

fn text_of(answer: &Value) -> String {
    answer["result"]["content"].as_array().unwrap().iter().filter_map(|c| c["text"].as_str()).collect()
}

/// Lets `command --stdio` run, with servers' directories under `work_dir`.
fn allow_list_config(command: &str, work_dir: &Path) -> String {
    format!(
        "{FAST}deployer:\n  workDir: \"{}\"\n  allowedCommands:\n    - command: \"{command}\"\n      args: [\"--stdio\"]\n",
        work_dir.display()
    )
}

/// A directory for servers' working directories that the children's user can traverse.
fn work_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new().prefix("connectors-servers-").tempdir_in(std::env::temp_dir()).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    dir
}

#[tokio::test]
async fn an_http_server_goes_ready_serves_only_its_tenant_and_is_deleted() {
    let upstream = HttpServerProcess::example(&[]);
    let gateway = Gateway::start(FAST, &[]).await;
    let (_, acme) = gateway.create_tenant(json!({"id": "acme", "name": "Acme", "plan": "pro"})).await;
    let (_, globex) = gateway.create_tenant(json!({"id": "globex", "name": "Globex", "plan": "pro"})).await;

    let body = json!({"name": "notes", "category": "productivity", "source": {"type": "http", "url": upstream.url}});
    let accepted = create(&gateway, "acme", &acme, body.clone()).await;
    accepted.expect(202);
    let accepted = accepted.json();
    assert_eq!(accepted["name"], "notes");
    assert_eq!(accepted["status"], "pending");
    assert_eq!(accepted["namespace"], "tenant-acme");
    assert!(accepted["deploymentId"].as_str().is_some_and(|id| !id.is_empty()), "{accepted}");

    let ready = wait_ready(&gateway, "acme", &acme, "notes").await;
    assert_eq!(ready["toolsDiscovered"], 6, "{ready}");
    assert_eq!(ready["endpoint"], upstream.url.as_str());
    assert_eq!(ready["source"]["type"], "http");
    assert_eq!(ready["category"], "productivity");
    assert!(ready["createdAt"].is_string() && ready.get("error").is_none(), "{ready}");
    let listed = servers(&gateway, "acme", &acme, Method::GET, "", None).await.json();
    assert_eq!(listed["servers"].as_array().unwrap().len(), 1);
    assert_eq!(listed["servers"][0]["name"], "notes");

    // The owner sees and calls the tools; another tenant neither.
    assert!(tool_ids(&gateway, "acme", &acme).await.contains(&"notes.echo".to_string()));
    assert!(!tool_ids(&gateway, "globex", &globex).await.iter().any(|id| id.starts_with("notes.")));
    let owner_calls = |metrics: &str, call| common::metric(metrics, "connectors_owner_calls_total", &[("call", call)]);
    let before = gateway.metrics_text().await;
    let answer = invoke(&gateway, "acme", &acme, "notes.echo", json!({"text": "hello"})).await;
    answer.expect(200);
    // The invocation cost acme's owner one call: the admission answered the server's record and
    // charged it.
    let after = gateway.metrics_text().await;
    for call in ["get_server", "charge"] {
        assert_eq!(owner_calls(&before, call), owner_calls(&after, call), "{call}: {after}");
    }
    assert!(text_of(&answer.json()).contains("hello"), "{}", answer.text);
    invoke(&gateway, "globex", &globex, "notes.echo", json!({"text": "x"})).await.expect_error(404, "not_found");
    let usage = gateway.admin(Method::GET, "/tenants/acme/usage", None).await.json();
    assert_eq!(usage["toolInvocations"], 1, "{usage}");
    let theirs = servers(&gateway, "globex", &globex, Method::GET, "", None).await.json();
    assert_eq!(theirs["servers"], json!([]));
    server(&gateway, "globex", &globex, "notes").await.expect_error(404, "not_found");
    servers(&gateway, "globex", &globex, Method::DELETE, "/notes", None).await.expect_error(404, "not_found");

    // A second server of the same name is a conflict.
    create(&gateway, "acme", &acme, body).await.expect_error(409, "conflict");

    let deleting = servers(&gateway, "acme", &acme, Method::DELETE, "/notes", None).await;
    deleting.expect(202);
    assert_eq!(deleting.json()["status"], "deleting");
    wait_for(&gateway, "acme", &acme, "notes", Duration::from_secs(10), |view| view["httpStatus"] == 404).await;
    assert!(!tool_ids(&gateway, "acme", &acme).await.iter().any(|id| id.starts_with("notes.")));
    invoke(&gateway, "acme", &acme, "notes.echo", json!({"text": "x"})).await.expect_error(404, "not_found");

    let events = gateway
        .wait_audit("acme", "create and delete", |events| {
            ["mcp.servers.create", "mcp.servers.delete"]
                .iter()
                .all(|action| events.iter().any(|event| event["action"] == *action && event["result"] == "success"))
        })
        .await;
    assert!(!events.is_empty());
}

#[tokio::test]
async fn a_stdio_server_on_the_allow_list_runs_and_one_off_the_list_fails() {
    let binary = example_server_for_anyone().to_str().unwrap().to_string();
    let work = work_dir();
    let mut gateway = Gateway::start(&allow_list_config(&binary, work.path()), &[]).await;
    let (_, acme) = gateway.create_tenant(json!({"id": "acme", "name": "Acme", "plan": "pro"})).await;

    let body = json!({"name": "local", "category": "testing", "source": {"type": "stdio", "command": binary, "args": ["--stdio"]}});
    create(&gateway, "acme", &acme, body).await.expect(202);
    let ready = wait_ready(&gateway, "acme", &acme, "local").await;
    assert_eq!((ready["toolsDiscovered"].as_u64(), ready["endpoint"].as_str()), (Some(6), Some("stdio")), "{ready}");
    let answer = invoke(&gateway, "acme", &acme, "local.add", json!({"a": 2, "b": 3})).await;
    answer.expect(200);
    assert!(text_of(&answer.json()).contains('5'), "{}", answer.text);
    // A second call reuses the session over the same pipes.
    invoke(&gateway, "acme", &acme, "local.echo", json!({"text": "again"})).await.expect(200);

    let refused = json!({"name": "shell", "category": "x", "source": {"type": "stdio", "command": "/bin/sh", "args": ["-c", "true"]}});
    create(&gateway, "acme", &acme, refused).await.expect(202);
    let failed =
        wait_for(&gateway, "acme", &acme, "shell", Duration::from_secs(10), |view| view["status"] == "failed").await;
    assert!(failed["error"].as_str().is_some_and(|error| error.contains("allow-list")), "{failed}");

    // After a restart the stdio server runs again and its tools are back in the catalog.
    gateway.restart().await;
    let ready = wait_ready(&gateway, "acme", &acme, "local").await;
    assert_eq!(ready["toolsDiscovered"], 6, "{ready}");
    invoke(&gateway, "acme", &acme, "local.echo", json!({"text": "after restart"})).await.expect(200);

    servers(&gateway, "acme", &acme, Method::DELETE, "/local", None).await.expect(202);
    wait_for(&gateway, "acme", &acme, "local", Duration::from_secs(10), |view| view["httpStatus"] == 404).await;
    invoke(&gateway, "acme", &acme, "local.echo", json!({"text": "x"})).await.expect_error(404, "not_found");
    servers(&gateway, "acme", &acme, Method::DELETE, "/shell", None).await.expect(202);
    wait_for(&gateway, "acme", &acme, "shell", Duration::from_secs(10), |view| view["httpStatus"] == 404).await;

    // Deleting the tenant stops its servers (the deployer removes each one's directory).
    let body =
        json!({"name": "kept", "category": "x", "source": {"type": "stdio", "command": binary, "args": ["--stdio"]}});
    create(&gateway, "acme", &acme, body).await.expect(202);
    wait_ready(&gateway, "acme", &acme, "kept").await;
    let dirs = || std::fs::read_dir(work.path()).unwrap().count();
    assert_eq!(dirs(), 1, "the server's working directory");
    gateway.admin(Method::DELETE, "/tenants/acme", None).await.expect(204);
    assert_eq!(dirs(), 0, "the deleted tenant's server was stopped and its directory removed");
}

#[tokio::test]
async fn refusals_unsupported_sources_clashes_quota_and_feature() {
    let upstream = HttpServerProcess::example(&[]);
    let gateway = Gateway::start(FAST, &[]).await;
    let registered =
        gateway.admin(Method::POST, "/integrations", Some(json!({"name": "shared", "url": upstream.url}))).await;
    registered.expect(201);
    let (_, acme) = gateway
        .create_tenant(json!({"id": "acme", "name": "Acme", "plan": "pro", "limits": {"maxCustomServers": 1}}))
        .await;
    let http = |name: &str| json!({"name": name, "category": "x", "source": {"type": "http", "url": upstream.url}});

    let github =
        json!({"name": "gh", "category": "x", "source": {"type": "github", "url": "https://github.com/acme/server"}});
    create(&gateway, "acme", &acme, github).await.expect_error(422, "deployer_unavailable");
    let docker = json!({"name": "img", "category": "x", "source": {"type": "docker", "image": "acme/server:1"}});
    create(&gateway, "acme", &acme, docker).await.expect_error(422, "deployer_unavailable");
    create(&gateway, "acme", &acme, http("shared")).await.expect_error(409, "conflict");
    create(&gateway, "acme", &acme, http("Bad.Name")).await.expect_error(400, "invalid_request");
    let no_url = json!({"name": "nourl", "category": "x", "source": {"type": "http"}});
    create(&gateway, "acme", &acme, no_url).await.expect_error(400, "invalid_request");

    create(&gateway, "acme", &acme, http("one")).await.expect(202);
    let over = create(&gateway, "acme", &acme, http("two")).await.expect_error(403, "quota_exceeded");
    assert_eq!(
        (over["quota"].as_str(), over["limit"].as_u64(), over["used"].as_u64()),
        (Some("maxCustomServers"), Some(1), Some(1)),
        "{over}"
    );

    // The free plan has the feature off.
    let (_, free) = gateway.create_tenant(json!({"id": "freebie", "name": "Free", "plan": "free"})).await;
    create(&gateway, "freebie", &free, http("mine")).await.expect_error(403, "feature_disabled");
    servers(&gateway, "freebie", &free, Method::GET, "", None).await.expect_error(403, "feature_disabled");
}

#[tokio::test]
async fn a_deployment_interrupted_by_a_restart_resumes_and_gets_ready() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/mcp");
    let mut gateway = Gateway::start(FAST, &[]).await;
    let (_, acme) = gateway.create_tenant(json!({"id": "acme", "name": "Acme", "plan": "pro"})).await;
    let body = json!({"name": "later", "category": "x", "source": {"type": "http", "url": url}});
    create(&gateway, "acme", &acme, body).await.expect(202);
    // Nothing listens yet: the first attempt fails and the deployment waits to retry.
    let waiting = wait_for(&gateway, "acme", &acme, "later", Duration::from_secs(10), |view| {
        view["status"] == "deploying" && view["error"].is_string()
    })
    .await;
    assert!(waiting["error"].as_str().unwrap().contains("discovery"), "{waiting}");

    // The server comes up while the gateway is down: only the resumed deployment can find it.
    let status = gateway.stop_graceful().await;
    assert_eq!(status.code(), Some(0));
    let _upstream =
        HttpServerProcess::start(Command::new(example_server_binary()).args(["--http", &format!("127.0.0.1:{port}")]));
    gateway.start_again().await;
    let ready = wait_ready(&gateway, "acme", &acme, "later").await;
    assert_eq!(ready["toolsDiscovered"], 6, "{ready}");
    invoke(&gateway, "acme", &acme, "later.echo", json!({"text": "resumed"})).await.expect(200);
}

#[tokio::test]
async fn servers_keep_serving_after_the_tenant_was_idle() {
    let upstream = HttpServerProcess::example(&[]);
    let binary = example_server_for_anyone().to_str().unwrap().to_string();
    let work = work_dir();
    // `passivateAfterSeconds` belongs to `gateway:`, which FAST opens.
    let config = allow_list_config(&binary, work.path()).replacen(
        "flushIntervalMillis: 20\n",
        "flushIntervalMillis: 20\n  passivateAfterSeconds: 1\n",
        1,
    );
    let gateway = Gateway::start(&config, &[]).await;
    let (_, acme) = gateway.create_tenant(json!({"id": "acme", "name": "Acme", "plan": "pro"})).await;
    let http = json!({"name": "remote", "category": "x", "source": {"type": "http", "url": upstream.url}});
    let stdio =
        json!({"name": "local", "category": "x", "source": {"type": "stdio", "command": binary, "args": ["--stdio"]}});
    create(&gateway, "acme", &acme, http).await.expect(202);
    create(&gateway, "acme", &acme, stdio).await.expect(202);
    wait_ready(&gateway, "acme", &acme, "remote").await;
    wait_ready(&gateway, "acme", &acme, "local").await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    invoke(&gateway, "acme", &acme, "remote.echo", json!({"text": "idle"})).await.expect(200);
    invoke(&gateway, "acme", &acme, "local.echo", json!({"text": "idle"})).await.expect(200);
}

/// An operator allow-listed a shell with any script (a careless template); a tenant's script tries
/// to read the gateway's master key, its secrets and its environment before it starts a server.
#[tokio::test]
async fn a_stdio_server_cannot_read_the_gateways_keys_or_environment() {
    use std::os::unix::fs::PermissionsExt;
    let binary = example_server_for_anyone().to_str().unwrap().to_string();
    let work = work_dir();
    let config = format!(
        "{FAST}deployer:\n  workDir: \"{}\"\n  allowedCommands:\n    - command: /bin/sh\n      args: [\"-c\", \"*\"]\n",
        work.path().display()
    );
    // Servers' stderr is logged at debug level.
    let gateway = Gateway::start(&config, &[("RUST_LOG", "info,connectors::backends::local_deployer=debug")]).await;
    let (_, acme) = gateway.create_tenant(json!({"id": "acme", "name": "Acme", "plan": "pro"})).await;
    // Something stored under the master key.
    let credential = json!({"accessToken": "at-secret-7", "scopes": ["repo"]});
    gateway.admin(Method::PUT, "/tenants/acme/oauth/github", Some(credential)).await.expect(200);

    let data = gateway.data_dir();
    let targets = [
        data.join("master.key"),
        data.join("secrets.redb"),
        data.join("connectors.redb"),
        "/proc/$PPID/environ".into(),
    ];
    let probes: String = targets
        .iter()
        .map(|target| {
            let target = target.display();
            format!("if cat {target} >/dev/null 2>&1; then echo PROBE-READ {target} >&2; else echo PROBE-DENIED {target} >&2; fi; ")
        })
        .collect();
    let script = format!("{probes}exec {binary} --stdio");
    let body = json!({"name": "probe", "category": "x", "source": {"type": "stdio", "command": "/bin/sh", "args": ["-c", script]}});
    create(&gateway, "acme", &acme, body).await.expect(202);
    wait_ready(&gateway, "acme", &acme, "probe").await;

    // Whatever user runs the gateway, nothing in the data dir is open to others.
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    for file in ["master.key", "secrets.redb", "connectors.redb"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }

    let log = gateway.stderr_text();
    if rustix::process::geteuid().is_root() {
        // Run as root, the gateway starts the server as nobody: every probe is refused.
        assert_eq!(log.matches("PROBE-DENIED").count(), targets.len(), "{log}");
        assert!(!log.contains("PROBE-READ"), "{log}");
    } else {
        // Another user cannot change its children's user; it says so when it starts.
        assert!(log.contains("stdio servers run as the gateway's own user"), "{log}");
    }
    assert!(!log.contains("at-secret-7"));
}
