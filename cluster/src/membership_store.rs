//! The `MembershipStore` port: the shared membership table (Redis in production). The decisions
//! are [`crate::membership::Membership`]'s; an adapter only reads and writes.

use async_trait::async_trait;

use crate::membership::{MemberRecord, MembershipTable};
use crate::shard_map::NodeId;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("membership table unreachable: {0}")]
pub struct MembershipStoreError(pub String);

#[async_trait]
pub trait MembershipStore: Send + Sync + 'static {
    /// Upserts `record`; when `bump_epoch`, increments the view epoch in the same atomic step, to at
    /// least `min_epoch`. Without `bump_epoch` only a record that is still there is updated. A
    /// record of a newer incarnation of the same node id (later `started_ms`; the cluster address
    /// breaks a tie) is never replaced: the older process must read it back to learn that it was
    /// superseded (with a blind write, each process would read back its own record forever).
    async fn write_member(
        &self,
        record: &MemberRecord,
        bump_epoch: bool,
        min_epoch: u64,
    ) -> Result<(), MembershipStoreError>;

    async fn read_table(&self) -> Result<MembershipTable, MembershipStoreError>;

    /// Removes `ids` and increments the epoch, atomically, only if the epoch is still
    /// `expected_epoch`; `false` when it had moved on (another node acted first).
    async fn remove_members(&self, ids: &[NodeId], expected_epoch: u64) -> Result<bool, MembershipStoreError>;
}
