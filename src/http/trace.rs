//! One span per HTTP request, continuing the caller's W3C trace (`traceparent`), and the trace
//! context handed to the MCP layer through the request's extensions (rmcp runs handlers on
//! other tasks, where the current span would be lost).

use axum::{
    extract::{MatchedPath, Request},
    middleware::Next,
    response::Response,
};
use opentelemetry::global;
use opentelemetry_http::HeaderExtractor;
use tracing::{Instrument, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;

pub async fn trace_requests(mut request: Request, next: Next) -> Response {
    let parent = global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(request.headers())));
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| super::metrics::route_of(request.uri().path()), |p| p.as_str().to_string());
    let span = tracing::info_span!(
        "http.request",
        otel.name = format!("{method} {route}"),
        otel.kind = "server",
        http.request.method = %method,
        http.route = %route,
        url.path = %request.uri().path(),
        http.response.status_code = Empty,
        trace_id = Empty,
        span_id = Empty,
    );
    let _ = span.set_parent(parent);
    crate::telemetry::record_ids(&span);
    request.extensions_mut().insert(span.context());
    let response = next.run(request).instrument(span.clone()).await;
    span.record("http.response.status_code", response.status().as_u16());
    response
}
