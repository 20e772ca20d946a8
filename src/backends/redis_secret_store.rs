//! The Redis [`SecretStore`]: tenants' OAuth credentials in the Redis a gateway cluster shares
//! (`REDIS_URL`), sealed exactly as the embedded store seals them (`sealed_secrets`), so that a
//! tenant's credentials follow it to whichever node runs it.
//!
//! This file decides how the sealed values are laid out in Redis and makes each port method one
//! atomic Redis step (one Lua script or one `MULTI`/`EXEC`). It does not decide the encryption
//! (`sealed_secrets` does) nor what the store must do (the port and its contract suite do).
//!
//! Keys, after the prefix (`REDIS_TENANT_PREFIX`; tenant ids are `[a-z0-9-]`, so no id can reach
//! into another key's name):
//!
//! | key | type | value |
//! |---|---|---|
//! | `secrets:key-check` | string | a known constant, sealed by the master key |
//! | `secrets:tenants` | sorted set, all scores 0 | ids of the tenants holding a credential, in id order |
//! | `secrets:tenant-key:<id>` | string | the tenant's data key, wrapped by the master key |
//! | `secrets:cred:<id>` | hash | integration → the credential, sealed by the tenant's data key |
//!
//! Redis sees only ciphertext: the master key never leaves the gateways, and every node must be
//! given the same one (`CONNECTORS_MASTER_KEY`). A node with another key is refused at start by
//! the key check. A tenant's data key is made by its first `put`; the put script stores the
//! credential only if the data key it was sealed with is still the stored one, so two nodes
//! making a first key at once, or a `delete_tenant` racing a `put`, never leave a credential
//! under a key that is gone (the loser seals again). `delete_tenant` deletes the wrapped data
//! key with the credentials, so a copy of old ciphertext (an RDB dump) stays unreadable.
//!
//! No hash tags: like `redis_store`, this targets one Redis (a primary, with replicas or
//! Sentinel), not Redis Cluster; the scripts touch one tenant's keys and the shared index.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use async_trait::async_trait;
use connectors_actors::secret_store::{OAuthCredential, SecretError, SecretStore};
use connectors_actors::store::StoreError;
use connectors_actors::tenant::TenantId;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, RedisError, Script};

use super::redis_connection::RedisConnection;
use super::redis_namespace::RedisLayout;
use super::sealed_secrets::{DataKey, MasterCipher, MasterKey, encode_credential};

/// Stores a sealed credential if the tenant's data key is still the one it was sealed with.
/// KEYS: tenant key, credential hash, tenant index. ARGV: `new` (the key was just made and must
/// not exist yet) or `same` (it must still be stored as given), wrapped data key, tenant id,
/// integration, sealed credential, and optionally the sealed credential that must still be
/// stored (a compare-and-set: sealing draws a fresh nonce, so equal bytes are the very same
/// write). Returns 1, 0 when the data key changed, or 2 when the credential did (nothing written).
static PUT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local tenant_key, creds, index = KEYS[1], KEYS[2], KEYS[3]
for _, checked in ipairs({{tenant_key, 'string'}, {creds, 'hash'}, {index, 'zset'}}) do
  local found = redis.call('TYPE', checked[1]).ok
  if found ~= 'none' and found ~= checked[2] then
    return redis.error_reply('CORRUPT ' .. checked[1] .. ' is a ' .. found .. ', not a ' .. checked[2])
  end
end
local current = redis.call('GET', tenant_key)
if ARGV[1] == 'new' then
  if current then
    return 0
  end
  redis.call('SET', tenant_key, ARGV[2])
elseif current ~= ARGV[2] then
  return 0
end
if ARGV[6] and redis.call('HGET', creds, ARGV[4]) ~= ARGV[6] then
  return 2
end
redis.call('HSET', creds, ARGV[4], ARGV[5])
redis.call('ZADD', index, 0, ARGV[3])
return 1
",
    )
});

/// Removes one credential, and the tenant from the index when it was its last.
/// KEYS: credential hash, tenant index. ARGV: tenant id, integration. Returns 1 if it existed.
static DELETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local creds, index = KEYS[1], KEYS[2]
for _, checked in ipairs({{creds, 'hash'}, {index, 'zset'}}) do
  local found = redis.call('TYPE', checked[1]).ok
  if found ~= 'none' and found ~= checked[2] then
    return redis.error_reply('CORRUPT ' .. checked[1] .. ' is a ' .. found .. ', not a ' .. checked[2])
  end
