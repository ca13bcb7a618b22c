//! What every `/mcp` request passes before the MCP transport, in order: the bearer token, the
//! rate limit, the tenant's share of the concurrency and of the sessions, the body (within its
//! deadline) and its scope, the listen-stream cap, and last the replica's permit. Nothing a
//! client holds while its body trickles in is shared with other tenants. One middleware, not
//! several: each layer of its own cloned its inner service and boxed another future per request.

use axum::{
    extract::{Request, State},
    middleware::Next,
    response::Response,
};

use super::{AppState, auth, guard, limits};
use crate::memory::Tenant;

pub async fn mcp_gate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    if let Err(rejected) = auth::authenticate(&state, &mut request).await {
        return rejected;
    }
    let tenant = request.extensions().get::<Tenant>().cloned().unwrap_or_default();
    // Counted when the request arrives, so a tenant's slow bodies count against its quota too.
    let limit = auth::rate_limit(&state, Some(&tenant)).await;
    // Held through the body read until the response head: one tenant's slow bodies wait in its
    // own share, never in the replica's permits.
    let _share = match limits::tenant_share(&state, &tenant) {
        Ok(share) => share,
        Err(refused) => return refused,
    };
    // A refused request's body is still read (within its deadline, in the tenant's own share) so
    // that the 429 answers the request's id.
    let decision = match limit {
        Ok(decision) => decision,
        Err(limited) => {
            let read = guard::json_body(&state, request).await;
            let id = read.ok().and_then(|r| r.extensions().get::<guard::MessageId>().map(|id| id.0.clone()));
            return auth::rate_limited(&limited, id);
        }
    };
    let session = match limits::session_slot(&state, request.method(), request.headers(), &tenant).await {
        Ok(session) => session,
        Err(refused) => return refused,
    };
    let request = match guard::json_body(&state, request).await {
        Ok(request) => request,
        Err(refused) => return refused,
    };
    let listen = match limits::listen_slot(&state, &request, &tenant) {
        Ok(listen) => listen,
        Err(refused) => return refused,
    };
    // Held until the response head: the drain waits for every permit back.
    let _permit = match auth::shed_load(&state) {
        Ok(permit) => permit,
        Err(shed) => return shed,
    };
    let mut response = next.run(request).await;
    if let Some(decision) = decision {
        auth::rate_headers(response.headers_mut(), &decision);
    }
    if let Some(session) = session {
        limits::keep_session(&state, session, response.headers()).await;
    }
    match listen {
        Some(slot) => limits::hold_while_streaming(response, slot),
        None => response,
    }
}
