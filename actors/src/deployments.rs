//! `Deployments`: one tenant's own MCP servers and where each deployment request stands.
//!
//! A plain state machine, like [`crate::refresh_schedule::RefreshSchedule`]: the tenant actor
//! feeds [`Input`]s with the time, carries out the returned [`Effect`]s in order, and sends
//! [`Input::Tick`] at [`Deployments::next_deadline`]. It does not read clocks, talk to a
//! deployer or an MCP server, or persist; it does not count quotas either (the tenant's
//! `Quotas` do, from [`Deployments::quota_count`]) nor know the shared integrations (the caller
//! says whether a name clashes with one).
//!
//! A server's status moves only along these edges (the API's `status`):
//!
//! ```text
//! (created) → pending → deploying → ready
//!                │          │  ↑      │
//!                │          │  └──────┤ (restart: a stdio server's process died with the gateway)
//!                │          ↓         ↓
//!                │        failed ← ───┘ (a ready server kept dying)
//!                │          │
//!                ↓          ↓
//!             (gone) ← deleting ← (any of deploying, ready, failed)
//! ```
//!
//! `pending` and `http` servers skip `deleting`: nothing was handed to a deployer, so deleting
//! them is forgetting them. `deploying` covers starting the server, discovering its tools
//! (`ready` means the tools are known) and waiting to retry a failed attempt.
//!
//! Write-ahead: every [`Effect::Deploy`] and [`Effect::Stop`] comes after an [`Effect::Persist`]
//! of a state that implies it (`deploying` with that attempt, `deleting`), and
//! [`Effect::Removed`] after one without the server. So after a crash, [`Input::Restored`] with
//! the last persisted records knows every deployment that may have started and every stop that
//! may not have finished, and resumes them: requests survive restarts.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::deployer::{BadServerName, DeployError, Endpoint, ServerName, ServerSource, SourceKind};

/// Longest category, description, command argument and URL accepted, and most arguments.
const MAX_CATEGORY_CHARS: usize = 64;
const MAX_DESCRIPTION_CHARS: usize = 1_000;
const MAX_TEXT_CHARS: usize = 4_096;
const MAX_ARGS: usize = 64;

/// Where a server stands, as the API's `status` names it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerStatus {
    Pending,
    Deploying,
    Ready,
    Failed,
    Deleting,
}

impl ServerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ServerStatus::Pending => "pending",
            ServerStatus::Deploying => "deploying",
            ServerStatus::Ready => "ready",
            ServerStatus::Failed => "failed",
            ServerStatus::Deleting => "deleting",
        }
    }
}

/// One server as persisted (through the `Store`) and shown by the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerRecord {
    pub name: ServerName,
    pub deployment_id: String,
    pub source: ServerSource,
    pub category: String,
    pub description: Option<String>,
    pub status: ServerStatus,
    pub endpoint: Option<Endpoint>,
    pub tools_discovered: u64,
    pub created_at: DateTime<Utc>,
    /// Why the last attempt failed (kept while retrying), or why the server is `failed`.
    pub error: Option<String>,
    /// Deployment attempts started for the current deployment.
    pub attempts: u32,
}

impl ServerRecord {
    /// Ready with an endpoint: a tool call can go to it.
    pub fn can_take_calls(&self) -> bool {
        self.status == ServerStatus::Ready && self.endpoint.is_some()
    }
}

/// The API's request body for a new server, as received.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerRequest {
    pub name: String,
    pub source: ServerSource,
    pub category: String,
    #[serde(default)]
    pub description: Option<String>,
}

/// A request whose every field is valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewServer {
    pub name: ServerName,
    pub source: ServerSource,
    pub category: String,
    pub description: Option<String>,
}

/// What is wrong with a request (the API's 400 `invalid_request`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum InvalidServer {
    #[error("{0}")]
    Name(String),
    #[error("`{field}` {problem}")]
    Field { field: &'static str, problem: String },
}

impl From<BadServerName> for InvalidServer {
    fn from(error: BadServerName) -> Self {
        InvalidServer::Name(error.to_string())
    }
}

