//! `bench`: the end-to-end benchmark of the Connectors Gateway.
//!
//! Run it from the workspace root with the release gateway binary built first:
//!
//! ```text
//! export CARGO_TARGET_DIR=/work/target   # optional; wherever your target dir is
//! cargo build --release && cargo run --release -p bench
//! cargo run --release -p bench -- --connections 64 --duration 10 --json results.json
//! ```
//!
//! The gateway binary is looked up next to the bench binary (`<target>/release/connectors`),
//! then in `$CARGO_TARGET_DIR/release/`, then in `target/release/` (or given with
//! `--gateway-bin`). One run (under ~2 minutes with the defaults on a 2-core machine):
//!
//! 1. starts `connectors serve` on a free 127.0.0.1 port with a temporary data dir and config
//!    (high limits, `passivateAfterSeconds: 3600`, `tickMillis: 1000`, the default group-commit interval);
//! 2. registers 10,000 tenants through the admin API (12 concurrent requests);
//! 3. starts, in this process, a bare axum server whose `GET /api/v1/tenant` returns the body the
//!    gateway returned for one tenant, without auth, limits, audit or metering, and the two
//!    floors of the design beside it (module [`floor`]): the same handler asking the tenant's own
//!    ractor actor first, and that plus queueing the audit event to the gateway's recorder and
//!    redb store;
//! 4. activation: the first request of 1,000 tenants one at a time (each loads the tenant from the
//!    store and spawns its actor), then a second (warm) request each; then 5,000 more
//!    activations; gateway RSS before/after, and memory per active actor = ΔRSS / Δactive
//!    (active count from the `connectors_tenant_actors_active` gauge);
//! 5. throughput: closed loop, C keep-alive connections for D seconds after a warm-up, against
//!    the bare server, the two floors and the gateway (round robin over the 1,000 active tenants,
//!    each request with that tenant's `X-Tenant-ID` and key), alternating them round by round;
//! 6. prints the table (and writes JSON with `--json PATH`);
//! 7. stops the gateway with SIGTERM, checks it exits 0, and removes the temporary files.
//!
//! The load generator is a raw-TCP HTTP/1.1 keep-alive client on a 2-thread runtime (`--client-threads`):
//! one thread could not saturate the bare server. Only 127.0.0.1 is ever contacted. On a 2-core machine the load generator shares the CPU with
//! the server under test, so the gateway/bare throughput ratio is the meaningful figure.
//!
//! `cargo run --release -p bench -- cluster` is the cluster benchmark instead (module [`cluster`]):
//! with a `redis-server` it starts itself, in one run, admission on a local owner and through one
//! remote hop (a 2-node cluster, ownership computed with `ShardMap` and checked against
//! `/api/v1/admin/cluster`), the Redis-counter mode (`RATE_LIMIT_STORE=redis`), and a 3-node
//! cluster against a 1-node one; throughput, p50/p99, non-200 counts and the ratios against the
//! goals in the README's "Cluster benchmark" (about 2 1/2 minutes with its defaults).
//!
//! `cargo run --release -p bench -- tools` is the `tools/select` benchmark (module [`tools`]):
//! the gateway discovers 500, then 4,076 real tools (seal-tools) from the example MCP server, and
//! `POST /api/v1/tools/select` is measured against the same `Selector` called in-process
//! (throughput, p50/p99, CPU per query, the ratios; build `mcp-example-server` in release too).
//!
//! `cargo run --release -p bench -- link-floor` is the floor of a remote hop (module
//! [`link_floor`]): two processes linked by the cluster crate's links over ractor_cluster,
//! answering admissions prepared once; CPU per request of both and the bare round trip.
//!
//! `cargo run --release -p bench -- handoff` is the hand-off benchmark (module [`handoff`]): in a
//! 2-node cluster, the time from SIGTERM until the other node serves the drained node's 10,000
//! active tenants and the latency of the requests held meanwhile; in a 3-node cluster, the
//! throughput during a rolling restart against steady throughput (under a minute).

mod cluster;
mod floor;
mod gateway;
mod group;
mod handoff;
mod http1;
mod link_floor;
mod load;
mod local_server;
#[path = "../../tests/common/redis_server.rs"]
mod redis_server;
mod stats;
mod tenants;
mod tools;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, Subcommand};
use serde_json::{Value, json};

use crate::gateway::{Gateway, process_cpu, system_busy, thread_cpu};
use crate::http1::Conn;
use crate::load::LoadResult;
use crate::local_server::LocalServer;
use crate::stats::Latencies;
use crate::tenants::{active_actors, register, sequential, tenant_id};

