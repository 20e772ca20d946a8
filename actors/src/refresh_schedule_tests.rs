use std::collections::{BTreeMap, HashSet};

use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;

use super::*;

const REFRESH_BEFORE_SECS: i64 = 300;

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_798_761_600, 0).expect("2027-01-01 is a valid timestamp")
}

fn at(secs: i64) -> DateTime<Utc> {
    t0() + Duration::seconds(secs)
}

fn at_ms(millis: i64) -> DateTime<Utc> {
    t0() + Duration::milliseconds(millis)
}

fn schedule() -> RefreshSchedule {
    RefreshSchedule::new(Duration::seconds(REFRESH_BEFORE_SECS))
}

fn stored(integration: &str, expires_at: Option<DateTime<Utc>>, refreshable: bool, generation: u64) -> Input {
    Input::Stored { integration: integration.into(), expires_at, refreshable, generation }
}

fn start(integration: &str, generation: u64) -> Effect {
    Effect::StartRefresh { integration: integration.into(), generation }
}

fn status(integration: &str, status: CredentialStatus) -> Effect {
    Effect::SetStatus { integration: integration.into(), status }
}

fn succeeded(integration: &str, generation: u64, expires_at: Option<DateTime<Utc>>, new_generation: u64) -> Input {
    Input::RefreshSucceeded { integration: integration.into(), generation, expires_at, new_generation }
}

fn failed(integration: &str, generation: u64, kind: FailureKind, jitter: f64) -> Input {
    Input::RefreshFailed { integration: integration.into(), generation, kind, jitter }
}

/// A refreshable credential expiring at t0 + 3600 s, stored at t0, its refresh started at the deadline.
fn in_flight() -> RefreshSchedule {
    let mut s = schedule();
    assert!(s.handle(t0(), stored("gh", Some(at(3_600)), true, 1)).is_empty());
    assert_eq!(s.handle(at(3_300), Input::Tick), vec![start("gh", 1)]);
    s
}

#[test]
fn a_refresh_starts_exactly_once_at_the_deadline() {
    let mut s = schedule();
    assert!(s.handle(t0(), stored("gh", Some(at(3_600)), true, 1)).is_empty());
    assert_eq!(s.next_deadline(), Some(at(3_300)));
    assert!(s.handle(at(3_299), Input::Tick).is_empty(), "nothing before the deadline");
    assert_eq!(s.handle(at(3_300), Input::Tick), vec![start("gh", 1)]);
    assert_eq!(s.status("gh"), Some(CredentialStatus::Refreshing));
    assert_eq!(s.next_deadline(), None, "only the answer can move an in-flight refresh");
    assert!(s.handle(at(3_301), Input::Tick).is_empty(), "no second refresh while one is in flight");
    assert!(s.handle(at(3_599), Input::Tick).is_empty());
}

#[test]
fn a_success_makes_the_credential_active_under_its_new_generation() {
    let mut s = in_flight();
    assert_eq!(
        s.handle(at(3_301), succeeded("gh", 1, Some(at(7_200)), 2)),
        vec![status("gh", CredentialStatus::Active)]
    );
    assert_eq!(s.status("gh"), Some(CredentialStatus::Active));
    assert_eq!(s.next_deadline(), Some(at(6_900)));
    assert_eq!(s.handle(at(6_900), Input::Tick), vec![start("gh", 2)], "the next refresh sends the new token");
}

#[test]
fn a_second_answer_for_the_same_refresh_is_ignored() {
    let mut s = in_flight();
    s.handle(at(3_301), succeeded("gh", 1, Some(at(7_200)), 2));
    let before = s.clone();
    assert!(s.handle(at(3_302), succeeded("gh", 1, Some(at(9_000)), 3)).is_empty());
    assert!(s.handle(at(3_302), failed("gh", 1, FailureKind::InvalidGrant, 0.0)).is_empty());
    assert_eq!(s, before);
}

#[test]
fn tokens_living_shorter_than_refresh_before_are_refreshed_halfway_not_in_a_loop() {
    let mut s = in_flight();
    // The provider hands out 100 s tokens, shorter than the 300 s margin.
    let effects = s.handle(at(3_400), succeeded("gh", 1, Some(at(3_500)), 2));
    assert_eq!(effects, vec![status("gh", CredentialStatus::Active)], "no immediate second refresh");
    assert_eq!(s.next_deadline(), Some(at(3_450)));
    assert_eq!(s.handle(at(3_450), Input::Tick), vec![start("gh", 2)]);
}

