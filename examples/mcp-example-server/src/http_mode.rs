//! Streamable HTTP at `/mcp` on a loopback address, one MCP session per client. With a catalog,
//! `/mcp` lists all of its tools and `/mcp/<integration>` only that integration's.

use std::net::SocketAddr;
use std::sync::Arc;

use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use crate::catalog::CatalogTools;
use crate::tools::ExampleTools;

fn service(tools: ExampleTools) -> StreamableHttpService<ExampleTools, LocalSessionManager> {
    StreamableHttpService::new(
        move || Ok(tools.clone()),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    )
}

pub(crate) async fn serve(
    address: SocketAddr,
    tools: ExampleTools,
    catalog: Option<CatalogTools>,
) -> Result<(), String> {
    if !address.ip().is_loopback() {
        return Err(format!("{address} is not a loopback address; this server has no authentication"));
    }
    let mut router = axum::Router::new().nest_service("/mcp", service(tools.clone()));
    for (integration, listed) in catalog.iter().flatten() {
        // Exact paths: they take precedence over the `/mcp` nest, which serves every tool.
        router = router.route_service(&format!("/mcp/{integration}"), service(tools.listing(listed.clone())));
    }
    let listener = tokio::net::TcpListener::bind(address).await.map_err(|error| format!("bind {address}: {error}"))?;
    let bound = listener.local_addr().map_err(|error| error.to_string())?;
    // Tests read this line to learn the port when they asked for port 0.
    println!("listening on http://{bound}/mcp");
    axum::serve(listener, router).await.map_err(|error| error.to_string())
}
