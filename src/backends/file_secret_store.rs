//! The embedded [`SecretStore`]: tenants' OAuth credentials sealed with AES-256-GCM in their own
//! redb file under the data dir, the default of a single node.
//!
//! This file decides the on-disk layout and the envelope encryption of the embedded store, and
//! where its master key comes from (`CONNECTORS_MASTER_KEY`, else a key file created next to the
//! data). It does not decide what the store must do (the port and its contract suite do), nor
//! where the files live (the configuration does). Each port method is one redb transaction.
//!
//! | table | key | value |
//! |---|---|---|
//! | `tenant_keys` | tenant id | the tenant's data key, sealed by the master key, AAD = tenant id |
//! | `credentials` | (tenant id, integration) | the JSON [`OAuthCredential`], sealed by the tenant's data key, AAD = tenant id `\0` integration |
//! | `meta` | `key_check` | a known constant, sealed by the master key, AAD = `meta:key_check` |
//!
//! Every sealed value is a fresh random 96-bit nonce followed by the AES-256-GCM ciphertext and
//! tag. The associated data binds a value to its row, so a value moved to another tenant's or
//! integration's row fails authentication and reads as [`SecretError::Tampered`]. Data keys are
//! random per tenant, made on the tenant's first `put`; `delete_tenant` drops the tenant's key
//! with its rows, so nothing left in the file can decrypt that tenant's old ciphertext.

use std::fmt::{self, Display};
use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use connectors_actors::secret_store::{OAuthCredential, SecretError, SecretStore};
use connectors_actors::tenant::TenantId;
use rand::TryRngCore;
use rand::rngs::OsRng;
use redb::{
    Database, DatabaseError, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction,
};
use zeroize::Zeroizing;

const TENANT_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("tenant_keys");
const CREDENTIALS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("credentials");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const KEY_CHECK_ROW: &str = "key_check";
/// What the key-check row decrypts to under the right master key.
const KEY_CHECK: &[u8] = b"connectors secret store v1";
/// Holds a `:`, which no tenant id may, so the key check can never pass for a wrapped data key
/// (also sealed by the master key, with the tenant id as AAD) or the other way round.
const KEY_CHECK_AAD: &[u8] = b"meta:key_check";

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;

/// The key that seals every tenant's data key. Its bytes are wiped on drop and never printed.
#[derive(Clone)]
pub struct MasterKey(Zeroizing<[u8; KEY_LEN]>);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey([REDACTED])")
    }
}

