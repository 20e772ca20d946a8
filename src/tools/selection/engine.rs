//! `SelectionEngine`: the pure core of `tools/select`, the same code behind the endpoint and the
//! `eval-selection` command. Given a tenant, a query and options it ranks the tools the tenant
//! may see and tiers them within the token budget; given served queries it learns.
//!
//! Rank = lexical BM25 (normalised by the best lexical match) + when the query and the tools have
//! sentence vectors, their cosine (above a floor, normalised by the best) + the votes of the tenant's own
//! similar past queries, weighted by what the tenant's traffic says they are worth, + a small lift
//! for tools often used with the leaders (cross-tenant, tool ids only). No I/O, no clock: the selector shell feeds it from the `ToolGraph` and times it.

use std::collections::HashMap;

use connectors_actors::tenant::TenantId;
use serde::Deserialize;

use super::calibration::BlendCalibration;
use super::dense::{ToolVector, ToolVectors};
use super::index::Bm25Index;
use super::learning::{CoUsage, TenantMemory};
use super::terms::{push_terms, terms};
use super::tiering::{Ranked, Tiers, tier};
use crate::tools::catalog::{Catalog, ToolId};
use crate::tools::tool_graph::{OftenUsedWith, RecordedQuery, ServedQuery};

/// `options` of `tools/select`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SelectOptions {
    pub max_tools: usize,
    pub token_budget: usize,
    /// Categories to choose from (case-insensitive); empty means all.
    pub allowed_categories: Vec<String>,
    /// Adds `inputSchema` to tier1 and tier2 tools.
    pub include_schemas: bool,
}

impl Default for SelectOptions {
    fn default() -> Self {
        Self { max_tools: 10, token_budget: 5000, allowed_categories: Vec::new(), include_schemas: false }
    }
}

/// The answer of `tools/select`, before the shell adds `selectionId` and latency.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    pub tiers: Tiers,
    pub token_usage: usize,
    pub token_budget: usize,
    /// Tools the query was matched against: those the tenant may see, in the allowed categories.
    pub total_tools: usize,
}

/// The knobs of ranking. The defaults were chosen on the development sets of
/// eval/tool-retrieval (see the README's "Tool selection").
#[derive(Debug, Clone, PartialEq)]
pub struct Tuning {
    /// Field weights of a tool document.
    pub name_weight: f32,
    pub integration_weight: f32,
    pub category_weight: f32,
    pub description_weight: f32,
    pub parameter_weight: f32,
    /// Weight of the dense (sentence-vector) similarity against the normalised lexical score.
    pub dense_weight: f32,
    /// Cosines at or below this say nothing; above it they count up to the best one's.
    pub dense_floor: f32,
    /// Past queries less similar than this do not vote.
    pub min_similarity: f32,
    /// How many of the most similar past queries vote.
    pub neighbours: usize,
    /// Candidate weights of the learned votes against the normalised lexical score, ascending;
    /// each tenant's traffic picks one (see `calibration`).
    pub blend_weights: Vec<f32>,
    /// Exponent on similarity: higher favours near-duplicates of past queries.
    pub similarity_power: f32,
    /// Co-usage lift: how many leaders lift their companions, by how much, and which edges count.
    pub co_usage_leaders: usize,
    pub co_usage_weight: f32,
    pub co_usage_min_occurrences: u64,
    pub co_usage_min_confidence: f64,
    /// Most recent served queries a tenant's memory keeps (it may hold up to twice as many).
    pub memory_limit: usize,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            name_weight: 3.0,
            integration_weight: 1.0,
            category_weight: 1.0,
            description_weight: 1.0,
            parameter_weight: 0.5,
            dense_weight: 0.8,
            dense_floor: 0.05,
            min_similarity: 0.1,
            neighbours: 120,
            blend_weights: vec![0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0],
            similarity_power: 2.0,
            co_usage_leaders: 3,
            co_usage_weight: 0.3,
            co_usage_min_occurrences: 3,
            co_usage_min_confidence: 0.3,
            memory_limit: 20_000,
        }
    }
}

fn index_of(catalog: &Catalog, tuning: &Tuning) -> Bm25Index {
    let mut index = Bm25Index::default();
    for tool in catalog.tools() {
        let mut parameters = Vec::new();
        for name in &tool.parameters {
            push_terms(name, &mut parameters);
        }
        index.add([
            (tuning.name_weight, terms(&tool.name).as_slice()),
            (tuning.integration_weight, terms(&tool.integration).as_slice()),
            (tuning.category_weight, terms(&tool.category).as_slice()),
            (tuning.description_weight, terms(&tool.description).as_slice()),
            (tuning.parameter_weight, parameters.as_slice()),
        ]);
    }
    index
}

