//! The tenant's tool endpoints: `tools/select`, the tool list and one tool, `tools/invoke`
//! (through MCP, with the tenant's OAuth access token when the integration needs one) and
//! `tools/feedback`. Admission goes through the tenant's actor like every tenant-API request.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use connectors_actors::audit::{AuditResult, redact_secrets};
use connectors_actors::quotas::Quota;
use connectors_actors::tenant::TenantId;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::extract::{JsonBody, JsonObject, QueryParams};
use super::invocation::{InvocationPlan, Resolved, oauth_required};
use super::tenant_api::{Admitted, admit, admit_invocation, audit, denial_error};
use crate::app::Gateway;
use crate::tools::catalog::Tool;
use crate::tools::mcp_client::{CallToolResult, McpError};
use crate::tools::selection::engine::SelectOptions;
use crate::tools::selection::tiering::Tiers;
use crate::tools::served_tokens::record_served_tokens;
use crate::tools::tool_graph::ServedQuery;

/// Longest query accepted; longer ones are not questions but documents.
pub(super) const MAX_QUERY_CHARS: usize = 2_000;
/// The query kept inside a selection id (enough to learn from, short enough for a header).
const MAX_REMEMBERED_QUERY_CHARS: usize = 300;

/// The body of `POST /tools/select`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SelectBody {
    /// What the caller wants done, 1 to 2000 characters.
    #[schema(min_length = 1, max_length = 2000)]
    query: String,
    #[serde(default)]
    options: Option<SelectOptionsBody>,
}

impl JsonObject for SelectBody {
    const OBJECT_FIELDS: &'static [&'static str] = &["options"];
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = SelectOptions)]
struct SelectOptionsBody {
    /// 1 to 100 (default 10).
    #[schema(minimum = 1, maximum = 100)]
    max_tools: Option<usize>,
    /// Estimated tokens the returned tools may take, 1 to 1000000 (default 5000).
    #[schema(minimum = 1, maximum = 1000000)]
    token_budget: Option<usize>,
    allowed_categories: Option<Vec<String>>,
    include_schemas: Option<bool>,
}

impl SelectOptionsBody {
    fn into_options(self) -> Result<SelectOptions, ApiError> {
        let defaults = SelectOptions::default();
        let max_tools = self.max_tools.unwrap_or(defaults.max_tools);
        if !(1..=100).contains(&max_tools) {
            return Err(ApiError::invalid("`options.maxTools` must be between 1 and 100"));
        }
        let token_budget = self.token_budget.unwrap_or(defaults.token_budget);
        if !(1..=1_000_000).contains(&token_budget) {
            return Err(ApiError::invalid("`options.tokenBudget` must be between 1 and 1000000"));
        }
        Ok(SelectOptions {
            max_tools,
            token_budget,
            allowed_categories: self.allowed_categories.unwrap_or_default(),
            include_schemas: self.include_schemas.unwrap_or(false),
        })
    }
}

/// What a selection id carries: which tenant asked what. Self-contained, so that an invoke or
/// feedback naming it can be learned from on any node, after any restart.
#[derive(Serialize, Deserialize)]
struct SelectionRef {
    t: String,
    q: String,
}

pub fn selection_id(tenant: &TenantId, query: &str) -> String {
    let q: String = query.chars().take(MAX_REMEMBERED_QUERY_CHARS).collect();
    let json = serde_json::to_vec(&SelectionRef { t: tenant.to_string(), q }).unwrap_or_default();
    format!("sel_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json))
}

/// The query behind `id`, when it is a selection of `tenant`'s.
pub fn selected_query(tenant: &TenantId, id: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(id.strip_prefix("sel_")?).ok()?;
    let selection: SelectionRef = serde_json::from_slice(&bytes).ok()?;
    (selection.t == tenant.as_str()).then_some(selection.q)
}

/// The answer to `POST /tools/select`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SelectionAnswer {
    /// Names this selection in a later invoke or feedback.
    selection_id: String,
    query: String,
    tools: Tiers,
    performance: SelectionPerformance,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SelectionPerformance {
    /// Tools the query was matched against.
    total_tools: usize,
    /// Estimated tokens of the returned tools; never over `tokenBudget`.
    token_usage: usize,
    token_budget: usize,
    latency_ms: f64,
}

/// `POST /api/v1/tools/select`
#[utoipa::path(
    post, path = "/api/v1/tools/select", tag = "tenant", operation_id = "selectTools",
    request_body = SelectBody,
    responses((status = 200, description = "The tools for the query, tiered to fit the token budget", body = SelectionAnswer))
)]
pub async fn select(
    State(gateway): State<Arc<Gateway>>,
    parts: Parts,
    JsonBody { value: body, .. }: JsonBody<SelectBody>,
) -> Result<Response, ApiError> {
    let query = body.query.trim().to_string();
    if query.is_empty() || query.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::invalid(format!("`query` must be 1 to {MAX_QUERY_CHARS} characters")));
    }
    let options = body.options.map(SelectOptionsBody::into_options).transpose()?.unwrap_or_default();
    let admitted = admit(&gateway, &parts, "tools.select", None, true).await?;
    let tenant = admitted.tenant.record.id.clone();
    let started = Instant::now();
    let selection = gateway.selector.select(&tenant, &query, &options).await.map_err(ApiError::unavailable)?;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let params = json!({"query": query, "returned": selection.tiers.len()});
    audit(&gateway, &admitted.caller, &tenant, "tools.select", AuditResult::Success, Some(params)).await;
    record_served_tokens(&gateway, &tenant, selection.token_usage).await;
    let body = SelectionAnswer {
        selection_id: selection_id(&tenant, &query),
        query,
        tools: selection.tiers,
        performance: SelectionPerformance {
            total_tools: selection.total_tools,
            token_usage: selection.token_usage,
            token_budget: selection.token_budget,
            latency_ms: (latency_ms * 1000.0).round() / 1000.0,
        },
    };
    Ok((admitted.headers, Json(body)).into_response())
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only tools of this category.
    category: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// The `nextCursor` of the previous page.
    cursor: Option<String>,
}

