//! `World`: the virtual clock, the queue of pending events, and every process, the table and
//! the network they share. One event at a time, in (time, arrival) order: a run is a pure
//! function of its scenario.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use connectors_cluster::membership::{MemberRecord, Membership, MembershipConfig, NodeStatus};
use connectors_cluster::ownership::{OwnershipConfig, ReleaseVerdict, ShardOwnership};
use connectors_cluster::shard_map::NodeId;

use crate::network::{Chaos, Network};
use crate::ownership_shell::Ask;
use crate::process::{Life, Process, ProcessId, TaskKind, TickLoop};
use crate::report::{Activation, Broken, Counters, Report, Violation};
use crate::rng::SimRng;
use crate::scenario::{Fault, Scenario};
use crate::table::{SimTable, TableAnswer, TableOp};
use crate::trace::Trace;

/// Timings of the simulated cluster; the defaults are production's.
#[derive(Debug, Clone, Copy)]
pub struct SimConfig {
    pub membership: MembershipConfig,
    pub ownership: OwnershipConfig,
    /// The router ticks the ownership this often.
    pub ownership_tick_ms: i64,
    /// While nothing is being acquired or retried, a tick of the ownership does nothing (it asks
    /// only while acquiring, and activates only what it acquires); ticking that often would cost
    /// most of the run in a debug build. It is still ticked, this often, in case that changes.
    pub settled_tick_ms: i64,
    pub drain_poll_ms: i64,
    pub drain_deadline_ms: i64,
    /// How long stopping the actors of released shards (and shipping their state) takes.
    pub release_ms: (i64, i64),
    /// A process that exits because it was superseded is started again after this long (its
    /// supervisor), unless another process of its node id is alive then.
    pub supervisor_restart_ms: i64,
    /// How often every shard of every process is checked, whatever happened.
    pub sweep_ms: i64,
    /// After the faults stop, every shard must be served within this long.
    pub liveness_bound_ms: i64,
    pub trace_lines: usize,
    /// Clients send a request for a random tenant to a random process this often (0: no
    /// tenant load).
    pub tenant_request_ms: i64,
    /// The tenant actors' tick (`gateway.tickMillis`): checkpoints are written this often.
    pub tenant_tick_ms: i64,
}

