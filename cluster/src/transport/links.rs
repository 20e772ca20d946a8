//! `Links`: this node's connections to its peers over ractor_cluster, and what ractor_cluster
//! leaves to us: dialling the members of the view and re-dialling with backoff, a heartbeat that
//! detects dead links (ractor_cluster has no failure detector), deadlines on every request, and
//! a bound on the requests in flight to each peer (its queues are unbounded).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use ractor::rpc::CallResult;
use ractor::{Actor, ActorRef};
use ractor_cluster::node::NodeConnectionMode;
use ractor_cluster::node::NodeServerSessionInformation;
use ractor_cluster::{ClientConnectErr, IncomingEncryptionMode, NodeEventSubscription, NodeServer, NodeServerMessage};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;

use super::peer_health::{PeerHealth, PingVerdict};
use super::region::{RegionMsg, region_group};
use super::tls::LinkTls;
use super::wire::{
    self, AuditAnswer, AuditBatch, HandOffAnswer, HandOffBatch, ReleaseAnswer, ReleaseRequest, TenantAnswer,
    TenantRequest, WireError,
};
use crate::shard_map::NodeId;

#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// How long a request to a peer may take, answer included.
    pub deadline: Duration,
    /// Requests in flight to one peer at most; more are refused at once.
    pub max_in_flight: usize,
    /// How often links are checked: dialled when missing, pinged when present.
    pub heartbeat: Duration,
    /// Missed pings in a row after which a link is considered dead and dropped.
    pub missed_pings: u32,
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(2),
            max_in_flight: 4_096,
            heartbeat: Duration::from_millis(500),
            missed_pings: 3,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("no link to node `{0}` yet")]
    NotConnected(NodeId),
    #[error("node `{0}` did not answer in time")]
    Timeout(NodeId),
    #[error("too many requests in flight to node `{0}`")]
    Overloaded(NodeId),
    #[error("the link to node `{0}` broke")]
    Broken(NodeId),
    #[error("node `{node}` answered with {error}")]
    Wire { node: NodeId, error: WireError },
    #[error("cannot start the cluster listener on {addr}: {reason}")]
    Listen { addr: SocketAddr, reason: String },
}

struct Peer {
    cluster_addr: Mutex<String>,
    in_flight: Semaphore,
    region: Mutex<Option<ActorRef<RegionMsg>>>,
    health: Mutex<PeerHealth>,
}

pub struct Links {
    me: NodeId,
    /// Where peers reach this node (the port chosen by the system when 0 was asked for).
    listen: SocketAddr,
    node_server: ActorRef<NodeServerMessage>,
    /// `None`: links are plaintext.
    tls: Option<LinkTls>,
    peers: DashMap<NodeId, Arc<Peer>>,
    config: LinkConfig,
}

impl Links {
    /// Starts the cluster listener on `listen` (authenticating peers with `cookie`, and with
    /// their certificates when `tls` is given) and the task that keeps links up.
    pub async fn start(
        me: NodeId,
        listen: SocketAddr,
        cookie: String,
        tls: Option<LinkTls>,
        config: LinkConfig,
    ) -> Result<Arc<Self>, LinkError> {
        let listen_error = |reason: String| LinkError::Listen { addr: listen, reason };
        // Bind once ourselves so that a taken port is an error now, not a log line later, and
        // so that port 0 becomes a concrete port to tell the peers.
        let probe = std::net::TcpListener::bind(listen).map_err(|e| listen_error(e.to_string()))?;
        let listen = probe.local_addr().map_err(|e| listen_error(e.to_string()))?;
        // With TLS the cluster port is ours (handshakes under a deadline, see `tls_listener`) and
        // the node server listens on a loopback port of its own, also TLS only, that no peer is
        // told of.
        let (server_port, server_ip, own_listener) = match &tls {
            Some(_) => {
                probe.set_nonblocking(true).map_err(|e| listen_error(e.to_string()))?;
                let own = tokio::net::TcpListener::from_std(probe).map_err(|e| listen_error(e.to_string()))?;
                (0, std::net::IpAddr::from(std::net::Ipv4Addr::LOCALHOST), Some(own))
            }
            None => {
                drop(probe);
                (listen.port(), listen.ip(), None)
            }
        };
        let server = NodeServer::new(
            server_port,
            cookie,
            me.to_string(),
            listen.ip().to_string(),
            tls.as_ref().map(|tls| IncomingEncryptionMode::Tls(tls.acceptor.clone())),
            Some(NodeConnectionMode::Isolated),
        )
        .with_listen_addr(server_ip);
        let (node_server, _) = Actor::spawn(None, server, ()).await.map_err(|e| listen_error(e.to_string()))?;
        if let (Some(own), Some(tls)) = (own_listener, &tls) {
            tokio::spawn(super::tls_listener::accept_links(own, tls.acceptor.clone(), node_server.clone()));
        }
        // Fails only if the node server just spawned has stopped: no link would work either.
        node_server
            .cast(NodeServerMessage::SubscribeToEvents {
                id: "connectors.links".into(),
                subscription: Box::new(AuthWatch::default()),
            })
            .map_err(|e| listen_error(format!("the node server stopped at start: {e}")))?;
        let links = Arc::new(Self { me, listen, node_server, tls, peers: DashMap::new(), config });
        tokio::spawn(keep_links(Arc::downgrade(&links)));
        Ok(links)
    }

