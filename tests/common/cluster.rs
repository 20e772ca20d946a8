//! Cluster helpers shared by the cluster end-to-end tests: real `connectors` nodes on loopback,
//! one real `redis-server`. A test file includes it next to the other two modules:
//!
//! ```ignore
//! mod common;
//! #[path = "common/redis_server.rs"]
//! mod redis_server;
//! #[path = "common/cluster.rs"]
//! mod cluster_common;
//! ```
#![allow(dead_code)]

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use connectors_actors::tenant::TenantId;
use connectors_cluster::shard_map::{NodeId, ShardMap};
use reqwest::Method;

use crate::common::{Gateway, eventually};
use crate::redis_server::RedisServer;

/// Fast heartbeats so that failures are detected in about a second and a half; a graceful stop
/// hands its shards off within 10 s or leaves anyway.
pub(crate) const CLUSTER_CONFIG: &str = "gateway:\n  tickMillis: 100\n  flushIntervalMillis: 20\ncluster:\n  heartbeatMillis: 200\n  failureTimeoutMillis: 2000\n  drainDeadlineSeconds: 10\n";
/// As long as a node accepts (32 characters at least).
pub(crate) const COOKIE: &str = "e2e-cluster-cookie-0123456789abcdef";
/// OAuth credentials live in Redis too, sealed by a master key every node must share.
pub(crate) const MASTER_KEY: &str = "0707070707070707070707070707070707070707070707070707070707070707";

pub(crate) struct Cluster {
    pub(crate) redis: RedisServer,
    pub(crate) nodes: Vec<Gateway>,
}

/// Starts a node; its cluster listener takes a port the system chooses (a port picked beforehand
/// could be taken by another test's connection before the node binds it).
pub(crate) async fn start_node(redis: &RedisServer, name: &str, cookie: &str) -> Gateway {
    start_node_at(&redis.url(), name, cookie, &[]).await
}

/// Like [`start_node`], with the Redis URL given (e.g. through a proxy) and extra environment.
pub(crate) async fn start_node_at(redis_url: &str, name: &str, cookie: &str, extra_env: &[(&str, &str)]) -> Gateway {
    start_node_configured(redis_url, name, cookie, CLUSTER_CONFIG, extra_env).await
}

/// Like [`start_node_at`], with a config file of its own (`CLUSTER_CONFIG` with more, say); the
/// extra environment wins over the usual (`CONNECTORS_CLUSTER_LISTEN`, say).
pub(crate) async fn start_node_configured(
    redis_url: &str,
    name: &str,
    cookie: &str,
    config_yaml: &str,
    extra_env: &[(&str, &str)],
) -> Gateway {
    let mut env = node_env(redis_url, name, cookie);
    env.extend_from_slice(extra_env);
    Gateway::start(config_yaml, &env).await
}

/// Like [`start_node`], running `binary` (another build of the gateway).
pub(crate) async fn start_node_as(binary: &Path, redis: &RedisServer, name: &str, cookie: &str) -> Gateway {
    let redis_url = redis.url();
    Gateway::start_as(binary, CLUSTER_CONFIG, &node_env(&redis_url, name, cookie)).await
}

fn node_env<'a>(redis_url: &'a str, name: &'a str, cookie: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("REDIS_URL", redis_url),
        ("CONNECTORS_NODE_ID", name),
        ("CONNECTORS_CLUSTER_LISTEN", "127.0.0.1:0"),
        ("CONNECTORS_CLUSTER_COOKIE", cookie),
        ("CONNECTORS_MASTER_KEY", MASTER_KEY),
    ]
}

/// Every node given is ready and sees the same `size` nodes, all `up`, in the same epoch, and
/// together they own every shard.
pub(crate) async fn wait_converged(nodes: &[&Gateway], size: usize, timeout: Duration) {
    eventually(&format!("{size} nodes to agree on one view"), timeout, || async {
        let mut epochs = HashSet::new();
        let mut owned = 0;
        for node in nodes {
            let ready = node.get("/readyz").await;
            if ready.status != 200 {
                return Err(format!("{} not ready: {}", node.url(""), ready.text));
            }
            let view = node.admin(Method::GET, "/cluster", None).await.json();
            let members = view["nodes"].as_array().cloned().unwrap_or_default();
            if members.len() != size {
                return Err(format!("a node sees {} nodes: {view}", members.len()));
            }
            if members.iter().any(|member| member["status"] != "up") {
                return Err(format!("not every node is up: {view}"));
            }
            epochs.insert(view["epoch"].as_u64().unwrap_or(0));
            owned += view["shards"]["owned"].as_u64().unwrap_or(0);
        }
        if epochs.len() != 1 {
            return Err(format!("nodes disagree on the epoch: {epochs:?}"));
        }
        if owned != 1024 {
            return Err(format!("{owned} shards owned in total, not 1024"));
        }
        Ok(())
    })
    .await
}

impl Cluster {
    pub(crate) async fn start(size: usize) -> Cluster {
        let redis = RedisServer::start_persistent();
        let mut nodes = Vec::new();
        for i in 0..size {
            nodes.push(start_node(&redis, &format!("node-{i}"), COOKIE).await);
        }
        let cluster = Cluster { redis, nodes };
        cluster.wait_converged(size, Duration::from_secs(20)).await;
        cluster
    }

    /// Every node of the cluster is ready and sees `size` nodes in the same epoch.
    pub(crate) async fn wait_converged(&self, size: usize, timeout: Duration) {
        let nodes: Vec<&Gateway> = self.nodes.iter().collect();
        wait_converged(&nodes, size, timeout).await
    }

    /// Creates `count` tenants `{prefix}-{i}` (through the nodes in turn) with `per_minute`
    /// requests a minute; returns their ids and keys.
    pub(crate) async fn create_tenants(&self, prefix: &str, count: usize, per_minute: u64) -> Vec<(String, String)> {
        let mut tenants = Vec::new();
        for i in 0..count {
            let id = format!("{prefix}-{i}");
            let node = &self.nodes[i % self.nodes.len()];
            tenants.push((id.clone(), node.create_limited(&id, per_minute).await));
        }
        tenants
    }
}

/// A tenant id starting with `prefix` that node-1 owns in a cluster of node-0 and node-1 (computed
/// with the gateway's own placement).
pub(crate) fn id_owned_by_second_of_two(prefix: &str) -> String {
    let owners = ShardMap::new(1, [NodeId::from("node-0"), NodeId::from("node-1")]);
    (0..)
        .map(|i| format!("{prefix}-{i}"))
        .find(|id| owners.owner_of(&TenantId::parse(id).unwrap()) == Some(&NodeId::from("node-1")))
        .unwrap()
}
