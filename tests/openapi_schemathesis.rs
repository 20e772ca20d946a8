//! schemathesis (PyPI) against the real binary with the document it serves: generated requests to
//! every tenant and admin operation, and no answer may be a 5xx, or outside the document (body
//! schema, status code, content type). Bounded: a fixed seed and a few examples per operation.
//! schemathesis is installed into a cached virtualenv outside the repository on first use.

#[path = "common/cached_packages.rs"]
mod cached_packages;
mod common;

use std::path::Path;
use std::process::Command;

use common::{FAST, Gateway};
use serde_json::json;

const SCHEMATHESIS: &str = "schemathesis==4.32.5";

fn schemathesis(gateway: &Gateway, venv: &Path, tag: &str, headers: &[String]) {
    // The interpreter, not `bin/schemathesis`: the virtualenv was made under another name and
    // moved into place, so its scripts' `#!` lines name a path that no longer exists.
    let mut command = Command::new(venv.join("bin/python"));
    command.args(["-m", "schemathesis.cli"]);
    // Run outside the checkout: schemathesis keeps a cache (`.schemathesis/`) in its directory.
    let scratch = tempfile::tempdir().expect("scratch directory");
    command.current_dir(scratch.path());
    command
        .arg("run")
        .arg(gateway.url("/api/v1/openapi.json"))
        .args(["--include-tag", tag])
        .args([
            "--checks",
            "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance",
        ])
        .args(["--phases", "examples,fuzzing", "--max-examples", "8", "--seed", "1", "--workers", "1"])
        .env("NO_COLOR", "1");
    for header in headers {
        command.args(["-H", header]);
    }
    let output = command.output().expect("run schemathesis");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found answers outside the document ({tag} operations):\n{report}\n{}\ngateway log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        gateway.stderr_text()
    );
    assert!(report.contains("passed"), "schemathesis ran no test:\n{report}");
}

#[tokio::test]
async fn generated_requests_get_no_5xx_and_no_answer_outside_the_document() {
    let venv = cached_packages::python_venv("schemathesis-4.32.5", &[SCHEMATHESIS], "import schemathesis");
    let gateway = Gateway::start(FAST, &[]).await;
    // Limits high enough that generated requests are not all refused with 429; `pro` has custom servers.
    let limits = json!({"requestsPerMinute": 1_000_000, "requestsPerHour": 10_000_000, "requestsPerDay": 100_000_000});
    let (_, key) = gateway.create_tenant(json!({"id": "acme", "name": "Acme", "plan": "pro", "limits": limits})).await;
    let tenant = [format!("Authorization: Bearer {key}"), "X-Tenant-ID: acme".to_string()];
    schemathesis(&gateway, &venv, "tenant", &tenant);
    let admin = [format!("Authorization: Bearer {}", common::ADMIN_KEY)];
    schemathesis(&gateway, &venv, "admin", &admin);
    schemathesis(&gateway, &venv, "operations", &[]);
}
