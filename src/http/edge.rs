//! The edge middleware every request passes through: request id, tracing span, error body.
//!
//! One middleware instead of a stack of layers, because it sits on the hot path: it reuses the
//! client's `X-Request-Id` (when it is sane) or makes one, opens the request's span (request id
//! now, tenant id once known), renders the error body, and echoes the id on the response.
//!
//! The handler runs to its end even when its client goes away mid-request ([`RunToCompletion`]):
//! an admission its tenant's owner granted (and billed) is always audited, a credential stored
//! is always answered for in the log.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use super::run_to_completion::RunToCompletion;
use super::{REQUEST_ID, RequestId, error};
use crate::log_filter::REQUEST_SPAN;

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
        REQUEST_SPAN,
        method = request.method().as_str(),
        path = request.uri().path(),
        request_id = id_text,
        tenant_id = tracing::field::Empty,
    );
    let response = RunToCompletion::new(next.run(request).instrument(span.clone())).await;
    let status = response.status();
    let mut response = error::render(response, id_text);
    span.in_scope(|| {
        if status.is_server_error() {
            // The span's fields are not in the line at the default level (`log_filter`).
            tracing::error!(%status, request_id = id_text, "request failed");
        } else {
            tracing::debug!(%status, "request done");
        }
    });
    response.headers_mut().insert(&REQUEST_ID, id);
    response
}
