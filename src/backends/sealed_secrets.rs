//! The envelope encryption of the secret stores that keep their own ciphertext (the embedded
//! file, Redis): where the master key comes from, how tenants' data keys are wrapped by it, and
//! how credentials are sealed by a data key. Both adapters use this module, so a credential is
//! sealed the same way whichever one holds it.
//!
//! This file decides the cryptography (AES-256-GCM), the sealed format and the associated data;
//! it does not decide where sealed values are kept (each adapter's layout does) nor what a store
//! must do (the port and its contract suite do).
//!
//! | sealed value | sealed by | AAD |
//! |---|---|---|
//! | a tenant's data key (32 random bytes) | the master key | tenant id |
//! | a credential (the JSON [`OAuthCredential`]) | the tenant's data key | tenant id `\0` integration |
//! | the key check (a known constant) | the master key | `meta:key_check` |
//!
//! Every sealed value is a fresh random 96-bit nonce followed by the AES-256-GCM ciphertext and
//! tag. The associated data binds a value to its row, so a value moved to another tenant's or
//! integration's row fails authentication and reads as [`SecretError::Tampered`]. The key check
//! lets a store refuse a wrong master key at start ([`SecretError::WrongMasterKey`]) instead of
//! failing on every read later.

use std::fmt::{self, Display};
use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use connectors_actors::secret_store::{OAuthCredential, SecretError};
use connectors_actors::tenant::TenantId;
use rand::TryRngCore;
use rand::rngs::OsRng;
use zeroize::Zeroizing;

/// What the key check decrypts to under the right master key.
const KEY_CHECK: &[u8] = b"connectors secret store v1";
/// Holds a `:`, which no tenant id may, so the key check can never pass for a wrapped data key
/// (also sealed by the master key, with the tenant id as AAD) or the other way round.
const KEY_CHECK_AAD: &[u8] = b"meta:key_check";

pub(crate) const KEY_LEN: usize = 32;
pub(crate) const NONCE_LEN: usize = 12;

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
        let key = random::<KEY_LEN>();
        let text = Zeroizing::new(format!("{}\n", STANDARD.encode(key.as_ref())));
        let mut temporary = path.as_os_str().to_owned();
        temporary.push(format!(".{}.tmp", hex::encode(random::<8>().as_ref())));
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
        // The temporary name is ours alone; whether the link succeeded or not, it goes. One left
        // behind holds a copy of the key: the operator must hear of it.
        if let Err(error) = fs::remove_file(&temporary)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            tracing::error!(path = %temporary.display(), %error, "cannot remove a temporary copy of the master key; delete it");
        }
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

    /// The key ready to use.
    pub(crate) fn cipher(&self) -> MasterCipher {
        MasterCipher(Aes256Gcm::new(self.0.as_ref().into()))
    }

    #[cfg(test)]
    pub(crate) fn bytes(&self) -> &[u8] {
        self.0.as_ref()
    }
}

fn key_file_error(path: &Path, reason: &dyn Display) -> SecretError {
    SecretError::Backend(format!("master key file `{}`: {reason}", path.display()))
}

/// The master key, ready to wrap data keys and to seal or verify the key check.
#[derive(Clone)]
pub(crate) struct MasterCipher(Aes256Gcm);

impl MasterCipher {
    /// The key check to record in a new store.
    pub(crate) fn key_check(&self) -> Vec<u8> {
        seal(&self.0, KEY_CHECK_AAD, KEY_CHECK)
    }

    /// Whether this master key opens the key check `sealed` recorded by the store at `place`
    /// (e.g. "`/data/secrets.redb`"), which the refusal names.
    pub(crate) fn verify_key_check(&self, sealed: &[u8], place: &dyn Display) -> Result<(), SecretError> {
        let opens = unseal(&self.0, KEY_CHECK_AAD, sealed, &"the key check")
            .is_ok_and(|plaintext| plaintext.as_slice() == KEY_CHECK);
        if opens {
            Ok(())
        } else {
            Err(SecretError::WrongMasterKey(format!(
                "the secrets in {place} were sealed with another master key; set CONNECTORS_MASTER_KEY to the \
                 original key"
            )))
        }
    }

