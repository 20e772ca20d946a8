//! The local [`Deployer`]: tenants' own servers on this node, the default of a single node.
//!
//! - `http` sources are only registered: the server runs elsewhere, its URL is its endpoint.
//! - `stdio` sources run as child processes, only when their `command` and arguments fit a
//!   template on the operator's allow-list ([`CommandAllowList`]), with a cleared environment
//!   (only `PATH`, and `HOME` pointing at the server's working directory), stdin/stdout/stderr
//!   piped. When the gateway runs as root, children run as another user (`deployer.runAsUser`,
//!   nobody by default), which can read nothing of the gateway's data dir (0700, files 0600) nor
//!   the gateway's `/proc` entries; their working directories are outside the data dir, each
//!   0700, owned by that user, under a root only it can traverse, and named by a keyed hash so
//!   one tenant's server cannot find another's.
//! - `github` and `docker` sources are refused as [`DeployError::Unsupported`]: building and
//!   running images is the Kubernetes deployer's work.
//!
//! **Who owns a stdio process: this deployer, not the MCP client.** Each process has a
//! supervisor task that spawns it, restarts it with exponential backoff when it dies, gives up
//! (and reports [`DeployerEventKind::GaveUp`]) when it keeps dying, and kills and reaps it on
//! [`Deployer::stop`] or when the deployer is dropped. Everything that decides whether and how
//! a tenant's command runs on this machine — the allow-list, the environment, the directory,
//! the restart rate — is in this one file, and the MCP client cannot start a process at all:
//! it asks [`LocalDeployer::attach`] for the stdio of the running one and speaks MCP over it
//! (rmcp takes the `(ChildStdout, ChildStdin)` pair as a transport). The alternative, handing
//! the client a command to spawn, would put the restart policy and the security checks in the
//! connection pool, restart a crashing server at the rate of the tenant's calls, and leave a
//! dead server looking `ready`.
//!
//! An MCP stdio server serves exactly one session in its life, so a process's pipes are
//! handed out once: attaching again (the client lost its session) replaces the process with a
//! fresh one. A process that exits with status 0 after its session was handed out ended its
//! session (its stdin was closed) and is started again at once; any other exit is a death,
//! restarted after the backoff.
//!
//! Not isolated beyond that: children of all tenants share one user (so they may signal each
//! other), processes a child spawns itself outlive a kill of the child, and a gateway that does
//! not run as root cannot change its children's user at all (they can then read its data dir).
//! Isolation between tenants' servers is the Kubernetes deployer's: a namespace per tenant.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use super::command_allow_list::CommandAllowList;
use async_trait::async_trait;
use connectors_actors::deployer::{
    DeployError, Deployer, DeployerEvent, DeployerEventKind, Endpoint, Health, ServerName, ServerSource, SourceKind,
};
use connectors_actors::reply::Answer;
use connectors_actors::tenant::TenantId;
use rand::TryRngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};
use tokio::sync::{Mutex, broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The `PATH` children get unless configured otherwise: the system's directories, not the
/// gateway's own `PATH`, so what a bare command name means does not depend on how the gateway
/// was started.
pub const DEFAULT_CHILD_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Reports kept for receivers that fall behind.
const EVENT_BUFFER: usize = 256;
/// Longest line of a child's stderr copied to the log; the rest of the line is dropped.
const MAX_STDERR_LINE: usize = 1_024;

/// How a dead process is started again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Wait after the first death; it doubles with every further death in a row.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// A process that ran this long had a good run: its next death starts the count afresh.
    pub stable_after: Duration,
    /// Deaths in a row (each before `stable_after`) that are restarted; the next one gives up.
    pub max_restarts: u32,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            stable_after: Duration::from_secs(60),
            max_restarts: 5,
        }
    }
}

impl RestartPolicy {
    /// The wait after the `deaths`-th death in a row (1, 2, ...).
    fn backoff(&self, deaths: u32) -> Duration {
        let doubled = self.initial_backoff.checked_mul(1 << deaths.saturating_sub(1).min(20));
        doubled.map_or(self.max_backoff, |delay| delay.min(self.max_backoff))
    }
}

