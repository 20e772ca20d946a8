//! What a call can fail with: the gateway's own error answer (`{error, code, requestId}`, with
//! the status and `Retry-After`), a transport failure, or an answer that is not the API's.

/// The gateway's error answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: u16,
    /// The machine code (`unauthorized`, `not_found`, `rate_limited`, ...).
    pub code: String,
    /// The human message.
    pub message: String,
    /// The request's `X-Request-Id`, to find it in the gateway's log.
    pub request_id: Option<String>,
    /// Seconds to wait before retrying (`Retry-After`, else the body's `retryAfter`).
    pub retry_after: Option<u64>,
    /// The whole error body, with the fields some errors add (`quota`, `limit`, `used`, ...).
    pub body: serde_json::Value,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}, HTTP {})", self.message, self.code, self.status)?;
        if let Some(id) = &self.request_id {
            write!(f, " [request {id}]")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The gateway answered with an error (boxed: it is the large variant, and most results
    /// are `Ok`).
    #[error("{0}")]
    Api(Box<ApiError>),
    /// The gateway could not be reached, or the connection failed.
    #[error("cannot reach the gateway: {0}")]
    Transport(#[from] reqwest::Error),
    /// An answer that is not the API's (a proxy's error page, a body of the wrong shape).
    #[error("unexpected answer (HTTP {status}){}: {detail}", request_id.as_deref().map(|id| format!(" [request {id}]")).unwrap_or_default())]
    UnexpectedResponse { status: u16, request_id: Option<String>, detail: String },
    /// The base URL is not an absolute http(s) URL, or a header value is not valid.
    #[error("invalid client setting: {0}")]
    InvalidSetting(String),
}

impl Error {
    /// The API's error code, when the gateway answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api(error) => Some(&error.code),
            _ => None,
        }
    }

    /// The HTTP status, when there was an answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api(error) => Some(error.status),
            Error::UnexpectedResponse { status, .. } => Some(*status),
            Error::Transport(error) => error.status().map(|s| s.as_u16()),
            Error::InvalidSetting(_) => None,
        }
    }

    /// The request's id, when there was an answer carrying one.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Error::Api(error) => error.request_id.as_deref(),
            Error::UnexpectedResponse { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }

    /// Seconds the gateway asked to wait before retrying.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Error::Api(error) => error.retry_after,
            _ => None,
        }
    }
}