#[test]
fn a_credential_stored_past_its_deadline_is_refreshed_at_once() {
    let mut s = schedule();
    assert_eq!(s.handle(t0(), stored("gh", Some(at(60)), true, 1)), vec![start("gh", 1)]);
}

#[test]
fn transient_failures_back_off_exponentially_with_jitter_and_a_cap() {
    let mut s = schedule();
    let expiry = at(100_000);
    s.handle(t0(), stored("gh", Some(expiry), true, 1));
    let mut now = at(100_000 - REFRESH_BEFORE_SECS);
    assert_eq!(s.handle(now, Input::Tick), vec![start("gh", 1)]);
    // jitter 0 waits half the base delay, jitter → 1 nearly all of it.
    let expected_ms = [500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000];
    for (attempt, want) in expected_ms.into_iter().enumerate() {
        assert_eq!(
            s.handle(now, failed("gh", 1, FailureKind::Transient, 0.0)),
            vec![status("gh", CredentialStatus::Active)]
        );
        let retry = now + Duration::milliseconds(want);
        assert_eq!(s.next_deadline(), Some(retry), "attempt {}", attempt + 1);
        assert!(s.handle(retry - Duration::milliseconds(1), Input::Tick).is_empty());
        assert_eq!(s.handle(retry, Input::Tick), vec![start("gh", 1)], "the same token is retried");
        now = retry;
    }
    s.handle(now, failed("gh", 1, FailureKind::Transient, 0.999));
    assert_eq!(s.next_deadline(), Some(now + Duration::milliseconds(59_970)), "capped at 60 s");
}

#[test]
fn jitter_out_of_range_is_clamped() {
    for (jitter, want_ms) in [(-3.0, 500), (7.0, 1_000), (f64::NAN, 500), (f64::INFINITY, 500)] {
        let mut s = in_flight();
        s.handle(at(3_300), failed("gh", 1, FailureKind::Transient, jitter));
        assert_eq!(s.next_deadline(), Some(at(3_300) + Duration::milliseconds(want_ms)), "jitter {jitter}");
    }
}

#[test]
fn no_retry_is_scheduled_at_or_after_expiry() {
    let mut s = schedule();
    s.handle(t0(), stored("gh", Some(at(3_600)), true, 1));
    // A refresh starting 0.7 s before expiry: the first retry (≥ 0.5 s) still fits, the second does not.
    let now = at_ms(3_600_000 - 700);
    assert_eq!(s.handle(now, Input::Tick), vec![start("gh", 1)]);
    s.handle(now, failed("gh", 1, FailureKind::Transient, 0.0));
    let retry = now + Duration::milliseconds(500);
    assert_eq!(s.handle(retry, Input::Tick), vec![start("gh", 1)]);
    assert_eq!(
        s.handle(retry, failed("gh", 1, FailureKind::Transient, 0.0)),
        vec![status("gh", CredentialStatus::Active)],
        "the access token is still good until expiry"
    );
    assert_eq!(s.next_deadline(), Some(at(3_600)), "only the expiry is left");
    assert!(s.handle(at(3_600) - Duration::milliseconds(1), Input::Tick).is_empty());
    assert_eq!(s.handle(at(3_600), Input::Tick), vec![status("gh", CredentialStatus::Expired)]);
    assert_eq!(s.next_deadline(), None);
    assert!(s.handle(at(99_999), Input::Tick).is_empty());
}

#[test]
fn a_transient_failure_after_expiry_expires_the_credential() {
    let mut s = in_flight();
    assert_eq!(
        s.handle(at(3_600), failed("gh", 1, FailureKind::Transient, 0.5)),
        vec![status("gh", CredentialStatus::Expired)]
    );
    assert_eq!(s.next_deadline(), None);
}

#[test]
fn a_refresh_answered_after_expiry_still_counts() {
    let mut s = in_flight();
    assert!(s.handle(at(3_700), Input::Tick).is_empty(), "in flight: the answer decides, not the clock");
    assert_eq!(s.status("gh"), Some(CredentialStatus::Refreshing));
    s.handle(at(3_701), succeeded("gh", 1, Some(at(7_200)), 2));
    assert_eq!(s.status("gh"), Some(CredentialStatus::Active));
}

