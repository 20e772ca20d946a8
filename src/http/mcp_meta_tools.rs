//! The two meta-tools a tenant's MCP clients are listed when its `mcp.toolList` is `search`:
//! `find_tools` asks the selection engine which tools fit a task, `call_tool` calls one of them.
//! A model sees two tools and finds the rest. `find_tools` answers a `selectionId`; a
//! `call_tool` that passes it back teaches the selector which tool served the task, exactly as
//! `tools/invoke` with a `selectionId` does.

use connectors_actors::audit::AuditResult;
use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::tenant_api::{Admitted, audit};
use super::tools::{MAX_QUERY_CHARS, selected_query, selection_id};
use crate::app::Gateway;
use crate::tools::selection::engine::SelectOptions;
use crate::tools::selection::tiering::estimate_tokens;
use crate::tools::served_tokens::record_served_tokens;

pub const FIND_TOOLS: &str = "find_tools";
pub const CALL_TOOL: &str = "call_tool";
/// Tools `find_tools` answers unless asked for another number, and the most it answers.
const DEFAULT_FOUND: usize = 5;
const MAX_FOUND: u64 = 20;

/// The two tools as `tools/list` shows them.
pub fn definitions() -> Vec<Value> {
    vec![
        json!({
            "name": FIND_TOOLS,
            "title": "Find tools",
            "description": "Finds the tools that fit a task, best first, with the arguments each takes. \
                Call one with `call_tool`, passing the `selectionId` of this answer.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "query": {"type": "string", "description": "The task, in a sentence."},
                    "maxTools": {"type": "integer", "minimum": 1, "maximum": MAX_FOUND, "description": "How many tools to answer (default 5)."}
                },
                "required": ["query"]
            }
        }),
        json!({
            "name": CALL_TOOL,
            "title": "Call a tool",
            "description": "Calls a tool `find_tools` found, by its name, with its arguments.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "description": "The tool's name as `find_tools` gave it."},
                    "arguments": {"type": "object", "description": "The tool's arguments, as its inputSchema describes them."},
                    "selectionId": {"type": "string", "description": "The `selectionId` of the `find_tools` answer the tool came from."}
                },
                "required": ["name"]
            }
        }),
    ]
}

/// `find_tools`: the selection engine's answer as a tool result (`structuredContent` with the
/// tools and their input schemas, and the same as text), audited as `tools.select`.
pub async fn find_tools(
    gateway: &Gateway,
    admitted: &Admitted,
    arguments: &Map<String, Value>,
) -> Result<Value, ApiError> {
    let query = match arguments.get("query").and_then(Value::as_str).map(str::trim) {
        Some(query) if !query.is_empty() && query.chars().count() <= MAX_QUERY_CHARS => query.to_string(),
        _ => return Err(ApiError::invalid(format!("`query` must be a string of 1 to {MAX_QUERY_CHARS} characters"))),
    };
    let max_tools = match arguments.get("maxTools") {
        None | Some(Value::Null) => DEFAULT_FOUND,
        Some(value) => match value.as_u64() {
            Some(n @ 1..=MAX_FOUND) => n as usize,
            _ => return Err(ApiError::invalid(format!("`maxTools` must be an integer from 1 to {MAX_FOUND}"))),
        },
    };
    let tenant = &admitted.tenant.record.id;
    let options = SelectOptions {
        max_tools,
        allowed_categories: admitted.tenant.record.mcp.categories.clone(),
        ..SelectOptions::default()
    };
    let selection = gateway.selector.select(tenant, &query, &options).await.map_err(ApiError::unavailable)?;
    let tools: Vec<Value> = selection
        .tiers
        .ids()
        .filter_map(|id| gateway.selector.tool(tenant, id))
        .map(|tool| {
            json!({"name": tool.id, "description": tool.description, "category": tool.category, "inputSchema": tool.input_schema})
        })
        .collect();
    let params = json!({"query": query, "returned": tools.len()});
    audit(gateway, &admitted.caller, tenant, "tools.select", AuditResult::Success, Some(params)).await;
    let found = json!({"selectionId": selection_id(tenant, &query), "tools": tools});
    record_served_tokens(gateway, tenant, estimate_tokens(&found["tools"])).await;
    Ok(json!({
        "content": [{"type": "text", "text": found.to_string()}],
        "structuredContent": found,
        "isError": false,
    }))
}

/// What `call_tool` asks for: the tool, its arguments, and the query it was found for.
pub struct ToolCall {
    pub name: String,
    pub arguments: Map<String, Value>,
    pub query: Option<String>,
}

/// Reads `call_tool`'s arguments. A `selectionId` that is not one of this tenant's selections
/// is refused rather than ignored, so that a model learns of its mistake.
pub fn call_tool(admitted: &Admitted, arguments: &Map<String, Value>) -> Result<ToolCall, ApiError> {
    let Some(name) = arguments.get("name").and_then(Value::as_str) else {
        return Err(ApiError::invalid("`name` (a string, the tool's name) is required"));
    };
    let tool_arguments = match arguments.get("arguments") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(tool_arguments)) => tool_arguments.clone(),
        Some(_) => return Err(ApiError::invalid("`arguments` must be an object")),
    };
    let query = match arguments.get("selectionId") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => Some(
            selected_query(&admitted.tenant.record.id, id)
                .ok_or_else(|| ApiError::invalid("`selectionId` is not one `find_tools` answered"))?,
        ),
        Some(_) => return Err(ApiError::invalid("`selectionId` must be a string")),
    };
    Ok(ToolCall { name: name.to_string(), arguments: tool_arguments, query })
}

/// A refusal of a meta-tool's arguments as a tool result the model reads and can correct
/// (the specification's advice for input errors), not as a protocol error.
pub fn argument_error(error: &ApiError) -> Value {
    json!({"content": [{"type": "text", "text": error.message()}], "isError": true})
}
