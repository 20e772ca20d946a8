//! The tools a selection chooses from: what a tool is, and the set of them with lookup by id.
//!
//! Tools come from MCP `tools/list` of shared integrations and of tenants' own servers; this file
//! decides how a tool is described to selection and who may see it, not how tools are discovered.

use std::collections::HashMap;

use connectors_actors::tenant::TenantId;
use serde::Deserialize;

/// `<integration>.<toolName>`, e.g. `github.createPullRequest`.
pub type ToolId = String;

/// One tool as selection sees it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "ToolRecord")]
pub struct Tool {
    pub id: ToolId,
    pub name: String,
    pub integration: String,
    pub category: String,
    pub description: String,
    /// The MCP `inputSchema` as the server gave it.
    pub input_schema: serde_json::Value,
    /// The keys of `input_schema.properties`, in schema order.
    pub parameters: Vec<String>,
    /// `None` for a shared integration's tool; the tenant whose own server offers it otherwise.
    pub owner: Option<TenantId>,
}

impl Tool {
    pub fn new(
        integration: impl Into<String>,
        name: impl Into<String>,
        category: impl Into<String>,
        description: impl Into<String>,
        input_schema: serde_json::Value,
    ) -> Self {
        let (integration, name) = (integration.into(), name.into());
        let parameters = input_schema
            .get("properties")
            .and_then(serde_json::Value::as_object)
            .map(|properties| properties.keys().cloned().collect())
            .unwrap_or_default();
        Self {
            id: format!("{integration}.{name}"),
            name,
            integration,
            category: category.into(),
            description: description.into(),
            input_schema,
            parameters,
            owner: None,
        }
    }

    /// The same tool, offered by `tenant`'s own server and visible to it only.
    pub fn owned_by(mut self, tenant: TenantId) -> Self {
        self.owner = Some(tenant);
        self
    }

    pub fn is_visible_to(&self, tenant: &TenantId) -> bool {
        self.owner.as_ref().is_none_or(|owner| owner == tenant)
    }
}

/// The JSON form of a tool (the development sets' `catalog.jsonl` and the `GET /tools/{id}` body).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolRecord {
    id: Option<String>,
    name: String,
    integration: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    input_schema: serde_json::Value,
}

impl From<ToolRecord> for Tool {
    fn from(record: ToolRecord) -> Self {
        let mut tool =
            Tool::new(record.integration, record.name, record.category, record.description, record.input_schema);
        // An explicit id wins: servers' tool names may not be what the id was built from.
        if let Some(id) = record.id {
            tool.id = id;
        }
        tool
    }
}

/// Tools in a fixed order, each found by its id; a tool's position is its index everywhere in
/// selection.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    tools: Vec<Tool>,
    /// By owner (`None`: shared) and id: two tenants' own servers may have the same name.
    by_id: HashMap<(Option<TenantId>, ToolId), usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error("tool `{0}` appears twice")]
    DuplicateId(ToolId),
}

impl Catalog {
    pub fn new(tools: Vec<Tool>) -> Result<Self, CatalogError> {
        let mut by_id = HashMap::with_capacity(tools.len());
        for (index, tool) in tools.iter().enumerate() {
            if by_id.insert((tool.owner.clone(), tool.id.clone()), index).is_some() {
                return Err(CatalogError::DuplicateId(tool.id.clone()));
            }
        }
        Ok(Self { tools, by_id })
    }

    pub fn tools(&self) -> &[Tool] {
        &self.tools
    }

    pub fn len(&self) -> usize {
        self.tools.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }

    /// A shared tool's position.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.by_id.get(&(None, id.to_string())).copied()
    }

    /// The position of the tool `id` as `tenant` sees it: its own server's, else the shared one.
    pub fn visible_index(&self, tenant: &TenantId, id: &str) -> Option<usize> {
        self.by_id.get(&(Some(tenant.clone()), id.to_string())).copied().or_else(|| self.index_of(id))
    }

    /// A shared tool.
    pub fn get(&self, id: &str) -> Option<&Tool> {
        self.index_of(id).map(|index| &self.tools[index])
    }

    /// The tool `id` as `tenant` sees it (see [`Catalog::visible_index`]).
    pub fn get_visible(&self, tenant: &TenantId, id: &str) -> Option<&Tool> {
        self.visible_index(tenant, id).map(|index| &self.tools[index])
    }
}
