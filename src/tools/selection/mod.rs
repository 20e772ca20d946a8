//! Ranking tools for a query: terms, the lexical index, learned signals, the engine that blends
//! them, and the token-budget tiering of the answer.

pub mod calibration;
pub mod dense;
pub mod engine;
pub mod index;
pub mod learning;
mod terms;
pub mod tiering;
