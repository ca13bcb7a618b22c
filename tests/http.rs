//! The HTTP surface as a plain HTTP client sees it: probes, limits, protocol errors, origins,
//! resources and metrics.

use crate::common;

use common::{Db, ok, spawn_app, spawn_app_with};
use rmcp::model::ReadResourceRequestParams;
use serde_json::{Value, json};

mod connections;

const ACCEPT: &str = "application/json, text/event-stream";

async fn post(app: &common::TestApp, body: impl Into<reqwest::Body>, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(app.url("/mcp"))
        .header("content-type", "application/json")
        .header("accept", ACCEPT)
        .body(body);
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("mcp-protocol-version")) {
        request = request.header("mcp-protocol-version", "2025-11-25");
    }
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    request.send().await.expect("request sent")
}

#[tokio::test]
async fn probes_report_their_checks() {
    let app = spawn_app(Db::Sqlite).await.unwrap();
    let live = reqwest::get(app.url("/health")).await.unwrap();
    assert_eq!(live.status(), 200);
    assert_eq!(live.json::<Value>().await.unwrap()["status"], "ok");
    let ready = reqwest::get(app.url("/health/ready")).await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["database"]["status"], "ok");
    assert_eq!(body["checks"]["schema"]["status"], "ok");
    assert_eq!(body["checks"]["redis"]["status"], "not_configured");
}

#[tokio::test]
async fn oversized_body_is_413_and_writes_nothing() {
    let app = spawn_app(Db::Sqlite).await.unwrap();
    let big = "x".repeat(1_100_000);
    let body = json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": { "name": "create_entities", "arguments": { "entities": [{ "name": "big", "entityType": "t", "observations": [big] }] } } });
    let response = post(&app, body.to_string(), &[]).await;
    assert_eq!(response.status(), 413);
    let c = app.client().await;
    assert_eq!(ok(&c, "read_graph", json!({})).await["entities"], json!([]));
}

#[tokio::test]
async fn malformed_json_is_a_parse_error() {
    let app = spawn_app(Db::Sqlite).await.unwrap();
    let response = post(&app, "{not json", &[]).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert!(status.is_client_error(), "{status}");
    assert_eq!(body["error"]["code"], -32700, "{body}");
}