#[test]
fn invalid_grant_and_misconfigured_need_reauthorization_at_once() {
    for kind in [FailureKind::InvalidGrant, FailureKind::Misconfigured] {
        let mut s = in_flight();
        assert_eq!(s.handle(at(3_300), failed("gh", 1, kind, 0.0)), vec![status("gh", CredentialStatus::NeedsReauth)]);
        assert_eq!(s.next_deadline(), None);
        assert!(s.handle(at(3_599), Input::Tick).is_empty(), "{kind:?}: no more refreshes");
        assert!(s.handle(at(9_999), Input::Tick).is_empty(), "{kind:?}: stays needs_reauth past expiry");
        assert_eq!(s.status("gh"), Some(CredentialStatus::NeedsReauth));
    }
}

#[test]
fn a_credential_without_expiry_is_never_refreshed() {
    let mut s = schedule();
    assert!(s.handle(t0(), stored("gh", None, true, 1)).is_empty());
    assert_eq!(s.next_deadline(), None);
    assert!(s.handle(at(10_000_000), Input::Tick).is_empty());
    assert_eq!(s.status("gh"), Some(CredentialStatus::Active));
}

#[test]
fn a_non_refreshable_credential_expires_without_a_refresh() {
    let mut s = schedule();
    assert!(s.handle(t0(), stored("gh", Some(at(3_600)), false, 1)).is_empty());
    assert_eq!(s.next_deadline(), Some(at(3_600)));
    assert!(s.handle(at(3_599), Input::Tick).is_empty());
    assert_eq!(s.handle(at(3_600), Input::Tick), vec![status("gh", CredentialStatus::Expired)]);
    assert_eq!(s.next_deadline(), None);
}

#[test]
fn a_credential_stored_already_expired_is_expired_at_once() {
    let mut s = schedule();
    assert_eq!(s.handle(at(10), stored("gh", Some(t0()), true, 1)), vec![status("gh", CredentialStatus::Expired)]);
}

#[test]
fn answers_for_an_old_generation_or_a_removed_credential_are_ignored() {
    let mut s = in_flight();
    // A new authorization replaced the token while the old refresh was in flight.
    assert!(s.handle(at(3_301), stored("gh", Some(at(20_000)), true, 5)).is_empty());
    assert_eq!(s.status("gh"), Some(CredentialStatus::Active));
    let before = s.clone();
    assert!(s.handle(at(3_302), succeeded("gh", 1, Some(at(7_200)), 2)).is_empty());
    assert!(s.handle(at(3_302), failed("gh", 1, FailureKind::InvalidGrant, 0.0)).is_empty());
    assert_eq!(s, before);
    assert_eq!(s.next_deadline(), Some(at(19_700)));

    let mut s = in_flight();
    assert!(s.handle(at(3_301), Input::Removed { integration: "gh".into() }).is_empty());
    assert!(s.handle(at(3_302), succeeded("gh", 1, Some(at(7_200)), 2)).is_empty());
    assert_eq!(s.status("gh"), None);
    assert_eq!(s.next_deadline(), None);
}

#[test]
fn an_answer_when_nothing_is_in_flight_is_ignored() {
    let mut s = schedule();
    s.handle(t0(), stored("gh", Some(at(3_600)), true, 1));
    assert!(s.handle(at(1), succeeded("gh", 1, Some(at(9_000)), 2)).is_empty());
    assert!(s.handle(at(1), failed("gh", 1, FailureKind::InvalidGrant, 0.0)).is_empty());
    assert!(s.handle(at(1), succeeded("other", 1, Some(at(9_000)), 2)).is_empty());
    assert_eq!(s.status("gh"), Some(CredentialStatus::Active));
    assert_eq!(s.next_deadline(), Some(at(3_300)));
}

#[test]
fn re_storing_the_same_token_never_sends_it_twice() {
    let mut s = in_flight();
    // Only the access token changed: the refresh of generation 1 is still in flight.
    assert_eq!(
        s.handle(at(3_301), stored("gh", Some(at(3_500)), true, 1)),
        vec![status("gh", CredentialStatus::Refreshing)],
        "the shell persisted active; the in-flight refresh must be on record again"
    );
    assert!(s.handle(at(3_450), Input::Tick).is_empty());
    s.handle(at(3_451), failed("gh", 1, FailureKind::InvalidGrant, 0.0));
    assert_eq!(
        s.handle(at(3_452), stored("gh", Some(at(9_000)), true, 1)),
        vec![status("gh", CredentialStatus::NeedsReauth)],
        "a refused token stays refused"
    );
    assert!(s.handle(at(8_800), Input::Tick).is_empty());
    // A new token starts afresh.
    assert_eq!(s.handle(at(8_801), stored("gh", Some(at(9_000)), true, 2)), vec![start("gh", 2)]);
}

