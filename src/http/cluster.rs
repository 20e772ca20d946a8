//! `GET /api/v1/admin/cluster`: this node's view of the cluster.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use connectors_cluster::membership::NodeStatus;
use connectors_cluster::shard_map::SHARDS;
use serde_json::{Value, json};

use crate::app::Gateway;

pub async fn view(State(gateway): State<Arc<Gateway>>) -> Json<Value> {
    let ownership = gateway.router.table().snapshot();
    let owned = ownership.map().count_owned_by(ownership.me());
    let Some(cluster) = &gateway.cluster else {
        return Json(json!({
            "nodeId": gateway.node_id.as_str(),
            "epoch": ownership.epoch(),
            "nodes": [{"id": gateway.node_id.as_str(), "addr": gateway.http_addr, "status": "up"}],
            "shards": {"total": SHARDS, "owned": owned},
        }));
    };
    let status = cluster.status();
    let nodes: Vec<Value> = status
        .view
        .iter()
        .flat_map(|view| view.members.iter())
        .map(|member| {
            json!({
                "id": member.id.as_str(),
                "addr": member.http_addr,
                "status": status_name(member.status),
                "clusterAddr": member.cluster_addr,
            })
        })
        .collect();
    Json(json!({
        "nodeId": gateway.node_id.as_str(),
        "epoch": status.view.as_ref().map_or(0, |view| view.epoch),
        "nodes": nodes,
        "shards": {"total": status.shards_total, "owned": status.shards_owned, "served": status.shards_served},
    }))
}

fn status_name(status: NodeStatus) -> &'static str {
    match status {
        NodeStatus::Joining => "joining",
        NodeStatus::Up => "up",
        NodeStatus::Draining => "draining",
        NodeStatus::Down => "down",
    }
}
