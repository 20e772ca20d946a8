//! The admission protocol between the HTTP edge and a tenant actor: what the edge asks, what
//! the actor decides.

use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::api_key::KeyHash;
use crate::deployer::ServerName;
use crate::deployments::ServerRecord;
use crate::quotas::{Quota, QuotaExceeded};
use crate::rate_windows::RateStatus;
use crate::tenant::{Features, Limits, TenantRecord};
use crate::usage::{Month, UsageCounters};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdmissionRequest {
    /// Hash of the key the caller presented, if any.
    pub key: Option<KeyHash>,
    /// False only in `requireApiKey: false` mode for a request without a key.
    pub key_required: bool,
    pub client_ip: IpAddr,
    /// The quota this request consumes one unit of, if any.
    pub charge: Option<Quota>,
    /// A `tools/select` request: counted in the `selections` usage when admitted. (Added after
    /// version 1 of the node-to-node payload: absent means false.)
    #[serde(default)]
    pub selection: bool,
    /// A `tools/invoke` of a tool on the tenant's own server: the admission also answers that
    /// server's record ([`Admission::server`]), and `charge` applies only when the server can
    /// take the call, so that an invocation costs one call to the owner. (Added after version 1
    /// of the node-to-node payload: an older owner ignores it, charges regardless and answers no
    /// record.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerName>,
}

impl AdmissionRequest {
    /// The request as the tenant's core decides it: an invocation of a tool on a server that
    /// cannot take the call is admitted without its charge.
    pub fn for_server(&self, server: Option<&ServerLookup>) -> std::borrow::Cow<'_, AdmissionRequest> {
        match server {
            Some(lookup) if self.charge.is_some() && !lookup.can_take_calls() => {
                std::borrow::Cow::Owned(AdmissionRequest { charge: None, ..self.clone() })
            }
            _ => std::borrow::Cow::Borrowed(self),
        }
    }
}

/// What the owner found of the server an [`AdmissionRequest::server`] names.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ServerLookup {
    NotFound,
    /// Boxed: every admission carries room for a lookup, and few need one.
    Found(Box<ServerRecord>),
}

impl ServerLookup {
    /// A call to it goes ahead (and is charged).
    pub fn can_take_calls(&self) -> bool {
        matches!(self, ServerLookup::Found(record) if record.can_take_calls())
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Denial {
    Unauthorized,
    Suspended,
    IpNotAllowed,
    RateLimited {
        retry_after: u64,
    },
    QuotaExceeded(QuotaExceeded),
    /// The admission reached the owner after the node that asked stopped waiting (see
    /// `AnswerBy`); nothing was counted.
    Late,
}

/// The tenant as seen by one request: configuration and the current month's usage.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TenantSnapshot {
    pub record: Arc<TenantRecord>,
    /// `record.fingerprint()` when the snapshot's maker knew it (the tenant's actor computes it
    /// once per record version); never sent.
    #[serde(skip)]
    pub record_fingerprint: Option<u64>,
    pub limits: Limits,
    pub features: Features,
    pub month: Month,
    pub usage: UsageCounters,
}

impl TenantSnapshot {
    /// The record's fingerprint, known or computed.
    pub fn record_fingerprint(&self) -> u64 {
        self.record_fingerprint.unwrap_or_else(|| self.record.fingerprint())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Admission {
    pub verdict: Result<TenantSnapshot, Denial>,
    /// The rate windows after this request, for the response headers; `None` when rate limits
    /// are disabled.
    pub rate: Option<RateStatus>,
    /// The server [`AdmissionRequest::server`] asked for, when the request was admitted.
    /// (Added after version 1 of the node-to-node payload: absent from an older owner.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerLookup>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deployer::{Endpoint, ServerSource};
    use crate::deployments::ServerStatus;

    fn invocation() -> AdmissionRequest {
        AdmissionRequest {
            key: None,
            key_required: false,
            client_ip: IpAddr::from([127, 0, 0, 1]),
            charge: Some(Quota::ToolInvocations),
            selection: false,
            server: Some(ServerName::parse("notes").unwrap()),
        }
    }

    fn server(status: ServerStatus, endpoint: Option<Endpoint>) -> ServerLookup {
        ServerLookup::Found(Box::new(ServerRecord {
            name: ServerName::parse("notes").unwrap(),
            deployment_id: "d-1".into(),
            source: ServerSource::Http { url: "http://127.0.0.1:9/mcp".into(), oauth_integration: None },
            category: "productivity".into(),
            description: None,
            status,
            endpoint,
            tools_discovered: 1,
            created_at: chrono::DateTime::from_timestamp(1_790_000_000, 0).unwrap(),
            error: None,
            attempts: 1,
        }))
    }

    #[test]
    fn an_invocation_is_charged_only_when_its_server_can_take_the_call() {
        let request = invocation();
        let endpoint = Some(Endpoint::Http { url: "http://127.0.0.1:9/mcp".into() });
        let ready = server(ServerStatus::Ready, endpoint.clone());
        assert_eq!(request.for_server(Some(&ready)).charge, Some(Quota::ToolInvocations));
        for lookup in [
            ServerLookup::NotFound,
            server(ServerStatus::Deploying, None),
            server(ServerStatus::Failed, endpoint),
            server(ServerStatus::Ready, None),
        ] {
            assert_eq!(request.for_server(Some(&lookup)).charge, None, "{lookup:?}");
        }
        // A shared integration's tool names no server: the charge stands.
        assert_eq!(request.for_server(None).charge, Some(Quota::ToolInvocations));
    }
}
