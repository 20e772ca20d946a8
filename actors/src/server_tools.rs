//! The `ServerTools` port: how the tenant actor learns a deployed server's tools and offers them
//! to the tenant (and withdraws them). The adapter (in the `connectors` crate) speaks MCP and
//! owns the catalog; this crate only says when.

use async_trait::async_trait;

use crate::deployer::ServerName;
use crate::deployments::ServerRecord;
use crate::tenant::TenantId;

#[async_trait]
pub trait ServerTools: Send + Sync + 'static {
    /// Asks the server at `record.endpoint` for its tools (`initialize` + `tools/list`), puts them
    /// in the catalog as `<name>.<tool>`, visible to `tenant` only, and answers how many there are.
    /// The error is for the tenant (it names no secret).
    async fn discover(&self, tenant: &TenantId, record: &ServerRecord) -> Result<u64, String>;

    /// The server is gone: its tools leave the catalog and its connections are dropped.
    async fn withdraw(&self, tenant: &TenantId, name: &ServerName);
}
