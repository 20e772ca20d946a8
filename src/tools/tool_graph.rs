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
//! Adapters: the embedded in-process graph (`backends::embedded_tool_graph`), and later Neo4j
//! (`(:Tool)-[:OFTEN_USED_WITH]->(:Tool)`). The port names neither.

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
    /// query joins the tenant's history, and every pair of those tools co-occurs once more for
    /// `tenant`.
    async fn record_served(&self, tenant: &TenantId, served: &ServedQuery) -> Result<(), ToolGraphError>;

    /// The tenant's most recent served queries (at most `limit`), oldest first.
    async fn served_queries(&self, tenant: &TenantId, limit: usize) -> Result<Vec<ServedQuery>, ToolGraphError>;

    /// The shared `OFTEN_USED_WITH` edges leaving `tool`: those the adapter's `CoUsagePolicy`
    /// lets through, counted as it says.
    async fn often_used_with(&self, tool: &str) -> Result<Vec<OftenUsedWith>, ToolGraphError>;

    /// Every shared `OFTEN_USED_WITH` edge, to warm a cache at start-up.
    async fn all_often_used_with(&self) -> Result<Vec<OftenUsedWith>, ToolGraphError>;
}
