//! The Redis store against a real `redis-server` per test: the contract suite, then what only a
//! networked store has (start-up against a dead or silent Redis, Redis dying mid-run, foreign
//! data under the prefix).

use std::net::{Ipv4Addr, TcpListener};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use connectors_actors::audit::{AuditEvent, AuditResult};
use connectors_actors::rate_windows::WindowCount;
use connectors_actors::store::UsageDelta;
use connectors_actors::tenant::{StoredKey, TenantStatus};
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;

use super::*;
use crate::backends::redis_server::RedisServer;
use crate::backends::store_contract::{self, Fixture};

const PREFIX: &str = "connectors-test:";

/// A server of its own per test; every `open` connects anew to its data.
struct RedisFixture {
    server: RedisServer,
    layout: RedisLayout,
}

impl RedisFixture {
    fn new() -> Self {
        Self { server: RedisServer::start(), layout: RedisLayout::Shared }
    }

    fn separate() -> Self {
        Self { server: RedisServer::start(), layout: RedisLayout::Separate }
    }
}

#[async_trait]
impl Fixture for RedisFixture {
    async fn open(&self) -> Arc<dyn Store> {
        let store = RedisStore::connect(&self.server.url(), PREFIX).await.expect("the test Redis answers");
        Arc::new(store.with_layout(self.layout).await.expect("the layout is the store's"))
    }
}

store_contract::store_contract_tests!(RedisFixture::new());

/// The whole contract again with every tenant's keys under its own prefix
/// (`separateRedisNamespace`).
mod separate_namespace {
    use super::*;

    store_contract::store_contract_tests!(RedisFixture::separate());
}

#[tokio::test]
async fn a_store_keeps_the_layout_it_was_made_with() {
    let server = RedisServer::start();
    let store =
        RedisStore::connect(&server.url(), PREFIX).await.unwrap().with_layout(RedisLayout::Shared).await.unwrap();
    store.create_tenant(&tenant("acme")).await.unwrap();
    drop(store);
    let refused = RedisStore::connect(&server.url(), PREFIX).await.unwrap().with_layout(RedisLayout::Separate).await;
    let Err(StoreError::Backend(message)) = refused else { panic!("a layout switch over existing data was accepted") };
    assert!(message.contains("separateRedisNamespace"), "{message}");
    // An old store without the mark, holding tenants, cannot be switched either.
    let mut conn = raw(&server).await;
    let _: () = conn.del(format!("{PREFIX}meta:redis_layout")).await.unwrap();
    let refused = RedisStore::connect(&server.url(), PREFIX).await.unwrap().with_layout(RedisLayout::Separate).await;
    assert!(refused.is_err());
    let kept =
        RedisStore::connect(&server.url(), PREFIX).await.unwrap().with_layout(RedisLayout::Shared).await.unwrap();
    assert!(kept.tenant(&id("acme")).await.unwrap().is_some());
}

async fn raw(server: &RedisServer) -> MultiplexedConnection {
    let client = redis::Client::open(server.url()).unwrap();
    client.get_multiplexed_async_connection().await.unwrap()
}

fn id(text: &str) -> TenantId {
    TenantId::parse(text).unwrap()
}

fn tenant(name: &str) -> TenantRecord {
    let at = Utc.with_ymd_and_hms(2026, 1, 31, 12, 0, 0).unwrap();
    TenantRecord {
        id: id(name),
        name: name.into(),
        email: None,
        plan: "free".into(),
        status: TenantStatus::Active,
        limits: Default::default(),
        features: Default::default(),
        security: Default::default(),
        mcp: Default::default(),
        created_at: at,
        updated_at: at,
        keys: vec![StoredKey { hash: KeyHash::of(&format!("ck_{name}")), created_at: at, expires_at: None }],
    }
}

