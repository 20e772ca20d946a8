//! Fault-injection soak: three real nodes under load while Redis is paused, killed and restarted
//! and a node is frozen and resumed. Afterwards every request a client saw admitted is billed and
//! audited exactly once, the bill and the audit log agree, and no tenant was admitted over its
//! limit.

#[path = "common/cluster.rs"]
mod cluster_common;
mod common;
#[path = "common/redis_server.rs"]
mod redis_server;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cluster_common::Cluster;
use common::{Gateway, ensure_minute_room, eventually};
use reqwest::Method;
use serde_json::Value;

const TENANTS: usize = 4;
/// Reached about two thirds into the load: admissions go on through the Redis faults, the limit
/// is met while a node is frozen.
const PER_MINUTE: u64 = 250;

/// What the load of one tenant saw: each request id it sent and the status it got (0: none).
type Outcomes = Vec<(String, u16)>;

/// Sends `GET /api/v1/tenant` for one tenant through the nodes in turn, every 50 ms, until told to
/// stop; each request has its own `X-Request-Id`, which the audit log records.
async fn load(nodes: Arc<Vec<String>>, tenant: String, key: String, stop: Arc<AtomicBool>) -> Outcomes {
    let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(3)).build().unwrap();
    let mut outcomes = Vec::new();
    let mut n = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let request_id = format!("{tenant}-{n}");
        let node = &nodes[n % nodes.len()];
        let answer = client
            .get(format!("{node}/api/v1/tenant"))
            .header("X-Tenant-ID", &tenant)
            .header("X-Request-Id", &request_id)
            .bearer_auth(&key)
            .send()
            .await;
        outcomes.push((request_id, answer.map_or(0, |response| response.status().as_u16())));
        n += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    outcomes
}

fn signal(pid: u32, name: &str) {
    let status = std::process::Command::new("kill").args([name, &pid.to_string()]).status().expect("kill runs");
    assert!(status.success(), "kill {name} {pid}");
}

/// The tenant's admitted `tenant.get` events, read through `node`: the successful ones, and
/// those its owner admitted after the asking node had answered 503 (a node was paused between).
async fn admitted_events(node: &Gateway, tenant: &str) -> Vec<Value> {
    let events = node.audit_events(tenant, &[]).await;
    events
        .into_iter()
        .filter(|e| {
            e["action"] == "tenant.get" && (e["result"] == "success" || e["params"]["error"] == "owner_answered_late")
        })
        .collect()
}

#[tokio::test]
async fn faults_under_load_lose_nothing_count_nothing_twice_and_admit_no_more_than_the_limit() {
    let mut cluster = Cluster::start(3).await;
    let tenants = cluster.create_tenants("soak", TENANTS, PER_MINUTE).await;
    let urls = Arc::new(cluster.nodes.iter().map(|node| node.url("")).collect());
    // The load runs 26 s, all within one calendar minute: the window the limit counts in. (The
    // audit timestamp is taken where the request arrived, a moment before the owner admits it,
    // so minutes told apart by it may differ from the owner's windows at a boundary.)
    ensure_minute_room(30).await;
    let stop = Arc::new(AtomicBool::new(false));
    let loads: Vec<_> = tenants
        .iter()
        .map(|(id, key)| tokio::spawn(load(Arc::clone(&urls), id.clone(), key.clone(), Arc::clone(&stop))))
        .collect();

    let redis_pid = cluster.redis.pid();
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Redis stops answering for longer than a lease, then answers again.
    signal(redis_pid, "-STOP");
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    signal(redis_pid, "-CONT");
    tokio::time::sleep(Duration::from_secs(4)).await;
    // Redis crashes; what it acknowledged is on disk (fsync always); it comes back 2 s later.
    cluster.redis.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.redis.restart();
    tokio::time::sleep(Duration::from_secs(5)).await;
    // A node stops (as in a long GC pause or a frozen VM) past its lease, then goes on.
    let frozen = cluster.nodes[2].pid();
    signal(frozen, "-STOP");
    tokio::time::sleep(Duration::from_secs(4)).await;
    signal(frozen, "-CONT");
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::Relaxed);
    let mut outcomes = Vec::new();
    for load in loads {
        outcomes.push(load.await.expect("the load task ran"));
    }
    cluster.wait_converged(3, Duration::from_secs(30)).await;

    for ((id, _), outcomes) in tenants.iter().zip(&outcomes) {
        let statuses: BTreeMap<u16, usize> = outcomes.iter().fold(BTreeMap::new(), |mut counts, (_, status)| {
            *counts.entry(*status).or_default() += 1;
            counts
        });
        let seen_admitted: HashSet<&str> =
            outcomes.iter().filter(|(_, status)| *status == 200).map(|(request, _)| request.as_str()).collect();
        assert!(!seen_admitted.is_empty(), "{id}: nothing was admitted at all: {statuses:?}");
        // Every node's recorder commits within a flush interval; the log and the bill settle.
        let node = &cluster.nodes[0];
        let events =
            eventually(&format!("{id}: the audit log and the bill to agree"), Duration::from_secs(20), || async {
                let events = admitted_events(node, id).await;
                let usage = node.admin(Method::GET, &format!("/tenants/{id}/usage"), None).await.json();
                let billed = usage["apiCalls"].as_u64().unwrap_or(0);
                let audited_ids: HashSet<&str> = events.iter().filter_map(|e| e["requestId"].as_str()).collect();
                let missing = seen_admitted.iter().filter(|request| !audited_ids.contains(*request)).count();
                if billed == events.len() as u64 && missing == 0 {
                    Ok(events)
                } else {
                    Err(format!("billed {billed}, audited {}, admitted but not audited {missing}", events.len()))
                }
            })
            .await;

        let mut per_request: HashMap<&str, usize> = HashMap::new();
        for event in &events {
            *per_request.entry(event["requestId"].as_str().unwrap_or("")).or_default() += 1;
        }
        let twice: Vec<_> = per_request.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "{id}: audited more than once: {twice:?}");

        let mut per_minute: BTreeMap<String, u64> = BTreeMap::new();
        for event in &events {
            let minute = event["timestamp"].as_str().unwrap_or("").get(..16).unwrap_or("").to_string();
            *per_minute.entry(minute).or_default() += 1;
        }
        eprintln!("{id}: {statuses:?}; admitted per minute {per_minute:?}");
        assert_eq!(per_minute.len(), 1, "{id}: the load crossed a minute boundary: {per_minute:?}");
        assert!(
            events.len() as u64 <= PER_MINUTE,
            "{id}: {} admitted within one minute, over {PER_MINUTE}",
            events.len()
        );
    }
}