/// Thread name of the bare axum server's runtime (to tell its CPU time from the client's).
const BARE_THREAD: &str = "bare-server";
/// The in-process targets of the throughput runs and their threads.
/// Every target of the throughput runs, in the order they run.
const TARGETS: [&str; 4] = ["bare", "actor", "audit", "gateway"];
const SERVER_THREADS: [(&str, &str); 3] =
    [("bare", BARE_THREAD), ("actor", floor::ACTOR_THREAD), ("audit", floor::AUDIT_THREAD)];
const THROUGHPUT_GOAL: f64 = 0.85;
/// Issue 16's goals: ractor's empty actor (9.5 KiB) plus at most 1.5 KiB of state.
const MEMORY_GOAL_KIB: f64 = 11.0;
/// The gateway's server CPU per request minus the bare handler's, same run.
const CPU_OVER_BARE_GOAL_MICROS: f64 = 5.0;
/// Memory per registered tenant without an actor.
const IDLE_TENANT_GOAL_BYTES: f64 = 300.0;

#[derive(Debug, Parser)]
#[command(
    name = "bench",
    about = "End-to-end benchmark of the Connectors Gateway (127.0.0.1 only)",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    mode: Option<Mode>,
    /// The single-node benchmark (the default, without a subcommand).
    #[command(flatten)]
    single: Args,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Cluster benchmark: admission on a local owner, through one remote hop, with the Redis
    /// counter (RATE_LIMIT_STORE=redis), and a 3-node cluster against one node.
    Cluster(cluster::ClusterArgs),
    /// `tools/select` over HTTP against the selection engine in-process, with 500 and 4,076
    /// tools discovered from the example MCP server.
    Tools(tools::ToolsArgs),
    /// Shards changing hands: a node's active tenants handed off on SIGTERM under load (time,
    /// held requests' latency), and a 3-node rolling restart's throughput against steady.
    Handoff(handoff::HandoffArgs),
    /// The floor of a remote hop: two processes linked by the cluster crate's links over
    /// ractor_cluster, answering admissions prepared once (CPU per request, round trip).
    LinkFloor(link_floor::LinkFloorArgs),
    /// The owning process of `link-floor` (started by it).
    #[command(hide = true)]
    LinkPeer(link_floor::LinkPeerArgs),
    /// The memory floor's process of the single-node benchmark (started by it).
    #[command(hide = true)]
    ActorFloor(floor::ActorFloorArgs),
}

/// Flags of the single-node benchmark.
#[derive(Debug, clap::Args)]
struct Args {
    /// Concurrent keep-alive connections of the throughput runs.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Measured seconds of each throughput run.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Warm-up seconds before each throughput run (not measured).
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Rounds of throughput runs (bare, the two floors, gateway).
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Tenants to register.
    #[arg(long, default_value_t = 10_000)]
    tenants: usize,
    /// Tenants activated one at a time and then used by the throughput runs.
    #[arg(long, default_value_t = 1_000)]
    active: usize,
    /// Further tenants activated for the memory slope.
    #[arg(long, default_value_t = 5_000)]
    extra_active: usize,
    /// Concurrent admin requests while registering.
    #[arg(long, default_value_t = 12)]
    register_concurrency: usize,
    /// Threads of the load generator (1 = a single-threaded runtime; one thread cannot saturate
    /// the bare server on 2 cores).
    #[arg(long, default_value_t = 2)]
    client_threads: usize,
    /// Worker threads of the bare axum server (the gateway's runtime has one per core).
    #[arg(long)]
    bare_threads: Option<usize>,
    /// The release `connectors` binary (default: found in the target directory).
    #[arg(long)]
    gateway_bin: Option<PathBuf>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// The gateway's allocator: the bare handler, the floors and the link floor run in this process,
/// and measured on another allocator they would not be the gateway's floors.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match &cli.mode {
        None => run(&cli.single),
        Some(Mode::Cluster(args)) => cluster::run(args),
        Some(Mode::Tools(args)) => tools::run(args),
        Some(Mode::Handoff(args)) => handoff::run(args),
        Some(Mode::LinkFloor(args)) => link_floor::run(args),
        Some(Mode::LinkPeer(args)) => link_floor::peer(args),
        Some(Mode::ActorFloor(args)) => floor::actor_floor(args),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("bench: error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<bool, String> {
    if args.active == 0 || args.connections == 0 || args.active + args.extra_active >= args.tenants {
        return Err("need --active > 0, --connections > 0 and --active + --extra-active < --tenants".into());
    }
    let binary = gateway::locate_binary(args.gateway_bin.as_deref())?;
    if let Some(warning) = gateway::stale_warning(&binary) {
        eprintln!("{warning}");
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let bare_threads = args.bare_threads.unwrap_or(cores);
    let runtime = load::client_runtime(args.client_threads)?;

    let total_started = Instant::now();
    println!("bench: gateway binary {}", binary.display());
    let mut gw = Gateway::spawn(&binary)?;
    println!("bench: gateway pid {} listening on {}", gw.pid(), gw.addr);
    let outcome = runtime.block_on(scenario(args, &mut gw, bare_threads));
    let log_tail = gw.log_tail();
    let stopped = gw.stop(Duration::from_secs(30));
    let mut report = match outcome {
        Ok(report) => report,
        Err(message) => return Err(format!("{message}\n--- last gateway log lines ---\n{log_tail}")),
    };
    let shutdown_ok = match &stopped {
        Ok((status, took)) => {
            report.shutdown = format!("SIGTERM -> {status} after {} ms", took.as_millis());
            status.success()
        }
        Err(message) => {
            report.shutdown = format!("FAILED: {message}");
            false
        }
    };
    report.cores = cores;
    report.client_threads = args.client_threads.max(1);
    report.bare_threads = bare_threads;
    report.total_seconds = total_started.elapsed().as_secs_f64();
    report.print(args);
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report.json_value(args)).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n").map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("results written to {}", path.display());
    }
    if !shutdown_ok {
        eprintln!("bench: the gateway did not shut down cleanly: {}\n{log_tail}", report.shutdown);
    }
    Ok(shutdown_ok)
}

