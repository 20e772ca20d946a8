//! The MCP methods the gateway's endpoint serves over a tenant's tools, the same in a session
//! (2025-06-18, 2025-11-25) and per request (2026-07-28): `initialize` / `server/discover`,
//! `ping`, `tools/list` (pages in id order, opaque cursors) and `tools/call` (the path of
//! `tools/invoke`: quota, OAuth token, audit, usage). What `tools/list` shows follows the
//! tenant's `mcp.toolList`: every tool, those of some categories, or the meta-tools of
//! `mcp_meta_tools`.

use axum::http::StatusCode;
use base64::Engine;
use connectors_actors::tenant::ToolList;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::mcp_meta_tools::{self, ToolCall};
use super::mcp_rpc::{GATEWAY_ERROR, INVALID_PARAMS, METHOD_NOT_FOUND, RpcError};
use super::tenant_api::Admitted;
use super::tools::invoke_tool;
use crate::app::Gateway;
use crate::tools::catalog::Tool;
use crate::tools::selection::tiering::estimate_tokens;
use crate::tools::served_tokens::record_served_tokens;

/// Versions negotiated with `initialize`, newest first.
pub const SESSION_VERSIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
/// Versions served per request, without a session.
pub const STATELESS_VERSIONS: [&str; 1] = ["2026-07-28"];
/// The version a session request without `MCP-Protocol-Version` is taken to speak (the
/// specification's rule for clients that predate the header).
pub const VERSION_WITHOUT_HEADER: &str = "2025-03-26";
/// Tools per `tools/list` page.
const PAGE_SIZE: usize = 100;

/// Which era a request belongs to: results of the stateless revision carry its extra fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    Session,
    Stateless,
}

fn server_info() -> Value {
    json!({"name": "connectors-gateway", "version": env!("CARGO_PKG_VERSION")})
}

const INSTRUCTIONS: &str = "The tools of this tenant: shared integrations and the tenant's own MCP servers. \
Tool names are `<integration>.<tool>`.";

fn capabilities(era: Era) -> Value {
    // A stateless server has no stream to announce changes on.
    json!({"tools": {"listChanged": era == Era::Session}})
}

/// The version a session speaks: the client's when served, else the newest (the client then
/// decides whether it can continue).
pub fn negotiate(requested: Option<&str>) -> &'static str {
    SESSION_VERSIONS.iter().copied().find(|version| Some(*version) == requested).unwrap_or(SESSION_VERSIONS[0])
}

pub fn initialize_result(version: &str) -> Value {
    json!({
        "protocolVersion": version,
        "capabilities": capabilities(Era::Session),
        "serverInfo": server_info(),
        "instructions": INSTRUCTIONS,
    })
}

/// Every version the endpoint speaks, oldest first.
pub fn all_versions() -> Vec<&'static str> {
    SESSION_VERSIONS.iter().rev().chain(STATELESS_VERSIONS.iter()).copied().collect()
}

/// A fingerprint of the tools a tenant sees: when it changes, sessions are told the list changed.
pub fn catalog_fingerprint(tools: &[Tool]) -> String {
    let mut hash = Sha256::new();
    for tool in tools {
        for part in [tool.id.as_str(), tool.description.as_str(), &tool.input_schema.to_string()] {
            hash.update(part.as_bytes());
            hash.update([0]);
        }
    }
    hex::encode(&hash.finalize()[..16])
}

/// Answers one request. Errors carry HTTP 200 (the session transport's convention); the
/// stateless transport maps their codes to its statuses.
pub async fn answer(
    gateway: &Gateway,
    admitted: &Admitted,
    era: Era,
    id: &Value,
    method: &str,
    params: &Value,
) -> Result<Value, RpcError> {
    let mut result = match method {
        "ping" => json!({}),
        "server/discover" if era == Era::Stateless => json!({
            "supportedVersions": all_versions(),
            "capabilities": capabilities(era),
            "instructions": INSTRUCTIONS,
            "ttlMs": 0,
            "cacheScope": "private",
        }),
        "tools/list" => {
            let listed = list_tools(gateway, admitted, id, params)?;
            record_served_tokens(gateway, &admitted.tenant.record.id, estimate_tokens(&listed["tools"])).await;
            listed
        }
        "tools/call" => call_tool(gateway, admitted, id, params).await?,
        other => {
            return Err(RpcError::new(
                StatusCode::OK,
                id.clone(),
                METHOD_NOT_FOUND,
                format!("Method not found: {other}"),
            ));
        }
    };
    if era == Era::Stateless && method != "ping" {
        result["resultType"] = json!("complete");
        result["_meta"] = json!({"io.modelcontextprotocol/serverInfo": server_info()});
        if method == "tools/list" {
            result["ttlMs"] = json!(0);
            result["cacheScope"] = json!("private");
        }
    }
    Ok(result)
}

fn invalid_params(id: &Value, message: impl Into<String>) -> RpcError {
    RpcError::new(StatusCode::OK, id.clone(), INVALID_PARAMS, message)
}

/// The tools of the tenant as MCP tools, by id.
pub fn visible_tools(gateway: &Gateway, admitted: &Admitted) -> Vec<Tool> {
    gateway.selector.visible_tools(&admitted.tenant.record.id, None)
}

