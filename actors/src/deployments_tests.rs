use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;

use super::*;

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_798_761_600, 0).expect("2027-01-01 is a valid timestamp")
}

fn at(secs: i64) -> DateTime<Utc> {
    t0() + Duration::seconds(secs)
}

fn name(text: &str) -> ServerName {
    ServerName::parse(text).expect("test names are valid")
}

fn stdio() -> ServerSource {
    ServerSource::Stdio { command: "mcp-notes".into(), args: vec!["--stdio".into()] }
}

fn http() -> ServerSource {
    ServerSource::Http { url: "https://mcp.example.com/mcp".into(), oauth_integration: None }
}

fn github() -> ServerSource {
    ServerSource::Github { url: "https://github.com/acme/notes-mcp".into() }
}

fn new_server(server: &str, source: ServerSource) -> NewServer {
    NewServer { name: name(server), source, category: "notes".into(), description: None }
}

fn create(server: &str, source: ServerSource) -> Input {
    Input::Create {
        server: new_server(server, source),
        deployment_id: format!("dep-{server}"),
        clashes_with_integration: false,
    }
}

fn report(server: &str, report: Report) -> Input {
    Input::DeployerReported { name: name(server), report }
}

fn ready(server: &str, attempt: u32) -> Input {
    report(server, Report::Ready { attempt, endpoint: Endpoint::Stdio })
}

fn failed(server: &str, attempt: u32) -> Input {
    report(server, Report::Failed { attempt, error: DeployError::Failed("spawn failed".into()) })
}

fn discovered(server: &str, count: u64) -> Input {
    Input::ToolsDiscovered { name: name(server), count }
}

fn deployments() -> Deployments {
    Deployments::new(RetryPolicy::default(), [SourceKind::Stdio])
}

/// Strips the persisted records, which the write-ahead property test checks, to the actions.
fn actions(effects: Vec<Effect>) -> Vec<Effect> {
    effects.into_iter().filter(|effect| !matches!(effect, Effect::Persist(_))).collect()
}

fn deploy(server: &str, attempt: u32) -> Effect {
    Effect::Deploy { name: name(server), source: stdio(), attempt }
}

fn stop(server: &str) -> Effect {
    Effect::Stop { name: name(server) }
}

fn discover(server: &str, endpoint: Endpoint) -> Effect {
    Effect::Discover { name: name(server), endpoint }
}

fn removed(server: &str) -> Effect {
    Effect::Removed { name: name(server) }
}

fn status(d: &Deployments, server: &str) -> Option<ServerStatus> {
    d.server(&name(server)).map(|record| record.status)
}

fn handle(d: &mut Deployments, now: DateTime<Utc>, input: Input) -> Vec<Effect> {
    d.handle(now, input).expect("accepted")
}

/// A stdio server created at t0 whose first deployment attempt is out.
fn deploying_stdio() -> Deployments {
    let mut d = deployments();
    handle(&mut d, t0(), create("notes", stdio()));
    assert_eq!(actions(handle(&mut d, t0(), Input::Tick)), vec![deploy("notes", 1)]);
    d
}

fn ready_stdio() -> Deployments {
    let mut d = deploying_stdio();
    handle(&mut d, t0(), ready("notes", 1));
    handle(&mut d, t0(), discovered("notes", 3));
    assert_eq!(status(&d, "notes"), Some(ServerStatus::Ready));
    d
}

#[test]
fn a_created_server_is_persisted_pending_and_deployed_on_the_next_tick() {
    let mut d = deployments();
    let effects = handle(&mut d, t0(), create("notes", stdio()));
    let [Effect::Persist(records)] = effects.as_slice() else { panic!("only persisted: {effects:?}") };
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!((record.status, record.attempts, record.created_at), (ServerStatus::Pending, 0, t0()));
    assert_eq!(record.deployment_id, "dep-notes");
    assert_eq!(d.next_deadline(), Some(t0()), "a pending server is due at once");
    assert!(d.is_busy());

    let effects = handle(&mut d, at(1), Input::Tick);
    let [Effect::Persist(records), Effect::Deploy { attempt: 1, .. }] = effects.as_slice() else {
        panic!("persisted deploying before deploying: {effects:?}")
    };
    assert_eq!((records[0].status, records[0].attempts), (ServerStatus::Deploying, 1));
    assert_eq!(d.next_deadline(), None, "only the deployer's answer moves it now");
}

