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
use connectors_actors::tenant_oauth::OAuthCounts;
use connectors_cluster::cluster_node::ClusterNode;
use connectors_cluster::membership::{MemberRecord, Membership, MembershipConfig, NodeStatus};
use connectors_cluster::router::{HoldConfig, ShardRouter, ShardTable};
use connectors_cluster::shard_map::{NodeId, ShardMap};
use connectors_cluster::transport::links::{LinkConfig, Links};
use connectors_cluster::transport::region::{RegionArgs, ShardRegion};
use connectors_cluster::transport::tls::{LinkTls, LinkTlsError, TlsFiles, TlsPart};
use serde_json::Value;

use crate::backends::embedded_tool_graph::{EmbeddedToolGraph, FILE_NAME as TOOL_GRAPH_FILE};
use crate::backends::file_secret_store::FileSecretStore;
use crate::backends::local_deployer::LocalDeployerConfig;
use crate::backends::neo4j_tool_graph::Neo4jToolGraph;
use crate::backends::node_deployer::NodeDeployer;
use crate::backends::quarantine_file::{FILE_NAME as QUARANTINE_FILE, QuarantineFile};
use crate::backends::redb_store::RedbStore;
use crate::backends::redis_connection::RedisConnection;
use crate::backends::redis_membership::RedisMembership;
use crate::backends::redis_rate_counter::RedisRateCounter;
use crate::backends::redis_secret_store::RedisSecretStore;
use crate::backends::redis_store::RedisStore;
use crate::backends::redis_tool_graph::RedisToolGraph;
use crate::backends::sealed_secrets::MasterKey;
use crate::backends::vault_secret_store::VaultSecretStore;
use crate::config::{ClusterTlsFiles, Config, RateLimitStore};
use crate::keys;
use crate::metrics::Metrics;
use crate::oauth_client::TokenClient;
use crate::outbound::CheckedHttp;
use crate::tools::catalog::Catalog;
use crate::tools::registry::ToolRegistry;
use crate::tools::selection::engine::SelectionEngine;
use crate::tools::selector::{CO_USAGE_REFRESH, Selector};
use crate::tools::sentence_encoder::SentenceEncoder;
use crate::tools::tenant_servers::RegistryServerTools;
use crate::tools::tool_graph::{ToolGraph, ToolGraphError};
use connectors_actors::deployments::RetryPolicy;

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
    #[error("cluster: {0}")]
    Cluster(String),
    #[error("config: `{key}`: {error}")]
    ClusterTls { key: &'static str, error: LinkTlsError },
    #[error("tool graph: {0}")]
    ToolGraph(String),
    #[error("config: `tools.embeddingModel`: {0}")]
    EmbeddingModel(String),
    #[error("deployer: {0}")]
    Kubernetes(#[from] crate::backends::kubernetes::KubernetesSetupError),
}

/// Everything handlers share.
/// Client addresses whose failed authentications are counted at most.
const AUTH_FAILURE_ADDRESSES: usize = 100_000;

pub struct Gateway {
    pub config: Config,
    pub policy: Arc<Policy>,
    pub store: Arc<dyn Store>,
    pub secrets: Arc<dyn SecretStore>,
    pub directory: Arc<TenantDirectory>,
    /// Where tenant calls go: the local directory or the owning node.
    pub router: Arc<ShardRouter>,
    /// `None` on a single node.
    pub cluster: Option<Arc<ClusterNode>>,
    pub node_id: NodeId,
    /// The HTTP address this node serves on.
    pub http_addr: String,
    /// `RATE_LIMIT_STORE=redis`: the per-request Redis counter that replaces the actor's windows.
    pub rate_counter: Option<RedisRateCounter>,
    /// Tool selection and what it learned.
    pub selector: Arc<Selector>,
    /// Shared integrations and the catalog of every tool.
    pub registry: Arc<ToolRegistry>,
    /// Runs tenants' own servers: stdio ones on this node, or images on Kubernetes.
    pub deployer: NodeDeployer,
    pub recorder: Recorder,
    pub clock: Arc<dyn Clock>,
    pub metrics: Metrics,
    /// The tenants' OAuth refreshes: tokens stored late or lost, failed loads.
    pub oauth_counts: Arc<OAuthCounts>,
    pub admin_key: KeyHash,
    /// Which tenant a key belongs to, remembered for requests without a tenant header.
    pub key_owners: dashmap::DashMap<KeyHash, TenantId>,
    /// Tenants' JSON bodies, their record part kept per record version.
    pub tenant_json: crate::http::tenant_json::TenantJson,
    /// Which refused requests get an audit event of their own (`audit.refusalsPerMinute`).
    pub refusal_audit: std::sync::Mutex<connectors_actors::refusal_audit::RefusalAudit>,
    /// Failed authentications per client address (`gateway.authFailuresPerMinute`).
    pub auth_failures: std::sync::Mutex<connectors_actors::auth_failures::AuthFailures>,
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
    /// Address the HTTP API listens on (what peers are told).
    pub http_addr: std::net::SocketAddr,
    /// `--redis-url` / `REDIS_URL`: the store (and the membership table) live in Redis.
    pub redis_url: Option<String>,
    /// Cluster mode: `--node-id`, `--cluster-listen` and the cookie.
    pub cluster: Option<ClusterIdentity>,
}

pub struct ClusterIdentity {
    pub node_id: String,
    pub listen: std::net::SocketAddr,
    /// `--cluster-advertise`: what peers dial; `None`: the listen address.
    pub advertise: Option<String>,
    /// `CONNECTORS_CLUSTER_COOKIE`: peers without it are refused.
    pub cookie: String,
}

impl Gateway {
    pub async fn start(config: Config, options: StartOptions<'_>) -> Result<Arc<Self>, StartError> {
        private_data_dir(options.data_dir)
            .map_err(|source| StartError::DataDir { path: options.data_dir.display().to_string(), source })?;
        let redis = options.redis_url.as_deref();
        let store = open_store(&config, options.data_dir, redis).await?;
        let rate_counter = match (config.rate_limit_store, redis) {
            (RateLimitStore::Actor, _) => None,
            (RateLimitStore::Redis, Some(url)) => {
                tracing::info!("rate limits: Redis counter per request (compatibility mode)");
                Some(RedisRateCounter::connect(url, &config.redis_prefix).await?.with_layout(config.redis_layout))
            }
            (RateLimitStore::Redis, None) => {
                return Err(StartError::Cluster("RATE_LIMIT_STORE=redis needs a Redis URL (--redis-url)".into()));
            }
        };
        let admin_key = admin_key(store.as_ref(), options.admin_key).await?;
        let secrets = open_secrets(&config, options.data_dir, redis, options.master_key.as_deref()).await?;
        let tokens = TokenClient::new(config.outbound.clone(), config.oauth_token_timeout)
            .map_err(|e| StartError::Http(e.to_string()))?;
        let mcp_http = CheckedHttp::new(config.outbound.clone(), reqwest::Client::builder())
            .map_err(|e| StartError::Http(e.to_string()))?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let mut policy = config.policy.clone();
        // In the compatibility mode the Redis counter limits, not the actor's windows.
        policy.rate_limits_enabled &= rate_counter.is_none();
        let policy = Arc::new(policy);
        let (recorder, recorder_task) = Recorder::start(
            store.clone(),
            Arc::new(QuarantineFile::new(options.data_dir.join(QUARANTINE_FILE))),
            recorder_config(&config),
        );
        let deployer = match &config.kubernetes {
            Some(settings) => NodeDeployer::kubernetes(settings.clone(), store.clone()).await?,
            None => NodeDeployer::local(local_deployer_config(&config.stdio)),
        };
        let (graph, shared_graph) = open_tool_graph(&config, options.data_dir, redis)
            .await
            .map_err(|e| StartError::ToolGraph(e.to_string()))?;
        let encoder = load_encoder(config.embedding_model.clone()).await?;
        let engine = SelectionEngine::new(Catalog::default());
        let selector =
            Arc::new(Selector::open(engine, graph, encoder).await.map_err(|e| StartError::ToolGraph(e.to_string()))?);
        if shared_graph {
            // Edges made by other nodes' lessons; each tenant's own history is read per selection.
            tokio::spawn(Selector::keep_co_usage_fresh(Arc::downgrade(&selector), CO_USAGE_REFRESH));
        }
        let registry = Arc::new(
            ToolRegistry::load(
                store.clone(),
                Arc::new(deployer.mcp_pool(mcp_http, &config.outbound).map_err(|e| StartError::Http(e.to_string()))?),
                selector.clone(),
                config.tools.discovery_timeout,
            )
            .await?,
        );
        let server_tools = Arc::new(RegistryServerTools {
            registry: Arc::downgrade(&registry),
            discovery_timeout: config.tools.discovery_timeout,
        });
        let oauth_counts = Arc::new(OAuthCounts::default());
        let env = Arc::new(TenantEnv {
            store: store.clone(),
            recorder: recorder.clone(),
            clock: clock.clone(),
            policy: policy.clone(),
            passivate_after: chrono::Duration::from_std(config.passivate_after).unwrap_or(chrono::Duration::MAX),
            secrets: secrets.clone(),
            tokens: Arc::new(tokens),
            refresh_before: chrono::Duration::from_std(config.oauth_refresh_before).unwrap_or(chrono::Duration::MAX),
            oauth_counts: oauth_counts.clone(),
            deployer: deployer.port(),
            deploy_retry: RetryPolicy::default(),
            server_tools,
            mcp_sessions: config.mcp.sessions,
        });
        let node_id = NodeId(options.cluster.as_ref().map_or_else(|| "local".to_string(), |c| c.node_id.clone()));
        let table = ShardTable::new(node_id.clone());
        let directory = TenantSupervisor::start(SupervisorArgs {
            env,
            gate: table.clone(),
            tick: config.tick,
            call_timeout: config.call_timeout,
            fault_injection: options.fault_injection,
        })
        .await
        .map_err(|e| StartError::Supervisor(e.to_string()))?;
        let (router, cluster) = match (options.cluster, redis) {
            (None, _) => {
                let router = ShardRouter::new(table, directory.clone(), None, recorder.clone(), HoldConfig::default());
                // A single node owns every shard for good: no table to lose, no one to take over.
                router.renew_lease(i64::MAX);
                router.install(ShardMap::new(1, [node_id.clone()]), vec![node_id.clone()], i64::MIN, 1);
                (router, None)
            }
            (Some(identity), Some(url)) => {
                let connection = RedisConnection::connect(url).await?;
                let recorder = recorder.clone();
                let cluster = start_cluster(
                    &config,
                    &node_id,
                    identity,
                    options.http_addr,
                    connection,
                    (table, &directory, recorder),
                )
                .await?;
                (cluster.0, Some(cluster.1))
            }
            (Some(_), None) => return Err(StartError::Cluster("cluster mode needs a Redis URL (--redis-url)".into())),
        };
        if cluster.is_some() {
            // Integrations registered through other nodes reach this one's catalog.
            tokio::spawn(reload_integrations(Arc::downgrade(&registry), config.cluster.heartbeat * 4));
        }
        let auth_failures = std::sync::Mutex::new(connectors_actors::auth_failures::AuthFailures::new(
            config.auth_failures_per_minute,
            AUTH_FAILURE_ADDRESSES,
        ));
        let refusal_audit = std::sync::Mutex::new(connectors_actors::refusal_audit::RefusalAudit::new(
            config.audit_refusals_per_minute,
        ));
        let gateway = Arc::new(Self {
            config,
            policy,
            store,
            secrets,
            directory,
            router,
            cluster,
            node_id,
            http_addr: options.http_addr.to_string(),
            rate_counter,
            selector,
            registry,
            deployer,
            recorder,
            clock,
            metrics: Metrics::default(),
            oauth_counts,
            admin_key,
            key_owners: dashmap::DashMap::new(),
            tenant_json: Default::default(),
            auth_failures,
            refusal_audit,
            fault_injection: options.fault_injection,
            recorder_task: tokio::sync::Mutex::new(Some(recorder_task)),
        });
        gateway.ensure_fallback_tenant().await?;
        if let Some(settings) = gateway.config.billing_webhook.clone() {
            let webhook = crate::billing_webhook::BillingWebhook::new(
                gateway.store.clone(),
                gateway.clock.clone(),
                settings,
                gateway.config.pricing.clone(),
            )
            .map_err(|e| StartError::Http(e.to_string()))?;
            tokio::spawn(webhook.run());
        }
        tokio::spawn(write_refusal_summaries(Arc::downgrade(&gateway)));
        if let Some(retention) = gateway.config.audit_retention {
            tokio::spawn(prune_audit(Arc::downgrade(&gateway), retention));
        }
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
            mcp: Default::default(),
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
            event_id: None,
        };
        self.record_audit(event).await;
    }

    /// Records an audit event, through the tenant's owner when another node serves it.
    pub async fn record_audit(&self, event: AuditEvent) {
        self.router.record_audit(event).await;
    }

    fn refusals(&self) -> std::sync::MutexGuard<'_, connectors_actors::refusal_audit::RefusalAudit> {
        self.refusal_audit.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether a refused request of `tenant` gets an audit event of its own (else it is counted
    /// into its minute's summary).
    pub fn audit_refusal(&self, now: DateTime<Utc>, tenant: &TenantId, reason: &'static str) -> bool {
        self.refusals().refused(now, tenant, reason) == connectors_actors::refusal_audit::RefusalEntry::Record
    }

    /// Writes the summaries of `tenant`'s refusals counted so far, for a reader of its audit log.
    pub async fn write_refusals_of(&self, tenant: &TenantId) {
        let summaries = self.refusals().take_tenant(tenant);
        self.write_refusal_summaries(summaries).await;
    }

    async fn write_refusal_summaries(&self, summaries: Vec<connectors_actors::refusal_audit::RefusalSummary>) {
        let now = self.clock.now();
        for summary in summaries {
            let params = serde_json::json!({
                "reason": summary.reason,
                "count": summary.count,
                "minute": summary.minute.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            });
            let event = AuditEvent {
                timestamp: now,
                tenant_id: summary.tenant,
                user_id: None,
                action: "requests.refused".into(),
                tool_id: None,
                params: Some(params),
                result: connectors_actors::audit::AuditResult::Denied,
                duration: 0,
                ip: None,
                user_agent: None,
                request_id: String::new(),
                event_id: None,
            };
            self.record_audit(event).await;
        }
    }

    /// Stops every tenant actor (they write their state out), commits what is queued, then
    /// leaves the cluster view so that peers take the shards over from the written state.
    pub async fn shutdown(&self) {
        self.directory.shutdown(Duration::from_secs(10)).await;
        // Tenants' stdio servers end with the gateway; their actors restart them on activation.
        self.deployer.shutdown().await;
        self.router.flush_audit().await;
        if let Err(error) = self.recorder.flush().await {
            tracing::error!(%error, "final flush failed");
        }
        if let Some(cluster) = &self.cluster {
            cluster.leave().await;
        }
        if let Some(task) = self.recorder_task.lock().await.take() {
            task.abort();
        }
    }
}

/// The sentence encoder of `tools.embeddingModel`, loaded on a blocking thread (a 90 MB read);
/// without one, selection ranks by words alone, and the log says so.
async fn load_encoder(path: Option<std::path::PathBuf>) -> Result<Option<SentenceEncoder>, StartError> {
    let Some(path) = path else {
        tracing::info!("tool selection ranks by words alone: no tools.embeddingModel is configured");
        return Ok(None);
    };
    let loaded = tokio::task::spawn_blocking(move || SentenceEncoder::load(&path).map(|encoder| (encoder, path)))
        .await
        .map_err(|error| StartError::EmbeddingModel(error.to_string()))?;
    let (encoder, path) = loaded.map_err(|error| StartError::EmbeddingModel(error.to_string()))?;
    tracing::info!(model = %path.display(), "tool selection ranks by meaning as well as by words");
    Ok(Some(encoder))
}

/// The tool graph: Neo4j when configured, else Redis when the gateway has one (shared by the
/// cluster's nodes), else the embedded file; and whether it is shared with other nodes.
async fn open_tool_graph(
    config: &Config,
    data_dir: &Path,
    redis: Option<&str>,
) -> Result<(Arc<dyn ToolGraph>, bool), ToolGraphError> {
    let graph: Arc<dyn ToolGraph> = match (&config.neo4j, redis) {
        (Some(neo4j), _) => {
            tracing::info!(uri = %neo4j.uri, "tool graph: Neo4j");
            Arc::new(Neo4jToolGraph::connect(neo4j, config.co_usage).await?)
        }
        (None, Some(url)) => {
            tracing::info!(prefix = %config.redis_prefix, "tool graph: Redis");
            Arc::new(RedisToolGraph::connect(url, &config.redis_prefix, config.co_usage).await?)
        }
        (None, None) => {
            return Ok((Arc::new(EmbeddedToolGraph::open(&data_dir.join(TOOL_GRAPH_FILE), config.co_usage)?), false));
        }
    };
    Ok((graph, true))
}

/// The store `serve` runs with: Redis when a URL is given, else the redb file in the data dir.
pub async fn open_store(config: &Config, data_dir: &Path, redis: Option<&str>) -> Result<Arc<dyn Store>, StartError> {
    let store: Arc<dyn Store> = match redis {
        Some(url) => {
            tracing::info!(prefix = %config.redis_prefix, "store: Redis");
            Arc::new(RedisStore::connect(url, &config.redis_prefix).await?.with_layout(config.redis_layout).await?)
        }
        None => Arc::new(RedbStore::open(&data_dir.join("connectors.redb"), config.store_cache_bytes)?),
    };
    Ok(store)
}

/// The secret store `serve` runs with: Vault when configured, else Redis with a Redis URL, else
/// the encrypted file in the data dir.
pub async fn open_secrets(
    config: &Config,
    data_dir: &Path,
    redis: Option<&str>,
    master_key: Option<&str>,
) -> Result<Arc<dyn SecretStore>, StartError> {
    let secrets: Arc<dyn SecretStore> = match (config.vault.clone(), redis) {
        (Some(vault), _) => {
            tracing::info!(addr = %vault.addr, kv_mount = %vault.kv_mount, "secret store: Vault");
            Arc::new(VaultSecretStore::connect(vault).await?)
        }
        // With Redis, credentials live there, so that they follow a tenant to whichever node runs
        // it. Every node must seal them with the same master key: a key file per node cannot do.
        (None, Some(url)) => {
            let Some(text) = master_key else {
                return Err(SecretError::Backend(
                    "CONNECTORS_MASTER_KEY is not set: with a Redis URL (--redis-url / REDIS_URL) OAuth \
                     credentials are kept in Redis, sealed with CONNECTORS_MASTER_KEY, which every node must be \
                     given, the same on all (make one with `openssl rand -base64 32`)"
                        .into(),
                )
                .into());
            };
            tracing::info!(
                prefix = %config.redis_prefix,
                "secret store: Redis (master key from CONNECTORS_MASTER_KEY)"
            );
            let master_key = MasterKey::from_env_value(text)?;
            Arc::new(
                RedisSecretStore::connect(url, &config.redis_prefix, master_key)
                    .await?
                    .with_layout(config.redis_layout),
            )
        }
        (None, None) => {
            let master_key = match master_key {
                Some(text) => {
                    tracing::info!("secret store: encrypted file (master key from CONNECTORS_MASTER_KEY)");
                    MasterKey::from_env_value(text)?
                }
                None => {
                    let path = data_dir.join("master.key");
                    tracing::info!(
                        key_file = %path.display(),
                        "secret store: encrypted file (master key from a key file)"
                    );
                    MasterKey::load_or_create(&path)?
                }
            };
            Arc::new(FileSecretStore::open(&data_dir.join("secrets.redb"), master_key)?)
        }
    };
    Ok(secrets)
}

async fn reload_integrations(registry: std::sync::Weak<ToolRegistry>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let Some(registry) = registry.upgrade() else { return };
        if let Err(error) = registry.reload().await {
            tracing::warn!(%error, "cannot reload the integrations");
        }
    }
}

