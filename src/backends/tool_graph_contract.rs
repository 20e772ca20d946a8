//! The contract every [`ToolGraph`] adapter must pass: history is per tenant, numbered and
//! readable from a number on, concurrent records are all counted, co-usage is counted once per query and shared only as [`POLICY`] allows — enough distinct
//! tenants, each capped — and its confidence is the documented ratio.

use connectors_actors::tenant::TenantId;

use crate::tools::co_usage_policy::CoUsagePolicy;
use crate::tools::tool_graph::{OftenUsedWith, RecordedQuery, ServedQuery, ToolGraph};

/// The policy the graph under test must have been built with.
pub(crate) const POLICY: CoUsagePolicy = CoUsagePolicy { min_tenants: 3, per_tenant_cap: 4 };

fn served(query: &str, tools: &[&str]) -> ServedQuery {
    ServedQuery { query: query.to_string(), tools: tools.iter().map(|t| t.to_string()).collect() }
}

fn tenant(id: &str) -> TenantId {
    TenantId::parse(id).unwrap()
}

/// Runs the whole contract on a fresh graph built with [`POLICY`].
pub(crate) async fn run(graph: &dyn ToolGraph) {
    history_is_per_tenant(graph).await;
    history_reads_on_from_a_number(graph).await;
    concurrent_records_are_all_counted(graph).await;
    co_usage_is_shared_once_enough_tenants_back_it(graph).await;
    one_tenant_alone_creates_no_edge_and_weighs_at_most_the_cap(graph).await;
}

async fn history_is_per_tenant(graph: &dyn ToolGraph) {
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    assert!(graph.served_queries(&acme, 0, 10).await.unwrap().is_empty());
    let version = graph.co_usage_version().await.unwrap();
    graph.record_served(&acme, &served("first", &["h.x", "h.y", "h.x"])).await.unwrap();
    assert!(graph.co_usage_version().await.unwrap() > version, "a record moves the version on");
    graph.record_served(&globex, &served("secret plan", &["h.x", "h.y"])).await.unwrap();
    graph.record_served(&acme, &served("second", &["h.x"])).await.unwrap();
    graph.record_served(&acme, &served("third", &["h.z"])).await.unwrap();

    // A tenant's history is its own, oldest first, the newest `limit` of it.
    assert_eq!(queries(graph.served_queries(&acme, 0, 10).await.unwrap()), ["first", "second", "third"]);
    assert_eq!(queries(graph.served_queries(&acme, 0, 2).await.unwrap()), ["second", "third"]);
    assert_eq!(queries(graph.served_queries(&globex, 0, 10).await.unwrap()), ["secret plan"]);
    // Duplicate tools in one answer count once.
    assert_eq!(graph.served_queries(&acme, 0, 1).await.unwrap()[0].served.tools, ["h.z"]);
    assert_eq!(graph.served_queries(&acme, 0, 3).await.unwrap()[0].served.tools, ["h.x", "h.y"]);

    // Nothing is recorded for an empty answer.
    let version = graph.co_usage_version().await.unwrap();
    graph.record_served(&acme, &served("nothing", &[])).await.unwrap();
    assert_eq!(graph.served_queries(&acme, 0, 10).await.unwrap().len(), 3);
    assert_eq!(graph.co_usage_version().await.unwrap(), version);
}

