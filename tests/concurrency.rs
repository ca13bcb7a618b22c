//! Many writers at once lose nothing; shutdown drains instead of dropping requests.

use crate::common;

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
/// for them before it cancels the MCP service. A table lock holds the writes in flight (additions:
/// each is its own statement, where creates that arrive together share one).
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
    let entities: Vec<_> =
        (0..IN_FLIGHT).map(|i| json!({ "name": format!("late-{i}"), "entityType": "t", "observations": [] })).collect();
    ok(&clients[0], "create_entities", json!({ "entities": entities })).await;
    let mut lock = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
    lock.execute("BEGIN; LOCK TABLE observations IN EXCLUSIVE MODE").await.unwrap();
    let calls: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, client)| {
            tokio::spawn(async move {
                let addition = json!({ "entityName": format!("late-{i}"), "contents": ["held at shutdown"] });
                common::call(&client, "add_observations", json!({ "observations": [addition] })).await
            })
        })
        .collect();
    let mut watch = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
    wait_for_lock_waiters(&mut watch, IN_FLIGHT).await;
    let release = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        lock.execute("COMMIT").await.unwrap();
    };
    tokio::join!(app.stop(), release);
    for call in calls {
        let result = call.await.unwrap().expect("the request in flight at shutdown got its result");
        assert_ne!(result.is_error, Some(true), "{}", common::text(&result));
    }
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM observations WHERE content = 'held at shutdown'")
        .fetch_one(&mut watch)
        .await
        .unwrap();
    assert_eq!(stored, IN_FLIGHT as i64);
}

/// Until `n` statements of this database wait on a lock (on its own connection: pg_stat_activity
/// is a snapshot for the length of a transaction).
async fn wait_for_lock_waiters(watch: &mut sqlx::PgConnection, n: usize) {
    let waiting = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' AND wait_event_type = 'Lock'";
    let started = std::time::Instant::now();
    while sqlx::query_scalar::<_, i64>(waiting).fetch_one(&mut *watch).await.unwrap() < n as i64 {
        assert!(started.elapsed() < common::WAIT, "the writes never reached the lock");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends `calls` create_entities calls (`args(i)`) at once while a lock holds the first in the
/// database, so the rest queue behind it and go as one statement; returns each call's outcome.
async fn creates_held_together(
    app: &common::TestApp,
    calls: usize,
    args: impl Fn(usize) -> serde_json::Value,
) -> Vec<Result<rmcp::model::CallToolResult, rmcp::ErrorData>> {
    use sqlx::{Connection, Executor};
    let mut clients = Vec::new();
    for _ in 0..calls {
        clients.push(app.client().await);
    }
    let mut lock = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
    lock.execute("BEGIN; LOCK TABLE entities IN EXCLUSIVE MODE").await.unwrap();
    let calls: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, client)| {
            let args = args(i);
            tokio::spawn(async move { common::call(&client, "create_entities", args).await })
        })
        .collect();
    let mut watch = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
    wait_for_lock_waiters(&mut watch, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    lock.execute("COMMIT").await.unwrap();
    let mut outcomes = Vec::new();
    for call in calls {
        outcomes.push(call.await.unwrap());
    }
    outcomes
}

/// PostgreSQL creates that arrive while one is in flight go as one statement (one commit), and
/// each call keeps its own outcome: the first call to name an entity creates it, with its
/// observations; the later ones find it there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_that_arrive_together_share_a_statement() {
    const CALLS: usize = 16;
    let Some(app) = spawn_app(Db::Postgres).await else {
        return;
    };
    let outcomes = creates_held_together(&app, CALLS, |i| {
        json!({ "entities": [
            { "name": format!("own-{i}"), "entityType": "t", "observations": [format!("by {i}")] },
            { "name": format!("shared-{}", i % 4), "entityType": "t", "observations": [format!("shared by {i}")] },
        ] })
    })
    .await;
    let mut creator = std::collections::HashMap::new();
    for (i, outcome) in outcomes.into_iter().enumerate() {
        let result = outcome.unwrap_or_else(|e| panic!("call {i}: {e:?}"));
        assert_ne!(result.is_error, Some(true), "call {i}: {result:?}");
        let created = result.structured_content.expect("structured content");
        let names: Vec<&str> =
            created["entities"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
        assert!(names.contains(&format!("own-{i}").as_str()), "call {i} created {names:?}");
        for shared in names.iter().filter(|n| n.starts_with("shared-")) {
            assert!(creator.insert(shared.to_string(), i).is_none(), "{shared} created twice");
        }
    }
    assert_eq!(creator.len(), 4, "each shared name created once: {creator:?}");
    let graph = ok(&app.client().await, "read_graph", json!({})).await;
    let entities = graph["entities"].as_array().unwrap();
    assert_eq!(entities.len(), CALLS + 4);
    for entity in entities.iter().filter(|e| e["name"].as_str().unwrap().starts_with("shared-")) {
        let winner = creator[entity["name"].as_str().unwrap()];
        assert_eq!(entity["observations"], json!([format!("shared by {winner}")]), "only the creator's observations");
    }
    // They did share: far fewer statements than calls.
    let metrics = mcp_server::http::metrics::handle().render();
    let counter = |name: &str| -> u64 {
        metrics.lines().find_map(|l| l.strip_prefix(&format!("{name} "))).map_or(0, |v| v.parse().unwrap())
    };
    assert_eq!(counter("db_create_calls_total"), CALLS as u64);
    assert!(counter("db_create_statements_total") <= 4, "{} statements", counter("db_create_statements_total"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_create_fails_alone_when_combined() {
    use sqlx::{Connection, Executor};
    let Some(app) = spawn_app(Db::Postgres).await else {
        return;
    };
    // A database rule the server does not know: the combined statement fails as a whole.
    let mut admin = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
    admin
        .execute(
            "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
               IF NEW.name = 'poison' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$; \
             CREATE TRIGGER refuse_poison BEFORE INSERT ON entities FOR EACH ROW EXECUTE FUNCTION refuse_poison()",
        )
        .await
        .unwrap();
    let outcomes = creates_held_together(&app, 6, |i| {
        let mut entities = vec![json!({ "name": format!("fine-{i}"), "entityType": "t", "observations": ["o"] })];
        if i == 3 {
            entities.push(json!({ "name": "poison", "entityType": "t", "observations": [] }));
        }
        json!({ "entities": entities })
    })
    .await;
    for (i, outcome) in outcomes.iter().enumerate() {
        let failed = outcome.as_ref().map_or(true, |result| result.is_error == Some(true));
        assert_eq!(failed, i == 3, "call {i}: {outcome:?}");
    }
    let graph = ok(&app.client().await, "read_graph", json!({})).await;
    let mut names: Vec<&str> =
        graph["entities"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    names.sort();
    // The failing call wrote nothing, not even its other entity.
    assert_eq!(names, ["fine-0", "fine-1", "fine-2", "fine-4", "fine-5"]);
}
