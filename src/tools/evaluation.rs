//! `connectors eval-selection`: runs the real selection engine in-process on a labelled query set
//! (the format of eval/tool-retrieval) and reports recall@5, nDCG@10 (binary gains), MRR and
//! latency. History is replayed as one tenant through [`Selector::record_served`], the learning
//! path of the gateway, into an in-memory embedded tool graph.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use connectors_actors::tenant::TenantId;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::catalog::{Catalog, CatalogError, Tool, ToolId};
use super::co_usage_policy::CoUsagePolicy;
use super::selection::engine::{SelectOptions, SelectionEngine};
use super::selector::Selector;
use super::sentence_encoder::{EncoderError, SentenceEncoder};
use super::tool_graph::{ServedQuery, ToolGraphError};
use crate::backends::embedded_tool_graph::EmbeddedToolGraph;

/// The tenant the history is replayed as and the queries are run for.
const EVAL_TENANT: &str = "eval";
const MAX_TOOLS: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("cannot read `{path}`: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("`{path}` line {line}: {source}")]
    Parse { path: PathBuf, line: usize, source: serde_json::Error },
    #[error("cannot write `{path}`: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("the catalog is invalid: {0}")]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    ToolGraph(#[from] ToolGraphError),
    #[error("the query file has no queries")]
    NoQueries,
    #[error("embedding model: {0}")]
    Encoder(#[from] EncoderError),
    #[error("the tools could not be embedded: {0}")]
    Embedding(String),
}

/// What to evaluate.
#[derive(Debug, Clone)]
pub struct EvalInput<'a> {
    pub catalog: &'a Path,
    pub queries: &'a Path,
    pub history: Option<&'a Path>,
    pub output: Option<&'a Path>,
    /// A sentence-embedding model's directory: ranks by meaning as well as by words.
    pub embedding_model: Option<&'a Path>,
}

#[derive(Deserialize)]
struct LabelledQuery {
    query: String,
    gold: Vec<ToolId>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct QueryResult<'a> {
    query: &'a str,
    tools: &'a [String],
    latency_ms: f64,
}

/// The averages over all queries, and latency percentiles.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EvalReport {
    pub queries: usize,
    /// History rows replayed before the queries, and how long that took.
    pub history: usize,
    pub replay_ms: f64,
    /// The weight the tenant's learned votes got after the replay.
    pub blend_weight: f32,
    pub recall_at_5: f64,
    pub ndcg_at_10: f64,
    pub mrr: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
}

impl std::fmt::Display for EvalReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "history    {} served queries replayed in {:.0} ms", self.history, self.replay_ms)?;
        writeln!(f, "learned    votes weigh {} against the lexical score", self.blend_weight)?;
        writeln!(f, "queries    {}", self.queries)?;
        writeln!(f, "recall@5   {:.3}", self.recall_at_5)?;
        writeln!(f, "nDCG@10    {:.3}", self.ndcg_at_10)?;
        writeln!(f, "MRR        {:.3}", self.mrr)?;
        writeln!(f, "p50        {:.3} ms", self.p50_ms)?;
        write!(f, "p95        {:.3} ms", self.p95_ms)
    }
}

