//! The embedded [`Store`]: one redb file under the data dir, the default of a single node.
//!
//! This file decides how the store's data is laid out in redb tables and maps each port method
//! to exactly one redb transaction, so a method's effects are all committed or none are. It does
//! not decide what is stored (the port and its contract suite do) nor where the file lives (the
//! configuration does).
//!
//! Tables (values are JSON kept as raw bytes, audit events excepted (see `audit_codec`), so that an unreadable value is reported as
//! [`StoreError::Corrupt`] rather than panicking in redb's UTF-8 decoding; string keys are only
//! ever written from validated tenant ids):
//!
//! | table | key | value |
//! |---|---|---|
//! | `tenants` | tenant id | [`TenantRecord`] |
//! | `key_owners` | key hash (32 bytes) | [`KeyOwner`] |
//! | `checkpoints` | tenant id | [`Checkpoint`] |
//! | `audit_chunks` | (tenant id, first event's µs, its sequence number) | a chunk of the tenant's audit events, postcard (see `audit_log`) |
//! | `usage_days` | (tenant id, days since 0001-01-01) | [`UsageCounters`] |
//! | `usage_months` | (tenant id, `YYYYMM`) | [`UsageCounters`] |
//! | `meta` | key | bytes, the gateway's own small values |
//! | `entries` | (collection, entry name) | bytes, opaque to the store |
//! | `sequences` | name | `u64`, the last number handed out (`audit`) |
//! | `formats` | name | `u64`, the format of a part of the file (`audit`) |
//!
//! A tenant's log is ordered by time, and the store-assigned sequence number keeps events with
//! equal timestamps in commit order, so `(timestamp, seq)` is a stable cursor.
//! Retention ([`Store::delete_audit_before`]) deletes each log's oldest entries, a bounded number
//! per write transaction (`PRUNE_CHUNK`), so that pruning a large log neither builds one huge
//! transaction nor keeps the recorder's commits waiting behind it for long.

use std::fmt::Display;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use connectors_actors::api_key::KeyHash;
use connectors_actors::audit::{AuditPage, AuditQuery};
use connectors_actors::store::{Batch, Checkpoint, KeyOwner, Store, StoreError, TenantFilter, TenantPage, UsageDelta};
use connectors_actors::tenant::{TenantId, TenantRecord};
use connectors_actors::usage::{Month, UsageCounters};
use redb::{
    Builder, Database, DatabaseError, Key, ReadTransaction, ReadableDatabase, ReadableTable, Table, TableDefinition,
    WriteTransaction,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

const TENANTS: TableDefinition<&str, &[u8]> = TableDefinition::new("tenants");
const KEY_OWNERS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("key_owners");
const CHECKPOINTS: TableDefinition<&str, &[u8]> = TableDefinition::new("checkpoints");
const USAGE_DAYS: TableDefinition<(&str, i32), &[u8]> = TableDefinition::new("usage_days");
const USAGE_MONTHS: TableDefinition<(&str, u32), &[u8]> = TableDefinition::new("usage_months");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const ENTRIES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("entries");
// Apart from `meta` so that no gateway key can collide with the store's own counters.
const SEQUENCES: TableDefinition<&str, u64> = TableDefinition::new("sequences");
const AUDIT_SEQ: &str = "audit";
/// Audit events deleted per write transaction by [`Store::delete_audit_before`].
const PRUNE_CHUNK: usize = 10_000;

mod audit_log;

pub struct RedbStore {
    // Shared with the blocking tasks that run the transactions.
    db: Arc<Database>,
}

impl RedbStore {
    /// Opens the store file at `path`, creating it and its tables if needed, keeping at most
    /// `cache_bytes` of its pages in memory. redb reads pages into that cache (it maps nothing), so
    /// the cache, not the file's size, is what registered tenants cost in memory.
    pub fn open(path: &Path, cache_bytes: usize) -> Result<Self, StoreError> {
        let cannot_open = |reason: &dyn Display| {
            StoreError::Backend(format!("cannot open the store file `{}`: {reason}", path.display()))
        };
        let db = Builder::new().set_cache_size(cache_bytes).create(path).map_err(|err| match err {
            // redb holds an exclusive lock on the file while it is open.
            DatabaseError::DatabaseAlreadyOpen => {
                cannot_open(&"it is already open, by another gateway process or by this one")
            }
            other => cannot_open(&other),
        })?;
        // Creating every table up front lets read transactions open them without a special case
        // for a fresh file, and finds a file of another layout before any request does.
        let create_tables = || -> Result<(), redb::Error> {
            let txn = db.begin_write()?;
            txn.open_table(TENANTS)?;
            txn.open_table(KEY_OWNERS)?;
            txn.open_table(CHECKPOINTS)?;
            txn.open_table(USAGE_DAYS)?;
            txn.open_table(USAGE_MONTHS)?;
            txn.open_table(META)?;
            txn.open_table(ENTRIES)?;
            txn.open_table(SEQUENCES)?;
            txn.commit()?;
            Ok(())
        };
        create_tables().map_err(|err| cannot_open(&err))?;
        audit_log::prepare(&db, audit_log::MIGRATION_STEP).map_err(|err| cannot_open(&err))?;
        Ok(Self { db: Arc::new(db) })
    }

    /// Runs `work` in one read transaction on a blocking thread (redb does synchronous I/O).
    async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&ReadTransaction) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.blocking(move |db| work(&db.begin_read().backend()?)).await
    }

    /// Runs `work` in one write transaction on a blocking thread and commits it if `work`
    /// succeeds. On an error the transaction is dropped, which aborts it: nothing is written.
    async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.blocking(move |db| {
            let txn = db.begin_write().backend()?;
            let out = work(&txn)?;
            txn.commit().backend()?;
            Ok(out)
        })
        .await
    }

    /// Deletes the audit events older than `before`, about `chunk` per write transaction;
    /// answers how many. Each step is its own blocking task, so that writers waiting for redb's
    /// one write lock get it between steps.
    async fn prune_audit(&self, before: DateTime<Utc>, chunk: usize) -> Result<u64, StoreError> {
        let mut deleted = 0;
        let mut from = Bound::Unbounded;
        loop {
            let (count, next) = self.write(move |txn| audit_log::prune_step(txn, before, from, chunk)).await?;
            deleted += count;
            match next {
                Some(next) => from = next,
                None => return Ok(deleted),
            }
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || work(&db))
            .await
            .map_err(|err| StoreError::Backend(format!("a store transaction did not finish: {err}")))?
    }
}