impl ServerRequest {
    pub fn validate(self) -> Result<NewServer, InvalidServer> {
        let name = ServerName::parse(&self.name)?;
        let category = self.category.trim().to_owned();
        bounded_text("category", &category, MAX_CATEGORY_CHARS)?;
        if let Some(description) = &self.description {
            bounded_text("description", description, MAX_DESCRIPTION_CHARS)?;
        }
        match &self.source {
            ServerSource::Github { url } => web_url("source.url", url, &["https://"])?,
            ServerSource::Docker { image } => {
                bounded_text("source.image", image, MAX_TEXT_CHARS)?;
                if image.chars().any(char::is_whitespace) {
                    return Err(invalid("source.image", "must not contain whitespace"));
                }
            }
            ServerSource::Http { url, oauth_integration } => {
                web_url("source.url", url, &["http://", "https://"])?;
                if let Some(integration) = oauth_integration {
                    bounded_text("source.oauthIntegration", integration, MAX_CATEGORY_CHARS)?;
                }
            }
            ServerSource::Stdio { command, args } => {
                bounded_text("source.command", command, MAX_TEXT_CHARS)?;
                if args.len() > MAX_ARGS {
                    return Err(invalid("source.args", &format!("must have at most {MAX_ARGS} entries")));
                }
                // NUL cannot cross exec(2); the length bound keeps records small.
                if args.iter().any(|arg| arg.contains('\0') || arg.chars().count() > MAX_TEXT_CHARS) {
                    return Err(invalid("source.args", "entries must be free of NUL and at most 4096 characters"));
                }
            }
        }
        Ok(NewServer { name, source: self.source, category, description: self.description })
    }
}

fn invalid(field: &'static str, problem: &str) -> InvalidServer {
    InvalidServer::Field { field, problem: problem.to_owned() }
}

fn bounded_text(field: &'static str, text: &str, max_chars: usize) -> Result<(), InvalidServer> {
    if text.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if text.chars().count() > max_chars || text.contains('\0') {
        return Err(invalid(field, &format!("must be at most {max_chars} characters, without NUL")));
    }
    Ok(())
}

fn web_url(field: &'static str, url: &str, schemes: &[&str]) -> Result<(), InvalidServer> {
    bounded_text(field, url, MAX_TEXT_CHARS)?;
    let host = schemes.iter().find_map(|scheme| url.strip_prefix(scheme));
    match host {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') && !url.chars().any(char::is_whitespace) => Ok(()),
        _ => Err(invalid(field, &format!("must be an absolute {} URL", schemes.join(" or ")))),
    }
}

/// Why a request to create or delete a server is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum Rejection {
    /// The tenant already has a server of this name (409).
    #[error("server `{0}` already exists")]
    Conflict(ServerName),
    /// A shared integration has this name, and tool ids would be ambiguous (409).
    #[error("`{0}` is the name of an integration")]
    IntegrationClash(ServerName),
    /// The tenant has no server of this name (404).
    #[error("server `{0}` not found")]
    NotFound(ServerName),
    /// This gateway's deployer cannot run this kind of source (422 `deployer_unavailable`).
    #[error("this gateway cannot deploy `{0}` sources")]
    DeployerUnavailable(SourceKind),
}

/// What the deployer or the MCP client answered, as the shell tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// [`Effect::Deploy`] of `attempt` succeeded: the server is reached at `endpoint`.
    Ready { attempt: u32, endpoint: Endpoint },
    /// [`Effect::Deploy`] of `attempt` failed.
    Failed { attempt: u32, error: DeployError },
    /// The deployer reported, on its own, that the server kept dying and is no longer restarted.
    GaveUp { error: String },
    /// [`Effect::Stop`] succeeded.
    Stopped,
    /// [`Effect::Stop`] failed; it is retried with backoff, never given up (a server left
    /// running would keep the tenant's resources).
    StopFailed { error: String },
}

