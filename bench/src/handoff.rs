//! `bench handoff`: shards changing hands under load (graceful drain, held requests, a rolling
//! restart), side by side in one run.
//!
//! ```text
//! cargo build --release -p connectors -p bench
//! cargo run --release -p bench -- handoff
//! cargo run --release -p bench -- handoff --tenants 2000 --duration 5 --json handoff.json --logs logs/
//! ```
//!
//! One run (under a minute with the defaults on a 2-core machine):
//!
//! 1. starts a throwaway `redis-server` on a free 127.0.0.1 port (as `bench cluster` does) and a
//!    2-node cluster on it, `ho-a` and `ho-b`, with fast cluster timing (`heartbeatMillis: 200`,
//!    `failureTimeoutMillis: 2000`, `drainDeadlineSeconds: 30`) and the benchmark's high limits;
//!    waits until both are ready and own the shards `ShardMap` gives them;
//! 2. registers `--tenants` tenants through both nodes (concurrently), and activates every one
//!    with one request to its owner (`--activate-concurrency` connections per node); the
//!    `connectors_tenant_actors_active` gauge of each node must equal the tenants it owns;
//! 3. **hand-off**: runs a closed-loop load on `ho-a` (`--connections`, `GET /api/v1/tenant` round
//!    robin over every tenant, about half of them `ho-b`'s), `--before-seconds` of it steady, then
//!    sends SIGTERM to `ho-b` and measures from the signal: when `ho-a`'s
//!    `GET /api/v1/admin/cluster` shows 1024 shards owned and served and a view without `ho-b`
//!    ("A serves every shard"), and when `ho-b` exits (it must be 0: "drain complete"); the
//!    `elapsed_ms` of `ho-b`'s log line `every shard handed off`, and `ho-a`'s active actors when
//!    it first serves every shard; the load runs on for `--after-seconds`;
//! 4. **held requests**: latency p50/p99/max of the requests of that load before the signal and
//!    during the hand-off (the requests in flight between the signal and the end of the hand-off;
//!    `ho-b`'s former tenants apart from `ho-a`'s own), answers other than 200, when the requests
//!    slower than the goal were sent and answered, and `ho-a`'s `connectors_requests_held_total`
//!    and `connectors_request_hold_longest_seconds`; then stops `ho-a`;
//! 5. **rolling restart**: a 3-node cluster (`ho-r1`..`ho-r3`, same timing) with
//!    `--rolling-tenants` tenants, all activated; closed-loop load through a load balancer (each
//!    request to the next node in rotation); `--duration` seconds steady, then each node in turn:
//!    out of rotation (its requests in flight answered), SIGTERM, exit (must be 0), started again
//!    on the same ports and data dir, `/readyz` 200, back in rotation, and the cluster converged
//!    again (every node up and owning its shards) before the next; throughput over the restarts /
//!    steady throughput, and the answers other than 200 and 429 (the product promises none);
//! 6. prints the table and the three verdicts against the goals (hand-off < 2 s, p99 of the held
//!    requests < 50 ms, rolling / steady throughput >= 0.8), writes JSON with `--json PATH`, stops
//!    everything (each gateway must exit 0), copies the gateways' logs with `--logs DIR`, and
//!    removes the temporary directories.
//!
//! The warnings and errors the gateways logged are listed at the end (each distinct message once,
//! with its count). On a 2-core machine every gateway, Redis and the load generator share the
//! cores: absolute throughput is understated, and whatever else runs on the machine shows in
//! the "other" column (CPU of the other processes during each window, in % of one core).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use connectors_cluster::shard_map::SHARDS;
use serde_json::{Value, json};

use crate::gateway::{self, Gateway};
use crate::group::{Group, OwnershipRow, Site};
use crate::load::{self, Rotation, Sample, Target};
use crate::redis_server::RedisServer;
use crate::stats::Latencies;
use crate::tenants::{self, active_actors, concurrent, get_json, metric, metrics_text, register, tenant_id};
use crate::verdict;

/// Hand-off of a node's tenants (signal to done) should take less than this.
const HANDOFF_GOAL: Duration = Duration::from_secs(2);
/// p99 latency of the requests held during the hand-off should be below this (ms).
const HOLD_P99_GOAL_MS: f64 = 50.0;
/// Throughput during a rolling restart over steady throughput should be at least this.
const ROLLING_RATIO_GOAL: f64 = 0.8;
/// The cluster timing of every node of this benchmark (appended to the bench config).
const CLUSTER_CONFIG: &str =
    "cluster:\n  heartbeatMillis: 200\n  failureTimeoutMillis: 2000\n  drainDeadlineSeconds: 30\n";
const DRAIN_DEADLINE: Duration = Duration::from_secs(30);
/// How long past the drain deadline a SIGTERMed node may take to exit before it counts as hung.
const EXIT_TIMEOUT: Duration = Duration::from_secs(45);
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Load before the steady window of the hand-off that is not measured.
const LOAD_WARMUP: Duration = Duration::from_millis(500);