/// rmcp answers these with 415 and a text body; JSON-RPC wants an error object, with the id when
/// the request's id is usable (a string or an integer).
#[tokio::test]
async fn invalid_messages_get_400_with_the_json_rpc_error() {
    let app = spawn_app(Db::Sqlite).await.unwrap();
    let cases = [
        (r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#, -32600, Value::Null),
        (r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#, -32600, Value::Null),
        (r#"{"jsonrpc":"2.0","id":[1],"method":"ping"}"#, -32600, Value::Null),
        (r#"{"jsonrpc":"1.0","id":4,"method":"ping"}"#, -32600, json!(4)),
        (r#"{"id":"four","method":"ping"}"#, -32600, json!("four")),
        (r#"[{"jsonrpc":"2.0","id":5,"method":"ping"}]"#, -32600, Value::Null),
        (r#""a bare string""#, -32600, Value::Null),
        (r#"{"jsonrpc":"2.0","id":6,"id":7,"method":"ping"}"#, -32600, Value::Null),
        (r#"{"jsonrpc":"2.0","id":8,"method":"ping","params":{"s":"\ud800"}}"#, -32700, Value::Null),
        (r#"{"jsonrpc":"2.0","id":9,"method":"tools/list","params":[]}"#, -32600, json!(9)),
    ];
    for (body, code, id) in cases {
        let response = post(&app, body, &[]).await;
        assert_eq!(response.status(), 400, "{body}");
        assert_eq!(response.headers()["content-type"], "application/json", "{body}");
        let reply: Value = response.json().await.unwrap();
        assert_eq!(
            (reply["jsonrpc"].as_str(), &reply["error"]["code"], &reply["id"]),
            (Some("2.0"), &json!(code), &id)
        );
        assert!(reply["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{reply}");
    }
    // The content type itself is still the 415 HTTP means.
    let wrong_type = reqwest::Client::new()
        .post(app.url("/mcp"))
        .header("content-type", "text/plain")
        .header("accept", ACCEPT)
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_type.status(), 415);
}

/// rmcp passes a tools/call whose params it cannot read on as an unknown method (-32601).
#[tokio::test]
async fn malformed_tools_call_params_are_32602_naming_the_field() {
    let app = spawn_app(Db::Sqlite).await.unwrap();
    for (params, field) in [
        (json!({ "arguments": {} }), "name"),
        (json!({ "name": 5, "arguments": {} }), "name"),
        (json!({ "name": "read_graph", "arguments": [] }), "arguments"),
    ] {
        let body = json!({ "jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": params });
        let reply: Value = post(&app, body.to_string(), &[]).await.json().await.unwrap();
        assert_eq!((&reply["id"], &reply["error"]["code"]), (&json!(3), &json!(-32602)), "{reply}");
        assert_eq!(reply["error"]["data"]["field"], field, "{reply}");
    }
    let unknown = json!({ "jsonrpc": "2.0", "id": 4, "method": "no/such/method" });
    let reply: Value = post(&app, unknown.to_string(), &[]).await.json().await.unwrap();
    assert_eq!(reply["error"]["code"], -32601, "an unknown method is still -32601: {reply}");
}

#[tokio::test]
async fn stateless_post_answers_without_a_session() {
    let app = spawn_app(Db::Sqlite).await.unwrap();
    let body = json!({ "jsonrpc": "2.0", "id": 7, "method": "tools/list" });
    let response = post(&app, body.to_string(), &[]).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("mcp-session-id").is_none(), "no session is created by default");
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["id"], 7);
    assert_eq!(body["result"]["tools"].as_array().unwrap().len(), 9);
}

#[tokio::test]
async fn origins_outside_the_allow_list_are_refused() {
    let app = spawn_app_with(Db::Sqlite, &["--allowed-origins", "https://app.example.com"]).await.unwrap();
    let body = json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/list" }).to_string();
    assert_eq!(post(&app, body.clone(), &[("origin", "https://evil.example.net")]).await.status(), 403);
    assert_eq!(post(&app, body.clone(), &[("origin", "https://app.example.com")]).await.status(), 200);
    assert_eq!(post(&app, body.clone(), &[]).await.status(), 200, "non-browser clients send no Origin");
    assert_eq!(post(&app, body, &[("host", "attacker.example")]).await.status(), 403, "Host allow-list");
}

/// Secure by default: no browser origin may call /mcp until ALLOWED_ORIGINS names it, localhost
/// pages included (any local page could otherwise read and write the graph).
#[tokio::test]
async fn no_browser_origin_is_allowed_by_default() {
    let app = spawn_app(Db::Sqlite).await.unwrap();
    let body = json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/list" }).to_string();
    for origin in ["http://localhost:6274", "http://127.0.0.1:3000", "https://app.example.com"] {
        assert_eq!(post(&app, body.clone(), &[("origin", origin)]).await.status(), 403, "{origin}");
    }
    assert_eq!(post(&app, body.clone(), &[]).await.status(), 200, "non-browser clients send no Origin");
    // A page of the server's own origin is not cross-site (the MCP spec has a localhost server
    // accept it), unless the Host it names is not an allowed one.
    let own = format!("http://{}", app.addr);
    assert_eq!(post(&app, body.clone(), &[("origin", &own)]).await.status(), 200, "same origin");
    let rebound = [("host", "evil.example:8000"), ("origin", "http://evil.example:8000")];
    assert_eq!(post(&app, body, &rebound).await.status(), 403, "DNS rebinding");
}

#[tokio::test]
async fn resources_expose_the_graph_and_each_entity() {
    let app = spawn_app(Db::Sqlite).await.unwrap();
    let c = app.client().await;
    ok(
        &c,
        "create_entities",
        json!({ "entities": [
            { "name": "Ada Lovelace", "entityType": "person", "observations": ["wrote the first program"] },
            { "name": "Engine", "entityType": "machine", "observations": [] },
        ]}),
    )
    .await;
    ok(
        &c,
        "create_relations",
        json!({ "relations": [{ "from": "Ada Lovelace", "to": "Engine", "relationType": "programmed" }] }),
    )
    .await;

    let listed = c.list_all_resources().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].uri, "memory://knowledge-graph");
    let templates = c.list_all_resource_templates().await.unwrap();
    assert_eq!(templates[0].uri_template, "memory://entities/{name}{?asOf,include}");

    let read = |uri: &str| c.read_resource(ReadResourceRequestParams::new(uri));
    let graph = read("memory://knowledge-graph").await.unwrap();
    let text = serde_json::to_value(&graph.contents[0]).unwrap()["text"].as_str().unwrap().to_string();
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["entities"].as_array().unwrap().len(), 2);

    let one = read("memory://entities/Ada%20Lovelace").await.unwrap();
    let body: Value =
        serde_json::from_str(serde_json::to_value(&one.contents[0]).unwrap()["text"].as_str().unwrap()).unwrap();
    assert_eq!(body["entities"][0]["name"], "Ada Lovelace");
    assert_eq!(body["relations"][0]["relationType"], "programmed");

    match read("memory://entities/Nobody").await {
        Err(rmcp::ServiceError::McpError(e)) => assert_eq!(e.code.0, -32002),
        other => panic!("expected resource-not-found, got {other:?}"),
    }
}

#[tokio::test]
async fn metrics_count_requests_and_tool_calls() {
    let app = spawn_app(Db::Sqlite).await.unwrap();
    let c = app.client().await;
    ok(&c, "read_graph", json!({})).await;
    let _ = common::call(&c, "nope", json!({})).await;
    let body = reqwest::get(format!("http://{}/metrics", app.metrics_addr)).await.unwrap().text().await.unwrap();
    let value = |needle: &str| -> f64 {
        body.lines()
            .find(|l| l.starts_with(needle))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no series {needle} in:\n{body}"))
    };
    assert!(value("mcp_tool_calls_total{tool=\"read_graph\",outcome=\"ok\"}") >= 1.0);
    assert!(value("mcp_tool_calls_total{tool=\"unknown\",outcome=\"invalid_params\"}") >= 1.0);
    assert!(value("http_requests_total{method=\"POST\",route=\"/mcp\",status=\"200\"}") >= 1.0);
    assert!(body.contains("mcp_tool_call_duration_seconds_bucket{tool=\"read_graph\""));
    assert_eq!(value("mcp_server_build_info{"), 1.0);
    assert!(value("mcp_requests_total{method=\"tools/call\"}") >= 2.0);
    assert!(body.contains("db_operation_duration_seconds_bucket{operation=\"read_graph\""));
    assert!(body.contains("db_pool_connections{state=\"idle\"}"));
}

/// Every metric the alert rules and the dashboard use (deploy/monitoring/metrics.txt, generated
/// by nix/monitoring.nix) is on /metrics once the server has served a little traffic.
#[tokio::test]
async fn metrics_the_alerts_and_dashboard_use_are_exposed() {
    let app = spawn_app(Db::Sqlite).await.unwrap();
    let c = app.client().await;
    ok(&c, "create_entities", json!({ "entities": [{ "name": "a", "entityType": "t", "observations": [] }] })).await;
    ok(&c, "search_nodes", json!({ "query": "a" })).await;
    reqwest::get(app.url("/health/ready")).await.unwrap();
    let body = reqwest::get(format!("http://{}/metrics", app.metrics_addr)).await.unwrap().text().await.unwrap();
    let exposed = |name: &str| {
        body.lines().any(|l| {
            let series = l.split([' ', '{']).next().unwrap_or("");
            series == name || series == format!("{name}_bucket")
        })
    };
    let wanted = include_str!("../deploy/monitoring/metrics.txt");
    let missing: Vec<&str> = wanted.lines().filter(|name| !exposed(name)).collect();
    assert!(wanted.lines().count() > 10, "the metric list is read");
    assert!(missing.is_empty(), "used by the alerts or dashboard, absent from /metrics: {missing:?}\n{body}");
}

#[tokio::test]
async fn both_protocol_generations_are_served_statelessly() {
    let app = spawn_app(Db::Sqlite).await.unwrap();
    // 2025-11-25: initialize, and no session id is handed out.
    let init = json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": { "name": "t", "version": "0" } } });
    let response = post(&app, init.to_string(), &[]).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("mcp-session-id").is_none(), "no session");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["result"]["protocolVersion"], "2025-11-25");
    assert_eq!(body["result"]["serverInfo"]["name"], "mcp-server");

    // 2026-07-28: no handshake; discovery and calls carry their version per request.
    let meta = json!({ "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {} });
    let v2026 = [("mcp-protocol-version", "2026-07-28")];
    let discover = json!({ "jsonrpc": "2.0", "id": 2, "method": "server/discover", "params": { "_meta": meta } });
    let response = post(&app, discover.to_string(), &[v2026[0], ("mcp-method", "server/discover")]).await;
    let body: Value = response.json().await.unwrap();
    let versions = body["result"]["supportedVersions"].to_string();
    assert!(versions.contains("2026-07-28") && versions.contains("2025-11-25"), "{body}");
    let call = json!({ "jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": { "name": "read_graph", "arguments": {}, "_meta": meta } });
    let response =
        post(&app, call.to_string(), &[v2026[0], ("mcp-method", "tools/call"), ("mcp-name", "read_graph")]).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["result"]["resultType"], "complete", "{body}");
    assert_eq!(body["result"]["structuredContent"], json!({ "entities": [], "relations": [] }));
}
