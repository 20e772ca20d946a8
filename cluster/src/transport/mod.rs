//! The node-to-node transport over ractor_cluster: framing ([`wire`]), the actor peers talk to
//! ([`region`]) and the links to peers ([`links`]).

pub mod links;
pub mod region;
pub mod wire;
