use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;

use super::*;

const INTERVAL_MS: i64 = 1_000;
const TIMEOUT_MS: i64 = 5_000;
const CONFIG: MembershipConfig =
    MembershipConfig { heartbeat_interval_ms: INTERVAL_MS, failure_timeout_ms: TIMEOUT_MS };
/// When our incarnation started.
const STARTED_MS: i64 = 100;

fn id(name: &str) -> NodeId {
    NodeId::from(name)
}

fn record(name: &str, status: NodeStatus, heartbeat_ms: i64, started_ms: i64) -> MemberRecord {
    MemberRecord {
        id: id(name),
        http_addr: format!("{name}:8080"),
        cluster_addr: format!("{name}:4697"),
        status,
        heartbeat_ms,
        started_ms,
    }
}

/// Another node, `Up`, started at 0.
fn peer(name: &str, heartbeat_ms: i64) -> MemberRecord {
    record(name, NodeStatus::Up, heartbeat_ms, 0)
}

/// Our own record as the table would hold it.
fn me_in_table(status: NodeStatus, heartbeat_ms: i64) -> MemberRecord {
    record("me", status, heartbeat_ms, STARTED_MS)
}

fn membership() -> Membership {
    Membership::new(record("me", NodeStatus::Joining, STARTED_MS, STARTED_MS), CONFIG)
}

fn table(epoch: u64, members: Vec<MemberRecord>) -> MembershipInput {
    MembershipInput::TableRead(MembershipTable { epoch, members })
}

fn write_self(status: NodeStatus, heartbeat_ms: i64, bump_epoch: bool) -> MembershipEffect {
    MembershipEffect::WriteSelf { record: me_in_table(status, heartbeat_ms), bump_epoch, min_epoch: 0 }
}

fn view(epoch: u64, members: Vec<MemberRecord>) -> View {
    View { epoch, members }
}

fn remove(names: &[&str], expected_epoch: u64) -> MembershipEffect {
    MembershipEffect::RemoveMembers { ids: names.iter().map(|&name| id(name)).collect(), expected_epoch }
}

/// A node that wrote itself `Joining`, read it back (epoch 0) one failure timeout before 1_000 and
/// at every heartbeat since: its next tick at 1_000 writes it `Up`.
fn ready_to_join() -> Membership {
    let mut membership = membership();
    membership.handle(1_000 - TIMEOUT_MS, MembershipInput::Tick);
    for now in (1_000 - TIMEOUT_MS..1_000).step_by(INTERVAL_MS as usize) {
        membership.handle(now, table(0, vec![me_in_table(NodeStatus::Joining, now)]));
    }
    membership
}

/// A node that joined at epoch 1 at time 1_000, alone (epoch 0 showed it joining).
fn joined() -> Membership {
    let mut membership = ready_to_join();
    membership.handle(1_000, MembershipInput::Tick);
    membership.handle(1_000, table(1, vec![me_in_table(NodeStatus::Up, 1_000)]));
    membership
}

/// Reads `members(now)` at `epoch` once a heartbeat interval from `from` to `until` (both
/// included), as a live node keeps watching the table; the effects of all those reads.
fn read_every_interval(
    membership: &mut Membership,
    epoch: u64,
    from: i64,
    until: i64,
    members: impl Fn(i64) -> Vec<MemberRecord>,
) -> Vec<MembershipEffect> {
    (from..=until)
        .step_by(INTERVAL_MS as usize)
        .flat_map(|now| membership.handle(now, table(epoch, members(now))))
        .collect()
}

// Joining and heartbeats

#[test]
fn the_first_tick_writes_joining_and_up_follows_one_failure_timeout_later() {
    let mut membership = membership();
    assert_eq!(
        membership.handle(1_000, MembershipInput::Tick),
        vec![write_self(NodeStatus::Joining, 1_000, true), MembershipEffect::ReadTable]
    );
    assert_eq!(membership.view(), None);
    assert!(!membership.is_joined());
    assert!(!membership.table_reachable(), "nothing has been read yet");
    let effects = membership.handle(1_010, table(3, vec![me_in_table(NodeStatus::Joining, 1_000)]));
    assert!(matches!(effects[..], [MembershipEffect::ViewChanged(_)]), "a joining node sees the cluster");
    assert!(membership.view().unwrap().shard_map().nodes().is_empty(), "but owns nothing");
    assert_eq!(membership.lease_until_ms(), i64::MIN, "and has no lease to admit with");
    // The wait counts from the read that showed us joining (at 1_010), not from the write.
    let up = 1_010 + TIMEOUT_MS;
    read_every_interval(&mut membership, 3, 2_010, up - 1, |now| vec![me_in_table(NodeStatus::Joining, now)]);
    let before_up = up - 1;
    assert_eq!(
        membership.handle(before_up, MembershipInput::Tick)[0],
        write_self(NodeStatus::Joining, before_up, false)
    );
    assert_eq!(membership.handle(up, MembershipInput::Tick)[0], write_self(NodeStatus::Up, up, true));
    membership.handle(up + 10, table(4, vec![me_in_table(NodeStatus::Up, up)]));
    assert!(membership.is_joined());
    // The lease runs from our heartbeat before the latest (read at 5_010).
    assert_eq!(membership.lease_until_ms(), 5_010 + TIMEOUT_MS - INTERVAL_MS);
}

#[test]
fn the_first_read_that_contains_us_publishes_the_view() {
    let mut membership = ready_to_join();
    membership.handle(1_000, MembershipInput::Tick);
    let members = vec![peer("zed", 900), me_in_table(NodeStatus::Up, 1_000), peer("alpha", 950)];
    let effects = membership.handle(1_010, table(4, members));
    let expected = view(4, vec![peer("alpha", 950), me_in_table(NodeStatus::Up, 1_000), peer("zed", 900)]);
    assert_eq!(effects, vec![MembershipEffect::ViewChanged(expected.clone())]);
    assert_eq!(membership.view(), Some(&expected));
    assert!(membership.is_joined());
    assert!(membership.table_reachable());
}

#[test]
fn a_joining_node_cut_off_from_the_table_waits_again_once_it_is_back() {
    let mut membership = membership();
    membership.handle(1_000, MembershipInput::Tick);
    membership.handle(1_010, table(1, vec![me_in_table(NodeStatus::Joining, 1_000)]));
    membership.handle(2_000, MembershipInput::TableUnreachable);
    // It watched nothing while cut off: a whole failure timeout again from the next read.
    let up = 4_000 + TIMEOUT_MS;
    read_every_interval(&mut membership, 1, 4_000, up - 1, |now| vec![me_in_table(NodeStatus::Joining, now)]);
    let first_deadline = 1_010 + TIMEOUT_MS;
    assert_eq!(
        membership.handle(first_deadline, MembershipInput::Tick)[0],
        write_self(NodeStatus::Joining, first_deadline, false)
    );
    assert_eq!(membership.handle(up, MembershipInput::Tick)[0], write_self(NodeStatus::Up, up, true));
}