struct Run {
    target: &'static str,
    round: usize,
    result: LoadResult,
    server_cpu: f64,
    client_cpu: f64,
    /// Gateway runs: CPU seconds by thread name.
    threads: Vec<(String, f64)>,
    /// CPU seconds used by other processes on the machine during the run (noise).
    other_cpu: f64,
}

#[derive(Default)]
struct Report {
    cores: usize,
    client_threads: usize,
    bare_threads: usize,
    total_seconds: f64,
    registered: usize,
    register_seconds: f64,
    register_latency: Latencies,
    body_bytes: usize,
    cold: Latencies,
    warm: Latencies,
    extra_cold: Latencies,
    /// Gateway RSS (KiB) before and after registering the tenants, none of them active.
    registration_rss: (u64, u64),
    /// (label, RSS KiB, active actors)
    memory: Vec<(String, u64, u64)>,
    idle_cpu_percent: f64,
    /// KiB per empty stand-in actor, and how many were spawned to measure it.
    floor_actor_kib: Option<f64>,
    floor_actors: usize,
    runs: Vec<Run>,
    shutdown: String,
}

async fn scenario(args: &Args, gw: &mut Gateway, bare_threads: usize) -> Result<Report, String> {
    let mut report = Report::default();
    gw.wait_healthy(Duration::from_secs(30)).await?;
    let addr = gw.addr;
    let settled_rss = || async {
        tokio::time::sleep(Duration::from_millis(1500)).await; // let ticks and flushes settle
        gw.rss_kib()
    };
    let rss_before_registration = settled_rss().await?;

    // 2. Registration.
    println!(
        "bench: registering {} tenants ({} concurrent admin requests)...",
        args.tenants, args.register_concurrency
    );
    let started = Instant::now();
    let (keys, latency) = register(&[addr], &gw.admin_key, args.tenants, args.register_concurrency).await?;
    report.register_seconds = started.elapsed().as_secs_f64();
    report.register_latency = latency;
    report.registered = keys.len();
    println!(
        "bench: registered {} tenants in {:.2} s ({:.0} tenants/s)",
        keys.len(),
        report.register_seconds,
        keys.len() as f64 / report.register_seconds
    );
    let tenant_request = |i: usize, target: SocketAddr| tenants::tenant_request(target, &tenant_id(i), &keys[i]);

    // 3. The bare server serves the body the gateway returns for one tenant (the last one,
    //    outside the sets measured below).
    let mut conn = Conn::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
    let (status, body) = conn.send(&tenant_request(args.tenants - 1, addr)).await.map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("GET /api/v1/tenant answered {status}: {}", String::from_utf8_lossy(&body)));
    }
    report.body_bytes = body.len();
    // The floors' actors are those of the tenants the throughput runs use.
    let servers = [
        ("bare", bare_server(Bytes::from(body.clone()), bare_threads)?),
        ("actor", floor::start(Bytes::from(body.clone()), args.active, bare_threads, false)?),
        ("audit", floor::start(Bytes::from(body.clone()), args.active, bare_threads, true)?),
    ];
    for (target, server) in &servers {
        let mut conn = Conn::connect(server.addr).await.map_err(|e| format!("connect {target}: {e}"))?;
        let (status, answer) = conn.send(&tenant_request(0, server.addr)).await.map_err(|e| e.to_string())?;
        if status != 200 || answer != body {
            return Err(format!("the {target} server answered {status} with a different body"));
        }
    }
    println!(
        "bench: bare axum server and the floors (tenant actor; actor and audit) serving the gateway's {}-byte tenant body",
        body.len()
    );

    // 4. Activation latency and memory per active actor.
    let sample = |label: String| async {
        let rss = settled_rss().await?;
        let active = active_actors(addr).await?;
        Ok::<_, String>((label, rss, active))
    };
    report.memory.push(sample("before activation".into()).await?);
    report.registration_rss = (rss_before_registration, report.memory[0].1);
    let first: Vec<Vec<u8>> = (0..args.active).map(|i| tenant_request(i, addr)).collect();
    println!("bench: activating {} tenants one at a time, then a warm request each...", args.active);
    report.cold = sequential(addr, &first).await?;
    report.warm = sequential(addr, &first).await?;
    report.memory.push(sample(format!("after {} activations", args.active)).await?);
    if args.extra_active > 0 {
        println!("bench: activating {} more tenants...", args.extra_active);
        let extra: Vec<Vec<u8>> =
            (args.active..args.active + args.extra_active).map(|i| tenant_request(i, addr)).collect();
        report.extra_cold = sequential(addr, &extra).await?;
        report.memory.push(sample(format!("after {} more", args.extra_active)).await?);
    }
    // The memory side of the floor, in a process of its own: as many empty actors as the slope above.
    let floor_actors = args.extra_active.max(1_000);
    report.floor_actor_kib = Some(floor::memory_per_actor_in_child(floor_actors, bare_threads)?);
    report.floor_actors = floor_actors;
    let cpu_before = process_cpu(gw.pid());
    let idle_window = Duration::from_secs(2);
    tokio::time::sleep(idle_window).await;
    report.idle_cpu_percent = (process_cpu(gw.pid()) - cpu_before) / idle_window.as_secs_f64() * 100.0;

    // 5. Throughput, alternating the in-process servers and the gateway.
    let mut targets: Vec<(&'static str, SocketAddr)> = servers.iter().map(|(target, s)| (*target, s.addr)).collect();
    targets.push(("gateway", addr));
    let requests: Vec<Arc<Vec<Vec<u8>>>> = targets
        .iter()
        .map(|(_, target_addr)| Arc::new((0..args.active).map(|i| tenant_request(i, *target_addr)).collect()))
        .collect();
    let warmup = Duration::from_secs(args.warmup);
    let duration = Duration::from_secs(args.duration);
    for round in 1..=args.rounds {
        for ((target, target_addr), requests) in targets.iter().zip(&requests) {
            let target = *target;
            let me = std::process::id();
            let (gw_before, bench_before) = (thread_cpu(gw.pid()), thread_cpu(me));
            let gw_total_before = process_cpu(gw.pid());
            let (bench_total_before, system_before) = (process_cpu(me), system_busy());
            let result = load::closed_loop(*target_addr, requests.clone(), args.connections, warmup, duration).await?;
            let (gw_after, bench_after) = (thread_cpu(gw.pid()), thread_cpu(me));
            let gw_total = process_cpu(gw.pid()) - gw_total_before;
            let bench_total = process_cpu(me) - bench_total_before;
            let other_cpu = (system_busy() - system_before - gw_total - bench_total).max(0.0);
            let bench_delta = delta(&bench_before, &bench_after);
            let in_process = |name: &str| SERVER_THREADS.iter().any(|(_, thread)| *thread == name);
            let client_cpu: f64 = bench_delta.iter().filter(|(n, _)| !in_process(n)).map(|(_, c)| c).sum();
            let (server_cpu, threads) = match SERVER_THREADS.iter().find(|(t, _)| *t == target) {
                Some((_, thread)) => {
                    (bench_delta.iter().filter(|(n, _)| n == thread).map(|(_, c)| c).sum(), Vec::new())
                }
                None => (gw_total, delta(&gw_before, &gw_after)),
            };
            let mut run = Run { target, round, result, server_cpu, client_cpu, threads, other_cpu };
            println!(
                "bench: round {round} {target:<7} {:>9.0} req/s  p50 {:.3} ms  p99 {:.3} ms  non-200 {}  errors {}  other processes {:.0}% of a core",
                run.result.rps(),
                run.result.latencies.percentile_ms(50.0),
                run.result.latencies.percentile_ms(99.0),
                run.result.non_200,
                run.result.io_errors,
                run.other_cpu / (args.warmup + args.duration) as f64 * 100.0
            );
            if let Some(error) = &run.result.first_error {
                println!("bench:   first error: {error}");
            }
            report.runs.push(run);
        }
    }
    drop(servers);
    Ok(report)
}

