//! The Redis [`Store`]: the shared store of a gateway cluster (`REDIS_URL`), every key under one
//! prefix (`REDIS_TENANT_PREFIX`, e.g. `connectors:`).
//!
//! This file decides how the store's data is laid out in Redis and makes each port method one
//! atomic Redis step (one Lua script, one `MULTI`/`EXEC` or one command) wherever the port
//! promises atomicity, so that it behaves like the embedded `redb_store`. It does not decide what
//! is stored (the port and its contract suite do).
//!
//! Keys, after the prefix (ids are `[a-z0-9-]`, so no id can reach into another key's name):
//!
//! | key | type | value |
//! |---|---|---|
//! | `tenants` | sorted set, all scores 0 | tenant ids, so `ZRANGEBYLEX` lists them in id order |
//! | `tenant:<id>` | string | [`TenantRecord`], JSON |
//! | `tenant:<id>:keys` | set | the names of the tenant's `key:…` keys, to unindex them |
//! | `key:<hash hex>` | string | [`KeyOwner`], JSON |
//! | `checkpoint:<id>` | string | [`Checkpoint`], JSON |
//! | `audit:<id>` | sorted set, all scores 0 | one member per event: position, then the event (`audit_codec`); the only keys matching `audit:*` |
//! | `audit-seq` | string | the last audit sequence number handed out |
//! | `usage:<id>:days` | sorted set | days with usage (`YYYY-MM-DD`), scored by days since 0001-01-01 |
//! | `usage:<id>:day:<YYYY-MM-DD>` | hash | [`UsageCounters`], one integer field per counter |
//! | `usage:<id>:month:<YYYY-MM>` | hash | the same, for the month |
//! | `meta:<key>` | string | bytes, the gateway's own small values |
//! | `entries:<collection>` | hash | entry name → bytes, opaque to the store (`put_entry`, `replace_entry`) |
//! | `commit:<batch id hex>` | string, expires after a day | marks a recorder batch applied, so a retry after a lost answer applies nothing |
//!
//! With `multiTenant.isolation.separateRedisNamespace` the per-tenant keys above move under
//! `tenant:<id>:` (`tenant:<id>:record`, `tenant:<id>:keys`, `tenant:<id>:checkpoint`,
//! `tenant:<id>:audit`, `tenant:<id>:usage:…`; see `redis_namespace`), and retention scans
//! `tenant:*:audit`.
//!
//! An audit member starts with its 16-byte position: the timestamp in µs (big-endian, sign bit
//! flipped so that byte order is time order) and the store-assigned sequence number (big-endian),
//! so `ZRANGEBYLEX` reads a tenant's log in `(timestamp, seq)` order and a position is the same
//! stable cursor as in redb. An event with an id (sent to its tenant's owner on another node, so
//! both nodes may record it) takes a number derived from its id instead ([`position_of_id`]), and
//! a second record of it, finding an entry at that position, is skipped. Usage counters are `HINCRBY`'d, so nodes adding usage at once never
//! lose an update.
//!
//! Retention ([`Store::delete_audit_before`]) finds the logs with `SCAN` (`MATCH audit:*`, never
//! `KEYS`) and cuts each before the cutoff's time prefix with `ZREMRANGEBYLEX`, at most
//! `PRUNE_CHUNK` entries per call (`prune_audit.lua`), so that no call blocks Redis for long. It
//! reads no entry, but those of the cutoff's own microsecond when the cutoff is not a whole one.
//!
//! No hash tags: this adapter targets one Redis (a primary, with replicas or Sentinel for
//! failover), not Redis Cluster. A batch commit spans many tenants' keys in one script, and the
//! tenant scripts delete key-owner keys named by data; in a cluster both would need every key in
//! one hash slot, i.e. one `{tag}` on everything, which shards nothing. The store's traffic is
//! small (admission runs in the tenant actors, not here), so one Redis is enough.

use std::collections::HashMap;
use std::fmt::Display;
use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use connectors_actors::api_key::KeyHash;
use connectors_actors::audit::{AuditCursor, AuditPage, AuditQuery};
use connectors_actors::store::{Batch, Checkpoint, KeyOwner, Store, StoreError, TenantFilter, TenantPage};
use connectors_actors::tenant::{TenantId, TenantRecord};
use connectors_actors::usage::{Month, UsageCounters};
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::audit_codec;
use super::redis_connection::RedisConnection;
use super::redis_namespace::{LAYOUT_META, RedisLayout};

