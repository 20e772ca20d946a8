//! A small MCP server for the gateway's tests and walkthrough, over stdio or streamable HTTP.
//!
//! Run with: `cargo run -p mcp-example-server -- --stdio`
//! or:       `cargo run -p mcp-example-server -- --http 127.0.0.1:8931` (MCP at `http://127.0.0.1:8931/mcp`)
//!
//! In HTTP mode the first line on stdout is `listening on http://ADDR/mcp`, so a test can ask for port 0
//! and read the port it got. Only loopback addresses are accepted: this server has no authentication.

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
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let tools = ExampleTools::new(args.page_size);
    let outcome = match args.http {
        Some(address) => http_mode::serve(address, tools).await,
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
