//! The OAuth refresh layer: one credential per tenant in a simulated secret store, refreshed by
//! the production `RefreshSchedule` of whichever process runs the tenant's actor, against a
//! simulated provider that rotates the refresh token on every success; and invariant 4.
//!
//! As `TenantOAuth` (actors/src/tenant_oauth.rs) does: an actor starts with the tenant's core
//! (activation, hand-off, restart) and restores the credential as persisted (`Input::Restored`:
//! a persisted `Refreshing` becomes `NeedsReauth`). Its messages are handled one at a time:
//! ticks (every 1 s, a phase per process), the provider's answers, and the shell's store
//! operations, each a `get` and a compare-and-set (`SecretStore::replace`: written only if the
//! store still holds what the get read) as separate events a store round trip apart:
//! `StartRefresh` is get → (only from the same generation, `Active`) replace with `Refreshing` →
//! send; a success is get → (same generation) replace with the new credential →
//! `RefreshSucceeded`; a status is get → replace (if it differs). Wherever the stored credential
//! is not the expected one, the actor adopts it (`adopt_stored`: get, feed `Restored`). A grant
//! (`store`) is get → put, unconditionally, as an admin's write is. The request to the provider
//! leaves once the put is answered and reaches the provider whatever happens to its sender after
//! that; the answer is lost if the sender is gone. A paused process's events wait for it. A
//! release waits until none of the actors it stops has a refresh out (`TenantMsg::Settle`); an
//! exit or a crash drops the actors. A user grants a new credential (`store`, a new refresh
//! token) through the owner once the stored one needs a re-authorization or expired.
//!
//! 4. A refresh token is never sent to the provider again once the provider consumed it
//!    (answered a refresh of it with new tokens). Checked at every receipt by the provider
//!    (README.md, finding 13, fixed).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use chrono::{DateTime, Duration, TimeZone, Utc};
use connectors_actors::refresh_schedule::{Effect, FailureKind, Input, RefreshSchedule};
use connectors_actors::secret_store::CredentialStatus;
use connectors_actors::tenant::TenantId;
use connectors_cluster::ownership::ShardState;
use connectors_cluster::shard_map::{ShardId, shard_of};

use crate::process::{Life, ProcessId};
use crate::report::{Broken, Violation};
use crate::rng::SimRng;
use crate::tenants::TENANTS;
use crate::world::{Event, World};

/// The one integration each tenant has.
const INTEGRATION: &str = "crm";
/// Refresh this long before expiry (`RefreshSchedule::new`).
const REFRESH_BEFORE_MS: i64 = 1_500;
/// Access tokens live this long, drawn at each issue.
const LIFETIME_MS: (i64, i64) = (3_000, 8_000);
/// One request to the secret store and its answer.
const STORE_MS: (i64, i64) = (1, 5);
/// One way between a process and the provider.
const PROVIDER_MS: (i64, i64) = (10, 150);
/// The provider answers a refresh with a 5xx this often (the token is not consumed).
const TRANSIENT_PERMILLE: u32 = 100;
/// The tenant actors' tick (`gateway.tickMillis`).
const TICK_MS: i64 = 1_000;
/// How often a release looks again whether its actors' refreshes have settled.
pub(crate) const SETTLE_POLL_MS: i64 = 5;
/// At each tick of the owner, the user grants a new credential with this chance once the stored
/// one needs a re-authorization or expired.
const GRANT_PERMILLE: u32 = 300;

/// Virtual time 0 on a clock without offset, as `tenants.rs` counts it.
fn instant(clock_ms: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2027, 3, 31, 23, 59, 45).single().expect("a valid instant") + Duration::milliseconds(clock_ms)
}

/// `OAuthCredential`, as far as refreshes go: `token` names the refresh token itself (the
/// provider's view), `generation` the shell's count of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Credential {
    token: u64,
    generation: u64,
    status: CredentialStatus,
    expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Answer {
    Tokens { token: u64, lifetime_ms: i64 },
    Failed(FailureKind),
}

#[derive(Debug, Clone)]
pub(crate) enum CredentialEvent {
    /// The process's tenant actors tick.
    Tick { process: ProcessId },
    /// The next step of one actor's current store operation.
    Step { process: ProcessId, tenant: usize, actor: u64 },
    /// A refresh request reaches the provider (whether or not its sender still lives).
    ProviderReceives { from: ProcessId, tenant: usize, actor: u64, token: u64, generation: u64 },
    /// The provider's answer reaches the sender (`TenantMsg::RefreshDone`).
    ProviderAnswers { process: ProcessId, tenant: usize, actor: u64, generation: u64, answer: Answer },
}

