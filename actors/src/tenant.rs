//! What a tenant is: its id, its configuration as stored, and how a change to it is applied.
//!
//! A stored tenant keeps only the limits and features set for it explicitly (overrides); the
//! effective values are resolved against its plan by [`crate::policy::Policy`], so changing a
//! plan's defaults or a tenant's plan moves every value the tenant did not pin.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::allow_list::{BadAllowListEntry, IpAllowList};
use crate::api_key::KeyHash;

/// A tenant id: `^[a-z0-9]([a-z0-9-]{0,54}[a-z0-9])?$`. Ids become Kubernetes namespaces
/// `tenant-<id>`, hence at most 56 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct TenantId(String);

/// Written as the plain string, without the copy `#[serde(into = "String")]` would make.
impl Serialize for TenantId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid tenant id `{0}`: use 1 to 56 lowercase letters, digits and inner hyphens (^[a-z0-9]([a-z0-9-]{{0,54}}[a-z0-9])?$)"
)]
pub struct BadTenantId(pub String);

impl TenantId {
    pub fn parse(text: &str) -> Result<Self, BadTenantId> {
        let bytes = text.as_bytes();
        let edge_ok = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        let valid = !bytes.is_empty()
            && bytes.len() <= 56
            && edge_ok(bytes[0])
            && edge_ok(bytes[bytes.len() - 1])
            && bytes.iter().all(|&b| edge_ok(b) || b == b'-');
        if valid { Ok(Self(text.to_string())) } else { Err(BadTenantId(text.to_string())) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TenantId {
    type Error = BadTenantId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<TenantId> for String {
    fn from(id: TenantId) -> String {
        id.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantStatus {
    Active,
    Suspended,
}

impl TenantStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
        }
    }
}

/// Effective limits of a tenant, every value resolved.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    pub requests_per_minute: u64,
    pub requests_per_hour: u64,
    pub requests_per_day: u64,
    pub max_custom_servers: u64,
    pub max_tool_invocations: u64,
    #[serde(rename = "maxStorageMB")]
    pub max_storage_mb: u64,
}

/// Limits set explicitly; `None` follows the plan.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LimitOverrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_hour: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_day: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_custom_servers: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tool_invocations: Option<u64>,
    #[serde(default, rename = "maxStorageMB", skip_serializing_if = "Option::is_none")]
    pub max_storage_mb: Option<u64>,
}

impl LimitOverrides {
    /// `self` where set, else `under`.
    pub fn over(&self, under: &Limits) -> Limits {
        Limits {
            requests_per_minute: self.requests_per_minute.unwrap_or(under.requests_per_minute),
            requests_per_hour: self.requests_per_hour.unwrap_or(under.requests_per_hour),
            requests_per_day: self.requests_per_day.unwrap_or(under.requests_per_day),
            max_custom_servers: self.max_custom_servers.unwrap_or(under.max_custom_servers),
            max_tool_invocations: self.max_tool_invocations.unwrap_or(under.max_tool_invocations),
            max_storage_mb: self.max_storage_mb.unwrap_or(under.max_storage_mb),
        }
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Features {
    pub custom_servers: bool,
    pub oauth: bool,
    pub advanced_analytics: bool,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FeatureOverrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_servers: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advanced_analytics: Option<bool>,
}

impl FeatureOverrides {
    pub fn over(&self, under: &Features) -> Features {
        Features {
            custom_servers: self.custom_servers.unwrap_or(under.custom_servers),
            oauth: self.oauth.unwrap_or(under.oauth),
            advanced_analytics: self.advanced_analytics.unwrap_or(under.advanced_analytics),
        }
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Security {
    /// CIDRs and single addresses; empty allows every address. Validated before it is stored.
    #[serde(rename = "allowedIPs")]
    pub allowed_ips: Vec<String>,
}

/// What the gateway's MCP endpoint lists to the tenant's clients, so that a model is not
/// handed hundreds of tools at once.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct McpListing {
    pub tool_list: ToolList,
    /// The categories listed (`categories`) or searched (`search`); empty searches all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
}

/// How the MCP endpoint's `tools/list` answers.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolList {
    /// Every tool the tenant may use.
    #[default]
    Full,
    /// Only the tools of the listed categories.
    Categories,
    /// Two meta-tools: `find_tools` (the selection engine) and `call_tool`.
    Search,
}

/// Why an [`McpListing`] is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum McpListingError {
    #[error("`toolList` `categories` needs at least one category")]
    NoCategories,
    #[error("`categories` applies to `toolList` `categories` or `search`, not `full`")]
    CategoriesWithFull,
    #[error("`categories` holds at most {MAX_LISTED_CATEGORIES} names of 1 to 100 characters")]
    BadCategories,
}

/// The most categories a listing names.
pub const MAX_LISTED_CATEGORIES: usize = 50;

impl McpListing {
    /// The listing with its category names trimmed and deduplicated, or why it cannot be kept.
    pub fn validated(mut self) -> Result<Self, McpListingError> {
        let mut seen = std::collections::BTreeSet::new();
        self.categories = std::mem::take(&mut self.categories)
            .into_iter()
            .map(|name| name.trim().to_string())
            .filter(|name| seen.insert(name.to_lowercase()))
            .collect();
        let fit = |name: &String| !name.is_empty() && name.chars().count() <= 100;
        if self.categories.len() > MAX_LISTED_CATEGORIES || !self.categories.iter().all(fit) {
            return Err(McpListingError::BadCategories);
        }
        match self.tool_list {
            ToolList::Categories if self.categories.is_empty() => Err(McpListingError::NoCategories),
            ToolList::Full if !self.categories.is_empty() => Err(McpListingError::CategoriesWithFull),
            _ => Ok(self),
        }
    }

