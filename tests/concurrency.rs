//! Many writers at once lose nothing; shutdown drains instead of dropping requests.

mod common;

use std::time::Duration;

use common::{Db, ok, spawn_app, spawn_app_with};
use serde_json::json;

const WRITERS: usize = 64;

both_backends!(sixty_four_writers_lose_nothing, |db: Db| async move {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let setup = app.client().await;
    ok(&setup, "create_entities", json!({ "entities": [{ "name": "hub", "entityType": "hub", "observations": [] }] }))
        .await;
    let mut clients = Vec::new();
    for _ in 0..8 {
        clients.push(std::sync::Arc::new(app.client().await));
    }
    let tasks: Vec<_> = (0..WRITERS)
        .map(|i| {
            let client = clients[i % clients.len()].clone();
            tokio::spawn(async move {
                let name = format!("writer-{i}");
                ok(&client, "create_entities", json!({ "entities": [{ "name": name, "entityType": "writer", "observations": [format!("born {i}")] }] })).await;
                ok(&client, "add_observations", json!({ "observations": [{ "entityName": "hub", "contents": [format!("seen {i}")] }] })).await;
                ok(&client, "create_relations", json!({ "relations": [{ "from": name, "to": "hub", "relationType": "feeds" }] })).await;
            })
        })
        .collect();
    for task in tasks {
        tokio::time::timeout(common::WAIT * 3, task).await.expect("writers finish").expect("writer succeeded");
    }
    let graph = ok(&setup, "read_graph", json!({})).await;
    assert_eq!(graph["entities"].as_array().unwrap().len(), WRITERS + 1);
    assert_eq!(graph["relations"].as_array().unwrap().len(), WRITERS);
    let hub = &graph["entities"][0];
    let mut seen: Vec<String> =
        hub["observations"].as_array().unwrap().iter().map(|o| o.as_str().unwrap().to_string()).collect();
    seen.sort();
    let mut expected: Vec<String> = (0..WRITERS).map(|i| format!("seen {i}")).collect();
    expected.sort();
    assert_eq!(seen, expected);
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_fails_readiness_first_then_stops() {
    let app = spawn_app_with(Db::Sqlite, &["--shutdown-delay", "1s"]).await.unwrap();
    let client = app.client().await;
    let ready_url = app.url("/health/ready");
    let health_url = app.url("/health");
    let stopping = tokio::spawn(app.shutdown());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ready = reqwest::get(&ready_url).await.expect("still serving during the delay");
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["shutdown"]["reason"], "draining");
    assert_eq!(reqwest::get(&health_url).await.unwrap().status(), 200, "liveness stays up");
    ok(&client, "read_graph", json!({})).await;
    tokio::time::timeout(Duration::from_secs(10), stopping).await.expect("drains in time").unwrap();
    assert!(reqwest::get(&health_url).await.is_err(), "listener closed after the drain");
}

/// Requests being handled when the listener closes finish with their results: the drain waits
/// for them before it cancels the MCP service. A table lock holds the writes in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_requests_in_flight() {
    use sqlx::{Connection, Executor};
    const IN_FLIGHT: usize = 8;
    let Some(mut app) = spawn_app(Db::Postgres).await else {
        return;
    };
    let mut clients = Vec::new();
    for _ in 0..IN_FLIGHT {
        clients.push(app.client().await); // one request at a time per client
    }
    let mut lock = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
    lock.execute("BEGIN; LOCK TABLE entities IN EXCLUSIVE MODE").await.unwrap();
    let calls: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, client)| {
            tokio::spawn(async move {
                let entity = json!({ "name": format!("late-{i}"), "entityType": "t", "observations": [] });
                common::call(&client, "create_entities", json!({ "entities": [entity] })).await
            })
        })
        .collect();
    let waiting = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' AND wait_event_type = 'Lock'";
    let started = std::time::Instant::now();
    // Another connection: pg_stat_activity is a snapshot for the length of a transaction.
    let mut watch = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
    while sqlx::query_scalar::<_, i64>(waiting).fetch_one(&mut watch).await.unwrap() < IN_FLIGHT as i64 {
        assert!(started.elapsed() < common::WAIT, "the writes never reached the lock");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let release = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        lock.execute("COMMIT").await.unwrap();
    };
    tokio::join!(app.stop(), release);
    for call in calls {
        let result = call.await.unwrap().expect("the request in flight at shutdown got its result");
        assert_ne!(result.is_error, Some(true), "{}", common::text(&result));
    }
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM entities WHERE name LIKE 'late-%'")
        .fetch_one(&mut watch)
        .await
        .unwrap();
    assert_eq!(stored, IN_FLIGHT as i64);
}