pub async fn run(input: &EvalInput<'_>) -> Result<EvalReport, EvalError> {
    let tools: Vec<Tool> = read_json_lines(input.catalog)?;
    let queries: Vec<LabelledQuery> = read_json_lines(input.queries)?;
    if queries.is_empty() {
        return Err(EvalError::NoQueries);
    }
    let history: Vec<ServedQuery> = match input.history {
        Some(path) => read_json_lines(path)?,
        None => Vec::new(),
    };
    let tenant = TenantId::parse(EVAL_TENANT).map_err(|e| ToolGraphError::Backend(e.to_string()))?;
    let catalog = Catalog::new(tools)?;
    let encoder = input.embedding_model.map(SentenceEncoder::load).transpose()?;
    // The gateway's default policy: one tenant's history shares no co-usage, as in production
    // (on the development sets it made no difference at three decimals).
    let graph = Arc::new(EmbeddedToolGraph::in_memory(CoUsagePolicy::default()));
    let selector = Selector::open(SelectionEngine::new(Catalog::default()), graph, encoder).await?;
    if let Some(embedding) = selector.replace_catalog(catalog) {
        embedding.await.map_err(|error| EvalError::Embedding(error.to_string()))?;
    }
    let replay_started = Instant::now();
    for served in &history {
        selector.record_served(&tenant, served).await?;
    }
    let replay_ms = replay_started.elapsed().as_secs_f64() * 1e3;
    let options = SelectOptions { max_tools: MAX_TOOLS, ..SelectOptions::default() };
    let mut output = match input.output {
        Some(path) => Some((
            path,
            BufWriter::new(
                std::fs::File::create(path).map_err(|source| EvalError::Write { path: path.into(), source })?,
            ),
        )),
        None => None,
    };
    let (mut recall, mut ndcg, mut mrr) = (0.0, 0.0, 0.0);
    let mut latencies = Vec::with_capacity(queries.len());
    for labelled in &queries {
        let started = Instant::now();
        let selection = selector.select(&tenant, &labelled.query, &options).await?;
        let latency_ms = started.elapsed().as_secs_f64() * 1e3;
        let ranked: Vec<String> = selection.tiers.ids().map(str::to_string).collect();
        recall += recall_at(&ranked, &labelled.gold, 5);
        ndcg += ndcg_at(&ranked, &labelled.gold, 10);
        mrr += reciprocal_rank(&ranked, &labelled.gold);
        latencies.push(latency_ms);
        if let Some((path, out)) = output.as_mut() {
            let line = QueryResult { query: &labelled.query, tools: &ranked, latency_ms };
            serde_json::to_writer(&mut *out, &line)
                .map_err(std::io::Error::from)
                .and_then(|()| out.write_all(b"\n"))
                .map_err(|source| EvalError::Write { path: path.to_path_buf(), source })?;
        }
    }
    if let Some((path, mut out)) = output {
        out.flush().map_err(|source| EvalError::Write { path: path.to_path_buf(), source })?;
    }
    let count = queries.len() as f64;
    latencies.sort_by(f64::total_cmp);
    Ok(EvalReport {
        queries: queries.len(),
        history: history.len(),
        replay_ms,
        blend_weight: selector.blend_weight(&tenant),
        recall_at_5: recall / count,
        ndcg_at_10: ndcg / count,
        mrr: mrr / count,
        p50_ms: percentile(&latencies, 0.50),
        p95_ms: percentile(&latencies, 0.95),
    })
}

fn read_json_lines<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>, EvalError> {
    let file = std::fs::File::open(path).map_err(|source| EvalError::Read { path: path.into(), source })?;
    let mut items = Vec::new();
    for (number, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|source| EvalError::Read { path: path.into(), source })?;
        if line.trim().is_empty() {
            continue;
        }
        let item = serde_json::from_str(&line).map_err(|source| EvalError::Parse {
            path: path.into(),
            line: number + 1,
            source,
        })?;
        items.push(item);
    }
    Ok(items)
}

/// The share of `gold` found in the first `k` of `ranked`.
fn recall_at(ranked: &[String], gold: &[ToolId], k: usize) -> f64 {
    if gold.is_empty() {
        return 0.0;
    }
    let found = gold.iter().filter(|g| ranked.iter().take(k).any(|r| r == *g)).count();
    found as f64 / gold.len() as f64
}

/// nDCG@k with binary gains.
fn ndcg_at(ranked: &[String], gold: &[ToolId], k: usize) -> f64 {
    let gain = |rank: usize| 1.0 / ((rank + 2) as f64).log2();
    let dcg: f64 = ranked.iter().take(k).enumerate().filter(|(_, r)| gold.contains(r)).map(|(i, _)| gain(i)).sum();
    let ideal: f64 = (0..gold.len().min(k)).map(gain).sum();
    if ideal > 0.0 { dcg / ideal } else { 0.0 }
}

/// 1 / rank of the first gold tool, 0 when none is ranked.
fn reciprocal_rank(ranked: &[String], gold: &[ToolId]) -> f64 {
    ranked.iter().position(|r| gold.contains(r)).map_or(0.0, |i| 1.0 / (i + 1) as f64)
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], share: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (share * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn metrics_match_hand_computed_values() {
        let ranked = ids(&["a", "b", "c", "d", "e", "f"]);
        let gold = ids(&["b", "f"]);
        assert_eq!(recall_at(&ranked, &gold, 5), 0.5);
        assert_eq!(reciprocal_rank(&ranked, &gold), 0.5);
        let expected = (1.0 / 3f64.log2() + 1.0 / 7f64.log2()) / (1.0 + 1.0 / 3f64.log2());
        assert!((ndcg_at(&ranked, &gold, 10) - expected).abs() < 1e-12);
        assert_eq!(ndcg_at(&ranked, &ids(&["z"]), 10), 0.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 0.5), 2.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 0.95), 4.0);
    }
}
