//! The rmcp floor for `bench/run`: rmcp's Streamable HTTP service, configured as our server runs
//! it (stateless, JSON responses), behind bare axum, with a handler that answers every tools/call
//! with a copy of a prepared result (the one our server gave for the benchmark call). What the
//! official SDK's protocol path costs a request before any server logic: between it and the
//! ceiling is rmcp's share, between it and our server is ours.

use std::sync::Arc;

use anyhow::{Context, Result};
use rmcp::{
    ErrorData as McpError, RoleServer, ServerHandler,
    model::{CallToolRequestParams, CallToolResponse, CallToolResult, ServerCapabilities, ServerConfig},
    service::RequestContext,
    transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
    },
};

// The allocator our server ships with: a floor on glibc's malloc measured its arena locks, not rmcp.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Clone)]
struct Floor {
    result: Arc<CallToolResult>,
}

impl ServerHandler for Floor {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn call_tool(
        &self,
        _request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        // rmcp takes the result by value, so any handler hands it a fresh one.
        Ok(CallToolResult::clone(&self.result).into())
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: bench-rmcp-floor PORT RESULT_FILE";
    let port: u16 = args.next().context(usage)?.parse()?;
    let result: CallToolResult = serde_json::from_str(&std::fs::read_to_string(args.next().context(usage)?)?)?;
    let floor = Floor { result: Arc::new(result) };
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .disable_allowed_hosts();
    let mcp = StreamableHttpService::new(move || Ok(floor.clone()), Arc::new(LocalSessionManager::default()), config);
    let app = axum::Router::new().nest_service("/mcp", mcp);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
