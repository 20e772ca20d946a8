//! `Trace`: the last things that happened, in order, for the report of a violation.

use std::collections::VecDeque;
use std::fmt;

#[derive(Debug, Clone)]
pub(crate) struct Trace {
    lines: VecDeque<String>,
    capacity: usize,
}

impl Trace {
    pub(crate) fn new(capacity: usize) -> Self {
        Self { lines: VecDeque::with_capacity(capacity.min(1_024)), capacity }
    }

    pub(crate) fn record(&mut self, step: u64, now: i64, what: fmt::Arguments<'_>) {
        if self.capacity == 0 {
            return;
        }
        if self.lines.len() == self.capacity {
            self.lines.pop_front();
        }
        self.lines.push_back(format!("step {step:>6}  t={now:>6}ms  {what}"));
    }

    pub(crate) fn lines(&self) -> Vec<String> {
        self.lines.iter().cloned().collect()
    }
}
