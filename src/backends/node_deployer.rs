//! Which deployer runs tenants' own servers for this node: the local one (stdio servers as child
//! processes), or the Kubernetes one when `deployer.kubernetes` is configured; and the MCP pool
//! that reaches what the chosen one deploys.

use std::sync::Arc;

use connectors_actors::deployer::Deployer;
use connectors_actors::store::Store;

use super::kubernetes::{KubernetesDeployer, KubernetesSettings, KubernetesSetupError, manifests};
use super::local_deployer::{LocalDeployer, LocalDeployerConfig};
use crate::outbound::{CheckedHttp, OutboundPolicy};
use crate::tools::mcp_client::McpPool;

pub enum NodeDeployer {
    Local(Arc<LocalDeployer>),
    Kubernetes(Arc<KubernetesDeployer>),
}

impl NodeDeployer {
    pub fn local(config: LocalDeployerConfig) -> Self {
        Self::Local(Arc::new(LocalDeployer::new(config)))
    }

    pub async fn kubernetes(settings: KubernetesSettings, store: Arc<dyn Store>) -> Result<Self, KubernetesSetupError> {
        Ok(Self::Kubernetes(Arc::new(KubernetesDeployer::connect(settings, store).await?)))
    }

    /// The port the tenant actors use.
    pub fn port(&self) -> Arc<dyn Deployer> {
        match self {
            Self::Local(local) => local.clone(),
            Self::Kubernetes(kubernetes) => kubernetes.clone(),
        }
    }

    /// The MCP pool: with the local deployer's stdio pipes, or with a client for the Kubernetes
    /// deployer's endpoints that trusts its Services' names (`.svc.<clusterDomain>`), which
    /// `outbound` refuses tenants' own URLs.
    pub fn mcp_pool(&self, http: CheckedHttp, outbound: &OutboundPolicy) -> reqwest::Result<McpPool> {
        Ok(match self {
            Self::Local(local) => McpPool::with_pipes(http, local.clone()),
            Self::Kubernetes(kubernetes) => {
                let trusting = outbound.trusting_suffix(&manifests::service_suffix(kubernetes.settings()));
                let deployed = CheckedHttp::new(Arc::new(trusting), reqwest::Client::builder())?;
                McpPool::with_deployed(http, deployed)
            }
        })
    }

    /// Ends what runs on this node: the local deployer's stdio servers (their actors restart them
    /// on activation). Servers on Kubernetes outlive the gateway.
    pub async fn shutdown(&self) {
        if let Self::Local(local) = self {
            local.shutdown().await;
        }
    }
}
