//! The gateway's MCP client (rmcp): reaches a tool server over streamable HTTP or a stdio child
//! process, runs the `initialize` handshake, lists its tools (following `nextCursor`) and calls them,
//! each under a deadline, with the tenant's access token as `Authorization: Bearer` on HTTP.
//!
//! This module decides how to talk to one server and when a connection can be reused; it does not
//! decide which token a tenant gets (the OAuth side) nor what an error means to an API client (the
//! HTTP layer maps [`McpError`] to 502/504).

mod connection;
mod discovery;
mod error;
mod pagination;
mod pool;
mod server;

pub use connection::McpConnection;
pub use discovery::catalog_tools;
pub use error::McpError;
pub use pool::{McpPool, PipeSource};
pub use server::{BearerToken, McpServer, StdioCommand};

/// What a `tools/call` answered: `content`, `structuredContent` and `isError` as MCP defines them. A
/// result with `isError` set is the tool's own failure and comes back as `Ok`, not as an [`McpError`].
pub use rmcp::model::CallToolResult;
/// A tool as the server described it in `tools/list`.
pub use rmcp::model::Tool as McpTool;