#[test]
fn a_joining_node_paused_through_its_wait_waits_again_before_going_up() {
    let mut membership = membership();
    membership.handle(1_000, MembershipInput::Tick);
    membership.handle(1_010, table(1, vec![me_in_table(NodeStatus::Joining, 1_000)]));
    // Paused until 20_000: meanwhile a member may have joined, served and been lost with a reset
    // of the table, still admitting under its lease. The tick after the pause decides on no read.
    assert_eq!(membership.handle(20_000, MembershipInput::Tick)[0], write_self(NodeStatus::Joining, 20_000, false));
    membership.handle(20_010, table(1, vec![me_in_table(NodeStatus::Joining, 20_000)]));
    let mut now = 20_010;
    while now < 20_010 + TIMEOUT_MS - INTERVAL_MS {
        now += INTERVAL_MS;
        assert_eq!(membership.handle(now, MembershipInput::Tick)[0], write_self(NodeStatus::Joining, now, false));
        membership.handle(now, table(1, vec![me_in_table(NodeStatus::Joining, now)]));
    }
    let up = 20_010 + TIMEOUT_MS;
    assert_eq!(membership.handle(up, MembershipInput::Tick)[0], write_self(NodeStatus::Up, up, true));
}

#[test]
fn a_read_without_us_publishes_nothing_before_we_join() {
    let mut membership = membership();
    membership.handle(1_000, MembershipInput::Tick);
    assert_eq!(membership.handle(1_010, table(3, vec![peer("alpha", 1_000)])), vec![]);
    assert_eq!(membership.view(), None);
    assert!(membership.table_reachable());
}

#[test]
fn the_join_bump_repeats_until_a_read_shows_us() {
    let mut membership = ready_to_join();
    membership.handle(1_000, MembershipInput::Tick);
    membership.handle(1_010, MembershipInput::TableUnreachable);
    assert_eq!(membership.handle(2_000, MembershipInput::Tick)[0], write_self(NodeStatus::Up, 2_000, true));
    membership.handle(2_010, table(1, vec![me_in_table(NodeStatus::Up, 2_000)]));
    assert_eq!(membership.handle(3_000, MembershipInput::Tick)[0], write_self(NodeStatus::Up, 3_000, false));
}

#[test]
fn heartbeats_write_the_time_without_a_bump() {
    let mut membership = joined();
    assert_eq!(
        membership.handle(2_000, MembershipInput::Tick),
        vec![write_self(NodeStatus::Up, 2_000, false), MembershipEffect::ReadTable]
    );
    assert_eq!(membership.handle(2_010, table(1, vec![me_in_table(NodeStatus::Up, 2_000)])), vec![]);
}

#[test]
fn a_restarted_node_does_not_take_its_old_record_for_its_own() {
    let mut membership = membership();
    membership.handle(1_000, MembershipInput::Tick);
    let old_incarnation = record("me", NodeStatus::Up, 500, 0);
    assert_eq!(membership.handle(1_010, table(6, vec![old_incarnation.clone(), peer("alpha", 1_000)])), vec![]);
    assert!(!membership.is_joined());
    assert_eq!(membership.handle(2_000, MembershipInput::Tick)[0], write_self(NodeStatus::Joining, 2_000, true));
    // Stale as it is, the old record is never proposed for removal: removing it would remove us.
    for now in [8_000, 20_000] {
        let effects = membership.handle(now, table(6, vec![old_incarnation.clone(), peer("alpha", now)]));
        assert_eq!(effects, vec![]);
    }
}

// Views and epochs

#[test]
fn the_view_changes_only_when_the_epoch_grows() {
    let mut membership = joined();
    // Same epoch, new heartbeats: the same view.
    assert_eq!(membership.handle(2_000, table(1, vec![me_in_table(NodeStatus::Up, 2_000)])), vec![]);
    let members = vec![me_in_table(NodeStatus::Up, 3_000), peer("beta", 2_900)];
    let effects = membership.handle(3_000, table(2, members.clone()));
    assert_eq!(effects, vec![MembershipEffect::ViewChanged(view(2, vec![peer("beta", 2_900), members[0].clone()]))]);
}

#[test]
fn an_older_table_is_ignored() {
    let mut membership = joined();
    membership.handle(2_000, table(5, vec![me_in_table(NodeStatus::Up, 2_000), peer("beta", 2_000)]));
    let before = membership.view().cloned();
    // A slow answer from before we joined, then one from epoch 4: neither goes back.
    assert_eq!(membership.handle(2_100, table(0, vec![])), vec![]);
    assert_eq!(membership.handle(2_200, table(4, vec![me_in_table(NodeStatus::Draining, 2_000)])), vec![]);
    assert_eq!(membership.view().cloned(), before);
    assert!(membership.is_joined(), "the ignored read does not count either");
    assert_eq!(membership.view().map(|view| view.epoch), Some(5));
}

#[test]
fn after_removal_the_node_publishes_the_view_without_it_then_rejoins() {
    let mut membership = joined();
    // We were paused; the others removed us at epoch 2.
    let effects = membership.handle(30_000, table(2, vec![peer("beta", 29_000)]));
    assert_eq!(effects, vec![MembershipEffect::ViewChanged(view(2, vec![peer("beta", 29_000)]))]);
    assert!(!membership.is_joined());
    assert_eq!(membership.view().map(|view| view.shard_map().count_owned_by(&id("me"))), Some(0));
    assert_eq!(membership.handle(30_100, MembershipInput::Tick)[0], write_self(NodeStatus::Up, 30_100, true));
    let members = vec![me_in_table(NodeStatus::Up, 30_100), peer("beta", 30_000)];
    let effects = membership.handle(30_200, table(3, members));
    assert!(matches!(&effects[..], [MembershipEffect::ViewChanged(view)] if view.epoch == 3));
    assert!(membership.is_joined());
}

// Failure detection

#[test]
fn a_dead_member_is_proposed_for_removal_once_per_epoch() {
    let mut membership = joined();
    let members = |now| vec![me_in_table(NodeStatus::Up, now), peer("beta", 1_000), peer("gamma", now)];
    membership.handle(1_000, table(2, members(1_000)));
    // beta has not heartbeated since 1_000: stale by its timestamp and unchanged for as long.
    let effects = read_every_interval(&mut membership, 2, 2_000, 6_000, members);
    assert_eq!(effects, vec![], "exactly the timeout is not older");
    assert_eq!(membership.handle(6_001, table(2, members(6_001))), vec![remove(&["beta"], 2)]);
    assert_eq!(membership.handle(7_000, table(2, members(7_000))), vec![], "already proposed at epoch 2");
    // The compare-and-set lost to a join at epoch 3: propose again against 3.
    let mut with_delta = members(8_000);
    with_delta.push(peer("delta", 8_000));
    let effects = membership.handle(8_000, table(3, with_delta));
    assert_eq!(effects[1..], [remove(&["beta"], 3)]);
    // The view still has beta until the removal is read back.
    assert!(membership.view().is_some_and(|view| view.member(&id("beta")).is_some()));
    let effects = membership.handle(9_000, table(4, vec![me_in_table(NodeStatus::Up, 9_000), peer("gamma", 9_000)]));
    let without_beta = view(4, vec![peer("gamma", 9_000), me_in_table(NodeStatus::Up, 9_000)]);
    assert_eq!(effects, vec![MembershipEffect::ViewChanged(without_beta)]);
}

