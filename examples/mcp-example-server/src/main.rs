//! A small MCP server for the gateway's tests and walkthrough, over stdio or streamable HTTP.
//!
//! Run with: `cargo run -p mcp-example-server -- --stdio`
//! or:       `cargo run -p mcp-example-server -- --http 127.0.0.1:8931` (MCP at `http://127.0.0.1:8931/mcp`)
//!
//! With `--catalog FILE` (a `catalog.jsonl` of eval/tool-retrieval) `tools/list` gives that
//! catalog's tools instead of the example tools (listed only, not callable); over HTTP `/mcp` lists
//! them all and `/mcp/<integration>` those of one `integration`. The benchmark of `tools/select`
//! uses it to have the gateway discover thousands of real tools.
//!
//! In HTTP mode the first line on stdout is `listening on http://ADDR/mcp`, so a test can ask for port 0
//! and read the port it got. Only loopback addresses are accepted: this server has no authentication.

mod catalog;
mod http_mode;
mod tools;

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use rmcp::ServiceExt;

use crate::tools::ExampleTools;

#[derive(Parser)]
#[command(about = "An example MCP server: echo, add, sleep, fail, whoami, exit")]
struct Args {
    /// Speak MCP over stdin/stdout.
    #[arg(long, conflicts_with = "http", required_unless_present = "http")]
    stdio: bool,
    /// Serve streamable HTTP at `/mcp` on this loopback address (port 0 picks a free one).
    #[arg(long, value_name = "ADDR")]
    http: Option<SocketAddr>,
    /// Tools per `tools/list` page; without it every tool comes in one page.
    #[arg(long, value_name = "N")]
    page_size: Option<usize>,
    /// List the tools of this catalog (`catalog.jsonl`: name, integration, description,
    /// inputSchema) instead of the example tools; over HTTP also one endpoint per integration,
    /// `/mcp/<integration>`.
    #[arg(long, value_name = "FILE")]
    catalog: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let mut tools = ExampleTools::new(args.page_size);
    let catalog = match args.catalog.as_deref().map(catalog::read).transpose() {
        Ok(catalog) => catalog,
        Err(error) => {
            eprintln!("mcp-example-server: {error}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(catalog) = &catalog {
        tools = tools.listing(catalog::all(catalog));
    }
    let outcome = match args.http {
        Some(address) => http_mode::serve(address, tools, catalog).await,
        None => serve_stdio(tools).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("mcp-example-server: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn serve_stdio(tools: ExampleTools) -> Result<(), String> {
    let running = tools.serve(rmcp::transport::stdio()).await.map_err(|error| error.to_string())?;
    // Returns when the client closes stdin.
    running.waiting().await.map_err(|error| error.to_string())?;
    Ok(())
}
