//! The contract of the [`Store`] port: what every adapter must do, written once.
//!
//! This file decides the observable behaviour the rest of the gateway may rely on (atomic tenant
//! and key-index changes, pagination that never repeats or skips, usage sums by day and month,
//! checkpoints only for live tenants, entries replaced only over what the writer expected, audit
//! retention exact to the nanosecond across every log, durability across reopening). It knows no
//! adapter: an adapter's test module implements [`Fixture`] and expands
//! [`store_contract_tests!`], which makes one named `#[tokio::test]` per case below.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use connectors_actors::api_key::KeyHash;
use connectors_actors::audit::{AuditEvent, AuditQuery, AuditResult};
use connectors_actors::rate_windows::WindowCount;
use connectors_actors::store::{Batch, Checkpoint, KeyOwner, Store, StoreError, TenantFilter, UsageDelta};
use connectors_actors::tenant::{
    FeatureOverrides, LimitOverrides, McpListing, Security, StoredKey, TenantId, TenantRecord, TenantStatus, ToolList,
};
use connectors_actors::usage::{Month, UsageCounters};

/// Where one test's data lives, for one adapter.
#[async_trait]
pub trait Fixture: Send + Sync {
    /// A store over this fixture's data, empty on the first call. After every earlier handle is
    /// dropped, opening again must show everything those handles committed.
    async fn open(&self) -> Arc<dyn Store>;
}

/// Expands to one `#[tokio::test]` per contract case; `$fixture` makes a fresh [`Fixture`] for
/// each test.
macro_rules! store_contract_tests {
    ($fixture:expr) => {
        $crate::backends::store_contract::store_contract_tests!(@cases $fixture;
            create_then_get_round_trips,
            duplicate_create_conflicts_and_changes_nothing,
            update_reindexes_keys,
            missing_tenants_are_not_found_and_nothing_is_written,
            delete_removes_keys_and_checkpoint_but_keeps_history,
            tenant_pages_see_every_match_once_with_totals,
            commits_sum_usage_by_day_and_by_month,
            checkpoints_are_saved_only_for_existing_tenants,
            a_stale_checkpoint_never_lowers_the_counts,
            audit_pages_never_repeat_or_skip_equal_timestamps,
            audit_filters_by_time_and_action_across_pages,
            audit_events_committed_late_take_their_place_in_time,
            audit_retention_deletes_exactly_the_older_events_of_every_log,
            audit_retention_reaches_every_log_however_many_and_however_long,
            meta_round_trips,
            entries_are_kept_per_collection_in_name_order,
            replace_entry_writes_only_over_the_expected_value,
            racing_entry_replaces_from_one_expectation_let_exactly_one_win,
            everything_committed_survives_reopening,
        );
    };
    (@cases $fixture:expr; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let fixture = $fixture;
                $crate::backends::store_contract::$case(&fixture).await;
            }
        )+
    };
}
pub(crate) use store_contract_tests;

fn id(text: &str) -> TenantId {
    TenantId::parse(text).expect("test ids are valid")
}

/// A fixed instant near a month's end, so that day and month arithmetic crosses boundaries.
fn at(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 31, 12, 0, 0).unwrap() + Duration::seconds(seconds)
}

fn day(year: i32, month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, day).expect("test dates are valid")
}

fn key(secret: &str, expires_at: Option<DateTime<Utc>>) -> StoredKey {
    StoredKey { hash: KeyHash::of(secret), created_at: at(0), expires_at }
}

fn record(tenant: &str, plan: &str, status: TenantStatus, keys: Vec<StoredKey>) -> TenantRecord {
    TenantRecord {
        id: id(tenant),
        name: format!("Tenant {tenant}"),
        email: Some(format!("ops@{tenant}.example")),
        plan: plan.into(),
        status,
        limits: LimitOverrides { requests_per_minute: Some(42), ..Default::default() },
        features: FeatureOverrides { oauth: Some(true), ..Default::default() },
        security: Security { allowed_ips: vec!["10.0.0.0/8".into()] },
        mcp: McpListing { tool_list: ToolList::Search, categories: vec!["code".into()] },
        created_at: at(0),
        updated_at: at(0),
        keys,
    }
}

fn active(tenant: &str, keys: Vec<StoredKey>) -> TenantRecord {
    record(tenant, "free", TenantStatus::Active, keys)
}

fn owner(tenant: &str, expires_at: Option<DateTime<Utc>>) -> Option<KeyOwner> {
    Some(KeyOwner { tenant: id(tenant), expires_at })
}

fn event(tenant: &str, timestamp: DateTime<Utc>, action: &str, request_id: String) -> AuditEvent {
    AuditEvent {
        timestamp,
        tenant_id: id(tenant),
        user_id: None,
        action: action.into(),
        tool_id: Some("github.search".into()),
        params: Some(serde_json::json!({"query": request_id})),
        result: AuditResult::Success,
        duration: 12,
        ip: Some("10.1.2.3".into()),
        user_agent: None,
        request_id,
        event_id: None,
    }
}

fn requests(tenant: &str, on: NaiveDate, requests: u64) -> UsageDelta {
    UsageDelta {
        tenant: id(tenant),
        day: on,
        counters: UsageCounters { requests, api_calls: requests, ..Default::default() },
    }
}

fn checkpoint(count: u64) -> Checkpoint {
    Checkpoint {
        windows: [
            WindowCount { start: 60, count },
            WindowCount { start: 3600, count },
            WindowCount { start: 0, count },
        ],
    }
}

