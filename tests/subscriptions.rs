//! Resource subscriptions across replicas: a write on one replica notifies a subscriber held by
//! another, through Redis: `subscriptions/listen` (2026-07-28, no session) and
//! `resources/subscribe` in a 2025-11-25 session (delivered on its GET stream).

use crate::common;

use std::time::Duration;

use common::{Db, TestApp, ok, spawn_app_with};
use rmcp::{
    model::{ServerNotification, SubscriptionFilter},
    service::SubscriptionEnd,
};
use serde_json::{Value, json};

fn redis_url() -> String {
    std::env::var("MCP_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

async fn replica(db_url: &str, extra: &[&str]) -> TestApp {
    let redis = redis_url();
    let mut args = vec!["--redis-url", redis.as_str(), "--database-url", db_url];
    args.extend_from_slice(extra);
    spawn_app_with(Db::Sqlite, &args).await.unwrap()
}

/// Names no other test (or earlier run) publishes updates for on the shared Redis channel.
fn unique(name: &str) -> String {
    format!("{name}-{:016x}", rand::random::<u64>())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_one_replica_notifies_a_listener_on_another() {
    let shared = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}/shared.db", shared.path().display());
    let (a, b) = (replica(&db_url, &[]).await, replica(&db_url, &[]).await);
    let (watched, other, friend) = (unique("Ada Lovelace"), unique("other"), unique("friend"));
    // Subscribed with a percent-encoded name: the update must come back with this very URI.
    let uri = format!("memory://entities/{}", watched.replace(' ', "%20"));
    let friend_uri = format!("memory://entities/{friend}");

    let listener = a.client_2026().await;
    let filter = SubscriptionFilter::builder()
        .resource_subscriptions([uri.clone(), friend_uri.clone(), "memory://elsewhere/x".into()])
        .build();
    let mut subscription = listener.listen(filter).await.expect("subscriptions/listen is acknowledged");
    assert_eq!(
        subscription.acknowledged().resource_subscriptions,
        Some(vec![uri.clone(), friend_uri.clone()]),
        "only our own resource URIs are accepted"
    );

    // Writes on replica B: first to an entity nobody watches, then to the watched one. Both
    // travel the same channel in order, so the first update A delivers must be the second.
    let writer = b.client_2026().await;
    ok(&writer, "create_entities", json!({ "entities": [{ "name": other, "entityType": "t", "observations": [] }] }))
        .await;
    ok(
        &writer,
        "create_entities",
        json!({ "entities": [{ "name": watched, "entityType": "person", "observations": [] }] }),
    )
    .await;
    let notification = tokio::time::timeout(Duration::from_secs(5), subscription.next())
        .await
        .expect("the update arrives within 5 s")
        .expect("the subscription is open")
        .expect("a notification");
    let ServerNotification::ResourceUpdatedNotification(update) = notification else {
        panic!("expected notifications/resources/updated, got {notification:?}");
    };
    assert_eq!(update.params.uri, uri);

    // An observation added on B is another update of the same resource.
    ok(
        &writer,
        "add_observations",
        json!({ "observations": [{ "entityName": watched, "contents": ["wrote notes"] }] }),
    )
    .await;
    let notification = tokio::time::timeout(Duration::from_secs(5), subscription.next()).await.unwrap().unwrap();
    assert!(matches!(notification, Some(ServerNotification::ResourceUpdatedNotification(u)) if u.params.uri == uri));

    // A relation changes both ends; deleting one end drops the relation, so the other end hears too.
    ok(
        &writer,
        "create_entities",
        json!({ "entities": [{ "name": friend, "entityType": "person", "observations": [] }] }),
    )
    .await;
    assert_eq!(next_uris(&mut subscription, 1).await, vec![friend_uri.clone()]);
    ok(
        &writer,
        "create_relations",
        json!({ "relations": [{ "from": watched, "to": friend, "relationType": "knows" }] }),
    )
    .await;
    let both = sorted(vec![uri.clone(), friend_uri.clone()]);
    assert_eq!(sorted(next_uris(&mut subscription, 2).await), both);
    ok(&writer, "delete_entities", json!({ "entityNames": [watched] })).await;
    assert_eq!(sorted(next_uris(&mut subscription, 2).await), both);

    // Draining replica A ends the listen request with its final result (a graceful end, not a
    // dropped connection), so the client knows to listen again elsewhere.
    let (_, end) = tokio::join!(a.shutdown(), tokio::time::timeout(Duration::from_secs(5), subscription.next()));
    assert!(matches!(end, Ok(Ok(None))), "the subscription ends: {end:?}");
    assert!(matches!(subscription.end(), Some(SubscriptionEnd::Graceful(_))), "{:?}", subscription.end());
}

/// The URIs of the next `count` resource updates, each within 5 s.
async fn next_uris(subscription: &mut rmcp::service::Subscription, count: usize) -> Vec<String> {
    let mut uris = Vec::new();
    for _ in 0..count {
        let next = tokio::time::timeout(Duration::from_secs(5), subscription.next()).await;
        match next.expect("an update within 5 s").expect("the subscription is open") {
            Some(ServerNotification::ResourceUpdatedNotification(u)) => uris.push(u.params.uri),
            other => panic!("expected notifications/resources/updated, got {other:?}"),
        }
    }
    uris
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// POSTs a JSON-RPC message in a 2025-11-25 session; returns the response.
async fn post(app: &TestApp, session: Option<&str>, message: Value) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(app.url("/mcp"))
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .json(&message);
    if let Some(id) = session {
        request = request.header("mcp-session-id", id);
    }
    let response = request.send().await.unwrap();
    assert!(response.status().is_success(), "{message}: {}", response.status());
    response
}

fn tool_call(id: u32, name: &str, arguments: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "method": "tools/call", "params": { "name": name, "arguments": arguments } })
}