impl MasterKey {
    /// Parses the value of `CONNECTORS_MASTER_KEY`: 32 bytes as base64 (standard or URL-safe,
    /// padded or not) or as 64 hex digits. The error never repeats the value, which is a secret.
    pub fn from_env_value(text: &str) -> Result<MasterKey, SecretError> {
        let text = text.trim();
        // 32 bytes are 43 or 44 characters of base64 but 64 of hex, so even-length hex text is never
        // a valid base64 key; reading it as hex lets a short hex key be reported by its length.
        let decoded = if text.len().is_multiple_of(2) && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(text).ok()
        } else {
            [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD].iter().find_map(|engine| engine.decode(text).ok())
        };
        let bad = |what: String| {
            SecretError::WrongMasterKey(format!(
                "CONNECTORS_MASTER_KEY {what}; it must be 32 bytes written as base64 or as 64 hex digits \
                 (make one with `openssl rand -base64 32`)"
            ))
        };
        let bytes = Zeroizing::new(decoded.ok_or_else(|| bad("is neither base64 nor hex".into()))?);
        let key: [u8; KEY_LEN] =
            bytes.as_slice().try_into().map_err(|_| bad(format!("decodes to {} bytes, not 32", bytes.len())))?;
        Ok(MasterKey(Zeroizing::new(key)))
    }

    /// Reads the key file at `path`, or creates it with 32 random bytes (base64, mode 0600) if it
    /// does not exist. A key file that group or others may read is refused: it is no secret.
    pub fn load_or_create(path: &Path) -> Result<MasterKey, SecretError> {
        match Self::create(path) {
            Ok(key) => Ok(key),
            Err(err) if err.kind() == ErrorKind::AlreadyExists => Self::load(path),
            Err(err) => Err(key_file_error(path, &format_args!("cannot create it: {err}"))),
        }
    }

    /// Writes a new key to a private temporary file, then links it to `path`. The link fails if
    /// `path` exists, so of two processes starting together one key wins, and no process can
    /// read a key file that is still half written.
    fn create(path: &Path) -> std::io::Result<MasterKey> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        OsRng.try_fill_bytes(key.as_mut()).expect("the operating system's random source is available");
        let text = Zeroizing::new(format!("{}\n", STANDARD.encode(key.as_ref())));
        let mut suffix = [0u8; 8];
        OsRng.try_fill_bytes(&mut suffix).expect("the operating system's random source is available");
        let mut temporary = path.as_os_str().to_owned();
        temporary.push(format!(".{}.tmp", hex::encode(suffix)));
        let temporary = PathBuf::from(temporary);

        let written = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)
            .and_then(|mut file| {
                file.write_all(text.as_bytes())?;
                file.sync_all()
            })
            .and_then(|()| fs::hard_link(&temporary, path));
        // The temporary name is ours alone; whether the link succeeded or not, it goes.
        let _ = fs::remove_file(&temporary);
        written.map(|()| MasterKey(key))
    }

    fn load(path: &Path) -> Result<MasterKey, SecretError> {
        let mode = fs::metadata(path).map_err(|err| key_file_error(path, &err))?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(key_file_error(
                path,
                &format_args!(
                    "group or others may access it (mode {:o}); run `chmod 600 {}`",
                    mode & 0o777,
                    path.display()
                ),
            ));
        }
        let text = Zeroizing::new(fs::read_to_string(path).map_err(|err| key_file_error(path, &err))?);
        Self::from_env_value(&text).map_err(|err| key_file_error(path, &err))
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(self.0.as_ref().into())
    }
}

fn key_file_error(path: &Path, reason: &dyn Display) -> SecretError {
    SecretError::Backend(format!("master key file `{}`: {reason}", path.display()))
}

/// The embedded secret store; see the module documentation for its layout and encryption.
pub struct FileSecretStore {
    // Shared with the blocking tasks that run the transactions.
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    master: Aes256Gcm,
}

impl FileSecretStore {
    /// Opens the secrets file at `path`, creating it and its tables if needed. A new file records
    /// a key check under `master`; an existing one is refused unless `master` opens its check.
    pub fn open(path: &Path, master: MasterKey) -> Result<Self, SecretError> {
        let cannot_open = |reason: &dyn Display| {
            SecretError::Backend(format!("cannot open the secrets file `{}`: {reason}", path.display()))
        };
        let db = Database::create(path).map_err(|err| match err {
            // redb holds an exclusive lock on the file while it is open.
            DatabaseError::DatabaseAlreadyOpen => {
                cannot_open(&"it is already open, by another gateway process or by this one")
            }
            other => cannot_open(&other),
        })?;
        let master = master.cipher();
        let txn = db.begin_write().map_err(|err| cannot_open(&err))?;
        txn.open_table(TENANT_KEYS).map_err(|err| cannot_open(&err))?;
        txn.open_table(CREDENTIALS).map_err(|err| cannot_open(&err))?;
        let mut meta = txn.open_table(META).map_err(|err| cannot_open(&err))?;
        let check = meta.get(KEY_CHECK_ROW).map_err(|err| cannot_open(&err))?.map(|row| row.value().to_vec());
        match check {
            Some(sealed) => {
                let opens = unseal(&master, KEY_CHECK_AAD, &sealed, &"the key check")
                    .is_ok_and(|plaintext| plaintext.as_slice() == KEY_CHECK);
                if !opens {
                    return Err(SecretError::WrongMasterKey(format!(
                        "the secrets in `{}` were sealed with another master key; set CONNECTORS_MASTER_KEY to the \
                         original key",
                        path.display()
                    )));
                }
            }
            None => {
                meta.insert(KEY_CHECK_ROW, seal(&master, KEY_CHECK_AAD, KEY_CHECK).as_slice())
                    .map_err(|err| cannot_open(&err))?;
            }
        }
        drop(meta);
        txn.commit().map_err(|err| cannot_open(&err))?;
        Ok(Self { inner: Arc::new(Inner { db, master }) })
    }

