//! `bench tools`: `POST /api/v1/tools/select` over HTTP against the same selection engine called
//! in-process (README, "Tool selection benchmark"), with 500 and with every tool of the seal-tools catalog
//! (4,076), side by side in one run.
//!
//! ```text
//! cargo build --release -p connectors -p mcp-example-server -p bench
//! cargo run --release -p bench -- tools
//! cargo run --release -p bench -- tools --duration 8 --rounds 2 --json tools.json
//! ```
//!
//! For each catalog size (the first `--small` tools of `--catalog`, then all of it):
//!
//! 1. writes those tools to a temporary `catalog.jsonl` and starts the project's example MCP
//!    server on it (`mcp-example-server --http 127.0.0.1:0 --catalog FILE`), which serves each
//!    `integration` of the catalog at `/mcp/<integration>`;
//! 2. starts a fresh `connectors serve` (the single-node benchmark's config: high limits), registers
//!    one tenant and every integration (`POST /api/v1/admin/integrations {name, url, category}`):
//!    the gateway discovers the tools with MCP `tools/list`, as in production, and each answer's
//!    `toolsDiscovered` is checked;
//! 3. builds in this process the same catalog from the file (`Tool` from the catalog line: the
//!    same id, name, integration, category, description and schema the gateway gets) under a
//!    `Selector` with an in-memory `EmbeddedToolGraph`, as `connectors eval-selection` does;
//! 4. one at a time: every query of `--queries` once in-process and once over one keep-alive
//!    connection; every HTTP answer must be 200 with `performance.totalTools` = the catalog size, and
//!    the ranked ids of both are compared (same engine, same catalog: they should agree);
//! 5. closed loop, rounds alternating: in-process on `--engine-threads` threads (each calling
//!    `Selector::select` back to back over the queries), then over HTTP with `--connections`
//!    keep-alive connections (the same queries round robin, `{"query", "options": {"maxTools"}}`,
//!    tenant key and `X-Tenant-ID`); every answer must be 200; then `GET /api/v1/tenant` of the
//!    same tenant over the same connections, the cheapest admitted request, whose CPU bounds the
//!    ratio HTTP / in-process from above (the ceiling printed with the goal);
//! 6. stops the gateway with SIGTERM (it must exit 0) and the example server.
//!
//! The table gives req/s, p50/p99, CPU per query and the ratios HTTP / in-process. On a 2-core
//! machine the load generator shares the CPU with the gateway, so the HTTP figures are understated;
//! the CPU time per query (gateway process vs the in-process engine) is the steadier comparison.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use connectors::backends::embedded_tool_graph::EmbeddedToolGraph;
use connectors::tools::catalog::{Catalog, Tool};
use connectors::tools::co_usage_policy::CoUsagePolicy;
use connectors::tools::selection::engine::{SelectOptions, SelectionEngine};
use connectors::tools::selector::Selector;
use connectors_actors::tenant::TenantId;
use serde_json::{Value, json};

use crate::gateway::{self, Gateway, process_cpu};
use crate::http1::{self, Conn};
use crate::load::{self, LoadResult};
use crate::stats::Latencies;
use crate::tenants::{register, tenant_id};

const MAX_TOOLS: usize = 10;
/// `tools/select` over HTTP against in-process, 500 tools (throughput).
const HTTP_RATIO_GOAL: f64 = 0.6;
/// Calls to the tenant's owner per `tools/invoke`.
const OWNER_CALLS_GOAL: f64 = 1.0;
/// Invocations measured for the owner calls.
const INVOCATIONS: usize = 200;
/// Selection without history on the metatool development set.
const COLD_NDCG_GOAL: f64 = 0.70;
/// Selection latency at about 4,000 tools (seal-tools), in-process.
const P95_GOAL_MS: f64 = 5.0;

