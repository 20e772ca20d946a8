//! The breakdowns `advancedAnalytics` adds to a tenant's metrics: usage per day, and tool calls
//! per tool (read from the audit log, where each `tools/invoke` is one event naming its tool).

use std::collections::BTreeMap;

use chrono::{NaiveDate, TimeZone, Utc};
use connectors_actors::audit::{AuditQuery, AuditResult};
use connectors_actors::store::{Store, StoreError};
use connectors_actors::tenant::TenantId;
use connectors_actors::usage::UsageCounters;
use serde_json::{Value, json};

/// Audit events read at most for one breakdown by tool; past it the answer says it is partial.
const MAX_AUDIT_EVENTS: usize = 100_000;
const AUDIT_PAGE: usize = 1_000;

/// `daily`: one entry per day that has usage, oldest first.
pub fn daily(days: &[(NaiveDate, UsageCounters)]) -> Value {
    let entries: Vec<Value> = days
        .iter()
        .map(|(day, c)| {
            json!({
                "date": day.to_string(),
                "requests": c.requests,
                "apiCalls": c.api_calls,
                "rateLimited": c.rate_limited,
                "errors": c.errors,
                "toolInvocations": c.tool_invocations,
                "selections": c.selections,
                "tokens": c.tokens,
            })
        })
        .collect();
    Value::Array(entries)
}

/// `byTool`: `{tools: [{toolId, calls, errors}], complete}` for the days `start..=end`, most
/// called first; `complete` is false when the range held more calls than are read.
pub async fn by_tool(
    store: &dyn Store,
    tenant: &TenantId,
    start: NaiveDate,
    end: NaiveDate,
) -> Result<Value, StoreError> {
    let midnight = |day: NaiveDate| Utc.from_utc_datetime(&day.and_time(chrono::NaiveTime::MIN));
    let mut query = AuditQuery {
        since: Some(midnight(start)),
        // `until` is inclusive: the last microsecond of `end`.
        until: end.succ_opt().map(|next| midnight(next) - chrono::Duration::microseconds(1)),
        action: Some("tools.invoke".into()),
        limit: AUDIT_PAGE,
        after: None,
    };
    let mut counts: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut read = 0;
    let complete = loop {
        let page = store.audit(tenant, &query).await?;
        read += page.events.len();
        for event in &page.events {
            let Some(tool) = &event.tool_id else { continue };
            let entry = counts.entry(tool.clone()).or_default();
            entry.0 += 1;
            if event.result != AuditResult::Success {
                entry.1 += 1;
            }
        }
        match page.next {
            Some(next) if read < MAX_AUDIT_EVENTS => query.after = Some(next),
            Some(_) => break false,
            None => break true,
        }
    };
    let mut tools: Vec<(String, (u64, u64))> = counts.into_iter().collect();
    tools.sort_by(|a, b| b.1.0.cmp(&a.1.0).then_with(|| a.0.cmp(&b.0)));
    let tools: Vec<Value> = tools
        .into_iter()
        .map(|(tool, (calls, errors))| json!({"toolId": tool, "calls": calls, "errors": errors}))
        .collect();
    Ok(json!({"tools": tools, "complete": complete}))
}