#[test]
fn members_going_stale_later_in_the_same_epoch_are_proposed_on_their_own() {
    let mut membership = joined();
    let members = |beta, gamma| vec![me_in_table(NodeStatus::Up, 0), peer("beta", beta), peer("gamma", gamma)];
    membership.handle(1_000, table(2, members(1_000, 1_000)));
    assert_eq!(read_every_interval(&mut membership, 2, 2_000, 6_000, |_| members(1_000, 2_000)), vec![]);
    assert_eq!(membership.handle(6_500, table(2, members(1_000, 2_000))), vec![remove(&["beta"], 2)]);
    assert_eq!(membership.handle(7_500, table(2, members(1_000, 2_000))), vec![remove(&["gamma"], 2)]);
}

#[test]
fn a_fresh_node_watches_for_a_timeout_before_removing_anyone() {
    let mut membership = membership();
    membership.handle(100_000, MembershipInput::Tick);
    let members = vec![me_in_table(NodeStatus::Up, 100_000), peer("ghost", 1_000)];
    let effects = membership.handle(100_000, table(9, members.clone()));
    assert!(matches!(&effects[..], [MembershipEffect::ViewChanged(_)]), "no removal on first sight: {effects:?}");
    assert_eq!(read_every_interval(&mut membership, 9, 101_000, 105_000, |_| members.clone()), vec![]);
    assert_eq!(membership.handle(105_001, table(9, members)), vec![remove(&["ghost"], 9)]);
}

#[test]
fn a_node_whose_clock_lags_is_not_removed_while_it_heartbeats() {
    let mut membership = joined();
    // beta's clock is a minute behind ours, so its heartbeats always look old; but they change.
    for now in (2_000..30_000).step_by(1_000) {
        let effects =
            membership.handle(now, table(1, vec![me_in_table(NodeStatus::Up, now), peer("beta", now - 60_000)]));
        assert!(effects.iter().all(|effect| !matches!(effect, MembershipEffect::RemoveMembers { .. })), "at {now}");
    }
}

#[test]
fn a_heartbeat_from_the_future_counts_as_fresh() {
    let mut membership = joined();
    // beta's clock was a minute ahead of ours when it died at our 1_000.
    let members = vec![me_in_table(NodeStatus::Up, 0), peer("beta", 61_000)];
    membership.handle(1_000, table(2, members.clone()));
    assert_eq!(read_every_interval(&mut membership, 2, 1_000, 66_000, |_| members.clone()), vec![]);
    assert_eq!(membership.handle(66_001, table(2, members)), vec![remove(&["beta"], 2)]);
}

#[test]
fn our_own_stale_record_is_never_proposed() {
    let mut membership = joined();
    let members = vec![me_in_table(NodeStatus::Up, 1_000), peer("beta", 1_000)];
    membership.handle(1_000, table(2, members.clone()));
    let effects = read_every_interval(&mut membership, 2, 1_000, 50_000, |_| members.clone());
    assert_eq!(effects, vec![remove(&["beta"], 2)]);
}

// Reachability and draining

#[test]
fn an_unreachable_table_keeps_the_view() {
    let mut membership = joined();
    let before = membership.view().cloned();
    assert_eq!(membership.handle(2_000, MembershipInput::TableUnreachable), vec![]);
    assert!(!membership.table_reachable());
    assert_eq!(membership.view().cloned(), before);
    assert!(membership.is_joined(), "the last table read still shows us");
    assert_eq!(membership.handle(3_000, MembershipInput::Tick)[0], write_self(NodeStatus::Up, 3_000, false));
    membership.handle(3_010, table(1, vec![me_in_table(NodeStatus::Up, 3_000)]));
    assert!(membership.table_reachable());
}

#[test]
fn after_an_outage_of_the_table_every_member_gets_a_full_timeout_to_heartbeat_again() {
    let mut membership = joined();
    membership.handle(1_000, table(2, vec![me_in_table(NodeStatus::Up, 1_000), peer("beta", 1_000)]));
    membership.handle(2_000, MembershipInput::TableUnreachable);
    // Back 20 s later: beta could not write either, its heartbeat is old and unchanged.
    let back = 22_000;
    let effects = membership.handle(back, table(2, vec![me_in_table(NodeStatus::Up, 1_000), peer("beta", 1_000)]));
    assert!(!effects.iter().any(|e| matches!(e, MembershipEffect::RemoveMembers { .. })), "{effects:?}");
    // Still silent a full timeout after the table came back: now it is dead.
    let members = |now| vec![me_in_table(NodeStatus::Up, now), peer("beta", 1_000)];
    let effects = read_every_interval(&mut membership, 2, back + INTERVAL_MS, back + TIMEOUT_MS, members);
    assert!(!effects.iter().any(|e| matches!(e, MembershipEffect::RemoveMembers { .. })), "{effects:?}");
    let effects = membership.handle(back + TIMEOUT_MS + 1, table(2, members(back + TIMEOUT_MS + 1)));
    assert!(effects.contains(&remove(&["beta"], 2)), "{effects:?}");
}

#[test]
fn draining_writes_the_status_with_a_bump_and_gives_up_the_shards() {
    let mut membership = joined();
    assert_eq!(
        membership.start_draining(),
        vec![write_self(NodeStatus::Draining, 1_000, true), MembershipEffect::ReadTable]
    );
    let members = vec![me_in_table(NodeStatus::Draining, 1_000), peer("beta", 1_000)];
    membership.handle(1_010, table(2, members));
    assert!(!membership.is_joined());
    let shard_map = membership.view().map(View::shard_map).expect("joined nodes have a view");
    assert_eq!(shard_map.nodes(), &[id("beta")]);
    assert_eq!(shard_map.epoch(), 2);
    assert_eq!(membership.handle(2_000, MembershipInput::Tick)[0], write_self(NodeStatus::Draining, 2_000, false));
}

#[test]
fn only_up_members_own_shards() {
    let view = view(
        3,
        vec![
            record("a", NodeStatus::Joining, 0, 0),
            record("b", NodeStatus::Up, 0, 0),
            record("c", NodeStatus::Draining, 0, 0),
            record("d", NodeStatus::Down, 0, 0),
            record("e", NodeStatus::Up, 0, 0),
        ],
    );
    assert_eq!(view.shard_map(), ShardMap::new(3, [id("b"), id("e")]));
    assert_eq!(view.member(&id("c")).map(|member| member.status), Some(NodeStatus::Draining));
    assert_eq!(view.member(&id("x")), None);
}