end
local removed = redis.call('HDEL', creds, ARGV[2])
if redis.call('EXISTS', creds) == 0 then
  redis.call('ZREM', index, ARGV[1])
end
return removed
",
    )
});

/// Removes every credential of a tenant and its wrapped data key.
/// KEYS: tenant key, credential hash, tenant index. ARGV: tenant id.
static DELETE_TENANT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local tenant_key, creds, index = KEYS[1], KEYS[2], KEYS[3]
local found = redis.call('TYPE', index).ok
if found ~= 'none' and found ~= 'zset' then
  return redis.error_reply('CORRUPT ' .. index .. ' is a ' .. found .. ', not a zset')
end
redis.call('DEL', tenant_key, creds)
redis.call('ZREM', index, ARGV[1])
return 1
",
    )
});

/// How often `put` seals again when its data key changed under it (another node made the
/// tenant's first key at the same moment, or the tenant was deleted meanwhile). Once is the
/// usual worst case; more means something keeps replacing the key.
const PUT_ATTEMPTS: usize = 4;

/// The Redis secret store; see the module documentation for its layout.
pub struct RedisSecretStore {
    redis: RedisConnection,
    keys: Keys,
    master: MasterCipher,
}

impl RedisSecretStore {
    /// Connects to the Redis at `url`, keeping every key under `prefix`. Records a key check
    /// under `master` if there is none under this prefix yet; otherwise refuses (with
    /// [`SecretError::WrongMasterKey`]) a `master` that does not open it. Fails within a few
    /// seconds, naming the URL (not its password), when Redis does not answer.
    pub async fn connect(url: &str, prefix: &str, master: MasterKey) -> Result<Self, SecretError> {
        let redis = RedisConnection::connect(url).await.map_err(store_error)?;
        let store = Self {
            redis,
            keys: Keys { prefix: prefix.to_string(), layout: RedisLayout::Shared },
            master: master.cipher(),
        };
        let check_key = store.keys.key_check();
        // Of nodes starting together with an empty Redis, the first `SET NX` wins; every node then
        // checks its key against the one recorded.
        let (_, recorded): (Option<String>, Option<Vec<u8>>) = redis::pipe()
            .atomic()
            .set_options(
                &check_key,
                store.master.key_check(),
                redis::SetOptions::default().conditional_set(redis::ExistenceCheck::NX),
            )
            .get(&check_key)
            .query_async(&mut store.conn())
            .await
            .map_err(|err| store.failure(err))?;
        let recorded = recorded.ok_or_else(|| {
            SecretError::Backend(format!("the key check `{check_key}` vanished right after it was written"))
        })?;
        store.master.verify_key_check(&recorded, &format_args!("Redis under the prefix `{prefix}`"))?;
        Ok(store)
    }

    /// Keeps tenants' credentials as `layout` says (see `redis_namespace`).
    pub fn with_layout(mut self, layout: RedisLayout) -> Self {
        self.keys.layout = layout;
        self
    }

    fn conn(&self) -> ConnectionManager {
        self.redis.handle()
    }

    /// Every Redis failure, including data of the wrong type under our keys, is a backend
    /// failure: it is not a sealed value that failed to authenticate.
    fn failure(&self, err: RedisError) -> SecretError {
        store_error(self.redis.failure(err))
    }

    /// The sealed credentials (unsorted) and wrapped data key of `tenant`, read together.
    async fn sealed(&self, tenant: &TenantId) -> Result<(BTreeMap<String, Vec<u8>>, Option<Vec<u8>>), SecretError> {
        redis::pipe()
            .atomic()
            .hgetall(self.keys.credentials(tenant))
            .get(self.keys.tenant_key(tenant))
            .query_async(&mut self.conn())
            .await
            .map_err(|err| self.failure(err))
    }

    /// One sealed credential and the tenant's wrapped data key, read together.
    async fn sealed_one(
        &self,
        tenant: &TenantId,
        integration: &str,
    ) -> Result<(Option<Vec<u8>>, Option<Vec<u8>>), SecretError> {
        redis::pipe()
            .atomic()
            .hget(self.keys.credentials(tenant), integration)
            .get(self.keys.tenant_key(tenant))
            .query_async(&mut self.conn())
            .await
            .map_err(|err| self.failure(err))
    }

