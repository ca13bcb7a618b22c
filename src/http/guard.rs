//! Checks a request before the MCP transport sees it: a POST body over MAX_BODY_BYTES is 413, a
//! body slower than BODY_READ_TIMEOUT is 408, a body that is not JSON gets the JSON-RPC parse
//! error (-32700), and the scope the JSON-RPC methods need is checked against the caller's token.
//! A JSON body rmcp then refuses (its 415 with a text body) becomes 400 with the JSON-RPC error
//! saying why (`refused_message`).

use axum::{
    Json,
    body::{Body, Bytes},
    extract::Request,
    http::{HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, de::IgnoredAny};
use serde_json::{Value, json};

use super::{
    AppState,
    auth::{RequiredScope, check_scope},
};
use crate::{
    auth::{SCOPE_READ, SCOPE_WRITE},
    mcp::{jsonrpc, tools::is_write},
};

/// A JSON POST body, kept (a reference count) to explain rmcp's refusal of it.
#[derive(Clone)]
pub struct JsonBody(Bytes);

/// The id of a single request, for replies made before rmcp sees it (429).
#[derive(Clone)]
pub struct MessageId(pub Value);

fn jsonrpc_error(status: StatusCode, code: i32, message: String) -> Response {
    (status, Json(json!({ "jsonrpc": "2.0", "id": null, "error": { "code": code, "message": message } })))
        .into_response()
}

/// Just enough of a JSON-RPC message to tell which scope it needs; the rest is skipped unparsed.
#[derive(Deserialize)]
struct Message {
    id: Option<Value>,
    method: Option<Value>,
    params: Option<Params>,
}

#[derive(Deserialize)]
struct Params {
    name: Option<Value>,
}

enum Messages {
    One(Message),
    Batch(Vec<Message>),
}

/// A batch is an array, anything else one message: told apart by the first byte, not by an
/// untagged enum, which buffered the whole body as a tree before trying each shape.
fn messages(body: &[u8]) -> serde_json::Result<Messages> {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => serde_json::from_slice(body).map(Messages::Batch),
        _ => serde_json::from_slice(body).map(Messages::One),
    }
}

fn scope_of(message: &Message) -> Option<&'static str> {
    let method = message.method.as_ref()?.as_str()?;
    match method {
        "tools/call" => {
            let tool =
                message.params.as_ref().and_then(|p| p.name.as_ref()).and_then(Value::as_str).unwrap_or_default();
            Some(if is_write(tool) { SCOPE_WRITE } else { SCOPE_READ })
        }
        // Updates name the entities that change: reading them needs the read scope.
        "tools/list" | "subscriptions/listen" => Some(SCOPE_READ),
        m if m.starts_with("resources/") || m.starts_with("prompts/") || m.starts_with("completion/") => {
            Some(SCOPE_READ)
        }
        _ => None,
    }
}

/// Methods counted by name in `mcp_requests_total`; anything else is "other" (bounded labels).
const KNOWN_METHODS: &[&str] = &[
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/read",
    "resources/templates/list",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "server/discover",
    "subscriptions/listen",
    "notifications/initialized",
    "notifications/cancelled",
];

fn count_methods(messages: &Messages) {
    let one = |m: &Message| {
        let method = m.method.as_ref().and_then(Value::as_str).unwrap_or_default();
        let label = KNOWN_METHODS.iter().find(|k| **k == method).copied().unwrap_or("other");
        metrics::counter!("mcp_requests_total", "method" => label).increment(1);
    };
    match messages {
        Messages::One(m) => one(m),
        Messages::Batch(all) => all.iter().for_each(one),
    }
}

/// Marks a request that opens a `subscriptions/listen` stream (the gate counts those).
#[derive(Clone, Copy)]
pub struct ListenRequest;

fn listens(messages: &Messages) -> bool {
    let one = |m: &Message| m.method.as_ref().and_then(Value::as_str) == Some("subscriptions/listen");
    match messages {
        Messages::One(m) => one(m),
        Messages::Batch(all) => all.iter().any(one),
    }
}