#[test]
fn records_use_the_documented_json_names() {
    let json = serde_json::to_value(me_in_table(NodeStatus::Draining, 7)).expect("records serialize");
    assert_eq!(
        json,
        serde_json::json!({
            "id": "me", "httpAddr": "me:8080", "clusterAddr": "me:4697",
            "status": "draining", "heartbeatMs": 7, "startedMs": STARTED_MS,
        })
    );
}

#[test]
fn config_check_rejects_timeouts_a_late_heartbeat_would_trip() {
    assert_eq!(CONFIG.check(), Ok(()));
    let short = MembershipConfig { heartbeat_interval_ms: 1_000, failure_timeout_ms: 3_999 };
    assert_eq!(short.check(), Err(BadMembershipConfig::FailureTimeout { timeout_ms: 3_999, interval_ms: 1_000 }));
    let message = short.check().map_err(|error| error.to_string());
    assert_eq!(
        message,
        Err("failure timeout (3999 ms) must be at least 4 heartbeat intervals (1000 ms), or one late heartbeat evicts a live node".to_string())
    );
    let zero = MembershipConfig { heartbeat_interval_ms: 0, failure_timeout_ms: 5_000 };
    assert_eq!(zero.check(), Err(BadMembershipConfig::HeartbeatInterval(0)));
}

// The lease, incarnations and resets

#[test]
fn the_lease_runs_from_the_heartbeat_the_table_holds_and_lapses_without_reads() {
    let mut membership = joined();
    membership.handle(2_000, MembershipInput::Tick);
    membership.handle(2_010, table(1, vec![me_in_table(NodeStatus::Up, 2_000)]));
    // From our heartbeat before the latest: a failover may lose the latest before a peer read it.
    assert_eq!(membership.lease_until_ms(), 1_000 + TIMEOUT_MS - INTERVAL_MS);
    // The table is unreachable: nothing renews the lease, whatever the ticks write.
    membership.handle(3_000, MembershipInput::Tick);
    membership.handle(3_010, MembershipInput::TableUnreachable);
    assert_eq!(membership.lease_until_ms(), 1_000 + TIMEOUT_MS - INTERVAL_MS);
    // A read that shows an older heartbeat of ours (a failover lost our writes) does not extend
    // it, nor does the next one: the heartbeat before it is the old one.
    membership.handle(4_000, MembershipInput::Tick);
    membership.handle(4_010, table(1, vec![me_in_table(NodeStatus::Up, 1_000)]));
    assert_eq!(membership.lease_until_ms(), 1_000 + TIMEOUT_MS - INTERVAL_MS);
    membership.handle(5_010, table(1, vec![me_in_table(NodeStatus::Up, 5_000)]));
    assert_eq!(membership.lease_until_ms(), 1_000 + TIMEOUT_MS - INTERVAL_MS);
    membership.handle(6_010, table(1, vec![me_in_table(NodeStatus::Up, 6_000)]));
    assert_eq!(membership.lease_until_ms(), 5_000 + TIMEOUT_MS - INTERVAL_MS);
}

/// Finding 20 of the simulator: a failover can lose our latest heartbeat before any peer read
/// it; the peer then counts our silence from the one before. Our lease runs from that one too.
#[test]
fn a_heartbeat_a_failover_lost_before_any_peer_read_it_does_not_outlast_our_removal() {
    let mut membership = joined();
    membership.handle(2_000, MembershipInput::Tick);
    membership.handle(2_010, table(1, vec![me_in_table(NodeStatus::Up, 2_000)]));
    // Paused until 4_500 (less than a failure timeout): we write 4_500 and read it back.
    membership.handle(4_500, MembershipInput::Tick);
    membership.handle(4_510, table(1, vec![me_in_table(NodeStatus::Up, 4_500)]));
    // A failover loses 4_500 before the peer reads it: the peer sees 2_000 from 2_020 on.
    let mut peer = Membership::new(record("peer", NodeStatus::Up, 0, 0), CONFIG);
    let ours = me_in_table(NodeStatus::Up, 2_000);
    let removal = (2_020..20_000)
        .step_by(50)
        .find(|now| {
            let effects = peer.handle(*now, table(1, vec![ours.clone(), peer_record(*now)]));
            effects.iter().any(|effect| matches!(effect, MembershipEffect::RemoveMembers { .. }))
        })
        .expect("the peer removes a silent member");
    assert!(
        membership.lease_until_ms() < removal,
        "our lease runs until {}, the peer removes us at {removal}",
        membership.lease_until_ms()
    );
}

#[test]
fn a_lapsed_lease_ends_before_any_peer_may_remove_us() {
    // A peer removes us only after watching our heartbeat unchanged for a whole failure timeout of
    // its own time, which starts no earlier than our write; our lease ends an interval before.
    let mut membership = joined();
    let heartbeat = 1_000;
    let mut peer = Membership::new(record("peer", NodeStatus::Up, 0, 0), CONFIG);
    let ours = me_in_table(NodeStatus::Up, heartbeat);
    // The peer's clock runs 3 s ahead of ours; it first sees our heartbeat at our time 1_005.
    let skew = 3_000;
    let mut first_removal = None;
    for our_now in (1_005..20_000).step_by(50) {
        let effects = peer.handle(our_now + skew, table(1, vec![ours.clone(), peer_record(our_now + skew)]));
        if effects.iter().any(|effect| matches!(effect, MembershipEffect::RemoveMembers { .. })) {
            first_removal = Some(our_now);
            break;
        }
    }
    let removal = first_removal.expect("the peer removes a silent member");
    assert!(
        membership.lease_until_ms() + INTERVAL_MS <= removal,
        "lease {} vs removal {removal}",
        membership.lease_until_ms()
    );
    membership.handle(removal, MembershipInput::TableUnreachable);
}

fn peer_record(heartbeat_ms: i64) -> MemberRecord {
    record("peer", NodeStatus::Up, heartbeat_ms, 0)
}

#[test]
fn a_newer_incarnation_of_our_id_supersedes_us_for_good() {
    let mut membership = joined();
    let newer = record("me", NodeStatus::Joining, 2_000, STARTED_MS + 1);
    membership.handle(2_010, table(2, vec![newer.clone()]));
    assert!(membership.is_superseded());
    assert_eq!(membership.lease_until_ms(), i64::MIN);
    assert_eq!(membership.handle(3_000, MembershipInput::Tick), vec![], "no more heartbeats: they would overwrite it");
    assert_eq!(membership.start_draining(), vec![]);
    // An older incarnation in the table is simply replaced by our next write.
    let mut fresh = ready_to_join();
    fresh.handle(1_000, table(5, vec![record("me", NodeStatus::Up, 900, STARTED_MS - 1)]));
    assert!(!fresh.is_superseded());
    assert_eq!(fresh.handle(1_100, MembershipInput::Tick)[0], write_self(NodeStatus::Up, 1_100, true));
}