/// What is learned of one tenant: its past queries, and how much they should count.
struct TenantLearning {
    memory: TenantMemory,
    calibration: BlendCalibration,
    /// The number of the newest of the tenant's recorded queries learned (see `RecordedQuery`).
    learned_up_to: u64,
}

pub struct SelectionEngine {
    catalog: Catalog,
    index: Bm25Index,
    vectors: ToolVectors,
    tenants: HashMap<TenantId, TenantLearning>,
    co_usage: CoUsage,
    tuning: Tuning,
}

impl SelectionEngine {
    pub fn new(catalog: Catalog) -> Self {
        Self::with_tuning(catalog, Tuning::default())
    }

    pub fn with_tuning(catalog: Catalog, tuning: Tuning) -> Self {
        let index = index_of(&catalog, &tuning);
        Self {
            catalog,
            index,
            vectors: ToolVectors::default(),
            tenants: HashMap::new(),
            co_usage: CoUsage::default(),
            tuning,
        }
    }

    /// Swaps in a new catalog (an integration or a tenant's server came, changed or went), with
    /// the sentence vectors of its tools found in `vectors`. What was learned is kept: it is keyed
    /// by tool id, and ids of tools that are gone simply never rank.
    pub fn replace_catalog(&mut self, catalog: Catalog, vectors: &HashMap<String, ToolVector>) {
        self.index = index_of(&catalog, &self.tuning);
        self.vectors = ToolVectors::of(&catalog, vectors);
        self.catalog = catalog;
    }