#[test]
fn a_stdio_server_is_ready_once_deployed_and_its_tools_discovered() {
    let mut d = deploying_stdio();
    assert_eq!(actions(handle(&mut d, at(1), ready("notes", 1))), vec![discover("notes", Endpoint::Stdio)]);
    assert_eq!(status(&d, "notes"), Some(ServerStatus::Deploying), "ready means the tools are known");
    assert!(actions(handle(&mut d, at(2), discovered("notes", 4))).is_empty());
    let record = d.server(&name("notes")).expect("exists");
    assert_eq!((record.status, record.tools_discovered), (ServerStatus::Ready, 4));
    assert_eq!(record.endpoint, Some(Endpoint::Stdio));
    assert!(!d.is_busy());
}

#[test]
fn an_http_server_is_registered_by_its_url_without_a_deployer() {
    let mut d = Deployments::new(RetryPolicy::default(), []);
    handle(&mut d, t0(), create("remote", http()));
    let url = Endpoint::Http { url: "https://mcp.example.com/mcp".into() };
    assert_eq!(actions(handle(&mut d, t0(), Input::Tick)), vec![discover("remote", url.clone())]);
    assert_eq!(d.server(&name("remote")).and_then(|record| record.endpoint.clone()), Some(url));
    handle(&mut d, t0(), discovered("remote", 2));
    assert_eq!(status(&d, "remote"), Some(ServerStatus::Ready));
}

#[test]
fn names_conflict_with_the_tenants_servers_and_with_integrations() {
    let mut d = deployments();
    handle(&mut d, t0(), create("notes", stdio()));
    let before = d.clone();
    assert_eq!(d.handle(t0(), create("notes", http())), Err(Rejection::Conflict(name("notes"))));
    let clash = Input::Create {
        server: new_server("github", http()),
        deployment_id: "x".into(),
        clashes_with_integration: true,
    };
    assert_eq!(d.handle(t0(), clash), Err(Rejection::IntegrationClash(name("github"))));
    assert_eq!(d, before, "a refused request changes nothing");
}

#[test]
fn sources_the_deployer_cannot_run_are_refused_as_deployer_unavailable() {
    let mut local = deployments();
    assert_eq!(local.handle(t0(), create("repo", github())), Err(Rejection::DeployerUnavailable(SourceKind::Github)));
    let docker = ServerSource::Docker { image: "acme/notes:1".into() };
    assert_eq!(local.handle(t0(), create("img", docker)), Err(Rejection::DeployerUnavailable(SourceKind::Docker)));
    assert_eq!(local.quota_count(), 0);

    let mut kubernetes = Deployments::new(RetryPolicy::default(), [SourceKind::Github, SourceKind::Docker]);
    assert!(kubernetes.handle(t0(), create("repo", github())).is_ok());
    let stdio_refused = kubernetes.handle(t0(), create("cmd", stdio()));
    assert_eq!(stdio_refused, Err(Rejection::DeployerUnavailable(SourceKind::Stdio)));
}

#[test]
fn every_server_the_tenant_holds_counts_against_its_quota_until_it_is_gone() {
    let mut d = ready_stdio();
    handle(&mut d, t0(), create("remote", http()));
    assert_eq!(d.quota_count(), 2);
    handle(&mut d, t0(), Input::Delete { name: name("notes") });
    assert_eq!(status(&d, "notes"), Some(ServerStatus::Deleting));
    assert_eq!(d.quota_count(), 2, "a server being stopped still holds its resources");
    handle(&mut d, t0(), report("notes", Report::Stopped));
    assert_eq!(d.quota_count(), 1);
}

