//! `Membership`: which nodes this node believes are in the cluster, decided from the shared table.
//!
//! The Orleans design: a shared membership table (kept in Redis by the shell) holds a view epoch that
//! only grows and one [`MemberRecord`] per node. Each node heartbeats into its own record on every
//! [`MembershipInput::Tick`], reads the whole table back, proposes to remove members that stopped
//! heartbeating, and believes exactly what the table says at the epoch it read. This module decides
//! all of that; it does not read clocks or touch the table: the shell passes the time, carries out the
//! [`MembershipEffect`]s in order, and answers [`MembershipEffect::ReadTable`] with
//! [`MembershipInput::TableRead`] or [`MembershipInput::TableUnreachable`].
//!
//! Decisions:
//! - Join: the first tick writes our record as `Joining` with an epoch bump; once a failure timeout
//!   has passed since a read first showed it, a tick writes it as `Up` (another bump) and the view
//!   that shows it hands the node its shards. The wait is what makes a fresh process safe: any
//!   member it has never seen (one whose record a reset of the table lost, or an earlier
//!   incarnation of itself) has run out of lease by then, while the table it watched during the
//!   wait names every member it must ask to release.
//! - Watching: only time between reads counts as watching the table. When the table is
//!   unreachable, or no read came for a lease (this node was paused, or cut off), the join's wait
//!   and every member's silence count again from the next read: meanwhile a member may have
//!   heartbeated into writes a failover then lost, or joined, served and been lost with a reset
//!   of the table, unseen. For the latter, after such a gap in the reads, shards acquired in
//!   views installed within a failure timeout wait until then, as for a departure not watched.
//! - A view is the table at one epoch, verbatim (statuses, addresses), and changes only when the epoch
//!   grows. Every node that read epoch `e` therefore holds the same view `e` and the same shard map; a
//!   member found dead stays in the view until its removal is committed (a new epoch) and read back.
//!   The price: a published view may contain a member already known to be dead, for one round.
//! - Shard owners are the `Up` members. `Draining` members stay in the view (their address is needed
//!   to hand their shards off and to forward to them) but own nothing; `Joining` and `Down` own
//!   nothing either.
//! - Dead: a member other than us whose heartbeat is older than `failure_timeout_ms` by our clock
//!   (one from the future counts as fresh) AND whose record we have watched stay unchanged for
//!   `failure_timeout_ms` of our own time. The second condition makes clock skew harmless: a node
//!   whose clock runs ahead would otherwise evict every other node on each read, and a node whose clock
//!   lags would be evicted by all the others over and over; only elapsed local time counts.
//! - Removal is proposed once per dead member per epoch, as a compare-and-set on the epoch read.
//! - A table read older than the latest one accepted (a slow answer, a lagging replica) is ignored,
//!   so views never go back.
//! - An unreachable table changes the view in nothing, but the node's *lease* runs out: a node
//!   admits only while the table's copy of its own heartbeat is younger than the failure timeout
//!   minus one heartbeat interval ([`Membership::lease_until_ms`]), counting from the older of its
//!   last two heartbeats read back: a failover can lose the latest before any peer read it, and
//!   the peers then count from the one before (they read every interval). The others remove a
//!   member only after watching its heartbeat stay unchanged for a whole failure timeout of their
//!   own time, so a node cut off from the table stops admitting at least one interval before
//!   anyone takes its shards.
//!   That holds for the heartbeat a peer watched, not for one we write after its read and before
//!   its removal (a compare-and-set on the epoch, which heartbeats do not bump) lands. So once our
//!   heartbeat as last read is over a failure timeout old (a pause, a cut, slow writes), our
//!   writes bump the epoch, which fails such a removal, and only a read that shows one of them
//!   renews the lease.
//! - Incarnations: a restarted node (or a second process given the same node id) writes a record
//!   with a newer `started_ms`. The newest incarnation wins; an older one that reads it is
//!   [`Membership::is_superseded`]: it stops heartbeating and its lease runs out.
//! - A table whose epoch went backwards (Redis flushed, or failed over to a replica that lost the
//!   last writes) is a reset, not a slow answer: the node's lease is not renewed by it, and its next
//!   heartbeat rejoins with a bump to an epoch above every one it has seen, so views keep moving
//!   forward and every member is re-announced. So is a table at our view's epoch with another
//!   member set ([`View::fingerprint`]): a reset whose epoch came back up to ours.
//! - Shards of a member that left the view without having been watched dead by this node (a table
//!   reset lost its record, it was replaced by a newer incarnation before anyone saw it stop, or this
//!   node has no earlier view at all) may still be admitted by that member until its lease runs
//!   out: [`Membership::takeover_not_before_ms`] says until when a new owner must wait for them.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::shard_map::{NodeId, ShardMap};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeStatus {
    /// Started; in the table, but owns no shard until it has watched the cluster for one failure
    /// timeout.
    Joining,
    /// Owns shards.
    Up,
    /// Handing its shards off before it stops; owns none.
    Draining,
    /// Left gracefully: handed everything off and stopped admitting; owns none.
    Down,
}

