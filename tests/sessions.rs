//! Sessions shared through Redis: a 2025-11-25 session created on one replica continues on
//! another, survives its replica, and is gone everywhere once deleted.

use crate::common;

use common::{Db, TestApp, spawn_app_with};
use serde_json::{Value, json};

async fn replica(db_url: &str, redis: &str) -> TestApp {
    // All replicas share one database (the flag overrides the fresh one spawn_app makes).
    spawn_app_with(Db::Sqlite, &["--sessions", "true", "--redis-url", redis, "--database-url", db_url]).await.unwrap()
}

/// POSTs a JSON-RPC message, in a session when one is given.
async fn post(app: &TestApp, session: Option<&str>, message: Value) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(app.url("/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .json(&message);
    if let Some(id) = session {
        request = request.header("mcp-session-id", id);
    }
    request.send().await.unwrap()
}

/// POSTs a JSON-RPC message in a session; returns the status, session header and the JSON
/// message of the (SSE or JSON) body.
async fn send(app: &TestApp, session: Option<&str>, message: Value) -> (u16, Option<String>, Option<Value>) {
    let response = post(app, session, message).await;
    let status = response.status().as_u16();
    let session = response.headers().get("mcp-session-id").map(|v| v.to_str().unwrap().to_string());
    let body = response.text().await.unwrap();
    let json = body
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .chain(std::iter::once(body.trim()))
        .find_map(|d| serde_json::from_str::<Value>(d).ok().filter(|v| v.get("jsonrpc").is_some()));
    (status, session, json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_moves_between_replicas() {
    let redis = std::env::var("MCP_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let shared = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}/shared.db", shared.path().display());
    let a = replica(&db_url, &redis).await;
    let b = replica(&db_url, &redis).await;
    let c = replica(&db_url, &redis).await;

    let init = json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": { "name": "roaming", "version": "0" } } });
    let (status, session, _) = send(&a, None, init).await;
    assert_eq!(status, 200);
    let session = session.expect("a session id in session mode");
    let (status, _, _) =
        send(&a, Some(&session), json!({ "jsonrpc": "2.0", "method": "notifications/initialized" })).await;
    assert_eq!(status, 202);

    // The same session on another replica: restored from Redis, no re-initialize.
    let create = json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": { "name": "create_entities",
        "arguments": { "entities": [{ "name": "roamer", "entityType": "t", "observations": ["seen on b"] }] } } });
    let (status, _, reply) = send(&b, Some(&session), create).await;
    assert_eq!(status, 200);
    assert_eq!(reply.unwrap()["result"]["structuredContent"]["entities"][0]["name"], "roamer");

    // The replica that created it dies; the session goes on elsewhere.
    a.shutdown().await;
    let read = json!({ "jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": { "name": "open_nodes", "arguments": { "names": ["roamer"] } } });
    let (status, _, reply) = send(&c, Some(&session), read.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(reply.unwrap()["result"]["structuredContent"]["entities"][0]["observations"], json!(["seen on b"]));

    // DELETE ends it in the shared store: a replica that never held it refuses it now.
    let deleted = common::delete_session(&b, &session).await;
    assert!(deleted.status().is_success(), "{}", deleted.status());
    let d = replica(&db_url, &redis).await;
    let (status, _, _) = send(&d, Some(&session), read.clone()).await;
    assert_eq!(status, 404, "a deleted session is not restored");
    // And a replica that still held a copy of it drops it (told through Redis) within 5 s.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let (status, _, _) = send(&c, Some(&session), read.clone()).await;
        if status == 404 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "replica c still serves the deleted session: {status}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The SSE events of a body: (id, data) in order.
fn sse_events(body: &str) -> Vec<(Option<String>, String)> {
    body.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let field = |name: &str| {
                block.lines().filter_map(|l| l.strip_prefix(name)).map(str::trim).collect::<Vec<_>>().join("\n")
            };
            let id = Some(field("id:")).filter(|id| !id.is_empty());
            (id, field("data:"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_stream_resumes_on_another_replica_from_redis() {
    let redis = std::env::var("MCP_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let shared = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}/shared.db", shared.path().display());
    let a = replica(&db_url, &redis).await;
    let b = replica(&db_url, &redis).await;
    let init = json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": { "name": "resumer", "version": "0" } } });
    let (_, session, _) = send(&a, None, init).await;
    let session = session.expect("a session id in session mode");
    send(&a, Some(&session), json!({ "jsonrpc": "2.0", "method": "notifications/initialized" })).await;

    // A call on replica A answers with an SSE stream: a priming event, then the result.
    let call = json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": { "name": "create_entities",
        "arguments": { "entities": [{ "name": "streamed", "entityType": "t", "observations": ["once"] }] } } });
    let body = post(&a, Some(&session), call).await.text().await.unwrap();
    let events = sse_events(&body);
    let ids: Vec<&str> = events.iter().filter_map(|(id, _)| id.as_deref()).collect();
    assert_eq!(ids.len(), 2, "a priming event and the result, each with an id: {body}");
    let result = events.iter().find(|(_, data)| data.contains("\"result\"")).expect("the result event").clone();

    // The client saw only the first event; replica A is gone; it resumes on replica B.
    a.shutdown().await;
    let resume = |last: String| {
        reqwest::Client::new()
            .get(b.url("/mcp"))
            .header("accept", "text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .header("mcp-session-id", &session)
            .header("last-event-id", last)
            .send()
    };
    let response = resume(ids[0].to_string()).await.unwrap();
    assert_eq!(response.status(), 200);
    let replayed = sse_events(&response.text().await.unwrap());
    let with_data: Vec<_> = replayed.iter().filter(|(_, data)| !data.is_empty()).collect();
    assert_eq!(with_data, vec![&result], "exactly the missed event, with its original id");

    // Resuming after the last event replays nothing: no duplicates.
    let response = resume(ids.last().unwrap().to_string()).await.unwrap();
    let replayed = sse_events(&response.text().await.unwrap());
    assert!(replayed.iter().all(|(_, data)| data.is_empty()), "{replayed:?}");
}

fn initialize() -> Value {
    json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": { "name": "capped", "version": "0" } } })
}

/// A session, initialized: its id.
async fn open(app: &TestApp) -> String {
    let (status, session, _) = send(app, None, initialize()).await;
    assert_eq!(status, 200);
    let session = session.expect("a session id in session mode");
    let (status, _, _) =
        send(app, Some(&session), json!({ "jsonrpc": "2.0", "method": "notifications/initialized" })).await;
    assert_eq!(status, 202);
    session
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_idle_past_its_ttl_is_gone_from_the_replica() {
    let redis = std::env::var("MCP_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let alone = spawn_app_with(Db::Sqlite, &["--sessions", "true", "--session-ttl", "1s"]).await.unwrap();
    let shared = spawn_app_with(Db::Sqlite, &["--sessions", "true", "--session-ttl", "1s", "--redis-url", &redis])
        .await
        .unwrap();
    for app in [&alone, &shared] {
        let session = open(app).await;
        let list = json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/list" });
        assert_eq!(send(app, Some(&session), list.clone()).await.0, 200);
        tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
        assert_eq!(send(app, Some(&session), list).await.0, 404, "an idle session outlived SESSION_TTL");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cap_refuses_cleanly_and_frees_on_delete() {
    let app =
        spawn_app_with(Db::Sqlite, &["--sessions", "true", "--max-sessions", "2", "--max-sessions-per-tenant", "2"])
            .await
            .unwrap();
    let first = open(&app).await;
    let _second = open(&app).await;
    let refused = post(&app, None, initialize()).await;
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    assert!(refused.text().await.unwrap().contains("sessions"));
    let deleted = common::delete_session(&app, &first).await.status();
    assert!(deleted.is_success(), "{deleted}");
    open(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tenant_at_its_session_share_leaves_room_for_others() {
    let flags = [&common::HS256_FLAGS[..], &["--sessions", "true", "--max-sessions-per-tenant", "1"]].concat();
    let app = spawn_app_with(Db::Sqlite, &flags).await.unwrap();
    let as_tenant = |tenant: &str| {
        reqwest::Client::new()
            .post(app.url("/mcp"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .header("authorization", common::bearer(tenant, "memory:read"))
            .json(&initialize())
    };
    assert_eq!(as_tenant("tenant-a").send().await.unwrap().status(), 200);
    let refused = as_tenant("tenant-a").send().await.unwrap();
    assert_eq!(refused.status(), 429, "a tenant past MAX_SESSIONS_PER_TENANT");
    assert_eq!(as_tenant("tenant-b").send().await.unwrap().status(), 200);
}

/// Calls arriving together on a replica that has to restore their session from Redis: each waits
/// for the restore's initialize replay (one that reached the new worker first made it quit, 500).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_calls_on_another_replica_all_succeed() {
    let redis = std::env::var("MCP_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let shared = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}/shared.db", shared.path().display());
    let a = replica(&db_url, &redis).await;
    let b = replica(&db_url, &redis).await;
    for round in 0..5 {
        let session = open(&a).await;
        let calls = (0..16).map(|i| {
            let message = json!({ "jsonrpc": "2.0", "id": i + 2, "method": "tools/call",
                "params": { "name": "search_nodes", "arguments": { "query": "anything" } } });
            send(&b, Some(&session), message)
        });
        let statuses: Vec<u16> = futures::future::join_all(calls).await.into_iter().map(|(s, _, _)| s).collect();
        assert!(statuses.iter().all(|&s| s == 200), "round {round}: {statuses:?}");
    }
}
