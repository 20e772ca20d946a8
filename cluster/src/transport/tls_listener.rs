//! The cluster port when links use TLS: every connection's handshake runs in a task of its own
//! under a deadline, and only a finished one reaches the node server. (ractor_cluster's own
//! listener does the handshake inside its accept loop without one, so a peer that connected and
//! never spoke would stop the node from accepting any other link.)

use std::net::SocketAddr;
use std::time::Duration;

use ractor::ActorRef;
use ractor_cluster::{NetworkStream, NodeServerMessage};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// How long a connection may take to finish its TLS handshake.
pub(crate) const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(5);

/// Accepts links on `listener` until the node server stops.
pub(crate) async fn accept_links(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    node_server: ActorRef<NodeServerMessage>,
) {
    loop {
        let (stream, peer_addr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of descriptors and the like: wait a moment rather than spin.
                tracing::warn!(%error, "cluster listener: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if node_server.get_status() >= ractor::ActorStatus::Stopping {
            return;
        }
        tokio::spawn(handshake(stream, peer_addr, acceptor.clone(), node_server.clone()));
    }
}

async fn handshake(
    stream: tokio::net::TcpStream,
    peer_addr: SocketAddr,
    acceptor: TlsAcceptor,
    node_server: ActorRef<NodeServerMessage>,
) {
    let local_addr = match stream.set_nodelay(true).and_then(|()| stream.local_addr()) {
        Ok(local_addr) => local_addr,
        Err(error) => return tracing::debug!(%peer_addr, %error, "cluster connection closed before its handshake"),
    };
    let encrypted = match tokio::time::timeout(HANDSHAKE_DEADLINE, acceptor.accept(stream)).await {
        Ok(Ok(encrypted)) => encrypted,
        Ok(Err(error)) => return tracing::warn!(%peer_addr, %error, "cluster peer refused: TLS handshake failed"),
        Err(_) => {
            return tracing::warn!(%peer_addr, deadline = ?HANDSHAKE_DEADLINE, "cluster peer refused: no TLS handshake in time");
        }
    };
    let stream = Box::new(NetworkStream::TlsServer { peer_addr, local_addr, stream: encrypted });
    if let Err(error) = node_server.cast(NodeServerMessage::ConnectionOpened { stream, is_server: true }) {
        tracing::debug!(%peer_addr, %error, "the node server stopped; link dropped");
    }
}
