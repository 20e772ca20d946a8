//! The billing webhook against a local receiver (axum, in the test): each tenant's bill of the
//! month that ended is posted signed (HMAC-SHA256), retried after a 500 with the same
//! idempotency key and body, never sent again once acknowledged, sent by one of two nodes
//! sharing a store, and every attempt is in the tenant's audit log.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use chrono::{DateTime, Duration, TimeZone, Utc};
use connectors::backends::redb_store::RedbStore;
use connectors::billing_webhook::delivery::Schedule;
use connectors::billing_webhook::{BillingWebhook, WebhookSettings, signature};
use connectors::config::Pricing;
use connectors_actors::api_key::KeyHash;
use connectors_actors::audit::AuditQuery;
use connectors_actors::clock::Clock;
use connectors_actors::store::{Batch, Store, UsageDelta};
use connectors_actors::tenant::{StoredKey, TenantId, TenantRecord, TenantStatus};
use connectors_actors::usage::UsageCounters;
use serde_json::Value;

const SECRET: &str = "whsec-test-5d0c9a7e3b1f4a2c";

struct ManualClock(Mutex<DateTime<Utc>>);

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

impl ManualClock {
    fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

/// One request as the receiver saw it.
#[derive(Clone, Debug)]
struct Received {
    key: String,
    signature_ok: bool,
    body: String,
}

/// The billing system: records every request, answers 500 to the first of each idempotency key
/// (after recording it: an acknowledgement lost on the way), and 200 to the rest; an invoice is
/// made once per key.
#[derive(Default)]
struct Receiver {
    requests: Mutex<Vec<Received>>,
    invoices: Mutex<Vec<String>>,
}

async fn receive(State(receiver): State<Arc<Receiver>>, headers: HeaderMap, body: String) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let key = header("idempotency-key");
    let signature_ok = signature::verify(SECRET.as_bytes(), &header(signature::HEADER), body.as_bytes()).is_some();
    let first = {
        let mut requests = receiver.requests.lock().unwrap();
        let first = !requests.iter().any(|r| r.key == key);
        requests.push(Received { key: key.clone(), signature_ok, body });
        first
    };
    if !signature_ok {
        return StatusCode::UNAUTHORIZED;
    }
    let mut invoices = receiver.invoices.lock().unwrap();
    if !invoices.contains(&key) {
        invoices.push(key);
    }
    if first { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::OK }
}

fn tenant(id: &str) -> TenantRecord {
    let then = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    TenantRecord {
        id: TenantId::parse(id).unwrap(),
        name: id.into(),
        email: None,
        plan: "pro".into(),
        status: TenantStatus::Active,
        limits: Default::default(),
        features: Default::default(),
        security: Default::default(),
        mcp: Default::default(),
        created_at: then,
        updated_at: then,
        keys: vec![StoredKey { hash: KeyHash::of(id), created_at: then, expires_at: None }],
    }
}

fn pricing() -> Pricing {
    Pricing {
        currency: "USD".into(),
        per_thousand_api_calls_micros: 500_000,
        per_tool_invocation_micros: 2_000,
        per_custom_server_month_micros: 10_000_000,
    }
}

fn settings(url: &str) -> WebhookSettings {
    WebhookSettings {
        url: url.parse().unwrap(),
        secret: zeroize::Zeroizing::new(SECRET.as_bytes().to_vec()),
        close_delay: Duration::minutes(10),
        schedule: Schedule {
            first_retry: Duration::seconds(30),
            max_retry: Duration::seconds(600),
            lease: Duration::seconds(20),
        },
        timeout: std::time::Duration::from_secs(10),
        poll: std::time::Duration::from_secs(60),
    }
}

async fn audit_of(store: &dyn Store, tenant: &str) -> Vec<Value> {
    let query =
        AuditQuery { since: None, until: None, action: Some("billing.webhook".into()), limit: 100, after: None };
    let page = store.audit(&TenantId::parse(tenant).unwrap(), &query).await.unwrap();
    page.events.iter().map(|e| serde_json::to_value(e).unwrap()).collect()
}