/// One node's row in the membership table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberRecord {
    pub id: NodeId,
    pub http_addr: String,
    pub cluster_addr: String,
    pub status: NodeStatus,
    /// Milliseconds since the Unix epoch of the last heartbeat (the writer's clock).
    pub heartbeat_ms: i64,
    /// When this incarnation of the node started (ms); a restarted node has a new one.
    pub started_ms: i64,
}

impl MemberRecord {
    /// Whether this is the same incarnation of the same node as `other`.
    fn same_incarnation(&self, other: &MemberRecord) -> bool {
        self.id == other.id && self.started_ms == other.started_ms && self.cluster_addr == other.cluster_addr
    }

    /// Of two incarnations of one node id, the newer (later start; the address breaks a tie).
    fn newer_than(&self, other: &MemberRecord) -> bool {
        (self.started_ms, &self.cluster_addr) > (other.started_ms, &other.cluster_addr)
    }
}

/// The shared table as read: its epoch and every member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipTable {
    pub epoch: u64,
    pub members: Vec<MemberRecord>,
}

/// What this node currently believes: the members that count, with the epoch of the table they came
/// from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub epoch: u64,
    /// Sorted by id.
    pub members: Vec<MemberRecord>,
}

impl View {
    fn of(table: MembershipTable) -> Self {
        let mut members = table.members;
        members.sort_by(|a, b| a.id.cmp(&b.id));
        Self { epoch: table.epoch, members }
    }

    /// Shard owners: the `Up` members.
    pub fn shard_map(&self) -> ShardMap {
        let owners = self.members.iter().filter(|member| member.status == NodeStatus::Up);
        ShardMap::new(self.epoch, owners.map(|member| member.id.clone()))
    }

    pub fn member(&self, id: &NodeId) -> Option<&MemberRecord> {
        self.members.iter().find(|member| member.id == *id)
    }

    /// Whether `members` (as read) are this view's members, each the same incarnation with the
    /// same status: what [`View::fingerprint`] names besides the epoch.
    fn same_members(&self, members: &[MemberRecord]) -> bool {
        members.len() == self.members.len()
            && members.iter().all(|member| {
                self.member(&member.id)
                    .is_some_and(|ours| ours.same_incarnation(member) && ours.status == member.status)
            })
    }

