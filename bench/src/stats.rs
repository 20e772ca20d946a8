//! Latency samples and their percentiles (exact: all samples are kept and sorted).

use std::time::Duration;

#[derive(Debug, Default, Clone)]
pub(crate) struct Latencies {
    nanos: Vec<u64>,
    sorted: bool,
}

impl Latencies {
    pub(crate) fn record(&mut self, elapsed: Duration) {
        self.nanos.push(elapsed.as_nanos() as u64);
        self.sorted = false;
    }

    pub(crate) fn reserve(&mut self, n: usize) {
        self.nanos.reserve(n);
    }

    pub(crate) fn extend(&mut self, other: Latencies) {
        self.nanos.extend(other.nanos);
        self.sorted = false;
    }

    pub(crate) fn len(&self) -> usize {
        self.nanos.len()
    }

    /// The `p`-th percentile (nearest rank), in milliseconds; 0 when empty.
    pub(crate) fn percentile_ms(&mut self, p: f64) -> f64 {
        if self.nanos.is_empty() {
            return 0.0;
        }
        if !self.sorted {
            self.nanos.sort_unstable();
            self.sorted = true;
        }
        let rank = ((p / 100.0) * self.nanos.len() as f64).ceil() as usize;
        let index = rank.clamp(1, self.nanos.len()) - 1;
        self.nanos[index] as f64 / 1e6
    }

    pub(crate) fn mean_ms(&self) -> f64 {
        if self.nanos.is_empty() {
            return 0.0;
        }
        self.nanos.iter().map(|&n| n as f64).sum::<f64>() / self.nanos.len() as f64 / 1e6
    }
}