fn audit_event(tenant: &str, request_id: &str) -> AuditEvent {
    AuditEvent {
        timestamp: Utc.with_ymd_and_hms(2026, 1, 31, 12, 0, 0).unwrap(),
        tenant_id: id(tenant),
        user_id: None,
        action: "tools/call".into(),
        tool_id: None,
        params: None,
        result: AuditResult::Success,
        duration: 1,
        ip: None,
        user_agent: None,
        request_id: request_id.into(),
        event_id: None,
    }
}

fn all_events() -> AuditQuery {
    AuditQuery { since: None, until: None, action: None, limit: 100, after: None }
}

/// Runs `call` with a deadline far above the store's own timeouts: a hang fails the test.
async fn within<T>(call: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(15), call).await.expect("the store answered, if only with an error")
}

#[tokio::test]
async fn an_unreachable_redis_fails_fast_naming_the_url_without_its_password() {
    // A port nothing listens on.
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port();
    let started = Instant::now();
    let result = within(RedisStore::connect(&format!("redis://gateway:s3cret@127.0.0.1:{port}/"), PREFIX)).await;
    let Err(StoreError::Backend(message)) = result else { panic!("connecting to nothing must fail") };
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert!(!message.contains("s3cret"), "{message}");
}

#[tokio::test]
async fn a_redis_that_never_answers_fails_within_the_connect_timeout() {
    // Accepts connections (the kernel does, into the backlog) but never says a word.
    let silent = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let url = format!("redis://127.0.0.1:{}/", silent.local_addr().unwrap().port());
    let started = Instant::now();
    let Err(StoreError::Backend(message)) = within(RedisStore::connect(&url, PREFIX)).await else {
        panic!("a silent server must not count as connected");
    };
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert!(message.contains(&url), "{message}");
}

