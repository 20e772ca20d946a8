use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::AtomicU32;

use async_trait::async_trait;
use chrono::{Duration, TimeZone};
use ractor::{Actor, ActorProcessingErr};
use tokio::sync::{Semaphore, mpsc, watch};

use super::*;
use crate::deployer::{DeployError, Deployer, DeployerEvent, Endpoint, Health, ServerName, ServerSource, SourceKind};
use crate::deployments::{RetryPolicy, ServerRecord};
use crate::policy::Policy;
use crate::recorder::RecorderConfig;
use crate::recorder::tests::{FlakyStore, MemorySink};
use crate::server_tools::ServerTools;
use crate::tenant::{Features, Limits};
use crate::token_endpoint::TokenEndpoint;

const INTEGRATION: &str = "github";

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
}

/// Credentials in memory. The first `failing_lists` listings fail, as a secret store that is down
/// when tenants are activated; every write is announced on `writes`.
struct MemorySecrets {
    credentials: Mutex<HashMap<String, OAuthCredential>>,
    failing_lists: AtomicU32,
    lists: AtomicU32,
    writes: watch::Sender<u64>,
}

impl MemorySecrets {
    fn new(failing_lists: u32) -> Self {
        Self {
            credentials: Mutex::default(),
            failing_lists: AtomicU32::new(failing_lists),
            lists: AtomicU32::new(0),
            writes: watch::Sender::new(0),
        }
    }

    fn stored(&self) -> Option<OAuthCredential> {
        self.credentials.lock().unwrap().get(INTEGRATION).cloned()
    }

    fn wrote(&self) {
        self.writes.send_modify(|count| *count += 1);
    }
}

#[async_trait]
impl SecretStore for MemorySecrets {
    async fn put(&self, _: &TenantId, integration: &str, credential: &OAuthCredential) -> Result<(), SecretError> {
        self.credentials.lock().unwrap().insert(integration.into(), credential.clone());
        self.wrote();
        Ok(())
    }
    async fn replace(
        &self,
        _: &TenantId,
        integration: &str,
        expected: &OAuthCredential,
        credential: &OAuthCredential,
    ) -> Result<bool, SecretError> {
        let mut credentials = self.credentials.lock().unwrap();
        if credentials.get(integration) != Some(expected) {
            return Ok(false);
        }
        credentials.insert(integration.into(), credential.clone());
        drop(credentials);
        self.wrote();
        Ok(true)
    }
    async fn get(&self, _: &TenantId, integration: &str) -> Result<Option<OAuthCredential>, SecretError> {
        Ok(self.credentials.lock().unwrap().get(integration).cloned())
    }
    async fn list(&self, _: &TenantId) -> Result<Vec<(String, OAuthCredential)>, SecretError> {
        self.lists.fetch_add(1, Ordering::SeqCst);
        let failing = self.failing_lists.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if failing.is_ok() {
            return Err(SecretError::Backend("connection refused".into()));
        }
        let credentials = self.credentials.lock().unwrap();
        Ok(credentials.iter().map(|(name, credential)| (name.clone(), credential.clone())).collect())
    }
    async fn delete(&self, _: &TenantId, integration: &str) -> Result<bool, SecretError> {
        Ok(self.credentials.lock().unwrap().remove(integration).is_some())
    }
    async fn check(&self) -> Result<(), SecretError> {
        Ok(())
    }
    async fn tenants(&self) -> Result<Vec<TenantId>, SecretError> {
        Ok(Vec::new())
    }
    async fn delete_tenant(&self, _: &TenantId) -> Result<(), SecretError> {
        self.credentials.lock().unwrap().clear();
        Ok(())
    }
}

/// A provider that rotates the refresh token, and answers each refresh only once let.
struct GatedProvider {
    sent: mpsc::UnboundedSender<()>,
    answers: Semaphore,
}

#[async_trait]
impl TokenEndpoint for GatedProvider {
    async fn refresh(&self, _: &OAuthCredential) -> Result<RefreshedTokens, RefreshFailure> {
        self.sent.send(()).unwrap();
        self.answers.acquire().await.unwrap().forget();
        Ok(new_tokens())
    }
}

