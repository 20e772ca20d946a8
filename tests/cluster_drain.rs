//! End to end, a node draining on SIGTERM hands its tenants to the node that owns them next with
//! their live state: rate windows and usage continue exactly, and an OAuth refresh that is out
//! ends with the rotated token stored and the refresh token sent once. And what another process
//! did (a node that resumed after losing the tenant) is never undone: a refresh it started is
//! never sent again, a custom server it deleted is never written back.

mod common;
#[path = "common/redis_server.rs"]
mod redis_server;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Form, State};
use axum::routing::post;
use chrono::Utc;
use common::{Gateway, ensure_minute_room, eventually, metric};
use connectors_actors::tenant::TenantId;
use connectors_cluster::shard_map::{NodeId, ShardMap};
use redis_server::RedisServer;
use reqwest::Method;
use serde_json::{Value, json};

const CONFIG: &str = "gateway:\n  tickMillis: 100\n  flushIntervalMillis: 20\ncluster:\n  heartbeatMillis: 200\n  failureTimeoutMillis: 2000\n  drainDeadlineSeconds: 20\n";
const COOKIE: &str = "e2e-oauth-handoff-cookie-0123456789ab";
const MASTER_KEY: &str = "0909090909090909090909090909090909090909090909090909090909090909";
/// How long the provider takes to answer: the hand-off starts while it thinks.
const PROVIDER_DELAY: Duration = Duration::from_millis(2_500);

/// A provider that rotates refresh tokens, refuses a spent one, and answers slowly.
#[derive(Default)]
struct Provider {
    valid: String,
    /// Refresh tokens sent to it, in order.
    seen: Vec<String>,
    /// Answer 503 (consuming nothing), as a provider in trouble does.
    unavailable: bool,
}

type Shared = Arc<Mutex<Provider>>;

async fn token(
    State(provider): State<Shared>,
    Form(form): Form<std::collections::HashMap<String, String>>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let sent = form.get("refresh_token").cloned().unwrap_or_default();
    provider.lock().unwrap().seen.push(sent.clone());
    tokio::time::sleep(PROVIDER_DELAY).await;
    let mut p = provider.lock().unwrap();
    if p.unavailable {
        let body = axum::Json(json!({"error": "temporarily_unavailable"}));
        return (axum::http::StatusCode::SERVICE_UNAVAILABLE, body).into_response();
    }
    if sent != p.valid {
        return (axum::http::StatusCode::BAD_REQUEST, axum::Json(json!({"error": "invalid_grant"}))).into_response();
    }
    p.valid = "rt-2-rotated-secret".into();
    let body = json!({"access_token": "at-2-fresh-secret", "token_type": "Bearer", "expires_in": 3600, "refresh_token": p.valid});
    axum::Json(body).into_response()
}

async fn provider() -> (Shared, String) {
    let shared: Shared =
        Arc::new(Mutex::new(Provider { valid: "rt-1-initial-secret".into(), seen: Vec::new(), unavailable: false }));
    let app = axum::Router::new().route("/token", post(token)).with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/token", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (shared, url)
}

async fn node(redis: &RedisServer, name: &str) -> Gateway {
    let url = redis.url();
    let env = [
        ("REDIS_URL", url.as_str()),
        ("CONNECTORS_NODE_ID", name),
        ("CONNECTORS_CLUSTER_LISTEN", "127.0.0.1:0"),
        ("CONNECTORS_CLUSTER_COOKIE", COOKIE),
        ("CONNECTORS_MASTER_KEY", MASTER_KEY),
    ];
    Gateway::start(CONFIG, &env).await
}

async fn credential(gateway: &Gateway, tenant: &str) -> Value {
    let listed = gateway.admin(Method::GET, &format!("/tenants/{tenant}/oauth"), None).await.json();
    listed["integrations"].as_array().and_then(|all| all.first()).cloned().unwrap_or(Value::Null)
}