    /// Names this view beyond its epoch: after a reset of the table (a failover that lost a
    /// bump) one epoch number can stand for two different member sets, and nodes holding those
    /// must not take each other's confirmations. SHA-256 over what decides ownership: the epoch
    /// and each member's id, incarnation and status.
    pub fn fingerprint(&self) -> u64 {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        hash.update(self.epoch.to_be_bytes());
        for member in &self.members {
            hash.update(member.id.as_str().as_bytes());
            hash.update([0]);
            hash.update(member.started_ms.to_be_bytes());
            hash.update(member.cluster_addr.as_bytes());
            hash.update([0, member.status as u8]);
        }
        let digest = hash.finalize();
        u64::from_be_bytes(digest[..8].try_into().expect("a SHA-256 digest has 8 bytes"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MembershipConfig {
    /// How often the shell ticks.
    pub heartbeat_interval_ms: i64,
    /// How long a member may go without heartbeating before it is removed.
    pub failure_timeout_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadMembershipConfig {
    #[error("heartbeat interval must be positive, got {0} ms")]
    HeartbeatInterval(i64),
    #[error(
        "failure timeout ({timeout_ms} ms) must be at least {MIN_HEARTBEATS_PER_TIMEOUT} heartbeat intervals ({interval_ms} ms), or one late heartbeat evicts a live node"
    )]
    FailureTimeout { timeout_ms: i64, interval_ms: i64 },
}

/// The failure timeout spans at least this many heartbeat intervals, so a live member that misses
/// one or two heartbeats (a slow write, a brief blip) is not removed, and a lease (counted from
/// our heartbeat before the latest, less an interval of margin) outlasts the next read.
const MIN_HEARTBEATS_PER_TIMEOUT: i64 = 4;

impl MembershipConfig {
    /// For the configuration loader: the values that cannot work.
    pub fn check(&self) -> Result<(), BadMembershipConfig> {
        if self.heartbeat_interval_ms <= 0 {
            return Err(BadMembershipConfig::HeartbeatInterval(self.heartbeat_interval_ms));
        }
        if self.failure_timeout_ms < self.heartbeat_interval_ms.saturating_mul(MIN_HEARTBEATS_PER_TIMEOUT) {
            return Err(BadMembershipConfig::FailureTimeout {
                timeout_ms: self.failure_timeout_ms,
                interval_ms: self.heartbeat_interval_ms,
            });
        }
        Ok(())
    }
}

/// What happened, as the shell tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipInput {
    /// Periodic, every heartbeat interval.
    Tick,
    /// The shell read the table (answer to [`MembershipEffect::ReadTable`]).
    TableRead(MembershipTable),
    /// The shell could not reach the table.
    TableUnreachable,
}

/// What the shell must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipEffect {
    /// Write our own record, bumping the epoch in the same atomic step when `bump_epoch` (joining,
    /// rejoining, a status change; repeated until a read shows the record). Without `bump_epoch`
    /// (a heartbeat) the shell must only update a record that is still there: re-creating one that
    /// was removed meanwhile, without a bump, would change the member set under an epoch other
    /// nodes have already read. The next tick rejoins with a bump instead. A bump sets the epoch to
    /// at least `min_epoch` (after a reset: above every epoch this node has seen).
    WriteSelf { record: MemberRecord, bump_epoch: bool, min_epoch: u64 },
    /// Read the whole table.
    ReadTable,
    /// Remove these members if the epoch is still `expected_epoch`, and bump the epoch (atomic
    /// compare-and-set in the shell). A failed compare is not reported: the next read decides again.
    RemoveMembers { ids: Vec<NodeId>, expected_epoch: u64 },
    /// The view changed: the shell installs it (routers switch shard maps).
    ViewChanged(View),
}

/// A member's record as we last saw it, since when (our clock) it has looked like that, and when
/// we last saw it at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SeenHeartbeat {
    started_ms: i64,
    heartbeat_ms: i64,
    unchanged_since_ms: i64,
    last_seen_ms: i64,
}

/// The membership decisions of one node.
#[derive(Debug, Clone)]
pub struct Membership {
    config: MembershipConfig,
    /// Our record as we want the table to show it.
    me: MemberRecord,
    reachable: bool,
    /// Epoch of the latest table read accepted.
    latest_epoch: Option<u64>,
    /// Our incarnation's status in that table; `None` when it is not there.
    status_in_table: Option<NodeStatus>,
    view: Option<View>,
    seen: BTreeMap<NodeId, SeenHeartbeat>,
    /// Members whose removal was proposed at `removals_epoch`.
    removals_epoch: u64,
    removals_proposed: BTreeSet<NodeId>,
    /// Until when (our clock) this node may admit: see the module's notes on the lease.
    lease_until_ms: i64,
    /// A newer incarnation of our node id is in the table.
    superseded: bool,
    /// The table went backwards since our last accepted read: rejoin above `latest_epoch`.
    reset: bool,
    /// Shards coming from members that left without being watched dead (or came and went while
    /// we read nothing) wait until then.
    takeover_not_before_ms: i64,
    /// When a `Joining` node becomes `Up`: one failure timeout after the first read that showed
    /// it joining, counted again after the table was unreachable or the reads stopped.
    up_after_ms: Option<i64>,
    /// When (our clock) the latest table read came back.
    last_read_ms: Option<i64>,
    /// Our incarnation's heartbeat in the latest read that showed our record.
    own_heartbeat_seen_ms: Option<i64>,
    /// The one such reads showed before it (they change at each of our heartbeats).
    own_heartbeat_before_ms: Option<i64>,
    /// Our heartbeat went unseen for over a failure timeout: a peer may have watched it stay
    /// unchanged and sent our removal, which may still land. Our writes bump the epoch (which
    /// fails such a removal) until a read shows one of them, and the lease waits for that read.
    rebump: bool,
    /// The heartbeat of the first write that bumped the epoch for `rebump`.
    rebump_heartbeat_ms: Option<i64>,
}

