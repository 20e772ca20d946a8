use std::collections::BTreeMap;
use std::net::IpAddr;

use chrono::{Duration, TimeZone};

use super::*;
use crate::rate_windows::Window;
use crate::tenant::{FeatureOverrides, LimitOverrides, StoredKey, test_record};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2027, 3, 31, 23, 59, 30).unwrap()
}

fn policy(rate_limits_enabled: bool) -> Arc<Policy> {
    Arc::new(Policy {
        default_limits: Limits {
            requests_per_minute: 3,
            requests_per_hour: 100,
            requests_per_day: 1000,
            max_custom_servers: 1,
            max_tool_invocations: 2,
            max_storage_mb: 10,
        },
        default_features: Features { custom_servers: true, oauth: true, advanced_analytics: false },
        plans: BTreeMap::from([(
            "free".to_string(),
            crate::policy::Plan { limits: LimitOverrides::default(), features: FeatureOverrides::default() },
        )]),
        default_plan: "free".into(),
        rate_limits_enabled,
    })
}

fn record() -> TenantRecord {
    test_record(now(), vec![StoredKey { hash: KeyHash::of("ck_1"), created_at: now(), expires_at: None }])
}

fn request(key: &str) -> AdmissionRequest {
    AdmissionRequest {
        key: Some(KeyHash::of(key)),
        key_required: true,
        client_ip: IpAddr::from([127, 0, 0, 1]),
        charge: None,
        selection: false,
        server: None,
    }
}

fn core(rates: bool) -> TenantCore {
    TenantCore::new(policy(rates), record(), None, UsageCounters::default(), now()).unwrap()
}

#[test]
fn admits_until_the_minute_is_full_and_counts_every_outcome() {
    let mut c = core(true);
    for _ in 0..3 {
        assert!(c.admit(now(), &request("ck_1")).verdict.is_ok());
    }
    let refused = c.admit(now(), &request("ck_1"));
    assert!(matches!(refused.verdict, Err(Denial::RateLimited { retry_after: 30 })));
    assert!(matches!(c.admit(now(), &request("wrong")).verdict, Err(Denial::Unauthorized)));
    let usage = c.snapshot(now()).usage;
    assert_eq!((usage.requests, usage.api_calls, usage.rate_limited, usage.errors), (5, 3, 1, 1));
}

#[test]
fn refused_requests_do_not_use_up_the_windows() {
    let mut c = core(true);
    for _ in 0..5 {
        let denied = c.admit(now(), &request("wrong"));
        assert_eq!(denied.rate.unwrap().constraining().remaining, 3);
    }
    assert!(c.admit(now(), &request("ck_1")).verdict.is_ok());
}

#[test]
fn without_rate_limits_nothing_is_counted_in_windows() {
    let mut c = core(false);
    for _ in 0..10 {
        let admission = c.admit(now(), &request("ck_1"));
        assert!(admission.verdict.is_ok() && admission.rate.is_none());
    }
}

#[test]
fn tool_invocation_quota_is_checked_and_charged() {
    let mut c = core(false);
    let mut charged = request("ck_1");
    charged.charge = Some(Quota::ToolInvocations);
    assert!(c.admit(now(), &charged).verdict.is_ok());
    assert!(c.admit(now(), &charged).verdict.is_ok());
    match c.admit(now(), &charged).verdict {
        Err(Denial::QuotaExceeded(q)) => assert_eq!((q.limit, q.used), (2, 2)),
        other => panic!("expected quota_exceeded, got {other:?}"),
    }
    // The month rolls over 30 s later: a fresh quota.
    assert!(c.admit(now() + Duration::seconds(31), &charged).verdict.is_ok());
}

#[test]
fn a_patch_takes_effect_only_when_installed() {
    let mut c = core(true);
    let patch = TenantPatch {
        limits: crate::tenant::LimitPatch { requests_per_minute: Some(Some(1)), ..Default::default() },
        ..Default::default()
    };
    let proposal = c.propose_patch(now(), &patch).unwrap();
    assert_eq!(c.snapshot(now()).limits.requests_per_minute, 3, "a proposal changes nothing");
    c.install(proposal);
    assert!(c.admit(now(), &request("ck_1")).verdict.is_ok());
    assert!(c.admit(now(), &request("ck_1")).verdict.is_err());
    let bad_plan = TenantPatch { plan: Some("gold".into()), ..Default::default() };
    assert_eq!(c.propose_patch(now(), &bad_plan).unwrap_err(), PatchError::UnknownPlan("gold".into()));
}

#[test]
fn the_snapshot_carries_the_fingerprint_of_the_record_in_effect() {
    let mut c = core(true);
    let before = c.snapshot(now());
    assert_eq!(before.record_fingerprint, Some(before.record.fingerprint()));
    c.install(c.propose_rotation(now(), KeyHash::of("ck_2"), None));
    let after = c.snapshot(now());
    assert_eq!(after.record_fingerprint, Some(after.record.fingerprint()), "computed again at install");
    assert_ne!(after.record_fingerprint, before.record_fingerprint);
}