#[test]
fn re_storing_an_expired_credential_with_a_new_expiry_reactivates_it() {
    let mut s = schedule();
    s.handle(t0(), stored("gh", Some(at(100)), false, 1));
    s.handle(at(100), Input::Tick);
    assert_eq!(s.status("gh"), Some(CredentialStatus::Expired));
    assert!(s.handle(at(200), stored("gh", Some(at(3_600)), false, 1)).is_empty());
    assert_eq!(s.status("gh"), Some(CredentialStatus::Active));
    assert_eq!(s.next_deadline(), Some(at(3_600)));
}

#[test]
fn a_refresh_in_flight_at_a_restart_is_never_sent_again() {
    let mut s = schedule();
    let restored = Input::Restored {
        integration: "gh".into(),
        expires_at: Some(at(3_600)),
        refreshable: true,
        generation: 7,
        status: CredentialStatus::Refreshing,
    };
    assert_eq!(s.handle(at(3_400), restored), vec![status("gh", CredentialStatus::NeedsReauth)]);
    assert_eq!(s.next_deadline(), None);
    assert!(s.handle(at(3_500), Input::Tick).is_empty());
    assert!(s.handle(at(3_500), succeeded("gh", 7, Some(at(9_000)), 8)).is_empty(), "the old process's answer is gone");
}

#[test]
fn restored_credentials_keep_their_standing() {
    let restore = |status: CredentialStatus, now: i64| {
        let mut s = schedule();
        let input = Input::Restored {
            integration: "gh".into(),
            expires_at: Some(at(3_600)),
            refreshable: true,
            generation: 3,
            status,
        };
        (s.handle(at(now), input), s)
    };
    let (effects, s) = restore(CredentialStatus::Active, 100);
    assert!(effects.is_empty());
    assert_eq!(s.next_deadline(), Some(at(3_300)));
    assert_eq!(restore(CredentialStatus::Active, 3_400).0, vec![start("gh", 3)], "past the deadline: at once");
    assert_eq!(restore(CredentialStatus::Active, 3_600).0, vec![status("gh", CredentialStatus::Expired)]);
    for terminal in [CredentialStatus::NeedsReauth, CredentialStatus::Expired] {
        let (effects, mut s) = restore(terminal, 3_400);
        assert!(effects.is_empty());
        assert_eq!(s.status("gh"), Some(terminal));
        assert_eq!(s.next_deadline(), None);
        assert!(s.handle(at(3_500), Input::Tick).is_empty());
    }
}

#[test]
fn the_next_deadline_is_the_earliest_over_all_credentials() {
    let mut s = schedule();
    s.handle(t0(), stored("a", Some(at(10_000)), true, 1));
    s.handle(t0(), stored("b", Some(at(1_000)), false, 2));
    s.handle(t0(), stored("c", None, true, 3));
    assert_eq!(s.next_deadline(), Some(at(1_000)));
    assert_eq!(s.handle(at(1_000), Input::Tick), vec![status("b", CredentialStatus::Expired)]);
    assert_eq!(s.next_deadline(), Some(at(9_700)));
}

#[test]
#[should_panic(expected = "refresh_before must not be negative")]
fn a_negative_margin_is_refused() {
    RefreshSchedule::new(Duration::seconds(-1));
}

// ---- Model: the shell, its persisted store, and a provider that rotates refresh tokens ----

/// What the shell has persisted for one credential.
#[derive(Debug, Clone)]
struct Persisted {
    expires_at: Option<DateTime<Utc>>,
    refreshable: bool,
    generation: u64,
    status: CredentialStatus,
}

/// A refresh request that reached the provider and whose answer has not come back yet.
#[derive(Debug, Clone)]
struct Sent {
    integration: String,
    generation: u64,
    arrives_at: DateTime<Utc>,
}

/// The provider's answer to one refresh request.
#[derive(Debug, Clone)]
enum Answer {
    /// New tokens, always with a new refresh token (rotation).
    Success {
        expires_in_secs: i64,
    },
    /// Never reached the provider, or it answered 5xx without consuming the token.
    Transient {
        jitter: f64,
    },
    InvalidGrant,
    Misconfigured,
}