/// What happened, as the shell tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// The tenant asks for a new server. `deployment_id` is fresh (the shell draws it);
    /// `clashes_with_integration` says whether a shared integration has this name.
    Create { server: NewServer, deployment_id: String, clashes_with_integration: bool },
    /// The tenant deletes a server; deleting one already `deleting` changes nothing.
    Delete { name: ServerName },
    /// The records as last persisted, after a restart, an activation or a hand-off; they
    /// replace what is held. Interrupted work resumes (see [`Deployments::handle`]).
    Restored { records: Vec<ServerRecord> },
    /// An answer of the deployer for a server.
    DeployerReported { name: ServerName, report: Report },
    /// [`Effect::Discover`] found `count` tools.
    ToolsDiscovered { name: ServerName, count: u64 },
    /// [`Effect::Discover`] failed: the server did not answer `initialize`/`tools/list`.
    DiscoveryFailed { name: ServerName, error: String },
    /// Time passed; the shell sends it at [`Deployments::next_deadline`].
    Tick,
}

/// What the shell must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Replace the tenant's persisted records with these. If this fails, the shell must not
    /// carry out the effects after it (see [`Deployments::handle`]).
    Persist(Vec<ServerRecord>),
    /// Call `Deployer::deploy` and report the answer for `attempt`.
    Deploy { name: ServerName, source: ServerSource, attempt: u32 },
    /// Call `Deployer::stop` and report the answer.
    Stop { name: ServerName },
    /// Ask the server for its tools (MCP `initialize` + `tools/list`) at `endpoint`, offer them
    /// to the tenant, and report the count or the failure.
    Discover { name: ServerName, endpoint: Endpoint },
    /// The server is gone: withdraw its tools.
    Removed { name: ServerName },
}

/// How failed deployment attempts are retried, and how the caller's deployer is able.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// A deployment fails for good after this many attempts.
    pub max_attempts: u32,
    /// Wait before the second attempt; it doubles with every further failure.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 5, initial_backoff: Duration::seconds(2), max_backoff: Duration::seconds(60) }
    }
}

/// What is outstanding for a server, besides its persisted status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Progress {
    /// Nothing: waiting for the tenant (ready, failed) or for the next tick (pending).
    Idle,
    /// `Deploy` of the current attempt is out.
    Deploying,
    /// `Discover` is out.
    Discovering,
    /// `Stop` is out; `failures` counts the stops that failed before it.
    Stopping { failures: u32 },
    /// The next attempt (of a deployment, or of a stop while deleting) starts at `at`.
    RetryAt { at: DateTime<Utc>, stop_failures: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Server {
    record: ServerRecord,
    progress: Progress,
}

/// One tenant's own servers, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployments {
    retry: RetryPolicy,
    /// The source kinds the tenant's deployer can run; `http` always.
    supported: BTreeSet<SourceKind>,
    servers: BTreeMap<ServerName, Server>,
}

impl Deployments {
    /// No servers yet. `supported` lists the kinds the deployer can run (`Deployer::supports`);
    /// `http` needs no deployer and is always accepted.
    pub fn new(retry: RetryPolicy, supported: impl IntoIterator<Item = SourceKind>) -> Self {
        let mut supported: BTreeSet<SourceKind> = supported.into_iter().collect();
        supported.insert(SourceKind::Http);
        Self { retry, supported, servers: BTreeMap::new() }
    }

    pub fn server(&self, name: &ServerName) -> Option<&ServerRecord> {
        self.servers.get(name).map(|server| &server.record)
    }

    /// Every server, in name order.
    pub fn servers(&self) -> impl Iterator<Item = &ServerRecord> {
        self.servers.values().map(|server| &server.record)
    }

    /// How many servers count against `maxCustomServers`: all the tenant has, `deleting`
    /// included, since a server being stopped still holds what it ran on.
    pub fn quota_count(&self) -> u64 {
        self.servers.len() as u64
    }

    /// Whether an answer is awaited or a step is due: the actor should not passivate meanwhile.
    pub fn is_busy(&self) -> bool {
        self.servers
            .values()
            .any(|server| server.progress != Progress::Idle || server.record.status == ServerStatus::Pending)
    }

