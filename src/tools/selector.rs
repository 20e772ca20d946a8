//! `Selector`: the shell around the pure [`SelectionEngine`] — the one learning path of the gateway
//! (feedback, invocations with a `selectionId`, and `eval-selection`'s history replay all go through
//! [`Selector::record_served`]) and the one selection path.
//!
//! The `ToolGraph` is the durable copy of what is learned, and with a shared graph (Redis, Neo4j)
//! the one every node learns from; the engine holds the in-memory form. Before serving a tenant
//! the selector reads the tenant's queries recorded since the last it learned — all of them the
//! first time, usually none later: one read of the graph per selection, so a query recorded
//! through any node is used by every node's next selection for that tenant. A recorded query is
//! learned the same way, by reading it back, so each is learned once, in its tenant's order,
//! wherever it was recorded. Shared co-usage edges are read at start-up, for the tools of each
//! query recorded here, and again whole by [`Selector::refresh_co_usage`] once the graph's
//! co-usage version has moved (a node calls it periodically when the graph is shared). The lock
//! is never held across an await.
//!
//! With a sentence encoder, the selector also embeds: each tool once per text, on a blocking
//! thread after its catalog arrives (until then it ranks by its words alone), and each query
//! once, on a blocking thread, before ranking.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};
use std::time::Duration;

use connectors_actors::tenant::TenantId;
use tokio::task::JoinHandle;

use super::catalog::{Catalog, Tool};
use super::selection::dense::{ToolVector, embedded_text};
use super::selection::engine::{SelectOptions, Selection, SelectionEngine};
use super::sentence_encoder::SentenceEncoder;
use super::tool_graph::{ServedQuery, ToolGraph, ToolGraphError};

/// How often a node re-reads the shared co-usage edges when the graph says they may have changed:
/// edges are a cross-tenant quorum signal that moves slowly, and a full read is not free.
pub const CO_USAGE_REFRESH: Duration = Duration::from_secs(5);

/// How many tools are embedded in one batch.
const EMBEDDING_BATCH: usize = 32;

pub struct Selector {
    engine: Arc<RwLock<SelectionEngine>>,
    graph: Arc<dyn ToolGraph>,
    /// The graph's co-usage version the engine's edges were read at.
    co_usage_version: AtomicU64,
    embeddings: Option<Arc<Embeddings>>,
}

/// The encoder and the tool vectors it made, by embedded text.
struct Embeddings {
    encoder: SentenceEncoder,
    known: Mutex<HashMap<String, ToolVector>>,
}

impl Selector {
    /// Wraps `engine` and loads the shared co-usage edges from `graph`; with `encoder`, ranks by
    /// meaning as well as by words.
    pub async fn open(
        engine: SelectionEngine,
        graph: Arc<dyn ToolGraph>,
        encoder: Option<SentenceEncoder>,
    ) -> Result<Self, ToolGraphError> {
        let embeddings = encoder.map(|encoder| Arc::new(Embeddings { encoder, known: Mutex::default() }));
        let selector =
            Self { engine: Arc::new(RwLock::new(engine)), graph, co_usage_version: AtomicU64::new(0), embeddings };
        selector.read_co_usage().await?;
        Ok(selector)
    }

    /// Whether queries and tools are embedded.
    pub fn embeds(&self) -> bool {
        self.embeddings.is_some()
    }

    pub async fn select(
        &self,
        tenant: &TenantId,
        query: &str,
        options: &SelectOptions,
    ) -> Result<Selection, ToolGraphError> {
        self.catch_up(tenant).await?;
        let query_vector = match &self.embeddings {
            Some(embeddings) => embeddings.clone().query_vector(query.to_string()).await,
            None => None,
        };
        Ok(self.read().select(tenant, query, query_vector.as_deref(), options))
    }

    /// Learns that `tenant`'s query was served by `served.tools`: durably first, then in memory.
    pub async fn record_served(&self, tenant: &TenantId, served: &ServedQuery) -> Result<(), ToolGraphError> {
        let Some(served) = served.normalized() else { return Ok(()) };
        self.graph.record_served(tenant, &served).await?;
        self.catch_up(tenant).await?;
        let mut edges = Vec::with_capacity(served.tools.len());
        for tool in &served.tools {
            edges.push((tool, self.graph.often_used_with(tool).await?));
        }
        let mut engine = self.write();
        for (tool, edges) in edges {
            engine.set_co_usage(tool, edges);
        }
        Ok(())
    }

