//! A stand-in for HashiCorp Vault in tests: an HTTP server on 127.0.0.1 that answers the
//! endpoints [`VaultSecretStore`](super::vault_secret_store::VaultSecretStore) calls with the
//! statuses and bodies Vault's API documentation gives, and lets a test read and alter what it
//! stores underneath.
//!
//! It decides nothing about the adapter. It serves one KV mount (`secret`, version 1 or 2) and one
//! Transit mount (`transit`), checks `X-Vault-Token` against one token, and keeps everything in
//! memory. It does not model policies, leases, namespaces, soft deletion or key rotation; any
//! other path or operation gets the error Vault gives for a missing route or operation, so a call
//! the adapter should not make fails loudly.
//!
//! Transit "encryption" here is a keyed stream and tag built from SHA-256, not AES-GCM; what
//! matters to the tests is Vault's behaviour: a ciphertext opens only with the key and context it
//! was made with, and a deleted key cannot be recreated with the same bytes.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;

use super::vault_secret_store::KvVersion;

pub(crate) const KV_MOUNT: &str = "secret";
pub(crate) const TRANSIT_MOUNT: &str = "transit";
const NONCE_LEN: usize = 16;
const TAG_LEN: usize = 16;

/// A running fake Vault; the server stops when this is dropped.
pub(crate) struct VaultFake {
    pub(crate) addr: String,
    pub(crate) token: String,
    state: Arc<Mutex<Vault>>,
    server: JoinHandle<()>,
}

struct Vault {
    kv_version: KvVersion,
    token: String,
    sealed: bool,
    /// Path in the KV mount → every version written (version 1 keeps only the last).
    kv: BTreeMap<String, Vec<Value>>,
    transit: BTreeMap<String, TransitKey>,
}

struct TransitKey {
    secret: [u8; 32],
    derived: bool,
    exportable: bool,
    deletion_allowed: bool,
}

impl Drop for VaultFake {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl VaultFake {
    /// Starts a fake whose KV mount speaks `kv_version`. Must be called inside a tokio runtime.
    pub(crate) fn start(kv_version: KvVersion) -> Self {
        let token = format!("hvs.{}", hex::encode(rand::random::<[u8; 12]>()));
        let state = Arc::new(Mutex::new(Vault {
            kv_version,
            token: token.clone(),
            sealed: false,
            kv: BTreeMap::new(),
            transit: BTreeMap::new(),
        }));
        let listener = std::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .expect("a port on 127.0.0.1 is free");
        listener.set_nonblocking(true).expect("the listener becomes non-blocking");
        let addr = format!("http://{}", listener.local_addr().expect("the listener has an address"));
        let listener = tokio::net::TcpListener::from_std(listener).expect("called inside a tokio runtime");
        let app = Router::new().fallback(serve).with_state(Arc::clone(&state));
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("the fake Vault serves until aborted");
        });
        Self { addr, token, state, server }
    }

    fn vault(&self) -> MutexGuard<'_, Vault> {
        self.state.lock().expect("no test panics while holding the fake's lock")
    }

    /// The current data of the KV secret at `path` (inside the mount), as stored.
    pub(crate) fn raw(&self, path: &str) -> Option<Value> {
        self.vault().kv.get(path).and_then(|versions| versions.last().cloned())
    }

    /// Writes `data` at `path` as a new version, bypassing the API.
    pub(crate) fn put_raw(&self, path: &str, data: Value) {
        self.vault().write(path, data);
    }

    /// Whether anything at all, a version or metadata, is left at `path`.
    pub(crate) fn holds(&self, path: &str) -> bool {
        self.vault().kv.contains_key(path)
    }

    /// Everything the KV mount holds, as one text to search.
    pub(crate) fn dump(&self) -> String {
        serde_json::to_string(&self.vault().kv).expect("JSON values serialise")
    }

    /// The Transit key named `name`, if it exists: (derived, exportable).
    pub(crate) fn transit_key(&self, name: &str) -> Option<(bool, bool)> {
        self.vault().transit.get(name).map(|key| (key.derived, key.exportable))
    }

    /// Revokes the token: every later request is denied, as Vault denies a revoked token.
    pub(crate) fn revoke_token(&self) {
        self.vault().token = String::new();
    }

    /// Seals the fake: every later request gets Vault's 503 for a sealed Vault.
    pub(crate) fn seal(&self) {
        self.vault().sealed = true;
    }
}

