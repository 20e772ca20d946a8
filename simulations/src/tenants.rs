//! Tenant load: the production `TenantCore` of a few tenants, run by whichever process serves
//! their shard, across releases, hand-offs, checkpoints and crashes, and invariant 2.
//!
//! As the supervisor and the router do: a request is admitted only by a process whose shard for
//! the tenant is `Active` (`ShardOwnership::state`, its own clock), with a core started on first
//! use from a hand-off kept for it, else from the store's checkpoint. Every tick each running
//! process writes its cores' checkpoints to the store. A release (`ReleaseUnowned` carried out)
//! writes out and drops every core whose shard is not `Active`, and ships its hand-off to the
//! shard's owner in the releasing process's map; the receiver keeps it only if its shard is still
//! `Acquiring` at the batch's epoch and it has no core for the tenant. A new view forgets the kept
//! hand-offs; `AllActive` starts the cores of those kept. An exit writes every core out; a crash
//! loses what its cores admitted since their last checkpoint (the crash bound).
//!
//! 2. Limits: for each tenant and each minute window (as the admitting core counts it), the
//!    requests admitted by every process together never exceed the limit plus what crashed
//!    processes had admitted in it since their last checkpoint (the crash bound), plus what live
//!    processes that lost the tenant without a release (paused, cut off) had admitted and not
//!    checkpointed when another process started it (the takeover bound: README.md, finding 9).
//!    Checked after every admission.
//!
//! Usage and quotas, as the recorder and the store keep them: a third of the requests are tool
//! invocations, charged to a monthly quota; every flush (tick, release, exit) commits the core's
//! usage deltas to the store, which sums them per month; a core started from the store gets the
//! month's committed usage. Checked after every admission and every flush:
//!
//! 5. Usage: for each tenant, the API calls committed, plus those admitted and not yet flushed by
//!    the live cores, plus those a crash lost, equal the API calls admitted: none is lost (beyond
//!    the crash bound) or counted twice, across hand-offs, takeovers and releases.
//! 6. Quotas: tool invocations admitted in a month never exceed the quota plus the crash bound
//!    plus what cores that lost the tenant without a release had not committed when another
//!    process started it, plus what was admitted in the month before a core whose clock was
//!    behind rolled into it (it starts the month from zero: README.md, finding 17, open).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use connectors_actors::admission::AdmissionRequest;
use connectors_actors::hand_off::TenantHandOff;
use connectors_actors::policy::{Plan, Policy};
use connectors_actors::quotas::Quota;
use connectors_actors::store::Checkpoint;
use connectors_actors::tenant::{
    FeatureOverrides, Features, LimitOverrides, Limits, Security, TenantId, TenantRecord, TenantStatus,
};
use connectors_actors::tenant_core::{Flush, TenantCore};
use connectors_actors::usage::{Month, UsageCounters};
use connectors_cluster::ownership::ShardState;
use connectors_cluster::shard_map::{NodeId, ShardId, shard_of};

use crate::network::Send;
use crate::process::{Life, ProcessId};
use crate::report::{Broken, Violation};
use crate::rng::SimRng;
use crate::world::{Event, World};

/// How many tenants the clients use.
pub(crate) const TENANTS: usize = 8;
/// Requests per minute each tenant may make (hour and day limits do not bind).
pub(crate) const PER_MINUTE: u64 = 20;
/// Tool invocations each tenant may make per calendar month.
const INVOCATIONS_PER_MONTH: u64 = 5;
/// One request in this many is a tool invocation.
const INVOCATION_EVERY: i64 = 3;

/// Virtual time 0 on a clock without offset: 15 s before a minute, hour, day and month boundary.
fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2027, 3, 31, 23, 59, 45).single().expect("a valid instant")
}

/// A process's clock reading as the `now` its tenant cores are given.
fn instant(clock_ms: i64) -> DateTime<Utc> {
    base() + chrono::Duration::milliseconds(clock_ms)
}