/// A tool as listed; `inputSchema` only when one tool is asked for.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ToolView {
    /// `<integration>.<toolName>`.
    id: String,
    name: String,
    integration: String,
    category: String,
    description: String,
    /// The names of its parameters.
    parameters: Vec<String>,
    /// The MCP `inputSchema` (JSON Schema) of its arguments.
    #[serde(skip_serializing_if = "Option::is_none")]
    input_schema: Option<Value>,
}

/// A page of the tools this tenant may use.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ToolPage {
    tools: Vec<ToolView>,
    total: usize,
    /// Pass as `cursor` for the next page; null on the last page.
    next_cursor: Option<String>,
}

/// `GET /api/v1/tools`: the tools this tenant may use, by id.
#[utoipa::path(
    get, path = "/api/v1/tools", tag = "tenant", operation_id = "listTools",
    params(ListQuery),
    responses((status = 200, description = "Shared integrations' tools and the tenant's own servers' tools, by id", body = ToolPage))
)]
pub async fn list(
    State(gateway): State<Arc<Gateway>>,
    parts: Parts,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Response, ApiError> {
    let limit = match query.limit.unwrap_or(100) {
        n @ 1..=1000 => n,
        n => return Err(ApiError::invalid(format!("`limit` {n} is out of range 1..=1000"))),
    };
    let admitted = admit(&gateway, &parts, "tools.list", None, false).await?;
    let tenant = &admitted.tenant.record.id;
    let tools = gateway.selector.visible_tools(tenant, query.category.as_deref());
    let total = tools.len();
    let start = query.cursor.as_deref().map_or(0, |after| tools.partition_point(|tool| tool.id.as_str() <= after));
    let page: Vec<ToolView> = tools.iter().skip(start).take(limit).map(|tool| tool_view(tool, false)).collect();
    let next_cursor = (start + page.len() < total).then(|| tools[start + page.len() - 1].id.clone());
    audit(&gateway, &admitted.caller, tenant, "tools.list", AuditResult::Success, None).await;
    Ok((admitted.headers, Json(ToolPage { tools: page, total, next_cursor })).into_response())
}

/// `GET /api/v1/tools/{id}`: one tool with its `inputSchema`.
#[utoipa::path(
    get, path = "/api/v1/tools/{id}", tag = "tenant", operation_id = "getTool",
    params(("id" = String, Path, description = "Tool id, `<integration>.<toolName>`")),
    responses(
        (status = 200, description = "The tool with its `inputSchema`", body = ToolView),
        (status = 404, description = "`not_found`", body = ErrorBody),
    )
)]
pub async fn get(
    State(gateway): State<Arc<Gateway>>,
    parts: Parts,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let admitted = admit(&gateway, &parts, "tools.get", None, false).await?;
    let tenant = &admitted.tenant.record.id;
    let Some(tool) = gateway.selector.tool(tenant, &id) else {
        return Err(ApiError::not_found(format!("tool `{id}` not found")).with_headers(admitted.headers));
    };
    Ok((admitted.headers, Json(tool_view(&tool, true))).into_response())
}

fn tool_view(tool: &Tool, with_schema: bool) -> ToolView {
    ToolView {
        id: tool.id.clone(),
        name: tool.name.clone(),
        integration: tool.integration.clone(),
        category: tool.category.clone(),
        description: tool.description.clone(),
        parameters: tool.parameters.clone(),
        input_schema: with_schema.then(|| tool.input_schema.clone()),
    }
}

