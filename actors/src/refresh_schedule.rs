//! `RefreshSchedule`: when each of one tenant's OAuth credentials is refreshed, retried, or given up.
//!
//! One entry per integration. The schedule decides when a refresh starts (at `expires_at −
//! refresh_before`), how transient failures are retried (exponential backoff with caller-supplied
//! jitter, never past expiry), and which status each credential has (`Active`, `Refreshing`,
//! `NeedsReauth`, `Expired`). It does not read clocks, draw random numbers, talk HTTP or persist:
//! the shell feeds [`Input`]s with the time, carries out the returned [`Effect`]s, and calls
//! [`Input::Tick`] at [`RefreshSchedule::next_deadline`].
//!
//! Safety before availability (the simulator's invariant 4): a refresh token generation is never sent
//! twice once the provider may have consumed it. Providers that rotate refresh tokens treat a
//! reused one as theft and lock the tenant out, so a refresh that was in flight when the process
//! stopped ([`Input::Restored`] with status `Refreshing`) ends in `NeedsReauth` instead of a retry.
//! A transient failure is retried because the provider answered (5xx) or was never reached; a
//! timeout after the request left is ambiguous, and retrying it costs nothing a rotating provider
//! would not take anyway: if it consumed the token we never got the new one, and the retry's
//! `invalid_grant` leads to the same `NeedsReauth`.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

use crate::secret_store::CredentialStatus;

/// Delay before the first retry after a transient failure; it doubles with every further failure.
const BACKOFF_INITIAL_MS: i64 = 1_000;
/// Upper bound of the retry delay, so a credential with a long life is still retried often.
const BACKOFF_MAX_MS: i64 = 60_000;

/// Why a refresh failed, as the shell classifies the provider's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Timeout, connection failure or 5xx: the same refresh token may be tried again.
    Transient,
    /// The provider refused the refresh token (`invalid_grant`): only a new authorization helps.
    InvalidGrant,
    /// Any other refusal (`invalid_client`, `unauthorized_client`, a malformed answer, ...): the
    /// integration's configuration is wrong, and retrying would not change the answer.
    Misconfigured,
}

/// What happened, as the shell tells it.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A credential was stored or replaced. `refreshable` means it has a refresh token and a token
    /// endpoint; `generation` identifies the refresh token (the shell changes it whenever the refresh
    /// token changes). A different generation starts afresh and makes any answer for the old one
    /// stale; the same generation keeps what is known about that token (in flight, refused,
    /// backing off), so re-storing it never sends it twice.
    Stored { integration: String, expires_at: Option<DateTime<Utc>>, refreshable: bool, generation: u64 },
    /// A credential as persisted, loaded after a restart, activation or hand-off. A persisted
    /// `Refreshing` means a refresh of `generation` may have reached the provider: it becomes
    /// `NeedsReauth` and is never sent again.
    Restored {
        integration: String,
        expires_at: Option<DateTime<Utc>>,
        refreshable: bool,
        generation: u64,
        status: CredentialStatus,
    },
    /// The credential was deleted; answers still in flight for it are ignored.
    Removed { integration: String },
    /// Time passed; the shell sends it at [`RefreshSchedule::next_deadline`].
    Tick,
    /// The provider answered a refresh of `generation` with new tokens, which the shell has already
    /// stored atomically. `new_generation` equals `generation` when the provider kept the refresh
    /// token (no rotation).
    RefreshSucceeded { integration: String, generation: u64, expires_at: Option<DateTime<Utc>>, new_generation: u64 },
    /// A refresh of `generation` failed. `jitter`, drawn by the shell from [0, 1), spreads retries
    /// of many tenants apart; it is only used for [`FailureKind::Transient`].
    RefreshFailed { integration: String, generation: u64, kind: FailureKind, jitter: f64 },
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Persist status `Refreshing` for `generation` first, then send the refresh token of that
    /// generation to the provider and report the answer with `RefreshSucceeded`/`RefreshFailed`.
    /// Persisting first is what lets [`Input::Restored`] know the token may be consumed.
    StartRefresh { integration: String, generation: u64 },
    /// Persist this status for the credential. The move to `Refreshing` is implied by
    /// [`Effect::StartRefresh`]; after [`Input::Stored`] the shell has persisted `Active`, and the
    /// schedule tells it when the credential stands elsewhere.
    SetStatus { integration: String, status: CredentialStatus },
}