/// The tenants, the store's checkpoints of them, and the admissions counted for invariant 2.
pub(crate) struct Tenants {
    policy: Arc<Policy>,
    records: Vec<TenantRecord>,
    shards: Vec<ShardId>,
    store: Vec<Option<Checkpoint>>,
    /// (tenant, minute window start in epoch s) → requests admitted in it, by every process.
    admitted: BTreeMap<(usize, i64), u64>,
    /// The same, admitted by processes that crashed before a checkpoint held them.
    crash_allowance: BTreeMap<(usize, i64), u64>,
    /// The same, admitted by live processes that lost the tenant without a release (paused, cut
    /// off from the table: their lease ran out) and not yet checkpointed when another process
    /// started the tenant: lost to the new owner just as a crash's are (README.md, finding 9).
    takeover_allowance: BTreeMap<(usize, i64), u64>,
    /// Its own stream, so the tenant load leaves the cluster's random draws as they were.
    rng: SimRng,
    /// Usage as the store sums it, per tenant and month.
    committed: BTreeMap<(usize, Month), UsageCounters>,
    /// API calls admitted per tenant (by any core), and those a crash lost before a flush.
    calls_admitted: Vec<u64>,
    calls_lost: Vec<u64>,
    /// Tool invocations admitted per tenant and month, and the quota's allowances (see 6.).
    invocations: BTreeMap<(usize, Month), u64>,
    invocations_lost: BTreeMap<(usize, Month), u64>,
    invocations_taken_over: BTreeMap<(usize, Month), u64>,
    invocations_before_rollover: BTreeMap<(usize, Month), u64>,
}

impl Tenants {
    pub(crate) fn new(seed: u64) -> Self {
        let limits = Limits {
            requests_per_minute: PER_MINUTE,
            requests_per_hour: 1_000_000,
            requests_per_day: 1_000_000,
            max_custom_servers: 1,
            max_tool_invocations: INVOCATIONS_PER_MONTH,
            max_storage_mb: 10,
        };
        let policy = Arc::new(Policy {
            default_limits: limits,
            default_features: Features { custom_servers: true, oauth: true, advanced_analytics: false },
            plans: BTreeMap::from([(
                "free".to_string(),
                Plan { limits: LimitOverrides::default(), features: FeatureOverrides::default() },
            )]),
            default_plan: "free".into(),
            rate_limits_enabled: true,
        });
        let records: Vec<TenantRecord> = (0..TENANTS)
            .map(|index| TenantRecord {
                id: TenantId::parse(&format!("tenant-{index}")).expect("a valid id"),
                name: format!("Tenant {index}"),
                email: None,
                plan: "free".into(),
                status: TenantStatus::Active,
                limits: LimitOverrides::default(),
                features: FeatureOverrides::default(),
                security: Security::default(),
                mcp: Default::default(),
                created_at: base(),
                updated_at: base(),
                keys: Vec::new(),
            })
            .collect();
        let shards = records.iter().map(|record| shard_of(&record.id)).collect();
        Self {
            policy,
            records,
            shards,
            store: vec![None; TENANTS],
            admitted: BTreeMap::new(),
            crash_allowance: BTreeMap::new(),
            takeover_allowance: BTreeMap::new(),
            rng: SimRng::new(seed ^ 0x7E5A_47D0_11AD_0FF5),
            committed: BTreeMap::new(),
            calls_admitted: vec![0; TENANTS],
            calls_lost: vec![0; TENANTS],
            invocations: BTreeMap::new(),
            invocations_lost: BTreeMap::new(),
            invocations_taken_over: BTreeMap::new(),
            invocations_before_rollover: BTreeMap::new(),
        }
    }
}

impl Tenants {
    /// Writes a checkpoint as the store does: merged over the stored one (finding 10). Says
    /// whether the merge kept counts the checkpoint would have lowered (a stale write).
    /// The usage the store holds for the tenant's month.
    fn month_usage(&self, tenant: usize, month: Month) -> UsageCounters {
        self.committed.get(&(tenant, month)).copied().unwrap_or_default()
    }

