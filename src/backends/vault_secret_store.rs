//! The HashiCorp Vault [`SecretStore`]: tenants' OAuth credentials as secrets in a Vault KV engine,
//! optionally sealed with a Transit key of their own per tenant.
//!
//! This file decides the layout in Vault, what each secret holds in each mode, the life of the
//! per-tenant Transit keys, and how Vault's answers map to [`SecretError`]. It does not decide what
//! the store must do (the port and its contract suite do), where the configuration comes from, nor
//! the Vault side of the setup: mounts, policies and token renewal belong to the operator.
//!
//! One secret per credential, at `<tenant_prefix>/<tenant>/<integration>` in the KV mount
//! (`kv_mount`, version 1 or 2); `list` and `tenants` are KV `LIST`s of `<tenant_prefix>/<tenant>/`
//! and `<tenant_prefix>/`.
//!
//! | mode | the secret's data |
//! |---|---|
//! | plain (`separate_keys` off) | the fields of the JSON [`OAuthCredential`]; Vault's own barrier encrypts it at rest |
//! | `separate_keys` on | only `{"ciphertext": "vault:v1:…"}`: that JSON encrypted by the Transit key `connectors-tenant-<tenant>` |
//!
//! The Transit key of a tenant is made on its first `put`, not exportable, and derived: every
//! encryption names `<tenant>/<integration>` as its context, so a ciphertext moved to another
//! integration's secret does not decrypt any more than one moved to another tenant's.
//! `delete_tenant` deletes the key after the secrets, so copies of old ciphertext (Vault snapshots,
//! backups) stay unreadable. On KV version 2 a delete removes the metadata, hence every version,
//! not only the latest.
//!
//! RustyVault, a Vault-compatible server, answers in a looser format than Vault: errors as
//! `{"error": …}` or an empty body rather than `{"errors": […]}`, no `request_id`, and its file
//! storage still lists a folder after its last secret is deleted. So errors are judged by their
//! HTTP status alone, KV version 1 reads take only the response's `data`, and `tenants` keeps only
//! the folders that still list a credential.
//!
//! Vault has no transactions: `delete` reads before it deletes to tell whether there was a
//! credential, and a credential deleted while `list` runs is left out of its answer.

use std::error::Error as _;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use connectors_actors::secret_store::{OAuthCredential, SecretError, SecretStore};
use connectors_actors::tenant::TenantId;
use rustify::endpoint::Endpoint;
use serde::Deserialize;
use serde_json::{Map, Value};
use vaultrs::api::kv1::requests::GetSecretRequest;
use vaultrs::api::kv2::requests::{ReadSecretRequest, SetSecretRequestOptions};
use vaultrs::api::transit::KeyType;
use vaultrs::api::transit::requests::{
    CreateKeyRequest, DecryptDataRequest, EncryptDataRequest, UpdateKeyConfigurationRequest,
};
use vaultrs::client::{Client, VaultClient, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;
use vaultrs::{kv1, kv2, transit};
use zeroize::Zeroizing;

/// How long one request to Vault may take: a hung Vault must fail a call, not stall it forever.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The one field of a secret in `separate_keys` mode.
const CIPHERTEXT: &str = "ciphertext";

/// The KV secrets engine version of the mount; their HTTP APIs differ.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum KvVersion {
    V1,
    #[default]
    V2,
}

/// Where the credentials live in Vault and how they are protected there.
#[derive(Clone)]
pub struct VaultConfig {
    /// Vault's address, such as `https://vault.internal:8200` (what `VAULT_ADDR` holds).
    pub addr: String,
    pub token: String,
    /// The KV folder holding one folder per tenant.
    pub tenant_prefix: String,
    pub kv_mount: String,
    pub kv_version: KvVersion,
    pub transit_mount: String,
    /// Encrypts each tenant's credentials with a Transit key of its own before they reach KV.
    pub separate_keys: bool,
}

impl VaultConfig {
    /// The defaults: KV version 2 at `secret`, credentials under `connectors/tenants`, Transit at
    /// `transit`, no per-tenant keys.
    pub fn new(addr: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            addr: addr.into(),
            token: token.into(),
            tenant_prefix: "connectors/tenants".into(),
            kv_mount: "secret".into(),
            kv_version: KvVersion::V2,
            transit_mount: "transit".into(),
            separate_keys: false,
        }
    }
}

