//! MCP layer: the rmcp `ServerHandler` that exposes the memory over any transport.

mod fixtures;
pub mod jsonrpc;
mod pretty;
mod resources;
mod results;
pub mod stdio;
mod subscriptions;
pub mod tools;

use std::{collections::HashMap, sync::Arc, time::Instant};

#[allow(deprecated)]
use rmcp::{
    ErrorData as McpError, RoleServer, ServerHandler,
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, CompleteRequestParams, CompleteResult, ContentBlock,
        CustomRequest, CustomResult, GetPromptRequestParams, GetPromptResponse, Implementation, ListPromptsResult,
        ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
        ReadResourceRequestParams, ReadResourceResponse, ServerCapabilities, ServerConfig, SetLevelRequestParams,
        SubscribeRequestParams, SubscriptionFilter, Tool, UnsubscribeRequestParams,
    },
    service::{RequestContext, SubscriptionContext},
};
use serde_json::json;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::{
    memory::{Memory, MemoryError, Tenant},
    sessions::ResourceUpdates,
};

/// What can go wrong in this layer, before it becomes a JSON-RPC error or an error result.
#[derive(Debug, thiserror::Error)]
pub enum McpLayerError {
    #[error("{}", .0.message)]
    Protocol(McpError),
    #[error(transparent)]
    Memory(#[from] MemoryError),
}

impl From<McpError> for McpLayerError {
    fn from(e: McpError) -> Self {
        McpLayerError::Protocol(e)
    }
}

/// The span of one tool call: a child of the caller's trace, taken from `_meta.traceparent` when
/// the request carries one, else from the HTTP request's span.
fn tool_span(name: &str, context: &RequestContext<RoleServer>) -> tracing::Span {
    let carrier: HashMap<String, String> = ["traceparent", "tracestate"]
        .into_iter()
        .filter_map(|k| context.meta.0.0.get(k).and_then(|v| v.as_str()).map(|v| (k.to_string(), v.to_string())))
        .collect();
    let parent = if carrier.contains_key("traceparent") {
        opentelemetry::global::get_text_map_propagator(|p| p.extract(&carrier))
    } else {
        context
            .extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<opentelemetry::Context>().cloned())
            .unwrap_or_default()
    };
    let span = tracing::info_span!(
        "mcp.tool",
        otel.name = format!("tools/call {name}"),
        mcp.method.name = "tools/call",
        gen_ai.operation.name = "execute_tool",
        gen_ai.tool.name = name,
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
    );
    let _ = span.set_parent(parent);
    crate::telemetry::record_ids(&span);
    span
}

impl McpLayerError {
    /// Client-facing form: the reference's error result for a missing entity, -32602 naming the
    /// field for bad input, and an opaque -32603 for internal failures (details go to the log).
    fn into_tool_response(self) -> Result<CallToolResult, McpError> {
        match self {
            McpLayerError::Protocol(e) => Err(e),
            McpLayerError::Memory(e @ MemoryError::EntityNotFound(_)) => {
                Ok(CallToolResult::error(vec![ContentBlock::text(e.to_string())]))
            }
            McpLayerError::Memory(e) => Err(memory_error(e)),
        }
    }
}

/// A memory error as the protocol's: -32602 naming the field, or the storage's own.
fn memory_error(e: MemoryError) -> McpError {
    match e {
        MemoryError::Invalid { ref field, .. } => {
            McpError::invalid_params(e.to_string(), Some(json!({ "field": field })))
        }
        MemoryError::InvalidCursor => McpError::invalid_params(e.to_string(), Some(json!({ "field": "cursor" }))),
        MemoryError::Storage(storage) => storage_error(&storage),
        MemoryError::EntityNotFound(_) => McpError::invalid_params(e.to_string(), None),
    }
}