#[derive(Debug, clap::Args)]
pub(crate) struct ToolsArgs {
    /// The tool catalog (`catalog.jsonl` of eval/tool-retrieval); default: seal-tools.
    #[arg(long)]
    catalog: Option<PathBuf>,
    /// The queries (`queries.jsonl`, only `query` is used); default: seal-tools'.
    #[arg(long)]
    queries: Option<PathBuf>,
    /// The smaller catalog: the first N tools of `--catalog` (the larger one is all of it).
    #[arg(long, default_value_t = 500)]
    small: usize,
    /// Concurrent keep-alive connections of the HTTP runs.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Threads calling the engine in the in-process runs.
    #[arg(long, default_value_t = 2)]
    engine_threads: usize,
    /// Measured seconds of each run.
    #[arg(long, default_value_t = 8)]
    duration: u64,
    /// Warm-up seconds before each run (not measured).
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Rounds of (in-process, HTTP) runs per catalog size.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Threads of the load generator.
    #[arg(long, default_value_t = 2)]
    client_threads: usize,
    /// The release `connectors` binary (default: found in the target directory).
    #[arg(long)]
    gateway_bin: Option<PathBuf>,
    /// The release `mcp-example-server` binary (default: next to the gateway binary).
    #[arg(long)]
    example_server_bin: Option<PathBuf>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// The sentence-embedding model's directory the cold-start selection is measured with (as
    /// the gateway's `tools.embeddingModel`); without it, by words alone.
    #[arg(long, env = "CONNECTORS_EMBEDDING_MODEL")]
    embedding_model: Option<PathBuf>,
}

/// One measured run.
struct Run {
    mode: &'static str,
    round: usize,
    result: LoadResult,
    /// CPU seconds per completed query of the process doing the selection (the gateway, or this
    /// process for in-process runs), warm-up included.
    cpu_per_query: f64,
    /// CPU seconds per completed request of this process, the load generator of HTTP runs.
    client_cpu_per_query: f64,
}

/// What one catalog size gave.
struct SizeReport {
    tools: usize,
    integrations: usize,
    register_seconds: f64,
    /// One at a time: the in-process engine, then HTTP on one connection.
    single_engine: Latencies,
    single_http: Latencies,
    /// Queries whose ranked ids differ between the two.
    rank_mismatches: usize,
    /// Calls to the tenant's owner per `tools/invoke` (admissions and every other call).
    owner_calls_per_invoke: f64,
    runs: Vec<Run>,
    shutdown: String,
}

impl SizeReport {
    fn runs(&self, mode: &str) -> impl Iterator<Item = &Run> {
        self.runs.iter().filter(move |r| r.mode == mode)
    }

    fn mean_rps(&self, mode: &str) -> f64 {
        let rps: Vec<f64> = self.runs(mode).map(|r| r.result.rps()).collect();
        if rps.is_empty() { 0.0 } else { rps.iter().sum::<f64>() / rps.len() as f64 }
    }

    fn merged(&self, mode: &str) -> Latencies {
        let mut all = Latencies::default();
        for run in self.runs(mode) {
            all.extend(run.result.latencies.clone());
        }
        all
    }

    fn cpu_us(&self, mode: &str) -> f64 {
        mean_us(self.runs(mode).map(|r| r.cpu_per_query))
    }

    fn client_cpu_us(&self, mode: &str) -> f64 {
        mean_us(self.runs(mode).map(|r| r.client_cpu_per_query))
    }

    /// The most HTTP / in-process can be while an admitted request costs the gateway what
    /// `GET /api/v1/tenant` did in this run: the selection's own CPU over the selection plus that
    /// request plus the load generator's CPU per request, as if the answer's JSON and the
    /// selection's bookkeeping cost nothing.
    fn ratio_ceiling(&self) -> f64 {
        let selection = self.cpu_us("in-process");
        selection / (selection + self.cpu_us("admitted") + self.client_cpu_us("http")).max(f64::MIN_POSITIVE)
    }

    fn failures(&self, mode: &str) -> (u64, u64) {
        self.runs(mode).fold((0, 0), |acc, r| (acc.0 + r.result.non_200, acc.1 + r.result.io_errors))
    }
}

fn mean_us(seconds: impl Iterator<Item = f64>) -> f64 {
    let seconds: Vec<f64> = seconds.collect();
    if seconds.is_empty() { 0.0 } else { seconds.iter().sum::<f64>() / seconds.len() as f64 * 1e6 }
}

fn shared_data(file: &str) -> PathBuf {
    eval_data("seal-tools", file)
}

fn eval_data(set: &str, file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../eval/tool-retrieval").join(set).join(file)
}

/// Selection quality and latency without history (cold start) on a development set, as
/// `connectors eval-selection` measures it.
fn cold_start(
    runtime: &tokio::runtime::Runtime,
    set: &str,
    embedding_model: Option<&Path>,
) -> Result<connectors::tools::evaluation::EvalReport, String> {
    let (catalog, queries) = (eval_data(set, "catalog.jsonl"), eval_data(set, "queries.jsonl"));
    let input = connectors::tools::evaluation::EvalInput {
        catalog: &catalog,
        queries: &queries,
        history: None,
        output: None,
        embedding_model,
    };
    runtime.block_on(connectors::tools::evaluation::run(&input)).map_err(|e| format!("evaluation of {set}: {e}"))
}

