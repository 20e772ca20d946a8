//! The objects the Kubernetes deployer applies, as JSON: pure functions of the settings, the
//! tenant, its plan and the server, so that they can be compared with checked-in copies and
//! validated against the Kubernetes schemas offline (tests/kubernetes_manifests.rs).
//!
//! Every object carries the owner labels (`app.kubernetes.io/managed-by: connectors-gateway`,
//! `connectors.io/tenant`, and `connectors.io/server` for a server's), which say which tenant
//! and server it belongs to whatever its (possibly shortened) name.

use connectors_actors::deployer::ServerName;
use connectors_actors::tenant::TenantId;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::names;
use super::settings::KubernetesSettings;

pub const MANAGED_BY: &str = "connectors-gateway";
pub const TENANT_LABEL: &str = "connectors.io/tenant";
pub const SERVER_LABEL: &str = "connectors.io/server";
/// The port name of a server's container and Service.
const PORT_NAME: &str = "mcp";

fn tenant_labels(tenant: &TenantId) -> Value {
    json!({ "app.kubernetes.io/managed-by": MANAGED_BY, TENANT_LABEL: tenant.as_str() })
}

fn server_labels(tenant: &TenantId, name: &ServerName) -> Value {
    json!({
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/name": "mcp-server",
        "app.kubernetes.io/instance": names::server_object(name),
        TENANT_LABEL: tenant.as_str(),
        SERVER_LABEL: name.as_str(),
    })
}

/// What selects a server's pods (a Deployment's selector cannot change: these never do).
fn server_selector(tenant: &TenantId, name: &ServerName) -> Value {
    json!({ TENANT_LABEL: tenant.as_str(), SERVER_LABEL: name.as_str() })
}

/// The tenant's namespace and its fence: a quota from its plan, default container limits, and
/// a network policy that lets in only the gateway's pods. Applied before each deployment, so a
/// changed plan or setting reaches the cluster with the tenant's next deployment.
pub fn tenant_objects(settings: &KubernetesSettings, tenant: &TenantId, plan: &str) -> Vec<Value> {
    let namespace = names::namespace(tenant);
    let labels = tenant_labels(tenant);
    let metadata = |name: &str| json!({ "name": name, "namespace": namespace, "labels": labels });
    let quota = settings.quota(plan);
    let container = &settings.container;
    vec![
        json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": { "name": namespace, "labels": labels },
        }),
        json!({
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": metadata("tenant-quota"),
            "spec": { "hard": {
                "requests.cpu": quota.requests_cpu,
                "requests.memory": quota.requests_memory,
                "persistentvolumeclaims": quota.persistent_volume_claims.to_string(),
                "pods": quota.pods.to_string(),
            }},
        }),
        json!({
            "apiVersion": "v1",
            "kind": "LimitRange",
            "metadata": metadata("tenant-limits"),
            "spec": { "limits": [{
                "type": "Container",
                "default": { "cpu": container.limit_cpu, "memory": container.limit_memory },
                "defaultRequest": { "cpu": container.request_cpu, "memory": container.request_memory },
            }]},
        }),
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": metadata("only-the-gateway"),
            "spec": {
                "podSelector": {},
                "policyTypes": ["Ingress"],
                "ingress": [{ "from": [{
                    "namespaceSelector": { "matchLabels": {
                        "kubernetes.io/metadata.name": settings.gateway_namespace,
                    }},
                    "podSelector": { "matchLabels": settings.gateway_pod_labels },
                }]}],
            },
        }),
    ]
}

