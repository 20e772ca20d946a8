use chrono::{Duration, TimeZone};
use proptest::prelude::*;

use super::*;
use crate::tenant::{StoredKey, test_record};

fn id(text: &str) -> TenantId {
    TenantId::parse(text).unwrap()
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2027, 5, 1, 12, 0, 0).unwrap()
}

fn record(keys: Vec<StoredKey>, status: TenantStatus) -> TenantRecord {
    TenantRecord { status, ..test_record(now(), keys) }
}

fn rules(multi_tenant: bool, require_api_key: bool, fallback: Option<&str>) -> IdentityRules {
    IdentityRules { multi_tenant, require_api_key, fallback: fallback.map(id) }
}

#[test]
fn header_then_key_owner_then_fallback() {
    let r = rules(true, true, Some("default"));
    assert_eq!(target_tenant(&r, Some(&id("b")), Some(&id("a"))), Some(id("b")));
    assert_eq!(target_tenant(&r, None, Some(&id("a"))), Some(id("a")));
    assert_eq!(target_tenant(&r, None, None), Some(id("default")));
    assert_eq!(target_tenant(&rules(true, true, None), None, None), None);
    assert_eq!(target_tenant(&rules(false, true, Some("solo")), Some(&id("b")), None), Some(id("solo")));
}

#[test]
fn only_the_fallback_tenant_may_go_without_a_key() {
    let open = rules(true, false, Some("default"));
    assert!(!key_required(&open, &id("default")));
    assert!(key_required(&open, &id("other")));
    assert!(key_required(&rules(true, true, Some("default")), &id("default")));
}

#[test]
fn mismatch_only_for_a_key_of_another_tenant() {
    assert!(is_mismatch(&id("b"), Some(&id("a"))));
    assert!(!is_mismatch(&id("a"), Some(&id("a"))));
    assert!(!is_mismatch(&id("a"), None));
}

#[test]
fn key_is_checked_before_status_and_network() {
    let key = KeyHash::of("ck_good");
    let suspended = record(vec![StoredKey { hash: key, created_at: now(), expires_at: None }], TenantStatus::Suspended);
    let office = IpAllowList::parse(&["10.0.0.0/8"]).unwrap();
    let outside: IpAddr = "192.0.2.1".parse().unwrap();
    let bad = KeyHash::of("ck_bad");
    assert_eq!(check_access(&suspended, &office, now(), Some(&bad), true, outside), Err(Denial::Unauthorized));
    assert_eq!(check_access(&suspended, &office, now(), Some(&key), true, outside), Err(Denial::Suspended));
    let mut active = suspended.clone();
    active.status = TenantStatus::Active;
    assert_eq!(check_access(&active, &office, now(), Some(&key), true, outside), Err(Denial::IpNotAllowed));
    assert_eq!(check_access(&active, &office, now(), Some(&key), true, "10.1.1.1".parse().unwrap()), Ok(()));
}

fn arb_key() -> impl Strategy<Value = KeyHash> {
    (0u8..6).prop_map(|n| KeyHash::of(&format!("ck_{n}")))
}

fn arb_stored_key() -> impl Strategy<Value = StoredKey> {
    (arb_key(), prop::option::of(-100i64..100)).prop_map(|(hash, expiry)| StoredKey {
        hash,
        created_at: now() - Duration::days(1),
        expires_at: expiry.map(|s| now() + Duration::seconds(s)),
    })
}

proptest! {
    /// A request passes the key check exactly when it carries a key that is one of the tenant's
    /// unexpired keys, or carries none and none is required; a pass then depends on status and
    /// allow-list alone.
    #[test]
    fn access_is_granted_exactly_by_the_rules(
        keys in prop::collection::vec(arb_stored_key(), 0..4),
        presented in prop::option::of(arb_key()),
        required in any::<bool>(),
        suspended in any::<bool>(),
        restrict in any::<bool>(),
        ip_octet in any::<u8>(),
    ) {
        let status = if suspended { TenantStatus::Suspended } else { TenantStatus::Active };
        let r = record(keys.clone(), status);
        let list = if restrict { IpAllowList::parse(&["10.0.0.0/9"]).unwrap() } else { IpAllowList::default() };
        let ip: IpAddr = format!("10.{ip_octet}.0.1").parse().unwrap();
        let key_ok = match presented {
            Some(k) => keys.iter().any(|s| s.hash == k && s.expires_at.is_none_or(|e| now() < e)),
            None => !required,
        };
        let expected = if !key_ok {
            Err(Denial::Unauthorized)
        } else if suspended {
            Err(Denial::Suspended)
        } else if restrict && ip_octet >= 128 {
            Err(Denial::IpNotAllowed)
        } else {
            Ok(())
        };
        prop_assert_eq!(check_access(&r, &list, now(), presented.as_ref(), required, ip), expected);
    }

    /// Whatever the request names, the target is one of the names it or the config gave, and
    /// the fallback is reached only when nothing else names a tenant.
    #[test]
    fn target_is_always_a_named_tenant(
        multi in any::<bool>(), require in any::<bool>(),
        fallback in prop::option::of("[a-z]{1,3}"),
        header in prop::option::of("[a-z]{1,3}"),
        owner in prop::option::of("[a-z]{1,3}"),
    ) {
        let r = IdentityRules { multi_tenant: multi, require_api_key: require, fallback: fallback.as_deref().map(id) };
        let header = header.as_deref().map(id);
        let owner = owner.as_deref().map(id);
        let target = target_tenant(&r, header.as_ref(), owner.as_ref());
        let expected = if multi { header.clone().or(owner.clone()).or(r.fallback.clone()) } else { r.fallback.clone() };
        prop_assert_eq!(&target, &expected);
        if let Some(t) = &target
            && !key_required(&r, t)
        {
            prop_assert!(!require && r.fallback.as_ref() == Some(t));
        }
    }
}