    /// Runs `work` in one read transaction on a blocking thread (redb does synchronous I/O).
    async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&ReadTransaction, &Aes256Gcm) -> Result<T, SecretError> + Send + 'static,
    ) -> Result<T, SecretError> {
        self.blocking(move |inner| work(&inner.db.begin_read().backend()?, &inner.master)).await
    }

    /// Runs `work` in one write transaction on a blocking thread and commits it if `work`
    /// succeeds. On an error the transaction is dropped, which aborts it: nothing is written.
    async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&WriteTransaction, &Aes256Gcm) -> Result<T, SecretError> + Send + 'static,
    ) -> Result<T, SecretError> {
        self.blocking(move |inner| {
            let txn = inner.db.begin_write().backend()?;
            let out = work(&txn, &inner.master)?;
            txn.commit().backend()?;
            Ok(out)
        })
        .await
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Inner) -> Result<T, SecretError> + Send + 'static,
    ) -> Result<T, SecretError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || work(&inner))
            .await
            .map_err(|err| SecretError::Backend(format!("a secrets transaction did not finish: {err}")))?
    }
}

#[async_trait]
impl SecretStore for FileSecretStore {
    async fn check(&self) -> Result<(), SecretError> {
        self.read(|txn, _| txn.open_table(META).backend().map(|_| ())).await
    }

    async fn put(&self, tenant: &TenantId, integration: &str, credential: &OAuthCredential) -> Result<(), SecretError> {
        let (tenant, integration) = (tenant.clone(), integration.to_string());
        let plaintext = Zeroizing::new(
            serde_json::to_vec(credential)
                .map_err(|err| SecretError::Backend(format!("cannot encode a credential: {err}")))?,
        );
        self.write(move |txn, master| {
            let mut keys = txn.open_table(TENANT_KEYS).backend()?;
            let wrapped = keys.get(tenant.as_str()).backend()?.map(|row| row.value().to_vec());
            let data_key = match wrapped {
                Some(wrapped) => unwrap_data_key(master, &tenant, &wrapped)?,
                None => {
                    let mut key = Zeroizing::new([0u8; KEY_LEN]);
                    OsRng.try_fill_bytes(key.as_mut()).expect("the operating system's random source is available");
                    keys.insert(tenant.as_str(), seal(master, tenant.as_str().as_bytes(), key.as_ref()).as_slice())
                        .backend()?;
                    key
                }
            };
            let sealed = seal(&data_cipher(&data_key), &credential_aad(&tenant, &integration), &plaintext);
            txn.open_table(CREDENTIALS)
                .backend()?
                .insert((tenant.as_str(), integration.as_str()), sealed.as_slice())
                .backend()?;
            Ok(())
        })
        .await
    }

    async fn get(&self, tenant: &TenantId, integration: &str) -> Result<Option<OAuthCredential>, SecretError> {
        let (tenant, integration) = (tenant.clone(), integration.to_string());
        self.read(move |txn, master| {
            let credentials = txn.open_table(CREDENTIALS).backend()?;
            let Some(row) = credentials.get((tenant.as_str(), integration.as_str())).backend()? else {
                return Ok(None);
            };
            let cipher = data_cipher(&*tenant_key(txn, master, &tenant)?);
            open_credential(&cipher, &tenant, &integration, row.value()).map(Some)
        })
        .await
    }

    async fn list(&self, tenant: &TenantId) -> Result<Vec<(String, OAuthCredential)>, SecretError> {
        let tenant = tenant.clone();
        self.read(move |txn, master| {
            let credentials = txn.open_table(CREDENTIALS).backend()?;
            let mut sealed = Vec::new();
            for row in credentials.range((tenant.as_str(), "")..).backend()? {
                let (key, value) = row.backend()?;
                let (owner, integration) = key.value();
                if owner != tenant.as_str() {
                    break;
                }
                sealed.push((integration.to_string(), value.value().to_vec()));
            }
            // A tenant without credentials may have no key either; it has nothing to decrypt.
            if sealed.is_empty() {
                return Ok(Vec::new());
            }
            let cipher = data_cipher(&*tenant_key(txn, master, &tenant)?);
            sealed
                .into_iter()
                .map(|(integration, value)| {
                    let credential = open_credential(&cipher, &tenant, &integration, &value)?;
                    Ok((integration, credential))
                })
                .collect()
        })
        .await
    }

