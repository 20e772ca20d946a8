//! The auth check: which tenant a request is for, and whether that tenant lets it in.
//!
//! Two pure steps. The edge picks the target tenant from the request ([`target_tenant`]); the
//! target's actor then checks the key, the tenant's status and its IP allow-list
//! ([`check_access`]), in that order, so a caller without a valid key learns nothing about the
//! tenant's status or network rules.

use std::net::IpAddr;

use chrono::{DateTime, Utc};

use crate::admission::Denial;
use crate::allow_list::IpAllowList;
use crate::api_key::KeyHash;
use crate::tenant::{TenantId, TenantRecord, TenantStatus};

/// How requests name their tenant (`multiTenant` of `multi-tenant.yaml`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityRules {
    /// When false, every request is for `fallback` and the tenant header is ignored.
    pub multi_tenant: bool,
    pub require_api_key: bool,
    pub fallback: Option<TenantId>,
}

/// The tenant a request is for: the tenant header, else the presented key's own tenant, else
/// the fallback tenant. `None`: nobody to ask, the request is unauthorized.
pub fn target_tenant(
    rules: &IdentityRules,
    header: Option<&TenantId>,
    key_owner: Option<&TenantId>,
) -> Option<TenantId> {
    if !rules.multi_tenant {
        return rules.fallback.clone();
    }
    header.or(key_owner).or(rules.fallback.as_ref()).cloned()
}

/// Whether a request for `target` must carry a key. Only the fallback tenant in
/// `requireApiKey: false` mode may be called without one.
pub fn key_required(rules: &IdentityRules, target: &TenantId) -> bool {
    rules.require_api_key || rules.fallback.as_ref() != Some(target)
}

/// A key that failed for `target` but belongs to another tenant is a mismatch (403), not an
/// unknown key (401).
pub fn is_mismatch(target: &TenantId, key_owner: Option<&TenantId>) -> bool {
    key_owner.is_some_and(|owner| owner != target)
}

/// Key, then status, then network.
pub fn check_access(
    record: &TenantRecord,
    allow_list: &IpAllowList,
    now: DateTime<Utc>,
    key: Option<&KeyHash>,
    key_required: bool,
    client_ip: IpAddr,
) -> Result<(), Denial> {
    match key {
        Some(key) if !key_matches(record, now, key) => return Err(Denial::Unauthorized),
        None if key_required => return Err(Denial::Unauthorized),
        _ => {}
    }
    if record.status == TenantStatus::Suspended {
        return Err(Denial::Suspended);
    }
    if !allow_list.allows(client_ip) {
        return Err(Denial::IpNotAllowed);
    }
    Ok(())
}

/// Compares against every valid key without stopping at the first match, so the time taken
/// does not depend on which key (if any) matched.
fn key_matches(record: &TenantRecord, now: DateTime<Utc>, key: &KeyHash) -> bool {
    record.valid_keys(now).fold(false, |found, stored| found | stored.hash.matches(key))
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
