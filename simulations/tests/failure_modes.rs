//! Named scenarios: the failure modes Akka Cluster Sharding and Orleans users report, each run
//! against the production state machines. Every one must keep each shard on at most one node at
//! every instant and serve every shard again once the faults stop.
//!
//! The last ones reproduce the violations the simulator found in earlier versions of the
//! production state machines (README.md, "Findings"); they pass since those were fixed, and keep
//! them fixed.

use connectors_simulations::{Chaos, Fault, Report, Scenario, Shell, run, scenario_from_seed_with};

fn served(scenario: Scenario) -> Report {
    run(&scenario).unwrap_or_else(|violation| panic!("{violation}"))
}

/// A reproduction of a violation: the scenario as found, then with other seeds (other delays,
/// offsets and tick phases), so that it still exercises the same faults after the simulator's
/// own draws change.
fn served_whatever_the_seed(text: &str) {
    let found: Scenario = text.parse().expect("a scenario");
    for seed in std::iter::once(found.seed).chain(1..20) {
        served(Scenario { seed, ..found.clone() });
    }
}

#[test]
fn a_fault_free_cluster_serves_every_shard_once_its_nodes_are_up() {
    let report = served(Scenario::new(1, 3).quiet_from(6_000));
    assert_eq!(report.converged_at_ms, 6_000, "serving everything before the quiet period");
    assert_eq!(report.activations.len(), 3);
    // Joining lasts one failure timeout: no node serves before 3 s.
    assert!(report.activations.iter().all(|activation| activation.at_ms >= 3_000), "{:?}", report.activations);
    assert_eq!(report.counters.removals_committed, 0);
}

#[test]
fn lost_hand_off_acknowledgements_only_delay_the_new_owner() {
    let scenario = Scenario::new(2, 3)
        .at(4_000, Fault::DropConfirmations { on: true })
        .at(4_000, Fault::Restart { node: 3, new_machine: false })
        .at(11_000, Fault::DropConfirmations { on: false })
        .quiet_from(13_000);
    let report = served(scenario);
    assert!(report.counters.confirmations_dropped > 0);
    let joined = report.first_activation_of("n3").expect("n3 serves its shards in the end");
    assert!(joined >= 11_000, "n3 served at {joined} ms, before any confirmation reached it");
}

#[test]
fn a_node_dying_in_the_middle_of_its_hand_off() {
    let scenario =
        Scenario::new(3, 4).at(5_000, Fault::Drain { node: 1 }).at(5_030, Fault::Crash { node: 1 }).quiet_from(12_000);
    let report = served(scenario);
    assert_eq!(report.counters.crashes, 1);
    assert_eq!(report.counters.drains_handed_off, 0);
    assert!(report.counters.removals_committed >= 1, "the dead node is removed");
}

#[test]
fn a_partition_during_a_rebalance() {
    let scenario = Scenario::new(4, 3)
        .at(5_000, Fault::Isolate { node: 1, isolated: true })
        .at(5_000, Fault::CutFromTable { node: 1, cut: true })
        .at(5_200, Fault::Restart { node: 3, new_machine: false })
        .at(12_000, Fault::Isolate { node: 1, isolated: false })
        .at(12_000, Fault::CutFromTable { node: 1, cut: false })
        .quiet_from(14_000);
    let report = served(scenario);
    assert!(report.counters.removals_committed >= 1, "the cut-off node is removed");
    let joined = report.first_activation_of("n3").expect("n3 serves");
    assert!(joined < 12_000, "n3 took its shards during the partition, at {joined} ms");
}

#[test]
fn a_frozen_zombie_and_the_incarnation_that_replaced_it() {
    let scenario = Scenario::new(5, 3)
        .at(5_000, Fault::Freeze { node: 1, for_ms: 6_000 })
        .at(6_000, Fault::Start { node: 1, new_machine: true })
        .quiet_from(14_000);
    let report = served(scenario);
    assert_eq!(report.counters.superseded, 1, "the zombie learns it was replaced and exits");
    assert!(report.activations.iter().any(|activation| activation.process == "n1#1"));
}

#[test]
fn a_redis_flush() {
    let report = served(Scenario::new(6, 3).at(6_000, Fault::TableFlush).quiet_from(12_000));
    assert_eq!(report.counters.table_resets, 1);
}