impl CredentialEvent {
    /// The process that must be running to handle it.
    pub(crate) fn process(&self) -> Option<ProcessId> {
        match self {
            CredentialEvent::Tick { process }
            | CredentialEvent::Step { process, .. }
            | CredentialEvent::ProviderAnswers { process, .. } => Some(*process),
            CredentialEvent::ProviderReceives { .. } => None,
        }
    }
}

/// What an actor does next, one at a time, in order.
#[derive(Debug, Clone, Copy)]
enum Op {
    /// `restore`: list the credential, feed `Restored`.
    Restore,
    /// `tick`: feed `Tick` if a deadline is due.
    Tick,
    /// `persist_status`: get, then replace if the status differs.
    SetStatus(CredentialStatus),
    /// `start_refresh`: get, replace with `Refreshing` if still the generation due and `Active`,
    /// then send; else adopt the stored credential.
    Mark { generation: u64 },
    /// `refreshed`: on new tokens get, replace with them if the generation matches (else adopt
    /// the stored credential); feed the answer; then persist the schedule's status.
    Answer { generation: u64, answer: Answer },
    /// `adopt_stored`: get, feed `Restored` with what is stored.
    Adopt,
    /// The refresh's answer is carried out: its mark is no longer this actor's to take back.
    Unmark,
    /// `store`: get, put the new credential (a new refresh token: the next generation), feed
    /// `Stored`.
    Grant { token: u64, lifetime_ms: i64 },
}

struct Actor {
    serial: u64,
    schedule: RefreshSchedule,
    ops: VecDeque<Op>,
    /// How far the first op has come, and what its get read.
    phase: u8,
    read: Option<Credential>,
    /// A `Step` event is pending.
    stepping: bool,
    /// A refresh is out (`TenantOAuth::in_flight`).
    in_flight: bool,
    /// Its release waits for it to settle: it starts nothing new.
    stopping: bool,
    /// The credential as it marked it `Refreshing` (`TenantOAuth::marked`).
    marked: Option<Credential>,
}

/// Who sent a token the provider consumed, and when.
#[derive(Debug, Clone)]
struct Consumed {
    by: String,
    at_ms: i64,
}

pub(crate) struct Credentials {
    shards: Vec<ShardId>,
    store: Vec<Credential>,
    consumed: BTreeMap<u64, Consumed>,
    next_token: u64,
    actors: BTreeMap<(ProcessId, usize), Actor>,
    ticking: BTreeSet<ProcessId>,
    next_serial: u64,
    /// Its own stream: the cluster's and the tenant load's draws stay as they were.
    rng: SimRng,
}

impl Credentials {
    pub(crate) fn new(seed: u64) -> Self {
        let mut rng = SimRng::new(seed ^ 0x0A07_4C4E_D5E7_12A3);
        let store = (0..TENANTS)
            .map(|tenant| Credential {
                token: tenant as u64,
                generation: 0,
                status: CredentialStatus::Active,
                expires_at: instant(rng.between(LIFETIME_MS.0, LIFETIME_MS.1)),
            })
            .collect();
        let shards = (0..TENANTS)
            .map(|index| shard_of(&TenantId::parse(&format!("tenant-{index}")).expect("a valid id")))
            .collect();
        Self {
            shards,
            store,
            consumed: BTreeMap::new(),
            next_token: TENANTS as u64,
            actors: BTreeMap::new(),
            ticking: BTreeSet::new(),
            next_serial: 0,
            rng,
        }
    }
}

impl Credentials {
    /// The tenant's actor on `process` stops (released: its refreshes have settled).
    pub(crate) fn stop(&mut self, process: ProcessId, tenant: usize) {
        self.actors.remove(&(process, tenant));
    }

    /// The process exits or crashes: its actors are gone; requests already sent still arrive.
    pub(crate) fn drop_process(&mut self, process: ProcessId) {
        self.actors.retain(|(p, _), _| *p != process);
    }
}

fn op_of(effect: Effect) -> Op {
    match effect {
        Effect::StartRefresh { generation, .. } => Op::Mark { generation },
        Effect::SetStatus { status, .. } => Op::SetStatus(status),
    }
}

impl World {
    fn credential_event_after(&mut self, delay_ms: i64, event: CredentialEvent) {
        self.after(delay_ms, Event::Credential(event));
    }