    /// Whether a tool of `category` is one this listing offers (names compared case-insensitively).
    pub fn offers(&self, category: &str) -> bool {
        self.categories.is_empty() || self.categories.iter().any(|listed| listed.eq_ignore_ascii_case(category))
    }
}

/// An API key of the tenant, as stored: its hash, and when it stops working if it was rotated
/// out with a grace period.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredKey {
    pub hash: KeyHash,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

impl StoredKey {
    pub fn is_valid_at(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_none_or(|end| now < end)
    }
}

/// A tenant as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantRecord {
    pub id: TenantId,
    pub name: String,
    #[serde(default)]
    pub email: Option<String>,
    pub plan: String,
    pub status: TenantStatus,
    #[serde(default)]
    pub limits: LimitOverrides,
    #[serde(default)]
    pub features: FeatureOverrides,
    #[serde(default)]
    pub security: Security,
    /// What the MCP endpoint lists to the tenant's clients.
    #[serde(default)]
    pub mcp: McpListing,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub keys: Vec<StoredKey>,
}

impl TenantRecord {
    /// A digest of the whole record, so that a node holding a copy can ask "is mine still
    /// current?" without the record being sent again. Both sides compute it, so a build whose
    /// hashing differs only ever sees a mismatch (and gets the record), never a false match.
    pub fn fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::hash::DefaultHasher::new();
        self.hash(&mut hasher);
        hasher.finish()
    }

    /// The keys that authenticate at `now`.
    pub fn valid_keys(&self, now: DateTime<Utc>) -> impl Iterator<Item = &StoredKey> {
        self.keys.iter().filter(move |key| key.is_valid_at(now))
    }

    /// Replaces the tenant's keys with `new_key`. Without grace the old keys stop at once;
    /// with grace they keep working until `now + grace` (never longer than they already would).
    pub fn rotate_key(&mut self, now: DateTime<Utc>, new_key: KeyHash, grace: Option<chrono::Duration>) {
        let end = grace.filter(|g| *g > chrono::Duration::zero()).map(|g| now + g);
        self.keys.retain(|key| key.is_valid_at(now));
        match end {
            None => self.keys.clear(),
            Some(end) => {
                for key in &mut self.keys {
                    key.expires_at = Some(key.expires_at.map_or(end, |old| old.min(end)));
                }
            }
        }
        self.keys.push(StoredKey { hash: new_key, created_at: now, expires_at: None });
        self.updated_at = now;
    }