#[async_trait]
impl Store for RedbStore {
    async fn create_tenant(&self, record: &TenantRecord) -> Result<(), StoreError> {
        let record = record.clone();
        self.write(move |txn| {
            let mut tenants = txn.open_table(TENANTS).backend()?;
            if tenants.get(record.id.as_str()).backend()?.is_some() {
                return Err(StoreError::Conflict(record.id));
            }
            tenants.insert(record.id.as_str(), to_json(&record)?.as_slice()).backend()?;
            index_keys(&mut txn.open_table(KEY_OWNERS).backend()?, &record)
        })
        .await
    }

    async fn update_tenant(&self, record: &TenantRecord) -> Result<(), StoreError> {
        let record = record.clone();
        self.write(move |txn| {
            let mut tenants = txn.open_table(TENANTS).backend()?;
            let old = load_tenant(&tenants, &record.id)?.ok_or_else(|| StoreError::NotFound(record.id.clone()))?;
            tenants.insert(record.id.as_str(), to_json(&record)?.as_slice()).backend()?;
            let mut owners = txn.open_table(KEY_OWNERS).backend()?;
            for gone in old.keys.iter().filter(|old| !record.keys.iter().any(|new| new.hash == old.hash)) {
                owners.remove(gone.hash.as_bytes()).backend()?;
            }
            index_keys(&mut owners, &record)
        })
        .await
    }

    async fn delete_tenant(&self, id: &TenantId) -> Result<(), StoreError> {
        let id = id.clone();
        self.write(move |txn| {
            let mut tenants = txn.open_table(TENANTS).backend()?;
            let old = load_tenant(&tenants, &id)?.ok_or_else(|| StoreError::NotFound(id.clone()))?;
            tenants.remove(id.as_str()).backend()?;
            let mut owners = txn.open_table(KEY_OWNERS).backend()?;
            for key in &old.keys {
                owners.remove(key.hash.as_bytes()).backend()?;
            }
            txn.open_table(CHECKPOINTS).backend()?.remove(id.as_str()).backend()?;
            Ok(())
        })
        .await
    }

    async fn tenant(&self, id: &TenantId) -> Result<Option<TenantRecord>, StoreError> {
        let id = id.clone();
        self.read(move |txn| load_tenant(&txn.open_table(TENANTS).backend()?, &id)).await
    }