/// Where one credential's refresh stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the refresh deadline (or never refreshed: no expiry or not refreshable).
    Idle,
    /// A refresh of the current generation is in flight; `attempt` counts the attempts started.
    InFlight { attempt: u32 },
    /// The last attempt failed transiently; the next one starts at `at`, which is before expiry.
    Backoff { attempt: u32, at: DateTime<Utc> },
    /// Transient failures left no room for another attempt before expiry: wait for it.
    Exhausted,
    /// The refresh token of the current generation was refused or may have been consumed.
    NeedsReauth,
    /// The access token expired without a successful refresh.
    Expired,
}

impl Phase {
    fn status(self) -> CredentialStatus {
        match self {
            Phase::Idle | Phase::Backoff { .. } | Phase::Exhausted => CredentialStatus::Active,
            Phase::InFlight { .. } => CredentialStatus::Refreshing,
            Phase::NeedsReauth => CredentialStatus::NeedsReauth,
            Phase::Expired => CredentialStatus::Expired,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    expires_at: Option<DateTime<Utc>>,
    /// It has a refresh token and a token endpoint.
    refreshable: bool,
    generation: u64,
    /// When the first attempt for this generation starts; `None` when it is never refreshed.
    refresh_at: Option<DateTime<Utc>>,
    phase: Phase,
}

/// The refresh state of one tenant's credentials, by integration name.
#[derive(Debug, Clone, PartialEq)]
pub struct RefreshSchedule {
    refresh_before: Duration,
    entries: BTreeMap<String, Entry>,
}

impl RefreshSchedule {
    /// An empty schedule that refreshes each credential `refresh_before` ahead of its expiry.
    ///
    /// # Panics
    /// If `refresh_before` is negative: refreshing after expiry is never what a caller means.
    pub fn new(refresh_before: Duration) -> Self {
        assert!(refresh_before >= Duration::zero(), "refresh_before must not be negative");
        Self { refresh_before, entries: BTreeMap::new() }
    }

    /// The credential's status as this schedule sees it; `None` for an unknown integration.
    pub fn status(&self, integration: &str) -> Option<CredentialStatus> {
        self.entries.get(integration).map(|entry| entry.phase.status())
    }

    /// The earliest time at which a [`Input::Tick`] could change anything: a refresh deadline, a
    /// retry, or an expiry. `None` when only an input from the shell can.
    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        self.entries.values().filter_map(Entry::deadline).min()
    }

    /// Applies `input` at `now`, then starts every refresh and expiry that is due at `now`.
    pub fn handle(&mut self, now: DateTime<Utc>, input: Input) -> Vec<Effect> {
        let mut effects = Vec::new();
        match input {
            Input::Stored { integration, expires_at, refreshable, generation } => {
                let refresh_at = self.refresh_at(expires_at, refreshable);
                let phase = match self.entries.get(&integration) {
                    // Same refresh token: what we learnt about it still holds. An access token
                    // replaced after expiry or after giving up is worth refreshing again.
                    Some(old) if old.generation == generation => match old.phase {
                        kept @ (Phase::InFlight { .. } | Phase::NeedsReauth) => kept,
                        kept @ Phase::Backoff { .. } if refresh_at.is_some() => kept,
                        Phase::Idle | Phase::Backoff { .. } | Phase::Exhausted | Phase::Expired => Phase::Idle,
                    },
                    _ => Phase::Idle,
                };
                // The shell persisted the stored credential as active; a refresh still in flight
                // must read `Refreshing` again, or a restart would send its token a second time.
                if phase.status() != CredentialStatus::Active {
                    effects.push(set_status(&integration, phase.status()));
                }
                self.entries.insert(integration, Entry { expires_at, refreshable, generation, refresh_at, phase });
            }
            Input::Restored { integration, expires_at, refreshable, generation, status } => {
                let refresh_at = self.refresh_at(expires_at, refreshable);
                let phase = match status {
                    CredentialStatus::Active => Phase::Idle,
                    CredentialStatus::Refreshing => {
                        effects.push(set_status(&integration, CredentialStatus::NeedsReauth));
                        Phase::NeedsReauth
                    }
                    CredentialStatus::NeedsReauth => Phase::NeedsReauth,
                    CredentialStatus::Expired => Phase::Expired,
                };
                self.entries.insert(integration, Entry { expires_at, refreshable, generation, refresh_at, phase });
            }
            Input::Removed { integration } => {
                self.entries.remove(&integration);
            }
            Input::Tick => {}
            Input::RefreshSucceeded { integration, generation, expires_at, new_generation } => {
                let refresh_before = self.refresh_before;
                if let Some(entry) = self.in_flight(&integration, generation) {
                    entry.expires_at = expires_at;
                    entry.generation = new_generation;
                    entry.refresh_at = expires_at.filter(|_| entry.refreshable).map(|end| {
                        // A provider whose tokens live shorter than `refresh_before` would otherwise
                        // be asked again at once, forever: wait half of the new lifetime instead.
                        let halfway = now + (end - now) / 2;
                        end.checked_sub_signed(refresh_before).unwrap_or(DateTime::<Utc>::MIN_UTC).max(halfway)
                    });
                    entry.phase = Phase::Idle;
                    effects.push(set_status(&integration, CredentialStatus::Active));
                }
            }
            Input::RefreshFailed { integration, generation, kind, jitter } => {
                if let Some(entry) = self.in_flight(&integration, generation) {
                    let Phase::InFlight { attempt } = entry.phase else {
                        unreachable!("in_flight only returns entries with a refresh in flight")
                    };
                    entry.phase = match kind {
                        FailureKind::InvalidGrant | FailureKind::Misconfigured => Phase::NeedsReauth,
                        FailureKind::Transient => match entry.expires_at {
                            Some(end) if now >= end => Phase::Expired,
                            Some(end) => {
                                let at = now + backoff(attempt, jitter);
                                if at < end { Phase::Backoff { attempt, at } } else { Phase::Exhausted }
                            }
                            // Re-stored without expiry while in flight: nothing left to refresh for.
                            None => Phase::Idle,
                        },
                    };
                    effects.push(set_status(&integration, entry.phase.status()));
                }
            }
        }
        for (integration, entry) in &mut self.entries {
            entry.advance(now, integration, &mut effects);
        }
        effects
    }

    fn refresh_at(&self, expires_at: Option<DateTime<Utc>>, refreshable: bool) -> Option<DateTime<Utc>> {
        // An expiry too early to subtract from is due at once (not a panic).
        expires_at
            .filter(|_| refreshable)
            .map(|end| end.checked_sub_signed(self.refresh_before).unwrap_or(DateTime::<Utc>::MIN_UTC))
    }

    /// The entry whose refresh of `generation` is in flight; answers for anything else are stale.
    fn in_flight(&mut self, integration: &str, generation: u64) -> Option<&mut Entry> {
        self.entries
            .get_mut(integration)
            .filter(|entry| entry.generation == generation && matches!(entry.phase, Phase::InFlight { .. }))
    }
}

impl Entry {
    fn deadline(&self) -> Option<DateTime<Utc>> {
        match self.phase {
            Phase::Idle => match (self.refresh_at, self.expires_at) {
                (Some(start), Some(end)) => Some(start.min(end)),
                (_, end) => end,
            },
            Phase::Backoff { at, .. } => Some(at),
            Phase::Exhausted => self.expires_at,
            // The shell's request has its own timeout and always answers.
            Phase::InFlight { .. } | Phase::NeedsReauth | Phase::Expired => None,
        }
    }