/// Joins the cluster: the node-to-node listener, the region peers talk to, and the membership
/// heartbeat through the Redis table.
async fn start_cluster(
    config: &Config,
    me: &NodeId,
    identity: ClusterIdentity,
    http_addr: std::net::SocketAddr,
    connection: RedisConnection,
    (table, directory, recorder): (Arc<ShardTable>, &Arc<TenantDirectory>, Recorder),
) -> Result<(Arc<ShardRouter>, Arc<ClusterNode>), StartError> {
    let timing = &config.cluster;
    let tls = link_tls(config.cluster_tls.as_ref())?;
    let store = RedisMembership::new(connection.handle(), &config.redis_prefix);
    store.claim_cookie(&identity.cookie).await.map_err(|e| StartError::Cluster(e.to_string()))?;
    let links = Links::start(
        me.clone(),
        identity.listen,
        identity.cookie,
        tls,
        LinkConfig {
            deadline: timing.request_deadline,
            max_in_flight: timing.max_in_flight_per_peer,
            heartbeat: timing.heartbeat,
            missed_pings: 3,
        },
    )
    .await
    .map_err(|e| StartError::Cluster(e.to_string()))?;
    let hold = HoldConfig { deadline: timing.hold, max_held: timing.max_held_requests };
    let router = ShardRouter::new(table, directory.clone(), Some(links.clone()), recorder, hold);
    ShardRegion::start(RegionArgs { me: me.clone(), handler: router.clone() })
        .await
        .map_err(|e| StartError::Cluster(format!("cannot start the shard region: {e}")))?;
    let cluster_addr = identity.advertise.unwrap_or_else(|| links.listen_addr().to_string());
    let now_ms = Utc::now().timestamp_millis();
    let record = MemberRecord {
        id: me.clone(),
        http_addr: http_addr.to_string(),
        cluster_addr: cluster_addr.clone(),
        status: NodeStatus::Joining,
        heartbeat_ms: now_ms,
        started_ms: now_ms,
    };
    let membership = Membership::new(
        record,
        MembershipConfig {
            heartbeat_interval_ms: timing.heartbeat.as_millis() as i64,
            failure_timeout_ms: timing.failure_timeout.as_millis() as i64,
        },
    );
    let store = Arc::new(store);
    tracing::info!(node = %me, cluster_listen = %links.listen_addr(), %cluster_addr, "joining the cluster");
    let node = ClusterNode::start(membership, store, links, router.clone(), timing.heartbeat);
    Ok((router, node))
}

