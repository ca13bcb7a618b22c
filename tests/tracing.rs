//! Traces and logs as an operator sees them: spans received by an in-test OTLP/HTTP receiver,
//! linked HTTP request → tool → database and continuing the caller's `traceparent` (header or
//! MCP `_meta`), and JSON log lines that carry the trace id.

use crate::common;

use std::{
    io::{BufRead, BufReader},
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{Json, Router, routing::post};
use common::{free_port, serve_process};
use serde_json::{Value, json};

/// Every span the receiver got: (name, traceId, spanId, parentSpanId).
fn spans(batches: &[Value]) -> Vec<(String, String, String, String)> {
    let mut out = Vec::new();
    for batch in batches {
        for rs in batch["resourceSpans"].as_array().into_iter().flatten() {
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                for s in ss["spans"].as_array().into_iter().flatten() {
                    let field = |k: &str| s[k].as_str().unwrap_or_default().to_lowercase();
                    out.push((field("name"), field("traceId"), field("spanId"), field("parentSpanId")));
                }
            }
        }
    }
    out
}

/// The `http.response.status_code` attribute of the span with this id, when it is an int (which
/// OTLP/JSON writes as a string).
fn http_status(batches: &[Value], span_id: &str) -> Option<String> {
    let spans = batches.iter().flat_map(|b| b["resourceSpans"].as_array().into_iter().flatten());
    let spans = spans.flat_map(|rs| rs["scopeSpans"].as_array().into_iter().flatten());
    let span = spans
        .flat_map(|ss| ss["spans"].as_array().into_iter().flatten())
        .find(|s| s["spanId"].as_str().is_some_and(|id| id.eq_ignore_ascii_case(span_id)))?;
    let attribute = span["attributes"].as_array()?.iter().find(|a| a["key"] == "http.response.status_code")?;
    attribute["value"]["intValue"].as_str().map(str::to_string)
}