pub(crate) fn run(args: &ToolsArgs) -> Result<bool, String> {
    if args.connections == 0 || args.engine_threads == 0 || args.rounds == 0 || args.small == 0 {
        return Err("need --connections, --engine-threads, --rounds and --small > 0".into());
    }
    let binary = gateway::locate_binary(args.gateway_bin.as_deref())?;
    if let Some(warning) = gateway::stale_warning(&binary) {
        eprintln!("{warning}");
    }
    let example = match &args.example_server_bin {
        Some(path) => path.clone(),
        None => binary.with_file_name("mcp-example-server"),
    };
    if !example.is_file() {
        return Err(format!(
            "{} not found: build it with `cargo build --release -p mcp-example-server` (or give --example-server-bin)",
            example.display()
        ));
    }
    let catalog_path = args.catalog.clone().unwrap_or_else(|| shared_data("catalog.jsonl"));
    let queries_path = args.queries.clone().unwrap_or_else(|| shared_data("queries.jsonl"));
    let lines: Vec<String> = std::fs::read_to_string(&catalog_path)
        .map_err(|e| format!("{}: {e}", catalog_path.display()))?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    let queries: Vec<String> = std::fs::read_to_string(&queries_path)
        .map_err(|e| format!("{}: {e}", queries_path.display()))?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let line: Value = serde_json::from_str(l).map_err(|e| e.to_string())?;
            line["query"].as_str().map(str::to_string).ok_or_else(|| "a line without `query`".to_string())
        })
        .collect::<Result<_, String>>()
        .map_err(|e| format!("{}: {e}", queries_path.display()))?;
    if queries.is_empty() {
        return Err(format!("{}: no queries", queries_path.display()));
    }
    let mut sizes = vec![args.small.min(lines.len())];
    if lines.len() > args.small {
        sizes.push(lines.len());
    }
    println!("bench: gateway binary {}, example server {}", binary.display(), example.display());
    println!(
        "bench: catalog {} ({} tools), {} queries from {}",
        catalog_path.display(),
        lines.len(),
        queries.len(),
        queries_path.display()
    );
    let total_started = Instant::now();
    let runtime = load::client_runtime(args.client_threads)?;
    let queries = Arc::new(queries);
    let mut reports = Vec::new();
    let mut clean = true;
    for size in sizes {
        let report = one_size(args, &runtime, &binary, &example, &lines[..size], &queries)?;
        clean &= report.shutdown.contains("exit status: 0");
        reports.push(report);
    }
    let model = args.embedding_model.as_deref();
    match model {
        Some(path) => println!(
            "bench: selection without history on the development sets (connectors eval-selection), embedding model {}...",
            path.display()
        ),
        None => println!(
            "bench: selection without history on the development sets (connectors eval-selection), by words alone (no --embedding-model)..."
        ),
    }
    let cold = [
        ("metatool", cold_start(&runtime, "metatool", model)?),
        ("seal-tools", cold_start(&runtime, "seal-tools", model)?),
    ];
    print(args, &reports, &cold, queries.len(), total_started.elapsed().as_secs_f64());
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&json_value(args, &mut reports, &cold)).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n").map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("results written to {}", path.display());
    }
    let failed = reports.iter().any(|r| {
        let (a, b) = r.failures("http");
        let (c, d) = r.failures("in-process");
        a + b + c + d > 0
    });
    Ok(clean && !failed)
}

/// The example MCP server serving a catalog; killed on drop.
struct ExampleServer {
    child: Child,
    addr: SocketAddr,
}

impl ExampleServer {
    fn start(binary: &Path, catalog: &Path, log: &Path) -> Result<Self, String> {
        let log = std::fs::File::create(log).map_err(|e| format!("example server log: {e}"))?;
        let mut child = Command::new(binary)
            .args(["--http", "127.0.0.1:0", "--catalog"])
            .arg(catalog)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        // Its first line is `listening on http://ADDR/mcp`.
        let mut line = String::new();
        let stdout = child.stdout.take().ok_or("no stdout of the example server")?;
        BufReader::new(stdout).read_line(&mut line).map_err(|e| format!("example server: {e}"))?;
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .and_then(|rest| rest.strip_suffix("/mcp"))
            .and_then(|addr| addr.parse().ok());
        match addr {
            Some(addr) => Ok(Self { child, addr }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!("the example server did not start (it said {line:?})"))
            }
        }
    }
}

