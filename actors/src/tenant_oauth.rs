//! The tenant actor's OAuth shell: it feeds the tenant's [`RefreshSchedule`] and carries out
//! what the schedule decides, with the [`SecretStore`] and the [`TokenEndpoint`].
//!
//! Order matters for invariant 4 (a refresh token is sent at most once): the `Refreshing` status
//! is persisted before the token leaves, and new tokens are persisted before the schedule hears
//! of the success. A crash between the two leaves `Refreshing` behind, which the next activation
//! turns into `NeedsReauth` instead of sending a possibly consumed token again. The provider is
//! called from a task of its own, so the actor keeps admitting requests meanwhile.
//!
//! Every write of a credential read before is a compare-and-set ([`SecretStore::replace`]): a
//! node that lost the tenant while it was paused may still hold its actor for a moment when it
//! resumes, and must neither write over what the next owner stored nor send a token the next
//! owner is refreshing. A refresh starts only from the credential exactly as the schedule knows
//! it (`Active`, same generation); anything else stored is adopted as if restored, so a
//! `Refreshing` written by another node becomes `NeedsReauth` here instead of a second send.
//!
//! The provider's answer travels to the actor as a [`RefreshAnswer`], which stores the new tokens
//! itself if the actor stops before handling it: the provider has already rotated the refresh
//! token, so an answer lost with its actor would leave a dead credential.
//!
//! A failed load of the credentials at activation is retried with back-off (at the actor's ticks,
//! and after a passivation at a wake-up), since until it succeeds none of them is refreshed.
//!
//! [`SecretStore::replace`]: crate::secret_store::SecretStore::replace

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use ractor::ActorRef;

use crate::audit::{AuditEvent, AuditResult};
use crate::clock::Clock;
use crate::recorder::Recorder;
use crate::refresh_schedule::{Effect, FailureKind, Input, RefreshSchedule};
use crate::reply::Answer;
use crate::secret_store::{CredentialStatus, OAuthCredential, SecretError, SecretStore};
use crate::tenant::TenantId;
use crate::tenant_actor::{TenantEnv, TenantMsg};
use crate::token_endpoint::{RefreshFailure, RefreshedTokens};

/// The first wait before a failed load of a tenant's credentials is tried again; it doubles with
/// each failure in a row, up to [`RESTORE_RETRY_MAX`].
const RESTORE_RETRY_FIRST: chrono::Duration = chrono::Duration::seconds(1);
const RESTORE_RETRY_MAX: chrono::Duration = chrono::Duration::minutes(1);

/// What the node's OAuth shells saved or lost on the way, for the operator (metrics).
#[derive(Debug, Default)]
pub struct OAuthCounts {
    /// Refreshed tokens stored after their tenant actor had stopped (see [`RefreshAnswer`]).
    pub stored_after_actor_stopped: AtomicU64,
    /// Refreshed tokens that could not be stored: the old refresh token is spent, so the
    /// credential needs a new grant.
    pub tokens_lost: AtomicU64,
    /// Failed loads of a tenant's credentials at activation (each is retried).
    pub restore_failures: AtomicU64,
}

/// A failed restore, waiting to be tried again.
#[derive(Debug, Clone, Copy)]
struct RestoreRetry {
    failures: u32,
    at: DateTime<Utc>,
}

/// One tenant's credentials as its actor tracks them.
pub struct TenantOAuth {
    schedule: RefreshSchedule,
    /// Integrations whose refresh call is out; the actor does not passivate while any is.
    in_flight: HashSet<String>,
    /// Who waits for the refreshes out to settle (a hand-off of the tenant to another node).
    settle_waiters: Vec<ractor::RpcReplyPort<()>>,
    /// The credential as this actor marked it `Refreshing`, per integration, until the refresh's
    /// answer is carried out: only that mark may be turned back to `Active` by this actor.
    marked: HashMap<String, OAuthCredential>,
    /// Set while the credentials could not be loaded: when to try again.
    restore_retry: Option<RestoreRetry>,
}