impl fmt::Debug for VaultConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultConfig")
            .field("addr", &self.addr)
            .field("token", &"[REDACTED]")
            .field("tenant_prefix", &self.tenant_prefix)
            .field("kv_mount", &self.kv_mount)
            .field("kv_version", &self.kv_version)
            .field("transit_mount", &self.transit_mount)
            .field("separate_keys", &self.separate_keys)
            .finish()
    }
}

pub struct VaultSecretStore {
    client: VaultClient,
    config: VaultConfig,
}

impl fmt::Debug for VaultSecretStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultSecretStore").field("config", &self.config).finish_non_exhaustive()
    }
}

impl VaultSecretStore {
    /// Connects to Vault and checks, with a `LIST` of the tenant prefix, that it answers and that
    /// the token may read there, so a wrong address or token fails at start-up rather than at
    /// the first credential.
    pub async fn connect(config: VaultConfig) -> Result<Self, SecretError> {
        let addr = &config.addr;
        let url = reqwest::Url::parse(addr)
            .map_err(|err| SecretError::Backend(format!("VAULT_ADDR `{addr}` is not a URL: {err}")))?;
        // TLS verification is always on: VAULT_SKIP_VERIFY in the environment must not turn it off.
        let settings = VaultClientSettingsBuilder::default()
            .address(url.as_str())
            .token(config.token.as_str())
            .timeout(Some(REQUEST_TIMEOUT))
            .verify(true)
            .build()
            .map_err(|err| SecretError::Backend(format!("VAULT_ADDR `{addr}` cannot be used: {err}")))?;
        let client = VaultClient::new(settings).map_err(|err| {
            SecretError::Backend(format!("cannot make a client for Vault at {addr}: {}", chain(&err)))
        })?;
        let store = Self { client, config };
        store.probe().await?;
        Ok(store)
    }

    /// One LIST of the tenant prefix: proves the address, the token and the KV mount.
    async fn probe(&self) -> Result<(), SecretError> {
        self.kv_list(&self.config.tenant_prefix).await.map(|_| ()).map_err(|err| self.connect_error(err))
    }

    fn connect_error(&self, err: ClientError) -> SecretError {
        let (addr, prefix, mount) = (&self.config.addr, &self.config.tenant_prefix, &self.config.kv_mount);
        SecretError::Backend(match status(&err) {
            Some(401 | 403) => format!(
                "Vault at {addr} (VAULT_ADDR) refused the token: it is invalid, expired, or may not list \
                 `{mount}/{prefix}`; check VAULT_TOKEN and its policy"
            ),
            Some(code) => {
                format!("Vault at {addr} (VAULT_ADDR) answered {code} to a list of `{mount}/{prefix}`: {}", chain(&err))
            }
            None => format!("cannot reach Vault at {addr}; check VAULT_ADDR: {}", chain(&err)),
        })
    }

    /// Maps a failed call about `what` to [`SecretError::Backend`].
    fn failed(&self, what: &str) -> impl FnOnce(ClientError) -> SecretError {
        move |err| {
            let addr = &self.config.addr;
            SecretError::Backend(match status(&err) {
                Some(401 | 403) => {
                    format!("Vault at {addr} denied {what}: permission denied; check the token's policy")
                }
                Some(code) => format!("Vault at {addr} answered {code} to {what}: {}", chain(&err)),
                None => format!("cannot reach Vault at {addr} for {what}: {}", chain(&err)),
            })
        }
    }

    fn tenant_dir(&self, tenant: &TenantId) -> String {
        format!("{}/{tenant}", self.config.tenant_prefix)
    }

    fn secret_path(&self, tenant: &TenantId, integration: &str) -> Result<String, SecretError> {
        // The name becomes one path segment: a `/` would nest folders that `list` cannot see, and
        // `.` or `..` would leave the tenant's folder.
        let segment_ok = !integration.is_empty()
            && integration.bytes().any(|b| b != b'.')
            && integration.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !segment_ok {
            return Err(SecretError::Backend(format!(
                "integration name `{integration}` cannot be a Vault path segment: use letters, digits, `-`, `_` and `.`"
            )));
        }
        Ok(format!("{}/{integration}", self.tenant_dir(tenant)))
    }

    fn transit_key(tenant: &TenantId) -> String {
        format!("connectors-tenant-{tenant}")
    }

    /// The derivation context of a credential's encryption, which binds the ciphertext to its place.
    fn context(tenant: &TenantId, integration: &str) -> String {
        STANDARD.encode(format!("{tenant}/{integration}"))
    }

