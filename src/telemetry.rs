//! Logs and traces. Logs: JSON or pretty lines on stderr (stdout belongs to the stdio
//! transport); inside a request every line carries its trace_id and span_id. Traces: spans
//! (HTTP request → MCP method → tool → database) exported over OTLP/HTTP when an endpoint is set,
//! sampled as OTEL_TRACES_SAMPLER says, W3C trace context propagated. User data (tool arguments
//! and results, which rmcp logs at debug) stays out of the logs unless LOG_USER_DATA says so.

use opentelemetry::{
    global,
    trace::{TraceContextExt, TracerProvider as _},
};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::{LogFormat, Settings};

/// Flushes and stops the trace exporter when dropped... explicitly, at shutdown.
#[derive(Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    pub fn shutdown(&self) {
        if let Some(provider) = &self.provider {
            let _ = provider.force_flush();
            let _ = provider.shutdown();
        }
    }
}

/// OTEL_EXPORTER_OTLP_ENDPOINT, else Jaeger's OTLP/HTTP receiver from JAEGER_HOST/JAEGER_PORT.
fn traces_endpoint(settings: &Settings) -> Option<String> {
    if let Some(endpoint) = settings.otlp_endpoint.as_deref().filter(|e| !e.is_empty()) {
        return Some(format!("{}/v1/traces", endpoint.trim_end_matches('/')));
    }
    let host = settings.jaeger_host.as_deref().filter(|h| !h.is_empty())?;
    // The guide's 6831 is the retired Jaeger agent (UDP/Thrift); Jaeger takes OTLP on 4318.
    let port = match settings.jaeger_port {
        6831 | 6832 | 14268 => 4318,
        port => port,
    };
    Some(format!("http://{host}:{port}/v1/traces"))
}

fn tracer_provider(settings: &Settings) -> Option<SdkTracerProvider> {
    let endpoint = traces_endpoint(settings)?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpJson)
        .with_endpoint(endpoint)
        .build()
        .map_err(|e| eprintln!("mcp-server: traces disabled, the OTLP exporter failed to start: {e}"))
        .ok()?;
    let resource = Resource::builder()
        .with_service_name(settings.otel_service_name.clone())
        .with_attribute(opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    Some(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build())
}

/// rmcp's events that carry a whole message or its parts: a request with its arguments, a
/// result, a notification, an error reply (its text quotes the bad input), and at trace level
/// every message sent. Told by their fields, without formatting them.
fn carries_user_data(meta: &tracing::Metadata<'_>) -> bool {
    if !meta.is_event() || !meta.target().starts_with("rmcp") {
        return false;
    }
    let has = |name: &str| meta.fields().field(name).is_some();
    *meta.level() == tracing::Level::TRACE
        || has("request")
        || has("result")
        || has("notification")
        || (has("id") && has("error"))
}

pub fn init(settings: &Settings) -> Telemetry {
    global::set_text_map_propagator(TraceContextPropagator::new());
    let provider = tracer_provider(settings);
    let otel = provider.as_ref().map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("mcp-server")));
    let filter = EnvFilter::try_new(&settings.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    let user_data = settings.log_user_data;
    let private = tracing_subscriber::filter::filter_fn(move |meta| user_data || !carries_user_data(meta));
    let registry = tracing_subscriber::registry().with(filter).with(private).with(otel);
    let result = match settings.log_format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(true)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Pretty => registry.with(fmt::layer().with_writer(std::io::stderr)).try_init(),
    };
    // Already initialised (tests start several servers in one process): keep the first.
    let _ = result;
    Telemetry { provider }
}

/// Records the OpenTelemetry trace and span ids as fields, so that log lines carry them; false
/// when the span has none (no trace exporter).
pub fn record_ids(span: &tracing::Span) -> bool {
    let context = span.context();
    let ids = context.span().span_context().clone();
    if ids.is_valid() {
        span.record("trace_id", ids.trace_id().to_string());
        span.record("span_id", ids.span_id().to_string());
    }
    ids.is_valid()
}
