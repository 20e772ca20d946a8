//! The audit log's layout in the embedded store, and the migration of older layouts.
//!
//! Audit events are the store's largest stream (one per request), and a B-tree insert per event
//! cost more than anything else in a commit. So a commit appends, per tenant, one value (a
//! *chunk*) holding that tenant's events of the commit. Format 2, table `audit_chunks`:
//!
//! | key | value |
//! |---|---|
//! | (tenant id, first event's microsecond, its sequence number) | the chunk's events, each with its sequence number, in (microsecond, sequence number) order (`audit_codec`) |
//!
//! A chunk holds at most [`MAX_EVENTS`] events, its last at most [`MAX_SPAN_MICROS`] after its
//! first. Chunks of different commits overlap in time: an event is timestamped when its request
//! started and committed after it ended, and a peer may deliver an owner's events late. A read
//! therefore starts [`MAX_SPAN_MICROS`] before its position and merges: it gives an event only
//! once no chunk it has not read can hold an earlier one. The order and the cursors are those of
//! format 1: (microsecond, sequence number).
//!
//! Format 1, table `audit`: (tenant id, microsecond, sequence number) → one event. Opening a file
//! of format 1 moves its events into chunks, [`MIGRATION_STEP`] events per transaction, so that a
//! migration cut short goes on where it stopped at the next opening. The format's number is kept
//! in the table `formats` under `audit`; a number this build does not know refuses the file.

use std::collections::BTreeMap;
use std::ops::{Bound, RangeBounds};

use chrono::{DateTime, Utc};
use connectors_actors::audit::{AuditCursor, AuditEvent, AuditPage, AuditQuery};
use connectors_actors::store::StoreError;
use connectors_actors::tenant::TenantId;
use redb::{
    Database, ReadTransaction, ReadableTable, ReadableTableMetadata, Table, TableDefinition, TableHandle,
    WriteTransaction,
};

use super::{AUDIT_SEQ, OrBackend, SEQUENCES};
use crate::backends::audit_codec;

pub(super) const CHUNKS: TableDefinition<(&str, i64, u64), &[u8]> = TableDefinition::new("audit_chunks");
const EVENTS_V1: TableDefinition<(&str, i64, u64), &[u8]> = TableDefinition::new("audit");
const FORMATS: TableDefinition<&str, u64> = TableDefinition::new("formats");
const FORMAT_KEY: &str = "audit";
const FORMAT: u64 = 2;

/// Events per chunk at most: a read of a page decodes whole chunks.
const MAX_EVENTS: usize = 128;
/// From a chunk's first event's microsecond to its last's, at most. Part of the format: a read
/// relies on it to know how far back a chunk holding its position can start.
const MAX_SPAN_MICROS: i64 = 2_000_000;
/// Format-1 events moved per transaction when a file is migrated.
pub(super) const MIGRATION_STEP: usize = 50_000;