    /// The data of the secret at `path`, `None` if there is none.
    async fn kv_read(&self, path: &str) -> Result<Option<Map<String, Value>>, ClientError> {
        Ok(self.kv_read_versioned(path).await?.map(|(data, _)| data))
    }

    /// The data of the secret at `path` and, on KV version 2, its version (for a check-and-set).
    async fn kv_read_versioned(&self, path: &str) -> Result<Option<(Map<String, Value>, Option<u64>)>, ClientError> {
        let read = match self.config.kv_version {
            KvVersion::V1 => self.kv1_read(path).await.map(|data| (data, None)),
            KvVersion::V2 => {
                let endpoint = ReadSecretRequest::builder()
                    .mount(&self.config.kv_mount)
                    .path(path)
                    .build()
                    .expect("mount and path are the request's only required fields");
                vaultrs::api::exec_with_result(&self.client, endpoint).await.and_then(|read| match read.data {
                    Value::Object(data) => Ok((data, Some(read.metadata.version))),
                    _ => Err(ClientError::ResponseDataEmptyError),
                })
            }
        };
        not_found_as_none(read)
    }

    /// A KV version 1 read that needs only the `data` of the response; vaultrs' `kv1::get` also
    /// wants Vault's `request_id`, which RustyVault does not send.
    async fn kv1_read(&self, path: &str) -> Result<Map<String, Value>, ClientError> {
        #[derive(Deserialize)]
        struct Read {
            data: Map<String, Value>,
        }
        let endpoint = GetSecretRequest::builder()
            .mount(&self.config.kv_mount)
            .path(path)
            .build()
            .expect("mount and path are the request's only fields");
        let response = endpoint.with_middleware(self.client.middle()).exec(self.client.http()).await?;
        let read: Read = serde_json::from_slice(response.response.body())
            .map_err(|source| ClientError::JsonParseError { source })?;
        Ok(read.data)
    }

    async fn kv_write(&self, path: &str, data: &Map<String, Value>) -> Result<(), ClientError> {
        let mount = &self.config.kv_mount;
        match self.config.kv_version {
            KvVersion::V1 => {
                let data = data.iter().map(|(key, value)| (key.as_str(), value)).collect();
                kv1::set(&self.client, mount, path, &data).await
            }
            KvVersion::V2 => kv2::set(&self.client, mount, path, data).await.map(drop),
        }
    }

    /// Removes the secret at `path` for good: on KV version 2, its metadata and so every version.
    async fn kv_delete(&self, path: &str) -> Result<(), ClientError> {
        let mount = &self.config.kv_mount;
        match self.config.kv_version {
            KvVersion::V1 => kv1::delete(&self.client, mount, path).await,
            KvVersion::V2 => kv2::delete_metadata(&self.client, mount, path).await,
        }
    }

    /// The names in the folder `dir`, sub-folders ending in `/`; empty if there is no such folder.
    async fn kv_list(&self, dir: &str) -> Result<Vec<String>, ClientError> {
        let (mount, dir) = (&self.config.kv_mount, format!("{dir}/"));
        let listed = match self.config.kv_version {
            KvVersion::V1 => kv1::list(&self.client, mount, &dir).await.map(|response| response.data.keys),
            KvVersion::V2 => kv2::list(&self.client, mount, &dir).await,
        };
        Ok(not_found_as_none(listed)?.unwrap_or_default())
    }

    /// What the secret of `credential` holds.
    async fn seal(
        &self,
        tenant: &TenantId,
        integration: &str,
        credential: &OAuthCredential,
    ) -> Result<Map<String, Value>, SecretError> {
        let Value::Object(fields) = serde_json::to_value(credential).expect("a credential serialises to JSON") else {
            unreachable!("a credential serialises to a JSON object");
        };
        if !self.config.separate_keys {
            return Ok(fields);
        }
        let (mount, key) = (&self.config.transit_mount, Self::transit_key(tenant));
        let what = format!("the Transit key `{key}` of tenant `{tenant}`");
        // Creating an existing key changes nothing, so every put may ask for it.
        let mut create = CreateKeyRequest::builder();
        create.key_type(KeyType::Aes256Gcm96).exportable(false).derived(true);
        transit::key::create(&self.client, mount, &key, Some(&mut create)).await.map_err(self.failed(&what))?;
        let plaintext = Zeroizing::new(serde_json::to_vec(credential).expect("a credential serialises to JSON"));
        let mut encrypt = EncryptDataRequest::builder();
        encrypt.context(Self::context(tenant, integration));
        let encrypted =
            transit::data::encrypt(&self.client, mount, &key, &STANDARD.encode(&plaintext), Some(&mut encrypt))
                .await
                .map_err(self.failed(&format!("encryption with {what}")))?;
        Ok(Map::from_iter([(CIPHERTEXT.to_string(), Value::String(encrypted.ciphertext))]))
    }

