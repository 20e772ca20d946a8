//! `bench cluster`: the cluster benchmark (README, "Cluster benchmark"), side by side in one run.
//!
//! ```text
//! cargo build --release -p connectors -p bench
//! cargo run --release -p bench -- cluster
//! cargo run --release -p bench -- cluster --tenants 2000 --duration 8 --rounds 2 --json cluster.json --logs logs/
//! cargo run --release -p bench -- cluster --json cluster.json --perf profiles/ \
//!     && python3 scripts/profile-buckets.py --json cluster.json --perf profiles/
//! ```
//!
//! One run (about 2 1/2 minutes with the defaults on a 2-core machine):
//!
//! 1. starts a throwaway `redis-server` on a free 127.0.0.1 port (`--save "" --appendonly no`,
//!    the helper the end-to-end tests use), and on it, each group under its own key prefix
//!    (`REDIS_TENANT_PREFIX`, which also namespaces the membership table):
//!    - a 2-node cluster, `bench-a` and `bench-b`;
//!    - a single node with `RATE_LIMIT_STORE=redis` and no node id: not a cluster, but the store
//!      and the per-request `INCR`+`EXPIRE` rate counter are in Redis (the original design);
//!    - a 1-node cluster, `bench-solo` (actor admission, Redis store, no hop);
//!    - a 3-node cluster, `bench-3a`, `bench-3b`, `bench-3c`;
//!
//!    every gateway with the single-node benchmark's config (high limits, actors stay active);
//! 2. waits until every node answers `/readyz` and, in each cluster, every node sees all members
//!    in one epoch and owns the shards `connectors_cluster::shard_map::ShardMap` gives it (the
//!    `shards.owned` of `GET /api/v1/admin/cluster`, checked against the real placement code);
//! 3. registers `--tenants` tenants (high limits) in each group through its first node, and
//!    computes each tenant's owner with `ShardMap::owner_of`;
//! 4. activates, one request at a time, the tenants of every scenario, then sends a second (warm)
//!    request each: the warm pass gives the latency without load ("one at a time"); afterwards
//!    the `connectors_tenant_actors_active` gauges of `bench-a` and `bench-b` must match the
//!    computed ownership (each tenant's actor lives on its owner only);
//!    then runs `local owner` and `remote hop` (below) at a steady `--steady-rate` (1,000 req/s
//!    over 4 paced connections: one request per millisecond tick of the timer), well below
//!    saturation: the hop's latency under a steady load, without the queueing of a saturated
//!    machine;
//! 5. measures five scenarios, closed loop, C keep-alive connections for D seconds after a
//!    warm-up, rounds alternating the scenarios (the order rotates each round):
//!    - `local owner`: `GET /api/v1/tenant` to `bench-a` for the tenants `bench-a` owns;
//!    - `remote hop`: to `bench-a` for the tenants `bench-b` owns (an RPC A→B per admission,
//!      batched per peer link: the run prints the requests per message);
//!    - `Redis counter`: to the Redis-counter node, the same tenant ids as `local owner`;
//!    - `1 node`: to `bench-solo`, every tenant;
//!    - `3 nodes`: connections dealt round robin over the three nodes, every tenant on each;
//! 6. prints the table (throughput, p50/p99, non-200 answers and connection errors, CPU per
//!    request of the gateways and of Redis) and the ratios against the goals: remote hop adds
//!    < 0.2 ms at p50 (one request at a time, at the steady rate, and at saturation, where p50
//!    is connections / throughput and so follows the hop's CPU cost); local-owner throughput >= 1.25 x the Redis counter's, with a lower p99;
//!    and 3 nodes / 1 node; writes JSON with `--json PATH`;
//! 7. stops every gateway with SIGTERM (checking each exits 0), copies their logs with
//!    `--logs DIR`, kills Redis, removes the
//!    temporary directories (also on error; a gateway not stopped is killed when dropped).
//!
//! On a 2-core machine every gateway, Redis and the load generator share the same two cores, so
//! the 3-node figure cannot show scale-out: it shows the cost of the extra hops.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use connectors_cluster::shard_map::SHARDS;
use serde_json::{Value, json};

use crate::gateway::{self, Gateway, process_cpu, system_busy};
use crate::group::{Group, Site};
use crate::load::{self, LoadResult, Target};
use crate::redis_server::RedisServer;
use crate::stats::Latencies;
use crate::tenants::{self, active_actors, register, sequential, tenant_id};
use crate::verdict;

