//! A stand-in for a Kubernetes API server, over real HTTP on a loopback port, answering the
//! calls the Kubernetes deployer makes as an API server would: server-side apply (`PATCH` with
//! `application/apply-patch+yaml`, a `fieldManager` and `force=true`; 201 on create, 200 after),
//! `GET`, `DELETE` (background propagation; a deleted namespace takes its objects with it), and
//! errors as `Status` bodies (404 not found, 422 invalid, among them a changed pod template of a
//! Job, which is immutable, and what [`KubeStandIn::fail_next`] injects: 403 forbidden by RBAC,
//! 409 conflict, 500 internal error).
//!
//! Objects are kept in memory, keyed by their API path. Nothing runs them: the test says how a
//! Deployment or a Job is doing ([`KubeStandIn::set_deployment`], [`KubeStandIn::set_job`]) or
//! lets every Deployment become available on its own ([`KubeStandIn::auto_ready`]). A changed
//! Deployment is mid-rollout (its old pod still available) until the test says otherwise. The
//! namespace's ResourceQuota `pods` is enforced as a cluster does, on the pods and not on the
//! Deployment: one pod per Deployment, and a Deployment whose pod would exceed it gets the
//! condition `ReplicaFailure` (`FailedCreate`, `exceeded quota`) until, read again, its pod fits.
//! Included with `#[path]` by the tests that need it.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One request as the stand-in saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub field_manager: Option<String>,
}

#[derive(Default)]
struct Cluster {
    objects: BTreeMap<String, Value>,
    calls: Vec<Call>,
    auto_ready: bool,
    /// `(method, kind, code)`: the next such request is answered with that error.
    faults: Vec<(String, String, u16)>,
    /// The keys of the Deployments whose pod the namespace's quota refuses.
    over_quota: std::collections::BTreeSet<String>,
    next_uid: u64,
    resource_version: u64,
}

#[derive(Clone, Default)]
pub struct KubeStandIn {
    cluster: Arc<Mutex<Cluster>>,
}

/// What an API path names.
struct Target {
    /// `v1` or `group/version`.
    api_version: String,
    namespace: Option<String>,
    resource: String,
    name: String,
}

impl Target {
    /// `/api/v1/namespaces/N`, `/api/v1/namespaces/NS/R/N`, `/apis/G/V/namespaces/NS/R/N`.
    fn parse(path: &str) -> Option<Self> {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (api_version, rest) = match parts.as_slice() {
            ["api", version, rest @ ..] => ((*version).to_string(), rest),
            ["apis", group, version, rest @ ..] => (format!("{group}/{version}"), rest),
            _ => return None,
        };
        match rest {
            ["namespaces", name] if api_version == "v1" => {
                Some(Self { api_version, namespace: None, resource: "namespaces".into(), name: (*name).into() })
            }
            ["namespaces", namespace, resource, name] => Some(Self {
                api_version,
                namespace: Some((*namespace).into()),
                resource: (*resource).into(),
                name: (*name).into(),
            }),
            _ => None,
        }
    }

    fn key(&self) -> String {
        format!("{}/{}/{}/{}", self.api_version, self.namespace.as_deref().unwrap_or("-"), self.resource, self.name)
    }

    /// The kind of an object at this path, as the deployer's resources name it.
    fn kind(&self) -> &'static str {
        match self.resource.as_str() {
            "namespaces" => "Namespace",
            "resourcequotas" => "ResourceQuota",
            "limitranges" => "LimitRange",
            "networkpolicies" => "NetworkPolicy",
            "deployments" => "Deployment",
            "services" => "Service",
            "jobs" => "Job",
            _ => "Unknown",
        }
    }

    /// `deployments.apps`, as Kubernetes names a resource in its messages.
    fn qualified(&self) -> String {
        match self.api_version.split_once('/') {
            Some((group, _)) => format!("{}.{group}", self.resource),
            None => self.resource.clone(),
        }
    }
}

fn status(code: StatusCode, reason: &str, message: String) -> Response {
    let body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    (code, [("content-type", "application/json")], body.to_string()).into_response()
}

fn object(code: StatusCode, value: &Value) -> Response {
    (code, [("content-type", "application/json")], value.to_string()).into_response()
}