#[test]
fn a_table_that_went_backwards_is_a_reset_we_rejoin_above() {
    let mut membership = joined();
    membership.handle(2_000, MembershipInput::Tick);
    membership.handle(2_010, table(7, vec![me_in_table(NodeStatus::Up, 2_000), peer("alpha", 2_000)]));
    let lease = membership.lease_until_ms();
    // Redis was flushed: the epoch starts again and our record is gone.
    assert_eq!(membership.handle(2_500, table(1, vec![peer("alpha", 2_500)])), vec![]);
    assert_eq!(membership.lease_until_ms(), lease, "a backwards read renews nothing");
    assert_eq!(membership.view().map(|view| view.epoch), Some(7), "and the view does not go back");
    let effects = membership.handle(3_000, MembershipInput::Tick);
    assert_eq!(
        effects[0],
        MembershipEffect::WriteSelf { record: me_in_table(NodeStatus::Up, 3_000), bump_epoch: true, min_epoch: 8 }
    );
    let effects = membership.handle(3_010, table(8, vec![me_in_table(NodeStatus::Up, 3_000)]));
    assert!(matches!(effects[..], [MembershipEffect::ViewChanged(ref view)] if view.epoch == 8));
    // alpha vanished without being watched dead: its shards wait for its lease to run out.
    assert_eq!(membership.takeover_not_before_ms(), 3_010 + TIMEOUT_MS);
    assert_eq!(membership.handle(4_000, MembershipInput::Tick)[0], write_self(NodeStatus::Up, 4_000, false));
}

#[test]
fn a_member_removed_after_we_watched_it_die_needs_no_wait_and_one_that_left_neither() {
    let mut membership = joined();
    membership
        .handle(1_010, table(2, vec![me_in_table(NodeStatus::Up, 1_000), peer("dead", 1_000), peer("gone", 1_000)]));
    // "gone" leaves gracefully; "dead" stops heartbeating.
    let mut now = 1_000;
    while now < 1_000 + TIMEOUT_MS + 2 * INTERVAL_MS {
        now += INTERVAL_MS;
        let gone = record("gone", NodeStatus::Down, now, 0);
        membership.handle(now, table(3, vec![me_in_table(NodeStatus::Up, now), peer("dead", 1_000), gone]));
    }
    let effects = membership.handle(now, table(4, vec![me_in_table(NodeStatus::Up, now)]));
    assert!(matches!(effects[..], [MembershipEffect::ViewChanged(_)]));
    assert!(membership.takeover_not_before_ms() < now, "nothing to wait for");
}

#[test]
fn leaving_writes_down_ends_the_lease_and_stops_heartbeats() {
    let mut membership = joined();
    assert_eq!(membership.leave(), vec![write_self(NodeStatus::Down, 1_000, true), MembershipEffect::ReadTable]);
    assert_eq!(membership.lease_until_ms(), i64::MIN);
    membership.handle(1_010, table(2, vec![me_in_table(NodeStatus::Down, 1_000)]));
    assert_eq!(membership.lease_until_ms(), i64::MIN);
    assert_eq!(membership.handle(2_000, MembershipInput::Tick), vec![]);
}

#[test]
fn a_pause_is_not_watching_a_member_that_vanished_meanwhile() {
    let mut membership = joined();
    for now in [1_500, 2_000] {
        membership.handle(now, table(2, vec![me_in_table(NodeStatus::Up, now), peer("beta", now)]));
    }
    // Paused until 20_000; beta's record is gone then (the table was reset while we slept). That
    // we last saw it long ago does not mean we watched it go silent: it may have heartbeated since.
    membership.handle(20_000, table(3, vec![me_in_table(NodeStatus::Up, 20_000)]));
    assert_eq!(membership.takeover_not_before_ms(), 20_000 + TIMEOUT_MS);
}

#[test]
fn a_pause_is_not_watching_a_member_stay_silent() {
    let mut membership = joined();
    let members = |now, beta| vec![me_in_table(NodeStatus::Up, now), peer("beta", beta)];
    for now in [1_500, 2_000] {
        membership.handle(now, table(2, members(now, now)));
    }
    // Paused until 9_000; a failover lost beta's heartbeats since 2_000 (and the removal of us
    // it may have made), so the table looks as we left it. beta heartbeated in the gap, unseen:
    // its silence counts from this read on.
    assert_eq!(membership.handle(9_000, table(2, members(9_000, 2_000))), vec![]);
    let effects = read_every_interval(&mut membership, 2, 10_000, 14_000, |now| members(now, 2_000));
    assert_eq!(effects, vec![]);
    assert_eq!(membership.handle(14_001, table(2, members(14_001, 2_000))), vec![remove(&["beta"], 2)]);
}

#[test]
fn after_a_pause_shards_wait_for_members_that_came_and_went_unseen() {
    let mut membership = joined();
    // Paused until 20_000, alone in view 1. Meanwhile others joined, took our shards and served
    // them, and a failover lost every record since our join: the table went back.
    assert_eq!(membership.handle(20_000, table(0, vec![])), vec![]);
    let rejoin = membership.handle(20_100, MembershipInput::Tick);
    assert!(matches!(rejoin[0], MembershipEffect::WriteSelf { bump_epoch: true, min_epoch: 2, .. }), "{rejoin:?}");
    let effects = membership.handle(20_110, table(2, vec![me_in_table(NodeStatus::Up, 20_100)]));
    assert!(matches!(effects[..], [MembershipEffect::ViewChanged(_)]));
    assert_eq!(membership.takeover_not_before_ms(), 20_000 + TIMEOUT_MS);
}

#[test]
fn one_epoch_with_two_member_sets_has_two_fingerprints() {
    let one = view(7, vec![peer("alpha", 1), me_in_table(NodeStatus::Up, 1)]);
    let other = view(7, vec![peer("beta", 1), me_in_table(NodeStatus::Up, 1)]);
    assert_ne!(one.fingerprint(), other.fingerprint());
    let restarted = view(7, vec![record("alpha", NodeStatus::Up, 1, 99), me_in_table(NodeStatus::Up, 1)]);
    assert_ne!(one.fingerprint(), restarted.fingerprint());
    let later_heartbeat = view(7, vec![peer("alpha", 5), me_in_table(NodeStatus::Up, 9)]);
    assert_eq!(one.fingerprint(), later_heartbeat.fingerprint(), "heartbeats do not change the view");
}

// Several nodes over one in-memory table that honours the shell contract.

/// The shared table, doing what the Redis shell must do atomically.
#[derive(Default)]
struct SharedTable {
    epoch: u64,
    members: BTreeMap<NodeId, MemberRecord>,
    removals_committed: usize,
}

