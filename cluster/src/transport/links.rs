//! `Links`: this node's connections to its peers over ractor_cluster, and what ractor_cluster
//! leaves to us: dialling the members of the view and re-dialling with backoff, a heartbeat that
//! detects dead links (ractor_cluster has no failure detector), deadlines on every request, and
//! a bound on the requests in flight to each peer (its queues are unbounded). Tenant requests go
//! in batches per peer (see [`super::ask_batches`]) to peers that read them.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
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

use super::ask_batches::{AskCounts, AskQueue, Batching, MAX_BATCH, QueuedAsk};
use super::compact::{self, CompactRequest};
use super::late_answers::{LATE_WAIT, LateAnswer, Unanswered};
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
    link: Mutex<Option<Link>>,
    health: Mutex<PeerHealth>,
    asks: AskQueue,
}

/// A working link to a peer: its region, and whether it reads batches of requests.
#[derive(Clone)]
struct Link {
    region: ActorRef<RegionMsg>,
    batching: Batching,
}

impl Peer {
    fn drop_link(&self) {
        *lock(&self.link) = None;
    }
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
    ask_counts: Arc<AskCounts>,
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
        let links =
            Arc::new(Self { me, listen, node_server, tls, peers: DashMap::new(), config, ask_counts: Arc::default() });
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

