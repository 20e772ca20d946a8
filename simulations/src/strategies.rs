//! The proptest strategies that generate scenarios, and the seeded form of them that soaks and
//! `SIM_SEED` use: `Scenario::from_seed` samples the very same strategy with a fixed RNG.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use crate::network::Chaos;
use crate::scenario::{Fault, MAX_NODES, Scenario, Shell};

fn node() -> impl Strategy<Value = u8> {
    0..MAX_NODES
}

/// Which kinds of fault generated scenarios contain besides crashes, restarts, drains,
/// partitions, table outages, chaos, lost confirmations and failed releases, which they always may.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultMix {
    /// Processes paused and resumed with stale state (GC pauses, stopped VMs).
    pub pauses: bool,
    /// Redis flushes and failovers that lose the last writes.
    pub table_resets: bool,
    /// A second process of a node id while the first lives (a zombie and its replacement).
    pub duplicate_processes: bool,
    /// Machine clocks off by up to ±5 s.
    pub clock_skew: bool,
}

impl FaultMix {
    pub const ALL: FaultMix =
        FaultMix { pauses: true, table_resets: true, duplicate_processes: true, clock_skew: true };
    pub const CRASHES_PARTITIONS_AND_DRAINS: FaultMix =
        FaultMix { pauses: false, table_resets: false, duplicate_processes: false, clock_skew: false };

    /// `fault` if this mix has it; else the nearest fault it has (so that shrinking still works).
    fn allow(self, fault: Fault) -> Fault {
        match fault {
            Fault::Freeze { node, .. } if !self.pauses => Fault::Isolate { node, isolated: true },
            Fault::TableFlush | Fault::TableFailover { .. } if !self.table_resets => Fault::TableDown { down: false },
            Fault::Start { node, new_machine } if !self.duplicate_processes => Fault::Restart { node, new_machine },
            other => other,
        }
    }
}

pub fn fault(mix: FaultMix) -> impl Strategy<Value = Fault> {
    prop_oneof![
        2 => node().prop_map(|node| Fault::Crash { node }),
        2 => (node(), any::<bool>()).prop_map(|(node, new_machine)| Fault::Start { node, new_machine }),
        2 => (node(), any::<bool>()).prop_map(|(node, new_machine)| Fault::Restart { node, new_machine }),
        3 => (node(), 200..8_000i64).prop_map(|(node, for_ms)| Fault::Freeze { node, for_ms }),
        2 => node().prop_map(|node| Fault::Drain { node }),
        2 => (node(), any::<bool>()).prop_map(|(node, isolated)| Fault::Isolate { node, isolated }),
        2 => (node(), any::<bool>()).prop_map(|(node, cut)| Fault::CutFromTable { node, cut }),
        1 => any::<bool>().prop_map(|down| Fault::TableDown { down }),
        1 => Just(Fault::TableFlush),
        1 => (1..=24u8).prop_map(|lost_writes| Fault::TableFailover { lost_writes }),
        1 => (0..400u32, 0..300u32, 0..300i64).prop_map(|(drop_permille, duplicate_permille, extra_delay_ms)| {
            Fault::Chaos(Chaos { drop_permille, duplicate_permille, extra_delay_ms })
        }),
        1 => any::<bool>().prop_map(|on| Fault::DropConfirmations { on }),
        1 => any::<bool>().prop_map(|on| Fault::ReleaseFailures { on }),
    ]
    .prop_map(move |fault| mix.allow(fault))
}

/// Scenarios with faithful shells: 3–5 nodes, up to 12 faults in 6–20 s.
pub fn scenarios(mix: FaultMix) -> impl Strategy<Value = Scenario> {
    (
        any::<u64>(),
        prop_oneof![3 => Just(3u8), 2 => Just(4u8), 1 => Just(5u8)],
        if mix.clock_skew { prop_oneof![Just(0i64), 0..=5_000i64].boxed() } else { Just(0i64).boxed() },
        6_000..20_000i64,
        prop::collection::vec((0..20_000i64, fault(mix)), 0..=12),
    )
        .prop_map(|(seed, nodes, max_skew_ms, quiet_from_ms, faults)| {
            let mut scenario = Scenario::new(seed, nodes).skew(max_skew_ms).quiet_from(quiet_from_ms);
            for (at_ms, fault) in faults {
                scenario = scenario.at(at_ms % quiet_from_ms, fault);
            }
            scenario
        })
}

/// The scenario `seed` stands for: a sample of [`scenarios`] (every fault) drawn with an RNG
/// seeded by it.
pub fn scenario_from_seed(seed: u64) -> Scenario {
    scenario_from_seed_with(seed, Shell::Faithful)
}

/// [`scenario_from_seed`] run with another shell.
pub fn scenario_from_seed_with(seed: u64, shell: Shell) -> Scenario {
    let mut bytes = [0u8; 32];
    for (index, chunk) in bytes.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&(seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)).to_le_bytes());
    }
    let mut runner = TestRunner::new_with_rng(Config::default(), TestRng::from_seed(RngAlgorithm::ChaCha, &bytes));
    let tree = scenarios(FaultMix::ALL).new_tree(&mut runner).expect("the scenario strategy never rejects");
    tree.current().shell(shell)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_always_stands_for_the_same_scenario() {
        assert_eq!(scenario_from_seed(17), scenario_from_seed(17));
        assert_ne!(scenario_from_seed(17), scenario_from_seed(18));
        let scenario = scenario_from_seed(17);
        assert!(scenario.faults.iter().all(|timed| (0..scenario.quiet_from_ms).contains(&timed.at_ms)));
    }
}
