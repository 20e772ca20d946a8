//! The running gateway: its backends, its tenant actors and the state every handler shares.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use connectors_actors::api_key::KeyHash;
use connectors_actors::audit::{AuditEvent, AuditResult};
use connectors_actors::clock::{Clock, SystemClock};
use connectors_actors::policy::Policy;
use connectors_actors::recorder::{Recorder, RecorderConfig};
use connectors_actors::secret_store::{SecretError, SecretStore};
use connectors_actors::store::{Store, StoreError};
use connectors_actors::supervisor::{SupervisorArgs, TenantDirectory, TenantSupervisor};
use connectors_actors::tenant::{TenantId, TenantRecord, TenantStatus};
use connectors_actors::tenant_actor::TenantEnv;
use serde_json::Value;

use crate::backends::file_secret_store::{FileSecretStore, MasterKey};
use crate::backends::redb_store::RedbStore;
use crate::backends::vault_secret_store::VaultSecretStore;
use crate::config::Config;
use crate::keys;
use crate::metrics::Metrics;
use crate::oauth_client::TokenClient;

const ADMIN_KEY_META: &str = "admin_key_sha256";

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secrets(#[from] SecretError),
    #[error("cannot set up the HTTP client for token endpoints: {0}")]
    Http(String),
    #[error("cannot start the tenant supervisor: {0}")]
    Supervisor(String),
}

/// Everything handlers share.
pub struct Gateway {
    pub config: Config,
    pub policy: Arc<Policy>,
    pub store: Arc<dyn Store>,
    pub secrets: Arc<dyn SecretStore>,
    pub directory: Arc<TenantDirectory>,
    pub recorder: Recorder,
    pub clock: Arc<dyn Clock>,
    pub metrics: Metrics,
    pub admin_key: KeyHash,
    /// Which tenant a key belongs to, remembered for requests without a tenant header.
    pub key_owners: dashmap::DashMap<KeyHash, TenantId>,
    /// Enables the crash endpoint used to test supervision (`CONNECTORS_FAULT_INJECTION=1`).
    pub fault_injection: bool,
    recorder_task: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// Options that come from the command line and environment rather than the config file.
pub struct StartOptions<'a> {
    pub data_dir: &'a Path,
    pub admin_key: Option<String>,
    /// `CONNECTORS_MASTER_KEY`; without it a key file in the data dir is used (made on first start).
    pub master_key: Option<String>,
    pub fault_injection: bool,
}

impl Gateway {
    pub async fn start(config: Config, options: StartOptions<'_>) -> Result<Arc<Self>, StartError> {
        std::fs::create_dir_all(options.data_dir)
            .map_err(|source| StartError::DataDir { path: options.data_dir.display().to_string(), source })?;
        let store: Arc<dyn Store> = Arc::new(RedbStore::open(&options.data_dir.join("connectors.redb"))?);
        let admin_key = admin_key(store.as_ref(), options.admin_key).await?;
        let secrets: Arc<dyn SecretStore> = match config.vault.clone() {
            Some(vault) => {
                tracing::info!(addr = %vault.addr, kv_mount = %vault.kv_mount, "secret store: Vault");
                Arc::new(VaultSecretStore::connect(vault).await?)
            }
            None => {
                let master_key = match options.master_key.as_deref() {
                    Some(text) => MasterKey::from_env_value(text)?,
                    None => MasterKey::load_or_create(&options.data_dir.join("master.key"))?,
                };
                Arc::new(FileSecretStore::open(&options.data_dir.join("secrets.redb"), master_key)?)
            }
        };
        let tokens = TokenClient::new(config.oauth_token_timeout).map_err(|e| StartError::Http(e.to_string()))?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let policy = Arc::new(config.policy.clone());
        let (recorder, recorder_task) = Recorder::start(
            store.clone(),
            // A batch flushes early at 65,536 entries (about 20 MB), which bounds the recorder's memory.
            RecorderConfig { flush_interval: config.flush_interval, max_batch: 65_536, queue: 65_536 },
        );
        let env = Arc::new(TenantEnv {
            store: store.clone(),
            recorder: recorder.clone(),
            clock: clock.clone(),
            policy: policy.clone(),
            passivate_after: chrono::Duration::from_std(config.passivate_after).unwrap_or(chrono::Duration::MAX),
            secrets: secrets.clone(),
            tokens: Arc::new(tokens),
            refresh_before: chrono::Duration::from_std(config.oauth_refresh_before).unwrap_or(chrono::Duration::MAX),
        });
        let directory =
            TenantSupervisor::start(SupervisorArgs { env, tick: config.tick, call_timeout: config.call_timeout })
                .await
                .map_err(|e| StartError::Supervisor(e.to_string()))?;
        let gateway = Arc::new(Self {
            config,
            policy,
            store,
            secrets,
            directory,
            recorder,
            clock,
            metrics: Metrics::default(),
            admin_key,
            key_owners: dashmap::DashMap::new(),
            fault_injection: options.fault_injection,
            recorder_task: tokio::sync::Mutex::new(Some(recorder_task)),
        });
        gateway.ensure_fallback_tenant().await?;
        Ok(gateway)
    }

