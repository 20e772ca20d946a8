//! The gateway under test as a child process (one, or several making up a cluster), and what
//! `/proc` tells about a process.

use std::collections::HashMap;
use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime};

use tempfile::TempDir;

use crate::http1::{self, Conn};

/// Finds the release `connectors` binary: `--gateway-bin`, else next to this bench binary
/// (both live in `<target>/release/`), else `$CARGO_TARGET_DIR/release`, else the workspace's
/// `target/release`.
pub(crate) fn locate_binary(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(path) = explicit {
        return if path.is_file() {
            Ok(path.to_path_buf())
        } else {
            Err(format!("--gateway-bin {}: no such file", path.display()))
        };
    }
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::current_exe().ok().and_then(|p| p.parent().map(Path::to_path_buf))
        && dir.ends_with("release")
    {
        candidates.push(dir.join("connectors"));
    }
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.push(PathBuf::from(dir).join("release/connectors"));
    }
    candidates.push(workspace_dir().join("target/release/connectors"));
    candidates.iter().find(|p| p.is_file()).cloned().ok_or_else(|| {
        let tried: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
        format!(
            "the release gateway binary was not found (tried {}).\nBuild it first, from {}:\n    cargo build --release && cargo run --release -p bench",
            tried.join(", "),
            workspace_dir().display()
        )
    })
}

fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Warns when the gateway's sources are newer than the binary (it was not rebuilt).
pub(crate) fn stale_warning(binary: &Path) -> Option<String> {
    let built = fs::metadata(binary).and_then(|m| m.modified()).ok()?;
    let root = workspace_dir();
    let newest = ["src", "actors/src", "cluster/src"].iter().filter_map(|d| newest_mtime(&root.join(d))).max()?;
    (newest > built).then(|| {
        format!(
            "warning: {} is older than the gateway sources; run `cargo build --release` first for current numbers",
            binary.display()
        )
    })
}

fn newest_mtime(dir: &Path) -> Option<SystemTime> {
    let mut newest = None;
    for entry in fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let time = if path.is_dir() { newest_mtime(&path) } else { entry.metadata().and_then(|m| m.modified()).ok() };
        newest = newest.max(time);
    }
    newest
}

/// A free port on 127.0.0.1 (bound and released; the small race is acceptable here).
pub(crate) fn free_addr() -> Result<SocketAddr, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot bind 127.0.0.1:0: {e}"))?;
    listener.local_addr().map_err(|e| e.to_string())
}

/// A fresh admin API key (nodes of one cluster share one).
pub(crate) fn new_admin_key() -> String {
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("bench-admin-{}-{nanos:x}", std::process::id())
}

/// Environment variables that change what the gateway runs as; a child gets only the ones its
/// [`Options`] set, never the bench's own.
const MODE_VARIABLES: [&str; 9] = [
    "REDIS_URL",
    "REDIS_TENANT_PREFIX",
    "RATE_LIMIT_STORE",
    "CONNECTORS_NODE_ID",
    "CONNECTORS_CLUSTER_LISTEN",
    "CONNECTORS_CLUSTER_COOKIE",
    "VAULT_ADDR",
    "CONNECTORS_MASTER_KEY",
    "CONNECTORS_EMBEDDING_MODEL",
];