#[tokio::test(flavor = "multi_thread")]
async fn spans_and_logs_follow_the_callers_trace() {
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = received.clone();
    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp = format!("http://{}", receiver.local_addr().unwrap());
    let router = Router::new().route(
        "/v1/traces",
        post(move |Json(body): Json<Value>| {
            sink.lock().unwrap().push(body);
            std::future::ready(Json(json!({})))
        }),
    );
    tokio::spawn(async move { axum::serve(receiver, router).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = serve_process(
        port,
        &[
            ("DATABASE_URL", format!("sqlite://{}/t.db", dir.path().display())),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp),
            ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
            ("LOG_FORMAT", "json".into()),
            ("LOG_LEVEL", "warn,mcp_server=debug".into()),
            ("SHUTDOWN_DELAY", "0s".into()),
        ],
    )
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let stderr = server.stderr.take().unwrap();
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = lines.clone();
    std::thread::spawn(move || {
        BufReader::new(stderr).lines().map_while(Result::ok).for_each(|l| log.lock().unwrap().push(l))
    });

    let url = format!("http://127.0.0.1:{port}/mcp");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.get(format!("http://127.0.0.1:{port}/health")).send().await.is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (trace, parent) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let call = |args: Value, meta: Option<Value>| {
        let mut params = json!({ "name": "create_entities", "arguments": args });
        if let Some(meta) = meta {
            params["_meta"] = meta;
        }
        json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params })
    };
    let response = client
        .post(&url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("traceparent", format!("00-{trace}-{parent}-01"))
        .json(&call(json!({ "entities": [{ "name": "traced", "entityType": "t", "observations": [] }] }), None))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // The same call with the trace context in MCP `_meta` instead of the header.
    let meta_trace = "0af7651916cd43dd8448eb211c80319c";
    let response = client
        .post(&url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .json(&call(
            json!({ "entities": [] }),
            Some(json!({ "traceparent": format!("00-{meta_trace}-b7ad6b7169203331-01") })),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let deadline = Instant::now() + Duration::from_secs(10);
    let found = loop {
        let all = spans(&received.lock().unwrap());
        let http = all.iter().find(|s| s.0 == "post /mcp" && s.1 == trace).cloned();
        let tool = all.iter().find(|s| s.0 == "tools/call create_entities" && s.1 == trace).cloned();
        let db = all.iter().find(|s| s.0 == "create_entities" && s.1 == trace).cloned();
        let meta = all.iter().find(|s| s.0 == "tools/call create_entities" && s.1 == meta_trace).cloned();
        if let (Some(h), Some(t), Some(d), Some(m)) = (http, tool, db, meta) {
            break (h, t, d, m);
        }
        assert!(Instant::now() < deadline, "spans not received: {all:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (http, tool, db, meta) = found;
    assert_eq!(http.3, parent, "the HTTP span continues the caller's span");
    assert_eq!(tool.3, http.2, "tool span under the HTTP span");
    assert_eq!(db.3, tool.2, "database span under the tool span");
    assert_eq!(meta.3, "b7ad6b7169203331", "_meta traceparent is honoured");
    assert_eq!(
        http_status(&received.lock().unwrap(), &http.2).as_deref(),
        Some("200"),
        "the HTTP span records its response's status"
    );

    let line = lines
        .lock()
        .unwrap()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["message"] == "tool call")
        .expect("a JSON log line for the tool call");
    assert_eq!(line["span"]["trace_id"], trace, "{line}");
    assert_eq!(line["span"]["span_id"], tool.2, "{line}");
    let _ = server.kill();
    let _ = server.wait();
}

/// `serve` with `env` on a fresh database: posts each body to /mcp, then returns its log lines.
async fn logs_of(env: &[(&str, &str)], bodies: &[Value]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut vars = vec![("DATABASE_URL", format!("sqlite://{}/t.db", dir.path().display()))];
    vars.extend(env.iter().map(|(k, v)| (*k, v.to_string())));
    let mut server = serve_process(port, &vars).stderr(Stdio::piped()).spawn().unwrap();
    let stderr = server.stderr.take().unwrap();
    let reader = std::thread::spawn(move || BufReader::new(stderr).lines().map_while(Result::ok).collect::<Vec<_>>());
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.get(format!("http://127.0.0.1:{port}/health")).send().await.is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for body in bodies {
        let body = match body {
            Value::String(raw) => raw.clone(),
            message => message.to_string(),
        };
        let response = client
            .post(format!("http://127.0.0.1:{port}/mcp"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(response.status().as_u16() < 500, "{}", response.status());
    }
    let _ = server.kill();
    let _ = server.wait();
    reader.join().unwrap()
}

/// Tool arguments and results are user data: not in the logs at any level unless LOG_USER_DATA.
/// And invalid requests (a fuzzer's stream of them) log no warning each: they are counted.
#[tokio::test(flavor = "multi_thread")]
async fn user_data_and_invalid_requests_stay_out_of_the_logs() {
    let call = |args: Value| json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": { "name": "create_entities", "arguments": args } });
    let mut bodies = vec![
        call(json!({ "entities": [{ "name": "n", "entityType": "t", "observations": ["private-observation-1"] }] })),
        call(json!({ "entities": "private-argument-2" })),
    ];
    bodies.extend((0..20).map(|i| json!({ "jsonrpc": "1.0", "id": i, "method": "private-method-3" })));
    bodies
        .extend((0..20).map(|_| json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": { "name": 5 } })));
    bodies.push(Value::String("not json, private-body-4".into()));
    let private = ["private-observation-1", "private-argument-2", "private-method-3", "private-body-4"];
    for level in ["trace", "debug", "info,rmcp=warn"] {
        let lines = logs_of(&[("LOG_LEVEL", level)], &bodies).await;
        let leaked: Vec<&String> = lines.iter().filter(|l| private.iter().any(|p| l.contains(p))).collect();
        assert!(leaked.is_empty(), "LOG_LEVEL={level} logged user data: {leaked:#?}");
        let warnings: Vec<&String> =
            lines.iter().filter(|l| l.contains("\"WARN\"") || l.contains("\"ERROR\"")).collect();
        assert!(warnings.is_empty(), "LOG_LEVEL={level}: invalid requests logged warnings: {warnings:#?}");
    }
    // The filter is what keeps them out: asked for, they are there.
    let lines = logs_of(&[("LOG_LEVEL", "debug"), ("LOG_USER_DATA", "true")], &bodies).await;
    assert!(lines.iter().any(|l| l.contains("private-observation-1")), "LOG_USER_DATA=true logs the arguments");
}