fn storage_error(error: &crate::storage::StorageError) -> McpError {
    if error.is_unavailable() {
        tracing::warn!(%error, "database unavailable");
        McpError::internal_error("database unavailable, retry later", Some(json!({ "retryable": true })))
    } else if error.is_storage_full() {
        // Logged (and counted) by the store when it becomes full.
        McpError::internal_error(
            "storage full, retry later",
            Some(json!({ "retryable": true, "reason": "storage_full" })),
        )
    } else {
        tracing::error!(%error, "storage failure");
        McpError::internal_error("internal error", None)
    }
}

/// One handler value per MCP session (or per stateless request); cheap to clone.
#[derive(Clone)]
pub struct MemoryServer {
    memory: Memory,
    /// The tenant of a transport with no per-request identity (stdio).
    tenant: Tenant,
    /// Serve the conformance suite's fixtures too.
    fixtures: bool,
    /// Resource subscriptions, when this server offers them.
    updates: Option<Arc<ResourceUpdates>>,
    peer_subscriptions: subscriptions::PeerSubscriptions,
}

impl MemoryServer {
    pub fn new(memory: Memory) -> Self {
        Self::with_tenant(memory, Tenant::default())
    }

    pub fn with_tenant(memory: Memory, tenant: Tenant) -> Self {
        MemoryServer { memory, tenant, fixtures: false, updates: None, peer_subscriptions: Default::default() }
    }

    /// Offer resource subscriptions, fed by `updates` (which every write also publishes to).
    pub fn with_resource_updates(mut self, updates: Arc<ResourceUpdates>) -> Self {
        self.updates = Some(updates);
        self
    }

    pub fn with_conformance_fixtures(mut self, enabled: bool) -> Self {
        self.fixtures = enabled;
        self
    }

    /// The tenant the HTTP layer attached to the request, else this server's own.
    fn tenant(&self, context: &RequestContext<RoleServer>) -> Tenant {
        context
            .extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Tenant>().cloned())
            .unwrap_or_else(|| self.tenant.clone())
    }

    fn tools(&self) -> impl Iterator<Item = &Tool> {
        let fixtures = if self.fixtures { &fixtures::TOOLS[..] } else { &[] };
        tools::TOOLS.iter().chain(fixtures)
    }
}

