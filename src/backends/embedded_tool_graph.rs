//! The embedded [`ToolGraph`]: the in-process graph of a single node. The graph lives in memory
//! (hash maps, so learning and reading cost microseconds) and, unless it is an ephemeral one for
//! evaluation or tests, every served query is first appended to its own redb file under the data
//! dir (`tool-graph.redb`) and the graph is rebuilt from that log at open — so it survives
//! restarts without widening the `Store` port (whose `meta` values are small and unlisted).
//!
//! The file holds one table, `served`: (tenant id, sequence number) → [`ServedQuery`] as JSON.
//! Counts are derived from it per tenant, and shared edges are made of them on read, as the
//! graph's [`CoUsagePolicy`] says. Every row has always named its tenant, so a file written before
//! the policy existed needs no migration: its edges are attributed at open like new ones.

use std::collections::HashMap;
use std::fmt::Display;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use connectors_actors::tenant::TenantId;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::tools::co_usage_counts::CoUsageCounts;
use crate::tools::co_usage_policy::CoUsagePolicy;
use crate::tools::tool_graph::{OftenUsedWith, RecordedQuery, ServedQuery, ToolGraph, ToolGraphError};

const SERVED: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("served");

/// The file name under the data dir.
pub const FILE_NAME: &str = "tool-graph.redb";

pub struct EmbeddedToolGraph {
    graph: Mutex<Graph>,
    /// The append-only log of served queries; `None` for an ephemeral graph.
    file: Option<Arc<Database>>,
}

struct Graph {
    policy: CoUsagePolicy,
    /// Each tenant's history; a query's number is its index plus one.
    served: HashMap<TenantId, Vec<ServedQuery>>,
    counts: CoUsageCounts,
    /// The sequence number of the last logged query (of any tenant).
    last_seq: u64,
}

impl Graph {
    fn new(policy: CoUsagePolicy) -> Self {
        Self { policy, served: HashMap::new(), counts: CoUsageCounts::default(), last_seq: 0 }
    }

    fn add(&mut self, tenant: &TenantId, served: ServedQuery) {
        self.counts.add_served(tenant, &served.tools);
        self.served.entry(tenant.clone()).or_default().push(served);
    }
}

impl EmbeddedToolGraph {
    /// Opens the graph file at `path`, creating it if needed, and rebuilds the graph from it;
    /// `policy` decides which co-usage is shared.
    pub fn open(path: &Path, policy: CoUsagePolicy) -> Result<Self, ToolGraphError> {
        let db = Database::create(path).map_err(|err| {
            ToolGraphError::Backend(format!("cannot open the tool graph file `{}`: {err}", path.display()))
        })?;
        let txn = db.begin_write().backend()?;
        txn.open_table(SERVED).backend()?;
        txn.commit().backend()?;
        let mut graph = Graph::new(policy);
        for row in db.begin_read().backend()?.open_table(SERVED).backend()?.iter().backend()? {
            let (key, value) = row.backend()?;
            let (tenant, seq) = key.value();
            let tenant = TenantId::parse(tenant).map_err(|err| ToolGraphError::Corrupt(err.to_string()))?;
            let served: ServedQuery = serde_json::from_slice(value.value())
                .map_err(|err| ToolGraphError::Corrupt(format!("a served query of `{}`: {err}", tenant.as_str())))?;
            graph.last_seq = graph.last_seq.max(seq);
            graph.add(&tenant, served);
        }
        // Rows come in (tenant, seq) order, which is each tenant's history order.
        Ok(Self { graph: Mutex::new(graph), file: Some(Arc::new(db)) })
    }

    /// A graph that lives in memory only: for evaluation runs and tests.
    pub fn in_memory(policy: CoUsagePolicy) -> Self {
        Self { graph: Mutex::new(Graph::new(policy)), file: None }
    }