impl Drop for ExampleServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn one_size(
    args: &ToolsArgs,
    runtime: &tokio::runtime::Runtime,
    binary: &Path,
    example: &Path,
    lines: &[String],
    queries: &Arc<Vec<String>>,
) -> Result<SizeReport, String> {
    let dir = tempfile::Builder::new().prefix("connectors-bench-tools-").tempdir().map_err(|e| e.to_string())?;
    let catalog_file = dir.path().join("catalog.jsonl");
    std::fs::write(&catalog_file, lines.join("\n") + "\n").map_err(|e| e.to_string())?;
    let mut tools: Vec<Tool> = lines
        .iter()
        .map(|l| serde_json::from_str(l))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("catalog line: {e}"))?;
    // Integrations in file order, with their category and tool count.
    let mut integrations: Vec<(String, String, usize)> = Vec::new();
    for tool in &tools {
        match integrations.iter_mut().find(|(name, _, _)| *name == tool.integration) {
            Some(entry) => entry.2 += 1,
            None => integrations.push((tool.integration.clone(), tool.category.clone(), 1)),
        }
    }
    // The order the gateway's registry builds its catalog in: integrations by name, each one's
    // tools in `tools/list` order (ties in rank are broken by catalog position).
    tools.sort_by(|a, b| a.integration.cmp(&b.integration));
    println!("bench: --- {} tools in {} integrations ---", tools.len(), integrations.len());
    let server = ExampleServer::start(example, &catalog_file, &dir.path().join("example-server.log"))?;
    println!("bench: example MCP server pid {} on {}", server.child.id(), server.addr);
    let mut gw = Gateway::spawn(binary)?;
    println!("bench: gateway pid {} listening on {}", gw.pid(), gw.addr);
    let tool_count = tools.len();
    let invoked = tools[0].id.clone();
    let outcome = runtime.block_on(async {
        gw.wait_healthy(Duration::from_secs(30)).await?;
        let selector = Arc::new(
            Selector::open(
                SelectionEngine::new(Catalog::new(tools).map_err(|e| e.to_string())?),
                Arc::new(EmbeddedToolGraph::in_memory(CoUsagePolicy::default())),
                None,
            )
            .await
            .map_err(|e| e.to_string())?,
        );
        let catalog = Served { mcp: server.addr, integrations: &integrations, tool_count, invoked: &invoked };
        measure(args, &gw, &catalog, selector, queries).await
    });
    let log_tail = gw.log_tail();
    let stopped = gw.stop(Duration::from_secs(30));
    drop(server);
    let mut report = outcome.map_err(|message| format!("{message}\n--- last gateway log lines ---\n{log_tail}"))?;
    report.shutdown = match stopped {
        Ok((status, took)) => format!("SIGTERM -> {status} after {} ms", took.as_millis()),
        Err(message) => format!("FAILED: {message}\n{log_tail}"),
    };
    Ok(report)
}

/// What the example MCP server serves for one catalog size.
struct Served<'a> {
    mcp: SocketAddr,
    /// (name, category, tools) in file order.
    integrations: &'a [(String, String, usize)],
    tool_count: usize,
    /// The tool the invocations call.
    invoked: &'a str,
}

