//! `CoUsageCounts`: the per-tenant counts the shared `OFTEN_USED_WITH` edges are made of —
//! queries each tool served, and queries both tools of a pair served, for each tenant — and the
//! edges a [`CoUsagePolicy`] makes of them. Every `ToolGraph` adapter keeps these counts in its own
//! storage and derives its edges here, so that all read the policy the same way. It stores
//! nothing and does no I/O.

use std::collections::HashMap;

use connectors_actors::tenant::TenantId;

use crate::tools::catalog::ToolId;
use crate::tools::co_usage_policy::{CoUsagePolicy, Contribution};
use crate::tools::tool_graph::OftenUsedWith;

/// Queries counted per tenant.
type PerTenant = HashMap<TenantId, u64>;

#[derive(Debug, Clone, Default)]
pub struct CoUsageCounts {
    /// Queries each tool served, per tenant.
    usage: HashMap<ToolId, PerTenant>,
    /// Queries both tools served, per tenant, keyed `from` then `to`.
    co_occurrences: HashMap<ToolId, HashMap<ToolId, PerTenant>>,
}

impl CoUsageCounts {
    /// Counts one query of `tenant` served by `tools` (distinct): each tool once, each ordered
    /// pair once.
    pub fn add_served(&mut self, tenant: &TenantId, tools: &[ToolId]) {
        for tool in tools {
            self.add_usage(tool, tenant, 1);
            for other in tools.iter().filter(|other| *other != tool) {
                self.add_co_occurrences(tool, other, tenant, 1);
            }
        }
    }

    /// Adds `queries` of `tenant` served by `tool`.
    pub fn add_usage(&mut self, tool: &str, tenant: &TenantId, queries: u64) {
        *self.usage.entry(tool.to_string()).or_default().entry(tenant.clone()).or_default() += queries;
    }

    /// Adds `queries` of `tenant` served by both `from` and `to` (one direction only).
    pub fn add_co_occurrences(&mut self, from: &str, to: &str, tenant: &TenantId, queries: u64) {
        let row = self.co_occurrences.entry(from.to_string()).or_default();
        *row.entry(to.to_string()).or_default().entry(tenant.clone()).or_default() += queries;
    }

    /// The shared edges leaving `tool`, strongest first (ties by target id).
    pub fn edges_from(&self, policy: &CoUsagePolicy, tool: &str) -> Vec<OftenUsedWith> {
        let Some(row) = self.co_occurrences.get(tool) else { return Vec::new() };
        let usage = self.usage.get(tool);
        let served_from = |tenant: &TenantId| usage.and_then(|usage| usage.get(tenant)).copied().unwrap_or(0);
        let capped_served_from = usage.map_or(0, |usage| usage.values().map(|&n| policy.capped(n)).sum());
        let mut edges: Vec<OftenUsedWith> = row
            .iter()
            .filter_map(|(to, both)| {
                let contributions = both
                    .iter()
                    .map(|(tenant, &served_both)| Contribution { served_from: served_from(tenant), served_both });
                policy.edge(tool, to, capped_served_from, contributions)
            })
            .collect();
        edges.sort_by(|a, b| b.confidence.total_cmp(&a.confidence).then_with(|| a.to.cmp(&b.to)));
        edges
    }

    /// Every shared edge.
    pub fn all_edges(&self, policy: &CoUsagePolicy) -> Vec<OftenUsedWith> {
        self.co_occurrences.keys().flat_map(|tool| self.edges_from(policy, tool)).collect()
    }
}
