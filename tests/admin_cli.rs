//! `connectors admin ...` and `connectors cluster status` against a running gateway: their output,
//! their effects (read back over HTTP), and their failures (the server's message, a non-zero
//! exit).

mod common;
#[path = "common/mcp_servers.rs"]
mod mcp_servers;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{ADMIN_KEY, FAST, Gateway, send};
use mcp_servers::HttpServerProcess;
use reqwest::Method;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_connectors");

fn cli(gateway: &Gateway) -> Command {
    let mut command = Command::new(BIN);
    command.env("CONNECTORS_URL", gateway.url("")).env("ADMIN_API_KEY", ADMIN_KEY).env_remove("RUST_LOG");
    command
}

/// Runs `connectors <args>`; asserts success and returns stdout.
fn run(gateway: &Gateway, args: &[&str]) -> String {
    let output = cli(gateway).args(args).output().expect("run connectors");
    assert!(output.status.success(), "`connectors {}` failed: {}", args.join(" "), text(&output.stderr));
    text(&output.stdout)
}

/// Runs `connectors <args>` expecting failure; returns the output.
fn run_failing(command: &mut Command, args: &[&str]) -> Output {
    let output = command.args(args).output().expect("run connectors");
    assert!(!output.status.success(), "`connectors {}` should fail; stdout: {}", args.join(" "), text(&output.stdout));
    output
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn json(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

async fn tenant_get(gateway: &Gateway, tenant: &str, key: &str) -> common::Resp {
    send(gateway.request(Method::GET, "/api/v1/tenant").header("X-Tenant-ID", tenant).bearer_auth(key)).await
}

#[tokio::test]
async fn tenants_are_created_listed_changed_rotated_and_deleted_from_the_command_line() {
    let gateway = Gateway::start(FAST, &[]).await;
    let created = run(
        &gateway,
        &["admin", "tenants", "create", "--id", "acme", "--name", "Acme Inc", "--requests-per-minute", "42"],
    );
    assert!(created.contains("acme") && created.contains("42/min"), "{created}");
    let key = created.lines().find_map(|l| l.strip_prefix("API key (shown only now): ")).expect("the key is printed");
    tenant_get(&gateway, "acme", key).await.expect(200);

    let listed = run(&gateway, &["admin", "tenants", "list"]);
    let header = listed.lines().next().unwrap();
    assert!(header.starts_with("ID") && header.contains("STATUS"), "{listed}");
    assert!(
        listed.lines().any(|l| l.starts_with("acme ") && l.contains("Acme Inc") && l.contains("active")),
        "{listed}"
    );
    assert!(listed.contains("1 of 1 tenants"), "{listed}");
    let page = json(&run(&gateway, &["admin", "tenants", "list", "--json"]));
    assert_eq!(page["tenants"][0]["id"], "acme");

    let rotated = run(&gateway, &["admin", "tenants", "rotate-key", "acme"]);
    let new_key = rotated.trim().rsplit(' ').next().unwrap().to_string();
    assert!(new_key.starts_with("ck_") && new_key != key, "{rotated}");
    tenant_get(&gateway, "acme", key).await.expect_error(401, "unauthorized");
    tenant_get(&gateway, "acme", &new_key).await.expect(200);

    let updated = json(&run(
        &gateway,
        &["admin", "--json", "tenants", "update", "acme", "--status", "suspended", "--oauth", "false"],
    ));
    assert_eq!((updated["status"].as_str(), updated["features"]["oauth"].as_bool()), (Some("suspended"), Some(false)));
    tenant_get(&gateway, "acme", &new_key).await.expect_error(403, "tenant_suspended");
    let read = json(&run(&gateway, &["admin", "tenants", "get", "acme", "--json"]));
    assert_eq!(read["status"], "suspended");
    let shown = run(&gateway, &["admin", "tenants", "get", "acme"]);
    assert!(shown.contains("suspended") && shown.contains("api calls"), "{shown}");

    let refused = run_failing(&mut cli(&gateway), &["admin", "tenants", "create", "--id", "acme", "--name", "Again"]);
    let stderr = text(&refused.stderr);
    assert!(stderr.contains("tenant `acme` already exists") && stderr.contains("conflict"), "{stderr}");

    assert!(run(&gateway, &["admin", "tenants", "delete", "acme"]).contains("deleted"));
    let gone = run_failing(&mut cli(&gateway), &["admin", "tenants", "get", "acme"]);
    let stderr = text(&gone.stderr);
    assert!(stderr.contains("tenant `acme` not found") && stderr.contains("not_found"), "{stderr}");
    assert!(stderr.contains("request "), "the request id is printed: {stderr}");
    assert!(run(&gateway, &["admin", "tenants", "list"]).contains("0 of 0 tenants"));
}

#[tokio::test]
async fn credentials_usage_integrations_and_the_cluster_from_the_command_line() {
    let gateway = Gateway::start(FAST, &[]).await;
    run(&gateway, &["admin", "tenants", "create", "--id", "acme", "--name", "Acme"]);

    let mut put = cli(&gateway);
    put.env("CONNECTORS_OAUTH_ACCESS_TOKEN", "at-secret-from-env");
    let output =
        put.args(["admin", "oauth", "put", "acme", "github", "--scope", "repo", "--scope", "user"]).output().unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stored = text(&output.stdout);
    assert!(stored.contains("github") && stored.contains("active") && stored.contains("repo user"), "{stored}");
    assert!(!stored.contains("at-secret-from-env"), "tokens are never shown");
    let listed = json(&run(&gateway, &["admin", "oauth", "list", "acme", "--json"]));
    assert_eq!(listed["integrations"][0]["integration"], "github");
    run(&gateway, &["admin", "oauth", "delete", "acme", "github"]);
    let none = gateway.admin(Method::GET, "/tenants/acme/oauth", None).await;
    assert_eq!(none.json()["integrations"], serde_json::json!([]));

    let usage = run(&gateway, &["admin", "usage", "acme"]);
    assert!(usage.contains("api calls") && usage.contains("total (acme "), "{usage}");
    assert_eq!(json(&run(&gateway, &["admin", "usage", "acme", "--json"]))["tenantId"], "acme");
    assert_eq!(json(&run(&gateway, &["admin", "metrics", "acme", "--json"]))["tenantId"], "acme");
    let bad_month = run_failing(&mut cli(&gateway), &["admin", "usage", "acme", "--month", "2024-13"]);
    assert!(text(&bad_month.stderr).contains("invalid_request"), "{}", text(&bad_month.stderr));

    let server = HttpServerProcess::example(&[]);
    let created = run(&gateway, &["admin", "integrations", "create", "--name", "example", "--server-url", &server.url]);
    assert!(created.lines().any(|l| l.starts_with("example ") && l.contains("ready")), "{created}");
    let listed = json(&run(&gateway, &["admin", "integrations", "list", "--json"]));
    assert_eq!(listed["integrations"][0]["name"], "example");
    assert!(run(&gateway, &["admin", "integrations", "refresh", "example"]).contains("example"));
    run(&gateway, &["admin", "integrations", "delete", "example"]);
    let after = gateway.admin(Method::GET, "/integrations", None).await;
    assert_eq!(after.json()["integrations"], serde_json::json!([]));

    let status = run(&gateway, &["cluster", "status"]);
    assert!(status.contains("NODE") && status.contains(" up "), "{status}");
    assert_eq!(json(&run(&gateway, &["cluster", "status", "--json"]))["nodes"][0]["status"], "up");

    let mut wrong_key = cli(&gateway);
    wrong_key.env("ADMIN_API_KEY", "not-the-admin-key");
    let refused = run_failing(&mut wrong_key, &["admin", "tenants", "list"]);
    let stderr = text(&refused.stderr);
    assert!(stderr.contains("missing or invalid admin API key") && stderr.contains("unauthorized"), "{stderr}");
    let mut no_key = cli(&gateway);
    no_key.env_remove("ADMIN_API_KEY");
    assert!(text(&run_failing(&mut no_key, &["admin", "tenants", "list"]).stderr).contains("ADMIN_API_KEY"));
}

#[tokio::test]
async fn the_audit_log_is_printed_and_followed() {
    let gateway = Gateway::start(FAST, &[]).await;
    let created = run(&gateway, &["admin", "tenants", "create", "--id", "acme", "--name", "Acme"]);
    let key = created.lines().find_map(|l| l.strip_prefix("API key (shown only now): ")).unwrap().to_string();

    let log = run(&gateway, &["admin", "audit", "acme"]);
    assert!(log.lines().any(|l| l.contains("admin.tenant.create")), "{log}");
    let events: Vec<Value> = run(&gateway, &["admin", "audit", "acme", "--json"]).lines().map(json).collect();
    assert_eq!(events[0]["action"], "admin.tenant.create");

    let mut follow = cli(&gateway)
        .args(["admin", "audit", "acme", "--json", "--follow", "--interval", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let request = gateway
        .request(Method::GET, "/api/v1/tenant")
        .header("X-Tenant-ID", "acme")
        .header("X-Request-Id", "followed-request-1")
        .bearer_auth(&key);
    send(request).await.expect(200);
    let stdout = follow.stdout.take().unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    let found = loop {
        match lines_rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                let event = json(&line);
                if event["requestId"] == "followed-request-1" {
                    break Some(event);
                }
                seen.push(line);
            }
            Err(_) if Instant::now() > deadline => break None,
            Err(_) => {}
        }
    };
    follow.kill().ok();
    follow.wait().ok();
    let event = found.unwrap_or_else(|| panic!("--follow never printed the new event; printed: {seen:?}"));
    assert_eq!(event["action"], "tenant.get");
    assert_eq!(seen.iter().filter(|l| l.contains("admin.tenant.create")).count(), 1, "no event is printed twice");
}
