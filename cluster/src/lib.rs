//! The cluster core of Connectors Gateway: where each tenant lives and which nodes count.
//!
//! [`shard_map`] maps a tenant to its shard and a shard to its owning node over one membership
//! view; [`membership`] decides, from the shared membership table, which view this node believes
//! in. Both are pure: no I/O, no clock reads, no network. The shells that read and write the table
//! (Redis) and link the nodes (ractor_cluster) live elsewhere and only feed inputs and carry out
//! effects.

pub mod audit_outbox;
pub mod cluster_node;
pub mod membership;
pub mod membership_store;
pub mod ownership;
pub mod router;
pub mod shard_map;
pub mod tenant_client;
pub mod transport;