/// The remote hop should add less than this at p50 (ms).
const HOP_GOAL_MS: f64 = 0.2;
/// The hop's added p50 at saturation (64 connections).
const HOP_SATURATED_GOAL_MS: f64 = 0.3;
/// The hop's extra CPU per request, both nodes together.
const HOP_CPU_GOAL_MICROS: f64 = 15.0;
/// Local-owner throughput over the Redis counter's should be at least this.
const COUNTER_RATIO_GOAL: f64 = 1.25;
const START_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, clap::Args)]
pub(crate) struct ClusterArgs {
    /// Concurrent keep-alive connections of each measured run.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Measured seconds of each run.
    #[arg(long, default_value_t = 8)]
    duration: u64,
    /// Warm-up seconds before each run (not measured).
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Rounds; each round runs every scenario once.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Tenants registered in each group (cluster or node).
    #[arg(long, default_value_t = 2_000)]
    tenants: usize,
    /// Concurrent admin requests while registering.
    #[arg(long, default_value_t = 12)]
    register_concurrency: usize,
    /// Total rate of the steady (paced, below saturation) latency runs of the local owner and
    /// the remote hop. The pacing uses tokio's timer, which fires on millisecond ticks: with the
    /// defaults one request goes out per tick, so requests do not queue behind each other; a
    /// higher rate sends bursts of rate/1000 requests at each tick.
    #[arg(long, default_value_t = 1_000)]
    steady_rate: u64,
    /// Connections of the steady runs.
    #[arg(long, default_value_t = 4)]
    steady_connections: usize,
    /// Measured seconds of each steady run.
    #[arg(long, default_value_t = 5)]
    steady_seconds: u64,
    /// Threads of the load generator.
    #[arg(long, default_value_t = 2)]
    client_threads: usize,
    /// The release `connectors` binary (default: found in the target directory).
    #[arg(long)]
    gateway_bin: Option<PathBuf>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also copy every gateway's log (its stdout and stderr) into this directory, as
    /// `<node>.log`.
    #[arg(long)]
    logs: Option<PathBuf>,
    /// Also record a CPU profile of the 2-node cluster's two gateways during the measured
    /// seconds of each `local owner` and `remote hop` run (`perf record -F 999`, no call graph:
    /// self time per function), as `DIR/<scenario>-<round>.data`; `perf` must be installed.
    #[arg(long)]
    perf: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scenario {
    Local,
    Remote,
    Counter,
    OneNode,
    ThreeNodes,
}

impl Scenario {
    const ALL: [Scenario; 5] =
        [Scenario::Local, Scenario::Remote, Scenario::Counter, Scenario::OneNode, Scenario::ThreeNodes];

    fn label(self) -> &'static str {
        match self {
            Scenario::Local => "local owner",
            Scenario::Remote => "remote hop",
            Scenario::Counter => "Redis counter",
            Scenario::OneNode => "1 node",
            Scenario::ThreeNodes => "3 nodes",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Scenario::Local => "localOwner",
            Scenario::Remote => "remoteHop",
            Scenario::Counter => "redisCounter",
            Scenario::OneNode => "oneNode",
            Scenario::ThreeNodes => "threeNodes",
        }
    }

    /// The group it runs on (index into the groups started by [`run`]).
    fn group(self) -> usize {
        match self {
            Scenario::Local | Scenario::Remote => TWO,
            Scenario::Counter => COUNTER,
            Scenario::OneNode => SOLO,
            Scenario::ThreeNodes => THREE,
        }
    }
}

// The groups, in the order `run` starts them.
const TWO: usize = 0;
const COUNTER: usize = 1;
const SOLO: usize = 2;
const THREE: usize = 3;

/// What one scenario sends where.
struct Plan {
    scenario: Scenario,
    targets: Vec<Target>,
    /// Distinct tenants used.
    tenants: usize,
    /// Share of the requests whose tenant is owned by another node than the one receiving it.
    remote_share: f64,
}

struct RunRecord {
    scenario: Scenario,
    round: usize,
    result: LoadResult,
    /// CPU seconds during the run, warm-up included: the scenario's gateway processes, Redis,
    /// this process, the gateways of the other (idle) groups, and the rest of the machine.
    gateway_cpu: f64,
    redis_cpu: f64,
    client_cpu: f64,
    idle_groups_cpu: f64,
    other_cpu: f64,
}

#[derive(Default)]
struct Report {
    cores: usize,
    /// (group, node id, shards owned as reported, as computed, epoch)
    ownership: Vec<(String, String, u64, usize, u64)>,
    /// (group, tenants, seconds)
    registration: Vec<(String, usize, f64)>,
    /// (scenario, tenants, targets, remote share)
    plans: Vec<(Scenario, usize, usize, f64)>,
    /// Warm latency one request at a time, per scenario.
    one_at_a_time: Vec<(Scenario, Latencies)>,
    /// The steady (paced) runs of the local owner and the remote hop.
    steady: Vec<(Scenario, LoadResult)>,
    /// (node, active actors seen, tenants it owns and was asked about)
    actor_check: Vec<(String, u64, usize)>,
    /// While no load runs: CPU (% of one core) of all the gateways, of Redis, of the rest of the machine.
    idle_percent: (f64, f64, f64),
    runs: Vec<RunRecord>,
    /// Over the saturated remote-hop runs, what the edge node sent its peer: (requests, batches).
    remote_batching: (f64, f64),
    shutdown: Vec<String>,
    total_seconds: f64,
}