/// CPU seconds spent per thread name between two snapshots, largest first.
fn delta(before: &HashMap<String, f64>, after: &HashMap<String, f64>) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> =
        after.iter().map(|(name, t)| (name.clone(), t - before.get(name).copied().unwrap_or(0.0))).collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out
}

/// The bare axum 0.8 server: `GET /api/v1/tenant` returns fixed bytes, nothing else.
fn bare_server(body: Bytes, threads: usize) -> Result<LocalServer, String> {
    LocalServer::start(BARE_THREAD, threads, async move {
        Ok(axum::Router::new().route(
            "/api/v1/tenant",
            axum::routing::get(move || {
                let body = body.clone();
                async move { ([(axum::http::header::CONTENT_TYPE, "application/json")], body) }
            }),
        ))
    })
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

impl Report {
    fn mean_rps(&self, target: &str) -> f64 {
        let runs: Vec<f64> = self.runs.iter().filter(|r| r.target == target).map(|r| r.result.rps()).collect();
        if runs.is_empty() { 0.0 } else { runs.iter().sum::<f64>() / runs.len() as f64 }
    }

    fn merged(&self, target: &str) -> Latencies {
        let mut all = Latencies::default();
        for run in self.runs.iter().filter(|r| r.target == target) {
            all.extend(run.result.latencies.clone());
        }
        all
    }

    fn ratio(&self) -> f64 {
        let bare = self.mean_rps("bare");
        if bare > 0.0 { self.mean_rps("gateway") / bare } else { 0.0 }
    }

    /// (KiB per actor over the first activations, KiB per actor over the extra ones, overall).
    fn memory_per_actor(&self) -> (Option<f64>, Option<f64>, Option<f64>) {
        let per = |a: &(String, u64, u64), b: &(String, u64, u64)| {
            (b.2 > a.2).then(|| (b.1 as f64 - a.1 as f64) / (b.2 - a.2) as f64)
        };
        let m = &self.memory;
        let first = (m.len() >= 2).then(|| per(&m[0], &m[1])).flatten();
        let slope = (m.len() >= 3).then(|| per(&m[1], &m[2])).flatten();
        let overall = (m.len() >= 2).then(|| per(&m[0], &m[m.len() - 1])).flatten();
        (first, slope, overall)
    }

    /// Gateway RSS per registered tenant that has no actor, in bytes.
    fn bytes_per_idle_tenant(&self) -> Option<f64> {
        let (before, after) = self.registration_rss;
        (self.registered > 0).then(|| (after as f64 - before as f64) * 1024.0 / self.registered as f64)
    }

    /// Server CPU per request over all rounds of `target`, in microseconds.
    fn cpu_micros(&self, target: &str) -> f64 {
        let (cpu, ok) = self
            .runs
            .iter()
            .filter(|r| r.target == target)
            .fold((0.0, 0u64), |acc, r| (acc.0 + r.server_cpu, acc.1 + r.result.completed));
        cpu / ok.max(1) as f64 * 1e6
    }

    /// The headline memory figure: the larger of the slope over the extra activations and the
    /// average over all of them, so that memory the allocator reuses from earlier phases (the
    /// slope of a run with 100,000 active tenants can come out negative) never flatters it.
    fn memory_headline(&self) -> Option<f64> {
        let (first, slope, overall) = self.memory_per_actor();
        match (slope, overall) {
            (Some(slope), Some(overall)) => Some(slope.max(overall)),
            _ => first,
        }
    }

    fn print(&mut self, args: &Args) {
        let line = "-".repeat(100);
        println!();
        println!("{}", "=".repeat(100));
        println!("Connectors Gateway benchmark");
        println!("{}", "=".repeat(100));
        println!(
            "machine: {} cores | load generator: {} thread(s), raw HTTP/1.1 keep-alive, {} connections | bare axum server: {} worker threads",
            self.cores, self.client_threads, args.connections, self.bare_threads
        );
        println!(
            "NOTE: on this {}-core machine the load generator shares the CPU with the server under test, so absolute",
            self.cores
        );
        println!(
            "      req/s and latencies are understated; the gateway/bare RATIO is the meaningful figure. CPU time per"
        );
        println!(
            "      request (from /proc) is the steadier measure; \"other CPU\" is what other processes on the machine"
        );
        println!("      used during the run (noise: compare runs with little of it).");
        println!();
        println!(
            "Throughput: GET /api/v1/tenant, closed loop, {} connections, {} s warm-up + {} s measured per run",
            args.connections, args.warmup, args.duration
        );
        println!(
            "  gateway requests go round robin over {} active tenants (X-Tenant-ID + Bearer key each)",
            args.active
        );
        println!("{line}");
        println!(
            "  {:<6} {:<8} {:>9} {:>8} {:>8} {:>8} {:>7} {:>18} {:>18} {:>10}",
            "run",
            "target",
            "req/s",
            "p50 ms",
            "p99 ms",
            "non-200",
            "errors",
            "server CPU us/req",
            "client CPU us/req",
            "other CPU"
        );
        for run in &mut self.runs {
            let ok = run.result.completed.max(1) as f64;
            let other = format!("{:.0}%", run.other_cpu / (args.warmup + args.duration) as f64 * 100.0);
            println!(
                "  {:<6} {:<8} {:>9.0} {:>8.3} {:>8.3} {:>8} {:>7} {:>18.1} {:>18.1} {:>10}",
                run.round,
                run.target,
                run.result.rps(),
                run.result.latencies.percentile_ms(50.0),
                run.result.latencies.percentile_ms(99.0),
                run.result.non_200,
                run.result.io_errors,
                run.server_cpu / ok * 1e6,
                run.client_cpu / ok * 1e6,
                other,
            );
        }
        for target in TARGETS {
            let mut all = self.merged(target);
            let runs = self.runs.iter().filter(|r| r.target == target);
            let (non_200, errors): (u64, u64) =
                runs.fold((0, 0), |acc, r| (acc.0 + r.result.non_200, acc.1 + r.result.io_errors));
            let (server, client, ok) =
                self.runs.iter().filter(|r| r.target == target).fold((0.0, 0.0, 0u64), |acc, r| {
                    (acc.0 + r.server_cpu, acc.1 + r.client_cpu, acc.2 + r.result.completed)
                });
            println!(
                "  {:<6} {:<8} {:>9.0} {:>8.3} {:>8.3} {:>8} {:>7} {:>18.1} {:>18.1}",
                "mean",
                target,
                self.mean_rps(target),
                all.percentile_ms(50.0),
                all.percentile_ms(99.0),
                non_200,
                errors,
                server / ok.max(1) as f64 * 1e6,
                client / ok.max(1) as f64 * 1e6,
            );
        }
        println!("{line}");
        let ratio = self.ratio();
        println!(
            "  throughput ratio gateway/bare: {:.3}   (goal >= {THROUGHPUT_GOAL:.2})  {}",
            ratio,
            verdict(ratio >= THROUGHPUT_GOAL)
        );
        if let Some(run) = self.runs.iter().rev().find(|r| r.target == "gateway") {
            let top: Vec<String> = run
                .threads
                .iter()
                .filter(|(_, cpu)| *cpu > 0.0)
                .take(5)
                .map(|(name, cpu)| format!("{name} {:.0}%", cpu / (args.warmup + args.duration) as f64 * 100.0))
                .collect();
            println!("  gateway CPU by thread (last gateway run, % of one core): {}", top.join(", "));
        }
        println!();
        println!("Activation: one request at a time on one keep-alive connection");
        println!("{line}");
        println!("  {:<40} {:>8} {:>9} {:>9} {:>9}", "", "count", "p50 ms", "p99 ms", "mean ms");
        let rows: [(&str, &mut Latencies); 3] = [
            ("cold: first request (activates actor)", &mut self.cold),
            ("warm: second request, same tenants", &mut self.warm),
            ("cold: next tenants (memory slope)", &mut self.extra_cold),
        ];
        for (label, lat) in rows {
            if lat.len() > 0 {
                println!(
                    "  {:<40} {:>8} {:>9.3} {:>9.3} {:>9.3}",
                    label,
                    lat.len(),
                    lat.percentile_ms(50.0),
                    lat.percentile_ms(99.0),
                    lat.mean_ms()
                );
            }
        }
        println!("{line}");
        println!();
        println!("Memory: gateway RSS (/proc/PID/status VmRSS) vs connectors_tenant_actors_active");
        println!("{line}");
        for (label, rss, active) in &self.memory {
            println!(
                "  {:<40} RSS {:>9} KiB ({:>7.1} MiB)   active actors {:>6}",
                label,
                rss,
                *rss as f64 / 1024.0,
                active
            );
        }
        let (first, slope, overall) = self.memory_per_actor();
        let show = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.2} KiB"));
        println!(
            "  per active tenant actor: {} over the extra activations (slope), {} over the first {}, {} overall",
            show(slope),
            show(first),
            args.active,
            show(overall)
        );
        if let Some(kib) = self.memory_headline() {
            println!(
                "  headline (the larger of slope and overall): {kib:.2} KiB per active tenant actor   (goal <= {MEMORY_GOAL_KIB:.0} KiB)  {}",
                verdict(kib <= MEMORY_GOAL_KIB)
            );
        }
        if let Some(bytes) = self.bytes_per_idle_tenant() {
            let (before, after) = self.registration_rss;
            println!(
                "  per registered tenant without an actor: RSS {before} -> {after} KiB over {} tenants = {bytes:.0} bytes   (goal <= {IDLE_TENANT_GOAL_BYTES:.0} bytes)  {}",
                self.registered,
                verdict(bytes <= IDLE_TENANT_GOAL_BYTES)
            );
        }
        if let Some(kib) = self.floor_actor_kib {
            println!(
                "  the design's floor: an empty ractor actor per tenant, {} spawned in a process of their own: {kib:.2} KiB each",
                self.floor_actors
            );
        }
        println!("  gateway CPU while idle with these actors active: {:.1}% of one core", self.idle_cpu_percent);
        println!("{line}");
        println!();
        let mut reg = self.register_latency.clone();
        println!(
            "Registration: {} tenants in {:.2} s = {:.0} tenants/s ({} concurrent), p50 {:.3} ms, p99 {:.3} ms",
            self.registered,
            self.register_seconds,
            self.registered as f64 / self.register_seconds,
            args.register_concurrency,
            reg.percentile_ms(50.0),
            reg.percentile_ms(99.0)
        );
        println!("Tenant body served by every target: {} bytes", self.body_bytes);
        println!();
        self.print_goals();
        println!("Gateway shutdown: {}", self.shutdown);
        println!("Benchmark wall time: {:.1} s", self.total_seconds);
        println!("{}", "=".repeat(100));
    }

    /// The single-node rows of the hot path's goals (`bench cluster` and `bench tools` print the
    /// others).
    fn print_goals(&self) {
        let over_bare = self.cpu_micros("gateway") - self.cpu_micros("bare");
        let show = |value: Option<f64>, unit: &str| value.map_or("n/a".to_string(), |v| format!("{v:.2} {unit}"));
        println!("Goals of the hot path (single node; see also `bench cluster` and `bench tools`)");
        println!("{}", "-".repeat(100));
        println!(
            "  gateway server CPU per request minus the bare handler's: {:.1} - {:.1} = {over_bare:.1} us   (goal <= {CPU_OVER_BARE_GOAL_MICROS:.0} us)  {}",
            self.cpu_micros("gateway"),
            self.cpu_micros("bare"),
            verdict(over_bare <= CPU_OVER_BARE_GOAL_MICROS)
        );
        let floor = self.cpu_micros("audit") - self.cpu_micros("bare");
        println!(
            "  the design's floor, in-process, same run: bare + asking the tenant's actor {:.1} us (+{:.1}); + queueing the audit event to the recorder and redb {:.1} us (+{floor:.1})",
            self.cpu_micros("actor"),
            self.cpu_micros("actor") - self.cpu_micros("bare"),
            self.cpu_micros("audit"),
        );
        println!(
            "  the gateway over that floor (what its edge adds): {:.1} us; the goal is {} this design's floor",
            self.cpu_micros("gateway") - self.cpu_micros("audit"),
            if floor <= CPU_OVER_BARE_GOAL_MICROS { "above" } else { "below" }
        );
        let kib = self.memory_headline();
        println!(
            "  memory per active tenant actor: {}   (goal <= {MEMORY_GOAL_KIB:.0} KiB)  {}",
            show(kib, "KiB"),
            verdict(kib.is_some_and(|kib| kib <= MEMORY_GOAL_KIB))
        );
        let room = match self.floor_actor_kib {
            Some(floor) if floor <= MEMORY_GOAL_KIB => {
                format!("so the tenant's own state has {:.2} KiB of the goal", MEMORY_GOAL_KIB - floor)
            }
            Some(floor) => {
                format!("{:.2} KiB above the goal before any state of the tenant's", floor - MEMORY_GOAL_KIB)
            }
            None => "not measured".to_string(),
        };
        println!("  the design's floor: an empty actor per tenant {}, {room}", show(self.floor_actor_kib, "KiB"));
        let bytes = self.bytes_per_idle_tenant();
        println!(
            "  memory per registered, idle tenant ({} registered): {}   (goal <= {IDLE_TENANT_GOAL_BYTES:.0} bytes)  {}",
            self.registered,
            show(bytes, "bytes"),
            verdict(bytes.is_some_and(|bytes| bytes <= IDLE_TENANT_GOAL_BYTES))
        );
        println!("{}", "-".repeat(100));
    }

    fn json_value(&mut self, args: &Args) -> Value {
        let mut runs = Vec::new();
        for run in &mut self.runs {
            let ok = run.result.completed.max(1) as f64;
            runs.push(json!({
                "round": run.round,
                "target": run.target,
                "requestsPerSecond": run.result.rps(),
                "ok": run.result.ok,
                "non200": run.result.non_200,
                "connectionErrors": run.result.io_errors,
                "p50Ms": run.result.latencies.percentile_ms(50.0),
                "p99Ms": run.result.latencies.percentile_ms(99.0),
                "serverCpuMicrosPerRequest": run.server_cpu / ok * 1e6,
                "clientCpuMicrosPerRequest": run.client_cpu / ok * 1e6,
                "otherProcessesCpuSeconds": run.other_cpu,
            }));
        }
        let summary = |report: &Report, target: &str| {
            let mut all = report.merged(target);
            json!({
                "meanRequestsPerSecond": report.mean_rps(target),
                "p50Ms": all.percentile_ms(50.0),
                "p99Ms": all.percentile_ms(99.0),
            })
        };
        let latency = |lat: &mut Latencies| json!({"count": lat.len(), "p50Ms": lat.percentile_ms(50.0), "p99Ms": lat.percentile_ms(99.0), "meanMs": lat.mean_ms()});
        let (first, slope, overall) = self.memory_per_actor();
        let mut reg = self.register_latency.clone();
        json!({
            "machine": {"cores": self.cores, "clientThreads": self.client_threads, "bareServerThreads": self.bare_threads},
            "settings": {
                "connections": args.connections, "durationSeconds": args.duration, "warmupSeconds": args.warmup,
                "rounds": args.rounds, "tenants": args.tenants, "active": args.active, "extraActive": args.extra_active,
            },
            "throughput": {
                "runs": runs,
                "bare": summary(self, "bare"),
                "floorActor": summary(self, "actor"),
                "floorAudit": summary(self, "audit"),
                "gateway": summary(self, "gateway"),
                "ratioGatewayOverBare": self.ratio(),
                "goalRatio": THROUGHPUT_GOAL,
                "serverCpuMicrosOverBare": self.cpu_micros("gateway") - self.cpu_micros("bare"),
                "goalCpuMicrosOverBare": CPU_OVER_BARE_GOAL_MICROS,
                "floorActorCpuMicrosOverBare": self.cpu_micros("actor") - self.cpu_micros("bare"),
                "floorAuditCpuMicrosOverBare": self.cpu_micros("audit") - self.cpu_micros("bare"),
            },
            "activation": {
                "cold": latency(&mut self.cold),
                "warm": latency(&mut self.warm),
                "extraCold": latency(&mut self.extra_cold),
            },
            "memory": {
                "samples": self.memory.iter().map(|(label, rss, active)| json!({"label": label, "rssKiB": rss, "activeActors": active})).collect::<Vec<_>>(),
                "kibPerActorFirst": first,
                "kibPerActorSlope": slope,
                "kibPerActorOverall": overall,
                "kibPerActorHeadline": self.memory_headline(),
                "goalKiB": MEMORY_GOAL_KIB,
                "floorKibPerEmptyActor": self.floor_actor_kib,
                "floorEmptyActors": self.floor_actors,
                "idleGatewayCpuPercent": self.idle_cpu_percent,
                "registrationRssKiB": [self.registration_rss.0, self.registration_rss.1],
                "bytesPerIdleTenant": self.bytes_per_idle_tenant(),
                "goalBytesPerIdleTenant": IDLE_TENANT_GOAL_BYTES,
            },
            "registration": {
                "tenants": self.registered,
                "seconds": self.register_seconds,
                "tenantsPerSecond": self.registered as f64 / self.register_seconds,
                "concurrency": args.register_concurrency,
                "p50Ms": reg.percentile_ms(50.0),
                "p99Ms": reg.percentile_ms(99.0),
            },
            "bodyBytes": self.body_bytes,
            "shutdown": self.shutdown,
            "wallSeconds": self.total_seconds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(samples: [(u64, u64); 3]) -> Report {
        let memory = samples.iter().map(|&(rss, active)| (String::new(), rss, active)).collect();
        Report { memory, ..Report::default() }
    }

    #[test]
    fn memory_reused_from_earlier_phases_never_flatters_the_headline() {
        // 1,000 actors took 20,000 KiB; 5,000 more fitted in memory already held.
        let reused = report([(100_000, 1), (120_000, 1_001), (119_000, 6_001)]);
        assert_eq!(reused.memory_per_actor().1, Some(-0.2));
        assert_eq!(reused.memory_headline(), Some(19_000.0 / 6_000.0));
        // Otherwise the slope over the extra activations, when it is the larger.
        let steady = report([(100_000, 1), (110_000, 1_001), (170_000, 6_001)]);
        assert_eq!(steady.memory_headline(), Some(12.0));
    }
}
