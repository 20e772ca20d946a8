//! The example tools, and `tools/list` paging so clients' cursor handling can be tested.

use std::sync::Arc;
use std::time::Duration;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResult, ContentBlock, ErrorData, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig,
    Tool,
};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, ServerHandler, schemars, tool, tool_handler, tool_router};
use serde::Deserialize;

/// Longest `sleep` accepted, so a mistaken call cannot hold a connection for long.
const MAX_SLEEP_MS: u64 = 60_000;

#[derive(Clone)]
pub(crate) struct ExampleTools {
    tool_router: ToolRouter<Self>,
    page_size: Option<usize>,
    /// With `--catalog`: the tools `tools/list` gives instead of the example tools.
    listed: Option<Arc<Vec<Tool>>>,
}

#[derive(Deserialize, schemars::JsonSchema)]
pub(crate) struct EchoArgs {
    /// The text to send back.
    text: String,
}

#[derive(Deserialize, schemars::JsonSchema)]
pub(crate) struct AddArgs {
    a: f64,
    b: f64,
}

#[derive(Deserialize, schemars::JsonSchema)]
pub(crate) struct SleepArgs {
    /// How long to wait before answering, in milliseconds (at most 60000).
    ms: u64,
}

#[derive(Deserialize, schemars::JsonSchema)]
pub(crate) struct FailArgs {
    /// The error text the tool result carries.
    #[serde(default)]
    message: Option<String>,
}

#[tool_router]
impl ExampleTools {
    pub(crate) fn new(page_size: Option<usize>) -> Self {
        Self { tool_router: Self::tool_router(), page_size: page_size.filter(|size| *size > 0), listed: None }
    }

    /// The same server, listing `tools` (from a catalog) instead of the example tools.
    pub(crate) fn listing(&self, tools: Arc<Vec<Tool>>) -> Self {
        Self { listed: Some(tools), ..self.clone() }
    }

    #[tool(description = "Returns the text it is given")]
    fn echo(&self, Parameters(EchoArgs { text }): Parameters<EchoArgs>) -> String {
        text
    }

    #[tool(description = "Adds two numbers and returns the sum")]
    fn add(&self, Parameters(AddArgs { a, b }): Parameters<AddArgs>) -> String {
        (a + b).to_string()
    }

    #[tool(description = "Waits the given number of milliseconds, then answers")]
    async fn sleep(&self, Parameters(SleepArgs { ms }): Parameters<SleepArgs>) -> String {
        let ms = ms.min(MAX_SLEEP_MS);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        format!("slept {ms} ms")
    }

    #[tool(description = "Always fails: returns a tool result with isError set")]
    fn fail(&self, Parameters(FailArgs { message }): Parameters<FailArgs>) -> CallToolResult {
        CallToolResult::error(vec![ContentBlock::text(message.unwrap_or_else(|| "this tool always fails".into()))])
    }

    #[tool(description = "Reports the Authorization header of the HTTP request that carried this call, as JSON")]
    fn whoami(&self, context: RequestContext<RoleServer>) -> String {
        // The streamable-HTTP transport attaches the request's head; stdio has none.
        let authorization = context
            .extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.headers.get(http::header::AUTHORIZATION))
            .and_then(|value| value.to_str().ok());
        serde_json::json!({ "authorization": authorization }).to_string()
    }

    #[tool(description = "Ends the server process at once (for tests of broken connections)")]
    fn exit(&self) -> String {
        std::process::exit(3)
    }
}

#[tool_handler]
impl ServerHandler for ExampleTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(rmcp::model::Implementation::new("mcp-example-server", env!("CARGO_PKG_VERSION")))
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let mut tools = match &self.listed {
            Some(listed) => listed.as_ref().clone(),
            None => {
                let mut tools = self.tool_router.list_all();
                tools.sort_by(|a, b| a.name.cmp(&b.name));
                tools
            }
        };
        let Some(page_size) = self.page_size else {
            return Ok(ListToolsResult::with_all_items(tools));
        };
        // The cursor is the index of the page's first tool: opaque to clients, trivial here.
        let start = match request.and_then(|request| request.cursor) {
            None => 0,
            Some(cursor) => cursor
                .parse::<usize>()
                .ok()
                .filter(|start| *start < tools.len())
                .ok_or_else(|| ErrorData::invalid_params(format!("unknown cursor `{cursor}`"), None))?,
        };
        let total = tools.len();
        let end = (start + page_size).min(total);
        let mut page = ListToolsResult::with_all_items(tools.drain(start..end).collect());
        page.next_cursor = (end < total).then(|| end.to_string());
        Ok(page)
    }
}
