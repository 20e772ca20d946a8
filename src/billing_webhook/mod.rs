//! The billing webhook: once a calendar month (UTC) has ended, each tenant's bill for it is
//! closed (priced and fixed) and POSTed, signed with HMAC-SHA256, to the operator's billing
//! system, retried with back-off until it answers 2xx; every attempt is an event in the tenant's
//! audit log (`billing.webhook`).
//!
//! Bills were not "closed" before this: the usage report of any month is computed when asked
//! (`GET /tenants/{id}/usage`). Closing fixes the report as the month's usage stands
//! `closeDelaySeconds` after the month ended, stores it with its delivery state (collection
//! `billing_webhook` of the store, so that any node of a cluster carries on a delivery another
//! began), and the store's meta key `billing_webhook_closed_through` remembers which months are
//! closed. Every node runs the loop; an attempt is claimed with a compare-and-set, so one node
//! sends it. The decisions are [`delivery`]'s pure state machine; this is its shell.

pub mod delivery;
pub mod signature;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use connectors_actors::audit::{AuditEvent, AuditResult};
use connectors_actors::clock::Clock;
use connectors_actors::store::{Batch, Store, StoreError, TenantFilter};
use connectors_actors::tenant::TenantId;
use connectors_actors::usage::Month;
use serde_json::json;

use self::delivery::{Answer, Attempt, Delivery, Schedule, Step, months_to_close};
use crate::billing::usage_report;
use crate::config::Pricing;

/// Where deliveries are kept in the store.
pub const COLLECTION: &str = "billing_webhook";
/// The last month whose bills are closed (`YYYY-MM`), in the store's meta table.
pub const CLOSED_THROUGH: &str = "billing_webhook_closed_through";
/// Delivered bills are kept this long, then forgotten (the closed-through mark keeps them from
/// being closed again).
const KEEP_DELIVERED_DAYS: i64 = 62;
/// Tenants read per page when a month closes.
const TENANT_PAGE: usize = 500;

/// `billing.webhook` of the configuration, with the secret from `BILLING_WEBHOOK_SECRET`.
#[derive(Clone)]
pub struct WebhookSettings {
    pub url: url::Url,
    pub secret: zeroize::Zeroizing<Vec<u8>>,
    /// A month is closed this long after it ended.
    pub close_delay: chrono::Duration,
    pub schedule: Schedule,
    /// Deadline of one POST.
    pub timeout: std::time::Duration,
    /// How often a node looks for months to close and deliveries due.
    pub poll: std::time::Duration,
}

impl std::fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSettings")
            .field("url", &self.url.as_str())
            .field("secret", &"[REDACTED]")
            .field("close_delay", &self.close_delay)
            .field("schedule", &self.schedule)
            .field("timeout", &self.timeout)
            .field("poll", &self.poll)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a stored billing delivery is unreadable: {0}")]
    Corrupt(String),
    #[error("cannot build the webhook's HTTP client: {0}")]
    Client(String),
}

/// The billing webhook of one node.
pub struct BillingWebhook {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    http: reqwest::Client,
    settings: WebhookSettings,
    pricing: Pricing,
}