    /// The credential in the secret data `data` of `tenant` for `integration`.
    async fn open(
        &self,
        tenant: &TenantId,
        integration: &str,
        data: Map<String, Value>,
    ) -> Result<OAuthCredential, SecretError> {
        let what = format!("the credential of tenant `{tenant}` for `{integration}`");
        let tampered = |why: &dyn fmt::Display| SecretError::Tampered(format!("{what} {why}"));
        if !self.config.separate_keys {
            return serde_json::from_value(Value::Object(data))
                .map_err(|err| tampered(&format_args!("is not a credential: {err}")));
        }
        let ciphertext = match data.get(CIPHERTEXT) {
            Some(Value::String(ciphertext)) if data.len() == 1 => ciphertext,
            _ => return Err(tampered(&"holds something other than a Transit ciphertext")),
        };
        let key = Self::transit_key(tenant);
        let mut decrypt = DecryptDataRequest::builder();
        decrypt.context(Self::context(tenant, integration));
        let decrypted =
            transit::data::decrypt(&self.client, &self.config.transit_mount, &key, ciphertext, Some(&mut decrypt))
                .await;
        let plaintext = match decrypted {
            Ok(decrypted) => decrypted.plaintext,
            // Vault answers 400 to a ciphertext that its key (if the key still exists) cannot open.
            Err(err) if status(&err) == Some(400) => {
                return Err(tampered(&format_args!("does not decrypt with `{key}`: {}", chain(&err))));
            }
            Err(err) => return Err(self.failed(&format!("decryption with the Transit key `{key}`"))(err)),
        };
        let json = Zeroizing::new(
            STANDARD.decode(plaintext).map_err(|err| tampered(&format_args!("decrypts to invalid base64: {err}")))?,
        );
        serde_json::from_slice(&json).map_err(|err| tampered(&format_args!("decrypts to no credential: {err}")))
    }

    /// The integrations `tenant` holds a credential for, in ascending order. Sub-folders are
    /// skipped: this store never writes one.
    async fn integrations(&self, tenant: &TenantId) -> Result<Vec<String>, SecretError> {
        let dir = self.tenant_dir(tenant);
        let mut names = self.kv_list(&dir).await.map_err(self.failed(&format!("listing `{dir}`")))?;
        names.retain(|name| !name.ends_with('/'));
        names.sort();
        Ok(names)
    }

    /// Deletes the Transit key of `tenant`, if it has one. Vault refuses to delete a key until its
    /// configuration allows it.
    async fn delete_transit_key(&self, tenant: &TenantId) -> Result<(), SecretError> {
        let (mount, key) = (&self.config.transit_mount, Self::transit_key(tenant));
        let what = format!("the Transit key `{key}` of tenant `{tenant}`");
        let exists =
            not_found_as_none(transit::key::read(&self.client, mount, &key).await).map_err(self.failed(&what))?;
        if exists.is_none() {
            return Ok(());
        }
        let mut allow = UpdateKeyConfigurationRequest::builder();
        allow.deletion_allowed(Some(true));
        transit::key::update(&self.client, mount, &key, Some(&mut allow)).await.map_err(self.failed(&what))?;
        transit::key::delete(&self.client, mount, &key).await.map_err(self.failed(&what))
    }
}

#[async_trait]
impl SecretStore for VaultSecretStore {
    async fn check(&self) -> Result<(), SecretError> {
        self.probe().await
    }

    async fn put(&self, tenant: &TenantId, integration: &str, credential: &OAuthCredential) -> Result<(), SecretError> {
        let path = self.secret_path(tenant, integration)?;
        let data = self.seal(tenant, integration, credential).await?;
        self.kv_write(&path, &data).await.map_err(self.failed(&format!("writing `{path}`")))
    }