/// Two nodes in one view: the one that stays, the one that will drain.
async fn two_nodes(redis: &RedisServer) -> (Gateway, Gateway) {
    let stays = node(redis, "node-0").await;
    let leaves = node(redis, "node-1").await;
    for gateway in [&stays, &leaves] {
        gateway.wait_ready(Duration::from_secs(20)).await;
    }
    eventually("both nodes in one view", Duration::from_secs(15), || async {
        let view = stays.admin(Method::GET, "/cluster", None).await.json();
        let owned = view["shards"]["owned"].as_u64().unwrap_or(0);
        if view["nodes"].as_array().map_or(0, Vec::len) == 2 && owned > 0 && owned < 1024 {
            Ok(())
        } else {
            Err(view.to_string())
        }
    })
    .await;
    (stays, leaves)
}

/// A tenant id the draining node owns.
fn owned_by_the_leaver(prefix: &str) -> String {
    let placement = ShardMap::new(1, [NodeId::from("node-0"), NodeId::from("node-1")]);
    (0..)
        .map(|i| format!("{prefix}-{i}"))
        .find(|id| placement.owner_of(&TenantId::parse(id).unwrap()) == Some(&NodeId::from("node-1")))
        .unwrap()
}

async fn handed_over(gateway: &Gateway) -> f64 {
    metric(&gateway.metrics_text().await, "connectors_tenant_hand_offs_total", &[("way", "received")]).unwrap_or(0.0)
}

#[tokio::test]
async fn the_rate_window_and_the_usage_continue_exactly_on_the_new_owner() {
    ensure_minute_room(20).await;
    let redis = RedisServer::start_persistent();
    let (stays, mut leaves) = two_nodes(&redis).await;
    let tenant = owned_by_the_leaver("strict");
    let key = stays.create_limited(&tenant, 10).await;
    for _ in 0..6 {
        leaves.tenant_get(Some(&tenant), Some(&key)).await.expect(200);
    }
    let status = leaves.stop_graceful().await;
    assert_eq!(status.code(), Some(0), "stderr:\n{}", leaves.stderr_text());
    assert_eq!(
        handed_over(&stays).await,
        1.0,
        "the tenant's state came over the link; leaver:\n{}\nstays:\n{}",
        leaves.stderr_text(),
        stays.stderr_text()
    );

    let mut admitted = 0;
    for _ in 0..8 {
        let response = stays.tenant_get(Some(&tenant), Some(&key)).await;
        match response.status {
            200 => admitted += 1,
            429 => {}
            other => panic!("{other} {}", response.text),
        }
    }
    assert_eq!(admitted, 4, "10 a minute, 6 admitted by the old owner");
    stays.wait_usage_api_calls(&tenant, 10).await;
}

#[tokio::test]
async fn a_refresh_in_flight_during_a_hand_off_ends_with_the_rotated_token_stored() {
    let redis = RedisServer::start_persistent();
    let (provider, endpoint) = provider().await;
    let (stays, mut leaves) = two_nodes(&redis).await;
    let tenant = owned_by_the_leaver("refreshing");
    stays.create_tenant(json!({"id": tenant, "name": "Refreshing"})).await;
    // Due in one second (refreshes start 300 s before expiry).
    let expires = Utc::now() + chrono::Duration::seconds(301);
    let stored = json!({
        "accessToken": "at-1-initial-secret",
        "refreshToken": "rt-1-initial-secret",
        "expiresAt": expires.to_rfc3339(),
        "tokenEndpoint": endpoint,
        "clientId": "gateway-client",
    });
    stays.admin(Method::PUT, &format!("/tenants/{tenant}/oauth/github"), Some(stored)).await.expect(200);

    eventually("the refresh to reach the provider", Duration::from_secs(15), || async {
        let seen = provider.lock().unwrap().seen.len();
        if seen == 1 { Ok(()) } else { Err(format!("{seen} calls")) }
    })
    .await;
    // The provider is still thinking: the owner drains now.
    let status = leaves.stop_graceful().await;
    assert_eq!(status.code(), Some(0), "node-1 exits 0 after its hand-off; stderr:\n{}", leaves.stderr_text());
    assert_eq!(
        handed_over(&stays).await,
        1.0,
        "the tenant's state came over the link; leaver:\n{}\nstays:\n{}",
        leaves.stderr_text(),
        stays.stderr_text()
    );

    let refreshed = eventually("the credential served by node-0, refreshed", Duration::from_secs(15), || async {
        let credential = credential(&stays, &tenant).await;
        if credential["status"] == "active" && credential["lastRefreshAt"].is_string() {
            Ok(credential)
        } else {
            Err(credential.to_string())
        }
    })
    .await;
    assert_ne!(refreshed["status"], "needs_reauth", "{refreshed}");
    let seen = provider.lock().unwrap().seen.clone();
    assert_eq!(seen, ["rt-1-initial-secret"], "the refresh token went out once");
    // node-0 now owns the tenant and holds the rotated token: its next refresh would send it.
    let view = stays.admin(Method::GET, "/cluster", None).await.json();
    assert_eq!(view["shards"]["owned"], 1024, "{view}");
}

