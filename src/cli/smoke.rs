//! `mcp-server smoke URL`: a real MCP round trip against a deployed server.

use std::{
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use rmcp::{
    ServiceExt,
    model::{CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, Implementation, JsonObject},
    transport::{StreamableHttpClientTransport, streamable_http_client::StreamableHttpClientTransportConfig},
};
use serde_json::json;

pub async fn run(url: &str, token: Option<String>, timeout: Duration) -> ExitCode {
    let started = Instant::now();
    match tokio::time::timeout(timeout, round_trip(url, token)).await {
        Ok(Ok(tools)) => {
            println!(
                "smoke ok: {url} ({tools} tools; write, read and cleanup in {} ms)",
                started.elapsed().as_millis()
            );
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            println!("smoke FAILED: {url}: {e:#}");
            ExitCode::FAILURE
        }
        Err(_) => {
            println!("smoke FAILED: {url}: no answer within {timeout:?}");
            ExitCode::FAILURE
        }
    }
}

fn args(value: serde_json::Value) -> JsonObject {
    value.as_object().cloned().unwrap_or_default()
}

fn text(result: &CallToolResult) -> String {
    result.content.iter().filter_map(|c| c.as_text().map(|t| t.text.clone())).collect()
}

async fn round_trip(url: &str, token: Option<String>) -> anyhow::Result<usize> {
    let mut config = StreamableHttpClientTransportConfig::with_uri(url);
    config.auth_header = token;
    let transport = StreamableHttpClientTransport::from_config(config);
    let info = ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("mcp-server-smoke", env!("CARGO_PKG_VERSION")),
    );
    let client = info.serve(transport).await.context("initialize")?;
    let tools = client.list_all_tools().await.context("tools/list")?;
    if !tools.iter().any(|t| t.name == "open_nodes") {
        bail!("tools/list has no open_nodes tool");
    }
    let name = format!("smoke-test-{:016x}", rand::random::<u64>());
    let observation = "written by mcp-server smoke";
    let call = |tool: &'static str, arguments: serde_json::Value| {
        client.call_tool(CallToolRequestParams::new(tool).with_arguments(args(arguments)))
    };
    let created = call(
        "create_entities",
        json!({ "entities": [{ "name": name, "entityType": "smoke-test", "observations": [observation] }] }),
    )
    .await
    .context("create_entities")?;
    let read = call("open_nodes", json!({ "names": [name] })).await;
    // Clean up even when the read failed.
    let deleted = call("delete_entities", json!({ "entityNames": [name] })).await;
    let _ = client.cancel().await;
    if created.is_error == Some(true) {
        bail!("create_entities failed: {}", text(&created));
    }
    let read = read.context("open_nodes")?;
    if !text(&read).contains(observation) {
        bail!("open_nodes did not return what was written: {}", text(&read));
    }
    deleted.context("delete_entities")?;
    Ok(tools.len())
}