    /// A core started from what the store holds: the checkpoint and the month's usage.
    fn core_from_store(&self, tenant: usize, now: DateTime<Utc>) -> TenantCore {
        let usage = self.month_usage(tenant, Month::of(now));
        TenantCore::new(self.policy.clone(), self.records[tenant].clone(), self.store[tenant], usage, now)
            .expect("a valid record")
    }

    /// Commits a core's flush as the recorder does: its usage deltas summed into the store's
    /// months, its checkpoint merged over the stored one. Says whether the merge kept stale
    /// counts out.
    fn commit(&mut self, tenant: usize, flush: Flush, pending: &mut Pending) -> bool {
        for (day, counters) in &flush.usage {
            self.committed.entry((tenant, Month::containing(*day))).or_default().add(counters);
        }
        pending.calls.remove(&tenant);
        pending.invocations.retain(|(t, _), _| *t != tenant);
        flush.checkpoint.is_some_and(|checkpoint| self.save(tenant, checkpoint))
    }

    fn save(&mut self, tenant: usize, checkpoint: Checkpoint) -> bool {
        let merged = checkpoint.merged_over(self.store[tenant].as_ref());
        self.store[tenant] = Some(merged);
        merged != checkpoint
    }
}

/// One process's tenant actors: their cores, the hand-offs kept for them, and what each core
/// admitted per minute window since its last checkpoint, and since its last flush (API calls;
/// tool invocations per month).
#[derive(Default)]
pub(crate) struct ProcessTenants {
    cores: BTreeMap<usize, TenantCore>,
    /// Cores a lost lease took out of the directory, until the supervisor has written them out
    /// (`TenantDirectory::write_out_all`): no request reaches them, and activations and releases
    /// wait behind.
    writing_out: BTreeMap<usize, TenantCore>,
    arrivals: BTreeMap<usize, TenantHandOff>,
    unflushed: BTreeMap<(usize, i64), u64>,
    pending: Pending,
    /// The month each core's quota counts (it rolls over at the core's first admission in the
    /// next month).
    quota_months: BTreeMap<usize, Month>,
}

/// What a process's cores admitted and have not flushed yet: API calls per tenant, tool
/// invocations per tenant and month.
#[derive(Default)]
struct Pending {
    calls: BTreeMap<usize, u64>,
    invocations: BTreeMap<(usize, Month), u64>,
}

impl ProcessTenants {
    fn checkpointed(&mut self, tenant: usize) {
        self.unflushed.retain(|(t, _), _| *t != tenant);
    }
}

/// A request that passes every check but the rate windows and, if `invocation`, the quota of
/// tool invocations (no key required).
fn request(invocation: bool) -> AdmissionRequest {
    AdmissionRequest {
        key: None,
        key_required: false,
        client_ip: IpAddr::from([10, 0, 0, 1]),
        charge: invocation.then_some(Quota::ToolInvocations),
        selection: false,
        server: None,
    }
}

