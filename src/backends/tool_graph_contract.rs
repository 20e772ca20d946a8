//! The contract every [`ToolGraph`] adapter must pass: history is per tenant and ordered,
//! co-usage is shared, counted once per query, and its confidence is the documented ratio.

use connectors_actors::tenant::TenantId;

use crate::tools::tool_graph::{ServedQuery, ToolGraph};

fn served(query: &str, tools: &[&str]) -> ServedQuery {
    ServedQuery { query: query.to_string(), tools: tools.iter().map(|t| t.to_string()).collect() }
}

pub(crate) async fn run(graph: &dyn ToolGraph) {
    let acme = TenantId::parse("acme").unwrap();
    let globex = TenantId::parse("globex").unwrap();
    assert!(graph.served_queries(&acme, 10).await.unwrap().is_empty());
    assert!(graph.often_used_with("a.x").await.unwrap().is_empty());

    graph.record_served(&acme, &served("first", &["a.x", "b.y", "a.x"])).await.unwrap();
    graph.record_served(&globex, &served("secret plan", &["a.x", "b.y"])).await.unwrap();
    graph.record_served(&acme, &served("second", &["a.x"])).await.unwrap();
    graph.record_served(&acme, &served("third", &["c.z"])).await.unwrap();

    // A tenant's history is its own, oldest first, the newest `limit` of it.
    let queries = |history: Vec<ServedQuery>| history.into_iter().map(|s| s.query).collect::<Vec<_>>();
    assert_eq!(queries(graph.served_queries(&acme, 10).await.unwrap()), ["first", "second", "third"]);
    assert_eq!(queries(graph.served_queries(&acme, 2).await.unwrap()), ["second", "third"]);
    assert_eq!(queries(graph.served_queries(&globex, 10).await.unwrap()), ["secret plan"]);
    // Duplicate tools in one answer count once.
    assert_eq!(graph.served_queries(&acme, 1).await.unwrap()[0].tools, ["c.z"]);
    assert_eq!(graph.served_queries(&acme, 3).await.unwrap()[0].tools, ["a.x", "b.y"]);

    // Co-usage is shared across tenants: a.x served 3 queries, 2 of them with b.y.
    let from_x = graph.often_used_with("a.x").await.unwrap();
    assert_eq!(from_x.len(), 1);
    assert_eq!((from_x[0].to.as_str(), from_x[0].co_occurrences), ("b.y", 2));
    assert!((from_x[0].confidence - 2.0 / 3.0).abs() < 1e-9);
    let from_y = graph.often_used_with("b.y").await.unwrap();
    assert_eq!((from_y[0].to.as_str(), from_y[0].co_occurrences, from_y[0].confidence), ("a.x", 2, 1.0));
    assert!(graph.often_used_with("c.z").await.unwrap().is_empty());
    let mut all = graph.all_often_used_with().await.unwrap();
    all.sort_by(|a, b| a.from.cmp(&b.from));
    assert_eq!(all, [from_x[0].clone(), from_y[0].clone()]);

    // Nothing is recorded for an empty answer.
    graph.record_served(&acme, &served("nothing", &[])).await.unwrap();
    assert_eq!(graph.served_queries(&acme, 10).await.unwrap().len(), 3);
}
