//! `bench link-floor`: the floor of a remote hop on this design, measured alone. Two processes
//! (this one and a child running `bench link-peer`) linked by the cluster crate's own [`Links`]
//! over ractor_cluster do, per request, exactly what a remote hop adds to a local one: the asking
//! side builds an admission, sends it in the link's batches and reads the answer, then sends the
//! request's audit event back in a batch every 20 ms; the owning side decodes each batch, answers
//! every request with an admission without the record (the hot path's answer, prepared once:
//! no tenant actor, no HTTP, no store) and decodes the audit batches. Whatever the gateway's hop
//! costs beyond these two processes' CPU is its own; the two processes' CPU is what any hop costs
//! while requests cross ractor_cluster in this form.
//!
//! Two runs: one request at a time (latency: the link's round trip with nothing behind it), and
//! `--concurrency` askers for `--duration` seconds (CPU per request of both processes, requests
//! per message).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use connectors_actors::admission::AdmissionRequest;
use connectors_actors::api_key::KeyHash;
use connectors_actors::audit::AuditEvent;
use connectors_actors::rate_windows::{RateStatus, Window, WindowStatus};
use connectors_actors::tenant::{Features, Limits, TenantId};
use connectors_actors::tenant_call::TenantCall;
use connectors_actors::usage::{Month, UsageCounters};
use connectors_cluster::shard_map::NodeId;
use connectors_cluster::transport::compact;
use connectors_cluster::transport::links::{LinkConfig, Links};
use connectors_cluster::transport::region::{RegionArgs, RegionHandler, ShardRegion};
use connectors_cluster::transport::wire::{
    self, AdmittedSameRecord, AuditAnswer, AuditBatch, HandOffAnswer, ReleaseAnswer, TenantAnswer, TenantRequest,
};
use serde_json::json;

use crate::floor::tenant_get_event;
use crate::gateway::process_cpu;
use crate::stats::Latencies;

const COOKIE: &str = "bench-link-floor-cookie-0123456789abcdef";
const ASKER: &str = "floor-a";
const OWNER: &str = "floor-b";
/// As the gateway's audit outbox sends.
const AUDIT_EVERY: Duration = Duration::from_millis(20);
/// Issue 16's goals for the hop: extra CPU per request, and added p50 one request at a time.
const HOP_CPU_GOAL_MICROS: f64 = 15.0;
const HOP_GOAL_MS: f64 = 0.2;

#[derive(Debug, clap::Args)]
pub(crate) struct LinkFloorArgs {
    /// Concurrent askers of the saturated run (the cluster benchmark's load has 64 connections).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Measured seconds of the saturated run, after one second of warm-up.
    #[arg(long, default_value_t = 8)]
    duration: u64,
    /// Requests of the one-at-a-time run.
    #[arg(long, default_value_t = 2_000)]
    sequential: usize,
}

#[derive(Debug, clap::Args)]
pub(crate) struct LinkPeerArgs {
    /// The asking process's cluster address.
    #[arg(long)]
    asker: SocketAddr,
}

/// The owning side: answers every admission with the same admission answer.
struct CannedOwner {
    answer: TenantAnswer,
}

#[async_trait]
impl RegionHandler for CannedOwner {
    async fn ask(&self, _: Vec<u8>) -> Vec<u8> {
        wire::encode(&self.answer)
    }

    async fn ask_batch(&self, payload: Vec<u8>) -> Vec<u8> {
        let count =
            compact::compact_body(&payload).and_then(|body| compact::decode_batch(body).ok()).map_or(0, |r| r.len());
        let answers: Vec<TenantAnswer> = (0..count).map(|_| self.answer.clone()).collect();
        compact::encode_answers(&answers)
    }

    async fn release(&self, _: Vec<u8>) -> Vec<u8> {
        wire::encode(&ReleaseAnswer::Released)
    }

    async fn audit(&self, payload: Vec<u8>) -> Vec<u8> {
        let decoded = compact::compact_body(&payload).map(compact::decode_audit);
        let answer = if matches!(decoded, Some(Ok(_))) { AuditAnswer::Recorded } else { AuditAnswer::NotRecorded };
        wire::encode(&answer)
    }

    async fn hand_off(&self, _: Vec<u8>) -> Vec<u8> {
        wire::encode(&HandOffAnswer { kept: 0 })
    }

    fn epoch(&self) -> u64 {
        1
    }
}