#[test]
fn failed_attempts_are_retried_with_doubling_backoff_then_the_deployment_fails() {
    let mut d = deploying_stdio();
    let mut now = t0();
    for (attempt, wait_secs) in [(1, 2), (2, 4), (3, 8), (4, 16)] {
        let effects = handle(&mut d, now, failed("notes", attempt));
        assert!(actions(effects).is_empty());
        let record = d.server(&name("notes")).expect("exists");
        assert_eq!(record.status, ServerStatus::Deploying, "still deploying while it retries");
        assert_eq!(record.error.as_deref(), Some("deployment failed: spawn failed"), "the last error shows");
        let retry = now + Duration::seconds(wait_secs);
        assert_eq!(d.next_deadline(), Some(retry));
        assert!(actions(handle(&mut d, retry - Duration::milliseconds(1), Input::Tick)).is_empty());
        assert_eq!(actions(handle(&mut d, retry, Input::Tick)), vec![deploy("notes", attempt + 1)]);
        now = retry;
    }
    handle(&mut d, now, failed("notes", 5));
    let record = d.server(&name("notes")).expect("exists");
    assert_eq!((record.status, record.attempts), (ServerStatus::Failed, 5));
    assert_eq!(record.error.as_deref(), Some("deployment failed: spawn failed"));
    assert_eq!(d.next_deadline(), None);
}

#[test]
fn backoff_is_capped() {
    let retry = RetryPolicy { max_attempts: 100, ..RetryPolicy::default() };
    assert_eq!(backoff(&retry, 5), Duration::seconds(32));
    assert_eq!(backoff(&retry, 6), Duration::seconds(60));
    assert_eq!(backoff(&retry, 99), Duration::seconds(60));
    let huge = RetryPolicy { initial_backoff: Duration::days(365_000), ..retry };
    assert_eq!(backoff(&huge, 30), Duration::seconds(60), "an overflowing delay is the cap, not a panic");
}

#[test]
fn a_refused_deployment_fails_at_once() {
    let mut d = deploying_stdio();
    let refused = DeployError::Refused("command `rm` is not on the operator's allow-list".into());
    handle(&mut d, t0(), report("notes", Report::Failed { attempt: 1, error: refused }));
    let record = d.server(&name("notes")).expect("exists");
    assert_eq!(record.status, ServerStatus::Failed);
    assert_eq!(record.error.as_deref(), Some("refused: command `rm` is not on the operator's allow-list"));
}

#[test]
fn answers_for_older_attempts_are_ignored() {
    let mut d = deploying_stdio();
    handle(&mut d, t0(), failed("notes", 1));
    handle(&mut d, at(2), Input::Tick);
    let before = d.clone();
    assert!(handle(&mut d, at(3), ready("notes", 1)).is_empty(), "attempt 1 already failed");
    assert!(handle(&mut d, at(3), failed("notes", 1)).is_empty());
    assert!(handle(&mut d, at(3), discovered("notes", 9)).is_empty(), "nothing was asked for its tools");
    assert_eq!(d, before);
}

#[test]
fn failed_discovery_is_a_failed_attempt() {
    let mut d = deploying_stdio();
    handle(&mut d, t0(), ready("notes", 1));
    handle(&mut d, t0(), Input::DiscoveryFailed { name: name("notes"), error: "EOF".into() });
    let record = d.server(&name("notes")).expect("exists");
    assert_eq!(record.status, ServerStatus::Deploying);
    assert_eq!(record.error.as_deref(), Some("tool discovery failed: EOF"));
    assert_eq!(actions(handle(&mut d, at(2), Input::Tick)), vec![deploy("notes", 2)]);
}

#[test]
fn a_ready_server_that_keeps_dying_fails() {
    let mut d = ready_stdio();
    handle(&mut d, t0(), report("notes", Report::GaveUp { error: "exited with status 1".into() }));
    let record = d.server(&name("notes")).expect("exists");
    assert_eq!((record.status, record.error.as_deref()), (ServerStatus::Failed, Some("exited with status 1")));
}

