//! The membership shell, as `ClusterNode` is: the heartbeat loop, and each batch of membership
//! effects carried out in order against the table, one awaited request at a time; after each
//! batch the lease goes to the ownership, and a superseded process exits. A batch is decided and
//! carried out while holding the process's membership turn: a heartbeat, a drain and a leave of
//! one process never interleave.

use connectors_cluster::membership::{MembershipEffect, MembershipInput, View};
use connectors_cluster::ownership::OwnershipInput;

use crate::placements::placement_of;
use crate::process::{ProcessId, Task, TaskKind, TickLoop};
use crate::scenario::Shell;
use crate::table::{TableAnswer, TableOp};
use crate::world::{Event, World};

/// After a peer shows this node is behind, `run` reads the table again this soon.
const BEHIND_DELAY_MS: i64 = 50;

impl World {
    pub(crate) fn membership_tick(&mut self, process: ProcessId, generation: u64) {
        let state = &mut self.processes[process.0];
        // A tick the loop no longer waits for (it was woken early) is stale.
        if !matches!(state.tick_loop, TickLoop::Sleeping { generation: current, .. } if current == generation)
            || state.leaving
        {
            return;
        }
        state.tick_loop = TickLoop::Busy { behind: false };
        self.take_turn(process, TaskKind::Tick);
    }

    /// A peer knows a newer epoch (`ShardTable::behind`): the loop reads the table again soon.
    pub(crate) fn behind(&mut self, process: ProcessId) {
        match self.processes[process.0].tick_loop {
            TickLoop::Sleeping { until, .. } if until > self.now + BEHIND_DELAY_MS => {
                self.schedule_membership_tick(process, BEHIND_DELAY_MS);
            }
            TickLoop::Busy { .. } => self.processes[process.0].tick_loop = TickLoop::Busy { behind: true },
            TickLoop::Sleeping { .. } | TickLoop::Stopped => {}
        }
    }

    /// Waits for the membership turn (`ClusterNode::turn`), or takes it at once when it is free.
    pub(crate) fn take_turn(&mut self, process: ProcessId, kind: TaskKind) {
        let state = &mut self.processes[process.0];
        if state.tasks.is_empty() {
            self.start_task(process, kind);
        } else {
            state.waiting_for_turn.push_back(kind);
        }
    }

    /// The turn is ours: decide (now, not when we asked for the turn) and carry out.
    fn start_task(&mut self, process: ProcessId, kind: TaskKind) {
        let state = &mut self.processes[process.0];
        let now = state.clock(self.now);
        let effects = match kind {
            TaskKind::Tick => {
                // `run`: a conflict reported since the last tick makes this tick's write a rejoin.
                let conflict = std::mem::take(&mut state.conflict);
                if conflict {
                    state.membership.view_conflict();
                }
                let effects = state.membership.handle(now, MembershipInput::Tick);
                if conflict {
                    let label = state.label.clone();
                    self.note(format_args!("{label} rejoins after a view conflict"));
                }
                effects
            }
            TaskKind::Drain => state.membership.start_draining(),
            TaskKind::Leave => state.membership.leave(),
        };
        let state = &mut self.processes[process.0];
        let task = state.next_task;
        state.next_task += 1;
        state.tasks.insert(task, Task { kind, effects: effects.into() });
        self.advance(process, task);
    }

    /// Carries out the task's effects up to the next request to the table (or to its end).
    fn advance(&mut self, process: ProcessId, task: u64) {
        loop {
            let Some(effect) = self.processes[process.0].tasks.get_mut(&task).and_then(|t| t.effects.pop_front())
            else {
                self.finish(process, task);
                return;
            };
            let op = match effect {
                MembershipEffect::ViewChanged(view) => {
                    self.install_view(process, view);
                    continue;
                }
                // The table's script refuses to write over a newer incarnation's record.
                MembershipEffect::WriteSelf { record, bump_epoch, min_epoch } => {
                    TableOp::Write { record, bump_epoch, min_epoch }
                }
                MembershipEffect::ReadTable => TableOp::Read,
                MembershipEffect::RemoveMembers { ids, expected_epoch } => TableOp::Remove { ids, expected_epoch },
            };
            self.send_to_table(process, task, op);
            return;
        }
    }

    fn send_to_table(&mut self, process: ProcessId, task: u64, op: TableOp) {
        let machine = self.processes[process.0].machine.clone();
        match self.network.request_to_table(&mut self.rng, &machine) {
            Some(delay) => self.after(delay, Event::TableArrive { process, task, op }),
            None => {
                let delay = self.network.failure_delay(&mut self.rng);
                self.after(delay, Event::TableAnswer { process, task, answer: TableAnswer::Unreachable });
            }
        }
    }

