//! The [`KubernetesDeployer`]: tenants' own servers as Deployments in a namespace per tenant.
//!
//! Every object is written with server-side apply (field manager `connectors-gateway`, forced),
//! so deploying again (a retry, or the same deployment resumed after a restart of the gateway)
//! re-applies the same objects and changes nothing that is already right. A deployment is done
//! when its Deployment is available; the deployer reads its status every `pollInterval` until
//! then, or until `readyTimeoutSeconds`. A `github` source is first built into an image by a Job.
//!
//! Errors are for the tenant: the cluster's own messages (a quota refusal says which quota), no
//! credential. A refusal that retrying cannot cure (403 forbidden, 422 invalid) fails the
//! deployment at once; anything else, a pod the quota does not let the cluster create included,
//! fails the attempt, and the tenant's `Deployments` decides whether to try again.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use connectors_actors::deployer::{
    DeployError, Deployer, DeployerEvent, Endpoint, Health, ServerName, ServerSource, SourceKind,
};
use connectors_actors::store::Store;
use connectors_actors::tenant::TenantId;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::broadcast;

use super::manifests;
use super::names;
use super::settings::{ClusterAccess, KubernetesSettings};
use super::status::{self, Progress};

/// The field manager of every apply: the owner of the fields the deployer sets.
pub const FIELD_MANAGER: &str = "connectors-gateway";

#[derive(Debug, thiserror::Error)]
pub enum KubernetesSetupError {
    #[error("cannot find the cluster (KUBECONFIG, ~/.kube/config or a pod's service account): {0}")]
    Infer(String),
    #[error("cannot use the kubeconfig {path}: {error}")]
    Kubeconfig { path: String, error: String },
    #[error("cannot build the Kubernetes client: {0}")]
    Client(String),
}

pub struct KubernetesDeployer {
    client: kube::Client,
    settings: Arc<KubernetesSettings>,
    /// Where the tenant's plan (and so its namespace's quota) is read.
    store: Arc<dyn Store>,
    /// Never sent on: Kubernetes restarts a server's container itself, and a deployment's end
    /// is the answer of [`Deployer::deploy`].
    events: broadcast::Sender<DeployerEvent>,
}

impl KubernetesDeployer {
    /// Connects (lazily: no request is made here) to the cluster the settings name.
    pub async fn connect(settings: KubernetesSettings, store: Arc<dyn Store>) -> Result<Self, KubernetesSetupError> {
        let config = match &settings.access {
            ClusterAccess::Infer => {
                kube::Config::infer().await.map_err(|e| KubernetesSetupError::Infer(e.to_string()))?
            }
            ClusterAccess::Kubeconfig { path, context } => {
                let bad = |error: String| KubernetesSetupError::Kubeconfig { path: path.display().to_string(), error };
                let kubeconfig = Kubeconfig::read_from(path).map_err(|e| bad(e.to_string()))?;
                let options = KubeConfigOptions { context: context.clone(), ..KubeConfigOptions::default() };
                kube::Config::from_custom_kubeconfig(kubeconfig, &options).await.map_err(|e| bad(e.to_string()))?
            }
        };
        tracing::info!(cluster = %config.cluster_url, "deployer: Kubernetes");
        let client = kube::Client::try_from(config).map_err(|e| KubernetesSetupError::Client(e.to_string()))?;
        Ok(Self::new(client, settings, store))
    }

    pub fn new(client: kube::Client, settings: KubernetesSettings, store: Arc<dyn Store>) -> Self {
        Self { client, settings: Arc::new(settings), store, events: broadcast::channel(1).0 }
    }

    pub fn settings(&self) -> &KubernetesSettings {
        &self.settings
    }

    /// Applies one object of [`manifests`], whatever its kind.
    async fn apply(&self, object: &Value) -> Result<(), DeployError> {
        self.try_apply(object).await.map_err(|e| refused(text(object, "/kind"), text(object, "/metadata/name"), e))
    }

    /// [`Self::apply`], answering the cluster's error as it is.
    async fn try_apply(&self, object: &Value) -> Result<(), kube::Error> {
        let (kind, name) = (text(object, "/kind"), text(object, "/metadata/name"));
        let (group, version) = match text(object, "/apiVersion").split_once('/') {
            Some((group, version)) => (group, version),
            None => ("", text(object, "/apiVersion")),
        };
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
        let api: Api<DynamicObject> = match object.pointer("/metadata/namespace").and_then(Value::as_str) {
            Some(namespace) => Api::namespaced_with(self.client.clone(), namespace, &resource),
            None => Api::all_with(self.client.clone(), &resource),
        };
        let params = PatchParams::apply(FIELD_MANAGER).force();
        api.patch(name, &params, &Patch::Apply(object)).await.map(drop)
    }

