//! How much a tenant's learned votes should count against lexical scores, learned from the
//! tenant's own traffic: every served query, before it is remembered, is ranked again under
//! each candidate blend weight, and each weight is credited with how well it would have ranked
//! the tools that actually served it (nDCG@10). Selection uses the best weight so far.
//!
//! So history counts for as much as it has predicted: where past queries say little about new
//! ones (e.g. multi-intent queries over thousands of tools) the weight stays near zero and the
//! lexical ranking is untouched; where they say a lot (short queries over terse tool
//! descriptions) it rises. Ties go to the smaller weight, so a tenant with no informative
//! history is ranked lexically.

/// Old observations fade, so the choice follows a tenant whose traffic changes (about the last
/// 500 informative queries count).
const DECAY: f64 = 0.998;

#[derive(Debug, Clone)]
pub struct BlendCalibration {
    /// Candidate weights, ascending.
    weights: Vec<f32>,
    /// Decayed sum of each weight's quality.
    credit: Vec<f64>,
}

impl BlendCalibration {
    /// `weights` must be ascending; zero among them means "lexical only" is a choice.
    pub fn new(weights: &[f32]) -> Self {
        Self { weights: weights.to_vec(), credit: vec![0.0; weights.len()] }
    }

    pub fn candidates(&self) -> &[f32] {
        &self.weights
    }

    /// Credits each candidate weight with the quality (same order as `candidates`) it would
    /// have had on one served query.
    pub fn observe(&mut self, qualities: &[f64]) {
        for (credit, quality) in self.credit.iter_mut().zip(qualities) {
            *credit = *credit * DECAY + quality;
        }
    }

    /// The weight with the most credit; the smallest among equals.
    pub fn weight(&self) -> f32 {
        let mut best = 0;
        for (i, credit) in self.credit.iter().enumerate() {
            // A margin keeps float noise from choosing a larger weight on a tie.
            if *credit > self.credit[best] + 1e-9 {
                best = i;
            }
        }
        self.weights.get(best).copied().unwrap_or(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_evidence_means_the_smallest_weight_and_evidence_moves_it() {
        let mut calibration = BlendCalibration::new(&[0.0, 1.0, 4.0]);
        assert_eq!(calibration.weight(), 0.0);
        calibration.observe(&[0.5, 0.5, 0.5]);
        assert_eq!(calibration.weight(), 0.0);
        calibration.observe(&[0.2, 0.6, 0.9]);
        assert_eq!(calibration.weight(), 4.0);
        for _ in 0..3 {
            calibration.observe(&[1.0, 0.5, 0.0]);
        }
        assert_eq!(calibration.weight(), 0.0);
    }
}
