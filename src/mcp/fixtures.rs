//! `serve --conformance-fixtures`: the tools, resources and prompts the official MCP conformance
//! suite expects (its "everything server"), served beside the memory tools so the suite runs
//! against the real server. Off by default; never in production.

use std::sync::LazyLock;

use rmcp::{
    ErrorData as McpError, RoleServer,
    model::{CallToolResult, GetPromptResult, Prompt, ReadResourceResult, Resource, ResourceTemplate, Tool},
    service::RequestContext,
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
const WAV: &str = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=";

fn from<T: DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("fixture JSON matches the MCP types")
}

fn empty() -> Value {
    json!({ "type": "object", "properties": {} })
}

fn string_arg(name: &str, description: &str) -> Value {
    json!({ "type": "object", "properties": { name: { "type": "string", "description": description } }, "required": [name] })
}

pub static TOOLS: LazyLock<Vec<Tool>> = LazyLock::new(|| {
    let tool = |name: &str, description: &str, schema: Value| {
        from::<Tool>(json!({ "name": name, "description": description, "inputSchema": schema }))
    };
    vec![
        tool("test_simple_text", "Tests simple text content response", empty()),
        tool("test_image_content", "Tests image content response", empty()),
        tool("test_audio_content", "Tests audio content response", empty()),
        tool("test_embedded_resource", "Tests embedded resource content response", empty()),
        tool(
            "test_multiple_content_types",
            "Tests response with multiple content types (text, image, resource)",
            empty(),
        ),
        tool("test_tool_with_logging", "Tests tool that emits log messages during execution", empty()),
        tool("test_tool_with_progress", "Tests tool that reports progress notifications", empty()),
        tool("test_error_handling", "Tests error response handling", empty()),
        tool("test_reconnection", "Tests SSE stream disconnection and client reconnection (SEP-1699)", empty()),
        tool(
            "test_sampling",
            "Tests server-initiated sampling (LLM completion request)",
            string_arg("prompt", "The prompt to send to the LLM"),
        ),
        tool(
            "test_elicitation",
            "Tests server-initiated elicitation (user input request)",
            string_arg("message", "The message to show the user"),
        ),
        tool("test_elicitation_sep1034_defaults", "Tests elicitation with default values per SEP-1034", empty()),
        tool("test_elicitation_sep1330_enums", "Tests elicitation with enum schema improvements per SEP-1330", empty()),
        tool(
            "json_schema_2020_12_tool",
            "Tool with JSON Schema 2020-12 features for conformance testing (SEP-1613)",
            json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "$defs": { "address": { "type": "object", "properties": { "street": { "type": "string" }, "city": { "type": "string" } } } },
                "properties": { "name": { "type": "string" }, "address": { "$ref": "#/$defs/address" } },
                "additionalProperties": false
            }),
        ),
    ]
});

fn text(text: &str) -> Value {
    json!({ "type": "text", "text": text })
}

fn result(content: Vec<Value>) -> CallToolResult {
    from(json!({ "content": content }))
}

pub async fn notify_log(context: &RequestContext<RoleServer>, message: &str) {
    let _ = context
        .peer
        .send_notification(from(
            json!({ "method": "notifications/message", "params": { "level": "info", "data": message } }),
        ))
        .await;
}

/// Asks the client something and returns its answer as JSON.
async fn ask(context: &RequestContext<RoleServer>, request: Value) -> Result<Value, String> {
    match context.peer.send_request(from(request)).await {
        Ok(response) => Ok(serde_json::to_value(response).unwrap_or_default()),
        Err(e) => Err(e.to_string()),
    }
}

fn elicitation(message: &str, properties: Value) -> Value {
    json!({ "method": "elicitation/create", "params": {
        "message": message, "requestedSchema": { "type": "object", "properties": properties, "required": [] } } })
}

fn elicited(prefix: &str, answer: Result<Value, String>) -> CallToolResult {
    result(vec![text(&match answer {
        Ok(r) => format!(
            "{prefix}: action={}, content={}",
            r["action"].as_str().unwrap_or(""),
            r.get("content").cloned().unwrap_or(json!({}))
        ),
        Err(e) => format!("Elicitation not supported or error: {e}"),
    })])
}

