//! End-to-end tests of shards changing hands in a cluster under load: rolling restarts, scaling
//! out and in, a second process with a node id already in use, and a node cut off from Redis.
//! Real `connectors` processes and a real `redis-server`, all on loopback.

#[path = "common/cluster.rs"]
mod cluster_common;
mod common;
#[path = "common/redis_server.rs"]
mod redis_server;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use cluster_common::{COOKIE, Cluster, start_node, start_node_as, start_node_at, wait_converged};
use common::{Gateway, eventually, metric};
use connectors_actors::tenant::TenantId;
use connectors_cluster::shard_map::{NodeId, ShardMap};
use redis_server::RedisServer;
use reqwest::Method;

/// A strict tenant's requests a minute: the clients exhaust it within a second.
const STRICT_LIMIT: u64 = 30;
/// A generous tenant's: never reached by the clients.
const GENEROUS_LIMIT: u64 = 20_000;
/// Client tasks sending requests all the time.
const CLIENTS: usize = 4;
/// Pause of a client between two requests, so that two cores keep up with the nodes too.
const CLIENT_PAUSE: Duration = Duration::from_millis(5);
/// Load that runs between two steps of a test (not an assertion of anything).
const STEP_LOAD: Duration = Duration::from_millis(700);
/// Bounds of the waits for a node to be ready and for the cluster to agree.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

// ----- the load -----------------------------------------------------------------------------

#[derive(Clone)]
struct Tenant {
    id: String,
    key: String,
    per_minute: u64,
}

/// What a load balancer does: the nodes clients send to, in turn. A node taken out gets no new
/// request, and is given up only once the requests it was sent are answered.
struct Rotation {
    nodes: Mutex<Vec<(usize, String)>>,
    in_flight: Vec<AtomicUsize>,
    next: AtomicUsize,
}

/// A request on its way to the node in `slot`.
struct InFlight {
    rotation: Arc<Rotation>,
    slot: usize,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.rotation.in_flight[self.slot].fetch_sub(1, Ordering::SeqCst);
    }
}

impl Rotation {
    fn new(slots: usize) -> Arc<Self> {
        Arc::new(Self {
            nodes: Mutex::new(Vec::new()),
            in_flight: (0..slots).map(|_| AtomicUsize::new(0)).collect(),
            next: AtomicUsize::new(0),
        })
    }

    fn add(&self, slot: usize, node: &Gateway) {
        self.nodes.lock().unwrap().push((slot, node.url("")));
    }

    /// Takes the node out and waits until it has answered what it was sent.
    async fn remove(&self, slot: usize) {
        self.nodes.lock().unwrap().retain(|(s, _)| *s != slot);
        eventually(&format!("node slot {slot} to answer its requests in flight"), READY_TIMEOUT, || async {
            match self.in_flight[slot].load(Ordering::SeqCst) {
                0 => Ok(()),
                n => Err(format!("{n} in flight")),
            }
        })
        .await;
    }

    /// The next node in turn (counted in flight until the guard drops).
    fn pick(self: &Arc<Self>) -> Option<(usize, String, InFlight)> {
        let nodes = self.nodes.lock().unwrap();
        if nodes.is_empty() {
            return None;
        }
        let (slot, url) = nodes[self.next.fetch_add(1, Ordering::Relaxed) % nodes.len()].clone();
        // Counted under the lock: once `remove` dropped the node, nobody counts it again.
        self.in_flight[slot].fetch_add(1, Ordering::SeqCst);
        Some((slot, url, InFlight { rotation: self.clone(), slot }))
    }
}

/// One answer a client got.
#[derive(Debug, Clone)]
struct Outcome {
    tenant: usize,
    /// The node's slot.
    node: usize,
    /// 0 when no HTTP answer came at all.
    status: u16,
    /// The body (or transport error) of an answer other than 200 and 429.
    detail: String,
    retry_after: Option<String>,
    started: Instant,
    ended: Instant,
    started_utc: DateTime<Utc>,
    ended_utc: DateTime<Utc>,
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(15)).build().expect("http client")
}