fn query(limit: usize) -> AuditQuery {
    AuditQuery { since: None, until: None, action: None, limit, after: None }
}

/// Reads every page of `filter` at `limit` per page, checking each page's shape on the way;
/// returns the ids seen and the total, which must be the same on every page.
async fn all_tenants(store: &dyn Store, filter: &TenantFilter, limit: usize) -> (Vec<TenantId>, u64) {
    let mut seen = Vec::new();
    let mut totals = BTreeSet::new();
    let mut after = None;
    for _ in 0..100 {
        let page = store.tenants(filter, after.as_ref(), limit).await.unwrap();
        assert!(page.tenants.len() <= limit);
        assert!(page.tenants.iter().all(|t| filter.matches(t)));
        totals.insert(page.total);
        seen.extend(page.tenants.into_iter().map(|t| t.id));
        match page.next {
            Some(next) => {
                assert_eq!(Some(&next), seen.last(), "next is the last id of the page");
                after = Some(next);
            }
            None => {
                assert_eq!(totals.len(), 1, "the total is the same on every page: {totals:?}");
                return (seen, totals.into_iter().next().unwrap_or_default());
            }
        }
    }
    panic!("pagination did not end");
}

/// Reads every page of `base` (its `after` replaced by each page's cursor).
async fn all_audit(store: &dyn Store, tenant: &TenantId, base: &AuditQuery) -> Vec<AuditEvent> {
    let mut seen = Vec::new();
    let mut after = None;
    for _ in 0..1000 {
        let page = store.audit(tenant, &AuditQuery { after, ..base.clone() }).await.unwrap();
        assert!(page.events.len() <= base.limit);
        seen.extend(page.events);
        match page.next {
            Some(next) => {
                assert!(after.is_none_or(|after| next > after), "cursors move forward");
                after = Some(next);
            }
            None => return seen,
        }
    }
    panic!("audit pagination did not end");
}

fn request_ids(events: &[AuditEvent]) -> Vec<&str> {
    events.iter().map(|e| e.request_id.as_str()).collect()
}

pub async fn create_then_get_round_trips(fixture: &dyn Fixture) {
    let store = fixture.open().await;
    let expiring = at(3600);
    let acme = active("acme", vec![key("ck_a", None), key("ck_b", Some(expiring))]);
    store.create_tenant(&acme).await.unwrap();

    assert_eq!(store.tenant(&id("acme")).await.unwrap(), Some(acme));
    assert_eq!(store.tenant(&id("globex")).await.unwrap(), None);
    assert_eq!(store.key_owner(&KeyHash::of("ck_a")).await.unwrap(), owner("acme", None));
    assert_eq!(store.key_owner(&KeyHash::of("ck_b")).await.unwrap(), owner("acme", Some(expiring)));
    assert_eq!(store.key_owner(&KeyHash::of("ck_unknown")).await.unwrap(), None);
    assert_eq!(store.checkpoint(&id("acme")).await.unwrap(), None);
}

pub async fn duplicate_create_conflicts_and_changes_nothing(fixture: &dyn Fixture) {
    let store = fixture.open().await;
    let original = active("acme", vec![key("ck_a", None)]);
    store.create_tenant(&original).await.unwrap();

    let mut impostor = record("acme", "enterprise", TenantStatus::Suspended, vec![key("ck_other", None)]);
    impostor.name = "Someone else".into();
    assert_eq!(store.create_tenant(&impostor).await, Err(StoreError::Conflict(id("acme"))));

    assert_eq!(store.tenant(&id("acme")).await.unwrap(), Some(original));
    assert_eq!(store.key_owner(&KeyHash::of("ck_a")).await.unwrap(), owner("acme", None));
    assert_eq!(
        store.key_owner(&KeyHash::of("ck_other")).await.unwrap(),
        None,
        "the refused record's keys are not indexed"
    );
}

pub async fn update_reindexes_keys(fixture: &dyn Fixture) {
    let store = fixture.open().await;
    let mut acme = active("acme", vec![key("ck_old", None), key("ck_kept", None)]);
    store.create_tenant(&acme).await.unwrap();

    let grace_end = at(30);
    acme.keys = vec![key("ck_kept", Some(grace_end)), key("ck_new", None)];
    acme.plan = "pro".into();
    acme.updated_at = at(1);
    store.update_tenant(&acme).await.unwrap();

    assert_eq!(store.tenant(&id("acme")).await.unwrap(), Some(acme));
    assert_eq!(
        store.key_owner(&KeyHash::of("ck_old")).await.unwrap(),
        None,
        "a key dropped from the record stops resolving"
    );
    assert_eq!(store.key_owner(&KeyHash::of("ck_kept")).await.unwrap(), owner("acme", Some(grace_end)));
    assert_eq!(store.key_owner(&KeyHash::of("ck_new")).await.unwrap(), owner("acme", None));
}

pub async fn missing_tenants_are_not_found_and_nothing_is_written(fixture: &dyn Fixture) {
    let store = fixture.open().await;
    let ghost = active("ghost", vec![key("ck_ghost", None)]);
    assert_eq!(store.update_tenant(&ghost).await, Err(StoreError::NotFound(id("ghost"))));
    assert_eq!(store.delete_tenant(&id("ghost")).await, Err(StoreError::NotFound(id("ghost"))));
    assert_eq!(store.tenant(&id("ghost")).await.unwrap(), None);
    assert_eq!(store.key_owner(&KeyHash::of("ck_ghost")).await.unwrap(), None);
    assert_eq!(store.tenants(&TenantFilter::default(), None, 10).await.unwrap().total, 0);
}

