//! What the HTTP benchmark tools share: one MCP `tools/call` over Streamable HTTP, its reply
//! checked (our JSON-RPC result, not a tool error) and parsed only as far as the checks need.

use std::borrow::Cow;

use anyhow::{Context, Result, ensure};
use serde::{Deserialize, de::IgnoredAny};
use serde_json::{Value, json};

/// A JSON-RPC reply, parsed as far as the checks need: the parser still reads and validates every
/// byte, but builds no tree (parsing the 40 kB search result into a `Value`, and cloning it, cost
/// this single-threaded load generator as much CPU per request as our server spent answering).
#[derive(Deserialize)]
struct Reply<'a> {
    #[serde(borrow)]
    jsonrpc: Cow<'a, str>,
    id: Option<u64>,
    #[serde(borrow)]
    result: Option<ToolResult<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolResult<'a> {
    is_error: Option<bool>,
    structured_content: Option<Graph>,
    #[serde(borrow, default)]
    content: Vec<Content<'a>>,
}

#[derive(Deserialize)]
struct Graph {
    entities: Option<Vec<IgnoredAny>>,
}

#[derive(Deserialize)]
struct Content<'a> {
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
}

/// Sends one tools/call (with a tenant's bearer token, on a server that checks them) and checks the
/// reply is our JSON-RPC result and not a tool error. Returns the entities a search found (from
/// structuredContent, else the text), if it says.
pub async fn call(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    id: u64,
    name: &str,
    arguments: Value,
) -> Result<Option<usize>> {
    let body = json!({ "jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": { "name": name, "arguments": arguments } });
    let mut request = client.post(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .body(body.to_string())
        .send()
        .await?;
    let status = response.status();
    let bytes = response.bytes().await?;
    let text = std::str::from_utf8(&bytes).context("response is not UTF-8")?;
    ensure!(status.is_success(), "HTTP {status}: {text}");
    // JSON, or a one-event SSE stream (peers that answer with text/event-stream).
    let payload = match text.trim_start().starts_with('{') {
        true => text,
        false => text
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(str::trim)
            .find(|d| d.starts_with('{'))
            .context("no JSON in the response")?,
    };
    let reply: Reply = serde_json::from_str(payload).with_context(|| format!("not JSON-RPC: {payload}"))?;
    ensure!(reply.jsonrpc == "2.0" && reply.id == Some(id), "not our response: {payload}");
    let result = reply.result.with_context(|| format!("not a result: {payload}"))?;
    ensure!(result.is_error != Some(true), "tool error: {payload}");
    if let Some(entities) = result.structured_content.and_then(|g| g.entities) {
        return Ok(Some(entities.len()));
    }
    let Some(text) = result.content.first().and_then(|c| c.text.as_deref()) else { return Ok(None) };
    Ok(serde_json::from_str::<Graph>(text).ok().and_then(|g| g.entities).map(|e| e.len()))
}