    /// A new random data key for `tenant`, and that key wrapped (sealed) for storage.
    pub(crate) fn new_data_key(&self, tenant: &TenantId) -> (DataKey, Vec<u8>) {
        let key = random::<KEY_LEN>();
        let wrapped = seal(&self.0, tenant.as_str().as_bytes(), key.as_ref());
        (DataKey::new(key), wrapped)
    }

    /// Opens the wrapped data key of `tenant`; [`SecretError::Tampered`] if it was altered or
    /// wrapped for another tenant.
    pub(crate) fn unwrap_data_key(&self, tenant: &TenantId, wrapped: &[u8]) -> Result<DataKey, SecretError> {
        let what = format!("the data key of tenant `{tenant}`");
        let key = unseal(&self.0, tenant.as_str().as_bytes(), wrapped, &what)?;
        let key: [u8; KEY_LEN] = key
            .as_slice()
            .try_into()
            .map_err(|_| SecretError::Tampered(format!("{what} has {} bytes, not {KEY_LEN}", key.len())))?;
        Ok(DataKey::new(Zeroizing::new(key)))
    }
}

/// One tenant's data key: seals and opens that tenant's credentials. Wiped on drop.
pub(crate) struct DataKey {
    #[cfg_attr(not(test), allow(dead_code))]
    key: Zeroizing<[u8; KEY_LEN]>,
    cipher: Aes256Gcm,
}

impl DataKey {
    fn new(key: Zeroizing<[u8; KEY_LEN]>) -> Self {
        let cipher = Aes256Gcm::new(key.as_ref().into());
        Self { key, cipher }
    }

    /// Seals `encoded` (from [`encode_credential`]) as the credential of `tenant` for
    /// `integration`.
    pub(crate) fn seal_credential(&self, tenant: &TenantId, integration: &str, encoded: &EncodedCredential) -> Vec<u8> {
        seal(&self.cipher, &credential_aad(tenant, integration), &encoded.0)
    }

    /// Opens the sealed credential of `tenant` for `integration`; [`SecretError::Tampered`] if
    /// it was altered or belongs to another row.
    pub(crate) fn open_credential(
        &self,
        tenant: &TenantId,
        integration: &str,
        sealed: &[u8],
    ) -> Result<OAuthCredential, SecretError> {
        let what = format!("the credential of tenant `{tenant}` for `{integration}`");
        let plaintext = unseal(&self.cipher, &credential_aad(tenant, integration), sealed, &what)?;
        // It authenticated, so we wrote it: a decoding failure means a format change, not an attack.
        serde_json::from_slice(&plaintext).map_err(|err| SecretError::Backend(format!("cannot decode {what}: {err}")))
    }

    #[cfg(test)]
    pub(crate) fn bytes(&self) -> &[u8] {
        self.key.as_ref()
    }
}

/// A credential encoded for sealing, wiped on drop. Encoding is separate from sealing so that a
/// store can encode before it knows the data key (e.g. outside a transaction).
pub(crate) struct EncodedCredential(Zeroizing<Vec<u8>>);

pub(crate) fn encode_credential(credential: &OAuthCredential) -> Result<EncodedCredential, SecretError> {
    serde_json::to_vec(credential)
        .map(|bytes| EncodedCredential(Zeroizing::new(bytes)))
        .map_err(|err| SecretError::Backend(format!("cannot encode a credential: {err}")))
}

/// Tenant ids hold no `\0`, so the split between tenant and integration is unambiguous.
fn credential_aad(tenant: &TenantId, integration: &str) -> Vec<u8> {
    [tenant.as_str().as_bytes(), b"\0", integration.as_bytes()].concat()
}

fn random<const N: usize>() -> Zeroizing<[u8; N]> {
    let mut bytes = Zeroizing::new([0u8; N]);
    OsRng.try_fill_bytes(bytes.as_mut()).expect("the operating system's random source is available");
    bytes
}

