//! End-to-end tests of TLS on the links between nodes: two real `connectors` nodes whose link
//! runs through a recording TCP proxy, and a node whose certificate another CA signed.

#[path = "common/cluster.rs"]
mod cluster_common;
mod common;
#[path = "common/redis_server.rs"]
mod redis_server;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cluster_common::{CLUSTER_CONFIG, COOKIE, MASTER_KEY, start_node_configured, wait_converged};
use common::{Gateway, eventually, free_port};
use connectors_actors::tenant::TenantId;
use connectors_cluster::shard_map::{NodeId, ShardMap};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use redis_server::RedisServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A tenant name that must never be readable on the wire between nodes.
const CANARY: &str = "acme-plaintext-canary-5b1e";

/// OAuth secrets an admin stores through a node that does not own the tenant: never on the link,
/// TLS or not (the node stores them itself; the owner reads them from the secret store).
const ACCESS_CANARY: &str = "at-link-canary-93c1";
const REFRESH_CANARY: &str = "rt-link-canary-93c1";

/// The name every node certificate carries (the gateway's default `cluster.tls.serverName`).
const SERVER_NAME: &str = "connectors-cluster";

#[tokio::test]
async fn with_tls_requests_cross_the_link_and_no_tenant_name_is_readable_on_it() {
    let pki = Pki::new("cluster CA");
    let wire = run_across_a_recorded_link(Some(&pki)).await;
    assert!(!wire.is_empty(), "the link between the nodes ran through the recording proxy");
    assert!(!wire.windows(CANARY.len()).any(|w| w == CANARY.as_bytes()), "the tenant's name crossed the link in clear");
}

#[tokio::test]
async fn without_tls_the_same_requests_show_the_tenant_name_on_the_link() {
    let wire = run_across_a_recorded_link(None).await;
    let carried = |text: &str| wire.windows(text.len()).any(|w| w == text.as_bytes());
    assert!(carried(CANARY), "the recording saw the forwarded request");
    assert!(!carried(ACCESS_CANARY) && !carried(REFRESH_CANARY), "an OAuth secret crossed the link");
}

#[tokio::test]
async fn a_node_whose_certificate_another_ca_signed_is_never_linked() {
    let pki = Pki::new("cluster CA");
    let stranger_pki = Pki::new("another CA");
    let redis = RedisServer::start();
    let a = start_tls_node(&redis, "node-a", &pki, &[]).await;
    let b = start_tls_node(&redis, "node-b", &pki, &[]).await;
    wait_converged(&[&a, &b], 2, Duration::from_secs(20)).await;
    // Owned by node-a whether node-c is in the view or not.
    let tenant = tenant_owned_by("foreign-ca", "node-a", &["node-a", "node-b", "node-c"]);
    let key = a.create_limited(&tenant, 1000).await;

    let c = start_tls_node(&redis, "node-c", &stranger_pki, &[]).await;
    // node-a and node-b dial node-c (the smaller id dials) and refuse its certificate.
    for node in [&a, &b] {
        eventually("the TLS refusal of node-c", Duration::from_secs(20), || async {
            let log = node.stderr_text();
            log.lines()
                .any(|line| line.contains("TLS handshake failed") && line.contains("node-c"))
                .then_some(())
                .ok_or_else(|| "no refusal logged yet".to_string())
        })
        .await;
    }
    eventually("node-c to see the view", Duration::from_secs(20), || async {
        let view = c.admin(reqwest::Method::GET, "/cluster", None).await.json();
        let size = view["nodes"].as_array().map_or(0, Vec::len);
        if size == 3 { Ok(()) } else { Err(format!("node-c sees {size} nodes")) }
    })
    .await;
    let through_c = c.tenant_get(Some(&tenant), Some(&key)).await;
    assert_eq!(through_c.status, 503, "node-c has no link to node-a to forward on: {}", through_c.text);
    for node in [&a, &b] {
        let log = node.stderr_text();
        assert!(
            !log.lines().any(|line| line.contains("cluster link up") && line.contains("node-c")),
            "a link to node-c came up:\n{log}"
        );
    }
    a.tenant_get(Some(&tenant), Some(&key)).await.expect(200);
}