/// Runs a fixture tool; `None` when `name` is not one.
pub async fn call(name: &str, args: &Value, context: &RequestContext<RoleServer>) -> Option<CallToolResult> {
    let sleep = || tokio::time::sleep(std::time::Duration::from_millis(50));
    Some(match name {
        "test_simple_text" => result(vec![text("This is a simple text response for testing.")]),
        "test_image_content" => result(vec![json!({ "type": "image", "data": PNG, "mimeType": "image/png" })]),
        "test_audio_content" => result(vec![json!({ "type": "audio", "data": WAV, "mimeType": "audio/wav" })]),
        "test_embedded_resource" => result(vec![json!({ "type": "resource", "resource": {
            "uri": "test://embedded-resource", "mimeType": "text/plain", "text": "This is an embedded resource content." } })]),
        "test_multiple_content_types" => result(vec![
            text("Multiple content types test:"),
            json!({ "type": "image", "data": PNG, "mimeType": "image/png" }),
            json!({ "type": "resource", "resource": { "uri": "test://mixed-content-resource", "mimeType": "application/json", "text": "{\"test\":\"data\",\"value\":123}" } }),
        ]),
        "test_tool_with_logging" => {
            for (i, message) in
                ["Tool execution started", "Tool processing data", "Tool execution completed"].iter().enumerate()
            {
                if i > 0 {
                    sleep().await;
                }
                notify_log(context, message).await;
            }
            result(vec![text("Tool with logging executed successfully")])
        }
        "test_tool_with_progress" => {
            let token = context
                .meta
                .get_progress_token()
                .map(|t| serde_json::to_value(t).unwrap_or_default())
                .unwrap_or(json!(0));
            for (i, step) in [0, 50, 100].into_iter().enumerate() {
                if i > 0 {
                    sleep().await;
                }
                let _ = context
                    .peer
                    .send_notification(from(json!({ "method": "notifications/progress", "params": {
                        "progressToken": token, "progress": step, "total": 100, "message": format!("Completed step {step} of 100") } })))
                    .await;
            }
            result(vec![text(token.to_string().trim_matches('"'))])
        }
        "test_error_handling" => {
            from(json!({ "content": [text("This tool intentionally returns an error for testing")], "isError": true }))
        }
        "test_reconnection" => {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            result(vec![text(
                "Reconnection test completed successfully. If you received this, the client properly reconnected after stream closure.",
            )])
        }
        "test_sampling" => {
            let prompt = args["prompt"].as_str().unwrap_or_default();
            let answer = ask(
                context,
                json!({ "method": "sampling/createMessage", "params": {
                "messages": [{ "role": "user", "content": { "type": "text", "text": prompt } }], "maxTokens": 100 } }),
            )
            .await;
            result(vec![text(&match answer {
                Ok(r) => format!("LLM response: {}", r["content"]["text"].as_str().unwrap_or("No response")),
                Err(e) => format!("Sampling not supported or error: {e}"),
            })])
        }
        "test_elicitation" => {
            let message = args["message"].as_str().unwrap_or_default();
            let request = json!({ "method": "elicitation/create", "params": { "message": message, "requestedSchema": {
                "type": "object", "properties": { "response": { "type": "string", "description": "User's response" } }, "required": ["response"] } } });
            elicited("User response", ask(context, request).await)
        }
        "test_elicitation_sep1034_defaults" => {
            let properties = json!({
                "name": { "type": "string", "description": "User name", "default": "John Doe" },
                "age": { "type": "integer", "description": "User age", "default": 30 },
                "score": { "type": "number", "description": "User score", "default": 95.5 },
                "status": { "type": "string", "description": "User status", "enum": ["active", "inactive", "pending"], "default": "active" },
                "verified": { "type": "boolean", "description": "Verification status", "default": true },
            });
            elicited(
                "Elicitation completed",
                ask(context, elicitation("Please review and update the form fields with defaults", properties)).await,
            )
        }
        "test_elicitation_sep1330_enums" => {
            let options = |a: &str, b: &str, c: &str, prefix: &str| {
                json!([
                { "const": format!("{prefix}1"), "title": a }, { "const": format!("{prefix}2"), "title": b }, { "const": format!("{prefix}3"), "title": c }])
            };
            let properties = json!({
                "untitledSingle": { "type": "string", "description": "Select one option", "enum": ["option1", "option2", "option3"] },
                "titledSingle": { "type": "string", "description": "Select one option with titles", "oneOf": options("First Option", "Second Option", "Third Option", "value") },
                "legacyEnum": { "type": "string", "description": "Select one option (legacy)", "enum": ["opt1", "opt2", "opt3"], "enumNames": ["Option One", "Option Two", "Option Three"] },
                "untitledMulti": { "type": "array", "description": "Select multiple options", "minItems": 1, "maxItems": 3, "items": { "type": "string", "enum": ["option1", "option2", "option3"] } },
                "titledMulti": { "type": "array", "description": "Select multiple options with titles", "minItems": 1, "maxItems": 3, "items": { "anyOf": options("First Choice", "Second Choice", "Third Choice", "value") } },
            });
            elicited(
                "Elicitation completed",
                ask(context, elicitation("Please select options from the enum fields", properties)).await,
            )
        }
        "json_schema_2020_12_tool" => result(vec![text(&format!("JSON Schema 2020-12 tool called with: {args}"))]),
        _ => return None,
    })
}

