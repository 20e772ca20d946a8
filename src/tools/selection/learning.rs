//! What selection learns from traffic, held in memory for the hot path:
//!
//! - [`TenantMemory`]: one tenant's past queries and the tools that served them. A new query
//!   finds the most similar past queries of the same tenant (TF-IDF cosine over their terms) and
//!   those vote for their tools, each vote worth the similarity. Votes carry their own
//!   confidence: a query unlike anything seen before gets no votes, so an uninformative history
//!   leaves the lexical ranking alone instead of diluting tool descriptions with unrelated text
//!   (which is what concatenating history into tool documents does).
//! - [`CoUsage`]: the cross-tenant `OFTEN_USED_WITH` edges between tool ids, a cache of those the
//!   `ToolGraph` shares (enough distinct tenants behind each, see `CoUsagePolicy`).
//!
//! Neither reads or writes storage; the `ToolGraph` port is the durable copy and the selector
//! feeds both from it.

use std::collections::HashMap;

use super::terms::terms;
use crate::tools::catalog::ToolId;
use crate::tools::tool_graph::OftenUsedWith;

/// Past queries whose cached norms may lag the current IDF by at most this growth factor.
const NORM_REFRESH_GROWTH: f32 = 1.1;

#[derive(Debug, Clone)]
struct PastQuery {
    /// Distinct terms.
    terms: Vec<String>,
    tools: Vec<ToolId>,
    /// Euclidean norm of the IDF vector of `terms`, with the IDF of the last refresh.
    norm: f32,
}

/// A past query similar to the one being served.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Neighbour<'a> {
    /// Cosine similarity in (0, 1].
    pub similarity: f32,
    pub tools: &'a [ToolId],
}

/// One tenant's served queries, searchable by similarity to a new query.
#[derive(Debug, Clone, Default)]
pub struct TenantMemory {
    queries: Vec<PastQuery>,
    /// Term → the past queries that contain it.
    postings: HashMap<String, Vec<u32>>,
    refreshed_at: usize,
}

impl TenantMemory {
    /// Remembers that `query` was served by `tools`.
    pub fn remember(&mut self, query: &str, tools: &[ToolId]) {
        if tools.is_empty() {
            return;
        }
        let mut distinct = terms(query);
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.is_empty() {
            return;
        }
        let number = u32::try_from(self.queries.len()).unwrap_or(u32::MAX);
        for term in &distinct {
            self.postings.entry(term.clone()).or_default().push(number);
        }
        let mut past = PastQuery { terms: distinct, tools: tools.to_vec(), norm: 0.0 };
        past.norm = self.norm_of(&past.terms);
        self.queries.push(past);
        if self.queries.len() as f32 >= self.refreshed_at as f32 * NORM_REFRESH_GROWTH {
            self.refresh_norms();
        }
    }

    pub fn len(&self) -> usize {
        self.queries.len()
    }

    /// Forgets all but the `count` most recent queries.
    pub fn keep_newest(&mut self, count: usize) {
        let keep = self.queries.split_off(self.queries.len().saturating_sub(count));
        *self = Self::default();
        for past in keep {
            let number = u32::try_from(self.queries.len()).unwrap_or(u32::MAX);
            for term in &past.terms {
                self.postings.entry(term.clone()).or_default().push(number);
            }
            self.queries.push(past);
        }
        self.refresh_norms();
    }

    pub fn is_empty(&self) -> bool {
        self.queries.is_empty()
    }

