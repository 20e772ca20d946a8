//! `Scenario`: what one simulated run does — its seed, its cluster, and the faults it injects at
//! given virtual times — in a one-line text form that a failure prints and `SIM_SCENARIO` replays.

use std::fmt;
use std::str::FromStr;

use crate::network::Chaos;

/// Node ids are `n0`..`n4`.
pub const MAX_NODES: u8 = 5;

/// How the simulated shell carries out the ownership's effects. Only `Faithful` is what
/// production does; the others are deliberately broken fences that the invariants must catch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shell {
    Faithful,
    /// Feeds `Confirmed` for every `AskRelease` without asking the peer.
    ConfirmWithoutAsking,
    /// Feeds `Lease { until_ms: i64::MAX }` instead of the membership's lease.
    IgnoreLease,
}

/// One fault. A fault naming a node applies to every live process with that node id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The process dies: its state is lost, its messages in flight still arrive.
    Crash { node: u8 },
    /// A new incarnation starts; on the machine it last ran on unless `new_machine` (or that
    /// machine still runs a process of it: then this is a duplicate, on a machine of its own).
    /// A process of that node id that is alive (even frozen) keeps running.
    Start { node: u8, new_machine: bool },
    /// `Crash`, then `Start`: what a supervisor does to a process it believes is stuck.
    Restart { node: u8, new_machine: bool },
    /// The process handles nothing (a GC pause, a stopped VM) and then resumes as it was.
    Freeze { node: u8, for_ms: i64 },
    /// Graceful exit: drain, wait until handed off (or the deadline), then leave.
    Drain { node: u8 },
    /// Cut from (or back to) every peer.
    Isolate { node: u8, isolated: bool },
    /// Cut from (or back to) the membership table.
    CutFromTable { node: u8, cut: bool },
    /// The table is down for everyone (or back).
    TableDown { down: bool },
    /// `FLUSHALL`: the epoch and every record gone.
    TableFlush,
    /// A failover to a replica that lost the last writes.
    TableFailover { lost_writes: u8 },
    /// Random loss, duplication and delay on every peer link (all zero: none).
    Chaos(Chaos),
    /// Release confirmations vanish on their way back.
    DropConfirmations { on: bool },
    /// Releasing unowned shards fails (the state store does not take the state).
    ReleaseFailures { on: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedFault {
    pub at_ms: i64,
    pub fault: Fault,
}

#[derive(Clone, PartialEq, Eq)]
pub struct Scenario {
    /// Seeds every random choice of the run: delays, losses, clock offsets, tick phases.
    pub seed: u64,
    /// Nodes `n0`..`n{nodes-1}` start at time 0.
    pub nodes: u8,
    /// Each machine's clock is off from the virtual time by a constant within ±this.
    pub max_skew_ms: i64,
    /// Faults stop here; then every node is started, linked and reaches the table (the quiet
    /// period), and every shard must be served again within the liveness bound.
    pub quiet_from_ms: i64,
    /// Sorted by time.
    pub faults: Vec<TimedFault>,
    pub shell: Shell,
}

impl Scenario {
    /// A fault-free cluster of `nodes` nodes, to which faults are added.
    pub fn new(seed: u64, nodes: u8) -> Self {
        Self { seed, nodes, max_skew_ms: 0, quiet_from_ms: 10_000, faults: Vec::new(), shell: Shell::Faithful }
    }

    /// Adds `fault` at `at_ms`, keeping the faults sorted (stable for equal times).
    pub fn at(mut self, at_ms: i64, fault: Fault) -> Self {
        let index = self.faults.partition_point(|timed| timed.at_ms <= at_ms);
        self.faults.insert(index, TimedFault { at_ms, fault });
        self
    }

    pub fn quiet_from(mut self, at_ms: i64) -> Self {
        self.quiet_from_ms = at_ms;
        self
    }

    pub fn skew(mut self, max_skew_ms: i64) -> Self {
        self.max_skew_ms = max_skew_ms;
        self
    }

    pub fn shell(mut self, shell: Shell) -> Self {
        self.shell = shell;
        self
    }

    /// The command that runs exactly this scenario again.
    pub fn replay_command(&self) -> String {
        format!("SIM_SCENARIO='{self}' cargo test -p connectors-simulations --test random replay -- --nocapture")
    }
}

/// The command that runs the scenario of `seed` again.
pub fn seed_replay_command(seed: u64) -> String {
    format!("SIM_SEED={seed} cargo test -p connectors-simulations --test random replay -- --nocapture")
}

/// The text form: what proptest prints as a minimal failing input is then replayable as is.
impl fmt::Debug for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scenario(\"{self}\")")
    }
}

