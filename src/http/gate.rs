//! What every `/mcp` request passes before the MCP transport, in order: load shedding, the bearer
//! token, the body and its scope, the rate limit. One middleware, not four: each layer of its own
//! cloned its inner service and boxed another future on every request.

use axum::{
    extract::{Request, State},
    middleware::Next,
    response::Response,
};

use super::{AppState, auth, guard};
use crate::memory::Tenant;

pub async fn mcp_gate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    // Held until the response head: the drain waits for every permit back.
    let _permit = match auth::shed_load(&state) {
        Ok(permit) => permit,
        Err(shed) => return shed,
    };
    if let Err(rejected) = auth::authenticate(&state, &mut request).await {
        return rejected;
    }
    let request = match guard::json_body(&state, request).await {
        Ok(request) => request,
        Err(refused) => return refused,
    };
    // The tenant apart: a request (its body) cannot be shared across an await.
    let tenant = request.extensions().get::<Tenant>().cloned();
    let id = request.extensions().get::<guard::MessageId>().map(|id| id.0.clone());
    let decision = match auth::rate_limit(&state, tenant.as_ref(), id).await {
        Ok(decision) => decision,
        Err(limited) => return limited,
    };
    let mut response = next.run(request).await;
    if let Some(decision) = decision {
        auth::rate_headers(response.headers_mut(), &decision);
    }
    response
}
