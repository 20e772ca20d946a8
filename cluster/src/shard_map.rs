//! Where a tenant lives: tenant → shard (a pinned hash) → node (consistent hashing over one view).
//!
//! Every node, whatever compiler or platform built it, must place every shard on the same node for
//! the same membership view, or two nodes would admit for one tenant during a rolling upgrade. So
//! every hash here is SHA-256 over bytes we spell out ourselves, and golden tests pin both
//! [`shard_of`] and the ring (a node's points are SHA-256 of `"<name>#<index>"`). `hashring` alone
//! would hash its keys with std `Hash` (whose output std does not promise to keep) through
//! `siphasher` (a dependency it may bump); we give it keys whose `Hash` writes only our own 8
//! bytes, and a hasher that returns exactly those bytes, so neither can move a shard.
//!
//! This module decides placement only: it knows nothing of how views are agreed on (see
//! [`crate::membership`]) or of how shards move between nodes.

use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};

use connectors_actors::tenant::TenantId;
use hashring::HashRing;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Number of shards. Fixed for the life of a cluster: changing it moves almost every tenant.
pub const SHARDS: u16 = 1024;

/// Points each node puts on the ring. Measured over 300 sets of node names, the worst node owned
/// at most 17% (3 nodes), 22% (5) and 27% (10) more or fewer shards than its fair share with 256,
/// against 25%, 32% and 37% with 128; beyond that the 1024 shards themselves, not the ring, bound
/// the spread. A ring of 10 nodes is 2,560 SHA-256 digests, once per view. Changing it moves
/// shards, like any placement change.
pub const VNODES_PER_NODE: u32 = 256;

/// A shard: `0..SHARDS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ShardId(pub u16);

impl ShardId {
    /// Every shard, in order.
    pub fn all() -> impl Iterator<Item = ShardId> {
        (0..SHARDS).map(ShardId)
    }
}

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Pinned: the first 8 bytes of SHA-256(tenant id's UTF-8 bytes) read big-endian, mod SHARDS.
/// Never change it: every stored tenant would change shard.
pub fn shard_of(tenant: &TenantId) -> ShardId {
    let shard = sha256_prefix(tenant.as_str().as_bytes()) % u64::from(SHARDS);
    ShardId(u16::try_from(shard).expect("a value mod SHARDS fits in u16"))
}

/// A gateway node's name in the cluster (stable across restarts of the same node).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeId(pub String);

impl NodeId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for NodeId {
    fn from(name: &str) -> Self {
        Self(name.to_string())
    }
}

impl From<String> for NodeId {
    fn from(name: String) -> Self {
        Self(name)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Shard → owning node over one membership view. Owners are computed once per view, so a lookup
/// is an index; the ring itself is not kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardMap {
    epoch: u64,
    /// Sorted, without duplicates.
    nodes: Vec<NodeId>,
    /// Index into `nodes` of each shard's owner; empty when there are no nodes.
    owners: Vec<usize>,
}

impl ShardMap {
    /// The placement for `nodes` (duplicates ignored; none at all is allowed and owns nothing).
    /// The result depends only on the set of names, not on their order.
    pub fn new(epoch: u64, nodes: impl IntoIterator<Item = NodeId>) -> Self {
        let mut nodes: Vec<NodeId> = nodes.into_iter().collect();
        nodes.sort();
        nodes.dedup();
        let owners = if nodes.is_empty() { Vec::new() } else { place_shards(&nodes) };
        Self { epoch, nodes, owners }
    }

    /// The epoch of the membership view this map was built from.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The nodes that own shards, sorted.
    pub fn nodes(&self) -> &[NodeId] {
        &self.nodes
    }

    /// The shard's owner; `None` when there are no nodes, or for an id outside `0..SHARDS` (which
    /// [`shard_of`] never returns, but a decoded message might carry).
    pub fn owner(&self, shard: ShardId) -> Option<&NodeId> {
        let owner = *self.owners.get(usize::from(shard.0))?;
        self.nodes.get(owner)
    }

    pub fn owner_of(&self, tenant: &TenantId) -> Option<&NodeId> {
        self.owner(shard_of(tenant))
    }

    /// The shards `node` owns, in order.
    pub fn owned_by(&self, node: &NodeId) -> Vec<ShardId> {
        ShardId::all().filter(|&shard| self.owner(shard) == Some(node)).collect()
    }

    pub fn count_owned_by(&self, node: &NodeId) -> usize {
        ShardId::all().filter(|&shard| self.owner(shard) == Some(node)).count()
    }
}

/// Each shard's owner as an index into `nodes` (sorted, deduplicated, not empty).
fn place_shards(nodes: &[NodeId]) -> Vec<usize> {
    let mut ring = HashRing::with_hasher(PinnedPoint);
    ring.batch_add(
        nodes
            .iter()
            .enumerate()
            .flat_map(|(node, id)| (0..VNODES_PER_NODE).map(move |index| VirtualNode::new(node, id, index)))
            .collect(),
    );
    ShardId::all()
        .map(|shard| ring.get(&ShardPoint::new(shard)).expect("the ring has points when there are nodes").node)
        .collect()
}

/// The first 8 bytes of SHA-256(bytes), big-endian.
fn sha256_prefix(bytes: &[u8]) -> u64 {
    let digest = Sha256::digest(bytes);
    let mut prefix = [0u8; 8];
    prefix.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(prefix)
}

/// One of a node's points on the ring: at `sha256_prefix("<node name>#<index>")`. The index is the
/// text after the last `#`, so no two (name, index) pairs share a point's input.
struct VirtualNode {
    /// Index into the sorted node list.
    node: usize,
    point: [u8; 8],
}

impl VirtualNode {
    fn new(node: usize, id: &NodeId, index: u32) -> Self {
        Self { node, point: sha256_prefix(format!("{id}#{index}").as_bytes()).to_be_bytes() }
    }
}

impl Hash for VirtualNode {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(&self.point);
    }
}

/// Where a shard sits on the ring: shard n at n·2⁶⁴/SHARDS, evenly spaced (hashed points would add
/// their own clumping to the spread); its owner is the first virtual node at or after it, wrapping.
struct ShardPoint([u8; 8]);

/// 2⁶⁴/SHARDS, exact because SHARDS is a power of two.
const SHARD_SPACING: u64 = 1 << (64 - SHARDS.trailing_zeros());
const _: () = assert!(SHARDS.is_power_of_two());

impl ShardPoint {
    fn new(shard: ShardId) -> Self {
        Self((u64::from(shard.0) * SHARD_SPACING).to_be_bytes())
    }
}

impl Hash for ShardPoint {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(&self.0);
    }
}

/// The ring's hasher: the point is the 8 bytes the key wrote, read big-endian. Our keys write
/// exactly 8 bytes of SHA-256, so the ring is SHA-256 alone, on any platform and compiler.
#[derive(Clone, Copy)]
struct PinnedPoint;

impl BuildHasher for PinnedPoint {
    type Hasher = PointHasher;
    fn build_hasher(&self) -> PointHasher {
        PointHasher(0)
    }
}

struct PointHasher(u64);

impl Hasher for PointHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 << 8) | u64::from(byte);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
#[path = "shard_map_tests.rs"]
mod tests;
