use chrono::TimeZone;
use connectors_actors::secret_store::CredentialStatus;

use super::*;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 3, 12, 0, 0).unwrap()
}

fn id(text: &str) -> TenantId {
    TenantId::parse(text).unwrap()
}

fn record(tenant: &str, plan: &str) -> TenantRecord {
    let then = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    TenantRecord {
        id: id(tenant),
        name: tenant.into(),
        email: None,
        plan: plan.into(),
        status: connectors_actors::tenant::TenantStatus::Active,
        limits: Default::default(),
        features: Default::default(),
        security: Default::default(),
        mcp: Default::default(),
        created_at: then,
        updated_at: then,
        keys: vec![StoredKey { hash: KeyHash::of("old"), created_at: then, expires_at: None }],
    }
}

fn credential(token: &str) -> OAuthCredential {
    OAuthCredential {
        access_token: token.into(),
        refresh_token: None,
        expires_at: None,
        scopes: vec!["repo".into()],
        token_endpoint: None,
        client_id: None,
        client_secret: None,
        status: CredentialStatus::Active,
        last_refresh_at: None,
        refresh_generation: 0,
    }
}

fn spec<'a>(to: &'a TenantId, plan: Option<&'a str>) -> TargetSpec<'a> {
    TargetSpec { id: to, name: "Default Tenant", plan }
}

#[test]
fn a_missing_target_is_made_from_the_single_tenant_record_and_takes_its_credentials() {
    let (from, to) = (id("local"), id("default"));
    let mut source = record("local", "pro");
    source.limits.requests_per_minute = Some(77);
    let found = Found {
        source: Some(source),
        target: None,
        source_credentials: vec![("github".into(), credential("a")), ("gmail".into(), credential("b"))],
        target_credentials: vec![],
    };
    let plan = plan(now(), &from, &spec(&to, None), found, KeyHash::of("new")).unwrap();
    assert!(plan.create);
    assert_eq!(
        (plan.target.id.as_str(), plan.target.name.as_str(), plan.target.plan.as_str()),
        ("default", "Default Tenant", "pro")
    );
    assert_eq!(plan.target.limits.requests_per_minute, Some(77), "served as before");
    assert_eq!(plan.target.keys.len(), 1);
    assert_eq!(plan.target.keys[0].hash, KeyHash::of("new"));
    assert_eq!(plan.target.created_at, now());
    let moved: Vec<&str> = plan.moves.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(moved, ["github", "gmail"]);
    assert!(plan.already_moved.is_empty());
}

#[test]
fn an_existing_target_keeps_its_record_but_gets_only_the_new_key_and_a_chosen_plan() {
    let (from, to) = (id("local"), id("default"));
    let found = Found {
        source: Some(record("local", "free")),
        target: Some(record("default", "pro")),
        source_credentials: vec![],
        target_credentials: vec![],
    };
    let plan = plan(now(), &from, &spec(&to, Some("enterprise")), found, KeyHash::of("new")).unwrap();
    assert!(!plan.create);
    assert_eq!(plan.target.plan, "enterprise");
    assert_eq!(plan.target.keys.iter().map(|k| k.hash).collect::<Vec<_>>(), [KeyHash::of("new")], "old key gone");
}

#[test]
fn the_same_id_on_both_sides_moves_nothing_and_only_issues_a_key() {
    let tenant = id("default");
    let found = Found {
        source: Some(record("default", "free")),
        target: Some(record("default", "free")),
        source_credentials: vec![("github".into(), credential("a"))],
        target_credentials: vec![("github".into(), credential("a"))],
    };
    let plan = plan(now(), &tenant, &spec(&tenant, None), found, KeyHash::of("new")).unwrap();
    assert!(!plan.create && plan.moves.is_empty() && plan.already_moved.is_empty());
}

#[test]
fn a_run_again_after_an_interruption_only_clears_what_was_already_copied() {
    let (from, to) = (id("local"), id("default"));
    let found = Found {
        source: Some(record("local", "free")),
        target: Some(record("default", "free")),
        source_credentials: vec![("github".into(), credential("a")), ("gmail".into(), credential("b"))],
        target_credentials: vec![("github".into(), credential("a"))],
    };
    let plan = plan(now(), &from, &spec(&to, None), found, KeyHash::of("new")).unwrap();
    assert_eq!(plan.already_moved, ["github"]);
    assert_eq!(plan.moves.len(), 1);
    assert_eq!(plan.moves[0].0, "gmail");
}

#[test]
fn a_different_credential_under_the_target_stops_the_migration_before_any_write() {
    let (from, to) = (id("local"), id("default"));
    let found = Found {
        source: Some(record("local", "free")),
        target: Some(record("default", "free")),
        source_credentials: vec![("github".into(), credential("a"))],
        target_credentials: vec![("github".into(), credential("other"))],
    };
    let error = plan(now(), &from, &spec(&to, None), found, KeyHash::of("new")).unwrap_err();
    assert!(matches!(error, MigrateError::CredentialConflict { ref integration, .. } if integration == "github"));
    assert!(error.to_string().contains("DELETE /api/v1/admin/tenants/{id}/oauth/github"), "{error}");
}

#[test]
fn a_store_without_either_tenant_is_not_migrated() {
    let (from, to) = (id("local"), id("default"));
    let found = Found { source: None, target: None, source_credentials: vec![], target_credentials: vec![] };
    let error = plan(now(), &from, &spec(&to, None), found, KeyHash::of("new")).unwrap_err();
    assert!(matches!(error, MigrateError::NothingToMigrate { .. }), "{error}");
}
