//! A deterministic simulator of the Connectors Gateway cluster: it drives the production pure
//! state machines (`Membership`, `ShardOwnership`) of several nodes through a simulated
//! membership table, network and clock, injects faults, and checks the cluster's invariants
//! after every event. A run is a pure function of its [`Scenario`]; see README.md.

mod credentials;
mod invariants;
mod membership_shell;
mod network;
mod ownership_shell;
mod placements;
mod process;
mod report;
mod rng;
mod scenario;
mod servers;
mod strategies;
mod table;
mod tenants;
mod trace;
mod world;

pub use network::Chaos;
pub use report::{Activation, Broken, Counters, Holder, Report, Violation};
pub use scenario::{BadScenario, Fault, MAX_NODES, Scenario, Shell, TimedFault, seed_replay_command};
pub use strategies::{FaultMix, fault, scenario_from_seed, scenario_from_seed_with, scenarios};
pub use world::SimConfig;

use world::World;

/// Runs `scenario` with production timings.
pub fn run(scenario: &Scenario) -> Result<Report, Box<Violation>> {
    run_with(scenario, SimConfig::default())
}

pub fn run_with(scenario: &Scenario, config: SimConfig) -> Result<Report, Box<Violation>> {
    World::new(scenario, config, scenario.replay_command()).run()
}

/// Runs the scenario `seed` stands for ([`scenario_from_seed`]); a violation names the seed.
pub fn run_seed(seed: u64) -> Result<Report, Box<Violation>> {
    run_seed_with(seed, SimConfig::default())
}

pub fn run_seed_with(seed: u64, config: SimConfig) -> Result<Report, Box<Violation>> {
    World::new(&scenario_from_seed(seed), config, seed_replay_command(seed)).run()
}