pub(crate) fn run(args: &ClusterArgs) -> Result<bool, String> {
    if args.connections == 0 || args.tenants < 10 || args.rounds == 0 {
        return Err("need --connections > 0, --tenants >= 10 and --rounds > 0".into());
    }
    let binary = gateway::locate_binary(args.gateway_bin.as_deref())?;
    if let Some(warning) = gateway::stale_warning(&binary) {
        eprintln!("{warning}");
    }
    let total_started = Instant::now();
    println!("bench: gateway binary {}", binary.display());
    let redis = std::panic::catch_unwind(RedisServer::start).map_err(|_| "redis-server did not start".to_string())?;
    let redis_pid = gateway::child_pid_named("redis-server").ok_or("cannot find the redis-server process")?;
    println!("bench: redis-server pid {redis_pid} on {}", redis.url());
    let runtime = load::client_runtime(args.client_threads)?;
    let site = Site::new(binary, redis.url());
    let mut groups = Vec::new();
    let spawned = (|| {
        groups.push(Group::spawn(&site, "2-node cluster", "bench2:", &["bench-a", "bench-b"], true, "")?);
        groups.push(Group::spawn(&site, "Redis-counter node", "benchrc:", &["bench-counter"], false, "")?);
        groups.push(Group::spawn(&site, "1-node cluster", "bench1:", &["bench-solo"], true, "")?);
        let three = ["bench-3a", "bench-3b", "bench-3c"];
        groups.push(Group::spawn(&site, "3-node cluster", "bench3:", &three, true, "")?);
        Ok::<_, String>(())
    })();
    let outcome = match spawned {
        Ok(()) => runtime.block_on(measure(args, &mut groups, redis_pid)),
        Err(message) => Err(message),
    };
    // Stop everything whatever happened: the gateways first (they use Redis), then Redis.
    let logs: Vec<String> = groups
        .iter()
        .flat_map(|g| g.nodes.iter())
        .map(|n| format!("--- last log lines of {} ---\n{}", n.name, n.log_tail()))
        .collect();
    let mut nodes: Vec<Gateway> = groups.into_iter().flat_map(|g| g.nodes).collect();
    let (shutdown, clean) = gateway::stop_all(&mut nodes, Duration::from_secs(30));
    if let Some(dir) = &args.logs {
        nodes.iter().try_for_each(|node| node.save_log(dir))?;
    }
    drop(redis);
    drop(runtime);
    let mut report = match outcome {
        Ok(report) => report,
        Err(message) => return Err(format!("{message}\n{}\n{}", logs.join("\n"), shutdown.join("\n"))),
    };
    report.shutdown = shutdown;
    report.cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    report.total_seconds = total_started.elapsed().as_secs_f64();
    report.print(args);
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report.json_value(args)).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n").map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("results written to {}", path.display());
    }
    if !clean {
        eprintln!("bench: not every gateway shut down cleanly:\n{}", report.shutdown.join("\n"));
    }
    Ok(clean)
}