    async fn tenants(
        &self,
        filter: &TenantFilter,
        after: Option<&TenantId>,
        limit: usize,
    ) -> Result<TenantPage, StoreError> {
        let filter = filter.clone();
        let after = after.cloned();
        self.read(move |txn| {
            // `total` needs every match anyway, so this is one pass over all tenants; the table
            // holds one small record per tenant, which an embedded single node can afford.
            let mut tenants = Vec::new();
            let mut total = 0u64;
            let mut more = false;
            for row in txn.open_table(TENANTS).backend()?.iter().backend()? {
                let (_, value) = row.backend()?;
                let record: TenantRecord = from_json("a tenant record", value.value())?;
                if !filter.matches(&record) {
                    continue;
                }
                total += 1;
                if after.as_ref().is_some_and(|after| &record.id <= after) {
                    continue;
                }
                if tenants.len() < limit {
                    tenants.push(record);
                } else {
                    more = true;
                }
            }
            let next = tenants.last().filter(|_| more).map(|last| last.id.clone());
            Ok(TenantPage { tenants, total, next })
        })
        .await
    }

    async fn key_owner(&self, hash: &KeyHash) -> Result<Option<KeyOwner>, StoreError> {
        let hash = *hash;
        self.read(move |txn| {
            let owners = txn.open_table(KEY_OWNERS).backend()?;
            let owner = owners.get(hash.as_bytes()).backend()?;
            owner.map(|owner| from_json(format_args!("the owner of {hash:?}"), owner.value())).transpose()
        })
        .await
    }

    async fn commit(&self, batch: Arc<Batch>) -> Result<(), StoreError> {
        self.write(move |txn| {
            audit_log::append(txn, &batch.audit)?;
            add_usage(txn, &batch.usage)?;
            save_checkpoints(txn, &batch.checkpoints)
        })
        .await
    }

    async fn checkpoint(&self, id: &TenantId) -> Result<Option<Checkpoint>, StoreError> {
        let id = id.clone();
        self.read(move |txn| {
            let checkpoints = txn.open_table(CHECKPOINTS).backend()?;
            let checkpoint = checkpoints.get(id.as_str()).backend()?;
            checkpoint.map(|saved| from_json(format_args!("the checkpoint of `{id}`"), saved.value())).transpose()
        })
        .await
    }

    async fn usage_by_day(
        &self,
        id: &TenantId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<(NaiveDate, UsageCounters)>, StoreError> {
        let id = id.clone();
        self.read(move |txn| {
            let days = txn.open_table(USAGE_DAYS).backend()?;
            let range = (id.as_str(), from.num_days_from_ce())..=(id.as_str(), to.num_days_from_ce());
            let mut out = Vec::new();
            for row in days.range(range).backend()? {
                let (key, value) = row.backend()?;
                let (_, day) = key.value();
                let day = NaiveDate::from_num_days_from_ce_opt(day)
                    .ok_or_else(|| StoreError::Corrupt(format!("usage of `{id}` is keyed by day {day}, not a date")))?;
                out.push((day, from_json(format_args!("the usage of `{id}` on {day}"), value.value())?));
            }
            Ok(out)
        })
        .await
    }

    async fn usage_of_month(&self, id: &TenantId, month: Month) -> Result<UsageCounters, StoreError> {
        let id = id.clone();
        self.read(move |txn| {
            let months = txn.open_table(USAGE_MONTHS).backend()?;
            let counters = months.get((id.as_str(), month.key())).backend()?;
            counters.map_or(Ok(UsageCounters::default()), |counters| {
                from_json(format_args!("the usage of `{id}` in {month}"), counters.value())
            })
        })
        .await
    }

    async fn audit(&self, id: &TenantId, query: &AuditQuery) -> Result<AuditPage, StoreError> {
        let id = id.clone();
        let query = query.clone();
        self.read(move |txn| audit_log::page(txn, &id, &query)).await
    }

    async fn delete_audit_before(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        self.prune_audit(before, PRUNE_CHUNK).await
    }

    async fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = key.to_string();
        self.read(move |txn| {
            let meta = txn.open_table(META).backend()?;
            let value = meta.get(key.as_str()).backend()?;
            Ok(value.map(|value| value.value().to_vec()))
        })
        .await
    }