/// The TLS of the cluster links from `cluster.tls.*`, read now so that a bad file stops start-up.
fn link_tls(files: Option<&ClusterTlsFiles>) -> Result<Option<LinkTls>, StartError> {
    let Some(files) = files else {
        tracing::warn!(
            "cluster links are plaintext: tenant records, key hashes and calls cross them unencrypted \
             (set cluster.tls.certFile, keyFile and caFile to encrypt them)"
        );
        return Ok(None);
    };
    let tls = LinkTls::load(&TlsFiles {
        cert: &files.cert_file,
        key: &files.key_file,
        ca: &files.ca_file,
        server_name: &files.server_name,
    })
    .map_err(|error| {
        let key = match error.part {
            TlsPart::Cert => "cluster.tls.certFile",
            TlsPart::Key => "cluster.tls.keyFile",
            TlsPart::Ca => "cluster.tls.caFile",
            TlsPart::ServerName => "cluster.tls.serverName",
        };
        StartError::ClusterTls { key, error }
    })?;
    tracing::info!(server_name = %files.server_name, "cluster links use mutual TLS");
    Ok(Some(tls))
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

/// Every few seconds, the summaries of refusals counted in minutes that are over.
async fn write_refusal_summaries(gateway: std::sync::Weak<Gateway>) {
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let Some(gateway) = gateway.upgrade() else { return };
        let summaries = gateway.refusals().take_ended(gateway.clock.now());
        gateway.write_refusal_summaries(summaries).await;
    }
}