fn admitted() -> TenantAnswer {
    let now = Utc::now().timestamp();
    let window = |window, limit| WindowStatus { window, limit, remaining: limit - 1, reset: now + 60 };
    TenantAnswer::SameRecord(AdmittedSameRecord {
        limits: Limits {
            requests_per_minute: 1_000_000,
            requests_per_hour: 10_000_000,
            requests_per_day: 100_000_000,
            max_custom_servers: 5,
            max_tool_invocations: 1_000_000,
            max_storage_mb: 100,
        },
        features: Features { custom_servers: true, oauth: true, advanced_analytics: false },
        month: Month::of(Utc::now()),
        usage: UsageCounters { requests: 1_234, api_calls: 1_200, ..Default::default() },
        rate: Some(RateStatus {
            admitted: true,
            now,
            windows: [
                window(Window::Minute, 1_000_000),
                window(Window::Hour, 10_000_000),
                window(Window::Day, 100_000_000),
            ],
        }),
        server: None,
    })
}

async fn start_node(me: &str) -> Result<Arc<Links>, String> {
    let listen: SocketAddr = "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?;
    let links = Links::start(NodeId::from(me), listen, COOKIE.into(), None, LinkConfig::default())
        .await
        .map_err(|e| e.to_string())?;
    let handler = Arc::new(CannedOwner { answer: admitted() });
    ShardRegion::start(RegionArgs { me: NodeId::from(me), handler }).await.map_err(|e| e.to_string())?;
    Ok(links)
}

/// `bench link-peer`: the owning process. Prints its cluster address, then serves until its
/// standard input closes (the asking process ended).
pub(crate) fn peer(args: &LinkPeerArgs) -> Result<bool, String> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let links = start_node(OWNER).await?;
        links.sync(&members(args.asker, links.listen_addr()));
        println!("listening {}", links.listen_addr());
        tokio::task::spawn_blocking(|| std::io::stdin().lines().for_each(drop)).await.map_err(|e| e.to_string())?;
        Ok(true)
    })
}

fn members(asker: SocketAddr, owner: SocketAddr) -> Vec<(NodeId, String)> {
    vec![(NodeId::from(ASKER), asker.to_string()), (NodeId::from(OWNER), owner.to_string())]
}

/// What the asking side sends per request: an admission like the edge's, then its audit event.
struct Asker {
    links: Arc<Links>,
    owner: NodeId,
    tenant: TenantId,
    key: KeyHash,
    audit: Mutex<Vec<AuditEvent>>,
    sent: AtomicU64,
}