static CREATE_TENANT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("redis_store/create_tenant.lua")));
static UPDATE_TENANT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("redis_store/update_tenant.lua")));
static DELETE_TENANT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("redis_store/delete_tenant.lua")));
/// How long a committed batch's id is remembered: far longer than any retry of it.
const COMMITTED_TTL_SECONDS: u64 = 86_400;

static COMMIT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("redis_store/commit.lua")));
static REPLACE_ENTRY: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("redis_store/replace_entry.lua")));
static PRUNE_AUDIT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("redis_store/prune_audit.lua")));

/// The usage counter merged with `max` rather than added (see [`UsageCounters::add`]); its name
/// as serde writes it, which is the hash field name.
const GAUGE_FIELD: &str = "customServers";

/// Ids or audit entries read per round trip when a read must walk more than one page's worth.
const SCAN_CHUNK: usize = 500;
/// Audit events per commit at most. A commit is one Lua script, and Redis runs nothing else while
/// it runs: not the other nodes' commits, nor any node's membership heartbeat. Commits of 30,000
/// to 55,000 events took 0.3–1.5 s each under `bench cluster`, back to back, until every node's
/// lease ran out; commits of 2,048 took 0.2 s at most there.
const COMMIT_EVENTS: usize = 2_048;
/// The least audit entries read per round trip when an action filter may reject most of them.
const FILTERED_CHUNK: usize = 100;
/// The `COUNT` of each `SCAN` for audit logs: keys looked at per round trip (as a hint to Redis).
const AUDIT_SCAN_COUNT: usize = 1_000;
/// The most audit entries one call of `prune_audit.lua` deletes: Redis runs one command at a
/// time, and a log may hold millions of expired entries when retention is first enabled.
const PRUNE_CHUNK: usize = 10_000;

pub struct RedisStore {
    redis: RedisConnection,
    keys: Keys,
}