    /// How long a peer waits for this node's answer to its request.
    pub fn deadline(&self) -> Duration {
        self.config.deadline
    }

    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    /// The members of the current view besides this node, with their cluster addresses.
    pub fn sync(&self, members: &[(NodeId, String)]) {
        let wanted: HashSet<&NodeId> = members.iter().map(|(id, _)| id).filter(|id| **id != self.me).collect();
        self.peers.retain(|id, _| wanted.contains(id));
        for (id, addr) in members.iter().filter(|(id, _)| *id != self.me) {
            let peer = self.peers.entry(id.clone()).or_insert_with(|| {
                Arc::new(Peer {
                    cluster_addr: Mutex::new(addr.clone()),
                    in_flight: Semaphore::new(self.config.max_in_flight),
                    region: Mutex::new(None),
                    health: Mutex::new(PeerHealth::new(Instant::now())),
                })
            });
            let mut known = lock(&peer.cluster_addr);
            if *known != *addr {
                // A restarted node may listen elsewhere; whatever link we had is stale.
                *known = addr.clone();
                *lock(&peer.region) = None;
            }
        }
    }

    /// Whether there is a working link to every peer of the view.
    pub fn all_connected(&self) -> bool {
        self.peers.iter().all(|peer| lock(&peer.region).is_some())
    }

    pub async fn ask(&self, node: &NodeId, request: &TenantRequest) -> Result<TenantAnswer, LinkError> {
        self.request(node, request, RegionMsg::Ask).await
    }

    pub async fn release(&self, node: &NodeId, request: &ReleaseRequest) -> Result<ReleaseAnswer, LinkError> {
        self.request(node, request, RegionMsg::Release).await
    }

    pub async fn audit(&self, node: &NodeId, batch: &AuditBatch) -> Result<AuditAnswer, LinkError> {
        self.request(node, batch, RegionMsg::Audit).await
    }

    pub async fn hand_off(&self, node: &NodeId, batch: &HandOffBatch) -> Result<HandOffAnswer, LinkError> {
        self.request_encoded(node, wire::encode_hand_offs(batch), RegionMsg::HandOff).await
    }

    async fn request<Q, A>(
        &self,
        node: &NodeId,
        question: &Q,
        variant: fn(Vec<u8>, ractor::RpcReplyPort<Vec<u8>>) -> RegionMsg,
    ) -> Result<A, LinkError>
    where
        Q: Serialize,
        A: DeserializeOwned,
    {
        self.request_encoded(node, wire::encode(question), variant).await
    }

    async fn request_encoded<A: DeserializeOwned>(
        &self,
        node: &NodeId,
        payload: Vec<u8>,
        variant: fn(Vec<u8>, ractor::RpcReplyPort<Vec<u8>>) -> RegionMsg,
    ) -> Result<A, LinkError> {
        let peer = self.peers.get(node).map(|p| p.clone()).ok_or_else(|| LinkError::NotConnected(node.clone()))?;
        let region = self.region(node, &peer)?;
        let _permit = peer.in_flight.try_acquire().map_err(|_| LinkError::Overloaded(node.clone()))?;
        match region.call(|reply| variant(payload, reply), Some(self.config.deadline)).await {
            Ok(CallResult::Success(bytes)) => {
                wire::decode(&bytes).map_err(|error| LinkError::Wire { node: node.clone(), error })
            }
            // An undecodable message is dropped by ractor_cluster without a word: it looks
            // like a timeout, which is why every payload carries a version.
            Ok(CallResult::Timeout) => Err(LinkError::Timeout(node.clone())),
            Ok(CallResult::SenderError) | Err(_) => {
                *lock(&peer.region) = None;
                Err(LinkError::Broken(node.clone()))
            }
        }
    }

    fn region(&self, node: &NodeId, peer: &Peer) -> Result<ActorRef<RegionMsg>, LinkError> {
        let mut cached = lock(&peer.region);
        if let Some(region) = cached.as_ref() {
            return Ok(region.clone());
        }
        let found = ractor::pg::get_members(&region_group(node)).into_iter().find(|cell| !cell.get_id().is_local());
        let region: ActorRef<RegionMsg> = found.ok_or_else(|| LinkError::NotConnected(node.clone()))?.into();
        *cached = Some(region.clone());
        Ok(region)
    }

