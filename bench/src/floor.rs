//! The design's floor, served in this process side by side with the bare handler and the gateway
//! (same body, same requests, same run): the bare handler plus only what every admitted request
//! of the gateway has to do on this design.
//!
//! - `actor`: asks the tenant's own actor, one ractor actor per tenant found by `X-Tenant-ID` in
//!   a map, and waits for its answer with a call timeout, as the gateway's directory does;
//! - `audit`: that, and queues the request's audit event to the gateway's own [`Recorder`], which
//!   group-commits it to the gateway's own redb store with the gateway's default settings.
//!
//! [`memory_per_actor`] is the memory side of the floor: what an actor per tenant costs when it
//! holds nothing.
//!
//! `audit`'s CPU per request over the bare handler's is what this design costs at the least; what
//! the gateway costs over `audit` is what its edge adds (authentication, the rate and quota
//! decisions, the span, the headers, the tenant's JSON, metrics).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use connectors::app::recorder_config;
use connectors::backends::quarantine_file::QuarantineFile;
use connectors::backends::redb_store::RedbStore;
use connectors::config::{Config, Env};
use connectors_actors::audit::{AuditEvent, AuditResult};
use connectors_actors::recorder::Recorder;
use connectors_actors::tenant::TenantId;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, rpc::CallResult};

use crate::gateway::rss_kib;
use crate::local_server::LocalServer;
use crate::tenants::tenant_id;

/// Thread names of the two floors' runtimes.
pub(crate) const ACTOR_THREAD: &str = "floor-actor";
pub(crate) const AUDIT_THREAD: &str = "floor-audit";

/// The gateway's tenant-call timeout is of the same order; it only arms a timer here.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts the floor that asks the tenant's actor (and, with `audit`, records the audit event)
/// for each of the first `tenants` tenants, answering `body`.
pub(crate) fn start(body: Bytes, tenants: usize, threads: usize, audit: bool) -> Result<LocalServer, String> {
    let name = if audit { AUDIT_THREAD } else { ACTOR_THREAD };
    LocalServer::start(name, threads, async move {
        let mut actors = HashMap::with_capacity(tenants);
        for i in 0..tenants {
            let id = tenant_id(i);
            let tenant = TenantId::parse(&id).map_err(|e| e.to_string())?;
            let (actor, _) = Actor::spawn(None, TenantStandIn, ()).await.map_err(|e| format!("spawn: {e}"))?;
            actors.insert(id, (tenant, actor));
        }
        let store = if audit { Some(Store::open()?) } else { None };
        let floor = Floor { body, actors, store, requests: AtomicU64::new(0) };
        Ok(axum::Router::new().route("/api/v1/tenant", axum::routing::get(get_tenant)).with_state(Arc::new(floor)))
    })
}

struct Floor {
    body: Bytes,
    actors: HashMap<String, (TenantId, ActorRef<Ask>)>,
    store: Option<Store>,
    requests: AtomicU64,
}

/// The gateway's recorder over the gateway's redb store, in a temporary directory.
struct Store {
    recorder: Recorder,
    _dir: tempfile::TempDir,
}

impl Store {
    fn open() -> Result<Self, String> {
        let config = Config::from_yaml("{}", &NoEnv).map_err(|e| e.to_string())?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let store = RedbStore::open(&dir.path().join("connectors.redb"), config.store_cache_bytes)
            .map_err(|e| e.to_string())?;
        let (recorder, _) = Recorder::start(
            Arc::new(store),
            Arc::new(QuarantineFile::new(dir.path().join("quarantine.jsonl"))),
            recorder_config(&config),
        );
        Ok(Self { recorder, _dir: dir })
    }
}

struct NoEnv;

impl Env for NoEnv {
    fn var(&self, _: &str) -> Option<String> {
        None
    }
}

async fn get_tenant(State(floor): State<Arc<Floor>>, headers: HeaderMap) -> Response {
    let found = headers.get("x-tenant-id").and_then(|id| id.to_str().ok()).and_then(|id| floor.actors.get(id));
    let Some((tenant, actor)) = found else { return StatusCode::NOT_FOUND.into_response() };
    let Ok(CallResult::Success(_admitted)) = actor.call(Ask, Some(CALL_TIMEOUT)).await else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    if let Some(store) = &floor.store {
        let user_agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_string);
        let event = tenant_get_event(tenant, user_agent, floor.requests.fetch_add(1, Ordering::Relaxed));
        if store.recorder.audit(event).await.is_err() {
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    }
    ([(header::CONTENT_TYPE, "application/json")], floor.body.clone()).into_response()
}

