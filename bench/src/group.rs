//! Gateway processes sharing one Redis and one key prefix: a cluster (or a single node with the
//! Redis counter), where each tenant lives by the real placement code, and the wait until a
//! cluster agrees on one view.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use connectors_actors::tenant::TenantId;
use connectors_cluster::shard_map::{NodeId, ShardMap};

use crate::gateway::{self, Gateway, Options};
use crate::tenants::{get_json, tenant_id};

/// What every group of one benchmark run shares: the gateway binary, the Redis server and the
/// cluster cookie.
pub(crate) struct Site {
    pub(crate) binary: PathBuf,
    pub(crate) redis_url: String,
    pub(crate) cookie: String,
}

impl Site {
    /// A site of this process's nodes; the cookie is as long as the gateway requires (32+ characters).
    pub(crate) fn new(binary: PathBuf, redis_url: String) -> Self {
        Self { binary, redis_url, cookie: format!("connectors-bench-cluster-cookie-{:010}", std::process::id()) }
    }
}

/// One node's row after [`Group::converge`]: (group, node id, shards owned as reported, as
/// computed by [`ShardMap`], epoch).
pub(crate) type OwnershipRow = (String, String, u64, usize, u64);

/// Gateway processes sharing one Redis key prefix: a cluster, or the Redis-counter node.
pub(crate) struct Group {
    pub(crate) label: &'static str,
    /// Cluster node ids; empty for the Redis-counter node (not a cluster).
    pub(crate) ids: Vec<NodeId>,
    pub(crate) nodes: Vec<Gateway>,
    /// The registered tenants' keys, by tenant index.
    pub(crate) keys: Vec<String>,
}

impl Group {
    /// Starts one gateway per name under `prefix` (`REDIS_TENANT_PREFIX`, which also namespaces
    /// the membership table): cluster nodes with those ids when `cluster`, else nodes with
    /// `RATE_LIMIT_STORE=redis` and no node id. `extra_config` is appended to each node's config.
    pub(crate) fn spawn(
        site: &Site,
        label: &'static str,
        prefix: &str,
        names: &[&str],
        cluster: bool,
        extra_config: &'static str,
    ) -> Result<Self, String> {
        let admin_key = gateway::new_admin_key();
        let master_key = gateway::new_master_key()?;
        let mut group = Group { label, ids: Vec::new(), nodes: Vec::new(), keys: Vec::new() };
        for name in names {
            let mut env = vec![
                ("REDIS_URL", site.redis_url.clone()),
                ("REDIS_TENANT_PREFIX", prefix.to_string()),
                ("CONNECTORS_MASTER_KEY", master_key.clone()),
            ];
            if cluster {
                env.push(("CONNECTORS_NODE_ID", name.to_string()));
                // Fixed for the node's life: a restart listens on the same cluster port.
                env.push(("CONNECTORS_CLUSTER_LISTEN", gateway::free_addr()?.to_string()));
                env.push(("CONNECTORS_CLUSTER_COOKIE", site.cookie.clone()));
                group.ids.push(NodeId::from(*name));
            } else {
                env.push(("RATE_LIMIT_STORE", "redis".to_string()));
            }
            let options = Options { name: name.to_string(), admin_key: admin_key.clone(), env, extra_config };
            group.nodes.push(Gateway::spawn_with(&site.binary, options)?);
        }
        Ok(group)
    }

    pub(crate) fn pids(&self) -> Vec<u32> {
        self.nodes.iter().map(Gateway::pid).collect()
    }

    /// The placement with every node of the group up.
    pub(crate) fn map(&self) -> ShardMap {
        ShardMap::new(0, self.ids.iter().cloned())
    }

    /// The index (into `ids` and `nodes`) of the owner of each of the first `count` tenants,
    /// with every node up.
    pub(crate) fn owners(&self, count: usize) -> Result<Vec<usize>, String> {
        let map = self.map();
        (0..count)
            .map(|i| {
                let id = TenantId::parse(&tenant_id(i)).map_err(|e| e.to_string())?;
                let owner = map.owner_of(&id).ok_or_else(|| format!("{}: no owner in {}", tenant_id(i), self.label))?;
                self.ids.iter().position(|node| node == owner).ok_or_else(|| format!("unknown owner {owner}"))
            })
            .collect()
    }

    /// Waits (up to `timeout`) until every node is ready, sees every member in one epoch, and
    /// owns exactly the shards [`ShardMap`] gives it; returns one row per node.
    pub(crate) async fn converge(&self, timeout: Duration) -> Result<Vec<OwnershipRow>, String> {
        let map = self.map();
        let deadline = Instant::now() + timeout;
        loop {
            let mut rows = Vec::new();
            let mut problem = None;
            for (node, id) in self.nodes.iter().zip(&self.ids) {
                let (status, view) = get_json(node.addr, "/api/v1/admin/cluster", Some(&node.admin_key)).await?;
                let (ready, _) = get_json(node.addr, "/readyz", None).await?;
                let members = view["nodes"].as_array().map_or(0, Vec::len);
                let owned = view["shards"]["owned"].as_u64().unwrap_or(0);
                let expected = map.count_owned_by(id);
                if status != 200 || ready != 200 || members != self.ids.len() || owned != expected as u64 {
                    problem.get_or_insert(format!(
                        "{}: cluster view {status}, readyz {ready}, {members} members, owns {owned} shards (computed {expected}): {view}",
                        node.name
                    ));
                }
                rows.push((
                    self.label.to_string(),
                    node.name.clone(),
                    owned,
                    expected,
                    view["epoch"].as_u64().unwrap_or(0),
                ));
            }
            let same_epoch = rows.iter().all(|r| r.4 == rows[0].4);
            match problem {
                None if same_epoch => return Ok(rows),
                _ if Instant::now() > deadline => {
                    let why = problem.unwrap_or_else(|| format!("nodes disagree on the epoch: {rows:?}"));
                    return Err(format!("{} did not converge within {timeout:?}: {why}", self.label));
                }
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
}