/// `audit.retentionDays`: soon after start, then every hour, the audit events older than the
/// retention are deleted (every node does it; a second pass finds nothing).
async fn prune_audit(gateway: std::sync::Weak<Gateway>, retention: chrono::Duration) {
    let mut wait = Duration::from_secs(1);
    loop {
        tokio::time::sleep(wait).await;
        wait = Duration::from_secs(3_600);
        let Some(gateway) = gateway.upgrade() else { return };
        let before = gateway.clock.now() - retention;
        match gateway.store.delete_audit_before(before).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, before = %before, "audit events past their retention deleted"),
            Err(error) => {
                tracing::warn!(%error, "cannot delete audit events past their retention; retrying in an hour")
            }
        }
    }
}

/// Makes the data dir (keys, secrets, every record) readable by the gateway's user only: the dir
/// 0700 and what is in it 0600 (0700 for directories), also what an older version left looser;
/// and every file created from now on private (umask 077).
fn private_data_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    std::fs::create_dir_all(dir)?;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let metadata = std::fs::symlink_metadata(&path)?;
        let private = if metadata.is_dir() { 0o700 } else { 0o600 };
        if metadata.file_type().is_symlink() {
            continue;
        }
        if metadata.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(private))?;
        }
        if metadata.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                pending.push(entry?.path());
            }
        }
    }
    Ok(())
}