pub async fn delete_removes_keys_and_checkpoint_but_keeps_history(fixture: &dyn Fixture) {
    let store = fixture.open().await;
    store.create_tenant(&active("acme", vec![key("ck_a", None), key("ck_b", None)])).await.unwrap();
    store.create_tenant(&active("globex", vec![key("ck_g", None)])).await.unwrap();
    let jan = day(2026, 1, 31);
    let batch = Batch {
        id: None,
        audit: vec![event("acme", at(0), "tools/call", "r1".into())],
        usage: vec![requests("acme", jan, 3)],
        checkpoints: vec![(id("acme"), checkpoint(5)), (id("globex"), checkpoint(7))],
    };
    store.commit(Arc::new(batch.clone())).await.unwrap();

    store.delete_tenant(&id("acme")).await.unwrap();

    assert_eq!(store.tenant(&id("acme")).await.unwrap(), None);
    assert_eq!(store.key_owner(&KeyHash::of("ck_a")).await.unwrap(), None);
    assert_eq!(store.key_owner(&KeyHash::of("ck_b")).await.unwrap(), None);
    assert_eq!(store.checkpoint(&id("acme")).await.unwrap(), None);
    assert_eq!(request_ids(&store.audit(&id("acme"), &query(10)).await.unwrap().events), ["r1"]);
    assert_eq!(store.usage_by_day(&id("acme"), jan, jan).await.unwrap(), vec![(jan, batch.usage[0].counters)]);
    assert_eq!(store.usage_of_month(&id("acme"), Month::containing(jan)).await.unwrap().requests, 3);
    // The other tenant is untouched.
    assert_eq!(store.key_owner(&KeyHash::of("ck_g")).await.unwrap(), owner("globex", None));
    assert_eq!(store.checkpoint(&id("globex")).await.unwrap(), Some(checkpoint(7)));

    // A tenant created again under the id starts without the old keys or windows.
    store.create_tenant(&active("acme", vec![key("ck_c", None)])).await.unwrap();
    assert_eq!(store.checkpoint(&id("acme")).await.unwrap(), None);
    assert_eq!(store.key_owner(&KeyHash::of("ck_a")).await.unwrap(), None);
    assert_eq!(store.key_owner(&KeyHash::of("ck_c")).await.unwrap(), owner("acme", None));
}

pub async fn tenant_pages_see_every_match_once_with_totals(fixture: &dyn Fixture) {
    let store = fixture.open().await;
    // Created out of id order, with ids whose byte order differs from their numeric order.
    let mut expected = BTreeMap::new();
    for n in (0..25).rev() {
        let plan = if n % 3 == 0 { "pro" } else { "free" };
        let status = if n % 4 == 0 { TenantStatus::Suspended } else { TenantStatus::Active };
        let tenant = format!("t{n}");
        store.create_tenant(&record(&tenant, plan, status, vec![])).await.unwrap();
        expected.insert(id(&tenant), (plan, status));
    }
    let ids = |keep: &dyn Fn(&str, TenantStatus) -> bool| -> Vec<TenantId> {
        expected.iter().filter(|(_, (plan, status))| keep(plan, *status)).map(|(id, _)| id.clone()).collect()
    };

    let everyone = TenantFilter::default();
    assert_eq!(all_tenants(&*store, &everyone, 10).await, (ids(&|_, _| true), 25), "every tenant once, in id order");
    let first = store.tenants(&everyone, None, 10).await.unwrap();
    assert_eq!((first.tenants.len(), first.total), (10, 25));
    let last = store.tenants(&everyone, Some(&id("t7")), 10).await.unwrap();
    assert_eq!(last.tenants.iter().map(|t| t.id.clone()).collect::<Vec<_>>(), vec![id("t8"), id("t9")]);
    assert_eq!((last.total, last.next), (25, None));
    // A page that ends exactly at the last tenant has no `next`.
    let exact = store.tenants(&everyone, Some(&id("t5")), 4).await.unwrap();
    assert_eq!((exact.tenants.len(), exact.next), (4, None));

    let filtered = [
        (TenantFilter { plan: Some("pro".into()), status: None }, ids(&|plan, _| plan == "pro")),
        (
            TenantFilter { plan: None, status: Some(TenantStatus::Suspended) },
            ids(&|_, status| status == TenantStatus::Suspended),
        ),
        (
            TenantFilter { plan: Some("free".into()), status: Some(TenantStatus::Active) },
            ids(&|plan, status| plan == "free" && status == TenantStatus::Active),
        ),
    ];
    for (filter, want) in filtered {
        assert!(!want.is_empty() && want.len() < 25);
        let total = want.len() as u64;
        assert_eq!(all_tenants(&*store, &filter, 3).await, (want, total), "{filter:?}");
    }
    let nobody = TenantFilter { plan: Some("gold".into()), status: None };
    let empty = store.tenants(&nobody, None, 10).await.unwrap();
    assert_eq!((empty.tenants.len(), empty.total, empty.next), (0, 0, None));
}