/// Flags of `bench actor-floor`, the process [`memory_per_actor_in_child`] starts.
#[derive(Debug, clap::Args)]
pub(crate) struct ActorFloorArgs {
    #[arg(long)]
    actors: usize,
    #[arg(long)]
    threads: usize,
}

/// [`memory_per_actor`] in a fresh process of this binary: in the benchmark's own process, an
/// allocator that reuses what earlier phases freed (mimalloc does) would hide the actors' cost.
pub(crate) fn memory_per_actor_in_child(count: usize, threads: usize) -> Result<f64, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let output = std::process::Command::new(exe)
        .args(["actor-floor", "--actors", &count.to_string(), "--threads", &threads.to_string()])
        .output()
        .map_err(|e| format!("cannot start the actor floor's process: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    match stdout.trim().parse() {
        Ok(kib) if output.status.success() => Ok(kib),
        _ => Err(format!(
            "the actor floor's process failed ({}): {}{}",
            output.status,
            stdout.trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        )),
    }
}

/// `bench actor-floor`: prints [`memory_per_actor`] in KiB.
pub(crate) fn actor_floor(args: &ActorFloorArgs) -> Result<bool, String> {
    println!("{}", memory_per_actor(args.actors, args.threads)?);
    Ok(true)
}

/// This process's resident memory per stand-in actor, in KiB: before and after spawning `count`
/// of them on a runtime of `threads` workers like the gateway's, each kept in a map by tenant id
/// as the gateway's directory keeps them.
fn memory_per_actor(count: usize, threads: usize) -> Result<f64, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .thread_name("floor-memory")
        .enable_all()
        .build()
        .map_err(|e| format!("floor-memory runtime: {e}"))?;
    let settle = || std::thread::sleep(Duration::from_millis(500));
    let me = std::process::id();
    settle();
    let before = rss_kib(me)?;
    // One after another from one task, as the gateway's supervisor actor spawns its tenants' actors.
    let spawning = runtime.spawn(async move {
        let mut actors = HashMap::with_capacity(count);
        for i in 0..count {
            let (actor, _) = Actor::spawn(None, TenantStandIn, ()).await.map_err(|e| format!("spawn: {e}"))?;
            actors.insert(tenant_id(i), actor);
        }
        Ok::<_, String>(actors)
    });
    let actors = runtime.block_on(spawning).map_err(|e| e.to_string())??;
    settle();
    let after = rss_kib(me)?;
    for actor in actors.values() {
        actor.stop(None);
    }
    drop(actors);
    runtime.shutdown_timeout(Duration::from_secs(5));
    Ok((after as f64 - before as f64) / count.max(1) as f64)
}

/// A tenant's actor reduced to counting what it admits.
struct TenantStandIn;

struct Ask(RpcReplyPort<u64>);

impl ractor::Message for Ask {}

impl Actor for TenantStandIn {
    type Msg = Ask;
    type State = u64;
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<Ask>, _: ()) -> Result<u64, ActorProcessingErr> {
        Ok(0)
    }

    async fn handle(&self, _: ActorRef<Ask>, Ask(reply): Ask, admitted: &mut u64) -> Result<(), ActorProcessingErr> {
        *admitted += 1;
        // The caller may have timed out; nothing to do then.
        let _ = reply.send(*admitted);
        Ok(())
    }
}

/// The audit event of an admitted `GET /api/v1/tenant` from loopback, as the gateway writes it.
pub(crate) fn tenant_get_event(tenant: &TenantId, user_agent: Option<String>, request: u64) -> AuditEvent {
    AuditEvent {
        timestamp: chrono::Utc::now(),
        tenant_id: tenant.clone(),
        user_id: None,
        action: "tenant.get".into(),
        tool_id: None,
        params: None,
        result: AuditResult::Success,
        duration: 0,
        ip: Some("127.0.0.1".into()),
        user_agent,
        request_id: format!("{request:032x}"),
        event_id: None,
    }
}
