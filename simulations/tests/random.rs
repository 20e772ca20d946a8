//! Random scenarios (proptest, shrinking), the replay of one seed or scenario, and the soak.
//!
//! Replay: `SIM_SEED=1234 cargo test -p connectors-simulations --test random replay -- --nocapture`
//! (or `SIM_SCENARIO='<text a failure printed>'`). Soak: `SIM_SOAK_SECONDS=600` on the same
//! command with `soak` instead of `replay`.

use std::time::{Duration, Instant};

use connectors_simulations::{
    FaultMix, Report, Scenario, SimConfig, run, run_seed, run_seed_with, run_with, scenarios,
};
use proptest::prelude::*;
use proptest::test_runner::{RngSeed, TestCaseError};

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

fn describe(report: &Report) -> String {
    format!(
        "converged at {} ms ({} ms after the faults stopped), {} steps, final epoch {}\n{:#?}",
        report.converged_at_ms,
        report.converged_at_ms - report.quiet_since_ms,
        report.steps,
        report.final_epoch,
        report.counters
    )
}

/// Production timings; `SIM_TRACE_LINES` sets how many of the last events a violation shows.
fn replay_config() -> SimConfig {
    let trace_lines = env("SIM_TRACE_LINES").map(|lines| lines.parse().expect("SIM_TRACE_LINES is a number"));
    SimConfig { trace_lines: trace_lines.unwrap_or(SimConfig::default().trace_lines), ..SimConfig::default() }
}

#[test]
fn replay() {
    let outcome = if let Some(seed) = env("SIM_SEED") {
        let seed: u64 = seed.parse().expect("SIM_SEED is a number");
        println!("scenario of seed {seed}: {}", connectors_simulations::scenario_from_seed(seed));
        run_seed_with(seed, replay_config())
    } else if let Some(text) = env("SIM_SCENARIO") {
        let scenario: Scenario = text.parse().unwrap_or_else(|error| panic!("SIM_SCENARIO: {error}"));
        println!("scenario: {scenario}");
        run_with(&scenario, replay_config())
    } else {
        return;
    };
    match outcome {
        Ok(report) => {
            if env("SIM_TRACE_LINES").is_some() {
                println!("last events:\n  {}", report.trace.join("\n  "));
            }
            println!("no invariant broken; {}", describe(&report));
        }
        Err(violation) => panic!("{violation}"),
    }
}

#[test]
fn soak() {
    let Some(seconds) = env("SIM_SOAK_SECONDS") else { return };
    let seconds: u64 = seconds.parse().expect("SIM_SOAK_SECONDS is a number");
    let first: u64 = env("SIM_SOAK_FIRST_SEED").map_or(0, |s| s.parse().expect("SIM_SOAK_FIRST_SEED is a number"));
    let started = Instant::now();
    let mut seed = first;
    let mut failures = Vec::new();
    while started.elapsed() < Duration::from_secs(seconds) {
        if let Err(violation) = run_seed(seed) {
            println!("{violation}");
            failures.push(seed);
        }
        seed += 1;
    }
    println!("soak: seeds {first}..{seed} in {:?}, {} failed: {failures:?}", started.elapsed(), failures.len());
    assert!(failures.is_empty(), "seeds that broke an invariant: {failures:?}");
}

/// Cases per random test (six families: under a minute of a 2-core machine in all);
/// `PROPTEST_CASES` overrides it, and the soak runs many more.
const CASES: u32 = 250;

/// The cases' seed unless `PROPTEST_RNG_SEED` names another: every run (CI's too) checks the
/// same cases, so a failure is a change of behaviour, not a draw; the soak and other seeds
/// explore further.
const RNG_SEED: u64 = 20261203;

/// No regression files: a failure prints the `SIM_SCENARIO` command that replays it, and the
/// families share this file, whose regressions each would replay through its own fault mix.
fn config() -> ProptestConfig {
    let cases = env("PROPTEST_CASES").map_or(CASES, |cases| cases.parse().expect("PROPTEST_CASES is a number"));
    let default = ProptestConfig::default();
    let rng_seed = if env("PROPTEST_RNG_SEED").is_some() { default.rng_seed } else { RngSeed::Fixed(RNG_SEED) };
    ProptestConfig { cases, failure_persistence: None, rng_seed, ..default }
}

fn check(scenario: &Scenario) -> Result<(), TestCaseError> {
    run(scenario).map(drop).map_err(|violation| TestCaseError::fail(violation.to_string()))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_crashes_partitions_and_drains(scenario in scenarios(FaultMix::CRASHES_PARTITIONS_AND_DRAINS)) {
        check(&scenario)?;
    }

    #[test]
    fn random_crashes_partitions_and_drains_with_clock_skew(
        scenario in scenarios(FaultMix { clock_skew: true, ..FaultMix::CRASHES_PARTITIONS_AND_DRAINS })
    ) {
        check(&scenario)?;
    }

    #[test]
    fn random_faults_with_pauses(
        scenario in scenarios(FaultMix { pauses: true, clock_skew: true, ..FaultMix::CRASHES_PARTITIONS_AND_DRAINS })
    ) {
        check(&scenario)?;
    }

    #[test]
    fn random_faults_with_table_resets(
        scenario in scenarios(FaultMix { table_resets: true, clock_skew: true, ..FaultMix::CRASHES_PARTITIONS_AND_DRAINS })
    ) {
        check(&scenario)?;
    }

    #[test]
    fn random_faults_with_duplicate_processes(
        scenario in scenarios(FaultMix { duplicate_processes: true, clock_skew: true, ..FaultMix::CRASHES_PARTITIONS_AND_DRAINS })
    ) {
        check(&scenario)?;
    }

    #[test]
    fn random_faults_of_every_kind(scenario in scenarios(FaultMix::ALL)) {
        check(&scenario)?;
    }
}