#[tokio::test]
async fn calls_fail_while_redis_is_down_and_work_again_after_a_restart() {
    let mut server = RedisServer::start();
    let store = RedisStore::connect(&server.url(), PREFIX).await.unwrap();
    store.create_tenant(&tenant("acme")).await.unwrap();

    server.kill();
    let started = Instant::now();
    let down = |result: Result<_, StoreError>| matches!(result, Err(StoreError::Backend(_)));
    assert!(down(within(store.tenant(&id("acme"))).await.map(drop)));
    assert!(down(within(store.create_tenant(&tenant("globex"))).await));
    let batch = Batch { audit: vec![audit_event("acme", "r1")], ..Default::default() };
    assert!(down(within(store.commit(Arc::new(batch))).await));
    assert!(started.elapsed() < Duration::from_secs(15), "failing took {:?}", started.elapsed());

    // The restarted server is empty (no persistence); the same store object reconnects to it.
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    while within(store.tenant(&id("acme"))).await.is_err() {
        assert!(Instant::now() < deadline, "the store did not reconnect");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    store.create_tenant(&tenant("acme")).await.unwrap();
    assert_eq!(store.tenant(&id("acme")).await.unwrap(), Some(tenant("acme")));
    assert_eq!(store.key_owner(&KeyHash::of("ck_acme")).await.unwrap().map(|owner| owner.tenant), Some(id("acme")));
}

#[tokio::test]
async fn every_key_lives_under_the_prefix_and_prefixes_do_not_share_data() {
    let server = RedisServer::start();
    let blue = RedisStore::connect(&server.url(), "blue:").await.unwrap();
    let green = RedisStore::connect(&server.url(), "green:").await.unwrap();
    blue.create_tenant(&tenant("acme")).await.unwrap();
    let batch = Batch {
        id: None,
        audit: vec![audit_event("acme", "r1")],
        usage: vec![UsageDelta {
            tenant: id("acme"),
            day: NaiveDate::from_ymd_opt(2026, 1, 31).unwrap(),
            counters: UsageCounters { requests: 1, ..Default::default() },
        }],
        checkpoints: vec![],
    };
    blue.commit(Arc::new(batch)).await.unwrap();
    blue.set_meta("admin_key_hash", b"h").await.unwrap();

    let keys: Vec<String> = raw(&server).await.keys("*").await.unwrap();
    assert!(keys.len() >= 8, "{keys:?}");
    assert!(keys.iter().all(|key| key.starts_with("blue:")), "{keys:?}");
    assert_eq!(green.tenant(&id("acme")).await.unwrap(), None);
    assert_eq!(green.audit(&id("acme"), &all_events()).await.unwrap().events, vec![]);
    assert_eq!(green.meta("admin_key_hash").await.unwrap(), None);
    // The same id under another prefix is another tenant.
    green.create_tenant(&tenant("acme")).await.unwrap();
}

#[tokio::test]
async fn unreadable_data_is_reported_as_corrupt() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url(), PREFIX).await.unwrap();
    let mut redis = raw(&server).await;
    let broken = id("broken");
    let _: () = redis.set(store.keys.tenant(&broken), "{not json").await.unwrap();
    let _: () = redis.zadd(store.keys.tenant_index(), "broken", 0).await.unwrap();
    let _: () = redis.set(store.keys.key_owner(&KeyHash::of("ck_broken")), "nope").await.unwrap();
    let month = Month { year: 2026, month: 1 };
    let _: () = redis.hset(store.keys.usage_month(&broken, month), "requests", "many").await.unwrap();
    let _: () = redis.zadd(store.keys.audit(&broken), b"short".as_slice(), 0).await.unwrap();
    let _: () = redis.set(store.keys.checkpoint(&broken), 7).await.unwrap();

    let corrupt = |result: Result<(), StoreError>| matches!(result, Err(StoreError::Corrupt(_)));
    assert!(corrupt(store.tenant(&broken).await.map(drop)));
    assert!(corrupt(store.tenants(&TenantFilter::default(), None, 10).await.map(drop)));
    let suspended = TenantFilter { status: Some(TenantStatus::Suspended), plan: None };
    assert!(corrupt(store.tenants(&suspended, None, 10).await.map(drop)));
    assert!(corrupt(store.key_owner(&KeyHash::of("ck_broken")).await.map(drop)));
    assert!(corrupt(store.usage_of_month(&broken, month).await.map(drop)));
    assert!(corrupt(store.audit(&broken, &all_events()).await.map(drop)));
    assert!(corrupt(store.checkpoint(&broken).await.map(drop)));

    // A batch that meets the unreadable counter leaves nothing behind, not even the audit event
    // placed before it, nor a used sequence number.
    let day = NaiveDate::from_ymd_opt(2026, 1, 5).unwrap();
    let batch = Batch {
        id: None,
        audit: vec![audit_event("acme", "r1")],
        usage: vec![UsageDelta {
            tenant: broken.clone(),
            day,
            counters: UsageCounters { requests: 1, ..Default::default() },
        }],
        checkpoints: vec![],
    };
    let result = store.commit(Arc::new(batch)).await;
    assert!(matches!(&result, Err(StoreError::Corrupt(message)) if message.contains("requests")), "{result:?}");
    assert_eq!(store.audit(&id("acme"), &all_events()).await.unwrap().events, vec![]);
    assert_eq!(store.usage_by_day(&broken, day, day).await.unwrap(), vec![]);
    let seq: Option<u64> = redis.get(store.keys.audit_seq()).await.unwrap();
    assert_eq!(seq, None);

    // A key of the wrong type is unreadable too, and refuses the write that would use it.
    let _: () = redis.set(store.keys.tenant_index(), "not a sorted set").await.unwrap();
    assert!(corrupt(store.create_tenant(&tenant("acme")).await));
    assert_eq!(store.tenant(&id("acme")).await.unwrap(), None, "the refused create wrote nothing");
}

