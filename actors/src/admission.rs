//! The admission protocol between the HTTP edge and a tenant actor: what the edge asks, what
//! the actor decides.

use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::api_key::KeyHash;
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
    pub limits: Limits,
    pub features: Features,
    pub month: Month,
    pub usage: UsageCounters,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Admission {
    pub verdict: Result<TenantSnapshot, Denial>,
    /// The rate windows after this request, for the response headers; `None` when rate limits
    /// are disabled.
    pub rate: Option<RateStatus>,
}