impl Vault {
    fn write(&mut self, path: &str, data: Value) {
        let versions = self.kv.entry(path.to_string()).or_default();
        if self.kv_version == KvVersion::V1 {
            versions.clear();
        }
        versions.push(data);
    }

    /// The keys directly in the folder `dir` (no trailing `/`), folders ending in `/`, sorted.
    fn list(&self, dir: &str) -> Response {
        let dir = format!("{}/", dir.trim_end_matches('/'));
        let mut keys: Vec<String> = self
            .kv
            .keys()
            .filter_map(|path| path.strip_prefix(&dir))
            .map(|rest| match rest.split_once('/') {
                Some((folder, _)) => format!("{folder}/"),
                None => rest.to_string(),
            })
            .collect();
        keys.sort();
        keys.dedup();
        if keys.is_empty() {
            return not_found();
        }
        ok(json!({ "keys": keys }))
    }

    fn kv(&mut self, method: &Method, path: &str, body: Value) -> Response {
        match self.kv_version {
            KvVersion::V1 => self.kv1(method, path, body),
            KvVersion::V2 => self.kv2(method, path, body),
        }
    }

    /// <https://developer.hashicorp.com/vault/api-docs/secret/kv/kv-v1>
    fn kv1(&mut self, method: &Method, path: &str, body: Value) -> Response {
        match method.as_str() {
            "GET" => match self.kv.get(path).and_then(|versions| versions.last()) {
                Some(data) => envelope(StatusCode::OK, data.clone(), 2_764_800),
                None => not_found(),
            },
            "POST" | "PUT" => {
                self.write(path, body);
                StatusCode::NO_CONTENT.into_response()
            }
            "DELETE" => {
                self.kv.remove(path);
                StatusCode::NO_CONTENT.into_response()
            }
            "LIST" => self.list(path),
            _ => unsupported(),
        }
    }

    /// <https://developer.hashicorp.com/vault/api-docs/secret/kv/kv-v2>
    fn kv2(&mut self, method: &Method, path: &str, body: Value) -> Response {
        let (area, path) = path.split_once('/').unwrap_or((path, ""));
        match (area, method.as_str()) {
            ("data", "GET") => match self.kv.get(path) {
                Some(versions) => ok(json!({
                    "data": versions.last().cloned().unwrap_or(Value::Null),
                    "metadata": version_metadata(versions.len()),
                })),
                None => not_found(),
            },
            ("data", "POST" | "PUT") => {
                let Some(data) = body.get("data").filter(|data| data.is_object()) else {
                    return error(StatusCode::BAD_REQUEST, "no data provided");
                };
                let current = self.kv.get(path).map_or(0, Vec::len) as u64;
                if let Some(cas) = body.pointer("/options/cas").and_then(Value::as_u64)
                    && cas != current
                {
                    return error(StatusCode::BAD_REQUEST, "check-and-set parameter did not match the current version");
                }
                self.write(path, data.clone());
                ok(version_metadata(self.kv[path].len()))
            }
            ("metadata", "DELETE") => {
                self.kv.remove(path);
                StatusCode::NO_CONTENT.into_response()
            }
            ("metadata", "LIST") => self.list(path),
            _ => unsupported(),
        }
    }

