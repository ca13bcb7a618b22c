//! Authentication, scopes, rate limits and load shedding in front of `/mcp`, with the RFC 9728
//! protected-resource metadata and the WWW-Authenticate challenges real clients follow.

use axum::{
    Json,
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use super::AppState;
use crate::{
    auth::{AuthError, Principal},
    memory::Tenant,
    ratelimit::Decision,
};

/// Which scope a request needs; the guard computes it from the JSON-RPC body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequiredScope(pub Option<&'static str>);

fn challenge(state: &AppState, params: &str) -> HeaderValue {
    let value = format!("Bearer {params}resource_metadata=\"{}\"", state.auth.resource_metadata_url());
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
}

fn oauth_error(status: StatusCode, www_authenticate: HeaderValue, error: &str, description: &str) -> Response {
    let mut response = (status, Json(json!({ "error": error, "error_description": description }))).into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, www_authenticate);
    response
}

fn reject(state: &AppState, error: AuthError) -> Response {
    metrics::counter!("auth_failures_total", "reason" => error.reason()).increment(1);
    let description = error.to_string().replace('"', "'");
    match error {
        AuthError::Missing => oauth_error(
            StatusCode::UNAUTHORIZED,
            challenge(state, "scope=\"memory:read memory:write\", "),
            "invalid_token",
            &description,
        ),
        AuthError::Malformed | AuthError::TokenInQuery => oauth_error(
            StatusCode::BAD_REQUEST,
            challenge(state, "error=\"invalid_request\", "),
            "invalid_request",
            &description,
        ),
        AuthError::Invalid(_) => oauth_error(
            StatusCode::UNAUTHORIZED,
            challenge(state, &format!("error=\"invalid_token\", error_description=\"{description}\", ")),
            "invalid_token",
            &description,
        ),
        AuthError::Unavailable(detail) => {
            tracing::warn!(detail, "authorization server unavailable");
            let mut response = (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "error": "temporarily_unavailable", "error_description": description })),
            )
                .into_response();
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            response
        }
    }
}

fn query_carries_token(request: &Request) -> bool {
    request.uri().query().is_some_and(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .any(|(k, _)| k.eq_ignore_ascii_case("access_token") || k.eq_ignore_ascii_case("token"))
    })
}

fn bearer(headers: &HeaderMap) -> Result<&str, AuthError> {
    let value = headers.get(header::AUTHORIZATION).ok_or(AuthError::Missing)?;
    let value = value.to_str().map_err(|_| AuthError::Malformed)?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::Malformed)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(' ') {
        return Err(AuthError::Malformed);
    }
    Ok(token)
}

/// Validates the bearer token and attaches the caller's principal and tenant to the request.
pub async fn authenticate(state: &AppState, request: &mut Request) -> Result<(), Response> {
    if query_carries_token(request) {
        return Err(reject(state, AuthError::TokenInQuery));
    }
    if !state.auth.enabled() {
        return Ok(());
    }
    let principal = match bearer(request.headers()) {
        Ok(token) => state.auth.authenticate(token).await,
        Err(e) => Err(e),
    };
    match principal {
        Ok(principal) => {
            request.extensions_mut().insert(principal.tenant.clone());
            request.extensions_mut().insert(principal);
            Ok(())
        }
        Err(error) => Err(reject(state, error)),
    }
}

/// 403 with an `insufficient_scope` challenge when the token lacks the scope the body needs.
pub fn check_scope(state: &AppState, request: &Request, required: RequiredScope) -> Option<Response> {
    let (principal, scope) = (request.extensions().get::<Principal>()?, required.0?);
    if principal.has_scope(scope) {
        return None;
    }
    metrics::counter!("auth_failures_total", "reason" => "insufficient_scope").increment(1);
    Some(oauth_error(
        StatusCode::FORBIDDEN,
        challenge(state, &format!("error=\"insufficient_scope\", scope=\"{scope}\", ")),
        "insufficient_scope",
        &format!("this request needs the {scope} scope"),
    ))
}

pub fn rate_headers(headers: &mut HeaderMap, d: &Decision) {
    let policy = format!("\"tenant\";q={};w=60", d.limit);
    let current = format!("\"tenant\";r={};t={}", d.remaining, d.reset);
    for (name, value) in [("ratelimit-policy", policy), ("ratelimit", current)] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
}

/// Per-tenant limit shared through Redis: the decision (for the response's RateLimit headers)
/// when limits are on; `Err` with the decision when the tenant is over its limit.
pub async fn rate_limit(state: &AppState, tenant: Option<&Tenant>) -> Result<Option<Decision>, Decision> {
    let Some(limiter) = &state.limiter else { return Ok(None) };
    let tenant = tenant.cloned().unwrap_or_default();
    let decision = limiter.check(tenant.as_str()).await;
    if decision.allowed {
        return Ok(Some(decision));
    }
    metrics::counter!("rate_limited_requests_total").increment(1);
    Err(decision)
}

/// 429 with Retry-After and the RateLimit headers; the JSON-RPC error answers the request's id
/// when its body could be read.
pub fn rate_limited(decision: &Decision, id: Option<Value>) -> Response {
    let body = json!({ "jsonrpc": "2.0", "id": id.unwrap_or(Value::Null), "error": {
        "code": -32029,
        "message": format!("rate limit exceeded: retry after {} s", decision.retry_after),
        "data": { "retryAfter": decision.retry_after, "limit": decision.limit, "window": 60 },
    }});
    let mut response = (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
    rate_headers(response.headers_mut(), decision);
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(decision.retry_after));
    response
}

fn unavailable(error: &str, description: &str) -> Response {
    let mut response =
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "error": error, "error_description": description })))
            .into_response();
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// Sheds load instead of queueing without bound: 503 + Retry-After when the replica is full;
/// else a permit, held until the response head. Once draining has stopped the MCP service, a
/// request still arriving on an open keep-alive connection gets 503 and `Connection: close`, so
/// the client retries on another replica.
#[expect(clippy::result_large_err, reason = "the rejection is the response, sent as it is")]
pub fn shed_load(state: &AppState) -> Result<tokio::sync::SemaphorePermit<'_>, Response> {
    if state.shutdown.is_cancelled() {
        let mut response = unavailable("shutting_down", "this replica is shutting down, retry");
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        return Err(response);
    }
    state.permits.try_acquire().map_err(|_| {
        metrics::counter!("load_shed_requests_total", "reason" => "requests").increment(1);
        unavailable("overloaded", "too many concurrent requests, retry shortly")
    })
}

/// RFC 9728 protected resource metadata.
pub async fn metadata(State(state): State<AppState>) -> Json<Value> {
    Json(state.auth.metadata())
}
