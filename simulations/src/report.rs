//! What a run reports: on success its counts (so tests can tell what a scenario went through),
//! on a broken invariant the step, the time and the last events, with the command that replays it.

use std::fmt;

use connectors_cluster::shard_map::ShardId;

/// Counts of what happened during a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub processes_started: u64,
    pub crashes: u64,
    pub freezes: u64,
    pub views_installed: u64,
    pub confirmations: u64,
    pub confirmations_dropped: u64,
    pub messages_lost: u64,
    pub release_failures: u64,
    pub removals_committed: u64,
    pub superseded: u64,
    pub drains_handed_off: u64,
    pub drains_timed_out: u64,
    pub left: u64,
    pub table_resets: u64,
    /// Release asks answered `Conflict` (one epoch, two views), counted at both ends.
    pub view_conflicts: u64,
    /// Full checks of invariant 1 (every shard of every live process).
    pub exclusivity_checks: u64,
    /// Client requests (tenant load) sent, admitted by a tenant core, and refused by one.
    pub requests: u64,
    pub admitted: u64,
    pub rate_limited: u64,
    /// Tenant cores started from the store, and from a previous owner's hand-off.
    pub cores_from_store: u64,
    pub cores_from_hand_off: u64,
    /// Hand-offs shipped at a release, kept by the new owner, and refused by it.
    pub hand_offs_shipped: u64,
    pub hand_offs_kept: u64,
    pub hand_offs_refused: u64,
    /// OAuth refreshes sent to the provider, and answered with new tokens (invariant 4).
    pub refreshes_sent: u64,
    pub refreshes_succeeded: u64,
    /// Tool invocations admitted (charged to the monthly quota).
    pub invocations_admitted: u64,
    /// Times an actor found the stored credential other than it expected and adopted it instead
    /// of writing or sending (the fix of finding 13 at work).
    pub credentials_adopted: u64,
    /// Looks of a release at its actors that found a refresh still out (`TenantMsg::Settle`),
    /// one every 5 ms of waiting.
    pub releases_settling: u64,
    /// Stale checkpoint writes whose lower counts the store's merge kept out (finding 10).
    pub stale_checkpoints_kept_out: u64,
    /// Cores a lost lease wrote out without a hand-off (finding 19).
    pub cores_written_out_unleased: u64,
    /// Custom-server requests acknowledged to the tenant, and instances the deployer started.
    pub server_requests_acknowledged: u64,
    pub deploys: u64,
    /// Writes of server records refused because the store changed since the actor's last look.
    pub stale_server_writes_refused: u64,
}

/// A process began serving the shards it had been acquiring (an `AllActive` effect).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activation {
    pub at_ms: i64,
    /// `n1#0`: node id and incarnation.
    pub process: String,
    pub epoch: u64,
    pub shards: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub steps: u64,
    pub quiet_since_ms: i64,
    /// When every shard was served by exactly one node of one agreed view.
    pub converged_at_ms: i64,
    pub final_epoch: u64,
    pub counters: Counters,
    pub activations: Vec<Activation>,
    /// The last events, as many as `SimConfig::trace_lines`.
    pub trace: Vec<String>,
}

impl Report {
    /// When a process of node `node` (`n3`) first began serving shards.
    pub fn first_activation_of(&self, node: &str) -> Option<i64> {
        self.activations
            .iter()
            .find(|activation| activation.process.split('#').next() == Some(node))
            .map(|activation| activation.at_ms)
    }
}