#[derive(Debug, Clone)]
pub struct LocalDeployerConfig {
    pub allowed_commands: CommandAllowList,
    /// Where servers' working directories are made (one per server, named by a keyed hash).
    pub work_dir: PathBuf,
    /// The user and group children run as; `None`: the gateway's own.
    pub run_as: Option<(u32, u32)>,
    /// The only `PATH` children see.
    pub child_path: OsString,
    pub restart: RestartPolicy,
}

impl LocalDeployerConfig {
    /// Children run as the gateway's user, working under `work_dir`.
    pub fn new(work_dir: impl Into<PathBuf>, allowed_commands: CommandAllowList) -> Self {
        Self {
            work_dir: work_dir.into(),
            run_as: None,
            allowed_commands,
            child_path: DEFAULT_CHILD_PATH.into(),
            restart: RestartPolicy::default(),
        }
    }
}

/// The stdio of a running server, for one MCP session.
#[derive(Debug)]
pub struct StdioPipes {
    pub stdout: ChildStdout,
    pub stdin: ChildStdin,
    /// Which process of this server it is: 1 for the first, more after restarts.
    pub incarnation: u64,
}

/// Why no stdio could be handed out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttachError {
    #[error("server is not deployed")]
    NotDeployed,
    #[error("server is not a stdio server")]
    NotStdio,
    #[error("server died and restarts in {0:?}")]
    Restarting(Duration),
    #[error("server kept dying and is no longer restarted: {0}")]
    GaveUp(String),
    #[error("server is being stopped")]
    Stopping,
}

type Key = (TenantId, ServerName);

enum Deployed {
    /// Registered: the server runs elsewhere.
    Http,
    Process(Supervised),
}

/// A stdio server's supervisor, as the deployer holds it.
struct Supervised {
    source: ServerSource,
    control: mpsc::Sender<Control>,
    status: Arc<std::sync::Mutex<ProcessStatus>>,
    task: JoinHandle<()>,
}

#[derive(Debug, Clone)]
struct ProcessStatus {
    health: Health,
    pid: Option<u32>,
}

enum Control {
    Attach(oneshot::Sender<Result<StdioPipes, AttachError>>),
    Stop(oneshot::Sender<()>),
}

pub struct LocalDeployer {
    config: Arc<LocalDeployerConfig>,
    /// Keys the names of servers' directories, so no server can derive another's.
    dir_key: [u8; 32],
    deployed: Mutex<HashMap<Key, Deployed>>,
    events: broadcast::Sender<DeployerEvent>,
}

impl LocalDeployer {
    pub fn new(config: LocalDeployerConfig) -> Self {
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let mut dir_key = [0; 32];
        OsRng.try_fill_bytes(&mut dir_key).expect("the operating system's random source is available");
        // What an earlier process left there is scratch no one will use again: its names were
        // keyed with another key.
        if let Err(error) = empty_dir(&config.work_dir) {
            tracing::warn!(dir = %config.work_dir.display(), %error, "servers' old working directories not removed");
        }
        Self { config: Arc::new(config), dir_key, deployed: Mutex::new(HashMap::new()), events }
    }

    /// The working directory (and `HOME`) of a tenant's server: scratch space for the life of this
    /// gateway process, named by a keyed hash of tenant and server.
    pub fn server_dir(&self, tenant: &TenantId, name: &ServerName) -> PathBuf {
        let mut hash = Sha256::new();
        hash.update(self.dir_key);
        hash.update(tenant.as_str().as_bytes());
        hash.update([0]);
        hash.update(name.as_str().as_bytes());
        self.config.work_dir.join(hex::encode(&hash.finalize()[..16]))
    }

