//! The Kubernetes deployer of tenants' own MCP servers: a namespace per tenant (`tenant-<id>`,
//! fenced by a quota from its plan, default container limits and a network policy that lets
//! in only the gateway), and per server a Deployment and a Service (and, for a `github`
//! source, a build Job first). `deployer.kubernetes` in the config turns it on.

pub mod deployer;
pub mod manifests;
pub mod names;
pub mod settings;
pub mod status;

pub use deployer::{KubernetesDeployer, KubernetesSetupError};
pub use settings::{KubernetesSection, KubernetesSettings};
