//! One span per HTTP request, continuing the caller's W3C trace (`traceparent`), and the trace
//! context handed to the MCP layer through the request's extensions (rmcp runs handlers on
//! other tasks, where the current span would be lost).

use axum::{extract::Request, middleware::Next, response::Response};
use opentelemetry::global;
use opentelemetry_http::HeaderExtractor;
use tracing::{Instrument, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;

pub async fn trace_requests(mut request: Request, next: Next) -> Response {
    let parent = global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(request.headers())));
    // OpenTelemetry's name for a method outside the standard ones.
    let method = match super::metrics::method_label(request.method()) {
        "other" => "_OTHER",
        standard => standard,
    };
    let route = super::metrics::route_label(&request);
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
    let exported = crate::telemetry::record_ids(&span);
    request.extensions_mut().insert(span.context());
    let response = next.run(request).instrument(span.clone()).await;
    // Only a trace shows it, and recording a field makes the JSON log layer parse and print the
    // span's fields again.
    if exported {
        // An int, as the semantic conventions have it (a u64 is exported as a string).
        span.record("http.response.status_code", i64::from(response.status().as_u16()));
    }
    response
}