impl Asker {
    async fn request(&self, n: u64) -> Result<(), String> {
        let request = TenantRequest {
            epoch: 1,
            tenant: self.tenant.clone(),
            call: TenantCall::Admit(AdmissionRequest {
                key: Some(self.key),
                key_required: true,
                client_ip: std::net::Ipv4Addr::LOCALHOST.into(),
                charge: None,
                selection: false,
                server: None,
            }),
            held_record: Some(42),
            answer_by_ms: Some(Utc::now().timestamp_millis() + 2_000),
        };
        match self.links.ask(&self.owner, request).await {
            Ok(TenantAnswer::SameRecord(_)) => {}
            Ok(other) => return Err(format!("unexpected answer {other:?}")),
            Err(unanswered) => return Err(unanswered.error.to_string()),
        }
        // As the edge sends it to the owner: with an id of its own.
        let mut event = tenant_get_event(&self.tenant, Some("bench".into()), n);
        event.event_id = Some(format!("{:032x}", connectors_actors::unique_id::unique_id()));
        self.audit.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(event);
        self.sent.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Sends the pending audit events every [`AUDIT_EVERY`], as the gateway's outbox does.
    async fn send_audit(self: Arc<Self>, stop: Arc<AtomicBool>) -> Result<(), String> {
        while !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(AUDIT_EVERY).await;
            let events = std::mem::take(&mut *self.audit.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
            if events.is_empty() {
                continue;
            }
            match self.links.audit(&self.owner, &AuditBatch { events }).await {
                Ok(AuditAnswer::Recorded) => {}
                other => return Err(format!("audit batch not taken: {other:?}")),
            }
        }
        Ok(())
    }
}

/// The owning process, ended (and reaped) when dropped.
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_peer(asker: SocketAddr) -> Result<(Peer, SocketAddr), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .args(["link-peer", "--asker", &asker.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start the owning process: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout of the owning process")?;
    let peer = Peer(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).map_err(|e| e.to_string())?;
    let addr = line
        .trim()
        .strip_prefix("listening ")
        .and_then(|addr| addr.parse().ok())
        .ok_or_else(|| format!("the owning process said {line:?}"))?;
    Ok((peer, addr))
}

pub(crate) fn run(args: &LinkFloorArgs) -> Result<bool, String> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(measure(args))
}

async fn measure(args: &LinkFloorArgs) -> Result<bool, String> {
    let links = start_node(ASKER).await?;
    let (peer, owner_addr) = spawn_peer(links.listen_addr())?;
    links.sync(&members(links.listen_addr(), owner_addr));
    let asker = Arc::new(Asker {
        links: links.clone(),
        owner: NodeId::from(OWNER),
        tenant: TenantId::parse("floor-tenant").map_err(|e| e.to_string())?,
        key: KeyHash::of("ck_floor"),
        audit: Mutex::default(),
        sent: AtomicU64::new(0),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let audit = tokio::spawn(asker.clone().send_audit(stop.clone()));

    // Until the link is up and its probe found that the peer reads batches.
    let counts = links.ask_counts();
    let started = Instant::now();
    while counts.batched.load(Ordering::Relaxed) == 0 {
        if started.elapsed() > Duration::from_secs(20) {
            return Err("the link to the owning process did not come up within 20 s".into());
        }
        if links.all_connected() {
            asker.request(0).await.ok();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut one_at_a_time = Latencies::default();
    for n in 0..args.sequential as u64 {
        let started = Instant::now();
        asker.request(n).await?;
        one_at_a_time.record(started.elapsed());
    }

    let (pids, messages) = ([std::process::id(), peer.0.id()], || {
        (counts.batches.load(Ordering::Relaxed), counts.batched.load(Ordering::Relaxed))
    });
    let running = Arc::new(AtomicBool::new(true));
    let askers: Vec<_> = (0..args.concurrency)
        .map(|i| {
            let (asker, running) = (asker.clone(), running.clone());
            tokio::spawn(async move {
                let mut n = (i as u64) << 40;
                while running.load(Ordering::Relaxed) {
                    asker.request(n).await?;
                    n += 1;
                }
                Ok::<(), String>(())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cpu_before: Vec<f64> = pids.iter().map(|pid| process_cpu(*pid)).collect();
    let (sent_before, messages_before) = (asker.sent.load(Ordering::Relaxed), messages());
    let window = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.duration)).await;
    let cpu_after: Vec<f64> = pids.iter().map(|pid| process_cpu(*pid)).collect();
    let (sent, messages_after, seconds) = (asker.sent.load(Ordering::Relaxed), messages(), window.elapsed());
    running.store(false, Ordering::Relaxed);
    for asker in askers {
        asker.await.map_err(|e| e.to_string())??;
    }
    stop.store(true, Ordering::Relaxed);
    audit.await.map_err(|e| e.to_string())??;
    drop(peer);

    let requests = (sent - sent_before) as f64;
    let cpu: Vec<f64> =
        cpu_after.iter().zip(&cpu_before).map(|(after, before)| (after - before) / requests * 1e6).collect();
    let per_message =
        (messages_after.1 - messages_before.1) as f64 / (messages_after.0 - messages_before.0).max(1) as f64;
    let total = cpu.iter().sum::<f64>();
    let p50 = one_at_a_time.percentile_ms(50.0);
    println!("link floor: two processes, the cluster crate's Links over ractor_cluster, canned admission answers");
    println!("| measure | figure | hop goal |");
    println!("|---|---|---|");
    println!(
        "| one request at a time ({} requests): p50 / p99 | {p50:.3} / {:.3} ms | added p50 < {HOP_GOAL_MS} ms |",
        args.sequential,
        one_at_a_time.percentile_ms(99.0)
    );
    println!(
        "| {} askers, {:.1} s: throughput | {:.0} req/s, {per_message:.1} requests per message | |",
        args.concurrency,
        seconds.as_secs_f64(),
        requests / seconds.as_secs_f64()
    );
    println!(
        "| CPU per request: asking process + owning process | {:.1} + {:.1} = **{total:.1} µs** | ≤ {HOP_CPU_GOAL_MICROS} µs |",
        cpu[0], cpu[1]
    );
    let json = json!({"p50Ms": p50, "cpuMicros": total, "requestsPerMessage": per_message});
    println!("json: {json}");
    Ok(true)
}
