//! The Kubernetes deployer against a stand-in API server (tests/common/kube_stand_in.rs) that
//! answers over HTTP as an API server would: what it applies (server-side apply, forced, as
//! `connectors-gateway`), how it reads a Deployment's and a Job's status into ready or failed,
//! its refusals, and what stop and tenant removal delete. Nothing here runs against a real
//! cluster.

#[path = "common/kube_stand_in.rs"]
mod kube_stand_in;

use std::sync::Arc;
use std::time::Duration;

use connectors::backends::kubernetes::KubernetesDeployer;
use connectors::backends::kubernetes::settings::{KubernetesSettings, TenantQuota};
use connectors::backends::redb_store::RedbStore;
use connectors_actors::deployer::{DeployError, Deployer, Endpoint, Health, ServerName, ServerSource, SourceKind};
use connectors_actors::store::Store;
use connectors_actors::tenant::{TenantId, TenantRecord};
use kube_stand_in::{KubeStandIn, Outcome};
use serde_json::json;

struct Fixture {
    stand_in: KubeStandIn,
    deployer: Arc<KubernetesDeployer>,
    _dir: tempfile::TempDir,
}

async fn fixture(settings: KubernetesSettings) -> Fixture {
    let stand_in = KubeStandIn::default();
    let url = stand_in.start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(&dir.path().join("store.redb"), 8 << 20).unwrap();
    let record: TenantRecord = serde_json::from_value(json!({
        "id": "acme", "name": "Acme", "plan": "free", "status": "active",
        "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z", "keys": [],
    }))
    .unwrap();
    store.create_tenant(&record).await.unwrap();
    let client = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
    let settings = KubernetesSettings { poll_interval: Duration::from_millis(20), ..settings };
    let deployer = Arc::new(KubernetesDeployer::new(client, settings, Arc::new(store)));
    Fixture { stand_in, deployer, _dir: dir }
}

fn acme() -> TenantId {
    TenantId::parse("acme").unwrap()
}

fn name(text: &str) -> ServerName {
    ServerName::parse(text).unwrap()
}

fn docker(image: &str) -> ServerSource {
    ServerSource::Docker { image: image.into() }
}

/// Runs `deploy` on a task, so the test can act on the stand-in while the deployer waits.
fn deploying(
    deployer: &Arc<KubernetesDeployer>,
    server: &str,
    source: ServerSource,
) -> tokio::task::JoinHandle<Result<Endpoint, DeployError>> {
    let (deployer, server) = (deployer.clone(), name(server));
    tokio::spawn(async move { deployer.deploy(&acme(), &server, &source).await })
}