    pub fn ask_counts(&self) -> &AskCounts {
        &self.ask_counts
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
                    link: Mutex::new(None),
                    health: Mutex::new(PeerHealth::new(Instant::now())),
                    asks: AskQueue::default(),
                })
            });
            let mut known = lock(&peer.cluster_addr);
            if *known != *addr {
                // A restarted node may listen elsewhere; whatever link we had is stale.
                *known = addr.clone();
                peer.drop_link();
            }
        }
    }

    /// Whether there is a working link to every peer of the view.
    pub fn all_connected(&self) -> bool {
        self.peers.iter().all(|peer| lock(&peer.link).is_some())
    }

    /// Asks the owner `node`: in the next batch to it, or alone to a peer that does not read
    /// batches.
    pub async fn ask(&self, node: &NodeId, request: TenantRequest) -> Result<TenantAnswer, Unanswered> {
        let peer = self.peer(node)?;
        let link = self.link(node, &peer)?;
        if link.batching != Batching::Yes {
            self.ask_counts.alone.fetch_add(1, Ordering::Relaxed);
            return Ok(self.request(node, &request, RegionMsg::Ask).await?);
        }
        let _permit = peer.in_flight.try_acquire().map_err(|_| LinkError::Overloaded(node.clone()))?;
        let (answer, answered) = tokio::sync::oneshot::channel();
        if peer.asks.push(QueuedAsk { request: CompactRequest::from(request), answer }) {
            let (node, counts, deadline) = (node.clone(), self.ask_counts.clone(), self.config.deadline);
            tokio::spawn(flush_asks(peer.clone(), node, link.region, deadline, counts));
        }
        // The flush answers every request it takes, if only with an error.
        answered.await.unwrap_or_else(|_| Err(LinkError::Broken(node.clone()).into()))
    }

    pub async fn release(&self, node: &NodeId, request: &ReleaseRequest) -> Result<ReleaseAnswer, LinkError> {
        self.request(node, request, RegionMsg::Release).await
    }

    pub async fn audit(&self, node: &NodeId, batch: &AuditBatch) -> Result<AuditAnswer, LinkError> {
        // A peer that reads compact batches of requests reads compact audit batches too.
        let compact =
            self.peer(node).and_then(|peer| self.link(node, &peer)).is_ok_and(|l| l.batching == Batching::Yes);
        let payload = if compact { compact::encode_audit(batch) } else { wire::encode(batch) };
        self.request_encoded(node, payload, RegionMsg::Audit).await
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
        let peer = self.peer(node)?;
        let link = self.link(node, &peer)?;
        let _permit = peer.in_flight.try_acquire().map_err(|_| LinkError::Overloaded(node.clone()))?;
        let bytes = call(&peer, node, &link.region, self.config.deadline, payload, variant).await?;
        wire::decode(&bytes).map_err(|error| LinkError::Wire { node: node.clone(), error })
    }

    fn peer(&self, node: &NodeId) -> Result<Arc<Peer>, LinkError> {
        self.peers.get(node).map(|p| p.clone()).ok_or_else(|| LinkError::NotConnected(node.clone()))
    }

    fn link(&self, node: &NodeId, peer: &Peer) -> Result<Link, LinkError> {
        let mut cached = lock(&peer.link);
        if let Some(link) = cached.as_ref() {
            return Ok(link.clone());
        }
        let found = ractor::pg::get_members(&region_group(node)).into_iter().find(|cell| !cell.get_id().is_local());
        let region: ActorRef<RegionMsg> = found.ok_or_else(|| LinkError::NotConnected(node.clone()))?.into();
        // A new link may lead to another version of the peer: asked again whether it reads batches.
        let link = Link { region, batching: Batching::Unknown };
        *cached = Some(link.clone());
        Ok(link)
    }

    /// One round of upkeep: dial missing links (the node with the smaller id dials, so two
    /// nodes never race to connect to each other), ping present ones, drop dead ones.
    async fn upkeep(&self) {
        let peers: Vec<(NodeId, Arc<Peer>)> = self.peers.iter().map(|p| (p.key().clone(), p.value().clone())).collect();
        for (node, peer) in peers {
            match self.link(&node, &peer) {
                Ok(link) => {
                    if link.batching == Batching::Unknown {
                        self.probe_batching(&node, &peer, &link);
                    }
                    self.ping(&node, &peer, link.region).await;
                }
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
            peer.drop_link();
            self.close_sessions_with(node).await;
        }
    }

    /// Asks a new link's peer, on a task of its own, whether it reads batches of requests.
    fn probe_batching(&self, node: &NodeId, peer: &Arc<Peer>, link: &Link) {
        set_batching(peer, &link.region, Batching::Probing);
        let (node, peer, region, deadline) = (node.clone(), peer.clone(), link.region.clone(), self.config.deadline);
        tokio::spawn(async move {
            let empty = compact::encode_batch(&[]);
            // A node that reads only JSON batches answers this one it cannot read with an empty
            // JSON list; one of a version before batches does not answer at all.
            let batching = match call(&peer, &node, &region, deadline, empty, RegionMsg::AskBatch).await {
                Ok(bytes)
                    if compact::compact_body(&bytes)
                        .is_some_and(|body| compact::decode_answers(body).is_ok_and(|a| a.is_empty())) =>
                {
                    tracing::debug!(peer = %node, "cluster peer reads compact batches of tenant requests");
                    Batching::Yes
                }
                Err(LinkError::Broken(_)) => Batching::Unknown,
                _ => {
                    tracing::info!(peer = %node, "cluster peer does not read compact batches of tenant requests (an older version?): asking it one request at a time");
                    Batching::No
                }
            };
            set_batching(&peer, &region, batching);
        });
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

/// Calls `region` of `peer`, which drops the link when it broke.
async fn call(
    peer: &Peer,
    node: &NodeId,
    region: &ActorRef<RegionMsg>,
    deadline: Duration,
    payload: Vec<u8>,
    variant: fn(Vec<u8>, ractor::RpcReplyPort<Vec<u8>>) -> RegionMsg,
) -> Result<Vec<u8>, LinkError> {
    // An undecodable message is dropped by ractor_cluster without a word: it looks like a
    // timeout, which is why every payload carries a version.
    tokio::time::timeout(deadline, answer(peer, node, region, payload, variant))
        .await
        .unwrap_or_else(|_| Err(LinkError::Timeout(node.clone())))
}

/// The peer's answer to one message, however long it takes.
async fn answer(
    peer: &Peer,
    node: &NodeId,
    region: &ActorRef<RegionMsg>,
    payload: Vec<u8>,
    variant: fn(Vec<u8>, ractor::RpcReplyPort<Vec<u8>>) -> RegionMsg,
) -> Result<Vec<u8>, LinkError> {
    match region.call(|reply| variant(payload, reply), None).await {
        Ok(CallResult::Success(bytes)) => Ok(bytes),
        Ok(CallResult::Timeout | CallResult::SenderError) | Err(_) => {
            peer.drop_link();
            Err(LinkError::Broken(node.clone()))
        }
    }
}

/// What the probe of the link to `region` found, unless that link was replaced meanwhile.
fn set_batching(peer: &Peer, region: &ActorRef<RegionMsg>, batching: Batching) {
    if let Some(link) = lock(&peer.link).as_mut().filter(|link| link.region.get_id() == region.get_id()) {
        link.batching = batching;
    }
}

/// Sends the requests queued for `peer`, after letting the tasks about to queue theirs do so.
async fn flush_asks(
    peer: Arc<Peer>,
    node: NodeId,
    region: ActorRef<RegionMsg>,
    deadline: Duration,
    counts: Arc<AskCounts>,
) {
    tokio::task::yield_now().await;
    let mut asks = peer.asks.take();
    while asks.len() > MAX_BATCH {
        let rest = asks.split_off(MAX_BATCH);
        let batch = send_batch(peer.clone(), node.clone(), region.clone(), deadline, counts.clone(), asks);
        tokio::spawn(batch);
        asks = rest;
    }
    send_batch(peer, node, region, deadline, counts, asks).await;
}

/// Sends one batch and hands each of its requests its answer, or the batch's error.
async fn send_batch(
    peer: Arc<Peer>,
    node: NodeId,
    region: ActorRef<RegionMsg>,
    deadline: Duration,
    counts: Arc<AskCounts>,
    asks: Vec<QueuedAsk>,
) {
    if asks.is_empty() {
        return;
    }
    counts.batches.fetch_add(1, Ordering::Relaxed);
    counts.batched.fetch_add(asks.len() as u64, Ordering::Relaxed);
    let (requests, asks): (Vec<CompactRequest>, Vec<_>) = asks.into_iter().map(|ask| (ask.request, ask.answer)).unzip();
    let payload = compact::encode_batch(&requests);
    let answered = answer(&peer, &node, &region, payload, RegionMsg::AskBatch);
    tokio::pin!(answered);
    let Ok(bytes) = tokio::time::timeout(deadline, &mut answered).await else {
        // The askers are told now; the owner may still answer, having counted some admissions.
        let late: Vec<_> = asks
            .into_iter()
            .map(|asker| {
                let (late, answer) = LateAnswer::channel().unzip();
                let _ = asker.send(Err(Unanswered { error: LinkError::Timeout(node.clone()), late: answer }));
                late
            })
            .collect();
        counts.timed_out.fetch_add(late.len() as u64, Ordering::Relaxed);
        let followed = late.iter().flatten().count();
        if followed < late.len() {
            tracing::warn!(%node, requests = late.len() - followed, "too many late answers awaited; not following these");
        }
        if followed == 0 {
            return;
        }
        if let Ok(Ok(answers)) =
            tokio::time::timeout(LATE_WAIT, answered).await.map(|bytes| batch_answers(&node, bytes, late.len()))
        {
            tracing::warn!(%node, requests = late.len(), "a batch of requests was answered after its deadline");
            counts.answered_late.fetch_add(late.len() as u64, Ordering::Relaxed);
            for (late, answer) in late.into_iter().zip(answers) {
                if let Some(late) = late {
                    let _ = late.send(answer);
                }
            }
        }
        return;
    };
    // A request whose asker stopped waiting has nobody to tell.
    match batch_answers(&node, bytes, asks.len()) {
        Ok(answers) => {
            for (asker, answer) in asks.into_iter().zip(answers) {
                let _ = asker.send(Ok(answer));
            }
        }
        Err(error) => {
            for asker in asks {
                let _ = asker.send(Err(error.clone().into()));
            }
        }
    }
}

/// The answers of a batch of `count` requests.
fn batch_answers(
    node: &NodeId,
    bytes: Result<Vec<u8>, LinkError>,
    count: usize,
) -> Result<Vec<TenantAnswer>, LinkError> {
    let bytes = bytes?;
    let wire_error = |error| LinkError::Wire { node: node.clone(), error };
    let body = compact::compact_body(&bytes)
        .ok_or_else(|| wire_error(wire::WireError::Undecodable("answers not in the compact form".into())))?;
    let answers = compact::decode_answers(body).map_err(wire_error)?;
    if answers.len() != count {
        let count = format!("{} answers to {count} requests", answers.len());
        return Err(wire_error(wire::WireError::Undecodable(count)));
    }
    Ok(answers)
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