    /// Makes the server's directory, private to the user its process runs as.
    async fn make_server_dir(&self, dir: &Path) -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        // The root is traversable, not listable, by the children's user.
        tokio::fs::create_dir_all(&self.config.work_dir).await?;
        tokio::fs::set_permissions(&self.config.work_dir, std::fs::Permissions::from_mode(0o711)).await?;
        tokio::fs::create_dir_all(dir).await?;
        tokio::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).await?;
        if let Some((uid, gid)) = self.config.run_as {
            std::os::unix::fs::chown(dir, Some(uid), Some(gid))?;
        }
        Ok(())
    }

    /// The stdin and stdout of the server's running process, for one MCP session. If they were
    /// handed out already, the process is replaced by a fresh one whose pipes are returned.
    pub async fn attach(&self, tenant: &TenantId, name: &ServerName) -> Result<StdioPipes, AttachError> {
        let control = match self.deployed.lock().await.get(&(tenant.clone(), name.clone())) {
            None => return Err(AttachError::NotDeployed),
            Some(Deployed::Http) => return Err(AttachError::NotStdio),
            Some(Deployed::Process(supervised)) => supervised.control.clone(),
        };
        let (reply, answer) = oneshot::channel();
        control.send(Control::Attach(reply)).await.map_err(|_| AttachError::Stopping)?;
        answer.await.map_err(|_| AttachError::Stopping)?
    }

    /// The process id of the server's running process, if one runs.
    pub async fn pid(&self, tenant: &TenantId, name: &ServerName) -> Option<u32> {
        match self.deployed.lock().await.get(&(tenant.clone(), name.clone()))? {
            Deployed::Process(supervised) => supervised.status().pid,
            Deployed::Http => None,
        }
    }

    /// Stops every server, each process killed and reaped before this returns. Dropping the
    /// deployer does the same without waiting.
    pub async fn shutdown(&self) {
        let all: Vec<Deployed> = self.deployed.lock().await.drain().map(|(_, deployed)| deployed).collect();
        for deployed in all {
            if let Deployed::Process(supervised) = deployed {
                supervised.stop().await;
            }
        }
    }

    async fn deploy_stdio(
        &self,
        tenant: &TenantId,
        name: &ServerName,
        source: &ServerSource,
        command: &str,
        args: &[String],
    ) -> Result<Endpoint, DeployError> {
        if !self.config.allowed_commands.permits(command, args) {
            return Err(DeployError::Refused(format!(
                "command `{command}` with these arguments fits no template on the operator's allow-list"
            )));
        }
        let key = (tenant.clone(), name.clone());
        let mut deployed = self.deployed.lock().await;
        match deployed.remove(&key) {
            // The same server, up or about to be restarted: deploying again changes nothing.
            Some(Deployed::Process(supervised))
                if supervised.source == *source && !matches!(supervised.status().health, Health::GaveUp { .. }) =>
            {
                deployed.insert(key, Deployed::Process(supervised));
                return Ok(Endpoint::Stdio);
            }
            Some(Deployed::Process(supervised)) => supervised.stop().await,
            Some(Deployed::Http) | None => {}
        }
        let dir = self.server_dir(tenant, name);
        self.make_server_dir(&dir)
            .await
            .map_err(|error| DeployError::Failed(format!("cannot create the server's directory: {error}")))?;
        let spawner = Spawner {
            command: command.to_owned(),
            args: args.to_vec(),
            dir,
            path: self.config.child_path.clone(),
            run_as: self.config.run_as,
        };
        let child =
            spawner.spawn().map_err(|error| DeployError::Failed(format!("cannot start `{command}`: {error}")))?;
        let supervised = Supervisor::start(
            tenant.clone(),
            name.clone(),
            source.clone(),
            spawner,
            child,
            self.config.restart.clone(),
            self.events.clone(),
        );
        deployed.insert(key, Deployed::Process(supervised));
        Ok(Endpoint::Stdio)
    }
}

#[async_trait]
impl Deployer for LocalDeployer {
    fn supports(&self, kind: SourceKind) -> bool {
        matches!(kind, SourceKind::Http | SourceKind::Stdio)
    }

