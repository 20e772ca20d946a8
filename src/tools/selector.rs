//! `Selector`: the shell around the pure [`SelectionEngine`] — the one learning path of the gateway
//! (feedback, invocations with a `selectionId`, and `eval-selection`'s history replay all go through
//! [`Selector::record_served`]) and the one selection path.
//!
//! The `ToolGraph` is the durable copy of what is learned; the engine holds the in-memory form.
//! A tenant's history is loaded into the engine the first time the tenant is served, co-usage
//! edges at start-up. The lock is never held across an await.

use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use connectors_actors::tenant::TenantId;

use super::catalog::{Catalog, Tool};
use super::selection::engine::{SelectOptions, Selection, SelectionEngine};
use super::tool_graph::{ServedQuery, ToolGraph, ToolGraphError};

pub struct Selector {
    engine: RwLock<SelectionEngine>,
    graph: Arc<dyn ToolGraph>,
}

impl Selector {
    /// Wraps `engine` and loads the shared co-usage edges from `graph`.
    pub async fn open(mut engine: SelectionEngine, graph: Arc<dyn ToolGraph>) -> Result<Self, ToolGraphError> {
        let mut by_source: std::collections::HashMap<String, Vec<_>> = std::collections::HashMap::new();
        for edge in graph.all_often_used_with().await? {
            by_source.entry(edge.from.clone()).or_default().push(edge);
        }
        for (tool, edges) in by_source {
            engine.set_co_usage(&tool, edges);
        }
        Ok(Self { engine: RwLock::new(engine), graph })
    }

    pub async fn select(
        &self,
        tenant: &TenantId,
        query: &str,
        options: &SelectOptions,
    ) -> Result<Selection, ToolGraphError> {
        self.load_tenant(tenant).await?;
        Ok(self.read().select(tenant, query, options))
    }

    /// Learns that `tenant`'s query was served by `served.tools`: durably first, then in memory.
    pub async fn record_served(&self, tenant: &TenantId, served: &ServedQuery) -> Result<(), ToolGraphError> {
        if served.tools.is_empty() {
            return Ok(());
        }
        // Loaded before recording, so that a first load cannot miss or double this query.
        self.load_tenant(tenant).await?;
        self.graph.record_served(tenant, served).await?;
        let mut edges = Vec::with_capacity(served.tools.len());
        for tool in &served.tools {
            edges.push((tool, self.graph.often_used_with(tool).await?));
        }
        let mut engine = self.write();
        engine.remember(tenant, served);
        for (tool, edges) in edges {
            engine.set_co_usage(tool, edges);
        }
        Ok(())
    }

    /// Swaps in a new catalog; what was learned stays.
    pub fn replace_catalog(&self, catalog: Catalog) {
        self.write().replace_catalog(catalog);
    }

    /// The tool `id` as `tenant` sees it now.
    pub fn tool(&self, tenant: &TenantId, id: &str) -> Option<Tool> {
        self.read().catalog().get_visible(tenant, id).cloned()
    }

    /// The tools `tenant` may see, by id, those of `category` only when given.
    pub fn visible_tools(&self, tenant: &TenantId, category: Option<&str>) -> Vec<Tool> {
        let engine = self.read();
        let mut tools: Vec<Tool> = engine
            .catalog()
            .tools()
            .iter()
            .filter(|tool| tool.is_visible_to(tenant))
            .filter(|tool| category.is_none_or(|c| tool.category.eq_ignore_ascii_case(c)))
            .cloned()
            .collect();
        tools.sort_by(|a, b| a.id.cmp(&b.id));
        tools
    }

    /// The weight `tenant`'s learned votes get now (see `selection::calibration`).
    pub fn blend_weight(&self, tenant: &TenantId) -> f32 {
        self.read().blend_weight(tenant)
    }

    async fn load_tenant(&self, tenant: &TenantId) -> Result<(), ToolGraphError> {
        let limit = {
            let engine = self.read();
            if engine.knows_tenant(tenant) {
                return Ok(());
            }
            engine.tuning().memory_limit
        };
        let history = self.graph.served_queries(tenant, limit).await?;
        let mut engine = self.write();
        // Another request may have loaded it meanwhile, and remembered newer queries since.
        if !engine.knows_tenant(tenant) {
            engine.load_tenant(tenant, &history);
        }
        Ok(())
    }

