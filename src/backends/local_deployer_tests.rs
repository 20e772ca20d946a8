//! Real child processes: `sleep`, `cat` and `sh` from the system's `PATH`.

use std::collections::BTreeSet;
use std::path::Path;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

use super::*;
use crate::backends::command_allow_list::CommandEntry;

const WAIT: Duration = Duration::from_secs(10);

fn tenant() -> TenantId {
    TenantId::parse("acme").expect("valid tenant id")
}

fn name(text: &str) -> ServerName {
    ServerName::parse(text).expect("valid server name")
}

fn stdio(command: &str, args: &[&str]) -> ServerSource {
    ServerSource::Stdio { command: command.into(), args: args.iter().map(|arg| (*arg).to_owned()).collect() }
}

/// A deployer that lets `allowed` run with any arguments.
fn deployer_with(dir: &Path, allowed: &[&str], restart: RestartPolicy) -> LocalDeployer {
    let templates =
        allowed.iter().map(|command| CommandEntry::Template { command: (*command).into(), args: vec!["**".into()] });
    let allowed = CommandAllowList::new(templates).expect("valid allow-list");
    LocalDeployer::new(LocalDeployerConfig { restart, ..LocalDeployerConfig::new(dir, allowed) })
}

fn deployer(dir: &Path) -> LocalDeployer {
    deployer_with(dir, &["sleep", "cat", "sh"], RestartPolicy::default())
}

fn fast_restarts() -> RestartPolicy {
    RestartPolicy {
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(150),
        stable_after: Duration::from_secs(30),
        max_restarts: 3,
    }
}

fn is_running(pid: u32) -> bool {
    // A reaped process has no /proc entry; a killed but unreaped one would show as a zombie.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')))
}

fn exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

async fn running_pid(deployer: &LocalDeployer, server: &str) -> u32 {
    let pid = deployer.pid(&tenant(), &name(server)).await.expect("a process runs");
    assert!(is_running(pid));
    pid
}

async fn next_event(events: &mut broadcast::Receiver<DeployerEvent>) -> DeployerEventKind {
    timeout(WAIT, events.recv()).await.expect("an event in time").expect("the deployer is alive").kind
}

#[tokio::test]
async fn arguments_outside_the_commands_template_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let template = CommandEntry::Template { command: "sleep".into(), args: vec!["[0-9]*".into()] };
    let allowed = CommandAllowList::new([template]).unwrap();
    let deployer = LocalDeployer::new(LocalDeployerConfig::new(dir.path(), allowed));
    let refused = deployer.deploy(&tenant(), &name("x"), &stdio("sleep", &["--help"])).await;
    assert!(matches!(&refused, Err(DeployError::Refused(why)) if why.contains("template")), "{refused:?}");
    let bare = deployer.deploy(&tenant(), &name("x"), &stdio("sleep", &[])).await;
    assert!(matches!(bare, Err(DeployError::Refused(_))), "one argument, not none");
    deployer.shutdown().await;
}

#[tokio::test]
async fn http_sources_are_registered_by_their_url() {
    let dir = tempfile::tempdir().expect("temp dir");
    let deployer = deployer(dir.path());
    let source = ServerSource::Http { url: "https://mcp.example.com/mcp".into(), oauth_integration: None };
    let endpoint = deployer.deploy(&tenant(), &name("remote"), &source).await.expect("registered");
    assert_eq!(endpoint, Endpoint::Http { url: "https://mcp.example.com/mcp".into() });
    assert_eq!(deployer.health(&tenant(), &name("remote")).await, Some(Health::Running { restarts: 0 }));
    assert_eq!(deployer.attach(&tenant(), &name("remote")).await.err(), Some(AttachError::NotStdio));
    deployer.stop(&tenant(), &name("remote")).await.expect("stopped");
    assert_eq!(deployer.health(&tenant(), &name("remote")).await, None);
}

#[tokio::test]
async fn github_and_docker_sources_need_another_deployer() {
    let dir = tempfile::tempdir().expect("temp dir");
    let deployer = deployer(dir.path());
    assert!(deployer.supports(SourceKind::Http) && deployer.supports(SourceKind::Stdio));
    for (kind, source) in [
        (SourceKind::Github, ServerSource::Github { url: "https://github.com/acme/notes".into() }),
        (SourceKind::Docker, ServerSource::Docker { image: "acme/notes:1".into() }),
    ] {
        assert!(!deployer.supports(kind));
        let refused = deployer.deploy(&tenant(), &name("x"), &source).await;
        assert_eq!(refused, Err(DeployError::Unsupported(kind)));
    }
}

