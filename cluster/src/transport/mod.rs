//! The node-to-node transport over ractor_cluster: framing ([`wire`]), the actor peers talk to
//! ([`region`]) and the links to peers ([`links`], whose decisions are `peer_health`'s, encrypted
//! with [`tls`] when configured, their handshakes accepted by [`tls_listener`]; tenant requests
//! go in [`ask_batches`], written compactly by [`compact`]; answers that come after their asker
//! stopped waiting are handed to it by [`late_answers`]).

pub mod ask_batches;
pub mod compact;
pub mod late_answers;
pub mod links;
mod peer_health;
pub mod region;
pub mod tls;
mod tls_listener;
pub mod wire;
