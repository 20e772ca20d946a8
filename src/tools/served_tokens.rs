//! `tokens.total` of a tenant's metrics: the estimated tokens of the tool descriptions the
//! gateway served it — the `tokenUsage` of each `tools/select` answer, and the tools of each MCP
//! `tools/list` answer (estimated with [`estimate_tokens`](super::selection::tiering::estimate_tokens),
//! the one estimator). Counted in the day's usage, through this node's recorder, after the
//! answer is made; usage adds up, so the node that served it need not own the tenant.

use connectors_actors::store::UsageDelta;
use connectors_actors::tenant::TenantId;
use connectors_actors::usage::UsageCounters;

use crate::app::Gateway;

/// Counts `tokens` served to `tenant` now. The hook of every endpoint that serves tool
/// descriptions (`tools/select`, MCP `tools/list`).
pub async fn record_served_tokens(gateway: &Gateway, tenant: &TenantId, tokens: usize) {
    if tokens == 0 {
        return;
    }
    let delta = UsageDelta {
        tenant: tenant.clone(),
        day: gateway.clock.now().date_naive(),
        counters: UsageCounters { tokens: tokens as u64, ..Default::default() },
    };
    if gateway.recorder.usage(delta).await.is_err() {
        // Only while the process stops: the recorder outlives every request otherwise.
        tracing::warn!(tenant = %tenant, tokens, "served tokens not counted: the recorder has stopped");
    }
}