    /// Applies an admin change, merging `limits`, `features` and `security` key by key.
    /// Validation of values that need the policy (plan names) is the caller's.
    pub fn apply(&mut self, now: DateTime<Utc>, patch: &TenantPatch) {
        if let Some(name) = &patch.name {
            self.name.clone_from(name);
        }
        if let Some(email) = &patch.email {
            self.email.clone_from(email);
        }
        if let Some(plan) = &patch.plan {
            self.plan.clone_from(plan);
        }
        if let Some(status) = patch.status {
            self.status = status;
        }
        let limits = &patch.limits;
        let merge = |slot: &mut Option<u64>, change: Option<Option<u64>>| {
            if let Some(value) = change {
                *slot = value;
            }
        };
        merge(&mut self.limits.requests_per_minute, limits.requests_per_minute);
        merge(&mut self.limits.requests_per_hour, limits.requests_per_hour);
        merge(&mut self.limits.requests_per_day, limits.requests_per_day);
        merge(&mut self.limits.max_custom_servers, limits.max_custom_servers);
        merge(&mut self.limits.max_tool_invocations, limits.max_tool_invocations);
        merge(&mut self.limits.max_storage_mb, limits.max_storage_mb);
        let features = &patch.features;
        let merge = |slot: &mut Option<bool>, change: Option<Option<bool>>| {
            if let Some(value) = change {
                *slot = value;
            }
        };
        merge(&mut self.features.custom_servers, features.custom_servers);
        merge(&mut self.features.oauth, features.oauth);
        merge(&mut self.features.advanced_analytics, features.advanced_analytics);
        if let Some(allowed) = &patch.allowed_ips {
            self.security.allowed_ips = allowed.entries.clone();
        }
        if let Some(mcp) = &patch.mcp {
            self.mcp.clone_from(mcp);
        }
        self.updated_at = now;
    }
}

/// An admin change to a tenant. For `limits` and `features`, `Some(None)` clears an override
/// (the value follows the plan again) and `None` leaves it as it is.
///
/// It crosses nodes (to the tenant's owner) as JSON, where `Some(None)` is `null` and `None` an
/// absent field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantPatch {
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "double_option")]
    pub email: Option<Option<String>>,
    pub plan: Option<String>,
    pub status: Option<TenantStatus>,
    pub limits: LimitPatch,
    pub features: FeaturePatch,
    pub allowed_ips: Option<AllowedIps>,
    /// Replaces the MCP listing as a whole (validated by the caller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp: Option<McpListing>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitPatch {
    #[serde(default, skip_serializing_if = "Option::is_none", with = "double_option")]
    pub requests_per_minute: Option<Option<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "double_option")]
    pub requests_per_hour: Option<Option<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "double_option")]
    pub requests_per_day: Option<Option<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "double_option")]
    pub max_custom_servers: Option<Option<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "double_option")]
    pub max_tool_invocations: Option<Option<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "double_option")]
    pub max_storage_mb: Option<Option<u64>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeaturePatch {
    #[serde(default, skip_serializing_if = "Option::is_none", with = "double_option")]
    pub custom_servers: Option<Option<bool>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "double_option")]
    pub oauth: Option<Option<bool>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "double_option")]
    pub advanced_analytics: Option<Option<bool>>,
}

/// An allow-list that has been validated: the entries as given, and their parsed form.
/// Validated again when it arrives from another node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct AllowedIps {
    entries: Vec<String>,
}

impl AllowedIps {
    pub fn parse(entries: Vec<String>) -> Result<Self, BadAllowListEntry> {
        IpAllowList::parse(&entries)?;
        Ok(Self { entries: entries.into_iter().map(|e| e.trim().to_string()).collect() })
    }
}

impl TryFrom<Vec<String>> for AllowedIps {
    type Error = BadAllowListEntry;

    fn try_from(entries: Vec<String>) -> Result<Self, Self::Error> {
        Self::parse(entries)
    }
}

impl From<AllowedIps> for Vec<String> {
    fn from(allowed: AllowedIps) -> Self {
        allowed.entries
    }
}

