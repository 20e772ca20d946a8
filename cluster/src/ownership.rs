//! `ShardOwnership`: which shards this node serves, view after view — the fence that keeps two
//! nodes from admitting requests for one tenant, and the hand-off of shards between them.
//!
//! A shard this node owned in the previous view and still owns stays active. A shard newly
//! assigned to it is only *acquiring* until
//! - every other member of the new view (owners, draining and joining members alike) has
//!   confirmed that it holds the very same view and has stopped its actors of shards it does not
//!   own in it, writing their state out for the new owner; a member at another epoch cannot
//!   confirm (what it released is decided by another shard map), so it is asked again;
//! - and the time is past the view's *takeover* time: a previous owner that left the view without
//!   being watched dead may admit until its lease runs out (see `Membership`).
//!
//! A member that a removal took out of the view after it was watched dead is not asked: its lease
//! ran out before it was removed, and the new owner starts from its last checkpoint. Serving also
//! needs the node's own lease ([`ShardOwnership::state`]): cut off from the membership table, a
//! node stops admitting before the others may take its shards.
//!
//! A node whose lease ran out forgets what it served and which peers had confirmed: it acquires
//! its shards again, asking every member, before it serves them (it cannot know which views it
//! missed), and its tenants' state is written out, never handed over: the others may have moved
//! past it meanwhile.
//!
//! A node that gives shards up owes their new owners its confirmation; [`ShardOwnership::handed_off`]
//! tells a draining node when it has nobody left to answer and may leave.
//!
//! Pure: the shell feeds views, answers and time, and carries out the effects. Asks are repeated
//! from [`OwnershipInput::Tick`] until answered, so a lost message or answer only costs time.

use std::collections::{BTreeMap, BTreeSet};

use crate::shard_map::{NodeId, SHARDS, ShardId, ShardMap};

/// How long to wait before asking a peer again: after it answered "not yet", and after an ask
/// that got no answer at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnershipConfig {
    pub retry_ms: i64,
    pub unanswered_ms: i64,
}