impl Membership {
    /// `me` is this incarnation's record: status `Joining`, a fresh `started_ms`.
    pub fn new(me: MemberRecord, config: MembershipConfig) -> Self {
        Self {
            config,
            me,
            reachable: false,
            latest_epoch: None,
            status_in_table: None,
            view: None,
            seen: BTreeMap::new(),
            removals_epoch: 0,
            removals_proposed: BTreeSet::new(),
            lease_until_ms: i64::MIN,
            superseded: false,
            reset: false,
            takeover_not_before_ms: i64::MIN,
            up_after_ms: None,
            last_read_ms: None,
            own_heartbeat_seen_ms: None,
            own_heartbeat_before_ms: None,
            rebump: false,
            rebump_heartbeat_ms: None,
        }
    }

    pub fn handle(&mut self, now_ms: i64, input: MembershipInput) -> Vec<MembershipEffect> {
        match input {
            MembershipInput::Tick => self.tick(now_ms),
            MembershipInput::TableRead(table) => self.table_read(now_ms, table),
            MembershipInput::TableUnreachable => {
                self.reachable = false;
                // Nobody could heartbeat while the table was down: once it is back, every member
                // gets a full timeout to write again before it counts as dead.
                self.watch_anew();
                Vec::new()
            }
        }
    }

    /// `None` until the first table read that contains us.
    pub fn view(&self) -> Option<&View> {
        self.view.as_ref()
    }

    /// Our own record is in the latest table read, with status `Up`.
    pub fn is_joined(&self) -> bool {
        self.status_in_table == Some(NodeStatus::Up)
    }

    /// The last attempt to read the table succeeded (false before the first read).
    pub fn table_reachable(&self) -> bool {
        self.reachable
    }

    /// This node may admit requests until then (our clock, ms); `i64::MIN` before the first read
    /// that shows our own record, and never renewed once superseded.
    pub fn lease_until_ms(&self) -> i64 {
        self.lease_until_ms
    }

    /// A newer incarnation of our node id owns the record: this process must stop serving.
    pub fn is_superseded(&self) -> bool {
        self.superseded
    }

    /// Shards this node acquires in its current view may be activated no earlier than this (our
    /// clock, ms), for any previous owner that left the view without being watched dead (or that
    /// came and went while this node read nothing) may admit until its lease runs out.
    pub fn takeover_not_before_ms(&self) -> i64 {
        self.takeover_not_before_ms
    }

    /// How long after its heartbeat a node's lease lasts: the failure timeout, less one heartbeat
    /// interval of margin for the gap between a lease check and the admission it lets through.
    fn lease_ms(&self) -> i64 {
        self.config.failure_timeout_ms - self.config.heartbeat_interval_ms
    }

    /// Stop owning shards: our status becomes `Draining` (and stays so). The view that shows it moves
    /// our shards to the `Up` members. Returns the write (with the last tick's heartbeat, and a bump
    /// unless the table already shows us draining) and a read, so the view follows without waiting
    /// for the next tick.
    pub fn start_draining(&mut self) -> Vec<MembershipEffect> {
        if self.superseded {
            return Vec::new();
        }
        self.me.status = NodeStatus::Draining;
        vec![self.write_self(), MembershipEffect::ReadTable]
    }

    /// Leave gracefully, once this node has handed everything off and stopped admitting: our
    /// status becomes `Down` (with a bump), which tells the others that our departure needs no
    /// wait for a lease to run out; they then remove the record at once.
    pub fn leave(&mut self) -> Vec<MembershipEffect> {
        if self.superseded {
            return Vec::new();
        }
        self.me.status = NodeStatus::Down;
        self.lease_until_ms = i64::MIN;
        vec![self.write_self(), MembershipEffect::ReadTable]
    }

    fn tick(&mut self, now_ms: i64) -> Vec<MembershipEffect> {
        if self.superseded || self.me.status == NodeStatus::Down {
            return Vec::new();
        }
        if self.me.status == NodeStatus::Joining
            && self.up_after_ms.is_some_and(|up_after| now_ms >= up_after)
            && self.watching(now_ms)
        {
            self.me.status = NodeStatus::Up;
        }
        self.me.heartbeat_ms = now_ms;
        if self.me.status != NodeStatus::Joining && self.heartbeat_unseen_too_long(now_ms) {
            self.rebump = true;
        }
        vec![self.write_self(), MembershipEffect::ReadTable]
    }

