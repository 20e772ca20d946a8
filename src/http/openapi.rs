//! The OpenAPI 3.1 document of the HTTP API, generated from the handlers' `#[utoipa::path]`
//! annotations and the request and response types they use. Served at
//! `GET /api/v1/openapi.json` and checked in as `openapi.json` at the repository's root
//! (`tests/openapi_document.rs` fails when the two differ).
//!
//! What every operation of a kind shares is added here, in one place, rather than on each handler:
//! the security requirement of its caller, the errors of the conventions of API.md (400, 401, 413,
//! 429, 500, 503), `X-Request-Id` on every response and the rate-limit headers on every tenant-API
//! response.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{ContentBuilder, ObjectBuilder, Ref, RefOr, Type};
use utoipa::{Modify, OpenApi};

use super::error::ErrorBody;
use super::{admin, cluster, integrations, mcp, oauth, ops, servers, tenant_api, tools};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Connectors Gateway API",
        description = "A multi-tenant gateway for MCP tool servers. Admin endpoints (`/api/v1/admin`) take the \
            admin key; tenant endpoints take a tenant's API key and, optionally, `X-Tenant-ID` (header names are \
            configurable: `tenantIdHeader`, `apiKeyHeader`). Every response carries `X-Request-Id`; every error has \
            the body `{error, code, requestId}`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        admin::create_tenant,
        admin::list_tenants,
        admin::get_tenant,
        admin::update_tenant,
        admin::delete_tenant,
        admin::rotate_key,
        admin::metrics,
        admin::usage,
        admin::audit,
        oauth::put_credential,
        oauth::list_credentials,
        oauth::delete_credential,
        integrations::create,
        integrations::list,
        integrations::refresh,
        integrations::delete,
        cluster::view,
        tenant_api::get_tenant,
        tools::select,
        tools::list,
        tools::get,
        tools::invoke,
        tools::feedback,
        servers::create,
        servers::list,
        servers::get,
        servers::delete,
        mcp::post,
        mcp::get,
        mcp::delete,
        ops::healthz,
        ops::readyz,
        ops::metrics,
        serve,
    ),
    components(schemas(ErrorBody)),
    modifiers(&Conventions),
    tags(
        (name = "admin", description = "Tenants, their keys, credentials, usage and audit logs; shared integrations; the cluster. Admin key."),
        (name = "tenant", description = "A tenant's tools and servers. The tenant's API key; every response carries its rate-limit headers."),
        (name = "mcp", description = "The gateway as an MCP server of the tenant's tools (streamable HTTP, JSON-RPC). The tenant's API key."),
        (name = "operations", description = "Probes, metrics and this document. No key (`/metrics` takes `METRICS_TOKEN` when set)."),
    )
)]
struct ApiDoc;

/// The document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as the checked-in `openapi.json` holds it: pretty JSON ending in a newline.
pub fn document_json() -> String {
    let mut text = document().to_pretty_json().expect("the document is plain data and serializes");
    text.push('\n');
    text
}

/// `GET /api/v1/openapi.json`
#[utoipa::path(
    get, path = "/api/v1/openapi.json", tag = "operations", operation_id = "openapi",
    responses((status = 200, description = "This document (OpenAPI 3.1)", body = Object, content_type = "application/json"))
)]
pub async fn serve() -> Response {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    let text = DOCUMENT.get_or_init(document_json);
    ([(header::CONTENT_TYPE, "application/json")], text.as_str()).into_response()
}

const ADMIN: &str = "adminBearer";
const TENANT_KEY: &str = "tenantBearer";
const TENANT_ID: &str = "tenantId";

/// Security schemes, and what every operation of a kind shares (see the module's doc).
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |description: &str| {
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some(description.to_string())).build(),
            )
        };
        components.add_security_scheme(ADMIN, bearer("`Authorization: Bearer <admin key>` (`ADMIN_API_KEY`)"));
        components.add_security_scheme(
            TENANT_KEY,
            bearer("`Authorization: Bearer <tenant API key>` (header configurable: `apiKeyHeader`)"),
        );
        components.add_security_scheme(
            TENANT_ID,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Tenant-ID",
                "The tenant called (header name configurable: `tenantIdHeader`); without it, the key's own tenant",
            ))),
        );
        components.add_security_scheme("metricsBearer", bearer("`Authorization: Bearer <METRICS_TOKEN>`, when set"));
        for (name, kind, description) in HEADERS {
            components.headers.insert(name.to_string(), header_of(kind.clone(), description).into());
        }
        for item in openapi.paths.paths.values_mut() {
            let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
            for operation in operations.into_iter().flatten() {
                conventions_of(operation);
            }
        }
    }
}

