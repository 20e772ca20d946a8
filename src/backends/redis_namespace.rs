//! Where each tenant's Redis keys live (`multiTenant.isolation.separateRedisNamespace`).
//!
//! Shared (the default): keys are grouped by kind, the tenant id inside the name
//! (`<prefix>usage:<id>:days`, `<prefix>audit:<id>`, …). Separate: everything of one tenant is
//! under its own prefix `<prefix>tenant:<id>:` (`<prefix>tenant:<id>:usage:days`,
//! `<prefix>tenant:<id>:audit`, its record at `<prefix>tenant:<id>:record`, its sealed
//! credentials, its rate counters), so that one `SCAN MATCH`, one ACL key pattern
//! (`~<prefix>tenant:acme:*`) or one export covers a tenant and nothing else. Ids are
//! `[a-z0-9-]`, so no id reaches into another tenant's prefix. The gateway's own keys (the tenant
//! index, key hashes, meta, entries, batch marks) stay shared in both.
//!
//! The layout is recorded in the store (`meta:redis_layout`) the first time; a start with the
//! other layout over existing data stops with an error, since it would not find that data.

/// How tenant keys are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RedisLayout {
    #[default]
    Shared,
    Separate,
}

impl RedisLayout {
    pub fn new(separate: bool) -> Self {
        if separate { Self::Separate } else { Self::Shared }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Shared => "shared",
            Self::Separate => "per-tenant",
        }
    }

    /// The key of `tenant`'s `kind` (e.g. `usage`, `secrets:cred`) followed by `rest`.
    pub fn tenant_key(self, prefix: &str, kind: &str, tenant: &str, rest: &str) -> String {
        match self {
            Self::Shared => format!("{prefix}{kind}:{tenant}{rest}"),
            Self::Separate => format!("{prefix}tenant:{tenant}:{kind}{rest}"),
        }
    }
}

/// The meta key that records the layout.
pub const LAYOUT_META: &str = "redis_layout";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separate_keys_share_one_prefix_per_tenant() {
        let shared = RedisLayout::Shared;
        let separate = RedisLayout::Separate;
        assert_eq!(shared.tenant_key("c:", "usage", "acme", ":days"), "c:usage:acme:days");
        assert_eq!(separate.tenant_key("c:", "usage", "acme", ":days"), "c:tenant:acme:usage:days");
        assert_eq!(separate.tenant_key("c:", "audit", "acme", ""), "c:tenant:acme:audit");
        assert!(!separate.tenant_key("c:", "audit", "acme-corp", "").starts_with("c:tenant:acme:"));
    }
}
