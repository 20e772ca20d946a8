//! What can go wrong talking to an MCP server, in the terms the HTTP layer maps to statuses.

use rmcp::ServiceError;
use rmcp::service::ClientInitializeError;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum McpError {
    /// The server could not be reached or started, or the connection to it broke.
    #[error("MCP server unreachable: {0}")]
    Unreachable(String),
    /// The outbound policy does not allow the server's address.
    #[error("{0}")]
    Refused(crate::outbound::OutboundRefused),
    /// The deadline passed before the server answered.
    #[error("MCP server did not answer before the deadline")]
    Timeout,
    /// The server answered 401/403: the token is missing, expired or revoked.
    #[error("MCP server refused the credential")]
    Unauthorized { challenge: Option<String> },
    /// The server answered something MCP does not allow, or an error to a non-call request.
    #[error("MCP protocol error: {0}")]
    Protocol(String),
    /// The server answered `tools/call` with a JSON-RPC error (unknown tool, bad arguments...). A
    /// tool that ran and failed answers with `isError` in its result instead.
    #[error("MCP server rejected the call ({code}): {message}")]
    ToolError { code: i32, message: String },
}

impl McpError {
    /// What a tenant is told: the server's own answers and the policy's refusals, but not how a
    /// connection failed, which would let a tenant probe which hosts and ports answer.
    pub fn for_caller(&self) -> String {
        match self {
            Self::Unreachable(_) => "the server could not be reached".into(),
            other => other.to_string(),
        }
    }

    /// Whether the connection this came from is unusable and must be dropped from a pool.
    pub fn breaks_connection(&self) -> bool {
        matches!(self, Self::Unreachable(_) | Self::Unauthorized { .. })
    }

    pub(crate) fn from_initialize(error: ClientInitializeError) -> Self {
        if error.is_authorization_required() {
            return Self::Unauthorized { challenge: error.auth_challenge().map(str::to_owned) };
        }
        match error {
            ClientInitializeError::TransportError { .. } | ClientInitializeError::ConnectionClosed(_) => {
                Self::Unreachable(error.to_string())
            }
            other => Self::Protocol(other.to_string()),
        }
    }

    /// A failed request on an initialized connection; `is_call` says whether it was `tools/call`.
    pub(crate) fn from_service(error: ServiceError, is_call: bool) -> Self {
        if error.is_authorization_required() {
            return Self::Unauthorized { challenge: error.auth_challenge().map(str::to_owned) };
        }
        match error {
            ServiceError::McpError(data) if is_call => {
                Self::ToolError { code: data.code.0, message: data.message.into_owned() }
            }
            ServiceError::TransportSend(_) | ServiceError::TransportClosed | ServiceError::Cancelled { .. } => {
                Self::Unreachable(error.to_string())
            }
            ServiceError::Timeout { .. } => Self::Timeout,
            other => Self::Protocol(other.to_string()),
        }
    }
}
