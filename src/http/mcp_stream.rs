//! A session's SSE stream (`GET /mcp`): what the server tells the client unasked, which is
//! `notifications/tools/list_changed` when the tenant's tools change after the session last
//! listed them.
//!
//! The stream holds no state of its own. Every message is first logged in the session's event
//! log by the tenant's actor, which gives it its event id, then sent; a client that lost the
//! stream (its node restarted, say) opens it again on any node with `Last-Event-ID` and gets
//! what it missed from the log, then the live stream. The stream checks the session every
//! [`POLL`] (which also keeps it alive) and ends when the session does, or when its node drains
//! (so that a restart is not held up by open streams).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use connectors_actors::mcp_sessions::SessionError;
use connectors_actors::tenant::TenantId;
use connectors_actors::tenant_actor::TenantError;
use connectors_actors::tenant_mcp_sessions::{McpSessionAnswer, McpSessionCall};
use serde_json::Value;
use tokio::sync::mpsc;

use super::error::ApiError;
use super::mcp::{Refusal, session_call};
use super::mcp_methods::catalog_fingerprint;
use super::mcp_rpc::{self, INVALID_REQUEST, RpcError};
use crate::app::Gateway;

/// How often a stream checks its session and the tenant's tools.
const POLL: Duration = Duration::from_secs(1);
/// A comment this often keeps proxies from closing an idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// The stream of a session's GET, in its event log.
const GET_STREAM: &str = "get";
/// How soon a client should reconnect after losing the stream (SSE `retry`).
const RETRY_MILLIS: u64 = 500;

fn event(id: u64, message: &str) -> Bytes {
    Bytes::from(format!("id: {id}\nevent: message\ndata: {message}\n\n"))
}

/// Opens the stream of `session`: first what the log holds after `last_event` (when given),
/// then live messages.
pub async fn open(
    gateway: Arc<Gateway>,
    tenant: TenantId,
    session: String,
    last_event: Option<String>,
) -> Result<Body, Refusal> {
    let mut first = vec![Bytes::from(format!("retry: {RETRY_MILLIS}\n\n"))];
    match last_event {
        None => {
            session_call(&gateway, &tenant, McpSessionCall::Touch { id: session.clone() }, &Value::Null).await?;
        }
        Some(text) => {
            let after = text.parse::<u64>().map_err(|_| {
                RpcError::new(
                    StatusCode::BAD_REQUEST,
                    Value::Null,
                    INVALID_REQUEST,
                    "Last-Event-ID is not an event of this server",
                )
            })?;
            let replay = McpSessionCall::Replay { id: session.clone(), after };
            match gateway.router.mcp_session(&tenant, replay).await.map_err(ApiError::from)? {
                Ok(McpSessionAnswer::Replayed(replay)) => {
                    first.extend(replay.events.iter().map(|e| event(e.id, &e.message)));
                }
                Ok(_) => {}
                // An event no longer (or never) in the log: the stream starts afresh; what the
                // client missed of the tools is sent again below, since it is derived state.
                Err(TenantError::McpSession(SessionError::UnknownEvent(_))) => {
                    session_call(&gateway, &tenant, McpSessionCall::Touch { id: session.clone() }, &Value::Null)
                        .await?;
                }
                Err(TenantError::McpSession(SessionError::NotFound)) => {
                    return Err(RpcError::new(
                        StatusCode::NOT_FOUND,
                        Value::Null,
                        mcp_rpc::SESSION_NOT_FOUND,
                        "Session not found",
                    )
                    .into());
                }
                Err(other) => return Err(super::admin::tenant_error(other).into()),
            }
        }
    }
    let (sender, receiver) = mpsc::channel::<Bytes>(16);
    tokio::spawn(run(gateway, tenant, session, first, sender));
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|bytes| (Ok::<_, Infallible>(bytes), receiver))
    });
    Ok(Body::from_stream(stream))
}

/// Sends `first`, then polls until the client goes away or the session ends.
async fn run(gateway: Arc<Gateway>, tenant: TenantId, session: String, first: Vec<Bytes>, sender: mpsc::Sender<Bytes>) {
    for bytes in first {
        if sender.send(bytes).await.is_err() {
            return;
        }
    }
    let mut since_sent = Duration::ZERO;
    loop {
        tokio::select! {
            () = sender.closed() => return,
            () = tokio::time::sleep(POLL) => {}
        }
        since_sent += POLL;
        if gateway.cluster.as_ref().is_some_and(|cluster| cluster.is_draining()) {
            // The node is on its way out: the client reconnects elsewhere, with Last-Event-ID.
            return;
        }
        let touched =
            session_call(&gateway, &tenant, McpSessionCall::Touch { id: session.clone() }, &Value::Null).await;
        let view = match touched {
            Ok(McpSessionAnswer::Session(view)) => view,
            Err(Refusal::Rpc(error)) if error.code == mcp_rpc::SESSION_NOT_FOUND => return,
            // The owner is moving or busy: try again at the next poll.
            _ => continue,
        };
        let fingerprint = catalog_fingerprint(&gateway.selector.visible_tools(&tenant, None));
        if view.catalog_seen.as_ref().is_some_and(|seen| *seen != fingerprint) {
            let message = mcp_rpc::notification("notifications/tools/list_changed").to_string();
            let record =
                McpSessionCall::Record { id: session.clone(), stream: GET_STREAM.into(), message: message.clone() };
            let Ok(McpSessionAnswer::Recorded { event_id }) =
                session_call(&gateway, &tenant, record, &Value::Null).await
            else {
                continue;
            };
            let seen = McpSessionCall::CatalogSeen { id: session.clone(), fingerprint };
            if session_call(&gateway, &tenant, seen, &Value::Null).await.is_err() {
                tracing::debug!(%tenant, "could not note the tools a session was told of; it may be told twice");
            }
            if sender.send(event(event_id, &message)).await.is_err() {
                return;
            }
            since_sent = Duration::ZERO;
        } else if since_sent >= KEEP_ALIVE {
            if sender.send(Bytes::from_static(b": keep-alive\n\n")).await.is_err() {
                return;
            }
            since_sent = Duration::ZERO;
        }
    }
}
