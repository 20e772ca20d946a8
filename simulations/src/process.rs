//! `Process`: one running incarnation of a node — its production state machines and what its
//! shell keeps around them (links, carry-outs in flight, tick timers, drain).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use connectors_cluster::membership::{Membership, MembershipEffect, NodeStatus};
use connectors_cluster::ownership::ShardOwnership;
use connectors_cluster::shard_map::NodeId;

use crate::placements::Placement;
use crate::world::Event;

/// Index of a process in the world; never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ProcessId(pub usize);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Life {
    Running,
    /// Paused until then: events meant for it wait in `deferred`.
    Frozen {
        until: i64,
    },
    /// Crashed or exited.
    Gone,
}

/// Why a carry-out of membership effects runs: the heartbeat loop, or a graceful exit step.
/// Each holds the process's membership turn (`ClusterNode::turn`) from its decision to the end
/// of its carry-out, so the tasks of one process run one at a time, in the order they asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TaskKind {
    Tick,
    Drain,
    Leave,
}

/// One `carry_out` of the production shell: effects done one at a time, awaiting the table.
#[derive(Debug)]
pub(crate) struct Task {
    pub(crate) kind: TaskKind,
    pub(crate) effects: VecDeque<MembershipEffect>,
}

/// The heartbeat loop of `ClusterNode::run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TickLoop {
    /// Sleeping; only the tick event of this generation wakes it.
    Sleeping {
        generation: u64,
        until: i64,
    },
    /// A tick's effects are being carried out; `behind` is a `Notify` permit taken meanwhile.
    Busy {
        behind: bool,
    },
    Stopped,
}

pub(crate) struct Process {
    pub(crate) id: NodeId,
    /// `n1#2`: node id and incarnation number, for traces.
    pub(crate) label: String,
    /// The cluster address; also names the machine (its clock and its network links).
    pub(crate) machine: String,
    pub(crate) offset_ms: i64,
    pub(crate) membership: Membership,
    pub(crate) ownership: ShardOwnership,
    /// The placement the ownership currently holds.
    pub(crate) placement: Option<Arc<Placement>>,
    pub(crate) life: Life,
    pub(crate) deferred: Vec<Event>,
    /// Peer id → cluster address, from the last view installed (`Links::sync`).
    pub(crate) links: BTreeMap<NodeId, String>,
    /// The task holding the membership turn (at most one).
    pub(crate) tasks: BTreeMap<u64, Task>,
    pub(crate) next_task: u64,
    /// Tasks waiting for the turn, first come first served (tokio's mutex is fair).
    pub(crate) waiting_for_turn: VecDeque<TaskKind>,
    /// A peer holds another view under our epoch (`ShardTable::report_conflict`): the next
    /// heartbeat tick calls `Membership::view_conflict` first.
    pub(crate) conflict: bool,
    pub(crate) tick_loop: TickLoop,
    pub(crate) next_tick_generation: u64,
    /// Only the ownership tick of this generation counts (the cadence changes with the load).
    pub(crate) ownership_tick_generation: u64,
    /// The pending ownership tick is on the 25 ms cadence.
    pub(crate) ticking_fast: bool,
    /// Shards are being acquired: the ownership needs its 25 ms ticks.
    pub(crate) acquiring: bool,
    /// A failed release waits for the tick that retries it.
    pub(crate) release_retry_pending: bool,
    /// `drain()` was called: on its way out.
    pub(crate) draining: bool,
    /// Set once `start_draining`'s batch is carried out: the drain then waits until this.
    pub(crate) drain_deadline: Option<i64>,
    /// `leave()` was called (or it was superseded): no more heartbeats.
    pub(crate) leaving: bool,
    /// Its tenant actors' state (simulated tenant load).
    pub(crate) tenants: crate::tenants::ProcessTenants,
}

impl Process {
    pub(crate) fn new(
        id: NodeId,
        label: String,
        machine: String,
        offset_ms: i64,
        membership: Membership,
        ownership: ShardOwnership,
    ) -> Self {
        Self {
            id,
            label,
            machine,
            offset_ms,
            membership,
            ownership,
            placement: None,
            life: Life::Running,
            deferred: Vec::new(),
            links: BTreeMap::new(),
            tasks: BTreeMap::new(),
            next_task: 0,
            waiting_for_turn: VecDeque::new(),
            conflict: false,
            tick_loop: TickLoop::Busy { behind: false },
            next_tick_generation: 0,
            ownership_tick_generation: 0,
            ticking_fast: false,
            acquiring: false,
            release_retry_pending: false,
            draining: false,
            drain_deadline: None,
            leaving: false,
            tenants: Default::default(),
        }
    }

    /// Alive: running or frozen. A frozen process may be in the middle of admitting a request, so
    /// it counts for the invariants like a running one.
    pub(crate) fn alive(&self) -> bool {
        self.life != Life::Gone
    }

    /// Its own clock at virtual time `now`.
    pub(crate) fn clock(&self, now: i64) -> i64 {
        now + self.offset_ms
    }

    pub(crate) fn needs_fast_ticks(&self) -> bool {
        self.acquiring || self.release_retry_pending
    }

    /// What `ClusterNode::drain` waits for: the view shows this node draining, and the ownership
    /// has nothing left to hand off.
    pub(crate) fn drained(&self) -> bool {
        let shown = self.membership.view().and_then(|view| view.member(&self.id)).map(|me| me.status);
        shown == Some(NodeStatus::Draining) && self.ownership.handed_off()
    }
}
