//! The Redis [`ToolGraph`]: what selection learns, shared by the nodes of a cluster through the
//! cluster's Redis, so that every node ranks a tenant with all of its history wherever it was
//! taught. Keys live under the store's prefix (`REDIS_TENANT_PREFIX`), after `graph:`:
//!
//! | key | type | value |
//! |---|---|---|
//! | `graph:served:<tenant id>` | list | the tenant's newest [`HISTORY_KEPT`] served queries, each `<number> <ServedQuery as JSON>` |
//! | `graph:recorded:<tenant id>` | string | the number of the tenant's newest served query |
//! | `graph:usage:<tool id>` | hash | tenant id → queries the tool served |
//! | `graph:co:<tool id>` | hash | `<tenant id> <other tool id>` → queries both served |
//! | `graph:tools` | set | the tools with usage, to read every edge |
//! | `graph:version` | string | the co-usage version: one more per recorded query |
//!
//! A record is one Lua script (`redis_tool_graph/record.lua`): numbering, history, trimming and
//! every count move together, so concurrent nodes never lose an increment and a failed call
//! leaves nothing half written. A history read is one script too (`history.lua`), one round trip:
//! the selector makes it before each selection to learn what other nodes recorded. Edges are
//! derived on read from the per-tenant counts by the same [`CoUsageCounts`] and [`CoUsagePolicy`]
//! as the embedded graph; a tool's edges are one pipelined round trip.
//!
//! Sizes: a tenant's history is trimmed to [`HISTORY_KEPT`] (what the selector's memory holds);
//! the counts grow with distinct (tool, tenant, tool) triples, not with traffic. Tenant ids are
//! `[a-z0-9-]`, so the space in a `graph:co` field separates it from the tool id unambiguously.

use std::collections::HashMap;
use std::sync::LazyLock;

use async_trait::async_trait;
use connectors_actors::store::StoreError;
use connectors_actors::tenant::TenantId;
use redis::{AsyncCommands, RedisError, Script};

use super::redis_connection::RedisConnection;
use crate::tools::co_usage_counts::CoUsageCounts;
use crate::tools::co_usage_policy::CoUsagePolicy;
use crate::tools::tool_graph::{HISTORY_KEPT, OftenUsedWith, RecordedQuery, ServedQuery, ToolGraph, ToolGraphError};

static RECORD: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("redis_tool_graph/record.lua")));
static HISTORY: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("redis_tool_graph/history.lua")));

/// Tools whose counts one pipelined round trip reads when every edge is wanted.
const READ_CHUNK: usize = 256;

pub struct RedisToolGraph {
    redis: RedisConnection,
    prefix: String,
    policy: CoUsagePolicy,
    history_kept: u64,
}

impl RedisToolGraph {
    /// Connects to the Redis at `url`, keeping the graph under `prefix`; `policy` decides which
    /// co-usage is shared. Fails within a few seconds, naming the URL (not its password), when
    /// Redis does not answer.
    pub async fn connect(url: &str, prefix: &str, policy: CoUsagePolicy) -> Result<Self, ToolGraphError> {
        Self::connect_keeping(url, prefix, policy, HISTORY_KEPT).await
    }

    async fn connect_keeping(
        url: &str,
        prefix: &str,
        policy: CoUsagePolicy,
        history_kept: u64,
    ) -> Result<Self, ToolGraphError> {
        let redis = RedisConnection::connect(url).await.map_err(from_store_error)?;
        Ok(Self { redis, prefix: prefix.to_string(), policy, history_kept })
    }

    fn key(&self, kind: &str, name: &str) -> String {
        format!("{}graph:{kind}:{name}", self.prefix)
    }

    fn failure(&self, err: RedisError) -> ToolGraphError {
        from_store_error(self.redis.failure(err))
    }