    /// Our record, with a bump unless the latest table already shows us with this status.
    fn write_self(&mut self) -> MembershipEffect {
        let reset = self.reset && self.latest_epoch.is_some();
        if self.rebump {
            self.rebump_heartbeat_ms.get_or_insert(self.me.heartbeat_ms);
        }
        MembershipEffect::WriteSelf {
            record: self.me.clone(),
            bump_epoch: reset || self.rebump || self.status_in_table != Some(self.me.status),
            min_epoch: if reset { self.latest_epoch.map_or(0, |latest| latest + 1) } else { 0 },
        }
    }

    /// Another node holds a different view under our epoch (see [`View::fingerprint`]): the
    /// table was reset under us. Our next heartbeat rejoins above every epoch seen, which gives
    /// every node a view no other can be confused with.
    pub fn view_conflict(&mut self) {
        self.reset = true;
    }

    /// Whether our heartbeat in the table, as last read, is over a failure timeout old at `now_ms`:
    /// a peer may have watched it unchanged that long (see `rebump`).
    fn heartbeat_unseen_too_long(&self, now_ms: i64) -> bool {
        self.own_heartbeat_seen_ms.is_some_and(|seen| now_ms.saturating_sub(seen) > self.config.failure_timeout_ms)
    }

    /// Whether the latest read is at most a lease old (see the module's notes on watching).
    fn watching(&self, now_ms: i64) -> bool {
        self.last_read_ms.is_some_and(|last| now_ms.saturating_sub(last) <= self.lease_ms())
    }

    /// Forget what the reads showed so far: the silence of each member and the time our join
    /// has waited count again from the next read.
    fn watch_anew(&mut self) {
        self.seen.clear();
        self.up_after_ms = None;
    }

    fn table_read(&mut self, now_ms: i64, table: MembershipTable) -> Vec<MembershipEffect> {
        self.reachable = true;
        if !self.watching(now_ms) {
            self.watch_anew();
            // A member that came and went unseen may still admit until its lease runs out.
            self.takeover_not_before_ms = self.takeover_not_before_ms.max(now_ms + self.config.failure_timeout_ms);
        }
        self.last_read_ms = Some(now_ms);
        // A newer incarnation of our node id supersedes us whatever the epoch of the read that
        // shows it: a read after a reset may be the only one that does (a second reset can lose
        // its record, and our rejoin would then write over it).
        let newer_self = table.members.iter().any(|member| member.id == self.me.id && member.newer_than(&self.me));
        if newer_self && !self.superseded {
            self.superseded = true;
            self.lease_until_ms = i64::MIN;
        }
        if self.latest_epoch.is_some_and(|latest| table.epoch < latest) {
            // Views never go back; our next heartbeat rejoins above the epochs seen.
            self.reset = true;
            return Vec::new();
        }
        if let Some(view) = &self.view
            && table.epoch == view.epoch
            && !view.same_members(&table.members)
        {
            // The same epoch with another member set: the table was reset and its epoch came back
            // to ours (a failover to a replica that lost our bump, then another node's bump). It
            // renews nothing, and our next heartbeat rejoins above it, as after any reset.
            self.reset = true;
            return Vec::new();
        }
        if self.latest_epoch.is_some_and(|latest| table.epoch > latest) {
            self.reset = false;
        }
        self.latest_epoch = Some(table.epoch);
        let mine = table.members.iter().find(|member| member.same_incarnation(&self.me));
        self.status_in_table = mine.map(|member| member.status);
        if self.me.status == NodeStatus::Joining && self.status_in_table == Some(NodeStatus::Joining) {
            self.up_after_ms.get_or_insert(now_ms + self.config.failure_timeout_ms);
        }
        if let Some(mine) = mine {
            // A peer decides a removal on a read that showed our previous heartbeat unchanged for
            // a failure timeout; had that read come just before this heartbeat landed, the removal
            // lands after it (the epoch is the same): this heartbeat vouches for nothing. Only one
            // written with a bump does, for such a removal then fails.
            let heartbeat = mine.heartbeat_ms;
            if self.me.status != NodeStatus::Joining
                && heartbeat != self.own_heartbeat_seen_ms.unwrap_or(heartbeat)
                && self.heartbeat_unseen_too_long(now_ms)
            {
                self.rebump = true;
            }
            if self.rebump && self.rebump_heartbeat_ms.is_some_and(|bumped| heartbeat >= bumped) {
                self.rebump = false;
                self.rebump_heartbeat_ms = None;
            }
            if self.own_heartbeat_seen_ms != Some(heartbeat) {
                self.own_heartbeat_before_ms = self.own_heartbeat_seen_ms.replace(heartbeat);
            }
        }
        // A failover can lose the heartbeat this read shows before any peer read it; the peers
        // then count our silence from the one before, which they did read (they read every
        // interval). So the lease runs from the older of the two, and a table that went back to
        // an older heartbeat of ours shortens it.
        let vouched =
            self.own_heartbeat_before_ms.zip(self.own_heartbeat_seen_ms).map(|(before, seen)| before.min(seen));
        if let Some(mine) = mine
            && let Some(vouched) = vouched
            && !self.superseded
            && !self.rebump
            && matches!(mine.status, NodeStatus::Up | NodeStatus::Draining)
            && self.me.status != NodeStatus::Down
        {
            self.lease_until_ms = self.lease_until_ms.max(vouched.saturating_add(self.lease_ms()));
        }
        let unwatched_departure = self.unwatched_departure(&table.members);
        self.watch_heartbeats(now_ms, &table.members);

        let dead: Vec<NodeId> = table
            .members
            .iter()
            .filter(|member| self.is_dead(now_ms, member))
            .map(|member| member.id.clone())
            .collect();
        let removal = self.propose_removal(table.epoch, dead);

        let mut effects = Vec::new();
        let newer = match &self.view {
            Some(view) => table.epoch > view.epoch,
            None => self.status_in_table.is_some(),
        };
        if newer {
            if unwatched_departure {
                self.takeover_not_before_ms = self.takeover_not_before_ms.max(now_ms + self.config.failure_timeout_ms);
            }
            let view = View::of(table);
            self.view = Some(view.clone());
            effects.push(MembershipEffect::ViewChanged(view));
        }
        effects.extend(removal);
        effects
    }