    // No await happens under the lock, and every mutation is whole, so a poisoned lock is usable.
    fn graph(&self) -> std::sync::MutexGuard<'_, Graph> {
        self.graph.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl ToolGraph for EmbeddedToolGraph {
    async fn record_served(&self, tenant: &TenantId, served: &ServedQuery) -> Result<(), ToolGraphError> {
        let Some(served) = served.normalized() else { return Ok(()) };
        let seq = {
            let mut graph = self.graph();
            graph.last_seq += 1;
            graph.last_seq
        };
        if let Some(db) = &self.file {
            let value = serde_json::to_vec(&served).map_err(|err| ToolGraphError::Backend(err.to_string()))?;
            let (db, tenant) = (Arc::clone(db), tenant.clone());
            // redb does synchronous I/O.
            tokio::task::spawn_blocking(move || {
                let txn = db.begin_write().backend()?;
                txn.open_table(SERVED).backend()?.insert((tenant.as_str(), seq), value.as_slice()).backend()?;
                txn.commit().backend()
            })
            .await
            .map_err(|err| ToolGraphError::Backend(format!("a tool graph write did not finish: {err}")))??;
        }
        self.graph().add(tenant, served);
        Ok(())
    }

    async fn served_queries(
        &self,
        tenant: &TenantId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<RecordedQuery>, ToolGraphError> {
        let graph = self.graph();
        let history = graph.served.get(tenant).map_or(&[][..], Vec::as_slice);
        let after = usize::try_from(after).unwrap_or(usize::MAX).min(history.len());
        let from = after.max(history.len().saturating_sub(limit));
        Ok(history[from..]
            .iter()
            .zip(from as u64 + 1..)
            .map(|(served, number)| RecordedQuery { number, served: served.clone() })
            .collect())
    }

    async fn co_usage_version(&self) -> Result<u64, ToolGraphError> {
        Ok(self.graph().last_seq)
    }

    async fn often_used_with(&self, tool: &str) -> Result<Vec<OftenUsedWith>, ToolGraphError> {
        let graph = self.graph();
        Ok(graph.counts.edges_from(&graph.policy, tool))
    }

    async fn all_often_used_with(&self) -> Result<Vec<OftenUsedWith>, ToolGraphError> {
        let graph = self.graph();
        Ok(graph.counts.all_edges(&graph.policy))
    }
}

/// redb errors are backend failures.
trait OrBackend<T> {
    fn backend(self) -> Result<T, ToolGraphError>;
}

impl<T, E: Display> OrBackend<T> for Result<T, E> {
    fn backend(self) -> Result<T, ToolGraphError> {
        self.map_err(|err| ToolGraphError::Backend(err.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::tool_graph_contract::{self, POLICY};

    #[tokio::test]
    async fn passes_the_tool_graph_contract() {
        tool_graph_contract::run(&EmbeddedToolGraph::in_memory(POLICY)).await;
    }

    #[tokio::test]
    async fn a_file_backed_graph_passes_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        tool_graph_contract::run(&EmbeddedToolGraph::open(&dir.path().join(FILE_NAME), POLICY).unwrap()).await;
    }

    #[tokio::test]
    async fn what_was_learned_survives_a_reopen_tenant_by_tenant() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let tenants = ["acme", "globex", "initech"].map(|id| TenantId::parse(id).unwrap());
        let served = |query: &str, tools: &[&str]| ServedQuery {
            query: query.to_string(),
            tools: tools.iter().map(|t| t.to_string()).collect(),
        };
        {
            let graph = EmbeddedToolGraph::open(&path, POLICY).unwrap();
            for tenant in &tenants {
                graph
                    .record_served(tenant, &served("open a pull request", &["github.createPr", "slack.post"]))
                    .await
                    .unwrap();
            }
            graph.record_served(&tenants[0], &served("post the release notes", &["slack.post"])).await.unwrap();
        }
        let graph = EmbeddedToolGraph::open(&path, POLICY).unwrap();
        let history = graph.served_queries(&tenants[0], 0, 10).await.unwrap();
        assert_eq!(
            history.iter().map(|s| s.served.query.as_str()).collect::<Vec<_>>(),
            ["open a pull request", "post the release notes"]
        );
        // Still three tenants behind the edge; slack.post served 4 queries, 3 with createPr.
        let edges = graph.often_used_with("slack.post").await.unwrap();
        assert_eq!(edges.len(), 1);
        assert_eq!((edges[0].to.as_str(), edges[0].co_occurrences, edges[0].tenants), ("github.createPr", 3, 3));
        assert_eq!(edges[0].confidence, 0.75);
        // A stricter policy reads the same file as too few tenants.
        drop(graph);
        let strict = CoUsagePolicy { min_tenants: 4, ..POLICY };
        assert!(
            EmbeddedToolGraph::open(&path, strict).unwrap().often_used_with("slack.post").await.unwrap().is_empty()
        );
        // Numbering continues after a reopen: nothing is overwritten.
        let graph = EmbeddedToolGraph::open(&path, POLICY).unwrap();
        graph.record_served(&tenants[0], &served("merge it", &["github.merge"])).await.unwrap();
        drop(graph);
        let graph = EmbeddedToolGraph::open(&path, POLICY).unwrap();
        assert_eq!(graph.served_queries(&tenants[0], 0, 10).await.unwrap().len(), 3);
    }
}
