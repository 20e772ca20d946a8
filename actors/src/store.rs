//! The `Store` port: where tenants, key hashes, usage, audit events and rate-window checkpoints
//! are kept. Adapters (the embedded redb file, Redis in cluster mode) live in the `connectors`
//! crate and must all pass its one contract suite.
//!
//! Every method is atomic (audit retention, [`Store::delete_audit_before`], excepted): a tenant
//! and its key index change together or not at all, and a [`Batch`] commits whole.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::api_key::KeyHash;
use crate::audit::{AuditEvent, AuditPage, AuditQuery};
use crate::rate_windows::WindowCount;
use crate::tenant::{TenantId, TenantRecord, TenantStatus};
use crate::usage::{Month, UsageCounters};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum StoreError {
    #[error("tenant `{0}` already exists")]
    Conflict(TenantId),
    #[error("tenant `{0}` not found")]
    NotFound(TenantId),
    #[error("storage backend failed: {0}")]
    Backend(String),
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    /// A compare-and-set found the entry changed since it was read (another node wrote it).
    #[error("{0} changed since it was read; retry")]
    Changed(String),
}

impl StoreError {
    /// Whether the same request may succeed later: the backend was unreachable or busy, or
    /// another writer came first. The other errors are about the data itself and repeat.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Backend(_) | StoreError::Changed(_))
    }
}

/// The rate-window counts of a tenant as last saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub windows: [WindowCount; 3],
}

impl Checkpoint {
    /// What the store keeps when this checkpoint is written over `stored`: per window, the later
    /// window, and of one window the larger count. A node that lost a tenant without releasing it
    /// (paused past its lease) may write its stale counts after the next owner wrote newer ones;
    /// they must not lower the store's, or the owner after that admits beyond the limit. Counts
    /// only fall when a window ends, and a tenant deleted loses its checkpoint.
    pub fn merged_over(self, stored: Option<&Checkpoint>) -> Checkpoint {
        let Some(stored) = stored else { return self };
        Checkpoint { windows: std::array::from_fn(|i| self.windows[i].latest(stored.windows[i])) }
    }
}

/// Usage to add to one tenant's counters for one day (and so to that day's month).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageDelta {
    pub tenant: TenantId,
    pub day: NaiveDate,
    pub counters: UsageCounters,
}

/// What the recorder writes in one transaction (group commit). Serialized as JSON when the
/// recorder sets a batch aside for an operator to replay.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// Names this batch for the store: a batch committed again because the answer to its first
    /// commit was lost (the store may have applied it) is applied once. `None`: no such check.
    #[serde(with = "hex_id")]
    pub id: Option<u128>,
    pub audit: Vec<AuditEvent>,
    pub usage: Vec<UsageDelta>,
    /// Saved only for tenants that still exist when the batch commits.
    pub checkpoints: Vec<(TenantId, Checkpoint)>,
}

/// Batch ids in JSON as 32 hex digits: most JSON readers lose the digits of a number that large.
mod hex_id {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(super) fn serialize<S: Serializer>(id: &Option<u128>, serializer: S) -> Result<S::Ok, S::Error> {
        match id {
            Some(id) => serializer.serialize_some(&format!("{id:032x}")),
            None => serializer.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u128>, D::Error> {
        let Some(text) = Option::<String>::deserialize(deserializer)? else { return Ok(None) };
        u128::from_str_radix(&text, 16).map(Some).map_err(|_| D::Error::custom(format!("`{text}` is not a batch id")))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantFilter {
    pub plan: Option<String>,
    pub status: Option<TenantStatus>,
}

impl TenantFilter {
    pub fn matches(&self, record: &TenantRecord) -> bool {
        self.plan.as_deref().is_none_or(|plan| record.plan == plan)
            && self.status.is_none_or(|status| record.status == status)
    }
}

/// Tenants in id order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantPage {
    pub tenants: Vec<TenantRecord>,
    /// All tenants matching the filter, on every page.
    pub total: u64,
    /// Continue after this id; `None` on the last page.
    pub next: Option<TenantId>,
}

/// Which tenant a key hash belongs to, and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyOwner {
    pub tenant: TenantId,
    pub expires_at: Option<DateTime<Utc>>,
}

impl KeyOwner {
    pub fn is_valid_at(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_none_or(|end| now < end)
    }
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Saves a new tenant and indexes its keys. `Conflict` if the id is taken.
    async fn create_tenant(&self, record: &TenantRecord) -> Result<(), StoreError>;