impl World {
    /// A client sends a request for a random tenant to a random running process.
    pub(crate) fn tenant_request(&mut self) -> Result<(), Box<Violation>> {
        self.after(self.config.tenant_request_ms, Event::TenantRequest);
        let running: Vec<usize> =
            (0..self.processes.len()).filter(|&p| self.processes[p].life == Life::Running).collect();
        if running.is_empty() {
            return Ok(());
        }
        let tenant = self.tenants.rng.between(0, TENANTS as i64 - 1) as usize;
        let process = running[self.tenants.rng.between(0, running.len() as i64 - 1) as usize];
        let invocation = self.tenants.rng.between(1, INVOCATION_EVERY) == 1;
        self.counters.requests += 1;
        let tenants = &mut self.tenants;
        let state = &mut self.processes[process];
        let clock = state.clock(self.now);
        if state.ownership.state(tenants.shards[tenant], clock) != ShardState::Active
            || state.tenants.writing_out.contains_key(&tenant)
        {
            // Not served here; or its activation waits behind the write-out (held, in production).
            return Ok(());
        }
        let now = instant(clock);
        let mut started = false;
        let core = match state.tenants.cores.entry(tenant) {
            std::collections::btree_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::btree_map::Entry::Vacant(entry) => {
                let handed = state.tenants.arrivals.remove(&tenant).and_then(|hand_off| {
                    TenantCore::from_hand_off(tenants.policy.clone(), hand_off, now).map(|core| core.expect("valid"))
                });
                let core = match handed {
                    Some(core) => {
                        self.counters.cores_from_hand_off += 1;
                        core
                    }
                    None => {
                        self.counters.cores_from_store += 1;
                        tenants.core_from_store(tenant, now)
                    }
                };
                started = true;
                state.tenants.quota_months.insert(tenant, Month::of(now));
                let (label, checkpoint) = (state.label.clone(), tenants.store[tenant].map(|c| c.windows[0]));
                self.trace.record(
                    self.step,
                    self.now,
                    format_args!("{label} starts tenant-{tenant} (store checkpoint minute {checkpoint:?})"),
                );
                entry.insert(core)
            }
        };
        let admission = core.admit(now, &request(invocation));
        if started {
            self.taken_over(ProcessId(process), tenant);
        }
        let tenants = &mut self.tenants;
        let state = &mut self.processes[process];
        if admission.verdict.is_err() {
            self.counters.rate_limited += 1;
            return Ok(());
        }
        self.counters.admitted += 1;
        *state.tenants.pending.calls.entry(tenant).or_default() += 1;
        tenants.calls_admitted[tenant] += 1;
        let month = Month::of(now);
        if state.tenants.quota_months.insert(tenant, month).is_some_and(|counted| counted < month) {
            // The core rolled into `month` from zero: what others admitted in it is not counted.
            let before = tenants.invocations.get(&(tenant, month)).copied().unwrap_or(0);
            *tenants.invocations_before_rollover.entry((tenant, month)).or_default() += before;
        }
        if invocation {
            self.counters.invocations_admitted += 1;
            *state.tenants.pending.invocations.entry((tenant, month)).or_default() += 1;
            let admitted = tenants.invocations.entry((tenant, month)).or_default();
            *admitted += 1;
            let admitted = *admitted;
            let lost = tenants.invocations_lost.get(&(tenant, month)).copied().unwrap_or(0);
            let taken_over = tenants.invocations_taken_over.get(&(tenant, month)).copied().unwrap_or(0)
                + tenants.invocations_before_rollover.get(&(tenant, month)).copied().unwrap_or(0);
            if admitted > INVOCATIONS_PER_MONTH + lost + taken_over {
                let by = format!("{} at its clock {} ms (view epoch {})", state.label, clock, state.ownership.epoch());
                let broken = Broken::OverQuota {
                    tenant: tenants.records[tenant].id.as_str().to_string(),
                    month: format!("{}-{:02}", month.year, month.month),
                    admitted,
                    quota: INVOCATIONS_PER_MONTH,
                    crash_allowance: lost,
                    takeover_allowance: taken_over,
                    by,
                };
                return Err(self.violation(broken));
            }
        }
        self.check_usage()?;
        let tenants = &mut self.tenants;
        let state = &mut self.processes[process];
        let minute = admission.rate.expect("rate limits are on").windows[0];
        let window = minute.reset - 60;
        *state.tenants.unflushed.entry((tenant, window)).or_default() += 1;
        let admitted = tenants.admitted.entry((tenant, window)).or_default();
        *admitted += 1;
        let admitted = *admitted;
        let allowance = tenants.crash_allowance.get(&(tenant, window)).copied().unwrap_or(0);
        let takeover_allowance = tenants.takeover_allowance.get(&(tenant, window)).copied().unwrap_or(0);
        if admitted > PER_MINUTE + allowance + takeover_allowance {
            let by = format!("{} at its clock {} ms (view epoch {})", state.label, clock, state.ownership.epoch());
            let broken = Broken::OverLimit {
                tenant: tenants.records[tenant].id.as_str().to_string(),
                window_start: chrono::DateTime::from_timestamp(window, 0)
                    .map_or(window.to_string(), |t| t.to_rfc3339()),
                admitted,
                limit: PER_MINUTE,
                crash_allowance: allowance,
                takeover_allowance,
                by,
            };
            return Err(self.violation(broken));
        }
        Ok(())
    }