pub async fn commits_sum_usage_by_day_and_by_month(fixture: &dyn Fixture) {
    let store = fixture.open().await;
    let (jan30, jan31, feb1, feb3) = (day(2026, 1, 30), day(2026, 1, 31), day(2026, 2, 1), day(2026, 2, 3));
    let gauge = |tenant: &str, on: NaiveDate, custom_servers: u64| UsageDelta {
        tenant: id(tenant),
        day: on,
        counters: UsageCounters { custom_servers, tokens: 10, ..Default::default() },
    };
    let batches = [
        // The same day twice in one batch, and another tenant on the same day.
        vec![requests("acme", jan31, 2), requests("acme", jan31, 3), requests("globex", jan31, 100)],
        vec![requests("acme", jan30, 1), requests("acme", feb1, 4), gauge("acme", jan31, 3)],
        vec![requests("acme", jan31, 5), gauge("acme", jan31, 1), requests("acme", feb3, 6)],
    ];
    for usage in batches {
        store.commit(Arc::new(Batch { usage, ..Default::default() })).await.unwrap();
    }

    let acme = id("acme");
    let counters = |requests: u64, tokens: u64, custom_servers: u64| UsageCounters {
        requests,
        api_calls: requests,
        tokens,
        custom_servers,
        ..Default::default()
    };
    assert_eq!(
        store.usage_by_day(&acme, jan30, feb3).await.unwrap(),
        vec![
            (jan30, counters(1, 0, 0)),
            (jan31, counters(10, 20, 3)),
            (feb1, counters(4, 0, 0)),
            (feb3, counters(6, 0, 0))
        ],
        "every day with data, in date order, summed across commits",
    );
    assert_eq!(
        store.usage_by_day(&acme, jan31, feb1).await.unwrap(),
        vec![(jan31, counters(10, 20, 3)), (feb1, counters(4, 0, 0))],
        "both ends are inclusive",
    );
    assert_eq!(store.usage_by_day(&acme, day(2026, 2, 2), day(2026, 2, 2)).await.unwrap(), vec![]);
    assert_eq!(store.usage_by_day(&acme, feb3, jan30).await.unwrap(), vec![], "an empty range");
    assert_eq!(store.usage_of_month(&acme, Month { year: 2026, month: 1 }).await.unwrap(), counters(11, 20, 3));
    assert_eq!(store.usage_of_month(&acme, Month { year: 2026, month: 2 }).await.unwrap(), counters(10, 0, 0));
    assert_eq!(store.usage_of_month(&acme, Month { year: 2025, month: 12 }).await.unwrap(), UsageCounters::default());
    assert_eq!(store.usage_of_month(&id("globex"), Month { year: 2026, month: 1 }).await.unwrap(), counters(100, 0, 0));
    assert_eq!(store.usage_by_day(&id("globex"), jan30, feb3).await.unwrap(), vec![(jan31, counters(100, 0, 0))]);
}

pub async fn checkpoints_are_saved_only_for_existing_tenants(fixture: &dyn Fixture) {
    let store = fixture.open().await;
    store.create_tenant(&active("acme", vec![])).await.unwrap();
    let save = |checkpoints: Vec<(TenantId, Checkpoint)>| Batch { checkpoints, ..Default::default() };

    store.commit(Arc::new(save(vec![(id("acme"), checkpoint(1)), (id("ghost"), checkpoint(9))]))).await.unwrap();
    assert_eq!(store.checkpoint(&id("acme")).await.unwrap(), Some(checkpoint(1)));
    assert_eq!(store.checkpoint(&id("ghost")).await.unwrap(), None, "a checkpoint of a missing tenant is ignored");

    store.commit(Arc::new(save(vec![(id("acme"), checkpoint(2)), (id("acme"), checkpoint(3))]))).await.unwrap();
    assert_eq!(store.checkpoint(&id("acme")).await.unwrap(), Some(checkpoint(3)), "the last one wins");

    store.create_tenant(&active("ghost", vec![])).await.unwrap();
    assert_eq!(store.checkpoint(&id("ghost")).await.unwrap(), None, "a new tenant inherits no windows");
}

/// A node that lost a tenant without releasing it (paused past its lease) may write its old
/// counts after the next owner wrote newer ones: the store keeps the later window, and of one
/// window the larger count, or the owner after that would admit beyond the limit.
pub async fn a_stale_checkpoint_never_lowers_the_counts(fixture: &dyn Fixture) {
    let store = fixture.open().await;
    store.create_tenant(&active("acme", vec![])).await.unwrap();
    let save = |checkpoint: Checkpoint| Batch { checkpoints: vec![(id("acme"), checkpoint)], ..Default::default() };

    store.commit(Arc::new(save(checkpoint(5)))).await.unwrap();
    store.commit(Arc::new(save(checkpoint(3)))).await.unwrap();
    assert_eq!(store.checkpoint(&id("acme")).await.unwrap(), Some(checkpoint(5)), "a lower count of one window");

    let next_minute = Checkpoint {
        windows: [
            WindowCount { start: 120, count: 1 },
            WindowCount { start: 3600, count: 4 },
            WindowCount { start: 0, count: 6 },
        ],
    };
    store.commit(Arc::new(save(next_minute))).await.unwrap();
    let expected = Checkpoint {
        windows: [
            WindowCount { start: 120, count: 1 },
            WindowCount { start: 3600, count: 5 },
            WindowCount { start: 0, count: 6 },
        ],
    };
    assert_eq!(store.checkpoint(&id("acme")).await.unwrap(), Some(expected), "per window: later, else larger");

    store.commit(Arc::new(save(checkpoint(9)))).await.unwrap();
    let expected = Checkpoint {
        windows: [
            WindowCount { start: 120, count: 1 },
            WindowCount { start: 3600, count: 9 },
            WindowCount { start: 0, count: 9 },
        ],
    };
    assert_eq!(store.checkpoint(&id("acme")).await.unwrap(), Some(expected), "an ended window never comes back");
}