/// The refresh generation of `new` stored over `previous`: the same while the refresh token is the
/// same (what the schedule learnt about it still holds), the next one otherwise.
pub fn generation_after(previous: Option<&OAuthCredential>, new: &OAuthCredential) -> u64 {
    match previous {
        Some(old) if old.refresh_token == new.refresh_token => old.refresh_generation,
        Some(old) => old.refresh_generation + 1,
        None => 0,
    }
}

impl TenantOAuth {
    pub fn new(refresh_before: chrono::Duration) -> Self {
        Self {
            schedule: RefreshSchedule::new(refresh_before),
            in_flight: HashSet::new(),
            settle_waiters: Vec::new(),
            marked: HashMap::new(),
            restore_retry: None,
        }
    }

    /// Answers `reply` once no refresh is out: a refresh token sent to the provider must have its
    /// answer (the rotated token) stored before the tenant moves, or the new owner would find the
    /// credential still `Refreshing` and have to ask for a new grant.
    pub fn when_settled(&mut self, reply: ractor::RpcReplyPort<()>) {
        if self.in_flight.is_empty() {
            reply.answer(());
        } else {
            self.settle_waiters.push(reply);
        }
    }

    fn settle_if_idle(&mut self) {
        if self.in_flight.is_empty() {
            for waiter in self.settle_waiters.drain(..) {
                waiter.answer(());
            }
        }
    }