    /// The tenant's actor starts on `process` (with its core): it restores the credential.
    pub(crate) fn start_credentials(&mut self, process: ProcessId, tenant: usize) {
        let credentials = &mut self.credentials;
        credentials.next_serial += 1;
        let actor = Actor {
            serial: credentials.next_serial,
            schedule: RefreshSchedule::new(Duration::milliseconds(REFRESH_BEFORE_MS)),
            ops: VecDeque::from([Op::Restore]),
            phase: 0,
            read: None,
            stepping: false,
            in_flight: false,
            stopping: false,
            marked: None,
        };
        credentials.actors.insert((process, tenant), actor);
        if credentials.ticking.insert(process) {
            let phase = credentials.rng.between(1, TICK_MS);
            self.credential_event_after(phase, CredentialEvent::Tick { process });
        }
        self.kick(process, tenant);
    }

    /// `release_unowned` and a lease's write-out wait (`TenantMsg::Settle`) until no actor they
    /// stop (`stopping` says which tenants') has a refresh out or a store operation under way;
    /// those actors start nothing new meanwhile.
    pub(crate) fn refreshes_unsettled(&mut self, process: ProcessId, stopping: impl Fn(usize) -> bool) -> bool {
        let mut unsettled = false;
        for ((p, tenant), actor) in self.credentials.actors.range_mut((process, 0)..=(process, usize::MAX)) {
            debug_assert_eq!(*p, process);
            actor.stopping = stopping(*tenant);
            unsettled |= actor.stopping && (actor.in_flight || actor.stepping || !actor.ops.is_empty());
        }
        if unsettled {
            self.counters.releases_settling += 1;
        } else {
            // The release drops the unowned ones now; the others go on.
            for (_, actor) in self.credentials.actors.range_mut((process, 0)..=(process, usize::MAX)) {
                actor.stopping = false;
            }
        }
        unsettled
    }

    pub(crate) fn credential_event(&mut self, event: CredentialEvent) -> Result<(), Box<Violation>> {
        match event {
            CredentialEvent::Tick { process } => self.credential_tick(process),
            CredentialEvent::Step { process, tenant, actor } => {
                let Some(current) = self.credentials.actors.get_mut(&(process, tenant)) else { return Ok(()) };
                if current.serial != actor {
                    return Ok(());
                }
                current.stepping = false;
                self.step_actor(process, tenant);
            }
            CredentialEvent::ProviderReceives { from, tenant, actor, token, generation } => {
                self.provider_receives(from, tenant, actor, token, generation)?
            }
            CredentialEvent::ProviderAnswers { process, tenant, actor, generation, answer } => {
                let Some(current) = self.credentials.actors.get_mut(&(process, tenant)) else { return Ok(()) };
                if current.serial == actor {
                    current.ops.push_back(Op::Answer { generation, answer });
                    self.kick(process, tenant);
                }
            }
        }
        Ok(())
    }

    fn credential_tick(&mut self, process: ProcessId) {
        if self.processes[process.0].life == Life::Gone {
            return;
        }
        self.credential_event_after(TICK_MS, CredentialEvent::Tick { process });
        let state = &self.processes[process.0];
        let clock = state.clock(self.now);
        let credentials = &mut self.credentials;
        let mut kicks = Vec::new();
        for ((_, tenant), actor) in credentials.actors.range_mut((process, 0)..=(process, usize::MAX)) {
            if actor.stopping {
                continue;
            }
            actor.ops.push_back(Op::Tick);
            let stored = credentials.store[*tenant].status;
            let owned = state.ownership.state(credentials.shards[*tenant], clock) == ShardState::Active;
            if owned
                && matches!(stored, CredentialStatus::NeedsReauth | CredentialStatus::Expired)
                && credentials.rng.chance(GRANT_PERMILLE)
            {
                credentials.next_token += 1;
                let lifetime_ms = credentials.rng.between(LIFETIME_MS.0, LIFETIME_MS.1);
                actor.ops.push_back(Op::Grant { token: credentials.next_token, lifetime_ms });
            }
            kicks.push(*tenant);
        }
        for tenant in kicks {
            self.kick(process, tenant);
        }
    }

    /// Schedules the actor's next step if it has work and none is pending.
    fn kick(&mut self, process: ProcessId, tenant: usize) {
        let credentials = &mut self.credentials;
        let Some(actor) = credentials.actors.get_mut(&(process, tenant)) else { return };
        if actor.stepping || actor.ops.is_empty() {
            return;
        }
        actor.stepping = true;
        let serial = actor.serial;
        let delay = credentials.rng.between(STORE_MS.0, STORE_MS.1);
        self.credential_event_after(delay, CredentialEvent::Step { process, tenant, actor: serial });
    }