impl fmt::Display for Shell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Shell::Faithful => "faithful",
            Shell::ConfirmWithoutAsking => "confirm-without-asking",
            Shell::IgnoreLease => "ignore-lease",
        })
    }
}

fn machine(new_machine: bool) -> &'static str {
    if new_machine { "new-machine" } else { "same-machine" }
}

fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Fault::Crash { node } => write!(f, "crash n{node}"),
            Fault::Start { node, new_machine } => write!(f, "start n{node} {}", machine(new_machine)),
            Fault::Restart { node, new_machine } => write!(f, "restart n{node} {}", machine(new_machine)),
            Fault::Freeze { node, for_ms } => write!(f, "freeze n{node} {for_ms}"),
            Fault::Drain { node } => write!(f, "drain n{node}"),
            Fault::Isolate { node, isolated } => write!(f, "isolate n{node} {}", on_off(isolated)),
            Fault::CutFromTable { node, cut } => write!(f, "cut-table n{node} {}", on_off(cut)),
            Fault::TableDown { down } => write!(f, "table-down {}", on_off(down)),
            Fault::TableFlush => write!(f, "table-flush"),
            Fault::TableFailover { lost_writes } => write!(f, "table-failover {lost_writes}"),
            Fault::Chaos(chaos) => {
                write!(f, "chaos {} {} {}", chaos.drop_permille, chaos.duplicate_permille, chaos.extra_delay_ms)
            }
            Fault::DropConfirmations { on } => write!(f, "drop-confirmations {}", on_off(on)),
            Fault::ReleaseFailures { on } => write!(f, "release-failures {}", on_off(on)),
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed={} nodes={} skew={} quiet={} shell={}",
            self.seed, self.nodes, self.max_skew_ms, self.quiet_from_ms, self.shell
        )?;
        for timed in &self.faults {
            write!(f, " | {} {}", timed.at_ms, timed.fault)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad scenario text: {0}")]
pub struct BadScenario(String);

fn bad(what: impl fmt::Display) -> BadScenario {
    BadScenario(what.to_string())
}

fn number<T: FromStr>(text: Option<&str>) -> Result<T, BadScenario> {
    let text = text.ok_or_else(|| bad("a number is missing"))?;
    text.parse().map_err(|_| bad(format_args!("`{text}` is not a number")))
}

fn node(text: Option<&str>) -> Result<u8, BadScenario> {
    let text = text.ok_or_else(|| bad("a node is missing"))?;
    let index = text.strip_prefix('n').ok_or_else(|| bad(format_args!("`{text}` is not a node (n0..n4)")))?;
    number(Some(index)).and_then(|n: u8| if n < MAX_NODES { Ok(n) } else { Err(bad(format_args!("no node {text}"))) })
}

fn which_machine(text: Option<&str>) -> Result<bool, BadScenario> {
    match text {
        Some("new-machine") => Ok(true),
        Some("same-machine") => Ok(false),
        other => Err(bad(format_args!("expected new-machine or same-machine, got {other:?}"))),
    }
}

fn switch(text: Option<&str>) -> Result<bool, BadScenario> {
    match text {
        Some("on") => Ok(true),
        Some("off") => Ok(false),
        other => Err(bad(format_args!("expected on or off, got {other:?}"))),
    }
}

impl FromStr for Fault {
    type Err = BadScenario;

    fn from_str(text: &str) -> Result<Self, BadScenario> {
        let mut words = text.split_whitespace();
        let name = words.next().ok_or_else(|| bad("an empty fault"))?;
        let fault = match name {
            "crash" => Fault::Crash { node: node(words.next())? },
            "start" => Fault::Start { node: node(words.next())?, new_machine: which_machine(words.next())? },
            "restart" => Fault::Restart { node: node(words.next())?, new_machine: which_machine(words.next())? },
            "freeze" => Fault::Freeze { node: node(words.next())?, for_ms: number(words.next())? },
            "drain" => Fault::Drain { node: node(words.next())? },
            "isolate" => Fault::Isolate { node: node(words.next())?, isolated: switch(words.next())? },
            "cut-table" => Fault::CutFromTable { node: node(words.next())?, cut: switch(words.next())? },
            "table-down" => Fault::TableDown { down: switch(words.next())? },
            "table-flush" => Fault::TableFlush,
            "table-failover" => Fault::TableFailover { lost_writes: number(words.next())? },
            "chaos" => Fault::Chaos(Chaos {
                drop_permille: number(words.next())?,
                duplicate_permille: number(words.next())?,
                extra_delay_ms: number(words.next())?,
            }),
            "drop-confirmations" => Fault::DropConfirmations { on: switch(words.next())? },
            "release-failures" => Fault::ReleaseFailures { on: switch(words.next())? },
            other => return Err(bad(format_args!("unknown fault `{other}`"))),
        };
        match words.next() {
            None => Ok(fault),
            Some(extra) => Err(bad(format_args!("unexpected `{extra}` after `{name}`"))),
        }
    }
}

impl FromStr for Scenario {
    type Err = BadScenario;

    fn from_str(text: &str) -> Result<Self, BadScenario> {
        let mut parts = text.split('|');
        let mut scenario = Scenario::new(0, 3);
        for setting in parts.next().unwrap_or_default().split_whitespace() {
            let (key, value) =
                setting.split_once('=').ok_or_else(|| bad(format_args!("`{setting}` is not key=value")))?;
            match key {
                "seed" => scenario.seed = number(Some(value))?,
                "nodes" => scenario.nodes = number(Some(value))?,
                "skew" => scenario.max_skew_ms = number(Some(value))?,
                "quiet" => scenario.quiet_from_ms = number(Some(value))?,
                "shell" => {
                    scenario.shell = match value {
                        "faithful" => Shell::Faithful,
                        "confirm-without-asking" => Shell::ConfirmWithoutAsking,
                        "ignore-lease" => Shell::IgnoreLease,
                        other => return Err(bad(format_args!("unknown shell `{other}`"))),
                    }
                }
                other => return Err(bad(format_args!("unknown setting `{other}`"))),
            }
        }
        if !(1..=MAX_NODES).contains(&scenario.nodes) {
            return Err(bad(format_args!("nodes must be 1..={MAX_NODES}")));
        }
        for part in parts {
            let part = part.trim();
            let (at, fault) = part.split_once(' ').ok_or_else(|| bad(format_args!("`{part}` has no time")))?;
            scenario = scenario.at(number(Some(at))?, fault.parse()?);
        }
        Ok(scenario)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_form_reads_back_as_the_same_scenario() {
        let scenario = Scenario::new(42, 4)
            .skew(2_500)
            .quiet_from(20_000)
            .shell(Shell::IgnoreLease)
            .at(900, Fault::Freeze { node: 1, for_ms: 4_000 })
            .at(100, Fault::Start { node: 4, new_machine: true })
            .at(150, Fault::Restart { node: 0, new_machine: false })
            .at(2_000, Fault::Chaos(Chaos { drop_permille: 100, duplicate_permille: 50, extra_delay_ms: 30 }))
            .at(2_000, Fault::TableFailover { lost_writes: 3 })
            .at(3_000, Fault::CutFromTable { node: 2, cut: true })
            .at(3_500, Fault::DropConfirmations { on: false });
        assert_eq!(scenario.faults[0].at_ms, 100);
        let text = scenario.to_string();
        assert_eq!(text.parse::<Scenario>(), Ok(scenario));
    }

    #[test]
    fn bad_text_is_refused_with_a_reason() {
        assert!("seed=1 nodes=9".parse::<Scenario>().is_err());
        assert!("seed=1 | 10 crash n7".parse::<Scenario>().is_err());
        assert!("seed=1 | 10 explode n1".parse::<Scenario>().is_err());
        assert!("seed=1 | 10 crash n1 now".parse::<Scenario>().is_err());
    }
}
