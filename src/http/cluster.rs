//! `GET /api/v1/admin/cluster`: this node's view of the cluster.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use connectors_cluster::membership::NodeStatus;
use connectors_cluster::shard_map::SHARDS;
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::Gateway;

/// The cluster as the asked node sees it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterView {
    /// The asked node.
    node_id: String,
    /// The membership view's epoch.
    epoch: u64,
    nodes: Vec<NodeView>,
    shards: ShardCounts,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeView {
    id: String,
    /// Its HTTP address.
    addr: String,
    /// `up`, `joining`, `draining` or `down`.
    #[schema(pattern = "^(up|joining|draining|down)$")]
    status: &'static str,
    /// Its node-to-node address (cluster mode only).
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster_addr: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ShardCounts {
    total: u64,
    /// Shards the asked node owns.
    owned: u64,
    /// Owned shards it serves now (cluster mode only; fewer while taking shards over).
    #[serde(skip_serializing_if = "Option::is_none")]
    served: Option<u64>,
}

#[utoipa::path(
    get, path = "/api/v1/admin/cluster", tag = "admin", operation_id = "getCluster",
    responses((status = 200, description = "Nodes, their statuses, the view's epoch and the asked node's shards", body = ClusterView))
)]
pub async fn view(State(gateway): State<Arc<Gateway>>) -> Json<ClusterView> {
    let ownership = gateway.router.table().snapshot();
    let owned = ownership.map().count_owned_by(ownership.me());
    let Some(cluster) = &gateway.cluster else {
        return Json(ClusterView {
            node_id: gateway.node_id.as_str().to_string(),
            epoch: ownership.epoch(),
            nodes: vec![NodeView {
                id: gateway.node_id.as_str().to_string(),
                addr: gateway.http_addr.clone(),
                status: "up",
                cluster_addr: None,
            }],
            shards: ShardCounts { total: u64::from(SHARDS), owned: owned as u64, served: None },
        });
    };
    let status = cluster.status();
    let nodes = status
        .view
        .iter()
        .flat_map(|view| view.members.iter())
        .map(|member| NodeView {
            id: member.id.as_str().to_string(),
            addr: member.http_addr.clone(),
            status: status_name(member.status),
            cluster_addr: Some(member.cluster_addr.clone()),
        })
        .collect();
    Json(ClusterView {
        node_id: gateway.node_id.as_str().to_string(),
        epoch: status.view.as_ref().map_or(0, |view| view.epoch),
        nodes,
        shards: ShardCounts {
            total: u64::from(status.shards_total),
            owned: status.shards_owned as u64,
            served: Some(status.shards_served as u64),
        },
    })
}

fn status_name(status: NodeStatus) -> &'static str {
    match status {
        NodeStatus::Joining => "joining",
        NodeStatus::Up => "up",
        NodeStatus::Draining => "draining",
        NodeStatus::Down => "down",
    }
}