    /// One step of the actor's first op: a get, a put, or a decision.
    fn step_actor(&mut self, process: ProcessId, tenant: usize) {
        let label = self.processes[process.0].label.clone();
        let now = instant(self.processes[process.0].clock(self.now));
        let credentials = &mut self.credentials;
        let Some(actor) = credentials.actors.get_mut(&(process, tenant)) else { return };
        let Some(&op) = actor.ops.front() else { return };
        let stored = credentials.store[tenant];
        // Effects to carry out next (before anything queued), and whether the op is done.
        let mut next: Vec<Op> = Vec::new();
        let mut done = true;
        let mut send = None;
        let mut notes: Vec<String> = Vec::new();
        let mut adopted = false;
        match op {
            Op::Restore | Op::Adopt => {
                let input = Input::Restored {
                    integration: INTEGRATION.into(),
                    expires_at: Some(stored.expires_at),
                    refreshable: true,
                    generation: stored.generation,
                    status: stored.status,
                };
                notes.push(format!("{label} restores tenant-{tenant}'s credential {stored:?}"));
                next.extend(actor.schedule.handle(now, input).into_iter().map(op_of));
            }
            Op::Tick => {
                if !actor.stopping && actor.schedule.next_deadline().is_some_and(|due| due <= now) {
                    next.extend(actor.schedule.handle(now, Input::Tick).into_iter().map(op_of));
                }
            }
            Op::Unmark => actor.marked = None,
            Op::SetStatus(status) => match actor.phase {
                0 => {
                    actor.read = Some(stored);
                    // Another process's `Refreshing` is not turned back to `Active`.
                    let foreign = stored.status == CredentialStatus::Refreshing
                        && status == CredentialStatus::Active
                        && actor.marked != Some(stored);
                    done = stored.status == status || foreign;
                    if foreign {
                        notes.push(format!("{label} leaves tenant-{tenant}'s Refreshing of another process as it is"));
                    }
                }
                _ => {
                    let read = actor.read.expect("read in phase 0");
                    if stored == read {
                        credentials.store[tenant] = Credential { status, ..read };
                        notes.push(format!(
                            "{label} puts tenant-{tenant}'s credential {:?} as {status:?}",
                            read.generation
                        ));
                    } else {
                        notes.push(format!(
                            "{label} leaves tenant-{tenant}'s credential as stored (changed since read)"
                        ));
                    }
                }
            },
            Op::Mark { generation } => match actor.phase {
                0 => {
                    actor.read = Some(stored);
                    done = stored.generation != generation || stored.status != CredentialStatus::Active;
                    if done {
                        notes.push(format!(
                            "{label} finds tenant-{tenant}'s credential {:?}, not generation {generation} active: adopts it",
                            (stored.generation, stored.status)
                        ));
                        next.push(Op::Adopt);
                        adopted = true;
                    }
                }
                1 => {
                    let read = actor.read.expect("read in phase 0");
                    if stored == read {
                        let marked = Credential { status: CredentialStatus::Refreshing, ..read };
                        credentials.store[tenant] = marked;
                        actor.marked = Some(marked);
                        notes.push(format!("{label} marks tenant-{tenant}'s generation {generation} Refreshing"));
                        done = false;
                    } else {
                        notes.push(format!(
                            "{label} loses the mark of tenant-{tenant}'s generation {generation}: adopts"
                        ));
                        next.push(Op::Adopt);
                        adopted = true;
                    }
                }
                _ => {
                    let read = actor.read.expect("read in phase 0");
                    actor.in_flight = true;
                    send = Some((read.token, generation));
                }
            },
            Op::Answer { generation, answer } => match (answer, actor.phase) {
                (Answer::Failed(kind), _) => {
                    actor.in_flight = false;
                    let jitter = f64::from(now.timestamp_subsec_nanos() % 1_000_000) / 1_000_000.0;
                    let input = Input::RefreshFailed { integration: INTEGRATION.into(), generation, kind, jitter };
                    next.extend(actor.schedule.handle(now, input).into_iter().map(op_of));
                    next.extend(actor.schedule.status(INTEGRATION).map(Op::SetStatus));
                    next.push(Op::Unmark);
                }
                (Answer::Tokens { .. }, 0) => {
                    actor.in_flight = false;
                    actor.read = Some(stored);
                    done = stored.generation != generation;
                    if done {
                        notes.push(format!("{label}: tenant-{tenant}'s new tokens are stale (generation replaced)"));
                        next.push(Op::Adopt);
                        next.push(Op::Unmark);
                        adopted = true;
                    }
                }
                (Answer::Tokens { .. }, _) if stored != actor.read.expect("read in phase 0") => {
                    notes.push(format!("{label}: tenant-{tenant}'s credential changed since read: new tokens dropped"));
                    next.push(Op::Adopt);
                    next.push(Op::Unmark);
                    adopted = true;
                }
                (Answer::Tokens { token, lifetime_ms }, _) => {
                    let expires_at = now + Duration::milliseconds(lifetime_ms);
                    let new_generation = generation + 1;
                    credentials.store[tenant] =
                        Credential { token, generation: new_generation, status: CredentialStatus::Active, expires_at };
                    notes.push(format!("{label} puts tenant-{tenant}'s new generation {new_generation}"));
                    let input = Input::RefreshSucceeded {
                        integration: INTEGRATION.into(),
                        generation,
                        expires_at: Some(expires_at),
                        new_generation,
                    };
                    next.extend(actor.schedule.handle(now, input).into_iter().map(op_of));
                    next.extend(actor.schedule.status(INTEGRATION).map(Op::SetStatus));
                    next.push(Op::Unmark);
                }
            },
            Op::Grant { token, lifetime_ms } => match actor.phase {
                0 => {
                    actor.read = Some(stored);
                    done = false;
                }
                _ => {
                    let read = actor.read.expect("read in phase 0");
                    let expires_at = now + Duration::milliseconds(lifetime_ms);
                    let generation = read.generation + 1;
                    credentials.store[tenant] =
                        Credential { token, generation, status: CredentialStatus::Active, expires_at };
                    notes.push(format!("the user grants tenant-{tenant} generation {generation} through {label}"));
                    let input = Input::Stored {
                        integration: INTEGRATION.into(),
                        expires_at: Some(expires_at),
                        refreshable: true,
                        generation,
                    };
                    next.extend(actor.schedule.handle(now, input).into_iter().map(op_of));
                }
            },
        }
        if done {
            actor.ops.pop_front();
            actor.phase = 0;
            actor.read = None;
            for op in next.into_iter().rev() {
                actor.ops.push_front(op);
            }
        } else {
            actor.phase += 1;
        }
        let serial = actor.serial;
        self.counters.credentials_adopted += u64::from(adopted);
        if let Some((token, generation)) = send {
            self.counters.refreshes_sent += 1;
            notes.push(format!("{label} sends tenant-{tenant}'s generation {generation} (token {token})"));
            let delay = self.credentials.rng.between(PROVIDER_MS.0, PROVIDER_MS.1);
            let event = CredentialEvent::ProviderReceives { from: process, tenant, actor: serial, token, generation };
            self.credential_event_after(delay, event);
        }
        for note in notes {
            self.note(format_args!("{note}"));
        }
        self.kick(process, tenant);
    }

