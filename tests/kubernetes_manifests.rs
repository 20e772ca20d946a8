//! What the Kubernetes deployer applies: compared with the checked-in copies under
//! tests/fixtures/kubernetes/ (exactly; `CONNECTORS_BLESS=1` rewrites them after a deliberate
//! change, to be reviewed in the diff), and validated against the Kubernetes API schemas offline
//! with kubernetes-validate (`deploy/validate.sh --generated`, strict).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use connectors::backends::kubernetes::manifests;
use connectors::backends::kubernetes::settings::{KubernetesSettings, TenantQuota};
use connectors_actors::deployer::ServerName;
use connectors_actors::tenant::TenantId;
use serde_json::Value;

#[path = "common/cached_packages.rs"]
mod cached_packages;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The settings the fixtures are made with: the defaults, a registry for `github` sources and
/// a quota of its own for the `free` plan.
fn settings() -> KubernetesSettings {
    let mut settings = KubernetesSettings { registry: Some("registry.example.com/mcp".into()), ..Default::default() };
    settings.quotas.insert(
        "free".into(),
        TenantQuota { requests_cpu: "1".into(), requests_memory: "2Gi".into(), persistent_volume_claims: 0, pods: 5 },
    );
    settings
}

/// Every object the deployer makes, by fixture file name.
fn generated() -> BTreeMap<&'static str, Vec<Value>> {
    let settings = settings();
    let acme = TenantId::parse("acme").unwrap();
    let notes = ServerName::parse("notes").unwrap();
    let long = ServerName::parse(&format!("{}-server", "x".repeat(56))).unwrap();
    let repository = "https://github.com/acme/notes-mcp";
    let image = manifests::built_image(settings.registry.as_deref().unwrap(), &acme, &long, repository);
    BTreeMap::from([
        ("tenant-enterprise.json", manifests::tenant_objects(&settings, &acme, "enterprise")),
        ("tenant-free.json", manifests::tenant_objects(&settings, &acme, "free")),
        ("server-docker.json", manifests::server_objects(&settings, &acme, &notes, "ghcr.io/acme/notes:1.2")),
        (
            "server-github.json",
            vec![manifests::build_job(&settings, &acme, &long, repository, &image)]
                .into_iter()
                .chain(manifests::server_objects(&settings, &acme, &long, &image))
                .collect(),
        ),
    ])
}

#[test]
fn the_generated_objects_are_the_checked_in_ones() {
    let dir = root().join("tests/fixtures/kubernetes");
    let bless = std::env::var_os("CONNECTORS_BLESS").is_some();
    for (file, objects) in generated() {
        let text = serde_json::to_string_pretty(&objects).unwrap() + "\n";
        let path = dir.join(file);
        if bless {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &text).unwrap();
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(text, expected, "{file} differs from what the deployer makes (CONNECTORS_BLESS=1 rewrites it)");
    }
}

#[test]
fn endpoints_name_the_service_in_the_tenants_namespace() {
    let settings = settings();
    let acme = TenantId::parse("acme").unwrap();
    let notes = ServerName::parse("notes").unwrap();
    assert_eq!(
        manifests::endpoint_url(&settings, &acme, &notes),
        "http://mcp-notes.tenant-acme.svc.cluster.local:8080/mcp"
    );
    assert!(manifests::endpoint_url(&settings, &acme, &notes).contains(&manifests::service_suffix(&settings)));
    let through_proxy = KubernetesSettings { endpoint_base: Some("http://127.0.0.1:9000".into()), ..settings };
    assert_eq!(
        manifests::endpoint_url(&through_proxy, &acme, &notes),
        "http://127.0.0.1:9000/tenant-acme/mcp-notes/mcp"
    );
    // Each server its own path behind the proxy.
    let files = ServerName::parse("files").unwrap();
    let other = TenantId::parse("globex").unwrap();
    assert_eq!(
        manifests::endpoint_url(&through_proxy, &other, &files),
        "http://127.0.0.1:9000/tenant-globex/mcp-files/mcp"
    );
}

#[test]
fn every_generated_object_validates_against_the_kubernetes_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (file, objects) in generated() {
        // JSON documents are YAML documents.
        let text: Vec<String> = objects.iter().map(|object| serde_json::to_string(object).unwrap()).collect();
        let path = dir.path().join(file.replace(".json", ".yaml"));
        std::fs::write(&path, text.join("\n---\n")).unwrap();
        files.push(path);
    }
    let venv = cached_packages::kubernetes_validate_venv();
    let out = Command::new("bash")
        .arg("deploy/validate.sh")
        .arg("--generated")
        .args(&files)
        .current_dir(root())
        .env("CONNECTORS_DEPLOY_VENV", &venv)
        .output()
        .expect("bash runs deploy/validate.sh");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "deploy/validate.sh --generated failed ({}):\n{text}", out.status);
    assert!(text.contains("13 generated objects valid"), "{text}");
}