    async fn delete(&self, tenant: &TenantId, integration: &str) -> Result<bool, SecretError> {
        let (tenant, integration) = (tenant.clone(), integration.to_string());
        self.write(move |txn, _| {
            let mut credentials = txn.open_table(CREDENTIALS).backend()?;
            Ok(credentials.remove((tenant.as_str(), integration.as_str())).backend()?.is_some())
        })
        .await
    }

    async fn tenants(&self) -> Result<Vec<TenantId>, SecretError> {
        self.read(move |txn, _| {
            let credentials = txn.open_table(CREDENTIALS).backend()?;
            let mut tenants: Vec<TenantId> = Vec::new();
            for row in credentials.iter().backend()? {
                let (key, _) = row.backend()?;
                let (owner, _) = key.value();
                // Rows are in (tenant, integration) order: a tenant's rows are adjacent.
                if tenants.last().is_none_or(|last| last.as_str() != owner) {
                    let id = TenantId::parse(owner).map_err(|e| SecretError::Tampered(e.to_string()))?;
                    tenants.push(id);
                }
            }
            Ok(tenants)
        })
        .await
    }

    async fn delete_tenant(&self, tenant: &TenantId) -> Result<(), SecretError> {
        let tenant = tenant.clone();
        self.write(move |txn, _| {
            txn.open_table(TENANT_KEYS).backend()?.remove(tenant.as_str()).backend()?;
            let mut credentials = txn.open_table(CREDENTIALS).backend()?;
            let mut integrations = Vec::new();
            for row in credentials.range((tenant.as_str(), "")..).backend()? {
                let (key, _) = row.backend()?;
                let (owner, integration) = key.value();
                if owner != tenant.as_str() {
                    break;
                }
                integrations.push(integration.to_string());
            }
            for integration in &integrations {
                credentials.remove((tenant.as_str(), integration.as_str())).backend()?;
            }
            Ok(())
        })
        .await
    }
}

/// The unwrapped data key of `tenant`, which must exist because the tenant has a credential.
fn tenant_key(
    txn: &ReadTransaction,
    master: &Aes256Gcm,
    tenant: &TenantId,
) -> Result<Zeroizing<[u8; KEY_LEN]>, SecretError> {
    let keys = txn.open_table(TENANT_KEYS).backend()?;
    let Some(wrapped) = keys.get(tenant.as_str()).backend()? else {
        return Err(SecretError::Tampered(format!("tenant `{tenant}` has credentials but no data key")));
    };
    unwrap_data_key(master, tenant, wrapped.value())
}

fn unwrap_data_key(
    master: &Aes256Gcm,
    tenant: &TenantId,
    wrapped: &[u8],
) -> Result<Zeroizing<[u8; KEY_LEN]>, SecretError> {
    let what = format!("the data key of tenant `{tenant}`");
    let key = unseal(master, tenant.as_str().as_bytes(), wrapped, &what)?;
    key.as_slice()
        .try_into()
        .map(Zeroizing::new)
        .map_err(|_| SecretError::Tampered(format!("{what} has {} bytes, not {KEY_LEN}", key.len())))
}

fn data_cipher(key: &[u8; KEY_LEN]) -> Aes256Gcm {
    Aes256Gcm::new(key.into())
}

/// Tenant ids hold no `\0`, so the split between tenant and integration is unambiguous.
fn credential_aad(tenant: &TenantId, integration: &str) -> Vec<u8> {
    [tenant.as_str().as_bytes(), b"\0", integration.as_bytes()].concat()
}

fn open_credential(
    cipher: &Aes256Gcm,
    tenant: &TenantId,
    integration: &str,
    sealed: &[u8],
) -> Result<OAuthCredential, SecretError> {
    let what = format!("the credential of tenant `{tenant}` for `{integration}`");
    let plaintext = unseal(cipher, &credential_aad(tenant, integration), sealed, &what)?;
    // It authenticated, so we wrote it: a decoding failure means a format change, not an attack.
    serde_json::from_slice(&plaintext).map_err(|err| SecretError::Backend(format!("cannot decode {what}: {err}")))
}

