//! The ownership shell, as the router is: ticks, releases of unowned shards, and the release
//! asks between nodes over the simulated network. The broken shells live here too, behind
//! `Shell`, so that the fence can be shown to be what stops a double activation.

use std::sync::Arc;

use connectors_cluster::ownership::{OwnershipEffect, OwnershipInput, ReleaseVerdict};
use connectors_cluster::shard_map::NodeId;

use crate::network::Send;
use crate::placements::Placement;
use crate::process::ProcessId;
use crate::report::Activation;
use crate::scenario::Shell;
use crate::world::{Event, World};

impl World {
    /// Feeds one input to the process's ownership and carries out the effects.
    pub(crate) fn feed_ownership(&mut self, process: ProcessId, input: OwnershipInput) {
        let state = &mut self.processes[process.0];
        let now = state.clock(self.now);
        if let OwnershipInput::Lease { until_ms } = input
            && state.ownership.lease_until_ms() <= now
            && until_ms > now
        {
            // A fenced node is serving again.
            self.may_grow = true;
        }
        // A lapsed lease makes `handle` forget every active shard: they are acquired again.
        let may_forget = now >= state.ownership.lease_until_ms();
        let effects = state.ownership.handle(now, input);
        if may_forget {
            state.acquiring = state.ownership.acquiring();
        }
        self.carry_out_ownership(process, effects);
        self.keep_ticking_fast(process);
    }

    /// Feeds a view and keeps the placement it came from (for the invariant checks).
    pub(crate) fn feed_ownership_view(&mut self, process: ProcessId, input: OwnershipInput, placement: Arc<Placement>) {
        self.forget_hand_offs(process);
        let state = &mut self.processes[process.0];
        let now = state.clock(self.now);
        let epoch_before = state.ownership.epoch();
        let may_forget = now >= state.ownership.lease_until_ms();
        let effects = state.ownership.handle(now, input);
        if may_forget {
            state.acquiring = state.ownership.acquiring();
        }
        if state.ownership.epoch() == placement.epoch() && state.ownership.epoch() != epoch_before {
            state.placement = Some(placement);
            state.acquiring = state.ownership.acquiring();
            self.counters.views_installed += 1;
            self.may_grow = true;
        }
        self.carry_out_ownership(process, effects);
        self.keep_ticking_fast(process);
    }

    fn carry_out_ownership(&mut self, process: ProcessId, effects: Vec<OwnershipEffect>) {
        for effect in effects {
            match effect {
                OwnershipEffect::ReleaseUnowned { epoch } => {
                    self.processes[process.0].release_retry_pending = false;
                    let delay = self.rng.between(self.config.release_ms.0, self.config.release_ms.1);
                    self.after(delay, Event::ReleaseDone { process, epoch });
                }
                OwnershipEffect::AskRelease { peer, epoch } => self.ask_release(process, peer, epoch),
                OwnershipEffect::AllActive { epoch, shards } => {
                    let state = &mut self.processes[process.0];
                    state.acquiring = false;
                    self.may_grow = true;
                    let label = state.label.clone();
                    self.note(format_args!("{label} serves all its shards of epoch {epoch} ({shards} active)"));
                    self.activations.push(Activation { at_ms: self.now, process: label, epoch, shards });
                    self.activate_handed_over(process);
                }
                OwnershipEffect::LeaseLost => self.lease_lost(process),
            }
        }
    }

    pub(crate) fn ownership_tick(&mut self, process: ProcessId, generation: u64) {
        if self.processes[process.0].ownership_tick_generation != generation {
            return;
        }
        self.feed_ownership(process, OwnershipInput::Tick);
        let fast = self.processes[process.0].needs_fast_ticks();
        let delay = if fast { self.config.ownership_tick_ms } else { self.config.settled_tick_ms };
        self.schedule_ownership_tick(process, delay);
    }

    pub(crate) fn schedule_ownership_tick(&mut self, process: ProcessId, delay_ms: i64) {
        let state = &mut self.processes[process.0];
        state.ownership_tick_generation += 1;
        state.ticking_fast = delay_ms <= self.config.ownership_tick_ms;
        let generation = state.ownership_tick_generation;
        self.after(delay_ms, Event::OwnershipTick { process, generation });
    }

    /// Back to the router's 25 ms cadence as soon as there is something to acquire or retry.
    fn keep_ticking_fast(&mut self, process: ProcessId) {
        let state = &self.processes[process.0];
        if state.needs_fast_ticks() && !state.ticking_fast {
            self.schedule_ownership_tick(process, self.config.ownership_tick_ms);
        }
    }

    pub(crate) fn release_done(&mut self, process: ProcessId, epoch: u64) {
        if self.release_must_wait(process) {
            self.after(crate::credentials::SETTLE_POLL_MS, Event::ReleaseDone { process, epoch });
            return;
        }
        // `release_unowned` takes every unowned actor out of the directory and stops it (its
        // state written out) whether or not the release then succeeds; only a success ships.
        self.release_tenants(process, !self.release_failures);
        if self.release_failures {
            self.counters.release_failures += 1;
            let state = &mut self.processes[process.0];
            if epoch == state.ownership.epoch() {
                state.release_retry_pending = true;
            }
            self.feed_ownership(process, OwnershipInput::ReleaseFailed { epoch });
            self.keep_ticking_fast(process);
        } else {
            self.feed_ownership(process, OwnershipInput::Released { epoch });
        }
    }

