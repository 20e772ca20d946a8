//! The OpenAPI document: the checked-in `openapi.json` is what the code generates, the running
//! gateway serves the same at `GET /api/v1/openapi.json` without a key, and it covers every
//! operation of docs/API.md.
//!
//! After a change to the API, regenerate the file with
//! `cargo run -- openapi > openapi.json`, or with
//! `UPDATE_OPENAPI=1 cargo nextest run -p connectors --test openapi_document`.

mod common;

use std::path::PathBuf;

use common::{FAST, Gateway};
use serde_json::Value;

fn checked_in_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("openapi.json")
}

fn generated() -> String {
    connectors::http::openapi::document_json()
}

#[test]
fn the_checked_in_document_is_what_the_code_generates() {
    let generated = generated();
    let path = checked_in_path();
    if std::env::var("UPDATE_OPENAPI").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &generated).expect("write openapi.json");
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    if checked_in != generated {
        let first_difference =
            checked_in.lines().zip(generated.lines()).enumerate().find(|(_, (old, new))| old != new).map_or_else(
                || "one is a prefix of the other".to_string(),
                |(n, (old, new))| format!("line {}: checked in `{}`, generated `{}`", n + 1, old.trim(), new.trim()),
            );
        panic!(
            "openapi.json differs from the document the code generates ({first_difference}).\n\
             Regenerate it with `cargo run -- openapi > openapi.json` \
             (or `UPDATE_OPENAPI=1 cargo nextest run -p connectors --test openapi_document`) and commit it."
        );
    }
}

/// `| METHOD `/path` |` rows of docs/API.md's tables, with their section's prefix.
fn documented_operations() -> Vec<(String, String)> {
    let api_md = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/API.md")).unwrap();
    let mut prefix = "";
    let mut operations = Vec::new();
    for line in api_md.lines() {
        if line.starts_with("## Admin API") {
            prefix = "/api/v1/admin";
        } else if line.starts_with("## Tenant API") {
            prefix = "/api/v1";
        } else if line.starts_with("## MCP endpoint") || line.starts_with("## Operations") {
            prefix = "";
        }
        let Some(first_cell) = line.strip_prefix("| ").and_then(|rest| rest.split(" |").next()) else { continue };
        let Some((method, path)) = first_cell.split_once(' ') else { continue };
        if !method.chars().all(|c| c.is_ascii_uppercase()) {
            continue;
        }
        let path = path.trim_matches('`');
        if path.starts_with('/') {
            operations.push((method.to_lowercase(), format!("{prefix}{path}")));
        }
    }
    operations
}

#[test]
fn the_document_has_every_operation_of_the_contract_with_its_errors_and_headers() {
    let document: Value = serde_json::from_str(&generated()).unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    let operations = documented_operations();
    assert!(operations.len() >= 25, "docs/API.md's tables were not read: {operations:?}");
    let mut missing = Vec::new();
    for (method, path) in &operations {
        if document["paths"][path][method].is_null() {
            missing.push(format!("{method} {path}"));
        }
    }
    if document["paths"]["/api/v1/openapi.json"]["get"].is_null() {
        missing.push("get /api/v1/openapi.json".to_string());
    }
    assert!(missing.is_empty(), "operations of docs/API.md missing from the document: {missing:?}");

    let select = &document["paths"]["/api/v1/tools/select"]["post"];
    for header in ["X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "RateLimit", "RateLimit-Policy"] {
        assert!(select["responses"]["200"]["headers"][header].is_object(), "tenant answers carry {header}");
        assert!(select["responses"]["429"]["headers"][header].is_object(), "refusals carry {header} too");
    }
    assert!(select["responses"]["429"]["headers"]["Retry-After"].is_object());
    assert_eq!(
        select["responses"]["401"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ErrorBody"
    );
    let schemes: Vec<_> = select["security"].as_array().unwrap().iter().map(|s| s.as_object().unwrap().len()).collect();
    assert_eq!(schemes, [2, 1], "a tenant key with X-Tenant-ID, or the key alone");
    let create = &document["paths"]["/api/v1/admin/tenants"]["post"];
    assert_eq!(create["security"][0]["adminBearer"], serde_json::json!([]));
    assert!(create["responses"]["201"]["headers"]["X-Request-Id"].is_object());
    assert!(create["responses"]["201"]["headers"]["RateLimit"].is_null(), "admin answers carry no rate headers");
    assert!(create["responses"]["413"].is_object() && create["responses"]["409"].is_object());
    assert!(document["paths"]["/api/v1/openapi.json"]["get"]["security"].is_null(), "the document needs no key");
    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(schemes["adminBearer"]["scheme"], "bearer");
    assert_eq!(schemes["tenantBearer"]["scheme"], "bearer");
    assert_eq!(schemes["tenantId"]["name"], "X-Tenant-ID");
    let invoke = &document["paths"]["/api/v1/tools/invoke"]["post"]["responses"];
    for status in ["200", "403", "404", "409", "502", "504"] {
        assert!(invoke[status].is_object(), "tools/invoke documents {status}");
    }
    let tenant = &document["components"]["schemas"]["Tenant"]["properties"];
    for field in ["id", "name", "email", "plan", "status", "limits", "features", "security", "createdAt", "updatedAt"] {
        assert!(tenant[field].is_object(), "the tenant object has `{field}`");
    }
}

#[tokio::test]
async fn the_gateway_serves_the_document_without_a_key() {
    let gateway = Gateway::start(FAST, &[]).await;
    let response = gateway.get("/api/v1/openapi.json").await;
    response.expect(200);
    assert!(response.header("content-type").is_some_and(|c| c.starts_with("application/json")));
    assert!(response.header("x-request-id").is_some());
    assert_eq!(response.text, generated());
}
