//! The edge middleware every request passes through: request id, tracing span, error body.
//!
//! One middleware instead of a stack of layers, because it sits on the hot path: it reuses the
//! client's `X-Request-Id` (when it is sane) or makes one, opens the request's span (request id
//! now, tenant id once known), renders the error body, and echoes the id on the response.
//!
//! The handler runs in a task of its own, so that a client that goes away mid-request does not
//! cut it in half: an admission its tenant's owner granted (and billed) is always audited, a
//! credential stored is always answered for in the log.

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use super::{REQUEST_ID, RequestId, error};

/// The longest client-chosen request id we echo; longer ones are replaced.
const MAX_REQUEST_ID: usize = 128;

pub async fn edge(mut request: Request, next: Next) -> Response {
    let client_id = request
        .headers()
        .get(&REQUEST_ID)
        .filter(|v| !v.is_empty() && v.len() <= MAX_REQUEST_ID && v.to_str().is_ok())
        .cloned();
    let id = client_id.unwrap_or_else(|| {
        HeaderValue::try_from(uuid::Uuid::new_v4().to_string()).expect("a UUID is a valid header value")
    });
    request.extensions_mut().insert(RequestId(id.clone()));
    let id_text = id.to_str().unwrap_or_default();
    let span = tracing::info_span!(
        "request",
        method = request.method().as_str(),
        path = request.uri().path(),
        request_id = id_text,
        tenant_id = tracing::field::Empty,
    );
    let response = match tokio::spawn(next.run(request).instrument(span.clone())).await {
        Ok(response) => response,
        // Panics are caught inside (`CatchPanicLayer`); this is the runtime shutting down.
        Err(join) => {
            span.in_scope(|| tracing::error!(error = %join, "request task ended without an answer"));
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    };
    let status = response.status();
    let mut response = error::render(response, id_text);
    span.in_scope(|| {
        if status.is_server_error() {
            tracing::error!(%status, "request failed");
        } else {
            tracing::debug!(%status, "request done");
        }
    });
    response.headers_mut().insert(&REQUEST_ID, id);
    response
}