    /// The earliest time at which a [`Input::Tick`] could change anything: a pending server to
    /// start (at once) or a retry. `None` when only an input from the shell can.
    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        self.servers
            .values()
            .filter_map(|server| match (server.record.status, server.progress) {
                (ServerStatus::Pending, Progress::Idle) => Some(server.record.created_at),
                (_, Progress::RetryAt { at, .. }) => Some(at),
                _ => None,
            })
            .min()
    }

    /// Applies `input` at `now`. A refused request changes nothing.
    ///
    /// The shell carries out the effects in order, and calls the deployer for one tenant one
    /// call at a time, so a `Stop` always follows the `Deploy` it undoes. If a
    /// [`Effect::Persist`] fails, the shell drops the effects after it and puts back the state
    /// from before the input (this type is `Clone`; clone before `handle`), then answers a
    /// request with an error or feeds a report again later: nothing happened that a restart
    /// would not know of.
    ///
    /// Only [`Input::Tick`] and [`Input::Restored`] start due work (pending servers, retries);
    /// [`Input::Create`] only records the request, so the API can answer `pending` once it is
    /// persisted, and the shell ticks right after. On [`Input::Restored`], `pending` and
    /// `deploying` servers are deployed again (a new attempt), `ready` stdio servers too (their
    /// process died with the old gateway), other `ready` servers are asked for their tools
    /// again, and `deleting` servers are stopped again.
    pub fn handle(&mut self, now: DateTime<Utc>, input: Input) -> Result<Vec<Effect>, Rejection> {
        let before = self.records();
        let mut actions = Vec::new();
        match input {
            Input::Create { server, deployment_id, clashes_with_integration } => {
                let kind = server.source.kind();
                if !self.supported.contains(&kind) {
                    return Err(Rejection::DeployerUnavailable(kind));
                }
                if clashes_with_integration {
                    return Err(Rejection::IntegrationClash(server.name));
                }
                if self.servers.contains_key(&server.name) {
                    return Err(Rejection::Conflict(server.name));
                }
                let record = ServerRecord {
                    name: server.name.clone(),
                    deployment_id,
                    source: server.source,
                    category: server.category,
                    description: server.description,
                    status: ServerStatus::Pending,
                    endpoint: None,
                    tools_discovered: 0,
                    created_at: now,
                    error: None,
                    attempts: 0,
                };
                self.servers.insert(server.name, Server { record, progress: Progress::Idle });
            }
            Input::Delete { name } => {
                let Some(server) = self.servers.get_mut(&name) else { return Err(Rejection::NotFound(name)) };
                let status = server.record.status;
                if status == ServerStatus::Deleting {
                    // Already being stopped.
                } else if status == ServerStatus::Pending || !needs_deployer(&server.record) {
                    // Never handed to a deployer: forgetting it is deleting it.
                    self.servers.remove(&name);
                    actions.push(Effect::Removed { name });
                } else {
                    server.record.status = ServerStatus::Deleting;
                    server.progress = Progress::Stopping { failures: 0 };
                    actions.push(Effect::Stop { name });
                }
            }
            Input::Restored { records } => {
                self.servers = records
                    .into_iter()
                    .map(|record| (record.name.clone(), Server { record, progress: Progress::Idle }))
                    .collect();
                for server in self.servers.values_mut() {
                    server.restore(&mut actions);
                }
                self.servers.retain(|_, server| {
                    server.record.status != ServerStatus::Deleting || needs_deployer(&server.record)
                });
                self.advance(now, &mut actions);
                // Even unchanged, the records are written back, so that every resumed effect
                // follows a persist of the state implying it.
                if !self.servers.is_empty() || !before.is_empty() {
                    actions.insert(0, Effect::Persist(self.records()));
                    return Ok(actions);
                }
            }
            Input::DeployerReported { name, report } => {
                let retry = self.retry.clone();
                if let Some(server) = self.servers.get_mut(&name)
                    && server.reported(now, &retry, report, &mut actions)
                {
                    self.servers.remove(&name);
                    actions.push(Effect::Removed { name });
                }
            }
            Input::ToolsDiscovered { name, count } => {
                if let Some(server) = self.servers.get_mut(&name) {
                    server.discovered(count);
                }
            }
            Input::DiscoveryFailed { name, error } => {
                let retry = self.retry.clone();
                if let Some(server) = self.servers.get_mut(&name) {
                    server.discovery_failed(now, &retry, error);
                }
            }
            Input::Tick => self.advance(now, &mut actions),
        }
        let after = self.records();
        if after != before {
            actions.insert(0, Effect::Persist(after));
        }
        Ok(actions)
    }

    /// The records as they should be persisted, in name order.
    pub fn records(&self) -> Vec<ServerRecord> {
        self.servers.values().map(|server| server.record.clone()).collect()
    }

    /// Starts every pending server and every retry due at `now`.
    fn advance(&mut self, now: DateTime<Utc>, actions: &mut Vec<Effect>) {
        for server in self.servers.values_mut() {
            match (server.record.status, server.progress) {
                (ServerStatus::Pending, Progress::Idle) => server.start_attempt(actions),
                (ServerStatus::Deploying, Progress::RetryAt { at, .. }) if at <= now => server.start_attempt(actions),
                (ServerStatus::Deleting, Progress::RetryAt { at, stop_failures }) if at <= now => {
                    server.progress = Progress::Stopping { failures: stop_failures };
                    actions.push(Effect::Stop { name: server.record.name.clone() });
                }
                _ => {}
            }
        }
    }
}

