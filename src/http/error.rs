//! The one place where failures become the API's error body.
//!
//! Handlers return [`ApiError`]; it becomes a response whose body is filled in by [`render`],
//! called from the edge middleware, which knows the request id. Responses that other layers
//! produce without our body (405, a body-limit 413, a caught panic) get one there too, so every
//! error a client sees has the shape `{"error", "code", "requestId", ...}`. Details of internal
//! failures go to the log, never to the client.

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use connectors_actors::secret_store::SecretError;
use connectors_actors::store::StoreError;
use connectors_cluster::router::{MOVING_RETRY_AFTER_SECS, RouteError};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// Boxed so that `Result<_, ApiError>` stays small on the request path.
#[derive(Debug, Clone)]
pub struct ApiError(Box<ErrorParts>);

#[derive(Debug, Clone)]
struct ErrorParts {
    status: StatusCode,
    code: &'static str,
    message: String,
    extra: Map<String, Value>,
    headers: HeaderMap,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self(Box::new(ErrorParts {
            status,
            code,
            message: message.into(),
            extra: Map::new(),
            headers: HeaderMap::new(),
        }))
    }

    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    pub fn code(&self) -> &'static str {
        self.0.code
    }

    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The extra fields of the body (`retryAfter`, `quota`, …).
    pub fn fields(&self) -> &Map<String, Value> {
        &self.0.extra
    }

    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "missing or invalid API key")
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    /// A backend (store, actor) that cannot answer now; the client may retry.
    pub fn unavailable(detail: impl std::fmt::Display) -> Self {
        tracing::warn!(%detail, "answering 503");
        let mut error = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the service is temporarily unavailable; retry shortly",
        );
        error.0.headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        error
    }

    /// Sets `Retry-After`.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
            self.0.headers.insert(header::RETRY_AFTER, value);
        }
        self
    }

    pub fn with_field(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.0.extra.insert(key.to_string(), value.into());
        self
    }

    pub fn with_headers(mut self, headers: HeaderMap) -> Self {
        self.0.headers.extend(headers);
        self
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(id) => Self::conflict(format!("tenant `{id}` already exists")),
            StoreError::NotFound(id) => Self::not_found(format!("tenant `{id}` not found")),
            other @ (StoreError::Backend(_) | StoreError::Corrupt(_) | StoreError::Changed(_)) => {
                Self::unavailable(other)
            }
        }
    }
}

impl From<RouteError> for ApiError {
    fn from(error: RouteError) -> Self {
        match error {
            RouteError::NotFound(id) => Self::not_found(format!("tenant `{id}` not found")),
            RouteError::Unavailable { reason, retry_after } => Self::unavailable(reason).retry_after(retry_after),
            RouteError::Unanswered { reason, .. } => Self::unavailable(reason).retry_after(MOVING_RETRY_AFTER_SECS),
            RouteError::Restarting { reason, retry_after } => {
                tracing::warn!(%reason, "answering 503");
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", reason).retry_after(retry_after)
            }
        }
    }
}

impl From<SecretError> for ApiError {
    fn from(error: SecretError) -> Self {
        match error {
            SecretError::Backend(_) => ApiError::unavailable(error),
            // Integrity failures are ours to investigate, not the client's to retry.
            SecretError::Tampered(_) | SecretError::WrongMasterKey(_) => {
                tracing::error!(%error, "secret store integrity failure");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
            }
        }
    }
}

/// The error body of every failure, as [`render`] writes it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// What went wrong, for people.
    pub error: String,
    /// What went wrong, for programs: `unauthorized`, `forbidden`, `tenant_mismatch`, `ip_not_allowed`,
    /// `tenant_suspended`, `quota_exceeded`, `feature_disabled`, `not_found`, `conflict`, `oauth_required`,
    /// `invalid_request`, `deployer_unavailable`, `payload_too_large`, `rate_limited`, `upstream_error`,
    /// `upstream_timeout`, `unavailable`, `recorder_shedding`, `internal`.
    pub code: String,
    /// The request's `X-Request-Id`.
    pub request_id: String,
    /// Fields some errors add: `retryAfter` (seconds, with 429), `quota`, `limit` and `used` (with
    /// `quota_exceeded`), `integration` (with `oauth_required`), `sourceType` (with `deployer_unavailable`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The body is rendered by [`render`], which knows the request id.
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = self.0.status.into_response();
        response.headers_mut().extend(self.0.headers.clone());
        response.extensions_mut().insert(self);
        response
    }
}

/// Fills in the error body of an error response (called by the edge middleware, which knows
/// the request id).
pub fn render(mut response: Response, request_id: &str) -> Response {
    let status = response.status();
    let error = match response.extensions_mut().remove::<ApiError>() {
        Some(error) => error,
        None if status.is_client_error() || status.is_server_error() => {
            let is_json = response
                .headers()
                .get(header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
            if is_json {
                return response;
            }
            from_status(status)
        }
        None => return response,
    };
    let error = *error.0;
    let body = ErrorBody {
        error: error.message,
        code: error.code.to_string(),
        request_id: request_id.to_string(),
        extra: error.extra,
    };
    let (parts, _) = response.into_parts();
    let mut rendered = (parts.status, Json(body)).into_response();
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rendered.headers_mut().append(name, value.clone());
        }
    }
    rendered
}

/// An error response produced outside our handlers.
fn from_status(status: StatusCode) -> ApiError {
    match status {
        StatusCode::NOT_FOUND => ApiError::not_found("no such route"),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::new(status, "invalid_request", "method not allowed on this route"),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(status, "payload_too_large", "request body too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(status, "invalid_request", "unsupported content type"),
        status if status.is_server_error() => ApiError::new(status, "internal", "internal error"),
        status => ApiError::new(status, "invalid_request", status.canonical_reason().unwrap_or("bad request")),
    }
}