#[derive(Debug, clap::Args)]
pub(crate) struct HandoffArgs {
    /// Tenants registered and activated in the 2-node cluster (about half on the node drained).
    #[arg(long, default_value_t = 10_000)]
    tenants: usize,
    /// Closed-loop connections: of the load on the remaining node during the hand-off, and of the
    /// load over the three nodes of the rolling restart.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Measured seconds of load on the remaining node before the SIGTERM (after 0.5 s warm-up).
    #[arg(long, default_value_t = 3)]
    before_seconds: u64,
    /// Seconds of load on the remaining node after the hand-off completed.
    #[arg(long, default_value_t = 2)]
    after_seconds: u64,
    /// Tenants registered and activated in the 3-node cluster of the rolling restart.
    #[arg(long, default_value_t = 10_000)]
    rolling_tenants: usize,
    /// Measured seconds of steady throughput before the rolling restart.
    #[arg(long, default_value_t = 8)]
    duration: u64,
    /// Warm-up seconds of the rolling restart's load (not measured).
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Concurrent admin requests while registering (dealt over the cluster's nodes).
    #[arg(long, default_value_t = 16)]
    register_concurrency: usize,
    /// Connections per node activating the tenants (one request each to its owner).
    #[arg(long, default_value_t = 16)]
    activate_concurrency: usize,
    /// Threads of the load generator.
    #[arg(long, default_value_t = 2)]
    client_threads: usize,
    /// The release `connectors` binary (default: found in the target directory).
    #[arg(long)]
    gateway_bin: Option<PathBuf>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also copy every gateway's log (its stdout and stderr, over all its starts) into this
    /// directory, as `<node>.log`.
    #[arg(long)]
    logs: Option<PathBuf>,
}

/// Requests of one window of a recorded load.
#[derive(Default)]
struct Window {
    seconds: f64,
    /// Answered 200.
    ok: u64,
    /// Every answer other than 200, by status (0: a connection error, no answer).
    others: BTreeMap<u16, u64>,
    /// Latencies of every request answered (whatever the status).
    latencies: Latencies,
    /// CPU the rest of the machine used meanwhile (other processes: noise), % of one core.
    other_cpu: f64,
}

/// The machine's busy CPU time and this benchmark's (gateways and Redis included) at one moment.
#[derive(Clone, Copy)]
struct CpuMark {
    at: Instant,
    busy: f64,
    ours: f64,
}

impl CpuMark {
    fn now() -> Self {
        CpuMark { at: Instant::now(), busy: gateway::system_busy(), ours: gateway::family_cpu() }
    }

    /// The CPU other processes used from `self` to `later`, in % of one core.
    fn others_until(self, later: CpuMark) -> f64 {
        let seconds = (later.at - self.at).as_secs_f64();
        let others = (later.busy - self.busy) - (later.ours - self.ours);
        if seconds > 0.0 { others.max(0.0) / seconds * 100.0 } else { 0.0 }
    }
}

impl Window {
    /// The samples `keep` selects, over a window of `seconds`.
    fn of(samples: &[Sample], seconds: f64, keep: impl Fn(&Sample) -> bool) -> Self {
        let mut window = Window { seconds, ..Window::default() };
        for sample in samples.iter().filter(|s| keep(s)) {
            if sample.status == 200 {
                window.ok += 1;
            } else {
                *window.others.entry(sample.status).or_default() += 1;
            }
            if sample.status != 0 {
                window.latencies.record(sample.latency());
            }
        }
        window
    }

    fn with_other_cpu(mut self, from: CpuMark, to: CpuMark) -> Self {
        self.other_cpu = from.others_until(to);
        self
    }

    fn requests(&self) -> u64 {
        self.ok + self.others.values().sum::<u64>()
    }

    fn rps(&self) -> f64 {
        if self.seconds > 0.0 { self.ok as f64 / self.seconds } else { 0.0 }
    }

    /// Answers that are neither 200 nor in `allowed`, connection errors apart.
    fn unexpected(&self, allowed: &[u16]) -> u64 {
        self.others.iter().filter(|(s, _)| **s != 0 && !allowed.contains(s)).map(|(_, n)| n).sum()
    }

    fn errors(&self) -> u64 {
        self.others.get(&0).copied().unwrap_or(0)
    }

    fn describe_others(&self) -> String {
        if self.others.is_empty() {
            return "none".into();
        }
        let parts: Vec<String> = self
            .others
            .iter()
            .map(|(s, n)| if *s == 0 { format!("{n} connection errors") } else { format!("{n} x {s}") })
            .collect();
        parts.join(", ")
    }

    fn json(&mut self) -> Value {
        json!({
            "seconds": self.seconds,
            "requests": self.requests(),
            "ok": self.ok,
            "requestsPerSecond": self.rps(),
            "p50Ms": self.latencies.percentile_ms(50.0),
            "p99Ms": self.latencies.percentile_ms(99.0),
            "maxMs": self.latencies.percentile_ms(100.0),
            "non200": self.others.iter().filter(|(s, _)| **s != 0).map(|(s, n)| (s.to_string(), *n)).collect::<BTreeMap<_, _>>(),
            "connectionErrors": self.errors(),
            "otherProcessesCpuPercentOfACore": self.other_cpu,
        })
    }
}

/// A node's `connectors_requests_held_total` and `connectors_request_hold_longest_seconds`.
#[derive(Default, Clone, Copy)]
struct Holds {
    held: f64,
    flushed: f64,
    expired: f64,
    longest_seconds: f64,
}

impl Holds {
    async fn of(node: &Gateway) -> Result<Self, String> {
        let text = metrics_text(node.addr).await?;
        let count = |outcome: &str| metric(&text, &format!("connectors_requests_held_total{{outcome=\"{outcome}\"}}"));
        Ok(Holds {
            held: count("held").ok_or("no connectors_requests_held_total in /metrics")?,
            flushed: count("flushed").unwrap_or(0.0),
            expired: count("expired").unwrap_or(0.0),
            longest_seconds: metric(&text, "connectors_request_hold_longest_seconds").unwrap_or(0.0),
        })
    }

    fn since(self, before: Holds) -> Holds {
        Holds {
            held: self.held - before.held,
            flushed: self.flushed - before.flushed,
            expired: self.expired - before.expired,
            longest_seconds: self.longest_seconds,
        }
    }

