//! `Network`: the links between machines and from each machine to the table, with the faults a
//! real network has: isolation (a partition), loss, duplication, and delays that reorder.

use std::collections::BTreeSet;

use crate::rng::SimRng;

/// One way of a link without chaos: this many milliseconds at most.
const BASE_DELAY_MS: i64 = 5;
/// How long a call over a broken link takes to fail (connect or request timeout).
const FAILURE_DELAY_MS: (i64, i64) = (20, 1_000);

/// Random trouble on every link while it is set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Chaos {
    pub drop_permille: u32,
    pub duplicate_permille: u32,
    pub extra_delay_ms: i64,
}

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Send {
    /// Arrives after each of these delays (more than one: duplicated).
    Delivered(Vec<i64>),
    /// Vanished: nobody hears of it.
    Lost,
    /// The sender learns the link is broken after this delay.
    Failed { after_ms: i64 },
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Network {
    /// Machines (cluster addresses) cut from every peer.
    isolated: BTreeSet<String>,
    /// Machines that cannot reach the table.
    cut_from_table: BTreeSet<String>,
    table_down: bool,
    chaos: Chaos,
    /// Release confirmations (`true` answers) vanish: the lost hand-off acknowledgement.
    drop_confirmations: bool,
}

impl Network {
    pub(crate) fn isolate(&mut self, machine: &str, isolated: bool) {
        set(&mut self.isolated, machine, isolated);
    }

    pub(crate) fn cut_from_table(&mut self, machine: &str, cut: bool) {
        set(&mut self.cut_from_table, machine, cut);
    }

    pub(crate) fn set_table_down(&mut self, down: bool) {
        self.table_down = down;
    }

    pub(crate) fn set_chaos(&mut self, chaos: Chaos) {
        self.chaos = chaos;
    }

    pub(crate) fn set_drop_confirmations(&mut self, drop: bool) {
        self.drop_confirmations = drop;
    }

    pub(crate) fn drops_confirmations(&self) -> bool {
        self.drop_confirmations
    }

    /// Every link healthy again.
    pub(crate) fn heal(&mut self) {
        *self = Self::default();
    }

    /// A message between two machines.
    pub(crate) fn send(&self, rng: &mut SimRng, from: &str, to: &str) -> Send {
        if self.isolated.contains(from) || self.isolated.contains(to) {
            return Send::Failed { after_ms: rng.between(FAILURE_DELAY_MS.0, FAILURE_DELAY_MS.1) };
        }
        self.chaotic_delays(rng)
    }

    pub(crate) fn reaches_table(&self, machine: &str) -> bool {
        !self.table_down && !self.cut_from_table.contains(machine)
    }

    /// A request from `from` to the table: `None` when it cannot get there (the caller's store
    /// call fails after [`Network::failure_delay`]).
    pub(crate) fn request_to_table(&self, rng: &mut SimRng, from: &str) -> Option<i64> {
        self.reaches_table(from).then(|| self.delay(rng))
    }

    /// The table's answer to `to`: the delay, or `None` when it is lost after the table acted
    /// (the caller sees an error for a change that was made).
    pub(crate) fn answer_from_table(&self, rng: &mut SimRng, to: &str) -> Option<i64> {
        if !self.reaches_table(to) || rng.chance(self.chaos.drop_permille) {
            return None;
        }
        Some(self.delay(rng))
    }

    pub(crate) fn failure_delay(&self, rng: &mut SimRng) -> i64 {
        rng.between(FAILURE_DELAY_MS.0, FAILURE_DELAY_MS.1)
    }

    fn chaotic_delays(&self, rng: &mut SimRng) -> Send {
        if rng.chance(self.chaos.drop_permille) {
            return Send::Lost;
        }
        let mut delays = vec![self.delay(rng)];
        if rng.chance(self.chaos.duplicate_permille) {
            delays.push(self.delay(rng));
        }
        Send::Delivered(delays)
    }

    fn delay(&self, rng: &mut SimRng) -> i64 {
        rng.between(1, BASE_DELAY_MS) + rng.between(0, self.chaos.extra_delay_ms)
    }
}

fn set(machines: &mut BTreeSet<String>, machine: &str, member: bool) {
    if member {
        machines.insert(machine.to_string());
    } else {
        machines.remove(machine);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_isolated_machine_fails_calls_and_cannot_reach_the_table_only_when_cut() {
        let mut network = Network::default();
        let mut rng = SimRng::new(3);
        network.isolate("a", true);
        assert!(matches!(network.send(&mut rng, "a", "b"), Send::Failed { .. }));
        assert!(matches!(network.send(&mut rng, "b", "a"), Send::Failed { .. }));
        assert!(network.request_to_table(&mut rng, "a").is_some());
        network.cut_from_table("a", true);
        assert!(network.request_to_table(&mut rng, "a").is_none());
        network.heal();
        assert!(matches!(network.send(&mut rng, "a", "b"), Send::Delivered(_)));
    }

    #[test]
    fn chaos_loses_and_duplicates_messages() {
        let mut network = Network::default();
        let mut rng = SimRng::new(5);
        network.set_chaos(Chaos { drop_permille: 300, duplicate_permille: 300, extra_delay_ms: 50 });
        let sends: Vec<Send> = (0..200).map(|_| network.send(&mut rng, "a", "b")).collect();
        assert!(sends.contains(&Send::Lost));
        assert!(sends.iter().any(|send| matches!(send, Send::Delivered(copies) if copies.len() == 2)));
    }
}