/// A node paused past its lease may resume holding the actor of a tenant another node serves
/// now, and mark the tenant's credential `Refreshing` just before that owner's refresh comes
/// due. The owner must not send the refresh token a second time: it finds the credential as
/// the other process left it and follows it (`needs_reauth`), and the provider sees nothing.
#[tokio::test]
async fn a_refresh_another_process_started_is_never_sent_again() {
    use connectors::backends::redis_secret_store::RedisSecretStore;
    use connectors::backends::sealed_secrets::MasterKey;
    use connectors_actors::secret_store::{CredentialStatus, OAuthCredential, SecretStore};

    let redis = RedisServer::start_persistent();
    let (provider, endpoint) = provider().await;
    let owner = node(&redis, "node-0").await;
    owner.wait_ready(Duration::from_secs(20)).await;
    owner.create_tenant(json!({"id": "paused-twin", "name": "Paused twin"})).await;
    // Due in four seconds (refreshes start 300 s before expiry).
    let expires = Utc::now() + chrono::Duration::seconds(304);
    let stored = json!({
        "accessToken": "at-1-initial-secret",
        "refreshToken": "rt-1-initial-secret",
        "expiresAt": expires.to_rfc3339(),
        "tokenEndpoint": endpoint,
        "clientId": "gateway-client",
    });
    owner.admin(Method::PUT, "/tenants/paused-twin/oauth/github", Some(stored)).await.expect(200);

    // The resumed process: the same secret store, the same master key.
    let master = MasterKey::from_env_value(MASTER_KEY).unwrap();
    let secrets = RedisSecretStore::connect(&redis.url(), "connectors:", master).await.unwrap();
    let tenant = TenantId::parse("paused-twin").unwrap();
    let read = secrets.get(&tenant, "github").await.unwrap().expect("the credential is stored");
    let marked = OAuthCredential { status: CredentialStatus::Refreshing, ..read.clone() };
    assert!(secrets.replace(&tenant, "github", &read, &marked).await.unwrap());

    let followed = eventually("the owner to follow the stored refresh", Duration::from_secs(15), || async {
        let credential = credential(&owner, "paused-twin").await;
        if credential["status"] == "needs_reauth" { Ok(credential) } else { Err(credential.to_string()) }
    })
    .await;
    assert!(followed["lastRefreshAt"].is_null(), "{followed}");
    assert_eq!(provider.lock().unwrap().seen, Vec::<String>::new(), "the refresh token was sent");
}