struct World {
    now: DateTime<Utc>,
    schedule: RefreshSchedule,
    persisted: BTreeMap<String, Persisted>,
    /// Generations the provider consumed, refused, or may have consumed (in flight at a crash):
    /// sending any of them again breaks invariant 4.
    burned: HashSet<u64>,
    pending: Vec<Sent>,
    next_generation: u64,
    /// Latency of each refresh request, used in turn (liveness runs only).
    latencies: Vec<i64>,
    sent_count: usize,
}

impl World {
    fn new(latencies: Vec<i64>) -> Self {
        Self {
            now: t0(),
            schedule: schedule(),
            persisted: BTreeMap::new(),
            burned: HashSet::new(),
            pending: Vec::new(),
            next_generation: 1,
            latencies,
            sent_count: 0,
        }
    }

    fn fresh_generation(&mut self) -> u64 {
        self.next_generation += 1;
        self.next_generation
    }

    /// Feeds `input` to the schedule and carries out its effects the way the shell does, checking
    /// every `StartRefresh` before it reaches the provider. Callers check consistency once the
    /// whole step is done (a restart feeds one credential at a time).
    fn feed(&mut self, input: Input) -> Result<(), TestCaseError> {
        for effect in self.schedule.handle(self.now, input) {
            match effect {
                Effect::StartRefresh { integration, generation } => {
                    let record = self.persisted.get_mut(&integration);
                    let record = record.ok_or_else(|| fail(format!("refresh of unknown {integration}")))?;
                    prop_assert_eq!(record.generation, generation, "refresh of a generation not on record");
                    // (d) never for a credential needing reauthorization or expired.
                    prop_assert_eq!(record.status, CredentialStatus::Active, "refresh from status {:?}", record.status);
                    // (a) at most once per generation, never two at a time.
                    prop_assert!(!self.burned.contains(&generation), "generation {} sent again", generation);
                    prop_assert!(
                        self.pending.iter().all(|sent| sent.generation != generation),
                        "generation {} sent while in flight",
                        generation
                    );
                    // (b) every refresh is for an expiring, refreshable credential, before it expires.
                    prop_assert!(record.refreshable);
                    let end = record.expires_at.ok_or_else(|| fail("refresh of a credential without expiry"))?;
                    prop_assert!(self.now < end, "refresh at {} of a credential expired at {}", self.now, end);
                    // Persisted before the call, as the shell must.
                    record.status = CredentialStatus::Refreshing;
                    let latency = self.latencies.get(self.sent_count % self.latencies.len().max(1)).copied();
                    self.sent_count += 1;
                    let arrives_at = self.now + Duration::seconds(latency.unwrap_or(0));
                    self.pending.push(Sent { integration, generation, arrives_at });
                }
                Effect::SetStatus { integration, status } => {
                    let record = self.persisted.get_mut(&integration);
                    record.ok_or_else(|| fail(format!("status for unknown {integration}")))?.status = status;
                }
            }
        }
        Ok(())
    }

    /// What the schedule believes matches what the shell persisted.
    fn check_consistent(&self) -> Result<(), TestCaseError> {
        for (integration, record) in &self.persisted {
            prop_assert_eq!(self.schedule.status(integration), Some(record.status), "status of {}", integration);
        }
        Ok(())
    }

    fn store(&mut self, integration: String, expires_at: Option<DateTime<Utc>>, refreshable: bool) -> TestCaseResult {
        let generation = self.fresh_generation();
        let record = Persisted { expires_at, refreshable, generation, status: CredentialStatus::Active };
        self.persisted.insert(integration.clone(), record);
        self.feed(Input::Stored { integration, expires_at, refreshable, generation })?;
        self.check_consistent()
    }

    fn remove(&mut self, integration: String) -> TestCaseResult {
        self.persisted.remove(&integration);
        self.feed(Input::Removed { integration })?;
        self.check_consistent()
    }

