//! The shares of a replica the gate takes for a request: its tenant's part of the concurrency,
//! a session slot when it opens a session, a listen-stream slot for as long as its stream lives.
//! Refusals are 503 + Retry-After when the replica is full, 429 when the tenant holds its share.

use axum::{
    Json,
    body::Body,
    extract::Request,
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use futures::StreamExt;
use rmcp::transport::streamable_http_server::SessionId;
use serde_json::json;

use super::{AppState, guard::ListenRequest};
use crate::{
    memory::Tenant,
    quota::{Quota, Refusal, Slot},
};

const SESSION_HEADER: &str = "mcp-session-id";

/// `limit` is a fixed label value (`requests`, `sessions`, `listen_streams`).
fn refused(quota: &Quota, refusal: Refusal, limit: &'static str) -> Response {
    let (status, error, description) = match refusal {
        Refusal::Replica => {
            metrics::counter!("load_shed_requests_total", "reason" => limit).increment(1);
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                format!("this replica holds its most {} ({}), retry shortly", quota.what, quota.max),
            )
        }
        Refusal::Tenant => {
            metrics::counter!("tenant_limited_requests_total", "limit" => limit).increment(1);
            let share = quota.per_tenant.unwrap_or(quota.max);
            (
                StatusCode::TOO_MANY_REQUESTS,
                "tenant_limit",
                format!("this tenant holds its most {} on this replica ({share}), retry shortly", quota.what),
            )
        }
    };
    let mut response = (status, Json(json!({ "error": error, "error_description": description }))).into_response();
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// The tenant's share of the requests in flight, held until the response head.
#[expect(clippy::result_large_err, reason = "the rejection is the response, sent as it is")]
pub fn tenant_share(state: &AppState, tenant: &Tenant) -> Result<Option<Slot>, Response> {
    let Some(quota) = &state.tenant_requests else { return Ok(None) };
    quota.try_acquire(tenant.as_str()).map(Some).map_err(|r| refused(quota, r, "requests"))
}

/// A request that may leave a session on this replica: a POST or GET without a session id, or
/// with one this replica does not hold (rmcp restores it from Redis).
pub struct SessionOpening {
    slot: Slot,
    requested: Option<SessionId>,
}

pub async fn session_slot(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
    tenant: &Tenant,
) -> Result<Option<SessionOpening>, Response> {
    if !state.settings.sessions || !matches!(*method, Method::POST | Method::GET) {
        return Ok(None);
    }
    let requested: Option<SessionId> =
        headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok()).map(|id| id.to_string().into());
    if let Some(id) = &requested
        && rmcp::transport::streamable_http_server::SessionManager::has_session(&*state.sessions, id)
            .await
            .unwrap_or(false)
    {
        return Ok(None);
    }
    let quota = &state.sessions.quota;
    match quota.try_acquire(tenant.as_str()) {
        Ok(slot) => Ok(Some(SessionOpening { slot, requested })),
        Err(refusal) => Err(refused(quota, refusal, "sessions")),
    }
}

/// Gives the session the request created or restored its slot; otherwise the slot goes back.
pub async fn keep_session(state: &AppState, opening: SessionOpening, headers: &HeaderMap) {
    let created = headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok()).map(|id| id.to_string().into());
    if let Some(id) = created.or(opening.requested) {
        state.sessions.adopt(&id, opening.slot).await;
    }
}

/// A listen stream's slot, taken once the body says the request is `subscriptions/listen`.
#[expect(clippy::result_large_err, reason = "the rejection is the response, sent as it is")]
pub fn listen_slot(state: &AppState, request: &Request, tenant: &Tenant) -> Result<Option<Slot>, Response> {
    if request.extensions().get::<ListenRequest>().is_none() {
        return Ok(None);
    }
    let quota = &state.listen_streams;
    quota.try_acquire(tenant.as_str()).map(Some).map_err(|r| refused(quota, r, "listen_streams"))
}

/// The response body keeps the slot: it is given back when the stream ends or its client goes.
pub fn hold_while_streaming(response: Response, slot: Slot) -> Response {
    response.map(|body| {
        Body::from_stream(body.into_data_stream().map(move |chunk| {
            let _held = &slot;
            chunk
        }))
    })
}