fn new_tokens() -> RefreshedTokens {
    RefreshedTokens {
        access_token: "at-2".into(),
        expires_in: Some(Duration::hours(1)),
        refresh_token: Some("rt-2".into()),
        scopes: Vec::new(),
    }
}

struct ManualClock(Mutex<DateTime<Utc>>);

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

impl ManualClock {
    fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap() = at;
    }
}

/// No custom servers in these tests.
struct NoServers(tokio::sync::broadcast::Sender<DeployerEvent>);

#[async_trait]
impl Deployer for NoServers {
    fn supports(&self, _: SourceKind) -> bool {
        false
    }
    async fn deploy(&self, _: &TenantId, _: &ServerName, source: &ServerSource) -> Result<Endpoint, DeployError> {
        Err(DeployError::Unsupported(source.kind()))
    }
    async fn stop(&self, _: &TenantId, _: &ServerName) -> Result<(), DeployError> {
        Ok(())
    }
    async fn health(&self, _: &TenantId, _: &ServerName) -> Option<Health> {
        None
    }
    fn events(&self) -> tokio::sync::broadcast::Receiver<DeployerEvent> {
        self.0.subscribe()
    }
}

#[async_trait]
impl ServerTools for NoServers {
    async fn discover(&self, _: &TenantId, _: &ServerRecord) -> Result<u64, String> {
        Ok(0)
    }
    async fn withdraw(&self, _: &TenantId, _: &ServerName) {}
}

/// A tenant actor's stand-in: `TenantOAuth` only needs its address.
struct Stub;

impl Actor for Stub {
    type Msg = TenantMsg;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<TenantMsg>, (): ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}

struct Fixture {
    env: TenantEnv,
    secrets: Arc<MemorySecrets>,
    clock: Arc<ManualClock>,
    sent: mpsc::UnboundedReceiver<()>,
    provider: Arc<GatedProvider>,
    tenant: TenantId,
}

impl Fixture {
    fn new(failing_lists: u32) -> Self {
        let secrets = Arc::new(MemorySecrets::new(failing_lists));
        let clock = Arc::new(ManualClock(Mutex::new(start())));
        let (sent_tx, sent) = mpsc::unbounded_channel();
        let provider = Arc::new(GatedProvider { sent: sent_tx, answers: Semaphore::new(0) });
        let store = Arc::new(FlakyStore::default());
        let config = RecorderConfig {
            flush_interval: std::time::Duration::from_secs(1),
            max_batch: 100,
            queue: 16,
            max_pending_bytes: 1 << 20,
        };
        let (recorder, _) = Recorder::start(store.clone(), Arc::new(MemorySink::default()), config);
        let servers = Arc::new(NoServers(tokio::sync::broadcast::channel(1).0));
        let env = TenantEnv {
            store,
            recorder,
            clock: clock.clone(),
            policy: Arc::new(Policy {
                default_limits: Limits {
                    requests_per_minute: 60,
                    requests_per_hour: 600,
                    requests_per_day: 6000,
                    max_custom_servers: 0,
                    max_tool_invocations: 100,
                    max_storage_mb: 1,
                },
                default_features: Features { custom_servers: false, oauth: true, advanced_analytics: false },
                plans: BTreeMap::new(),
                default_plan: "free".into(),
                rate_limits_enabled: false,
            }),
            passivate_after: Duration::minutes(5),
            secrets: secrets.clone(),
            tokens: provider.clone(),
            refresh_before: Duration::minutes(5),
            oauth_counts: Arc::default(),
            deployer: servers.clone(),
            deploy_retry: RetryPolicy::default(),
            server_tools: servers,
            mcp_sessions: crate::mcp_sessions::SessionLimits::default(),
        };
        Self { env, secrets, clock, sent, provider, tenant: TenantId::parse("acme").unwrap() }
    }

    fn credential(&self, refresh_token: &str, expires_in: Duration) -> OAuthCredential {
        OAuthCredential {
            access_token: "at-1".into(),
            refresh_token: Some(refresh_token.into()),
            expires_at: Some(self.clock.now() + expires_in),
            scopes: Vec::new(),
            token_endpoint: Some("https://provider.example/token".into()),
            client_id: Some("client".into()),
            client_secret: None,
            status: CredentialStatus::Active,
            last_refresh_at: None,
            refresh_generation: 0,
        }
    }

