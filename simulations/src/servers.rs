//! The custom-server layer: each tenant's production `Deployments`, run by whichever process
//! runs the tenant's actor, against a simulated store of server records and a cluster-wide
//! deployer (Kubernetes-like: one instance per tenant and server name, deploying is idempotent);
//! and invariant 7.
//!
//! As `TenantServers` (actors/src/tenant_servers.rs) does: an actor starts with the tenant's core
//! and restores the records as persisted (`Input::Restored`, which resumes interrupted work).
//! Its messages are handled one at a time, each a store round trip long: the tenant's requests
//! (create or delete one of two names, sent to a process serving the tenant), the deployer's and
//! the discovery's answers, and ticks (every 1 s) when a retry is due. `Effect::Persist` writes
//! the records that changed since the actor's last persist and deletes those it removed
//! (`record_changes`), each only if the store still holds what the actor last persisted or
//! restored (`Store::replace_entry`); where it does not, the actor's view is stale: the input
//! is refused (a request gets an error) and the actor restores what is stored. A request is
//! acknowledged once its effects are carried out. Deploy, stop and discovery calls leave at once
//! and are answered after a delay, whatever happens to their sender (the answer is then lost).
//! A release or write-out stops the actor without waiting for them (the next owner resumes them
//! from the records); an exit or a crash drops it.
//!
//! 7. Requests: a create or a delete the tenant saw acknowledged is never undone by a write it
//!    did not come from: after every write of a tenant's records, each name last created holds a
//!    record, and each name last deleted holds none or one `deleting`.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, Duration, TimeZone, Utc};
use connectors_actors::deployer::{DeployError, Endpoint, ServerName, ServerSource, SourceKind};
use connectors_actors::deployments::{
    Deployments, Effect, Input, NewServer, Report, RetryPolicy, ServerRecord, ServerStatus, record_changes,
};
use connectors_actors::tenant::TenantId;
use connectors_cluster::ownership::ShardState;
use connectors_cluster::shard_map::{ShardId, shard_of};

use crate::process::{Life, ProcessId};
use crate::report::{Broken, Violation};
use crate::rng::SimRng;
use crate::tenants::TENANTS;
use crate::world::{Event, World};

/// The names a tenant's requests use.
const NAMES: [&str; 2] = ["alpha", "beta"];
/// A tenant request for a server, this often (cluster-wide).
const REQUEST_MS: i64 = 150;
/// One message of the actor, with its store round trip.
const STEP_MS: (i64, i64) = (1, 5);
/// A deployer or discovery call, each way.
const CALL_MS: (i64, i64) = (20, 400);
/// Deploy attempts that fail.
const DEPLOY_FAILURE_PERMILLE: u32 = 200;
/// The tenant actors' tick.
const TICK_MS: i64 = 1_000;

fn instant(clock_ms: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2027, 3, 31, 23, 59, 45).single().expect("a valid instant") + Duration::milliseconds(clock_ms)
}