    /// Adds the counts of `tools` to `counts`, one pipelined round trip.
    async fn read_counts(&self, tools: &[String], counts: &mut CoUsageCounts) -> Result<(), ToolGraphError> {
        let mut pipe = redis::pipe();
        for tool in tools {
            pipe.hgetall(self.key("usage", tool)).hgetall(self.key("co", tool));
        }
        let rows: Vec<HashMap<String, u64>> =
            pipe.query_async(&mut self.redis.handle()).await.map_err(|err| self.failure(err))?;
        for (tool, pair) in tools.iter().zip(rows.chunks(2)) {
            let [usage, co] = pair else { return Err(corrupt(format_args!("the counts of `{tool}` are missing"))) };
            for (tenant, queries) in usage {
                counts.add_usage(tool, &tenant_id(tenant)?, *queries);
            }
            for (field, queries) in co {
                let Some((tenant, to)) = field.split_once(' ') else {
                    return Err(corrupt(format_args!("a co-occurrence field of `{tool}`: `{field}`")));
                };
                counts.add_co_occurrences(tool, to, &tenant_id(tenant)?, *queries);
            }
        }
        Ok(())
    }
}

#[async_trait]
impl ToolGraph for RedisToolGraph {
    async fn record_served(&self, tenant: &TenantId, served: &ServedQuery) -> Result<(), ToolGraphError> {
        let Some(served) = served.normalized() else { return Ok(()) };
        let json = serde_json::to_string(&served).map_err(|err| ToolGraphError::Backend(err.to_string()))?;
        let mut invocation = RECORD.prepare_invoke();
        invocation
            .key(self.key("served", tenant.as_str()))
            .key(self.key("recorded", tenant.as_str()))
            .key(format!("{}graph:tools", self.prefix))
            .key(format!("{}graph:version", self.prefix))
            .arg(tenant.as_str())
            .arg(json)
            .arg(self.history_kept);
        for tool in &served.tools {
            invocation.key(self.key("usage", tool)).key(self.key("co", tool)).arg(tool);
        }
        let _number: u64 = invocation.invoke_async(&mut self.redis.handle()).await.map_err(|err| self.failure(err))?;
        Ok(())
    }