impl SharedTable {
    fn apply(&mut self, effect: &MembershipEffect) {
        match effect {
            MembershipEffect::WriteSelf { record, bump_epoch: true, min_epoch } => {
                self.members.insert(record.id.clone(), record.clone());
                self.epoch = (self.epoch + 1).max(*min_epoch);
            }
            MembershipEffect::WriteSelf { record, bump_epoch: false, .. } => {
                if let Some(existing) = self.members.get_mut(&record.id) {
                    *existing = record.clone();
                }
            }
            MembershipEffect::RemoveMembers { ids, expected_epoch } if *expected_epoch == self.epoch => {
                for id in ids {
                    self.members.remove(id);
                }
                self.epoch += 1;
                self.removals_committed += 1;
            }
            MembershipEffect::RemoveMembers { .. } | MembershipEffect::ReadTable | MembershipEffect::ViewChanged(_) => {
            }
        }
    }

    fn read(&self) -> MembershipInput {
        table(self.epoch, self.members.values().cloned().collect())
    }
}

struct Cluster {
    table: SharedTable,
    nodes: Vec<(Membership, bool)>,
    /// Every view each node published, in order.
    published: Vec<Vec<View>>,
}

impl Cluster {
    fn new(names: &[&str]) -> Self {
        let nodes =
            names.iter().map(|name| (Membership::new(record(name, NodeStatus::Joining, 0, 0), CONFIG), true)).collect();
        Self { table: SharedTable::default(), nodes, published: vec![Vec::new(); names.len()] }
    }

    /// One tick of every running node, each carrying out its effects before the next one ticks.
    fn tick_all(&mut self, now: i64) {
        for index in 0..self.nodes.len() {
            if self.nodes[index].1 {
                self.run(index, now, MembershipInput::Tick);
            }
        }
    }

    fn run(&mut self, index: usize, now: i64, input: MembershipInput) {
        let mut pending = vec![input];
        while let Some(input) = pending.pop() {
            for effect in self.nodes[index].0.handle(now, input) {
                self.table.apply(&effect);
                match effect {
                    MembershipEffect::ReadTable => pending.push(self.table.read()),
                    MembershipEffect::ViewChanged(view) => self.published[index].push(view),
                    _ => {}
                }
            }
        }
    }

    fn view_of(&self, index: usize) -> Option<&View> {
        self.nodes[index].0.view()
    }
}

/// Ticks every running node until all have been `Up` for a round.
fn join_all(cluster: &mut Cluster, now: &mut i64) {
    for _ in 0..(TIMEOUT_MS / INTERVAL_MS + 2) {
        *now += INTERVAL_MS;
        cluster.tick_all(*now);
    }
}

#[test]
fn three_nodes_agree_remove_a_dead_one_once_and_take_it_back_after_restart() {
    let mut cluster = Cluster::new(&["a", "b", "c"]);
    let mut now = 0;
    join_all(&mut cluster, &mut now);
    let epoch = cluster.table.epoch;
    assert_eq!(epoch, 6, "two bumps per join: joining, then up");
    for index in 0..3 {
        let view = cluster.view_of(index).expect("every node joined");
        assert_eq!((view.epoch, view.members.len()), (6, 3));
        assert_eq!(view.shard_map().nodes().len(), 3);
        assert_eq!(view.shard_map(), cluster.view_of(0).map(View::shard_map).expect("a joined"));
    }

    // c dies; a and b find it dead after the timeout; one removal commits, the other's CAS fails.
    cluster.nodes[2].1 = false;
    for _ in 0..10 {
        now += INTERVAL_MS;
        cluster.tick_all(now);
    }
    assert_eq!(cluster.table.removals_committed, 1);
    for index in 0..2 {
        let view = cluster.view_of(index).expect("still joined");
        assert_eq!(view.epoch, 7);
        assert_eq!(view.members.iter().map(|member| member.id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    }

    // c restarts as a new incarnation and joins again.
    cluster.nodes[2] = (Membership::new(record("c", NodeStatus::Joining, now, now), CONFIG), true);
    join_all(&mut cluster, &mut now);
    for index in 0..3 {
        assert_eq!(cluster.view_of(index).map(|view| (view.epoch, view.members.len())), Some((9, 3)));
    }
    for views in &cluster.published {
        assert!(views.windows(2).all(|pair| pair[0].epoch < pair[1].epoch), "epochs went back: {views:?}");
    }
}

#[test]
fn a_paused_node_is_removed_and_rejoins_with_a_bump() {
    let mut cluster = Cluster::new(&["a", "b"]);
    let mut now = 0;
    join_all(&mut cluster, &mut now);
    cluster.nodes[1].1 = false;
    for _ in 0..8 {
        now += INTERVAL_MS;
        cluster.tick_all(now);
    }
    assert_eq!(cluster.view_of(0).map(|view| view.members.len()), Some(1));
    assert!(cluster.nodes[1].0.lease_until_ms() < now, "b's lease ran out before it was removed");
    // b wakes up: its heartbeat must not resurrect its record silently; it rejoins with a bump
    // (its heartbeat went unseen for over a failure timeout, so its first write bumps).
    cluster.nodes[1].1 = true;
    now += INTERVAL_MS;
    let removed_at = cluster.table.epoch;
    cluster.run(1, now, MembershipInput::Tick);
    assert_eq!(cluster.table.epoch, removed_at + 1);
    assert_eq!(cluster.view_of(1).map(|view| view.members.len()), Some(2), "b is back");
    // b's rejoin lands after a's read in the first round; a sees it in the second.
    for _ in 0..2 {
        now += INTERVAL_MS;
        cluster.tick_all(now);
    }
    let epoch = cluster.table.epoch;
    assert_eq!(cluster.view_of(0).map(|view| (view.epoch, view.members.len())), Some((epoch, 2)));
    assert_eq!(cluster.view_of(1).map(|view| (view.epoch, view.members.len())), Some((epoch, 2)));
}

// Properties over arbitrary input sequences from one node's point of view.

/// One input; a read shows the shared table after `TableChange`, so records persist (and go stale)
/// across reads the way they do in the real table.
#[derive(Debug, Clone)]
enum Step {
    Tick,
    Read(TableChange),
    Unreachable,
    Drain,
}

#[derive(Debug, Clone)]
struct TableChange {
    epoch: EpochChange,
    /// One per name in `PEERS`.
    peers: Vec<PeerChange>,
    me: OwnRecordChange,
}

#[derive(Debug, Clone, Copy)]
enum EpochChange {
    Same,
    Bump,
    /// This read is that many epochs behind the table (a slow answer, a lagging replica).
    Lagging(u64),
}

#[derive(Debug, Clone, Copy)]
enum PeerChange {
    Unchanged,
    /// Heartbeat at now plus this skew of the peer's clock.
    Heartbeat(i64),
    Joined(NodeStatus),
    Removed,
    Status(NodeStatus),
}

#[derive(Debug, Clone, Copy)]
enum OwnRecordChange {
    Unchanged,
    /// Our incarnation with this status and our latest heartbeat.
    Ours(NodeStatus),
    /// A record of ours from before the restart.
    OldIncarnation,
    Removed,
}

const PEERS: [&str; 3] = ["n1", "n2", "n3"];

fn any_status() -> impl Strategy<Value = NodeStatus> {
    prop_oneof![Just(NodeStatus::Joining), Just(NodeStatus::Up), Just(NodeStatus::Draining), Just(NodeStatus::Down)]
}

fn any_table_change() -> impl Strategy<Value = TableChange> {
    let epoch = prop_oneof![5 => Just(EpochChange::Same), 3 => Just(EpochChange::Bump), 1 => (1u64..4).prop_map(EpochChange::Lagging)];
    let peer = prop_oneof![
        8 => Just(PeerChange::Unchanged),
        4 => (-20_000i64..20_000).prop_map(PeerChange::Heartbeat),
        1 => any_status().prop_map(PeerChange::Joined),
        1 => Just(PeerChange::Removed),
        1 => any_status().prop_map(PeerChange::Status),
    ];
    let me = prop_oneof![
        6 => Just(OwnRecordChange::Unchanged),
        3 => any_status().prop_map(OwnRecordChange::Ours),
        1 => Just(OwnRecordChange::OldIncarnation),
        1 => Just(OwnRecordChange::Removed),
    ];
    (epoch, prop::collection::vec(peer, PEERS.len()), me).prop_map(|(epoch, peers, me)| TableChange {
        epoch,
        peers,
        me,
    })
}

fn any_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => Just(Step::Tick),
        6 => any_table_change().prop_map(Step::Read),
        1 => Just(Step::Unreachable),
        1 => Just(Step::Drain),
    ]
}