    async fn set_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let key = key.to_string();
        let value = value.to_vec();
        self.write(move |txn| {
            txn.open_table(META).backend()?.insert(key.as_str(), value.as_slice()).backend()?;
            Ok(())
        })
        .await
    }

    async fn put_entry(&self, collection: &str, name: &str, value: &[u8]) -> Result<(), StoreError> {
        let (collection, name, value) = (collection.to_string(), name.to_string(), value.to_vec());
        self.write(move |txn| {
            let mut entries = txn.open_table(ENTRIES).backend()?;
            entries.insert((collection.as_str(), name.as_str()), value.as_slice()).backend()?;
            Ok(())
        })
        .await
    }

    async fn delete_entry(&self, collection: &str, name: &str) -> Result<bool, StoreError> {
        let (collection, name) = (collection.to_string(), name.to_string());
        self.write(move |txn| {
            let mut entries = txn.open_table(ENTRIES).backend()?;
            let removed = entries.remove((collection.as_str(), name.as_str())).backend()?.is_some();
            Ok(removed)
        })
        .await
    }

    async fn replace_entry(
        &self,
        collection: &str,
        name: &str,
        expected: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Result<bool, StoreError> {
        let (collection, name) = (collection.to_string(), name.to_string());
        let (expected, value) = (expected.map(<[u8]>::to_vec), value.map(<[u8]>::to_vec));
        // One write transaction: redb runs one writer at a time, so nothing lands between the
        // read and the write. A mismatch returns before writing and commits an empty change.
        self.write(move |txn| {
            let mut entries = txn.open_table(ENTRIES).backend()?;
            let key = (collection.as_str(), name.as_str());
            let held = entries.get(key).backend()?;
            let matches = held.as_ref().map(|held| held.value()) == expected.as_deref();
            // The guard borrows the table, which the write below needs.
            drop(held);
            if !matches {
                return Ok(false);
            }
            match value {
                Some(value) => {
                    entries.insert(key, value.as_slice()).backend()?;
                }
                None => {
                    entries.remove(key).backend()?;
                }
            }
            Ok(true)
        })
        .await
    }

    async fn entries(&self, collection: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let collection = collection.to_string();
        self.read(move |txn| {
            let entries = txn.open_table(ENTRIES).backend()?;
            let mut found = Vec::new();
            for row in entries.range((collection.as_str(), "")..).backend()? {
                let (key, value) = row.backend()?;
                let (row_collection, name) = key.value();
                if row_collection != collection {
                    break;
                }
                found.push((name.to_string(), value.value().to_vec()));
            }
            Ok(found)
        })
        .await
    }
}

fn load_tenant(
    tenants: &impl ReadableTable<&'static str, &'static [u8]>,
    id: &TenantId,
) -> Result<Option<TenantRecord>, StoreError> {
    let record = tenants.get(id.as_str()).backend()?;
    record.map(|record| from_json(format_args!("the record of tenant `{id}`"), record.value())).transpose()
}

/// Points every key hash of `record` at it, with the key's current expiry.
fn index_keys(owners: &mut Table<&'static [u8; 32], &'static [u8]>, record: &TenantRecord) -> Result<(), StoreError> {
    for key in &record.keys {
        let owner = KeyOwner { tenant: record.id.clone(), expires_at: key.expires_at };
        owners.insert(key.hash.as_bytes(), to_json(&owner)?.as_slice()).backend()?;
    }
    Ok(())
}

fn add_usage(txn: &WriteTransaction, usage: &[UsageDelta]) -> Result<(), StoreError> {
    let mut days = txn.open_table(USAGE_DAYS).backend()?;
    let mut months = txn.open_table(USAGE_MONTHS).backend()?;
    for UsageDelta { tenant, day, counters } in usage {
        let month = Month::containing(*day);
        add_counters(
            &mut days,
            (tenant.as_str(), day.num_days_from_ce()),
            counters,
            format_args!("`{tenant}` on {day}"),
        )?;
        add_counters(&mut months, (tenant.as_str(), month.key()), counters, format_args!("`{tenant}` in {month}"))?;
    }
    Ok(())
}

fn add_counters<K: Key + 'static>(
    table: &mut Table<K, &'static [u8]>,
    key: K::SelfType<'_>,
    delta: &UsageCounters,
    what: impl Display,
) -> Result<(), StoreError> {
    let mut counters: UsageCounters = match table.get(&key).backend()? {
        Some(stored) => from_json(format_args!("the usage of {what}"), stored.value())?,
        None => UsageCounters::default(),
    };
    counters.add(delta);
    table.insert(&key, to_json(&counters)?.as_slice()).backend()?;
    Ok(())
}