    async fn deploy(
        &self,
        tenant: &TenantId,
        name: &ServerName,
        source: &ServerSource,
    ) -> Result<Endpoint, DeployError> {
        match source {
            ServerSource::Http { url, .. } => {
                let key = (tenant.clone(), name.clone());
                let replaced = self.deployed.lock().await.insert(key, Deployed::Http);
                if let Some(Deployed::Process(supervised)) = replaced {
                    supervised.stop().await;
                }
                Ok(Endpoint::Http { url: url.clone() })
            }
            ServerSource::Stdio { command, args } => self.deploy_stdio(tenant, name, source, command, args).await,
            ServerSource::Github { .. } | ServerSource::Docker { .. } => Err(DeployError::Unsupported(source.kind())),
        }
    }

    async fn stop(&self, tenant: &TenantId, name: &ServerName) -> Result<(), DeployError> {
        let removed = self.deployed.lock().await.remove(&(tenant.clone(), name.clone()));
        if let Some(Deployed::Process(supervised)) = removed {
            supervised.stop().await;
        }
        // A deleted server's files go with it; a server of the same name later starts afresh.
        match tokio::fs::remove_dir_all(self.server_dir(tenant, name)).await {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(DeployError::Failed(format!("cannot remove the server's directory: {error}"))),
        }
    }

    async fn health(&self, tenant: &TenantId, name: &ServerName) -> Option<Health> {
        match self.deployed.lock().await.get(&(tenant.clone(), name.clone()))? {
            Deployed::Http => Some(Health::Running { restarts: 0 }),
            Deployed::Process(supervised) => Some(supervised.status().health),
        }
    }

    fn events(&self) -> broadcast::Receiver<DeployerEvent> {
        self.events.subscribe()
    }
}

impl Supervised {
    fn status(&self) -> ProcessStatus {
        self.status.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Has the supervisor kill and reap the process, and waits until it has.
    async fn stop(self) {
        let (reply, done) = oneshot::channel();
        if self.control.send(Control::Stop(reply)).await.is_ok() {
            // Answered once stopped, or dropped as the task ends: the task's result says which.
            done.await.ok();
        }
        if let Err(error) = self.task.await {
            tracing::error!(%error, "a custom server's supervisor ended abnormally");
        }
    }
}

/// How one server's process is started: always the same command, environment and directory.
struct Spawner {
    command: String,
    args: Vec<String>,
    dir: PathBuf,
    path: OsString,
    run_as: Option<(u32, u32)>,
}

impl Spawner {
    fn spawn(&self) -> io::Result<Child> {
        let mut command = Command::new(&self.command);
        if let Some((uid, gid)) = self.run_as {
            // Run as root, std also drops the supplementary groups when it changes the user.
            command.uid(uid).gid(gid);
        }
        command
            .args(&self.args)
            // Nothing of the gateway's environment (keys, tokens, Vault and Redis addresses) leaks.
            .env_clear()
            .env("PATH", &self.path)
            .env("HOME", &self.dir)
            .current_dir(&self.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // If the supervisor is dropped without stopping (runtime shutdown), the child dies too.
            .kill_on_drop(true)
            .spawn()
    }
}

/// How one run of the process ended.
enum Ended {
    /// Stopped on request, or the deployer is gone: the supervisor ends.
    Stopped,
    /// Killed to give a new session a fresh process: start one now.
    Replaced,
    /// Exited with status 0 after its session was handed out: the session ended; start one now.
    SessionOver,
    /// Died, after running for `ran_for`.
    Died { error: String, ran_for: Duration },
}

/// The task that owns one server's process.
struct Supervisor {
    tenant: TenantId,
    name: ServerName,
    spawner: Spawner,
    policy: RestartPolicy,
    events: broadcast::Sender<DeployerEvent>,
    control: mpsc::Receiver<Control>,
    status: Arc<std::sync::Mutex<ProcessStatus>>,
    /// Processes started so far.
    incarnation: u64,
    /// Times the process died and was started again.
    restarts: u32,
    /// An attach waiting for the process being started.
    waiting: Option<oneshot::Sender<Result<StdioPipes, AttachError>>>,
    /// The process being started replaces one that died.
    restarting: bool,
}

impl Supervisor {
    fn start(
        tenant: TenantId,
        name: ServerName,
        source: ServerSource,
        spawner: Spawner,
        first: Child,
        policy: RestartPolicy,
        events: broadcast::Sender<DeployerEvent>,
    ) -> Supervised {
        let (control, control_rx) = mpsc::channel(16);
        let status =
            Arc::new(std::sync::Mutex::new(ProcessStatus { health: Health::Running { restarts: 0 }, pid: first.id() }));
        let supervisor = Supervisor {
            tenant,
            name,
            spawner,
            policy,
            events,
            control: control_rx,
            status: Arc::clone(&status),
            incarnation: 0,
            restarts: 0,
            waiting: None,
            restarting: false,
        };
        let task = tokio::spawn(supervisor.run(first));
        Supervised { source, control, status, task }
    }