    /// The next refresh, expiry or retry of a failed restore.
    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        let retry = self.restore_retry.map(|retry| retry.at);
        match (self.schedule.next_deadline(), retry) {
            (Some(due), Some(retry)) => Some(due.min(retry)),
            (due, retry) => due.or(retry),
        }
    }

    pub fn is_refreshing(&self) -> bool {
        !self.in_flight.is_empty()
    }

    /// Loads the tenant's credentials as persisted (after start, activation or a crash); on
    /// failure, [`Self::tick`] tries again after a back-off.
    pub async fn restore(&mut self, env: &TenantEnv, tenant: &TenantId, myself: &ActorRef<TenantMsg>) {
        let now = env.clock.now();
        let credentials = match env.secrets.list(tenant).await {
            Ok(credentials) => credentials,
            Err(error) => {
                let failures = self.restore_retry.map_or(1, |retry| retry.failures + 1);
                let at = now + crate::backoff::doubled(RESTORE_RETRY_FIRST, RESTORE_RETRY_MAX, failures);
                self.restore_retry = Some(RestoreRetry { failures, at });
                env.oauth_counts.restore_failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(%tenant, %error, failures, retry_at = %at, "cannot load OAuth credentials; no refresh is scheduled until a retry succeeds");
                return;
            }
        };
        if let Some(retry) = self.restore_retry.take() {
            tracing::info!(%tenant, failures = retry.failures, "OAuth credentials loaded after failed attempts");
        }
        for (integration, credential) in credentials {
            // Stored while the restore was failing: the schedule already follows it.
            if self.schedule.status(&integration).is_some() {
                continue;
            }
            let input = Input::Restored {
                integration,
                expires_at: credential.expires_at,
                refreshable: credential.refreshable(),
                generation: credential.refresh_generation,
                status: credential.status,
            };
            let effects = self.schedule.handle(now, input);
            self.carry_out(env, tenant, myself, now, effects).await;
        }
    }

    /// Stores (or replaces) a credential; a new refresh token starts a new generation.
    pub async fn store(
        &mut self,
        env: &TenantEnv,
        tenant: &TenantId,
        myself: &ActorRef<TenantMsg>,
        integration: String,
        mut credential: OAuthCredential,
    ) -> Result<OAuthCredential, SecretError> {
        let previous = env.secrets.get(tenant, &integration).await?;
        credential.refresh_generation = generation_after(previous.as_ref(), &credential);
        env.secrets.put(tenant, &integration, &credential).await?;
        self.schedule_stored(env, tenant, myself, &integration, &credential).await;
        Ok(env.secrets.get(tenant, &integration).await?.unwrap_or(credential))
    }

    /// Another node stored `integration`'s credential (so that the secret never crossed the link
    /// to this owner): read it back and schedule its refresh.
    pub async fn stored_elsewhere(
        &mut self,
        env: &TenantEnv,
        tenant: &TenantId,
        myself: &ActorRef<TenantMsg>,
        integration: String,
    ) -> Result<(), SecretError> {
        match env.secrets.get(tenant, &integration).await? {
            Some(credential) => self.schedule_stored(env, tenant, myself, &integration, &credential).await,
            // Deleted since: nothing to schedule.
            None => {
                self.schedule.handle(env.clock.now(), Input::Removed { integration });
            }
        }
        Ok(())
    }

    async fn schedule_stored(
        &mut self,
        env: &TenantEnv,
        tenant: &TenantId,
        myself: &ActorRef<TenantMsg>,
        integration: &str,
        credential: &OAuthCredential,
    ) {
        let now = env.clock.now();
        let input = Input::Stored {
            integration: integration.to_owned(),
            expires_at: credential.expires_at,
            refreshable: credential.refreshable(),
            generation: credential.refresh_generation,
        };
        let effects = self.schedule.handle(now, input);
        self.carry_out(env, tenant, myself, now, effects).await;
    }

    pub async fn remove(
        &mut self,
        env: &TenantEnv,
        tenant: &TenantId,
        integration: String,
    ) -> Result<bool, SecretError> {
        let removed = env.secrets.delete(tenant, &integration).await?;
        self.in_flight.remove(&integration);
        self.marked.remove(&integration);
        self.settle_if_idle();
        self.schedule.handle(env.clock.now(), Input::Removed { integration });
        Ok(removed)
    }

    /// Starts what is due at `now` (refresh deadlines, retries, expiries, a failed restore).
    pub async fn tick(&mut self, env: &TenantEnv, tenant: &TenantId, myself: &ActorRef<TenantMsg>) {
        let now = env.clock.now();
        if self.restore_retry.is_some_and(|retry| retry.at <= now) {
            self.restore(env, tenant, myself).await;
        }
        if self.schedule.next_deadline().is_some_and(|due| due <= now) {
            let effects = self.schedule.handle(now, Input::Tick);
            self.carry_out(env, tenant, myself, now, effects).await;
        }
    }

    /// The provider answered a refresh of `generation`.
    pub async fn refreshed(
        &mut self,
        env: &TenantEnv,
        tenant: &TenantId,
        myself: &ActorRef<TenantMsg>,
        answer: RefreshAnswer,
    ) {
        let (integration, generation, answer) = answer.take();
        self.in_flight.remove(&integration);
        let now = env.clock.now();
        let input = match answer {
            Ok(tokens) => {
                match save_tokens(env.secrets.as_ref(), tenant, &integration, generation, tokens, now).await {
                    Ok(Some((expires_at, new_generation))) => {
                        audit(&env.recorder, tenant, &integration, AuditResult::Success, "refreshed", now).await;
                        Input::RefreshSucceeded {
                            integration: integration.clone(),
                            generation,
                            expires_at,
                            new_generation,
                        }
                    }
                    // The credential was replaced, removed or changed by another node meanwhile: this
                    // answer is stale; the schedule follows what is stored now.
                    Ok(None) => {
                        self.marked.remove(&integration);
                        self.adopt_stored(env, tenant, myself, now, &integration).await;
                        self.settle_if_idle();
                        return;
                    }
                    Err(error) => {
                        // The old token is spent and the new one is lost: only a new grant helps.
                        env.oauth_counts.tokens_lost.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(%tenant, %integration, %error, "cannot store refreshed tokens");
                        audit(
                            &env.recorder,
                            tenant,
                            &integration,
                            AuditResult::Error,
                            "new tokens could not be stored",
                            now,
                        )
                        .await;
                        Input::RefreshFailed {
                            integration: integration.clone(),
                            generation,
                            kind: FailureKind::Misconfigured,
                            jitter: 0.0,
                        }
                    }
                }
            }
            Err(failure) => {
                tracing::warn!(%tenant, %integration, reason = %failure.reason, kind = ?failure.kind, "OAuth refresh failed");
                audit(&env.recorder, tenant, &integration, AuditResult::Error, &failure.reason, now).await;
                Input::RefreshFailed {
                    integration: integration.clone(),
                    generation,
                    kind: failure.kind,
                    jitter: jitter(now),
                }
            }
        };
        let effects = self.schedule.handle(now, input);
        self.carry_out(env, tenant, myself, now, effects).await;
        // A transient failure puts the credential back to `Active` while it waits to retry.
        if let Some(status) = self.schedule.status(&integration) {
            self.persist_status(env, tenant, &integration, status).await;
        }
        self.marked.remove(&integration);
        self.settle_if_idle();
    }

    async fn carry_out(
        &mut self,
        env: &TenantEnv,
        tenant: &TenantId,
        myself: &ActorRef<TenantMsg>,
        now: DateTime<Utc>,
        effects: Vec<Effect>,
    ) {
        for effect in effects {
            match effect {
                Effect::SetStatus { integration, status } => {
                    self.persist_status(env, tenant, &integration, status).await
                }
                Effect::StartRefresh { integration, generation } => {
                    self.start_refresh(env, tenant, myself, now, integration, generation).await
                }
            }
        }
    }

    async fn persist_status(&self, env: &TenantEnv, tenant: &TenantId, integration: &str, status: CredentialStatus) {
        let result = async {
            let Some(stored) = env.secrets.get(tenant, integration).await? else { return Ok(true) };
            if stored.status == status {
                return Ok(true);
            }
            // Another process's `Refreshing` may be with the provider: turning it `Active` would
            // let the token go out again. Only our own mark is ours to take back.
            if stored.status == CredentialStatus::Refreshing
                && status == CredentialStatus::Active
                && self.marked.get(integration) != Some(&stored)
            {
                return Ok(false);
            }
            let changed = OAuthCredential { status, ..stored.clone() };
            env.secrets.replace(tenant, integration, &stored, &changed).await
        };
        match result.await {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(%tenant, %integration, "a credential's status left as stored: it changed meanwhile, or another process's refresh is out")
            }
            Err(error) => tracing::error!(%tenant, %integration, %error, "cannot persist a credential's status"),
        }
    }

    /// Feeds the schedule the credential as stored now, as after a restart: what another node or
    /// an admin wrote meanwhile wins over what this schedule believed.
    async fn adopt_stored(
        &mut self,
        env: &TenantEnv,
        tenant: &TenantId,
        myself: &ActorRef<TenantMsg>,
        now: DateTime<Utc>,
        integration: &str,
    ) {
        let input = match env.secrets.get(tenant, integration).await {
            Ok(Some(credential)) => Input::Restored {
                integration: integration.to_string(),
                expires_at: credential.expires_at,
                refreshable: credential.refreshable(),
                generation: credential.refresh_generation,
                status: credential.status,
            },
            Ok(None) => Input::Removed { integration: integration.to_string() },
            Err(error) => {
                tracing::error!(%tenant, %integration, %error, "cannot read a credential back; its refresh waits for the next start");
                return;
            }
        };
        let effects = self.schedule.handle(now, input);
        Box::pin(self.carry_out(env, tenant, myself, now, effects)).await;
    }

    async fn start_refresh(
        &mut self,
        env: &TenantEnv,
        tenant: &TenantId,
        myself: &ActorRef<TenantMsg>,
        now: DateTime<Utc>,
        integration: String,
        generation: u64,
    ) {
        let marked = async {
            let Some(stored) = env.secrets.get(tenant, &integration).await? else { return Ok(None) };
            // Only from the credential as the schedule knows it: a `Refreshing` stored by another
            // node may already be with the provider.
            if stored.refresh_generation != generation || stored.status != CredentialStatus::Active {
                return Ok(None);
            }
            // Written ahead: from here on the token may be consumed.
            let marked = OAuthCredential { status: CredentialStatus::Refreshing, ..stored.clone() };
            let won = env.secrets.replace(tenant, &integration, &stored, &marked).await?;
            Ok::<_, SecretError>(won.then_some(marked))
        };
        let credential = match marked.await {
            Ok(Some(credential)) => credential,
            Ok(None) => {
                tracing::info!(%tenant, %integration, generation, "the stored credential is not the one due for refresh; following it");
                self.adopt_stored(env, tenant, myself, now, &integration).await;
                return;
            }
            Err(error) => {
                // Not sent: the token is intact, so this is worth a retry.
                tracing::error!(%tenant, %integration, %error, "cannot mark a refresh as started; retrying later");
                let failed =
                    Input::RefreshFailed { integration, generation, kind: FailureKind::Transient, jitter: jitter(now) };
                let effects = self.schedule.handle(now, failed);
                Box::pin(self.carry_out(env, tenant, myself, now, effects)).await;
                return;
            }
        };
        self.in_flight.insert(integration.clone());
        self.marked.insert(integration.clone(), credential.clone());
        let (tokens, myself, tenant) = (env.tokens.clone(), myself.clone(), tenant.clone());
        let late = LateStore {
            tenant: tenant.clone(),
            secrets: env.secrets.clone(),
            recorder: env.recorder.clone(),
            clock: env.clock.clone(),
            counts: env.oauth_counts.clone(),
            runtime: tokio::runtime::Handle::current(),
        };
        tokio::spawn(async move {
            let answer =
                RefreshAnswer { integration, generation, answer: Some(tokens.refresh(&credential).await), late };
            // A stopped actor hands the message back, and dropping it stores the tokens.
            if myself.cast(TenantMsg::RefreshDone(answer)).is_err() {
                tracing::info!(%tenant, generation, "an OAuth refresh answered after its tenant actor stopped");
            }
        });
    }
}