    pub(crate) fn table_arrive(&mut self, process: ProcessId, task: u64, op: TableOp) {
        let machine = self.processes[process.0].machine.clone();
        if !self.network.reaches_table(&machine) {
            let delay = self.network.failure_delay(&mut self.rng);
            self.after(delay, Event::TableAnswer { process, task, answer: TableAnswer::Unreachable });
            return;
        }
        let change = match &op {
            TableOp::Write { record, bump_epoch, min_epoch } => Some(format!(
                "write {} {:?} hb {} {}",
                self.processes[process.0].label,
                record.status,
                record.heartbeat_ms,
                if *bump_epoch { format!("with bump (min {min_epoch})") } else { "no bump".into() }
            )),
            TableOp::Remove { ids, expected_epoch } => Some(format!("remove {ids:?} if epoch {expected_epoch}")),
            TableOp::Read => None,
        };
        let answer = self.table.apply(op);
        if let Some(change) = change {
            self.note(format_args!("table: {change} -> {answer:?}, epoch now {}", self.table.epoch()));
        }
        if answer == TableAnswer::Removed(true) {
            self.counters.removals_committed += 1;
        }
        match self.network.answer_from_table(&mut self.rng, &machine) {
            Some(delay) => self.after(delay, Event::TableAnswer { process, task, answer }),
            None => {
                let delay = self.network.failure_delay(&mut self.rng);
                self.after(delay, Event::TableAnswer { process, task, answer: TableAnswer::Unreachable });
            }
        }
    }

    pub(crate) fn table_answer(&mut self, process: ProcessId, task: u64, answer: TableAnswer) {
        let state = &mut self.processes[process.0];
        let now = state.clock(self.now);
        if !state.tasks.contains_key(&task) {
            return;
        }
        let effects = match answer {
            TableAnswer::Written(_) | TableAnswer::Removed(false) => Vec::new(),
            TableAnswer::Removed(true) => vec![MembershipEffect::ReadTable],
            TableAnswer::Read(table) => state.membership.handle(now, MembershipInput::TableRead(table)),
            TableAnswer::Unreachable => state.membership.handle(now, MembershipInput::TableUnreachable),
        };
        if let Some(current) = state.tasks.get_mut(&task) {
            current.effects.extend(effects);
        }
        self.advance(process, task);
    }

    /// The end of a carry-out: the lease goes to the router; a superseded process exits.
    fn finish(&mut self, process: ProcessId, task: u64) {
        let state = &mut self.processes[process.0];
        let Some(Task { kind, .. }) = state.tasks.remove(&task) else { return };
        let lease = match self.scenario.shell {
            Shell::IgnoreLease => i64::MAX,
            Shell::Faithful | Shell::ConfirmWithoutAsking => state.membership.lease_until_ms(),
        };
        if state.ownership.lease_until_ms() != lease {
            self.feed_ownership(process, OwnershipInput::Lease { until_ms: lease });
        }
        let state = &mut self.processes[process.0];
        if state.membership.is_superseded() && !state.leaving {
            state.leaving = true;
            self.exit(process, true);
            return;
        }
        match kind {
            TaskKind::Tick => {
                if let TickLoop::Busy { behind } = state.tick_loop
                    && !state.leaving
                {
                    let delay = if behind { BEHIND_DELAY_MS } else { self.config.membership.heartbeat_interval_ms };
                    self.schedule_membership_tick(process, delay);
                } else {
                    state.tick_loop = TickLoop::Stopped;
                }
            }
            TaskKind::Leave => {
                self.exit(process, false);
                return;
            }
            TaskKind::Drain => self.drain_started(process),
        }
        // The turn passes to the next task waiting for it.
        if let Some(next) = self.processes[process.0].waiting_for_turn.pop_front() {
            self.start_task(process, next);
        }
    }

    /// `ClusterNode::install`: links follow the view, the router gets its shard map.
    fn install_view(&mut self, process: ProcessId, view: View) {
        let state = &mut self.processes[process.0];
        state.links = view
            .members
            .iter()
            .filter(|member| member.id != state.id)
            .map(|member| (member.id.clone(), member.cluster_addr.clone()))
            .collect();
        let members = view.members.iter().map(|member| member.id.clone()).collect();
        let takeover_not_before_ms = state.membership.takeover_not_before_ms();
        let placement = placement_of(&view);
        let summary: Vec<String> =
            view.members.iter().map(|m| format!("{}:{:?}@{}", m.id, m.status, m.started_ms)).collect();
        let label = state.label.clone();
        self.note(format_args!(
            "{label} view {} [{}] takeover_not_before {takeover_not_before_ms}",
            view.epoch,
            summary.join(" ")
        ));
        let fingerprint = view.fingerprint();
        let input = OwnershipInput::View { map: placement.map.clone(), members, takeover_not_before_ms, fingerprint };
        self.feed_ownership_view(process, input, placement);
    }
}
