//! `connectors migrate single-to-multi`: gives the data of a single-tenant installation to a
//! tenant of a multi-tenant one.
//!
//! Single-tenant mode (`multiTenant.enabled: false`) serves every request as its
//! `fallbackTenantId` and keeps everything under that tenant: its record, usage, audit log and
//! OAuth credentials (stored through the admin API under that id). Migrating is therefore: make
//! sure the target tenant (by default `default`, as the setup guide names it) exists, move the
//! credentials from the single-tenant id under it when the two differ, and give it a new API key,
//! printed once. The decision is [`plan`] (pure); [`run`] carries it out against the same stores
//! `serve` uses, with the gateway stopped (the embedded store refuses a second opener).

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use connectors_actors::api_key::KeyHash;
use connectors_actors::audit::{AuditEvent, AuditResult};
use connectors_actors::secret_store::{OAuthCredential, SecretError, SecretStore};
use connectors_actors::store::{Batch, Store, StoreError};
use connectors_actors::tenant::{StoredKey, TenantId, TenantRecord};
use serde_json::json;

use crate::app::{StartError, open_secrets, open_store};
use crate::config::Config;
use crate::keys;

/// The tenant the guide's migration creates when none is named.
pub const DEFAULT_TARGET: &str = "default";

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("{0}")]
    Open(#[from] StartError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secrets(#[from] SecretError),
    #[error("`{0}` is not a tenant id: {1}")]
    BadId(String, String),
    #[error(
        "no single-tenant id to migrate from: pass --from, or the single-tenant config (its `multiTenant.fallbackTenantId`)"
    )]
    NoSource,
    #[error("plan `{0}` is not in the configuration's plans")]
    UnknownPlan(String),
    #[error(
        "neither tenant `{from}` (the single-tenant data) nor `{to}` exists in this store: is this the data of the single-tenant gateway (--data-dir, --redis-url)?"
    )]
    NothingToMigrate { from: TenantId, to: TenantId },
    #[error(
        "tenant `{to}` already holds a different credential for `{integration}` than `{from}`; delete one of them (DELETE /api/v1/admin/tenants/{{id}}/oauth/{integration}) and run the migration again"
    )]
    CredentialConflict { from: TenantId, to: TenantId, integration: String },
}

/// What a migration does; computed from what the stores hold, before anything is written.
#[derive(Debug, PartialEq)]
pub struct Plan {
    /// The target's record as it will be saved (with its new key).
    pub target: TenantRecord,
    /// The target did not exist: it is created (with the single-tenant tenant's plan, limits,
    /// features and allow-list, so the migrated users are served as before).
    pub create: bool,
    /// Credentials written under the target, then deleted from the source.
    pub moves: Vec<(String, OAuthCredential)>,
    /// Credentials the target already holds identically (a migration run again after a failure
    /// half way): only deleted from the source.
    pub already_moved: Vec<String>,
}

/// What the stores hold, read before planning.
pub struct Found {
    pub source: Option<TenantRecord>,
    pub target: Option<TenantRecord>,
    pub source_credentials: Vec<(String, OAuthCredential)>,
    pub target_credentials: Vec<(String, OAuthCredential)>,
}

/// How the target is made when it does not exist.
pub struct TargetSpec<'a> {
    pub id: &'a TenantId,
    pub name: &'a str,
    /// `None`: a new target gets the single-tenant tenant's plan, an existing one keeps its own.
    pub plan: Option<&'a str>,
}

/// Decides a migration from `from` to `spec.id`, with `new_key` as the target's only key.
pub fn plan(
    now: DateTime<Utc>,
    from: &TenantId,
    spec: &TargetSpec<'_>,
    found: Found,
    new_key: KeyHash,
) -> Result<Plan, MigrateError> {
    let to = spec.id;
    let (mut target, create) = match (found.target, &found.source) {
        (Some(target), _) => (target, false),
        (None, Some(source)) => {
            let mut record = source.clone();
            record.id = to.clone();
            record.name = spec.name.to_string();
            record.created_at = now;
            (record, true)
        }
        (None, None) => {
            return Err(MigrateError::NothingToMigrate { from: from.clone(), to: to.clone() });
        }
    };
    if let Some(plan) = spec.plan {
        target.plan = plan.to_string();
    }
    let mut moves = Vec::new();
    let mut already_moved = Vec::new();
    if from != to {
        for (integration, credential) in found.source_credentials {
            match found.target_credentials.iter().find(|(name, _)| *name == integration) {
                None => moves.push((integration, credential)),
                Some((_, held)) if *held == credential => already_moved.push(integration),
                Some(_) => {
                    return Err(MigrateError::CredentialConflict { from: from.clone(), to: to.clone(), integration });
                }
            }
        }
    }
    // The only key: whatever key the target had (single-tenant mode made one nobody was shown)
    // stops at once.
    target.keys = vec![StoredKey { hash: new_key, created_at: now, expires_at: None }];
    target.updated_at = now;
    Ok(Plan { target, create, moves, already_moved })
}