impl RedisStore {
    /// Connects to the Redis at `url`, keeping every key under `prefix`. Fails within a few
    /// seconds, naming the URL (not its password), when Redis does not answer.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, StoreError> {
        let keys = Keys { prefix: prefix.to_string(), layout: RedisLayout::Shared };
        Ok(Self { redis: RedisConnection::connect(url).await?, keys })
    }

    /// Lays tenants' keys out as `layout` says (see `redis_namespace`): recorded the first time,
    /// and refused when the store holds tenants under the other layout.
    pub async fn with_layout(mut self, layout: RedisLayout) -> Result<Self, StoreError> {
        self.keys.layout = layout;
        match self.meta(LAYOUT_META).await? {
            Some(recorded) if recorded == layout.as_str().as_bytes() => Ok(self),
            Some(recorded) => Err(StoreError::Backend(format!(
                "this Redis holds tenants laid out `{}`, and multiTenant.isolation.separateRedisNamespace asks for `{}`; \
                 set it back, or migrate the keys first",
                String::from_utf8_lossy(&recorded),
                layout.as_str()
            ))),
            None => {
                let tenants: u64 =
                    self.conn().zcard(self.keys.tenant_index()).await.map_err(|err| self.redis.failure(err))?;
                if tenants > 0 && layout != RedisLayout::Shared {
                    return Err(StoreError::Backend(format!(
                        "this Redis holds {tenants} tenants laid out `shared`; multiTenant.isolation.separateRedisNamespace \
                         applies to a new store only"
                    )));
                }
                self.set_meta(LAYOUT_META, layout.as_str().as_bytes()).await?;
                Ok(self)
            }
        }
    }

    fn conn(&self) -> ConnectionManager {
        self.redis.handle()
    }

    /// Runs one tenant script; `Ok(false)` when it refused because of the tenant's existence.
    async fn run_tenant_script(&self, script: &Script, keys: &[String], args: &[Vec<u8>]) -> Result<bool, StoreError> {
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(key);
        }
        for arg in args {
            invocation.arg(arg.as_slice());
        }
        let done: i64 = invocation.invoke_async(&mut self.conn()).await.map_err(|err| self.redis.failure(err))?;
        Ok(done == 1)
    }

    /// The key-owner keys and values of `record`'s API keys, for a tenant script.
    fn key_index(&self, record: &TenantRecord) -> Result<(Vec<String>, Vec<Vec<u8>>), StoreError> {
        let mut keys = Vec::with_capacity(record.keys.len());
        let mut owners = Vec::with_capacity(record.keys.len());
        for key in &record.keys {
            keys.push(self.keys.key_owner(&key.hash));
            owners.push(to_json(&KeyOwner { tenant: record.id.clone(), expires_at: key.expires_at })?);
        }
        Ok((keys, owners))
    }

    /// The records of `ids`, skipping any deleted since the ids were read.
    async fn records(&self, ids: &[String]) -> Result<Vec<TenantRecord>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| self.keys.tenant_by_name(id)).collect();
        let values: Vec<Option<Vec<u8>>> = self.conn().mget(&keys).await.map_err(|err| self.redis.failure(err))?;
        let mut records = Vec::with_capacity(values.len());
        for (id, value) in ids.iter().zip(values) {
            if let Some(value) = value {
                records.push(from_json(format_args!("the record of tenant `{id}`"), &value)?);
            }
        }
        Ok(records)
    }

    /// One page of all tenants: the total is the index size, so only the page is read.
    async fn unfiltered_page(&self, after: Option<&TenantId>, limit: usize) -> Result<TenantPage, StoreError> {
        let index = self.keys.tenant_index();
        let (total, mut ids): (u64, Vec<String>) = redis::pipe()
            .atomic()
            .zcard(&index)
            .zrangebylex_limit(&index, after_id(after), "+", 0, limit.saturating_add(1) as isize)
            .query_async(&mut self.conn())
            .await
            .map_err(|err| self.redis.failure(err))?;
        let more = ids.len() > limit;
        ids.truncate(limit);
        let next = ids.last().filter(|_| more).map(|last| parse_id(last)).transpose()?;
        Ok(TenantPage { tenants: self.records(&ids).await?, total, next })
    }

    /// One page of the tenants matching `filter`: the total needs every match, so this walks
    /// every record, a chunk per round trip, as redb's one pass does.
    async fn filtered_page(
        &self,
        filter: &TenantFilter,
        after: Option<&TenantId>,
        limit: usize,
    ) -> Result<TenantPage, StoreError> {
        let index = self.keys.tenant_index();
        let mut tenants = Vec::new();
        let mut total = 0u64;
        let mut more = false;
        let mut from = "-".to_string();
        loop {
            let ids: Vec<String> = self
                .conn()
                .zrangebylex_limit(&index, &from, "+", 0, SCAN_CHUNK as isize)
                .await
                .map_err(|err| self.redis.failure(err))?;
            for record in self.records(&ids).await? {
                if !filter.matches(&record) {
                    continue;
                }
                total += 1;
                if after.is_some_and(|after| &record.id <= after) {
                    continue;
                }
                if tenants.len() < limit {
                    tenants.push(record);
                } else {
                    more = true;
                }
            }
            match ids.last() {
                Some(last) if ids.len() == SCAN_CHUNK => from = format!("({last}"),
                _ => break,
            }
        }
        let next = tenants.last().filter(|_| more).map(|last| last.id.clone());
        Ok(TenantPage { tenants, total, next })
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.conn().get(key).await.map_err(|err| self.redis.failure(err))
    }

    /// Of the `logs` (tenant, key), deletes the entries in the cutoff's own microsecond whose
    /// event is older than `before` (positions round times down to whole microseconds); answers
    /// how many. Only for a `before` that is not a whole microsecond: the entries are few, but
    /// only their events tell.
    async fn delete_split_micro(&self, logs: &[(TenantId, Vec<u8>)], before: DateTime<Utc>) -> Result<u64, StoreError> {
        let cutoff = before.timestamp_micros();
        let from = inclusive(&time_prefix(cutoff));
        let to = match cutoff.checked_add(1) {
            Some(end) => exclusive(&time_prefix(end)),
            None => b"+".to_vec(),
        };
        let mut reads = redis::pipe();
        for (_, key) in logs {
            reads.zrangebylex(key, &from, &to);
        }
        let found: Vec<Vec<Vec<u8>>> =
            reads.query_async(&mut self.conn()).await.map_err(|err| self.redis.failure(err))?;
        let mut removals = redis::pipe();
        let mut any = false;
        for ((tenant, key), entries) in logs.iter().zip(found) {
            let mut older = Vec::new();
            for entry in entries {
                if decode_entry(tenant, &entry)?.1.timestamp < before {
                    older.push(entry);
                }
            }
            if !older.is_empty() {
                removals.zrem(key, older);
                any = true;
            }
        }
        if !any {
            return Ok(0);
        }
        let removed: Vec<u64> = removals.query_async(&mut self.conn()).await.map_err(|err| self.redis.failure(err))?;
        Ok(removed.iter().sum())
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn create_tenant(&self, record: &TenantRecord) -> Result<(), StoreError> {
        let id = &record.id;
        let (owner_keys, owners) = self.key_index(record)?;
        let mut keys = vec![self.keys.tenant(id), self.keys.tenant_index(), self.keys.tenant_keys(id)];
        keys.extend(owner_keys);
        let mut args = vec![id.as_str().as_bytes().to_vec(), to_json(record)?];
        args.extend(owners);
        match self.run_tenant_script(&CREATE_TENANT, &keys, &args).await? {
            true => Ok(()),
            false => Err(StoreError::Conflict(id.clone())),
        }
    }

    async fn update_tenant(&self, record: &TenantRecord) -> Result<(), StoreError> {
        let id = &record.id;
        let (owner_keys, owners) = self.key_index(record)?;
        let mut keys = vec![self.keys.tenant(id), self.keys.tenant_keys(id)];
        keys.extend(owner_keys);
        let mut args = vec![to_json(record)?];
        args.extend(owners);
        match self.run_tenant_script(&UPDATE_TENANT, &keys, &args).await? {
            true => Ok(()),
            false => Err(StoreError::NotFound(id.clone())),
        }
    }

    async fn delete_tenant(&self, id: &TenantId) -> Result<(), StoreError> {
        let keys =
            [self.keys.tenant(id), self.keys.tenant_index(), self.keys.tenant_keys(id), self.keys.checkpoint(id)];
        match self.run_tenant_script(&DELETE_TENANT, &keys, &[id.as_str().as_bytes().to_vec()]).await? {
            true => Ok(()),
            false => Err(StoreError::NotFound(id.clone())),
        }
    }

    async fn tenant(&self, id: &TenantId) -> Result<Option<TenantRecord>, StoreError> {
        let record = self.get(&self.keys.tenant(id)).await?;
        record.map(|record| from_json(format_args!("the record of tenant `{id}`"), &record)).transpose()
    }

    async fn tenants(
        &self,
        filter: &TenantFilter,
        after: Option<&TenantId>,
        limit: usize,
    ) -> Result<TenantPage, StoreError> {
        if *filter == TenantFilter::default() {
            self.unfiltered_page(after, limit).await
        } else {
            self.filtered_page(filter, after, limit).await
        }
    }

    async fn key_owner(&self, hash: &KeyHash) -> Result<Option<KeyOwner>, StoreError> {
        let owner = self.get(&self.keys.key_owner(hash)).await?;
        owner.map(|owner| from_json(format_args!("the owner of {hash:?}"), &owner)).transpose()
    }

    fn max_commit_events(&self) -> usize {
        COMMIT_EVENTS
    }

    async fn commit(&self, batch: Arc<Batch>) -> Result<(), StoreError> {
        // The argument layout is the one commit.lua reads; see its header.
        let mut invocation = COMMIT.prepare_invoke();
        invocation.key(self.keys.audit_seq());
        invocation.arg(batch.audit.len()).arg(batch.usage.len()).arg(batch.checkpoints.len()).arg(GAUGE_FIELD);
        for event in &batch.audit {
            let mut entry = time_prefix(event.timestamp.timestamp_micros()).to_vec();
            entry.extend(audit_codec::encode(event)?);
            let position = event.event_id.as_deref().map(position_of_id);
            invocation
                .key(self.keys.audit(&event.tenant_id))
                .arg(entry)
                .arg(position.as_ref().map_or(&[][..], |p| &p[..]));
        }
        for delta in &batch.usage {
            let (tenant, day) = (&delta.tenant, delta.day);
            invocation
                .key(self.keys.usage_day(tenant, day))
                .key(self.keys.usage_days(tenant))
                .key(self.keys.usage_month(tenant, Month::containing(day)));
            let adds = counter_fields(&delta.counters)?;
            invocation.arg(day.num_days_from_ce()).arg(day.to_string()).arg(delta.counters.custom_servers);
            invocation.arg(adds.len());
            for (field, by) in adds {
                invocation.arg(field).arg(by);
            }
        }
        for (id, checkpoint) in &batch.checkpoints {
            invocation.key(self.keys.tenant(id)).key(self.keys.checkpoint(id));
            for window in checkpoint.windows {
                invocation.arg(window.start).arg(window.count);
            }
        }
        // Last: the key that marks the batch applied (a retry after a lost answer is a no-op).
        match batch.id {
            Some(batch_id) => invocation.key(self.keys.committed(batch_id)).arg(COMMITTED_TTL_SECONDS),
            None => invocation.arg(0),
        };
        let _appended: u64 = invocation.invoke_async(&mut self.conn()).await.map_err(|err| self.redis.failure(err))?;
        Ok(())
    }

    async fn checkpoint(&self, id: &TenantId) -> Result<Option<Checkpoint>, StoreError> {
        let saved = self.get(&self.keys.checkpoint(id)).await?;
        saved.map(|saved| from_json(format_args!("the checkpoint of `{id}`"), &saved)).transpose()
    }

    async fn usage_by_day(
        &self,
        id: &TenantId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<(NaiveDate, UsageCounters)>, StoreError> {
        let days: Vec<String> = self
            .conn()
            .zrangebyscore(self.keys.usage_days(id), from.num_days_from_ce(), to.num_days_from_ce())
            .await
            .map_err(|err| self.redis.failure(err))?;
        let mut dates = Vec::with_capacity(days.len());
        let mut reads = redis::pipe();
        for day in &days {
            let date: NaiveDate = day
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("usage of `{id}` is kept for day `{day}`, not a date")))?;
            reads.hgetall(self.keys.usage_day(id, date));
            dates.push(date);
        }
        if dates.is_empty() {
            return Ok(Vec::new());
        }
        let hashes: Vec<HashMap<String, String>> =
            reads.query_async(&mut self.conn()).await.map_err(|err| self.redis.failure(err))?;
        dates
            .into_iter()
            .zip(hashes)
            .map(|(date, fields)| Ok((date, counters_from_fields(fields, format_args!("`{id}` on {date}"))?)))
            .collect()
    }

    async fn usage_of_month(&self, id: &TenantId, month: Month) -> Result<UsageCounters, StoreError> {
        let fields: HashMap<String, String> =
            self.conn().hgetall(self.keys.usage_month(id, month)).await.map_err(|err| self.redis.failure(err))?;
        counters_from_fields(fields, format_args!("`{id}` in {month}"))
    }

    async fn audit(&self, id: &TenantId, query: &AuditQuery) -> Result<AuditPage, StoreError> {
        if query.limit == 0 {
            return Ok(AuditPage { events: Vec::new(), next: None });
        }
        let log = self.keys.audit(id);
        // Positions hold whole microseconds, rounded down, so these bounds take in every event
        // `query.matches` can accept; the few sub-microsecond misses are filtered below.
        let since = query.since.map_or(i64::MIN, |since| since.timestamp_micros());
        let until = query.until.map_or(i64::MAX, |until| until.timestamp_micros());
        let mut from = match query.after {
            Some(after) if (after.timestamp_micros, after.seq) >= (since, 0) => after_position(after),
            _ => Some(inclusive(&time_prefix(since))),
        };
        let to = match until.checked_add(1) {
            Some(end) => exclusive(&time_prefix(end)),
            None => b"+".to_vec(),
        };
        let mut events = Vec::new();
        let mut last = None;
        let mut more = false;
        // Reads chunk by chunk until the page is full and one more entry is seen (as redb does,
        // a cursor only when the range holds more entries, which may all fail the filter).
        'read: while let Some(start) = from.take() {
            // Exactly what the page still needs, plus one to see whether more follow; more
            // when an action filter may reject much of what is read.
            let wanted = (query.limit - events.len()).saturating_add(1);
            let chunk = if query.action.is_some() { wanted.max(FILTERED_CHUNK) } else { wanted }.min(SCAN_CHUNK);
            let entries: Vec<Vec<u8>> = self
                .conn()
                .zrangebylex_limit(&log, start, &to, 0, chunk as isize)
                .await
                .map_err(|err| self.redis.failure(err))?;
            for entry in &entries {
                if events.len() == query.limit {
                    more = true;
                    break 'read;
                }
                let (position, event) = decode_entry(id, entry)?;
                if query.matches(&event) {
                    events.push(event);
                    last = Some(position);
                }
            }
            if entries.len() == chunk {
                from = entries.last().map(|entry| exclusive(entry));
            }
        }
        Ok(AuditPage { events, next: last.filter(|_| more) })
    }

    async fn delete_audit_before(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        // Every entry of an earlier microsecond sorts before the cutoff's time prefix.
        let older = exclusive(&time_prefix(before.timestamp_micros()));
        let split_micro = !before.timestamp_subsec_nanos().is_multiple_of(1_000);
        let pattern = self.keys.audit_pattern();
        let mut deleted = 0;
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .cursor_arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(AUDIT_SCAN_COUNT)
                .query_async(&mut self.conn())
                .await
                .map_err(|err| self.redis.failure(err))?;
            // SCAN answers every key that exists throughout, some perhaps twice (cutting again
            // deletes nothing); the check keeps to keys that are a tenant's log.
            let logs: Vec<(TenantId, Vec<u8>)> =
                keys.into_iter().filter_map(|key| Some((self.keys.audit_tenant(&key)?, key))).collect();
            // One pipeline per round for the page's logs; again for those whose call deleted
            // the most it may, until none has more.
            let mut pending: Vec<&[u8]> = logs.iter().map(|(_, key)| key.as_slice()).collect();
            while !pending.is_empty() {
                let calls: Vec<_> = pending
                    .iter()
                    .map(|key| {
                        let mut call = PRUNE_AUDIT.key(*key);
                        call.arg(&older).arg(PRUNE_CHUNK);
                        call
                    })
                    .collect();
                let mut round = redis::pipe();
                // EVALSHA in a pipeline does not load the script on NOSCRIPT, so load it first.
                round.load_script(&PRUNE_AUDIT).ignore();
                for call in &calls {
                    round.invoke_script(call);
                }
                let removed: Vec<u64> =
                    round.query_async(&mut self.conn()).await.map_err(|err| self.redis.failure(err))?;
                deleted += removed.iter().sum::<u64>();
                pending = pending
                    .into_iter()
                    .zip(removed)
                    .filter(|(_, n)| *n >= PRUNE_CHUNK as u64)
                    .map(|(key, _)| key)
                    .collect();
            }
            if split_micro && !logs.is_empty() {
                deleted += self.delete_split_micro(&logs, before).await?;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }

    async fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(&self.keys.meta(key)).await
    }

    async fn set_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.conn().set(self.keys.meta(key), value).await.map_err(|err| self.redis.failure(err))
    }

    async fn put_entry(&self, collection: &str, name: &str, value: &[u8]) -> Result<(), StoreError> {
        self.conn().hset(self.keys.entries(collection), name, value).await.map_err(|err| self.redis.failure(err))
    }

    async fn delete_entry(&self, collection: &str, name: &str) -> Result<bool, StoreError> {
        let removed: i64 =
            self.conn().hdel(self.keys.entries(collection), name).await.map_err(|err| self.redis.failure(err))?;
        Ok(removed > 0)
    }

    async fn replace_entry(
        &self,
        collection: &str,
        name: &str,
        expected: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Result<bool, StoreError> {
        // The argument layout is the one replace_entry.lua reads; see its header.
        let flag = |given: Option<&[u8]>| if given.is_some() { "1" } else { "0" };
        let mut invocation = REPLACE_ENTRY.prepare_invoke();
        invocation.key(self.keys.entries(collection)).arg(name);
        invocation.arg(flag(expected)).arg(expected.unwrap_or_default());
        invocation.arg(flag(value)).arg(value.unwrap_or_default());
        let written: i64 = invocation.invoke_async(&mut self.conn()).await.map_err(|err| self.redis.failure(err))?;
        Ok(written == 1)
    }

    async fn entries(&self, collection: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let all: std::collections::HashMap<String, Vec<u8>> =
            self.conn().hgetall(self.keys.entries(collection)).await.map_err(|err| self.redis.failure(err))?;
        let mut entries: Vec<(String, Vec<u8>)> = all.into_iter().collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(entries)
    }
}