#[tokio::test]
async fn a_command_not_on_the_allow_list_is_refused_and_nothing_is_created() {
    let dir = tempfile::tempdir().expect("temp dir");
    let deployer = deployer_with(dir.path(), &["sleep"], RestartPolicy::default());
    for command in ["/usr/bin/sleep", "sh", "/bin/sh", "sleep2"] {
        let refused = deployer.deploy(&tenant(), &name("x"), &stdio(command, &["30"])).await;
        let Err(error) = refused else { panic!("{command} was deployed") };
        assert!(!error.is_retryable(), "{command}: a refusal is final");
        assert_eq!(
            error,
            DeployError::Refused(format!(
                "command `{command}` with these arguments fits no template on the operator's allow-list"
            ))
        );
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "no directory for a refused server");
    assert_eq!(deployer.health(&tenant(), &name("x")).await, None);
}

#[tokio::test]
async fn an_allowed_command_that_cannot_start_is_a_retryable_failure() {
    let dir = tempfile::tempdir().expect("temp dir");
    let deployer = deployer_with(dir.path(), &["no-such-mcp-server"], RestartPolicy::default());
    let failed = deployer.deploy(&tenant(), &name("x"), &stdio("no-such-mcp-server", &[])).await;
    assert!(matches!(&failed, Err(error @ DeployError::Failed(_)) if error.is_retryable()), "{failed:?}");
}

#[tokio::test]
async fn a_stdio_server_runs_with_only_path_and_home_in_its_own_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let deployer = deployer(dir.path());
    let endpoint = deployer.deploy(&tenant(), &name("notes"), &stdio("sleep", &["30"])).await.expect("deployed");
    assert_eq!(endpoint, Endpoint::Stdio);
    let pid = running_pid(&deployer, "notes").await;

    let server_dir = deployer.server_dir(&tenant(), &name("notes"));
    assert_eq!(server_dir.parent(), Some(dir.path()), "under the work dir");
    assert_ne!(server_dir, deployer.server_dir(&TenantId::parse("globex").unwrap(), &name("notes")));
    let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("readable environment");
    let variables: BTreeSet<String> = environ
        .split(|&byte| byte == 0)
        .filter(|entry| !entry.is_empty())
        .map(|entry| String::from_utf8_lossy(entry).into_owned())
        .collect();
    let expected: BTreeSet<String> =
        [format!("PATH={DEFAULT_CHILD_PATH}"), format!("HOME={}", server_dir.display())].into();
    assert_eq!(variables, expected, "the gateway's environment must not reach the server");
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).expect("readable cwd");
    assert_eq!(cwd, server_dir.canonicalize().expect("the directory exists"));
    deployer.shutdown().await;
}

#[tokio::test]
async fn stop_kills_and_reaps_the_process_and_removes_its_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let deployer = deployer(dir.path());
    deployer.deploy(&tenant(), &name("notes"), &stdio("sleep", &["30"])).await.expect("deployed");
    let pid = running_pid(&deployer, "notes").await;
    deployer.stop(&tenant(), &name("notes")).await.expect("stopped");
    assert!(!exists(pid), "killed and reaped by the time stop returns");
    assert!(!deployer.server_dir(&tenant(), &name("notes")).exists());
    assert_eq!(deployer.health(&tenant(), &name("notes")).await, None);
    deployer.stop(&tenant(), &name("notes")).await.expect("stopping again is harmless");
}

#[tokio::test]
async fn deploying_the_same_server_again_keeps_its_process() {
    let dir = tempfile::tempdir().expect("temp dir");
    let deployer = deployer(dir.path());
    let source = stdio("sleep", &["30"]);
    deployer.deploy(&tenant(), &name("notes"), &source).await.expect("deployed");
    let pid = running_pid(&deployer, "notes").await;
    deployer.deploy(&tenant(), &name("notes"), &source).await.expect("deployed again");
    assert_eq!(running_pid(&deployer, "notes").await, pid);
    deployer.shutdown().await;
    assert!(!exists(pid), "shutdown reaps every process");
}

