use std::collections::BTreeSet;

use super::*;

fn node(name: &str) -> NodeId {
    NodeId(name.to_string())
}

fn map(epoch: u64, nodes: &[&str]) -> ShardMap {
    ShardMap::new(epoch, nodes.iter().map(|n| node(n)))
}

fn shards_in(ownership: &ShardOwnership, state: ShardState) -> usize {
    (0..SHARDS).filter(|i| ownership.state(ShardId(*i)) == state).count()
}

#[test]
fn before_any_view_nothing_is_served() {
    let a = ShardOwnership::new(node("a"));
    assert_eq!(shards_in(&a, ShardState::Active), 0);
    assert_eq!(shards_in(&a, ShardState::Elsewhere), usize::from(SHARDS));
}

#[test]
fn a_single_node_serves_every_shard_at_once() {
    let mut a = ShardOwnership::new(node("a"));
    let effects = a.install(map(1, &["a"]));
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
    let mut a = ShardOwnership::new(node("a"));
    a.install(map(1, &["a"]));
    a.released(1);

    let mut b = ShardOwnership::new(node("b"));
    let effects = b.install(map(2, &["a", "b"]));
    assert!(effects.contains(&OwnershipEffect::AskRelease { peer: node("a"), epoch: 2 }));
    let b_owns = b.map().count_owned_by(&node("b"));
    assert!(b_owns > 0);
    assert_eq!(shards_in(&b, ShardState::Acquiring), b_owns);
    assert_eq!(shards_in(&b, ShardState::Active), 0);

    // `a` cannot confirm before it has seen view 2 and released.
    assert!(!a.has_released(2));
    let effects = a.install(map(2, &["a", "b"]));
    assert_eq!(effects, vec![OwnershipEffect::ReleaseUnowned { epoch: 2 }], "a acquires nothing");
    assert!(!a.has_released(2));
    a.released(2);
    assert!(a.has_released(2));
    // What `a` kept stayed active the whole time; what moved is no longer served by `a`.
    assert_eq!(shards_in(&a, ShardState::Active), a.map().count_owned_by(&node("a")));

    let effects = b.confirmed(&node("a"), 2);
    assert_eq!(effects, vec![OwnershipEffect::AllActive { epoch: 2, shards: b_owns }]);
    assert_eq!(shards_in(&b, ShardState::Active), b_owns);
}

#[test]
fn no_shard_is_ever_active_on_two_nodes_when_confirmations_follow_the_rules() {
    let mut a = ShardOwnership::new(node("a"));
    let mut b = ShardOwnership::new(node("b"));
    a.install(map(1, &["a"]));
    a.released(1);
    b.install(map(2, &["a", "b"]));
    // b waits; a still serves everything from view 1.
    for i in 0..SHARDS {
        let both = a.state(ShardId(i)) == ShardState::Active && b.state(ShardId(i)) == ShardState::Active;
        assert!(!both, "shard {i} active on both nodes");
    }
    a.install(map(2, &["a", "b"]));
    a.released(2);
    assert!(a.has_released(2));
    b.confirmed(&node("a"), 2);
    for i in 0..SHARDS {
        let both = a.state(ShardId(i)) == ShardState::Active && b.state(ShardId(i)) == ShardState::Active;
        assert!(!both, "shard {i} active on both nodes");
    }
    assert_eq!(shards_in(&a, ShardState::Active) + shards_in(&b, ShardState::Active), usize::from(SHARDS));
}

#[test]
fn shards_of_a_member_removed_from_the_view_are_taken_over_at_once() {
    let mut b = ShardOwnership::new(node("b"));
    b.install(map(2, &["a", "b"]));
    b.confirmed(&node("a"), 2);
    let effects = b.install(map(3, &["b"]));
    assert_eq!(
        effects,
        vec![
            OwnershipEffect::ReleaseUnowned { epoch: 3 },
            OwnershipEffect::AllActive { epoch: 3, shards: usize::from(SHARDS) }
        ]
    );
}

#[test]
fn a_confirmation_for_an_older_view_does_not_count() {
    let mut c = ShardOwnership::new(node("c"));
    c.install(map(5, &["a", "c"]));
    assert!(c.awaits(&node("a"), 5));
    assert!(c.confirmed(&node("a"), 4).is_empty());
    assert!(c.awaits(&node("a"), 5));
    assert_eq!(shards_in(&c, ShardState::Active), 0);
}

#[test]
fn older_views_are_ignored() {
    let mut a = ShardOwnership::new(node("a"));
    a.install(map(3, &["a"]));
    assert!(a.install(map(2, &["a", "b"])).is_empty());
    assert_eq!(a.epoch(), 3);
}

#[test]
fn a_new_view_while_acquiring_asks_the_new_peers() {
    let mut c = ShardOwnership::new(node("c"));
    c.install(map(5, &["a", "c"]));
    let effects = c.install(map(6, &["a", "b", "c"]));
    assert!(effects.contains(&OwnershipEffect::AskRelease { peer: node("a"), epoch: 6 }));
    assert!(effects.contains(&OwnershipEffect::AskRelease { peer: node("b"), epoch: 6 }));
    assert!(!c.awaits(&node("a"), 5), "the older round is over");
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
                    self.nodes[n] = Some(ShardOwnership::new(node(POOL[n])));
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
                        ownership.install(view);
                    }
                }
                Step::Release(n) => {
                    if let Some(ownership) = self.nodes[n].as_mut() {
                        let epoch = ownership.epoch();
                        ownership.released(epoch);
                    }
                }
                Step::Confirm(asker, peer) => {
                    let Some(epoch) = self.nodes[asker].as_ref().map(ShardOwnership::epoch) else { return };
                    let peer_id = node(POOL[peer]);
                    let answers = self.nodes[peer].as_ref().is_some_and(|p| p.has_released(epoch));
                    if let Some(ownership) = self.nodes[asker].as_mut()
                        && ownership.awaits(&peer_id, epoch)
                        && answers
                    {
                        ownership.confirmed(&peer_id, epoch);
                    }
                }
                _ => {}
            }
        }

        fn active_owners(&self, shard: ShardId) -> usize {
            self.nodes.iter().flatten().filter(|o| o.state(shard) == ShardState::Active).count()
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