#[test]
fn a_redis_failover_that_loses_the_last_writes() {
    // n3's join (Joining, then Up three seconds later) is lost with the failover.
    let scenario = Scenario::new(7, 3)
        .at(5_000, Fault::Restart { node: 3, new_machine: false })
        .at(8_400, Fault::TableFailover { lost_writes: 12 })
        .quiet_from(14_000);
    let report = served(scenario);
    assert_eq!(report.counters.table_resets, 1);
    assert!(report.first_activation_of("n3").is_some());
}

#[test]
fn clock_skew_of_up_to_five_seconds() {
    let scenario = Scenario::new(8, 4)
        .skew(5_000)
        .at(5_000, Fault::Crash { node: 2 })
        .at(9_000, Fault::Restart { node: 2, new_machine: true })
        .at(11_000, Fault::Restart { node: 4, new_machine: false })
        .quiet_from(16_000);
    let report = served(scenario);
    assert!(report.counters.removals_committed >= 1, "the crashed node is removed despite the skew");
    assert!(report.first_activation_of("n4").is_some());
}

#[test]
fn a_rolling_restart_of_every_node() {
    let mut scenario = Scenario::new(9, 3).quiet_from(30_000);
    for node in 0..3u8 {
        let drain_at = 5_000 + i64::from(node) * 8_000;
        scenario = scenario
            .at(drain_at, Fault::Drain { node })
            .at(drain_at + 4_000, Fault::Start { node, new_machine: false });
    }
    let report = served(scenario);
    assert_eq!(report.counters.drains_handed_off, 3, "{:?}", report.counters);
    assert_eq!(report.counters.drains_timed_out, 0);
    assert_eq!(report.counters.left, 3);
    assert!(report.converged_at_ms <= 30_000, "served everything before the faults stopped");
}

/// Invariant 2 under load: a rolling drain moves every tenant twice or more (by hand-off or
/// from the store), across a minute boundary (at 15 s), and no tenant is admitted beyond its
/// per-minute limit.
#[test]
fn a_rolling_drain_under_client_load_keeps_every_tenant_within_its_limit() {
    for seed in 1..6 {
        let mut scenario = Scenario::new(seed, 4).quiet_from(40_000);
        for node in 0..4u8 {
            let drain_at = 4_000 + i64::from(node) * 8_000;
            scenario = scenario
                .at(drain_at, Fault::Drain { node })
                .at(drain_at + 4_000, Fault::Start { node, new_machine: false });
        }
        let report = served(scenario);
        let counters = report.counters;
        assert_eq!(counters.drains_handed_off, 4, "{counters:?}");
        assert!(counters.hand_offs_shipped > 0 && counters.hand_offs_kept > 0, "{counters:?}");
        assert!(counters.cores_from_hand_off > 0, "{counters:?}");
        assert!(counters.rate_limited > 0, "the limits were reached: {counters:?}");
        assert!(counters.invocations_admitted > 0, "tool invocations were charged: {counters:?}");
    }
}

#[test]
fn flaky_links_and_failing_releases() {
    let chaos = Chaos { drop_permille: 200, duplicate_permille: 200, extra_delay_ms: 300 };
    let scenario = Scenario::new(10, 4)
        .at(2_000, Fault::Chaos(chaos))
        .at(2_000, Fault::ReleaseFailures { on: true })
        .at(5_000, Fault::Restart { node: 4, new_machine: false })
        .at(9_000, Fault::ReleaseFailures { on: false })
        .at(9_000, Fault::Crash { node: 0 })
        .quiet_from(15_000);
    let report = served(scenario);
    assert!(report.counters.messages_lost > 0);
    assert!(report.counters.release_failures > 0);
}

/// After a failover that lost a bump, one epoch number can name two views: the release asks
/// between nodes holding them are answered `Conflict`, and both rejoin above it.
#[test]
fn a_view_conflict_is_found_and_resolved_by_a_rejoin() {
    let found: Scenario = "seed=2 nodes=3 skew=2844 quiet=6584 | 3057 start n0 same-machine \
                           | 3321 table-failover 6 | 4316 table-failover 19"
        .parse()
        .expect("a scenario");
    let conflicts: u64 = (0..20).map(|seed| served(Scenario { seed, ..found.clone() }).counters.view_conflicts).sum();
    assert!(conflicts > 0, "no release ask met another view under its epoch in 20 seeds");
}