    /// <https://developer.hashicorp.com/vault/api-docs/secret/transit>
    fn transit(&mut self, method: &Method, path: &str, body: Value) -> Response {
        let flag = |name: &str| body.get(name).and_then(Value::as_bool);
        let field = |name: &str| body.get(name).and_then(Value::as_str).unwrap_or_default().to_string();
        let segments: Vec<&str> = path.split('/').collect();
        match (method.as_str(), segments.as_slice()) {
            ("POST" | "PUT", ["keys", name]) => {
                // Creating an existing key leaves it as it is.
                self.transit.entry(name.to_string()).or_insert_with(|| TransitKey {
                    secret: rand::random(),
                    derived: flag("derived").unwrap_or(false),
                    exportable: flag("exportable").unwrap_or(false),
                    deletion_allowed: false,
                });
                StatusCode::NO_CONTENT.into_response()
            }
            ("GET", ["keys", name]) => match self.transit.get(*name) {
                Some(key) => ok(json!({
                    "type": "aes256-gcm96",
                    "deletion_allowed": key.deletion_allowed,
                    "derived": key.derived,
                    "exportable": key.exportable,
                    "allow_plaintext_backup": false,
                    "keys": { "1": 1_442_851_412 },
                    "min_decryption_version": 1,
                    "min_encryption_version": 0,
                    "name": name,
                    "supports_encryption": true,
                    "supports_decryption": true,
                    "supports_derivation": true,
                    "supports_signing": false,
                    "imported": false,
                })),
                None => not_found(),
            },
            ("POST" | "PUT", ["keys", name, "config"]) => match self.transit.get_mut(*name) {
                Some(key) => {
                    if let Some(allowed) = flag("deletion_allowed") {
                        key.deletion_allowed = allowed;
                    }
                    StatusCode::NO_CONTENT.into_response()
                }
                None => error(StatusCode::BAD_REQUEST, &format!("no existing key named {name} could be found")),
            },
            ("DELETE", ["keys", name]) => match self.transit.get(*name) {
                Some(key) if key.deletion_allowed => {
                    self.transit.remove(*name);
                    StatusCode::NO_CONTENT.into_response()
                }
                Some(_) => error(StatusCode::BAD_REQUEST, "deletion is not allowed for this key"),
                None => error(StatusCode::BAD_REQUEST, "could not delete key; not found"),
            },
            ("POST" | "PUT", ["encrypt", name]) => {
                let context = field("context");
                // Vault upserts a key on its first use for encryption.
                let key = self.transit.entry(name.to_string()).or_insert_with(|| TransitKey {
                    secret: rand::random(),
                    derived: !context.is_empty(),
                    exportable: false,
                    deletion_allowed: false,
                });
                if key.derived && context.is_empty() {
                    return error(StatusCode::BAD_REQUEST, "missing 'context' for key derivation");
                }
                let Ok(plaintext) = STANDARD.decode(field("plaintext")) else {
                    return error(StatusCode::BAD_REQUEST, "failed to base64-decode plaintext");
                };
                ok(json!({ "ciphertext": key.encrypt(&context, &plaintext), "key_version": 1 }))
            }
            ("POST" | "PUT", ["decrypt", name]) => {
                let Some(key) = self.transit.get(*name) else {
                    return error(StatusCode::BAD_REQUEST, "encryption key not found");
                };
                match key.decrypt(&field("context"), &field("ciphertext")) {
                    Some(plaintext) => ok(json!({ "plaintext": STANDARD.encode(plaintext) })),
                    None => error(StatusCode::BAD_REQUEST, "cipher: message authentication failed"),
                }
            }
            _ => unsupported(),
        }
    }
}

impl TransitKey {
    /// `vault:v1:` and the base64 of nonce, ciphertext and tag; the context only counts for a
    /// derived key, as in Vault.
    fn encrypt(&self, context: &str, plaintext: &[u8]) -> String {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let body: Vec<u8> =
            plaintext.iter().zip(self.keystream(context, &nonce)).map(|(byte, mask)| byte ^ mask).collect();
        let tag = self.tag(context, &nonce, &body);
        format!("vault:v1:{}", STANDARD.encode([nonce.as_slice(), &body, &tag].concat()))
    }