/// The provider's answer to a refresh of (integration, generation), on its way to the tenant
/// actor. Handled by the actor, it is carried out by [`TenantOAuth::refreshed`]; dropped unhandled
/// (the actor stopped or crashed first: the cast failed, or the message was still queued), it
/// stores new tokens itself, with the same generation check and compare-and-set as the actor, so an
/// older refresh never overwrites a newer credential.
pub struct RefreshAnswer {
    integration: String,
    generation: u64,
    answer: Option<Result<RefreshedTokens, RefreshFailure>>,
    late: LateStore,
}

impl RefreshAnswer {
    fn take(mut self) -> (String, u64, Result<RefreshedTokens, RefreshFailure>) {
        let answer = self.answer.take().expect("an answer is taken once, by the actor");
        (std::mem::take(&mut self.integration), self.generation, answer)
    }
}

impl Drop for RefreshAnswer {
    fn drop(&mut self) {
        let Some(answer) = self.answer.take() else { return };
        let (integration, generation, late) =
            (std::mem::take(&mut self.integration), self.generation, self.late.clone());
        match answer {
            Ok(tokens) => {
                late.runtime.clone().spawn(late.store(integration, generation, tokens));
            }
            // The token may or may not be spent: the next activation finds `Refreshing` and asks
            // for a new grant, as after a crash.
            Err(failure) => tracing::warn!(
                tenant = %late.tenant,
                %integration,
                reason = %failure.reason,
                kind = ?failure.kind,
                "an OAuth refresh failed after its tenant actor stopped; the credential will need a new grant"
            ),
        }
    }
}