    fn data_key(&self, tenant: &TenantId, wrapped: Option<Vec<u8>>) -> Result<DataKey, SecretError> {
        let wrapped = wrapped
            .ok_or_else(|| SecretError::Tampered(format!("tenant `{tenant}` has credentials but no data key")))?;
        self.master.unwrap_data_key(tenant, &wrapped)
    }
}

#[async_trait]
impl SecretStore for RedisSecretStore {
    async fn put(&self, tenant: &TenantId, integration: &str, credential: &OAuthCredential) -> Result<(), SecretError> {
        let encoded = encode_credential(credential)?;
        let keys = [self.keys.tenant_key(tenant), self.keys.credentials(tenant), self.keys.tenant_index()];
        for _ in 0..PUT_ATTEMPTS {
            let stored: Option<Vec<u8>> = self.conn().get(&keys[0]).await.map_err(|err| self.failure(err))?;
            let (mode, data_key, wrapped) = match stored {
                Some(wrapped) => ("same", self.master.unwrap_data_key(tenant, &wrapped)?, wrapped),
                None => {
                    let (data_key, wrapped) = self.master.new_data_key(tenant);
                    ("new", data_key, wrapped)
                }
            };
            let sealed = data_key.seal_credential(tenant, integration, &encoded);
            let stored: i64 = PUT
                .key(&keys[0])
                .key(&keys[1])
                .key(&keys[2])
                .arg(mode)
                .arg(wrapped)
                .arg(tenant.as_str())
                .arg(integration)
                .arg(sealed)
                .invoke_async(&mut self.conn())
                .await
                .map_err(|err| self.failure(err))?;
            if stored == 1 {
                return Ok(());
            }
        }
        Err(SecretError::Backend(format!(
            "the data key of tenant `{tenant}` changed under {PUT_ATTEMPTS} attempts to store its `{integration}` \
             credential"
        )))
    }

    async fn replace(
        &self,
        tenant: &TenantId,
        integration: &str,
        expected: &OAuthCredential,
        credential: &OAuthCredential,
    ) -> Result<bool, SecretError> {
        let encoded = encode_credential(credential)?;
        let (Some(stored), Some(wrapped)) = self.sealed_one(tenant, integration).await? else { return Ok(false) };
        let data_key = self.master.unwrap_data_key(tenant, &wrapped)?;
        if data_key.open_credential(tenant, integration, &stored)? != *expected {
            return Ok(false);
        }
        let sealed = data_key.seal_credential(tenant, integration, &encoded);
        let written: i64 = PUT
            .key(self.keys.tenant_key(tenant))
            .key(self.keys.credentials(tenant))
            .key(self.keys.tenant_index())
            .arg("same")
            .arg(wrapped)
            .arg(tenant.as_str())
            .arg(integration)
            .arg(sealed)
            .arg(stored)
            .invoke_async(&mut self.conn())
            .await
            .map_err(|err| self.failure(err))?;
        // 0 (another data key: the tenant's credentials were deleted since) and 2 (another
        // credential) both mean that `expected` is no longer what is stored.
        Ok(written == 1)
    }

    async fn get(&self, tenant: &TenantId, integration: &str) -> Result<Option<OAuthCredential>, SecretError> {
        let (sealed, wrapped) = self.sealed_one(tenant, integration).await?;
        let Some(sealed) = sealed else { return Ok(None) };
        self.data_key(tenant, wrapped)?.open_credential(tenant, integration, &sealed).map(Some)
    }

    async fn list(&self, tenant: &TenantId) -> Result<Vec<(String, OAuthCredential)>, SecretError> {
        let (sealed, wrapped) = self.sealed(tenant).await?;
        // A tenant without credentials may have no key either; it has nothing to decrypt.
        if sealed.is_empty() {
            return Ok(Vec::new());
        }
        let data_key = self.data_key(tenant, wrapped)?;
        // A BTreeMap: by integration name, ascending.
        sealed
            .into_iter()
            .map(|(integration, value)| {
                let credential = data_key.open_credential(tenant, &integration, &value)?;
                Ok((integration, credential))
            })
            .collect()
    }

    async fn delete(&self, tenant: &TenantId, integration: &str) -> Result<bool, SecretError> {
        let removed: i64 = DELETE
            .key(self.keys.credentials(tenant))
            .key(self.keys.tenant_index())
            .arg(tenant.as_str())
            .arg(integration)
            .invoke_async(&mut self.conn())
            .await
            .map_err(|err| self.failure(err))?;
        Ok(removed == 1)
    }