/// Reads SSE data lines from `stream` until one parses as a JSON-RPC message with `method`.
async fn next_message(stream: &mut reqwest::Response, buffer: &mut String, method: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            for data in event.lines().filter_map(|l| l.strip_prefix("data:")) {
                if let Ok(message) = serde_json::from_str::<Value>(data.trim())
                    && message["method"] == method
                {
                    return message;
                }
            }
        }
        let chunk = tokio::time::timeout_at(deadline, stream.chunk())
            .await
            .unwrap_or_else(|_| panic!("no {method} within 5 s; buffered: {buffer}"))
            .unwrap()
            .expect("the stream stays open");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_subscription_is_notified_on_its_stream_on_another_replica() {
    let shared = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}/shared.db", shared.path().display());
    let a = replica(&db_url, &["--sessions", "true"]).await;
    let b = replica(&db_url, &["--sessions", "true"]).await;
    let watched = unique("watched");
    let uri = format!("memory://entities/{watched}");

    let init = json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": { "name": "watcher", "version": "0" } } });
    let response = post(&a, None, init).await;
    let session = response.headers()["mcp-session-id"].to_str().unwrap().to_string();
    let body: String = response.text().await.unwrap();
    assert!(body.contains(r#""subscribe":true"#), "the capability is advertised: {body}");
    assert_eq!(session.len(), 64, "256 random bits, hex: {session}");
    assert!(session.chars().all(|c| c.is_ascii_hexdigit()));
    post(&a, Some(&session), json!({ "jsonrpc": "2.0", "method": "notifications/initialized" })).await;

    // The session's GET stream is held by replica A...
    let mut stream = reqwest::Client::new()
        .get(a.url("/mcp"))
        .header("accept", "text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let mut buffer = String::new();

    // ...while the subscription and the write go to replica B.
    let subscribe = json!({ "jsonrpc": "2.0", "id": 2, "method": "resources/subscribe", "params": { "uri": uri } });
    let reply = post(&b, Some(&session), subscribe).await.text().await.unwrap();
    assert!(reply.contains(r#""result":{}"#), "{reply}");
    let create = tool_call(
        3,
        "create_entities",
        json!({ "entities": [{ "name": watched, "entityType": "t", "observations": [] }] }),
    );
    post(&b, Some(&session), create).await.text().await.unwrap();

    let update = next_message(&mut stream, &mut buffer, "notifications/resources/updated").await;
    assert_eq!(update["params"]["uri"], uri);

    // The open stream and the session show on the scrape.
    let scrape = reqwest::get(format!("http://{}/metrics", a.metrics_addr)).await.unwrap().text().await.unwrap();
    let value = |series: &str| -> f64 {
        let line = scrape.lines().find(|l| l.starts_with(series)).unwrap_or_else(|| panic!("{series}: {scrape}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert_eq!(value(r#"mcp_sse_streams{kind="standalone"}"#), 1.0);
    assert!(value("mcp_sessions_active") >= 1.0);
    assert!(value(r#"mcp_resource_updates_total{outcome="sent"}"#) >= 1.0);

    // DELETE ends the session and its subscriptions everywhere.
    let deleted = common::delete_session(&b, &session).await;
    assert!(deleted.status().is_success());
    let mut redis = redis::Client::open(redis_url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let members: Vec<String> = redis::cmd("SMEMBERS")
        .arg(format!("{}subs:default:entity:{watched}", mcp_server::sessions::UPDATES_PREFIX))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(members.iter().all(|m| !m.starts_with(&session)), "{members:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_streams_beyond_the_cap_are_refused_until_one_ends() {
    let shared = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}/shared.db", shared.path().display());
    let app = replica(&db_url, &["--max-listen-streams", "2", "--max-listen-streams-per-tenant", "2"]).await;
    let filter =
        || SubscriptionFilter::builder().resource_subscriptions(["memory://knowledge-graph".to_string()]).build();
    let client = app.client_2026().await;
    let first = client.listen(filter()).await.expect("first listen stream");
    let _second = client.listen(filter()).await.expect("second listen stream");
    assert!(client.listen(filter()).await.is_err(), "a third listen stream past MAX_LISTEN_STREAMS=2");
    let shed = reqwest::get(format!("http://{}/metrics", app.metrics_addr)).await.unwrap().text().await.unwrap();
    assert!(
        shed.lines()
            .any(|l| l.starts_with("load_shed_requests_total{reason=\"listen_streams\"}") && !l.ends_with(" 0")),
        "the refusal is counted"
    );
    drop(first);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match client.listen(filter()).await {
            Ok(_third) => break,
            Err(error) if std::time::Instant::now() < deadline => {
                let _ = error;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("the ended stream's slot never came back: {error}"),
        }
    }
}
