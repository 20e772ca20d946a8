use std::path::Path;
use std::sync::Arc;

use chrono::Duration;
use connectors_actors::audit::AuditResult;
use connectors_actors::store::{Batch, Store};
use redb::ReadableDatabase;
use tempfile::TempDir;

use super::*;
use crate::backends::redb_store::RedbStore;

const CACHE: usize = 1024 * 1024;

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
}

fn event(tenant: &str, timestamp: DateTime<Utc>, request_id: String) -> AuditEvent {
    AuditEvent {
        timestamp,
        tenant_id: TenantId::parse(tenant).unwrap(),
        user_id: None,
        action: "tools/call".into(),
        tool_id: None,
        params: Some(serde_json::json!({"n": request_id})),
        result: AuditResult::Success,
        duration: 1,
        ip: Some("127.0.0.1".into()),
        user_agent: None,
        request_id,
        event_id: None,
    }
}

fn query(limit: usize, after: Option<AuditCursor>) -> AuditQuery {
    AuditQuery { since: None, until: None, action: None, limit, after }
}

/// Every chunk of the file: (tenant, its events' positions).
fn chunks(path: &Path) -> Vec<(String, Vec<(i64, u64)>)> {
    let db = Database::builder().create(path).unwrap();
    let txn = db.begin_read().unwrap();
    let log = txn.open_table(CHUNKS).unwrap();
    let mut found = Vec::new();
    for row in log.iter().unwrap() {
        let (key, value) = row.unwrap();
        let (tenant, micros, seq) = key.value();
        let entries = audit_codec::decode_chunk(&TenantId::parse(tenant).unwrap(), value.value()).unwrap();
        let positions: Vec<(i64, u64)> =
            entries.iter().map(|(seq, event)| (audit_codec::stored_micros(event), *seq)).collect();
        assert_eq!(positions.first(), Some(&(micros, seq)), "a chunk is keyed by its first event");
        assert!(positions.is_sorted(), "a chunk's events are in order");
        found.push((tenant.to_string(), positions));
    }
    found
}

/// The request ids of every page of a tenant's log, each page after the last one's cursor.
async fn read_all(store: &RedbStore, tenant: &str, limit: usize) -> Vec<String> {
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.audit(&TenantId::parse(tenant).unwrap(), &query(limit, after)).await.unwrap();
        seen.extend(page.events.into_iter().map(|event| event.request_id));
        match page.next {
            Some(next) => after = Some(next),
            None => return seen,
        }
    }
}

#[tokio::test]
async fn a_commit_stores_a_chunk_per_tenant_within_the_format_limits() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("store.redb");
    let store = RedbStore::open(&path, CACHE).unwrap();
    // 300 events of one tenant within a second, 5 of another, and 4 of a third over 7 s.
    let mut audit: Vec<AuditEvent> =
        (0..300).map(|n| event("busy", at(0) + Duration::milliseconds(n * 3), format!("busy-{n}"))).collect();
    audit.extend((0..5).map(|n| event("calm", at(n), format!("calm-{n}"))));
    audit.extend([0, 1, 4, 7].map(|s| event("slow", at(s), format!("slow-{s}"))));
    audit.reverse();
    store.commit(Arc::new(Batch { audit, ..Default::default() })).await.unwrap();
    drop(store);

    let found = chunks(&path);
    let sizes: Vec<(&str, usize)> = found.iter().map(|(tenant, events)| (tenant.as_str(), events.len())).collect();
    assert_eq!(
        sizes,
        [("busy", 128), ("busy", 128), ("busy", 44), ("calm", 3), ("calm", 2), ("slow", 2), ("slow", 1), ("slow", 1)]
    );
    for (tenant, events) in &found {
        let span = events.last().unwrap().0 - events.first().unwrap().0;
        assert!(span <= MAX_SPAN_MICROS, "{tenant}: {span} µs");
    }
    let store = RedbStore::open(&path, CACHE).unwrap();
    let busy: Vec<String> = (0..300).map(|n| format!("busy-{n}")).collect();
    assert_eq!(read_all(&store, "busy", 50).await, busy);
    assert_eq!(read_all(&store, "slow", 1).await, ["slow-0", "slow-1", "slow-4", "slow-7"]);
}

/// Writes `events` as a format-1 build does: one entry per event, numbered after the file's last
/// number, no format number.
fn write_format_1(path: &Path, events: &[AuditEvent]) {
    let db = Database::builder().create(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut sequences = txn.open_table(SEQUENCES).unwrap();
        let last = sequences.get(AUDIT_SEQ).unwrap().map_or(0, |last| last.value());
        let mut log = txn.open_table(EVENTS_V1).unwrap();
        for (seq, event) in (last + 1..).zip(events) {
            let key = (event.tenant_id.as_str(), event.timestamp.timestamp_micros(), seq);
            log.insert(key, audit_codec::encode(event).unwrap().as_slice()).unwrap();
        }
        sequences.insert(AUDIT_SEQ, last + events.len() as u64).unwrap();
    }
    txn.commit().unwrap();
}

