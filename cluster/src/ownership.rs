//! `ShardOwnership`: which shards this node serves, view after view — the fence that keeps two
//! nodes from admitting requests for one tenant.
//!
//! A shard this node owned in the previous view and still owns stays active. A shard newly
//! assigned to it is only *acquiring* until every other member of the new view has confirmed
//! that it holds a view at least as new and has written out and stopped its actors of shards it
//! no longer owns. Members missing from the view (dead, removed from the membership table) are
//! not asked: after a crash the new owner starts from the last checkpoint in the shared store.
//! Pure: the shell feeds views and confirmations and carries out the effects.

use std::collections::BTreeSet;

use crate::shard_map::{NodeId, SHARDS, ShardId, ShardMap};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnershipEffect {
    /// Stop (writing their state out) the local actors of tenants whose shards this node no
    /// longer serves, then report [`ShardOwnership::released`] for `epoch`.
    ReleaseUnowned { epoch: u64 },
    /// Ask `peer` to confirm it released what it no longer owns as of `epoch`; retry until it
    /// confirms or leaves the view.
    AskRelease { peer: NodeId, epoch: u64 },
    /// Every shard this node owns in view `epoch` is now served here.
    AllActive { epoch: u64, shards: usize },
}

/// Whether a shard may be served by this node right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardState {
    Active,
    /// Assigned to this node; waiting for the previous owner to let go.
    Acquiring,
    /// Owned by another node (or by none: no view yet).
    Elsewhere,
}

#[derive(Debug, Clone)]
pub struct ShardOwnership {
    me: NodeId,
    map: ShardMap,
    active: Vec<bool>,
    /// Peers of the current view that have not yet confirmed the release.
    awaiting: BTreeSet<NodeId>,
    /// The newest view for which this node has released what it does not own.
    released_epoch: Option<u64>,
}

impl ShardOwnership {
    /// Before the first view: nothing is served.
    pub fn new(me: NodeId) -> Self {
        Self {
            me,
            map: ShardMap::new(0, []),
            active: vec![false; usize::from(SHARDS)],
            awaiting: BTreeSet::new(),
            released_epoch: None,
        }
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

    pub fn state(&self, shard: ShardId) -> ShardState {
        if self.map.owner(shard) != Some(&self.me) {
            ShardState::Elsewhere
        } else if self.active[usize::from(shard.0)] {
            ShardState::Active
        } else {
            ShardState::Acquiring
        }
    }

    /// Shards owned in the current view that are served (active).
    pub fn active_count(&self) -> usize {
        self.active.iter().filter(|active| **active).count()
    }

    /// A new view; older or equal epochs are ignored (views only move forward).
    pub fn install(&mut self, map: ShardMap) -> Vec<OwnershipEffect> {
        if map.epoch() <= self.map.epoch() && self.map.epoch() != 0 {
            return Vec::new();
        }
        let epoch = map.epoch();
        let previous = std::mem::replace(&mut self.map, map);
        let mut acquiring = false;
        for index in 0..SHARDS {
            let shard = ShardId(index);
            let mine_now = self.map.owner(shard) == Some(&self.me);
            let was_served = self.active[usize::from(index)] && previous.owner(shard) == Some(&self.me);
            self.active[usize::from(index)] = mine_now && was_served;
            acquiring |= mine_now && !was_served;
        }
        let mut effects = vec![OwnershipEffect::ReleaseUnowned { epoch }];
        self.awaiting.clear();
        if acquiring {
            self.awaiting = self.map.nodes().iter().filter(|node| **node != self.me).cloned().collect();
            effects.extend(self.awaiting.iter().map(|peer| OwnershipEffect::AskRelease { peer: peer.clone(), epoch }));
        }
        effects.extend(self.activate_if_confirmed());
        effects
    }

    /// This node finished stopping its unowned actors for view `epoch`.
    pub fn released(&mut self, epoch: u64) {
        if self.released_epoch.is_none_or(|done| done < epoch) {
            self.released_epoch = Some(epoch);
        }
    }

    /// Whether this node can confirm to a peer that it let go of everything it does not own
    /// as of `epoch`.
    pub fn has_released(&self, epoch: u64) -> bool {
        self.map.epoch() >= epoch && self.released_epoch.is_some_and(|done| done >= epoch)
    }

    /// `peer` confirmed the release for `epoch`.
    pub fn confirmed(&mut self, peer: &NodeId, epoch: u64) -> Vec<OwnershipEffect> {
        if epoch < self.map.epoch() {
            return Vec::new();
        }
        self.awaiting.remove(peer);
        self.activate_if_confirmed()
    }

    /// Whether an AskRelease for (`peer`, `epoch`) is still needed.
    pub fn awaits(&self, peer: &NodeId, epoch: u64) -> bool {
        epoch == self.map.epoch() && self.awaiting.contains(peer)
    }

    fn activate_if_confirmed(&mut self) -> Vec<OwnershipEffect> {
        if !self.awaiting.is_empty() {
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