    /// The tenant's namespace and its fence, as its plan says.
    async fn apply_tenant(&self, tenant: &TenantId) -> Result<(), DeployError> {
        let plan = match self.store.tenant(tenant).await {
            Ok(Some(record)) => record.plan,
            Ok(None) => return Err(DeployError::Refused("the tenant no longer exists".into())),
            Err(error) => return Err(DeployError::Failed(format!("cannot read the tenant's plan: {error}"))),
        };
        for object in manifests::tenant_objects(&self.settings, tenant, &plan) {
            self.apply(&object).await?;
        }
        Ok(())
    }

    /// Builds `repository` into an image under `registry` with a Job, or finds it built;
    /// answers the image.
    async fn build(
        &self,
        tenant: &TenantId,
        name: &ServerName,
        registry: &str,
        repository: &str,
    ) -> Result<String, DeployError> {
        let image = manifests::built_image(registry, tenant, name, repository);
        let object = manifests::build_job(&self.settings, tenant, name, repository, &image);
        let jobs: Api<Job> = Api::namespaced(self.client.clone(), &names::namespace(tenant));
        let job = names::build_job(name);
        match self.try_apply(&object).await {
            // A Job's pod template cannot change: a build of another repository or by another
            // builder replaces the Job of the last one (a Job the cluster refuses for another
            // reason is refused again, and that answer is final).
            Err(kube::Error::Api(status)) if status.code == 422 => {
                tracing::info!(%tenant, server = %name, reason = %status.message, "replacing the build Job");
                delete(&jobs, &job).await?;
                self.apply(&object).await?;
            }
            applied => applied.map_err(|e| refused("Job", &job, e))?,
        }
        if let Err(error) = self.wait(&jobs, &job, self.settings.build_timeout, status::job).await {
            // A failed or late Job stays so: the next attempt needs a new one. A Job that could
            // not be read may still be building and is left alone.
            if error.ended()
                && let Err(failed) = delete(&jobs, &job).await
            {
                tracing::warn!(%tenant, server = %name, error = %failed, "cannot delete the failed build Job");
            }
            return Err(error.into());
        }
        Ok(image)
    }

    /// Runs `image` as the server and waits until it is available.
    async fn run(&self, tenant: &TenantId, name: &ServerName, image: &str) -> Result<Endpoint, DeployError> {
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), &names::namespace(tenant));
        let object = names::server_object(name);
        // A rollout past its progress deadline is never tried again by the cluster: this attempt
        // starts it afresh with a new Deployment.
        let existing = deployments.get_opt(&object).await.map_err(|e| refused("Deployment", &object, e))?;
        if existing.as_ref().is_some_and(status::deadline_exceeded) {
            tracing::info!(%tenant, server = %name, "restarting a rollout past its progress deadline");
            delete(&deployments, &object).await?;
        }
        for object in manifests::server_objects(&self.settings, tenant, name, image) {
            self.apply(&object).await?;
        }
        self.wait(&deployments, &object, self.settings.ready_timeout, status::deployment).await?;
        Ok(Endpoint::Deployed { url: manifests::endpoint_url(&self.settings, tenant, name) })
    }

    /// Reads `name` every poll interval until `judge` says it is done or failed, or `timeout`.
    async fn wait<K>(
        &self,
        api: &Api<K>,
        name: &str,
        timeout: Duration,
        judge: fn(&K) -> Progress,
    ) -> Result<(), WaitError>
    where
        K: kube::Resource + Clone + DeserializeOwned + Debug,
        K::DynamicType: Default,
    {
        let kind = K::kind(&K::DynamicType::default()).into_owned();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let current = api.get_opt(name).await.map_err(|e| WaitError::Unread(refused(&kind, name, e)))?;
            let Some(current) = current else {
                return Err(WaitError::Deleted { kind, name: name.to_owned() });
            };
            match judge(&current) {
                Progress::Done => return Ok(()),
                Progress::Failed(why) => return Err(WaitError::Failed(why)),
                Progress::Waiting(waiting) if tokio::time::Instant::now() >= deadline => {
                    return Err(WaitError::TimedOut { seconds: timeout.as_secs(), waiting });
                }
                Progress::Waiting(_) => tokio::time::sleep(self.settings.poll_interval).await,
            }
        }
    }
}