/// Waits until the stand-in holds `resource/name` in the tenant's namespace.
async fn applied(stand_in: &KubeStandIn, api_version: &str, resource: &str, name: &str) {
    for _ in 0..500 {
        if stand_in.get(api_version, Some("tenant-acme"), resource, name).is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{resource}/{name} was never applied; calls: {:?}", stand_in.calls());
}

#[tokio::test]
async fn a_docker_server_is_applied_and_ready_once_its_deployment_is_available() {
    let Fixture { stand_in, deployer, _dir } = fixture(KubernetesSettings::default()).await;
    let task = deploying(&deployer, "notes", docker("ghcr.io/acme/notes:1"));
    applied(&stand_in, "apps/v1", "deployments", "mcp-notes").await;
    // Not ready until the cluster says so.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!task.is_finished(), "deploy answered before the Deployment was available");
    stand_in.set_deployment("tenant-acme", "mcp-notes", Outcome::Ready);
    let endpoint = task.await.unwrap().expect("deployed");
    assert_eq!(endpoint, Endpoint::Deployed { url: "http://mcp-notes.tenant-acme.svc.cluster.local:8080/mcp".into() });

    // The namespace and its fence, then the server, each applied once, forced, by the gateway.
    let patches: Vec<_> = stand_in.calls().into_iter().filter(|call| call.method == "PATCH").collect();
    let paths: Vec<&str> = patches.iter().map(|call| call.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/api/v1/namespaces/tenant-acme",
            "/api/v1/namespaces/tenant-acme/resourcequotas/tenant-quota",
            "/api/v1/namespaces/tenant-acme/limitranges/tenant-limits",
            "/apis/networking.k8s.io/v1/namespaces/tenant-acme/networkpolicies/only-the-gateway",
            "/apis/apps/v1/namespaces/tenant-acme/deployments/mcp-notes",
            "/api/v1/namespaces/tenant-acme/services/mcp-notes",
        ]
    );
    assert!(patches.iter().all(|call| call.field_manager.as_deref() == Some("connectors-gateway")));
    let namespace = stand_in.get("v1", None, "namespaces", "tenant-acme").unwrap();
    assert_eq!(namespace["metadata"]["labels"]["connectors.io/tenant"], "acme");
    // The tenant is on `free`, which has no quota of its own here: the default (enterprise) one.
    let quota = stand_in.get("v1", Some("tenant-acme"), "resourcequotas", "tenant-quota").unwrap();
    assert_eq!(
        quota["spec"]["hard"],
        json!({"requests.cpu": "10", "requests.memory": "20Gi", "persistentvolumeclaims": "10", "pods": "50"})
    );
    assert_eq!(deployer.health(&acme(), &name("notes")).await, Some(Health::Running { restarts: 0 }));

    // Deploying again (a retry, a restarted gateway) re-applies the same objects: nothing changes
    // and the server is ready at once.
    let before = stand_in.get("apps/v1", Some("tenant-acme"), "deployments", "mcp-notes").unwrap();
    let again =
        deployer.deploy(&acme(), &name("notes"), &docker("ghcr.io/acme/notes:1")).await.expect("deployed again");
    assert_eq!(again, endpoint);
    let after = stand_in.get("apps/v1", Some("tenant-acme"), "deployments", "mcp-notes").unwrap();
    assert_eq!(before["metadata"]["generation"], after["metadata"]["generation"]);
    assert_eq!(before["metadata"]["uid"], after["metadata"]["uid"]);
}

#[tokio::test]
async fn a_refusal_by_rbac_fails_the_deployment_for_good_with_the_clusters_reason() {
    let Fixture { stand_in, deployer, _dir } = fixture(KubernetesSettings::default()).await;
    stand_in.fail_next("PATCH", "Deployment", 403);
    let error = deployer.deploy(&acme(), &name("notes"), &docker("ghcr.io/acme/notes:1")).await.unwrap_err();
    let DeployError::Refused(reason) = &error else { panic!("not a refusal: {error:?}") };
    assert!(reason.contains("cannot patch resource \"deployments\" in API group \"apps\""), "{reason}");
    assert!(!error.is_retryable());
    assert!(stand_in.get("apps/v1", Some("tenant-acme"), "deployments", "mcp-notes").is_none());
}

#[tokio::test]
async fn a_conflict_fails_the_attempt_and_the_next_one_deploys() {
    let Fixture { stand_in, deployer, _dir } = fixture(KubernetesSettings::default()).await;
    stand_in.auto_ready(true);
    stand_in.fail_next("PATCH", "Service", 409);
    let error = deployer.deploy(&acme(), &name("notes"), &docker("ghcr.io/acme/notes:1")).await.unwrap_err();
    assert!(error.is_retryable(), "{error:?}");
    assert!(error.to_string().contains("Operation cannot be fulfilled on services \"mcp-notes\""), "{error}");
    deployer.deploy(&acme(), &name("notes"), &docker("ghcr.io/acme/notes:1")).await.expect("deployed when tried again");
}