async fn measure(
    args: &ToolsArgs,
    gw: &Gateway,
    served: &Served<'_>,
    selector: Arc<Selector>,
    queries: &Arc<Vec<String>>,
) -> Result<SizeReport, String> {
    let Served { mcp, integrations, tool_count, .. } = *served;
    let addr = gw.addr;
    let (keys, _) = register(&[addr], &gw.admin_key, 1, 1).await?;
    let (tenant, key) = (tenant_id(0), keys[0].clone());

    // The integrations, one at a time: each is a `tools/list` of the example server.
    let started = Instant::now();
    let admin = format!("Bearer {}", gw.admin_key);
    let mut conn = Conn::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
    for (name, category, count) in integrations {
        let body = json!({"name": name, "url": format!("http://{mcp}/mcp/{name}"), "category": category}).to_string();
        let request = http1::request(
            "POST",
            addr,
            "/api/v1/admin/integrations",
            &[("Authorization", &admin)],
            Some(body.as_bytes()),
        );
        let (status, reply) = conn.send(&request).await.map_err(|e| format!("POST /api/v1/admin/integrations: {e}"))?;
        let reply: Value = serde_json::from_slice(&reply).unwrap_or(Value::Null);
        if status != 201 || reply["toolsDiscovered"].as_u64() != Some(*count as u64) {
            return Err(format!("registering integration {name} ({count} tools) answered {status}: {reply}"));
        }
    }
    let register_seconds = started.elapsed().as_secs_f64();
    println!(
        "bench: registered {} integrations ({tool_count} tools discovered over MCP) in {register_seconds:.2} s",
        integrations.len()
    );

    let bearer = format!("Bearer {key}");
    let requests: Arc<Vec<Vec<u8>>> = Arc::new(
        queries
            .iter()
            .map(|q| {
                let body = json!({"query": q, "options": {"maxTools": MAX_TOOLS}}).to_string();
                http1::request(
                    "POST",
                    addr,
                    "/api/v1/tools/select",
                    &[("X-Tenant-ID", &tenant), ("Authorization", &bearer)],
                    Some(body.as_bytes()),
                )
            })
            .collect(),
    );
    // The cheapest admitted request, for the ceiling of HTTP / in-process.
    let admitted: Arc<Vec<Vec<u8>>> = Arc::new(vec![http1::request(
        "GET",
        addr,
        "/api/v1/tenant",
        &[("X-Tenant-ID", &tenant), ("Authorization", &bearer)],
        None,
    )]);
    let engine_tenant = TenantId::parse("bench").map_err(|e| e.to_string())?;
    let options = SelectOptions { max_tools: MAX_TOOLS, ..SelectOptions::default() };

    // One at a time, checking every answer and comparing the rankings.
    let mut single_engine = Latencies::default();
    let mut single_http = Latencies::default();
    let mut rank_mismatches = 0;
    for (query, request) in queries.iter().zip(requests.iter()) {
        let sent = Instant::now();
        let selection = selector.select(&engine_tenant, query, &options).await.map_err(|e| e.to_string())?;
        single_engine.record(sent.elapsed());
        let local: Vec<&str> = selection.tiers.ids().collect();
        let sent = Instant::now();
        let (status, body) = conn.send(request).await.map_err(|e| format!("POST /api/v1/tools/select: {e}"))?;
        single_http.record(sent.elapsed());
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if status != 200 || body["performance"]["totalTools"].as_u64() != Some(tool_count as u64) {
            return Err(format!("tools/select answered {status} (expected 200 with totalTools {tool_count}): {body}"));
        }
        let remote: Vec<&str> = ["tier1", "tier2", "tier3"]
            .iter()
            .flat_map(|tier| body["tools"][tier].as_array().into_iter().flatten())
            .filter_map(|tool| tool["id"].as_str())
            .collect();
        rank_mismatches += usize::from(local != remote);
    }
    let owner_calls_per_invoke = owner_calls_per_invoke(&mut conn, addr, &tenant, &bearer, served.invoked).await?;
    drop(conn);
    println!(
        "bench: one at a time, {} queries: in-process p50 {:.3} ms, HTTP p50 {:.3} ms; rankings differing: {rank_mismatches}",
        queries.len(),
        single_engine.percentile_ms(50.0),
        single_http.percentile_ms(50.0)
    );

    let warmup = Duration::from_secs(args.warmup);
    let duration = Duration::from_secs(args.duration);
    let mut runs = Vec::new();
    for round in 1..=args.rounds {
        // In-process: this process's CPU is the engine's (the load generator and the gateway idle).
        let me = std::process::id();
        let cpu_before = process_cpu(me);
        let result = in_process(selector.clone(), queries.clone(), args.engine_threads, warmup, duration).await?;
        let cpu = (process_cpu(me) - cpu_before) / result.completed.max(1) as f64;
        runs.push(report_run("in-process", round, result, cpu, cpu));
        // HTTP, selections and then the cheapest admitted request: the gateway's CPU, and the
        // load generator's.
        for (mode, load) in [("http", &requests), ("admitted", &admitted)] {
            let (gateway_before, client_before) = (process_cpu(gw.pid()), process_cpu(me));
            let result = load::closed_loop(addr, load.clone(), args.connections, warmup, duration).await?;
            let completed = result.completed.max(1) as f64;
            let cpu = (process_cpu(gw.pid()) - gateway_before) / completed;
            let client_cpu = (process_cpu(me) - client_before) / completed;
            runs.push(report_run(mode, round, result, cpu, client_cpu));
        }
    }
    Ok(SizeReport {
        tools: tool_count,
        integrations: integrations.len(),
        register_seconds,
        single_engine,
        single_http,
        rank_mismatches,
        owner_calls_per_invoke,
        runs,
        shutdown: String::new(),
    })
}