    fn describe(&self) -> String {
        format!(
            "held {:.0}, flushed {:.0}, expired {:.0}; longest hold {:.1} ms",
            self.held,
            self.flushed,
            self.expired,
            self.longest_seconds * 1e3
        )
    }

    fn json(&self) -> Value {
        json!({"held": self.held, "flushed": self.flushed, "expired": self.expired, "longestHoldSeconds": self.longest_seconds})
    }
}

/// Part 1 and 2: one node's tenants handed to the other under load.
#[derive(Default)]
struct Handoff {
    ownership: Vec<OwnershipRow>,
    register_seconds: f64,
    activate_seconds: f64,
    activation: Latencies,
    /// (node, tenants it owns, active actors on it after the activation).
    actors: Vec<(String, usize, u64)>,
    /// From the signal: ho-a's view shows ho-b draining; ho-a owns every shard; ho-a owns and
    /// serves every shard with ho-b out of its view.
    b_draining_seen: Option<Duration>,
    a_owns_all: Option<Duration>,
    a_serves_all_shards: Option<Duration>,
    a_serves_all: Option<Duration>,
    /// ho-b's exit: (status, success, time from the signal).
    b_exit: Option<(String, bool, Duration)>,
    /// `elapsed_ms` of ho-b's log line "every shard handed off".
    b_logged_ms: Option<u64>,
    /// ho-a's active actors when it first serves every shard, and once the load is over.
    a_actors_at_serve: Option<u64>,
    a_actors_after: u64,
    steady: Window,
    during: Window,
    during_b: Window,
    during_a: Window,
    after: Window,
    holds: Holds,
    /// ho-b's former tenants' requests during the hand-off slower than the goal: how many, and
    /// the first and last sent and answered, in ms from the signal.
    slow: Option<(usize, [f64; 4])>,
}

impl Handoff {
    /// The hand-off is over once ho-a serves every shard and ho-b has exited.
    fn done(&self) -> Option<Duration> {
        Some(self.a_serves_all?.max(self.b_exit.as_ref()?.2))
    }
}

/// One node's turn in the rolling restart.
struct Step {
    node: String,
    /// Taking it out of rotation (its requests in flight answered).
    out_of_rotation: Duration,
    /// SIGTERM to exit: (status, success, time).
    exit: (String, bool, Duration),
    /// From the new start: `/readyz` 200, and the cluster converged again.
    ready: Duration,
    converged: Duration,
}

/// Part 3.
#[derive(Default)]
struct Rolling {
    ownership: Vec<OwnershipRow>,
    register_seconds: f64,
    steps: Vec<Step>,
    steady: Window,
    rolling: Window,
    /// Each node's held-request counters since its restart.
    holds: Vec<(String, Holds)>,
    /// Each node's answers other than 200 over the whole load (steady and rolling).
    others_by_node: Vec<(String, String)>,
}

#[derive(Default)]
struct Report {
    cores: usize,
    handoff: Handoff,
    rolling: Rolling,
    /// Warnings and errors the gateways logged: (node, line).
    log_notes: Vec<(String, String)>,
    shutdown: Vec<String>,
    total_seconds: f64,
}

pub(crate) fn run(args: &HandoffArgs) -> Result<bool, String> {
    if args.connections == 0 || args.tenants < 10 || args.rolling_tenants < 10 {
        return Err("need --connections > 0, --tenants >= 10 and --rolling-tenants >= 10".into());
    }
    let binary = gateway::locate_binary(args.gateway_bin.as_deref())?;
    if let Some(warning) = gateway::stale_warning(&binary) {
        eprintln!("{warning}");
    }
    let total_started = Instant::now();
    println!("bench: gateway binary {}", binary.display());
    let redis = std::panic::catch_unwind(RedisServer::start).map_err(|_| "redis-server did not start".to_string())?;
    println!("bench: redis-server on {}", redis.url());
    let runtime = load::client_runtime(args.client_threads)?;
    let site = Site::new(binary, redis.url());
    let mut report = Report::default();
    let mut clean = true;

    // Parts 1 and 2, then part 3: one cluster at a time, so that they do not share the cores.
    let parts: [(&'static str, &'static str, &[&str]); 2] = [
        ("2-node cluster", "benchho2:", &["ho-a", "ho-b"]),
        ("3-node cluster", "benchho3:", &["ho-r1", "ho-r2", "ho-r3"]),
    ];
    for (part, (label, prefix, names)) in parts.into_iter().enumerate() {
        let mut group = Group::spawn(&site, label, prefix, names, true, CLUSTER_CONFIG)?;
        let outcome = runtime.block_on(async {
            match part {
                0 => handoff(args, &mut group, &mut report.handoff).await,
                _ => rolling(args, &mut group, &mut report.rolling).await,
            }
        });
        let (shutdown, stopped) = gateway::stop_all(&mut group.nodes, EXIT_TIMEOUT);
        let logs: Vec<String> =
            group.nodes.iter().map(|n| format!("--- last log lines of {} ---\n{}", n.name, n.log_tail())).collect();
        for node in &group.nodes {
            let text = node.log_text();
            report.log_notes.extend(log_notes(&text).into_iter().map(|line| (node.name.clone(), line)));
            if let Some(dir) = &args.logs {
                node.save_log(dir)?;
            }
        }
        if let Err(message) = outcome {
            return Err(format!("{label}: {message}\n{}\n{}", logs.join("\n"), shutdown.join("\n")));
        }
        clean &= stopped;
        report.shutdown.extend(shutdown.into_iter().map(|line| format!("{label}: {line}")));
    }
    drop(redis);
    drop(runtime);

    clean &= report.handoff.b_exit.as_ref().is_some_and(|e| e.1) && report.rolling.steps.iter().all(|s| s.exit.1);
    report.cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    report.total_seconds = total_started.elapsed().as_secs_f64();
    report.print(args);
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report.json_value(args)).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n").map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("results written to {}", path.display());
    }
    if !clean {
        eprintln!("bench: a gateway did not exit with status 0 after SIGTERM (see the table and the log lines above)");
    }
    Ok(clean)
}

