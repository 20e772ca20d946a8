//! The embedded [`SecretStore`]: tenants' OAuth credentials sealed with AES-256-GCM in their own
//! redb file under the data dir, the default of a single node.
//!
//! This file decides the on-disk layout of the embedded store. It does not decide the envelope
//! encryption nor where the master key comes from (`sealed_secrets` does, for this store and the
//! Redis one alike), what the store must do (the port and its contract suite do), nor where the
//! files live (the configuration does). Each port method is one redb transaction.
//!
//! | table | key | value |
//! |---|---|---|
//! | `tenant_keys` | tenant id | the tenant's data key, sealed by the master key, AAD = tenant id |
//! | `credentials` | (tenant id, integration) | the JSON [`OAuthCredential`], sealed by the tenant's data key, AAD = tenant id `\0` integration |
//! | `meta` | `key_check` | a known constant, sealed by the master key, AAD = `meta:key_check` |
//!
//! The associated data binds a value to its row, so a value moved to another tenant's or
//! integration's row fails authentication and reads as [`SecretError::Tampered`]. Data keys are
//! random per tenant, made on the tenant's first `put`; `delete_tenant` drops the tenant's key
//! with its rows, so nothing left in the file can decrypt that tenant's old ciphertext.

use std::fmt::Display;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use connectors_actors::secret_store::{OAuthCredential, SecretError, SecretStore};
use connectors_actors::tenant::TenantId;
use redb::{
    Database, DatabaseError, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction,
};

use super::sealed_secrets::{DataKey, MasterCipher, MasterKey, encode_credential};

const TENANT_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("tenant_keys");
const CREDENTIALS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("credentials");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const KEY_CHECK_ROW: &str = "key_check";

/// The embedded secret store; see the module documentation for its layout and encryption.
pub struct FileSecretStore {
    // Shared with the blocking tasks that run the transactions.
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    master: MasterCipher,
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
            Some(sealed) => master.verify_key_check(&sealed, &format_args!("`{}`", path.display()))?,
            None => {
                meta.insert(KEY_CHECK_ROW, master.key_check().as_slice()).map_err(|err| cannot_open(&err))?;
            }
        }
        drop(meta);
        txn.commit().map_err(|err| cannot_open(&err))?;
        Ok(Self { inner: Arc::new(Inner { db, master }) })
    }

    /// Runs `work` in one read transaction on a blocking thread (redb does synchronous I/O).
    async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&ReadTransaction, &MasterCipher) -> Result<T, SecretError> + Send + 'static,
    ) -> Result<T, SecretError> {
        self.blocking(move |inner| work(&inner.db.begin_read().backend()?, &inner.master)).await
    }

    /// Runs `work` in one write transaction on a blocking thread and commits it if `work`
    /// succeeds. On an error the transaction is dropped, which aborts it: nothing is written.
    async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&WriteTransaction, &MasterCipher) -> Result<T, SecretError> + Send + 'static,
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
        let encoded = encode_credential(credential)?;
        self.write(move |txn, master| {
            let mut keys = txn.open_table(TENANT_KEYS).backend()?;
            let wrapped = keys.get(tenant.as_str()).backend()?.map(|row| row.value().to_vec());
            let data_key = match wrapped {
                Some(wrapped) => master.unwrap_data_key(&tenant, &wrapped)?,
                None => {
                    let (key, wrapped) = master.new_data_key(&tenant);
                    keys.insert(tenant.as_str(), wrapped.as_slice()).backend()?;
                    key
                }
            };
            let sealed = data_key.seal_credential(&tenant, &integration, &encoded);
            txn.open_table(CREDENTIALS)
                .backend()?
                .insert((tenant.as_str(), integration.as_str()), sealed.as_slice())
                .backend()?;
            Ok(())
        })
        .await
    }

    async fn replace(
        &self,
        tenant: &TenantId,
        integration: &str,
        expected: &OAuthCredential,
        credential: &OAuthCredential,
    ) -> Result<bool, SecretError> {
        let (tenant, integration, expected) = (tenant.clone(), integration.to_string(), expected.clone());
        let encoded = encode_credential(credential)?;
        // One write transaction: redb runs them one at a time, so the check and the write are one step.
        self.write(move |txn, master| {
            let mut credentials = txn.open_table(CREDENTIALS).backend()?;
            let Some(row) = credentials.get((tenant.as_str(), integration.as_str())).backend()? else {
                return Ok(false);
            };
            let data_key = data_key_in(&txn.open_table(TENANT_KEYS).backend()?, master, &tenant)?;
            if data_key.open_credential(&tenant, &integration, row.value())? != expected {
                return Ok(false);
            }
            drop(row);
            let sealed = data_key.seal_credential(&tenant, &integration, &encoded);
            credentials.insert((tenant.as_str(), integration.as_str()), sealed.as_slice()).backend()?;
            Ok(true)
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
            tenant_key(txn, master, &tenant)?.open_credential(&tenant, &integration, row.value()).map(Some)
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
            let data_key = tenant_key(txn, master, &tenant)?;
            sealed
                .into_iter()
                .map(|(integration, value)| {
                    let credential = data_key.open_credential(&tenant, &integration, &value)?;
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
fn tenant_key(txn: &ReadTransaction, master: &MasterCipher, tenant: &TenantId) -> Result<DataKey, SecretError> {
    data_key_in(&txn.open_table(TENANT_KEYS).backend()?, master, tenant)
}

/// The data key of `tenant` in the `TENANT_KEYS` table `keys` (of a read or a write transaction).
fn data_key_in(
    keys: &impl ReadableTable<&'static str, &'static [u8]>,
    master: &MasterCipher,
    tenant: &TenantId,
) -> Result<DataKey, SecretError> {
    let Some(wrapped) = keys.get(tenant.as_str()).backend()? else {
        return Err(SecretError::Tampered(format!("tenant `{tenant}` has credentials but no data key")));
    };
    master.unwrap_data_key(tenant, wrapped.value())
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
    use std::fmt;
    use std::fs;
    use std::path::PathBuf;

    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use redb::ReadableTableMetadata;
    use tempfile::TempDir;

    use super::*;
    use crate::backends::sealed_secrets::{KEY_LEN, NONCE_LEN};
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

    #[tokio::test]
    async fn racing_replaces_from_one_expectation_let_exactly_one_win() {
        secret_store_contract::racing_replaces_from_one_expectation_let_exactly_one_win(&FileFixture::new()).await;
    }

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
            fixture.master.cipher().unwrap_data_key(&id("acme"), &read_row(&store, TENANT_KEYS, "acme")).unwrap();
        drop(store);

        let bytes = fs::read(fixture.path()).unwrap();
        let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|window| window == needle);
        assert!(contains(b"acme") && contains(b"github"), "the search itself works: row keys are plaintext");
        for secret in ["gho_access-token-plaintext", "ghr_refresh-token-plaintext", "client-secret-plaintext"] {
            assert!(!contains(secret.as_bytes()), "{secret} is in the file");
        }
        assert!(!contains(data_key.bytes()), "the data key is in the file");
        assert!(!contains(fixture.master.bytes()), "the master key is in the file");
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
}