/// A fresh random nonce followed by the ciphertext and tag of `plaintext`.
fn seal(cipher: &Aes256Gcm, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.try_fill_bytes(&mut nonce).expect("the operating system's random source is available");
    let ciphertext = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad })
        .expect("AES-GCM encrypts any message shorter than 64 GiB");
    [nonce.as_slice(), &ciphertext].concat()
}

fn unseal(
    cipher: &Aes256Gcm,
    aad: &[u8],
    sealed: &[u8],
    what: &dyn Display,
) -> Result<Zeroizing<Vec<u8>>, SecretError> {
    let tampered = || SecretError::Tampered(format!("{what} does not authenticate"));
    let (nonce, ciphertext) = sealed.split_at_checked(NONCE_LEN).ok_or_else(tampered)?;
    cipher
        .decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad })
        .map(Zeroizing::new)
        .map_err(|_| tampered())
}

/// Maps any redb error to [`SecretError::Backend`]. An extension trait because the orphan rule
/// forbids `From<redb::…Error> for SecretError` here, and there are several redb error types.
trait OrBackend<T> {
    fn backend(self) -> Result<T, SecretError>;
}

impl<T, E: Into<redb::Error>> OrBackend<T> for Result<T, E> {
    fn backend(self) -> Result<T, SecretError> {
        self.map_err(|err| SecretError::Backend(format!("secrets file: {}", err.into())))
    }
}

#[cfg(test)]
mod tests {
    use redb::ReadableTableMetadata;
    use tempfile::TempDir;

    use super::*;
    use crate::backends::secret_store_contract::{self, Fixture, credential, id};

    struct FileFixture {
        dir: TempDir,
        master: MasterKey,
    }

    impl FileFixture {
        fn new() -> Self {
            Self {
                dir: TempDir::new().expect("the temporary directory is writable"),
                master: MasterKey::from_env_value(&STANDARD.encode([7u8; KEY_LEN])).unwrap(),
            }
        }

        fn path(&self) -> PathBuf {
            self.dir.path().join("secrets.redb")
        }

        fn store(&self) -> FileSecretStore {
            FileSecretStore::open(&self.path(), self.master.clone()).expect("the secrets file opens")
        }
    }

    #[async_trait]
    impl Fixture for FileFixture {
        async fn open(&self) -> Arc<dyn SecretStore> {
            Arc::new(self.store())
        }
    }

    secret_store_contract::secret_store_contract_tests!(FileFixture::new());

    /// Overwrites the sealed credential row of (`tenant`, `integration`), bypassing the store.
    fn write_row(store: &FileSecretStore, tenant: &str, integration: &str, value: &[u8]) {
        let txn = store.inner.db.begin_write().unwrap();
        txn.open_table(CREDENTIALS).unwrap().insert((tenant, integration), value).unwrap();
        txn.commit().unwrap();
    }

