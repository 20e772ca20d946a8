//! The Neo4j tool graph against the Bolt stand-in (`bolt_stand_in`), and against a real Neo4j
//! when `CONNECTORS_TEST_NEO4J_URI` (with `CONNECTORS_TEST_NEO4J_USER`, default `neo4j`, and
//! `CONNECTORS_TEST_NEO4J_PASSWORD`) names one — an empty database: the contract needs a fresh graph.

use super::*;
use crate::backends::bolt_stand_in::BoltStandIn;
use crate::backends::tool_graph_contract::{self, POLICY};

fn config(uri: String, password: &str) -> Neo4jConfig {
    Neo4jConfig { uri, user: "neo4j".into(), password: password.into() }
}

#[tokio::test]
async fn passes_the_tool_graph_contract_over_bolt() {
    let server = BoltStandIn::start("neo4j", "s3cret").await;
    let graph = Neo4jToolGraph::connect(&config(server.uri(), "s3cret"), POLICY).await.unwrap();
    tool_graph_contract::run(&graph).await;
    // Records are transactions, results are pulled, the pool resets connections it reuses.
    let seen = server.seen();
    for message in ["HELLO", "RUN", "PULL", "DISCARD", "BEGIN", "COMMIT", "RESET"] {
        assert!(seen.contains(&message), "{message} never sent: {seen:?}");
    }
}

#[tokio::test]
async fn a_history_longer_than_one_pull_is_read_whole() {
    let server = BoltStandIn::start("neo4j", "s3cret").await;
    let graph = Neo4jToolGraph::connect(&config(server.uri(), "s3cret"), POLICY).await.unwrap();
    let acme = TenantId::parse("acme").unwrap();
    // neo4rs pulls 200 rows at a time.
    for n in 1..=450 {
        graph
            .record_served(&acme, &ServedQuery { query: format!("query {n}"), tools: vec!["a.x".into()] })
            .await
            .unwrap();
    }
    let history = graph.served_queries(&acme, 0, 1_000).await.unwrap();
    assert_eq!(history.iter().map(|r| r.number).collect::<Vec<_>>(), (1..=450).collect::<Vec<u64>>());
    assert_eq!(graph.served_queries(&acme, 440, 5).await.unwrap()[0].number, 446);
    assert_eq!(graph.co_usage_version().await.unwrap(), 450);
}

#[tokio::test]
async fn wrong_credentials_or_no_server_fail_at_connect_naming_the_uri() {
    let server = BoltStandIn::start("neo4j", "s3cret").await;
    let Err(error) = Neo4jToolGraph::connect(&config(server.uri(), "wrong"), POLICY).await else {
        panic!("a wrong password connected");
    };
    let text = error.to_string();
    assert!(text.contains(&server.uri()) && !text.contains("wrong"), "{text}");
    let port = server.uri().rsplit(':').next().unwrap().to_string();
    drop(server);
    tokio::task::yield_now().await;
    let closed = format!("bolt://127.0.0.1:{port}");
    assert!(Neo4jToolGraph::connect(&config(closed, "s3cret"), POLICY).await.is_err());
}

#[tokio::test]
async fn passes_the_tool_graph_contract_on_a_real_neo4j_when_one_is_given() {
    let Ok(uri) = std::env::var("CONNECTORS_TEST_NEO4J_URI") else {
        eprintln!("CONNECTORS_TEST_NEO4J_URI is not set: the contract ran against the Bolt stand-in only");
        return;
    };
    let user = std::env::var("CONNECTORS_TEST_NEO4J_USER").unwrap_or_else(|_| "neo4j".into());
    let password = std::env::var("CONNECTORS_TEST_NEO4J_PASSWORD").unwrap_or_default();
    let graph = Neo4jToolGraph::connect(&Neo4jConfig { uri, user, password }, POLICY).await.unwrap();
    tool_graph_contract::run(&graph).await;
}
