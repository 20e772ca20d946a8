//! `TenantHandOff`: what a tenant's actor hands to the node that owns the tenant next, so that the
//! new owner starts its actor from the live state instead of reading it back from the store.
//!
//! The old owner writes the same state out and commits it before it confirms the release, so the
//! store stays the fallback (a hand-off that does not arrive, a node at another version) and the
//! snapshot never carries anything the store would not: using one or the other counts nothing
//! twice. OAuth credentials and custom servers are not in it: the secret store and the store are
//! their only truth, read by the actor as it starts.

use serde::{Deserialize, Serialize};

use crate::rate_windows::WindowCount;
use crate::tenant::TenantRecord;
use crate::usage::{Month, UsageCounters};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantHandOff {
    pub record: TenantRecord,
    /// The rate windows' counts (as a checkpoint holds them).
    pub windows: [WindowCount; 3],
    /// The month the usage counts, and the counts.
    pub month: Month,
    pub usage: UsageCounters,
}