/// The script merges checkpoints itself (`Checkpoint::merged_over`) and writes the JSON the
/// adapter reads: real epoch seconds and large counts come back exactly; an unreadable stored
/// checkpoint is replaced, one of the wrong type refuses the batch.
#[tokio::test]
async fn the_script_writes_merged_checkpoints_as_the_adapter_reads_them() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url(), PREFIX).await.unwrap();
    let mut redis = raw(&server).await;
    store.create_tenant(&tenant("acme")).await.unwrap();
    let save =
        |checkpoint: Checkpoint| Arc::new(Batch { checkpoints: vec![(id("acme"), checkpoint)], ..Default::default() });
    let windows = |minute: i64, count: u64| Checkpoint {
        windows: [
            WindowCount { start: minute, count },
            WindowCount { start: minute - minute % 3600, count: count + 1 },
            WindowCount { start: minute - minute % 86_400, count: 1 << 40 },
        ],
    };

    let _: () = redis.set(store.keys.checkpoint(&id("acme")), "{not json").await.unwrap();
    store.commit(save(windows(1_798_761_660, 7))).await.unwrap();
    assert_eq!(store.checkpoint(&id("acme")).await.unwrap(), Some(windows(1_798_761_660, 7)));
    store.commit(save(windows(1_798_761_600, 2))).await.unwrap();
    assert_eq!(store.checkpoint(&id("acme")).await.unwrap(), Some(windows(1_798_761_660, 7)), "an older minute");

    let _: () = redis.del(store.keys.checkpoint(&id("acme"))).await.unwrap();
    let _: () = redis.hset(store.keys.checkpoint(&id("acme")), "count", 1).await.unwrap();
    let batch = Batch {
        audit: vec![audit_event("acme", "r1")],
        checkpoints: vec![(id("acme"), windows(1_798_761_720, 1))],
        ..Default::default()
    };
    let result = store.commit(Arc::new(batch)).await;
    assert!(matches!(&result, Err(StoreError::Corrupt(message)) if message.contains("checkpoint")), "{result:?}");
    assert_eq!(store.audit(&id("acme"), &all_events()).await.unwrap().events, vec![], "nothing of the batch written");
}

#[test]
fn the_gauge_field_is_the_serde_name_of_custom_servers() {
    let fields = serde_json::to_value(UsageCounters { custom_servers: 1, ..Default::default() }).unwrap();
    assert_eq!(fields[GAUGE_FIELD], 1);
    assert!(counter_fields(&UsageCounters { custom_servers: 5, ..Default::default() }).unwrap().is_empty());
}

#[test]
fn audit_positions_sort_as_bytes_in_time_then_sequence_order() {
    let positions = [(i64::MIN, 0), (-1_000_000, 5), (-1, u64::MAX), (0, 0), (0, 1), (1, 0), (i64::MAX, 3)];
    let bytes: Vec<Vec<u8>> = positions
        .iter()
        .map(|&(timestamp_micros, seq)| position_bytes(AuditCursor { timestamp_micros, seq }))
        .collect();
    assert!(bytes.windows(2).all(|pair| pair[0] < pair[1]), "{bytes:?}");
    for ((timestamp_micros, seq), bytes) in positions.into_iter().zip(bytes) {
        let mut entry = bytes;
        entry.extend(audit_codec::encode(&audit_event("acme", "r1")).unwrap());
        let (position, _) = decode_entry(&id("acme"), &entry).unwrap();
        assert_eq!(position, AuditCursor { timestamp_micros, seq });
    }
}

#[tokio::test]
async fn a_batch_committed_again_after_a_lost_answer_is_applied_once() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url(), PREFIX).await.unwrap();
    store.create_tenant(&tenant("acme")).await.unwrap();
    let batch = |id| {
        Arc::new(Batch {
            id,
            audit: vec![audit_event("acme", "r1")],
            usage: vec![UsageDelta {
                tenant: self::id("acme"),
                day: NaiveDate::from_ymd_opt(2026, 1, 31).unwrap(),
                counters: UsageCounters { requests: 1, api_calls: 1, ..Default::default() },
            }],
            checkpoints: vec![],
        })
    };
    let once = batch(Some(7));
    // The recorder retries the very batch whose first commit answered with an error.
    store.commit(once.clone()).await.unwrap();
    store.commit(once).await.unwrap();
    let month = Month::containing(NaiveDate::from_ymd_opt(2026, 1, 31).unwrap());
    assert_eq!(store.usage_of_month(&id("acme"), month).await.unwrap().api_calls, 1);
    assert_eq!(store.audit(&id("acme"), &all_events()).await.unwrap().events.len(), 1);
    // Another batch, even with the same content, is another batch.
    store.commit(batch(Some(8))).await.unwrap();
    store.commit(batch(None)).await.unwrap();
    assert_eq!(store.usage_of_month(&id("acme"), month).await.unwrap().api_calls, 3);
}