/// Saves checkpoints of tenants that exist now, merged over the stored ones
/// ([`Checkpoint::merged_over`]); a late checkpoint of a deleted tenant must not hand its old
/// windows to a tenant created later under the same id.
fn save_checkpoints(txn: &WriteTransaction, checkpoints: &[(TenantId, Checkpoint)]) -> Result<(), StoreError> {
    let tenants = txn.open_table(TENANTS).backend()?;
    let mut saved = txn.open_table(CHECKPOINTS).backend()?;
    for (id, checkpoint) in checkpoints {
        if tenants.get(id.as_str()).backend()?.is_none() {
            continue;
        }
        // An unreadable stored checkpoint is replaced rather than failing the whole batch.
        let stored: Option<Checkpoint> =
            saved.get(id.as_str()).backend()?.and_then(|stored| serde_json::from_slice(stored.value()).ok());
        let merged = checkpoint.merged_over(stored.as_ref());
        saved.insert(id.as_str(), to_json(&merged)?.as_slice()).backend()?;
    }
    Ok(())
}

fn to_json(value: &impl Serialize) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|err| StoreError::Backend(format!("cannot encode a value to store: {err}")))
}

fn from_json<T: DeserializeOwned>(what: impl Display, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|err| StoreError::Corrupt(format!("{what}: {err}")))
}

/// Maps any redb error to [`StoreError::Backend`]. An extension trait because the orphan rule
/// forbids `From<redb::…Error> for StoreError` here, and there are several redb error types.
trait OrBackend<T> {
    fn backend(self) -> Result<T, StoreError>;
}

impl<T, E: Into<redb::Error>> OrBackend<T> for Result<T, E> {
    fn backend(self) -> Result<T, StoreError> {
        self.map_err(|err| StoreError::Backend(err.into().to_string()))
    }
}

#[cfg(test)]
mod tests {
    use connectors_actors::audit::AuditEvent;
    use tempfile::TempDir;

    use super::*;
    use crate::backends::store_contract::{self, Fixture};

    /// The contract holds with the smallest cache the configuration allows, pages evicted often.
    const SMALLEST_CACHE: usize = 1024 * 1024;

    /// A store file in its own temporary directory, removed with the fixture.
    struct RedbFixture {
        dir: TempDir,
    }

    impl RedbFixture {
        fn new() -> Self {
            Self { dir: TempDir::new().expect("the temporary directory is writable") }
        }

        fn path(&self) -> std::path::PathBuf {
            self.dir.path().join("store.redb")
        }
    }

    #[async_trait]
    impl Fixture for RedbFixture {
        async fn open(&self) -> Arc<dyn Store> {
            Arc::new(RedbStore::open(&self.path(), SMALLEST_CACHE).expect("a fresh store file opens"))
        }
    }

    store_contract::store_contract_tests!(RedbFixture::new());

    /// Steps of any size, ending anywhere in a log or between logs, delete the same events.
    #[tokio::test]
    async fn audit_retention_in_small_steps_deletes_exactly_the_older_events() {
        let before = chrono::DateTime::from_timestamp(1_800_000_000, 500).unwrap();
        let event = |tenant: &str, offset_nanos: i64| AuditEvent {
            timestamp: before + chrono::Duration::nanoseconds(offset_nanos),
            tenant_id: TenantId::parse(tenant).unwrap(),
            user_id: None,
            action: "tools/call".into(),
            tool_id: None,
            params: None,
            result: connectors_actors::audit::AuditResult::Success,
            duration: 1,
            ip: None,
            user_agent: None,
            request_id: format!("{tenant}{offset_nanos}"),
            event_id: None,
        };
        // Per tenant a different number of older events (0 to 3), some in the cutoff's microsecond.
        let offsets: [&[i64]; 4] = [&[1, 1_000_000], &[-1_000_000, 250], &[-3_000, -250, -1, 0, 499], &[-2, 2, -400]];
        let tenants = ["a", "a-b", "b", "c"];
        let audit: Vec<AuditEvent> = tenants
            .iter()
            .zip(offsets)
            .flat_map(|(tenant, offsets)| offsets.iter().map(|offset| event(tenant, *offset)))
            .collect();
        for chunk in [1, 2, 3, 100] {
            let fixture = RedbFixture::new();
            let store = RedbStore::open(&fixture.path(), SMALLEST_CACHE).unwrap();
            store.commit(Arc::new(Batch { audit: audit.clone(), ..Default::default() })).await.unwrap();
            assert_eq!(store.prune_audit(before, chunk).await.unwrap(), 6, "chunk {chunk}");
            for tenant in tenants {
                let query = AuditQuery { since: None, until: None, action: None, limit: 10, after: None };
                let kept = store.audit(&TenantId::parse(tenant).unwrap(), &query).await.unwrap().events;
                assert!(kept.iter().all(|event| event.timestamp >= before), "chunk {chunk}, {tenant}: {kept:?}");
                let expected = audit.iter().filter(|e| e.tenant_id.as_str() == tenant && e.timestamp >= before).count();
                assert_eq!(kept.len(), expected, "chunk {chunk}, {tenant}");
            }
            assert_eq!(store.prune_audit(before, chunk).await.unwrap(), 0, "chunk {chunk}");
        }
    }