#[test]
fn deleting_a_pending_or_http_server_forgets_it_without_a_stop() {
    let mut d = deployments();
    handle(&mut d, t0(), create("notes", stdio()));
    let effects = handle(&mut d, t0(), Input::Delete { name: name("notes") });
    assert_eq!(effects, vec![Effect::Persist(vec![]), removed("notes")]);

    handle(&mut d, t0(), create("remote", http()));
    handle(&mut d, t0(), Input::Tick);
    handle(&mut d, t0(), discovered("remote", 1));
    let effects = handle(&mut d, t0(), Input::Delete { name: name("remote") });
    assert_eq!(effects, vec![Effect::Persist(vec![]), removed("remote")]);
    assert_eq!(d.handle(t0(), Input::Delete { name: name("remote") }), Err(Rejection::NotFound(name("remote"))));
}

#[test]
fn deleting_a_deployed_server_stops_it_then_forgets_it() {
    let mut d = ready_stdio();
    let effects = handle(&mut d, t0(), Input::Delete { name: name("notes") });
    let [Effect::Persist(records), Effect::Stop { .. }] = effects.as_slice() else {
        panic!("persisted deleting before stopping: {effects:?}")
    };
    assert_eq!(records[0].status, ServerStatus::Deleting);
    assert!(handle(&mut d, t0(), Input::Delete { name: name("notes") }).is_empty(), "deleting twice is harmless");
    assert!(handle(&mut d, t0(), discovered("notes", 5)).is_empty(), "a deleting server's tools are not taken");
    assert_eq!(handle(&mut d, t0(), report("notes", Report::Stopped)), vec![Effect::Persist(vec![]), removed("notes")]);
    assert!(d.handle(t0(), create("notes", stdio())).is_ok(), "the name is free again");
}

#[test]
fn a_deployment_answered_after_the_delete_is_stopped_again() {
    let mut d = deploying_stdio();
    assert_eq!(actions(handle(&mut d, t0(), Input::Delete { name: name("notes") })), vec![stop("notes")]);
    assert_eq!(actions(handle(&mut d, t0(), ready("notes", 1))), vec![stop("notes")]);
    assert_eq!(status(&d, "notes"), Some(ServerStatus::Deleting));
}

#[test]
fn a_failed_stop_is_retried_with_backoff_and_never_given_up() {
    let mut d = ready_stdio();
    handle(&mut d, t0(), Input::Delete { name: name("notes") });
    let mut now = t0();
    for wait_secs in [2, 4, 8, 16, 32, 60, 60, 60] {
        let effects = handle(&mut d, now, report("notes", Report::StopFailed { error: "busy".into() }));
        assert!(actions(effects).is_empty());
        let retry = now + Duration::seconds(wait_secs);
        assert_eq!(d.next_deadline(), Some(retry));
        assert_eq!(actions(handle(&mut d, retry, Input::Tick)), vec![stop("notes")]);
        now = retry;
    }
    handle(&mut d, now, report("notes", Report::Stopped));
    assert_eq!(d.quota_count(), 0);
}

fn restored(records: Vec<ServerRecord>) -> (Deployments, Vec<Effect>) {
    let mut d = deployments();
    let effects = handle(&mut d, at(100), Input::Restored { records });
    (d, effects)
}

fn record_with(d: &Deployments, server: &str) -> ServerRecord {
    d.server(&name(server)).expect("exists").clone()
}

#[test]
fn after_a_restart_interrupted_deployments_resume() {
    let mut before = deployments();
    handle(&mut before, t0(), create("waiting", stdio()));
    let pending = record_with(&before, "waiting");
    let deploying = record_with(&deploying_stdio(), "notes");

    let (d, effects) = restored(vec![pending]);
    assert!(matches!(effects.first(), Some(Effect::Persist(records)) if records[0].status == ServerStatus::Deploying));
    assert_eq!(actions(effects), vec![deploy("waiting", 1)]);
    assert_eq!(status(&d, "waiting"), Some(ServerStatus::Deploying));

    let (d, effects) = restored(vec![deploying]);
    assert_eq!(actions(effects), vec![deploy("notes", 2)], "the interrupted attempt is started again, as a new one");
    assert_eq!(record_with(&d, "notes").attempts, 2);
}