    /// Replaces an existing tenant and re-indexes its keys (keys no longer in the record stop
    /// resolving). `NotFound` if it does not exist.
    async fn update_tenant(&self, record: &TenantRecord) -> Result<(), StoreError>;

    /// Removes a tenant, its keys and its checkpoint. Its audit log and usage history stay.
    /// `NotFound` if it does not exist.
    async fn delete_tenant(&self, id: &TenantId) -> Result<(), StoreError>;

    async fn tenant(&self, id: &TenantId) -> Result<Option<TenantRecord>, StoreError>;

    /// Tenants matching `filter` with ids after `after`, in id order, at most `limit`.
    async fn tenants(
        &self,
        filter: &TenantFilter,
        after: Option<&TenantId>,
        limit: usize,
    ) -> Result<TenantPage, StoreError>;

    async fn key_owner(&self, hash: &KeyHash) -> Result<Option<KeyOwner>, StoreError>;

    /// Appends audit events, adds usage and saves checkpoints, all in one transaction. Shared,
    /// not borrowed: the recorder keeps a failed batch to retry, the adapter may move it to
    /// another thread, and neither needs a copy.
    async fn commit(&self, batch: Arc<Batch>) -> Result<(), StoreError>;

    /// Audit events one [`Store::commit`] should carry at most: a store that serves nobody else
    /// while it commits keeps its commits short.
    fn max_commit_events(&self) -> usize {
        usize::MAX
    }

    async fn checkpoint(&self, id: &TenantId) -> Result<Option<Checkpoint>, StoreError>;

    /// Days with usage between `from` and `to` inclusive, in date order.
    async fn usage_by_day(
        &self,
        id: &TenantId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<(NaiveDate, UsageCounters)>, StoreError>;

    async fn usage_of_month(&self, id: &TenantId, month: Month) -> Result<UsageCounters, StoreError>;

    /// One page of a tenant's audit log, oldest first.
    async fn audit(&self, id: &TenantId, query: &AuditQuery) -> Result<AuditPage, StoreError>;

    /// Deletes every audit event older than `before`, of every tenant (deleted tenants' logs
    /// included); answers how many were deleted. For `audit.retentionDays`.
    ///
    /// Unlike the other methods not one atomic step: it deletes in bounded steps, so that a large
    /// log never makes one huge transaction. After a failure part way, some old events are gone
    /// and calling again deletes the rest; events never reappear.
    async fn delete_audit_before(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Small values of the gateway itself (e.g. the admin key's hash).
    async fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    async fn set_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError>;

    /// Saves (or replaces) entry `name` of `collection`: small named records such as the shared
    /// integrations or a tenant's custom servers, opaque to the store.
    async fn put_entry(&self, collection: &str, name: &str, value: &[u8]) -> Result<(), StoreError>;

    /// Removes one entry; `false` if there was none.
    async fn delete_entry(&self, collection: &str, name: &str) -> Result<bool, StoreError>;

    /// Writes entry `name` of `collection` as `value` (or removes it when `None`) only if it
    /// still holds `expected` (`None`: absent), atomically; answers whether it wrote. How an
    /// actor whose view may be stale (another node served the tenant meanwhile) keeps from
    /// writing over what it never saw.
    async fn replace_entry(
        &self,
        collection: &str,
        name: &str,
        expected: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Result<bool, StoreError>;

    /// Every entry of `collection`, by name in ascending order.
    async fn entries(&self, collection: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
}