    async fn run(mut self, first: Child) {
        let mut next = Some(first);
        // Deaths in a row, each before `stable_after`.
        let mut deaths = 0;
        loop {
            let spawned = match next.take() {
                Some(child) => Ok(child),
                None => self.spawner.spawn(),
            };
            let ended = match spawned {
                Ok(child) => self.run_once(child).await,
                Err(error) => Ended::Died { error: format!("cannot start: {error}"), ran_for: Duration::ZERO },
            };
            let (error, ran_for) = match ended {
                Ended::Stopped => return,
                Ended::Replaced | Ended::SessionOver => continue,
                Ended::Died { error, ran_for } => (error, ran_for),
            };
            deaths = if ran_for >= self.policy.stable_after { 1 } else { deaths + 1 };
            tracing::warn!(tenant = %self.tenant, server = %self.name, %error, deaths, "custom server died");
            if deaths > self.policy.max_restarts {
                if let Some(waiting) = self.waiting.take() {
                    waiting.answer(Err(AttachError::GaveUp(error.clone())));
                }
                self.set_status(Health::GaveUp { error: error.clone() }, None);
                self.report(DeployerEventKind::GaveUp { error: error.clone() });
                self.wait_for_stop(&error).await;
                return;
            }
            let restart_in = self.policy.backoff(deaths);
            self.restarts += 1;
            let health = Health::Restarting { restarts: self.restarts, restart_in, last_error: error.clone() };
            self.set_status(health, None);
            self.report(DeployerEventKind::Died { error, restarts: self.restarts, restart_in });
            if let Some(waiting) = self.waiting.take() {
                waiting.answer(Err(AttachError::Restarting(restart_in)));
            }
            if !self.back_off(restart_in).await {
                return;
            }
            self.restarting = true;
        }
    }

    /// Runs one process until it ends or is stopped, handing out its pipes once.
    async fn run_once(&mut self, mut child: Child) -> Ended {
        self.incarnation += 1;
        let started = Instant::now();
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(log_stderr(self.tenant.clone(), self.name.clone(), stderr));
        }
        let mut pipes = match (child.stdout.take(), child.stdin.take()) {
            (Some(stdout), Some(stdin)) => Some(StdioPipes { stdout, stdin, incarnation: self.incarnation }),
            _ => None,
        };
        self.set_status(Health::Running { restarts: self.restarts }, child.id());
        if std::mem::take(&mut self.restarting) {
            self.report(DeployerEventKind::Restarted { restarts: self.restarts });
        }
        // An attacher that gave up meanwhile hands the pipes back, for the next one.
        if let Some(waiting) = self.waiting.take()
            && let Err(Ok(unused)) = waiting.send(pipes.take().ok_or(AttachError::Stopping))
        {
            pipes = Some(unused);
        }
        loop {
            tokio::select! {
                exit = child.wait() => {
                    let handed_out = pipes.is_none();
                    return match exit {
                        Ok(status) if status.success() && handed_out => Ended::SessionOver,
                        Ok(status) => Ended::Died { error: describe(status), ran_for: started.elapsed() },
                        Err(error) => Ended::Died { error: error.to_string(), ran_for: started.elapsed() },
                    };
                }
                message = self.control.recv() => match message {
                    Some(Control::Attach(reply)) => match pipes.take() {
                        Some(handed) => {
                            // An attacher that gave up meanwhile hands the pipes back.
                            if let Err(Ok(unused)) = reply.send(Ok(handed)) {
                                pipes = Some(unused);
                            }
                        }
                        None => {
                            self.kill(&mut child).await;
                            self.waiting = Some(reply);
                            return Ended::Replaced;
                        }
                    },
                    Some(Control::Stop(reply)) => {
                        self.kill(&mut child).await;
                        reply.answer(());
                        return Ended::Stopped;
                    }
                    // The deployer was dropped.
                    None => {
                        self.kill(&mut child).await;
                        return Ended::Stopped;
                    }
                },
            }
        }
    }

