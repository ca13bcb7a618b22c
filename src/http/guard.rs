//! Checks a POST body before the MCP transport sees it: over MAX_BODY_BYTES is 413, and a body
//! that is not JSON gets the JSON-RPC parse error (-32700) clients expect, not a bare 415.

use axum::{
    Json,
    body::Body,
    extract::{Request, State},
    http::{Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use serde::de::IgnoredAny;
use serde_json::json;

fn jsonrpc_error(status: StatusCode, code: i32, message: String) -> Response {
    (
        status,
        Json(
            json!({ "jsonrpc": "2.0", "id": null, "error": { "code": code, "message": message } }),
        ),
    )
        .into_response()
}

pub async fn json_body(State(max_bytes): State<usize>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, max_bytes).await else {
        return jsonrpc_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            -32600,
            format!("request body is larger than {max_bytes} bytes (MAX_BODY_BYTES)"),
        );
    };
    if let Err(e) = serde_json::from_slice::<IgnoredAny>(&bytes) {
        return jsonrpc_error(StatusCode::BAD_REQUEST, -32700, format!("Parse error: {e}"));
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}