type Log<'txn> = Table<'txn, (&'static str, i64, u64), &'static [u8]>;

/// Brings the file's audit log to this build's format: a fresh file gets it, format-1 events are
/// migrated (also those an earlier build wrote after a migration, run again after this one), a
/// file of an unknown format is refused.
pub(super) fn prepare(db: &Database, step: usize) -> Result<(), StoreError> {
    let mut moved = 0u64;
    loop {
        let txn = db.begin_write().backend()?;
        let format = txn.open_table(FORMATS).backend()?.get(FORMAT_KEY).backend()?.map(|format| format.value());
        if let Some(unknown) = format.filter(|format| *format > FORMAT) {
            return Err(StoreError::Backend(format!(
                "its audit log is of format {unknown}, which this build (format {FORMAT}) does not know; \
                 open it with the build that wrote it or a later one"
            )));
        }
        let progress = migrate_step(&txn, step)?;
        if progress.is_none() && format == Some(FORMAT) {
            return txn.abort().backend();
        }
        let (count, done) = progress.unwrap_or((0, true));
        if done {
            txn.open_table(FORMATS).backend()?.insert(FORMAT_KEY, FORMAT).backend()?;
        }
        txn.commit().backend()?;
        moved += count;
        if done {
            if moved > 0 {
                tracing::info!(
                    events = moved,
                    "the audit log moved to format {FORMAT}: one chunk per tenant and commit"
                );
            }
            return Ok(());
        }
        tracing::info!(events = moved, "moving the audit log to format {FORMAT}");
    }
}

/// Moves up to `step` format-1 events into chunks; answers how many and whether none are left
/// (the format-1 table is then deleted), or `None` when there is no format-1 table.
fn migrate_step(txn: &WriteTransaction, step: usize) -> Result<Option<(u64, bool)>, StoreError> {
    txn.open_table(CHUNKS).backend()?;
    if !txn.list_tables().backend()?.any(|table| table.name() == EVENTS_V1.name()) {
        return Ok(None);
    }
    let mut old = txn.open_table(EVENTS_V1).backend()?;
    let mut moved = Vec::new();
    while moved.len() < step {
        let Some((key, value)) = old.pop_first().backend()? else { break };
        let (tenant, _, seq) = key.value();
        moved.push((seq, audit_codec::decode(&log_owner(tenant)?, value.value())?));
    }
    let done = old.is_empty().backend()?;
    drop(old);
    write_chunks(&mut txn.open_table(CHUNKS).backend()?, moved.iter().map(|(seq, event)| (*seq, event)))?;
    if done {
        txn.delete_table(EVENTS_V1).backend()?;
    }
    Ok(Some((moved.len() as u64, done)))
}

/// Appends events to their tenants' logs, numbering them after the last number ever handed out,
/// so a number is never reused, not even after a restart.
pub(super) fn append(txn: &WriteTransaction, events: &[AuditEvent]) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let mut sequences = txn.open_table(SEQUENCES).backend()?;
    let last = sequences.get(AUDIT_SEQ).backend()?.map_or(0, |last| last.value());
    sequences.insert(AUDIT_SEQ, last + events.len() as u64).backend()?;
    write_chunks(&mut txn.open_table(CHUNKS).backend()?, (last + 1..).zip(events))
}

/// Writes `entries` (sequence number, event) as chunks: by tenant, in (microsecond, sequence
/// number) order, cut at [`MAX_EVENTS`] and [`MAX_SPAN_MICROS`].
fn write_chunks<'e>(log: &mut Log<'_>, entries: impl Iterator<Item = (u64, &'e AuditEvent)>) -> Result<(), StoreError> {
    let mut entries: Vec<(&str, i64, u64, &AuditEvent)> =
        entries.map(|(seq, event)| (event.tenant_id.as_str(), audit_codec::stored_micros(event), seq, event)).collect();
    entries.sort_unstable_by_key(|&(tenant, micros, seq, _)| (tenant, micros, seq));
    let mut rest = entries.as_slice();
    while let Some(&(tenant, first_micros, first_seq, _)) = rest.first() {
        let len = rest
            .iter()
            .take(MAX_EVENTS)
            .take_while(|&&(owner, micros, _, _)| {
                owner == tenant && micros.saturating_sub(first_micros) <= MAX_SPAN_MICROS
            })
            .count();
        let (chunk, later) = rest.split_at(len);
        let chunk = audit_codec::encode_chunk(chunk.iter().map(|&(_, _, seq, event)| (seq, event)))?;
        log.insert((tenant, first_micros, first_seq), chunk.as_slice()).backend()?;
        rest = later;
    }
    Ok(())
}