/// What an answer needs to store tokens without its actor.
#[derive(Clone)]
struct LateStore {
    tenant: TenantId,
    secrets: Arc<dyn SecretStore>,
    recorder: Recorder,
    clock: Arc<dyn Clock>,
    counts: Arc<OAuthCounts>,
    runtime: tokio::runtime::Handle,
}

impl LateStore {
    async fn store(self, integration: String, generation: u64, tokens: RefreshedTokens) {
        let (tenant, now) = (&self.tenant, self.clock.now());
        match save_tokens(self.secrets.as_ref(), tenant, &integration, generation, tokens, now).await {
            Ok(Some(_)) => {
                self.counts.stored_after_actor_stopped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%tenant, %integration, generation, "refreshed OAuth tokens stored after their tenant actor stopped");
                let outcome = "refreshed after the tenant actor stopped";
                audit(&self.recorder, tenant, &integration, AuditResult::Success, outcome, now).await;
            }
            Ok(None) => tracing::info!(
                %tenant,
                %integration,
                generation,
                "refreshed OAuth tokens arrived after their tenant actor stopped, for a credential replaced meanwhile; dropped"
            ),
            Err(error) => {
                self.counts.tokens_lost.fetch_add(1, Ordering::Relaxed);
                tracing::error!(%tenant, %integration, %error, "cannot store refreshed OAuth tokens after their tenant actor stopped; the credential needs a new grant");
                let outcome = "new tokens could not be stored";
                audit(&self.recorder, tenant, &integration, AuditResult::Error, outcome, now).await;
            }
        }
    }
}

