//! Adapters for the ports of `connectors-actors`, and the contract suites they must pass.

pub mod audit_codec;
pub mod redb_store;
#[cfg(test)]
pub mod store_contract;