#[tokio::test]
async fn the_pipes_carry_one_session_and_a_new_session_gets_a_fresh_process() {
    let dir = tempfile::tempdir().expect("temp dir");
    let deployer = deployer(dir.path());
    deployer.deploy(&tenant(), &name("echo"), &stdio("cat", &[])).await.expect("deployed");
    let first_pid = running_pid(&deployer, "echo").await;

    let mut pipes = deployer.attach(&tenant(), &name("echo")).await.expect("attached");
    assert_eq!(pipes.incarnation, 1);
    pipes.stdin.write_all(b"{\"jsonrpc\":\"2.0\"}\n").await.expect("written");
    let mut echoed = [0_u8; 18];
    timeout(WAIT, pipes.stdout.read_exact(&mut echoed)).await.expect("in time").expect("read");
    assert_eq!(&echoed, b"{\"jsonrpc\":\"2.0\"}\n");

    // The client lost its session and attaches again: the old process is replaced.
    let again = deployer.attach(&tenant(), &name("echo")).await.expect("attached again");
    assert_eq!(again.incarnation, 2);
    assert!(!exists(first_pid), "the replaced process is killed and reaped");
    let second_pid = running_pid(&deployer, "echo").await;
    assert_ne!(second_pid, first_pid);

    // Closing stdin ends `cat` with status 0: the session ended, and a fresh process starts at once.
    let mut events = deployer.events();
    drop(again);
    timeout(WAIT, async {
        while deployer.pid(&tenant(), &name("echo")).await.is_none_or(|pid| pid == second_pid) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("a third process in time");
    let third = deployer.attach(&tenant(), &name("echo")).await.expect("attached to the third");
    assert_eq!(third.incarnation, 3);
    assert_eq!(events.try_recv().err(), Some(broadcast::error::TryRecvError::Empty), "an ended session is no death");
    deployer.shutdown().await;
}

#[tokio::test]
async fn a_dying_server_is_restarted_with_growing_backoff_then_given_up() {
    let dir = tempfile::tempdir().expect("temp dir");
    let deployer = deployer_with(dir.path(), &["sh"], fast_restarts());
    let mut events = deployer.events();
    let server = name("crashy");
    deployer.deploy(&tenant(), &server, &stdio("sh", &["-c", "exit 3"])).await.expect("started");

    let started = Instant::now();
    for (restarts, backoff_ms) in [(1, 50), (2, 100), (3, 150)] {
        let died = next_event(&mut events).await;
        let error = "exited with status 3".to_owned();
        let restart_in = Duration::from_millis(backoff_ms);
        assert_eq!(died, DeployerEventKind::Died { error, restarts, restart_in });
        assert_eq!(next_event(&mut events).await, DeployerEventKind::Restarted { restarts });
    }
    let gave_up = next_event(&mut events).await;
    assert_eq!(gave_up, DeployerEventKind::GaveUp { error: "exited with status 3".into() });
    assert!(started.elapsed() >= Duration::from_millis(50 + 100 + 150), "every backoff was waited out");
    let health = deployer.health(&tenant(), &server).await;
    assert_eq!(health, Some(Health::GaveUp { error: "exited with status 3".into() }));
    assert_eq!(deployer.pid(&tenant(), &server).await, None);
    let attach = deployer.attach(&tenant(), &server).await.err();
    assert_eq!(attach, Some(AttachError::GaveUp("exited with status 3".into())));

    // Deploying again (a retry, or after a restart) starts afresh.
    deployer.deploy(&tenant(), &server, &stdio("sh", &["-c", "exit 3"])).await.expect("started again");
    assert!(matches!(next_event(&mut events).await, DeployerEventKind::Died { restarts: 1, .. }));
    deployer.stop(&tenant(), &server).await.expect("stopped");
}

#[tokio::test]
async fn a_restarted_server_is_a_new_process_and_attaching_while_it_waits_says_so() {
    let dir = tempfile::tempdir().expect("temp dir");
    let policy = RestartPolicy { initial_backoff: Duration::from_millis(300), ..fast_restarts() };
    let deployer = deployer_with(dir.path(), &["sh"], policy);
    let mut events = deployer.events();
    let server = name("flaky");
    deployer.deploy(&tenant(), &server, &stdio("sh", &["-c", "sleep 0.2; exit 1"])).await.expect("started");
    let first = running_pid(&deployer, "flaky").await;

    assert!(matches!(next_event(&mut events).await, DeployerEventKind::Died { restarts: 1, .. }));
    assert!(!exists(first), "a dead process is reaped");
    let waiting = deployer.attach(&tenant(), &server).await.err();
    assert!(
        matches!(waiting, Some(AttachError::Restarting(left)) if left <= Duration::from_millis(300)),
        "{waiting:?}"
    );
    assert!(matches!(deployer.health(&tenant(), &server).await, Some(Health::Restarting { restarts: 1, .. })));

    assert_eq!(next_event(&mut events).await, DeployerEventKind::Restarted { restarts: 1 });
    let second = running_pid(&deployer, "flaky").await;
    assert_ne!(second, first);
    assert_eq!(deployer.health(&tenant(), &server).await, Some(Health::Running { restarts: 1 }));
    deployer.stop(&tenant(), &server).await.expect("stopped");
    assert!(!exists(second));
}

#[tokio::test]
async fn dropping_the_deployer_kills_and_reaps_its_processes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let deployer = deployer(dir.path());
    deployer.deploy(&tenant(), &name("a"), &stdio("sleep", &["30"])).await.expect("deployed");
    deployer.deploy(&tenant(), &name("b"), &stdio("cat", &[])).await.expect("deployed");
    let pids = [running_pid(&deployer, "a").await, running_pid(&deployer, "b").await];
    drop(deployer);
    timeout(WAIT, async {
        while pids.iter().any(|&pid| exists(pid)) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("every process gone, not even a zombie");
}