#[test]
fn after_a_restart_ready_stdio_servers_are_deployed_again_and_others_rediscovered() {
    let stdio_record = record_with(&ready_stdio(), "notes");
    let mut remote = deployments();
    handle(&mut remote, t0(), create("remote", http()));
    handle(&mut remote, t0(), Input::Tick);
    handle(&mut remote, t0(), discovered("remote", 2));
    let http_record = record_with(&remote, "remote");

    let (d, effects) = restored(vec![stdio_record, http_record]);
    let url = Endpoint::Http { url: "https://mcp.example.com/mcp".into() };
    assert_eq!(actions(effects), vec![deploy("notes", 1), discover("remote", url)]);
    assert_eq!(status(&d, "notes"), Some(ServerStatus::Deploying), "its process died with the old gateway");
    assert_eq!(status(&d, "remote"), Some(ServerStatus::Ready), "an http server did not go anywhere");
    assert_eq!(record_with(&d, "remote").tools_discovered, 2);
}

#[test]
fn after_a_restart_deletions_resume_and_failures_stay() {
    let mut deleting = ready_stdio();
    handle(&mut deleting, t0(), Input::Delete { name: name("notes") });
    let mut failing = deploying_stdio();
    handle(
        &mut failing,
        t0(),
        report("notes", Report::Failed { attempt: 1, error: DeployError::Refused("no".into()) }),
    );
    let mut failed_record = record_with(&failing, "notes");
    failed_record.name = name("broken");

    let (d, effects) = restored(vec![record_with(&deleting, "notes"), failed_record]);
    assert_eq!(actions(effects), vec![stop("notes")]);
    assert_eq!(status(&d, "broken"), Some(ServerStatus::Failed));
    assert_eq!(d.next_deadline(), None);
}

#[test]
fn record_changes_name_what_to_write_and_what_to_delete() {
    let mut d = ready_stdio();
    handle(&mut d, t0(), create("remote", http()));
    let before = d.records();
    handle(&mut d, t0(), Input::Delete { name: name("remote") });
    handle(&mut d, t0(), create("third", stdio()));
    handle(&mut d, t0(), Input::Delete { name: name("notes") });
    let after = d.records();
    let (written, deleted) = record_changes(&before, &after);
    let written: Vec<(&str, ServerStatus)> = written.iter().map(|r| (r.name.as_str(), r.status)).collect();
    assert_eq!(written, vec![("notes", ServerStatus::Deleting), ("third", ServerStatus::Pending)]);
    assert_eq!(deleted, vec![&name("remote")]);
    assert_eq!(record_changes(&after, &after), (vec![], vec![]));
}

#[test]
fn records_serialize_in_the_apis_shape_and_round_trip() {
    let record = record_with(&ready_stdio(), "notes");
    let json = serde_json::to_value(&record).expect("serializable");
    assert_eq!(json["status"], "ready");
    assert_eq!(json["toolsDiscovered"], 3);
    assert_eq!(json["source"], serde_json::json!({"type": "stdio", "command": "mcp-notes", "args": ["--stdio"]}));
    assert_eq!(json["endpoint"], serde_json::json!({"type": "stdio"}));
    let back: ServerRecord = serde_json::from_value(json).expect("deserializable");
    assert_eq!(back, record);
}

fn request(json: serde_json::Value) -> Result<NewServer, InvalidServer> {
    serde_json::from_value::<ServerRequest>(json).expect("well-formed body").validate()
}

#[test]
fn requests_are_read_in_the_apis_shape() {
    let server = request(serde_json::json!({
        "name": "crm",
        "source": {"type": "http", "url": "https://crm.example.com/mcp", "oauthIntegration": "salesforce"},
        "category": " sales ",
        "description": "Our CRM",
    }))
    .expect("valid");
    assert_eq!(server.name, name("crm"));
    assert_eq!(server.category, "sales", "trimmed");
    assert_eq!(
        server.source,
        ServerSource::Http { url: "https://crm.example.com/mcp".into(), oauth_integration: Some("salesforce".into()) }
    );
    let server = request(serde_json::json!({
        "name": "notes", "source": {"type": "stdio", "command": "mcp-notes"}, "category": "notes"
    }))
    .expect("valid");
    assert_eq!(server.source, ServerSource::Stdio { command: "mcp-notes".into(), args: vec![] });
}

