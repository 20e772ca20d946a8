//! `connectors cluster status`: a running cluster's view and shard placement, from any node's
//! `GET /api/v1/admin/cluster`.

use std::fmt::Write;

use connectors_client::AdminApi;
use connectors_client::types::ClusterView;
use connectors_cluster::shard_map::{NodeId, SHARDS, ShardMap};

use crate::cli::ClusterStatusArgs;

/// Asks the node and renders its answer.
pub async fn run(args: &ClusterStatusArgs) -> Result<String, String> {
    let api = AdminApi::new(&args.url, &args.admin_key).map_err(|e| e.to_string())?;
    let view = api.cluster().await.map_err(|e| format!("{}: {e}", args.url))?;
    if args.json {
        return serde_json::to_string_pretty(&view).map_err(|e| e.to_string());
    }
    Ok(render(&view))
}

/// The view as a table; each owner's shard count is recomputed from the view's `up` members with
/// the same placement every node uses, so it shows where every shard lives, not only the asked
/// node's share.
fn render(view: &ClusterView) -> String {
    let epoch = view.epoch;
    let owners = view.nodes.iter().filter(|node| node.status == "up").map(|node| NodeId::from(node.id.as_str()));
    let placement = ShardMap::new(epoch, owners);
    let mut out = String::new();
    let _ = writeln!(out, "asked node: {}   view epoch: {epoch}   shards: {SHARDS}", view.node_id);
    let _ = writeln!(out, "{:<24} {:<9} {:>6}  {:<22} CLUSTER", "NODE", "STATUS", "SHARDS", "HTTP");
    for node in &view.nodes {
        let _ = writeln!(
            out,
            "{:<24} {:<9} {:>6}  {:<22} {}",
            node.id,
            node.status,
            placement.count_owned_by(&NodeId::from(node.id.as_str())),
            node.addr,
            node.cluster_addr.as_deref().unwrap_or("-"),
        );
    }
    let shards = &view.shards;
    let _ = write!(
        out,
        "asked node serves {} of the {} shards it owns",
        shards.served.unwrap_or(shards.owned),
        shards.owned
    );
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_shard_is_placed_on_an_up_member_and_draining_ones_own_none() {
        let view = json!({
            "nodeId": "a", "epoch": 9,
            "nodes": [
                {"id": "a", "status": "up", "addr": "127.0.0.1:3000", "clusterAddr": "127.0.0.1:4000"},
                {"id": "b", "status": "draining", "addr": "127.0.0.1:3001", "clusterAddr": "127.0.0.1:4001"},
                {"id": "c", "status": "up", "addr": "127.0.0.1:3002", "clusterAddr": "127.0.0.1:4002"}
            ],
            "shards": {"total": 1024, "owned": 500, "served": 500}
        });
        let text = render(&serde_json::from_value(view).unwrap());
        let count = |id: &str| -> usize {
            let line = text.lines().find(|line| line.starts_with(&format!("{id} "))).expect(id);
            line.split_whitespace().nth(2).unwrap().parse().unwrap()
        };
        assert_eq!(count("b"), 0, "{text}");
        assert_eq!(count("a") + count("c"), usize::from(SHARDS), "{text}");
        let map = ShardMap::new(9, [NodeId::from("a"), NodeId::from("c")]);
        assert_eq!(count("a"), map.count_owned_by(&NodeId::from("a")));
        assert!(text.contains("view epoch: 9"));
    }
}
