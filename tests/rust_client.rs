//! The Rust client (`connectors-client`) against the real binary: every admin and tenant call it
//! offers, and its typed errors. (Its retries are tested in client/tests/ against a stand-in
//! server that answers 503 on demand.)

mod common;
#[path = "common/mcp_servers.rs"]
mod mcp_servers;

use common::{ADMIN_KEY, FAST, Gateway};
use connectors_client::types::{
    AuditQuery, Feedback, LimitSettings, NewCredential, NewIntegration, NewServer, NewTenant, ServerSource,
    TenantQuery, TenantStatus, TenantUpdate, ToolQuery,
};
use connectors_client::{AdminApi, Connectors, Error, RetryPolicy};
use mcp_servers::HttpServerProcess;
use serde_json::{Map, json};

fn admin(gateway: &Gateway) -> AdminApi {
    AdminApi::new(&gateway.url(""), ADMIN_KEY).unwrap()
}

fn api_error(error: Error) -> connectors_client::ApiError {
    match error {
        Error::Api(error) => *error,
        other => panic!("expected the gateway's error answer, got {other:?}"),
    }
}

#[tokio::test]
async fn the_admin_client_manages_tenants_credentials_and_integrations() {
    let gateway = Gateway::start(FAST, &[]).await;
    let admin = admin(&gateway);

    let mut new = NewTenant::new("acme", "Acme Inc");
    new.limits = Some(LimitSettings { requests_per_minute: Some(120), ..LimitSettings::default() });
    let created = admin.tenants().create(&new).await.unwrap();
    assert_eq!(created.tenant.id, "acme");
    assert_eq!(created.tenant.limits.requests_per_minute, 120);
    assert!(created.api_key.starts_with("ck_"));

    let conflict = api_error(admin.tenants().create(&new).await.unwrap_err());
    assert_eq!((conflict.status, conflict.code.as_str()), (409, "conflict"));
    assert!(conflict.request_id.is_some(), "errors carry the request id");

    let page = admin.tenants().list(&TenantQuery::default()).await.unwrap();
    assert_eq!((page.total, page.tenants[0].id.as_str()), (1, "acme"));

    let update = TenantUpdate {
        name: Some("Acme Corp".into()),
        status: Some(TenantStatus::Suspended),
        ..TenantUpdate::default()
    };
    let updated = admin.tenants().update("acme", &update).await.unwrap();
    assert_eq!((updated.name.as_str(), updated.status), ("Acme Corp", TenantStatus::Suspended));
    let read = admin.tenants().get("acme").await.unwrap();
    assert_eq!(read.name, "Acme Corp");
    assert_eq!(read.usage.expect("a tenant's read has its usage").tenant_id, "acme");

    let credential = NewCredential {
        access_token: "at-secret-1".into(),
        scopes: Some(vec!["repo".into()]),
        ..NewCredential::default()
    };
    let stored = admin.oauth().put("acme", "github", &credential).await.unwrap();
    assert_eq!((stored.integration.as_str(), stored.status.as_str()), ("github", "active"));
    let listed = admin.oauth().list("acme").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].scopes, ["repo"]);
    admin.oauth().delete("acme", "github").await.unwrap();
    assert!(admin.oauth().list("acme").await.unwrap().is_empty());
    let gone = api_error(admin.oauth().delete("acme", "github").await.unwrap_err());
    assert_eq!(gone.code, "not_found");

    let usage = admin.usage("acme", None).await.unwrap();
    assert_eq!(usage.tenant_id, "acme");
    let metrics = admin.metrics("acme", None, None).await.unwrap();
    assert_eq!(metrics.tenant_id, "acme");
    let audit = admin.audit("acme", &AuditQuery::default()).await.unwrap();
    let actions: Vec<_> = audit.events.iter().map(|e| e.action.as_str()).collect();
    assert!(actions.contains(&"admin.tenant.create") && actions.contains(&"admin.tenant.update"), "{actions:?}");

    let server = HttpServerProcess::example(&[]);
    let integration = NewIntegration { name: "example".into(), url: server.url.clone(), ..NewIntegration::default() };
    let registered = admin.integrations().create(&integration).await.unwrap();
    assert!(registered.tools_discovered > 0 && registered.tools.contains(&"example.add".to_string()));
    assert_eq!(admin.integrations().list().await.unwrap().len(), 1);
    assert_eq!(admin.integrations().refresh("example").await.unwrap().name, "example");
    admin.integrations().delete("example").await.unwrap();
    assert!(admin.integrations().list().await.unwrap().is_empty());

    let cluster = admin.cluster().await.unwrap();
    assert_eq!((cluster.nodes.len(), cluster.nodes[0].status.as_str()), (1, "up"));

    let old_key = created.api_key;
    let new_key = admin.tenants().rotate_key("acme", None).await.unwrap();
    assert_ne!(new_key, old_key);
    admin.tenants().delete("acme").await.unwrap();
    let deleted = api_error(admin.tenants().get("acme").await.unwrap_err());
    assert_eq!((deleted.status, deleted.code.as_str()), (404, "not_found"));

    let wrong = AdminApi::new(&gateway.url(""), "not-the-key").unwrap().with_retry(RetryPolicy::none());
    let refused = wrong.tenants().list(&TenantQuery::default()).await.unwrap_err();
    assert_eq!((refused.status(), refused.code()), (Some(401), Some("unauthorized")));
}