#[test]
fn invalid_requests_are_refused_with_the_field_at_fault() {
    let base = serde_json::json!({"name": "ok", "source": {"type": "stdio", "command": "mcp"}, "category": "c"});
    let with = |key: &str, value: serde_json::Value| {
        let mut body = base.clone();
        body[key] = value;
        request(body)
    };
    for bad_name in ["", "Notes", "a.b", "../x", "-a", "a-", &"a".repeat(64)] {
        assert!(matches!(with("name", bad_name.into()), Err(InvalidServer::Name(_))), "{bad_name:?}");
    }
    assert!(with("name", "a".repeat(63).into()).is_ok());
    let field_of = |result: Result<NewServer, InvalidServer>| match result {
        Err(InvalidServer::Field { field, .. }) => field,
        other => panic!("expected a field error, got {other:?}"),
    };
    assert_eq!(field_of(with("category", " ".into())), "category");
    assert_eq!(field_of(with("description", "x".repeat(1_001).into())), "description");
    let source = |value: serde_json::Value| field_of(with("source", value));
    assert_eq!(source(serde_json::json!({"type": "stdio", "command": ""})), "source.command");
    assert_eq!(source(serde_json::json!({"type": "stdio", "command": "x", "args": ["a\0b"]})), "source.args");
    assert_eq!(source(serde_json::json!({"type": "http", "url": "ftp://x"})), "source.url");
    assert_eq!(source(serde_json::json!({"type": "http", "url": "https://"})), "source.url");
    assert_eq!(source(serde_json::json!({"type": "http", "url": "https://a b"})), "source.url");
    assert_eq!(source(serde_json::json!({"type": "github", "url": "http://github.com/a/b"})), "source.url");
    assert_eq!(source(serde_json::json!({"type": "docker", "image": "a b"})), "source.image");
    let missing_url = serde_json::from_value::<ServerRequest>(serde_json::json!({
        "name": "ok", "source": {"type": "http"}, "category": "c"
    }));
    assert!(missing_url.is_err(), "a source without its field is not a request");
}

// ---------------------------------------------------------------------------------------------
// Property: write-ahead, no deploy after a stop, documented transitions only.

const NAMES: [&str; 3] = ["alpha", "beta", "gamma"];

#[derive(Debug, Clone)]
enum Op {
    Create {
        server: usize,
        kind: usize,
        clash: bool,
    },
    Delete {
        server: usize,
    },
    Ready {
        server: usize,
        attempt: u32,
    },
    Failed {
        server: usize,
        attempt: u32,
        retryable: bool,
    },
    GaveUp {
        server: usize,
    },
    Stopped {
        server: usize,
    },
    StopFailed {
        server: usize,
    },
    Discovered {
        server: usize,
        count: u64,
    },
    DiscoveryFailed {
        server: usize,
    },
    /// Time passes by this many seconds, then a tick.
    Tick {
        secs: i64,
    },
    /// The gateway restarts: a fresh state machine restored from what was persisted.
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    let server = 0..NAMES.len();
    prop_oneof![
        3 => (server.clone(), 0..4_usize, prop::bool::weighted(0.1)).prop_map(|(server, kind, clash)| Op::Create { server, kind, clash }),
        2 => server.clone().prop_map(|server| Op::Delete { server }),
        3 => (server.clone(), 0..6_u32).prop_map(|(server, attempt)| Op::Ready { server, attempt }),
        3 => (server.clone(), 0..6_u32, any::<bool>()).prop_map(|(server, attempt, retryable)| Op::Failed { server, attempt, retryable }),
        1 => server.clone().prop_map(|server| Op::GaveUp { server }),
        2 => server.clone().prop_map(|server| Op::Stopped { server }),
        1 => server.clone().prop_map(|server| Op::StopFailed { server }),
        2 => (server.clone(), 0..5_u64).prop_map(|(server, count)| Op::Discovered { server, count }),
        1 => server.clone().prop_map(|server| Op::DiscoveryFailed { server }),
        3 => (0..70_i64).prop_map(|secs| Op::Tick { secs }),
        1 => Just(Op::Restart),
    ]
}

fn source_of(kind: usize) -> ServerSource {
    match kind {
        0 => stdio(),
        1 => http(),
        2 => github(),
        _ => ServerSource::Docker { image: "acme/notes:1".into() },
    }
}