/// Registers `count` tenants through every node of the group and activates each with one
/// request to its owner; returns each tenant's owner (node index) and the activation latencies.
async fn populate(
    args: &HandoffArgs,
    group: &mut Group,
    count: usize,
) -> Result<(Vec<usize>, f64, f64, Latencies), String> {
    let addrs: Vec<_> = group.nodes.iter().map(|n| n.addr).collect();
    println!("bench: {}: registering {count} tenants through {} nodes...", group.label, addrs.len());
    let started = Instant::now();
    let (keys, _) = register(&addrs, &group.nodes[0].admin_key, count, args.register_concurrency).await?;
    let register_seconds = started.elapsed().as_secs_f64();
    println!("bench: registered {count} tenants in {register_seconds:.2} s ({:.0}/s)", count as f64 / register_seconds);
    group.keys = keys;
    let owners = group.owners(count)?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (k, node) in group.nodes.iter().enumerate() {
        let mine: Vec<Vec<u8>> = (0..count)
            .filter(|&i| owners[i] == k)
            .map(|i| tenants::tenant_request(node.addr, &tenant_id(i), &group.keys[i]))
            .collect();
        let (addr, concurrency) = (node.addr, args.activate_concurrency);
        tasks.push(tokio::spawn(async move { concurrent(addr, &mine, concurrency).await }));
    }
    let mut activation = Latencies::default();
    for task in tasks {
        activation.extend(task.await.map_err(|e| format!("activation task: {e}"))??);
    }
    let activate_seconds = started.elapsed().as_secs_f64();
    println!(
        "bench: activated {count} tenants (one request each to its owner) in {activate_seconds:.2} s ({:.0}/s)",
        count as f64 / activate_seconds
    );
    Ok((owners, register_seconds, activate_seconds, activation))
}

/// `GET /api/v1/tenant` for each of the first `count` tenants, addressed to `node`.
fn requests_to(group: &Group, node: &Gateway, count: usize) -> Target {
    let list = (0..count).map(|i| tenants::tenant_request(node.addr, &tenant_id(i), &group.keys[i]));
    Target { addr: node.addr, requests: Arc::new(list.collect()) }
}