#[async_trait]
impl Deployer for KubernetesDeployer {
    /// `docker`, `http`, and `github` when a registry is configured. `stdio` is not: a command
    /// is not an image, and running it in the gateway's pod would share the gateway's
    /// isolation with every tenant.
    fn supports(&self, kind: SourceKind) -> bool {
        match kind {
            SourceKind::Docker | SourceKind::Http => true,
            SourceKind::Github => self.settings.registry.is_some(),
            SourceKind::Stdio => false,
        }
    }

    async fn deploy(
        &self,
        tenant: &TenantId,
        name: &ServerName,
        source: &ServerSource,
    ) -> Result<Endpoint, DeployError> {
        let image = match source {
            ServerSource::Http { url, .. } => return Ok(Endpoint::Http { url: url.clone() }),
            ServerSource::Stdio { .. } => return Err(DeployError::Unsupported(SourceKind::Stdio)),
            ServerSource::Docker { image } => {
                self.apply_tenant(tenant).await?;
                image.clone()
            }
            ServerSource::Github { url } => {
                let Some(registry) = &self.settings.registry else {
                    return Err(DeployError::Unsupported(SourceKind::Github));
                };
                self.apply_tenant(tenant).await?;
                self.build(tenant, name, registry, url).await?
            }
        };
        let endpoint = self.run(tenant, name, &image).await?;
        tracing::info!(%tenant, server = %name, %endpoint, "server deployed on Kubernetes");
        Ok(endpoint)
    }

    async fn stop(&self, tenant: &TenantId, name: &ServerName) -> Result<(), DeployError> {
        let namespace = names::namespace(tenant);
        let object = names::server_object(name);
        delete(&Api::<Deployment>::namespaced(self.client.clone(), &namespace), &object).await?;
        delete(&Api::<Service>::namespaced(self.client.clone(), &namespace), &object).await?;
        delete(&Api::<Job>::namespaced(self.client.clone(), &namespace), &names::build_job(name)).await
    }

    async fn remove_tenant(&self, tenant: &TenantId) -> Result<(), DeployError> {
        delete(&Api::<Namespace>::all(self.client.clone()), &names::namespace(tenant)).await
    }

    async fn health(&self, tenant: &TenantId, name: &ServerName) -> Option<Health> {
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), &names::namespace(tenant));
        let deployment = deployments.get_opt(&names::server_object(name)).await.ok()??;
        let restarts = 0;
        Some(match status::deployment(&deployment) {
            Progress::Done => Health::Running { restarts },
            Progress::Failed(error) => Health::GaveUp { error },
            Progress::Waiting(why) => {
                Health::Restarting { restarts, restart_in: self.settings.poll_interval, last_error: why }
            }
        })
    }

    fn events(&self) -> broadcast::Receiver<DeployerEvent> {
        self.events.subscribe()
    }
}

/// Deletes `name` (and, in the background, what it owns); already gone is done.
async fn delete<K>(api: &Api<K>, name: &str) -> Result<(), DeployError>
where
    K: kube::Resource + Clone + DeserializeOwned + Debug,
    K::DynamicType: Default,
{
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(error) => Err(refused(&K::kind(&K::DynamicType::default()), name, error)),
    }
}

/// Why waiting for an object to be done ended without it.
#[derive(Debug, thiserror::Error)]
enum WaitError {
    /// Its status says it failed.
    #[error("{0}")]
    Failed(String),
    #[error("not ready after {seconds} s: {waiting}")]
    TimedOut { seconds: u64, waiting: String },
    #[error("the {kind} {name} was deleted while deploying")]
    Deleted { kind: String, name: String },
    /// It could not be read; it may still be on its way.
    #[error(transparent)]
    Unread(DeployError),
}

impl WaitError {
    /// Whether the object itself has ended without being done (failed, or out of time).
    fn ended(&self) -> bool {
        matches!(self, WaitError::Failed(_) | WaitError::TimedOut { .. })
    }
}

impl From<WaitError> for DeployError {
    fn from(error: WaitError) -> Self {
        match error {
            WaitError::Unread(error) => error,
            ended => DeployError::Failed(ended.to_string()),
        }
    }
}

/// The cluster's answer as a deployment error: a refusal by RBAC or admission (403) or by
/// validation (422) is final (the same request would be refused again), the rest may pass when
/// tried again.
fn refused(kind: &str, name: &str, error: kube::Error) -> DeployError {
    match error {
        kube::Error::Api(status) => {
            let message = format!("the cluster refused the {kind} {name}: {}", status.message);
            if matches!(status.code, 403 | 422) { DeployError::Refused(message) } else { DeployError::Failed(message) }
        }
        other => DeployError::Failed(format!("cannot reach the Kubernetes API: {other}")),
    }
}

/// A string field of a manifest this module built (always present there).
fn text<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
}