/// The simulator is only worth its runs if it catches a broken fence: a shell that tells the
/// ownership every peer let go without asking any.
#[test]
fn a_shell_that_confirms_releases_without_asking_is_caught() {
    let violation = (0..20)
        .find_map(|seed| run(&scenario_from_seed_with(seed, Shell::ConfirmWithoutAsking)).err())
        .expect("a double activation within 20 seeds");
    assert!(violation.is_two_active(), "{violation}");
    assert!(violation.replay.contains("shell=confirm-without-asking"), "{}", violation.replay);
    assert!(violation.scenario.starts_with("seed="), "{}", violation.scenario);
}

/// A node cut off from the table and from its peers keeps serving when its shell ignores the
/// lease; with the faithful shell the same run is safe.
#[test]
fn a_shell_that_ignores_the_lease_is_caught() {
    let scenario = Scenario::new(11, 3)
        .at(5_000, Fault::Isolate { node: 1, isolated: true })
        .at(5_000, Fault::CutFromTable { node: 1, cut: true })
        .quiet_from(14_000);
    served(scenario.clone());
    let violation = run(&scenario.shell(Shell::IgnoreLease)).expect_err("the partitioned node keeps serving");
    assert!(violation.is_two_active(), "{violation}");
    assert!(violation.to_string().contains("n1#0"), "{violation}");
}

#[test]
fn a_node_paused_across_a_flush_waits_before_taking_over() {
    served_whatever_the_seed("seed=1 nodes=3 quiet=15000 | 5000 freeze n1 4000 | 8990 table-flush");
}

#[test]
fn a_node_paused_after_a_flush_does_not_resume_shards_others_took() {
    served_whatever_the_seed("seed=1 nodes=3 quiet=15000 | 5000 table-flush | 5600 freeze n1 5000");
}

#[test]
fn views_after_a_failover_are_not_confused_with_the_lost_ones() {
    served_whatever_the_seed(
        "seed=13935976182829209898 nodes=3 skew=2844 quiet=6584 | 3057 start n0 same-machine \
         | 3321 table-failover 6 | 4316 table-failover 19",
    );
}

#[test]
fn a_node_that_missed_a_flush_serves_its_shards_again() {
    served_whatever_the_seed(
        "seed=12724992633330906707 nodes=3 skew=1 quiet=16343 | 107 table-flush | 107 table-down on \
         | 2045 restart n1 same-machine | 3941 restart n0 new-machine",
    );
}

#[test]
fn an_older_incarnation_never_serves_beside_the_newer() {
    served_whatever_the_seed(
        "seed=14958602760243303905 nodes=4 skew=1 quiet=6522 | 65 cut-table n0 on \
         | 804 restart n2 new-machine | 1354 restart n3 same-machine | 2391 start n0 same-machine",
    );
}

#[test]
fn a_node_told_to_drain_while_paused_never_serves_beside_the_others() {
    served_whatever_the_seed("seed=2 nodes=3 quiet=12000 | 5000 freeze n0 3000 | 5500 drain n0");
}

#[test]
fn a_node_removed_while_cut_off_drains_without_waiting_for_its_deadline() {
    let scenario = Scenario::new(3, 3)
        .at(5_000, Fault::CutFromTable { node: 1, cut: true })
        .at(9_000, Fault::Drain { node: 1 })
        .at(10_000, Fault::CutFromTable { node: 1, cut: false })
        .quiet_from(50_000);
    let report = served(scenario);
    assert_eq!((report.counters.drains_handed_off, report.counters.drains_timed_out), (1, 0));
}

/// While the table is down, every lease runs out and nobody may serve. A node whose lease ran out
/// forgets its shards and acquires them again, but only once the table vouches for it again:
/// before that fix it asked, activated (its shards saying `Fenced`), forgot and asked again, tens
/// of times a second for the whole outage.
#[test]
fn a_table_outage_does_not_make_nodes_reacquire_over_and_over() {
    let scenario = Scenario::new(1, 3)
        .at(6_000, Fault::TableDown { down: true })
        .at(16_000, Fault::TableDown { down: false })
        .quiet_from(20_000);
    let report = served(scenario);
    // Each node serves its shards once after joining and once after the outage.
    let activations = report.activations.len();
    assert!(activations <= 6, "{activations} activations, from {:?}", &report.activations[..activations.min(12)]);
}