/// Sends [`INVOCATIONS`] `tools/invoke` of `tool` one at a time and counts the calls the edge
/// made to the tenant's owner meanwhile (`/metrics`: the tenant's admissions and every other
/// call). The catalog's tools are listed, not callable: each call ends in the example server's
/// refusal (502) after the gateway's whole path, admission and charge included.
async fn owner_calls_per_invoke(
    conn: &mut Conn,
    addr: SocketAddr,
    tenant: &str,
    bearer: &str,
    tool: &str,
) -> Result<f64, String> {
    let owner_calls = || async {
        let text = crate::tenants::metrics_text(addr).await?;
        let admissions =
            crate::tenants::metric(&text, &format!("connectors_tenant_requests_total{{tenant=\"{tenant}\"}}"))
                .unwrap_or(0.0);
        let others: f64 = text
            .lines()
            .filter_map(|line| line.strip_prefix("connectors_owner_calls_total{"))
            .filter_map(|rest| rest.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        Ok::<_, String>(admissions + others)
    };
    let body = json!({"toolId": tool, "parameters": {}}).to_string();
    let request = http1::request(
        "POST",
        addr,
        "/api/v1/tools/invoke",
        &[("X-Tenant-ID", tenant), ("Authorization", bearer)],
        Some(body.as_bytes()),
    );
    let before = owner_calls().await?;
    for _ in 0..INVOCATIONS {
        let (status, reply) = conn.send(&request).await.map_err(|e| format!("POST /api/v1/tools/invoke: {e}"))?;
        if status != 200 && status != 502 {
            return Err(format!("tools/invoke answered {status}: {}", String::from_utf8_lossy(&reply)));
        }
    }
    let per_invoke = (owner_calls().await? - before) / INVOCATIONS as f64;
    println!("bench: {INVOCATIONS} tools/invoke of {tool}: {per_invoke:.2} calls to the tenant's owner each");
    Ok(per_invoke)
}

fn report_run(mode: &'static str, round: usize, result: LoadResult, cpu_per_query: f64, client_cpu: f64) -> Run {
    let mut run = Run { mode, round, result, cpu_per_query, client_cpu_per_query: client_cpu };
    println!(
        "bench: round {round} {mode:<10} {:>8.0} q/s  p50 {:.3} ms  p99 {:.3} ms  CPU {:.0} us/query  non-200 {}  errors {}",
        run.result.rps(),
        run.result.latencies.percentile_ms(50.0),
        run.result.latencies.percentile_ms(99.0),
        run.cpu_per_query * 1e6,
        run.result.non_200,
        run.result.io_errors
    );
    if let Some(error) = &run.result.first_error {
        println!("bench:   first error: {error}");
    }
    run
}

/// `threads` OS threads calling `Selector::select` back to back over the queries (thread `i`
/// starting at query `i`), each on its own current-thread runtime; closed loop like the HTTP runs.
async fn in_process(
    selector: Arc<Selector>,
    queries: Arc<Vec<String>>,
    threads: usize,
    warmup: Duration,
    duration: Duration,
) -> Result<LoadResult, String> {
    let start = Instant::now();
    let (measure_from, end) = (start + warmup, start + warmup + duration);
    let mut handles = Vec::new();
    for index in 0..threads {
        let (selector, queries) = (selector.clone(), queries.clone());
        // Own OS threads (not the client runtime's), each driving the async `select` itself.
        handles.push(std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().build().map_err(|e| e.to_string())?;
            let tenant = TenantId::parse("bench").map_err(|e| e.to_string())?;
            let options = SelectOptions { max_tools: MAX_TOOLS, ..SelectOptions::default() };
            let mut result = LoadResult::default();
            let mut next = index;
            loop {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let query = &queries[next % queries.len()];
                next += threads;
                let selection = runtime.block_on(selector.select(&tenant, query, &options)).map_err(|e| e.to_string());
                let done = Instant::now();
                match selection {
                    Ok(selection) => {
                        std::hint::black_box(&selection);
                        result.completed += 1;
                        if done >= measure_from && done <= end {
                            result.ok += 1;
                            result.latencies.record(done - sent);
                        }
                    }
                    Err(error) => {
                        result.non_200 += 1;
                        result.first_error.get_or_insert(error);
                    }
                }
            }
            Ok::<_, String>(result)
        }));
    }
    let joined = tokio::task::spawn_blocking(move || handles.into_iter().map(|h| h.join()).collect::<Vec<_>>())
        .await
        .map_err(|e| format!("engine threads: {e}"))?;
    let mut total = LoadResult { seconds: duration.as_secs_f64(), ..Default::default() };
    for part in joined {
        let part = part.map_err(|_| "an engine thread panicked".to_string())??;
        total.ok += part.ok;
        total.non_200 += part.non_200;
        total.completed += part.completed;
        if total.first_error.is_none() {
            total.first_error = part.first_error;
        }
        total.latencies.extend(part.latencies);
    }
    Ok(total)
}

