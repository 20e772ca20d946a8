use std::collections::BTreeSet;

use super::*;

const NOW: i64 = 1_000;
const LEASE: OwnershipInput = OwnershipInput::Lease { until_ms: i64::MAX };

fn node(name: &str) -> NodeId {
    NodeId(name.to_string())
}

fn map(epoch: u64, nodes: &[&str]) -> ShardMap {
    ShardMap::new(epoch, nodes.iter().map(|n| node(n)))
}

fn owner(name: &str) -> ShardOwnership {
    let mut ownership = ShardOwnership::new(node(name), OwnershipConfig::default());
    ownership.handle(NOW, LEASE);
    ownership
}

/// A view whose members all own shards, with no takeover wait.
fn view(epoch: u64, nodes: &[&str]) -> OwnershipInput {
    view_with(epoch, nodes, nodes, i64::MIN)
}

fn view_with(epoch: u64, owners: &[&str], members: &[&str], takeover_not_before_ms: i64) -> OwnershipInput {
    OwnershipInput::View {
        map: map(epoch, owners),
        members: members.iter().map(|n| node(n)).collect(),
        takeover_not_before_ms,
        fingerprint: epoch,
    }
}

/// What `ownership` answers `peer` asking about view `epoch` (whose fingerprint, in these tests,
/// is the epoch).
fn confirms(ownership: &mut ShardOwnership, peer: &str, epoch: u64) -> bool {
    ownership.answer_release(&node(peer), epoch, Some(epoch)) == ReleaseVerdict::Released
}

fn released(ownership: &mut ShardOwnership, epoch: u64) {
    ownership.handle(NOW, OwnershipInput::Released { epoch });
}

fn confirmed(ownership: &mut ShardOwnership, peer: &str, epoch: u64) -> Vec<OwnershipEffect> {
    ownership.handle(NOW, OwnershipInput::Confirmed { peer: node(peer), epoch })
}

fn shards_in(ownership: &ShardOwnership, state: ShardState) -> usize {
    (0..SHARDS).filter(|i| ownership.state(ShardId(*i), NOW) == state).count()
}

#[test]
fn before_any_view_nothing_is_served() {
    let a = owner("a");
    assert_eq!(shards_in(&a, ShardState::Active), 0);
    assert_eq!(shards_in(&a, ShardState::Elsewhere), usize::from(SHARDS));
}

#[test]
fn a_single_node_serves_every_shard_at_once() {
    let mut a = owner("a");
    let effects = a.handle(NOW, view(1, &["a"]));
    assert_eq!(
        effects,
        vec![
            OwnershipEffect::ReleaseUnowned { epoch: 1 },
            OwnershipEffect::AllActive { epoch: 1, shards: usize::from(SHARDS) }
        ]
    );
    assert_eq!(shards_in(&a, ShardState::Active), usize::from(SHARDS));
}

#[test]
fn a_joining_node_serves_its_shards_only_after_the_others_released_them() {
    let mut a = owner("a");
    a.handle(NOW, view(1, &["a"]));
    released(&mut a, 1);

    let mut b = owner("b");
    let effects = b.handle(NOW, view(2, &["a", "b"]));
    assert!(effects.contains(&OwnershipEffect::AskRelease { peer: node("a"), epoch: 2 }));
    let b_owns = b.map().count_owned_by(&node("b"));
    assert!(b_owns > 0);
    assert_eq!(shards_in(&b, ShardState::Acquiring), b_owns);
    assert_eq!(shards_in(&b, ShardState::Active), 0);

    // `a` cannot confirm before it has seen view 2 and released.
    assert!(!confirms(&mut a, "b", 2));
    let effects = a.handle(NOW, view(2, &["a", "b"]));
    assert_eq!(effects, vec![OwnershipEffect::ReleaseUnowned { epoch: 2 }], "a acquires nothing");
    assert!(!confirms(&mut a, "b", 2));
    assert!(!a.handed_off(), "b is owed a confirmation");
    released(&mut a, 2);
    assert!(confirms(&mut a, "b", 2));
    // What `a` kept stayed active the whole time; what moved is no longer served by `a`.
    assert_eq!(shards_in(&a, ShardState::Active), a.map().count_owned_by(&node("a")));

    let effects = confirmed(&mut b, "a", 2);
    assert_eq!(effects, vec![OwnershipEffect::AllActive { epoch: 2, shards: b_owns }]);
    assert_eq!(shards_in(&b, ShardState::Active), b_owns);
}