    /// Waits until the stored credential satisfies `done` (the bound only keeps a failure from
    /// hanging the suite).
    async fn stored_when(&self, done: impl Fn(&OAuthCredential) -> bool) -> OAuthCredential {
        let mut writes = self.secrets.writes.subscribe();
        let stored = async {
            loop {
                if let Some(stored) = self.secrets.stored().filter(|stored| done(stored)) {
                    return stored;
                }
                writes.changed().await.unwrap();
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(30), stored).await.expect("the credential was never stored")
    }
}

#[tokio::test]
async fn tokens_answered_after_the_actor_stopped_are_stored() {
    let mut f = Fixture::new(0);
    let (actor, _) = Actor::spawn(None, Stub, ()).await.unwrap();
    let mut oauth = TenantOAuth::new(f.env.refresh_before);
    // Due at once: it expires within `refresh_before`.
    let due = f.credential("rt-1", Duration::minutes(1));
    oauth.store(&f.env, &f.tenant, &actor, INTEGRATION.into(), due).await.unwrap();
    f.sent.recv().await.unwrap();
    // The provider has rotated the token; the actor passivates, is released or crashes meanwhile.
    actor.stop_and_wait(None, None).await.unwrap();
    f.provider.answers.add_permits(1);

    let stored = f.stored_when(|stored| stored.refresh_token.as_deref() == Some("rt-2")).await;
    assert_eq!((stored.access_token.as_str(), stored.status), ("at-2", CredentialStatus::Active));
    assert_eq!(stored.refresh_generation, 1);
    assert_eq!(f.env.oauth_counts.stored_after_actor_stopped.load(Ordering::Relaxed), 1);
    assert_eq!(f.env.oauth_counts.tokens_lost.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn a_late_answer_never_overwrites_a_newer_credential() {
    let f = Fixture::new(0);
    // Granted again meanwhile: a new refresh token, a new generation.
    let newer = OAuthCredential { refresh_generation: 1, ..f.credential("rt-granted", Duration::hours(1)) };
    f.secrets.put(&f.tenant, INTEGRATION, &newer).await.unwrap();
    let late = LateStore {
        tenant: f.tenant.clone(),
        secrets: f.secrets.clone(),
        recorder: f.env.recorder.clone(),
        clock: f.clock.clone(),
        counts: f.env.oauth_counts.clone(),
        runtime: tokio::runtime::Handle::current(),
    };

    late.store(INTEGRATION.into(), 0, new_tokens()).await;

    assert_eq!(f.secrets.stored(), Some(newer));
    assert_eq!(f.env.oauth_counts.stored_after_actor_stopped.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn a_failed_restore_is_retried_until_the_refresh_is_scheduled() {
    let f = Fixture::new(3);
    let credential = f.credential("rt-1", Duration::hours(2));
    let refresh_at = credential.expires_at.unwrap() - f.env.refresh_before;
    f.secrets.put(&f.tenant, INTEGRATION, &credential).await.unwrap();
    let (actor, _) = Actor::spawn(None, Stub, ()).await.unwrap();
    let mut oauth = TenantOAuth::new(f.env.refresh_before);

    oauth.restore(&f.env, &f.tenant, &actor).await;
    // Before the retry is due, a tick does not read the store again.
    let retry_at = oauth.next_deadline().expect("a retry is scheduled");
    assert!(retry_at < refresh_at);
    oauth.tick(&f.env, &f.tenant, &actor).await;
    assert_eq!(f.secrets.lists.load(Ordering::SeqCst), 1);
    // Each retry is due later than the last, until one succeeds.
    let mut last = f.clock.now();
    while let Some(due) = oauth.next_deadline().filter(|due| *due < refresh_at) {
        assert!(due > last, "back-off grows");
        last = due;
        f.clock.set(due);
        oauth.tick(&f.env, &f.tenant, &actor).await;
    }

    assert_eq!(oauth.next_deadline(), Some(refresh_at));
    assert_eq!(f.secrets.lists.load(Ordering::SeqCst), 4);
    assert_eq!(f.env.oauth_counts.restore_failures.load(Ordering::Relaxed), 3);
    actor.stop(None);
}