fn conventions_of(operation: &mut Operation) {
    let tag = operation.tags.as_ref().and_then(|tags| tags.first()).cloned().unwrap_or_default();
    let has_input = operation.request_body.is_some() || operation.parameters.as_ref().is_some_and(|p| !p.is_empty());
    let has_body = operation.request_body.is_some();
    match tag.as_str() {
        "admin" => {
            operation.security = Some(vec![SecurityRequirement::new(ADMIN, Vec::<String>::new())]);
            add_error(operation, "401", "`unauthorized`: missing or invalid admin key");
            add_error(operation, "429", "`rate_limited`: too many failed authentications from this address");
        }
        "tenant" => {
            let key = SecurityRequirement::new(TENANT_KEY, Vec::<String>::new());
            operation.security = Some(vec![key.clone().add(TENANT_ID, Vec::<String>::new()), key]);
            add_error(operation, "400", "`invalid_request`: a malformed tenant header, body or parameter");
            add_error(operation, "401", "`unauthorized`: missing or invalid API key");
            add_error(
                operation,
                "403",
                "`tenant_mismatch`, `ip_not_allowed`, `tenant_suspended`, `quota_exceeded` or `feature_disabled`",
            );
            add_error(operation, "429", "`rate_limited`: a rate window is full (`retryAfter` in the body)");
        }
        _ => {}
    }
    if has_input {
        add_error(operation, "400", "`invalid_request`: a malformed body or parameter");
    }
    if has_body {
        add_error(operation, "413", "`payload_too_large`: the body is over the size limit (default 1 MiB)");
    }
    if tag != "operations" {
        add_error(operation, "500", "`internal`: a failure of the gateway's own (details are in its log only)");
        add_error(operation, "503", "`unavailable`: a backend or the tenant's owner cannot answer now; retry");
    }
    for (status, response) in operation.responses.responses.iter_mut() {
        let RefOr::T(response) = response else { continue };
        let mut add = |name: &str| {
            response.headers.insert(name.to_string(), RefOr::Ref(Ref::new(format!("#/components/headers/{name}"))));
        };
        add(REQUEST_ID);
        if status == "429" || status == "503" {
            add(RETRY_AFTER);
        }
        if tag == "tenant" {
            for (name, _, _) in &HEADERS[2..] {
                add(name);
            }
        }
    }
}

const REQUEST_ID: &str = "X-Request-Id";
const RETRY_AFTER: &str = "Retry-After";

/// The headers of the conventions: `X-Request-Id` on every response, `Retry-After` on 429 and
/// 503, then the rate-limit headers of every tenant-API response, admitted or not (API.md).
const HEADERS: &[(&str, Type, &str)] = &[
    (REQUEST_ID, Type::String, "The client's `X-Request-Id` when it sent one, else one the gateway made"),
    (RETRY_AFTER, Type::Integer, "Seconds to wait before retrying"),
    ("X-RateLimit-Limit", Type::Integer, "The limit of the most constraining window"),
    ("X-RateLimit-Remaining", Type::Integer, "Requests left in that window"),
    ("X-RateLimit-Reset", Type::Integer, "When that window resets, in epoch seconds"),
    (
        "RateLimit-Policy",
        Type::String,
        "All three windows, e.g. `\"minute\";q=1000;w=60, \"hour\";q=50000;w=3600, \"day\";q=1000000;w=86400`",
    ),
    ("RateLimit", Type::String, "The most constraining window, e.g. `\"minute\";r=873;t=17`"),
];

fn header_of(kind: Type, description: &str) -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(Some(ObjectBuilder::new().schema_type(kind)))
        .description(Some(description.to_string()))
        .build()
}

/// Adds an error response with the error body, unless the operation names that status itself.
fn add_error(operation: &mut Operation, status: &str, description: &str) {
    if operation.responses.responses.contains_key(status) {
        return;
    }
    let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build();
    let response = ResponseBuilder::new().description(description).content("application/json", content).build();
    operation.responses.responses.insert(status.to_string(), response.into());
}