/// The documented edges (the module's diagram), written out independently of the code.
fn allowed(before: Option<ServerStatus>, after: Option<ServerStatus>, http: bool, restart: bool) -> bool {
    use ServerStatus::*;
    match (before, after) {
        (a, b) if a == b => true,
        (None, Some(Pending)) => !restart,
        (Some(Pending), Some(Deploying) | None) => true,
        (Some(Deploying), Some(Ready | Failed | Deleting)) => true,
        (Some(Ready), Some(Deploying)) => restart,
        (Some(Ready), Some(Failed | Deleting)) => true,
        (Some(Failed), Some(Deleting)) => true,
        (Some(Deleting), None) => true,
        (Some(Deploying | Ready | Failed), None) => http,
        _ => false,
    }
}

struct Harness {
    d: Deployments,
    now: DateTime<Utc>,
    /// What the store holds: the last `Persist`.
    persisted: Vec<ServerRecord>,
    /// Names stopped since they were last created: a `Deploy` for them is a bug.
    stopped: BTreeSet<ServerName>,
}

impl Harness {
    fn persisted(&self, server: &ServerName) -> Option<&ServerRecord> {
        self.persisted.iter().find(|record| &record.name == server)
    }

    fn statuses(records: &[ServerRecord]) -> BTreeMap<ServerName, (ServerStatus, bool)> {
        records.iter().map(|r| (r.name.clone(), (r.status, r.source.kind() == SourceKind::Http))).collect()
    }

