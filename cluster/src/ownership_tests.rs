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