    async fn served_queries(
        &self,
        tenant: &TenantId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<RecordedQuery>, ToolGraphError> {
        let entries: Vec<String> = HISTORY
            .key(self.key("served", tenant.as_str()))
            .key(self.key("recorded", tenant.as_str()))
            .arg(after)
            .arg(limit)
            .invoke_async(&mut self.redis.handle())
            .await
            .map_err(|err| self.failure(err))?;
        let mut recorded = Vec::with_capacity(entries.len());
        for entry in entries {
            let unreadable = || corrupt(format_args!("a served query of `{tenant}`: `{entry}`"));
            let (number, json) = entry.split_once(' ').ok_or_else(unreadable)?;
            let number: u64 = number.parse().map_err(|_| unreadable())?;
            let served: ServedQuery = serde_json::from_str(json).map_err(|_| unreadable())?;
            // The list is in number order; a trim racing the read cannot reorder it.
            if number > after {
                recorded.push(RecordedQuery { number, served });
            }
        }
        Ok(recorded)
    }

    async fn co_usage_version(&self) -> Result<u64, ToolGraphError> {
        let version: Option<u64> =
            self.redis.handle().get(format!("{}graph:version", self.prefix)).await.map_err(|err| self.failure(err))?;
        Ok(version.unwrap_or(0))
    }

    async fn often_used_with(&self, tool: &str) -> Result<Vec<OftenUsedWith>, ToolGraphError> {
        let mut counts = CoUsageCounts::default();
        self.read_counts(&[tool.to_string()], &mut counts).await?;
        Ok(counts.edges_from(&self.policy, tool))
    }

    async fn all_often_used_with(&self) -> Result<Vec<OftenUsedWith>, ToolGraphError> {
        let tools: Vec<String> = self
            .redis
            .handle()
            .smembers(format!("{}graph:tools", self.prefix))
            .await
            .map_err(|err| self.failure(err))?;
        let mut counts = CoUsageCounts::default();
        for chunk in tools.chunks(READ_CHUNK) {
            self.read_counts(chunk, &mut counts).await?;
        }
        Ok(counts.all_edges(&self.policy))
    }
}

fn from_store_error(err: StoreError) -> ToolGraphError {
    match err {
        StoreError::Corrupt(message) => ToolGraphError::Corrupt(message),
        other => ToolGraphError::Backend(other.to_string()),
    }
}

fn corrupt(what: std::fmt::Arguments<'_>) -> ToolGraphError {
    ToolGraphError::Corrupt(format!("Redis holds tool graph data this gateway cannot read: {what}"))
}

fn tenant_id(id: &str) -> Result<TenantId, ToolGraphError> {
    TenantId::parse(id).map_err(|err| corrupt(format_args!("tenant id `{id}`: {err}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::redis_server::RedisServer;
    use crate::backends::tool_graph_contract::{self, POLICY};

    #[tokio::test]
    async fn passes_the_tool_graph_contract() {
        let server = RedisServer::start();
        tool_graph_contract::run(&RedisToolGraph::connect(&server.url(), "test:", POLICY).await.unwrap()).await;
    }

    #[tokio::test]
    async fn two_nodes_share_one_graph_and_prefixes_keep_graphs_apart() {
        let server = RedisServer::start();
        let one = RedisToolGraph::connect(&server.url(), "shared:", POLICY).await.unwrap();
        let other = RedisToolGraph::connect(&server.url(), "shared:", POLICY).await.unwrap();
        let apart = RedisToolGraph::connect(&server.url(), "apart:", POLICY).await.unwrap();
        let acme = TenantId::parse("acme").unwrap();
        let served = |query: &str| ServedQuery { query: query.into(), tools: vec!["a.x".into()] };
        one.record_served(&acme, &served("through one")).await.unwrap();
        other.record_served(&acme, &served("through the other")).await.unwrap();
        let history = one.served_queries(&acme, 0, 10).await.unwrap();
        assert_eq!(
            history.iter().map(|r| (r.number, r.served.query.as_str())).collect::<Vec<_>>(),
            [(1, "through one"), (2, "through the other")]
        );
        assert_eq!(other.served_queries(&acme, 1, 10).await.unwrap(), history[1..]);
        assert!(apart.served_queries(&acme, 0, 10).await.unwrap().is_empty());
        assert_eq!(apart.co_usage_version().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn history_is_trimmed_to_the_newest_kept_and_numbering_goes_on() {
        let server = RedisServer::start();
        let graph = RedisToolGraph::connect_keeping(&server.url(), "test:", POLICY, 3).await.unwrap();
        let acme = TenantId::parse("acme").unwrap();
        for n in 1..=5 {
            let served = ServedQuery { query: format!("query {n}"), tools: vec!["a.x".into()] };
            graph.record_served(&acme, &served).await.unwrap();
        }
        let numbers = |history: Vec<RecordedQuery>| history.iter().map(|r| r.number).collect::<Vec<_>>();
        assert_eq!(numbers(graph.served_queries(&acme, 0, 10).await.unwrap()), [3, 4, 5]);
        assert_eq!(numbers(graph.served_queries(&acme, 4, 10).await.unwrap()), [5]);
        let length: u64 = graph.redis.handle().llen("test:graph:served:acme").await.unwrap();
        assert_eq!(length, 3);
    }

    #[tokio::test]
    async fn unreadable_data_is_corrupt_not_a_panic() {
        let server = RedisServer::start();
        let graph = RedisToolGraph::connect(&server.url(), "test:", POLICY).await.unwrap();
        let mut redis = graph.redis.handle();
        let _: () = redis.hset("test:graph:co:a.x", "no-space-here", 1).await.unwrap();
        let _: () = redis.sadd("test:graph:tools", "a.x").await.unwrap();
        assert!(matches!(graph.often_used_with("a.x").await, Err(ToolGraphError::Corrupt(_))));
        assert!(matches!(graph.all_often_used_with().await, Err(ToolGraphError::Corrupt(_))));
        let _: () = redis.rpush("test:graph:served:acme", "1 {not json").await.unwrap();
        let _: () = redis.set("test:graph:recorded:acme", 1).await.unwrap();
        let acme = TenantId::parse("acme").unwrap();
        assert!(matches!(graph.served_queries(&acme, 0, 10).await, Err(ToolGraphError::Corrupt(_))));
    }
}