async fn measure(args: &ClusterArgs, groups: &mut [Group], redis_pid: u32) -> Result<Report, String> {
    let mut report = Report::default();
    for group in groups.iter_mut() {
        for node in &mut group.nodes {
            node.wait_ready(START_TIMEOUT).await?;
        }
    }
    for group in groups.iter().filter(|g| !g.ids.is_empty()) {
        report.ownership.extend(group.converge(START_TIMEOUT).await?);
        println!("bench: {} ready: {}", group.label, describe_ownership(&report.ownership, group.label));
    }
    println!("bench: {} gateway processes ready", groups.iter().map(|g| g.nodes.len()).sum::<usize>());

    // Registration, in each group through its first node.
    for group in groups.iter_mut() {
        let node = &group.nodes[0];
        let started = Instant::now();
        let (keys, _) = register(&[node.addr], &node.admin_key, args.tenants, args.register_concurrency).await?;
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "bench: {}: registered {} tenants in {seconds:.2} s ({:.0}/s)",
            group.label,
            keys.len(),
            keys.len() as f64 / seconds
        );
        report.registration.push((group.label.to_string(), keys.len(), seconds));
        group.keys = keys;
    }

    // Who owns what, by the real placement code.
    let owners2 = groups[TWO].owners(args.tenants)?;
    let owned_by =
        |owners: &[usize], node: usize| -> Vec<usize> { (0..owners.len()).filter(|&i| owners[i] == node).collect() };
    let local = owned_by(&owners2, 0);
    let remote = owned_by(&owners2, 1);
    if local.is_empty() || remote.is_empty() {
        return Err(format!(
            "{} tenants owned by bench-a, {} by bench-b: need some of each",
            local.len(),
            remote.len()
        ));
    }
    let owners3 = groups[THREE].owners(args.tenants)?;
    let plans: Vec<Plan> = Scenario::ALL
        .iter()
        .map(|&scenario| {
            let group = &groups[scenario.group()];
            let requests = |node: &Gateway, indices: &[usize]| {
                let list = indices.iter().map(|&i| tenants::tenant_request(node.addr, &tenant_id(i), &group.keys[i]));
                Target { addr: node.addr, requests: Arc::new(list.collect()) }
            };
            let all: Vec<usize> = (0..args.tenants).collect();
            let (targets, tenants, remote_share) = match scenario {
                Scenario::Local => (vec![requests(&group.nodes[0], &local)], local.len(), 0.0),
                Scenario::Remote => (vec![requests(&group.nodes[0], &remote)], remote.len(), 1.0),
                Scenario::Counter => (vec![requests(&group.nodes[0], &local)], local.len(), 0.0),
                Scenario::OneNode => (vec![requests(&group.nodes[0], &all)], all.len(), 0.0),
                Scenario::ThreeNodes => {
                    let targets: Vec<Target> = group.nodes.iter().map(|node| requests(node, &all)).collect();
                    let foreign: usize =
                        (0..group.ids.len()).map(|node| all.len() - owned_by(&owners3, node).len()).sum();
                    (targets, all.len(), foreign as f64 / (all.len() * group.ids.len()) as f64)
                }
            };
            Plan { scenario, targets, tenants, remote_share }
        })
        .collect();
    for plan in &plans {
        report.plans.push((plan.scenario, plan.tenants, plan.targets.len(), plan.remote_share));
    }

    // Activation (cold) and a warm pass, one request at a time.
    println!("bench: activating every scenario's tenants one request at a time, then a warm pass...");
    for plan in &plans {
        let count = plan.targets.len();
        let mut warm = Latencies::default();
        for (k, target) in plan.targets.iter().enumerate() {
            // Several targets (3 nodes): each activates its share, tenant i through node i % count.
            let mine: Vec<Vec<u8>> = target.requests.iter().skip(k).step_by(count).cloned().collect();
            sequential(target.addr, &mine).await.map_err(|e| format!("{}: {e}", plan.scenario.label()))?;
            warm.extend(sequential(target.addr, &mine).await.map_err(|e| format!("{}: {e}", plan.scenario.label()))?);
        }
        report.one_at_a_time.push((plan.scenario, warm));
    }
    // The hop's latency below saturation: the same tenants at a steady rate.
    println!(
        "bench: local owner and remote hop at a steady {} req/s over {} connections...",
        args.steady_rate, args.steady_connections
    );
    for plan in plans.iter().filter(|p| matches!(p.scenario, Scenario::Local | Scenario::Remote)) {
        let (warmup, seconds) = (Duration::from_secs(1), Duration::from_secs(args.steady_seconds));
        let result = load::steady(&plan.targets, args.steady_connections, args.steady_rate, warmup, seconds).await?;
        report.steady.push((plan.scenario, result));
    }
    // Each tenant's actor lives on its owner: bench-a has the local ones, bench-b the remote ones.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (node, expected) in groups[TWO].nodes.iter().zip([local.len(), remote.len()]) {
        report.actor_check.push((node.name.clone(), active_actors(node.addr).await?, expected));
    }

    // What the processes cost while idle (actor ticks, heartbeats, checkpoints) and what the
    // rest of the machine uses (the noise of this run).
    let all_pids: Vec<u32> = groups.iter().flat_map(Group::pids).collect();
    let cpu_of = |pids: &[u32]| pids.iter().map(|&pid| process_cpu(pid)).sum::<f64>();
    let me = std::process::id();
    let window = Duration::from_secs(2);
    let (gw0, redis0, me0, system0) = (cpu_of(&all_pids), process_cpu(redis_pid), process_cpu(me), system_busy());
    tokio::time::sleep(window).await;
    let (gw, redis) = (cpu_of(&all_pids) - gw0, process_cpu(redis_pid) - redis0);
    let rest = (system_busy() - system0 - gw - redis - (process_cpu(me) - me0)).max(0.0);
    let percent = |cpu: f64| cpu / window.as_secs_f64() * 100.0;
    report.idle_percent = (percent(gw), percent(redis), percent(rest));
    println!(
        "bench: idle: the {} gateways use {:.0}% of a core, redis {:.0}%, the rest of the machine {:.0}%",
        all_pids.len(),
        report.idle_percent.0,
        report.idle_percent.1,
        report.idle_percent.2
    );

    // The measured runs: every scenario once per round, the order rotating.
    let warmup = Duration::from_secs(args.warmup);
    let duration = Duration::from_secs(args.duration);
    for round in 1..=args.rounds {
        for offset in 0..plans.len() {
            let plan = &plans[(offset + round - 1) % plans.len()];
            let pids = groups[plan.scenario.group()].pids();
            let idle: Vec<u32> = all_pids.iter().copied().filter(|pid| !pids.contains(pid)).collect();
            let edge = plan.targets[0].addr;
            let remote = plan.scenario == Scenario::Remote;
            let batched_before = if remote { remote_batching(edge).await? } else { (0.0, 0.0) };
            let profile = match (&args.perf, plan.scenario) {
                (Some(dir), Scenario::Local | Scenario::Remote) => {
                    let path = dir.join(format!("{}-{round}.data", plan.scenario.key()));
                    Some(Profile::start_after(warmup, duration, &pids, path))
                }
                _ => None,
            };
            let before = (cpu_of(&pids), process_cpu(redis_pid), process_cpu(me), cpu_of(&idle), system_busy());
            let result = load::spread(&plan.targets, args.connections, warmup, duration).await?;
            if let Some(profile) = profile {
                profile.finish().await?;
            }
            let gateway_cpu = cpu_of(&pids) - before.0;
            let redis_cpu = process_cpu(redis_pid) - before.1;
            let client_cpu = process_cpu(me) - before.2;
            let idle_groups_cpu = cpu_of(&idle) - before.3;
            let other_cpu =
                (system_busy() - before.4 - gateway_cpu - redis_cpu - client_cpu - idle_groups_cpu).max(0.0);
            let mut record = RunRecord {
                scenario: plan.scenario,
                round,
                result,
                gateway_cpu,
                redis_cpu,
                client_cpu,
                idle_groups_cpu,
                other_cpu,
            };
            let seconds = (args.warmup + args.duration) as f64;
            println!(
                "bench: round {round} {:<13} {:>8.0} req/s  p50 {:.3} ms  p99 {:.3} ms  non-200 {}  errors {}  idle groups {:.0}%, other processes {:.0}% of a core",
                plan.scenario.label(),
                record.result.rps(),
                record.result.latencies.percentile_ms(50.0),
                record.result.latencies.percentile_ms(99.0),
                record.result.non_200,
                record.result.io_errors,
                record.idle_groups_cpu / seconds * 100.0,
                record.other_cpu / seconds * 100.0,
            );
            if let Some(error) = &record.result.first_error {
                println!("bench:   first error: {error}");
            }
            if remote {
                let batched = remote_batching(edge).await?;
                report.remote_batching.0 += batched.0 - batched_before.0;
                report.remote_batching.1 += batched.1 - batched_before.1;
            }
            report.runs.push(record);
        }
    }
    Ok(report)
}

