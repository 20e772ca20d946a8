//! The operator's policy: global default limits and features, and the plans that refine them.
//!
//! Resolution order for every limit and feature: the tenant's own override, then its plan,
//! then the global default (`rateLimits` / `quotas` of `multi-tenant.yaml`).

use std::collections::BTreeMap;

use crate::tenant::{FeatureOverrides, Features, LimitOverrides, Limits, TenantRecord};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub limits: LimitOverrides,
    pub features: FeatureOverrides,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub default_limits: Limits,
    pub default_features: Features,
    pub plans: BTreeMap<String, Plan>,
    /// The plan of a tenant created without one.
    pub default_plan: String,
    /// When false, no rate window is enforced (the `RATE_LIMIT_ENABLED=false` mode).
    pub rate_limits_enabled: bool,
}

impl Policy {
    pub fn has_plan(&self, name: &str) -> bool {
        self.plans.contains_key(name)
    }

    pub fn limits(&self, record: &TenantRecord) -> Limits {
        let plan = self.plans.get(&record.plan).map(|p| p.limits.over(&self.default_limits));
        record.limits.over(&plan.unwrap_or(self.default_limits))
    }

    pub fn features(&self, record: &TenantRecord) -> Features {
        let plan = self.plans.get(&record.plan).map(|p| p.features.over(&self.default_features));
        record.features.over(&plan.unwrap_or(self.default_features))
    }
}