#[test]
fn a_node_at_a_newer_view_does_not_confirm_an_older_one() {
    // `a` skipped view 2, in which `b` owns some of its shards; at view 3 `a` owns them all again.
    // Confirming view 2 to `b` would let `b` serve shards `a` still serves.
    let mut a = owner("a");
    a.handle(NOW, view(1, &["a"]));
    released(&mut a, 1);
    a.handle(NOW, view(3, &["a"]));
    released(&mut a, 3);
    assert!(!confirms(&mut a, "b", 2));
    assert_eq!(shards_in(&a, ShardState::Active), usize::from(SHARDS));
}

#[test]
fn shards_of_a_member_removed_from_the_view_are_taken_over_at_once() {
    let mut b = owner("b");
    b.handle(NOW, view(2, &["a", "b"]));
    confirmed(&mut b, "a", 2);
    let effects = b.handle(NOW, view(3, &["b"]));
    assert_eq!(
        effects,
        vec![
            OwnershipEffect::ReleaseUnowned { epoch: 3 },
            OwnershipEffect::AllActive { epoch: 3, shards: usize::from(SHARDS) }
        ]
    );
}

#[test]
fn shards_of_a_member_that_left_unwatched_wait_for_the_takeover_time() {
    let mut b = owner("b");
    b.handle(NOW, view(2, &["a", "b"]));
    confirmed(&mut b, "a", 2);
    let effects = b.handle(NOW, view_with(3, &["b"], &["b"], NOW + 500));
    assert_eq!(effects, vec![OwnershipEffect::ReleaseUnowned { epoch: 3 }]);
    assert!(shards_in(&b, ShardState::Acquiring) > 0);
    assert!(b.handle(NOW + 499, OwnershipInput::Tick).is_empty());
    assert_eq!(
        b.handle(NOW + 500, OwnershipInput::Tick),
        vec![OwnershipEffect::AllActive { epoch: 3, shards: usize::from(SHARDS) }]
    );
}

#[test]
fn draining_and_joining_members_are_asked_too() {
    // `d` drains: it owns nothing in view 2 but may still serve what it owned in view 1.
    let mut b = owner("b");
    let effects = b.handle(NOW, view_with(2, &["b"], &["b", "d", "j"], i64::MIN));
    assert!(effects.contains(&OwnershipEffect::AskRelease { peer: node("d"), epoch: 2 }));
    assert!(effects.contains(&OwnershipEffect::AskRelease { peer: node("j"), epoch: 2 }));
    confirmed(&mut b, "j", 2);
    assert_eq!(shards_in(&b, ShardState::Active), 0);
    confirmed(&mut b, "d", 2);
    assert_eq!(shards_in(&b, ShardState::Active), usize::from(SHARDS));
}

#[test]
fn a_draining_node_is_handed_off_once_every_new_owner_has_its_confirmation() {
    let mut d = owner("d");
    d.handle(NOW, view(1, &["b", "c", "d"]));
    released(&mut d, 1);
    confirmed(&mut d, "b", 1);
    confirmed(&mut d, "c", 1);
    assert!(shards_in(&d, ShardState::Active) > 0);
    d.handle(NOW, view_with(2, &["b", "c"], &["b", "c", "d"], i64::MIN));
    assert_eq!(shards_in(&d, ShardState::Active), 0, "a draining node serves nothing");
    released(&mut d, 2);
    assert!(!d.handed_off());
    assert!(confirms(&mut d, "b", 2));
    assert!(!d.handed_off(), "c has not asked yet");
    assert!(confirms(&mut d, "c", 2));
    assert!(d.handed_off());
}

