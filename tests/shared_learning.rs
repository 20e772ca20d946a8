//! End-to-end: learning shared by a cluster. Two real `connectors` nodes share one real
//! `redis-server`, where the tool graph lives; what a tenant teaches through one node (feedback,
//! or an invocation of a selected tool) ranks the tenant's selections served by the other at once.
//!
//! Selection runs on the node that takes the request (the edge), whichever node owns the tenant:
//! so the test teaches through the owner and selects through the other node, then the reverse.

#[path = "common/cluster.rs"]
mod cluster_common;
mod common;
#[path = "common/mcp_servers.rs"]
mod mcp_servers;
#[path = "common/redis_server.rs"]
mod redis_server;

use std::time::Duration;

use cluster_common::{Cluster, id_owned_by_second_of_two};
use common::{Gateway, eventually, send};
use mcp_servers::HttpServerProcess;
use reqwest::Method;
use serde_json::{Value, json};

async fn tool_post(node: &Gateway, tenant: &str, key: &str, path: &str, body: Value) -> common::Resp {
    send(
        node.request(Method::POST, &format!("/api/v1/tools{path}"))
            .header("X-Tenant-ID", tenant)
            .bearer_auth(key)
            .json(&body),
    )
    .await
}

/// The id of the best tool `node` selects for `query`, and the selection's id.
async fn best(node: &Gateway, tenant: &str, key: &str, query: &str) -> (Option<String>, String) {
    let selected = tool_post(node, tenant, key, "/select", json!({"query": query})).await;
    selected.expect(200);
    let body = selected.json();
    (body["tools"]["tier1"][0]["id"].as_str().map(str::to_string), body["selectionId"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn history_taught_through_one_node_ranks_the_selections_of_another() {
    let server = HttpServerProcess::example(&[]);
    let cluster = Cluster::start(2).await;
    let [first, second] = [&cluster.nodes[0], &cluster.nodes[1]];
    first.admin(Method::POST, "/integrations", Some(json!({"name": "example", "url": server.url}))).await.expect(201);
    let tenant = id_owned_by_second_of_two("learner");
    let (_, key) = first.create_tenant(json!({"id": tenant, "name": "Learner", "plan": "pro"})).await;
    // The integration registered through the first node reaches the second's catalog.
    eventually("the second node to know the example tools", Duration::from_secs(20), || async {
        let request = second.request(Method::GET, "/api/v1/tools").header("X-Tenant-ID", &tenant).bearer_auth(&key);
        let tools = send(request).await.json();
        if tools["total"] == 6 { Ok(()) } else { Err(tools.to_string()) }
    })
    .await;

    // Both nodes serve the tenant before any lesson: each has read its (empty) history, so what
    // follows shows lessons reaching a node that already knows the tenant, not a first load.
    let routine = "the monday routine";
    assert_ne!(best(first, &tenant, &key, routine).await.0.as_deref(), Some("example.whoami"));
    assert_ne!(best(second, &tenant, &key, routine).await.0.as_deref(), Some("example.whoami"));

    // Feedback through the owner (the second node) ranks the first node's selections.
    for i in 0..8 {
        let feedback = json!({"query": format!("{routine} {i}"), "toolIds": ["example.whoami"]});
        tool_post(second, &tenant, &key, "/feedback", feedback).await.expect(204);
    }
    assert_eq!(best(first, &tenant, &key, routine).await.0.as_deref(), Some("example.whoami"));

    // Selections invoked through the first node (not the owner) rank the second node's.
    let wrap_up = "the friday wrap-up";
    assert_ne!(best(second, &tenant, &key, wrap_up).await.0.as_deref(), Some("example.echo"));
    for i in 0..8 {
        let (_, selection_id) = best(first, &tenant, &key, &format!("{wrap_up} {i}")).await;
        let invocation = json!({"toolId": "example.echo", "parameters": {"text": "done"}, "selectionId": selection_id});
        tool_post(first, &tenant, &key, "/invoke", invocation).await.expect(200);
    }
    assert_eq!(best(second, &tenant, &key, wrap_up).await.0.as_deref(), Some("example.echo"));
    // Both nodes rank with both lessons.
    assert_eq!(best(first, &tenant, &key, routine).await.0.as_deref(), Some("example.whoami"));
    assert_eq!(best(second, &tenant, &key, routine).await.0.as_deref(), Some("example.whoami"));
}
