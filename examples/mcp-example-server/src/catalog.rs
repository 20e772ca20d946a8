//! `--catalog FILE`: tools read from a catalog in the format of eval/tool-retrieval
//! (`catalog.jsonl`, one JSON object a line with `name`, `integration`, `description` and
//! `inputSchema`), listed by `tools/list` instead of the example tools so that a client can
//! discover hundreds or thousands of real tool descriptions (the benchmark of `tools/select`).
//! They are listed only: calling one answers "tool not found".

use std::collections::BTreeMap;
use std::sync::Arc;

use rmcp::model::{JsonObject, Tool};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CatalogLine {
    name: String,
    integration: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    input_schema: Option<JsonObject>,
}

/// A catalog's tools, grouped by their `integration`, in file order within each.
pub(crate) type CatalogTools = BTreeMap<String, Arc<Vec<Tool>>>;

pub(crate) fn read(path: &std::path::Path) -> Result<CatalogTools, String> {
    let text = std::fs::read_to_string(path).map_err(|error| format!("{}: {error}", path.display()))?;
    let mut groups: BTreeMap<String, Vec<Tool>> = BTreeMap::new();
    for (number, line) in text.lines().enumerate().filter(|(_, line)| !line.trim().is_empty()) {
        let line: CatalogLine =
            serde_json::from_str(line).map_err(|error| format!("{} line {}: {error}", path.display(), number + 1))?;
        let schema = line
            .input_schema
            .unwrap_or_else(|| serde_json::json!({"type": "object"}).as_object().cloned().unwrap_or_default());
        groups.entry(line.integration).or_default().push(Tool::new(line.name, line.description, schema));
    }
    if groups.is_empty() {
        return Err(format!("{}: no tools", path.display()));
    }
    Ok(groups.into_iter().map(|(integration, tools)| (integration, Arc::new(tools))).collect())
}

/// Every tool of the catalog, integration by integration.
pub(crate) fn all(catalog: &CatalogTools) -> Arc<Vec<Tool>> {
    Arc::new(catalog.values().flat_map(|tools| tools.iter().cloned()).collect())
}