#[tokio::test]
async fn a_format_1_file_is_migrated_in_steps_keeping_order_cursors_and_numbers() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("store.redb");
    // Two tenants, one whose id extends the other's, interleaved; equal timestamps on some.
    let events: Vec<AuditEvent> =
        (0..40).map(|n| event(if n % 3 == 0 { "acme-corp" } else { "acme" }, at(n / 2), format!("e{n}"))).collect();
    write_format_1(&path, &events);
    let acme: Vec<String> =
        events.iter().filter(|e| e.tenant_id.as_str() == "acme").map(|e| e.request_id.clone()).collect();
    // The position of acme's 5th event, as format 1 gave it out in a cursor.
    let fifth = events.iter().zip(1u64..).filter(|(e, _)| e.tenant_id.as_str() == "acme").nth(4).unwrap();
    let cursor = AuditCursor { timestamp_micros: fifth.0.timestamp.timestamp_micros(), seq: fifth.1 };

    // A migration cut short after one step of 7 events...
    {
        let db = Database::builder().create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        assert_eq!(migrate_step(&txn, 7).unwrap(), Some((7, false)));
        txn.commit().unwrap();
    }
    // ... goes on at the next opening, here in steps of 6.
    {
        let db = Database::builder().create(&path).unwrap();
        prepare(&db, 6).unwrap();
        let txn = db.begin_read().unwrap();
        assert_eq!(txn.open_table(FORMATS).unwrap().get(FORMAT_KEY).unwrap().unwrap().value(), FORMAT);
        assert!(!txn.list_tables().unwrap().any(|table| table.name() == EVENTS_V1.name()), "format 1's table is gone");
    }
    assert_eq!(chunks(&path).iter().map(|(_, events)| events.len()).sum::<usize>(), 40);

    let store = RedbStore::open(&path, CACHE).unwrap();
    for limit in [1, 4, 100] {
        assert_eq!(read_all(&store, "acme", limit).await, acme, "limit {limit}");
    }
    let continued = store.audit(&TenantId::parse("acme").unwrap(), &query(100, Some(cursor))).await.unwrap();
    let ids: Vec<&str> = continued.events.iter().map(|e| e.request_id.as_str()).collect();
    assert_eq!(ids, acme[5..].iter().map(String::as_str).collect::<Vec<_>>(), "a format-1 cursor goes on");
    let migrated = store.audit(&TenantId::parse("acme").unwrap(), &query(100, None)).await.unwrap().events;
    let originals: Vec<AuditEvent> = events.iter().filter(|e| e.tenant_id.as_str() == "acme").cloned().collect();
    assert_eq!(migrated, originals, "every field survives");

    // New events are numbered after the migrated ones: a later event of an equal time follows.
    let late = event("acme", at(19), "new".into());
    store.commit(Arc::new(Batch { audit: vec![late], ..Default::default() })).await.unwrap();
    assert_eq!(read_all(&store, "acme", 3).await.last().map(String::as_str), Some("new"));
    drop(store);

    // A format-1 build run on the file after the migration writes entries again; the next
    // opening by this build takes them in too.
    write_format_1(&path, &[event("acme", at(19), "from-an-older-build".into())]);
    let store = RedbStore::open(&path, CACHE).unwrap();
    let tail: Vec<String> = read_all(&store, "acme", 100).await.split_off(acme.len());
    assert_eq!(tail, ["new", "from-an-older-build"]);
}

#[test]
fn a_file_of_an_unknown_format_is_refused_and_left_as_it_is() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("store.redb");
    drop(RedbStore::open(&path, CACHE).unwrap());
    {
        let db = Database::builder().create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(FORMATS).unwrap().insert(FORMAT_KEY, FORMAT + 1).unwrap();
        txn.commit().unwrap();
    }
    let Err(StoreError::Backend(message)) = RedbStore::open(&path, CACHE) else {
        panic!("a file of a later format must not open");
    };
    assert!(message.contains(&path.display().to_string()) && message.contains("format 3"), "{message}");
    let db = Database::builder().create(&path).unwrap();
    let txn = db.begin_read().unwrap();
    assert_eq!(txn.open_table(FORMATS).unwrap().get(FORMAT_KEY).unwrap().unwrap().value(), FORMAT + 1);
}