/// Persists the new tokens if the credential is still the one refreshed; returns its new
/// expiry and generation.
async fn save_tokens(
    secrets: &dyn SecretStore,
    tenant: &TenantId,
    integration: &str,
    generation: u64,
    tokens: RefreshedTokens,
    now: DateTime<Utc>,
) -> Result<Option<(Option<DateTime<Utc>>, u64)>, SecretError> {
    let Some(old) = secrets.get(tenant, integration).await? else { return Ok(None) };
    if old.refresh_generation != generation {
        return Ok(None);
    }
    let expected = old.clone();
    let new_generation = if tokens.refresh_token.is_some() { generation + 1 } else { generation };
    let updated = OAuthCredential {
        access_token: tokens.access_token,
        refresh_token: tokens.refresh_token.or(old.refresh_token),
        // A lifetime past the calendar's end (a provider's `expires_in` of 10^15 s) is none.
        expires_at: tokens.expires_in.and_then(|lifetime| now.checked_add_signed(lifetime)),
        scopes: if tokens.scopes.is_empty() { old.scopes } else { tokens.scopes },
        status: CredentialStatus::Active,
        last_refresh_at: Some(now),
        refresh_generation: new_generation,
        ..old
    };
    if !secrets.replace(tenant, integration, &expected, &updated).await? {
        return Ok(None);
    }
    Ok(Some((updated.expires_at, new_generation)))
}

/// A spread in [0, 1) for retry back-off, from the clock's sub-second part: tenants failing at
/// the same moment land on different retry times without a random source in this crate.
fn jitter(now: DateTime<Utc>) -> f64 {
    f64::from(now.timestamp_subsec_nanos() % 1_000_000) / 1_000_000.0
}

async fn audit(
    recorder: &Recorder,
    tenant: &TenantId,
    integration: &str,
    result: AuditResult,
    outcome: &str,
    at: DateTime<Utc>,
) {
    let event = AuditEvent {
        timestamp: at,
        tenant_id: tenant.clone(),
        user_id: None,
        action: "oauth.refresh".into(),
        tool_id: None,
        params: Some(serde_json::json!({"integration": integration, "outcome": outcome})),
        result,
        duration: 0,
        ip: None,
        user_agent: None,
        request_id: format!("oauth-refresh-{tenant}-{integration}-{}", at.timestamp_micros()),
        event_id: None,
    };
    if recorder.audit(event).await.is_err() {
        tracing::error!(%tenant, "recorder stopped; OAuth audit event not recorded");
    }
}

#[cfg(test)]
#[path = "tenant_oauth_tests.rs"]
mod tests;