    async fn check(&self) -> Result<(), SecretError> {
        redis::cmd("PING").query_async::<()>(&mut self.conn()).await.map_err(|err| self.failure(err))
    }

    async fn tenants(&self) -> Result<Vec<TenantId>, SecretError> {
        // All scores are 0, so the set is in byte order of the ids, which is id order.
        let ids: Vec<String> =
            self.conn().zrange(self.keys.tenant_index(), 0, -1).await.map_err(|err| self.failure(err))?;
        ids.iter()
            .map(|id| {
                TenantId::parse(id)
                    .map_err(|err| SecretError::Tampered(format!("`{}` holds `{id}`: {err}", self.keys.tenant_index())))
            })
            .collect()
    }

    async fn delete_tenant(&self, tenant: &TenantId) -> Result<(), SecretError> {
        let _: i64 = DELETE_TENANT
            .key(self.keys.tenant_key(tenant))
            .key(self.keys.credentials(tenant))
            .key(self.keys.tenant_index())
            .arg(tenant.as_str())
            .invoke_async(&mut self.conn())
            .await
            .map_err(|err| self.failure(err))?;
        Ok(())
    }
}

fn store_error(err: StoreError) -> SecretError {
    match err {
        StoreError::Backend(message) | StoreError::Corrupt(message) => SecretError::Backend(message),
        other => SecretError::Backend(other.to_string()),
    }
}

/// The names of the store's keys.
struct Keys {
    prefix: String,
    layout: RedisLayout,
}

impl Keys {
    fn key_check(&self) -> String {
        format!("{}secrets:key-check", self.prefix)
    }

    fn tenant_index(&self) -> String {
        format!("{}secrets:tenants", self.prefix)
    }

    fn tenant_key(&self, tenant: &TenantId) -> String {
        self.layout.tenant_key(&self.prefix, "secrets:tenant-key", tenant.as_str(), "")
    }

    fn credentials(&self, tenant: &TenantId) -> String {
        self.layout.tenant_key(&self.prefix, "secrets:cred", tenant.as_str(), "")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use redis::aio::MultiplexedConnection;

    use super::*;
    use crate::backends::redis_server::RedisServer;
    use crate::backends::sealed_secrets::KEY_LEN;
    use crate::backends::secret_store_contract::{self, Fixture, credential, id};

    const PREFIX: &str = "connectors-test:";
    const SECRETS: [&str; 3] = ["gho_access-token-plaintext", "ghr_refresh-token-plaintext", "client-secret-plaintext"];

    fn master() -> MasterKey {
        MasterKey::from_env_value(&"07".repeat(KEY_LEN)).unwrap()
    }

    /// A server of its own per test; every `open` connects anew to its data.
    struct RedisFixture {
        server: RedisServer,
    }

    impl RedisFixture {
        fn new() -> Self {
            Self { server: RedisServer::start() }
        }

        async fn store(&self) -> RedisSecretStore {
            RedisSecretStore::connect(&self.server.url(), PREFIX, master()).await.expect("the test Redis answers")
        }
    }

    #[async_trait]
    impl Fixture for RedisFixture {
        async fn open(&self) -> Arc<dyn SecretStore> {
            Arc::new(self.store().await)
        }
    }

    secret_store_contract::secret_store_contract_tests!(RedisFixture::new());

    #[tokio::test]
    async fn racing_replaces_from_one_expectation_let_exactly_one_win() {
        secret_store_contract::racing_replaces_from_one_expectation_let_exactly_one_win(&RedisFixture::new()).await;
    }

    async fn raw(server: &RedisServer) -> MultiplexedConnection {
        redis::Client::open(server.url()).unwrap().get_multiplexed_async_connection().await.unwrap()
    }

    /// Every key in the server with every byte string it holds (members, fields and values).
    async fn everything(server: &RedisServer) -> HashMap<String, Vec<Vec<u8>>> {
        let mut conn = raw(server).await;
        let keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(&mut conn).await.unwrap();
        let mut all = HashMap::new();
        for key in keys {
            let kind: String = redis::cmd("TYPE").arg(&key).query_async(&mut conn).await.unwrap();
            let values: Vec<Vec<u8>> = match kind.as_str() {
                "string" => vec![conn.get(&key).await.unwrap()],
                "hash" => {
                    let pairs: Vec<(Vec<u8>, Vec<u8>)> = conn.hgetall(&key).await.unwrap();
                    pairs.into_iter().flat_map(|(field, value)| [field, value]).collect()
                }
                "zset" => conn.zrange(&key, 0, -1).await.unwrap(),
                other => panic!("`{key}` is a {other}, which this store never writes"),
            };
            all.insert(key, values);
        }
        all
    }

    fn is_tampered<T: std::fmt::Debug>(result: Result<T, SecretError>) -> bool {
        matches!(result, Err(SecretError::Tampered(_)))
    }

    fn is_backend<T: std::fmt::Debug>(result: Result<T, SecretError>) -> bool {
        matches!(result, Err(SecretError::Backend(_)))
    }

    #[tokio::test]
    async fn redis_holds_no_secret_in_plaintext() {
        let fixture = RedisFixture::new();
        let store = fixture.store().await;
        store.put(&id("acme"), "github", &credential()).await.unwrap();
        store.put(&id("globex"), "linear", &credential()).await.unwrap();

        let all = everything(&fixture.server).await;
        let mut names: Vec<&str> = all.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "connectors-test:secrets:cred:acme",
                "connectors-test:secrets:cred:globex",
                "connectors-test:secrets:key-check",
                "connectors-test:secrets:tenant-key:acme",
                "connectors-test:secrets:tenant-key:globex",
                "connectors-test:secrets:tenants",
            ]
        );
        let mut conn = raw(&fixture.server).await;
        let wrapped: Vec<u8> = conn.get("connectors-test:secrets:tenant-key:acme").await.unwrap();
        let data_key = master().cipher().unwrap_data_key(&id("acme"), &wrapped).unwrap();