/// One process serving a shard, as a violation shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub process: String,
    pub epoch: u64,
    pub clock_ms: i64,
    pub lease_until_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Broken {
    /// Invariant 1: two nodes admit for one shard at the same instant.
    TwoActive { shard: ShardId, first: Holder, second: Holder },
    /// Invariant 6: a tenant admitted more tool invocations in a month than its quota allows
    /// (plus what crashed processes, and processes that lost the tenant without a release, had
    /// not committed).
    OverQuota {
        tenant: String,
        month: String,
        admitted: u64,
        quota: u64,
        crash_allowance: u64,
        takeover_allowance: u64,
        by: String,
    },
    /// Invariant 5: the API calls committed, not yet flushed and lost to crashes do not add up to
    /// those admitted (usage lost or counted twice).
    UsageMiscounted { tenant: String, admitted: u64, committed: u64, pending: u64, lost: u64 },
    /// Invariant 3: after the faults stopped, the cluster did not serve every shard in time.
    NotLive { quiet_since_ms: i64, state: String },
    /// Invariant 4: a refresh token the provider had consumed (answered with new tokens) was
    /// sent to it again.
    RefreshTokenReused { tenant: String, generation: u64, first_by: String, first_at_ms: i64, again_by: String },
    /// Invariant 7: a write of a tenant's server records undid a create or delete the tenant saw
    /// acknowledged.
    RequestUndone { tenant: String, server: String, acknowledged: String, stored: String, by: String },
    /// Invariant 2: a tenant admitted more requests in one minute window than its limit allows
    /// (plus what crashed nodes admitted since their last checkpoint).
    OverLimit {
        tenant: String,
        window_start: String,
        admitted: u64,
        limit: u64,
        crash_allowance: u64,
        takeover_allowance: u64,
        by: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub broken: Broken,
    pub step: u64,
    pub at_ms: i64,
    pub scenario: String,
    pub replay: String,
    pub trace: Vec<String>,
}

impl Violation {
    pub fn is_two_active(&self) -> bool {
        matches!(self.broken, Broken::TwoActive { .. })
    }
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (view epoch {}, its clock {} ms, lease until {} ms)",
            self.process, self.epoch, self.clock_ms, self.lease_until_ms
        )
    }
}

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Broken::TwoActive { shard, first, second } => {
                write!(f, "invariant 1 broken: shard {shard} is Active on two nodes at once:\n  {first}\n  {second}")
            }
            Broken::OverLimit { tenant, window_start, admitted, limit, crash_allowance, takeover_allowance, by } => {
                write!(
                    f,
                    "invariant 2 broken: tenant {tenant} admitted {admitted} requests in the minute from {window_start} \
                     (limit {limit}, crash allowance {crash_allowance}, takeover allowance {takeover_allowance}); \
                     the last by {by}"
                )
            }
            Broken::OverQuota { tenant, month, admitted, quota, crash_allowance, takeover_allowance, by } => {
                write!(
                    f,
                    "invariant 6 broken: tenant {tenant} admitted {admitted} tool invocations in {month} (quota \
                     {quota}, crash allowance {crash_allowance}, takeover allowance {takeover_allowance}); the last by {by}"
                )
            }
            Broken::UsageMiscounted { tenant, admitted, committed, pending, lost } => {
                write!(
                    f,
                    "invariant 5 broken: tenant {tenant} was admitted {admitted} API calls, but {committed} are \
                     committed, {pending} wait in live cores and {lost} were lost to crashes"
                )
            }
            Broken::RefreshTokenReused { tenant, generation, first_by, first_at_ms, again_by } => {
                write!(
                    f,
                    "invariant 4 broken: {tenant}'s refresh token generation {generation} reached the provider again \
                     from {again_by}, after the provider consumed it (sent by {first_by}, received at {first_at_ms} ms)"
                )
            }
            Broken::RequestUndone { tenant, server, acknowledged, stored, by } => {
                write!(
                    f,
                    "invariant 7 broken: {tenant}'s {acknowledged} of server `{server}` was acknowledged, and a write \
                     by {by} left the store holding {stored}"
                )
            }
            Broken::NotLive { quiet_since_ms, state } => {
                write!(
                    f,
                    "invariant 3 broken: faults stopped at {quiet_since_ms} ms but the cluster is not serving every shard:\n  {state}"
                )
            }
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.broken)?;
        writeln!(f, "at step {} (t = {} ms) of scenario: {}", self.step, self.at_ms, self.scenario)?;
        writeln!(f, "replay: {}", self.replay)?;
        writeln!(f, "last events:")?;
        for line in &self.trace {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}
