//! Adapters for the ports of `connectors-actors`, and the contract suites they must pass.

pub mod audit_codec;
pub mod embedded_tool_graph;
pub mod file_secret_store;
pub mod redb_store;
#[cfg(test)]
pub mod secret_store_contract;
#[cfg(test)]
pub mod store_contract;
#[cfg(test)]
pub mod tool_graph_contract;
#[cfg(test)]
mod vault_fake;
pub mod vault_secret_store;
