//! Adapters for the ports of `connectors-actors`, and the contract suites they must pass.

pub mod audit_codec;
// A Bolt server standing in for Neo4j in the Neo4j tool graph's tests.
#[cfg(test)]
mod bolt_stand_in;
pub mod command_allow_list;
pub mod embedded_tool_graph;
pub mod file_secret_store;
pub mod kubernetes;
pub mod local_deployer;
pub mod neo4j_tool_graph;
pub mod node_deployer;
pub mod quarantine_file;
pub mod redb_store;
pub(crate) mod redis_connection;
pub mod redis_membership;
pub mod redis_namespace;
pub mod redis_rate_counter;
pub mod redis_secret_store;
pub mod redis_store;
pub mod redis_tool_graph;
// The throwaway redis-server of the Redis adapters' tests, shared with the end-to-end suite.
#[cfg(test)]
#[path = "../../tests/common/redis_server.rs"]
mod redis_server;
pub mod sealed_secrets;
#[cfg(test)]
pub mod secret_store_contract;
#[cfg(test)]
pub mod store_contract;
#[cfg(test)]
pub mod tool_graph_contract;
#[cfg(test)]
mod vault_fake;
pub mod vault_secret_store;