    /// The provider: a token it consumed is refused (and breaks invariant 4); a 5xx sometimes;
    /// otherwise it consumes the token and issues a new one.
    fn provider_receives(
        &mut self,
        from: ProcessId,
        tenant: usize,
        actor: u64,
        token: u64,
        generation: u64,
    ) -> Result<(), Box<Violation>> {
        let label = self.processes[from.0].label.clone();
        let first = self.credentials.consumed.get(&token).cloned();
        let answer = if let Some(first) = first {
            self.note(format_args!(
                "provider receives tenant-{tenant}'s generation {generation} (token {token}) again from {label}: \
                 consumed already"
            ));
            return Err(self.violation(Broken::RefreshTokenReused {
                tenant: format!("tenant-{tenant}"),
                generation,
                first_by: first.by,
                first_at_ms: first.at_ms,
                again_by: label,
            }));
        } else if self.credentials.rng.chance(TRANSIENT_PERMILLE) {
            Answer::Failed(FailureKind::Transient)
        } else {
            let credentials = &mut self.credentials;
            credentials.consumed.insert(token, Consumed { by: label.clone(), at_ms: self.now });
            credentials.next_token += 1;
            let lifetime_ms = credentials.rng.between(LIFETIME_MS.0, LIFETIME_MS.1);
            self.counters.refreshes_succeeded += 1;
            Answer::Tokens { token: credentials.next_token, lifetime_ms }
        };
        self.note(format_args!(
            "provider answers {label}'s refresh of tenant-{tenant}'s generation {generation}: {answer:?}"
        ));
        let delay = self.credentials.rng.between(PROVIDER_MS.0, PROVIDER_MS.1);
        self.credential_event_after(
            delay,
            CredentialEvent::ProviderAnswers { process: from, tenant, actor, generation, answer },
        );
        Ok(())
    }
}