impl Server {
    /// Starts the next deployment attempt: `http` needs only its tools discovered.
    fn start_attempt(&mut self, actions: &mut Vec<Effect>) {
        let record = &mut self.record;
        record.status = ServerStatus::Deploying;
        record.attempts += 1;
        match &record.source {
            ServerSource::Http { url, .. } => {
                let endpoint = Endpoint::Http { url: url.clone() };
                record.endpoint = Some(endpoint.clone());
                self.progress = Progress::Discovering;
                actions.push(Effect::Discover { name: record.name.clone(), endpoint });
            }
            source => {
                self.progress = Progress::Deploying;
                actions.push(Effect::Deploy {
                    name: record.name.clone(),
                    source: source.clone(),
                    attempt: record.attempts,
                });
            }
        }
    }

    /// Resumes what a restart interrupted (see [`Deployments::handle`]).
    fn restore(&mut self, actions: &mut Vec<Effect>) {
        let name = self.record.name.clone();
        match self.record.status {
            // Started by the next `advance`.
            ServerStatus::Pending | ServerStatus::Failed => {}
            ServerStatus::Deploying => self.start_attempt(actions),
            ServerStatus::Ready if self.record.source.kind() == SourceKind::Stdio => {
                // A fresh deployment, with a fresh count of attempts: the last one succeeded.
                self.record.attempts = 0;
                self.start_attempt(actions);
            }
            ServerStatus::Ready => match self.record.endpoint.clone() {
                Some(endpoint) => {
                    self.progress = Progress::Discovering;
                    actions.push(Effect::Discover { name, endpoint });
                }
                None => self.start_attempt(actions),
            },
            ServerStatus::Deleting if needs_deployer(&self.record) => {
                self.progress = Progress::Stopping { failures: 0 };
                actions.push(Effect::Stop { name });
            }
            // Removed by the caller: nothing to stop.
            ServerStatus::Deleting => actions.push(Effect::Removed { name }),
        }
    }