        let bytes: Vec<&[u8]> = all.values().flatten().map(Vec::as_slice).collect();
        let contains = |needle: &[u8]| bytes.iter().any(|value| value.windows(needle.len()).any(|w| w == needle));
        assert!(contains(b"acme") && contains(b"github"), "the search itself works: ids and names are plaintext");
        for secret in SECRETS {
            assert!(!contains(secret.as_bytes()), "{secret} is in Redis");
        }
        assert!(!contains(b"client-id") && !contains(b"repo"), "the whole credential is sealed, not only tokens");
        assert!(!contains(data_key.bytes()), "a data key is in Redis");
        assert!(!contains(master().bytes()), "the master key is in Redis");
    }

    #[tokio::test]
    async fn a_wrong_master_key_is_refused_at_connect() {
        let fixture = RedisFixture::new();
        fixture.store().await.put(&id("acme"), "github", &credential()).await.unwrap();
        let other = || MasterKey::from_env_value(&"ab".repeat(KEY_LEN)).unwrap();
        let Err(SecretError::WrongMasterKey(message)) =
            RedisSecretStore::connect(&fixture.server.url(), PREFIX, other()).await
        else {
            panic!("another master key must not open the store");
        };
        assert!(message.contains("CONNECTORS_MASTER_KEY") && message.contains(PREFIX), "{message}");
        // The right key still opens it, and the data is intact.
        assert_eq!(fixture.store().await.get(&id("acme"), "github").await.unwrap(), Some(credential()));
        // Under another prefix is another store, with its own key check.
        let elsewhere = RedisSecretStore::connect(&fixture.server.url(), "other:", other()).await.unwrap();
        assert_eq!(elsewhere.get(&id("acme"), "github").await.unwrap(), None);
    }

    #[tokio::test]
    async fn sealed_values_moved_to_another_row_do_not_open() {
        let fixture = RedisFixture::new();
        let store = fixture.store().await;
        let (acme, globex) = (id("acme"), id("globex"));
        store.put(&acme, "github", &credential()).await.unwrap();
        store.put(&globex, "github", &OAuthCredential { access_token: "globex".into(), ..credential() }).await.unwrap();
        let mut conn = raw(&fixture.server).await;
        let sealed: Vec<u8> = conn.hget("connectors-test:secrets:cred:acme", "github").await.unwrap();

        // Another tenant: another data key and another AAD.
        let _: () = conn.hset("connectors-test:secrets:cred:globex", "github", &sealed).await.unwrap();
        assert!(is_tampered(store.get(&globex, "github").await));
        assert!(is_tampered(store.list(&globex).await));
        // The same tenant, another integration: the same data key, so only the AAD catches it.
        let _: () = conn.hset("connectors-test:secrets:cred:acme", "linear", &sealed).await.unwrap();
        let Err(SecretError::Tampered(message)) = store.get(&acme, "linear").await else {
            panic!("a credential moved to another integration must not open");
        };
        assert!(message.contains("acme") && message.contains("linear"), "{message}");
        // A flipped byte.
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 0x01;
        let _: () = conn.hset("connectors-test:secrets:cred:acme", "github", &altered).await.unwrap();
        assert!(is_tampered(store.get(&acme, "github").await));

        // A wrapped data key moved to another tenant's key.
        let wrapped: Vec<u8> = conn.get("connectors-test:secrets:tenant-key:acme").await.unwrap();
        let _: () = conn.set("connectors-test:secrets:tenant-key:globex", &wrapped).await.unwrap();
        assert!(is_tampered(store.get(&globex, "github").await));
        assert!(is_tampered(store.put(&globex, "slack", &credential()).await), "put never reuses a foreign key");
        // Credentials whose data key is gone.
        let _: () = conn.del("connectors-test:secrets:tenant-key:globex").await.unwrap();
        assert!(is_tampered(store.list(&globex).await));
    }

    #[tokio::test]
    async fn delete_tenant_destroys_the_data_key() {
        let fixture = RedisFixture::new();
        let store = fixture.store().await;
        let acme = id("acme");
        store.put(&acme, "github", &credential()).await.unwrap();
        store.put(&id("globex"), "github", &credential()).await.unwrap();
        let mut conn = raw(&fixture.server).await;
        let old_key: Vec<u8> = conn.get("connectors-test:secrets:tenant-key:acme").await.unwrap();
        store.delete_tenant(&acme).await.unwrap();

        let all = everything(&fixture.server).await;
        assert!(all.keys().all(|key| !key.ends_with(":acme")), "{:?}", all.keys());
        assert_eq!(all["connectors-test:secrets:tenants"], [b"globex".to_vec()]);
        store.put(&acme, "github", &credential()).await.unwrap();
        let new_key: Vec<u8> = conn.get("connectors-test:secrets:tenant-key:acme").await.unwrap();
        assert_ne!(new_key, old_key, "a new data key");
        // Deleting the last credential leaves the index but keeps the key, like the file store.
        assert!(store.delete(&acme, "github").await.unwrap());
        assert_eq!(store.tenants().await.unwrap(), vec![id("globex")]);
    }

    #[tokio::test]
    async fn nodes_making_a_tenants_first_key_at_once_agree_on_it() {
        let fixture = RedisFixture::new();
        let (one, two) = (Arc::new(fixture.store().await), Arc::new(fixture.store().await));
        let acme = id("acme");
        let mut puts = Vec::new();
        for n in 0..16 {
            let store = if n % 2 == 0 { one.clone() } else { two.clone() };
            let acme = acme.clone();
            puts.push(tokio::spawn(async move {
                let credential = OAuthCredential { access_token: format!("token-{n}"), ..credential() };
                store.put(&acme, &format!("integration-{n:02}"), &credential).await
            }));
        }
        for put in puts {
            put.await.unwrap().unwrap();
        }
        let listed = one.list(&acme).await.unwrap();
        assert_eq!(listed.len(), 16);
        for (n, (name, credential)) in listed.iter().enumerate() {
            assert_eq!(name, &format!("integration-{n:02}"));
            assert_eq!(credential.access_token, format!("token-{n}"));
        }
    }

    #[tokio::test]
    async fn redis_failures_are_backend_errors() {
        let dead = {
            let server = RedisServer::start();
            server.url()
        };
        assert!(is_backend(RedisSecretStore::connect(&dead, PREFIX, master()).await.map(|_| ())));

        let mut fixture = RedisFixture::new();
        let store = fixture.store().await;
        let acme = id("acme");
        // Foreign data of another type under our keys.
        let mut conn = raw(&fixture.server).await;
        let _: () = conn.set("connectors-test:secrets:cred:acme", "not a hash").await.unwrap();
        assert!(is_backend(store.get(&acme, "github").await));
        assert!(is_backend(store.put(&acme, "github", &credential()).await));
        assert!(is_backend(store.delete(&acme, "github").await));
        let _: () = conn.del("connectors-test:secrets:cred:acme").await.unwrap();
        store.put(&acme, "github", &credential()).await.unwrap();

        fixture.server.kill();
        assert!(is_backend(store.check().await));
        assert!(is_backend(store.get(&acme, "github").await));
        assert!(is_backend(store.put(&acme, "github", &credential()).await));
        assert!(is_backend(store.tenants().await));
        assert!(is_backend(store.delete_tenant(&acme).await));
    }
}