fn retry() -> RetryPolicy {
    RetryPolicy { max_attempts: 4, initial_backoff: Duration::milliseconds(500), max_backoff: Duration::seconds(2) }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Intent {
    Create,
    Delete,
}

#[derive(Debug, Clone)]
pub(crate) enum ServerEvent {
    /// The tenant sends a request to a random process.
    Request,
    /// The process's tenant actors tick.
    Tick { process: ProcessId },
    /// The actor handles its next message.
    Step { process: ProcessId, tenant: usize, actor: u64 },
    /// The deployer carries out a call (whether or not its sender still lives).
    DeployerReceives { process: ProcessId, tenant: usize, actor: u64, name: ServerName, call: Call },
    /// An answer reaches the actor.
    Answer { process: ProcessId, tenant: usize, actor: u64, input: Box<Input> },
}

impl ServerEvent {
    pub(crate) fn process(&self) -> Option<ProcessId> {
        match self {
            ServerEvent::Tick { process } | ServerEvent::Step { process, .. } | ServerEvent::Answer { process, .. } => {
                Some(*process)
            }
            ServerEvent::Request | ServerEvent::DeployerReceives { .. } => None,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Call {
    Deploy { attempt: u32 },
    Stop,
    Discover,
}

/// A message of the actor.
#[derive(Debug, Clone)]
enum Message {
    Restore,
    Tick,
    Request { name: ServerName, intent: Intent },
    Input(Input),
}

struct Actor {
    serial: u64,
    deployments: Deployments,
    /// The records as this actor last persisted or restored them (`TenantServers::persisted`).
    persisted: Vec<ServerRecord>,
    messages: VecDeque<Message>,
    stepping: bool,
}

pub(crate) struct Servers {
    shards: Vec<ShardId>,
    /// The store's records of each tenant.
    store: Vec<BTreeMap<ServerName, ServerRecord>>,
    /// What each tenant last saw acknowledged for each name.
    intents: Vec<BTreeMap<ServerName, Intent>>,
    /// The deployer's running instances: tenant and name.
    running: BTreeMap<(usize, ServerName), u32>,
    actors: BTreeMap<(ProcessId, usize), Actor>,
    ticking: std::collections::BTreeSet<ProcessId>,
    next_serial: u64,
    next_deployment: u64,
    rng: SimRng,
}

impl Servers {
    pub(crate) fn new(seed: u64) -> Self {
        let shards = (0..TENANTS)
            .map(|index| shard_of(&TenantId::parse(&format!("tenant-{index}")).expect("a valid id")))
            .collect();
        Self {
            shards,
            store: vec![BTreeMap::new(); TENANTS],
            intents: vec![BTreeMap::new(); TENANTS],
            running: BTreeMap::new(),
            actors: BTreeMap::new(),
            ticking: Default::default(),
            next_serial: 0,
            next_deployment: 0,
            rng: SimRng::new(seed ^ 0x5E4F_E125_D3B1_0A77),
        }
    }

    /// The tenant's actor on `process` stops (released or written out).
    pub(crate) fn stop(&mut self, process: ProcessId, tenant: usize) {
        self.actors.remove(&(process, tenant));
    }

    /// The process exits or crashes.
    pub(crate) fn drop_process(&mut self, process: ProcessId) {
        self.actors.retain(|(p, _), _| *p != process);
    }
}

impl World {
    fn server_event_after(&mut self, delay_ms: i64, event: ServerEvent) {
        self.after(delay_ms, Event::Server(event));
    }

    /// The first request; called once at start.
    pub(crate) fn start_server_requests(&mut self) {
        self.server_event_after(REQUEST_MS, ServerEvent::Request);
    }

    /// The tenant's actor starts on `process` (with its core): it restores the records.
    pub(crate) fn start_servers(&mut self, process: ProcessId, tenant: usize) {
        let servers = &mut self.servers;
        servers.next_serial += 1;
        let actor = Actor {
            serial: servers.next_serial,
            deployments: Deployments::new(retry(), [SourceKind::Docker, SourceKind::Http]),
            persisted: Vec::new(),
            messages: VecDeque::from([Message::Restore]),
            stepping: false,
        };
        servers.actors.insert((process, tenant), actor);
        if servers.ticking.insert(process) {
            let phase = servers.rng.between(1, TICK_MS);
            self.server_event_after(phase, ServerEvent::Tick { process });
        }
        self.kick_server(process, tenant);
    }

    pub(crate) fn server_event(&mut self, event: ServerEvent) -> Result<(), Box<Violation>> {
        match event {
            ServerEvent::Request => self.server_request(),
            ServerEvent::Tick { process } => {
                if self.processes[process.0].life == Life::Gone {
                    self.servers.ticking.remove(&process);
                    return Ok(());
                }
                self.server_event_after(TICK_MS, ServerEvent::Tick { process });
                let tenants: Vec<usize> =
                    self.servers.actors.range((process, 0)..=(process, usize::MAX)).map(|((_, t), _)| *t).collect();
                for tenant in tenants {
                    self.deliver(process, tenant, Message::Tick);
                }
            }
            ServerEvent::Step { process, tenant, actor } => {
                let Some(current) = self.servers.actors.get_mut(&(process, tenant)) else { return Ok(()) };
                if current.serial != actor {
                    return Ok(());
                }
                current.stepping = false;
                self.step_servers(process, tenant)?;
            }
            ServerEvent::DeployerReceives { process, tenant, actor, name, call } => {
                self.deployer_receives(process, tenant, actor, name, call)
            }
            ServerEvent::Answer { process, tenant, actor, input } => {
                if self.servers.actors.get(&(process, tenant)).is_some_and(|current| current.serial == actor) {
                    self.deliver(process, tenant, Message::Input(*input));
                }
            }
        }
        Ok(())
    }

    /// A tenant asks a random running process to create a name it does not have or delete one
    /// it has (as that process's actor sees it); dropped where the tenant is not served.
    fn server_request(&mut self) {
        self.server_event_after(REQUEST_MS, ServerEvent::Request);
        let running: Vec<usize> =
            (0..self.processes.len()).filter(|&p| self.processes[p].life == Life::Running).collect();
        if running.is_empty() {
            return;
        }
        let servers = &mut self.servers;
        let tenant = servers.rng.between(0, TENANTS as i64 - 1) as usize;
        let process = ProcessId(running[servers.rng.between(0, running.len() as i64 - 1) as usize]);
        let name = ServerName::parse(NAMES[servers.rng.between(0, NAMES.len() as i64 - 1) as usize]).expect("valid");
        let state = &self.processes[process.0];
        if state.ownership.state(servers.shards[tenant], state.clock(self.now)) != ShardState::Active {
            return;
        }
        let Some(actor) = servers.actors.get(&(process, tenant)) else { return };
        let intent = if actor.deployments.server(&name).is_some() { Intent::Delete } else { Intent::Create };
        self.deliver(process, tenant, Message::Request { name, intent });
    }

    fn deliver(&mut self, process: ProcessId, tenant: usize, message: Message) {
        if let Some(actor) = self.servers.actors.get_mut(&(process, tenant)) {
            actor.messages.push_back(message);
        }
        self.kick_server(process, tenant);
    }

    fn kick_server(&mut self, process: ProcessId, tenant: usize) {
        let servers = &mut self.servers;
        let Some(actor) = servers.actors.get_mut(&(process, tenant)) else { return };
        if actor.stepping || actor.messages.is_empty() {
            return;
        }
        actor.stepping = true;
        let serial = actor.serial;
        let delay = servers.rng.between(STEP_MS.0, STEP_MS.1);
        self.server_event_after(delay, ServerEvent::Step { process, tenant, actor: serial });
    }

    /// The actor handles its next message: feeds its `Deployments` and carries out the effects
    /// in order (`TenantServers::apply`).
    fn step_servers(&mut self, process: ProcessId, tenant: usize) -> Result<(), Box<Violation>> {
        let label = self.processes[process.0].label.clone();
        let now = instant(self.processes[process.0].clock(self.now));
        let servers = &mut self.servers;
        let Some(actor) = servers.actors.get_mut(&(process, tenant)) else { return Ok(()) };
        let Some(message) = actor.messages.pop_front() else { return Ok(()) };
        let mut request = None;
        let input = match message {
            Message::Restore => {
                let records: Vec<ServerRecord> = servers.store[tenant].values().cloned().collect();
                actor.persisted = records.clone();
                Input::Restored { records }
            }
            Message::Tick => {
                if actor.deployments.next_deadline().is_none_or(|due| due > now) {
                    self.kick_server(process, tenant);
                    return Ok(());
                }
                Input::Tick
            }
            Message::Request { name, intent } => {
                request = Some((name.clone(), intent));
                match intent {
                    Intent::Create => {
                        servers.next_deployment += 1;
                        let server = NewServer {
                            name,
                            source: ServerSource::Docker { image: "example/mcp:1".into() },
                            category: "custom".into(),
                            description: None,
                        };
                        let deployment_id = format!("d{}", servers.next_deployment);
                        Input::Create { server, deployment_id, clashes_with_integration: false }
                    }
                    Intent::Delete => Input::Delete { name },
                }
            }
            Message::Input(input) => input,
        };
        let saved = actor.deployments.clone();
        let effects = match actor.deployments.handle(now, input) {
            Ok(effects) => effects,
            Err(_) => {
                // Refused (a name taken meanwhile): nothing changed, the tenant sees an error.
                self.kick_server(process, tenant);
                return Ok(());
            }
        };
        let mut calls = Vec::new();
        let mut written = false;
        for effect in effects {
            match effect {
                Effect::Persist(after) => {
                    let actor = servers.actors.get_mut(&(process, tenant)).expect("stepping");
                    if !persist(&mut servers.store[tenant], &actor.persisted, &after) {
                        // The store changed since this actor's last look: its view is stale.
                        actor.deployments = saved;
                        actor.messages.push_front(Message::Restore);
                        self.counters.stale_server_writes_refused += 1;
                        self.note(format_args!(
                            "{label}: tenant-{tenant}'s server records changed since its last look: restores them"
                        ));
                        self.kick_server(process, tenant);
                        return Ok(());
                    }
                    actor.persisted = after;
                    written = true;
                }
                Effect::Deploy { name, attempt, .. } => calls.push((name, Call::Deploy { attempt })),
                Effect::Stop { name } => calls.push((name, Call::Stop)),
                Effect::Discover { name, .. } => calls.push((name, Call::Discover)),
                Effect::Removed { .. } => {}
            }
        }
        let serial = servers.actors.get(&(process, tenant)).expect("stepping").serial;
        for (name, call) in calls {
            let delay = self.servers.rng.between(CALL_MS.0, CALL_MS.1);
            let event = ServerEvent::DeployerReceives { process, tenant, actor: serial, name, call };
            self.server_event_after(delay, event);
        }
        if let Some((name, intent)) = request {
            self.counters.server_requests_acknowledged += 1;
            self.note(format_args!("{label} acknowledges tenant-{tenant}'s {intent:?} of `{name}`"));
            self.servers.intents[tenant].insert(name, intent);
        }
        if written {
            self.check_requests(tenant, &label)?;
        }
        self.kick_server(process, tenant);
        Ok(())
    }

    /// The deployer: deploying runs (or keeps running) one instance, stopping ends it, a
    /// discovery finds tools on a running instance.
    fn deployer_receives(&mut self, process: ProcessId, tenant: usize, actor: u64, name: ServerName, call: Call) {
        let servers = &mut self.servers;
        let key = (tenant, name.clone());
        let input = match call {
            Call::Deploy { attempt } => {
                if servers.rng.chance(DEPLOY_FAILURE_PERMILLE) {
                    Input::DeployerReported {
                        name,
                        report: Report::Failed { attempt, error: DeployError::Failed("image pull failed".into()) },
                    }
                } else {
                    *servers.running.entry(key).or_default() += 1;
                    self.counters.deploys += 1;
                    let endpoint = Endpoint::Http { url: format!("http://{name}.tenant-{tenant}.svc") };
                    Input::DeployerReported { name, report: Report::Ready { attempt, endpoint } }
                }
            }
            Call::Stop => {
                servers.running.remove(&key);
                Input::DeployerReported { name, report: Report::Stopped }
            }
            Call::Discover => match servers.running.contains_key(&key) {
                true => Input::ToolsDiscovered { name, count: 3 },
                false => Input::DiscoveryFailed { name, error: "connection refused".into() },
            },
        };
        let delay = servers.rng.between(CALL_MS.0, CALL_MS.1);
        self.server_event_after(delay, ServerEvent::Answer { process, tenant, actor, input: Box::new(input) });
    }

    /// Invariant 7 for `tenant`, after `by` wrote its records.
    fn check_requests(&mut self, tenant: usize, by: &str) -> Result<(), Box<Violation>> {
        let store = &self.servers.store[tenant];
        for (name, intent) in &self.servers.intents[tenant] {
            let held = store.get(name).map(|record| record.status);
            let kept = match intent {
                Intent::Create => held.is_some(),
                Intent::Delete => held.is_none_or(|status| status == ServerStatus::Deleting),
            };
            if !kept {
                return Err(self.violation(Broken::RequestUndone {
                    tenant: format!("tenant-{tenant}"),
                    server: name.to_string(),
                    acknowledged: format!("{intent:?}").to_lowercase(),
                    stored: held.map_or("nothing".into(), |status| status.as_str().to_string()),
                    by: by.to_string(),
                }));
            }
        }
        Ok(())
    }
}

/// `TenantServers::persist` with `Store::replace_entry`: the records that changed since
/// `persisted` are written and those removed deleted, each only if the store still holds the
/// version in `persisted`. Says whether every write went through (a refused one stops the rest,
/// as the shell's error does).
fn persist(store: &mut BTreeMap<ServerName, ServerRecord>, persisted: &[ServerRecord], after: &[ServerRecord]) -> bool {
    let expected = |name: &ServerName| persisted.iter().find(|record| &record.name == name);
    let (written, deleted) = record_changes(persisted, after);
    for record in written {
        if store.get(&record.name) != expected(&record.name) {
            return false;
        }
        store.insert(record.name.clone(), record.clone());
    }
    for name in deleted {
        if store.get(name) != expected(name) {
            return false;
        }
        store.remove(name);
    }
    true
}
