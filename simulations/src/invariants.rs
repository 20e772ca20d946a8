//! The invariants, checked against the production state machines' own answers
//! (`ShardOwnership::state`) at one virtual instant, each process reading its own clock.
//!
//! 1. Exclusivity: no shard is `Active` on two processes at once. Checked after every event
//!    that may have let a process serve more (a view installed, shards activated, a lease
//!    renewed after it had run out) and on every sweep. Between inputs a process's `Active`
//!    set only shrinks (its lease runs out as its clock moves on), so these checks see every
//!    instant at which the invariant could first fail.
//! 5. Liveness: once the faults stop, within the bound every live process (but those on their
//!    way out: draining or leaving) is `Up` in one view that all of them hold, and every shard is
//!    `Active` on exactly one process.

use connectors_cluster::membership::NodeStatus;
use connectors_cluster::ownership::ShardState;
use connectors_cluster::shard_map::SHARDS;

use crate::process::{Life, ProcessId};
use crate::report::{Broken, Holder, Violation};
use crate::world::World;

impl World {
    /// Invariant 1 over every shard of every live process. Returns each shard's server.
    pub(crate) fn check_exclusive(&mut self) -> Result<Vec<Option<ProcessId>>, Box<Violation>> {
        self.counters.exclusivity_checks += 1;
        let mut serving: Vec<Option<ProcessId>> = vec![None; usize::from(SHARDS)];
        for (index, state) in self.processes.iter().enumerate() {
            let Some(placement) = state.placement.as_ref().filter(|_| state.alive()) else { continue };
            let now = state.clock(self.now);
            for &shard in placement.owned_by(&state.id) {
                if state.ownership.state(shard, now) != ShardState::Active {
                    continue;
                }
                let slot = &mut serving[usize::from(shard.0)];
                if let Some(first) = *slot {
                    let broken =
                        Broken::TwoActive { shard, first: self.holder(first), second: self.holder(ProcessId(index)) };
                    return Err(self.violation(broken));
                }
                *slot = Some(ProcessId(index));
            }
        }
        Ok(serving)
    }

    fn holder(&self, process: ProcessId) -> Holder {
        let state = &self.processes[process.0];
        let frozen =
            if let Life::Frozen { until } = state.life { format!(", frozen until {until} ms") } else { String::new() };
        Holder {
            process: format!("{}{frozen}", state.label),
            epoch: state.ownership.epoch(),
            clock_ms: state.clock(self.now),
            lease_until_ms: state.ownership.lease_until_ms(),
        }
    }

    /// Invariant 3: converged, still converging, or out of time.
    pub(crate) fn check_liveness(&mut self, since: i64, serving: &[Option<ProcessId>]) -> Result<(), Box<Violation>> {
        let Some(state) = self.unconverged(serving) else {
            self.converged();
            return Ok(());
        };
        if self.now - since > self.config.liveness_bound_ms {
            return Err(self.violation(Broken::NotLive { quiet_since_ms: since, state }));
        }
        Ok(())
    }

    /// What still keeps the cluster from having converged; `None` once it has.
    fn unconverged(&self, serving: &[Option<ProcessId>]) -> Option<String> {
        let live: Vec<_> = self.processes.iter().filter(|p| p.alive() && !p.draining && !p.leaving).collect();
        if let Some(frozen) = self.processes.iter().find(|p| matches!(p.life, Life::Frozen { .. })) {
            return Some(format!("{} is frozen", frozen.label));
        }
        let epochs: Vec<String> = live
            .iter()
            .map(|p| format!("{}@{}", p.label, p.membership.view().map_or("none".into(), |v| v.epoch.to_string())))
            .collect();
        let first_view = live.first().and_then(|p| p.membership.view());
        let agreed = first_view.is_some_and(|view| {
            live.iter().all(|p| p.membership.view().is_some_and(|theirs| theirs.epoch == view.epoch))
        });
        if !agreed {
            return Some(format!("views differ: {}", epochs.join(" ")));
        }
        let view = first_view.expect("agreed on a view");
        for process in &live {
            let up = view
                .member(&process.id)
                .is_some_and(|me| me.status == NodeStatus::Up && me.cluster_addr == process.machine);
            if !up {
                return Some(format!("{} is not Up in view {} ({})", process.label, view.epoch, epochs.join(" ")));
            }
        }
        let unserved = serving.iter().filter(|server| server.is_none()).count();
        if unserved > 0 {
            return Some(format!("{unserved} shards unserved in view {}", view.epoch));
        }
        None
    }
}