#[tokio::test]
async fn a_pod_the_quota_refuses_fails_the_attempt_with_the_clusters_message_until_the_quota_has_room() {
    let mut settings = KubernetesSettings::default();
    settings.quotas.insert("free".into(), TenantQuota { pods: 1, ..TenantQuota::default() });
    let Fixture { stand_in, deployer, _dir } = fixture(settings).await;
    stand_in.auto_ready(true);
    deployer.deploy(&acme(), &name("notes"), &docker("ghcr.io/acme/notes:1")).await.expect("the first pod fits");

    // The Deployment is accepted; its pod is not, and the Deployment says so.
    let error = deployer.deploy(&acme(), &name("files"), &docker("ghcr.io/acme/files:1")).await.unwrap_err();
    assert!(error.is_retryable(), "{error:?}");
    let text = error.to_string();
    assert!(text.contains("cannot create the server's pod: pods \"mcp-files-"), "{text}");
    assert!(text.contains("exceeded quota: tenant-quota, requested: pods=1, used: pods=1, limited: pods=1"), "{text}");
    assert!(stand_in.get("apps/v1", Some("tenant-acme"), "deployments", "mcp-files").is_some());

    // Once another server is stopped, the next attempt finds its pod created.
    deployer.stop(&acme(), &name("notes")).await.expect("stopped");
    deployer.deploy(&acme(), &name("files"), &docker("ghcr.io/acme/files:1")).await.expect("deployed with room");
}

