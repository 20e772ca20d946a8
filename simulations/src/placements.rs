//! Shard maps, computed once per (epoch, owners) for the whole test binary.
//!
//! `View::shard_map` hashes 256 ring points per node with SHA-256: milliseconds in a debug build,
//! and every node computes the same map for every epoch it sees. Thousands of scenarios walk
//! through the same few (epoch, owners) pairs, so the maps are shared; a miss computes the map
//! with the production `View::shard_map` and checks the key's assumption (the `Up` members own).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use connectors_cluster::membership::{NodeStatus, View};
use connectors_cluster::shard_map::{NodeId, ShardId, ShardMap};

/// A shard map and, for each owner, the shards it owns.
#[derive(Debug)]
pub(crate) struct Placement {
    pub(crate) map: ShardMap,
    owned: BTreeMap<NodeId, Vec<ShardId>>,
}

impl Placement {
    pub(crate) fn epoch(&self) -> u64 {
        self.map.epoch()
    }

    pub(crate) fn owned_by(&self, node: &NodeId) -> &[ShardId] {
        self.owned.get(node).map_or(&[], Vec::as_slice)
    }
}

type Key = (u64, Vec<NodeId>);

/// Bounds the memory of a long soak; the maps are cheap to compute again.
const CACHED_MAX: usize = 20_000;

static PLACEMENTS: Mutex<BTreeMap<Key, Arc<Placement>>> = Mutex::new(BTreeMap::new());

/// The placement of `view`, as `view.shard_map()` computes it.
pub(crate) fn placement_of(view: &View) -> Arc<Placement> {
    let owners: Vec<NodeId> =
        view.members.iter().filter(|member| member.status == NodeStatus::Up).map(|member| member.id.clone()).collect();
    let key = (view.epoch, owners);
    if let Some(found) = PLACEMENTS.lock().unwrap_or_else(PoisonError::into_inner).get(&key) {
        return found.clone();
    }
    let map = view.shard_map();
    let mut sorted_owners = key.1.clone();
    sorted_owners.sort();
    sorted_owners.dedup();
    assert_eq!(map.nodes(), sorted_owners.as_slice(), "the simulator assumes the Up members own the shards");
    let mut owned: BTreeMap<NodeId, Vec<ShardId>> = BTreeMap::new();
    for shard in ShardId::all() {
        if let Some(owner) = map.owner(shard) {
            owned.entry(owner.clone()).or_default().push(shard);
        }
    }
    let placement = Arc::new(Placement { map, owned });
    let mut cache = PLACEMENTS.lock().unwrap_or_else(PoisonError::into_inner);
    if cache.len() >= CACHED_MAX {
        cache.clear();
    }
    cache.insert(key, placement.clone());
    placement
}