    /// One round of upkeep: dial missing links (the node with the smaller id dials, so two
    /// nodes never race to connect to each other), ping present ones, drop dead ones.
    async fn upkeep(&self) {
        let peers: Vec<(NodeId, Arc<Peer>)> = self.peers.iter().map(|p| (p.key().clone(), p.value().clone())).collect();
        for (node, peer) in peers {
            match self.region(&node, &peer) {
                Ok(region) => self.ping(&node, &peer, region).await,
                Err(_) if self.me < node => self.dial(&node, &peer).await,
                Err(_) => {}
            }
        }
    }

    async fn ping(&self, node: &NodeId, peer: &Peer, region: ActorRef<RegionMsg>) {
        let answered = matches!(
            region.call(|reply| RegionMsg::Ping(0, reply), Some(self.config.heartbeat)).await,
            Ok(CallResult::Success(_))
        );
        if lock(&peer.health).pinged(Instant::now(), answered, self.config.missed_pings) == PingVerdict::Dead {
            tracing::warn!(peer = %node, missed = self.config.missed_pings, "cluster link missed its heartbeats; dropping it");
            *lock(&peer.region) = None;
            self.close_sessions_with(node).await;
        }
    }

    async fn dial(&self, node: &NodeId, peer: &Peer) {
        if !lock(&peer.health).dial_due(Instant::now()) {
            return;
        }
        // A name is resolved here, at each dial: a restarted pod keeps its name, not its IP.
        let addr = lock(&peer.cluster_addr).clone();
        let dialled = match &self.tls {
            Some(tls) => {
                let (connector, name) = (tls.connector.clone(), tls.server_name.clone());
                ractor_cluster::client_connect_enc(&self.node_server, addr.as_str(), connector, name).await
            }
            None => ractor_cluster::client_connect(&self.node_server, addr.as_str()).await,
        };
        match dialled {
            Ok(()) => tracing::info!(peer = %node, %addr, "dialled cluster peer"),
            Err(ClientConnectErr::Encryption(error)) => {
                tracing::warn!(peer = %node, %addr, %error, "cluster peer refused: TLS handshake failed (is its certificate signed by the cluster CA?)");
            }
            Err(error) => tracing::debug!(peer = %node, %addr, %error, "cannot reach cluster peer yet"),
        }
    }

    async fn close_sessions_with(&self, node: &NodeId) {
        let sessions = self.node_server.call(NodeServerMessage::GetSessions, Some(self.config.heartbeat)).await;
        if let Ok(CallResult::Success(sessions)) = sessions {
            for session in sessions.values().filter(|s| session_peer(s).is_some_and(|name| name == node.as_str())) {
                session.actor.stop(Some("heartbeat lost".into()));
            }
        }
    }

    pub async fn shutdown(&self) {
        if let Err(error) = self.node_server.stop_and_wait(Some("shutdown".into()), Some(Duration::from_secs(2))).await
        {
            tracing::warn!(%error, "the cluster node server did not stop in time; its links close with the process");
        }
    }
}

async fn keep_links(links: std::sync::Weak<Links>) {
    loop {
        let Some(links) = links.upgrade() else { return };
        links.upkeep().await;
        let heartbeat = links.config.heartbeat;
        drop(links);
        tokio::time::sleep(heartbeat).await;
    }
}

/// A peer's node name from its session (ractor_cluster names are `name@host`).
fn session_peer(session: &NodeServerSessionInformation) -> Option<&str> {
    session.peer_name.as_ref().and_then(|peer| peer.name.split('@').next())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Logs connections that close before authenticating: almost always a peer with another cookie.
#[derive(Default)]
struct AuthWatch {
    pending: Mutex<HashSet<u64>>,
}

impl NodeEventSubscription for AuthWatch {
    fn node_session_opened(&self, session: NodeServerSessionInformation) {
        lock(&self.pending).insert(session.node_id);
    }

    fn node_session_disconnected(&self, session: NodeServerSessionInformation) {
        if lock(&self.pending).remove(&session.node_id) {
            tracing::warn!(
                peer_addr = %session.peer_addr,
                "cluster connection refused: the peer did not authenticate (is CONNECTORS_CLUSTER_COOKIE the same on every node?)"
            );
        } else {
            tracing::info!(peer = session_peer(&session).unwrap_or("?"), "cluster link closed");
        }
    }

    fn node_session_authenticated(&self, session: NodeServerSessionInformation) {
        lock(&self.pending).remove(&session.node_id);
        tracing::info!(peer = session_peer(&session).unwrap_or("?"), peer_addr = %session.peer_addr, "cluster link up");
    }
}