/// The names of the store's keys; the table in the module doc.
struct Keys {
    prefix: String,
    layout: RedisLayout,
}

impl Keys {
    fn entries(&self, collection: &str) -> String {
        format!("{}entries:{collection}", self.prefix)
    }

    fn tenant_index(&self) -> String {
        format!("{}tenants", self.prefix)
    }

    fn tenant(&self, id: &TenantId) -> String {
        self.tenant_by_name(id.as_str())
    }

    /// For ids read back from the index, which are not parsed just to name a key.
    fn tenant_by_name(&self, id: &str) -> String {
        match self.layout {
            RedisLayout::Shared => format!("{}tenant:{id}", self.prefix),
            RedisLayout::Separate => format!("{}tenant:{id}:record", self.prefix),
        }
    }

    fn tenant_keys(&self, id: &TenantId) -> String {
        format!("{}tenant:{id}:keys", self.prefix)
    }

    fn key_owner(&self, hash: &KeyHash) -> String {
        format!("{}key:{}", self.prefix, hex::encode(hash.as_bytes()))
    }

    fn checkpoint(&self, id: &TenantId) -> String {
        self.layout.tenant_key(&self.prefix, "checkpoint", id.as_str(), "")
    }

    fn audit(&self, id: &TenantId) -> String {
        self.layout.tenant_key(&self.prefix, "audit", id.as_str(), "")
    }