    /// Applies a deployer's answer; returns whether the server is gone.
    fn reported(&mut self, now: DateTime<Utc>, retry: &RetryPolicy, report: Report, actions: &mut Vec<Effect>) -> bool {
        let name = self.record.name.clone();
        match (self.record.status, self.progress, report) {
            (ServerStatus::Deploying, Progress::Deploying, Report::Ready { attempt, endpoint })
                if attempt == self.record.attempts =>
            {
                self.record.endpoint = Some(endpoint.clone());
                self.progress = Progress::Discovering;
                actions.push(Effect::Discover { name, endpoint });
            }
            (ServerStatus::Deploying, Progress::Deploying, Report::Failed { attempt, error })
                if attempt == self.record.attempts =>
            {
                self.attempt_failed(now, retry, error.to_string(), error.is_retryable());
            }
            // A deployment that finished after the delete: stop what it started.
            (ServerStatus::Deleting, _, Report::Ready { .. }) => {
                self.progress = Progress::Stopping { failures: self.stop_failures() };
                actions.push(Effect::Stop { name });
            }
            (ServerStatus::Ready, _, Report::GaveUp { error }) => {
                self.record.status = ServerStatus::Failed;
                self.record.error = Some(error);
                self.progress = Progress::Idle;
            }
            (ServerStatus::Deploying, Progress::Discovering, Report::GaveUp { error }) => {
                self.attempt_failed(now, retry, error, true);
            }
            (ServerStatus::Deleting, _, Report::Stopped) => return true,
            (ServerStatus::Deleting, Progress::Stopping { failures }, Report::StopFailed { error }) => {
                let failures = failures + 1;
                self.record.error = Some(error);
                self.progress = Progress::RetryAt { at: now + backoff(retry, failures), stop_failures: failures };
            }
            // Stale: for an older attempt, an earlier stop, or a server that moved on.
            _ => {}
        }
        false
    }

    fn discovered(&mut self, count: u64) {
        match (self.record.status, self.progress) {
            (ServerStatus::Deploying, Progress::Discovering) => {
                self.record.status = ServerStatus::Ready;
                self.record.error = None;
                self.record.tools_discovered = count;
                self.progress = Progress::Idle;
            }
            // Discovered again (after a restart, or a refresh): the count may have changed.
            (ServerStatus::Ready, _) => {
                self.record.tools_discovered = count;
                self.progress = Progress::Idle;
            }
            _ => {}
        }
    }

    fn discovery_failed(&mut self, now: DateTime<Utc>, retry: &RetryPolicy, error: String) {
        match (self.record.status, self.progress) {
            (ServerStatus::Deploying, Progress::Discovering) => {
                self.attempt_failed(now, retry, format!("tool discovery failed: {error}"), true)
            }
            // A ready server keeps the tools it had; the next discovery may succeed.
            (ServerStatus::Ready, Progress::Discovering) => self.progress = Progress::Idle,
            _ => {}
        }
    }

    /// The current attempt failed: retry later, or fail the deployment.
    fn attempt_failed(&mut self, now: DateTime<Utc>, retry: &RetryPolicy, error: String, retryable: bool) {
        self.record.error = Some(error);
        if retryable && self.record.attempts < retry.max_attempts {
            self.progress = Progress::RetryAt { at: now + backoff(retry, self.record.attempts), stop_failures: 0 };
        } else {
            self.record.status = ServerStatus::Failed;
            self.progress = Progress::Idle;
        }
    }

    fn stop_failures(&self) -> u32 {
        match self.progress {
            Progress::Stopping { failures } | Progress::RetryAt { stop_failures: failures, .. } => failures,
            _ => 0,
        }
    }
}

/// What an [`Effect::Persist`] of `after` changes when `before` was persisted, for a store that
/// keeps one entry per server (e.g. collection `servers:<tenant>`, entry = server name): the
/// records to write, and the names to delete. Write them all before the effects that follow.
pub fn record_changes<'a>(
    before: &'a [ServerRecord],
    after: &'a [ServerRecord],
) -> (Vec<&'a ServerRecord>, Vec<&'a ServerName>) {
    let written = after.iter().filter(|record| !before.contains(record)).collect();
    let deleted =
        before.iter().filter(|old| !after.iter().any(|new| new.name == old.name)).map(|old| &old.name).collect();
    (written, deleted)
}

/// Whether the server was handed to a deployer, which must stop it: every kind but `http`.
fn needs_deployer(record: &ServerRecord) -> bool {
    record.source.kind() != SourceKind::Http
}

/// The wait after the `failures`-th consecutive failure.
fn backoff(retry: &RetryPolicy, failures: u32) -> Duration {
    crate::backoff::doubled(retry.initial_backoff, retry.max_backoff, failures)
}

#[cfg(test)]
#[path = "deployments_tests.rs"]
mod tests;