pub fn resources() -> Vec<Resource> {
    let resource = |uri: &str, name: &str, title: &str, description: &str, mime: &str| {
        from::<Resource>(
            json!({ "uri": uri, "name": name, "title": title, "description": description, "mimeType": mime }),
        )
    };
    vec![
        resource(
            "test://static-text",
            "static-text",
            "Static Text Resource",
            "A static text resource for testing",
            "text/plain",
        ),
        resource(
            "test://static-binary",
            "static-binary",
            "Static Binary Resource",
            "A static binary resource (image) for testing",
            "image/png",
        ),
        resource(
            "test://watched-resource",
            "watched-resource",
            "Watched Resource",
            "A resource that auto-updates every 3 seconds",
            "text/plain",
        ),
    ]
}

pub fn templates() -> Vec<ResourceTemplate> {
    vec![from(json!({ "uriTemplate": "test://template/{id}/data", "name": "template", "title": "Resource Template",
        "description": "A resource template with parameter substitution", "mimeType": "application/json" }))]
}

pub fn read(uri: &str) -> Option<ReadResourceResult> {
    let contents = match uri {
        "test://static-text" => {
            json!({ "uri": uri, "mimeType": "text/plain", "text": "This is the content of the static text resource." })
        }
        "test://static-binary" => json!({ "uri": uri, "mimeType": "image/png", "blob": PNG }),
        "test://watched-resource" => {
            json!({ "uri": uri, "mimeType": "text/plain", "text": "Watched resource content" })
        }
        _ => {
            let id = uri.strip_prefix("test://template/")?.strip_suffix("/data")?;
            let body = json!({ "id": id, "templateTest": true, "data": format!("Data for ID: {id}") });
            json!({ "uri": uri, "mimeType": "application/json", "text": body.to_string() })
        }
    };
    Some(from(json!({ "contents": [contents] })))
}

pub fn prompts() -> Vec<Prompt> {
    let arg = |name: &str, description: &str| json!({ "name": name, "description": description, "required": true });
    vec![
        from(
            json!({ "name": "test_simple_prompt", "title": "Simple Test Prompt", "description": "A simple prompt without arguments" }),
        ),
        from(
            json!({ "name": "test_prompt_with_arguments", "title": "Prompt With Arguments", "description": "A prompt with required arguments",
            "arguments": [arg("arg1", "First test argument"), arg("arg2", "Second test argument")] }),
        ),
        from(json!({ "name": "test_prompt_with_embedded_resource", "title": "Prompt With Embedded Resource",
            "description": "A prompt that includes an embedded resource", "arguments": [arg("resourceUri", "URI of the resource to embed")] })),
        from(
            json!({ "name": "test_prompt_with_image", "title": "Prompt With Image", "description": "A prompt that includes image content" }),
        ),
    ]
}

pub fn prompt(name: &str, args: &serde_json::Map<String, Value>) -> Result<GetPromptResult, McpError> {
    let arg = |key: &str| args.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
    let user = |content: Value| json!({ "role": "user", "content": content });
    let messages = match name {
        "test_simple_prompt" => vec![user(text("This is a simple prompt for testing."))],
        "test_prompt_with_arguments" => {
            vec![user(text(&format!("Prompt with arguments: arg1='{}', arg2='{}'", arg("arg1"), arg("arg2"))))]
        }
        "test_prompt_with_embedded_resource" => vec![
            user(
                json!({ "type": "resource", "resource": { "uri": arg("resourceUri"), "mimeType": "text/plain", "text": "Embedded resource content for testing." } }),
            ),
            user(text("Please process the embedded resource above.")),
        ],
        "test_prompt_with_image" => vec![
            user(json!({ "type": "image", "data": PNG, "mimeType": "image/png" })),
            user(text("Please analyze the image above.")),
        ],
        _ => {
            return Err(McpError::invalid_params(format!("Prompt {name} not found"), None));
        }
    };
    Ok(from(json!({ "messages": messages })))
}
