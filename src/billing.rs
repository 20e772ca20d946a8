//! The usage bill: counters priced with the configured pricing.
//!
//! Sums are computed in millionths of the currency unit (integers) and converted to a decimal
//! number only for the response, so a bill never carries float rounding noise.

use connectors_actors::tenant::TenantId;
use connectors_actors::usage::{Month, UsageCounters};
use serde::Serialize;

use crate::config::Pricing;

/// The usage report of API.md (`GET /tenants/{id}/usage`); costs in `currency` units.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageReport<'a> {
    pub tenant_id: &'a str,
    pub month: String,
    pub api_calls: u64,
    pub api_calls_cost: f64,
    pub tool_invocations: u64,
    pub tool_invocations_cost: f64,
    pub custom_servers: u64,
    pub custom_servers_cost: f64,
    pub total_cost: f64,
    pub currency: &'a str,
}

struct Costs {
    api_calls: u128,
    tool_invocations: u128,
    custom_servers: u128,
}

fn costs(pricing: &Pricing, usage: &UsageCounters) -> Costs {
    Costs {
        // Rounded to the nearest micro-unit: 1 call at 0.50 per 1,000 is 500 micros exactly.
        api_calls: (u128::from(usage.api_calls) * u128::from(pricing.per_thousand_api_calls_micros) + 500) / 1_000,
        tool_invocations: u128::from(usage.tool_invocations) * u128::from(pricing.per_tool_invocation_micros),
        custom_servers: u128::from(usage.custom_servers) * u128::from(pricing.per_custom_server_month_micros),
    }
}

fn money(micros: u128) -> f64 {
    micros as f64 / 1_000_000.0
}

pub fn usage_report<'a>(
    pricing: &'a Pricing,
    tenant: &'a TenantId,
    month: Month,
    usage: &UsageCounters,
) -> UsageReport<'a> {
    let c = costs(pricing, usage);
    UsageReport {
        tenant_id: tenant.as_str(),
        month: month.to_string(),
        api_calls: usage.api_calls,
        api_calls_cost: money(c.api_calls),
        tool_invocations: usage.tool_invocations,
        tool_invocations_cost: money(c.tool_invocations),
        custom_servers: usage.custom_servers,
        custom_servers_cost: money(c.custom_servers),
        total_cost: money(c.api_calls + c.tool_invocations + c.custom_servers),
        currency: &pricing.currency,
    }
}

/// Cost of the metered usage in a date range: API calls and tool invocations. Custom servers
/// are billed per month and appear on the monthly usage report only.
pub fn metered_cost(pricing: &Pricing, usage: &UsageCounters) -> f64 {
    let c = costs(pricing, usage);
    money(c.api_calls + c.tool_invocations)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Prices with round figures, for tests of what they bill.
    pub(crate) fn pricing() -> Pricing {
        Pricing {
            currency: "EUR".into(),
            per_thousand_api_calls_micros: 500_000,
            per_tool_invocation_micros: 2_000,
            per_custom_server_month_micros: 10_000_000,
        }
    }

    #[test]
    fn a_bill_prices_each_line_and_sums_exactly() {
        let usage = UsageCounters { api_calls: 2_500, tool_invocations: 3, custom_servers: 2, ..Default::default() };
        let month = Month::parse("2027-01").unwrap();
        let (pricing, tenant) = (pricing(), TenantId::parse("acme").unwrap());
        let bill = usage_report(&pricing, &tenant, month, &usage);
        assert_eq!(bill.api_calls_cost, 1.25);
        assert_eq!(bill.tool_invocations_cost, 0.006);
        assert_eq!(bill.custom_servers_cost, 20.0);
        assert_eq!(bill.total_cost, 21.256);
        assert_eq!((bill.month.as_str(), bill.currency), ("2027-01", "EUR"));
        assert_eq!(metered_cost(&pricing, &usage), 1.256);
    }
}
