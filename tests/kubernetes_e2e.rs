//! End to end: the real `connectors` binary with `deployer.kubernetes` pointing (through a
//! kubeconfig file) at a stand-in API server (tests/common/kube_stand_in.rs, speaking the
//! Kubernetes API over HTTP on loopback). A tenant deploys a `docker` server through the API;
//! the stand-in plays the cluster's part (the Deployment becomes available, or the namespace's
//! quota refuses its pod), and `deployer.kubernetes.endpointBase` sends the gateway, through a
//! proxy that routes by namespace and Service as one in front of a cluster would, to the
//! project's example MCP server in place of the Service, so that its tools are really
//! discovered and called.
//! Nothing here runs against a real cluster.

mod common;
#[path = "common/kube_stand_in.rs"]
mod kube_stand_in;
#[path = "common/mcp_servers.rs"]
mod mcp_servers;
#[path = "common/round_robin_proxy.rs"]
mod round_robin_proxy;

use std::time::{Duration, Instant};

use common::{FAST, Gateway, send};
use kube_stand_in::{KubeStandIn, Outcome};
use mcp_servers::HttpServerProcess;
use reqwest::Method;
use round_robin_proxy::RoundRobinProxy;
use serde_json::{Value, json};

/// A gateway deploying on the stand-in, whose servers `notes` and `files` of tenant `acme` are
/// both `upstream`, reached through a proxy at `endpointBase` that routes by namespace and
/// Service; `extra` is added to its `deployer.kubernetes` section.
async fn gateway_on(
    stand_in: &KubeStandIn,
    upstream: &HttpServerProcess,
    dir: &tempfile::TempDir,
    extra: &str,
) -> (Gateway, RoundRobinProxy) {
    let api = stand_in.start().await;
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n  - name: stand-in\n    cluster:\n      server: {api}\n\
             users:\n  - name: gateway\n    user: {{}}\ncontexts:\n  - name: stand-in\n    context:\n      cluster: stand-in\n      user: gateway\n\
             current-context: stand-in\n"
        ),
    )
    .unwrap();
    let upstream = upstream.url.strip_suffix("/mcp").expect("the example server serves /mcp").to_string();
    let routes = ["/tenant-acme/mcp-notes", "/tenant-acme/mcp-files"];
    let proxy = RoundRobinProxy::by_prefix(routes.map(|route| (route.to_string(), upstream.clone())).into()).await;
    let base = &proxy.url;
    let config = format!(
        "{FAST}deployer:\n  kubernetes:\n    kubeconfig: \"{}\"\n    endpointBase: \"{base}\"\n    pollIntervalMs: 50\n{extra}",
        kubeconfig.display()
    );
    (Gateway::start(&config, &[]).await, proxy)
}