/// Finding 10: a process paused past its lease resumes, releases the tenants whose shards it
/// lost meanwhile, and writes their stale checkpoints after the owner that served them in
/// between wrote newer ones. The store merges checkpoints (`Checkpoint::merged_over`), so the
/// stale counts are kept out and the next owner does not admit beyond the limit.
#[test]
fn a_resumed_node_writing_stale_checkpoints_does_not_lower_the_counts() {
    let scenario: Scenario = "seed=10 nodes=3 quiet=15000 | 5000 table-flush | 5600 freeze n1 5000".parse().unwrap();
    let report = served(scenario);
    assert!(report.counters.stale_checkpoints_kept_out > 0, "{:?}", report.counters);
}

/// Finding 19: n0 was paused past its lease while it served tenant-0; n3 started the tenant from
/// the store, admitted and released it. Resumed, n0 released the core it still held and shipped
/// its hand-off (old counts) to n3, acquiring the shard again, which continued from it past the
/// month's quota. A lost lease now writes every core out (merged by the store) without a
/// hand-off (`OwnershipEffect::LeaseLost`).
#[test]
fn a_node_that_lost_its_lease_never_hands_off_what_it_held() {
    let found: Scenario =
        "seed=5777934082413928894 nodes=4 skew=2000 quiet=12047 | 4702 freeze n0 5416 | 4946 crash n1 | 8208 drain n0"
            .parse()
            .unwrap();
    let mut written_out = 0;
    for seed in std::iter::once(found.seed).chain(1..20) {
        written_out += served(Scenario { seed, ..found.clone() }).counters.cores_written_out_unleased;
    }
    assert!(written_out > 0, "the pause makes n0 lose its lease while it holds tenants");
}

/// Finding 11: a pause counted as watching the table: a joining node's wait ran out while it was
/// paused, silence across a pause looked like death, and members that came and went meanwhile
/// were never waited for.
#[test]
fn a_node_paused_while_joining_watches_again_before_it_serves() {
    served_whatever_the_seed("seed=7870753327594725923 nodes=3 quiet=10213 | 507 freeze n0 7944 | 7887 table-flush");
}

#[test]
fn a_node_paused_across_a_failover_does_not_take_the_others_for_dead() {
    served_whatever_the_seed("seed=0 nodes=3 quiet=16000 | 6000 freeze n1 2875 | 8855 table-failover 12");
}

#[test]
fn a_node_paused_across_a_failover_waits_for_members_it_never_saw() {
    served_whatever_the_seed(
        "seed=0 nodes=3 quiet=16000 | 5000 table-flush | 5900 freeze n1 4300 | 10000 table-failover 20",
    );
}

/// Finding 12: confirmations gathered before the lease ran out still counted after it.
#[test]
fn a_node_whose_lease_ran_out_asks_again_for_the_confirmations_it_had() {
    served_whatever_the_seed(
        "seed=0 nodes=3 quiet=20000 | 5000 cut-table n1 on | 10000 cut-table n1 off | 11600 freeze n1 4500 \
         | 16000 table-failover 12",
    );
}

/// Finding 13: a node that lost a tenant without a release (paused, or cut off from the
/// membership table) kept refreshing its OAuth credential, and `start_refresh` marked a
/// credential another node had already marked `Refreshing` (it compared the generation only, in
/// a get-then-put): both sent one refresh token generation to the provider. Every write of a
/// read credential is now a compare-and-set, and a refresh starts only from the generation due,
/// `Active`; otherwise the actor adopts what is stored. Invariant 4 holds for 40 seeds of each.
/// Answers the counters summed over the seeds.
fn never_reuses_a_refresh_token(text: &str) -> (u64, u64) {
    let found: Scenario = text.parse().expect("a scenario");
    let (mut adopted, mut written_out) = (0, 0);
    for seed in std::iter::once(found.seed).chain(1..40) {
        let report = served(Scenario { seed, ..found.clone() });
        assert!(report.counters.refreshes_succeeded > 0, "seed {seed}: refreshes happen");
        adopted += report.counters.credentials_adopted;
        written_out += report.counters.cores_written_out_unleased;
    }
    (adopted, written_out)
}

