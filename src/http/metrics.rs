//! Prometheus metrics: one process-wide recorder, HTTP request metrics, a separate listener.

use std::{
    sync::OnceLock,
    time::{Duration, Instant},
};

use axum::{
    extract::{MatchedPath, Request},
    http::{Method, StatusCode},
    middleware::Next,
    response::Response,
};
use metrics::SharedString;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

const LATENCY_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// How often recorded histogram samples are folded into their buckets.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Installs the recorder once per process (tests start many servers in one process).
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .expect("bucket list is not empty")
                .install_recorder()
                .expect("no other metrics recorder is installed");
            // The recorder keeps every histogram sample until upkeep folds it into the buckets; a
            // scrape does that too, but a replica nobody scrapes would grow without bound. A
            // thread, not a task: tests run many runtimes.
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(UPKEEP_INTERVAL);
                        upkeep.run_upkeep();
                    }
                })
                .expect("spawning the metrics upkeep thread");
            metrics::describe_counter!("http_requests_total", "HTTP requests by route, method and status");
            metrics::describe_histogram!("http_request_duration_seconds", "HTTP request latency");
            metrics::describe_counter!("mcp_tool_calls_total", "MCP tool calls by tool and outcome");
            metrics::describe_histogram!("mcp_tool_call_duration_seconds", "MCP tool call latency by tool");
            metrics::describe_gauge!("db_pool_connections", "Database pool connections by state");
            metrics::describe_counter!("graph_cache_reads_total", "Reads by how the graph cache served them");
            metrics::describe_counter!("db_create_calls_total", "PostgreSQL create_entities calls");
            metrics::describe_counter!("db_create_statements_total", "PostgreSQL statements that made those calls");
            metrics::describe_counter!(
                "db_version_queries_total",
                "PostgreSQL graph-version queries (reads of a tenant that arrive together share one)"
            );
            metrics::describe_counter!("db_storage_full_total", "Writes the database refused for lack of space");
            metrics::describe_gauge!("db_storage_full", "1 while writes fail for lack of space, else 0");
            metrics::describe_counter!(
                "db_heartbeat_failures_total",
                "PostgreSQL replica heartbeats (mcp_replicas) that failed; a stale one lets a breaking migration through"
            );
            metrics::describe_gauge!("graph_cache_entities", "Entities the graph cache holds, all tenants");
            metrics::describe_gauge!(
                "graph_cache_bytes",
                "Memory the graph cache holds (estimated), all tenants; at most GRAPH_CACHE_BYTES"
            );
            metrics::describe_counter!(
                "graph_cache_replays_skipped_total",
                "PostgreSQL writes not replayed: the copy was at another version than the write started from"
            );
            metrics::describe_gauge!("mcp_sessions_active", "MCP sessions held by this replica");
            metrics::describe_gauge!("mcp_sse_streams", "Open SSE streams by kind (request, standalone, resumed)");
            metrics::describe_gauge!("mcp_subscriptions_active", "Resource subscribers on this replica");
            metrics::describe_counter!("mcp_resource_updates_total", "Resource update notifications by outcome");
            metrics::describe_gauge!("mcp_server_start_time_seconds", "When this process started, Unix time");
            let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            metrics::gauge!("mcp_server_start_time_seconds").set(started.as_secs_f64());
            zero_series();
            metrics::gauge!("mcp_server_build_info", "version" => env!("CARGO_PKG_VERSION"), "git_sha" => option_env!("GIT_SHA").unwrap_or("unknown")).set(1.0);
            handle
        })
        .clone()
}

