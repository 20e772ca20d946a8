//! Tools for tenants: the catalog selection chooses from, the selection engine and the shell that
//! feeds it, the `ToolGraph` port of learned signals and the policy of which co-usage it shares,
//! and the offline evaluation of selection.

pub mod catalog;
pub mod co_usage_counts;
pub mod co_usage_policy;
pub mod evaluation;
pub mod mcp_client;
pub mod registry;
pub mod selection;
pub mod selector;
pub mod sentence_encoder;
pub mod served_tokens;
pub mod tenant_servers;
pub mod tool_graph;