pub async fn audit_pages_never_repeat_or_skip_equal_timestamps(fixture: &dyn Fixture) {
    let store = fixture.open().await;
    // 50 events over five batches on only five distinct timestamps, committed out of time order,
    // with another tenant's events in the same batches.
    let mut all = Vec::new();
    for batch in 0..5 {
        let mut audit = Vec::new();
        for n in 0..10 {
            let timestamp = at((4 - (n % 5)) * 60);
            let mine = event("acme", timestamp, "tools/call", format!("acme-{batch}-{n}"));
            all.push(mine.clone());
            audit.push(mine);
            audit.push(event("acme-corp", timestamp, "tools/call", format!("other-{batch}-{n}")));
        }
        store.commit(Arc::new(Batch { audit, ..Default::default() })).await.unwrap();
    }
    // Oldest first; equal timestamps in commit order.
    all.sort_by_key(|event| event.timestamp);
    let expected = request_ids(&all);

    for limit in [1, 7, 10, 50, 51] {
        let seen = all_audit(&*store, &id("acme"), &query(limit)).await;
        assert_eq!(request_ids(&seen), expected, "limit {limit}");
    }
    let whole = store.audit(&id("acme"), &query(50)).await.unwrap();
    assert_eq!(whole.events, all);
    assert_eq!(store.audit(&id("acme"), &query(100)).await.unwrap().next, None, "no cursor after the last event");
    assert_eq!(all_audit(&*store, &id("acme-corp"), &query(9)).await.len(), 50, "the other tenant's log is its own");
    assert_eq!(store.audit(&id("nobody"), &query(10)).await.unwrap().events, vec![]);
}

pub async fn audit_filters_by_time_and_action_across_pages(fixture: &dyn Fixture) {
    let store = fixture.open().await;
    let actions = ["tools/call", "tools/select", "admin/update"];
    let mut all = Vec::new();
    for n in 0..60 {
        // Three events per second, one of each action, plus sub-second offsets on some.
        let timestamp = at(n / 3) + Duration::microseconds(if n % 7 == 0 { 250 } else { 0 });
        all.push(event("acme", timestamp, actions[(n % 3) as usize], format!("e{n}")));
    }
    for chunk in all.chunks(16) {
        store.commit(Arc::new(Batch { audit: chunk.to_vec(), ..Default::default() })).await.unwrap();
    }
    all.sort_by_key(|event| event.timestamp);

    let queries = [
        AuditQuery { since: Some(at(5)), ..query(4) },
        AuditQuery { until: Some(at(12)), ..query(5) },
        AuditQuery { since: Some(at(3)), until: Some(at(9)), ..query(3) },
        AuditQuery { since: Some(at(3) + Duration::microseconds(250)), until: Some(at(9)), ..query(2) },
        AuditQuery { action: Some("tools/select".into()), ..query(6) },
        AuditQuery { since: Some(at(4)), until: Some(at(15)), action: Some("admin/update".into()), ..query(1) },
        AuditQuery { action: Some("nothing".into()), ..query(5) },
        AuditQuery { since: Some(at(30)), ..query(5) },
        AuditQuery { since: Some(at(9)), until: Some(at(3)), ..query(5) },
    ];
    for base in queries {
        let expected: Vec<&AuditEvent> = all.iter().filter(|e| base.matches(e)).collect();
        let seen = all_audit(&*store, &id("acme"), &base).await;
        assert_eq!(seen.iter().collect::<Vec<_>>(), expected, "{base:?}");
    }

    // A cursor taken under one window still continues correctly under a later `since`.
    let first = store.audit(&id("acme"), &query(5)).await.unwrap();
    let after = first.next.expect("more events follow the first page");
    let later = AuditQuery { since: Some(at(10)), after: Some(after), ..query(100) };
    let expected: Vec<&AuditEvent> = all.iter().filter(|e| e.timestamp >= at(10)).collect();
    assert_eq!(store.audit(&id("acme"), &later).await.unwrap().events.iter().collect::<Vec<_>>(), expected);
}

