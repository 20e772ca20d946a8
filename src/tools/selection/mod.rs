//! Ranking tools for a query: terms, the lexical index, learned signals, the engine that blends
//! them, and the token-budget tiering of the answer.

pub mod index;
mod terms;
pub mod tiering;