async fn history_reads_on_from_a_number(graph: &dyn ToolGraph) {
    let hooli = tenant("hooli");
    for query in ["one", "two", "three", "four"] {
        graph.record_served(&hooli, &served(query, &["n.a"])).await.unwrap();
    }
    let all = graph.served_queries(&hooli, 0, 10).await.unwrap();
    assert_eq!(all.iter().map(|r| r.number).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert_eq!(queries(graph.served_queries(&hooli, 2, 10).await.unwrap()), ["three", "four"]);
    // The newest `limit` of those after the number.
    let newest = graph.served_queries(&hooli, 1, 2).await.unwrap();
    assert_eq!(
        newest.iter().map(|r| (r.number, r.served.query.as_str())).collect::<Vec<_>>(),
        [(3, "three"), (4, "four")]
    );
    assert!(graph.served_queries(&hooli, 4, 10).await.unwrap().is_empty());
    assert!(graph.served_queries(&hooli, 99, 10).await.unwrap().is_empty());
}

async fn concurrent_records_are_all_counted(graph: &dyn ToolGraph) {
    let (umbrella, wayne, stark) = (tenant("umbrella"), tenant("wayne"), tenant("stark"));
    let record = |tenant: &TenantId, n: u32| {
        let (graph, tenant) = (graph, tenant.clone());
        async move { graph.record_served(&tenant, &served(&format!("together {n}"), &["c.a", "c.b"])).await.unwrap() }
    };
    // Below the cap of each tenant, so that every co-occurrence shows in the edge.
    tokio::join!(record(&umbrella, 1), record(&wayne, 2), record(&stark, 3), record(&umbrella, 4), record(&wayne, 5));
    let numbers = graph.served_queries(&umbrella, 0, 10).await.unwrap().iter().map(|r| r.number).collect::<Vec<_>>();
    assert_eq!(numbers, [1, 2]);
    let edges = graph.often_used_with("c.a").await.unwrap();
    assert_eq!(edges.len(), 1, "{edges:?}");
    assert_eq!((edges[0].to.as_str(), edges[0].co_occurrences, edges[0].tenants), ("c.b", 5, 3));
}

fn queries(history: Vec<RecordedQuery>) -> Vec<String> {
    history.into_iter().map(|r| r.served.query).collect()
}

async fn co_usage_is_shared_once_enough_tenants_back_it(graph: &dyn ToolGraph) {
    let (acme, globex, initech) = (tenant("acme"), tenant("globex"), tenant("initech"));
    assert!(graph.often_used_with("a.x").await.unwrap().is_empty());
    graph.record_served(&acme, &served("first", &["a.x", "b.y", "a.x"])).await.unwrap();
    graph.record_served(&acme, &served("second", &["a.x"])).await.unwrap();
    graph.record_served(&globex, &served("secret plan", &["a.x", "b.y"])).await.unwrap();
    // Two tenants are not enough.
    assert!(graph.often_used_with("a.x").await.unwrap().is_empty());
    assert!(graph.often_used_with("b.y").await.unwrap().is_empty());
    graph.record_served(&initech, &served("its own", &["a.x", "b.y"])).await.unwrap();

    // The third makes the edge: a.x served 4 queries, 3 of them with b.y.
    let from_x = graph.often_used_with("a.x").await.unwrap();
    assert_eq!(from_x.len(), 1);
    assert_eq!((from_x[0].to.as_str(), from_x[0].co_occurrences, from_x[0].tenants), ("b.y", 3, 3));
    assert!((from_x[0].confidence - 3.0 / 4.0).abs() < 1e-9, "{from_x:?}");
    let from_y = graph.often_used_with("b.y").await.unwrap();
    assert_eq!((from_y[0].to.as_str(), from_y[0].co_occurrences, from_y[0].confidence), ("a.x", 3, 1.0));
    assert_eq!(edges_among(graph, "a.").await, [from_x[0].clone()]);
    assert_eq!(edges_among(graph, "b.").await, [from_y[0].clone()]);
}

async fn one_tenant_alone_creates_no_edge_and_weighs_at_most_the_cap(graph: &dyn ToolGraph) {
    let (mallory, acme, globex) = (tenant("mallory"), tenant("acme"), tenant("globex"));
    for n in 0..50 {
        graph.record_served(&mallory, &served(&format!("again {n}"), &["m.p", "m.q"])).await.unwrap();
    }
    assert!(graph.often_used_with("m.p").await.unwrap().is_empty());
    assert!(graph.often_used_with("m.q").await.unwrap().is_empty());
    assert!(edges_among(graph, "m.").await.is_empty());

    // Two more tenants make a quorum with it, but its 50 queries count as the cap.
    graph.record_served(&acme, &served("with m", &["m.p", "m.q"])).await.unwrap();
    graph.record_served(&globex, &served("with m too", &["m.p", "m.q"])).await.unwrap();
    let edges = graph.often_used_with("m.p").await.unwrap();
    assert_eq!(edges.len(), 1);
    assert_eq!((edges[0].co_occurrences, edges[0].tenants), (POLICY.per_tenant_cap + 2, 3));
    assert_eq!(edges[0].confidence, 1.0);

    // Using m.p alone 50 times more dilutes its confidence by its capped weight only.
    for n in 0..50 {
        graph.record_served(&mallory, &served(&format!("alone {n}"), &["m.p"])).await.unwrap();
    }
    let edges = graph.often_used_with("m.p").await.unwrap();
    assert_eq!(edges[0].co_occurrences, POLICY.per_tenant_cap + 2);
    // Mallory: 100 queries counted as 4, half of them with m.q; acme and globex: 1 of 1 each.
    let expected = (4.0 * 0.5 + 1.0 + 1.0) / (4.0 + 1.0 + 1.0);
    assert!((edges[0].confidence - expected).abs() < 1e-9, "{edges:?}");
}

/// The shared edges leaving tools whose ids start with `prefix`, by source.
async fn edges_among(graph: &dyn ToolGraph, prefix: &str) -> Vec<OftenUsedWith> {
    let mut edges: Vec<OftenUsedWith> =
        graph.all_often_used_with().await.unwrap().into_iter().filter(|e| e.from.starts_with(prefix)).collect();
    edges.sort_by(|a, b| a.from.cmp(&b.from).then_with(|| a.to.cmp(&b.to)));
    edges
}