    /// `ShardRouter::ask_release`: a request over the link to the peer's address in our view,
    /// naming our view by its fingerprint.
    fn ask_release(&mut self, process: ProcessId, peer: NodeId, epoch: u64) {
        if self.scenario.shell == Shell::ConfirmWithoutAsking {
            self.counters.confirmations += 1;
            self.feed_ownership(process, OwnershipInput::Confirmed { peer, epoch });
            return;
        }
        let state = &self.processes[process.0];
        let from = state.id.clone();
        let fingerprint = state.ownership.fingerprint();
        let Some(machine) = state.links.get(&peer).cloned() else {
            // No link to a node outside our view: `LinkError::NotConnected` at once.
            self.after(1, Event::AnswerArrive { asker: process, peer, epoch, answer: None, their_epoch: 0 });
            return;
        };
        match self.network.send(&mut self.rng, &state.machine.clone(), &machine) {
            Send::Delivered(delays) => {
                for delay in delays {
                    let event = Event::AskArrive {
                        asker: process,
                        from: from.clone(),
                        to: peer.clone(),
                        machine: machine.clone(),
                        epoch,
                        fingerprint,
                    };
                    self.after(delay, event);
                }
            }
            Send::Lost => self.counters.messages_lost += 1,
            Send::Failed { after_ms } => {
                self.after(after_ms, Event::AnswerArrive { asker: process, peer, epoch, answer: None, their_epoch: 0 });
            }
        }
    }

    /// `ShardTable::report_conflict`: the next heartbeat rejoins, and it comes soon.
    fn report_conflict(&mut self, process: ProcessId) {
        self.processes[process.0].conflict = true;
        self.counters.view_conflicts += 1;
        self.behind(process);
    }

    /// The region handler of whatever process listens at `machine` answers the ask
    /// (`RegionHandler::release`).
    pub(crate) fn ask_arrive(&mut self, ask: Ask) {
        let Ask { asker, from, to, machine, epoch, fingerprint } = ask;
        let target = (0..self.processes.len()).map(ProcessId).find(|p| {
            self.processes[p.0].alive() && self.processes[p.0].machine == machine && self.processes[p.0].id == to
        });
        let Some(target) = target else {
            // Nobody listens there any more: the connection is refused.
            let delay = self.network.failure_delay(&mut self.rng).min(20);
            self.after(delay, Event::AnswerArrive { asker, peer: to, epoch, answer: None, their_epoch: 0 });
            return;
        };
        let state = &mut self.processes[target.0];
        if let crate::process::Life::Frozen { .. } = state.life {
            state.deferred.push(Event::AskArrive { asker, from, to, machine, epoch, fingerprint });
            return;
        }
        let verdict = state.ownership.answer_release(&from, epoch, Some(fingerprint));
        let their_epoch = state.ownership.epoch();
        let label = state.label.clone();
        let target_machine = state.machine.clone();
        match verdict {
            ReleaseVerdict::Conflict => self.report_conflict(target),
            ReleaseVerdict::NotYet if epoch > their_epoch => self.behind(target),
            ReleaseVerdict::Released | ReleaseVerdict::NotYet => {}
        }
        self.note(format_args!(
            "{label} answers {from}'s release ask for epoch {epoch}: {verdict:?} (at epoch {their_epoch})"
        ));
        if verdict == ReleaseVerdict::Released && self.network.drops_confirmations() {
            self.counters.confirmations_dropped += 1;
            return;
        }
        let asker_machine = self.processes[asker.0].machine.clone();
        match self.network.send(&mut self.rng, &target_machine, &asker_machine) {
            Send::Delivered(delays) => {
                for delay in delays {
                    let event =
                        Event::AnswerArrive { asker, peer: to.clone(), epoch, answer: Some(verdict), their_epoch };
                    self.after(delay, event);
                }
            }
            Send::Lost => self.counters.messages_lost += 1,
            Send::Failed { after_ms } => {
                self.after(after_ms, Event::AnswerArrive { asker, peer: to, epoch, answer: None, their_epoch: 0 });
            }
        }
    }

    pub(crate) fn answer_arrive(
        &mut self,
        asker: ProcessId,
        peer: NodeId,
        epoch: u64,
        answer: Option<ReleaseVerdict>,
        their_epoch: u64,
    ) {
        match answer {
            Some(ReleaseVerdict::Released) => {
                self.counters.confirmations += 1;
                self.feed_ownership(asker, OwnershipInput::Confirmed { peer, epoch });
            }
            Some(ReleaseVerdict::Conflict) => {
                self.report_conflict(asker);
                self.feed_ownership(asker, OwnershipInput::NotConfirmed { peer, epoch });
            }
            Some(ReleaseVerdict::NotYet) | None => {
                if their_epoch > epoch {
                    self.behind(asker);
                }
                self.feed_ownership(asker, OwnershipInput::NotConfirmed { peer, epoch });
            }
        }
    }
}

/// A release ask on its way: from `from` (process `asker`) to `to` at `machine`, for view
/// `epoch` with `fingerprint`.
pub(crate) struct Ask {
    pub(crate) asker: ProcessId,
    pub(crate) from: NodeId,
    pub(crate) to: NodeId,
    pub(crate) machine: String,
    pub(crate) epoch: u64,
    pub(crate) fingerprint: u64,
}