/// A server's Deployment (one replica of `image`) and the Service the gateway reaches it by.
pub fn server_objects(settings: &KubernetesSettings, tenant: &TenantId, name: &ServerName, image: &str) -> Vec<Value> {
    let object = names::server_object(name);
    let namespace = names::namespace(tenant);
    let labels = server_labels(tenant, name);
    let selector = server_selector(tenant, name);
    let container = &settings.container;
    vec![
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": { "name": object, "namespace": namespace, "labels": labels },
            "spec": {
                "replicas": 1,
                "selector": { "matchLabels": selector },
                "progressDeadlineSeconds": settings.ready_timeout.as_secs(),
                "template": {
                    "metadata": { "labels": labels },
                    "spec": {
                        "automountServiceAccountToken": false,
                        "enableServiceLinks": false,
                        "securityContext": {
                            "runAsNonRoot": true,
                            "seccompProfile": { "type": "RuntimeDefault" },
                        },
                        "containers": [{
                            "name": "server",
                            "image": image,
                            "env": [
                                { "name": "PORT", "value": settings.server_port.to_string() },
                                { "name": "MCP_PATH", "value": settings.server_path },
                            ],
                            "ports": [{ "name": PORT_NAME, "containerPort": settings.server_port, "protocol": "TCP" }],
                            "readinessProbe": { "tcpSocket": { "port": PORT_NAME }, "periodSeconds": 5 },
                            "resources": {
                                "requests": { "cpu": container.request_cpu, "memory": container.request_memory },
                                "limits": { "cpu": container.limit_cpu, "memory": container.limit_memory },
                            },
                            "securityContext": {
                                "allowPrivilegeEscalation": false,
                                "readOnlyRootFilesystem": true,
                                "capabilities": { "drop": ["ALL"] },
                            },
                            "volumeMounts": [{ "name": "tmp", "mountPath": "/tmp" }],
                        }],
                        "volumes": [{ "name": "tmp", "emptyDir": {} }],
                    },
                },
            },
        }),
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": { "name": object, "namespace": namespace, "labels": labels },
            "spec": {
                "type": "ClusterIP",
                "selector": selector,
                "ports": [{
                    "name": PORT_NAME,
                    "port": settings.server_port,
                    "targetPort": PORT_NAME,
                    "protocol": "TCP",
                }],
            },
        }),
    ]
}

/// The image a `github` source is built into: under the configured registry, tagged with a hash
/// of the repository URL, so a server rebuilt from the same source gets the same image.
pub fn built_image(registry: &str, tenant: &TenantId, name: &ServerName, repository: &str) -> String {
    let tag = hex::encode(&Sha256::digest(repository.as_bytes())[..6]);
    format!("{registry}/{}/{}:{tag}", names::namespace(tenant), name)
}

/// The Job that builds `repository` (an `https://` URL) into `image` with the builder (kaniko's
/// arguments), once: it is not retried inside the cluster, the deployment's retries do that.
pub fn build_job(
    settings: &KubernetesSettings,
    tenant: &TenantId,
    name: &ServerName,
    repository: &str,
    image: &str,
) -> Value {
    let mut labels = server_labels(tenant, name);
    labels["app.kubernetes.io/name"] = json!("mcp-server-build");
    // kaniko reads a git context as git://host/path; the URL was checked to be https.
    let context = format!("git://{}", repository.trim_start_matches("https://"));
    let mut args = vec![format!("--context={context}"), format!("--destination={image}")];
    args.extend(settings.builder_args.iter().cloned());
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": { "name": names::build_job(name), "namespace": names::namespace(tenant), "labels": labels },
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": settings.build_timeout.as_secs(),
            "template": {
                "metadata": { "labels": labels },
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": false,
                    "enableServiceLinks": false,
                    // The builder unpacks images as root inside its container; no other right.
                    "securityContext": { "seccompProfile": { "type": "RuntimeDefault" } },
                    "containers": [{
                        "name": "build",
                        "image": settings.builder_image,
                        "args": args,
                        "resources": {
                            "requests": { "cpu": settings.container.request_cpu, "memory": settings.container.request_memory },
                        },
                    }],
                },
            },
        },
    })
}

/// Where the gateway reaches a deployed server: its Service, or, with `endpointBase`, a proxy
/// there that tells servers apart by the path (`<base>/<namespace>/<service><serverPath>`).
pub fn endpoint_url(settings: &KubernetesSettings, tenant: &TenantId, name: &ServerName) -> String {
    let (service, namespace) = (names::server_object(name), names::namespace(tenant));
    let path = &settings.server_path;
    match &settings.endpoint_base {
        Some(base) => format!("{base}/{namespace}/{service}{path}"),
        None => format!("http://{service}.{namespace}.svc.{}:{}{path}", settings.cluster_domain, settings.server_port),
    }
}

/// The tail of every endpoint the deployer makes without `endpointBase`: the outbound policy
/// trusts it for those endpoints only.
pub fn service_suffix(settings: &KubernetesSettings) -> String {
    format!(".svc.{}", settings.cluster_domain)
}
