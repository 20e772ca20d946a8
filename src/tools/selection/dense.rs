//! Dense retrieval: each tool's sentence vector, kept beside the lexical index, and how alike a
//! query's vector is to them. The vectors come from outside (the selector's encoder); a tool
//! whose vector is not there yet scores nothing here and ranks by its words alone.

use std::collections::HashMap;
use std::sync::Arc;

use super::terms::camel_parts;
use crate::tools::catalog::{Catalog, Tool};

/// A tool's vector, shared between catalogs that keep the tool.
pub type ToolVector = Arc<[f32]>;

/// What of a tool is embedded: its name in words and what it does. The key of the vector cache,
/// so a tool whose text did not change is never embedded twice.
pub fn embedded_text(tool: &Tool) -> String {
    let mut text = String::with_capacity(tool.name.len() + tool.description.len() + 2);
    for word in tool.name.split(|c: char| !c.is_ascii_alphanumeric()) {
        for part in camel_parts(word) {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(part);
        }
    }
    text.push_str(": ");
    text.push_str(&tool.description);
    text
}

/// The vectors of a catalog's tools, by catalog index.
#[derive(Debug, Clone, Default)]
pub struct ToolVectors {
    vectors: Vec<Option<ToolVector>>,
}

impl ToolVectors {
    /// The vectors of `catalog`'s tools found in `known` (by [`embedded_text`]).
    pub fn of(catalog: &Catalog, known: &HashMap<String, ToolVector>) -> Self {
        Self { vectors: catalog.tools().iter().map(|tool| known.get(&embedded_text(tool)).cloned()).collect() }
    }

    /// Whether any tool has a vector.
    pub fn is_empty(&self) -> bool {
        self.vectors.iter().all(Option::is_none)
    }

    /// The cosine of `query` (a unit vector) with every tool's, 0 for tools without one, into
    /// `scores` (by catalog index).
    pub fn similarities_into(&self, query: &[f32], scores: &mut [f32]) {
        for (score, vector) in scores.iter_mut().zip(&self.vectors) {
            if let Some(vector) = vector
                && vector.len() == query.len()
            {
                *score = vector.iter().zip(query).map(|(a, b)| a * b).sum();
            }
        }
    }
}
