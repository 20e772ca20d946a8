//! The Neo4j [`ToolGraph`] (`tools.graph.neo4j`), through `neo4rs` (Bolt 4.0/4.1), for operators
//! who run Neo4j as the shared tool graph; every gateway node reads and writes the same graph.
//!
//! Schema (the statements are in [`cypher`]):
//! - `(:Tool {id})`, `(:Tenant {id, recorded})` — `recorded` is the number of the tenant's newest
//!   served query;
//! - `(:ServedQuery {tenant, number, query, tools})`: the tenant's newest [`HISTORY_KEPT`];
//! - `(:Tenant)-[:USED {queries}]->(:Tool)`: queries of the tenant the tool served;
//! - `(:Tool)-[:OFTEN_USED_WITH {tenant, coOccurrences}]->(:Tool)`: one relationship per tenant
//!   behind a pair. The shared edge (`confidence`, `coOccurrences`, `tenants`) is derived on read
//!   by [`CoUsageCounts`] and the [`CoUsagePolicy`], exactly as the other adapters do, so no
//!   tenant's counts can be read as a shared edge before the quorum.
//!
//! A record is one transaction: it first takes the tenant node's write lock (`SET t._lock`), so
//! records of one tenant — the only writers of its counts — run one after the other and no
//! increment is lost between nodes; records of different tenants touch different relationships.
//! Every call has a deadline ([`CALL_TIMEOUT`]): `neo4rs` has none of its own.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use connectors_actors::tenant::TenantId;
use neo4rs::{ConfigBuilder, Graph, Query, Row, query};

use crate::tools::co_usage_counts::CoUsageCounts;
use crate::tools::co_usage_policy::CoUsagePolicy;
use crate::tools::tool_graph::{HISTORY_KEPT, OftenUsedWith, RecordedQuery, ServedQuery, ToolGraph, ToolGraphError};

/// How long one call (a statement and its rows, or a record's transaction) may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the graph is: `tools.graph.neo4j` or `NEO4J_URI`, `NEO4J_USER`, `NEO4J_PASSWORD`.
#[derive(Clone, PartialEq, Eq)]
pub struct Neo4jConfig {
    /// `bolt://`, `bolt+s://`, `neo4j://`, … with host and port.
    pub uri: String,
    pub user: String,
    pub password: String,
}

impl fmt::Debug for Neo4jConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Neo4jConfig").field("uri", &self.uri).field("user", &self.user).finish_non_exhaustive()
    }
}

/// The Cypher the adapter sends, and nothing else.
pub(crate) mod cypher {
    /// Run once at connect; they also prove the server answers and the credentials work.
    pub(crate) const SCHEMA: [&str; 3] = [
        "CREATE CONSTRAINT connectors_tool_id IF NOT EXISTS FOR (t:Tool) REQUIRE t.id IS UNIQUE",
        "CREATE CONSTRAINT connectors_tenant_id IF NOT EXISTS FOR (t:Tenant) REQUIRE t.id IS UNIQUE",
        "CREATE INDEX connectors_served_query IF NOT EXISTS FOR (q:ServedQuery) ON (q.tenant, q.number)",
    ];

    /// Numbers the query, stores it, and forgets the tenant's queries older than `$kept`.
    pub(crate) const RECORD_QUERY: &str = "MERGE (t:Tenant {id: $tenant}) \
        ON CREATE SET t.recorded = 0 \
        SET t._lock = true \
        WITH t \
        SET t.recorded = t.recorded + 1 \
        CREATE (:ServedQuery {tenant: $tenant, number: t.recorded, query: $query, tools: $tools}) \
        WITH t \
        MATCH (old:ServedQuery {tenant: $tenant}) WHERE old.number <= t.recorded - $kept \
        DETACH DELETE old";

    /// Counts the query for each of its tools.
    pub(crate) const RECORD_USAGE: &str = "MATCH (t:Tenant {id: $tenant}) \
        UNWIND $tools AS id \
        MERGE (tool:Tool {id: id}) \
        MERGE (t)-[u:USED]->(tool) \
        SET u.queries = coalesce(u.queries, 0) + 1";

    /// Counts the query for each ordered pair of its tools.
    pub(crate) const RECORD_CO_OCCURRENCES: &str = "MATCH (a:Tool) WHERE a.id IN $tools \
        MATCH (b:Tool) WHERE b.id IN $tools AND b.id <> a.id \
        MERGE (a)-[e:OFTEN_USED_WITH {tenant: $tenant}]->(b) \
        SET e.coOccurrences = coalesce(e.coOccurrences, 0) + 1";

    pub(crate) const HISTORY: &str = "MATCH (q:ServedQuery {tenant: $tenant}) WHERE q.number > $after \
        RETURN q.number AS number, q.query AS query, q.tools AS tools \
        ORDER BY number DESC LIMIT $limit";

    /// Every tenant's `recorded` only grows, so their sum does whenever a query is recorded.
    pub(crate) const VERSION: &str = "MATCH (t:Tenant) RETURN sum(t.recorded) AS version";

    /// `$tool` null: of every tool.
    pub(crate) const USAGE: &str = "MATCH (t:Tenant)-[u:USED]->(a:Tool) WHERE $tool IS NULL OR a.id = $tool \
        RETURN a.id AS tool, t.id AS tenant, u.queries AS queries";

    /// `$tool` null: of every tool.
    pub(crate) const CO_OCCURRENCES: &str = "MATCH (a:Tool)-[e:OFTEN_USED_WITH]->(b:Tool) \
        WHERE $tool IS NULL OR a.id = $tool \
        RETURN a.id AS tool, b.id AS other, e.tenant AS tenant, e.coOccurrences AS queries";
}

pub struct Neo4jToolGraph {
    graph: Graph,
    policy: CoUsagePolicy,
}

