//! The `ToolGraph` port: what selection learns from traffic, kept durably.
//!
//! Two kinds of knowledge, with different owners:
//! - a tenant's served queries ("tenant T's query Q was served by tools [ids]"), readable only
//!   for that tenant: its query text never reaches another tenant's ranking;
//! - tool-to-tool co-usage, `OFTEN_USED_WITH {confidence, coOccurrences, tenants}`, shared by all
//!   tenants and made of tool ids only, as far as the adapter's
//!   [`CoUsagePolicy`](crate::tools::co_usage_policy::CoUsagePolicy) allows: an edge appears once
//!   enough distinct tenants back it, and no tenant weighs more than a few queries in it, so one
//!   tenant's feedback cannot change the rankings of the others.
//!
//! A tenant's served queries are numbered 1, 2, … in the order they were recorded, so that a
//! reader (the selector of each gateway node) can ask for what came after what it has learned:
//! with a shared adapter, queries recorded through other nodes.
//!
//! Adapters: the embedded in-process graph of a single node, one in Redis shared by a cluster's
//! nodes, one in Neo4j. The port names none.

use async_trait::async_trait;
use connectors_actors::tenant::TenantId;
use serde::{Deserialize, Serialize};

use crate::tools::catalog::ToolId;

/// A query and the tools that served it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServedQuery {
    pub query: String,
    pub tools: Vec<ToolId>,
}

impl ServedQuery {
    /// The query as the graph records it: its tools distinct and in id order; `None` when it has
    /// no tool (nothing is recorded then).
    pub fn normalized(&self) -> Option<ServedQuery> {
        let tools: std::collections::BTreeSet<&ToolId> = self.tools.iter().collect();
        (!tools.is_empty())
            .then(|| ServedQuery { query: self.query.clone(), tools: tools.into_iter().cloned().collect() })
    }
}

/// A served query and its number in its tenant's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedQuery {
    /// 1 for the tenant's first recorded query, one more for each later one.
    pub number: u64,
    #[serde(flatten)]
    pub served: ServedQuery,
}

/// The newest served queries a shared adapter keeps per tenant; older ones may be forgotten.
/// As many as the selector's memory holds (`Tuning::memory_limit`): it never reads more.
pub const HISTORY_KEPT: u64 = 20_000;

/// A directed co-usage edge: of the times `from` served a query, the share in which `to` served
/// it too, each tenant's queries capped as
/// [`CoUsagePolicy::edge`](crate::tools::co_usage_policy::CoUsagePolicy::edge) says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OftenUsedWith {
    pub from: ToolId,
    pub to: ToolId,
    /// The share of `from`'s queries that `to` served too, in (0, 1].
    pub confidence: f64,
    /// Queries served by both, at most the policy's cap of each tenant.
    pub co_occurrences: u64,
    /// Distinct tenants with a query served by both.
    pub tenants: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolGraphError {
    #[error("tool graph backend failed: {0}")]
    Backend(String),
    #[error("stored tool graph data is unreadable: {0}")]
    Corrupt(String),
}

#[async_trait]
pub trait ToolGraph: Send + Sync + 'static {
    /// Records that `tenant`'s query was served by `served.tools` (duplicates count once): the
    /// query joins the tenant's history under the next number, and every pair of those tools
    /// co-occurs once more for `tenant`. Nothing is recorded when `served.tools` is empty.
    /// Concurrent records (from several nodes) are all counted.
    async fn record_served(&self, tenant: &TenantId, served: &ServedQuery) -> Result<(), ToolGraphError>;

    /// The tenant's served queries numbered above `after`, the newest `limit` of them, oldest
    /// first (`after` 0: from the start).
    async fn served_queries(
        &self,
        tenant: &TenantId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<RecordedQuery>, ToolGraphError>;

    /// A number that grows whenever a query is recorded (for any tenant), so that a reader
    /// holding a copy of the shared edges knows when to read them again.
    async fn co_usage_version(&self) -> Result<u64, ToolGraphError>;

    /// The shared `OFTEN_USED_WITH` edges leaving `tool`: those the adapter's `CoUsagePolicy`
    /// lets through, counted as it says.
    async fn often_used_with(&self, tool: &str) -> Result<Vec<OftenUsedWith>, ToolGraphError>;

    /// Every shared `OFTEN_USED_WITH` edge, to warm a cache at start-up.
    async fn all_often_used_with(&self) -> Result<Vec<OftenUsedWith>, ToolGraphError>;
}