/// `GET /api/v1/tenant` of `tenant` at the node whose base URL is `base`.
async fn call(client: &reqwest::Client, base: &str, tenants: &[Tenant], tenant: usize, node: usize) -> Outcome {
    let started = Instant::now();
    let started_utc = Utc::now();
    let answer = client
        .get(format!("{base}/api/v1/tenant"))
        .header("X-Tenant-ID", &tenants[tenant].id)
        .bearer_auth(&tenants[tenant].key)
        .send()
        .await;
    let (status, detail, retry_after) = match answer {
        Ok(response) => {
            let status = response.status().as_u16();
            let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
            let text = response.text().await.unwrap_or_else(|e| format!("<body not read: {e}>"));
            (status, if matches!(status, 200 | 429) { String::new() } else { text }, retry_after)
        }
        Err(error) => (0, format!("{error:?}"), None),
    };
    Outcome {
        tenant,
        node,
        status,
        detail,
        retry_after,
        started,
        ended: Instant::now(),
        started_utc,
        ended_utc: Utc::now(),
    }
}

/// Client tasks sending requests for the tenants in turn to the nodes in rotation, until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    clients: Vec<tokio::task::JoinHandle<Vec<Outcome>>>,
}

impl Load {
    fn start(rotation: &Arc<Rotation>, tenants: &[Tenant]) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let tenants: Arc<Vec<Tenant>> = Arc::new(tenants.to_vec());
        let clients = (0..CLIENTS)
            .map(|c| {
                let (rotation, tenants, stop) = (rotation.clone(), tenants.clone(), stop.clone());
                tokio::spawn(async move {
                    let client = http_client();
                    let mut outcomes = Vec::new();
                    let mut turn = c;
                    while !stop.load(Ordering::Relaxed) {
                        let Some((node, base, in_flight)) = rotation.pick() else {
                            tokio::time::sleep(CLIENT_PAUSE).await;
                            continue;
                        };
                        let tenant = turn % tenants.len();
                        turn += 1;
                        outcomes.push(call(&client, &base, &tenants, tenant, node).await);
                        drop(in_flight);
                        tokio::time::sleep(CLIENT_PAUSE).await;
                    }
                    outcomes
                })
            })
            .collect();
        Load { stop, clients }
    }

    async fn finish(self) -> Vec<Outcome> {
        self.stop.store(true, Ordering::Relaxed);
        let mut outcomes = Vec::new();
        for client in self.clients {
            outcomes.extend(client.await.expect("client task"));
        }
        outcomes
    }
}

/// Checks what the clients saw: only 200 and 429, no strict tenant admitted past its limit in
/// any minute, no generous tenant limited. Returns the 200s per tenant. A failure shows the
/// nodes' warnings, which say why a request was not answered.
fn check_answers(outcomes: &[Outcome], tenants: &[Tenant], nodes: &[Gateway]) -> Vec<u64> {
    let unexpected: Vec<&Outcome> = outcomes.iter().filter(|o| !matches!(o.status, 200 | 429)).collect();
    let listed: Vec<String> = unexpected
        .iter()
        .take(20)
        .map(|o| format!("{} via node slot {}: {} {}", tenants[o.tenant].id, o.node, o.status, o.detail))
        .collect();
    let warnings = || {
        let of = |(slot, node): (usize, &Gateway)| {
            let text = node.stderr_text();
            let lines: Vec<&str> = text.lines().filter(|l| l.contains(" WARN ") || l.contains(" ERROR ")).collect();
            format!("node slot {slot}, its last warnings:\n{}", lines[lines.len().saturating_sub(30)..].join("\n"))
        };
        nodes.iter().enumerate().map(of).collect::<Vec<_>>().join("\n")
    };
    assert!(
        unexpected.is_empty(),
        "{} of {} requests were answered neither 200 nor 429; first ones:\n{}\n{}",
        unexpected.len(),
        outcomes.len(),
        listed.join("\n"),
        warnings()
    );
    let mut admitted = vec![0u64; tenants.len()];
    for (t, tenant) in tenants.iter().enumerate() {
        let mine: Vec<&Outcome> = outcomes.iter().filter(|o| o.tenant == t).collect();
        let ok = mine.iter().filter(|o| o.status == 200).count() as u64;
        let limited = mine.iter().filter(|o| o.status == 429).count();
        admitted[t] = ok;
        eprintln!("{}: {} requests, {ok} admitted, {limited} rate limited", tenant.id, mine.len());
        assert!(ok > 0, "{}: nothing admitted", tenant.id);
        if tenant.per_minute == STRICT_LIMIT {
            assert!(limited > 0, "{}: the clients never reached the limit, the check below means nothing", tenant.id);
            // Admissions per UTC minute; a request that spans the turn of a minute is left out
            // (it may count in either).
            let mut per_minute: BTreeMap<i64, u64> = BTreeMap::new();
            for o in mine.iter().filter(|o| o.status == 200) {
                let (first, last) = (common::minute_of(o.started_utc), common::minute_of(o.ended_utc));
                if first == last {
                    *per_minute.entry(first).or_default() += 1;
                }
            }
            for (minute, count) in per_minute {
                assert!(
                    count <= tenant.per_minute,
                    "{}: {count} requests admitted in minute {minute}, limit {}: a node forgot what another admitted",
                    tenant.id,
                    tenant.per_minute
                );
            }
        } else {
            assert_eq!(limited, 0, "{}: a generous tenant was rate limited", tenant.id);
        }
    }
    admitted
}