    fn step(&mut self, op: Op) -> TestCaseResult {
        let server = |index: usize| name(NAMES[index]);
        let (input, restart) = match op {
            Op::Create { server: i, kind, clash } => (
                Input::Create {
                    server: new_server(NAMES[i], source_of(kind)),
                    deployment_id: format!("{}-{}", NAMES[i], self.now.timestamp()),
                    clashes_with_integration: clash,
                },
                false,
            ),
            Op::Delete { server: i } => (Input::Delete { name: server(i) }, false),
            Op::Ready { server: i, attempt } => (ready(NAMES[i], attempt), false),
            Op::Failed { server: i, attempt, retryable } => {
                let error = if retryable { DeployError::Failed("x".into()) } else { DeployError::Refused("x".into()) };
                (report(NAMES[i], Report::Failed { attempt, error }), false)
            }
            Op::GaveUp { server: i } => (report(NAMES[i], Report::GaveUp { error: "died".into() }), false),
            Op::Stopped { server: i } => (report(NAMES[i], Report::Stopped), false),
            Op::StopFailed { server: i } => (report(NAMES[i], Report::StopFailed { error: "x".into() }), false),
            Op::Discovered { server: i, count } => (discovered(NAMES[i], count), false),
            Op::DiscoveryFailed { server: i } => (Input::DiscoveryFailed { name: server(i), error: "x".into() }, false),
            Op::Tick { secs } => {
                self.now += Duration::seconds(secs);
                (Input::Tick, false)
            }
            Op::Restart => {
                self.d = Deployments::new(RetryPolicy::default(), [SourceKind::Stdio, SourceKind::Github]);
                (Input::Restored { records: self.persisted.clone() }, true)
            }
        };
        let created = match &input {
            Input::Create { server, .. } => Some(server.name.clone()),
            _ => None,
        };
        let before_state = self.d.clone();
        let before = if restart { Self::statuses(&self.persisted) } else { Self::statuses(&self.d.records()) };

        let effects = match self.d.handle(self.now, input) {
            Ok(effects) => effects,
            Err(_) => {
                prop_assert_eq!(&self.d, &before_state, "a refused request changed the state");
                return Ok(());
            }
        };
        if let Some(created) = created {
            self.stopped.remove(&created);
        }
        for effect in &effects {
            match effect {
                Effect::Persist(records) => self.persisted = records.clone(),
                Effect::Deploy { name, source, attempt } => {
                    prop_assert!(!self.stopped.contains(name), "{name} deployed after its stop: {effects:?}");
                    let record = self.persisted(name);
                    prop_assert!(
                        record.is_some_and(|r| r.status == ServerStatus::Deploying
                            && r.attempts == *attempt
                            && &r.source == source
                            && source.kind() != SourceKind::Http),
                        "Deploy {name} #{attempt} without a persisted deploying record: {record:?}"
                    );
                }
                Effect::Stop { name } => {
                    self.stopped.insert(name.clone());
                    let record = self.persisted(name);
                    prop_assert!(
                        record.is_some_and(|r| r.status == ServerStatus::Deleting),
                        "Stop {name} without a persisted deleting record: {record:?}"
                    );
                }
                Effect::Discover { name, .. } => {
                    let record = self.persisted(name);
                    prop_assert!(
                        record.is_some_and(|r| matches!(r.status, ServerStatus::Deploying | ServerStatus::Ready)),
                        "Discover {name} of a server neither deploying nor ready: {record:?}"
                    );
                }
                Effect::Removed { name } => {
                    prop_assert!(self.persisted(name).is_none(), "{name} removed while still persisted");
                }
            }
        }
        prop_assert_eq!(&self.d.records(), &self.persisted, "memory ran ahead of the store");

        let after = Self::statuses(&self.d.records());
        for name in before.keys().chain(after.keys()) {
            let (from, to) = (before.get(name), after.get(name));
            let http = from.or(to).is_some_and(|(_, http)| *http);
            let (from, to) = (from.map(|(status, _)| *status), to.map(|(status, _)| *status));
            prop_assert!(allowed(from, to, http, restart), "{name}: {from:?} → {to:?} (restart: {restart})");
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn deploys_and_stops_are_written_ahead_and_statuses_follow_the_documented_edges(
        ops in prop::collection::vec(op(), 1..80)
    ) {
        let supported = [SourceKind::Stdio, SourceKind::Github];
        let mut harness = Harness {
            d: Deployments::new(RetryPolicy::default(), supported),
            now: t0(),
            persisted: Vec::new(),
            stopped: BTreeSet::new(),
        };
        for op in ops {
            harness.step(op)?;
        }
    }

    /// Whatever happened, a gateway that keeps answering ends with every deployment settled:
    /// ready, failed or gone.
    #[test]
    fn a_cooperative_deployer_settles_every_deployment(
        ops in prop::collection::vec(op(), 1..40)
    ) {
        let supported = [SourceKind::Stdio, SourceKind::Github];
        let mut harness = Harness {
            d: Deployments::new(RetryPolicy::default(), supported),
            now: t0(),
            persisted: Vec::new(),
            stopped: BTreeSet::new(),
        };
        for op in ops {
            harness.step(op)?;
        }
        // Liveness phase: the gateway restarts (so nothing the random phase left unanswered
        // is lost), then the deployer and the servers answer every effect with success.
        harness.d = Deployments::new(RetryPolicy::default(), supported);
        let restored = Input::Restored { records: harness.persisted.clone() };
        let mut effects = harness.d.handle(harness.now, restored).expect("restores are never refused");
        for _ in 0..20 {
            let answers: Vec<Input> = effects
                .drain(..)
                .filter_map(|effect| match effect {
                    Effect::Deploy { name, attempt, .. } => Some(Input::DeployerReported {
                        name,
                        report: Report::Ready { attempt, endpoint: Endpoint::Stdio },
                    }),
                    Effect::Stop { name } => Some(Input::DeployerReported { name, report: Report::Stopped }),
                    Effect::Discover { name, .. } => Some(Input::ToolsDiscovered { name, count: 1 }),
                    Effect::Persist(_) | Effect::Removed { .. } => None,
                })
                .collect();
            for answer in answers {
                effects.extend(harness.d.handle(harness.now, answer).expect("reports are never refused"));
            }
            harness.now += Duration::seconds(60);
            effects.extend(harness.d.handle(harness.now, Input::Tick).expect("ticks are never refused"));
        }
        prop_assert!(!harness.d.is_busy(), "still busy: {:?}", harness.d);
        for record in harness.d.servers() {
            prop_assert!(matches!(record.status, ServerStatus::Ready | ServerStatus::Failed), "{record:?}");
        }
    }
}