/// The table the steps change; each read shows it.
#[derive(Default)]
struct ChangingTable {
    epoch: u64,
    members: BTreeMap<NodeId, MemberRecord>,
}

impl ChangingTable {
    fn read(&mut self, now: i64, change: &TableChange) -> MembershipTable {
        for (name, peer) in PEERS.iter().zip(&change.peers) {
            let existing = self.members.get_mut(&id(name));
            match (*peer, existing) {
                (PeerChange::Unchanged, _) => {}
                (PeerChange::Heartbeat(skew), Some(member)) => member.heartbeat_ms = now + skew,
                (PeerChange::Status(status), Some(member)) => member.status = status,
                (PeerChange::Heartbeat(_) | PeerChange::Status(_), None) => {}
                (PeerChange::Joined(status), _) => {
                    self.members.insert(id(name), record(name, status, now, now));
                }
                (PeerChange::Removed, _) => {
                    self.members.remove(&id(name));
                }
            }
        }
        match change.me {
            OwnRecordChange::Unchanged => {}
            OwnRecordChange::Ours(status) => {
                let heartbeat = self.members.get(&id("me")).map_or(now, |member| member.heartbeat_ms);
                self.members.insert(id("me"), me_in_table(status, heartbeat));
            }
            OwnRecordChange::OldIncarnation => {
                self.members.insert(id("me"), record("me", NodeStatus::Up, 0, 0));
            }
            OwnRecordChange::Removed => {
                self.members.remove(&id("me"));
            }
        }
        let epoch = match change.epoch {
            EpochChange::Same => self.epoch,
            EpochChange::Bump => {
                self.epoch += 1;
                self.epoch
            }
            EpochChange::Lagging(behind) => self.epoch.saturating_sub(behind),
        };
        MembershipTable { epoch, members: self.members.values().cloned().collect() }
    }
}