#[test]
fn a_node_without_a_lease_is_fenced() {
    let mut a = owner("a");
    a.handle(NOW, view(1, &["a"]));
    a.handle(NOW, OwnershipInput::Lease { until_ms: NOW + 10 });
    assert_eq!(a.state(ShardId(0), NOW + 9), ShardState::Active);
    assert_eq!(a.state(ShardId(0), NOW + 10), ShardState::Fenced);
}

#[test]
fn unanswered_asks_are_repeated_and_not_yet_answers_retried_sooner() {
    let config = OwnershipConfig::default();
    let mut c = owner("c");
    c.handle(NOW, view(5, &["a", "c"]));
    assert!(c.handle(NOW + 1, OwnershipInput::Tick).is_empty(), "the ask is in flight");
    let ask = vec![OwnershipEffect::AskRelease { peer: node("a"), epoch: 5 }];
    assert_eq!(c.handle(NOW + config.unanswered_ms, OwnershipInput::Tick), ask);
    let later = NOW + config.unanswered_ms + 1;
    c.handle(later, OwnershipInput::NotConfirmed { peer: node("a"), epoch: 5 });
    assert_eq!(c.handle(later + config.retry_ms, OwnershipInput::Tick), ask);
}

#[test]
fn another_view_under_the_same_epoch_is_a_conflict_not_a_confirmation() {
    let mut a = owner("a");
    a.handle(NOW, view(4, &["a", "b"]));
    released(&mut a, 4);
    assert_eq!(a.answer_release(&node("b"), 4, Some(99)), ReleaseVerdict::Conflict);
    assert_eq!(a.answer_release(&node("b"), 4, Some(4)), ReleaseVerdict::Released);
    assert_eq!(a.answer_release(&node("b"), 4, None), ReleaseVerdict::Released, "an older peer names the epoch only");
}

#[test]
fn a_node_whose_lease_ran_out_acquires_its_shards_again_before_serving_them() {
    let mut a = owner("a");
    a.handle(NOW, OwnershipInput::Lease { until_ms: NOW + 100 });
    a.handle(NOW, view(3, &["a", "b"]));
    confirmed(&mut a, "b", 3);
    let owned = a.map().count_owned_by(&node("a"));
    assert_eq!(shards_in(&a, ShardState::Active), owned);
    // The lease runs out (cut off from the table); later it is renewed under the same view.
    let later = NOW + 5_000;
    let effects = a.handle(later, OwnershipInput::Lease { until_ms: later + 100 });
    assert_eq!(effects, vec![OwnershipEffect::LeaseLost]);
    assert_eq!(
        a.state(ShardId::all().find(|s| a.map().owner(*s) == Some(&node("a"))).unwrap(), later),
        ShardState::Acquiring
    );
    // Others may have served its shards meanwhile: it asks every member again.
    assert_eq!(a.handle(later, OwnershipInput::Tick), vec![OwnershipEffect::AskRelease { peer: node("b"), epoch: 3 }]);
    assert_eq!(
        a.handle(later, OwnershipInput::Confirmed { peer: node("b"), epoch: 3 }),
        vec![OwnershipEffect::AllActive { epoch: 3, shards: owned }]
    );
}

/// Finding 19 of the simulator: what the actors of a node that lost its lease hold may be older
/// than what others served meanwhile, so the end of a lease is reported (once per lapse) for
/// them to be written out rather than handed over.
#[test]
fn the_end_of_a_lease_is_reported_once_per_lapse() {
    let mut a = owner("a");
    a.handle(NOW, OwnershipInput::Lease { until_ms: NOW + 100 });
    a.handle(NOW, view(1, &["a"]));
    assert!(a.handle(NOW + 99, OwnershipInput::Tick).is_empty());
    assert_eq!(a.handle(NOW + 100, OwnershipInput::Tick), vec![OwnershipEffect::LeaseLost]);
    assert!(a.handle(NOW + 200, OwnershipInput::Tick).is_empty(), "reported once");
    assert!(a.handle(NOW + 300, OwnershipInput::Lease { until_ms: NOW + 400 }).is_empty());
    assert_eq!(
        a.handle(NOW + 300, OwnershipInput::Tick),
        vec![OwnershipEffect::AllActive { epoch: 1, shards: usize::from(SHARDS) }]
    );
    assert_eq!(a.handle(NOW + 400, OwnershipInput::Tick), vec![OwnershipEffect::LeaseLost], "the next lapse");
    // A node that never had a lease has nothing to report.
    let mut fresh = ShardOwnership::new(node("b"), OwnershipConfig::default());
    assert!(fresh.handle(NOW, OwnershipInput::Tick).is_empty());
}