/// The body of `POST /tools/invoke`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InvokeBody {
    tool_id: String,
    /// The tool's arguments, as its `inputSchema` describes them.
    #[serde(default)]
    parameters: Map<String, Value>,
    /// The selection the tool came from: the gateway learns which tools serve which queries.
    selection_id: Option<String>,
}

/// The answer to `POST /tools/invoke`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvokeAnswer {
    tool_id: String,
    /// The MCP `CallToolResult`: `content` (an array of content blocks), `isError`, and
    /// `structuredContent` when the tool gives one.
    #[schema(value_type = Object)]
    pub(super) result: CallToolResult,
    latency_ms: f64,
}

impl JsonObject for InvokeBody {
    const OBJECT_FIELDS: &'static [&'static str] = &["parameters"];
}

/// `POST /api/v1/tools/invoke`
#[utoipa::path(
    post, path = "/api/v1/tools/invoke", tag = "tenant", operation_id = "invokeTool",
    request_body = InvokeBody,
    responses(
        (status = 200, description = "The tool's result (a failed tool call is a result with `isError`)", body = InvokeAnswer),
        (status = 403, description = "`quota_exceeded` (`maxToolInvocations`), or another refusal", body = ErrorBody),
        (status = 404, description = "`not_found`: no such tool for this tenant", body = ErrorBody),
        (status = 409, description = "`oauth_required`: no usable credential for the tool's OAuth integration", body = ErrorBody),
        (status = 502, description = "`upstream_error`: the tool's server failed or answered too much", body = ErrorBody),
        (status = 504, description = "`upstream_timeout`: the tool's server did not answer in time", body = ErrorBody),
    )
)]
pub async fn invoke(
    State(gateway): State<Arc<Gateway>>,
    parts: Parts,
    JsonBody { value: body, .. }: JsonBody<InvokeBody>,
) -> Result<Response, ApiError> {
    let admitted = admit_invocation(&gateway, &parts, &body.tool_id).await?;
    let tenant = admitted.tenant.record.id.clone();
    let query = body.selection_id.as_deref().and_then(|id| selected_query(&tenant, id));
    match invoke_tool(&gateway, &admitted, &body.tool_id, body.parameters, query).await {
        Ok(answer) => Ok((admitted.headers, Json(answer)).into_response()),
        Err(error) => Err(error.with_headers(admitted.headers)),
    }
}

/// Invokes one tool for an admitted request: finds it among the tenant's tools, charges the
/// invocation quota, calls its server with the tenant's OAuth token when its integration needs
/// one, audits and counts the call, and learns from it when it served `query`. Answers
/// `{toolId, result, latencyMs}`. What `tools/invoke` and the MCP endpoint's `tools/call` run.
pub async fn invoke_tool(
    gateway: &Gateway,
    admitted: &Admitted,
    tool_id: &str,
    parameters: Map<String, Value>,
    query: Option<String>,
) -> Result<InvokeAnswer, ApiError> {
    let tenant = admitted.tenant.record.id.clone();
    let params = Value::Object(parameters.clone());
    let outcome = run_invocation(gateway, admitted, tool_id, parameters).await;
    let (result, error) = match &outcome {
        Ok(answer) if answer.result.is_error == Some(true) => (AuditResult::Error, None),
        Ok(_) => (AuditResult::Success, None),
        Err(error) => (AuditResult::Error, Some(error.code())),
    };
    let mut audited = json!({"parameters": redact_secrets(params)});
    if let Some(code) = error {
        audited["error"] = json!(code);
    }
    audit_tool(gateway, admitted, &tenant, tool_id, result, audited).await;
    gateway.metrics.count_invocation(&tenant, result == AuditResult::Success);
    if outcome.is_ok()
        && let Some(query) = query
    {
        learn(gateway, &tenant, query, vec![tool_id.to_string()]).await;
    }
    outcome
}