    /// Invariant 5 for every tenant: committed + not yet flushed + lost to crashes = admitted.
    fn check_usage(&mut self) -> Result<(), Box<Violation>> {
        for tenant in 0..TENANTS {
            let committed: u64 = self
                .tenants
                .committed
                .range((tenant, Month { year: i32::MIN, month: 0 })..)
                .take_while(|((t, _), _)| *t == tenant)
                .map(|(_, usage)| usage.api_calls)
                .sum();
            let pending: u64 =
                self.processes.iter().map(|p| p.tenants.pending.calls.get(&tenant).copied().unwrap_or(0)).sum();
            let (lost, admitted) = (self.tenants.calls_lost[tenant], self.tenants.calls_admitted[tenant]);
            if committed + pending + lost != admitted {
                let broken = Broken::UsageMiscounted {
                    tenant: self.tenants.records[tenant].id.as_str().to_string(),
                    admitted,
                    committed,
                    pending,
                    lost,
                };
                return Err(self.violation(broken));
            }
        }
        Ok(())
    }

    /// The tenant actors' tick: every running process writes its cores' checkpoints.
    pub(crate) fn tenant_tick(&mut self) {
        self.after(self.config.tenant_tick_ms, Event::TenantTick);
        for state in self.processes.iter_mut().filter(|p| p.life == Life::Running) {
            let tenants = &mut state.tenants;
            for (&tenant, core) in tenants.cores.iter_mut() {
                let flush = core.flush();
                let checkpoint = flush.checkpoint;
                self.counters.stale_checkpoints_kept_out +=
                    u64::from(self.tenants.commit(tenant, flush, &mut tenants.pending));
                if let Some(checkpoint) = checkpoint {
                    self.trace.record(
                        self.step,
                        self.now,
                        format_args!("{} writes tenant-{tenant}'s checkpoint {:?}", state.label, checkpoint.windows[0]),
                    );
                    tenants.unflushed.retain(|(t, _), _| *t != tenant);
                }
            }
        }
    }

    /// `release_unowned` and, if `ship` (the release succeeded), `ship`: every core whose shard is
    /// not `Active` is written out and dropped, and its hand-off sent to the shard's owner in
    /// this process's map.
    pub(crate) fn release_tenants(&mut self, process: ProcessId, ship: bool) {
        let state = &mut self.processes[process.0];
        let clock = state.clock(self.now);
        let now = instant(clock);
        let shards = self.tenants.shards.clone();
        let unowned: Vec<usize> = state
            .tenants
            .cores
            .keys()
            .copied()
            .filter(|&t| state.ownership.state(shards[t], clock) != ShardState::Active)
            .collect();
        let epoch = state.ownership.epoch();
        let mut sends = Vec::new();
        for tenant in unowned {
            let mut core = state.tenants.cores.remove(&tenant).expect("listed");
            let flush = core.flush();
            self.counters.stale_checkpoints_kept_out +=
                u64::from(self.tenants.commit(tenant, flush, &mut state.tenants.pending));
            state.tenants.checkpointed(tenant);
            let hand_off = core.hand_off(now);
            if state.tenants.quota_months.get(&tenant).is_some_and(|counted| *counted < hand_off.month) {
                // The hand-off starts the new month from zero, as a rollover does.
                let before = self.tenants.invocations.get(&(tenant, hand_off.month)).copied().unwrap_or(0);
                *self.tenants.invocations_before_rollover.entry((tenant, hand_off.month)).or_default() += before;
            }
            let label = state.label.clone();
            self.trace.record(self.step, self.now, format_args!("{label} releases tenant-{tenant} (epoch {epoch})"));
            self.credentials.stop(process, tenant);
            self.servers.stop(process, tenant);
            let owner = state.ownership.map().owner(shards[tenant]).cloned();
            let Some(owner) = owner.filter(|owner| ship && *owner != state.id) else { continue };
            let Some(machine) = state.links.get(&owner).cloned() else { continue };
            sends.push((owner, machine, tenant, hand_off));
        }
        let from = state.machine.clone();
        for (to, machine, tenant, hand_off) in sends {
            self.counters.hand_offs_shipped += 1;
            match self.network.send(&mut self.tenants.rng, &from, &machine) {
                Send::Delivered(delays) => {
                    for delay in delays {
                        let event = Event::HandOffArrive {
                            to: to.clone(),
                            machine: machine.clone(),
                            epoch,
                            tenant,
                            hand_off: Box::new(hand_off.clone()),
                        };
                        self.after(delay, event);
                    }
                }
                Send::Lost | Send::Failed { .. } => self.counters.messages_lost += 1,
            }
        }
    }