/// Paused while it waited out the takeover time, every peer having confirmed: the peers may
/// have removed it and served its shards meanwhile, and a failover of the table may give it
/// its lease back under the same view.
#[test]
fn a_node_whose_lease_ran_out_counts_no_confirmation_it_had() {
    let mut b = owner("b");
    b.handle(NOW, OwnershipInput::Lease { until_ms: NOW + 100 });
    b.handle(NOW, view_with(3, &["a", "b"], &["a", "b"], NOW + 50));
    confirmed(&mut b, "a", 3);
    assert_eq!(shards_in(&b, ShardState::Active), 0, "the takeover time has not come");
    let later = NOW + 5_000;
    assert_eq!(b.handle(later, OwnershipInput::Lease { until_ms: later + 100 }), vec![OwnershipEffect::LeaseLost]);
    assert_eq!(b.handle(later, OwnershipInput::Tick), vec![OwnershipEffect::AskRelease { peer: node("a"), epoch: 3 }]);
    assert_eq!(shards_in(&b, ShardState::Active), 0);
    let owned = b.map().count_owned_by(&node("b"));
    assert_eq!(
        b.handle(later, OwnershipInput::Confirmed { peer: node("a"), epoch: 3 }),
        vec![OwnershipEffect::AllActive { epoch: 3, shards: owned }]
    );
}

#[test]
fn a_failed_release_is_tried_again_after_a_pause() {
    let config = OwnershipConfig::default();
    let mut a = owner("a");
    a.handle(NOW, view(1, &["a"]));
    a.handle(NOW, OwnershipInput::ReleaseFailed { epoch: 1 });
    assert!(a.handle(NOW + config.retry_ms - 1, OwnershipInput::Tick).is_empty());
    assert_eq!(
        a.handle(NOW + config.retry_ms, OwnershipInput::Tick),
        vec![OwnershipEffect::ReleaseUnowned { epoch: 1 }]
    );
    released(&mut a, 1);
    assert!(confirms(&mut a, "b", 1));
}

#[test]
fn a_confirmation_for_an_older_view_does_not_count() {
    let mut c = owner("c");
    c.handle(NOW, view(5, &["a", "c"]));
    assert!(confirmed(&mut c, "a", 4).is_empty());
    assert_eq!(shards_in(&c, ShardState::Active), 0);
    assert!(!confirmed(&mut c, "a", 5).is_empty());
}

#[test]
fn older_views_are_ignored() {
    let mut a = owner("a");
    a.handle(NOW, view(3, &["a"]));
    assert!(a.handle(NOW, view(2, &["a", "b"])).is_empty());
    assert_eq!(a.epoch(), 3);
}

#[test]
fn a_new_view_while_acquiring_asks_the_new_peers() {
    let mut c = owner("c");
    c.handle(NOW, view(5, &["a", "c"]));
    let effects = c.handle(NOW, view(6, &["a", "b", "c"]));
    assert!(effects.contains(&OwnershipEffect::AskRelease { peer: node("a"), epoch: 6 }));
    assert!(effects.contains(&OwnershipEffect::AskRelease { peer: node("b"), epoch: 6 }));
    assert!(confirmed(&mut c, "a", 5).is_empty(), "the older round is over");
}

/// A model of the protocol: nodes join and crash (a crash removes the node from the table at
/// once: the model has no partitions), views reach nodes late and skip epochs, releases and
/// confirmations happen in any order. After every step no shard is active on two nodes; once
/// everything is delivered, released and confirmed, every shard is active on exactly one node.
mod protocol {
    use proptest::prelude::*;

    use super::*;

