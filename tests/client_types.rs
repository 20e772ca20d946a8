//! The three clients' types (TypeScript, Python, Rust) are written by hand, idiomatic in each
//! language; this checks them against the OpenAPI document: every field of every object the API
//! answers is a field of the type each client reads it into. A field added to the API and
//! forgotten in a client fails here.

use std::path::Path;

use serde_json::Value;

/// An answer's schema, and the types (with the types they extend or flatten) that read it in
/// the TypeScript, Python and Rust clients.
type Mapping = (&'static str, &'static [&'static str], &'static [&'static str], &'static [&'static str]);

const ANSWERS: &[Mapping] = &[
    ("Tenant", &["Tenant", "TenantWithUsage", "CreatedTenant"], &["Tenant"], &["Tenant", "CreatedTenant"]),
    ("Limits", &["Limits"], &["Limits"], &["Limits"]),
    ("Features", &["Features"], &["Features"], &["Features"]),
    ("Security", &["Security"], &["Security"], &["Security"]),
    ("McpListing", &["McpListing"], &["McpListing"], &["McpListing"]),
    ("TenantPage", &["TenantList"], &["TenantList"], &["TenantPage"]),
    ("NewApiKey", &["RotatedKey"], &["RotatedKey"], &["NewApiKey"]),
    ("UsageReport", &["UsageReport"], &["UsageReport"], &["UsageReport"]),
    ("TenantMetrics", &["TenantMetrics"], &["TenantMetrics"], &["TenantMetrics"]),
    ("AuditEvent", &["AuditEvent"], &["AuditEvent"], &["AuditEvent"]),
    ("AuditLogPage", &["AuditPage"], &["AuditPage"], &["AuditPage"]),
    ("CredentialView", &["Credential"], &["Credential"], &["Credential"]),
    ("IntegrationView", &["Integration"], &["Integration"], &["Integration"]),
    ("ClusterView", &["ClusterView"], &["ClusterView"], &["ClusterView"]),
    ("ToolView", &["Tool"], &["Tool"], &["Tool"]),
    ("ToolPage", &["ToolList"], &["ToolList"], &["ToolPage"]),
    ("SelectionAnswer", &["Selection"], &["Selection"], &["Selection"]),
    ("InvokeAnswer", &["Invocation"], &["Invocation"], &["Invocation"]),
    ("ServerAccepted", &["ServerAccepted"], &["ServerAccepted"], &["DeploymentStarted"]),
    ("ServerView", &["Server"], &["Server"], &["Server"]),
];

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The lines of the declaration that starts with `head`, up to the line that closes it: `}` at
/// the start of a line (TypeScript, Rust), or the next unindented line (Python).
fn block<'a>(source: &'a str, head: &str, python: bool) -> Option<Vec<&'a str>> {
    let mut lines = source.lines().skip_while(|line| !line.starts_with(head));
    lines.next()?;
    Some(
        lines
            .take_while(|line| if python { line.is_empty() || line.starts_with(' ') } else { !line.starts_with('}') })
            .collect(),
    )
}

/// The lines of the types `names` in `source`, each found by the first of `heads` (`NAME` standing
/// for its name) that is there.
fn lines<'a>(source: &'a str, names: &[&str], heads: &[&str], python: bool) -> Vec<&'a str> {
    names
        .iter()
        .flat_map(|name| {
            heads
                .iter()
                .find_map(|head| block(source, &head.replace("NAME", name), python))
                .unwrap_or_else(|| panic!("no type {name} in the client ({heads:?})"))
        })
        .collect()
}

fn snake(camel: &str) -> String {
    let mut out = String::new();
    let mut previous_lower = false;
    for c in camel.chars() {
        if c.is_ascii_uppercase() && previous_lower {
            out.push('_');
        }
        previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        out.push(c.to_ascii_lowercase());
    }
    out
}

#[test]
fn every_field_the_api_answers_is_read_by_each_client() {
    let document: Value = serde_json::from_str(&read("openapi.json")).unwrap();
    let typescript = read("sdks/typescript/src/types.ts");
    let python = read("sdks/python/src/connectors_gateway/types.py");
    let rust = read("client/src/types.rs");
    let mut missing = Vec::new();
    for (schema, ts_types, py_types, rust_types) in ANSWERS {
        let properties = document["components"]["schemas"][schema]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("no schema {schema} with properties in openapi.json"));
        let ts = lines(&typescript, ts_types, &["export interface NAME "], false);
        // A class, or the functional form for keys that are not identifiers' style.
        let py = lines(&python, py_types, &["class NAME(", "NAME = TypedDict("], true);
        let rs = lines(&rust, rust_types, &["pub struct NAME "], false);
        for field in properties.keys() {
            let has = |lines: &[&str], forms: &[String]| {
                lines.iter().any(|line| forms.iter().any(|form| line.trim_start().starts_with(form.as_str())))
            };
            if !has(&ts, &[format!("{field}:"), format!("{field}?:")]) {
                missing.push(format!("TypeScript {ts_types:?} lacks `{field}` of {schema}"));
            }
            if !has(&py, &[format!("{field}:"), format!("\"{field}\":")]) {
                missing.push(format!("Python {py_types:?} lacks `{field}` of {schema}"));
            }
            let renamed = rs.iter().any(|line| line.contains(&format!("\"{field}\"")));
            if !renamed && !has(&rs, &[format!("pub {}:", snake(field))]) {
                missing.push(format!("Rust {rust_types:?} lacks `{field}` of {schema}"));
            }
        }
    }
    assert!(missing.is_empty(), "fields of the API the clients do not read:\n{}", missing.join("\n"));
}

#[test]
fn camel_case_names_become_the_rust_clients_field_names() {
    assert_eq!(snake("requestsPerMinute"), "requests_per_minute");
    assert_eq!(snake("maxStorageMB"), "max_storage_mb");
    assert_eq!(snake("tier1"), "tier1");
}