    /// The router's `hand_off` handler: kept only for a shard still `Acquiring` in that view.
    pub(crate) fn hand_off_arrive(
        &mut self,
        to: NodeId,
        machine: String,
        epoch: u64,
        tenant: usize,
        hand_off: Box<TenantHandOff>,
    ) {
        let target = (0..self.processes.len())
            .find(|&p| self.processes[p].alive() && self.processes[p].machine == machine && self.processes[p].id == to);
        let Some(target) = target else { return };
        let state = &mut self.processes[target];
        if let Life::Frozen { .. } = state.life {
            state.deferred.push(Event::HandOffArrive { to, machine, epoch, tenant, hand_off });
            return;
        }
        let clock = state.clock(self.now);
        let acquiring = state.ownership.epoch() == epoch
            && state.ownership.state(self.tenants.shards[tenant], clock) == ShardState::Acquiring;
        if acquiring && !state.tenants.cores.contains_key(&tenant) {
            self.counters.hand_offs_kept += 1;
            state.tenants.arrivals.insert(tenant, *hand_off);
        } else {
            self.counters.hand_offs_refused += 1;
        }
    }

    /// `forget_hand_offs`: a new view is being installed.
    pub(crate) fn forget_hand_offs(&mut self, process: ProcessId) {
        self.processes[process.0].tenants.arrivals.clear();
    }

    /// `activate_handed_over` at `AllActive`: the kept hand-offs become cores (if served here).
    pub(crate) fn activate_handed_over(&mut self, process: ProcessId) {
        let state = &mut self.processes[process.0];
        let clock = state.clock(self.now);
        let now = instant(clock);
        let arrivals = std::mem::take(&mut state.tenants.arrivals);
        let mut started = Vec::new();
        for (tenant, hand_off) in arrivals {
            if state.ownership.state(self.tenants.shards[tenant], clock) != ShardState::Active
                || state.tenants.cores.contains_key(&tenant)
                || state.tenants.writing_out.contains_key(&tenant)
            {
                state.tenants.arrivals.insert(tenant, hand_off);
                continue;
            }
            let core = match TenantCore::from_hand_off(self.tenants.policy.clone(), hand_off, now) {
                Some(core) => {
                    self.counters.cores_from_hand_off += 1;
                    core.expect("a valid record")
                }
                None => {
                    self.counters.cores_from_store += 1;
                    self.tenants.core_from_store(tenant, now)
                }
            };
            state.tenants.cores.insert(tenant, core);
            state.tenants.quota_months.insert(tenant, Month::of(now));
            started.push(tenant);
        }
        for tenant in started {
            self.taken_over(process, tenant);
        }
    }

    /// `process` started `tenant`'s core: what the others admitted and had not checkpointed is
    /// lost to it (they lost the tenant without a release: paused, or cut off from the table).
    fn taken_over(&mut self, process: ProcessId, tenant: usize) {
        self.start_credentials(process, tenant);
        self.start_servers(process, tenant);
        for (index, state) in self.processes.iter_mut().enumerate() {
            if index == process.0 {
                continue;
            }
            let lost: Vec<((usize, i64), u64)> =
                state.tenants.unflushed.iter().filter(|((t, _), _)| *t == tenant).map(|(k, v)| (*k, *v)).collect();
            for (key, count) in lost {
                *self.tenants.takeover_allowance.entry(key).or_default() += count;
            }
            // Not lost: committed when that process releases the tenant, but the new core's quota
            // starts without them.
            for (&key, &count) in
                state.tenants.pending.invocations.range((tenant, Month { year: i32::MIN, month: 0 })..)
            {
                if key.0 != tenant {
                    break;
                }
                *self.tenants.invocations_taken_over.entry(key).or_default() += count;
            }
            state.tenants.checkpointed(tenant);
        }
    }