/// Connections to the cluster port that never start their TLS handshake do not keep the node
/// from accepting its peers' links (each handshake has its own task and deadline).
#[tokio::test]
async fn connections_that_never_handshake_do_not_block_the_cluster_port() {
    let pki = Pki::new("cluster CA");
    let redis = RedisServer::start();
    let b_listen = format!("127.0.0.1:{}", free_port());
    let b = start_tls_node(&redis, "node-b", &pki, &[("CONNECTORS_CLUSTER_LISTEN", &b_listen)]).await;
    // Silent connections, open for the whole test, made before node-a first dials node-b.
    let _silent: Vec<std::net::TcpStream> =
        (0..3).map(|_| std::net::TcpStream::connect(&b_listen).expect("the cluster port accepts")).collect();
    let a = start_tls_node(&redis, "node-a", &pki, &[]).await;
    wait_converged(&[&a, &b], 2, Duration::from_secs(20)).await;
    let tenant = tenant_owned_by("stalled", "node-b", &["node-a", "node-b"]);
    let key = a.create_limited(&tenant, 1000).await;
    eventually("a tenant of node-b served through node-a", Duration::from_secs(20), || async {
        let response = a.tenant_get(Some(&tenant), Some(&key)).await;
        if response.status == 200 { Ok(()) } else { Err(format!("{}: {}", response.status, response.text)) }
    })
    .await;
}

/// Starts node-a and node-b (TLS with `pki` or none) where node-a reaches node-b only through a
/// proxy recording both directions, creates the canary tenant (owned by node-b) through node-a
/// and serves it through node-a; returns every byte the proxy carried.
async fn run_across_a_recorded_link(pki: Option<&Pki>) -> Vec<u8> {
    let redis = RedisServer::start();
    let b_listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let recorder = Recorder::start(b_listen).await;
    let proxy = recorder.addr.to_string();
    let b_env = [("CONNECTORS_CLUSTER_LISTEN", b_listen.to_string()), ("CONNECTORS_CLUSTER_ADVERTISE", proxy)];
    let b_env: Vec<(&str, &str)> = b_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (a, b) = match pki {
        Some(pki) => {
            (start_tls_node(&redis, "node-a", pki, &[]).await, start_tls_node(&redis, "node-b", pki, &b_env).await)
        }
        None => (start_plain_node(&redis, "node-a", &[]).await, start_plain_node(&redis, "node-b", &b_env).await),
    };
    wait_converged(&[&a, &b], 2, Duration::from_secs(20)).await;
    let tenant = tenant_owned_by(CANARY, "node-b", &["node-a", "node-b"]);
    let key = a.create_limited(&tenant, 1000).await;
    eventually("the tenant served through the node that does not own it", Duration::from_secs(20), || async {
        let response = a.tenant_get(Some(&tenant), Some(&key)).await;
        if response.status == 200 { Ok(()) } else { Err(format!("{}: {}", response.status, response.text)) }
    })
    .await;
    b.tenant_get(Some(&tenant), Some(&key)).await.expect(200);
    // An OAuth credential stored through node-a reaches its owner's refresh schedule without its
    // secrets crossing the link.
    let credential = serde_json::json!({
        "accessToken": ACCESS_CANARY,
        "refreshToken": REFRESH_CANARY,
        "expiresAt": "2099-01-01T00:00:00Z",
        "tokenEndpoint": "https://idp.example.com/token",
    });
    a.admin(reqwest::Method::PUT, &format!("/tenants/{tenant}/oauth/github"), Some(credential)).await.expect(200);
    let listed = b.admin(reqwest::Method::GET, &format!("/tenants/{tenant}/oauth"), None).await;
    listed.expect(200);
    assert!(listed.text.contains("github"), "{}", listed.text);
    recorder.bytes()
}

/// `prefix` or `prefix-{i}`, the first that `owner` owns among `nodes`.
fn tenant_owned_by(prefix: &str, owner: &str, nodes: &[&str]) -> String {
    let map = ShardMap::new(1, nodes.iter().map(|n| NodeId::from(*n)));
    std::iter::once(prefix.to_string())
        .chain((0..).map(|i| format!("{prefix}-{i}")))
        .find(|id| map.owner_of(&TenantId::parse(id).unwrap()) == Some(&NodeId::from(owner)))
        .unwrap()
}

async fn start_tls_node(redis: &RedisServer, name: &str, pki: &Pki, env: &[(&str, &str)]) -> Gateway {
    let files = pki.node_files(name);
    let config = format!(
        "{CLUSTER_CONFIG}  tls:\n    certFile: {}\n    keyFile: {}\n    caFile: {}\n",
        files.cert.display(),
        files.key.display(),
        files.ca.display()
    );
    start_node_configured(&redis.url(), name, COOKIE, &config, env).await
}