    /// In single-tenant and key-less modes the fallback tenant must exist; create it once.
    async fn ensure_fallback_tenant(&self) -> Result<(), StoreError> {
        let Some(id) = self.config.identity.fallback.clone() else { return Ok(()) };
        if self.store.tenant(&id).await?.is_some() {
            return Ok(());
        }
        let now = self.clock.now();
        let record = self.new_record(id.clone(), id.to_string(), None, None, now, KeyHash::of(&keys::generate("ck_")));
        match self.store.create_tenant(&record).await {
            Ok(()) | Err(StoreError::Conflict(_)) => {}
            Err(error) => return Err(error),
        }
        tracing::info!(tenant = %id, "created the fallback tenant (rotate its key to call it with one)");
        self.audit_admin(&id, "admin.tenant.create", None, "startup", now).await;
        Ok(())
    }

    /// A new tenant record with one key.
    pub fn new_record(
        &self,
        id: TenantId,
        name: String,
        email: Option<String>,
        plan: Option<String>,
        now: DateTime<Utc>,
        key: KeyHash,
    ) -> TenantRecord {
        TenantRecord {
            id,
            name,
            email,
            plan: plan.unwrap_or_else(|| self.policy.default_plan.clone()),
            status: TenantStatus::Active,
            limits: Default::default(),
            features: Default::default(),
            security: Default::default(),
            created_at: now,
            updated_at: now,
            keys: vec![connectors_actors::tenant::StoredKey { hash: key, created_at: now, expires_at: None }],
        }
    }

    /// Records an admin change in the tenant's audit log.
    pub async fn audit_admin(
        &self,
        tenant: &TenantId,
        action: &str,
        params: Option<Value>,
        request_id: &str,
        at: DateTime<Utc>,
    ) {
        let event = AuditEvent {
            timestamp: at,
            tenant_id: tenant.clone(),
            user_id: Some("admin".into()),
            action: action.into(),
            tool_id: None,
            params: params.map(connectors_actors::audit::redact_secrets),
            result: AuditResult::Success,
            duration: (self.clock.now() - at).num_milliseconds().max(0) as u64,
            ip: None,
            user_agent: None,
            request_id: request_id.into(),
        };
        self.record_audit(event).await;
    }

    pub async fn record_audit(&self, event: AuditEvent) {
        if self.recorder.audit(event).await.is_err() {
            tracing::error!("recorder stopped; audit event not recorded");
        }
    }

    /// Stops every tenant actor (they write their state out) and commits what is queued.
    pub async fn shutdown(&self) {
        self.directory.shutdown(Duration::from_secs(10)).await;
        if let Err(error) = self.recorder.flush().await {
            tracing::error!(%error, "final flush failed");
        }
        if let Some(task) = self.recorder_task.lock().await.take() {
            task.abort();
        }
    }
}

/// The admin key's hash: from `ADMIN_API_KEY` when set, else the stored one, else a new key
/// printed once on stdout.
async fn admin_key(store: &dyn Store, configured: Option<String>) -> Result<KeyHash, StoreError> {
    if let Some(key) = configured {
        return Ok(KeyHash::of(&key));
    }
    if let Some(bytes) = store.meta(ADMIN_KEY_META).await? {
        let bytes: [u8; 32] =
            bytes.try_into().map_err(|_| StoreError::Corrupt("admin key hash is not 32 bytes".into()))?;
        return Ok(KeyHash::from_bytes(bytes));
    }
    let key = keys::generate("ck_admin_");
    let hash = KeyHash::of(&key);
    store.set_meta(ADMIN_KEY_META, hash.as_bytes()).await?;
    // stdout, not the log: shown once to the operator, never written to a log file by us.
    println!("Generated admin API key (shown once; set ADMIN_API_KEY to choose your own): {key}");
    Ok(hash)
}