    fn read_row<'a>(store: &FileSecretStore, table: TableDefinition<'a, &str, &[u8]>, key: &str) -> Vec<u8> {
        let txn = store.inner.db.begin_read().unwrap();
        txn.open_table(table).unwrap().get(key).unwrap().expect("the row exists").value().to_vec()
    }

    fn read_credential_row(store: &FileSecretStore, tenant: &str, integration: &str) -> Vec<u8> {
        let txn = store.inner.db.begin_read().unwrap();
        txn.open_table(CREDENTIALS)
            .unwrap()
            .get((tenant, integration))
            .unwrap()
            .expect("the row exists")
            .value()
            .to_vec()
    }

    fn is_tampered<T: fmt::Debug>(result: Result<T, SecretError>) -> bool {
        matches!(result, Err(SecretError::Tampered(_)))
    }

    #[tokio::test]
    async fn a_flipped_byte_in_a_credential_is_detected() {
        let fixture = FileFixture::new();
        let store = fixture.store();
        let acme = id("acme");
        store.put(&acme, "github", &credential()).await.unwrap();
        let row = read_credential_row(&store, "acme", "github");
        for position in [0, NONCE_LEN, row.len() - 1] {
            let mut altered = row.clone();
            altered[position] ^= 0x01;
            write_row(&store, "acme", "github", &altered);
            assert!(is_tampered(store.get(&acme, "github").await), "byte {position}");
            assert!(is_tampered(store.list(&acme).await), "byte {position}");
        }
        write_row(&store, "acme", "github", &row[..NONCE_LEN - 1]);
        assert!(is_tampered(store.get(&acme, "github").await), "a row shorter than a nonce");
        write_row(&store, "acme", "github", &row);
        assert_eq!(store.get(&acme, "github").await.unwrap(), Some(credential()));
    }

    #[tokio::test]
    async fn sealed_values_moved_to_another_row_do_not_open() {
        let fixture = FileFixture::new();
        let store = fixture.store();
        let (acme, globex) = (id("acme"), id("globex"));
        store.put(&acme, "github", &credential()).await.unwrap();
        store.put(&globex, "github", &OAuthCredential { access_token: "globex".into(), ..credential() }).await.unwrap();
        let row = read_credential_row(&store, "acme", "github");

        // Another tenant: another data key and another AAD.
        write_row(&store, "globex", "github", &row);
        assert!(is_tampered(store.get(&globex, "github").await));
        // The same tenant, another integration: the same data key, so only the AAD catches it.
        write_row(&store, "acme", "linear", &row);
        let Err(SecretError::Tampered(message)) = store.get(&acme, "linear").await else {
            panic!("a credential moved to another integration must not open");
        };
        assert!(message.contains("acme") && message.contains("linear"), "{message}");

        // A wrapped data key moved to another tenant's row.
        let wrapped = read_row(&store, TENANT_KEYS, "acme");
        let txn = store.inner.db.begin_write().unwrap();
        txn.open_table(TENANT_KEYS).unwrap().insert("globex", wrapped.as_slice()).unwrap();
        txn.commit().unwrap();
        assert!(is_tampered(store.get(&globex, "github").await));
        assert!(is_tampered(store.put(&globex, "slack", &credential()).await), "put never reuses a foreign key");
    }

    #[tokio::test]
    async fn a_wrong_master_key_is_refused_at_open() {
        let fixture = FileFixture::new();
        fixture.store().put(&id("acme"), "github", &credential()).await.unwrap();
        let other = MasterKey::from_env_value(&"ab".repeat(KEY_LEN)).unwrap();
        let Err(SecretError::WrongMasterKey(message)) = FileSecretStore::open(&fixture.path(), other) else {
            panic!("another master key must not open the file");
        };
        assert!(message.contains(&fixture.path().display().to_string()), "{message}");
        assert!(message.contains("CONNECTORS_MASTER_KEY"), "{message}");
        // The right key still opens it, and the data is intact.
        let store = fixture.store();
        assert_eq!(store.get(&id("acme"), "github").await.unwrap(), Some(credential()));
    }

    #[test]
    fn a_file_open_elsewhere_is_refused_with_its_path() {
        let fixture = FileFixture::new();
        let _first = fixture.store();
        let Err(SecretError::Backend(message)) = FileSecretStore::open(&fixture.path(), fixture.master.clone()) else {
            panic!("a second open of a locked file must fail");
        };
        assert!(message.contains(&fixture.path().display().to_string()), "{message}");
    }

    #[tokio::test]
    async fn the_file_holds_no_secret_in_plaintext() {
        let fixture = FileFixture::new();
        let store = fixture.store();
        store.put(&id("acme"), "github", &credential()).await.unwrap();
        let data_key =
            unwrap_data_key(&fixture.master.cipher(), &id("acme"), &read_row(&store, TENANT_KEYS, "acme")).unwrap();
        drop(store);

        let bytes = fs::read(fixture.path()).unwrap();
        let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|window| window == needle);
        assert!(contains(b"acme") && contains(b"github"), "the search itself works: row keys are plaintext");
        for secret in ["gho_access-token-plaintext", "ghr_refresh-token-plaintext", "client-secret-plaintext"] {
            assert!(!contains(secret.as_bytes()), "{secret} is in the file");
        }
        assert!(!contains(data_key.as_ref()), "the data key is in the file");
        assert!(!contains(fixture.master.0.as_ref()), "the master key is in the file");
    }

    #[tokio::test]
    async fn delete_tenant_leaves_neither_key_nor_rows() {
        let fixture = FileFixture::new();
        let store = fixture.store();
        let acme = id("acme");
        store.put(&acme, "github", &credential()).await.unwrap();
        let old_key = read_row(&store, TENANT_KEYS, "acme");
        store.delete_tenant(&acme).await.unwrap();

        let txn = store.inner.db.begin_read().unwrap();
        assert!(txn.open_table(TENANT_KEYS).unwrap().get("acme").unwrap().is_none());
        assert!(txn.open_table(CREDENTIALS).unwrap().is_empty().unwrap());
        drop(txn);
        store.put(&acme, "github", &credential()).await.unwrap();
        assert_ne!(read_row(&store, TENANT_KEYS, "acme"), old_key, "a new data key");
    }

    #[test]
    fn master_keys_parse_from_base64_and_hex_only_at_32_bytes() {
        let bytes: Vec<u8> = (0..32).collect();
        let base64_forms = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD].map(|engine| engine.encode(&bytes));
        for text in base64_forms.iter().cloned().chain([hex::encode(&bytes), format!("  {}\n", hex::encode(&bytes))]) {
            let key = MasterKey::from_env_value(&text).unwrap_or_else(|err| panic!("{text}: {err}"));
            assert_eq!(key.0.as_slice(), bytes.as_slice(), "{text}");
        }
        // A key with bytes that differ between the two base64 alphabets.
        let url_safe = URL_SAFE_NO_PAD.encode([0xfb; 32]);
        assert!(url_safe.contains('-') || url_safe.contains('_'));
        assert_eq!(MasterKey::from_env_value(&url_safe).unwrap().0.as_slice(), [0xfb; 32]);

        for (text, expected) in [
            (STANDARD.encode([1u8; 16]), "16 bytes"),
            (STANDARD.encode([1u8; 33]), "33 bytes"),
            (hex::encode([1u8; 31]), "31 bytes"),
            ("not a key at all!".to_string(), "neither base64 nor hex"),
            (String::new(), "0 bytes"),
        ] {
            let Err(SecretError::WrongMasterKey(message)) = MasterKey::from_env_value(&text) else {
                panic!("`{text}` must be refused");
            };
            assert!(message.contains(expected) && message.contains("base64"), "{text}: {message}");
        }
    }

    #[test]
    fn debug_never_shows_the_master_key() {
        let key = MasterKey::from_env_value(&"ab".repeat(KEY_LEN)).unwrap();
        let text = format!("{key:?}");
        assert_eq!(text, "MasterKey([REDACTED])");
    }

    #[test]
    fn the_key_file_is_created_private_then_reused() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("master.key");
        let created = MasterKey::load_or_create(&path).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let again = MasterKey::load_or_create(&path).unwrap();
        assert_eq!(created.0.as_slice(), again.0.as_slice());
        // The file is the same text CONNECTORS_MASTER_KEY takes, and no temporary file is left.
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(MasterKey::from_env_value(&text).unwrap().0.as_slice(), created.0.as_slice());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);

        let other = MasterKey::load_or_create(&dir.path().join("other.key")).unwrap();
        assert_ne!(created.0.as_slice(), other.0.as_slice());
    }

    #[test]
    fn a_key_file_others_can_read_is_refused() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("master.key");
        MasterKey::load_or_create(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let Err(SecretError::Backend(message)) = MasterKey::load_or_create(&path) else {
            panic!("a world-readable key file must be refused");
        };
        assert!(message.contains(&path.display().to_string()) && message.contains("644"), "{message}");
        assert!(message.contains("chmod 600"), "{message}");
    }

    #[test]
    fn a_broken_key_file_or_directory_is_reported_with_its_path() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("master.key");
        let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).unwrap();
        file.write_all(b"short").unwrap();
        let Err(SecretError::Backend(message)) = MasterKey::load_or_create(&path) else {
            panic!("a key file of the wrong length must be refused");
        };
        assert!(message.contains(&path.display().to_string()) && message.contains("bytes"), "{message}");

        let missing = dir.path().join("missing").join("master.key");
        let Err(SecretError::Backend(message)) = MasterKey::load_or_create(&missing) else {
            panic!("a key file in a missing directory cannot be created");
        };
        assert!(message.contains(&missing.display().to_string()), "{message}");
    }
}