/// An event sent to its tenant's owner is recorded by the owner and, when the owner's answer was
/// lost, by the sender too, each in a batch of its own (or twice in one): the log keeps one, and
/// no key is kept per event to know it.
#[tokio::test]
async fn an_audit_event_with_an_id_is_recorded_once_whoever_records_it() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url(), PREFIX).await.unwrap();
    let forwarded = AuditEvent { event_id: Some("42".into()), ..audit_event("acme", "forwarded") };
    let batch = |events: Vec<AuditEvent>, id| Arc::new(Batch { id, audit: events, usage: vec![], checkpoints: vec![] });
    store.commit(batch(vec![forwarded.clone(), audit_event("acme", "local")], Some(1))).await.unwrap();
    store.commit(batch(vec![forwarded.clone()], Some(2))).await.unwrap();
    store.commit(batch(vec![forwarded.clone(), forwarded.clone()], None)).await.unwrap();
    // The same content under another id, and the same id for another tenant, are other events.
    store.commit(batch(vec![AuditEvent { event_id: Some("43".into()), ..forwarded.clone() }], None)).await.unwrap();
    store.commit(batch(vec![AuditEvent { tenant_id: id("globex"), ..forwarded }], None)).await.unwrap();
    let events = store.audit(&id("acme"), &all_events()).await.unwrap().events;
    let mut requests: Vec<&str> = events.iter().map(|event| event.request_id.as_str()).collect();
    requests.sort_unstable();
    assert_eq!(requests, ["forwarded", "forwarded", "local"], "id 42 once, id 43 once, the local event once");
    assert_eq!(store.audit(&id("globex"), &all_events()).await.unwrap().events.len(), 1);
    let mut keys: Vec<String> = raw(&server).await.keys("*").await.unwrap();
    keys.retain(|key| !key.starts_with(&format!("{PREFIX}commit:")));
    keys.sort_unstable();
    let expected = ["audit-seq", "audit:acme", "audit:globex"].map(|key| format!("{PREFIX}{key}"));
    assert_eq!(keys, expected, "no key is kept per event to know it recorded");
    // Paging reads past them one by one.
    let mut query = AuditQuery { limit: 1, ..all_events() };
    let mut paged = Vec::new();
    loop {
        let page = store.audit(&id("acme"), &query).await.unwrap();
        paged.extend(page.events);
        match page.next {
            Some(next) => query.after = Some(next),
            None => break,
        }
    }
    assert_eq!(paged, events);
}

#[test]
fn retention_scans_for_audit_logs_only_under_its_own_prefix() {
    let keys = Keys { prefix: r"gw*[1]?\:".to_string(), layout: RedisLayout::Shared };
    assert_eq!(keys.audit_pattern(), r"gw\*\[1\]\?\\:audit:*");
    let acme = TenantId::parse("acme").unwrap();
    assert_eq!(keys.audit_tenant(keys.audit(&acme).as_bytes()), Some(acme.clone()));
    for other in [keys.audit_seq(), format!("{}tenant:acme", keys.prefix), "gwx[1]?\\:audit:acme".to_string()] {
        assert_eq!(keys.audit_tenant(other.as_bytes()), None, "{other}");
    }
    assert_eq!(keys.audit_tenant(format!("{}audit:Not An Id", keys.prefix).as_bytes()), None);
    let shared = Keys { prefix: "connectors:".into(), layout: RedisLayout::Shared };
    assert_eq!(shared.audit_pattern(), "connectors:audit:*");
    let separate = Keys { prefix: "connectors:".into(), layout: RedisLayout::Separate };
    assert_eq!(separate.audit_pattern(), "connectors:tenant:*:audit");
    assert_eq!(separate.audit(&acme), "connectors:tenant:acme:audit");
    assert_eq!(separate.audit_tenant(separate.audit(&acme).as_bytes()), Some(acme.clone()));
    for other in ["connectors:tenant:acme:record", "connectors:meta:x:audit", "connectors:tenant:a:b:audit"] {
        assert_eq!(separate.audit_tenant(other.as_bytes()), None, "{other}");
    }
}