    /// Reads every shared co-usage edge again if the graph's co-usage version moved since they
    /// were last read; says whether it did.
    pub async fn refresh_co_usage(&self) -> Result<bool, ToolGraphError> {
        if self.graph.co_usage_version().await? == self.co_usage_version.load(Ordering::Acquire) {
            return Ok(false);
        }
        self.read_co_usage().await?;
        Ok(true)
    }

    /// Calls [`Self::refresh_co_usage`] every `every` until the selector is gone.
    pub async fn keep_co_usage_fresh(selector: Weak<Self>, every: Duration) {
        loop {
            tokio::time::sleep(every).await;
            let Some(selector) = selector.upgrade() else { return };
            if let Err(error) = selector.refresh_co_usage().await {
                tracing::warn!(%error, "cannot read the shared co-usage edges");
            }
        }
    }

    /// Swaps in a new catalog; what was learned stays. With an encoder, the tools whose text was
    /// not embedded before are embedded on a blocking thread, and the handle says when.
    pub fn replace_catalog(&self, catalog: Catalog) -> Option<JoinHandle<()>> {
        let Some(embeddings) = &self.embeddings else {
            self.write().replace_catalog(catalog, &HashMap::new());
            return None;
        };
        let texts: HashSet<String> = catalog.tools().iter().map(embedded_text).collect();
        let missing = {
            let mut known = embeddings.known();
            // Vectors of texts no tool has any more are dropped, so the cache follows the catalog.
            known.retain(|text, _| texts.contains(text));
            self.write().replace_catalog(catalog, &known);
            let mut missing: Vec<String> = texts.into_iter().filter(|text| !known.contains_key(text)).collect();
            // Texts of a like length share a batch, so little of it is padding.
            missing.sort_by_key(String::len);
            missing
        };
        if missing.is_empty() {
            return None;
        }
        let (embeddings, engine) = (embeddings.clone(), self.engine.clone());
        Some(tokio::task::spawn_blocking(move || embeddings.embed_tools(&missing, &engine)))
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

    /// Learns `tenant`'s queries recorded since the newest one learned (its whole kept history
    /// the first time).
    async fn catch_up(&self, tenant: &TenantId) -> Result<(), ToolGraphError> {
        let (learned_up_to, limit) = {
            let engine = self.read();
            (engine.learned_up_to(tenant), engine.tuning().memory_limit)
        };
        match self.graph.served_queries(tenant, learned_up_to.unwrap_or(0), limit).await {
            Ok(recorded) => {
                if learned_up_to.is_none() || !recorded.is_empty() {
                    self.write().learn(tenant, &recorded);
                }
                Ok(())
            }
            // What was learned already still ranks: a graph that cannot be read for a moment
            // makes selection a little staler, not unavailable.
            Err(error) if learned_up_to.is_some() => {
                tracing::warn!(tenant = %tenant, %error, "tool graph unreadable; selecting with what was learned");
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    /// Replaces the engine's co-usage edges with the graph's, noting the version they were read
    /// at (read first, so that a record made during the read moves the version past it).
    async fn read_co_usage(&self) -> Result<(), ToolGraphError> {
        let version = self.graph.co_usage_version().await?;
        let edges = self.graph.all_often_used_with().await?;
        self.write().replace_co_usage(edges);
        self.co_usage_version.store(version, Ordering::Release);
        Ok(())
    }

    fn read(&self) -> RwLockReadGuard<'_, SelectionEngine> {
        self.engine.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, SelectionEngine> {
        write(&self.engine)
    }
}

// A panic while holding the lock leaves the engine usable: every mutation is a whole insert.
fn write(engine: &RwLock<SelectionEngine>) -> RwLockWriteGuard<'_, SelectionEngine> {
    engine.write().unwrap_or_else(PoisonError::into_inner)
}

impl Embeddings {
    /// The query's vector, made on a blocking thread; `None` (ranking by words alone) when the
    /// encoder fails.
    async fn query_vector(self: Arc<Self>, query: String) -> Option<Vec<f32>> {
        let encoded = tokio::task::spawn_blocking(move || self.encoder.encode(&[query.as_str()]))
            .await
            .map_err(|error| error.to_string())
            .and_then(|encoded| encoded.map_err(|error| error.to_string()));
        match encoded {
            Ok(mut vectors) => vectors.pop(),
            Err(error) => {
                tracing::warn!(%error, "query not embedded; ranking by its words alone");
                None
            }
        }
    }

    /// Embeds `texts` (tools' embedded texts) and gives the engine's tools their vectors.
    fn embed_tools(&self, texts: &[String], engine: &RwLock<SelectionEngine>) {
        for batch in texts.chunks(EMBEDDING_BATCH) {
            let batch_texts: Vec<&str> = batch.iter().map(String::as_str).collect();
            match self.encoder.encode(&batch_texts) {
                Ok(vectors) => {
                    let mut known = self.known();
                    for (text, vector) in batch.iter().zip(vectors) {
                        known.insert(text.clone(), vector.into());
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, tools = batch.len(), "tools not embedded; they rank by their words")
                }
            }
        }
        let known = self.known();
        write(engine).attach_vectors(&known);
    }

    fn known(&self) -> MutexGuard<'_, HashMap<String, ToolVector>> {
        self.known.lock().unwrap_or_else(PoisonError::into_inner)
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
        Selector::open(engine(), Arc::new(graph), None).await.unwrap()
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

    /// Two nodes sharing one graph: what one learns the other's next selection uses, and the
    /// co-usage edges it made reach the other on its next refresh.
    #[tokio::test]
    async fn selectors_sharing_a_graph_rank_with_each_others_lessons() {
        let graph: Arc<dyn ToolGraph> = Arc::new(EmbeddedToolGraph::in_memory(CoUsagePolicy::default()));
        let one = Selector::open(engine(), graph.clone(), None).await.unwrap();
        let other = Selector::open(engine(), graph, None).await.unwrap();
        let [acme, rest @ ..] = ["acme", "globex", "initech", "hooli"].map(|id| TenantId::parse(id).unwrap());
        let (query, options) = ("where should we go for the offsite", SelectOptions::default());
        assert_eq!(top(&other.select(&acme, query, &options).await.unwrap()), None);
        for place in ["Lisbon", "Berlin", "Oslo", "Rome", "Vienna", "Prague"] {
            let query = format!("where should we go for the offsite in {place}");
            one.record_served(&acme, &served(&query, &["travel.planTrip", "weather.getForecast"])).await.unwrap();
        }
        assert_eq!(top(&other.select(&acme, query, &options).await.unwrap()), Some("travel.planTrip"));
        // Learned once each, though read back by both.
        other.record_served(&acme, &served("offsite plans again", &["travel.planTrip"])).await.unwrap();
        assert_eq!(one.read().learned_up_to(&acme), Some(6));
        assert_eq!(other.read().learned_up_to(&acme), Some(7));

        let ids = |selection: Selection| selection.tiers.ids().map(str::to_string).collect::<Vec<_>>();
        let trip = "plan an itinerary";
        assert_eq!(ids(other.select(&acme, trip, &options).await.unwrap()), ["travel.planTrip"]);
        for tenant in &rest {
            one.record_served(tenant, &served("book the trip and tell them", &["travel.planTrip", "mail.sendEmail"]))
                .await
                .unwrap();
        }
        assert_eq!(ids(one.select(&acme, trip, &options).await.unwrap()), ["travel.planTrip", "mail.sendEmail"]);
        assert_eq!(ids(other.select(&acme, trip, &options).await.unwrap()), ["travel.planTrip"], "until it refreshes");
        assert!(other.refresh_co_usage().await.unwrap());
        assert!(!other.refresh_co_usage().await.unwrap(), "nothing new");
        assert_eq!(ids(other.select(&acme, trip, &options).await.unwrap()), ["travel.planTrip", "mail.sendEmail"]);
    }
}