#[tokio::test]
async fn the_tenant_client_selects_invokes_and_manages_its_servers() {
    let gateway = Gateway::start(FAST, &[]).await;
    let admin = admin(&gateway);
    let server = HttpServerProcess::example(&[]);
    let integration = NewIntegration { name: "example".into(), url: server.url.clone(), ..NewIntegration::default() };
    admin.integrations().create(&integration).await.unwrap();
    // The `pro` plan has custom servers.
    let pro = NewTenant { plan: Some("pro".into()), ..NewTenant::new("acme", "Acme") };
    let created = admin.tenants().create(&pro).await.unwrap();
    let client = Connectors::new(&gateway.url(""), "acme", &created.api_key).unwrap();

    assert_eq!(client.tenant().get().await.unwrap().id, "acme");
    let tools = client.tools().list(&ToolQuery::default()).await.unwrap();
    assert!(tools.tools.iter().any(|tool| tool.id == "example.add"), "{tools:?}");
    let add = client.tools().get("example.add").await.unwrap();
    assert!(add.input_schema.is_some());

    let selection = client.tools().select("add two numbers", None).await.unwrap();
    assert_eq!(selection.tools.tier1.first().map(|t| t.id.as_str()), Some("example.add"), "{selection:?}");
    let parameters: Map<_, _> = json!({"a": 2, "b": 3}).as_object().unwrap().clone();
    let invocation = client.tools().invoke("example.add", &parameters, Some(&selection.selection_id)).await.unwrap();
    assert!(!invocation.is_error());
    assert_eq!(invocation.result["content"][0]["text"], "5");
    let feedback = Feedback {
        query: Some("sum of two numbers".into()),
        tool_ids: vec!["example.add".into()],
        ..Feedback::default()
    };
    client.tools().feedback(&feedback).await.unwrap();
    let unknown = api_error(client.tools().invoke("example.nope", &Map::new(), None).await.unwrap_err());
    assert_eq!((unknown.status, unknown.code.as_str()), (404, "not_found"));

    let own = NewServer {
        name: "mine".into(),
        source: ServerSource::Http { url: server.url.clone(), oauth_integration: None },
        category: "testing".into(),
        description: None,
    };
    let started = client.mcp().add(&own).await.unwrap();
    assert_eq!((started.status.as_str(), started.namespace.as_str()), ("pending", "tenant-acme"));
    assert_eq!(client.mcp().list().await.unwrap()[0].name, "mine");
    assert_eq!(client.mcp().get("mine").await.unwrap().name, "mine");
    assert_eq!(client.mcp().delete("mine").await.unwrap().status, "deleting");

    let wrong_tenant = Connectors::new(&gateway.url(""), "other", &created.api_key).unwrap();
    let refused = api_error(wrong_tenant.tenant().get().await.unwrap_err());
    assert_eq!((refused.status, refused.code.as_str()), (403, "tenant_mismatch"), "{refused}");

    admin
        .tenants()
        .update(
            "acme",
            &TenantUpdate {
                limits: Some(LimitSettings { requests_per_minute: Some(1), ..LimitSettings::default() }),
                ..TenantUpdate::default()
            },
        )
        .await
        .unwrap();
    common::ensure_minute_room(10).await;
    let limited = client.clone().with_retry(RetryPolicy::none());
    let _ = limited.tenant().get().await;
    let refused = api_error(limited.tenant().get().await.unwrap_err());
    assert_eq!((refused.status, refused.code.as_str()), (429, "rate_limited"));
    assert!(refused.retry_after.is_some_and(|s| (1..=60).contains(&s)), "{refused:?}");
}