#[test]
fn rotation_replaces_the_key_at_install() {
    let mut c = core(true);
    let proposal = c.propose_rotation(now(), KeyHash::of("ck_2"), None);
    assert!(c.admit(now(), &request("ck_1")).verdict.is_ok());
    c.install(proposal);
    assert!(c.admit(now(), &request("ck_1")).verdict.is_err());
    assert!(c.admit(now(), &request("ck_2")).verdict.is_ok());
}

#[test]
fn flush_hands_out_usage_per_day_and_a_checkpoint_once() {
    let mut c = core(true);
    c.admit(now(), &request("ck_1"));
    c.admit(now() + Duration::seconds(40), &request("ck_1")); // next day, next month
    let flush = c.flush();
    assert_eq!(flush.usage.len(), 2);
    assert_eq!(flush.usage[0].0, now().date_naive());
    let checkpoint = flush.checkpoint.expect("windows changed");
    assert_eq!(checkpoint.windows[0].count, 1, "the minute rolled over");
    assert_eq!(c.flush(), Flush::default(), "nothing new, nothing to write");
    // A core restored from the checkpoint continues the count.
    let mut restored =
        TenantCore::new(policy(true), record(), Some(checkpoint), UsageCounters::default(), now()).unwrap();
    let status = restored.admit(now() + Duration::seconds(41), &request("ck_1")).rate.unwrap();
    let minute = status.windows.iter().find(|w| w.window == Window::Minute).unwrap();
    assert_eq!(minute.remaining, 1);
}

#[test]
fn the_next_tick_is_at_once_while_counts_are_unwritten_then_when_idle_long_enough() {
    let idle_for = Duration::seconds(60);
    let mut c = core(true);
    let fresh = now() + Duration::seconds(5);
    assert_eq!(c.next_tick(fresh, idle_for), now() + idle_for, "nothing to write: only passivation");
    c.admit(fresh, &request("ck_1"));
    let later = fresh + Duration::seconds(1);
    assert_eq!(c.next_tick(later, idle_for), later, "usage and windows to write out");
    c.flush();
    assert_eq!(c.next_tick(later, idle_for), fresh + idle_for, "idle from the last request");
    assert!(c.is_idle(c.next_tick(later, idle_for), idle_for));
}

#[test]
fn idleness_is_measured_from_the_last_request() {
    let mut c = core(true);
    c.admit(now(), &request("ck_1"));
    assert!(!c.is_idle(now() + Duration::seconds(59), Duration::seconds(60)));
    assert!(c.is_idle(now() + Duration::seconds(60), Duration::seconds(60)));
}

#[test]
fn a_new_owner_continues_from_the_hand_off_with_the_same_windows_and_usage() {
    let mut old = core(true);
    for _ in 0..2 {
        assert!(old.admit(now(), &request("ck_1")).verdict.is_ok());
    }
    old.charge(now(), Quota::ToolInvocations).unwrap();
    let hand_off = old.hand_off(now());
    let encoded = serde_json::to_vec(&hand_off).unwrap();
    let hand_off: TenantHandOff = serde_json::from_slice(&encoded).unwrap();

    let mut new = TenantCore::from_hand_off(policy(true), hand_off.clone(), now()).unwrap().unwrap();
    assert!(new.admit(now(), &request("ck_1")).verdict.is_ok(), "one left in the minute");
    assert!(matches!(new.admit(now(), &request("ck_1")).verdict, Err(Denial::RateLimited { .. })));
    let usage = new.snapshot(now()).usage;
    assert_eq!((usage.requests, usage.api_calls, usage.rate_limited, usage.tool_invocations), (4, 3, 1, 1));
    assert!(new.charge(now(), Quota::ToolInvocations).is_ok());
    assert!(new.charge(now(), Quota::ToolInvocations).is_err(), "the quota of 2 counts the old owner's unit");
    // The old owner's usage is in the store already: the new owner writes out only its own.
    let written: u64 = new.flush().usage.iter().map(|(_, counters)| counters.api_calls).sum();
    assert_eq!(written, 1);

    // A hand-off of another month is not continued: the store's counts of this month are.
    let next_month = now() + Duration::seconds(60);
    assert!(TenantCore::from_hand_off(policy(true), hand_off, next_month).is_none());
}

#[test]
fn features_and_the_custom_server_quota_are_decided_by_the_core() {
    let mut record = record();
    record.features.oauth = Some(false);
    let c = TenantCore::new(policy(true), record, None, UsageCounters::default(), now()).unwrap();
    assert_eq!(c.gate(Feature::OAuth), Err("oauth"));
    assert_eq!(c.gate(Feature::CustomServers), Ok(()));
    // The policy allows one custom server.
    assert_eq!(c.room_for_custom_server(0), Ok(()));
    let exceeded = c.room_for_custom_server(1).unwrap_err();
    assert_eq!((exceeded.quota, exceeded.limit, exceeded.used), (Quota::CustomServers, 1, 1));
}
