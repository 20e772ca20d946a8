//! The TypeScript and Python SDKs' own suites (`sdks/typescript`, `sdks/python`), run against the
//! real binary: each test starts a gateway with a known admin key and the project's example MCP
//! server, and runs the suite with their addresses in `CONNECTORS_BASE_URL`,
//! `CONNECTORS_ADMIN_KEY` and `CONNECTORS_MCP_URL`.
//!
//! Tools are installed outside the repository on first use: the TypeScript suite's packages
//! with `npm ci` (into `sdks/typescript/node_modules`, git-ignored, from npm's cache after the
//! first time), the Python suite's into a virtualenv under the user's cache directory.

#[path = "common/cached_packages.rs"]
mod cached_packages;
mod common;
#[path = "common/mcp_servers.rs"]
mod mcp_servers;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{ADMIN_KEY, FAST, Gateway};
use mcp_servers::HttpServerProcess;

/// What the Python suite needs besides the SDK's own sources (pinned: the venv is named by them).
const PYTHON_SUITE_REQUIREMENTS: &[&str] = &["httpx==0.28.1", "pytest==9.2.0"];

fn sdk_dir(language: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sdks").join(language)
}

/// Runs `command` in `dir` with the suite's environment; panics with its output unless it succeeds.
fn run(what: &str, dir: &Path, command: &mut Command, suite_env: &[(&str, String)]) {
    let output = command
        .current_dir(dir)
        .envs(suite_env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start it ({e})"));
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{what} failed ({}):\n{text}", output.status);
    println!("{what}:\n{text}");
}

fn require_tool(program: &str, why: &str) {
    let found = Command::new(program).arg("--version").output().is_ok_and(|out| out.status.success());
    assert!(found, "`{program}` is not installed: {why}");
}

/// A gateway and an MCP server for one suite, and the environment telling the suite where they are.
async fn gateway_for_suite() -> (Gateway, HttpServerProcess, Vec<(&'static str, String)>) {
    let server = HttpServerProcess::example(&[]);
    let gateway = Gateway::start(FAST, &[]).await;
    let suite_env = vec![
        ("CONNECTORS_BASE_URL", gateway.url("")),
        ("CONNECTORS_ADMIN_KEY", ADMIN_KEY.to_string()),
        ("CONNECTORS_MCP_URL", server.url.clone()),
    ];
    (gateway, server, suite_env)
}

#[tokio::test]
async fn the_typescript_sdk_suite_passes_against_the_gateway() {
    require_tool("node", "the TypeScript SDK's suite runs on Node.js 20 or later");
    require_tool("npm", "the TypeScript SDK's suite installs its build tools with npm");
    let (_gateway, _server, suite_env) = gateway_for_suite().await;
    let dir = sdk_dir("typescript");
    run("npm ci", &dir, Command::new("npm").args(["ci", "--no-audit", "--no-fund"]), &suite_env);
    run("npm run build", &dir, Command::new("npm").args(["run", "build"]), &suite_env);
    run("npm test", &dir, Command::new("npm").arg("test"), &suite_env);
}

#[tokio::test]
async fn the_python_sdk_suite_passes_against_the_gateway() {
    require_tool("python3", "the Python SDK's suite runs on Python 3.11 or later");
    let venv = cached_packages::python_venv(
        "sdk-suite-httpx-0.28.1-pytest-9.2.0",
        PYTHON_SUITE_REQUIREMENTS,
        "import httpx, pytest",
    );
    let (_gateway, _server, mut suite_env) = gateway_for_suite().await;
    let dir = sdk_dir("python");
    // The suite imports the SDK from its sources; `-p no:cacheprovider` keeps pytest's cache out of the tree.
    suite_env.push(("PYTHONPATH", dir.join("src").display().to_string()));
    suite_env.push(("PYTHONDONTWRITEBYTECODE", "1".to_string()));
    run(
        "pytest",
        &dir,
        Command::new(venv.join("bin/python")).args(["-m", "pytest", "-v", "-p", "no:cacheprovider"]),
        &suite_env,
    );
}