/// Events reach the store well after their time (a long request's event is committed when it
/// ends, a peer delivers an owner's events late): each still takes its place in time among those
/// committed before it, on every page, in windows, and through retention.
pub async fn audit_events_committed_late_take_their_place_in_time(fixture: &dyn Fixture) {
    let store = fixture.open().await;
    let mut all = Vec::new();
    let mut commit = async |audit: Vec<AuditEvent>| {
        all.extend(audit.clone());
        store.commit(Arc::new(Batch { audit, ..Default::default() })).await.unwrap();
    };
    // One a second for 300 s, then late ones: an hour before, between and on earlier ones, after.
    commit((0..300).map(|n| event("acme", at(n), "tools/call", format!("on-time-{n}"))).collect()).await;
    let late = [at(-3600), at(150) + Duration::milliseconds(500), at(299), at(150), at(1000), at(0)];
    commit(late.iter().enumerate().map(|(n, t)| event("acme", *t, "tools/call", format!("late-{n}"))).collect()).await;
    commit(vec![event("acme", at(150), "tools/select", "later-still".into())]).await;
    // Oldest first; equal timestamps in commit order.
    all.sort_by_key(|event| event.timestamp);

    for limit in [1, 7, 100, 1000] {
        assert_eq!(
            request_ids(&all_audit(&*store, &id("acme"), &query(limit)).await),
            request_ids(&all),
            "limit {limit}"
        );
    }
    let window = AuditQuery { since: Some(at(149)), until: Some(at(151)), ..query(2) };
    let expected: Vec<&AuditEvent> = all.iter().filter(|e| window.matches(e)).collect();
    assert_eq!(
        request_ids(&expected.into_iter().cloned().collect::<Vec<_>>()),
        ["on-time-149", "on-time-150", "late-3", "later-still", "late-1", "on-time-151"]
    );
    assert_eq!(
        all_audit(&*store, &id("acme"), &window).await,
        all.iter().filter(|e| window.matches(e)).cloned().collect::<Vec<_>>()
    );

    // Retention before 150 s: the hour-old one, the first 150 and the late one at 0 s.
    assert_eq!(store.delete_audit_before(at(150)).await.unwrap(), 152);
    let kept: Vec<AuditEvent> = all.iter().filter(|e| e.timestamp >= at(150)).cloned().collect();
    for limit in [1, 9, 1000] {
        assert_eq!(
            request_ids(&all_audit(&*store, &id("acme"), &query(limit)).await),
            request_ids(&kept),
            "limit {limit}"
        );
    }
}

/// Retention (`audit.retentionDays`) deletes by time alone, in every tenant's log, a deleted
/// tenant's included: strictly older events go, one exactly at the cutoff stays, to the
/// nanosecond, and what stays pages as before, from cursors taken before too.
pub async fn audit_retention_deletes_exactly_the_older_events_of_every_log(fixture: &dyn Fixture) {
    let store = fixture.open().await;
    for tenant in ["acme", "acme-corp", "globex"] {
        store.create_tenant(&active(tenant, vec![])).await.unwrap();
    }
    let cutoff = at(0);
    // Out of time order, twice (equal timestamps), acme's and globex's interleaved in each batch;
    // acme-corp, whose id extends acme's, has only events the cutoff keeps.
    let offsets = [
        Duration::seconds(60),
        Duration::microseconds(-1),
        Duration::zero(),
        Duration::seconds(-120),
        Duration::microseconds(1),
        Duration::seconds(-60),
    ];
    let mut all = Vec::new();
    for round in 0..2 {
        let mut audit = Vec::new();
        for (n, offset) in offsets.iter().enumerate() {
            for tenant in ["acme", "globex"] {
                audit.push(event(tenant, cutoff + *offset, "tools/call", format!("{tenant}-{round}-{n}")));
            }
        }
        audit.push(event("acme-corp", cutoff + Duration::seconds(round + 1), "tools/call", format!("corp-{round}")));
        all.extend(audit.clone());
        store.commit(Arc::new(Batch { audit, ..Default::default() })).await.unwrap();
    }
    store.delete_tenant(&id("globex")).await.unwrap();
    let before_pruning = store.audit(&id("acme"), &query(2)).await.unwrap();
    assert_eq!(request_ids(&before_pruning.events), ["acme-0-3", "acme-1-3"]);

    // What stays of a log: its events at or after `from`, oldest first; the stores keep time to
    // the microsecond in their order, so events of one microsecond come in commit order.
    let kept = |all: &[AuditEvent], tenant: &str, from: DateTime<Utc>| {
        let mut kept: Vec<AuditEvent> =
            all.iter().filter(|e| e.tenant_id == id(tenant) && e.timestamp >= from).cloned().collect();
        kept.sort_by_key(|e| e.timestamp.timestamp_micros());
        kept
    };
    let check = async |all: &[AuditEvent], from: DateTime<Utc>| {
        for tenant in ["acme", "acme-corp", "globex"] {
            let expected = kept(all, tenant, from);
            assert!(!expected.is_empty());
            for limit in [1, 3, 100] {
                let seen = all_audit(&*store, &id(tenant), &query(limit)).await;
                assert_eq!(request_ids(&seen), request_ids(&expected), "{tenant}, limit {limit}");
            }
            assert_eq!(store.audit(&id(tenant), &query(100)).await.unwrap().events, expected, "{tenant}");
        }
    };

    assert_eq!(store.delete_audit_before(at(-3600)).await.unwrap(), 0, "nothing is that old");
    check(&all, at(-3600)).await;

    // Per deleted-or-live tenant with old events: three times before the cutoff, twice each.
    assert_eq!(store.delete_audit_before(cutoff).await.unwrap(), 12);
    check(&all, cutoff).await;
    assert_eq!(store.delete_audit_before(cutoff).await.unwrap(), 0, "a second call finds nothing more");
    // A cursor read before the pruning, into what it deleted, continues with what stays.
    let continued = AuditQuery { after: before_pruning.next, ..query(100) };
    assert_eq!(store.audit(&id("acme"), &continued).await.unwrap().events, kept(&all, "acme", cutoff));

    // A cutoff within a microsecond: events of that microsecond go or stay by their nanoseconds,
    // whatever their commit order (the later one first here).
    let split = cutoff + Duration::nanoseconds(500);
    let mut audit = Vec::new();
    for tenant in ["acme", "globex"] {
        audit.push(event(tenant, cutoff + Duration::nanoseconds(750), "tools/call", format!("{tenant}-750ns")));
        audit.push(event(tenant, cutoff + Duration::nanoseconds(250), "tools/call", format!("{tenant}-250ns")));
        audit.push(event(tenant, split, "tools/call", format!("{tenant}-500ns")));
    }
    all.extend(audit.clone());
    store.commit(Arc::new(Batch { audit, ..Default::default() })).await.unwrap();
    // Per tenant: the two events exactly at the earlier cutoff and the one at 250 ns.
    assert_eq!(store.delete_audit_before(split).await.unwrap(), 6);
    check(&all, split).await;
    let first_second = AuditQuery { until: Some(cutoff + Duration::seconds(1)), ..query(4) };
    let page = store.audit(&id("acme"), &first_second).await.unwrap();
    assert_eq!(request_ids(&page.events), ["acme-750ns", "acme-500ns", "acme-0-4", "acme-1-4"]);
    assert_eq!(store.delete_audit_before(split).await.unwrap(), 0);
}