impl BillingWebhook {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        settings: WebhookSettings,
        pricing: Pricing,
    ) -> Result<Self, WebhookError> {
        // The URL is the operator's own, not a tenant's: no outbound policy, but no redirects
        // either (a signed bill goes where it was configured to go, or nowhere).
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| WebhookError::Client(e.to_string()))?;
        Ok(Self { store, clock, http, settings, pricing })
    }

    /// Runs [`BillingWebhook::run_once`] every `poll` until the process ends.
    pub async fn run(self) {
        loop {
            if let Err(error) = self.run_once().await {
                tracing::warn!(%error, "billing webhook: pass failed; retrying at the next one");
            }
            tokio::time::sleep(self.settings.poll).await;
        }
    }

    /// One pass: closes the months that ended, then makes every attempt that is due.
    pub async fn run_once(&self) -> Result<(), WebhookError> {
        self.close_months().await?;
        self.send_due().await
    }

    async fn close_months(&self) -> Result<(), WebhookError> {
        let now = self.clock.now();
        let closed_through = match self.store.meta(CLOSED_THROUGH).await? {
            Some(bytes) => Some(
                std::str::from_utf8(&bytes)
                    .ok()
                    .and_then(Month::parse)
                    .ok_or_else(|| WebhookError::Corrupt(format!("meta `{CLOSED_THROUGH}` is not YYYY-MM")))?,
            ),
            None => None,
        };
        for month in months_to_close(closed_through, now, self.settings.close_delay) {
            let mut after: Option<TenantId> = None;
            loop {
                let page = self.store.tenants(&TenantFilter::default(), after.as_ref(), TENANT_PAGE).await?;
                for record in &page.tenants {
                    self.close(&record.id, month, now).await?;
                }
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
            self.store.set_meta(CLOSED_THROUGH, month.to_string().as_bytes()).await?;
            tracing::info!(%month, "billing webhook: month closed");
        }
        Ok(())
    }

    /// Fixes `tenant`'s bill of `month` and queues its delivery, unless another node did.
    async fn close(&self, tenant: &TenantId, month: Month, now: DateTime<Utc>) -> Result<(), WebhookError> {
        let usage = self.store.usage_of_month(tenant, month).await?;
        let key = delivery::idempotency_key(tenant, month);
        let body = json!({
            "type": "billing.month_closed",
            "idempotencyKey": key,
            "tenantId": tenant.as_str(),
            "month": month.to_string(),
            "closedAt": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "bill": usage_report(&self.pricing, tenant, month, &usage),
        });
        let delivery = Delivery::new(tenant.clone(), month, body.to_string(), now);
        let bytes = encode(&delivery)?;
        self.store.replace_entry(COLLECTION, &entry_name(tenant, month), None, Some(&bytes)).await?;
        Ok(())
    }

    async fn send_due(&self) -> Result<(), WebhookError> {
        for (name, stored) in self.store.entries(COLLECTION).await? {
            let mut delivery: Delivery =
                serde_json::from_slice(&stored).map_err(|e| WebhookError::Corrupt(format!("{name}: {e}")))?;
            let now = self.clock.now();
            match delivery.step(now) {
                Step::Send => {}
                Step::WaitUntil(_) => continue,
                Step::Done => {
                    let forget =
                        delivery.delivered_at.is_some_and(|at| now - at > chrono::Duration::days(KEEP_DELIVERED_DAYS));
                    if forget {
                        self.store.replace_entry(COLLECTION, &name, Some(&stored), None).await?;
                    }
                    continue;
                }
            }
            delivery.claim(now, &self.settings.schedule);
            let claimed = encode(&delivery)?;
            if !self.store.replace_entry(COLLECTION, &name, Some(&stored), Some(&claimed)).await? {
                continue; // another node claimed it first
            }
            let answer = self.post(&delivery).await;
            let attempt = delivery.answered(self.clock.now(), answer, &self.settings.schedule);
            self.audit(&delivery, &attempt).await?;
            let answered = encode(&delivery)?;
            if !self.store.replace_entry(COLLECTION, &name, Some(&claimed), Some(&answered)).await? {
                // Our lease ran out and another node took the delivery over; it sends again
                // (at least once) with the same idempotency key.
                tracing::warn!(delivery = %name, "billing webhook: attempt outlived its claim");
            }
        }
        Ok(())
    }

    async fn post(&self, delivery: &Delivery) -> Answer {
        let timestamp = self.clock.now().timestamp();
        let signature = signature::sign(&self.settings.secret, timestamp, delivery.body.as_bytes());
        let sent = self
            .http
            .post(self.settings.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", &delivery.idempotency_key)
            .header(signature::HEADER, signature)
            .body(delivery.body.clone())
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => Answer::Acknowledged(response.status().as_u16()),
            Ok(response) => Answer::Refused(response.status().as_u16()),
            Err(error) => Answer::Failed(describe(&error)),
        }
    }

    /// One audit event per attempt, in the tenant's log.
    async fn audit(&self, delivery: &Delivery, attempt: &Attempt) -> Result<(), StoreError> {
        let mut params = json!({
            "month": delivery.month,
            "idempotencyKey": delivery.idempotency_key,
            "attempt": attempt.number,
        });
        let result = match &attempt.answer {
            Answer::Acknowledged(status) => {
                params["status"] = json!(status);
                AuditResult::Success
            }
            Answer::Refused(status) => {
                params["status"] = json!(status);
                AuditResult::Error
            }
            Answer::Failed(error) => {
                params["error"] = json!(error);
                AuditResult::Error
            }
        };
        if let Some(retry_at) = attempt.retry_at {
            params["retryAt"] = json!(retry_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        }
        let event = AuditEvent {
            timestamp: self.clock.now(),
            tenant_id: delivery.tenant.clone(),
            user_id: None,
            action: "billing.webhook".into(),
            tool_id: None,
            params: Some(params),
            result,
            duration: 0,
            ip: None,
            user_agent: None,
            request_id: delivery.idempotency_key.clone(),
            event_id: None,
        };
        self.store.commit(Arc::new(Batch { id: None, audit: vec![event], ..Default::default() })).await
    }
}

fn entry_name(tenant: &TenantId, month: Month) -> String {
    format!("{tenant}/{month}")
}

fn encode(delivery: &Delivery) -> Result<Vec<u8>, WebhookError> {
    serde_json::to_vec(delivery).map_err(|e| WebhookError::Corrupt(e.to_string()))
}

/// A transport failure in a few words (never the request, which carries the bill).
fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".into()
    } else if error.is_connect() {
        "cannot connect".into()
    } else {
        "no answer".into()
    }
}