#[tokio::test]
async fn closed_bills_are_posted_signed_retried_until_acknowledged_and_audited() {
    let receiver = Arc::new(Receiver::default());
    let app = axum::Router::new().route("/hooks/billing", post(receive)).with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/billing", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(RedbStore::open(&dir.path().join("connectors.redb"), 8 << 20).unwrap());
    for id in ["acme", "globex"] {
        store.create_tenant(&tenant(id)).await.unwrap();
    }
    // November's usage of acme; globex used nothing and still gets its (zero) bill.
    let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 15).unwrap();
    let counters = UsageCounters { api_calls: 2_500, tool_invocations: 3, ..Default::default() };
    let usage = vec![UsageDelta { tenant: TenantId::parse("acme").unwrap(), day, counters }];
    store.commit(Arc::new(Batch { usage, ..Default::default() })).await.unwrap();

    let clock = Arc::new(ManualClock(Mutex::new(Utc.with_ymd_and_hms(2026, 12, 3, 12, 0, 0).unwrap())));
    // Two nodes sharing the store.
    let node = |clock: &Arc<ManualClock>| {
        BillingWebhook::new(store.clone(), clock.clone(), settings(&url), pricing()).expect("webhook")
    };
    let (one, two) = (node(&clock), node(&clock));

    // First pass of both: November closes; each bill is posted once and refused with a 500.
    let (a, b) = tokio::join!(one.run_once(), two.run_once());
    a.unwrap();
    b.unwrap();
    let first: Vec<Received> = receiver.requests.lock().unwrap().clone();
    let mut keys: Vec<&str> = first.iter().map(|r| r.key.as_str()).collect();
    keys.sort();
    assert_eq!(keys, ["bill-acme-2026-11", "bill-globex-2026-11"], "one attempt per bill, by one node");
    assert!(first.iter().all(|r| r.signature_ok), "signed with the shared secret");
    let acme = first.iter().find(|r| r.key == "bill-acme-2026-11").unwrap();
    let body: Value = serde_json::from_str(&acme.body).unwrap();
    assert_eq!(body["type"], "billing.month_closed");
    assert_eq!(body["idempotencyKey"], "bill-acme-2026-11");
    assert_eq!((body["tenantId"].as_str(), body["month"].as_str()), (Some("acme"), Some("2026-11")));
    assert_eq!(body["bill"]["apiCalls"], 2_500);
    assert_eq!(body["bill"]["totalCost"], 1.256);
    assert!(signature::verify(b"another-secret-000", "t=1,v1=00", acme.body.as_bytes()).is_none());

    // Before the back-off ends nothing is sent again.
    one.run_once().await.unwrap();
    assert_eq!(receiver.requests.lock().unwrap().len(), 2);
    let failed = audit_of(store.as_ref(), "acme").await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!((failed[0]["result"].as_str(), failed[0]["params"]["status"].as_u64()), (Some("error"), Some(500)));
    assert_eq!(failed[0]["params"]["attempt"], 1);
    assert!(failed[0]["params"]["retryAt"].is_string());

    // After it: the same key and the same body again, acknowledged this time.
    clock.advance(Duration::seconds(30));
    two.run_once().await.unwrap();
    let requests: Vec<Received> = receiver.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 4);
    let resent = requests[2..].iter().find(|r| r.key == "bill-acme-2026-11").expect("acme sent again");
    assert_eq!(resent.body, acme.body, "a retry is byte-identical");
    assert!(resent.signature_ok);
    assert_eq!(receiver.invoices.lock().unwrap().len(), 2, "the receiver made one invoice per key");
    let events = audit_of(store.as_ref(), "acme").await;
    assert_eq!(events.len(), 2);
    assert_eq!((events[1]["result"].as_str(), events[1]["params"]["status"].as_u64()), (Some("success"), Some(200)));
    assert_eq!(events[1]["params"]["attempt"], 2);
    assert_eq!(events[1]["params"]["idempotencyKey"], "bill-acme-2026-11");

    // Acknowledged bills are never sent again, and the month is not closed twice.
    clock.advance(Duration::days(3));
    one.run_once().await.unwrap();
    two.run_once().await.unwrap();
    assert_eq!(receiver.requests.lock().unwrap().len(), 4);

    // December closes on January 1st after the delay.
    *clock.0.lock().unwrap() = Utc.with_ymd_and_hms(2027, 1, 1, 0, 11, 0).unwrap();
    one.run_once().await.unwrap();
    let keys: Vec<String> = receiver.requests.lock().unwrap()[4..].iter().map(|r| r.key.clone()).collect();
    assert_eq!(keys.len(), 2);
    assert!(keys.iter().all(|k| k.ends_with("-2026-12")), "{keys:?}");
}

#[tokio::test]
async fn an_unreachable_receiver_is_retried_and_audited_without_the_bill() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    drop(listener); // nothing listens there now
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(RedbStore::open(&dir.path().join("connectors.redb"), 8 << 20).unwrap());
    store.create_tenant(&tenant("acme")).await.unwrap();
    let clock = Arc::new(ManualClock(Mutex::new(Utc.with_ymd_and_hms(2026, 12, 3, 12, 0, 0).unwrap())));
    let webhook = BillingWebhook::new(store.clone(), clock.clone(), settings(&url), pricing()).unwrap();
    webhook.run_once().await.unwrap();
    clock.advance(Duration::seconds(30));
    webhook.run_once().await.unwrap();
    let events = audit_of(store.as_ref(), "acme").await;
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e["result"] == "error" && e["params"]["error"] == "cannot connect"), "{events:?}");
    assert_eq!(events[1]["params"]["attempt"], 2);
    let delays: Vec<i64> = events
        .iter()
        .map(|e| {
            let at = DateTime::parse_from_rfc3339(e["timestamp"].as_str().unwrap()).unwrap();
            let retry = DateTime::parse_from_rfc3339(e["params"]["retryAt"].as_str().unwrap()).unwrap();
            (retry - at).num_seconds()
        })
        .collect();
    assert_eq!(delays, [30, 60], "back-off doubles");
}