    /// The `SCAN` pattern of every tenant's audit log: `audit:*`, the prefix's glob characters
    /// escaped so that they match only themselves.
    fn audit_pattern(&self) -> String {
        let mut pattern = String::with_capacity(self.prefix.len() + 8);
        for c in self.prefix.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push_str(match self.layout {
            RedisLayout::Shared => "audit:*",
            RedisLayout::Separate => "tenant:*:audit",
        });
        pattern
    }

    /// The tenant whose audit log `key` is; `None` for any other key (`audit-seq` included).
    fn audit_tenant(&self, key: &[u8]) -> Option<TenantId> {
        let rest = key.strip_prefix(self.prefix.as_bytes())?;
        let id = match self.layout {
            RedisLayout::Shared => rest.strip_prefix(b"audit:")?,
            RedisLayout::Separate => rest.strip_prefix(b"tenant:")?.strip_suffix(b":audit")?,
        };
        TenantId::parse(std::str::from_utf8(id).ok()?).ok()
    }

    fn committed(&self, batch: u128) -> String {
        format!("{}commit:{batch:032x}", self.prefix)
    }

    fn audit_seq(&self) -> String {
        format!("{}audit-seq", self.prefix)
    }

    fn usage_days(&self, id: &TenantId) -> String {
        self.layout.tenant_key(&self.prefix, "usage", id.as_str(), ":days")
    }