/// Each tenant's usage report counts exactly the requests the clients saw admitted.
async fn check_usage(node: &Gateway, tenants: &[Tenant], admitted: &[u64]) {
    for (tenant, expected) in tenants.iter().zip(admitted) {
        eventually(
            &format!("usage of {} to count the {expected} admitted calls", tenant.id),
            READY_TIMEOUT,
            || async {
                let response = node.admin(Method::GET, &format!("/tenants/{}/usage", tenant.id), None).await;
                if response.status != 200 {
                    return Err(format!("{} {}", response.status, response.text));
                }
                let usage = response.json();
                if usage["apiCalls"].as_u64() == Some(*expected) { Ok(()) } else { Err(usage.to_string()) }
            },
        )
        .await;
    }
}

/// Prints a node's counts of held requests.
async fn print_holds(label: &str, node: &Gateway) {
    let text = node.metrics_text().await;
    let count =
        |outcome: &str| metric(&text, "connectors_requests_held_total", &[("outcome", outcome)]).unwrap_or(-1.0);
    let longest = metric(&text, "connectors_request_hold_longest_seconds", &[]).unwrap_or(-1.0);
    eprintln!(
        "{label}: requests held {}, flushed {}, expired {}; longest hold {longest:.3} s",
        count("held"),
        count("flushed"),
        count("expired")
    );
}

/// SIGTERM (after the node is out of rotation), asserting a clean exit.
async fn stop_out_of_rotation(rotation: &Rotation, slot: usize, node: &mut Gateway) {
    rotation.remove(slot).await;
    let stopping = Instant::now();
    let status = node.stop_graceful().await;
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM: {status}; stderr:\n{}", node.stderr_text());
    eprintln!("node slot {slot} drained and stopped in {:?}", stopping.elapsed());
}

async fn create(nodes: &[Gateway], prefix: &str, count: usize, per_minute: u64) -> Vec<Tenant> {
    let mut tenants = Vec::new();
    for i in 0..count {
        let id = format!("{prefix}-{i}");
        let key = nodes[i % nodes.len()].create_limited(&id, per_minute).await;
        tenants.push(Tenant { id, key, per_minute });
    }
    tenants
}

async fn tenants_for_load(nodes: &[Gateway], prefix: &str) -> Vec<Tenant> {
    let mut tenants = create(nodes, &format!("{prefix}-strict"), 3, STRICT_LIMIT).await;
    tenants.extend(create(nodes, &format!("{prefix}-free"), 3, GENEROUS_LIMIT).await);
    tenants
}