/// `perf record` of some processes over a measured window that starts after the warm-up.
struct Profile(tokio::task::JoinHandle<Result<(), String>>);

impl Profile {
    fn start_after(warmup: Duration, duration: Duration, pids: &[u32], path: PathBuf) -> Self {
        let pids = pids.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
        Profile(tokio::spawn(async move {
            tokio::time::sleep(warmup).await;
            tokio::task::spawn_blocking(move || {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                }
                let status = std::process::Command::new("perf")
                    .args(["record", "--quiet", "-F", "999", "-p", &pids, "-o"])
                    .arg(&path)
                    .args(["--", "sleep", &duration.as_secs_f64().to_string()])
                    .stdout(std::process::Stdio::null())
                    .status()
                    .map_err(|e| format!("cannot run perf: {e}"))?;
                if status.success() { Ok(()) } else { Err(format!("perf record exited with {status}")) }
            })
            .await
            .map_err(|e| e.to_string())?
        }))
    }

    async fn finish(self) -> Result<(), String> {
        self.0.await.map_err(|e| e.to_string())?
    }
}

/// What node `addr` sent to owners on other nodes so far: (requests batched, batches); zeros
/// from a node not in a cluster.
async fn remote_batching(addr: std::net::SocketAddr) -> Result<(f64, f64), String> {
    let text = tenants::metrics_text(addr).await?;
    let batched = tenants::metric(&text, "connectors_cluster_remote_asks_total{sent=\"batched\"}").unwrap_or(0.0);
    Ok((batched, tenants::metric(&text, "connectors_cluster_ask_batches_total").unwrap_or(0.0)))
}

fn describe_ownership(rows: &[(String, String, u64, usize, u64)], group: &str) -> String {
    let parts: Vec<String> = rows
        .iter()
        .filter(|r| r.0 == group)
        .map(|r| format!("{} owns {} shards (ShardMap: {}), epoch {}", r.1, r.2, r.3, r.4))
        .collect();
    parts.join("; ")
}

/// Figures of one scenario over all its rounds.
struct Summary {
    rps: f64,
    p50: f64,
    p99: f64,
    non_200: u64,
    errors: u64,
    gateway_us: f64,
    redis_us: f64,
    client_us: f64,
    idle_p50: f64,
    idle_p99: f64,
    /// The steady run (local owner and remote hop only): req/s, p50, p99.
    steady: Option<(f64, f64, f64)>,
}

impl Report {
    fn summary(&self, scenario: Scenario) -> Summary {
        let runs: Vec<&RunRecord> = self.runs.iter().filter(|r| r.scenario == scenario).collect();
        let mut all = Latencies::default();
        let (mut completed, mut gateway, mut redis, mut client, mut non_200, mut errors) = (0u64, 0.0, 0.0, 0.0, 0, 0);
        for run in &runs {
            all.extend(run.result.latencies.clone());
            completed += run.result.completed;
            gateway += run.gateway_cpu;
            redis += run.redis_cpu;
            client += run.client_cpu;
            non_200 += run.result.non_200;
            errors += run.result.io_errors;
        }
        let per = |cpu: f64| cpu / completed.max(1) as f64 * 1e6;
        let mut idle =
            self.one_at_a_time.iter().find(|(s, _)| *s == scenario).map(|(_, l)| l.clone()).unwrap_or_default();
        Summary {
            rps: runs.iter().map(|r| r.result.rps()).sum::<f64>() / runs.len().max(1) as f64,
            p50: all.percentile_ms(50.0),
            p99: all.percentile_ms(99.0),
            non_200,
            errors,
            gateway_us: per(gateway),
            redis_us: per(redis),
            client_us: per(client),
            idle_p50: idle.percentile_ms(50.0),
            idle_p99: idle.percentile_ms(99.0),
            steady: self.steady.iter().find(|(s, _)| *s == scenario).map(|(_, run)| {
                let mut latencies = run.latencies.clone();
                (run.rps(), latencies.percentile_ms(50.0), latencies.percentile_ms(99.0))
            }),
        }
    }

