use axum::body::to_bytes;
use chrono::TimeZone;
use connectors_actors::api_key::KeyHash;
use connectors_actors::tenant::{StoredKey, TenantStatus};
use connectors_actors::usage::{Month, UsageCounters};

use super::*;
use crate::billing::tests::pricing;

fn record(tenant: &str, name: &str) -> Arc<TenantRecord> {
    let then = chrono::Utc.with_ymd_and_hms(2026, 11, 3, 9, 30, 0).unwrap();
    Arc::new(TenantRecord {
        id: TenantId::parse(tenant).unwrap(),
        name: name.into(),
        email: Some("ops@example.com".into()),
        plan: "pro".into(),
        status: TenantStatus::Active,
        limits: Default::default(),
        features: Default::default(),
        security: Default::default(),
        mcp: Default::default(),
        created_at: then,
        updated_at: then,
        keys: vec![StoredKey { hash: KeyHash::of("ck_secret"), created_at: then, expires_at: None }],
    })
}

fn limits(per_minute: u64) -> Limits {
    Limits {
        requests_per_minute: per_minute,
        requests_per_hour: 1_000,
        requests_per_day: 10_000,
        max_custom_servers: 1,
        max_tool_invocations: 100,
        max_storage_mb: 10,
    }
}

fn snapshot(record: &Arc<TenantRecord>, limits: Limits, api_calls: u64) -> TenantSnapshot {
    TenantSnapshot {
        record: record.clone(),
        record_fingerprint: None,
        limits,
        features: Features { custom_servers: false, oauth: true, advanced_analytics: false },
        month: Month::of(record.created_at),
        usage: UsageCounters { api_calls, tool_invocations: 3, ..Default::default() },
    }
}

/// What the view answers when serialised whole, as the handlers did before the record part
/// was kept.
fn whole(tenant: &TenantSnapshot) -> Vec<u8> {
    serde_json::to_vec(&TenantView::from_snapshot(tenant, &pricing())).unwrap()
}

fn body(json: &TenantJson, tenant: &TenantSnapshot) -> Bytes {
    json.body(tenant, &pricing()).unwrap()
}

#[test]
fn the_body_is_the_whole_view_byte_for_byte_whether_its_record_part_was_kept_or_not() {
    let json = TenantJson::default();
    let acme = record("acme", "Acme \"Tools\" Ünlimited\n");
    let first = snapshot(&acme, limits(60), 1);
    assert_eq!(body(&json, &first), whole(&first), "written afresh");
    assert_eq!(json.kept.len(), 1);
    let later = snapshot(&acme, limits(60), 2_501);
    assert_eq!(body(&json, &later), whole(&later), "record part kept, usage of now");
    let value: serde_json::Value = serde_json::from_slice(&body(&json, &later)).unwrap();
    assert_eq!(value["usage"]["apiCalls"], 2_501);
    assert_eq!(value["name"], "Acme \"Tools\" Ünlimited\n");
    assert!(value.get("apiKey").is_none() && !String::from_utf8_lossy(&whole(&later)).contains("keys"));
}

#[test]
fn a_new_record_version_or_new_limits_are_written_afresh() {
    let json = TenantJson::default();
    let old = record("acme", "Acme");
    assert_eq!(body(&json, &snapshot(&old, limits(60), 1)), whole(&snapshot(&old, limits(60), 1)));

    // The actor installs a changed record as a new `Arc`, while the old one may still live.
    let renamed = record("acme", "Acme Corp");
    let tenant = snapshot(&renamed, limits(60), 2);
    assert_eq!(body(&json, &tenant), whole(&tenant));
    assert!(String::from_utf8_lossy(&body(&json, &tenant)).contains("\"name\":\"Acme Corp\""));

    // The same record under other limits (the plan's limits changed in the configuration).
    let tenant = snapshot(&renamed, limits(5), 3);
    assert_eq!(body(&json, &tenant), whole(&tenant));
    assert!(String::from_utf8_lossy(&body(&json, &tenant)).contains("\"requestsPerMinute\":5,"));

    // Only a weak reference to a version is kept: once every copy of it is gone, a record
    // allocated later is never taken for it.
    drop(old);
    drop(renamed);
    let again = record("acme", "Acme Again");
    let tenant = snapshot(&again, limits(5), 4);
    assert_eq!(body(&json, &tenant), whole(&tenant));
    assert_eq!(json.kept.len(), 1, "one entry per tenant, replaced by its newer version");
}

#[test]
fn tenants_never_see_each_others_part_and_the_kept_parts_stay_bounded() {
    let json = TenantJson::default();
    let acme = record("acme", "Acme");
    let globex = record("globex", "Globex");
    for _ in 0..2 {
        for tenant in [snapshot(&acme, limits(60), 7), snapshot(&globex, limits(60), 9)] {
            assert_eq!(body(&json, &tenant), whole(&tenant));
        }
    }
    let records: Vec<_> = (0..KEPT + 10).map(|i| record(&format!("t{i}"), "T")).collect();
    for tenant in &records {
        let tenant = snapshot(tenant, limits(60), 1);
        assert_eq!(body(&json, &tenant), whole(&tenant));
        assert!(json.kept.len() <= KEPT);
    }
}

#[tokio::test]
async fn the_response_is_json() {
    let json = TenantJson::default();
    let tenant = snapshot(&record("acme", "Acme"), limits(60), 1);
    let response = json.response(&tenant, &pricing());
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    assert_eq!(to_bytes(response.into_body(), usize::MAX).await.unwrap(), whole(&tenant));
}
