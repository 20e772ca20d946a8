//! The API's JSON shapes of tenants, built from the domain types.

use connectors_actors::admission::TenantSnapshot;
use connectors_actors::policy::Policy;
use connectors_actors::tenant::{Features, Limits, McpListing, Security, TenantRecord, TenantStatus};
use serde::Serialize;
use utoipa::ToSchema;

use crate::billing::{UsageReport, usage_report};
use crate::config::Pricing;

/// The tenant object of API.md, borrowing from the record it shows (it is built on every
/// tenant-API request). Keys are never part of it, except the new one in a create's answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Tenant)]
pub struct TenantView<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub email: Option<&'a str>,
    pub plan: &'a str,
    #[schema(value_type = TenantStatus)]
    pub status: &'static str,
    pub limits: Limits,
    pub features: Features,
    #[schema(value_type = Security)]
    pub security: &'a Security,
    /// What the tenant's MCP clients are listed.
    #[schema(value_type = McpListing)]
    pub mcp: &'a McpListing,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// This month's usage (absent from lists and from a create's answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageReport<'a>>,
    /// The tenant's API key: only in the answer to a create, shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl<'a> TenantView<'a> {
    pub fn from_record(policy: &Policy, record: &'a TenantRecord) -> Self {
        Self::build(record, policy.limits(record), policy.features(record))
    }

    pub fn from_snapshot(snapshot: &'a TenantSnapshot, pricing: &'a Pricing) -> Self {
        let mut view = Self::without_usage(snapshot);
        view.usage = Some(usage_report(pricing, &snapshot.record.id, snapshot.month, &snapshot.usage));
        view
    }

    /// The snapshot's tenant as a list shows it: without this month's usage.
    pub fn without_usage(snapshot: &'a TenantSnapshot) -> Self {
        Self::build(&snapshot.record, snapshot.limits, snapshot.features)
    }

    fn build(record: &'a TenantRecord, limits: Limits, features: Features) -> Self {
        Self {
            id: record.id.as_str(),
            name: &record.name,
            email: record.email.as_deref(),
            plan: &record.plan,
            status: record.status.as_str(),
            limits,
            features,
            security: &record.security,
            mcp: &record.mcp,
            created_at: rfc3339(record.created_at),
            updated_at: rfc3339(record.updated_at),
            usage: None,
            api_key: None,
        }
    }
}