impl Neo4jToolGraph {
    /// Connects (within a few seconds, or fails naming the URI) and makes sure the schema's
    /// constraints and index exist; `policy` decides which co-usage is shared.
    pub async fn connect(config: &Neo4jConfig, policy: CoUsagePolicy) -> Result<Self, ToolGraphError> {
        let cannot = |reason: &dyn fmt::Display| {
            ToolGraphError::Backend(format!("cannot use Neo4j at `{}` as the tool graph: {reason}", config.uri))
        };
        let settings = ConfigBuilder::default()
            .uri(config.uri.as_str())
            .user(config.user.as_str())
            .password(config.password.as_str())
            .build()
            .map_err(|err| cannot(&err))?;
        let graph = Graph::connect(settings).await.map_err(|err| cannot(&err))?;
        let this = Self { graph, policy };
        for statement in cypher::SCHEMA {
            this.within(this.graph.run(query(statement))).await.map_err(|err| cannot(&err))?;
        }
        Ok(this)
    }

    async fn within<T>(&self, call: impl Future<Output = Result<T, neo4rs::Error>>) -> Result<T, ToolGraphError> {
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(result) => result.map_err(|err| ToolGraphError::Backend(format!("Neo4j failed: {err}"))),
            Err(_) => Err(ToolGraphError::Backend(format!("Neo4j did not answer within {CALL_TIMEOUT:?}"))),
        }
    }

    /// All the rows of `statement`.
    async fn rows(&self, statement: Query) -> Result<Vec<Row>, ToolGraphError> {
        self.within(async {
            let mut stream = self.graph.execute(statement).await?;
            let mut rows = Vec::new();
            while let Some(row) = stream.next().await? {
                rows.push(row);
            }
            Ok(rows)
        })
        .await
    }

    /// The usage and co-occurrence counts of `tool`, or of every tool.
    async fn counts(&self, tool: Option<&str>) -> Result<CoUsageCounts, ToolGraphError> {
        let tool = tool.map(str::to_string);
        let mut counts = CoUsageCounts::default();
        for row in self.rows(query(cypher::USAGE).param("tool", tool.clone())).await? {
            let (tool, tenant, queries) = (field::<String>(&row, "tool")?, field(&row, "tenant")?, count(&row)?);
            counts.add_usage(&tool, &tenant_id(tenant)?, queries);
        }
        for row in self.rows(query(cypher::CO_OCCURRENCES).param("tool", tool)).await? {
            let (tool, other) = (field::<String>(&row, "tool")?, field::<String>(&row, "other")?);
            counts.add_co_occurrences(&tool, &other, &tenant_id(field(&row, "tenant")?)?, count(&row)?);
        }
        Ok(counts)
    }
}

#[async_trait]
impl ToolGraph for Neo4jToolGraph {
    async fn record_served(&self, tenant: &TenantId, served: &ServedQuery) -> Result<(), ToolGraphError> {
        let Some(served) = served.normalized() else { return Ok(()) };
        let with_params =
            |statement: &str| query(statement).param("tenant", tenant.as_str()).param("tools", served.tools.clone());
        let statements = [
            with_params(cypher::RECORD_QUERY).param("query", served.query.as_str()).param("kept", HISTORY_KEPT as i64),
            with_params(cypher::RECORD_USAGE),
            with_params(cypher::RECORD_CO_OCCURRENCES),
        ];
        // A transaction dropped unfinished is rolled back when its connection is reset.
        self.within(async {
            let mut txn = self.graph.start_txn().await?;
            txn.run_queries(statements).await?;
            txn.commit().await
        })
        .await
    }

    async fn served_queries(
        &self,
        tenant: &TenantId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<RecordedQuery>, ToolGraphError> {
        let statement = query(cypher::HISTORY)
            .param("tenant", tenant.as_str())
            .param("after", i64::try_from(after).unwrap_or(i64::MAX))
            .param("limit", i64::try_from(limit).unwrap_or(i64::MAX));
        let mut recorded = Vec::new();
        for row in self.rows(statement).await? {
            let number: u64 = field(&row, "number")?;
            let served = ServedQuery { query: field(&row, "query")?, tools: field(&row, "tools")? };
            recorded.push(RecordedQuery { number, served });
        }
        recorded.reverse();
        Ok(recorded)
    }

    async fn co_usage_version(&self) -> Result<u64, ToolGraphError> {
        let rows = self.rows(query(cypher::VERSION)).await?;
        match rows.first() {
            Some(row) => field::<Option<u64>>(row, "version").map(Option::unwrap_or_default),
            None => Ok(0),
        }
    }

    async fn often_used_with(&self, tool: &str) -> Result<Vec<OftenUsedWith>, ToolGraphError> {
        Ok(self.counts(Some(tool)).await?.edges_from(&self.policy, tool))
    }

    async fn all_often_used_with(&self) -> Result<Vec<OftenUsedWith>, ToolGraphError> {
        Ok(self.counts(None).await?.all_edges(&self.policy))
    }
}

fn field<'row, T: serde::Deserialize<'row>>(row: &'row Row, name: &str) -> Result<T, ToolGraphError> {
    row.get(name).map_err(|err| ToolGraphError::Corrupt(format!("Neo4j returned an unreadable `{name}`: {err}")))
}

fn count(row: &Row) -> Result<u64, ToolGraphError> {
    field(row, "queries")
}

fn tenant_id(id: String) -> Result<TenantId, ToolGraphError> {
    TenantId::parse(&id).map_err(|err| ToolGraphError::Corrupt(format!("Neo4j holds a bad tenant id `{id}`: {err}")))
}

#[cfg(test)]
#[path = "neo4j_tool_graph_tests.rs"]
mod tests;