    /// `LeaseLost` carried out (`TenantDirectory::write_out_all`): every core leaves the
    /// directory at once, to be written out without a hand-off (finding 19); the kept hand-offs
    /// are dropped.
    pub(crate) fn lease_lost(&mut self, process: ProcessId) {
        let state = &mut self.processes[process.0];
        let cores = std::mem::take(&mut state.tenants.cores);
        let label = state.label.clone();
        self.trace.record(
            self.step,
            self.now,
            format_args!("{label} lost its lease: writes out tenants {:?}", cores.keys().collect::<Vec<_>>()),
        );
        state.tenants.writing_out.extend(cores);
        state.tenants.arrivals.clear();
        let delay = self.rng.between(self.config.release_ms.0, self.config.release_ms.1);
        self.after(delay, Event::WrittenOut { process });
    }

    /// The supervisor stops the cores a lost lease took out, once their refreshes settled.
    pub(crate) fn written_out(&mut self, process: ProcessId) {
        let writing_out: Vec<usize> = self.processes[process.0].tenants.writing_out.keys().copied().collect();
        if self.refreshes_unsettled(process, |tenant| writing_out.contains(&tenant)) {
            self.after(crate::credentials::SETTLE_POLL_MS, Event::WrittenOut { process });
            return;
        }
        let state = &mut self.processes[process.0];
        for (tenant, mut core) in std::mem::take(&mut state.tenants.writing_out) {
            let flush = core.flush();
            self.counters.stale_checkpoints_kept_out +=
                u64::from(self.tenants.commit(tenant, flush, &mut state.tenants.pending));
            state.tenants.checkpointed(tenant);
            self.credentials.stop(process, tenant);
            self.servers.stop(process, tenant);
            self.counters.cores_written_out_unleased += 1;
        }
    }

    /// A release queued behind a write-out waits for it, and then for the refreshes out of the
    /// actors it stops.
    pub(crate) fn release_must_wait(&mut self, process: ProcessId) -> bool {
        let state = &self.processes[process.0];
        if !state.tenants.writing_out.is_empty() {
            return true;
        }
        let clock = state.clock(self.now);
        let not_active: Vec<bool> = self
            .tenants
            .shards
            .iter()
            .map(|shard| state.ownership.state(*shard, clock) != ShardState::Active)
            .collect();
        self.refreshes_unsettled(process, |tenant| not_active[tenant])
    }

    /// A graceful exit: every actor stops and writes its state out.
    pub(crate) fn write_out_tenants(&mut self, process: ProcessId) {
        self.credentials.drop_process(process);
        self.servers.drop_process(process);
        let state = &mut self.processes[process.0];
        let writing_out = std::mem::take(&mut state.tenants.writing_out);
        for (tenant, mut core) in std::mem::take(&mut state.tenants.cores).into_iter().chain(writing_out) {
            let flush = core.flush();
            self.counters.stale_checkpoints_kept_out +=
                u64::from(self.tenants.commit(tenant, flush, &mut state.tenants.pending));
        }
        state.tenants = Default::default();
    }

    /// A crash: what the cores admitted since their last checkpoint is lost (the crash bound).
    pub(crate) fn lose_tenants(&mut self, process: ProcessId) {
        self.credentials.drop_process(process);
        self.servers.drop_process(process);
        let state = std::mem::take(&mut self.processes[process.0].tenants);
        for (key, count) in state.unflushed {
            *self.tenants.crash_allowance.entry(key).or_default() += count;
        }
        for (tenant, calls) in state.pending.calls {
            self.tenants.calls_lost[tenant] += calls;
        }
        for (key, count) in state.pending.invocations {
            *self.tenants.invocations_lost.entry(key).or_default() += count;
        }
    }
}