impl Default for OwnershipConfig {
    fn default() -> Self {
        Self { retry_ms: 25, unanswered_ms: 1_000 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnershipInput {
    /// A new view: its shard map, every member of it (of any status, this node included), the
    /// time before which shards acquired in it must not be activated, and its fingerprint (one
    /// epoch may name two member sets after a reset of the table; see `View::fingerprint`).
    View { map: ShardMap, members: Vec<NodeId>, takeover_not_before_ms: i64, fingerprint: u64 },
    /// This node finished stopping (and writing out) its actors of unowned shards for `epoch`.
    Released { epoch: u64 },
    /// That release failed (the store did not take the state): it is tried again after a pause.
    ReleaseFailed { epoch: u64 },
    /// `peer` confirmed the release for `epoch`.
    Confirmed { peer: NodeId, epoch: u64 },
    /// `peer` answered "not yet" (or could not be reached): ask again after a pause.
    NotConfirmed { peer: NodeId, epoch: u64 },
    /// This node's lease (from the membership table) now runs until then.
    Lease { until_ms: i64 },
    /// Time passes: repeat due asks, activate shards whose takeover time has come.
    Tick,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnershipEffect {
    /// Stop (writing their state out) the local actors of tenants whose shards this node no
    /// longer serves, then report [`OwnershipInput::Released`] for `epoch`.
    ReleaseUnowned { epoch: u64 },
    /// Ask `peer` to confirm it released what it does not own in view `epoch`; answer with
    /// [`OwnershipInput::Confirmed`] or [`OwnershipInput::NotConfirmed`].
    AskRelease { peer: NodeId, epoch: u64 },
    /// Every shard this node owns in view `epoch` is now served here.
    AllActive { epoch: u64, shards: usize },
    /// The lease ran out: the others may have served this node's tenants since (it cannot know).
    /// Its tenant actors are out of date: write their state out (the store merges it) and stop
    /// them without handing it to anyone, and drop hand-offs kept, so that whoever serves a
    /// tenant next starts from the store.
    LeaseLost,
}

/// Whether a shard may be served by this node right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardState {
    Active,
    /// Assigned to this node; waiting for the previous owner to let go.
    Acquiring,
    /// Owned by another node (or by none: no view yet).
    Elsewhere,
    /// Served here, but this node's lease has run out: it must not admit until the membership
    /// table confirms it again.
    Fenced,
}

#[derive(Debug, Clone)]
pub struct ShardOwnership {
    me: NodeId,
    config: OwnershipConfig,
    map: ShardMap,
    members: Vec<NodeId>,
    active: Vec<bool>,
    /// Peers of the current view that have not yet confirmed the release, and when to ask next.
    awaiting: BTreeMap<NodeId, i64>,
    takeover_not_before_ms: i64,
    /// The newest view for which this node has released what it does not own.
    released_epoch: Option<u64>,
    /// When to try again a release that failed.
    release_retry_at: Option<i64>,
    /// New owners of shards this node served, that have not had its confirmation yet.
    owed: BTreeSet<NodeId>,
    lease_until_ms: i64,
    /// The lease was valid at the last input (so that its end is reported once).
    leased: bool,
    fingerprint: u64,
}

/// What this node answers a peer's request to confirm a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseVerdict {
    Released,
    /// Not at that view yet, or still stopping actors: ask again.
    NotYet,
    /// Same epoch, another member set: the table was reset under us (see `View::fingerprint`).
    Conflict,
}

impl ShardOwnership {
    /// Before the first view: nothing is served. Without a lease until one is given.
    pub fn new(me: NodeId, config: OwnershipConfig) -> Self {
        Self {
            me,
            config,
            map: ShardMap::new(0, []),
            members: Vec::new(),
            active: vec![false; usize::from(SHARDS)],
            awaiting: BTreeMap::new(),
            takeover_not_before_ms: i64::MIN,
            released_epoch: None,
            release_retry_at: None,
            owed: BTreeSet::new(),
            lease_until_ms: i64::MIN,
            leased: false,
            fingerprint: 0,
        }
    }

    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    pub fn me(&self) -> &NodeId {
        &self.me
    }

    pub fn map(&self) -> &ShardMap {
        &self.map
    }

    pub fn epoch(&self) -> u64 {
        self.map.epoch()
    }

    /// Every member of the current view, this node included.
    pub fn members(&self) -> &[NodeId] {
        &self.members
    }

    pub fn lease_until_ms(&self) -> i64 {
        self.lease_until_ms
    }

    /// The shard's state at `now_ms` (this node's clock).
    pub fn state(&self, shard: ShardId, now_ms: i64) -> ShardState {
        if self.map.owner(shard) != Some(&self.me) {
            ShardState::Elsewhere
        } else if !self.active[usize::from(shard.0)] {
            ShardState::Acquiring
        } else if now_ms >= self.lease_until_ms {
            ShardState::Fenced
        } else {
            ShardState::Active
        }
    }

    /// Shards owned in the current view that are served (active).
    pub fn active_count(&self) -> usize {
        self.active.iter().filter(|active| **active).count()
    }

    pub fn handle(&mut self, now_ms: i64, input: OwnershipInput) -> Vec<OwnershipEffect> {
        let mut effects = self.forget_if_unleased(now_ms);
        effects.extend(self.handle_input(now_ms, input));
        effects
    }

    fn handle_input(&mut self, now_ms: i64, input: OwnershipInput) -> Vec<OwnershipEffect> {
        match input {
            OwnershipInput::View { map, members, takeover_not_before_ms, fingerprint } => {
                self.fingerprint = fingerprint;
                self.install(now_ms, map, members, takeover_not_before_ms)
            }
            OwnershipInput::Released { epoch } => {
                if self.released_epoch.is_none_or(|done| done < epoch) {
                    self.released_epoch = Some(epoch);
                }
                if epoch >= self.map.epoch() {
                    self.release_retry_at = None;
                }
                Vec::new()
            }
            OwnershipInput::ReleaseFailed { epoch } => {
                if epoch == self.map.epoch() {
                    self.release_retry_at = Some(now_ms + self.config.retry_ms);
                }
                Vec::new()
            }
            OwnershipInput::Confirmed { peer, epoch } => {
                if epoch == self.map.epoch() {
                    self.awaiting.remove(&peer);
                }
                self.activate_if_due(now_ms)
            }
            OwnershipInput::NotConfirmed { peer, epoch } => {
                if epoch == self.map.epoch()
                    && let Some(next) = self.awaiting.get_mut(&peer)
                {
                    *next = now_ms + self.config.retry_ms;
                }
                Vec::new()
            }
            OwnershipInput::Lease { until_ms } => {
                self.lease_until_ms = until_ms;
                self.leased = now_ms < until_ms;
                Vec::new()
            }
            OwnershipInput::Tick => {
                let mut effects = Vec::new();
                if self.release_retry_at.is_some_and(|at| at <= now_ms) {
                    self.release_retry_at = None;
                    effects.push(OwnershipEffect::ReleaseUnowned { epoch: self.map.epoch() });
                }
                effects.extend(self.due_asks(now_ms));
                effects.extend(self.activate_if_due(now_ms));
                effects
            }
        }
    }

    /// `peer` asks whether this node let go of everything it does not own in view `epoch` (with
    /// `fingerprint`; `None` from a peer of an older version, which only names the epoch). Only a
    /// node at that very view can say so; answering records that `peer` has its confirmation.
    pub fn answer_release(&mut self, peer: &NodeId, epoch: u64, fingerprint: Option<u64>) -> ReleaseVerdict {
        if self.map.epoch() != epoch {
            return ReleaseVerdict::NotYet;
        }
        if fingerprint.is_some_and(|theirs| theirs != self.fingerprint) {
            return ReleaseVerdict::Conflict;
        }
        if self.released_epoch.is_some_and(|done| done >= epoch) {
            self.owed.remove(peer);
            ReleaseVerdict::Released
        } else {
            ReleaseVerdict::NotYet
        }
    }

    /// Once the lease has run out, this node cannot know what the others did meanwhile (they
    /// may have removed it and served its shards in views it never saw): it serves nothing it
    /// has not acquired again, from every member of its view, whatever the next view says. The
    /// confirmations it had count no more either: a peer that confirmed may have moved on to
    /// such a view since. Reports the lease's end once ([`OwnershipEffect::LeaseLost`]).
    fn forget_if_unleased(&mut self, now_ms: i64) -> Vec<OwnershipEffect> {
        if now_ms < self.lease_until_ms {
            return Vec::new();
        }
        self.active.fill(false);
        if self.acquiring() {
            for peer in self.members.iter().filter(|peer| **peer != self.me) {
                self.awaiting.entry(peer.clone()).or_insert(now_ms);
            }
        }
        if std::mem::replace(&mut self.leased, false) { vec![OwnershipEffect::LeaseLost] } else { Vec::new() }
    }

    /// Nothing is served here and every new owner of what was has had its confirmation: a
    /// draining node may leave.
    pub fn handed_off(&self) -> bool {
        self.active_count() == 0
            && self.owed.is_empty()
            && self.released_epoch.is_some_and(|done| done >= self.map.epoch())
    }

    /// Whether this node still waits for shards to become active (for logs and status).
    pub fn acquiring(&self) -> bool {
        self.map.owned_by(&self.me).iter().any(|shard| !self.active[usize::from(shard.0)])
    }

    fn install(
        &mut self,
        now_ms: i64,
        map: ShardMap,
        mut members: Vec<NodeId>,
        takeover_not_before_ms: i64,
    ) -> Vec<OwnershipEffect> {
        if map.epoch() <= self.map.epoch() && self.map.epoch() != 0 {
            return Vec::new();
        }
        let epoch = map.epoch();
        let previous = std::mem::replace(&mut self.map, map);
        members.sort();
        members.dedup();
        self.members = members;
        let mut acquiring = false;
        for shard in ShardId::all() {
            let index = usize::from(shard.0);
            let mine_now = self.map.owner(shard) == Some(&self.me);
            let was_served = self.active[index] && previous.owner(shard) == Some(&self.me);
            if was_served
                && !mine_now
                && let Some(new_owner) = self.map.owner(shard)
            {
                self.owed.insert(new_owner.clone());
            }
            self.active[index] = mine_now && was_served;
            acquiring |= mine_now && !was_served;
        }
        let members = &self.members;
        self.owed.retain(|peer| members.contains(peer));
        self.takeover_not_before_ms = takeover_not_before_ms;
        self.release_retry_at = None;
        self.awaiting.clear();
        let mut effects = vec![OwnershipEffect::ReleaseUnowned { epoch }];
        if acquiring {
            self.awaiting =
                self.members.iter().filter(|peer| **peer != self.me).map(|peer| (peer.clone(), now_ms)).collect();
            effects.extend(self.due_asks(now_ms));
        }
        effects.extend(self.activate_if_due(now_ms));
        effects
    }

    fn due_asks(&mut self, now_ms: i64) -> Vec<OwnershipEffect> {
        // Without a lease nothing could be served anyway: asking and activating start again
        // once the table vouches for this node (else an outage of the table would make the
        // node forget and acquire its shards over and over).
        if now_ms >= self.lease_until_ms {
            return Vec::new();
        }
        let epoch = self.map.epoch();
        let unanswered = self.config.unanswered_ms;
        self.awaiting
            .iter_mut()
            .filter(|(_, next)| **next <= now_ms)
            .map(|(peer, next)| {
                *next = now_ms + unanswered;
                OwnershipEffect::AskRelease { peer: peer.clone(), epoch }
            })
            .collect()
    }

    fn activate_if_due(&mut self, now_ms: i64) -> Vec<OwnershipEffect> {
        if !self.awaiting.is_empty() || now_ms < self.takeover_not_before_ms || now_ms >= self.lease_until_ms {
            return Vec::new();
        }
        let mut newly = false;
        for shard in self.map.owned_by(&self.me) {
            let active = &mut self.active[usize::from(shard.0)];
            newly |= !*active;
            *active = true;
        }
        if newly {
            vec![OwnershipEffect::AllActive { epoch: self.map.epoch(), shards: self.active_count() }]
        } else {
            Vec::new()
        }
    }
}

#[cfg(test)]
#[path = "ownership_tests.rs"]
mod tests;