    fn usage_day(&self, id: &TenantId, day: NaiveDate) -> String {
        self.layout.tenant_key(&self.prefix, "usage", id.as_str(), &format!(":day:{day}"))
    }

    fn usage_month(&self, id: &TenantId, month: Month) -> String {
        self.layout.tenant_key(&self.prefix, "usage", id.as_str(), &format!(":month:{month}"))
    }

    fn meta(&self, key: &str) -> String {
        format!("{}meta:{key}", self.prefix)
    }
}

/// The `ZRANGEBYLEX` lower bound of ids after `after`.
fn after_id(after: Option<&TenantId>) -> String {
    after.map_or_else(|| "-".to_string(), |after| format!("({after}"))
}

fn parse_id(text: &str) -> Result<TenantId, StoreError> {
    TenantId::parse(text).map_err(|err| StoreError::Corrupt(format!("the tenant index holds {err}")))
}

/// The first 8 bytes of an audit position: the time, ordered as bytes as it is as a number.
fn time_prefix(micros: i64) -> [u8; 8] {
    ((micros as u64) ^ (1 << 63)).to_be_bytes()
}

/// The position of an audit event with an id (one sent to its tenant's owner, which two nodes may
/// both record) in place of a store-assigned number: the same on every node, so the script finds
/// a second record of the event at the first one's position and skips it, with no key to keep
/// per event. FNV-1a of the id with the top bit set, above every number the store hands out
/// (< 2^53). Two such events of one tenant collide only when within the same microsecond their
/// 63-bit hashes are equal.
fn position_of_id(id: &str) -> [u8; 8] {
    let hash = id
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3));
    (hash | 1 << 63).to_be_bytes()
}