// ----- the tests ------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_under_load_answers_every_request_and_counts_every_admission() {
    let mut cluster = Cluster::start(3).await;
    let tenants = tenants_for_load(&cluster.nodes, "roll").await;
    let rotation = Rotation::new(3);
    for (slot, node) in cluster.nodes.iter().enumerate() {
        rotation.add(slot, node);
    }
    let load = Load::start(&rotation, &tenants);
    tokio::time::sleep(STEP_LOAD).await;
    for slot in 0..3 {
        stop_out_of_rotation(&rotation, slot, &mut cluster.nodes[slot]).await;
        let starting = Instant::now();
        cluster.nodes[slot].start_again().await;
        // What a load balancer and an orchestrator go by: once ready, the node takes requests
        // again and the next one may stop.
        cluster.nodes[slot].wait_ready(READY_TIMEOUT).await;
        eprintln!("node slot {slot} ready again {:?} after its start", starting.elapsed());
        rotation.add(slot, &cluster.nodes[slot]);
        tokio::time::sleep(STEP_LOAD).await;
    }
    cluster.wait_converged(3, READY_TIMEOUT).await;
    let outcomes = load.finish().await;
    for (slot, node) in cluster.nodes.iter().enumerate() {
        print_holds(&format!("node slot {slot} (since its restart)"), node).await;
    }
    let admitted = check_answers(&outcomes, &tenants, &cluster.nodes);
    check_usage(&cluster.nodes[0], &tenants, &admitted).await;
}