    async fn replace(
        &self,
        tenant: &TenantId,
        integration: &str,
        expected: &OAuthCredential,
        credential: &OAuthCredential,
    ) -> Result<bool, SecretError> {
        let path = self.secret_path(tenant, integration)?;
        let read = self.kv_read_versioned(&path).await.map_err(self.failed(&format!("reading `{path}`")))?;
        let Some((data, version)) = read else { return Ok(false) };
        if self.open(tenant, integration, data).await? != *expected {
            return Ok(false);
        }
        let data = self.seal(tenant, integration, credential).await?;
        let writing = format!("writing `{path}`");
        let Some(version) = version else {
            // KV version 1 has no check-and-set: a write between the read and this one is lost.
            return self.kv_write(&path, &data).await.map(|()| true).map_err(self.failed(&writing));
        };
        let cas = u32::try_from(version)
            .map_err(|_| SecretError::Backend(format!("`{path}` has more versions than a check-and-set can name")))?;
        let options = SetSecretRequestOptions { cas };
        match kv2::set_with_options(&self.client, &self.config.kv_mount, &path, &data, options).await {
            Ok(_) => Ok(true),
            // Vault answers 400 when `cas` is no longer the secret's current version.
            Err(err) if status(&err) == Some(400) => Ok(false),
            Err(err) => Err(self.failed(&writing)(err)),
        }
    }

    async fn get(&self, tenant: &TenantId, integration: &str) -> Result<Option<OAuthCredential>, SecretError> {
        let path = self.secret_path(tenant, integration)?;
        match self.kv_read(&path).await.map_err(self.failed(&format!("reading `{path}`")))? {
            Some(data) => self.open(tenant, integration, data).await.map(Some),
            None => Ok(None),
        }
    }

    async fn list(&self, tenant: &TenantId) -> Result<Vec<(String, OAuthCredential)>, SecretError> {
        let mut credentials = Vec::new();
        for name in self.integrations(tenant).await? {
            if let Some(credential) = self.get(tenant, &name).await? {
                credentials.push((name, credential));
            }
        }
        Ok(credentials)
    }

    async fn delete(&self, tenant: &TenantId, integration: &str) -> Result<bool, SecretError> {
        let path = self.secret_path(tenant, integration)?;
        if self.kv_read(&path).await.map_err(self.failed(&format!("reading `{path}`")))?.is_none() {
            return Ok(false);
        }
        self.kv_delete(&path).await.map_err(self.failed(&format!("deleting `{path}`")))?;
        Ok(true)
    }

    async fn tenants(&self) -> Result<Vec<TenantId>, SecretError> {
        let prefix = &self.config.tenant_prefix;
        let listed = self.kv_list(prefix).await.map_err(self.failed(&format!("listing `{prefix}`")))?;
        let mut folders: Vec<TenantId> = listed
            .iter()
            .filter_map(|name| name.strip_suffix('/'))
            .filter_map(|name| match TenantId::parse(name) {
                Ok(tenant) => Some(tenant),
                Err(err) => {
                    tracing::warn!(prefix = %prefix, "ignoring a folder under the tenant prefix: {err}");
                    None
                }
            })
            .collect();
        folders.sort();
        // A folder can outlive its last secret (RustyVault's file storage keeps empty folders), so
        // a tenant counts only if its folder still lists a credential.
        let mut tenants = Vec::with_capacity(folders.len());
        for tenant in folders {
            if !self.integrations(&tenant).await?.is_empty() {
                tenants.push(tenant);
            }
        }
        Ok(tenants)
    }

    async fn delete_tenant(&self, tenant: &TenantId) -> Result<(), SecretError> {
        for name in self.integrations(tenant).await? {
            let path = self.secret_path(tenant, &name)?;
            self.kv_delete(&path).await.map_err(self.failed(&format!("deleting `{path}`")))?;
        }
        if self.config.separate_keys {
            self.delete_transit_key(tenant).await?;
        }
        Ok(())
    }
}

/// Vault answers 404 for a path that holds nothing.
fn not_found_as_none<T>(result: Result<T, ClientError>) -> Result<Option<T>, ClientError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(err) if status(&err) == Some(404) => Ok(None),
        Err(err) => Err(err),
    }
}

/// The HTTP status of an answer that was an error, whether or not its body was in Vault's format;
/// `None` if there was no answer.
fn status(err: &ClientError) -> Option<u16> {
    match err {
        ClientError::APIError { code, .. } => Some(*code),
        ClientError::RestClientError { source: rustify::errors::ClientError::ServerResponseError { code, .. } } => {
            Some(*code)
        }
        _ => None,
    }
}