/// While the owner's refresh is out, another process (one that resumed after losing the tenant)
/// writes its own `Refreshing`. When the owner's attempt then fails transiently, it must not turn
/// that `Refreshing` back to `Active` (its retry would send the token again): it leaves it, and
/// at its retry follows it to `needs_reauth`. The provider sees the token once.
#[tokio::test]
async fn a_refresh_another_process_marked_is_never_turned_back_to_active() {
    use connectors::backends::redis_secret_store::RedisSecretStore;
    use connectors::backends::sealed_secrets::MasterKey;
    use connectors_actors::secret_store::SecretStore;

    let redis = RedisServer::start_persistent();
    let (provider, endpoint) = provider().await;
    provider.lock().unwrap().unavailable = true;
    let owner = node(&redis, "node-0").await;
    owner.wait_ready(Duration::from_secs(20)).await;
    owner.create_tenant(json!({"id": "twice-marked", "name": "Twice marked"})).await;
    let expires = Utc::now() + chrono::Duration::seconds(301);
    let stored = json!({
        "accessToken": "at-1-initial-secret",
        "refreshToken": "rt-1-initial-secret",
        "expiresAt": expires.to_rfc3339(),
        "tokenEndpoint": endpoint,
        "clientId": "gateway-client",
    });
    owner.admin(Method::PUT, "/tenants/twice-marked/oauth/github", Some(stored)).await.expect(200);
    eventually("the owner's refresh to reach the provider", Duration::from_secs(15), || async {
        let seen = provider.lock().unwrap().seen.len();
        if seen == 1 { Ok(()) } else { Err(format!("{seen} calls")) }
    })
    .await;

    // The other process marks the credential as its own while the provider thinks.
    let master = MasterKey::from_env_value(MASTER_KEY).unwrap();
    let secrets = RedisSecretStore::connect(&redis.url(), "connectors:", master).await.unwrap();
    let tenant = TenantId::parse("twice-marked").unwrap();
    let read = secrets.get(&tenant, "github").await.unwrap().expect("the credential is stored");
    assert_eq!(read.status, connectors_actors::secret_store::CredentialStatus::Refreshing);
    let theirs = connectors_actors::secret_store::OAuthCredential { last_refresh_at: Some(Utc::now()), ..read.clone() };
    assert!(secrets.replace(&tenant, "github", &read, &theirs).await.unwrap());

    let followed = eventually("the owner to follow the other's refresh", Duration::from_secs(15), || async {
        let credential = credential(&owner, "twice-marked").await;
        if credential["status"] == "needs_reauth" { Ok(credential) } else { Err(credential.to_string()) }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(provider.lock().unwrap().seen, ["rt-1-initial-secret"], "the refresh token went out again: {followed}");
}

/// A node paused past its lease may resume holding the actor of a tenant whose custom servers
/// another node changed meanwhile. Its next write of the records must not undo that node's work:
/// here the other node deleted server `orphan` (acknowledged to the tenant there), and this
/// node's retries of the server's tool discovery would write it back. It finds the entry changed
/// since it read it, reloads what is stored, and the server stays deleted.
#[tokio::test]
async fn a_server_another_process_deleted_is_never_written_back() {
    use connectors::backends::redis_store::RedisStore;
    use connectors_actors::store::Store;

    let redis = RedisServer::start_persistent();
    let owner = node(&redis, "node-0").await;
    owner.wait_ready(Duration::from_secs(20)).await;
    let (_, key) = owner.create_tenant(json!({"id": "twin-servers", "name": "Twin servers", "plan": "pro"})).await;
    // Nothing listens there: every discovery fails, is written down, and is retried.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let body =
        json!({"name": "orphan", "category": "x", "source": {"type": "http", "url": format!("http://{closed}/mcp")}});
    let servers =
        || owner.request(Method::POST, "/api/v1/mcp/servers").header("X-Tenant-ID", "twin-servers").bearer_auth(&key);
    let created = common::send(servers().json(&body)).await;
    assert_eq!(created.status, 202, "{}", created.text);

    // The other process: the same store.
    let store = RedisStore::connect(&redis.url(), "connectors:").await.unwrap();
    let collection = "servers:twin-servers";
    eventually("a failed discovery to be written", Duration::from_secs(10), || async {
        let entries = store.entries(collection).await.unwrap();
        let record: Option<Value> =
            entries.iter().find(|(name, _)| name == "orphan").map(|(_, bytes)| serde_json::from_slice(bytes).unwrap());
        match record {
            Some(record) if !record["error"].is_null() => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert!(store.delete_entry(collection, "orphan").await.unwrap());

    let get = || {
        owner.request(Method::GET, "/api/v1/mcp/servers/orphan").header("X-Tenant-ID", "twin-servers").bearer_auth(&key)
    };
    eventually("the node to reload the deleted server", Duration::from_secs(20), || async {
        let response = common::send(get()).await;
        if response.status == 404 { Ok(()) } else { Err(format!("{} {}", response.status, response.text)) }
    })
    .await;
    // Its retries are over: the store keeps the deletion.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let entries = store.entries(collection).await.unwrap();
    assert!(entries.iter().all(|(name, _)| name != "orphan"), "written back: {entries:?}");
}