async fn run_invocation(
    gateway: &Gateway,
    admitted: &Admitted,
    tool_id: &str,
    parameters: Map<String, Value>,
) -> Result<InvokeAnswer, ApiError> {
    let tenant = &admitted.tenant.record.id;
    // `tools/invoke` planned before its admission, which charged it; otherwise plan and charge now.
    let unplanned;
    let (plan, charged) = match admitted.invocation.as_ref().filter(|plan| plan.tool_id == tool_id) {
        Some(plan) => (plan, true),
        None => {
            unplanned = InvocationPlan::new(gateway, tenant, tool_id).await;
            (&unplanned, false)
        }
    };
    let Resolved { tool, server, token } = plan.resolve(gateway, tenant).await?;
    if !charged {
        // Charged only now that the tool can be called: an unknown tool costs nothing.
        gateway
            .router
            .charge(tenant, Quota::ToolInvocations)
            .await?
            .map_err(|exceeded| denial_error(connectors_actors::admission::Denial::QuotaExceeded(exceeded)))?;
    }
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + gateway.config.tools.call_timeout;
    let called = gateway.registry.mcp().call_tool(&server, token.as_ref(), &tool.name, parameters, deadline).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    match called {
        Ok(result) => {
            let answer =
                InvokeAnswer { tool_id: tool.id.clone(), result, latency_ms: (latency_ms * 1000.0).round() / 1000.0 };
            let bytes = serde_json::to_vec(&answer).map_or(usize::MAX, |encoded| encoded.len());
            let limit = gateway.config.tools.max_result_bytes;
            if bytes > limit {
                tracing::warn!(tool = %tool.id, bytes, limit, "tool result over tools.maxResultBytes; not passed on");
                return Err(ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "upstream_error",
                    format!(
                        "`{}` answered {bytes} bytes, more than the {limit} this gateway passes on",
                        tool.integration
                    ),
                ));
            }
            Ok(answer)
        }
        Err(McpError::Timeout) => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_timeout",
            format!("`{}` did not answer within {} s", tool.integration, gateway.config.tools.call_timeout.as_secs()),
        )),
        Err(McpError::Unauthorized { .. }) if token.is_some() => {
            Err(oauth_required(&tool.integration, "the integration refused the stored credential; store a new one"))
        }
        Err(error) => {
            tracing::warn!(tool = %tool.id, %error, "tool call failed upstream");
            Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                format!("`{}` failed: {}", tool.integration, error.for_caller()),
            ))
        }
    }
}

async fn audit_tool(
    gateway: &Gateway,
    admitted: &Admitted,
    tenant: &TenantId,
    tool_id: &str,
    result: AuditResult,
    params: Value,
) {
    super::tenant_api::audit_event(
        gateway,
        &admitted.caller,
        tenant,
        "tools.invoke",
        Some(tool_id),
        result,
        Some(params),
    )
    .await;
}

/// The body of `POST /tools/feedback`: `selectionId` or `query`, and the tools that served it.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FeedbackBody {
    selection_id: Option<String>,
    query: Option<String>,
    /// 1 to 100 tool ids.
    #[schema(min_items = 1, max_items = 100)]
    tool_ids: Vec<String>,
}

impl JsonObject for FeedbackBody {}

/// `POST /api/v1/tools/feedback`: these tools served that query.
#[utoipa::path(
    post, path = "/api/v1/tools/feedback", tag = "tenant", operation_id = "toolFeedback",
    request_body = FeedbackBody,
    responses((status = 204, description = "Learned"))
)]
pub async fn feedback(
    State(gateway): State<Arc<Gateway>>,
    parts: Parts,
    JsonBody { value: body, .. }: JsonBody<FeedbackBody>,
) -> Result<Response, ApiError> {
    let admitted = admit(&gateway, &parts, "tools.feedback", None, false).await?;
    let tenant = admitted.tenant.record.id.clone();
    let with_headers = |error: ApiError| error.with_headers(admitted.headers.clone());
    let query = match (&body.selection_id, &body.query) {
        (Some(id), _) => selected_query(&tenant, id)
            .ok_or_else(|| with_headers(ApiError::invalid("`selectionId` is not a selection of this tenant")))?,
        (None, Some(query)) if !query.trim().is_empty() && query.chars().count() <= MAX_QUERY_CHARS => {
            query.trim().to_string()
        }
        _ => return Err(with_headers(ApiError::invalid("`selectionId` or a non-empty `query` is required"))),
    };
    if body.tool_ids.is_empty() || body.tool_ids.len() > 100 {
        return Err(with_headers(ApiError::invalid("`toolIds` must name 1 to 100 tools")));
    }
    if let Some(unknown) = body.tool_ids.iter().find(|id| gateway.selector.tool(&tenant, id).is_none()) {
        return Err(with_headers(ApiError::invalid(format!("`toolIds`: no tool `{unknown}`"))));
    }
    learn(&gateway, &tenant, query, body.tool_ids.clone()).await;
    audit(
        &gateway,
        &admitted.caller,
        &tenant,
        "tools.feedback",
        AuditResult::Success,
        Some(json!({"toolIds": body.tool_ids})),
    )
    .await;
    Ok((StatusCode::NO_CONTENT, admitted.headers).into_response())
}

pub async fn learn(gateway: &Gateway, tenant: &TenantId, query: String, tools: Vec<String>) {
    if let Err(error) = gateway.selector.record_served(tenant, &ServedQuery { query, tools }).await {
        tracing::error!(%tenant, %error, "could not learn from a served query");
    }
}