fn position_bytes(position: AuditCursor) -> Vec<u8> {
    let mut bytes = time_prefix(position.timestamp_micros).to_vec();
    bytes.extend(position.seq.to_be_bytes());
    bytes
}

/// The `ZRANGEBYLEX` lower bound of entries after `after`; `None` when nothing can follow it.
fn after_position(after: AuditCursor) -> Option<Vec<u8>> {
    // Entries are a position plus the event, so "after every entry at `after`" is "from the
    // next position on".
    let next = match after.seq.checked_add(1) {
        Some(seq) => AuditCursor { seq, ..after },
        None => AuditCursor { timestamp_micros: after.timestamp_micros.checked_add(1)?, seq: 0 },
    };
    Some(inclusive(&position_bytes(next)))
}

fn inclusive(bound: &[u8]) -> Vec<u8> {
    [b"[".as_slice(), bound].concat()
}

fn exclusive(bound: &[u8]) -> Vec<u8> {
    [b"(".as_slice(), bound].concat()
}

fn decode_entry(
    tenant: &TenantId,
    entry: &[u8],
) -> Result<(AuditCursor, connectors_actors::audit::AuditEvent), StoreError> {
    let corrupt = || StoreError::Corrupt(format!("an audit entry of `{tenant}` is {} bytes long", entry.len()));
    let (time, rest) = entry.split_first_chunk::<8>().ok_or_else(corrupt)?;
    let (seq, event) = rest.split_first_chunk::<8>().ok_or_else(corrupt)?;
    let position =
        AuditCursor { timestamp_micros: (u64::from_be_bytes(*time) ^ (1 << 63)) as i64, seq: u64::from_be_bytes(*seq) };
    Ok((position, audit_codec::decode(tenant, event)?))
}