    /// Expires the credential or starts its refresh, whichever is due at `now`.
    fn advance(&mut self, now: DateTime<Utc>, integration: &str, effects: &mut Vec<Effect>) {
        let (attempts, start_at) = match self.phase {
            Phase::Idle => (0, self.refresh_at),
            Phase::Backoff { attempt, at } => (attempt, Some(at)),
            Phase::Exhausted => (0, None),
            // An in-flight refresh may still succeed after expiry: its answer decides.
            Phase::InFlight { .. } | Phase::NeedsReauth | Phase::Expired => return,
        };
        if self.expires_at.is_some_and(|end| now >= end) {
            self.phase = Phase::Expired;
            effects.push(set_status(integration, CredentialStatus::Expired));
        } else if start_at.is_some_and(|start| now >= start) {
            self.phase = Phase::InFlight { attempt: attempts + 1 };
            effects.push(Effect::StartRefresh { integration: integration.to_owned(), generation: self.generation });
        }
    }
}

/// The wait after the `attempt`-th consecutive transient failure: 1 s, 2 s, 4 s, ... capped at
/// 60 s, scaled into [½, 1) of that by `jitter` so retries keep a floor yet spread apart.
fn backoff(attempt: u32, jitter: f64) -> Duration {
    let doublings = attempt.saturating_sub(1).min(16);
    let base = (BACKOFF_INITIAL_MS << doublings).min(BACKOFF_MAX_MS);
    let jitter = if jitter.is_finite() { jitter.clamp(0.0, 1.0) } else { 0.0 };
    // Both factors are bounded (base ≤ 60 000, scale < 1), so the cast cannot overflow.
    Duration::milliseconds((base as f64 * (0.5 + 0.5 * jitter)) as i64)
}

fn set_status(integration: &str, status: CredentialStatus) -> Effect {
    Effect::SetStatus { integration: integration.to_owned(), status }
}

#[cfg(test)]
#[path = "refresh_schedule_tests.rs"]
mod tests;
