//! `connectors cluster status`: a running cluster's view and shard placement, from any node's
//! `GET /api/v1/admin/cluster`.

use std::fmt::Write;

use connectors_cluster::shard_map::{NodeId, SHARDS, ShardMap};
use serde_json::Value;

use crate::cli::ClusterStatusArgs;

/// Asks the node and renders its answer.
pub async fn run(args: &ClusterStatusArgs) -> Result<String, String> {
    let url = format!("{}/api/v1/admin/cluster", args.url.trim_end_matches('/'));
    let response = reqwest::Client::new()
        .get(&url)
        .bearer_auth(&args.admin_key)
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| format!("cannot reach {url}: {e}"))?;
    let status = response.status();
    let body: Value = response.json().await.map_err(|e| format!("{url} answered {status} with no JSON: {e}"))?;
    if !status.is_success() {
        let message = body["error"]["message"].as_str().unwrap_or("no message");
        return Err(format!("{url} answered {status}: {message}"));
    }
    if args.json {
        return Ok(serde_json::to_string_pretty(&body).unwrap_or_default());
    }
    Ok(render(&body))
}

/// The view as a table; each owner's shard count is recomputed from the view's `up` members with
/// the same placement every node uses, so it shows where every shard lives, not only the asked
/// node's share.
fn render(view: &Value) -> String {
    let epoch = view["epoch"].as_u64().unwrap_or(0);
    let nodes = view["nodes"].as_array().cloned().unwrap_or_default();
    let owners =
        nodes.iter().filter(|node| node["status"] == "up").filter_map(|node| node["id"].as_str()).map(NodeId::from);
    let placement = ShardMap::new(epoch, owners);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "asked node: {}   view epoch: {epoch}   shards: {SHARDS}",
        view["nodeId"].as_str().unwrap_or("?")
    );
    let _ = writeln!(out, "{:<24} {:<9} {:>6}  {:<22} CLUSTER", "NODE", "STATUS", "SHARDS", "HTTP");
    for node in &nodes {
        let id = node["id"].as_str().unwrap_or("?");
        let _ = writeln!(
            out,
            "{:<24} {:<9} {:>6}  {:<22} {}",
            id,
            node["status"].as_str().unwrap_or("?"),
            placement.count_owned_by(&NodeId::from(id)),
            node["addr"].as_str().unwrap_or("-"),
            node["clusterAddr"].as_str().unwrap_or("-"),
        );
    }
    let shards = &view["shards"];
    let _ = write!(
        out,
        "asked node serves {} of the {} shards it owns",
        shards["served"].as_u64().unwrap_or(shards["owned"].as_u64().unwrap_or(0)),
        shards["owned"].as_u64().unwrap_or(0)
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
        let text = render(&view);
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
