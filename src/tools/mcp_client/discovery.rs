//! Tools of a server as selection sees them: MCP `tools/list` entries turned into catalog tools.

use crate::tools::catalog::Tool;

use super::McpTool;

/// The catalog tools of `integration` (ids `<integration>.<toolName>`); MCP has no categories, so
/// every tool takes the one the integration was registered with.
pub fn catalog_tools(integration: &str, category: &str, tools: &[McpTool]) -> Vec<Tool> {
    tools
        .iter()
        .map(|tool| {
            let description = tool.description.as_deref().unwrap_or_default();
            let schema = serde_json::Value::Object(tool.input_schema.as_ref().clone());
            Tool::new(integration, tool.name.as_ref(), category, description, schema)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parameters_and_category_come_from_the_integration_and_schema() {
        let tool: McpTool = serde_json::from_value(serde_json::json!({
            "name": "createIssue",
            "description": "Opens an issue",
            "inputSchema": {"type": "object", "properties": {"title": {"type": "string"}, "body": {}}}
        }))
        .expect("a valid MCP tool");
        let tools = catalog_tools("github", "code", &[tool]);
        assert_eq!(tools.len(), 1);
        assert_eq!(tools[0].id, "github.createIssue");
        assert_eq!(tools[0].category, "code");
        assert_eq!(tools[0].description, "Opens an issue");
        let mut parameters = tools[0].parameters.clone();
        parameters.sort();
        assert_eq!(parameters, vec!["body".to_string(), "title".to_string()]);
    }
}