#[tokio::test]
async fn a_changed_server_is_ready_only_once_its_rollout_is_done() {
    let Fixture { stand_in, deployer, _dir } = fixture(KubernetesSettings::default()).await;
    stand_in.auto_ready(true);
    deployer.deploy(&acme(), &name("notes"), &docker("ghcr.io/acme/notes:1")).await.expect("deployed");
    stand_in.auto_ready(false);

    let task = deploying(&deployer, "notes", docker("ghcr.io/acme/notes:2"));
    // The deployer reads the Deployment mid-rollout (Available, thanks to the old pod) again and
    // again, and does not answer.
    let path = "/apis/apps/v1/namespaces/tenant-acme/deployments/mcp-notes";
    let reads_before = stand_in.count("GET", path);
    for _ in 0..500 {
        if stand_in.count("GET", path) >= reads_before + 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let rolling = stand_in.get("apps/v1", Some("tenant-acme"), "deployments", "mcp-notes").unwrap();
    assert_eq!(rolling["status"]["replicas"], 2, "{rolling}");
    assert_eq!(rolling["metadata"]["generation"], 2);
    assert!(!task.is_finished(), "deploy answered while the old pod was still serving");
    stand_in.set_deployment("tenant-acme", "mcp-notes", Outcome::Ready);
    task.await.unwrap().expect("deployed once rolled out");
    assert_eq!(deployer.health(&acme(), &name("notes")).await, Some(Health::Running { restarts: 0 }));
}

#[tokio::test]
async fn a_rollout_past_its_deadline_is_restarted_by_the_next_attempt() {
    let Fixture { stand_in, deployer, _dir } = fixture(KubernetesSettings::default()).await;
    let task = deploying(&deployer, "notes", docker("ghcr.io/acme/notes:1"));
    applied(&stand_in, "apps/v1", "deployments", "mcp-notes").await;
    let first = stand_in.get("apps/v1", Some("tenant-acme"), "deployments", "mcp-notes").unwrap();
    let message = "ReplicaSet \"mcp-notes-5d4f\" has timed out progressing.".to_string();
    stand_in.set_deployment("tenant-acme", "mcp-notes", Outcome::Failed { condition: "Progressing", message });
    let error = task.await.unwrap().unwrap_err();
    assert!(error.is_retryable() && error.to_string().contains("has timed out progressing"), "{error}");

    // The next attempt does not find the same verdict: it starts the rollout afresh.
    let task = deploying(&deployer, "notes", docker("ghcr.io/acme/notes:1"));
    for _ in 0..500 {
        let now = stand_in.get("apps/v1", Some("tenant-acme"), "deployments", "mcp-notes");
        if now.is_some_and(|now| now["metadata"]["uid"] != first["metadata"]["uid"]) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let second = stand_in.get("apps/v1", Some("tenant-acme"), "deployments", "mcp-notes").unwrap();
    assert_ne!(second["metadata"]["uid"], first["metadata"]["uid"], "the Deployment was not re-created");
    assert!(!task.is_finished(), "the attempt ended before the new rollout did");
    stand_in.set_deployment("tenant-acme", "mcp-notes", Outcome::Ready);
    task.await.unwrap().expect("deployed by the restarted rollout");
}

#[tokio::test]
async fn a_server_that_never_becomes_ready_fails_after_the_timeout() {
    let settings = KubernetesSettings { ready_timeout: Duration::from_millis(200), ..Default::default() };
    let Fixture { deployer, _dir, .. } = fixture(settings).await;
    let error = deployer.deploy(&acme(), &name("notes"), &docker("ghcr.io/acme/notes:1")).await.unwrap_err();
    assert!(error.is_retryable());
    assert!(error.to_string().contains("not ready after"), "{error}");
}

#[tokio::test]
async fn a_github_source_is_built_by_a_job_then_run_from_the_built_image() {
    let Fixture { stand_in, deployer, _dir } = fixture(github_settings()).await;
    assert!(deployer.supports(SourceKind::Github));
    let repository = "https://github.com/acme/notes-mcp";
    let source = ServerSource::Github { url: repository.into() };

    // A failed build fails the attempt and is deleted, so that the next attempt builds again.
    let task = deploying(&deployer, "notes", source.clone());
    applied(&stand_in, "batch/v1", "jobs", "mcp-notes-build").await;
    stand_in.set_job(
        "tenant-acme",
        "mcp-notes-build",
        Outcome::Failed { condition: "Failed", message: "exit 1".into() },
    );
    let error = task.await.unwrap().unwrap_err();
    assert!(error.to_string().contains("building the image failed"), "{error}");
    assert!(stand_in.get("batch/v1", Some("tenant-acme"), "jobs", "mcp-notes-build").is_none());

    let task = deploying(&deployer, "notes", source);
    applied(&stand_in, "batch/v1", "jobs", "mcp-notes-build").await;
    let job = stand_in.get("batch/v1", Some("tenant-acme"), "jobs", "mcp-notes-build").unwrap();
    let args = job["spec"]["template"]["spec"]["containers"][0]["args"].as_array().unwrap().clone();
    assert_eq!(args[0], "--context=git://github.com/acme/notes-mcp");
    let destination = args[1].as_str().unwrap().strip_prefix("--destination=").unwrap().to_string();
    assert!(destination.starts_with("registry.local:5000/mcp/tenant-acme/notes:"), "{destination}");
    // No Deployment before the image exists.
    assert!(stand_in.get("apps/v1", Some("tenant-acme"), "deployments", "mcp-notes").is_none());
    stand_in.set_job("tenant-acme", "mcp-notes-build", Outcome::Ready);
    applied(&stand_in, "apps/v1", "deployments", "mcp-notes").await;
    let deployment = stand_in.get("apps/v1", Some("tenant-acme"), "deployments", "mcp-notes").unwrap();
    assert_eq!(deployment["spec"]["template"]["spec"]["containers"][0]["image"], destination.as_str());
    stand_in.set_deployment("tenant-acme", "mcp-notes", Outcome::Ready);
    assert!(matches!(task.await.unwrap(), Ok(Endpoint::Deployed { .. })));
}

fn github_settings() -> KubernetesSettings {
    KubernetesSettings { registry: Some("registry.local:5000/mcp".into()), ..Default::default() }
}

#[tokio::test]
async fn a_build_job_that_cannot_be_read_is_left_building() {
    let Fixture { stand_in, deployer, _dir } = fixture(github_settings()).await;
    stand_in.auto_ready(true);
    let source = ServerSource::Github { url: "https://github.com/acme/notes-mcp".into() };
    stand_in.fail_next("GET", "Job", 500);
    let error = deployer.deploy(&acme(), &name("notes"), &source).await.unwrap_err();
    assert!(error.is_retryable() && error.to_string().contains("etcdserver: request timed out"), "{error}");
    let job = stand_in.get("batch/v1", Some("tenant-acme"), "jobs", "mcp-notes-build").expect("the Job is kept");
    assert_eq!(stand_in.count("DELETE", "/apis/batch/v1/namespaces/tenant-acme/jobs/mcp-notes-build"), 0);

    // The next attempt follows the same Job.
    let task = deploying(&deployer, "notes", source);
    applied(&stand_in, "batch/v1", "jobs", "mcp-notes-build").await;
    stand_in.set_job("tenant-acme", "mcp-notes-build", Outcome::Ready);
    task.await.unwrap().expect("deployed");
    let now = stand_in.get("batch/v1", Some("tenant-acme"), "jobs", "mcp-notes-build").unwrap();
    assert_eq!(now["metadata"]["uid"], job["metadata"]["uid"]);
}

#[tokio::test]
async fn a_changed_build_replaces_the_old_build_job_whose_template_the_cluster_will_not_change() {
    let Fixture { stand_in, deployer, _dir } = fixture(github_settings()).await;
    stand_in.auto_ready(true);
    let built = |stand_in: &KubeStandIn| stand_in.get("batch/v1", Some("tenant-acme"), "jobs", "mcp-notes-build");
    let task = deploying(&deployer, "notes", ServerSource::Github { url: "https://github.com/acme/notes-mcp".into() });
    applied(&stand_in, "batch/v1", "jobs", "mcp-notes-build").await;
    stand_in.set_job("tenant-acme", "mcp-notes-build", Outcome::Ready);
    task.await.unwrap().expect("deployed");
    let first = built(&stand_in).unwrap();

    // Another repository: the cluster refuses the changed Job (422, immutable template); the
    // deployer deletes it and builds anew.
    let other = ServerSource::Github { url: "https://github.com/acme/notes-mcp-v2".into() };
    let task = deploying(&deployer, "notes", other);
    for _ in 0..500 {
        if built(&stand_in).is_some_and(|job| job["metadata"]["uid"] != first["metadata"]["uid"]) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let second = built(&stand_in).unwrap();
    assert_ne!(second["metadata"]["uid"], first["metadata"]["uid"], "the Job was not replaced");
    let args = &second["spec"]["template"]["spec"]["containers"][0]["args"];
    assert_eq!(args[0], "--context=git://github.com/acme/notes-mcp-v2");
    stand_in.set_job("tenant-acme", "mcp-notes-build", Outcome::Ready);
    task.await.unwrap().expect("deployed from the new build");
    let deployment = stand_in.get("apps/v1", Some("tenant-acme"), "deployments", "mcp-notes").unwrap();
    let destination = args[1].as_str().unwrap().strip_prefix("--destination=").unwrap();
    assert_eq!(deployment["spec"]["template"]["spec"]["containers"][0]["image"], destination);
}

#[tokio::test]
async fn without_a_registry_github_is_unsupported_and_stdio_never_is_supported() {
    let Fixture { deployer, _dir, .. } = fixture(KubernetesSettings::default()).await;
    assert!(!deployer.supports(SourceKind::Github));
    assert!(!deployer.supports(SourceKind::Stdio));
    assert!(deployer.supports(SourceKind::Docker) && deployer.supports(SourceKind::Http));
    let github = ServerSource::Github { url: "https://github.com/acme/x".into() };
    assert_eq!(deployer.deploy(&acme(), &name("x"), &github).await, Err(DeployError::Unsupported(SourceKind::Github)));
    // An `http` source is registered: its URL, nothing applied.
    let http = ServerSource::Http { url: "https://mcp.example.com/mcp".into(), oauth_integration: None };
    assert_eq!(
        deployer.deploy(&acme(), &name("y"), &http).await,
        Ok(Endpoint::Http { url: "https://mcp.example.com/mcp".into() })
    );
}

#[tokio::test]
async fn stop_deletes_the_servers_objects_and_removing_the_tenant_its_namespace() {
    let Fixture { stand_in, deployer, _dir } = fixture(github_settings()).await;
    stand_in.auto_ready(true);
    deployer.deploy(&acme(), &name("files"), &docker("ghcr.io/acme/x:1")).await.expect("deployed");
    let task = deploying(&deployer, "notes", ServerSource::Github { url: "https://github.com/acme/notes-mcp".into() });
    applied(&stand_in, "batch/v1", "jobs", "mcp-notes-build").await;
    stand_in.set_job("tenant-acme", "mcp-notes-build", Outcome::Ready);
    task.await.unwrap().expect("deployed");
    deployer.stop(&acme(), &name("notes")).await.expect("stopped");
    assert_eq!(stand_in.names(Some("tenant-acme"), "deployments"), ["mcp-files"]);
    assert_eq!(stand_in.names(Some("tenant-acme"), "services"), ["mcp-files"]);
    assert!(stand_in.names(Some("tenant-acme"), "jobs").is_empty(), "the build Job is left");
    // Stopping again, or what was never deployed, succeeds (404s are done).
    deployer.stop(&acme(), &name("notes")).await.expect("stopped again");
    assert_eq!(deployer.health(&acme(), &name("notes")).await, None);

    deployer.remove_tenant(&acme()).await.expect("removed");
    assert!(stand_in.get("v1", None, "namespaces", "tenant-acme").is_none());
    assert!(stand_in.names(Some("tenant-acme"), "deployments").is_empty());
    let deletes: Vec<_> =
        stand_in.calls().into_iter().filter(|call| call.method == "DELETE").map(|call| call.path).collect();
    assert!(deletes.contains(&"/api/v1/namespaces/tenant-acme".to_string()), "{deletes:?}");
    deployer.remove_tenant(&acme()).await.expect("removing a removed tenant succeeds");
}

/// `(apiGroup, resource, verb)` of every right a call needs: server-side apply (PATCH) needs
/// `create` for a new object and `patch`.
fn rights_needed(calls: &[kube_stand_in::Call]) -> std::collections::BTreeSet<(String, String, String)> {
    let mut needed = std::collections::BTreeSet::new();
    for call in calls {
        let parts: Vec<&str> = call.path.trim_matches('/').split('/').collect();
        let (group, rest) = match parts.as_slice() {
            ["api", _, rest @ ..] => ("", rest),
            ["apis", group, _, rest @ ..] => (*group, rest),
            _ => panic!("unexpected path {}", call.path),
        };
        let resource = if rest.len() == 2 { rest[0] } else { rest[2] };
        let verbs: &[&str] = match call.method.as_str() {
            "PATCH" => &["create", "patch"],
            "GET" => &["get"],
            "DELETE" => &["delete"],
            other => panic!("unexpected method {other}"),
        };
        for verb in verbs {
            needed.insert((group.to_string(), resource.to_string(), verb.to_string()));
        }
    }
    needed
}

/// The rights deploy/kubernetes/base/rbac.yaml grants the gateway.
fn rights_granted() -> std::collections::BTreeSet<(String, String, String)> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes/base/rbac.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let mut granted = std::collections::BTreeSet::new();
    for document in serde_norway::Deserializer::from_str(&text) {
        let document: serde_json::Value = serde::Deserialize::deserialize(document).unwrap();
        if document["kind"] != "ClusterRole" {
            continue;
        }
        for rule in document["rules"].as_array().unwrap() {
            for group in rule["apiGroups"].as_array().unwrap() {
                for resource in rule["resources"].as_array().unwrap() {
                    for verb in rule["verbs"].as_array().unwrap() {
                        let text = |v: &serde_json::Value| v.as_str().unwrap().to_string();
                        granted.insert((text(group), text(resource), text(verb)));
                    }
                }
            }
        }
    }
    granted
}

#[tokio::test]
async fn the_rbac_manifest_grants_exactly_what_the_deployer_calls() {
    let Fixture { stand_in, deployer, _dir } = fixture(github_settings()).await;
    stand_in.auto_ready(true);
    // Every kind of call: a docker and a github deployment, health, stop, tenant removal.
    deployer.deploy(&acme(), &name("notes"), &docker("ghcr.io/acme/notes:1")).await.expect("deployed");
    let task = deploying(&deployer, "built", ServerSource::Github { url: "https://github.com/acme/built".into() });
    applied(&stand_in, "batch/v1", "jobs", "mcp-built-build").await;
    stand_in.set_job("tenant-acme", "mcp-built-build", Outcome::Ready);
    task.await.unwrap().expect("deployed");
    deployer.health(&acme(), &name("notes")).await;
    deployer.stop(&acme(), &name("built")).await.expect("stopped");
    deployer.remove_tenant(&acme()).await.expect("removed");
    assert_eq!(rights_needed(&stand_in.calls()), rights_granted());
}