    #[test]
    fn a_file_open_elsewhere_is_refused_with_its_path() {
        let fixture = RedbFixture::new();
        let _first = RedbStore::open(&fixture.path(), SMALLEST_CACHE).unwrap();
        let Err(StoreError::Backend(message)) = RedbStore::open(&fixture.path(), SMALLEST_CACHE) else {
            panic!("a second open of a locked file must fail");
        };
        assert!(message.contains(&fixture.path().display().to_string()), "{message}");
        assert!(message.contains("already open"), "{message}");
    }

    #[test]
    fn a_path_that_is_not_a_store_file_is_refused_with_its_path() {
        let fixture = RedbFixture::new();
        let not_a_store = fixture.dir.path().join("notes.txt");
        std::fs::write(&not_a_store, "not a database, but long enough to be mistaken for one ".repeat(100)).unwrap();
        for path in [not_a_store, fixture.dir.path().join("missing").join("store.redb")] {
            let Err(StoreError::Backend(message)) = RedbStore::open(&path, SMALLEST_CACHE) else {
                panic!("{} must not open", path.display());
            };
            assert!(message.contains(&path.display().to_string()), "{message}");
        }
    }

    #[tokio::test]
    async fn unreadable_records_are_reported_as_corrupt() {
        let fixture = RedbFixture::new();
        let store = RedbStore::open(&fixture.path(), SMALLEST_CACHE).unwrap();
        let id = TenantId::parse("broken").unwrap();
        let txn = store.db.begin_write().unwrap();
        txn.open_table(TENANTS).unwrap().insert(id.as_str(), b"{not json".as_slice()).unwrap();
        txn.open_table(USAGE_MONTHS).unwrap().insert((id.as_str(), 202601), b"nope".as_slice()).unwrap();
        txn.commit().unwrap();

        assert!(matches!(store.tenant(&id).await, Err(StoreError::Corrupt(m)) if m.contains("broken")));
        assert!(matches!(store.tenants(&TenantFilter::default(), None, 10).await, Err(StoreError::Corrupt(_))));
        assert!(matches!(store.delete_tenant(&id).await, Err(StoreError::Corrupt(_))));
        let month = Month { year: 2026, month: 1 };
        assert!(matches!(store.usage_of_month(&id, month).await, Err(StoreError::Corrupt(_))));

        // A batch that fails on the unreadable counters leaves nothing behind, not even the
        // audit event appended before the failure.
        let day = NaiveDate::from_ymd_opt(2026, 1, 5).unwrap();
        let event = AuditEvent {
            timestamp: chrono::Utc::now(),
            tenant_id: id.clone(),
            user_id: None,
            action: "tools/call".into(),
            tool_id: None,
            params: None,
            result: connectors_actors::audit::AuditResult::Success,
            duration: 1,
            ip: None,
            user_agent: None,
            request_id: "r1".into(),
            event_id: None,
        };
        let batch = Batch {
            id: None,
            audit: vec![event],
            usage: vec![UsageDelta {
                tenant: id.clone(),
                day,
                counters: UsageCounters { requests: 1, ..Default::default() },
            }],
            checkpoints: vec![],
        };
        assert!(matches!(store.commit(Arc::new(batch)).await, Err(StoreError::Corrupt(_))));
        assert_eq!(store.usage_by_day(&id, day, day).await.unwrap(), vec![]);
        let query = AuditQuery { since: None, until: None, action: None, limit: 10, after: None };
        assert_eq!(store.audit(&id, &query).await.unwrap().events, vec![]);
        let txn = store.db.begin_read().unwrap();
        assert!(txn.open_table(SEQUENCES).unwrap().get(AUDIT_SEQ).unwrap().is_none());
    }
}