/// The counters to add with `HINCRBY`, by their serde names (the hash fields): every non-zero
/// one but the gauge, which the script merges with `max`.
fn counter_fields(counters: &UsageCounters) -> Result<Vec<(String, u64)>, StoreError> {
    let serde_json::Value::Object(fields) = serde_json::to_value(counters)
        .map_err(|err| StoreError::Backend(format!("cannot encode usage counters: {err}")))?
    else {
        return Err(StoreError::Backend("usage counters do not encode as an object".into()));
    };
    Ok(fields
        .into_iter()
        .filter(|(field, _)| field != GAUGE_FIELD)
        .filter_map(|(field, value)| value.as_u64().filter(|by| *by > 0).map(|by| (field, by)))
        .collect())
}

fn counters_from_fields(fields: HashMap<String, String>, what: impl Display) -> Result<UsageCounters, StoreError> {
    let mut object = serde_json::Map::new();
    for (field, value) in fields {
        let value: u64 = value
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("the usage of {what}: `{field}` is `{value}`, not a count")))?;
        object.insert(field, value.into());
    }
    serde_json::from_value(object.into()).map_err(|err| StoreError::Corrupt(format!("the usage of {what}: {err}")))
}

fn to_json(value: &impl Serialize) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|err| StoreError::Backend(format!("cannot encode a value to store: {err}")))
}

fn from_json<T: DeserializeOwned>(what: impl Display, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|err| StoreError::Corrupt(format!("{what}: {err}")))
}

#[cfg(test)]
#[path = "redis_store_tests.rs"]
mod tests;