/// A rolling upgrade from the baseline release (`.ci/baseline-rev`, the last version that
/// landed; `.ci/run` builds it and sets `CONNECTORS_BASELINE_BIN`) to this build: the two
/// versions serve side by side while the nodes are replaced one by one, with the checks of the
/// rolling restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_upgrade_from_the_baseline_release_answers_every_request_and_counts_every_admission() {
    let Some(baseline) = std::env::var_os("CONNECTORS_BASELINE_BIN").map(PathBuf::from) else {
        eprintln!("skipped: CONNECTORS_BASELINE_BIN is not set (.ci/run builds the baseline release)");
        return;
    };
    let redis = RedisServer::start_persistent();
    let mut nodes = Vec::new();
    for i in 0..3 {
        nodes.push(start_node_as(&baseline, &redis, &format!("node-{i}"), COOKIE).await);
    }
    let mut cluster = Cluster { redis, nodes };
    cluster.wait_converged(3, READY_TIMEOUT).await;
    let tenants = tenants_for_load(&cluster.nodes, "upgrade").await;
    let rotation = Rotation::new(3);
    for (slot, node) in cluster.nodes.iter().enumerate() {
        rotation.add(slot, node);
    }
    let load = Load::start(&rotation, &tenants);
    tokio::time::sleep(STEP_LOAD).await;
    for slot in 0..3 {
        stop_out_of_rotation(&rotation, slot, &mut cluster.nodes[slot]).await;
        cluster.nodes[slot].start_again_as(Path::new(env!("CARGO_BIN_EXE_connectors"))).await;
        cluster.nodes[slot].wait_ready(READY_TIMEOUT).await;
        eprintln!("node slot {slot} runs this build");
        rotation.add(slot, &cluster.nodes[slot]);
        tokio::time::sleep(STEP_LOAD).await;
    }
    cluster.wait_converged(3, READY_TIMEOUT).await;
    let outcomes = load.finish().await;
    let admitted = check_answers(&outcomes, &tenants, &cluster.nodes);
    check_usage(&cluster.nodes[0], &tenants, &admitted).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_out_and_in_under_load_answers_every_request_and_counts_every_admission() {
    let mut cluster = Cluster::start(2).await;
    let tenants = tenants_for_load(&cluster.nodes, "scale").await;
    let rotation = Rotation::new(3);
    for (slot, node) in cluster.nodes.iter().enumerate() {
        rotation.add(slot, node);
    }
    let load = Load::start(&rotation, &tenants);
    tokio::time::sleep(STEP_LOAD).await;

    let starting = Instant::now();
    let third = start_node(&cluster.redis, "node-2", COOKIE).await;
    cluster.nodes.push(third);
    cluster.wait_converged(3, READY_TIMEOUT).await;
    eprintln!("node-2 joined and serves its shards after {:?}", starting.elapsed());
    rotation.add(2, &cluster.nodes[2]);
    tokio::time::sleep(STEP_LOAD).await;
    print_holds("node-0 before it stops", &cluster.nodes[0]).await;

    stop_out_of_rotation(&rotation, 0, &mut cluster.nodes[0]).await;
    wait_converged(&[&cluster.nodes[1], &cluster.nodes[2]], 2, READY_TIMEOUT).await;
    tokio::time::sleep(STEP_LOAD).await;

    let outcomes = load.finish().await;
    for slot in 1..3 {
        print_holds(&format!("node-{slot}"), &cluster.nodes[slot]).await;
    }
    let admitted = check_answers(&outcomes, &tenants, &cluster.nodes);
    check_usage(&cluster.nodes[1], &tenants, &admitted).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_with_the_same_node_id_replaces_the_first() {
    let mut cluster = Cluster::start(2).await;
    let tenants = cluster.create_tenants("twin", 6, 1000).await;
    for (id, key) in &tenants {
        for node in &cluster.nodes {
            node.tenant_get(Some(id), Some(key)).await.expect(200);
        }
    }
    // Another data dir, another HTTP port, another cluster port: the same node id.
    let mut newer = start_node(&cluster.redis, "node-1", COOKIE).await;
    let Some(status) = cluster.nodes[1].wait_exit(Duration::from_secs(15)).await else {
        panic!(
            "the first node-1 still runs 15 s after a second one started; its stderr:\n{}",
            cluster.nodes[1].stderr_text()
        );
    };
    let stderr = cluster.nodes[1].stderr_text();
    assert!(!status.success(), "the replaced process exited with {status}; stderr:\n{stderr}");
    assert!(
        stderr.contains("error:") && stderr.contains("node id `node-1`"),
        "no message naming the node id:\n{stderr}"
    );
    assert!(newer.wait_exit(Duration::ZERO).await.is_none(), "the newer node-1 exited too:\n{}", newer.stderr_text());

    let serving = [&cluster.nodes[0], &newer];
    wait_converged(&serving, 2, READY_TIMEOUT).await;
    for (id, key) in &tenants {
        for node in serving {
            let response = node.tenant_get(Some(id), Some(key)).await;
            assert_eq!(response.status, 200, "tenant {id} through {}: {}", node.url(""), response.text);
        }
    }
    let view = newer.admin(Method::GET, "/cluster", None).await.json();
    let ids: Vec<&str> = view["nodes"].as_array().unwrap().iter().filter_map(|n| n["id"].as_str()).collect();
    assert_eq!(ids, ["node-0", "node-1"], "{view}");
    assert_eq!(
        view["nodes"][1]["addr"].as_str(),
        Some(newer.url("").trim_start_matches("http://")),
        "node-1 is the newer process: {view}"
    );
}

// ----- a node cut off from Redis ------------------------------------------------------------

/// A TCP forwarder to Redis that the test can cut: it then closes every connection it carries
/// and closes each new one as soon as it is accepted, until healed. It can also lose the replies
/// to chosen commands: the command reaches Redis, and the connection closes when its reply comes.
struct CuttableProxy {
    port: u16,
    state: Arc<Mutex<ProxyState>>,
    accept: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct ProxyState {
    cut: bool,
    connections: Vec<tokio::task::JoinHandle<()>>,
    /// A command (one read from the client) containing all of these loses its reply.
    lose_replies_to: Option<Vec<Vec<u8>>>,
    replies_lost: usize,
}

impl CuttableProxy {
    async fn start(upstream: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let state = Arc::new(Mutex::new(ProxyState::default()));
        let shared = state.clone();
        let accept = tokio::spawn(async move {
            loop {
                let inbound = match listener.accept().await {
                    Ok((inbound, _)) => inbound,
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                // Decided under the lock `cut` takes: no connection slips through a cut.
                let mut state = shared.lock().unwrap();
                if state.cut {
                    continue; // `inbound` is dropped: closed
                }
                state.connections.retain(|connection| !connection.is_finished());
                state.connections.push(tokio::spawn(carry(inbound, upstream, shared.clone())));
            }
        });
        Self { port, state, accept }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn cut(&self) {
        let mut state = self.state.lock().unwrap();
        state.cut = true;
        for connection in state.connections.drain(..) {
            connection.abort();
        }
    }

    fn heal(&self) {
        self.state.lock().unwrap().cut = false;
    }

    fn lose_replies_to(&self, parts: &[&[u8]]) {
        self.state.lock().unwrap().lose_replies_to = Some(parts.iter().map(|part| part.to_vec()).collect());
    }

    fn deliver_replies(&self) {
        self.state.lock().unwrap().lose_replies_to = None;
    }

    fn replies_lost(&self) -> usize {
        self.state.lock().unwrap().replies_lost
    }
}

/// Carries one connection both ways until either side closes it (then both are closed).
async fn carry(inbound: tokio::net::TcpStream, upstream: u16, state: Arc<Mutex<ProxyState>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(outbound) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await else { return };
    let (mut client_read, mut client_write) = inbound.into_split();
    let (mut server_read, mut server_write) = outbound.into_split();
    let doomed = AtomicBool::new(false);
    let to_server = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = client_read.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                return;
            }
            let chunk = &buf[..n];
            let lose = state.lock().unwrap().lose_replies_to.as_ref().is_some_and(|parts| {
                parts.iter().all(|part| chunk.windows(part.len()).any(|window| window == part.as_slice()))
            });
            if lose {
                doomed.store(true, Ordering::SeqCst);
            }
            if server_write.write_all(chunk).await.is_err() {
                return;
            }
        }
    };
    let to_client = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = server_read.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                return;
            }
            if doomed.load(Ordering::SeqCst) {
                // Redis has carried the command out; its client never learns.
                state.lock().unwrap().replies_lost += 1;
                return;
            }
            if client_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        () = to_server => {}
        () = to_client => {}
    }
}