    fn answer(&mut self, sent: Sent, answer: Answer) -> TestCaseResult {
        let Sent { integration, generation, .. } = sent;
        let input = match answer {
            Answer::Success { expires_in_secs } => {
                self.burned.insert(generation);
                let new_generation = self.fresh_generation();
                let expires_at = Some(self.now + Duration::seconds(expires_in_secs));
                // The shell stores the new tokens only over the generation it refreshed.
                if let Some(record) = self.persisted.get_mut(&integration).filter(|r| r.generation == generation) {
                    *record = Persisted {
                        expires_at,
                        generation: new_generation,
                        status: CredentialStatus::Active,
                        ..*record
                    };
                }
                Input::RefreshSucceeded { integration, generation, expires_at, new_generation }
            }
            Answer::Transient { jitter } => {
                Input::RefreshFailed { integration, generation, kind: FailureKind::Transient, jitter }
            }
            Answer::InvalidGrant => {
                self.burned.insert(generation);
                Input::RefreshFailed { integration, generation, kind: FailureKind::InvalidGrant, jitter: 0.0 }
            }
            Answer::Misconfigured => {
                self.burned.insert(generation);
                Input::RefreshFailed { integration, generation, kind: FailureKind::Misconfigured, jitter: 0.0 }
            }
        };
        self.feed(input)?;
        self.check_consistent()
    }

    /// The process stops: answers in flight are lost (the provider may have used those tokens), and
    /// a new schedule is rebuilt from what was persisted.
    fn restart(&mut self) -> TestCaseResult {
        for sent in self.pending.drain(..) {
            self.burned.insert(sent.generation);
        }
        self.schedule = schedule();
        for (integration, record) in self.persisted.clone() {
            self.feed(Input::Restored {
                integration,
                expires_at: record.expires_at,
                refreshable: record.refreshable,
                generation: record.generation,
                status: record.status,
            })?;
        }
        self.check_consistent()
    }

    fn tick(&mut self) -> TestCaseResult {
        self.feed(Input::Tick)?;
        self.check_consistent()
    }
}

fn fail(message: impl Into<String>) -> TestCaseError {
    TestCaseError::fail(message.into())
}

const INTEGRATIONS: [&str; 3] = ["github", "slack", "notion"];

#[derive(Debug, Clone)]
enum Expiry {
    Never,
    /// Seconds ago.
    Past(i64),
    /// Seconds ahead, within the refresh margin or just beyond it.
    Near(i64),
    /// Seconds ahead, well beyond the margin.
    Far(i64),
}

#[derive(Debug, Clone)]
enum Event {
    Store { integration: usize, expiry: Expiry, refreshable: bool },
    Remove { integration: usize },
    Advance { millis: i64 },
    TickAtDeadline,
    Answer { pick: usize, answer: Answer },
    Restart,
}

fn expiry() -> impl Strategy<Value = Expiry> {
    prop_oneof![
        1 => Just(Expiry::Never),
        1 => (0..10_000i64).prop_map(Expiry::Past),
        3 => (1..2 * REFRESH_BEFORE_SECS).prop_map(Expiry::Near),
        2 => (2 * REFRESH_BEFORE_SECS..200_000).prop_map(Expiry::Far),
    ]
}

fn answer() -> impl Strategy<Value = Answer> {
    prop_oneof![
        3 => (1..20_000i64).prop_map(|expires_in_secs| Answer::Success { expires_in_secs }),
        3 => (0.0..1.0f64).prop_map(|jitter| Answer::Transient { jitter }),
        1 => Just(Answer::InvalidGrant),
        1 => Just(Answer::Misconfigured),
    ]
}

