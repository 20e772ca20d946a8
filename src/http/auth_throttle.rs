//! The edge's use of [`AuthFailures`]: a client address that keeps failing to authenticate (wrong
//! keys, unknown tenants, wrong admin key) is answered 429 before any lookup until its minute is
//! over; every 401 counts against it.

use std::net::IpAddr;
use std::time::Instant;

use axum::http::StatusCode;
use connectors_actors::auth_failures::AuthFailures;

use super::error::ApiError;
use crate::app::Gateway;

fn failures(gateway: &Gateway) -> std::sync::MutexGuard<'_, AuthFailures> {
    gateway.auth_failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// 429 if `address` has failed too often this minute.
pub fn check(gateway: &Gateway, address: IpAddr) -> Result<(), ApiError> {
    let Some(wait) = failures(gateway).refused(Instant::now(), address) else { return Ok(()) };
    let seconds = wait.as_secs().max(1);
    tracing::warn!(%address, retry_after = seconds, "refusing a client address after repeated failed authentications");
    Err(ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "too many failed authentications from this address; retry later",
    )
    .with_field("retryAfter", seconds)
    .retry_after(seconds))
}

/// Counts `error` against `address` if it is a failed authentication (401).
pub fn count(gateway: &Gateway, address: IpAddr, error: &ApiError) {
    if error.status() == StatusCode::UNAUTHORIZED {
        failures(gateway).failed(Instant::now(), address);
    }
}