    const POOL: [&str; 4] = ["n0", "n1", "n2", "n3"];

    #[derive(Debug, Clone)]
    enum Step {
        Join(usize),
        Crash(usize),
        Deliver(usize),
        Release(usize),
        Confirm(usize, usize),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            1 => (0..POOL.len()).prop_map(Step::Join),
            1 => (0..POOL.len()).prop_map(Step::Crash),
            3 => (0..POOL.len()).prop_map(Step::Deliver),
            3 => (0..POOL.len()).prop_map(Step::Release),
            4 => (0..POOL.len(), 0..POOL.len()).prop_map(|(a, b)| Step::Confirm(a, b)),
        ]
    }

    struct World {
        nodes: Vec<Option<ShardOwnership>>,
        epoch: u64,
        members: BTreeSet<usize>,
    }

    impl World {
        fn view(&self) -> ShardMap {
            ShardMap::new(self.epoch, self.members.iter().map(|i| node(POOL[*i])))
        }

        fn apply(&mut self, step: &Step) {
            match *step {
                Step::Join(n) if self.nodes[n].is_none() => {
                    self.nodes[n] = Some(owner(POOL[n]));
                    self.epoch += 1;
                    self.members.insert(n);
                }
                Step::Crash(n) if self.nodes[n].is_some() => {
                    self.nodes[n] = None;
                    self.epoch += 1;
                    self.members.remove(&n);
                }
                Step::Deliver(n) => {
                    let view = self.view();
                    if self.members.contains(&n)
                        && let Some(ownership) = self.nodes[n].as_mut()
                    {
                        let members: Vec<NodeId> = view.nodes().to_vec();
                        let fingerprint = view.epoch();
                        let input =
                            OwnershipInput::View { map: view, members, takeover_not_before_ms: i64::MIN, fingerprint };
                        ownership.handle(NOW, input);
                    }
                }
                Step::Release(n) => {
                    if let Some(ownership) = self.nodes[n].as_mut() {
                        let epoch = ownership.epoch();
                        ownership.handle(NOW, OwnershipInput::Released { epoch });
                    }
                }
                Step::Confirm(asker, peer) => {
                    let Some(epoch) = self.nodes[asker].as_ref().map(ShardOwnership::epoch) else { return };
                    let peer_id = node(POOL[peer]);
                    let asker_id = node(POOL[asker]);
                    let answers = self.nodes[peer]
                        .as_mut()
                        .is_some_and(|p| p.answer_release(&asker_id, epoch, Some(epoch)) == ReleaseVerdict::Released);
                    if let Some(ownership) = self.nodes[asker].as_mut()
                        && answers
                    {
                        ownership.handle(NOW, OwnershipInput::Confirmed { peer: peer_id, epoch });
                    }
                }
                _ => {}
            }
        }

        fn active_owners(&self, shard: ShardId) -> usize {
            self.nodes.iter().flatten().filter(|o| o.state(shard, NOW) == ShardState::Active).count()
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn never_two_active_owners_and_every_shard_served_once_stable(
            steps in proptest::collection::vec(step(), 1..60)
        ) {
            let mut world = World { nodes: vec![None; POOL.len()], epoch: 0, members: BTreeSet::new() };
            world.apply(&Step::Join(0));
            for step in &steps {
                world.apply(step);
                for i in (0..SHARDS).step_by(7) {
                    prop_assert!(world.active_owners(ShardId(i)) <= 1, "shard {} after {:?}", i, step);
                }
            }
            // Stabilise: deliver, release and confirm until nothing changes.
            if world.members.is_empty() {
                return Ok(());
            }
            for _ in 0..3 {
                for n in 0..POOL.len() {
                    world.apply(&Step::Deliver(n));
                    world.apply(&Step::Release(n));
                }
                for a in 0..POOL.len() {
                    for b in 0..POOL.len() {
                        world.apply(&Step::Confirm(a, b));
                    }
                }
            }
            for i in 0..SHARDS {
                prop_assert_eq!(world.active_owners(ShardId(i)), 1, "shard {} once stable", i);
            }
        }
    }
}
