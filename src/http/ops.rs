//! Operational endpoints: liveness, readiness, Prometheus metrics, and the 404 fallback.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use connectors_actors::api_key::KeyHash;
use connectors_actors::recorder_status::RecorderState;

use super::error::{ApiError, ErrorBody};
use crate::app::Gateway;

#[utoipa::path(
    get, path = "/healthz", tag = "operations", operation_id = "healthz",
    responses((status = 200, description = "The process serves", body = String, content_type = "text/plain"))
)]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready when this node has joined and serves every shard it owns, its recorder keeps every
/// audit event, and the store and the secret store answer.
#[utoipa::path(
    get, path = "/readyz", tag = "operations", operation_id = "readyz",
    responses(
        (status = 200, description = "The node owns its shards and its backends answer", body = String, content_type = "text/plain"),
        (status = 503, description = "`unavailable` while joining, draining or degraded; `recorder_shedding` while the store refuses audit events", body = ErrorBody),
    )
)]
pub async fn readyz(State(gateway): State<Arc<Gateway>>) -> Result<String, ApiError> {
    if let Some(cluster) = &gateway.cluster {
        let status = cluster.status();
        if !status.ready() {
            let reason = match &status.view {
                None => "not joined the cluster yet".to_string(),
                Some(_) if status.draining => "draining: handing shards to the other nodes".to_string(),
                Some(_) if status.joining => {
                    "joining: watching the cluster for one failure timeout before owning shards".to_string()
                }
                Some(_) if !status.table_reachable => "membership table unreachable".to_string(),
                Some(_) if !status.leased => "the membership table does not vouch for this node now".to_string(),
                Some(_) => format!("taking over shards: {} of {} served", status.shards_served, status.shards_owned),
            };
            return Err(ApiError::unavailable(reason));
        }
    }
    let ready = recorder_readiness(&gateway.recorder.state())?;
    gateway.store.meta("readiness-probe").await.map_err(ApiError::unavailable)?;
    gateway.secrets.check().await.map_err(ApiError::unavailable)?;
    Ok(ready)
}

/// What the recorder makes of readiness. Unready while it drops audit events: a load balancer
/// then prefers the nodes that record every request. Batches it set aside need an operator but
/// no traffic moved, so they are only said.
fn recorder_readiness(state: &RecorderState) -> Result<String, ApiError> {
    if state.shedding {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "recorder_shedding",
            format!(
                "the recorder is dropping audit events ({} so far): the store does not take its commits",
                state.shed_events
            ),
        ));
    }
    Ok(match state.quarantined_batches {
        0 => "ready".to_string(),
        batches => {
            format!("ready; the recorder set aside {batches} batches the store refused (see the quarantine file)")
        }
    })
}

/// Prometheus text. Behind `METRICS_TOKEN` when one is configured: the series name every tenant.
#[utoipa::path(
    get, path = "/metrics", tag = "operations", operation_id = "metrics",
    responses(
        (status = 200, description = "Prometheus text format, with per-tenant labels", body = String, content_type = "text/plain; version=0.0.4; charset=utf-8"),
        (status = 401, description = "`unauthorized`: `METRICS_TOKEN` is set and the bearer token is not it", body = ErrorBody),
    ),
    security((), ("metricsBearer" = []))
)]
pub async fn metrics(State(gateway): State<Arc<Gateway>>, headers: HeaderMap) -> Result<impl IntoResponse, ApiError> {
    if let Some(token) = &gateway.config.metrics_token {
        let presented = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(super::admin::bearer);
        if !presented.is_some_and(|presented| KeyHash::of(presented).matches(token)) {
            return Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "missing or invalid metrics token"));
        }
    }
    let mut body = gateway.metrics.render(&crate::metrics::NodeActors {
        active: gateway.directory.active(),
        restarts: gateway.directory.restarts(),
        degraded: gateway.directory.degraded(),
        supervisor_restarts: gateway.directory.supervisor_restarts(),
        absent_lookups: gateway.directory.absent_lookups(),
        ticks: gateway.directory.ticks(),
    });
    body.push_str(&crate::metrics::render_audit_forwarding(gateway.router.audit_counts()));
    body.push_str(&crate::metrics::render_holds(gateway.router.hold_counts()));
    body.push_str(&crate::metrics::render_hand_offs(gateway.router.hand_off_counts()));
    body.push_str(&crate::metrics::render_owner_calls(gateway.router.owner_calls()));
    if let Some(asks) = gateway.router.ask_counts() {
        body.push_str(&crate::metrics::render_remote_asks(asks));
    }
    body.push_str(&crate::metrics::render_recorder(&gateway.recorder.state()));
    body.push_str(&crate::metrics::render_oauth(&gateway.oauth_counts));
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body))
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shedding_recorder_makes_the_node_unready_and_set_aside_batches_are_said() {
        let shedding =
            RecorderState { shedding: true, shed_events: 12, pending_bytes: 1 << 20, quarantined_batches: 0 };
        let error = recorder_readiness(&shedding).unwrap_err();
        assert_eq!((error.status(), error.code()), (StatusCode::SERVICE_UNAVAILABLE, "recorder_shedding"));
        // Shedding is over: ready again, though events were dropped before.
        let recovered = RecorderState { shedding: false, ..shedding };
        assert_eq!(recorder_readiness(&recovered).unwrap(), "ready");
        let quarantined = RecorderState { quarantined_batches: 2, ..recovered };
        assert!(recorder_readiness(&quarantined).unwrap().contains("set aside 2 batches"));
    }
}
