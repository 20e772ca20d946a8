//! Token-budget tiering of a ranked list of tools, as API.md says: tiers fill in rank order (3 in
//! tier1, 5 in tier2, the rest in tier3), then tools are downgraded, last-ranked first, until the
//! estimated tokens of everything returned fit `tokenBudget`; tools are dropped from the end only
//! when all are in tier3 and it still does not fit. So the tiers, read in order, are always a
//! prefix of the ranking, and `tokenUsage <= tokenBudget` always holds.
//!
//! Tool objects: tier1 `{id, name, category, description, score}` (plus `inputSchema` when the
//! caller asks for schemas), tier2 adds `parameters` (the parameter names), tier3 is
//! `{id, name, loadUrl}`. This file decides the shapes and the budget; not the rank.

use serde::Serialize;

use crate::tools::catalog::Tool;

pub const TIER1_SIZE: usize = 3;
pub const TIER2_SIZE: usize = 5;

/// Where a tier3 tool's full description is fetched from.
const LOAD_URL_PREFIX: &str = "/api/v1/tools/";

/// The token estimate of a tool object: one token per 4 characters of its JSON, rounded up — the
/// usual rule of thumb for English and JSON with GPT-style tokenizers. The only place that
/// estimates tokens.
pub fn estimate_tokens(object: &impl Serialize) -> usize {
    serde_json::to_string(object).map_or(usize::MAX, |json| json.len().div_ceil(4))
}

/// A tool of tier 1: enough to choose it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tier1Tool {
    pub id: String,
    pub name: String,
    pub category: String,
    pub description: String,
    pub score: f64,
    /// Only when the caller asked for schemas.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<serde_json::Value>,
}

/// A tool of tier 2: tier 1's fields and its parameter names.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Tier2Tool {
    #[serde(flatten)]
    pub tool: Tier1Tool,
    pub parameters: Vec<String>,
}

/// A tool of tier 3: its id, and where to load the rest (`GET /api/v1/tools/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tier3Tool {
    pub id: String,
    pub name: String,
    pub load_url: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Tiers {
    pub tier1: Vec<Tier1Tool>,
    pub tier2: Vec<Tier2Tool>,
    pub tier3: Vec<Tier3Tool>,
}

impl Tiers {
    /// The ids of every returned tool, in rank order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        let tier1 = self.tier1.iter().map(|t| t.id.as_str());
        let tier2 = self.tier2.iter().map(|t| t.tool.id.as_str());
        tier1.chain(tier2).chain(self.tier3.iter().map(|t| t.id.as_str()))
    }

    pub fn len(&self) -> usize {
        self.tier1.len() + self.tier2.len() + self.tier3.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A tool with its place in the ranking.
#[derive(Debug, Clone, Copy)]
pub struct Ranked<'a> {
    pub tool: &'a Tool,
    pub score: f64,
}

/// Tiers for `ranked` (best first) and their token usage, within `token_budget`.
pub fn tier(ranked: &[Ranked<'_>], token_budget: usize, include_schemas: bool) -> (Tiers, usize) {
    let tier1 = |r: &Ranked<'_>| Tier1Tool {
        id: r.tool.id.clone(),
        name: r.tool.name.clone(),
        category: r.tool.category.clone(),
        description: r.tool.description.clone(),
        // Rounded so that the estimate does not depend on float noise.
        score: (r.score * 1e4).round() / 1e4,
        input_schema: include_schemas.then(|| r.tool.input_schema.clone()),
    };
    let tier2 = |r: &Ranked<'_>| Tier2Tool { tool: tier1(r), parameters: r.tool.parameters.clone() };
    let tier3 = |r: &Ranked<'_>| Tier3Tool {
        id: r.tool.id.clone(),
        name: r.tool.name.clone(),
        load_url: format!("{LOAD_URL_PREFIX}{}", r.tool.id),
    };
    // The cost of every tool at every tier, so each downgrade step is arithmetic.
    let costs: Vec<[usize; 3]> = ranked
        .iter()
        .map(|r| [estimate_tokens(&tier1(r)), estimate_tokens(&tier2(r)), estimate_tokens(&tier3(r))])
        .collect();
    // Tiers are the bands [0, end1), [end1, end2), [end2, end3) of the ranking.
    let mut end3 = ranked.len();
    let mut end1 = TIER1_SIZE.min(end3);
    let mut end2 = (end1 + TIER2_SIZE).min(end3);
    let usage = |end1: usize, end2: usize, end3: usize| -> usize {
        let band = |from: usize, to: usize, tier: usize| costs[from..to].iter().map(|c| c[tier]).sum::<usize>();
        band(0, end1, 0).saturating_add(band(end1, end2, 1)).saturating_add(band(end2, end3, 2))
    };
    // Each step shrinks (end2, then end1, then end3), so this ends; it stops at the first fit.
    while usage(end1, end2, end3) > token_budget {
        if end2 > end1 {
            end2 -= 1;
        } else if end1 > 0 {
            end1 -= 1;
            end2 = end1;
        } else {
            end3 -= 1;
        }
    }
    let tiers = Tiers {
        tier1: ranked[..end1].iter().map(tier1).collect(),
        tier2: ranked[end1..end2].iter().map(tier2).collect(),
        tier3: ranked[end2..end3].iter().map(tier3).collect(),
    };
    (tiers, usage(end1, end2, end3))
}

#[cfg(test)]
#[path = "tiering_tests.rs"]
mod tests;