type ColdStart = [(&'static str, connectors::tools::evaluation::EvalReport); 2];

fn print(args: &ToolsArgs, reports: &[SizeReport], cold: &ColdStart, queries: usize, seconds: f64) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let line = "-".repeat(112);
    println!();
    println!("{}", "=".repeat(112));
    println!("Connectors Gateway benchmark: tools/select over HTTP vs the selection engine in-process");
    println!("{}", "=".repeat(112));
    println!(
        "machine: {cores} cores | {queries} queries (maxTools {MAX_TOOLS}) round robin | in-process: {} threads calling Selector::select",
        args.engine_threads
    );
    println!(
        "HTTP: POST /api/v1/tools/select, {} keep-alive connections, load generator {} threads | {} s warm-up + {} s per run, {} round(s)",
        args.connections, args.client_threads, args.warmup, args.duration, args.rounds
    );
    println!("CPU/query: the gateway process (HTTP) or this process (in-process), warm-up included");
    println!("{line}");
    println!(
        "  {:>6} {:<22} {:>10} {:>9} {:>9} {:>12} {:>8} {:>7}",
        "tools", "mode", "queries/s", "p50 ms", "p99 ms", "CPU us/query", "non-200", "errors"
    );
    let mut ratios = Vec::new();
    for report in reports {
        for (label, mode) in [
            ("in-process, closed loop", "in-process"),
            ("HTTP, closed loop", "http"),
            ("GET /api/v1/tenant", "admitted"),
        ] {
            let mut all = report.merged(mode);
            let (non_200, errors) = report.failures(mode);
            println!(
                "  {:>6} {:<22} {:>10.0} {:>9.3} {:>9.3} {:>12.0} {:>8} {:>7}",
                report.tools,
                label,
                report.mean_rps(mode),
                all.percentile_ms(50.0),
                all.percentile_ms(99.0),
                report.cpu_us(mode),
                non_200,
                errors
            );
        }
        for (label, lat) in
            [("in-process, 1 at a time", &report.single_engine), ("HTTP, 1 at a time", &report.single_http)]
        {
            let mut lat = lat.clone();
            println!(
                "  {:>6} {:<22} {:>10} {:>9.3} {:>9.3} {:>12} {:>8} {:>7}",
                report.tools,
                label,
                "",
                lat.percentile_ms(50.0),
                lat.percentile_ms(99.0),
                "",
                "",
                ""
            );
        }
        let (mut engine, mut http) = (report.merged("in-process"), report.merged("http"));
        let (mut single_engine, mut single_http) = (report.single_engine.clone(), report.single_http.clone());
        ratios.push(format!(
            "  {:>6} tools: throughput HTTP/in-process {:.3}; CPU per query HTTP/in-process {:.2}; p50 under load {:.3} vs {:.3} ms; \
             one at a time HTTP adds {:.3} ms at p50, {:.3} ms at p99",
            report.tools,
            report.mean_rps("http") / report.mean_rps("in-process").max(f64::MIN_POSITIVE),
            report.cpu_us("http") / report.cpu_us("in-process").max(f64::MIN_POSITIVE),
            http.percentile_ms(50.0),
            engine.percentile_ms(50.0),
            single_http.percentile_ms(50.0) - single_engine.percentile_ms(50.0),
            single_http.percentile_ms(99.0) - single_engine.percentile_ms(99.0),
        ));
    }
    println!("{line}");
    for ratio in ratios {
        println!("{ratio}");
    }
    println!("{line}");
    for report in reports {
        println!(
            "  {} tools: {} integrations registered (tools/list of the example MCP server) in {:.2} s; rankings HTTP vs in-process differing on {} of {queries} queries; gateway shutdown: {}",
            report.tools, report.integrations, report.register_seconds, report.rank_mismatches, report.shutdown
        );
    }
    println!("{line}");
    println!("Goals");
    if let Some(small) = reports.first() {
        let ratio = small.mean_rps("http") / small.mean_rps("in-process").max(f64::MIN_POSITIVE);
        println!(
            "  tools/select HTTP / in-process, {} tools: {ratio:.3}   (goal >= {HTTP_RATIO_GOAL})  {}",
            small.tools,
            verdict(ratio >= HTTP_RATIO_GOAL)
        );
        println!(
            "    ceiling while an admitted request costs what GET /api/v1/tenant did: {:.3} = selection {:.1} us / (selection + GET /api/v1/tenant {:.1} us + load generator {:.1} us)",
            small.ratio_ceiling(),
            small.cpu_us("in-process"),
            small.cpu_us("admitted"),
            small.client_cpu_us("http")
        );
    }
    for report in reports {
        println!(
            "  calls to the tenant's owner per tools/invoke ({} tools): {:.2}   (goal {OWNER_CALLS_GOAL:.0})  {}",
            report.tools,
            report.owner_calls_per_invoke,
            verdict(report.owner_calls_per_invoke <= OWNER_CALLS_GOAL + 0.005)
        );
    }
    let ranking = if args.embedding_model.is_some() { "words and meaning" } else { "words alone" };
    for (set, eval) in cold {
        println!(
            "  selection without history by {ranking}, {set} ({} queries): recall@5 {:.3}, nDCG@10 {:.3}, MRR {:.3}; p50 {:.3} ms, p95 {:.3} ms",
            eval.queries, eval.recall_at_5, eval.ndcg_at_10, eval.mrr, eval.p50_ms, eval.p95_ms
        );
    }
    let [(_, metatool), (_, seal)] = cold;
    println!(
        "  cold-start nDCG@10, metatool: {:.3}   (goal >= {COLD_NDCG_GOAL:.2})  {}",
        metatool.ndcg_at_10,
        verdict(metatool.ndcg_at_10 >= COLD_NDCG_GOAL)
    );
    println!(
        "  selection p95 in-process at 4,076 tools (seal-tools): {:.3} ms   (goal < {P95_GOAL_MS:.0} ms)  {}",
        seal.p95_ms,
        verdict(seal.p95_ms < P95_GOAL_MS)
    );
    println!("Benchmark wall time: {seconds:.1} s");
    println!("{}", "=".repeat(112));
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

fn json_value(args: &ToolsArgs, reports: &mut [SizeReport], cold: &ColdStart) -> Value {
    let sizes: Vec<Value> = reports
        .iter_mut()
        .map(|report| {
            let mut modes = BTreeMap::new();
            for mode in ["in-process", "http", "admitted"] {
                let mut all = report.merged(mode);
                let (non_200, errors) = report.failures(mode);
                modes.insert(
                    mode,
                    json!({
                        "queriesPerSecond": report.mean_rps(mode),
                        "p50Ms": all.percentile_ms(50.0),
                        "p99Ms": all.percentile_ms(99.0),
                        "cpuMicrosPerQuery": report.cpu_us(mode),
                        "loadGeneratorCpuMicrosPerQuery": report.client_cpu_us(mode),
                        "non200": non_200,
                        "errors": errors,
                        "runs": report.runs(mode).map(|r| json!({"round": r.round, "queriesPerSecond": r.result.rps()})).collect::<Vec<_>>(),
                    }),
                );
            }
            json!({
                "tools": report.tools,
                "integrations": report.integrations,
                "closedLoop": modes,
                "oneAtATime": {
                    "inProcess": {"p50Ms": report.single_engine.percentile_ms(50.0), "p99Ms": report.single_engine.percentile_ms(99.0)},
                    "http": {"p50Ms": report.single_http.percentile_ms(50.0), "p99Ms": report.single_http.percentile_ms(99.0)},
                },
                "throughputRatioHttpOverInProcess": report.mean_rps("http") / report.mean_rps("in-process").max(f64::MIN_POSITIVE),
                "throughputRatioCeiling": report.ratio_ceiling(),
                "rankingsDiffering": report.rank_mismatches,
                "ownerCallsPerInvoke": report.owner_calls_per_invoke,
                "shutdown": report.shutdown,
            })
        })
        .collect();
    json!({
        "settings": {"connections": args.connections, "engineThreads": args.engine_threads, "durationSeconds": args.duration,
                     "warmupSeconds": args.warmup, "rounds": args.rounds, "maxTools": MAX_TOOLS},
        "sizes": sizes,
        "coldStartEmbeddingModel": args.embedding_model.as_ref().map(|path| path.display().to_string()),
        "coldStart": cold.iter().map(|(set, eval)| json!({"set": set, "report": eval})).collect::<Vec<_>>(),
        "goals": {"httpOverInProcess": HTTP_RATIO_GOAL, "ownerCallsPerInvoke": OWNER_CALLS_GOAL,
                  "coldStartNdcgAt10Metatool": COLD_NDCG_GOAL, "p95MsAt4000Tools": P95_GOAL_MS},
    })
}
