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
//! [`SecretStore::replace`]: crate::secret_store::SecretStore::replace

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use ractor::ActorRef;

use crate::audit::{AuditEvent, AuditResult};
use crate::refresh_schedule::{Effect, FailureKind, Input, RefreshSchedule};
use crate::secret_store::{CredentialStatus, OAuthCredential, SecretError};
use crate::tenant::TenantId;
use crate::tenant_actor::{TenantEnv, TenantMsg};
use crate::token_endpoint::{RefreshFailure, RefreshedTokens};

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
}

impl TenantOAuth {
    pub fn new(refresh_before: chrono::Duration) -> Self {
        Self {
            schedule: RefreshSchedule::new(refresh_before),
            in_flight: HashSet::new(),
            settle_waiters: Vec::new(),
            marked: HashMap::new(),
        }
    }

    /// Answers `reply` once no refresh is out: a refresh token sent to the provider must have its
    /// answer (the rotated token) stored before the tenant moves, or the new owner would find the
    /// credential still `Refreshing` and have to ask for a new grant.
    pub fn when_settled(&mut self, reply: ractor::RpcReplyPort<()>) {
        if self.in_flight.is_empty() {
            let _ = reply.send(());
        } else {
            self.settle_waiters.push(reply);
        }
    }

    fn settle_if_idle(&mut self) {
        if self.in_flight.is_empty() {
            for waiter in self.settle_waiters.drain(..) {
                let _ = waiter.send(());
            }
        }
    }

    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        self.schedule.next_deadline()
    }

    pub fn is_refreshing(&self) -> bool {
        !self.in_flight.is_empty()
    }

    /// Loads the tenant's credentials as persisted (after start, activation or a crash).
    pub async fn restore(&mut self, env: &TenantEnv, tenant: &TenantId, myself: &ActorRef<TenantMsg>) {
        let credentials = match env.secrets.list(tenant).await {
            Ok(credentials) => credentials,
            Err(error) => {
                tracing::error!(%tenant, %error, "cannot load OAuth credentials; their refreshes are not scheduled");
                return;
            }
        };
        let now = env.clock.now();
        for (integration, credential) in credentials {
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
        credential.refresh_generation = match previous {
            Some(old) if old.refresh_token == credential.refresh_token => old.refresh_generation,
            Some(old) => old.refresh_generation + 1,
            None => 0,
        };
        env.secrets.put(tenant, &integration, &credential).await?;
        let now = env.clock.now();
        let input = Input::Stored {
            integration: integration.clone(),
            expires_at: credential.expires_at,
            refreshable: credential.refreshable(),
            generation: credential.refresh_generation,
        };
        let effects = self.schedule.handle(now, input);
        self.carry_out(env, tenant, myself, now, effects).await;
        Ok(env.secrets.get(tenant, &integration).await?.unwrap_or(credential))
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

    /// Starts what is due at `now` (refresh deadlines, retries, expiries).
    pub async fn tick(&mut self, env: &TenantEnv, tenant: &TenantId, myself: &ActorRef<TenantMsg>) {
        let now = env.clock.now();
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
        integration: String,
        generation: u64,
        answer: Result<RefreshedTokens, RefreshFailure>,
    ) {
        self.in_flight.remove(&integration);
        let now = env.clock.now();
        let input = match answer {
            Ok(tokens) => match self.save_tokens(env, tenant, &integration, generation, tokens, now).await {
                Ok(Some((expires_at, new_generation))) => {
                    audit(env, tenant, &integration, AuditResult::Success, "refreshed", now).await;
                    Input::RefreshSucceeded { integration: integration.clone(), generation, expires_at, new_generation }
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
                    tracing::error!(%tenant, %integration, %error, "cannot store refreshed tokens");
                    audit(env, tenant, &integration, AuditResult::Error, "new tokens could not be stored", now).await;
                    Input::RefreshFailed {
                        integration: integration.clone(),
                        generation,
                        kind: FailureKind::Misconfigured,
                        jitter: 0.0,
                    }
                }
            },
            Err(failure) => {
                tracing::warn!(%tenant, %integration, reason = %failure.reason, kind = ?failure.kind, "OAuth refresh failed");
                audit(env, tenant, &integration, AuditResult::Error, &failure.reason, now).await;
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

    /// Persists the new tokens if the credential is still the one refreshed; returns its new
    /// expiry and generation.
    async fn save_tokens(
        &self,
        env: &TenantEnv,
        tenant: &TenantId,
        integration: &str,
        generation: u64,
        tokens: RefreshedTokens,
        now: DateTime<Utc>,
    ) -> Result<Option<(Option<DateTime<Utc>>, u64)>, SecretError> {
        let Some(old) = env.secrets.get(tenant, integration).await? else { return Ok(None) };
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
        if !env.secrets.replace(tenant, integration, &expected, &updated).await? {
            return Ok(None);
        }
        Ok(Some((updated.expires_at, new_generation)))
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
        let tokens = env.tokens.clone();
        let myself = myself.clone();
        tokio::spawn(async move {
            let answer = tokens.refresh(&credential).await;
            // If the actor is gone (crash), the next one restores `Refreshing` as `NeedsReauth`.
            let _ = myself.cast(TenantMsg::RefreshDone(integration, generation, answer));
        });
    }
}

/// A spread in [0, 1) for retry back-off, from the clock's sub-second part: tenants failing at
/// the same moment land on different retry times without a random source in this crate.
fn jitter(now: DateTime<Utc>) -> f64 {
    f64::from(now.timestamp_subsec_nanos() % 1_000_000) / 1_000_000.0
}

async fn audit(
    env: &TenantEnv,
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
    };
    if env.recorder.audit(event).await.is_err() {
        tracing::error!(%tenant, "recorder stopped; OAuth audit event not recorded");
    }
}