    /// The past queries most similar to `query` (at least `min_similarity`), most similar first,
    /// at most `limit`.
    pub fn neighbours(&self, query: &[String], min_similarity: f32, limit: usize) -> Vec<Neighbour<'_>> {
        let mut distinct: Vec<&String> = query.iter().collect();
        distinct.sort_unstable();
        distinct.dedup();
        let query_weights: Vec<(&Vec<u32>, f32)> =
            distinct.iter().filter_map(|t| self.postings.get(*t).map(|p| (p, self.idf(p.len())))).collect();
        // Unknown terms count in the query's norm: a query mostly about things never seen before
        // is not similar to anything, however well one word matches.
        let unknown = distinct.len() - query_weights.len();
        let unknown_idf = self.idf(0);
        let query_norm =
            (query_weights.iter().map(|(_, w)| w * w).sum::<f32>() + unknown as f32 * unknown_idf * unknown_idf).sqrt();
        if query_norm <= 0.0 {
            return Vec::new();
        }
        // Dense: past queries are numbered 0..n, and most share some common term with the query.
        let mut dots = vec![0.0f32; self.queries.len()];
        for (postings, weight) in &query_weights {
            for &number in *postings {
                dots[number as usize] += weight * weight;
            }
        }
        let mut found: Vec<Neighbour<'_>> = dots
            .iter()
            .zip(&self.queries)
            .filter(|(dot, _)| **dot > 0.0)
            .filter_map(|(dot, past)| {
                let similarity = (dot / (query_norm * past.norm.max(f32::EPSILON))).min(1.0);
                (similarity >= min_similarity).then_some(Neighbour { similarity, tools: &past.tools })
            })
            .collect();
        let most_similar_first = |a: &Neighbour<'_>, b: &Neighbour<'_>| b.similarity.total_cmp(&a.similarity);
        if found.len() > limit && limit > 0 {
            found.select_nth_unstable_by(limit - 1, most_similar_first);
        }
        found.truncate(limit);
        found.sort_unstable_by(most_similar_first);
        found
    }

    /// Smoothed inverse document frequency over this tenant's past queries.
    fn idf(&self, df: usize) -> f32 {
        ((1.0 + self.queries.len() as f32) / (1.0 + df as f32)).ln() + 1.0
    }

    fn norm_of(&self, terms: &[String]) -> f32 {
        terms.iter().map(|t| self.idf(self.postings.get(t).map_or(0, Vec::len))).map(|w| w * w).sum::<f32>().sqrt()
    }

    /// Recomputes every past query's norm with the current IDF; amortised over growth.
    fn refresh_norms(&mut self) {
        let norms: Vec<f32> = self.queries.iter().map(|q| self.norm_of(&q.terms)).collect();
        for (query, norm) in self.queries.iter_mut().zip(norms) {
            query.norm = norm;
        }
        self.refreshed_at = self.queries.len();
    }
}

/// `OFTEN_USED_WITH` edges by source tool, strongest first.
#[derive(Debug, Clone, Default)]
pub struct CoUsage {
    edges: HashMap<ToolId, Vec<OftenUsedWith>>,
}

impl CoUsage {
    /// Replaces the edges leaving `tool`.
    pub fn set_edges(&mut self, tool: &str, mut edges: Vec<OftenUsedWith>) {
        edges.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
        if edges.is_empty() {
            self.edges.remove(tool);
        } else {
            self.edges.insert(tool.to_string(), edges);
        }
    }

    pub fn edges_from(&self, tool: &str) -> &[OftenUsedWith] {
        self.edges.get(tool).map_or(&[], Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(ids: &[&str]) -> Vec<ToolId> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn similar_past_queries_vote_and_unrelated_ones_do_not() {
        let mut memory = TenantMemory::default();
        memory.remember("what is the weather in Paris tomorrow", &ids(&["weather.forecast"]));
        memory.remember("send an email to my boss", &ids(&["mail.send"]));
        let found = memory.neighbours(&terms("weather in Berlin tomorrow"), 0.1, 5);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].tools, ids(&["weather.forecast"]).as_slice());
        assert!(memory.neighbours(&terms("translate a poem into French"), 0.1, 5).is_empty());
    }

    #[test]
    fn an_identical_query_is_fully_similar() {
        let mut memory = TenantMemory::default();
        for n in 0..30 {
            memory.remember(&format!("question number {n} about taxes"), &ids(&["tax.calc"]));
        }
        let found = memory.neighbours(&terms("question number 7 about taxes"), 0.0, 1);
        assert!(found[0].similarity > 0.95, "{found:?}");
    }
}