impl KubeStandIn {
    /// Serves on a free loopback port; answers the base URL (`http://127.0.0.1:PORT`).
    pub async fn start(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let router = Router::new().fallback(handle).with_state(self.clone());
        tokio::spawn(async move { axum::serve(listener, router).await.expect("the stand-in serves") });
        url
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cluster> {
        self.cluster.lock().unwrap()
    }

    /// Every Deployment applied from now on is available at once.
    pub fn auto_ready(&self, on: bool) {
        self.lock().auto_ready = on;
    }

    /// The next `method` request on an object of `kind` is answered with `code` as a cluster
    /// would: 403 (RBAC does not allow it), 409 (a conflicting write), or 500 (e.g. etcd timing
    /// out).
    pub fn fail_next(&self, method: &str, kind: &str, code: u16) {
        assert!([403, 409, 500].contains(&code), "no message for {code}");
        self.lock().faults.push((method.to_string(), kind.to_string(), code));
    }

    /// How many `method` requests were made on `path`.
    pub fn count(&self, method: &str, path: &str) -> usize {
        self.lock().calls.iter().filter(|call| call.method == method && call.path == path).count()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    pub fn get(&self, api_version: &str, namespace: Option<&str>, resource: &str, name: &str) -> Option<Value> {
        let key = format!("{api_version}/{}/{resource}/{name}", namespace.unwrap_or("-"));
        self.lock().objects.get(&key).cloned()
    }

    /// The names of the objects of `resource` in `namespace` (namespaces: `None`).
    pub fn names(&self, namespace: Option<&str>, resource: &str) -> Vec<String> {
        let namespace = namespace.unwrap_or("-");
        self.lock()
            .objects
            .keys()
            .filter_map(|key| {
                let parts: Vec<&str> = key.rsplitn(4, '/').collect();
                // name, resource, namespace, api version
                (parts[1] == resource && parts[2] == namespace).then(|| parts[0].to_string())
            })
            .collect()
    }

    /// Sets a Deployment's status as its controller would: available with a ready replica, or
    /// failing with a condition of `kind` (`ReplicaFailure`, or `Progressing` false).
    pub fn set_deployment(&self, namespace: &str, name: &str, outcome: Outcome) {
        let key = format!("apps/v1/{namespace}/deployments/{name}");
        let mut cluster = self.lock();
        let deployment = cluster.objects.get_mut(&key).unwrap_or_else(|| panic!("no Deployment {namespace}/{name}"));
        deployment["status"] = deployment_status(deployment, outcome);
    }

    /// Sets a Job's status: complete, or failed with `message`.
    pub fn set_job(&self, namespace: &str, name: &str, outcome: Outcome) {
        let key = format!("batch/v1/{namespace}/jobs/{name}");
        let mut cluster = self.lock();
        let job = cluster.objects.get_mut(&key).unwrap_or_else(|| panic!("no Job {namespace}/{name}"));
        job["status"] = match outcome {
            Outcome::Ready => json!({ "succeeded": 1, "conditions": [{ "type": "Complete", "status": "True" }] }),
            Outcome::Failed { message, .. } => json!({ "failed": 1, "conditions": [
                { "type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": message },
            ]}),
        };
    }
}

#[derive(Debug, Clone)]
pub enum Outcome {
    Ready,
    Failed { condition: &'static str, message: String },
}

fn deployment_status(deployment: &Value, outcome: Outcome) -> Value {
    let generation = deployment["metadata"]["generation"].clone();
    match outcome {
        Outcome::Ready => json!({
            "observedGeneration": generation,
            "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1,
            "conditions": [
                { "type": "Available", "status": "True", "reason": "MinimumReplicasAvailable" },
                { "type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable" },
            ],
        }),
        Outcome::Failed { condition, message } => {
            let (status, reason) = match condition {
                "ReplicaFailure" => ("True", "FailedCreate"),
                _ => ("False", "ProgressDeadlineExceeded"),
            };
            json!({
                "observedGeneration": generation,
                "conditions": [{ "type": condition, "status": status, "reason": reason, "message": message }],
            })
        }
    }
}

/// A changed Deployment mid-rollout: its new pod starting while the old one still serves (and
/// keeps the Deployment `Available`).
fn rollout_status(deployment: &Value) -> Value {
    let generation = deployment["metadata"]["generation"].clone();
    json!({
        "observedGeneration": generation,
        "replicas": 2, "updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1,
        "unavailableReplicas": 1,
        "conditions": [
            { "type": "Available", "status": "True", "reason": "MinimumReplicasAvailable" },
            { "type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
              "message": format!("ReplicaSet \"{}-7c9d\" is progressing.", deployment["metadata"]["name"].as_str().unwrap_or_default()) },
        ],
    })
}

async fn handle(
    State(stand_in): State<KubeStandIn>,
    method: Method,
    uri: axum::http::Uri,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    stand_in.lock().calls.push(Call {
        method: method.to_string(),
        path: path.clone(),
        field_manager: query.get("fieldManager").cloned(),
    });
    let Some(target) = Target::parse(&path) else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        );
    };
    if let Some(fault) = injected(&stand_in, &method, &target) {
        return fault;
    }
    match method {
        Method::PATCH => apply(&stand_in, &target, &query, &headers, &body),
        Method::GET => {
            let mut cluster = stand_in.lock();
            // The ReplicaSet controller tries again to create a pod the quota refused.
            if cluster.over_quota.contains(&target.key()) {
                start_pod(&mut cluster, &target);
            }
            match cluster.objects.get(&target.key()) {
                Some(found) => object(StatusCode::OK, found),
                None => not_found(&target),
            }
        }
        Method::DELETE => delete(&stand_in, &target),
        _ => status(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", format!("{method} is not supported here")),
    }
}

/// The error [`KubeStandIn::fail_next`] asked for this request, if any (taken once).
fn injected(stand_in: &KubeStandIn, method: &Method, target: &Target) -> Option<Response> {
    let mut cluster = stand_in.lock();
    let at = cluster.faults.iter().position(|(m, kind, _)| m == method.as_str() && kind == target.kind())?;
    let (_, _, code) = cluster.faults.remove(at);
    let qualified = format!("{} \"{}\"", target.qualified(), target.name);
    Some(match code {
        403 => {
            let verb = match *method {
                Method::GET => "get",
                Method::DELETE => "delete",
                _ => "patch",
            };
            let group = target.api_version.split_once('/').map_or("", |(group, _)| group);
            let namespace = target.namespace.as_deref().unwrap_or_default();
            status(
                StatusCode::FORBIDDEN,
                "Forbidden",
                format!(
                    "{qualified} is forbidden: User \"system:serviceaccount:connectors:connectors-gateway\" cannot \
                     {verb} resource \"{}\" in API group \"{group}\" in the namespace \"{namespace}\"",
                    target.resource
                ),
            )
        }
        409 => status(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {qualified}: the object has been modified; please apply your \
                 changes to the latest version and try again"
            ),
        ),
        _ => status(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "Internal error occurred: etcdserver: request timed out".into(),
        ),
    })
}

/// The namespace's `pods` quota (none: no limit).
fn pods_quota(cluster: &Cluster, namespace: &str) -> Option<u64> {
    let quota = cluster.objects.get(&format!("v1/{namespace}/resourcequotas/tenant-quota"))?;
    quota["spec"]["hard"]["pods"].as_str()?.parse().ok()
}

/// Starts the pod of the Deployment at `target` (created, or refused by the quota before), or
/// has the quota refuse it, as the ReplicaSet controller would.
fn start_pod(cluster: &mut Cluster, target: &Target) {
    let key = target.key();
    let namespace = target.namespace.clone().unwrap_or_default();
    let prefix = format!("apps/v1/{namespace}/deployments/");
    let used = cluster
        .objects
        .keys()
        .filter(|k| k.starts_with(&prefix) && **k != key && !cluster.over_quota.contains(*k))
        .count() as u64;
    let limit = pods_quota(cluster, &namespace);
    let auto_ready = cluster.auto_ready;
    let Some(deployment) = cluster.objects.get_mut(&key) else { return };
    if let Some(limit) = limit.filter(|limit| used + 1 > *limit) {
        let message = format!(
            "pods \"{}-5d4f8c7b9-x2x7k\" is forbidden: exceeded quota: tenant-quota, requested: pods=1, used: \
             pods={used}, limited: pods={limit}",
            target.name
        );
        deployment["status"] = deployment_status(deployment, Outcome::Failed { condition: "ReplicaFailure", message });
        cluster.over_quota.insert(key);
        return;
    }
    deployment["status"] = if auto_ready {
        deployment_status(deployment, Outcome::Ready)
    } else {
        json!({ "observedGeneration": deployment["metadata"]["generation"], "replicas": 1, "unavailableReplicas": 1,
        "conditions": [
            { "type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated", "message": "ReplicaSet is progressing." },
        ]})
    };
    cluster.over_quota.remove(&key);
}

fn not_found(target: &Target) -> Response {
    status(StatusCode::NOT_FOUND, "NotFound", format!("{} \"{}\" not found", target.qualified(), target.name))
}

fn apply(
    stand_in: &KubeStandIn,
    target: &Target,
    query: &BTreeMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if content_type != "application/apply-patch+yaml" {
        return status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format ({content_type})"),
        );
    }
    if query.get("fieldManager").is_none_or(String::is_empty) {
        return status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            "fieldManager is required for apply requests".into(),
        );
    }
    // JSON is YAML; the deployer sends JSON.
    let Ok(applied) = serde_json::from_slice::<Value>(body) else {
        return status(StatusCode::BAD_REQUEST, "BadRequest", "the body is not a valid object".into());
    };
    let qualified = format!("{} \"{}\"", target.qualified(), target.name);
    if applied["apiVersion"] != target.api_version.as_str() || applied["kind"] != target.kind() {
        return status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!(
                "{qualified} is invalid: apiVersion/kind {}/{} do not match the path",
                applied["apiVersion"], applied["kind"]
            ),
        );
    }
    if applied["metadata"]["name"] != target.name.as_str()
        || applied["metadata"]["namespace"].as_str() != target.namespace.as_deref()
    {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "the name or namespace of the object does not match the path".into(),
        );
    }
    let mut cluster = stand_in.lock();
    if let Some(namespace) = &target.namespace
        && !cluster.objects.contains_key(&format!("v1/-/namespaces/{namespace}"))
    {
        return status(StatusCode::NOT_FOUND, "NotFound", format!("namespaces \"{namespace}\" not found"));
    }
    let key = target.key();
    let auto_ready = cluster.auto_ready;
    cluster.resource_version += 1;
    let version = cluster.resource_version.to_string();
    if let Some(existing) = cluster.objects.get_mut(&key) {
        let force = query.get("force").is_some_and(|f| f == "true");
        let manager = existing["metadata"]["annotations"]["stand-in/manager"].as_str().unwrap_or_default();
        if !force && manager != query["fieldManager"] {
            return status(
                StatusCode::CONFLICT,
                "Conflict",
                format!("Apply failed with 1 conflict: conflict with \"{manager}\""),
            );
        }
        if target.kind() == "Job" && existing["spec"]["template"] != applied["spec"]["template"] {
            return status(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid",
                format!(
                    "Job.batch \"{}\" is invalid: spec.template: Invalid value: core.PodTemplateSpec{{...}}: field is immutable",
                    target.name
                ),
            );
        }
        let spec_changed = existing.get("spec") != applied.get("spec");
        for field in ["spec", "data"] {
            if let Some(value) = applied.get(field) {
                existing[field] = value.clone();
            }
        }
        existing["metadata"]["labels"] = applied["metadata"]["labels"].clone();
        existing["metadata"]["resourceVersion"] = json!(version);
        if spec_changed && let Some(generation) = existing["metadata"]["generation"].as_i64() {
            existing["metadata"]["generation"] = json!(generation + 1);
            if target.kind() == "Deployment" {
                existing["status"] =
                    if auto_ready { deployment_status(existing, Outcome::Ready) } else { rollout_status(existing) };
            }
        }
        return object(StatusCode::OK, existing);
    }
    cluster.next_uid += 1;
    let mut created = applied;
    created["metadata"]["uid"] = json!(format!("00000000-0000-0000-0000-{:012}", cluster.next_uid));
    created["metadata"]["resourceVersion"] = json!(version);
    created["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
    created["metadata"]["annotations"] = json!({ "stand-in/manager": query["fieldManager"] });
    if matches!(target.kind(), "Deployment" | "Job") {
        created["metadata"]["generation"] = json!(1);
    }
    if target.kind() == "Namespace" {
        created["status"] = json!({ "phase": "Active" });
    }
    cluster.objects.insert(key.clone(), created);
    if target.kind() == "Deployment" {
        start_pod(&mut cluster, target);
    }
    object(StatusCode::CREATED, &cluster.objects[&key])
}

fn delete(stand_in: &KubeStandIn, target: &Target) -> Response {
    let mut cluster = stand_in.lock();
    if cluster.objects.remove(&target.key()).is_none() {
        return not_found(target);
    }
    cluster.over_quota.remove(&target.key());
    if target.kind() == "Namespace" {
        // What a namespace holds goes with it (at once here; a cluster takes a moment).
        let inside = format!("/{}/", target.name);
        cluster.objects.retain(|key, _| !key.contains(&inside) || key.starts_with("v1/-/namespaces/"));
    }
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
        "details": { "name": target.name, "kind": target.resource },
    });
    object(StatusCode::OK, &body)
}