/// The strongest scope any message needs (write implies read).
fn required_scope(messages: &Messages) -> Option<&'static str> {
    let scopes: Vec<&'static str> = match messages {
        Messages::One(m) => scope_of(m).into_iter().collect(),
        Messages::Batch(all) => all.iter().filter_map(scope_of).collect(),
    };
    scopes.iter().copied().find(|s| *s == SCOPE_WRITE).or(scopes.first().copied())
}

/// The body read (a POST's), checked and put back, with the scope its methods need checked.
pub async fn json_body(state: &AppState, request: Request) -> Result<Request, Response> {
    match *request.method() {
        Method::POST => {}
        Method::GET => {
            return match check_scope(state, &request, RequiredScope(Some(SCOPE_READ))) {
                Some(denied) => Err(denied),
                None => Ok(request),
            };
        }
        _ => return Ok(request),
    }
    let max_bytes = state.settings.max_body_bytes;
    let too_large = || {
        jsonrpc_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            -32600,
            format!("request body is larger than {max_bytes} bytes (MAX_BODY_BYTES)"),
        )
    };
    // Refused from its Content-Length before the body is polled, which is what sends a client's
    // awaited `100 Continue`: it must not start a body that will be refused.
    let declared = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > max_bytes as u64) {
        return Err(too_large());
    }
    let (parts, body) = request.into_parts();
    // A slow sender holds its connection and its tenant's share: cut it off well before
    // REQUEST_TIMEOUT, closing the connection (the rest of its body is never read).
    let deadline = state.settings.limits.body_read_timeout;
    let bytes = match tokio::time::timeout(deadline, axum::body::to_bytes(body, max_bytes)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => return Err(too_large()),
        Err(_) => {
            metrics::counter!("body_read_timeouts_total").increment(1);
            let mut slow = jsonrpc_error(
                StatusCode::REQUEST_TIMEOUT,
                -32600,
                format!("request body did not arrive within {deadline:?} (BODY_READ_TIMEOUT)"),
            );
            slow.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            return Err(slow);
        }
    };
    let mut listen = false;
    // One parse in the common case; a second only tells "not JSON" from "JSON of another shape".
    let mut id = None;
    let scope = match messages(&bytes) {
        Ok(messages) => {
            count_methods(&messages);
            listen = listens(&messages);
            if let Messages::One(Message { id: Some(given), .. }) = &messages
                && (given.is_string() || given.is_i64())
            {
                id = Some(MessageId(given.clone()));
            }
            required_scope(&messages)
        }
        Err(_) => match serde_json::from_slice::<IgnoredAny>(&bytes) {
            Ok(_) => Some(SCOPE_READ),
            Err(e) => return Err(jsonrpc_error(StatusCode::BAD_REQUEST, -32700, format!("Parse error: {e}"))),
        },
    };
    let json = is_json(&parts.headers).then(|| JsonBody(bytes.clone()));
    let mut request = Request::from_parts(parts, Body::from(bytes));
    if listen {
        request.extensions_mut().insert(ListenRequest);
    }
    if let Some(id) = id {
        request.extensions_mut().insert(id);
    }
    if let Some(json) = json {
        request.extensions_mut().insert(json);
    }
    match check_scope(state, &request, RequiredScope(scope)) {
        Some(denied) => Err(denied),
        None => Ok(request),
    }
}

/// rmcp's own test of the content type: only with it does a 415 mean "could not read the body".
fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let value = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    value.split(';').next().unwrap_or_default().trim().eq_ignore_ascii_case("application/json")
}

/// rmcp answers a JSON body it cannot read as a message with 415 and a text body: a client gets
/// 400 with the JSON-RPC error instead (-32700 or -32600, with the request's id when usable).
pub fn refused_message(response: Response, body: Option<JsonBody>) -> Response {
    match body {
        Some(JsonBody(bytes)) if response.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            (StatusCode::BAD_REQUEST, Json(jsonrpc::reject(&bytes).to_json())).into_response()
        }
        _ => response,
    }
}