#[tokio::test]
async fn retention_rewrites_a_chunk_it_cuts_and_deletes_whole_older_ones() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("store.redb");
    let store = RedbStore::open(&path, CACHE).unwrap();
    let audit: Vec<AuditEvent> = (0..10).map(|n| event("acme", at(n), format!("e{n}"))).collect();
    store.commit(Arc::new(Batch { audit, ..Default::default() })).await.unwrap();
    // Chunks of at most 2 s: [0, 1, 2], [3, 4, 5], [6, 7, 8], [9]. Before 4 s: 0 to 3 go.
    assert_eq!(store.delete_audit_before(at(4)).await.unwrap(), 4);
    drop(store);
    let found: Vec<usize> = chunks(&path).iter().map(|(_, events)| events.len()).collect();
    assert_eq!(found, [2, 3, 1]);
    let store = RedbStore::open(&path, CACHE).unwrap();
    assert_eq!(read_all(&store, "acme", 4).await, (4..10).map(|n| format!("e{n}")).collect::<Vec<_>>());
}

/// The events of `tenant` in `committed` (commits in order) as a read must give them: by
/// microsecond, then in commit order.
fn model<'a>(committed: &'a [Vec<AuditEvent>], tenant: &str) -> Vec<&'a AuditEvent> {
    let mut events: Vec<&AuditEvent> = committed.iter().flatten().filter(|e| e.tenant_id.as_str() == tenant).collect();
    events.sort_by_key(|e| audit_codec::stored_micros(e));
    events
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    /// Whatever the commits' times, groupings and order, pages of any size and window give the
    /// model's events, and retention at any instant deletes exactly the older ones.
    #[test]
    fn pages_and_retention_agree_with_the_model(
        commits in proptest::collection::vec(
            proptest::collection::vec((proptest::bool::ANY, -6_000i64..6_000, 0i64..3), 0..40), 1..5),
        window in (proptest::option::of(-7_000i64..7_000), proptest::option::of(-7_000i64..7_000)),
        limit in 1usize..9,
        cutoff_millis in -7_000i64..7_000,
    ) {
        // Milliseconds apart, some sharing a microsecond at different nanoseconds.
        let nanos = [0, 400, 999];
        let committed: Vec<Vec<AuditEvent>> = commits
            .iter()
            .enumerate()
            .map(|(c, events)| {
                events
                    .iter()
                    .enumerate()
                    .map(|(n, &(first, millis, extra))| {
                        let at = at(0) + Duration::milliseconds(millis) + Duration::nanoseconds(nanos[extra as usize]);
                        event(if first { "acme" } else { "acme-corp" }, at, format!("c{c}-{n}"))
                    })
                    .collect()
            })
            .collect();
        let since = window.0.map(|millis| at(0) + Duration::milliseconds(millis) + Duration::nanoseconds(500));
        let until = window.1.map(|millis| at(0) + Duration::milliseconds(millis));
        let cutoff = at(0) + Duration::milliseconds(cutoff_millis) + Duration::nanoseconds(400);

        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let dir = TempDir::new().unwrap();
            let store = RedbStore::open(&dir.path().join("store.redb"), CACHE).unwrap();
            for audit in &committed {
                store.commit(Arc::new(Batch { audit: audit.clone(), ..Default::default() })).await.unwrap();
            }
            let base = AuditQuery { since, until, action: None, limit, after: None };
            for tenant in ["acme", "acme-corp"] {
                let id = TenantId::parse(tenant).unwrap();
                let mut seen = Vec::new();
                let mut after = None;
                loop {
                    let page = store.audit(&id, &AuditQuery { after, ..base.clone() }).await.unwrap();
                    assert!(page.events.len() <= limit);
                    seen.extend(page.events);
                    match page.next {
                        Some(next) => {
                            assert!(after.is_none_or(|after| next > after), "cursors move forward");
                            after = Some(next);
                        }
                        None => break,
                    }
                }
                let expected: Vec<&AuditEvent> = model(&committed, tenant).into_iter().filter(|e| base.matches(e)).collect();
                assert_eq!(seen.iter().collect::<Vec<_>>(), expected, "{tenant}");
            }

            let older = committed.iter().flatten().filter(|e| e.timestamp < cutoff).count() as u64;
            assert_eq!(store.prune_audit(cutoff, 5).await.unwrap(), older);
            for tenant in ["acme", "acme-corp"] {
                let everything = query(1_000, None);
                let kept = store.audit(&TenantId::parse(tenant).unwrap(), &everything).await.unwrap().events;
                let expected: Vec<&AuditEvent> = model(&committed, tenant).into_iter().filter(|e| e.timestamp >= cutoff).collect();
                assert_eq!(kept.iter().collect::<Vec<_>>(), expected, "{tenant} after retention");
            }
        });
    }
}