/// The alert rules and dashboard (nix/monitoring.nix) read these before anything happened: a
/// series at 0 is a fact ("no 429 yet"), an absent one reads as "no data" and hides a broken
/// scrape. Label values are the fixed sets their modules use.
fn zero_series() {
    for name in [
        "rate_limited_requests_total",
        "rate_limit_fallback_total",
        "body_read_timeouts_total",
        "db_storage_full_total",
        "db_heartbeat_failures_total",
    ] {
        metrics::counter!(name).increment(0);
    }
    for limit in ["requests", "sessions", "listen_streams"] {
        metrics::counter!("load_shed_requests_total", "reason" => limit).increment(0);
        metrics::counter!("tenant_limited_requests_total", "limit" => limit).increment(0);
    }
    metrics::gauge!("rate_limit_degraded").increment(0.0);
    metrics::gauge!("db_storage_full").increment(0.0);
    for reason in ["missing", "malformed", "query_token", "invalid", "unavailable", "insufficient_scope"] {
        metrics::counter!("auth_failures_total", "reason" => reason).increment(0);
    }
    for reason in ["unread", "missed_change"] {
        metrics::counter!("graph_cache_drops_total", "reason" => reason).increment(0);
    }
    for kind in ["request", "standalone", "resumed"] {
        metrics::gauge!("mcp_sse_streams", "kind" => kind).increment(0.0);
    }
}

/// Counts and times every request; the route label is the matched route, never the raw path.
/// Labels are static strings where they can be: a label that is a `String` is one more
/// allocation, and this runs on every request.
pub async fn track_requests(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = route_label(&request);
    let response = next.run(request).await;
    let status = response.status();
    let status =
        status_label(status).map_or_else(|| SharedString::from(status.as_u16().to_string()), SharedString::from);
    metrics::counter!("http_requests_total", "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// The standard methods by name; any other is "other" (a label's values must stay few).
pub(super) fn method_label(method: &Method) -> &'static str {
    const STANDARD: [Method; 9] = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
        Method::CONNECT,
        Method::PATCH,
        Method::TRACE,
    ];
    const NAMES: [&str; 9] = ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "CONNECT", "PATCH", "TRACE"];
    STANDARD.iter().position(|m| m == method).map_or("other", |i| NAMES[i])
}

/// The codes this server answers with, as static labels (`StatusCode::as_str` borrows the code).
fn status_label(status: StatusCode) -> Option<&'static str> {
    Some(match status.as_u16() {
        200 => "200",
        202 => "202",
        204 => "204",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        406 => "406",
        413 => "413",
        415 => "415",
        429 => "429",
        500 => "500",
        503 => "503",
        504 => "504",
        _ => return None,
    })
}

/// The matched route; nested services (`/mcp`) have no MatchedPath: keep the label set bounded.
pub(super) fn route_label(request: &Request) -> SharedString {
    match request.extensions().get::<MatchedPath>() {
        Some(path) => SharedString::from(path.as_str().to_owned()),
        None => SharedString::from(route_of(request.uri().path())),
    }
}

fn route_of(path: &str) -> &'static str {
    match path {
        p if p == "/mcp" || p.starts_with("/mcp/") => "/mcp",
        _ => "unmatched",
    }
}

/// The body of `GET /metrics`, with pool gauges refreshed at scrape time.
pub fn render(state: &super::AppState) -> String {
    let (size, idle) = state.memory.pool_stats();
    metrics::gauge!("db_pool_connections", "state" => "idle").set(idle as f64);
    metrics::gauge!("db_pool_connections", "state" => "in_use").set(size.saturating_sub(idle as u32) as f64);
    if let Some(sessions) = state.sessions.local_sessions() {
        metrics::gauge!("mcp_sessions_active").set(sessions as f64);
    }
    handle().render()
}

#[cfg(test)]
mod tests {
    fn thread_names() -> Vec<String> {
        std::fs::read_dir("/proc/self/task")
            .expect("Linux /proc")
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
            .map(|name| name.trim().to_string())
            .collect()
    }

    #[test]
    fn installing_the_recorder_starts_its_upkeep() {
        super::handle();
        // The new thread names itself once it first runs, which on a busy machine can be later.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut threads = thread_names();
        while !threads.iter().any(|name| name == "metrics-upkeep") && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
            threads = thread_names();
        }
        assert!(threads.iter().any(|name| name == "metrics-upkeep"), "threads: {threads:?}");
    }
}