/// What to migrate, from the command line.
pub struct MigrateInput<'a> {
    pub config: &'a Config,
    pub data_dir: &'a Path,
    pub redis_url: Option<&'a str>,
    pub master_key: Option<&'a str>,
    /// The single-tenant tenant; `None`: the configuration's `fallbackTenantId`.
    pub from: Option<&'a str>,
    pub to: &'a str,
    pub name: &'a str,
    pub plan: Option<&'a str>,
}

/// What a migration did, for the operator; `api_key` is shown only here.
#[derive(Debug)]
pub struct Report {
    pub from: TenantId,
    pub to: TenantId,
    pub created: bool,
    pub plan: String,
    pub moved: Vec<String>,
    pub api_key: String,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "Migrated the single-tenant data of `{}` to tenant `{}`.", self.from, self.to)?;
        let state = if self.created { "created" } else { "already existed" };
        writeln!(f, "  tenant `{}`: {state} (plan {})", self.to, self.plan)?;
        let moved = if self.moved.is_empty() { "none".to_string() } else { self.moved.join(", ") };
        writeln!(f, "  OAuth credentials moved: {moved}")?;
        writeln!(f, "  API key of `{}` (shown once; only its hash is stored):", self.to)?;
        write!(f, "{}", self.api_key)
    }
}

fn tenant_id(text: &str) -> Result<TenantId, MigrateError> {
    TenantId::parse(text).map_err(|e| MigrateError::BadId(text.to_string(), e.to_string()))
}

/// Carries out the migration against the stores `serve` would open with the same flags.
pub async fn run(input: &MigrateInput<'_>) -> Result<Report, MigrateError> {
    let from = match input.from {
        Some(text) => tenant_id(text)?,
        None => input.config.identity.fallback.clone().ok_or(MigrateError::NoSource)?,
    };
    let to = tenant_id(input.to)?;
    if let Some(plan) = input.plan
        && !input.config.policy.has_plan(plan)
    {
        return Err(MigrateError::UnknownPlan(plan.to_string()));
    }
    let store = open_store(input.config, input.data_dir, input.redis_url).await?;
    let secrets = open_secrets(input.config, input.data_dir, input.redis_url, input.master_key).await?;
    let found = Found {
        source: store.tenant(&from).await?,
        target: store.tenant(&to).await?,
        source_credentials: secrets.list(&from).await?,
        target_credentials: secrets.list(&to).await?,
    };
    let api_key = keys::generate("ck_");
    let now = Utc::now();
    let spec = TargetSpec { id: &to, name: input.name, plan: input.plan };
    let plan = plan(now, &from, &spec, found, KeyHash::of(&api_key))?;
    let moved = apply(store.as_ref(), secrets.as_ref(), &from, &plan).await?;
    audit(store, &from, &plan, &moved, now).await?;
    Ok(Report { from, to, created: plan.create, plan: plan.target.plan.clone(), moved, api_key })
}

/// Writes the plan. Each credential is written under the target before it leaves the source,
/// so an interrupted run loses none, and running again finishes it.
async fn apply(
    store: &dyn Store,
    secrets: &dyn SecretStore,
    from: &TenantId,
    plan: &Plan,
) -> Result<Vec<String>, MigrateError> {
    if plan.create {
        store.create_tenant(&plan.target).await?;
    } else {
        store.update_tenant(&plan.target).await?;
    }
    let mut moved = Vec::new();
    for (integration, credential) in &plan.moves {
        secrets.put(&plan.target.id, integration, credential).await?;
        secrets.delete(from, integration).await?;
        moved.push(integration.clone());
    }
    for integration in &plan.already_moved {
        secrets.delete(from, integration).await?;
        moved.push(integration.clone());
    }
    moved.sort();
    Ok(moved)
}

/// One event in the target's audit log says what the migration did (never the key).
async fn audit(
    store: Arc<dyn Store>,
    from: &TenantId,
    plan: &Plan,
    moved: &[String],
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let event = AuditEvent {
        timestamp: at,
        tenant_id: plan.target.id.clone(),
        user_id: Some("admin".into()),
        action: "admin.migrate.single_to_multi".into(),
        tool_id: None,
        params: Some(json!({"from": from.as_str(), "created": plan.create, "oauthMoved": moved})),
        result: AuditResult::Success,
        duration: (Utc::now() - at).num_milliseconds().max(0) as u64,
        ip: None,
        user_agent: None,
        request_id: "migrate".into(),
        event_id: None,
    };
    store.commit(Arc::new(Batch { id: None, audit: vec![event], ..Default::default() })).await
}

#[cfg(test)]
#[path = "migrate_tests.rs"]
mod tests;