/// An error with what the server said and the sources: vaultrs' own messages (such as "An error
/// occurred with the request") leave the cause, a refused connection or a timeout, to the chain.
fn chain(err: &ClientError) -> String {
    let mut text = err.to_string();
    match err {
        ClientError::APIError { errors, .. } => text = format!("{text}: {}", errors.join("; ")),
        ClientError::RestClientError {
            source: rustify::errors::ClientError::ServerResponseError { content: Some(content), .. },
        } if !content.is_empty() => return format!("{text}: {content}"),
        _ => {}
    }
    let mut source = err.source();
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::backends::secret_store_contract::{self, Fixture, credential, id};
    use crate::backends::vault_fake::{KV_MOUNT, TRANSIT_MOUNT, VaultFake};

    /// A fresh fake Vault per test; it keeps its data while the fixture lives, so reopening sees it.
    struct FakeFixture {
        fake: VaultFake,
        kv_version: KvVersion,
        separate_keys: bool,
    }

    impl FakeFixture {
        fn new(kv_version: KvVersion, separate_keys: bool) -> Self {
            Self { fake: VaultFake::start(kv_version), kv_version, separate_keys }
        }

        fn config(&self) -> VaultConfig {
            VaultConfig {
                kv_mount: KV_MOUNT.into(),
                kv_version: self.kv_version,
                transit_mount: TRANSIT_MOUNT.into(),
                separate_keys: self.separate_keys,
                ..VaultConfig::new(&self.fake.addr, &self.fake.token)
            }
        }

        async fn store(&self) -> VaultSecretStore {
            VaultSecretStore::connect(self.config()).await.expect("the fake Vault accepts its token")
        }
    }

    #[async_trait]
    impl Fixture for FakeFixture {
        async fn open(&self) -> Arc<dyn SecretStore> {
            Arc::new(self.store().await)
        }
    }

    /// A real Vault-API server (RustyVault, started by `.ci/rustyvault.sh`), KV version 1 only.
    /// Each fixture writes under a prefix of its own, as the tests share the server.
    struct LiveFixture {
        config: VaultConfig,
    }

    impl LiveFixture {
        /// `None`, after saying so, when no server is configured.
        fn from_env() -> Option<Self> {
            let Ok(addr) = std::env::var("CONNECTORS_TEST_VAULT_ADDR") else {
                println!("skipped: CONNECTORS_TEST_VAULT_ADDR not set (.ci/rustyvault.sh sets it)");
                return None;
            };
            let token = std::env::var("CONNECTORS_TEST_VAULT_TOKEN")
                .expect("CONNECTORS_TEST_VAULT_TOKEN is set with CONNECTORS_TEST_VAULT_ADDR");
            let config = VaultConfig {
                tenant_prefix: format!("connectors-test/{}", uuid::Uuid::new_v4()),
                kv_version: KvVersion::V1,
                ..VaultConfig::new(addr, token)
            };
            Some(Self { config })
        }
    }

    #[async_trait]
    impl Fixture for LiveFixture {
        async fn open(&self) -> Arc<dyn SecretStore> {
            Arc::new(VaultSecretStore::connect(self.config.clone()).await.expect("the live Vault accepts the token"))
        }
    }

    /// One module of contract tests per mode, so that every test name says its mode.
    macro_rules! contract_per_mode {
        ($($mode:ident => $fixture:expr;)+) => {
            $(
                mod $mode {
                    use super::*;
                    secret_store_contract::secret_store_contract_tests!($fixture);
                }
            )+
        };
    }

    contract_per_mode! {
        contract_kv2 => FakeFixture::new(KvVersion::V2, false);
        contract_kv1 => FakeFixture::new(KvVersion::V1, false);
        contract_kv2_separate_keys => FakeFixture::new(KvVersion::V2, true);
        live_rustyvault_kv1 => match LiveFixture::from_env() {
            Some(fixture) => fixture,
            None => return,
        };
    }

    #[tokio::test]
    async fn kv2_racing_replaces_from_one_expectation_let_exactly_one_win() {
        for separate_keys in [false, true] {
            let fixture = FakeFixture::new(KvVersion::V2, separate_keys);
            secret_store_contract::racing_replaces_from_one_expectation_let_exactly_one_win(&fixture).await;
        }
    }

    const SECRETS: [&str; 3] = ["gho_access-token-plaintext", "ghr_refresh-token-plaintext", "client-secret-plaintext"];

    fn tampered<T: fmt::Debug>(result: Result<T, SecretError>) -> String {
        match result {
            Err(SecretError::Tampered(message)) => message,
            other => panic!("expected Tampered, got {other:?}"),
        }
    }

    fn backend<T: fmt::Debug>(result: Result<T, SecretError>) -> String {
        match result {
            Err(SecretError::Backend(message)) => message,
            other => panic!("expected Backend, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn plain_mode_stores_the_credential_json_at_its_path() {
        let fixture = FakeFixture::new(KvVersion::V2, false);
        fixture.store().await.put(&id("acme"), "github", &credential()).await.unwrap();
        let stored = fixture.fake.raw("connectors/tenants/acme/github").expect("the secret is at its path");
        assert_eq!(stored, serde_json::to_value(credential()).unwrap());
    }

    #[tokio::test]
    async fn separate_keys_store_only_ciphertext_under_a_non_exportable_tenant_key() {
        let fixture = FakeFixture::new(KvVersion::V2, true);
        fixture.store().await.put(&id("acme"), "github", &credential()).await.unwrap();

        let stored = fixture.fake.raw("connectors/tenants/acme/github").expect("the secret is at its path");
        let fields = stored.as_object().unwrap();
        assert_eq!(fields.keys().collect::<Vec<_>>(), ["ciphertext"], "{stored}");
        assert!(fields["ciphertext"].as_str().unwrap().starts_with("vault:v1:"), "{stored}");
        let dump = fixture.fake.dump();
        assert!(dump.contains("ciphertext"), "the search itself works");
        for secret in SECRETS {
            assert!(!dump.contains(secret), "{secret} is stored in plaintext");
        }
        assert_eq!(fixture.fake.transit_key("connectors-tenant-acme"), Some((true, false)), "derived, not exportable");
    }

    #[tokio::test]
    async fn a_ciphertext_moved_to_another_tenant_or_integration_is_tampered() {
        let fixture = FakeFixture::new(KvVersion::V2, true);
        let store = fixture.store().await;
        let (acme, globex) = (id("acme"), id("globex"));
        store.put(&acme, "github", &credential()).await.unwrap();
        store.put(&globex, "github", &OAuthCredential { access_token: "globex".into(), ..credential() }).await.unwrap();
        let acme_github = fixture.fake.raw("connectors/tenants/acme/github").unwrap();

        // Another tenant: another Transit key.
        fixture.fake.put_raw("connectors/tenants/globex/github", acme_github.clone());
        let message = tampered(store.get(&globex, "github").await);
        assert!(message.contains("globex") && message.contains("github"), "{message}");
        tampered(store.list(&globex).await);
        // The same tenant, another integration: the same key, another derivation context.
        fixture.fake.put_raw("connectors/tenants/acme/linear", acme_github);
        tampered(store.get(&acme, "linear").await);
        assert_eq!(store.get(&acme, "github").await.unwrap(), Some(credential()));
    }

    #[tokio::test]
    async fn garbled_secrets_are_tampered_in_either_mode() {
        for separate_keys in [false, true] {
            let fixture = FakeFixture::new(KvVersion::V1, separate_keys);
            let store = fixture.store().await;
            let acme = id("acme");
            let path = "connectors/tenants/acme/github";
            for garbage in [json!({"accessToken": 42}), json!({"ciphertext": "vault:v1:AAAA"}), json!({})] {
                fixture.fake.put_raw(path, garbage.clone());
                tampered(store.get(&acme, "github").await);
                assert!(store.delete(&acme, "github").await.unwrap(), "a garbled secret can still be deleted");
            }
            if separate_keys {
                // A plaintext credential slipped into an encrypted store is refused, not trusted.
                fixture.fake.put_raw(path, serde_json::to_value(credential()).unwrap());
                tampered(store.get(&acme, "github").await);
            }
        }
    }

    #[tokio::test]
    async fn delete_tenant_destroys_the_tenant_key_so_old_ciphertext_stays_unreadable() {
        let fixture = FakeFixture::new(KvVersion::V2, true);
        let store = fixture.store().await;
        let acme = id("acme");
        store.put(&acme, "github", &credential()).await.unwrap();
        let backup = fixture.fake.raw("connectors/tenants/acme/github").unwrap();
        assert!(fixture.fake.transit_key("connectors-tenant-acme").is_some());

        store.delete_tenant(&acme).await.unwrap();
        assert_eq!(fixture.fake.transit_key("connectors-tenant-acme"), None);
        assert!(!fixture.fake.holds("connectors/tenants/acme/github"));
        fixture.fake.put_raw("connectors/tenants/acme/github", backup.clone());
        tampered(store.get(&acme, "github").await);

        // A new key for the tenant's new start does not open the old ciphertext either.
        store.put(&acme, "github", &credential()).await.unwrap();
        assert!(fixture.fake.transit_key("connectors-tenant-acme").is_some());
        fixture.fake.put_raw("connectors/tenants/acme/github", backup);
        tampered(store.get(&acme, "github").await);
    }

    #[tokio::test]
    async fn delete_on_kv2_removes_every_version() {
        let fixture = FakeFixture::new(KvVersion::V2, false);
        let store = fixture.store().await;
        let acme = id("acme");
        store.put(&acme, "github", &credential()).await.unwrap();
        store.put(&acme, "github", &OAuthCredential { access_token: "newer".into(), ..credential() }).await.unwrap();
        assert!(store.delete(&acme, "github").await.unwrap());
        assert!(!fixture.fake.holds("connectors/tenants/acme/github"), "no version or metadata is left");
        assert!(!fixture.fake.dump().contains("gho_access-token-plaintext"));
    }

    #[tokio::test]
    async fn integration_names_must_be_one_path_segment() {
        let fixture = FakeFixture::new(KvVersion::V2, false);
        let store = fixture.store().await;
        let acme = id("acme");
        for name in ["", "a/b", "..", ".", "../globex/github", "git hub"] {
            let message = backend(store.put(&acme, name, &credential()).await);
            assert!(message.contains("path segment"), "{name}: {message}");
            backend(store.get(&acme, name).await);
        }
        assert_eq!(fixture.fake.dump(), "{}", "nothing was written");
        store.put(&acme, "google_drive.v2", &credential()).await.unwrap();
    }

    #[tokio::test]
    async fn a_wrong_token_is_refused_at_connect_naming_the_address() {
        let fixture = FakeFixture::new(KvVersion::V2, false);
        let config = VaultConfig { token: "hvs.wrong".into(), ..fixture.config() };
        let message = backend(VaultSecretStore::connect(config).await);
        assert!(message.contains(&fixture.fake.addr) && message.contains("VAULT_ADDR"), "{message}");
        assert!(message.contains("VAULT_TOKEN"), "{message}");
        assert!(!message.contains("hvs.wrong"), "the token is a secret: {message}");
    }

    #[tokio::test]
    async fn an_unreachable_vault_is_refused_at_connect_naming_the_address() {
        let addr = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", listener.local_addr().unwrap())
        };
        let message = backend(VaultSecretStore::connect(VaultConfig::new(&addr, "hvs.token")).await);
        assert!(message.contains(&addr) && message.contains("VAULT_ADDR"), "{message}");

        let message = backend(VaultSecretStore::connect(VaultConfig::new("vault.internal:8200", "t")).await);
        assert!(message.contains("VAULT_ADDR") && message.contains("vault.internal:8200"), "{message}");
    }

    #[tokio::test]
    async fn denial_and_outage_after_connect_are_backend_errors() {
        let fixture = FakeFixture::new(KvVersion::V2, true);
        let store = fixture.store().await;
        let acme = id("acme");
        store.put(&acme, "github", &credential()).await.unwrap();

        store.check().await.expect("healthy before the outage");
        fixture.fake.revoke_token();
        backend(store.check().await);
        let message = backend(store.get(&acme, "github").await);
        assert!(message.contains("permission denied") && message.contains(&fixture.fake.addr), "{message}");
        backend(store.put(&acme, "github", &credential()).await);

        fixture.fake.seal();
        backend(store.check().await);
        let message = backend(store.tenants().await);
        assert!(message.contains("503") && message.contains("sealed"), "{message}");
        backend(store.delete_tenant(&acme).await);
    }

    #[test]
    fn debug_never_shows_the_token() {
        let text = format!("{:?}", VaultConfig::new("http://127.0.0.1:8200", "hvs.secret-token"));
        assert!(!text.contains("hvs.secret-token") && text.contains("[REDACTED]"), "{text}");
    }
}