impl Default for SimConfig {
    fn default() -> Self {
        let membership = MembershipConfig { heartbeat_interval_ms: 500, failure_timeout_ms: 3_000 };
        Self {
            membership,
            ownership: OwnershipConfig::default(),
            ownership_tick_ms: 25,
            settled_tick_ms: 1_000,
            drain_poll_ms: 20,
            drain_deadline_ms: 30_000,
            release_ms: (1, 100),
            supervisor_restart_ms: 2_000,
            sweep_ms: 250,
            liveness_bound_ms: 4 * membership.failure_timeout_ms + 5_000,
            trace_lines: 80,
            tenant_request_ms: 20,
            tenant_tick_ms: 1_000,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Event {
    Fault(Fault),
    QuietStart,
    Sweep,
    MembershipTick {
        process: ProcessId,
        generation: u64,
    },
    OwnershipTick {
        process: ProcessId,
        generation: u64,
    },
    /// A request reaches the table (whether or not its sender still lives).
    TableArrive {
        process: ProcessId,
        task: u64,
        op: TableOp,
    },
    TableAnswer {
        process: ProcessId,
        task: u64,
        answer: TableAnswer,
    },
    ReleaseDone {
        process: ProcessId,
        epoch: u64,
    },
    /// The supervisor has stopped the actors a lost lease took out of the directory.
    WrittenOut {
        process: ProcessId,
    },
    /// An `AskRelease` reaches whatever listens at `machine`.
    AskArrive {
        asker: ProcessId,
        from: NodeId,
        to: NodeId,
        machine: String,
        epoch: u64,
        fingerprint: u64,
    },
    /// The answer to an `AskRelease`: `None` when the call failed.
    AnswerArrive {
        asker: ProcessId,
        peer: NodeId,
        epoch: u64,
        answer: Option<ReleaseVerdict>,
        their_epoch: u64,
    },
    /// SIGTERM: `ClusterNode::drain` begins (when the process runs: a frozen one later).
    DrainStart {
        process: ProcessId,
    },
    DrainPoll {
        process: ProcessId,
    },
    Unfreeze {
        process: ProcessId,
    },
    /// The supervisor of a node whose process exited starts it again if none is alive.
    Supervise {
        node: u8,
    },
    /// A client request for a random tenant reaches a random process.
    TenantRequest,
    /// The tenant actors of every running process write their checkpoints.
    TenantTick,
    /// A released tenant's hand-off reaches whatever listens at `machine`.
    HandOffArrive {
        to: NodeId,
        machine: String,
        epoch: u64,
        tenant: usize,
        hand_off: Box<connectors_actors::hand_off::TenantHandOff>,
    },
    /// The OAuth refresh layer (`credentials.rs`).
    Credential(crate::credentials::CredentialEvent),
    /// The custom-server layer (`servers.rs`).
    Server(crate::servers::ServerEvent),
}

impl Event {
    /// The process that must be running to handle it (others are handled whatever happens).
    fn process(&self) -> Option<ProcessId> {
        match self {
            Event::Credential(event) => event.process(),
            Event::Server(event) => event.process(),
            Event::MembershipTick { process, .. }
            | Event::OwnershipTick { process, .. }
            | Event::TableAnswer { process, .. }
            | Event::ReleaseDone { process, .. }
            | Event::WrittenOut { process }
            | Event::DrainStart { process }
            | Event::DrainPoll { process } => Some(*process),
            Event::AnswerArrive { asker, .. } => Some(*asker),
            Event::Fault(_)
            | Event::QuietStart
            | Event::Sweep
            | Event::TableArrive { .. }
            | Event::AskArrive { .. }
            | Event::Unfreeze { .. }
            | Event::Supervise { .. }
            | Event::TenantRequest
            | Event::TenantTick
            | Event::HandOffArrive { .. } => None,
        }
    }
}

struct Scheduled {
    at: i64,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// A machine a node runs on: its address and its clock.
#[derive(Debug, Clone, Copy)]
struct Machine {
    offset_ms: i64,
    last_started_ms: i64,
}

pub(crate) struct World {
    pub(crate) config: SimConfig,
    pub(crate) scenario: Scenario,
    replay: String,
    pub(crate) now: i64,
    queue: BinaryHeap<Reverse<Scheduled>>,
    seq: u64,
    pub(crate) rng: SimRng,
    pub(crate) table: SimTable,
    pub(crate) network: Network,
    pub(crate) processes: Vec<Process>,
    machines: BTreeMap<String, Machine>,
    last_machine: BTreeMap<u8, String>,
    incarnations: BTreeMap<u8, u32>,
    pub(crate) release_failures: bool,
    pub(crate) quiet_since: Option<i64>,
    pub(crate) step: u64,
    pub(crate) trace: Trace,
    pub(crate) counters: Counters,
    pub(crate) activations: Vec<Activation>,
    /// Set during an event when some process's set of Active shards may have grown: only then
    /// can invariant 1 become false (between inputs, time only ends leases).
    pub(crate) may_grow: bool,
    converged_at: Option<i64>,
    pub(crate) tenants: crate::tenants::Tenants,
    pub(crate) credentials: crate::credentials::Credentials,
    pub(crate) servers: crate::servers::Servers,
}

impl World {
    pub(crate) fn new(scenario: &Scenario, config: SimConfig, replay: String) -> Self {
        let mut world = Self {
            config,
            scenario: scenario.clone(),
            replay,
            now: 0,
            queue: BinaryHeap::new(),
            seq: 0,
            rng: SimRng::new(scenario.seed),
            table: SimTable::default(),
            network: Network::default(),
            processes: Vec::new(),
            machines: BTreeMap::new(),
            last_machine: BTreeMap::new(),
            incarnations: BTreeMap::new(),
            release_failures: false,
            quiet_since: None,
            step: 0,
            trace: Trace::new(config.trace_lines),
            counters: Counters::default(),
            activations: Vec::new(),
            may_grow: false,
            converged_at: None,
            tenants: crate::tenants::Tenants::new(scenario.seed),
            credentials: crate::credentials::Credentials::new(scenario.seed),
            servers: crate::servers::Servers::new(scenario.seed),
        };
        for node in 0..scenario.nodes {
            world.start(node, false);
        }
        for timed in &scenario.faults {
            world.schedule(timed.at_ms, Event::Fault(timed.fault));
        }
        world.schedule(scenario.quiet_from_ms, Event::QuietStart);
        world.schedule(config.sweep_ms, Event::Sweep);
        if config.tenant_request_ms > 0 {
            world.schedule(config.tenant_request_ms, Event::TenantRequest);
            world.schedule(config.tenant_tick_ms, Event::TenantTick);
            world.start_server_requests();
        }
        world
    }

    /// Runs until the cluster has settled after the faults, or an invariant breaks.
    pub(crate) fn run(mut self) -> Result<Report, Box<Violation>> {
        while self.converged_at.is_none() {
            let Some(Reverse(next)) = self.queue.pop() else { unreachable!("the sweep always reschedules itself") };
            self.now = next.at;
            self.step += 1;
            self.may_grow = false;
            self.dispatch(next.event)?;
            if self.may_grow {
                self.check_exclusive()?;
            }
        }
        Ok(Report {
            steps: self.step,
            quiet_since_ms: self.quiet_since.unwrap_or_default(),
            converged_at_ms: self.converged_at.unwrap_or_default(),
            final_epoch: self.table.epoch(),
            counters: self.counters,
            activations: self.activations,
            trace: self.trace.lines(),
        })
    }

    pub(crate) fn schedule(&mut self, at: i64, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled { at, seq: self.seq, event }));
    }

    pub(crate) fn after(&mut self, delay_ms: i64, event: Event) {
        self.schedule(self.now + delay_ms, event);
    }

    pub(crate) fn note(&mut self, what: std::fmt::Arguments<'_>) {
        self.trace.record(self.step, self.now, what);
    }

    pub(crate) fn violation(&self, broken: Broken) -> Box<Violation> {
        Box::new(Violation {
            broken,
            step: self.step,
            at_ms: self.now,
            scenario: self.scenario.to_string(),
            replay: self.replay.clone(),
            trace: self.trace.lines(),
        })
    }

    fn dispatch(&mut self, event: Event) -> Result<(), Box<Violation>> {
        if let Some(process) = event.process() {
            match self.processes[process.0].life {
                Life::Gone => return Ok(()),
                Life::Frozen { .. } => {
                    self.processes[process.0].deferred.push(event);
                    return Ok(());
                }
                Life::Running => {}
            }
        }
        match event {
            Event::Fault(fault) => self.apply_fault(fault),
            Event::QuietStart => self.quiet_start(),
            Event::Sweep => {
                self.after(self.config.sweep_ms, Event::Sweep);
                let serving = self.check_exclusive()?;
                if let Some(since) = self.quiet_since {
                    self.check_liveness(since, &serving)?;
                }
            }
            Event::MembershipTick { process, generation } => self.membership_tick(process, generation),
            Event::OwnershipTick { process, generation } => self.ownership_tick(process, generation),
            Event::TableArrive { process, task, op } => self.table_arrive(process, task, op),
            Event::TableAnswer { process, task, answer } => self.table_answer(process, task, answer),
            Event::ReleaseDone { process, epoch } => self.release_done(process, epoch),
            Event::WrittenOut { process } => self.written_out(process),
            Event::AskArrive { asker, from, to, machine, epoch, fingerprint } => {
                self.ask_arrive(Ask { asker, from, to, machine, epoch, fingerprint })
            }
            Event::AnswerArrive { asker, peer, epoch, answer, their_epoch } => {
                self.answer_arrive(asker, peer, epoch, answer, their_epoch)
            }
            Event::DrainStart { process } => self.drain(process),
            Event::DrainPoll { process } => self.drain_poll(process),
            Event::Unfreeze { process } => self.unfreeze(process),
            Event::TenantRequest => self.tenant_request()?,
            Event::TenantTick => self.tenant_tick(),
            Event::Credential(event) => self.credential_event(event)?,
            Event::Server(event) => self.server_event(event)?,
            Event::HandOffArrive { to, machine, epoch, tenant, hand_off } => {
                self.hand_off_arrive(to, machine, epoch, tenant, hand_off)
            }
            Event::Supervise { node } => {
                if !self.node_alive(node) {
                    self.note(format_args!("supervisor starts n{node} again"));
                    self.start(node, false);
                }
            }
        }
        Ok(())
    }

    pub(crate) fn converged(&mut self) {
        self.converged_at = Some(self.now);
    }

    fn node_id(node: u8) -> NodeId {
        NodeId(format!("n{node}"))
    }

    fn processes_of(&self, node: u8) -> Vec<ProcessId> {
        let id = Self::node_id(node);
        (0..self.processes.len())
            .map(ProcessId)
            .filter(|p| self.processes[p.0].alive() && self.processes[p.0].id == id)
            .collect()
    }

    fn node_alive(&self, node: u8) -> bool {
        !self.processes_of(node).is_empty()
    }

    fn apply_fault(&mut self, fault: Fault) {
        if self.quiet_since.is_some() {
            return;
        }
        self.note(format_args!("FAULT {fault}"));
        match fault {
            Fault::Crash { node } => self.crash(node),
            Fault::Start { node, new_machine } => self.start(node, new_machine),
            Fault::Restart { node, new_machine } => {
                self.crash(node);
                self.start(node, new_machine);
            }
            Fault::Freeze { node, for_ms } => {
                for process in self.processes_of(node) {
                    let until = match self.processes[process.0].life {
                        Life::Frozen { until } => until.max(self.now + for_ms),
                        _ => self.now + for_ms,
                    };
                    self.counters.freezes += 1;
                    self.processes[process.0].life = Life::Frozen { until };
                    self.schedule(until, Event::Unfreeze { process });
                }
            }
            Fault::Drain { node } => {
                for process in self.processes_of(node) {
                    self.schedule(self.now, Event::DrainStart { process });
                }
            }
            Fault::Isolate { node, isolated } => {
                for process in self.processes_of(node) {
                    self.network.isolate(&self.processes[process.0].machine, isolated);
                }
            }
            Fault::CutFromTable { node, cut } => {
                for process in self.processes_of(node) {
                    self.network.cut_from_table(&self.processes[process.0].machine, cut);
                }
            }
            Fault::TableDown { down } => self.network.set_table_down(down),
            Fault::TableFlush => {
                self.counters.table_resets += 1;
                self.table.flush();
            }
            Fault::TableFailover { lost_writes } => {
                let lost = self.table.fail_over(usize::from(lost_writes));
                self.counters.table_resets += 1;
                self.note(format_args!("table failed over to epoch {} ({lost} writes lost)", self.table.epoch()));
            }
            Fault::Chaos(chaos) => self.network.set_chaos(chaos),
            Fault::DropConfirmations { on } => self.network.set_drop_confirmations(on),
            Fault::ReleaseFailures { on } => self.release_failures = on,
        }
    }

    fn crash(&mut self, node: u8) {
        for process in self.processes_of(node) {
            self.counters.crashes += 1;
            self.processes[process.0].life = Life::Gone;
            self.lose_tenants(process);
        }
    }

    /// The end of the faults: every link heals, every process resumes, every node runs.
    fn quiet_start(&mut self) {
        self.note(format_args!("QUIET: faults stop, every node runs and is linked"));
        self.network.heal();
        self.network.set_chaos(Chaos::default());
        self.release_failures = false;
        self.quiet_since = Some(self.now);
        for process in 0..self.processes.len() {
            if let Life::Frozen { .. } = self.processes[process].life {
                self.processes[process].life = Life::Frozen { until: self.now };
                self.unfreeze(ProcessId(process));
            }
        }
        let started: BTreeSet<u8> = self.last_machine.keys().copied().collect();
        for node in started {
            if !self.node_alive(node) {
                self.start(node, false);
            }
        }
    }

    /// Starts a new incarnation of node `node`.
    pub(crate) fn start(&mut self, node: u8, new_machine: bool) {
        let id = Self::node_id(node);
        let machine = match self.last_machine.get(&node) {
            Some(machine) if !new_machine && !self.processes.iter().any(|p| p.alive() && p.machine == *machine) => {
                machine.clone()
            }
            _ => {
                let machine = format!("{id}@m{}", self.machines.len());
                let skew = self.scenario.max_skew_ms;
                let offset_ms = self.rng.between(-skew, skew);
                self.machines.insert(machine.clone(), Machine { offset_ms, last_started_ms: i64::MIN });
                machine
            }
        };
        self.last_machine.insert(node, machine.clone());
        let incarnation = self.incarnations.entry(node).or_default();
        let label = format!("{id}#{incarnation}");
        *incarnation += 1;
        let host = self.machines.get_mut(&machine).expect("every machine is registered");
        // Two processes on one address never start in the same millisecond.
        let started_ms = (self.now + host.offset_ms).max(host.last_started_ms.saturating_add(1));
        host.last_started_ms = started_ms;
        let offset_ms = host.offset_ms;
        let record = MemberRecord {
            id: id.clone(),
            http_addr: String::new(),
            cluster_addr: machine.clone(),
            status: NodeStatus::Joining,
            heartbeat_ms: started_ms,
            started_ms,
        };
        let membership = Membership::new(record, self.config.membership);
        let ownership = ShardOwnership::new(id.clone(), self.config.ownership);
        let process = ProcessId(self.processes.len());
        self.note(format_args!("{label} starts on {machine} (clock offset {offset_ms} ms, started_ms {started_ms})"));
        self.processes.push(Process::new(id, label, machine, offset_ms, membership, ownership));
        self.counters.processes_started += 1;
        let first_tick = self.rng.between(0, 100);
        self.schedule_membership_tick(process, first_tick);
        let first_ownership_tick = self.rng.between(1, self.config.ownership_tick_ms);
        self.schedule_ownership_tick(process, first_ownership_tick);
    }

    pub(crate) fn schedule_membership_tick(&mut self, process: ProcessId, delay_ms: i64) {
        let state = &mut self.processes[process.0];
        state.next_tick_generation += 1;
        let generation = state.next_tick_generation;
        let until = self.now + delay_ms;
        state.tick_loop = TickLoop::Sleeping { generation, until };
        self.schedule(until, Event::MembershipTick { process, generation });
    }

    fn unfreeze(&mut self, process: ProcessId) {
        let state = &mut self.processes[process.0];
        match state.life {
            Life::Frozen { until } if until <= self.now => {
                state.life = Life::Running;
                let deferred = std::mem::take(&mut state.deferred);
                let label = state.label.clone();
                self.note(format_args!("{label} resumes with {} events waiting", deferred.len()));
                for event in deferred {
                    self.schedule(self.now, event);
                }
            }
            _ => {}
        }
    }

    /// `ClusterNode::drain`: start draining (in the membership turn), then poll until handed off
    /// or the deadline, counted from the end of that batch.
    fn drain(&mut self, process: ProcessId) {
        let state = &mut self.processes[process.0];
        if state.draining || state.leaving {
            return;
        }
        state.draining = true;
        self.take_turn(process, TaskKind::Drain);
    }

    /// `start_draining`'s batch is carried out: the poll loop begins.
    pub(crate) fn drain_started(&mut self, process: ProcessId) {
        self.processes[process.0].drain_deadline = Some(self.now + self.config.drain_deadline_ms);
        self.schedule(self.now, Event::DrainPoll { process });
    }

    fn drain_poll(&mut self, process: ProcessId) {
        let state = &self.processes[process.0];
        if state.leaving {
            return;
        }
        let handed_off = state.drained();
        if handed_off || state.drain_deadline.is_some_and(|deadline| self.now >= deadline) {
            let label = state.label.clone();
            if handed_off {
                self.counters.drains_handed_off += 1;
                self.note(format_args!("{label} handed every shard off; leaves"));
            } else {
                self.counters.drains_timed_out += 1;
                self.note(format_args!("{label} drain deadline passed; leaves anyway"));
            }
            self.leave(process);
        } else {
            self.after(self.config.drain_poll_ms, Event::DrainPoll { process });
        }
    }

    /// `ClusterNode::leave` after the tenants stopped: no more heartbeats; the process exits once
    /// the `Down` record is written.
    fn leave(&mut self, process: ProcessId) {
        let state = &mut self.processes[process.0];
        state.leaving = true;
        if let TickLoop::Sleeping { .. } = state.tick_loop {
            state.tick_loop = TickLoop::Stopped;
        }
        self.take_turn(process, TaskKind::Leave);
    }

    /// The process ends (left, or superseded by a newer incarnation).
    pub(crate) fn exit(&mut self, process: ProcessId, superseded: bool) {
        self.write_out_tenants(process);
        let state = &mut self.processes[process.0];
        state.life = Life::Gone;
        let label = state.label.clone();
        let node = state.id.as_str()[1..].parse::<u8>().expect("node ids are n<digit>");
        if superseded {
            self.counters.superseded += 1;
            self.note(format_args!("{label} is superseded by a newer incarnation and exits"));
            self.after(self.config.supervisor_restart_ms, Event::Supervise { node });
        } else {
            self.counters.left += 1;
            self.note(format_args!("{label} left the cluster and exits"));
            if self.quiet_since.is_some() {
                self.after(self.config.supervisor_restart_ms, Event::Supervise { node });
            }
        }
    }
}