fn event() -> impl Strategy<Value = Event> {
    let integration = 0..INTEGRATIONS.len();
    prop_oneof![
        3 => (integration.clone(), expiry(), any::<bool>())
            .prop_map(|(integration, expiry, refreshable)| Event::Store { integration, expiry, refreshable }),
        1 => integration.prop_map(|integration| Event::Remove { integration }),
        3 => (0..5_000i64).prop_map(|millis| Event::Advance { millis }),
        1 => (0..200_000_000i64).prop_map(|millis| Event::Advance { millis }),
        4 => Just(Event::TickAtDeadline),
        5 => (any::<usize>(), answer()).prop_map(|(pick, answer)| Event::Answer { pick, answer }),
        1 => Just(Event::Restart),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Safety: whatever the provider answers, however time jumps and whenever the process restarts,
    /// no generation is sent twice (a), refreshes happen before expiry (b), no refresh starts for a
    /// credential needing reauthorization or expired (d), and the persisted status follows the
    /// schedule.
    #[test]
    fn no_generation_is_ever_sent_twice(events in prop::collection::vec(event(), 1..120)) {
        let mut world = World::new(Vec::new());
        for event in events {
            match event {
                Event::Store { integration, expiry, refreshable } => {
                    let now = world.now;
                    let expires_at = match expiry {
                        Expiry::Never => None,
                        Expiry::Past(secs) => Some(now - Duration::seconds(secs)),
                        Expiry::Near(secs) | Expiry::Far(secs) => Some(now + Duration::seconds(secs)),
                    };
                    world.store(INTEGRATIONS[integration].into(), expires_at, refreshable)?;
                }
                Event::Remove { integration } => world.remove(INTEGRATIONS[integration].into())?,
                Event::Advance { millis } => {
                    world.now += Duration::milliseconds(millis);
                    world.tick()?;
                }
                Event::TickAtDeadline => {
                    if let Some(deadline) = world.schedule.next_deadline() {
                        world.now = world.now.max(deadline);
                    }
                    world.tick()?;
                }
                Event::Answer { pick, answer } => {
                    if !world.pending.is_empty() {
                        let sent = world.pending.remove(pick % world.pending.len());
                        world.answer(sent, answer)?;
                    }
                }
                Event::Restart => world.restart()?,
            }
        }
    }

    /// Liveness (c): when the provider always answers with new tokens and the shell ticks at every
    /// deadline, a refreshable credential stored with more than the margin left never expires,
    /// restarts included (a refresh lost in a restart ends in needs_reauth, never in expired).
    #[test]
    fn a_provider_that_answers_keeps_credentials_alive(
        stores in prop::collection::vec((0..INTEGRATIONS.len(), REFRESH_BEFORE_SECS + 1..200_000), 1..6),
        latencies in prop::collection::vec(0..2 * REFRESH_BEFORE_SECS, 1..8),
        lifetimes in prop::collection::vec(1..20_000i64, 1..8),
        restarts in prop::collection::vec(any::<bool>(), 1..6),
        steps in 1..200usize,
    ) {
        let mut world = World::new(latencies);
        let mut answered = 0usize;
        for (round, (integration, lifetime)) in stores.into_iter().enumerate() {
            let expires_at = Some(world.now + Duration::seconds(lifetime));
            world.store(INTEGRATIONS[integration].into(), expires_at, true)?;
            for _ in 0..steps {
                let arrival = world.pending.iter().map(|sent| sent.arrives_at).min();
                let Some(next) = [arrival, world.schedule.next_deadline()].into_iter().flatten().min() else { break };
                world.now = world.now.max(next);
                if let Some(index) = world.pending.iter().position(|sent| sent.arrives_at <= world.now) {
                    let sent = world.pending.remove(index);
                    let expires_in_secs = lifetimes[answered % lifetimes.len()];
                    answered += 1;
                    world.answer(sent, Answer::Success { expires_in_secs })?;
                } else {
                    world.tick()?;
                }
                for (name, record) in &world.persisted {
                    prop_assert_ne!(record.status, CredentialStatus::Expired, "{} expired at {}", name, world.now);
                }
            }
            if restarts[round % restarts.len()] {
                world.restart()?;
            }
        }
    }
}

/// Expiries at either end of the calendar are scheduled, never a panic: one too early to
/// subtract the lead from has expired, one far in the future waits, and a refresh may answer one.
#[test]
fn expiries_at_the_ends_of_the_calendar_do_not_panic() {
    let mut s = RefreshSchedule::new(Duration::days(30));
    let earliest = DateTime::<Utc>::MIN_UTC + Duration::seconds(1);
    let expired = Effect::SetStatus { integration: "early".into(), status: CredentialStatus::Expired };
    assert_eq!(s.handle(at(0), stored("early", Some(earliest), true, 0)), vec![expired]);
    assert!(s.handle(at(0), stored("late", Some(DateTime::<Utc>::MAX_UTC), true, 0)).is_empty());
    assert_eq!(s.handle(at(0), stored("soon", Some(at(10)), true, 0)), vec![start("soon", 0)]);
    let succeeded = Input::RefreshSucceeded {
        integration: "soon".into(),
        generation: 0,
        expires_at: Some(DateTime::<Utc>::MAX_UTC),
        new_generation: 1,
    };
    s.handle(at(1), succeeded);
    assert_eq!(s.status("soon"), Some(CredentialStatus::Active));
    assert!(s.next_deadline().is_some_and(|due| due > at(1)));
}