fn list_tools(gateway: &Gateway, admitted: &Admitted, id: &Value, params: &Value) -> Result<Value, RpcError> {
    let listing = &admitted.tenant.record.mcp;
    if listing.tool_list == ToolList::Search {
        return match params.get("cursor") {
            None | Some(Value::Null) => Ok(json!({"tools": mcp_meta_tools::definitions()})),
            Some(_) => Err(invalid_params(id, "invalid cursor")),
        };
    }
    let tools: Vec<Tool> =
        visible_tools(gateway, admitted).into_iter().filter(|tool| listing.offers(&tool.category)).collect();
    let start = match params.get("cursor") {
        None | Some(Value::Null) => 0,
        Some(Value::String(cursor)) => {
            let after = decode_cursor(cursor).ok_or_else(|| invalid_params(id, "invalid cursor"))?;
            tools.partition_point(|tool| tool.id.as_str() <= after.as_str())
        }
        Some(_) => return Err(invalid_params(id, "`cursor` must be a string")),
    };
    let page: Vec<&Tool> = tools.iter().skip(start).take(PAGE_SIZE).collect();
    let mut result = json!({"tools": page.iter().map(|tool| mcp_tool(tool)).collect::<Vec<_>>()});
    if start + page.len() < tools.len()
        && let Some(last) = page.last()
    {
        result["nextCursor"] = json!(encode_cursor(&last.id));
    }
    Ok(result)
}

/// A tool as MCP lists it: its gateway id is its name.
fn mcp_tool(tool: &Tool) -> Value {
    let schema = if tool.input_schema.is_object() { tool.input_schema.clone() } else { json!({"type": "object"}) };
    json!({"name": tool.id, "title": tool.name, "description": tool.description, "inputSchema": schema})
}

/// Cursors are opaque to clients: the last id of the page, encoded.
fn encode_cursor(last_id: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(last_id)
}

fn decode_cursor(cursor: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cursor).ok()?;
    String::from_utf8(bytes).ok()
}

async fn call_tool(gateway: &Gateway, admitted: &Admitted, id: &Value, params: &Value) -> Result<Value, RpcError> {
    let Some(name) = params.get("name").and_then(Value::as_str) else {
        return Err(invalid_params(id, "`name` (a string) is required"));
    };
    let arguments = match params.get("arguments") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(arguments)) => arguments.clone(),
        Some(_) => return Err(invalid_params(id, "`arguments` must be an object")),
    };
    let listing = &admitted.tenant.record.mcp;
    let call = match (listing.tool_list, name) {
        (ToolList::Search, mcp_meta_tools::FIND_TOOLS) => {
            return match mcp_meta_tools::find_tools(gateway, admitted, &arguments).await {
                Ok(found) => Ok(found),
                Err(error) if error.status() == StatusCode::BAD_REQUEST => Ok(mcp_meta_tools::argument_error(&error)),
                Err(error) => Err(tool_error(id, name, &error)),
            };
        }
        (ToolList::Search, mcp_meta_tools::CALL_TOOL) => match mcp_meta_tools::call_tool(admitted, &arguments) {
            Ok(call) => call,
            Err(error) => return Ok(mcp_meta_tools::argument_error(&error)),
        },
        _ => ToolCall { name: name.to_string(), arguments, query: None },
    };
    // A tool outside the tenant's listed (or searched) categories is unknown to its MCP clients.
    let offered =
        gateway.selector.tool(&admitted.tenant.record.id, &call.name).is_none_or(|tool| listing.offers(&tool.category));
    if !offered {
        return Err(invalid_params(id, format!("Unknown tool: {}", call.name)));
    }
    match invoke_tool(gateway, admitted, &call.name, call.arguments, call.query).await {
        Ok(answer) => serde_json::to_value(answer.result).map_err(|error| {
            tool_error(
                id,
                &call.name,
                &ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "upstream_error",
                    format!("the tool's result cannot be encoded: {error}"),
                ),
            )
        }),
        Err(error) => Err(tool_error(id, &call.name, &error)),
    }
}

/// A failure of the gateway to call a tool, as the MCP error a client sees: an unknown tool is
/// the specification's invalid-params error; the others carry the tenant API's error code.
pub fn tool_error(id: &Value, name: &str, error: &ApiError) -> RpcError {
    if error.status() == StatusCode::NOT_FOUND {
        return invalid_params(id, format!("Unknown tool: {name}"));
    }
    let mut data = json!({"code": error.code(), "status": error.status().as_u16()});
    for (key, value) in error.fields() {
        data[key] = value.clone();
    }
    RpcError::new(StatusCode::OK, id.clone(), GATEWAY_ERROR, error.message()).with_data(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_negotiated_to_one_served() {
        assert_eq!(negotiate(Some("2025-06-18")), "2025-06-18");
        assert_eq!(negotiate(Some("2025-11-25")), "2025-11-25");
        assert_eq!(negotiate(Some("2024-01-01")), "2025-11-25");
        assert_eq!(negotiate(None), "2025-11-25");
        assert_eq!(all_versions(), ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"]);
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        assert_eq!(decode_cursor(&encode_cursor("github.createIssue")).as_deref(), Some("github.createIssue"));
        assert_eq!(decode_cursor("!!"), None);
    }

    #[test]
    fn the_fingerprint_follows_the_tools() {
        let add = Tool::new("example", "add", "math", "Adds", json!({"type": "object"}));
        let echo = Tool::new("example", "echo", "text", "Echoes", json!({"type": "object"}));
        let both = catalog_fingerprint(&[add.clone(), echo.clone()]);
        assert_eq!(both, catalog_fingerprint(&[add.clone(), echo]));
        assert_ne!(both, catalog_fingerprint(&[add]));
    }
}