    /// Waits `delay` before the next start; `false` if stopped meanwhile.
    async fn back_off(&mut self, delay: Duration) -> bool {
        let until = Instant::now() + delay;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(until) => return true,
                message = self.control.recv() => match message {
                    Some(Control::Attach(reply)) => {
                        let left = until.saturating_duration_since(Instant::now());
                        reply.answer(Err(AttachError::Restarting(left)));
                    }
                    Some(Control::Stop(reply)) => {
                        reply.answer(());
                        return false;
                    }
                    None => return false,
                },
            }
        }
    }

    /// Gave up: answers attaches with the reason until stopped.
    async fn wait_for_stop(&mut self, error: &str) {
        while let Some(message) = self.control.recv().await {
            match message {
                Control::Attach(reply) => {
                    reply.answer(Err(AttachError::GaveUp(error.to_owned())));
                }
                Control::Stop(reply) => {
                    reply.answer(());
                    return;
                }
            }
        }
    }

    /// SIGKILL, then wait: the process is reaped before this returns.
    async fn kill(&self, child: &mut Child) {
        if let Err(error) = child.kill().await {
            tracing::warn!(tenant = %self.tenant, server = %self.name, %error, "cannot kill a custom server");
        }
    }

    fn set_status(&self, health: Health, pid: Option<u32>) {
        *self.status.lock().unwrap_or_else(PoisonError::into_inner) = ProcessStatus { health, pid };
    }

    fn report(&self, kind: DeployerEventKind) {
        // No receiver is not an error: nobody is listening yet.
        self.events.send(DeployerEvent { tenant: self.tenant.clone(), name: self.name.clone(), kind }).ok();
    }
}

fn describe(status: ExitStatus) -> String {
    match status.code() {
        Some(code) => format!("exited with status {code}"),
        None => format!("ended by a signal ({status})"),
    }
}

fn empty_dir(dir: &Path) -> io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        entries => entries?,
    };
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(entry.path())?;
        } else {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// Copies a server's stderr to the log, line by line, each line cut at [`MAX_STDERR_LINE`]
/// bytes so a server cannot make the gateway buffer without bound. Reading also keeps the pipe
/// from filling up and blocking the server.
async fn log_stderr(tenant: TenantId, server: ServerName, stderr: ChildStderr) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::with_capacity(MAX_STDERR_LINE);
    loop {
        let (consumed, end_of_line) = match reader.fill_buf().await {
            Ok([]) | Err(_) => break,
            Ok(buffer) => {
                let end = buffer.iter().position(|&byte| byte == b'\n');
                let chunk = &buffer[..end.unwrap_or(buffer.len())];
                let room = MAX_STDERR_LINE.saturating_sub(line.len());
                line.extend_from_slice(&chunk[..chunk.len().min(room)]);
                (end.map_or(buffer.len(), |at| at + 1), end.is_some())
            }
        };
        reader.consume(consumed);
        if end_of_line {
            tracing::debug!(%tenant, %server, "{}", String::from_utf8_lossy(&line));
            line.clear();
        }
    }
    if !line.is_empty() {
        tracing::debug!(%tenant, %server, "{}", String::from_utf8_lossy(&line));
    }
}

#[cfg(test)]
#[path = "local_deployer_tests.rs"]
mod tests;