/// `Option<Option<T>>` in serde: an absent field is `None`, `null` is `Some(None)`.
mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<T: Serialize, S: Serializer>(value: &Option<Option<T>>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(inner) => inner.serialize(s),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

/// An active tenant `acme` on plan `free` with `keys`, for the unit tests of this crate.
#[cfg(test)]
pub(crate) fn test_record(now: DateTime<Utc>, keys: Vec<StoredKey>) -> TenantRecord {
    TenantRecord {
        id: TenantId::parse("acme").expect("a valid id"),
        name: "Acme".into(),
        email: None,
        plan: "free".into(),
        status: TenantStatus::Active,
        limits: LimitOverrides::default(),
        features: FeatureOverrides::default(),
        security: Security::default(),
        mcp: Default::default(),
        created_at: now,
        updated_at: now,
        keys,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_mcp_listing_is_kept_trimmed_and_deduplicated_or_refused_with_its_reason() {
        let listing = |tool_list, categories: &[&str]| McpListing {
            tool_list,
            categories: categories.iter().map(|c| c.to_string()).collect(),
        };
        let kept = listing(ToolList::Categories, &[" Math ", "math", "code"]).validated().unwrap();
        assert_eq!(kept.categories, ["Math", "code"]);
        assert!(kept.offers("MATH") && kept.offers("code") && !kept.offers("files"));
        assert!(listing(ToolList::Search, &[]).validated().unwrap().offers("anything"));
        assert_eq!(listing(ToolList::Categories, &[]).validated(), Err(McpListingError::NoCategories));
        assert_eq!(listing(ToolList::Full, &["math"]).validated(), Err(McpListingError::CategoriesWithFull));
        assert_eq!(listing(ToolList::Search, &[" "]).validated(), Err(McpListingError::BadCategories));
        let many: Vec<String> = (0..=MAX_LISTED_CATEGORIES).map(|i| format!("c{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(listing(ToolList::Search, &many).validated(), Err(McpListingError::BadCategories));
    }

    #[test]
    fn tenant_ids_follow_the_namespace_rule() {
        for good in ["a", "0", "acme", "acme-corp-2", &"a".repeat(56)] {
            assert!(TenantId::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "-a", "a-", "Acme", "a_b", "a.b", "a b", &"a".repeat(57), "é"] {
            assert!(TenantId::parse(bad).is_err(), "{bad}");
        }
    }

    fn record(now: DateTime<Utc>) -> TenantRecord {
        test_record(now, vec![StoredKey { hash: KeyHash::of("k1"), created_at: now, expires_at: None }])
    }

    #[test]
    fn rotation_without_grace_drops_old_keys() {
        let now = Utc::now();
        let mut r = record(now);
        r.rotate_key(now, KeyHash::of("k2"), None);
        let hashes: Vec<_> = r.valid_keys(now).map(|k| k.hash).collect();
        assert_eq!(hashes, vec![KeyHash::of("k2")]);
    }

    #[test]
    fn rotation_with_grace_keeps_old_keys_until_the_grace_ends() {
        let now = Utc::now();
        let mut r = record(now);
        r.rotate_key(now, KeyHash::of("k2"), Some(chrono::Duration::seconds(30)));
        assert_eq!(r.valid_keys(now).count(), 2);
        let later = now + chrono::Duration::seconds(30);
        assert_eq!(r.valid_keys(later).map(|k| k.hash).collect::<Vec<_>>(), vec![KeyHash::of("k2")]);
        // A second rotation never extends the first key's grace.
        r.rotate_key(now + chrono::Duration::seconds(10), KeyHash::of("k3"), Some(chrono::Duration::seconds(60)));
        assert!(!r.valid_keys(later).any(|k| k.hash == KeyHash::of("k1")));
        assert!(r.valid_keys(later).any(|k| k.hash == KeyHash::of("k2")));
    }

    #[test]
    fn patch_merges_key_by_key_and_clears_with_null() {
        let now = Utc::now();
        let mut r = record(now);
        r.limits.requests_per_hour = Some(10);
        let patch = TenantPatch {
            limits: LimitPatch { requests_per_minute: Some(Some(5)), ..Default::default() },
            ..Default::default()
        };
        r.apply(now, &patch);
        assert_eq!(r.limits.requests_per_minute, Some(5));
        assert_eq!(r.limits.requests_per_hour, Some(10));
        let clear = TenantPatch {
            limits: LimitPatch { requests_per_hour: Some(None), ..Default::default() },
            ..Default::default()
        };
        r.apply(now, &clear);
        assert_eq!(r.limits.requests_per_hour, None);
        assert_eq!(r.limits.requests_per_minute, Some(5));
    }
}