    fn ratios(&self) -> Ratios {
        let (local, remote) = (self.summary(Scenario::Local), self.summary(Scenario::Remote));
        let (counter, one, three) =
            (self.summary(Scenario::Counter), self.summary(Scenario::OneNode), self.summary(Scenario::ThreeNodes));
        let div = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        Ratios {
            hop_p50_ms: remote.p50 - local.p50,
            hop_idle_p50_ms: remote.idle_p50 - local.idle_p50,
            hop_steady_p50_ms: remote.steady.zip(local.steady).map(|(r, l)| r.1 - l.1),
            local_over_counter: div(local.rps, counter.rps),
            local_p99_below_counter: local.p99 < counter.p99,
            three_over_one: div(three.rps, one.rps),
        }
    }

    fn print(&mut self, args: &ClusterArgs) {
        let line = "-".repeat(118);
        println!();
        println!("{}", "=".repeat(118));
        println!("Connectors Gateway cluster benchmark");
        println!("{}", "=".repeat(118));
        println!(
            "machine: {} cores | load generator: {} thread(s), raw HTTP/1.1 keep-alive, {} connections | one redis-server on loopback",
            self.cores,
            args.client_threads.max(1),
            args.connections
        );
        println!(
            "NOTE: every gateway process (7 in all, the idle groups included), redis-server and the load generator share these"
        );
        println!(
            "      {} cores, so absolute figures are understated; compare scenarios within this run. \"idle gw\" is the CPU of",
            self.cores
        );
        println!(
            "      the groups not under load during a run, \"other\" that of the rest of the machine (noise), in % of one core."
        );
        let (gw, redis, rest) = self.idle_percent;
        println!(
            "      Idle (no load): all gateways {gw:.0}%, redis {redis:.0}%, rest of the machine {rest:.0}% of one core."
        );
        println!();
        println!("Placement (GET /api/v1/admin/cluster vs connectors_cluster::shard_map::ShardMap, {SHARDS} shards):");
        for (group, node, owned, computed, epoch) in &self.ownership {
            println!(
                "  {group:<16} {node:<10} owns {owned:>4} shards, computed {computed:>4}  {}  (epoch {epoch})",
                if *owned == *computed as u64 { "ok" } else { "MISMATCH" }
            );
        }
        for (node, seen, expected) in &self.actor_check {
            println!(
                "  active tenant actors on {node}: {seen} (tenants it owns that were called: {expected})  {}",
                if *seen == *expected as u64 { "ok" } else { "MISMATCH" }
            );
        }
        println!();
        println!(
            "Throughput: GET /api/v1/tenant, closed loop, {} connections, {} s warm-up + {} s measured per run, {} round(s)",
            args.connections, args.warmup, args.duration, args.rounds
        );
        println!("{line}");
        println!(
            "  {:<6} {:<13} {:>7} {:>6} {:>9} {:>8} {:>8} {:>8} {:>7} {:>14} {:>14} {:>7} {:>7}",
            "run",
            "scenario",
            "tenants",
            "remote",
            "req/s",
            "p50 ms",
            "p99 ms",
            "non-200",
            "errors",
            "gateways us/rq",
            "redis us/req",
            "idle gw",
            "other"
        );
        let seconds = (args.warmup + args.duration) as f64;
        let plans = self.plans.clone();
        let plan_of = |s: Scenario| plans.iter().find(|p| p.0 == s).map_or((0, 0.0), |p| (p.1, p.3));
        for run in &mut self.runs {
            let ok = run.result.completed.max(1) as f64;
            let (tenants, remote) = plan_of(run.scenario);
            println!(
                "  {:<6} {:<13} {:>7} {:>5.0}% {:>9.0} {:>8.3} {:>8.3} {:>8} {:>7} {:>14.1} {:>14.1} {:>6.0}% {:>6.0}%",
                run.round,
                run.scenario.label(),
                tenants,
                remote * 100.0,
                run.result.rps(),
                run.result.latencies.percentile_ms(50.0),
                run.result.latencies.percentile_ms(99.0),
                run.result.non_200,
                run.result.io_errors,
                run.gateway_cpu / ok * 1e6,
                run.redis_cpu / ok * 1e6,
                run.idle_groups_cpu / seconds * 100.0,
                run.other_cpu / seconds * 100.0,
            );
        }
        println!("{line}");
        println!(
            "  {:<20} {:>9} {:>8} {:>8} {:>8} {:>7} {:>14} {:>14} {:>12} {:>18}",
            "mean of the rounds",
            "req/s",
            "p50 ms",
            "p99 ms",
            "non-200",
            "errors",
            "gateways us/rq",
            "redis us/req",
            "client us/rq",
            "1-at-a-time p50/p99"
        );
        for scenario in Scenario::ALL {
            let s = self.summary(scenario);
            println!(
                "  {:<20} {:>9.0} {:>8.3} {:>8.3} {:>8} {:>7} {:>14.1} {:>14.1} {:>12.1} {:>10.3} / {:.3}",
                scenario.label(),
                s.rps,
                s.p50,
                s.p99,
                s.non_200,
                s.errors,
                s.gateway_us,
                s.redis_us,
                s.client_us,
                s.idle_p50,
                s.idle_p99
            );
        }
        println!("{line}");
        let r = self.ratios();
        let (local, remote, counter) =
            (self.summary(Scenario::Local), self.summary(Scenario::Remote), self.summary(Scenario::Counter));
        if let (Some(r_steady), Some(l_steady), Some(hop)) = (remote.steady, local.steady, r.hop_steady_p50_ms) {
            println!(
                "  remote hop added latency at p50, steady {} req/s (local {:.0}, remote {:.0} req/s reached): {:.3} - {:.3} = {:+.3} ms   (goal < {HOP_GOAL_MS} ms)  {}",
                args.steady_rate,
                l_steady.0,
                r_steady.0,
                r_steady.1,
                l_steady.1,
                hop,
                verdict(hop < HOP_GOAL_MS)
            );
            println!("      (p99 at that rate: local owner {:.3} ms, remote hop {:.3} ms)", l_steady.2, r_steady.2);
        }
        println!(
            "  remote hop added latency at p50 at saturation: {:.3} - {:.3} = {:+.3} ms   (goal < {HOP_SATURATED_GOAL_MS} ms)  {}",
            remote.p50,
            local.p50,
            r.hop_p50_ms,
            verdict(r.hop_p50_ms < HOP_SATURATED_GOAL_MS)
        );
        println!(
            "      (at saturation p50 follows {} connections / throughput: the hop's CPU on both nodes, {:.0} vs {:.0} us per request,",
            args.connections, remote.gateway_us, local.gateway_us
        );
        println!("      halves the throughput of these shared cores, and the queue doubles with it)");
        let (batched, batches) = self.remote_batching;
        println!(
            "      (bench-a sent those requests to bench-b in {batches:.0} batches: {:.1} requests per message)",
            batched / batches.max(1.0)
        );
        let hop_cpu = remote.gateway_us - local.gateway_us;
        println!(
            "  remote hop extra CPU per request, both nodes together: {:.1} - {:.1} = {hop_cpu:.1} us   (goal <= {HOP_CPU_GOAL_MICROS:.0} us)  {}",
            remote.gateway_us,
            local.gateway_us,
            verdict(hop_cpu <= HOP_CPU_GOAL_MICROS)
        );
        println!(
            "  remote hop added latency at p50, one request at a time: {:.3} - {:.3} = {:+.3} ms   (goal < {HOP_GOAL_MS} ms)  {}",
            remote.idle_p50,
            local.idle_p50,
            r.hop_idle_p50_ms,
            verdict(r.hop_idle_p50_ms < HOP_GOAL_MS)
        );
        println!(
            "  throughput local owner / Redis counter: {:.0} / {:.0} = {:.3}   (goal >= {COUNTER_RATIO_GOAL:.2})  {}",
            local.rps,
            counter.rps,
            r.local_over_counter,
            verdict(r.local_over_counter >= COUNTER_RATIO_GOAL)
        );
        println!(
            "  p99 local owner < p99 Redis counter: {:.3} ms vs {:.3} ms  {}",
            local.p99,
            counter.p99,
            verdict(r.local_p99_below_counter)
        );
        let (one, three) = (self.summary(Scenario::OneNode), self.summary(Scenario::ThreeNodes));
        println!(
            "  throughput 3 nodes / 1 node: {:.0} / {:.0} = {:.3}   (no goal: see below)",
            three.rps, one.rps, r.three_over_one
        );
        println!("{line}");
        let three_remote = self.plans.iter().find(|p| p.0 == Scenario::ThreeNodes).map_or(0.0, |p| p.3);
        println!(
            "  3 nodes vs 1 node: on this {}-core machine the three gateway processes, redis-server and the load generator",
            self.cores
        );
        println!(
            "  all share the same {} cores as the single node did, so the 3-node run cannot show scale-out; with the load",
            self.cores
        );
        println!(
            "  spread over the nodes, {:.0}% of the requests arrive at a node that does not own the tenant and pay an RPC to",
            three_remote * 100.0
        );
        println!(
            "  the owner on the same CPUs, so the ratio measures the cost of those extra hops. On separate machines each node"
        );
        println!("  would bring its own cores.");
        println!();
        for (group, tenants, seconds) in &self.registration {
            println!("Registration {group}: {tenants} tenants in {seconds:.2} s ({:.0}/s)", *tenants as f64 / seconds);
        }
        println!("Shutdown:");
        for line in &self.shutdown {
            println!("  {line}");
        }
        println!("Benchmark wall time: {:.1} s", self.total_seconds);
        println!("{}", "=".repeat(118));
    }