/// A fresh random nonce followed by the ciphertext and tag of `plaintext`.
fn seal(cipher: &Aes256Gcm, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let nonce = random::<NONCE_LEN>();
    let ciphertext = cipher
        .encrypt(Nonce::from_slice(nonce.as_ref()), Payload { msg: plaintext, aad })
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

#[cfg(test)]
mod tests {
    use tempfile::TempDir;

    use super::*;

    fn id(text: &str) -> TenantId {
        TenantId::parse(text).expect("test ids are valid")
    }

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_its_aad() {
        let master = MasterKey::from_env_value(&"ab".repeat(KEY_LEN)).unwrap().cipher();
        let other = MasterKey::from_env_value(&"cd".repeat(KEY_LEN)).unwrap().cipher();
        let (acme, globex) = (id("acme"), id("globex"));

        let (data_key, wrapped) = master.new_data_key(&acme);
        assert_eq!(master.unwrap_data_key(&acme, &wrapped).unwrap().bytes(), data_key.bytes());
        assert!(matches!(master.unwrap_data_key(&globex, &wrapped), Err(SecretError::Tampered(_))));
        assert!(matches!(other.unwrap_data_key(&acme, &wrapped), Err(SecretError::Tampered(_))));

        master.verify_key_check(&master.key_check(), &"the test").unwrap();
        let Err(SecretError::WrongMasterKey(message)) = other.verify_key_check(&master.key_check(), &"the test") else {
            panic!("another master key must fail the key check");
        };
        assert!(message.contains("the test") && message.contains("CONNECTORS_MASTER_KEY"), "{message}");
        // The key check and a wrapped data key are both sealed by the master key: their AADs differ.
        assert!(master.verify_key_check(&wrapped, &"the test").is_err());

        let encoded = encode_credential(&credential()).unwrap();
        let sealed = data_key.seal_credential(&acme, "github", &encoded);
        assert_ne!(sealed, data_key.seal_credential(&acme, "github", &encoded), "a fresh nonce each time");
        assert_eq!(data_key.open_credential(&acme, "github", &sealed).unwrap(), credential());
        assert!(matches!(data_key.open_credential(&acme, "linear", &sealed), Err(SecretError::Tampered(_))));
        assert!(matches!(data_key.open_credential(&globex, "github", &sealed), Err(SecretError::Tampered(_))));
        let (globex_key, _) = master.new_data_key(&globex);
        assert!(matches!(globex_key.open_credential(&acme, "github", &sealed), Err(SecretError::Tampered(_))));
        assert!(matches!(
            data_key.open_credential(&acme, "github", &sealed[..NONCE_LEN - 1]),
            Err(SecretError::Tampered(_))
        ));
    }

    fn credential() -> OAuthCredential {
        crate::backends::secret_store_contract::credential()
    }

    #[test]
    fn master_keys_parse_from_base64_and_hex_only_at_32_bytes() {
        let bytes: Vec<u8> = (0..32).collect();
        let base64_forms = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD].map(|engine| engine.encode(&bytes));
        for text in base64_forms.iter().cloned().chain([hex::encode(&bytes), format!("  {}\n", hex::encode(&bytes))]) {
            let key = MasterKey::from_env_value(&text).unwrap_or_else(|err| panic!("{text}: {err}"));
            assert_eq!(key.bytes(), bytes.as_slice(), "{text}");
        }
        // A key with bytes that differ between the two base64 alphabets.
        let url_safe = URL_SAFE_NO_PAD.encode([0xfb; 32]);
        assert!(url_safe.contains('-') || url_safe.contains('_'));
        assert_eq!(MasterKey::from_env_value(&url_safe).unwrap().bytes(), [0xfb; 32]);

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
        assert_eq!(created.bytes(), again.bytes());
        // The file is the same text CONNECTORS_MASTER_KEY takes, and no temporary file is left.
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(MasterKey::from_env_value(&text).unwrap().bytes(), created.bytes());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);

        let other = MasterKey::load_or_create(&dir.path().join("other.key")).unwrap();
        assert_ne!(created.bytes(), other.bytes());
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