async fn start_plain_node(redis: &RedisServer, name: &str, env: &[(&str, &str)]) -> Gateway {
    start_node_configured(&redis.url(), name, COOKIE, CLUSTER_CONFIG, env).await
}

/// A CA made for the test, and the node certificates it signs, as PEM files.
struct Pki {
    dir: tempfile::TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
}

struct NodeFiles {
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        Pki { dir, ca }
    }

    /// A certificate for `node` with the cluster's server name, for both ends of a link.
    fn node_files(&self, node: &str) -> NodeFiles {
        let usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(node, SERVER_NAME, usages)
    }

    /// A server certificate for `address` (an IP address SAN), with its key and the CA.
    fn server_files(&self, name: &str, address: &str) -> NodeFiles {
        self.issue(name, address, vec![ExtendedKeyUsagePurpose::ServerAuth])
    }

    /// A certificate named `name` for `san`, signed by the CA, written with its key.
    fn issue(&self, name: &str, san: &str, usages: Vec<ExtendedKeyUsagePurpose>) -> NodeFiles {
        let mut params = CertificateParams::new(vec![san.to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = usages;
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        let path = |file: &str| self.dir.path().join(format!("{name}-{file}"));
        std::fs::write(path("cert.pem"), cert.pem()).unwrap();
        std::fs::write(path("key.pem"), key.serialize_pem()).unwrap();
        NodeFiles { cert: path("cert.pem"), key: path("key.pem"), ca: self.dir.path().join("ca.pem") }
    }
}

/// The store can be a Redis that speaks only TLS (`rediss://`, as managed Redis services do),
/// trusted through the operator's CA in `SSL_CERT_FILE`; a Redis the gateway cannot trust stops
/// start-up with the reason.
#[tokio::test]
async fn the_store_can_be_a_redis_that_speaks_only_tls() {
    let pki = Pki::new("redis CA");
    let files = pki.server_files("redis", "127.0.0.1");
    let ca = files.ca.to_str().unwrap().to_string();
    let redis = RedisServer::start_tls(files.cert, files.key, files.ca);
    let url = redis.url();
    assert!(url.starts_with("rediss://"), "{url}");

    let gateway = Gateway::start(
        CLUSTER_CONFIG,
        &[("REDIS_URL", &url), ("SSL_CERT_FILE", &ca), ("CONNECTORS_MASTER_KEY", MASTER_KEY)],
    )
    .await;
    let key = gateway.create_limited("secure", 100).await;
    gateway.tenant_get(Some("secure"), Some(&key)).await.expect(200);
    assert!(gateway.stderr_text().contains("store: Redis"), "{}", gateway.stderr_text());
    // Another process on the same Redis reads the record the first one wrote over TLS.
    let other = Gateway::start(
        CLUSTER_CONFIG,
        &[("REDIS_URL", &url), ("SSL_CERT_FILE", &ca), ("CONNECTORS_MASTER_KEY", MASTER_KEY)],
    )
    .await;
    other.tenant_get(Some("secure"), Some(&key)).await.expect(200);

    let untrusted = common::run_args_expecting_exit(
        &["--listen".into(), format!("127.0.0.1:{}", free_port())],
        &[("REDIS_URL", &url), ("CONNECTORS_MASTER_KEY", MASTER_KEY)],
        Duration::from_secs(20),
    )
    .await;
    assert!(untrusted.stderr.contains("cannot connect to Redis"), "{}", untrusted.stderr);
}

/// A TCP proxy to `target` that keeps every byte it carries, both ways.
struct Recorder {
    addr: SocketAddr,
    bytes: Arc<Mutex<Vec<u8>>>,
}

impl Recorder {
    async fn start(target: SocketAddr) -> Recorder {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let recorded = bytes.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = tokio::net::TcpStream::connect(target).await else { continue };
                let (in_read, in_write) = inbound.into_split();
                let (out_read, out_write) = outbound.into_split();
                tokio::spawn(carry(in_read, out_write, recorded.clone()));
                tokio::spawn(carry(out_read, in_write, recorded.clone()));
            }
        });
        Recorder { addr, bytes }
    }

    fn bytes(&self) -> Vec<u8> {
        self.bytes.lock().unwrap().clone()
    }
}

/// Copies one direction, recording it, until either side closes.
async fn carry(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    recorded: Arc<Mutex<Vec<u8>>>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = from.read(&mut buf).await.unwrap_or(0);
        if n == 0 {
            let _ = to.shutdown().await;
            return;
        }
        recorded.lock().unwrap().extend_from_slice(&buf[..n]);
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