async fn servers(gateway: &Gateway, key: &str, method: Method, path: &str, body: Option<Value>) -> common::Resp {
    let mut request =
        gateway.request(method, &format!("/api/v1/mcp/servers{path}")).header("X-Tenant-ID", "acme").bearer_auth(key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    send(request).await
}

/// Polls the server `notes` until `done` holds for its view; returns the view.
async fn wait_for(gateway: &Gateway, key: &str, done: impl Fn(&Value) -> bool) -> Value {
    wait_for_server(gateway, key, "notes", done).await
}

/// Polls the server `name` until `done` holds for its view; returns the view.
async fn wait_for_server(gateway: &Gateway, key: &str, name: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = servers(gateway, key, Method::GET, &format!("/{name}"), None).await;
        let view = if response.status == 200 { response.json() } else { json!({"httpStatus": response.status}) };
        if done(&view) {
            return view;
        }
        assert!(Instant::now() < deadline, "`{name}` never got there; last: {view}\n{}", gateway.stderr_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn docker_notes() -> Value {
    json!({"name": "notes", "category": "productivity", "source": {"type": "docker", "image": "ghcr.io/acme/notes:1"}})
}

#[tokio::test]
async fn a_docker_server_deploys_on_the_cluster_its_tools_are_discovered_and_the_tenant_deletion_removes_its_namespace()
{
    let upstream = HttpServerProcess::example(&[]);
    let stand_in = KubeStandIn::default();
    stand_in.auto_ready(true);
    let dir = tempfile::tempdir().unwrap();
    let (gateway, proxy) = gateway_on(&stand_in, &upstream, &dir, "").await;
    let (_, acme) = gateway.create_tenant(json!({"id": "acme", "name": "Acme", "plan": "pro"})).await;

    servers(&gateway, &acme, Method::POST, "", Some(docker_notes())).await.expect(202);
    let ready = wait_for(&gateway, &acme, |view| view["status"] == "ready").await;
    assert_eq!(ready["toolsDiscovered"], 6, "{ready}");
    assert_eq!(ready["endpoint"], format!("{}/tenant-acme/mcp-notes/mcp", proxy.url));
    assert_eq!(ready["namespace"], "tenant-acme");
    let deployment = stand_in.get("apps/v1", Some("tenant-acme"), "deployments", "mcp-notes").expect("a Deployment");
    assert_eq!(deployment["spec"]["template"]["spec"]["containers"][0]["image"], "ghcr.io/acme/notes:1");
    assert_eq!(deployment["metadata"]["labels"]["connectors.io/server"], "notes");
    assert!(stand_in.get("v1", Some("tenant-acme"), "services", "mcp-notes").is_some());

    // The tools are the tenant's to call.
    let invoked = send(
        gateway
            .request(Method::POST, "/api/v1/tools/invoke")
            .header("X-Tenant-ID", "acme")
            .bearer_auth(&acme)
            .json(&json!({"toolId": "notes.echo", "parameters": {"text": "from the cluster"}})),
    )
    .await;
    invoked.expect(200);
    assert!(invoked.text.contains("from the cluster"), "{}", invoked.text);

    // Deleting the server deletes its objects; deleting the tenant, its namespace.
    servers(&gateway, &acme, Method::DELETE, "/notes", None).await.expect(202);
    wait_for(&gateway, &acme, |view| view["httpStatus"] == 404).await;
    assert!(stand_in.names(Some("tenant-acme"), "deployments").is_empty());
    assert!(stand_in.names(Some("tenant-acme"), "services").is_empty());
    assert!(stand_in.get("v1", None, "namespaces", "tenant-acme").is_some());
    gateway.admin(Method::DELETE, "/tenants/acme", None).await.expect(204);
    assert!(stand_in.get("v1", None, "namespaces", "tenant-acme").is_none(), "{:?}", stand_in.calls());
}

#[tokio::test]
async fn a_pod_the_tenants_quota_refuses_fails_the_attempt_with_the_clusters_reason_and_a_retry_deploys_it_once_there_is_room()
 {
    let upstream = HttpServerProcess::example(&[]);
    let stand_in = KubeStandIn::default();
    stand_in.auto_ready(true);
    let dir = tempfile::tempdir().unwrap();
    // The `pro` plan's namespaces hold one pod.
    let (gateway, _proxy) = gateway_on(&stand_in, &upstream, &dir, "    quotas:\n      pro: {pods: 1}\n").await;
    let (_, acme) = gateway.create_tenant(json!({"id": "acme", "name": "Acme", "plan": "pro"})).await;
    servers(&gateway, &acme, Method::POST, "", Some(docker_notes())).await.expect(202);
    wait_for(&gateway, &acme, |view| view["status"] == "ready").await;

    // The cluster accepts the second Deployment and refuses its pod: the attempt fails with the
    // cluster's words, and the deployment is retried.
    let files = json!({"name": "files", "category": "productivity", "source": {"type": "docker", "image": "ghcr.io/acme/files:1"}});
    servers(&gateway, &acme, Method::POST, "", Some(files)).await.expect(202);
    let refused = wait_for_server(&gateway, &acme, "files", |view| view["error"].is_string()).await;
    let error = refused["error"].as_str().unwrap();
    assert!(error.contains("cannot create the server's pod: pods \"mcp-files-"), "{refused}");
    assert!(
        error.contains("exceeded quota: tenant-quota, requested: pods=1, used: pods=1, limited: pods=1"),
        "{refused}"
    );
    assert_ne!(refused["status"], "ready", "{refused}");

    // Deleting the first server makes room; a later attempt finds the pod created.
    servers(&gateway, &acme, Method::DELETE, "/notes", None).await.expect(202);
    let ready = wait_for_server(&gateway, &acme, "files", |view| view["status"] == "ready").await;
    assert_eq!(ready["toolsDiscovered"], 6, "{ready}");
}

#[tokio::test]
async fn a_deployment_interrupted_by_a_restart_resumes_and_ends_ready() {
    let upstream = HttpServerProcess::example(&[]);
    let stand_in = KubeStandIn::default();
    let dir = tempfile::tempdir().unwrap();
    let (mut gateway, _proxy) = gateway_on(&stand_in, &upstream, &dir, "").await;
    let (_, acme) = gateway.create_tenant(json!({"id": "acme", "name": "Acme", "plan": "pro"})).await;

    servers(&gateway, &acme, Method::POST, "", Some(docker_notes())).await.expect(202);
    common::eventually("the Deployment to be applied", Duration::from_secs(30), || async {
        stand_in.get("apps/v1", Some("tenant-acme"), "deployments", "mcp-notes").map(drop).ok_or("not yet".to_string())
    })
    .await;
    let view = wait_for(&gateway, &acme, |view| view["status"] == "deploying").await;
    assert!(view.get("endpoint").is_none_or(Value::is_null), "{view}");
    let first = stand_in.get("apps/v1", Some("tenant-acme"), "deployments", "mcp-notes").unwrap();
    let applies = |stand_in: &KubeStandIn| {
        stand_in.calls().iter().filter(|c| c.method == "PATCH" && c.path.ends_with("/deployments/mcp-notes")).count()
    };
    assert_eq!(applies(&stand_in), 1);

    // The gateway stops while the cluster is still starting the server, and starts again.
    gateway.restart().await;
    common::eventually("the Deployment to be applied again", Duration::from_secs(30), || async {
        if applies(&stand_in) >= 2 { Ok(()) } else { Err(format!("{} applies", applies(&stand_in))) }
    })
    .await;
    assert_eq!(wait_for(&gateway, &acme, |view| view["status"].is_string()).await["status"], "deploying");
    stand_in.set_deployment("tenant-acme", "mcp-notes", Outcome::Ready);
    let ready = wait_for(&gateway, &acme, |view| view["status"] == "ready").await;
    assert_eq!(ready["toolsDiscovered"], 6, "{ready}");

    // Re-applied, not re-created: the same object, its spec unchanged.
    let now = stand_in.get("apps/v1", Some("tenant-acme"), "deployments", "mcp-notes").unwrap();
    assert_eq!(now["metadata"]["uid"], first["metadata"]["uid"]);
    assert_eq!(now["metadata"]["generation"], first["metadata"]["generation"]);
    assert_eq!(now["spec"], first["spec"]);
    assert_eq!(stand_in.names(None, "namespaces"), ["tenant-acme"]);
}

#[tokio::test]
async fn a_server_the_cluster_has_not_started_yet_does_not_hold_up_another_servers_deployment() {
    let upstream = HttpServerProcess::example(&[]);
    let stand_in = KubeStandIn::default();
    let dir = tempfile::tempdir().unwrap();
    let (gateway, _proxy) = gateway_on(&stand_in, &upstream, &dir, "").await;
    let (_, acme) = gateway.create_tenant(json!({"id": "acme", "name": "Acme", "plan": "pro"})).await;
    let applied = |name: &'static str| {
        let stand_in = &stand_in;
        async move {
            common::eventually(
                &format!("the Deployment of `{name}` to be applied"),
                Duration::from_secs(30),
                || async {
                    stand_in
                        .get("apps/v1", Some("tenant-acme"), "deployments", name)
                        .map(drop)
                        .ok_or("not yet".to_string())
                },
            )
            .await;
        }
    };

    // `files` waits for pods the cluster does not start.
    let files = json!({"name": "files", "category": "productivity", "source": {"type": "docker", "image": "ghcr.io/acme/files:1"}});
    servers(&gateway, &acme, Method::POST, "", Some(files)).await.expect(202);
    applied("mcp-files").await;
    // `notes` is deployed meanwhile, and becomes ready while `files` still waits.
    servers(&gateway, &acme, Method::POST, "", Some(docker_notes())).await.expect(202);
    applied("mcp-notes").await;
    stand_in.set_deployment("tenant-acme", "mcp-notes", Outcome::Ready);
    let ready = wait_for(&gateway, &acme, |view| view["status"] == "ready").await;
    assert_eq!(ready["toolsDiscovered"], 6, "{ready}");
    // And it is stopped while `files` still waits.
    servers(&gateway, &acme, Method::DELETE, "/notes", None).await.expect(202);
    wait_for(&gateway, &acme, |view| view["httpStatus"] == 404).await;
    let files = wait_for_server(&gateway, &acme, "files", |view| view["status"].is_string()).await;
    assert_eq!(files["status"], "deploying", "{files}");
}
