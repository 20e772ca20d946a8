//! Lexical retrieval: an Okapi BM25 index over documents made of weighted fields (BM25F-style:
//! a term's frequency is the weighted sum of its occurrences in each field, and so is the length).
//!
//! Our own rather than tantivy: the catalog is small (hundreds to a few thousand tools) and lives
//! in memory, documents are added as tools are discovered, and the caller needs every candidate's
//! raw score to blend with learned signals and to filter by tenant and category — a dense score
//! array does all that in well under a millisecond, with no segment files, merges or commits.
//! It decides lexical scores only: not visibility, not learning, not the final rank.

use std::collections::HashMap;

/// BM25's term-frequency saturation.
const K1: f32 = 1.2;
/// BM25's length normalisation.
const B: f32 = 0.75;

#[derive(Debug, Clone, Copy)]
struct Posting {
    doc: u32,
    /// Weighted term frequency.
    tf: f32,
}

#[derive(Debug, Clone, Default)]
pub struct Bm25Index {
    postings: HashMap<String, Vec<Posting>>,
    /// Weighted length of each document.
    lengths: Vec<f32>,
    total_length: f64,
}

impl Bm25Index {
    /// Adds a document made of `(weight, terms)` fields and returns its number (0, 1, 2…).
    pub fn add<'a>(&mut self, fields: impl IntoIterator<Item = (f32, &'a [String])>) -> usize {
        let doc = self.lengths.len();
        let mut frequencies: HashMap<&str, f32> = HashMap::new();
        let mut length = 0.0;
        for (weight, terms) in fields {
            for term in terms {
                *frequencies.entry(term.as_str()).or_default() += weight;
                length += weight;
            }
        }
        for (term, tf) in frequencies {
            let doc = u32::try_from(doc).unwrap_or(u32::MAX);
            self.postings.entry(term.to_string()).or_default().push(Posting { doc, tf });
        }
        self.lengths.push(length);
        self.total_length += f64::from(length);
        doc
    }

    pub fn len(&self) -> usize {
        self.lengths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lengths.is_empty()
    }

    /// Adds each document's BM25 score for `query` to `scores` (one slot per document). Repeated
    /// query terms count once: long task descriptions repeat words without meaning them more.
    pub fn score_into(&self, query: &[String], scores: &mut [f32]) {
        if self.is_empty() {
            return;
        }
        let docs = self.lengths.len() as f32;
        let average_length = (self.total_length / self.lengths.len() as f64) as f32;
        let mut seen: Vec<&str> = Vec::with_capacity(query.len());
        for term in query {
            if seen.contains(&term.as_str()) {
                continue;
            }
            seen.push(term);
            let Some(postings) = self.postings.get(term) else { continue };
            let df = postings.len() as f32;
            let idf = (1.0 + (docs - df + 0.5) / (df + 0.5)).ln();
            for posting in postings {
                let doc = posting.doc as usize;
                let norm = K1 * (1.0 - B + B * self.lengths[doc] / average_length.max(f32::EPSILON));
                if let Some(score) = scores.get_mut(doc) {
                    *score += idf * posting.tf * (K1 + 1.0) / (posting.tf + norm);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn rarer_and_weightier_matches_score_higher() {
        let mut index = Bm25Index::default();
        index.add([(1.0, words("send email message").as_slice())]);
        index.add([(1.0, words("send slack message").as_slice())]);
        index.add([(3.0, words("email").as_slice()), (1.0, words("read inbox").as_slice())]);
        let mut scores = vec![0.0; index.len()];
        index.score_into(&words("email"), &mut scores);
        assert_eq!(scores[1], 0.0);
        assert!(scores[2] > scores[0] && scores[0] > 0.0, "{scores:?}");
    }
}
