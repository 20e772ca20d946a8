use std::collections::HashMap;

use proptest::prelude::*;

use super::*;

const T0: i64 = 1_798_761_600; // 2027-01-01T00:00:00Z, a day boundary

#[test]
fn admits_up_to_the_limit_then_refuses_with_retry_after() {
    let mut w = RateWindows::default();
    let limits = [2, 100, 1000];
    assert!(w.admit(T0 + 10, limits).admitted);
    let second = w.admit(T0 + 11, limits);
    assert!(second.admitted);
    assert_eq!(second.constraining().remaining, 0);
    let third = w.admit(T0 + 12, limits);
    assert!(!third.admitted);
    assert_eq!(third.retry_after(), Some(48));
    assert_eq!(third.constraining().window, Window::Minute);
    assert_eq!(third.constraining().reset, T0 + 60);
}

#[test]
fn a_window_rolls_over_at_its_boundary() {
    let mut w = RateWindows::default();
    let limits = [1, 100, 1000];
    assert!(w.admit(T0 + 59, limits).admitted);
    assert!(!w.admit(T0 + 59, limits).admitted);
    let next = w.admit(T0 + 60, limits);
    assert!(next.admitted);
    assert_eq!(next.windows[1].remaining, 98, "the hour keeps counting across minutes");
}

#[test]
fn the_longest_exhausted_window_sets_retry_after() {
    let mut w = RateWindows::default();
    let limits = [1, 1, 1000];
    assert!(w.admit(T0 + 30, limits).admitted);
    let refused = w.admit(T0 + 30, limits);
    assert_eq!(refused.constraining().window, Window::Hour);
    assert_eq!(refused.retry_after(), Some(3_600 - 30));
}

#[test]
fn a_zero_limit_refuses_everything() {
    let mut w = RateWindows::default();
    assert!(!w.admit(T0, [0, 10, 10]).admitted);
}

#[test]
fn a_clock_stepping_back_does_not_reopen_a_window() {
    let mut w = RateWindows::default();
    let limits = [1, 10, 10];
    assert!(w.admit(T0 + 61, limits).admitted);
    assert!(!w.admit(T0 + 59, limits).admitted);
}

#[test]
fn restore_round_trips_counts() {
    let mut w = RateWindows::default();
    w.admit(T0, [5, 5, 5]);
    let restored = RateWindows::restore(w.counts());
    assert_eq!(restored, w);
}

fn arb_limits() -> impl Strategy<Value = WindowLimits> {
    (0u64..6, 0u64..20, 0u64..60).prop_map(|(m, h, d)| [m, h, d])
}

/// Sorted request times spread over about two days, with bursts inside one second.
fn arb_times() -> impl Strategy<Value = Vec<i64>> {
    prop::collection::vec((0i64..3, 0i64..200_000), 1..300).prop_map(|steps| {
        let mut t = T0 - 1_000;
        steps
            .into_iter()
            .map(|(kind, jump)| {
                t += match kind {
                    0 => 0,
                    1 => jump % 90,
                    _ => jump % 4_000,
                };
                t
            })
            .collect()
    })
}

proptest! {
    /// Admitted requests never exceed a limit in any aligned window; a request is refused only
    /// when some window is full; `remaining` and `reset` describe the windows exactly.
    #[test]
    fn windows_are_exact(limits in arb_limits(), times in arb_times()) {
        let mut w = RateWindows::default();
        let mut admitted: [HashMap<i64, u64>; 3] = Default::default();
        for &t in &times {
            let before: [u64; 3] = std::array::from_fn(|i| {
                let start = t - t.rem_euclid(Window::ALL[i].span_secs());
                admitted[i].get(&start).copied().unwrap_or(0)
            });
            let room = (0..3).all(|i| before[i] < limits[i]);
            let status = w.admit(t, limits);
            prop_assert_eq!(status.admitted, room, "admit iff every window has room");
            for i in 0..3 {
                let span = Window::ALL[i].span_secs();
                let start = t - t.rem_euclid(span);
                let count = admitted[i].entry(start).or_insert(0);
                if status.admitted {
                    *count += 1;
                }
                prop_assert!(*count <= limits[i], "window {:?} at {} over its limit", Window::ALL[i], start);
                prop_assert_eq!(status.windows[i].remaining, limits[i] - *count);
                prop_assert_eq!(status.windows[i].reset, start + span);
                prop_assert_eq!(status.windows[i].limit, limits[i]);
            }
            let constraining = status.constraining();
            prop_assert!(status.windows.iter().all(|s| constraining.remaining <= s.remaining));
            match status.retry_after() {
                None => prop_assert!(status.admitted),
                Some(wait) => {
                    prop_assert!(!status.admitted);
                    prop_assert!(wait >= 1);
                    // Waiting that long always finds room in every window (retrying earlier may not).
                    let mut probe = w;
                    prop_assert!(probe.admit(t + wait as i64, limits).admitted || limits.contains(&0));
                }
            }
        }
    }

    /// Peeking never changes state.
    #[test]
    fn peek_is_pure(limits in arb_limits(), times in arb_times()) {
        let mut w = RateWindows::default();
        for &t in &times {
            let before = w;
            let peeked = w.peek(t, limits);
            prop_assert_eq!(w, before);
            let admitted = w.admit(t, limits);
            if !admitted.admitted {
                prop_assert_eq!(peeked.windows, admitted.windows);
            }
        }
    }
}

fn window_count() -> impl Strategy<Value = WindowCount> {
    (0i64..4, 0u64..5).prop_map(|(start, count)| WindowCount { start: T0 + start * 60, count })
}

proptest! {
    /// Checkpoints written in any order, twice or late, leave the store with the same counts:
    /// `latest` is a join (commutative, associative, idempotent) and never lowers a count.
    #[test]
    fn latest_window_counts_merge_in_any_order(a in window_count(), b in window_count(), c in window_count()) {
        prop_assert_eq!(a.latest(b), b.latest(a));
        prop_assert_eq!(a.latest(b).latest(c), a.latest(b.latest(c)));
        prop_assert_eq!(a.latest(a), a);
        let merged = a.latest(b);
        prop_assert!(merged.start >= a.start && merged.start >= b.start);
        if a.start == b.start {
            prop_assert_eq!(merged.count, a.count.max(b.count));
        }
    }
}