    fn decrypt(&self, context: &str, ciphertext: &str) -> Option<Vec<u8>> {
        let sealed = STANDARD.decode(ciphertext.strip_prefix("vault:v1:")?).ok()?;
        let (nonce, rest) = sealed.split_at_checked(NONCE_LEN)?;
        let (body, tag) = rest.split_at_checked(rest.len().checked_sub(TAG_LEN)?)?;
        if self.tag(context, nonce, body) != tag {
            return None;
        }
        Some(body.iter().zip(self.keystream(context, nonce)).map(|(byte, mask)| byte ^ mask).collect())
    }

    fn derivation(&self, context: &str) -> Sha256 {
        let mut hash = Sha256::new_with_prefix(self.secret);
        if self.derived {
            hash.update(context.as_bytes());
        }
        hash
    }

    fn keystream(&self, context: &str, nonce: &[u8]) -> impl Iterator<Item = u8> {
        let base = self.derivation(context).chain_update(nonce);
        (0u64..).flat_map(move |block| base.clone().chain_update(block.to_be_bytes()).finalize())
    }

    fn tag(&self, context: &str, nonce: &[u8], body: &[u8]) -> Vec<u8> {
        let tag = self.derivation(context).chain_update(b"tag").chain_update(nonce).chain_update(body).finalize();
        tag[..TAG_LEN].to_vec()
    }
}

async fn serve(
    State(state): State<Arc<Mutex<Vault>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut vault = state.lock().expect("no handler panics while holding the fake's lock");
    if vault.sealed {
        return error(StatusCode::SERVICE_UNAVAILABLE, "Vault is sealed");
    }
    let token = headers.get("x-vault-token").and_then(|value| value.to_str().ok());
    if vault.token.is_empty() || token != Some(vault.token.as_str()) {
        return error(StatusCode::FORBIDDEN, "permission denied");
    }
    // Vault takes `GET ...?list=true` for clients that cannot send the LIST method.
    let listing = method == Method::GET && uri.query().is_some_and(|query| query.split('&').any(|p| p == "list=true"));
    let method = if listing { Method::from_bytes(b"LIST").expect("LIST is a valid method") } else { method };
    let body = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&body) {
            Ok(body) => body,
            Err(_) => return error(StatusCode::BAD_REQUEST, "failed to parse JSON input"),
        }
    };
    let path = uri.path().strip_prefix("/v1/").unwrap_or_default();
    if let Some(path) = path.strip_prefix(KV_MOUNT).and_then(|rest| rest.strip_prefix('/')) {
        vault.kv(&method, path.trim_end_matches('/'), body)
    } else if let Some(path) = path.strip_prefix(TRANSIT_MOUNT).and_then(|rest| rest.strip_prefix('/')) {
        vault.transit(&method, path, body)
    } else {
        error(StatusCode::NOT_FOUND, &format!("no handler for route \"{path}\". route entry not found."))
    }
}

/// Vault's response envelope around `data`.
fn envelope(status: StatusCode, data: Value, lease_duration: u64) -> Response {
    let body = json!({
        "request_id": uuid::Uuid::new_v4().to_string(),
        "lease_id": "",
        "renewable": false,
        "lease_duration": lease_duration,
        "data": data,
        "wrap_info": null,
        "warnings": null,
        "auth": null,
    });
    (status, axum::Json(body)).into_response()
}

fn ok(data: Value) -> Response {
    envelope(StatusCode::OK, data, 0)
}

fn version_metadata(version: usize) -> Value {
    json!({
        "created_time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        "custom_metadata": null,
        "deletion_time": "",
        "destroyed": false,
        "version": version,
    })
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "errors": [message] }))).into_response()
}

/// Vault's answer for a path that holds nothing: 404 with no error message.
fn not_found() -> Response {
    (StatusCode::NOT_FOUND, axum::Json(json!({ "errors": [] }))).into_response()
}

fn unsupported() -> Response {
    error(StatusCode::METHOD_NOT_ALLOWED, "1 error occurred:\n\t* unsupported operation\n\n")
}