    fn json_value(&mut self, args: &ClusterArgs) -> Value {
        let seconds = (args.warmup + args.duration) as f64;
        let runs: Vec<Value> = self
            .runs
            .iter_mut()
            .map(|run| {
                let ok = run.result.completed.max(1) as f64;
                json!({
                    "round": run.round,
                    "scenario": run.scenario.key(),
                    "requestsPerSecond": run.result.rps(),
                    "ok": run.result.ok,
                    "non200": run.result.non_200,
                    "connectionErrors": run.result.io_errors,
                    "firstError": run.result.first_error,
                    "p50Ms": run.result.latencies.percentile_ms(50.0),
                    "p99Ms": run.result.latencies.percentile_ms(99.0),
                    "gatewayCpuMicrosPerRequest": run.gateway_cpu / ok * 1e6,
                    "redisCpuMicrosPerRequest": run.redis_cpu / ok * 1e6,
                    "clientCpuMicrosPerRequest": run.client_cpu / ok * 1e6,
                    "idleGroupsCpuPercentOfACore": run.idle_groups_cpu / seconds * 100.0,
                    "otherCpuPercentOfACore": run.other_cpu / seconds * 100.0,
                })
            })
            .collect();
        let mut scenarios = serde_json::Map::new();
        for scenario in Scenario::ALL {
            let s = self.summary(scenario);
            let plan = self.plans.iter().find(|p| p.0 == scenario);
            scenarios.insert(
                scenario.key().into(),
                json!({
                    "label": scenario.label(),
                    "tenants": plan.map(|p| p.1),
                    "targets": plan.map(|p| p.2),
                    "remoteShare": plan.map(|p| p.3),
                    "meanRequestsPerSecond": s.rps,
                    "p50Ms": s.p50,
                    "p99Ms": s.p99,
                    "non200": s.non_200,
                    "connectionErrors": s.errors,
                    "gatewayCpuMicrosPerRequest": s.gateway_us,
                    "redisCpuMicrosPerRequest": s.redis_us,
                    "clientCpuMicrosPerRequest": s.client_us,
                    "oneAtATime": {"p50Ms": s.idle_p50, "p99Ms": s.idle_p99},
                    "steady": s.steady.map(|(rps, p50, p99)| json!({
                        "targetRequestsPerSecond": args.steady_rate, "connections": args.steady_connections,
                        "requestsPerSecond": rps, "p50Ms": p50, "p99Ms": p99,
                    })),
                }),
            );
        }
        let r = self.ratios();
        json!({
            "machine": {"cores": self.cores, "clientThreads": args.client_threads.max(1)},
            "settings": {
                "connections": args.connections, "durationSeconds": args.duration, "warmupSeconds": args.warmup,
                "rounds": args.rounds, "tenants": args.tenants,
            },
            "placement": self.ownership.iter().map(|(group, node, owned, computed, epoch)| json!({
                "group": group, "node": node, "shardsOwned": owned, "shardsComputed": computed, "epoch": epoch,
            })).collect::<Vec<_>>(),
            "activeActors": self.actor_check.iter().map(|(node, seen, expected)| json!({
                "node": node, "active": seen, "ownedTenantsCalled": expected,
            })).collect::<Vec<_>>(),
            "idleCpuPercentOfACore": {
                "gateways": self.idle_percent.0, "redis": self.idle_percent.1, "restOfMachine": self.idle_percent.2,
            },
            "scenarios": scenarios,
            "runs": runs,
            "ratios": {
                "remoteHopAddedP50Ms": r.hop_p50_ms,
                "remoteHopAddedP50MsOneAtATime": r.hop_idle_p50_ms,
                "remoteHopAddedP50MsSteady": r.hop_steady_p50_ms,
                "goalRemoteHopMs": HOP_GOAL_MS,
                "goalRemoteHopSaturatedMs": HOP_SATURATED_GOAL_MS,
                "remoteHopExtraCpuMicros": self.summary(Scenario::Remote).gateway_us - self.summary(Scenario::Local).gateway_us,
                "goalRemoteHopCpuMicros": HOP_CPU_GOAL_MICROS,
                "remoteHopRequestsPerBatch": self.remote_batching.0 / self.remote_batching.1.max(1.0),
                "localOverRedisCounterThroughput": r.local_over_counter,
                "goalLocalOverRedisCounter": COUNTER_RATIO_GOAL,
                "localP99BelowRedisCounterP99": r.local_p99_below_counter,
                "threeNodesOverOneNodeThroughput": r.three_over_one,
            },
            "registration": self.registration.iter().map(|(group, tenants, seconds)| json!({
                "group": group, "tenants": tenants, "seconds": seconds,
            })).collect::<Vec<_>>(),
            "shutdown": self.shutdown,
            "wallSeconds": self.total_seconds,
        })
    }
}

struct Ratios {
    hop_p50_ms: f64,
    hop_idle_p50_ms: f64,
    hop_steady_p50_ms: Option<f64>,
    local_over_counter: f64,
    local_p99_below_counter: bool,
    three_over_one: f64,
}