/// Retention reaches every log, however many there are, and empties a log of any length, in as
/// many steps as the adapter needs (both take at most 10,000 events per step).
pub async fn audit_retention_reaches_every_log_however_many_and_however_long(fixture: &dyn Fixture) {
    let store = fixture.open().await;
    let cutoff = at(0);
    let tenants = 1_500;
    let mut audit = Vec::new();
    for n in 0..tenants {
        let tenant = format!("t{n}");
        audit.push(event(&tenant, cutoff - Duration::seconds(1), "tools/call", format!("old-{n}")));
        audit.push(event(&tenant, cutoff, "tools/call", format!("new-{n}")));
    }
    let long = 12_345;
    audit
        .extend((0..long).map(|n| event("long", at(-3600) + Duration::milliseconds(n), "tools/call", format!("l{n}"))));
    audit.push(event("long", cutoff, "tools/call", "kept".into()));
    for batch in audit.chunks(2_500) {
        store.commit(Arc::new(Batch { audit: batch.to_vec(), ..Default::default() })).await.unwrap();
    }

    assert_eq!(store.delete_audit_before(cutoff).await.unwrap(), tenants as u64 + long as u64);
    for n in 0..tenants {
        let seen = store.audit(&id(&format!("t{n}")), &query(10)).await.unwrap().events;
        assert_eq!(request_ids(&seen), [format!("new-{n}")]);
    }
    assert_eq!(request_ids(&all_audit(&*store, &id("long"), &query(10)).await), ["kept"]);
    assert_eq!(store.delete_audit_before(cutoff).await.unwrap(), 0);
}

pub async fn meta_round_trips(fixture: &dyn Fixture) {
    let store = fixture.open().await;
    assert_eq!(store.meta("admin_key_hash").await.unwrap(), None);
    store.set_meta("admin_key_hash", b"first").await.unwrap();
    store.set_meta("other", &[0, 255, 1]).await.unwrap();
    store.set_meta("admin_key_hash", b"second").await.unwrap();
    assert_eq!(store.meta("admin_key_hash").await.unwrap().as_deref(), Some(b"second".as_slice()));
    assert_eq!(store.meta("other").await.unwrap(), Some(vec![0, 255, 1]));
    store.set_meta("empty", b"").await.unwrap();
    assert_eq!(store.meta("empty").await.unwrap(), Some(vec![]));
}

pub async fn entries_are_kept_per_collection_in_name_order(fixture: &dyn Fixture) {
    let store = fixture.open().await;
    assert_eq!(store.entries("integrations").await.unwrap(), vec![]);
    store.put_entry("integrations", "slack", b"s1").await.unwrap();
    store.put_entry("integrations", "github", b"g1").await.unwrap();
    store.put_entry("integrations", "slack", b"s2").await.unwrap();
    store.put_entry("servers:acme", "slack", &[0, 255]).await.unwrap();
    // A collection whose name extends another's is its own.
    store.put_entry("integrations2", "a", b"x").await.unwrap();
    assert_eq!(
        store.entries("integrations").await.unwrap(),
        vec![("github".to_string(), b"g1".to_vec()), ("slack".to_string(), b"s2".to_vec())]
    );
    assert_eq!(store.entries("servers:acme").await.unwrap(), vec![("slack".to_string(), vec![0, 255])]);
    assert!(store.delete_entry("integrations", "github").await.unwrap());
    assert!(!store.delete_entry("integrations", "github").await.unwrap());
    assert_eq!(store.entries("integrations").await.unwrap(), vec![("slack".to_string(), b"s2".to_vec())]);
}

/// The entries of a collection as [`Store::entries`] lists them.
fn listed(entries: &[(&str, &[u8])]) -> Vec<(String, Vec<u8>)> {
    entries.iter().map(|(name, value)| (name.to_string(), value.to_vec())).collect()
}