/// A fresh master key for the sealed secrets (32 random bytes as hex): with Redis, the nodes of
/// one cluster must share one.
pub(crate) fn new_master_key() -> Result<String, String> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("/dev/urandom: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// How to start one gateway process.
pub(crate) struct Options {
    /// Shown in messages (e.g. the cluster node id).
    pub(crate) name: String,
    pub(crate) admin_key: String,
    /// Extra environment (Redis URL, node id, ...).
    pub(crate) env: Vec<(&'static str, String)>,
    /// YAML appended to the bench config (e.g. a `cluster:` section); may be empty.
    pub(crate) extra_config: &'static str,
}

/// The running gateway. Killed (SIGKILL) on drop if [`Gateway::stop`] was not called.
pub(crate) struct Gateway {
    child: Child,
    pub(crate) name: String,
    pub(crate) addr: SocketAddr,
    pub(crate) admin_key: String,
    binary: PathBuf,
    env: Vec<(&'static str, String)>,
    dir: TempDir,
}

impl Gateway {
    /// A standalone gateway with the embedded store.
    pub(crate) fn spawn(binary: &Path) -> Result<Self, String> {
        let options = Options { name: "gateway".into(), admin_key: new_admin_key(), env: Vec::new(), extra_config: "" };
        Self::spawn_with(binary, options)
    }

    pub(crate) fn spawn_with(binary: &Path, options: Options) -> Result<Self, String> {
        let dir =
            tempfile::Builder::new().prefix("connectors-bench-").tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let config = dir.path().join("bench.yaml");
        fs::write(&config, format!("{CONFIG}{}", options.extra_config))
            .map_err(|e| format!("cannot write {}: {e}", config.display()))?;
        let addr = free_addr()?;
        let child = launch(binary, addr, dir.path(), &options.admin_key, &options.env)?;
        let Options { name, admin_key, env, .. } = options;
        Ok(Self { child, name, addr, admin_key, binary: binary.to_path_buf(), env, dir })
    }

    /// Starts the gateway again after it exited: the same ports, data dir, config and
    /// environment (its log goes on in the same file).
    pub(crate) fn restart(&mut self) -> Result<(), String> {
        if let Ok(None) = self.child.try_wait() {
            return Err(format!("{} (pid {}) is still running: cannot start it again", self.name, self.pid()));
        }
        self.child = launch(&self.binary, self.addr, self.dir.path(), &self.admin_key, &self.env)?;
        Ok(())
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the gateway wrote to stdout and stderr (over all its starts).
    pub(crate) fn log_text(&self) -> String {
        fs::read_to_string(self.dir.path().join("gateway.log")).unwrap_or_default()
    }

    /// Copies its log into `dir` as `<name>.log`.
    pub(crate) fn save_log(&self, dir: &Path) -> Result<(), String> {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let path = dir.join(format!("{}.log", self.name));
        fs::write(&path, self.log_text()).map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    /// The last lines the gateway wrote (for error messages).
    pub(crate) fn log_tail(&self) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Waits until `/healthz` answers 200.
    pub(crate) async fn wait_healthy(&mut self, timeout: Duration) -> Result<(), String> {
        self.wait_for("/healthz", "healthy", timeout).await
    }

    /// Waits until `/readyz` answers 200 (in a cluster: joined, and serving its shards).
    pub(crate) async fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        self.wait_for("/readyz", "ready", timeout).await
    }

    async fn wait_for(&mut self, path: &str, what: &str, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let request = http1::request("GET", self.addr, path, &[], None);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("{} exited during start-up ({status}):\n{}", self.name, self.log_tail()));
            }
            if let Ok(mut conn) = Conn::connect(self.addr).await
                && let Ok(200) = conn.status(&request).await
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("{} did not become {what} within {timeout:?}:\n{}", self.name, self.log_tail()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Resident set size of the gateway process, in KiB.
    pub(crate) fn rss_kib(&self) -> Result<u64, String> {
        rss_kib(self.pid())
    }

    /// Sends SIGTERM and waits for the exit; returns the status and how long shutdown took.
    pub(crate) fn stop(mut self, timeout: Duration) -> Result<(ExitStatus, Duration), String> {
        let started = self.terminate()?;
        self.wait_exit(started, timeout)
    }

    /// Sends SIGTERM; returns when it was sent.
    pub(crate) fn terminate(&self) -> Result<Instant, String> {
        let started = Instant::now();
        let sent = Command::new("kill").arg("-TERM").arg(self.pid().to_string()).stderr(Stdio::null()).status();
        if !matches!(sent, Ok(s) if s.success()) {
            return Err(format!("could not send SIGTERM to {} (pid {}): {sent:?}", self.name, self.pid()));
        }
        Ok(started)
    }

    /// Waits for the exit after [`Gateway::terminate`] (killed on drop when it does not come).
    pub(crate) fn wait_exit(&mut self, started: Instant, timeout: Duration) -> Result<(ExitStatus, Duration), String> {
        loop {
            match self.exit_after(started, timeout) {
                Some(outcome) => return outcome,
                None => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// [`Gateway::wait_exit`] for async code (polls without blocking the runtime's thread).
    pub(crate) async fn exited(
        &mut self,
        started: Instant,
        timeout: Duration,
    ) -> Result<(ExitStatus, Duration), String> {
        loop {
            match self.exit_after(started, timeout) {
                Some(outcome) => return outcome,
                None => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }

    /// The exit status and the time since `started` once the process has exited, an error once
    /// `timeout` has passed without it, `None` while it still runs (does not wait).
    pub(crate) fn exit_after(
        &mut self,
        started: Instant,
        timeout: Duration,
    ) -> Option<Result<(ExitStatus, Duration), String>> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(Ok((status, started.elapsed()))),
            Ok(None) if started.elapsed() < timeout => None,
            Ok(None) => Some(Err(format!("{} did not exit within {timeout:?} of SIGTERM (killed)", self.name))),
            Err(error) => Some(Err(format!("waiting for {}: {error}", self.name))),
        }
    }

    /// The exit status once the process has exited (`None` while it runs).
    pub(crate) fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

/// Starts `connectors serve` on `addr` with the config, data dir and log file in `dir`; the log
/// file (stdout and stderr) is appended to.
fn launch(
    binary: &Path,
    addr: SocketAddr,
    dir: &Path,
    admin_key: &str,
    env: &[(&'static str, String)],
) -> Result<Child, String> {
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("gateway.log"))
        .map_err(|e| format!("gateway log: {e}"))?;
    let mut command = Command::new(binary);
    command
        .arg("serve")
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--config")
        .arg(dir.join("bench.yaml"))
        .env("ADMIN_API_KEY", admin_key)
        // The example MCP server the tools bench registers listens on loopback, which the
        // gateway's outbound policy refuses by default.
        .env("OUTBOUND_ALLOWED_HOSTS", "127.0.0.1");
    for name in MODE_VARIABLES {
        command.env_remove(name);
    }
    command.envs(env.iter().map(|(name, value)| (name, value)));
    command
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))
}

/// Stops gateways together: SIGTERM to all first, then waits for each (their logs stay readable
/// until they are dropped). One line per gateway; `true` when every one exited with status 0.
pub(crate) fn stop_all(gateways: &mut [Gateway], timeout: Duration) -> (Vec<String>, bool) {
    let mut lines = Vec::new();
    let mut clean = true;
    let mut waiting = Vec::new();
    for gateway in gateways.iter_mut() {
        if let Some(status) = gateway.exit_status() {
            clean &= status.success();
            lines.push(format!("{}: had already exited ({status})", gateway.name));
            continue;
        }
        match gateway.terminate() {
            Ok(started) => waiting.push((gateway, started)),
            Err(message) => {
                lines.push(message);
                clean = false;
            }
        }
    }
    for (gateway, started) in waiting {
        let name = gateway.name.clone();
        let outcome = gateway.wait_exit(started, timeout);
        let tail = gateway.log_tail();
        match outcome {
            Ok((status, took)) => {
                clean &= status.success();
                lines.push(format!("{name}: SIGTERM -> {status} after {} ms", took.as_millis()));
                if !status.success() {
                    lines.push(format!("--- last log lines of {name} ---\n{tail}"));
                }
            }
            Err(message) => {
                clean = false;
                lines.push(format!("{name}: FAILED: {message}\n--- last log lines ---\n{tail}"));
            }
        }
    }
    (lines, clean)
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// High limits everywhere so that the benchmark never hits a rate limit; actors stay active.
const CONFIG: &str = "\
multiTenant:
  rateLimits:
    requestsPerMinute: 100000000
    requestsPerHour: 100000000
    requestsPerDay: 100000000
  quotas:
    maxToolInvocations: 100000000
gateway:
  passivateAfterSeconds: 3600
  tickMillis: 1000
";

/// The pid of a child of this process whose name (`comm`) starts with `name`.
pub(crate) fn child_pid_named(name: &str) -> Option<u32> {
    children().into_iter().find_map(|(pid, comm)| comm.starts_with(name).then_some(pid))
}

/// The running children of this process: (pid, name).
fn children() -> Vec<(u32, String)> {
    let me = std::process::id();
    let Ok(entries) = fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = fs::read_to_string(entry.path().join("stat")).ok()?;
            let (open, close) = (stat.find('(')?, stat.rfind(')')?);
            // After the name: state (field 3), then the parent pid (field 4).
            let ppid: u32 = stat[close + 2..].split_whitespace().nth(1)?.parse().ok()?;
            (ppid == me).then(|| (pid, stat[open + 1..close].to_string()))
        })
        .collect()
}

/// CPU time (user + system) of each thread of a process, by thread name, in seconds.
pub(crate) fn thread_cpu(pid: u32) -> HashMap<String, f64> {
    let ticks = clock_ticks();
    let mut by_name: HashMap<String, f64> = HashMap::new();
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else { return by_name };
    for task in tasks.flatten() {
        let Ok(stat) = fs::read_to_string(task.path().join("stat")) else { continue };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let name = stat[open + 1..close].to_string();
        // Fields after the name: state is field 3, utime field 14, stime field 15.
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        let get = |i: usize| fields.get(i - 3).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        *by_name.entry(name).or_default() += (get(14) + get(15)) / ticks;
    }
    by_name
}

/// Total CPU seconds of a process (all threads, including exited ones).
pub(crate) fn process_cpu(pid: u32) -> f64 {
    cpu_ticks(pid, false) / clock_ticks()
}

/// CPU seconds of this process and of its children, running or exited (once reaped, a child's
/// time is added to its parent's): the whole benchmark, gateways and Redis included.
pub(crate) fn family_cpu() -> f64 {
    let running: f64 = children().iter().map(|(pid, _)| cpu_ticks(*pid, true)).sum();
    (cpu_ticks(std::process::id(), true) + running) / clock_ticks()
}

/// User + system clock ticks of a process, with those of its reaped children when `reaped`.
fn cpu_ticks(pid: u32, reaped: bool) -> f64 {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    let Some(close) = stat.rfind(')') else { return 0.0 };
    let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
    let get = |i: usize| fields.get(i - 3).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime, stime (fields 14, 15), cutime, cstime (16, 17).
    get(14) + get(15) + if reaped { get(16) + get(17) } else { 0.0 }
}

fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// Busy CPU seconds of the whole machine (all cores) from `/proc/stat`.
pub(crate) fn system_busy() -> f64 {
    let Ok(stat) = fs::read_to_string("/proc/stat") else { return 0.0 };
    let Some(cpu) = stat.lines().next().and_then(|l| l.strip_prefix("cpu ")) else { return 0.0 };
    let fields: Vec<f64> = cpu.split_whitespace().filter_map(|v| v.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let busy: f64 = [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| fields.get(i)).sum();
    busy / clock_ticks()
}

/// The resident memory of process `pid`, in KiB.
pub(crate) fn rss_kib(pid: u32) -> Result<u64, String> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| format!("/proc status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no VmRSS in /proc/PID/status".to_string())
}