    /// Attaches the sentence vectors found in `vectors` to the current catalog's tools.
    pub fn attach_vectors(&mut self, vectors: &HashMap<String, ToolVector>) {
        self.vectors = ToolVectors::of(&self.catalog, vectors);
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn tuning(&self) -> &Tuning {
        &self.tuning
    }

    /// The number of the newest of `tenant`'s recorded queries learned (0: none yet), or `None`
    /// when nothing has been learned of `tenant`, not even that it has no history.
    pub fn learned_up_to(&self, tenant: &TenantId) -> Option<u64> {
        self.tenants.get(tenant).map(|learning| learning.learned_up_to)
    }

    /// Learns `recorded` (oldest first) in order, skipping what was learned already (a query
    /// numbered at most [`Self::learned_up_to`]), so that two readers racing to catch up with
    /// the same history learn each query once. With no query, marks `tenant` as known.
    pub fn learn(&mut self, tenant: &TenantId, recorded: &[RecordedQuery]) {
        let learned_up_to = self.learning_of(tenant).learned_up_to;
        for query in recorded.iter().filter(|query| query.number > learned_up_to) {
            self.remember(tenant, &query.served);
            self.learning_of(tenant).learned_up_to = query.number;
        }
    }

    /// Learns that `tenant`'s query was served by these tools, outside its numbered history
    /// (evaluation and tests). Only `tenant`'s rankings change.
    pub fn remember(&mut self, tenant: &TenantId, served: &ServedQuery) {
        let query_terms = terms(&served.query);
        let qualities = self.blend_qualities(tenant, &query_terms, &served.tools);
        let limit = self.tuning.memory_limit;
        let learning = self.learning_of(tenant);
        if let Some(qualities) = qualities {
            learning.calibration.observe(&qualities);
        }
        learning.memory.remember(&served.query, &served.tools);
        // Trimmed in one go when twice over, so the rebuild is amortised.
        if learning.memory.len() > limit.saturating_mul(2) {
            learning.memory.keep_newest(limit);
        }
    }

    /// The weight `tenant`'s learned votes currently get.
    pub fn blend_weight(&self, tenant: &TenantId) -> f32 {
        self.tenants.get(tenant).map_or(0.0, |learning| learning.calibration.weight())
    }

    /// Replaces the co-usage edges leaving `tool` (shared by all tenants).
    pub fn set_co_usage(&mut self, tool: &str, edges: Vec<OftenUsedWith>) {
        self.co_usage.set_edges(tool, edges);
    }

    /// Replaces every co-usage edge with `edges`.
    pub fn replace_co_usage(&mut self, edges: Vec<OftenUsedWith>) {
        self.co_usage = CoUsage::default();
        let mut by_source: HashMap<ToolId, Vec<OftenUsedWith>> = HashMap::new();
        for edge in edges {
            by_source.entry(edge.from.clone()).or_default().push(edge);
        }
        for (tool, edges) in by_source {
            self.co_usage.set_edges(&tool, edges);
        }
    }

    /// `query_vector`: the query's sentence vector, when there is an encoder.
    pub fn select(
        &self,
        tenant: &TenantId,
        query: &str,
        query_vector: Option<&[f32]>,
        options: &SelectOptions,
    ) -> Selection {
        let (ranked, total_tools) = self.rank(tenant, query, query_vector, options);
        let (tiers, token_usage) = tier(&ranked, options.token_budget, options.include_schemas);
        Selection { tiers, token_usage, token_budget: options.token_budget, total_tools }
    }

    /// The best `options.max_tools` tools for `query`, best first, and how many were considered.
    pub fn rank(
        &self,
        tenant: &TenantId,
        query: &str,
        query_vector: Option<&[f32]>,
        options: &SelectOptions,
    ) -> (Vec<Ranked<'_>>, usize) {
        let tools = self.catalog.tools();
        let eligible: Vec<bool> = tools
            .iter()
            .map(|tool| {
                tool.is_visible_to(tenant)
                    && (options.allowed_categories.is_empty()
                        || options.allowed_categories.iter().any(|c| c.eq_ignore_ascii_case(&tool.category)))
            })
            .collect();
        let total_tools = eligible.iter().filter(|e| **e).count();
        if options.max_tools == 0 || total_tools == 0 {
            return (Vec::new(), total_tools);
        }
        let query_terms = terms(query);
        let mut scores = self.lexical_scores(&query_terms, &eligible);
        let dense_weight = match query_vector {
            Some(vector) if !self.vectors.is_empty() => self.add_dense_scores(vector, &eligible, &mut scores),
            _ => 0.0,
        };
        let weight = self.blend_weight(tenant);
        for (index, vote) in self.votes(tenant, &query_terms) {
            scores[index] += weight * vote;
        }
        self.add_co_usage_lift(tenant, &eligible, &mut scores);
        let candidates = top(&scores, &eligible, options.max_tools);
        // Scores are reported in [0, 1].
        let top_weight = self.tuning.blend_weights.last().copied().unwrap_or(0.0);
        let scale = 1.0 / (1.0 + dense_weight + top_weight + self.tuning.co_usage_weight);
        let ranked =
            candidates.into_iter().map(|i| Ranked { tool: &tools[i], score: f64::from(scores[i] * scale) }).collect();
        (ranked, total_tools)
    }

    /// BM25 of every tool, divided by the best among the eligible ones (so in [0, 1] for them).
    fn lexical_scores(&self, query_terms: &[String], eligible: &[bool]) -> Vec<f32> {
        let mut scores = vec![0.0f32; self.catalog.len()];
        self.index.score_into(query_terms, &mut scores);
        let best = scores.iter().zip(eligible).filter(|(_, e)| **e).map(|(s, _)| *s).fold(0.0f32, f32::max);
        if best > 0.0 {
            for score in &mut scores {
                *score /= best;
            }
        }
        scores
    }

    /// Adds each tool's cosine with `query_vector`, above the floor and divided by the best
    /// eligible one's, times the dense weight; returns the weight.
    fn add_dense_scores(&self, query_vector: &[f32], eligible: &[bool], scores: &mut [f32]) -> f32 {
        let floor = self.tuning.dense_floor;
        let mut similarities = vec![floor; scores.len()];
        self.vectors.similarities_into(query_vector, &mut similarities);
        let best = similarities.iter().zip(eligible).filter(|(_, e)| **e).map(|(s, _)| *s).fold(floor, f32::max);
        if best <= floor {
            return 0.0;
        }
        let weight = self.tuning.dense_weight / (best - floor);
        for (score, similarity) in scores.iter_mut().zip(similarities) {
            *score += weight * (similarity - floor).max(0.0);
        }
        self.tuning.dense_weight
    }

    /// The votes of `tenant`'s past queries similar to this one, by tool index, in [0, 1]: each
    /// tool's share of the best-voted tool's votes, times the similarity of the closest past
    /// query (a faint resemblance barely counts).
    fn votes(&self, tenant: &TenantId, query_terms: &[String]) -> HashMap<usize, f32> {
        let mut votes: HashMap<usize, f32> = HashMap::new();
        let Some(learning) = self.tenants.get(tenant) else { return votes };
        let neighbours = learning.memory.neighbours(query_terms, self.tuning.min_similarity, self.tuning.neighbours);
        let Some(closest) = neighbours.first() else { return votes };
        for neighbour in &neighbours {
            let weight = neighbour.similarity.powf(self.tuning.similarity_power);
            for id in neighbour.tools {
                if let Some(index) = self.catalog.visible_index(tenant, id) {
                    *votes.entry(index).or_default() += weight;
                }
            }
        }
        let best = votes.values().copied().fold(0.0f32, f32::max);
        if best > 0.0 {
            for vote in votes.values_mut() {
                *vote *= closest.similarity / best;
            }
        }
        votes
    }

    /// How well each candidate blend weight would rank `served_tools` for this query (nDCG@10
    /// over the tools `tenant` may see); `None` when the votes are silent, which says nothing
    /// about any weight.
    fn blend_qualities(&self, tenant: &TenantId, query_terms: &[String], served_tools: &[ToolId]) -> Option<Vec<f64>> {
        let votes = self.votes(tenant, query_terms);
        let served: Vec<usize> = served_tools.iter().filter_map(|id| self.catalog.visible_index(tenant, id)).collect();
        if votes.is_empty() || served.is_empty() {
            return None;
        }
        let eligible: Vec<bool> = self.catalog.tools().iter().map(|tool| tool.is_visible_to(tenant)).collect();
        let lexical = self.lexical_scores(query_terms, &eligible);
        let qualities = self
            .tuning
            .blend_weights
            .iter()
            .map(|weight| {
                let mut scores = lexical.clone();
                for (&index, vote) in &votes {
                    scores[index] += weight * vote;
                }
                ndcg_at_10(&top(&scores, &eligible, 10), &served)
            })
            .collect();
        Some(qualities)
    }

    /// Lifts tools often used with the current leaders.
    fn add_co_usage_lift(&self, tenant: &TenantId, eligible: &[bool], scores: &mut [f32]) {
        let tuning = &self.tuning;
        if tuning.co_usage_leaders == 0 || tuning.co_usage_weight <= 0.0 {
            return;
        }
        let mut lifts: Vec<(usize, f32)> = Vec::new();
        for leader in top(scores, eligible, tuning.co_usage_leaders) {
            for edge in self.co_usage.edges_from(&self.catalog.tools()[leader].id) {
                if edge.co_occurrences < tuning.co_usage_min_occurrences
                    || edge.confidence < tuning.co_usage_min_confidence
                {
                    continue;
                }
                if let Some(companion) = self.catalog.visible_index(tenant, &edge.to) {
                    lifts.push((companion, tuning.co_usage_weight * edge.confidence as f32 * scores[leader]));
                }
            }
        }
        for (companion, lift) in lifts {
            scores[companion] += lift;
        }
    }

    fn learning_of(&mut self, tenant: &TenantId) -> &mut TenantLearning {
        let weights = &self.tuning.blend_weights;
        self.tenants.entry(tenant.clone()).or_insert_with(|| TenantLearning {
            memory: TenantMemory::default(),
            calibration: BlendCalibration::new(weights),
            learned_up_to: 0,
        })
    }
}

/// The `count` eligible tools with the highest positive scores, best first; ties by catalog order.
fn top(scores: &[f32], eligible: &[bool], count: usize) -> Vec<usize> {
    let mut candidates: Vec<usize> = (0..scores.len()).filter(|&i| eligible[i] && scores[i] > 0.0).collect();
    let by_score = |a: &usize, b: &usize| scores[*b].total_cmp(&scores[*a]).then(a.cmp(b));
    if count == 0 {
        return Vec::new();
    }
    if candidates.len() > count {
        candidates.select_nth_unstable_by(count - 1, by_score);
        candidates.truncate(count);
    }
    candidates.sort_unstable_by(by_score);
    candidates
}

/// nDCG@10 with binary gains of `ranked` against `relevant`.
fn ndcg_at_10(ranked: &[usize], relevant: &[usize]) -> f64 {
    let gain = |rank: usize| 1.0 / ((rank + 2) as f64).log2();
    let dcg: f64 = ranked.iter().take(10).enumerate().filter(|(_, i)| relevant.contains(i)).map(|(r, _)| gain(r)).sum();
    let ideal: f64 = (0..relevant.len().min(10)).map(gain).sum();
    if ideal > 0.0 { dcg / ideal } else { 0.0 }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