/// A proxy in front of Redis whose next answer, once armed, is lost: the command reaches Redis
/// and is applied, then the connection closes before its answer gets back, as when a network or
/// a failover drops a reply.
struct ReplyLosingProxy {
    port: u16,
    armed: Arc<std::sync::atomic::AtomicBool>,
}

impl ReplyLosingProxy {
    async fn start(upstream: u16) -> Self {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let armed_copy = armed.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await else { continue };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                tokio::spawn(async move { tokio::io::copy(&mut client_read, &mut server_write).await.ok() });
                let armed = armed_copy.clone();
                tokio::spawn(async move {
                    let mut buffer = vec![0u8; 64 * 1024];
                    while let Ok(read) = server_read.read(&mut buffer).await {
                        if read == 0 {
                            break;
                        }
                        if armed.swap(false, Ordering::SeqCst) {
                            // The answer is dropped and the connection with it.
                            break;
                        }
                        if client_write.write_all(&buffer[..read]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Self { port, armed }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn lose_next_answer(&self) {
        self.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The recorder's commit reaches Redis but its answer is lost; the recorder takes it as failed
/// and commits the batch again: the usage is billed once.
#[tokio::test]
async fn a_commit_whose_answer_is_lost_is_billed_once_when_the_recorder_retries() {
    use connectors_actors::recorder::{Recorder, RecorderConfig};
    let server = RedisServer::start();
    let proxy = ReplyLosingProxy::start(server.port()).await;
    let store: Arc<dyn Store> = Arc::new(RedisStore::connect(&proxy.url(), PREFIX).await.unwrap());
    store.create_tenant(&tenant("acme")).await.unwrap();
    let quarantine_dir = tempfile::tempdir().unwrap();
    let quarantine =
        Arc::new(crate::backends::quarantine_file::QuarantineFile::new(quarantine_dir.path().join("quarantine.jsonl")));
    let config = RecorderConfig {
        flush_interval: Duration::from_secs(3600),
        max_batch: 1000,
        queue: 1000,
        max_pending_bytes: 1 << 20,
    };
    let (recorder, _task) = Recorder::start(store.clone(), quarantine, config);
    let day = NaiveDate::from_ymd_opt(2026, 1, 31).unwrap();
    let delta = UsageDelta {
        tenant: id("acme"),
        day,
        counters: UsageCounters { requests: 5, api_calls: 5, ..Default::default() },
    };
    // A first commit loads the script, so that the next one runs at its first request.
    recorder.usage(delta.clone()).await.unwrap();
    recorder.flush().await.unwrap();
    recorder.usage(delta).await.unwrap();
    proxy.lose_next_answer();
    assert!(recorder.flush().await.is_err(), "the commit's answer was lost: the recorder cannot know it applied");
    // The connection is back; the recorder commits the same batch again.
    let deadline = Instant::now() + Duration::from_secs(10);
    while recorder.flush().await.is_err() {
        assert!(Instant::now() < deadline, "the recorder never committed again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let direct = RedisStore::connect(&server.url(), PREFIX).await.unwrap();
    let month = Month::containing(day);
    assert_eq!(direct.usage_of_month(&id("acme"), month).await.unwrap().api_calls, 10, "each batch billed once");
}