#[allow(deprecated)]
impl ServerHandler for MemoryServer {
    fn get_info(&self) -> ServerConfig {
        let capabilities = if self.fixtures {
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .enable_resources_subscribe()
                .enable_prompts()
                .enable_logging() // deprecated by SEP-2577, still exercised by the suite
                .enable_completions()
                .build()
        } else if self.updates.is_some() {
            ServerCapabilities::builder().enable_tools().enable_resources().enable_resources_subscribe().build()
        } else {
            ServerCapabilities::builder().enable_tools().enable_resources().build()
        };
        ServerConfig::new(capabilities)
            .with_server_info(
                Implementation::new("mcp-server", env!("CARGO_PKG_VERSION"))
                    .with_title("mcp-server knowledge-graph memory"),
            )
            .with_instructions(
                "A persistent knowledge-graph memory: entities with observations, and relations between them. \
                 Use search_nodes or open_nodes to recall, create_* and add_observations to remember.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let mut all = tools::TOOLS.clone();
        if self.fixtures {
            all.extend(fixtures::TOOLS.iter().cloned());
        }
        Ok(ListToolsResult::with_all_items(all))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tools().find(|t| t.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let tenant = self.tenant(&context);
        let started = Instant::now();
        let name = request.name.to_string();
        let span = tool_span(&name, &context);
        if self.fixtures {
            let args = serde_json::Value::Object(request.arguments.clone().unwrap_or_default());
            if let Some(result) = fixtures::call(&name, &args, &context).await {
                return Ok(result.into());
            }
        }
        let outcome = match tools::call(&self.memory, &tenant, &name, request.arguments).instrument(span.clone()).await
        {
            Ok(Some(output)) => {
                if let Some(updates) = &self.updates
                    && !output.changed.is_empty()
                {
                    updates.publish(tenant.as_str(), resources::changed_keys(&output.changed)).await;
                }
                Ok(output.result)
            }
            Ok(None) => {
                Err(McpError::invalid_params(format!("Unknown tool: {name}"), Some(json!({ "field": "name" }))))
            }
            Err(e) => e.into_tool_response(),
        };
        let label = if self.tools().any(|t| t.name == name) { name } else { "unknown".to_string() };
        let status = match &outcome {
            Ok(r) if r.is_error == Some(true) => "tool_error",
            Ok(_) => "ok",
            Err(e) if e.code == rmcp::model::ErrorCode::INVALID_PARAMS => "invalid_params",
            Err(_) => "internal_error",
        };
        span.in_scope(|| tracing::debug!(tool = %label, outcome = status, "tool call"));
        metrics::counter!("mcp_tool_calls_total", "tool" => label.clone(), "outcome" => status).increment(1);
        metrics::histogram!("mcp_tool_call_duration_seconds", "tool" => label).record(started.elapsed().as_secs_f64());
        outcome.map(Into::into)
    }

    /// rmcp hands on a standard method whose params it could not read as a custom request.
    async fn on_custom_request(
        &self,
        request: CustomRequest,
        _context: RequestContext<RoleServer>,
    ) -> Result<CustomResult, McpError> {
        Err(jsonrpc::invalid_params(&request.method, request.params)
            .unwrap_or_else(|| McpError::new(rmcp::model::ErrorCode::METHOD_NOT_FOUND, request.method, None)))
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let mut all = resources::list();
        if self.fixtures {
            all.extend(fixtures::resources());
        }
        Ok(ListResourcesResult::with_all_items(all))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        let mut all = resources::templates();
        if self.fixtures {
            all.extend(fixtures::templates());
        }
        Ok(ListResourceTemplatesResult::with_all_items(all))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        if self.fixtures
            && let Some(result) = fixtures::read(&request.uri)
        {
            return Ok(result.into());
        }
        let tenant = self.tenant(&context);
        resources::read(&self.memory, &tenant, &request.uri).await.map(Into::into)
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        let prompts = if self.fixtures { fixtures::prompts() } else { Vec::new() };
        Ok(ListPromptsResult::with_all_items(prompts))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        if !self.fixtures {
            return Err(McpError::invalid_params(format!("Prompt {} not found", request.name), None));
        }
        fixtures::prompt(&request.name, &request.arguments.unwrap_or_default()).map(Into::into)
    }

    async fn complete(
        &self,
        _request: CompleteRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        Ok(CompleteResult::default())
    }

    fn accepted_subscription_filter(&self, requested: &SubscriptionFilter) -> Option<SubscriptionFilter> {
        self.updates.as_ref().map(|_| subscriptions::accepted(requested))
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), McpError> {
        if let Some(updates) = &self.updates {
            let tenant = self.tenant(context.request_context());
            subscriptions::listen(updates, &tenant, context).await;
        }
        Ok(())
    }

    // The conformance suite still exercises logging and legacy subscriptions.
    #[allow(deprecated)]
    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        if self.fixtures {
            let level = serde_json::to_value(request.level).unwrap_or_default();
            fixtures::notify_log(&context, &format!("Log level set to: {}", level.as_str().unwrap_or_default())).await;
        }
        Ok(())
    }

    #[allow(deprecated)]
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        if self.fixtures {
            fixtures::notify_log(&context, &format!("Subscribed to resource: {}", request.uri)).await;
            return Ok(());
        }
        let Some(updates) = &self.updates else {
            return Err(McpError::method_not_found::<rmcp::model::SubscribeRequestMethod>());
        };
        let tenant = self.tenant(&context);
        subscriptions::subscribe(updates, &self.peer_subscriptions, &tenant, &request.uri, &context).await
    }

    #[allow(deprecated)]
    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        if self.fixtures {
            fixtures::notify_log(&context, &format!("Unsubscribed from resource: {}", request.uri)).await;
            return Ok(());
        }
        let Some(updates) = &self.updates else {
            return Err(McpError::method_not_found::<rmcp::model::UnsubscribeRequestMethod>());
        };
        let tenant = self.tenant(&context);
        subscriptions::unsubscribe(updates, &self.peer_subscriptions, &tenant, &request.uri, &context).await
    }
}
