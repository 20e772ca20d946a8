//! The HTTP edge: routes, and the layers every request passes through (the edge middleware,
//! a panic catcher, the body limit).

pub mod admin;
pub mod analytics;
pub mod auth_throttle;
pub mod cluster;
pub mod edge;
pub mod error;
pub mod extract;
pub mod integrations;
pub mod invocation;
pub mod mcp;
pub mod mcp_meta_tools;
pub mod mcp_methods;
pub mod mcp_rpc;
pub mod mcp_stream;
pub mod oauth;
pub mod openapi;
pub mod ops;
pub mod rate_headers;
pub mod run_to_completion;
pub mod servers;
pub mod tenant_api;
pub mod tenant_json;
pub mod tools;
pub mod views;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue};
use axum::routing::{get, post, put};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;

use crate::app::Gateway;

pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn router(gateway: Arc<Gateway>) -> Router {
    let max_body = gateway.config.max_body_bytes;
    let admin = Router::new()
        .route("/tenants", post(admin::create_tenant).get(admin::list_tenants))
        .route("/tenants/{id}", get(admin::get_tenant).patch(admin::update_tenant).delete(admin::delete_tenant))
        .route("/tenants/{id}/rotate-key", post(admin::rotate_key))
        .route("/tenants/{id}/metrics", get(admin::metrics))
        .route("/tenants/{id}/usage", get(admin::usage))
        .route("/tenants/{id}/audit", get(admin::audit))
        .route("/tenants/{id}/crash", post(admin::crash))
        .route("/tenants/{id}/stall", post(admin::stall))
        .route("/supervisor/crash", post(admin::crash_supervisor))
        .route("/tenants/{id}/oauth", get(oauth::list_credentials))
        .route("/tenants/{id}/oauth/{integration}", put(oauth::put_credential).delete(oauth::delete_credential))
        .route("/cluster", get(cluster::view))
        .route("/integrations", post(integrations::create).get(integrations::list))
        .route("/integrations/{name}", axum::routing::delete(integrations::delete))
        .route("/integrations/{name}/refresh", post(integrations::refresh))
        .route_layer(axum::middleware::from_fn_with_state(gateway.clone(), admin::require_admin));
    Router::new()
        .nest("/api/v1/admin", admin)
        .route("/api/v1/tenant", get(tenant_api::get_tenant))
        .route("/api/v1/mcp/servers", post(servers::create).get(servers::list))
        .route("/api/v1/mcp/servers/{name}", get(servers::get).delete(servers::delete))
        .route("/api/v1/tools", get(tools::list))
        .route("/api/v1/tools/select", post(tools::select))
        .route("/api/v1/tools/invoke", post(tools::invoke))
        .route("/api/v1/tools/feedback", post(tools::feedback))
        .route("/api/v1/tools/{id}", get(tools::get))
        .route("/mcp", post(mcp::post).get(mcp::get).delete(mcp::delete))
        .route("/api/v1/openapi.json", get(openapi::serve))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .fallback(ops::not_found)
        .layer(
            ServiceBuilder::new()
                .layer(axum::middleware::from_fn(edge::edge))
                .layer(CatchPanicLayer::new())
                .layer(DefaultBodyLimit::max(max_body)),
        )
        .with_state(gateway)
}

/// The id of the request being served: the client's `X-Request-Id` when it is sane, else one the
/// edge made. The edge middleware puts it in the request's extensions before any handler runs
/// (not in the request's headers: adding a header to hyper's exactly-sized map reallocates it).
#[derive(Debug, Clone)]
pub struct RequestId(pub HeaderValue);

impl RequestId {
    pub fn as_str(&self) -> &str {
        // The edge only keeps ids that are visible ASCII.
        self.0.to_str().unwrap_or_default()
    }
}