/// The recorder's settings from the configuration (the benchmark's floor uses the same).
pub fn recorder_config(config: &Config) -> RecorderConfig {
    RecorderConfig {
        flush_interval: config.flush_interval,
        // A batch commits early at 65,536 entries (about 20 MB).
        max_batch: 65_536,
        queue: 65_536,
        max_pending_bytes: config.recorder_max_pending_bytes,
    }
}

/// Where and as whom tenants' `stdio` servers run: as `run_as` when the gateway runs as root (a
/// gateway of another user cannot change its children's user, and says so).
fn local_deployer_config(stdio: &crate::config::StdioSettings) -> LocalDeployerConfig {
    let as_root = rustix::process::geteuid().is_root();
    if !as_root && !stdio.allowed_commands.is_empty() {
        tracing::warn!(
            "stdio servers run as the gateway's own user, which can read its data dir; run the gateway as root \
             (children then run as deployer.runAsUser) or use the Kubernetes deployer to isolate them"
        );
    }
    let work_dir = match &stdio.work_dir {
        Some(dir) => dir.clone(),
        // A fresh directory per process: servers' directories are scratch space.
        None => std::env::temp_dir().join(crate::keys::generate("connectors-servers-")),
    };
    let mut config = LocalDeployerConfig::new(work_dir, stdio.allowed_commands.clone());
    config.run_as = as_root.then_some(stdio.run_as);
    config
}