impl Drop for CuttableProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// `count` tenant ids starting with `prefix` that `owner` owns when node-0, node-1 and node-2 are
/// all up (the gateway's own placement).
fn ids_owned_by(owner: &str, prefix: &str, count: usize) -> Vec<String> {
    let placement = ShardMap::new(1, ["node-0", "node-1", "node-2"].map(NodeId::from));
    (0..)
        .map(|i| format!("{prefix}-{i}"))
        .filter(|id| placement.owner_of(&TenantId::parse(id).unwrap()) == Some(&NodeId::from(owner)))
        .take(count)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_redis_stops_admitting_before_its_shards_move() {
    let redis = RedisServer::start_persistent();
    let proxy = CuttableProxy::start(redis.port()).await;
    let nodes = vec![
        start_node(&redis, "node-0", COOKIE).await,
        start_node(&redis, "node-1", COOKIE).await,
        start_node_at(&proxy.url(), "node-2", COOKIE, &[]).await,
    ];
    let cluster = Cluster { redis, nodes };
    cluster.wait_converged(3, READY_TIMEOUT).await;
    let mut tenants = Vec::new();
    for (owner, prefix) in [("node-2", "cut"), ("node-0", "kept"), ("node-1", "kept-too")] {
        for id in ids_owned_by(owner, prefix, if owner == "node-2" { 3 } else { 1 }) {
            let key = cluster.nodes[0].create_limited(&id, GENEROUS_LIMIT).await;
            tenants.push(Tenant { id, key, per_minute: GENEROUS_LIMIT });
        }
    }
    let cut_tenants = 3; // the first three, owned by node-2
    for tenant in &tenants {
        for node in &cluster.nodes {
            node.tenant_get(Some(&tenant.id), Some(&tenant.key)).await.expect(200);
        }
    }

    // Clients for node-2's tenants, through node-2 and through the others, and a watcher of
    // each other node's view: from when on it no longer counts node-2 in.
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Vec<Outcome>>> = Arc::default();
    let removal_seen: Arc<Mutex<[Option<Instant>; 2]>> = Arc::default();
    let urls: Vec<String> = cluster.nodes.iter().map(|node| node.url("")).collect();
    let shared_tenants = Arc::new(tenants.clone());
    let mut tasks = Vec::new();
    for via in [vec![2], vec![0, 1]] {
        let (stop, seen, urls, tenants) = (stop.clone(), seen.clone(), urls.clone(), shared_tenants.clone());
        tasks.push(tokio::spawn(async move {
            let client = http_client();
            let mut turn = 0;
            while !stop.load(Ordering::Relaxed) {
                let node = via[turn % via.len()];
                let outcome = call(&client, &urls[node], &tenants, turn % cut_tenants, node).await;
                seen.lock().unwrap().push(outcome);
                turn += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
    }
    for (watched, url) in urls.iter().take(2).enumerate() {
        let (stop, removal_seen, url) = (stop.clone(), removal_seen.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let client = http_client();
            while !stop.load(Ordering::Relaxed) {
                let view: serde_json::Value = client
                    .get(format!("{url}/api/v1/admin/cluster"))
                    .bearer_auth(common::ADMIN_KEY)
                    .send()
                    .await
                    .expect("GET /api/v1/admin/cluster")
                    .json()
                    .await
                    .expect("a JSON view");
                let answered = Instant::now();
                let members = view["nodes"].as_array().cloned().unwrap_or_default();
                if !members.iter().any(|member| member["id"] == "node-2") {
                    removal_seen.lock().unwrap()[watched].get_or_insert(answered);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let cut_at = Instant::now();
    proxy.cut();
    // A 200 through another node that sent it after its view no longer had node-2 was admitted
    // by a new owner.
    let by_new_owner = |o: &Outcome, removal: &[Option<Instant>; 2]| {
        o.node < 2 && o.status == 200 && removal[o.node].is_some_and(|seen| o.started >= seen)
    };
    eventually("node-2 to refuse its tenants and the other nodes to serve them", Duration::from_secs(20), || async {
        let outcomes = seen.lock().unwrap().clone();
        let removal = *removal_seen.lock().unwrap();
        for (t, tenant) in tenants.iter().enumerate().take(cut_tenants) {
            let mine = || outcomes.iter().filter(|o| o.tenant == t && o.started >= cut_at);
            if !mine().any(|o| o.node == 2 && o.status == 503) {
                return Err(format!("{}: no 503 from node-2 yet", tenant.id));
            }
            if !mine().any(|o| by_new_owner(o, &removal)) {
                return Err(format!("{}: no 200 from a new owner yet (views without node-2: {removal:?})", tenant.id));
            }
        }
        Ok(())
    })
    .await;
    let ready = cluster.nodes[2].get("/readyz").await;
    assert_eq!(ready.status, 503, "node-2 is not ready while cut off: {}", ready.text);
    // Its lease lost, node-2 wrote its tenants' actors out: none of what they held can reach a
    // new owner as a hand-off once it is back (the store merges what they wrote).
    eventually("node-2 to write its tenant actors out", Duration::from_secs(10), || async {
        let metrics = cluster.nodes[2].get("/metrics").await;
        if metrics.text.contains("connectors_tenant_actors_active 0\n") {
            Ok(())
        } else {
            Err(metrics.text.lines().filter(|line| line.contains("tenant_actors")).collect::<Vec<_>>().join("; "))
        }
    })
    .await;
    // Node-2 keeps being asked for a while: it must not admit again while cut off.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("client task");
    }
    let outcomes = seen.lock().unwrap().clone();
    let removal = *removal_seen.lock().unwrap();
    let ms = |at: Instant| at.saturating_duration_since(cut_at).as_millis();

    let mut first_refusal = None::<Instant>;
    for (t, tenant) in tenants.iter().enumerate().take(cut_tenants) {
        let after_cut: Vec<&Outcome> = outcomes.iter().filter(|o| o.tenant == t && o.started >= cut_at).collect();
        for o in &after_cut {
            assert!(
                matches!(o.status, 200 | 503),
                "{} via node-{} after the cut: {} {}",
                tenant.id,
                o.node,
                o.status,
                o.detail
            );
        }
        let through_cut = || after_cut.iter().filter(|o| o.node == 2);
        let refused = through_cut().filter(|o| o.status == 503).min_by_key(|o| o.started).expect("a 503 from node-2");
        assert!(refused.retry_after.is_some(), "node-2's 503 for {} has no Retry-After: {}", tenant.id, refused.detail);
        first_refusal = Some(first_refusal.map_or(refused.started, |first| first.min(refused.started)));
        let last_admitted = through_cut().filter(|o| o.status == 200).max_by_key(|o| o.started);
        let readmitted: Vec<u128> =
            through_cut().filter(|o| o.status == 200 && o.started > refused.ended).map(|o| ms(o.started)).collect();
        assert!(
            readmitted.is_empty(),
            "{}: node-2 refused it at +{} ms, then admitted it again, sent at +{readmitted:?} ms, without the table",
            tenant.id,
            ms(refused.started)
        );
        let new_owner = after_cut
            .iter()
            .filter(|o| by_new_owner(o, &removal))
            .min_by_key(|o| o.ended)
            .expect("a 200 from a new owner");
        // Node-2 admitting a request sent after a new owner had admitted one: both at once.
        let overlapping: Vec<u128> =
            through_cut().filter(|o| o.status == 200 && o.started > new_owner.ended).map(|o| ms(o.started)).collect();
        assert!(
            overlapping.is_empty(),
            "{}: a new owner admitted it by +{} ms, and node-2 still admitted requests sent at +{overlapping:?} ms",
            tenant.id,
            ms(new_owner.ended)
        );
        eprintln!(
            "{}: node-2 last admitted a request sent at +{:?} ms, refused from +{} ms; a new owner admitted from +{}..{} ms",
            tenant.id,
            last_admitted.map(|o| ms(o.started)),
            ms(refused.started),
            ms(new_owner.started),
            ms(new_owner.ended)
        );
    }
    let first_refusal = first_refusal.expect("node-2 refused");
    let first_removal = removal.iter().flatten().min().copied().expect("a view without node-2");
    eprintln!(
        "cut at +0 ms; node-2 first refused at +{} ms; views without node-2 seen at {:?} ms",
        ms(first_refusal),
        removal.map(|seen| seen.map(ms))
    );
    assert!(
        first_refusal < first_removal,
        "another node's view dropped node-2 (seen at +{} ms) before node-2 refused anything (from +{} ms)",
        ms(first_removal),
        ms(first_refusal)
    );

    proxy.heal();
    cluster.wait_converged(3, READY_TIMEOUT).await;
    for tenant in &tenants {
        for node in &cluster.nodes {
            let response = node.tenant_get(Some(&tenant.id), Some(&tenant.key)).await;
            assert_eq!(
                response.status,
                200,
                "{} through {} after the heal: {}",
                tenant.id,
                node.url(""),
                response.text
            );
        }
    }
    // Every admission is counted once, those node-2 made after the cut included (through each
    // node before the cut and after the heal, and the clients' during the cut); a commit of
    // node-2 whose reply the cut lost is retried after the heal and applied once
    // (`a_commit_whose_reply_is_lost_is_applied_once`).
    for (t, tenant) in tenants.iter().enumerate() {
        let admitted = 6 + outcomes.iter().filter(|o| o.tenant == t && o.status == 200).count() as u64;
        cluster.nodes[0].wait_usage_api_calls_within(&tenant.id, admitted, READY_TIMEOUT).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_whose_reply_is_lost_is_applied_once() {
    let redis = RedisServer::start_persistent();
    let proxy = CuttableProxy::start(redis.port()).await;
    let url = proxy.url();
    let node = Gateway::start(
        common::FAST,
        &[("REDIS_URL", url.as_str()), ("CONNECTORS_MASTER_KEY", cluster_common::MASTER_KEY)],
    )
    .await;
    let key = node.create_limited("once", 1000).await;
    node.wait_audit("once", "the creation event", |events| events.len() == 1).await;
    // The commits (scripts) carrying this tenant's audit events and usage reach Redis, and the
    // connection breaks before their replies come back, as when the network fails at that moment.
    proxy.lose_replies_to(&[b"EVALSHA", b"once"]);
    for _ in 0..5 {
        node.tenant_get(Some("once"), Some(&key)).await.expect(200);
    }
    eventually("a commit of the tenant to lose its reply", Duration::from_secs(10), || async {
        if proxy.replies_lost() > 0 { Ok(()) } else { Err("none yet".to_string()) }
    })
    .await;
    proxy.deliver_replies();
    let events = node.wait_audit("once", "the five tenant.get events", |events| events.len() >= 6).await;
    let gets = events.iter().filter(|event| event["action"] == "tenant.get").count();
    assert_eq!(
        gets,
        5,
        "5 requests, {gets} tenant.get events stored ({} commits lost their reply)",
        proxy.replies_lost()
    );
}