/// Invariants checked after every step:
/// 1. published view epochs strictly increase, and `view()` is always the last one published;
/// 2. a published view is exactly the table just read (epoch and members, sorted by id), and the
///    first one contains our incarnation;
/// 3. a removal never names us, is made against the epoch just read, names only members of that
///    table whose heartbeat is older than the timeout (or that left: `Down`), and never names a
///    member twice for one epoch;
/// 4. a tick writes our own record at the current time, then reads; it is never `Up` earlier
///    than one failure timeout after the first input, and never `Joining` again once `Up`;
/// 5. `table_reachable` tells whether the last read attempt succeeded, and an unreachable table
///    changes nothing else.
///
/// Not an invariant, by design: "no published view contains a member already found dead". A dead
/// member stays in the view until its removal is committed and read back, so that every node holds
/// the same view for the same epoch.
fn check_run(steps: Vec<(i64, Step)>) -> TestCaseResult {
    let mut membership = membership();
    let mut now = 10_000;
    let mut last_published: Option<View> = None;
    let mut proposed: BTreeSet<(u64, NodeId)> = BTreeSet::new();
    let mut reachable = false;
    let mut first_input: Option<i64> = None;
    let mut was_up = false;
    let mut shared = ChangingTable::default();
    for (advance, step) in steps {
        now += advance;
        first_input.get_or_insert(now);
        let view_before = membership.view().cloned();
        let (effects, read) = match &step {
            Step::Tick => (membership.handle(now, MembershipInput::Tick), None),
            Step::Read(change) => {
                let read = shared.read(now, change);
                (membership.handle(now, MembershipInput::TableRead(read.clone())), Some(read))
            }
            Step::Unreachable => (membership.handle(now, MembershipInput::TableUnreachable), None),
            Step::Drain => (membership.start_draining(), None),
        };
        match &step {
            Step::Tick => {
                prop_assert_eq!(effects.len(), 2);
                prop_assert_eq!(&effects[1], &MembershipEffect::ReadTable);
                let MembershipEffect::WriteSelf { record, .. } = &effects[0] else {
                    return Err(TestCaseError::fail(format!("a tick must write first: {effects:?}")));
                };
                prop_assert_eq!((record.id.as_str(), record.started_ms, record.heartbeat_ms), ("me", STARTED_MS, now));
                let earliest_up = first_input.unwrap_or(now) + TIMEOUT_MS;
                if record.status == NodeStatus::Up {
                    prop_assert!(now >= earliest_up, "up at {} before {}", now, earliest_up);
                    was_up = true;
                }
                prop_assert!(!(was_up && record.status == NodeStatus::Joining), "back to joining");
            }
            Step::Unreachable => {
                prop_assert!(effects.is_empty());
                prop_assert_eq!(membership.view().cloned(), view_before.clone());
                reachable = false;
            }
            Step::Read(_) => reachable = true,
            Step::Drain => {}
        }
        prop_assert_eq!(membership.table_reachable(), reachable);
        for effect in &effects {
            match effect {
                MembershipEffect::ViewChanged(view) => {
                    let Some(read) = &read else {
                        return Err(TestCaseError::fail(format!("a view published without a read: {step:?}")));
                    };
                    if let Some(last) = &last_published {
                        prop_assert!(view.epoch > last.epoch, "epoch {} after {}", view.epoch, last.epoch);
                    } else {
                        prop_assert!(
                            view.members.iter().any(|member| member.id == id("me") && member.started_ms == STARTED_MS)
                        );
                    }
                    prop_assert_eq!(view, &View::of(read.clone()));
                    last_published = Some(view.clone());
                }
                MembershipEffect::RemoveMembers { ids, expected_epoch } => {
                    let Some(read) = &read else {
                        return Err(TestCaseError::fail(format!("a removal without a read: {step:?}")));
                    };
                    prop_assert_eq!(*expected_epoch, read.epoch);
                    for removed in ids {
                        prop_assert_ne!(removed.as_str(), "me");
                        prop_assert!(read.members.iter().any(|member| member.id == *removed
                            && (member.status == NodeStatus::Down || now - member.heartbeat_ms > TIMEOUT_MS)));
                        prop_assert!(
                            proposed.insert((*expected_epoch, removed.clone())),
                            "{} proposed twice at {}",
                            removed,
                            expected_epoch
                        );
                    }
                }
                MembershipEffect::WriteSelf { record, .. } => {
                    prop_assert!(record.id == id("me") && record.started_ms == STARTED_MS)
                }
                MembershipEffect::ReadTable => {}
            }
        }
        prop_assert_eq!(membership.view(), last_published.as_ref());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn invariants_hold_for_any_inputs(steps in prop::collection::vec((0i64..4_000, any_step()), 1..60)) {
        check_run(steps)?;
    }
}

#[test]
fn a_read_at_our_epoch_with_another_member_set_is_a_reset_we_rejoin_above() {
    // Our view 7 holds us alone (we rejoined after a flush); a failover went back to epoch 6 and
    // another node's bump made a different epoch 7.
    let mut membership = joined();
    membership.handle(2_000, MembershipInput::Tick);
    membership.handle(2_010, table(7, vec![me_in_table(NodeStatus::Up, 2_000)]));
    let lease = membership.lease_until_ms();
    let other_seven = vec![me_in_table(NodeStatus::Up, 2_500), peer("alpha", 2_500)];
    assert_eq!(membership.handle(2_510, table(7, other_seven)), vec![]);
    assert_eq!(membership.lease_until_ms(), lease, "it renews nothing");
    assert_eq!(membership.view().map(|view| view.members.len()), Some(1));
    let effects = membership.handle(3_000, MembershipInput::Tick);
    assert_eq!(
        effects[0],
        MembershipEffect::WriteSelf { record: me_in_table(NodeStatus::Up, 3_000), bump_epoch: true, min_epoch: 8 }
    );
    let effects = membership.handle(3_010, table(8, vec![me_in_table(NodeStatus::Up, 3_000), peer("alpha", 3_000)]));
    assert!(matches!(effects[..], [MembershipEffect::ViewChanged(ref view)] if view.epoch == 8));
    // Heartbeats at one epoch are no reset.
    assert_eq!(membership.handle(4_000, MembershipInput::Tick)[0], write_self(NodeStatus::Up, 4_000, false));
    let effects = membership.handle(4_010, table(8, vec![me_in_table(NodeStatus::Up, 4_000), peer("alpha", 3_900)]));
    assert!(effects.is_empty(), "{effects:?}");
    assert_eq!(membership.lease_until_ms(), 3_000 + TIMEOUT_MS - INTERVAL_MS);
}

#[test]
fn a_heartbeat_unseen_for_a_failure_timeout_renews_the_lease_only_once_a_bump_lands() {
    let mut membership = joined();
    membership.handle(2_000, MembershipInput::Tick);
    membership.handle(2_010, table(2, vec![me_in_table(NodeStatus::Up, 2_000), peer("alpha", 2_000)]));
    // Paused until 7_500: alpha may have watched our heartbeat 2_000 stay unchanged for a failure
    // timeout and sent our removal (if epoch 2), which may land after our next heartbeat. The
    // tick after the pause bumps the epoch, which fails that removal.
    assert_eq!(membership.handle(7_500, MembershipInput::Tick)[0], write_self(NodeStatus::Up, 7_500, true));
    membership.handle(7_510, table(3, vec![me_in_table(NodeStatus::Up, 7_500), peer("alpha", 7_400)]));
    assert!(membership.lease_until_ms() < 7_510, "the heartbeat before, 2_000, vouches for the lease");
    assert_eq!(membership.handle(8_000, MembershipInput::Tick)[0], write_self(NodeStatus::Up, 8_000, false));
    membership.handle(8_010, table(3, vec![me_in_table(NodeStatus::Up, 8_000), peer("alpha", 7_900)]));
    assert_eq!(membership.lease_until_ms(), 7_500 + TIMEOUT_MS - INTERVAL_MS);
    // The same gap, seen only by the read (a slow answer): no renewal until a bump lands.
    let lease = membership.lease_until_ms();
    membership.handle(13_100, table(3, vec![me_in_table(NodeStatus::Up, 8_000), peer("alpha", 13_000)]));
    assert_eq!(membership.lease_until_ms(), lease, "our heartbeat 8_000 may be followed by our removal");
    assert_eq!(membership.handle(13_200, MembershipInput::Tick)[0], write_self(NodeStatus::Up, 13_200, true));
    membership.handle(13_210, table(3, vec![me_in_table(NodeStatus::Up, 8_000), peer("alpha", 13_000)]));
    assert_eq!(membership.lease_until_ms(), lease, "the bump has not landed yet");
    assert_eq!(membership.handle(13_700, MembershipInput::Tick)[0], write_self(NodeStatus::Up, 13_700, true));
    membership.handle(13_710, table(4, vec![me_in_table(NodeStatus::Up, 13_200), peer("alpha", 13_500)]));
    assert_eq!(membership.lease_until_ms(), 8_000 + TIMEOUT_MS - INTERVAL_MS, "from the heartbeat before the bump");
    assert!(membership.lease_until_ms() < 13_710, "which is past");
    assert_eq!(membership.handle(14_200, MembershipInput::Tick)[0], write_self(NodeStatus::Up, 14_200, false));
    membership.handle(14_210, table(4, vec![me_in_table(NodeStatus::Up, 14_200), peer("alpha", 14_000)]));
    assert_eq!(membership.lease_until_ms(), 13_200 + TIMEOUT_MS - INTERVAL_MS);
}

#[test]
fn a_newer_incarnation_in_a_table_that_went_backwards_supersedes_us() {
    let mut membership = joined();
    membership.handle(2_000, MembershipInput::Tick);
    membership.handle(2_010, table(7, vec![me_in_table(NodeStatus::Up, 2_000)]));
    // Redis was flushed, and a newer incarnation of our node id joined the empty table. A second
    // flush may lose its record before our next read: this read is the one that shows it.
    let newer = record("me", NodeStatus::Joining, 2_400, STARTED_MS + 1);
    assert_eq!(membership.handle(2_500, table(1, vec![newer])), vec![]);
    assert!(membership.is_superseded());
    assert_eq!(membership.lease_until_ms(), i64::MIN);
    assert_eq!(membership.handle(3_000, MembershipInput::Tick), vec![], "no rejoin over it");
}
