//! The `Deployer` port: how a tenant's own MCP server is brought up, reached and taken down.
//!
//! This file names what can be deployed ([`ServerSource`], validated [`ServerName`]), where a
//! deployed server is reached ([`Endpoint`]) and what a deployer reports on its own
//! ([`DeployerEvent`]). It decides nothing about *when* to deploy, retry or stop: that is
//! [`crate::deployments::Deployments`]. Adapters live in the `connectors` crate: the local one
//! (child processes on this node) and the Kubernetes one (namespace `tenant-<id>`), so nothing
//! here speaks of processes, pipes, pods or namespaces.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::tenant::TenantId;

/// The name of a tenant's own server: `^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`.
///
/// Why so strict: the name is a Kubernetes resource name (a DNS label, at most 63 characters), a
/// directory name under the tenant's data dir (no `/`, no `..`), and the first half of tool ids
/// `<serverName>.<toolName>` (no `.`, so the id splits at its first dot).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ServerName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid server name `{0}`: use 1 to 63 lowercase letters, digits and inner hyphens (^[a-z0-9]([a-z0-9-]{{0,61}}[a-z0-9])?$)"
)]
pub struct BadServerName(pub String);

impl ServerName {
    pub fn parse(text: &str) -> Result<Self, BadServerName> {
        let bytes = text.as_bytes();
        let edge_ok = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        let valid = !bytes.is_empty()
            && bytes.len() <= 63
            && edge_ok(bytes[0])
            && edge_ok(bytes[bytes.len() - 1])
            && bytes.iter().all(|&b| edge_ok(b) || b == b'-');
        if valid { Ok(Self(text.to_owned())) } else { Err(BadServerName(text.to_owned())) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ServerName {
    type Error = BadServerName;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<ServerName> for String {
    fn from(name: ServerName) -> String {
        name.0
    }
}

impl fmt::Display for ServerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The kinds of source, as the API's `source.type` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Github,
    Docker,
    Http,
    Stdio,
}

impl SourceKind {
    pub const ALL: [SourceKind; 4] = [SourceKind::Github, SourceKind::Docker, SourceKind::Http, SourceKind::Stdio];

    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Github => "github",
            SourceKind::Docker => "docker",
            SourceKind::Http => "http",
            SourceKind::Stdio => "stdio",
        }
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a server comes from, in the API's shape (`{type, url?, image?, command?, args?,
/// oauthIntegration?}`): each kind carries the fields it needs and no others.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", rename_all_fields = "camelCase")]
pub enum ServerSource {
    /// A repository to build and run (needs a deployer that builds images).
    Github { url: String },
    /// An image to run (needs a deployer that runs containers).
    Docker { image: String },
    /// A server already running elsewhere, speaking streamable HTTP at `url`; the tenant's
    /// credential for `oauth_integration`, if given, is injected into calls.
    Http {
        url: String,
        // Spelled out as well as by `rename_all_fields`, which schema derivation does not read.
        #[serde(default, skip_serializing_if = "Option::is_none", rename = "oauthIntegration")]
        oauth_integration: Option<String>,
    },
    /// A command speaking MCP over its stdin and stdout.
    Stdio {
        command: String,
        #[serde(default)]
        args: Vec<String>,
    },
}

impl ServerSource {
    pub fn kind(&self) -> SourceKind {
        match self {
            ServerSource::Github { .. } => SourceKind::Github,
            ServerSource::Docker { .. } => SourceKind::Docker,
            ServerSource::Http { .. } => SourceKind::Http,
            ServerSource::Stdio { .. } => SourceKind::Stdio,
        }
    }
}

/// Where a deployed server is reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Endpoint {
    /// Streamable HTTP at this URL, which the tenant gave (an `http` source): reached only where
    /// the outbound policy lets tenants' URLs go.
    Http { url: String },
    /// Streamable HTTP at a URL the deployer made for a server it runs (a Kubernetes Service):
    /// the deployer's own addresses are trusted as a tenant's URL never is, since a tenant picks
    /// neither its host nor its port.
    Deployed { url: String },
    /// The stdin and stdout of a process the deployer runs on this node; the MCP client asks
    /// that deployer for them by tenant and server name.
    Stdio,
}

impl fmt::Display for Endpoint {
    /// The API's `endpoint` field.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Http { url } | Endpoint::Deployed { url } => f.write_str(url),
            Endpoint::Stdio => f.write_str("stdio"),
        }
    }
}

/// Why a deployment did not happen. The reason is for the tenant: it names no secret and no
/// path outside the tenant's own directory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum DeployError {
    /// This deployer cannot run this kind of source at all (the API's 422 `deployer_unavailable`).
    #[error("this gateway cannot deploy `{0}` sources")]
    Unsupported(SourceKind),
    /// The operator's policy forbids it (e.g. a command not on the allow-list); retrying cannot help.
    #[error("refused: {0}")]
    Refused(String),
    /// It was tried and failed; trying again may succeed.
    #[error("deployment failed: {0}")]
    Failed(String),
}

impl DeployError {
    /// Whether the same deployment may succeed if tried again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, DeployError::Failed(_))
    }
}

/// How a deployed server is doing, as its deployer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Up; `restarts` counts the times it died and was started again.
    Running { restarts: u32 },
    /// It died and will be started again after `restart_in`.
    Restarting { restarts: u32, restart_in: Duration, last_error: String },
    /// It kept dying and the deployer stopped restarting it.
    GaveUp { error: String },
}

/// What a deployer reports without being asked, about a server it deployed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployerEvent {
    pub tenant: TenantId,
    pub name: ServerName,
    pub kind: DeployerEventKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeployerEventKind {
    /// The server died (`error` says how) and will be started again after `restart_in`.
    Died { error: String, restarts: u32, restart_in: Duration },
    /// The server was started again after dying.
    Restarted { restarts: u32 },
    /// The server kept dying; the deployer no longer restarts it. The deployment has failed.
    GaveUp { error: String },
}

#[async_trait]
pub trait Deployer: Send + Sync + 'static {
    /// Whether this deployer can deploy sources of `kind` at all. Every deployer takes `http`
    /// sources (deploying one is registering its URL).
    fn supports(&self, kind: SourceKind) -> bool;

    /// Brings the server up (or finds it up: deploying the same source again is harmless) and
    /// says where it is reached.
    async fn deploy(
        &self,
        tenant: &TenantId,
        name: &ServerName,
        source: &ServerSource,
    ) -> Result<Endpoint, DeployError>;

    /// Takes the server down and frees what it held. Stopping an unknown server succeeds, so a
    /// stop can be repeated after a crash of the caller.
    async fn stop(&self, tenant: &TenantId, name: &ServerName) -> Result<(), DeployError>;

    /// Frees what the deployer holds for the tenant beyond its servers (each already stopped),
    /// once the tenant is deleted. Removing an unknown tenant succeeds.
    async fn remove_tenant(&self, _tenant: &TenantId) -> Result<(), DeployError> {
        Ok(())
    }

    /// How the server is doing; `None` when this deployer does not run it.
    async fn health(&self, tenant: &TenantId, name: &ServerName) -> Option<Health>;

    /// Reports from now on. A receiver that falls behind loses the oldest reports (it is told
    /// with `RecvError::Lagged`) and should then ask [`Deployer::health`] of what it runs.
    fn events(&self) -> broadcast::Receiver<DeployerEvent>;
}
