//! The cluster core of Connectors Gateway: where each tenant lives.
//!
//! [`shard_map`] maps a tenant to its shard and a shard to its owning node over one membership
//! view. It is pure: no I/O, no clock reads, no network. The shells that link the nodes live
//! elsewhere and only feed inputs and carry out effects.

pub mod shard_map;