    /// Whether a member of our current view is gone from `members` (or there as another
    /// incarnation) although we neither watched it go silent for a failure timeout nor saw it
    /// leave (`Down`): it may still be admitting until its lease runs out. Silence counts only
    /// between two reads that both showed the record: had this node been paused meanwhile, the
    /// member may have heartbeated in the gap, unseen.
    fn unwatched_departure(&self, members: &[MemberRecord]) -> bool {
        let Some(view) = &self.view else { return false };
        view.members.iter().filter(|old| old.id != self.me.id && old.status != NodeStatus::Down).any(|old| {
            let still_there = members.iter().any(|member| member.same_incarnation(old));
            let watched_dead = self.seen.get(&old.id).is_some_and(|seen| {
                seen.started_ms == old.started_ms
                    && seen.last_seen_ms.saturating_sub(seen.unchanged_since_ms) > self.config.failure_timeout_ms
            });
            !still_there && !watched_dead
        })
    }

    fn watch_heartbeats(&mut self, now_ms: i64, members: &[MemberRecord]) {
        let previous = std::mem::take(&mut self.seen);
        for member in members.iter().filter(|member| member.id != self.me.id) {
            let unchanged_since_ms = match previous.get(&member.id) {
                Some(seen) if seen.started_ms == member.started_ms && seen.heartbeat_ms == member.heartbeat_ms => {
                    seen.unchanged_since_ms
                }
                _ => now_ms,
            };
            let seen = SeenHeartbeat {
                started_ms: member.started_ms,
                heartbeat_ms: member.heartbeat_ms,
                unchanged_since_ms,
                last_seen_ms: now_ms,
            };
            self.seen.insert(member.id.clone(), seen);
        }
    }

    /// Silent for a failure timeout, or gone (`Down`: left gracefully, nothing to wait for).
    fn is_dead(&self, now_ms: i64, member: &MemberRecord) -> bool {
        let timeout = self.config.failure_timeout_ms;
        member.id != self.me.id
            && (member.status == NodeStatus::Down
                || now_ms.saturating_sub(member.heartbeat_ms) > timeout
                    && self
                        .seen
                        .get(&member.id)
                        .is_some_and(|seen| now_ms.saturating_sub(seen.unchanged_since_ms) > timeout))
    }

    /// A removal of the `dead` members not yet proposed at `epoch`.
    fn propose_removal(&mut self, epoch: u64, dead: Vec<NodeId>) -> Option<MembershipEffect> {
        if epoch != self.removals_epoch {
            self.removals_epoch = epoch;
            self.removals_proposed.clear();
        }
        let ids: Vec<NodeId> = dead.into_iter().filter(|id| self.removals_proposed.insert(id.clone())).collect();
        (!ids.is_empty()).then_some(MembershipEffect::RemoveMembers { ids, expected_epoch: epoch })
    }
}

#[cfg(test)]
#[path = "membership_tests.rs"]
mod tests;