/// One page of a tenant's log, oldest first.
pub(super) fn page(txn: &ReadTransaction, id: &TenantId, query: &AuditQuery) -> Result<AuditPage, StoreError> {
    let log = txn.open_table(CHUNKS).backend()?;
    // Positions hold whole microseconds, rounded down, so this range takes in every event
    // `query.matches` can accept; the few sub-microsecond misses are filtered below.
    let since = query.since.map_or(i64::MIN, |since| since.timestamp_micros());
    let until = (query.until.map_or(i64::MAX, |until| until.timestamp_micros()), u64::MAX);
    let (from, from_micros) = match query.after {
        Some(after) if (after.timestamp_micros, after.seq) >= (since, 0) => {
            (Bound::Excluded((after.timestamp_micros, after.seq)), after.timestamp_micros)
        }
        _ => (Bound::Included((since, 0)), since),
    };
    let wanted = (from, Bound::Included(until));
    let tenant = id.as_str();
    let first = (tenant, from_micros.saturating_sub(MAX_SPAN_MICROS), 0);
    let mut chunks = log.range(first..=(tenant, until.0, until.1)).backend()?;

    // Events read but not given yet, by position. One is given once it is earlier than the next
    // chunk's first event: that chunk, and every one after it, start later.
    let mut read: BTreeMap<(i64, u64), AuditEvent> = BTreeMap::new();
    let mut next_chunk = chunks.next().transpose().backend()?;
    let mut events = Vec::new();
    let mut last = None;
    while events.len() < query.limit {
        let next_start = next_chunk.as_ref().map(|(key, _)| {
            let (_, micros, seq) = key.value();
            (micros, seq)
        });
        match read.first_key_value() {
            Some((position, _)) if next_start.is_none_or(|start| *position < start) => {
                let Some(((timestamp_micros, seq), event)) = read.pop_first() else { break };
                if query.matches(&event) {
                    events.push(event);
                    last = Some(AuditCursor { timestamp_micros, seq });
                }
            }
            _ => {
                let Some((_, chunk)) = next_chunk.take() else { break };
                for (seq, event) in audit_codec::decode_chunk(id, chunk.value())? {
                    let position = (audit_codec::stored_micros(&event), seq);
                    if wanted.contains(&position) {
                        read.insert(position, event);
                    }
                }
                next_chunk = chunks.next().transpose().backend()?;
            }
        }
    }
    // A cursor only when more events lie in the range; they may all fail the filter, in which
    // case the next page is empty, which is cheaper than reading ahead to find out.
    let more = !read.is_empty() || next_chunk.is_some();
    Ok(AuditPage { events, next: last.filter(|_| more) })
}

/// One step of audit retention: deletes the events older than `before`, tenant log by tenant log
/// from the first tenant within `from`, until about `limit` are deleted (whole chunks: at least
/// one, at most [`MAX_EVENTS`] more than `limit`). Answers how many it deleted and the tenants the
/// next step starts from; `None` when every log is done.
pub(super) fn prune_step(
    txn: &WriteTransaction,
    before: DateTime<Utc>,
    mut from: Bound<String>,
    limit: usize,
) -> Result<(u64, Option<Bound<String>>), StoreError> {
    // Only a chunk whose first event is in the cutoff's microsecond or earlier can hold older
    // events; those of the cutoff's own microsecond go or stay by their nanoseconds.
    let cutoff = before.timestamp_micros();
    let mut log = txn.open_table(CHUNKS).backend()?;
    let mut deleted = 0u64;
    loop {
        let start = match &from {
            Bound::Included(tenant) => Bound::Included((tenant.as_str(), i64::MIN, 0)),
            Bound::Excluded(tenant) => Bound::Excluded((tenant.as_str(), i64::MAX, u64::MAX)),
            Bound::Unbounded => Bound::Unbounded,
        };
        let tenant = match log.range((start, Bound::Unbounded)).backend()?.next().transpose().backend()? {
            Some((key, _)) => key.value().0.to_string(),
            None => return Ok((deleted, None)),
        };
        let id = log_owner(&tenant)?;
        let mut after = Bound::Included((tenant.as_str(), i64::MIN, 0));
        loop {
            let chunk = log.range((after, Bound::Included((tenant.as_str(), cutoff, u64::MAX)))).backend()?.next();
            let Some((key, chunk)) = chunk.transpose().backend()? else { break };
            let (_, micros, seq) = key.value();
            let (older, kept): (Vec<_>, Vec<_>) = audit_codec::decode_chunk(&id, chunk.value())?
                .into_iter()
                .partition(|(_, event)| event.timestamp < before);
            drop((key, chunk));
            after = Bound::Excluded((tenant.as_str(), micros, seq));
            if older.is_empty() {
                continue;
            }
            // Full: the next step starts over at this tenant, whose deleted events are gone.
            if deleted > 0 && deleted + older.len() as u64 > limit as u64 {
                return Ok((deleted, Some(Bound::Included(tenant))));
            }
            log.remove((tenant.as_str(), micros, seq)).backend()?;
            // What stays starts later than the chunk did, so the scan meets it again, finding
            // nothing older in it.
            write_chunks(&mut log, kept.iter().map(|(seq, event)| (*seq, event)))?;
            deleted += older.len() as u64;
        }
        from = Bound::Excluded(tenant);
    }
}

fn log_owner(tenant: &str) -> Result<TenantId, StoreError> {
    TenantId::parse(tenant).map_err(|err| StoreError::Corrupt(format!("the audit log is keyed by {err}")))
}

#[cfg(test)]
#[path = "audit_log_tests.rs"]
mod tests;