pub async fn replace_entry_writes_only_over_the_expected_value(fixture: &dyn Fixture) {
    let store = fixture.open().await;
    let servers = "servers:acme";
    store.put_entry("servers:globex", "github", b"v1").await.unwrap();

    // Creating: only while the entry is absent.
    assert!(!store.replace_entry(servers, "github", Some(b"v1"), Some(b"v2")).await.unwrap(), "nothing to replace");
    assert_eq!(store.entries(servers).await.unwrap(), vec![]);
    assert!(store.replace_entry(servers, "github", None, Some(b"v1")).await.unwrap());
    assert!(!store.replace_entry(servers, "github", None, Some(b"other")).await.unwrap(), "it exists now");
    assert_eq!(store.entries(servers).await.unwrap(), listed(&[("github", b"v1")]));

    // Replacing: only over the expected bytes, exactly.
    for stale in [b"v0".as_slice(), b"", b"v1\0", b"V1"] {
        assert!(!store.replace_entry(servers, "github", Some(stale), Some(b"v2")).await.unwrap(), "{stale:?}");
        assert!(!store.replace_entry(servers, "github", Some(stale), None).await.unwrap(), "{stale:?}");
    }
    assert_eq!(store.entries(servers).await.unwrap(), listed(&[("github", b"v1")]), "a mismatch changes nothing");
    assert!(store.replace_entry(servers, "github", Some(b"v1"), Some(&[0, 255])).await.unwrap());
    assert!(!store.replace_entry(servers, "github", Some(b"v1"), Some(b"v3")).await.unwrap(), "v1 is gone");
    assert!(store.replace_entry(servers, "slack", None, Some(b"")).await.unwrap(), "an empty value is a value");
    assert!(!store.replace_entry(servers, "slack", None, Some(b"s")).await.unwrap(), "an empty value is not absence");
    assert_eq!(store.entries(servers).await.unwrap(), listed(&[("github", &[0, 255]), ("slack", b"")]));

    // Removing: only when the expectation holds.
    assert!(!store.replace_entry(servers, "github", None, None).await.unwrap(), "it is not absent");
    assert!(!store.replace_entry(servers, "github", Some(b"v1"), None).await.unwrap());
    assert_eq!(store.entries(servers).await.unwrap(), listed(&[("github", &[0, 255]), ("slack", b"")]));
    assert!(store.replace_entry(servers, "github", Some(&[0, 255]), None).await.unwrap());
    assert!(store.replace_entry(servers, "slack", Some(b""), None).await.unwrap());
    assert_eq!(store.entries(servers).await.unwrap(), vec![]);
    assert!(!store.delete_entry(servers, "github").await.unwrap(), "removed for good");
    assert!(store.replace_entry(servers, "github", None, None).await.unwrap(), "absent, as expected: nothing to do");
    assert_eq!(store.entries(servers).await.unwrap(), vec![]);

    // Another collection with an entry of the same name is untouched throughout.
    assert_eq!(store.entries("servers:globex").await.unwrap(), listed(&[("github", b"v1")]));
}

/// Of replaces racing from the same expectation (an absent entry, then a value), exactly one
/// wins, and what is stored is the winner's.
pub async fn racing_entry_replaces_from_one_expectation_let_exactly_one_win(fixture: &dyn Fixture) {
    let store = fixture.open().await;
    let mut expected: Option<Vec<u8>> = None;
    for round in 0..2 {
        let racers: Vec<_> = (0..8)
            .map(|i| {
                let (store, expected) = (store.clone(), expected.clone());
                tokio::spawn(async move {
                    let value = format!("round-{round}-racer-{i}");
                    let new = Some(value.as_bytes());
                    let won = store.replace_entry("servers:acme", "github", expected.as_deref(), new).await.unwrap();
                    won.then_some(value)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for racer in racers {
            winners.extend(racer.await.unwrap());
        }
        assert_eq!(winners.len(), 1, "round {round}, winners: {winners:?}");
        let winner = winners.pop().unwrap().into_bytes();
        assert_eq!(store.entries("servers:acme").await.unwrap(), vec![("github".to_string(), winner.clone())]);
        expected = Some(winner);
    }
}

pub async fn everything_committed_survives_reopening(fixture: &dyn Fixture) {
    let jan = day(2026, 1, 31);
    let acme = active("acme", vec![key("ck_a", Some(at(60)))]);
    {
        let store = fixture.open().await;
        store.create_tenant(&acme).await.unwrap();
        let batch = Batch {
            id: None,
            audit: vec![event("acme", at(0), "tools/call", "before".into())],
            usage: vec![requests("acme", jan, 2)],
            checkpoints: vec![(id("acme"), checkpoint(4))],
        };
        store.commit(Arc::new(batch)).await.unwrap();
        store.set_meta("admin_key_hash", b"h").await.unwrap();
    }

    let store = fixture.open().await;
    assert_eq!(store.tenant(&id("acme")).await.unwrap(), Some(acme));
    assert_eq!(store.key_owner(&KeyHash::of("ck_a")).await.unwrap(), owner("acme", Some(at(60))));
    assert_eq!(store.checkpoint(&id("acme")).await.unwrap(), Some(checkpoint(4)));
    assert_eq!(store.usage_of_month(&id("acme"), Month::containing(jan)).await.unwrap().requests, 2);
    assert_eq!(store.meta("admin_key_hash").await.unwrap(), Some(b"h".to_vec()));
    // The sequence survives too: an event with the same timestamp, committed after reopening,
    // sorts after the one committed before.
    let after = Batch { audit: vec![event("acme", at(0), "tools/call", "after".into())], ..Default::default() };
    store.commit(Arc::new(after)).await.unwrap();
    assert_eq!(request_ids(&all_audit(&*store, &id("acme"), &query(1)).await), ["before", "after"]);
}