    // A panic while holding the lock leaves the engine usable: every mutation is a whole insert.
    fn read(&self) -> RwLockReadGuard<'_, SelectionEngine> {
        self.engine.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, SelectionEngine> {
        self.engine.write().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::embedded_tool_graph::{EmbeddedToolGraph, FILE_NAME};
    use crate::tools::co_usage_policy::CoUsagePolicy;

    fn engine() -> SelectionEngine {
        let tool = |integration: &str, name: &str, description: &str| {
            Tool::new(integration, name, "general", description, serde_json::json!({}))
        };
        SelectionEngine::new(
            Catalog::new(vec![
                tool("travel", "planTrip", "Plan an itinerary"),
                tool("weather", "getForecast", "Weather forecast for a city"),
                tool("mail", "sendEmail", "Send an email message"),
            ])
            .unwrap(),
        )
    }

    fn top(selection: &Selection) -> Option<&str> {
        selection.tiers.ids().next()
    }

    async fn open(path: &std::path::Path) -> Selector {
        let graph = EmbeddedToolGraph::open(path, CoUsagePolicy::default()).unwrap();
        Selector::open(engine(), Arc::new(graph)).await.unwrap()
    }

    fn served(query: &str, tools: &[&str]) -> ServedQuery {
        ServedQuery { query: query.to_string(), tools: tools.iter().map(|t| t.to_string()).collect() }
    }

    #[tokio::test]
    async fn what_a_tenant_taught_is_used_after_a_restart_and_only_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let (acme, globex) = (TenantId::parse("acme").unwrap(), TenantId::parse("globex").unwrap());
        let query = "where should we go for the offsite";
        let options = SelectOptions::default();
        {
            let selector = open(&path).await;
            assert_eq!(top(&selector.select(&acme, query, &options).await.unwrap()), None);
            for place in ["Lisbon", "Berlin", "Oslo", "Rome", "Vienna", "Prague"] {
                let query = format!("where should we go for the offsite in {place}");
                selector
                    .record_served(&acme, &served(&query, &["travel.planTrip", "weather.getForecast"]))
                    .await
                    .unwrap();
            }
            assert_eq!(top(&selector.select(&acme, query, &options).await.unwrap()), Some("travel.planTrip"));
        }
        let selector = open(&path).await;
        assert_eq!(top(&selector.select(&acme, query, &options).await.unwrap()), Some("travel.planTrip"));
        assert_eq!(top(&selector.select(&globex, query, &options).await.unwrap()), None);
    }

    #[tokio::test]
    async fn one_tenant_cannot_make_co_usage_that_others_see_but_enough_tenants_can() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let [mallory, victim, honest @ ..] =
            ["mallory", "victim", "acme", "globex", "initech"].map(|id| TenantId::parse(id).unwrap());
        let (query, options) = ("plan an itinerary", SelectOptions::default());
        let ids = |selection: Selection| selection.tiers.ids().map(str::to_string).collect::<Vec<_>>();
        let selector = open(&path).await;
        let before = ids(selector.select(&victim, query, &options).await.unwrap());
        assert_eq!(before, ["travel.planTrip"]);
        for n in 0..100 {
            let served = served(&format!("trip and mail {n}"), &["travel.planTrip", "mail.sendEmail"]);
            selector.record_served(&mallory, &served).await.unwrap();
        }
        assert_eq!(ids(selector.select(&victim, query, &options).await.unwrap()), before);
        drop(selector);
        let selector = open(&path).await;
        assert_eq!(ids(selector.select(&victim, query, &options).await.unwrap()), before, "after a restart too");

        for tenant in &honest {
            selector
                .record_served(tenant, &served("book the trip and tell them", &["travel.planTrip", "mail.sendEmail"]))
                .await
                .unwrap();
        }
        let lifted = ids(selector.select(&victim, query, &options).await.unwrap());
        assert_eq!(lifted, ["travel.planTrip", "mail.sendEmail"]);
        drop(selector);
        assert_eq!(ids(open(&path).await.select(&victim, query, &options).await.unwrap()), lifted);
    }
}