/// A paused actor runs before its node notices the lease is gone.
#[test]
fn a_resumed_node_never_sends_a_refresh_token_the_new_owner_used() {
    let (adopted, _) = never_reuses_a_refresh_token("seed=0 nodes=3 quiet=20000 | 8000 freeze n1 5000");
    assert!(adopted > 0, "the scenario makes actors meet credentials other nodes wrote");
}

/// A node cut off from the table writes its actors out once its lease runs out (finding 19),
/// before another node takes its tenants over.
#[test]
fn a_node_cut_from_the_table_never_refreshes_beside_the_new_owner() {
    let (_, written_out) = never_reuses_a_refresh_token("seed=2 nodes=3 quiet=20000 | 6000 cut-table n1 on");
    assert!(written_out > 0, "the cut-off node's actors are written out");
}

/// Finding 14: after a flush and a failover one epoch named two member sets, and a node holding
/// the one with itself alone never learnt of the other (its reads showed its own epoch): it asked
/// nobody and served all 1024 shards beside the others.
#[test]
fn a_read_at_the_views_epoch_with_other_members_is_a_reset() {
    served_whatever_the_seed(
        "seed=15962419733428431476 nodes=3 skew=4296 quiet=12165 | 5119 cut-table n0 on | 7370 freeze n1 928 \
         | 7700 table-flush | 8401 table-failover 10",
    );
}

/// Finding 15: a node back from a pause heartbeated; a peer that had watched its old heartbeat
/// for a failure timeout removed it a moment later at the same epoch, after the node had read
/// its new heartbeat, renewed its lease and gathered confirmations at the old view.
#[test]
fn a_node_back_from_a_pause_is_not_removed_under_a_renewed_lease() {
    served_whatever_the_seed(
        "seed=16885420673842668603 nodes=3 quiet=17187 | 11703 freeze n0 6497 | 12395 chaos 121 45 106",
    );
}

/// Finding 15, the open case of finding 11: a failover back to the paused node's own view
/// installed no view, so the takeover wait never reached its ownership; the bump after the pause
/// installs one.
#[test]
fn a_node_paused_alone_in_its_view_waits_after_a_failover_back_to_it() {
    served_whatever_the_seed(
        "seed=3 nodes=3 quiet=16000 | 5000 table-flush | 5800 freeze n1 5400 | 11000 table-failover 22",
    );
}

/// Finding 16: a node saw its newer incarnation only in a read that went backwards (after a
/// flush), which it ignored; a second flush lost that record, and the older incarnation rejoined
/// and served beside the newer one.
#[test]
fn an_older_incarnation_that_saw_the_newer_after_a_flush_never_rejoins_beside_it() {
    served_whatever_the_seed(
        "seed=7376155345851896730 nodes=3 quiet=12230 | 156 drain n0 | 4356 drain n1 | 8716 table-flush \
         | 8748 start n2 new-machine | 11216 table-flush",
    );
}

/// Finding 20: a node paused for less than a failure timeout heartbeated and renewed its lease;
/// a failover then lost that heartbeat before any peer had read it, and the peers, which had
/// watched the heartbeat from before the pause since before it, removed the node and served its
/// shards under its lease. The lease now runs from the older of our last two heartbeats.
#[test]
fn a_failover_that_loses_a_heartbeat_no_peer_read_does_not_split_a_shard() {
    for found in [
        "seed=4411003654398241868 nodes=4 skew=137 quiet=16614 | 3117 freeze n1 3830 | 13538 freeze n1 2564 \
         | 16210 table-failover 3",
        "seed=10139627401969588391 nodes=5 skew=3400 quiet=12822 | 2121 cut-table n3 on \
         | 2327 restart n3 new-machine | 3078 cut-table n0 off | 4809 start n3 new-machine | 5160 freeze n4 2502 \
         | 7933 table-failover 17 | 12437 crash n1",
        "seed=12150125727964216093 nodes=4 skew=0 quiet=11992 | 102 isolate n4 on | 629 isolate n1 off \
         | 3396 isolate n1 off | 3746 freeze n1 2400 | 6372 table-failover 9 | 6788 cut-table n1 on \
         | 11792 table-flush | 11802 start n1 same-machine",
    ] {
        served_whatever_the_seed(found);
    }
}