/// Parts 1 and 2: SIGTERM to `ho-b` under load on `ho-a`.
async fn handoff(args: &HandoffArgs, group: &mut Group, report: &mut Handoff) -> Result<(), String> {
    for node in &mut group.nodes {
        node.wait_ready(START_TIMEOUT).await?;
    }
    report.ownership = group.converge(START_TIMEOUT).await?;
    let (owners, register_seconds, activate_seconds, activation) = populate(args, group, args.tenants).await?;
    (report.register_seconds, report.activate_seconds, report.activation) =
        (register_seconds, activate_seconds, activation);
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (k, node) in group.nodes.iter().enumerate() {
        let owned = owners.iter().filter(|&&o| o == k).count();
        report.actors.push((node.name.clone(), owned, active_actors(node.addr).await?));
    }
    println!(
        "bench: active tenant actors: {}",
        report
            .actors
            .iter()
            .map(|(n, owned, seen)| format!("{n} {seen} (owns {owned})"))
            .collect::<Vec<_>>()
            .join(", ")
    );

    let (a, b) = (&group.nodes[0], &group.nodes[1]);
    let (a_addr, a_key, b_name) = (a.addr, a.admin_key.clone(), b.name.clone());
    let holds_before = Holds::of(a).await?;
    let rotation = Rotation::new(vec![requests_to(group, a, args.tenants)]);
    println!(
        "bench: load on {} ({} connections, every tenant), SIGTERM to {b_name} in {:.1} s...",
        a.name,
        args.connections,
        (LOAD_WARMUP + Duration::from_secs(args.before_seconds)).as_secs_f64()
    );
    let recording = load::record(&rotation, args.connections);
    let from = recording.started + LOAD_WARMUP;
    tokio::time::sleep(LOAD_WARMUP).await;
    let from_cpu = CpuMark::now();
    tokio::time::sleep(Duration::from_secs(args.before_seconds)).await;

    let b = &mut group.nodes[1];
    let signal_cpu = CpuMark::now();
    let signal = b.terminate()?;
    let give_up = DRAIN_DEADLINE + Duration::from_secs(10);
    while (report.a_serves_all.is_none() || report.b_exit.is_none()) && signal.elapsed() < give_up {
        if report.b_exit.is_none()
            && let Some(Ok((status, took))) = b.exit_after(signal, EXIT_TIMEOUT)
        {
            report.b_exit = Some((status.to_string(), status.success(), took));
        }
        if report.a_serves_all.is_none() {
            let (status, view) = get_json(a_addr, "/api/v1/admin/cluster", Some(&a_key)).await?;
            let seen = signal.elapsed();
            let members = view["nodes"].as_array().cloned().unwrap_or_default();
            let b_member = members.iter().find(|m| m["id"] == b_name.as_str());
            if report.b_draining_seen.is_none() && b_member.is_none_or(|m| m["status"] != "up") {
                report.b_draining_seen = Some(seen);
            }
            let (owned, served) = (view["shards"]["owned"].as_u64(), view["shards"]["served"].as_u64());
            if status == 200 && owned == Some(u64::from(SHARDS)) {
                report.a_owns_all.get_or_insert(seen);
                if served == Some(u64::from(SHARDS)) {
                    if report.a_serves_all_shards.is_none() {
                        report.a_serves_all_shards = Some(seen);
                        report.a_actors_at_serve = Some(active_actors(a_addr).await?);
                    }
                    if b_member.is_none() {
                        report.a_serves_all = Some(seen);
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let end_cpu = CpuMark::now();
    let end = signal + report.done().unwrap_or_else(|| signal.elapsed());
    let show = |d: Option<Duration>| d.map_or("never".to_string(), |d| format!("{} ms", d.as_millis()));
    println!(
        "bench: after SIGTERM: {} serves every shard at {}, {b_name} exited at {} ({})",
        group.nodes[0].name,
        show(report.a_serves_all),
        show(report.b_exit.as_ref().map(|e| e.2)),
        report.b_exit.as_ref().map_or("still running", |e| e.0.as_str())
    );
    tokio::time::sleep(Duration::from_secs(args.after_seconds)).await;
    let stopped_cpu = CpuMark::now();
    let stopped = stopped_cpu.at;
    let samples = recording.finish().await?;
    let a = &group.nodes[0];
    report.holds = Holds::of(a).await?.since(holds_before);
    report.a_actors_after = active_actors(a.addr).await?;
    report.b_logged_ms = handed_off_ms(&group.nodes[1].log_text());

    let secs = |from: Instant, to: Instant| to.saturating_duration_since(from).as_secs_f64();
    let former_b = |s: &Sample| owners[s.request] == 1;
    report.steady = Window::of(&samples, secs(from, signal), |s| s.sent >= from && s.done < signal)
        .with_other_cpu(from_cpu, signal_cpu);
    let during = |s: &Sample| s.done >= signal && s.sent < end;
    let window = |keep: &dyn Fn(&Sample) -> bool| {
        Window::of(&samples, secs(signal, end), keep).with_other_cpu(signal_cpu, end_cpu)
    };
    report.during = window(&during);
    report.during_b = window(&|s| during(s) && former_b(s));
    report.during_a = window(&|s| during(s) && !former_b(s));
    report.after = Window::of(&samples, secs(end, stopped), |s| s.sent >= end).with_other_cpu(end_cpu, stopped_cpu);
    let offset = |t: Instant| {
        if t >= signal { (t - signal).as_secs_f64() * 1e3 } else { -(signal - t).as_secs_f64() * 1e3 }
    };
    let goal = Duration::from_secs_f64(HOLD_P99_GOAL_MS / 1e3);
    let slow: Vec<&Sample> = samples.iter().filter(|s| during(s) && former_b(s) && s.latency() > goal).collect();
    report.slow = (!slow.is_empty()).then(|| {
        let sent: Vec<f64> = slow.iter().map(|s| offset(s.sent)).collect();
        let done: Vec<f64> = slow.iter().map(|s| offset(s.done)).collect();
        let (min, max) = (
            |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min),
            |v: &[f64]| v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        );
        (slow.len(), [min(&sent), max(&sent), min(&done), max(&done)])
    });
    Ok(())
}

/// The `elapsed_ms` of the log line "every shard handed off".
fn handed_off_ms(log: &str) -> Option<u64> {
    let line = log.lines().find(|l| l.contains("every shard handed off"))?;
    let value = &line[line.find("elapsed_ms=")? + "elapsed_ms=".len()..];
    value.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// The warnings and errors in a gateway's log, each distinct one once with its count (without
/// the timestamp and request span), in order of first appearance. Not the 503s of `/readyz`: the
/// benchmark polls it while a node starts, before it is ready.
fn log_notes(log: &str) -> Vec<String> {
    let mut notes: Vec<(String, usize)> = Vec::new();
    for line in
        log.lines().filter(|l| (l.contains(" WARN ") || l.contains(" ERROR ")) && !l.contains("path=\"/readyz\""))
    {
        // Drop the timestamp (the first word) and a request's span (its id, path and tenant),
        // which differ on every line.
        let text = line.split_once(' ').map_or(line, |(_, rest)| rest).trim_start();
        let text = match (text.find("request{"), text.find("}: ")) {
            (Some(open), Some(close)) if open < close => format!("{}{}", &text[..open], &text[close + 3..]),
            _ => text.to_string(),
        };
        match notes.iter_mut().find(|(seen, _)| *seen == text) {
            Some((_, count)) => *count += 1,
            None => notes.push((text, 1)),
        }
    }
    notes.into_iter().map(|(text, count)| if count > 1 { format!("{text}  (x{count})") } else { text }).collect()
}

/// Part 3: a rolling restart of a 3-node cluster under load through a load balancer.
async fn rolling(args: &HandoffArgs, group: &mut Group, report: &mut Rolling) -> Result<(), String> {
    for node in &mut group.nodes {
        node.wait_ready(START_TIMEOUT).await?;
    }
    report.ownership = group.converge(START_TIMEOUT).await?;
    let (_, register_seconds, _, _) = populate(args, group, args.rolling_tenants).await?;
    report.register_seconds = register_seconds;
    let targets: Vec<Target> = group.nodes.iter().map(|node| requests_to(group, node, args.rolling_tenants)).collect();
    let rotation = Rotation::new(targets);
    println!(
        "bench: load over the 3 nodes in rotation ({} connections): {} s warm-up, {} s steady, then the rolling restart...",
        args.connections, args.warmup, args.duration
    );
    let recording = load::record(&rotation, args.connections);
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    let steady_cpu = CpuMark::now();
    let steady_from = steady_cpu.at;
    tokio::time::sleep(Duration::from_secs(args.duration)).await;
    let rolling_cpu = CpuMark::now();
    let rolling_from = rolling_cpu.at;
    for slot in 0..group.nodes.len() {
        let node = &mut group.nodes[slot];
        let out = Instant::now();
        rotation.remove(slot, EXIT_TIMEOUT).await?;
        let out_of_rotation = out.elapsed();
        let signal = node.terminate()?;
        let (status, took) = node.exited(signal, EXIT_TIMEOUT).await?;
        node.restart()?;
        let started = Instant::now();
        node.wait_ready(START_TIMEOUT).await?;
        let ready = started.elapsed();
        rotation.add(slot);
        group.converge(START_TIMEOUT).await?;
        let step = Step {
            node: group.nodes[slot].name.clone(),
            out_of_rotation,
            exit: (status.to_string(), status.success(), took),
            ready,
            converged: started.elapsed(),
        };
        println!(
            "bench: {}: out of rotation in {} ms, SIGTERM -> {} after {} ms, started again: ready in {} ms, cluster converged in {} ms",
            step.node,
            step.out_of_rotation.as_millis(),
            step.exit.0,
            step.exit.2.as_millis(),
            step.ready.as_millis(),
            step.converged.as_millis()
        );
        report.steps.push(step);
    }
    let rolled_cpu = CpuMark::now();
    let rolling_to = rolled_cpu.at;
    let samples = recording.finish().await?;
    let secs = |from: Instant, to: Instant| (to - from).as_secs_f64();
    report.steady =
        Window::of(&samples, secs(steady_from, rolling_from), |s| s.done >= steady_from && s.done < rolling_from)
            .with_other_cpu(steady_cpu, rolling_cpu);
    report.rolling =
        Window::of(&samples, secs(rolling_from, rolling_to), |s| s.done >= rolling_from && s.done < rolling_to)
            .with_other_cpu(rolling_cpu, rolled_cpu);
    for (slot, node) in group.nodes.iter().enumerate() {
        report.holds.push((node.name.clone(), Holds::of(node).await?));
        let mine = Window::of(&samples, 0.0, |s| s.slot == slot && s.done >= steady_from && s.done < rolling_to);
        report.others_by_node.push((node.name.clone(), mine.describe_others()));
    }
    Ok(())
}

impl Report {
    fn ratio(&self) -> f64 {
        let steady = self.rolling.steady.rps();
        if steady > 0.0 { self.rolling.rolling.rps() / steady } else { 0.0 }
    }

    fn print(&mut self, args: &HandoffArgs) {
        let line = "-".repeat(110);
        let ms = |d: Option<Duration>| d.map_or("never".to_string(), |d| format!("{:.0} ms", d.as_secs_f64() * 1e3));
        println!();
        println!("{}", "=".repeat(110));
        println!("Connectors Gateway hand-off benchmark: graceful drain, held requests, rolling restart");
        println!("{}", "=".repeat(110));
        println!(
            "machine: {} cores | load generator: {} thread(s), raw HTTP/1.1 keep-alive | one redis-server on loopback",
            self.cores,
            args.client_threads.max(1)
        );
        println!(
            "cluster timing: heartbeatMillis 200, failureTimeoutMillis 2000, drainDeadlineSeconds 30, holdMillis default (5000)"
        );
        println!(
            "NOTE: the gateways, redis-server and the load generator share these {} cores: absolute req/s and latencies are understated.",
            self.cores
        );
        println!("      \"other\" is the CPU the rest of the machine used during a window (noise), in % of one core.");
        let h = &mut self.handoff;
        println!();
        println!("1. Hand-off of {} active tenants from one node (2-node cluster)", args.tenants);
        println!("{line}");
        for (_, node, owned, computed, epoch) in &h.ownership {
            println!("  {node:<8} owned {owned:>4} shards at start (ShardMap: {computed}), epoch {epoch}");
        }
        println!(
            "  registration: {} tenants in {:.2} s ({:.0}/s, {} concurrent, through both nodes)",
            args.tenants,
            h.register_seconds,
            args.tenants as f64 / h.register_seconds.max(1e-9),
            args.register_concurrency
        );
        println!(
            "  activation: one request per tenant to its owner, {} connections per node: {:.2} s, p50 {:.3} ms, p99 {:.3} ms",
            args.activate_concurrency,
            h.activate_seconds,
            h.activation.percentile_ms(50.0),
            h.activation.percentile_ms(99.0)
        );
        for (node, owned, seen) in &h.actors {
            println!(
                "  active tenant actors on {node}: {seen} (tenants it owns: {owned})  {}",
                if *seen == *owned as u64 { "ok" } else { "DIFFERS" }
            );
        }
        let b_name = h.actors.get(1).map_or("ho-b".to_string(), |a| a.0.clone());
        let b_share = h.actors.get(1).map_or(0, |a| a.1);
        println!("  SIGTERM to {b_name} ({b_share} active tenants), under load on ho-a; times from the signal:");
        println!("    ho-a's view shows {b_name} not up (draining or gone)          {:>10}", ms(h.b_draining_seen));
        println!("    ho-a owns all {SHARDS} shards                                   {:>10}", ms(h.a_owns_all));
        println!(
            "    ho-a owns and serves all {SHARDS} shards ({b_name} maybe still in its view) {:>6}",
            ms(h.a_serves_all_shards)
        );
        println!(
            "    A serves every shard (owned = served = {SHARDS}, view without {b_name}) {:>8}",
            ms(h.a_serves_all)
        );
        println!(
            "    {b_name} logged \"every shard handed off\" (its elapsed_ms)          {:>10}",
            h.b_logged_ms.map_or("not logged".into(), |v| format!("{v} ms"))
        );
        println!(
            "    drain complete ({b_name} exited: {})            {:>10}",
            h.b_exit.as_ref().map_or("not exited", |e| e.0.as_str()),
            ms(h.b_exit.as_ref().map(|e| e.2))
        );
        println!(
            "  active tenant actors on ho-a: {} when it first served every shard, {} after the load (of {} tenants)",
            h.a_actors_at_serve.map_or("?".into(), |n| n.to_string()),
            h.a_actors_after,
            args.tenants
        );
        println!();
        println!(
            "2. Requests during the hand-off: closed loop on ho-a, {} connections, GET /api/v1/tenant over all {} tenants",
            args.connections, args.tenants
        );
        println!("{line}");
        println!(
            "  {:<40} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8} {:>6}  answers other than 200",
            "window", "seconds", "requests", "req/s", "p50 ms", "p99 ms", "max ms", "other"
        );
        let rows: [(&str, &mut Window); 5] = [
            ("steady, before the signal", &mut h.steady),
            ("hand-off (signal to done), all", &mut h.during),
            ("  of which ho-b's former tenants", &mut h.during_b),
            ("  of which ho-a's own tenants", &mut h.during_a),
            ("after the hand-off", &mut h.after),
        ];
        for (label, w) in rows {
            println!(
                "  {:<40} {:>8.2} {:>8} {:>8.0} {:>8.3} {:>9.3} {:>8.3} {:>5.0}%  {}",
                label,
                w.seconds,
                w.requests(),
                w.rps(),
                w.latencies.percentile_ms(50.0),
                w.latencies.percentile_ms(99.0),
                w.latencies.percentile_ms(100.0),
                w.other_cpu,
                w.describe_others()
            );
        }
        println!("  ho-a's held requests during the hand-off (server side): {}", h.holds.describe());
        if let Some((count, [first_sent, last_sent, first_done, last_done])) = h.slow {
            println!(
                "  the {count} requests of {b_name}'s former tenants slower than {HOLD_P99_GOAL_MS:.0} ms: sent {first_sent:+.0} to {last_sent:+.0} ms, answered {first_done:+.0} to {last_done:+.0} ms from the signal"
            );
        }
        println!();
        let r = &mut self.rolling;
        println!(
            "3. Rolling restart of a 3-node cluster, {} tenants, {} connections through a load balancer",
            args.rolling_tenants, args.connections
        );
        println!("{line}");
        println!(
            "  registration: {} tenants in {:.2} s; each node in turn: out of rotation, SIGTERM, exit, start, /readyz, back in rotation, converged",
            args.rolling_tenants, r.register_seconds
        );
        println!(
            "  {:<8} {:>16} {:>16} {:<18} {:>14} {:>18}",
            "node", "out of rotation", "SIGTERM -> exit", " status", "start -> ready", "start -> converged"
        );
        for s in &r.steps {
            println!(
                "  {:<8} {:>13} ms {:>13} ms  {:<17} {:>11} ms {:>15} ms",
                s.node,
                s.out_of_rotation.as_millis(),
                s.exit.2.as_millis(),
                s.exit.0,
                s.ready.as_millis(),
                s.converged.as_millis()
            );
        }
        println!(
            "  {:<28} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8} {:>6}  answers other than 200",
            "window", "seconds", "requests", "req/s", "p50 ms", "p99 ms", "max ms", "other"
        );
        for (label, w) in [("steady", &mut r.steady), ("rolling restart", &mut r.rolling)] {
            println!(
                "  {:<28} {:>8.2} {:>8} {:>8.0} {:>8.3} {:>9.3} {:>8.3} {:>5.0}%  {}",
                label,
                w.seconds,
                w.requests(),
                w.rps(),
                w.latencies.percentile_ms(50.0),
                w.latencies.percentile_ms(99.0),
                w.latencies.percentile_ms(100.0),
                w.other_cpu,
                w.describe_others()
            );
        }
        for ((node, holds), (_, others)) in r.holds.iter().zip(&r.others_by_node) {
            println!(
                "  {node}: since its restart {}; answers other than 200 it gave (steady + rolling): {others}",
                holds.describe()
            );
        }
        println!("{line}");
        let h = &mut self.handoff;
        let done = h.done();
        println!(
            "  1. hand-off of {b_share} active tenants: A serves every shard {}, drain complete {}   (goal < {} s)  {}",
            ms(h.a_serves_all),
            ms(h.b_exit.as_ref().map(|e| e.2)),
            HANDOFF_GOAL.as_secs(),
            verdict(done.is_some_and(|d| d < HANDOFF_GOAL) && h.b_exit.as_ref().is_some_and(|e| e.1))
        );
        let (p99, max) = (h.during_b.latencies.percentile_ms(99.0), h.during_b.latencies.percentile_ms(100.0));
        let unexpected = h.during.requests() - h.during.ok;
        println!(
            "  2. p99 latency of {b_name}'s former tenants' requests during the hand-off: {p99:.1} ms (max {max:.1} ms, {} requests; longest server-side hold {:.1} ms)   (goal p99 < {HOLD_P99_GOAL_MS:.0} ms)  {}",
            h.during_b.requests(),
            h.holds.longest_seconds * 1e3,
            verdict(h.during_b.requests() > 0 && p99 < HOLD_P99_GOAL_MS && unexpected == 0)
        );
        println!(
            "     answers other than 200 on ho-a during the hand-off: {}; before: {}; after: {}",
            h.during.describe_others(),
            h.steady.describe_others(),
            h.after.describe_others()
        );
        let ratio = self.ratio();
        let r = &self.rolling;
        let bad = r.steady.unexpected(&[429]) + r.rolling.unexpected(&[429]);
        let errors = r.steady.errors() + r.rolling.errors();
        println!(
            "  3. throughput rolling restart / steady: {:.0} / {:.0} = {ratio:.3}   (goal >= {ROLLING_RATIO_GOAL:.1})  {}",
            r.rolling.rps(),
            r.steady.rps(),
            verdict(ratio >= ROLLING_RATIO_GOAL)
        );
        println!(
            "     answers other than 200 and 429: {bad}, connection errors: {errors} (the product promises none)  {}",
            verdict(bad == 0 && errors == 0)
        );
        println!("{line}");
        if !self.log_notes.is_empty() {
            println!("Warnings and errors the gateways logged ({}; the first 30):", self.log_notes.len());
            for (node, note) in self.log_notes.iter().take(30) {
                println!("  {node}: {note}");
            }
        }
        println!("Shutdown:");
        for line in &self.shutdown {
            println!("  {line}");
        }
        println!("Benchmark wall time: {:.1} s", self.total_seconds);
        println!("{}", "=".repeat(110));
    }

    fn json_value(&mut self, args: &HandoffArgs) -> Value {
        let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1e3);
        let ratio = self.ratio();
        let h = &mut self.handoff;
        let done = h.done();
        let handoff = json!({
            "tenants": args.tenants,
            "placement": h.ownership.iter().map(|(_, node, owned, computed, epoch)| json!({
                "node": node, "shardsOwned": owned, "shardsComputed": computed, "epoch": epoch,
            })).collect::<Vec<_>>(),
            "registrationSeconds": h.register_seconds,
            "activationSeconds": h.activate_seconds,
            "activeActors": h.actors.iter().map(|(node, owned, seen)| json!({"node": node, "ownedTenants": owned, "active": seen})).collect::<Vec<_>>(),
            "sinceSignalMs": {
                "drainedNodeNotUpInView": ms(h.b_draining_seen),
                "remainingOwnsEveryShard": ms(h.a_owns_all),
                "remainingOwnsAndServesEveryShard": ms(h.a_serves_all_shards),
                "remainingServesEveryShard": ms(h.a_serves_all),
                "drainedNodeExited": ms(h.b_exit.as_ref().map(|e| e.2)),
                "done": ms(done),
            },
            "drainedNodeExitStatus": h.b_exit.as_ref().map(|e| e.0.clone()),
            "drainedNodeLoggedHandedOffMs": h.b_logged_ms,
            "remainingActiveActorsWhenServingEveryShard": h.a_actors_at_serve,
            "remainingActiveActorsAfter": h.a_actors_after,
            "goalSeconds": HANDOFF_GOAL.as_secs_f64(),
            "met": done.is_some_and(|d| d < HANDOFF_GOAL) && h.b_exit.as_ref().is_some_and(|e| e.1),
        });
        let held = json!({
            "connections": args.connections,
            "steady": h.steady.json(),
            "handoff": h.during.json(),
            "handoffFormerTenantsOfDrainedNode": h.during_b.json(),
            "handoffOwnTenants": h.during_a.json(),
            "after": h.after.json(),
            "serverHolds": h.holds.json(),
            "slowerThanGoal": h.slow.map(|(count, [first_sent, last_sent, first_done, last_done])| json!({
                "count": count,
                "sentMsFromSignal": [first_sent, last_sent],
                "answeredMsFromSignal": [first_done, last_done],
            })),
            "goalP99Ms": HOLD_P99_GOAL_MS,
            "met": h.during_b.requests() > 0 && h.during_b.latencies.percentile_ms(99.0) < HOLD_P99_GOAL_MS && h.during.requests() == h.during.ok,
        });
        let r = &mut self.rolling;
        let bad = r.steady.unexpected(&[429]) + r.rolling.unexpected(&[429]);
        let rolling = json!({
            "tenants": args.rolling_tenants,
            "connections": args.connections,
            "steps": r.steps.iter().map(|s| json!({
                "node": s.node,
                "outOfRotationMs": s.out_of_rotation.as_secs_f64() * 1e3,
                "exitStatus": s.exit.0,
                "sigtermToExitMs": s.exit.2.as_secs_f64() * 1e3,
                "startToReadyMs": s.ready.as_secs_f64() * 1e3,
                "startToConvergedMs": s.converged.as_secs_f64() * 1e3,
            })).collect::<Vec<_>>(),
            "steady": r.steady.json(),
            "rolling": r.rolling.json(),
            "ratio": ratio,
            "goalRatio": ROLLING_RATIO_GOAL,
            "met": ratio >= ROLLING_RATIO_GOAL,
            "answersOtherThan200Or429": bad,
            "noAnswerOtherThan200Or429": bad == 0 && r.steady.errors() + r.rolling.errors() == 0,
            "connectionErrors": r.steady.errors() + r.rolling.errors(),
            "serverHoldsSinceRestart": r.holds.iter().map(|(node, holds)| json!({"node": node, "holds": holds.json()})).collect::<Vec<_>>(),
        });
        json!({
            "machine": {"cores": self.cores, "clientThreads": args.client_threads.max(1)},
            "handoff": handoff,
            "heldRequests": held,
            "rollingRestart": rolling,
            "logNotes": self.log_notes.iter().map(|(node, line)| json!({"node": node, "line": line})).collect::<Vec<_>>(),
            "shutdown": self.shutdown,
            "wallSeconds": self.total_seconds,
        })
    }
}
