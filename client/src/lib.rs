//! Rust client of the Connectors Gateway HTTP API (docs/API.md; `openapi.json` at the
//! repository's root is the machine-readable form).
//!
//! - [`Connectors`]: a tenant's API (tools, its own MCP servers, its tenant object), with the
//!   tenant's API key and `X-Tenant-ID`.
//! - [`AdminApi`]: the admin API (tenants, keys, OAuth credentials, usage, metrics, audit logs,
//!   shared integrations, the cluster), with the admin key.
//!
//! Errors are [`Error`]: the gateway's own answers carry its `code`, `requestId` and
//! `Retry-After`. Answers of 429 and 503 are retried after the wait the gateway asks for, up to
//! [`RetryPolicy::max_retries`] times; [`Connectors::with_retry`] and [`AdminApi::with_retry`]
//! change that, and [`RetryPolicy::none`] turns it off.
//!
//! ```no_run
//! # async fn run() -> Result<(), connectors_client::Error> {
//! use connectors_client::Connectors;
//! let client = Connectors::new("http://127.0.0.1:3000", "acme", "ck_...")?;
//! let selection = client.tools().select("open a pull request", None).await?;
//! for tool in &selection.tools.tier1 {
//!     println!("{} {:.2}", tool.id, tool.score);
//! }
//! # Ok(())
//! # }
//! ```

mod admin;
mod error;
mod tenant;
mod transport;
pub mod types;

pub use admin::{AdminApi, Integrations, OAuthCredentials, Tenants};
pub use error::{ApiError, Error};
pub use tenant::{Connectors, Mcp, TenantSelf, Tools};
pub use transport::RetryPolicy;
