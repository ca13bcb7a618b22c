//! Search by meaning, through the server as clients use it: the real local model
//! (MCP_TEST_EMBEDDING_MODEL_DIR, which scripts/test installs) in process or behind an
//! OpenAI-compatible endpoint, on both backends. Writes never wait for the embedder, a failing
//! embedder leaves search to substring matching, and a new model re-embeds.

mod endpoint;
mod time;

use std::{path::PathBuf, time::Duration};

use serde_json::{Value, json};

use crate::common::{self, Client, TestApp, TestDb, call, ok};
use endpoint::{Behaviour, TestEndpoint};

/// How long the indexer may take to embed a test's few entities (its retry pause grows to 60 s).
const INDEXED: Duration = Duration::from_secs(90);

fn model_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("MCP_TEST_EMBEDDING_MODEL_DIR").map(PathBuf::from);
    if dir.is_none() {
        eprintln!("MCP_TEST_EMBEDDING_MODEL_DIR is not set: skipping (scripts/test installs the model)");
    }
    dir
}

const MEMORIES: &str = r#"[
  {"name": "Carol", "entityType": "person", "observations": ["plays the cello in the city orchestra on Thursdays"]},
  {"name": "Bob", "entityType": "person", "observations": ["drives an old red pickup truck to work"]},
  {"name": "Dana", "entityType": "person", "observations": ["is allergic to peanuts and carries an epipen"]},
  {"name": "Evan", "entityType": "person", "observations": ["grows tomatoes and basil on his balcony"]}
]"#;

async fn remember(client: &Client) {
    let entities: Value = serde_json::from_str(MEMORIES).unwrap();
    ok(client, "create_entities", json!({ "entities": entities })).await;
}

async fn search(client: &Client, query: &str, mode: &str, extra: Value) -> Value {
    let mut args = json!({ "query": query, "mode": mode });
    args.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
    ok(client, "search_nodes", args).await
}

fn names(found: &Value) -> Vec<String> {
    found["entities"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_string()).collect()
}

/// Searches until `query`'s best match is `expected` (the indexer has embedded it), or panics.
async fn until_first(client: &Client, query: &str, mode: &str, expected: &str) -> Value {
    let deadline = tokio::time::Instant::now() + INDEXED;
    loop {
        let found = search(client, query, mode, json!({})).await;
        if names(&found).first().map(String::as_str) == Some(expected) {
            return found;
        }
        assert!(tokio::time::Instant::now() < deadline, "{query:?} ({mode}) never found {expected} first: {found}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn metrics(app: &TestApp) -> String {
    reqwest::get(format!("http://{}/metrics", app.metrics_addr)).await.unwrap().text().await.unwrap()
}

/// A server running the local model, when the model is installed and the backend is here.
async fn with_local_model(db: common::Db) -> Option<TestApp> {
    let dir = model_dir()?;
    common::spawn_app_with(db, &["--embeddings", "local", "--embedding-model-dir", dir.to_str().unwrap()]).await
}

both_backends!(the_local_model_finds_by_meaning_what_substrings_miss, |db| async move {
    let Some(app) = with_local_model(db).await else { return };
    let client = app.client().await;
    remember(&client).await;
    // The reference's search, still the default, finds none of these.
    for query in ["musical instrument", "which person owns a vehicle", "food allergy"] {
        let found = ok(&client, "search_nodes", json!({ "query": query })).await;
        assert_eq!(names(&found), Vec::<String>::new(), "{query}");
    }
    let found = until_first(&client, "musical instrument", "semantic", "Carol").await;
    until_first(&client, "which person owns a vehicle", "semantic", "Bob").await;
    until_first(&client, "food allergy", "semantic", "Dana").await;
    until_first(&client, "gardening", "hybrid", "Evan").await;
    until_first(&client, "who drove the red truck", "lexical", "Bob").await;
    let cello = search(&client, "cello", "lexical", json!({})).await;
    assert_eq!(names(&cello), ["Carol"], "only documents with a word of the query");
    // Scores in the structured content only, one an entity, best first; the text is the reference's shape.
    let scores: Vec<f64> = found["scores"].as_array().unwrap().iter().map(|s| s.as_f64().unwrap()).collect();
    assert_eq!(scores.len(), names(&found).len());
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    let result =
        call(&client, "search_nodes", json!({ "query": "musical instrument", "mode": "semantic" })).await.unwrap();
    let text: Value = serde_json::from_str(&common::text(&result)).unwrap();
    assert_eq!(text.as_object().unwrap().keys().collect::<Vec<_>>(), ["entities", "relations"]);
    // Pages: two at a time, each entity once.
    let first = search(&client, "musical instrument", "semantic", json!({ "limit": 2 })).await;
    let cursor = first["nextCursor"].as_str().expect("a second page").to_string();
    let second = search(&client, "musical instrument", "semantic", json!({ "limit": 2, "cursor": cursor })).await;
    let mut all = [names(&first), names(&second)].concat();
    assert_eq!(all.len(), 4, "{first} {second}");
    all.sort();
    assert_eq!(all, ["Bob", "Carol", "Dana", "Evan"]);
    // Times come with any mode, beside the scores.
    let timed = search(&client, "musical instrument", "semantic", json!({ "include": ["time"] })).await;
    assert_eq!(names(&timed), names(&found));
    assert_eq!(timed["scores"], found["scores"]);
    assert!(timed["entities"].as_array().unwrap().iter().all(|e| e["createdAt"].is_string()), "{timed}");
    // A new observation re-embeds its entity.
    let added = json!({ "observations": [{ "entityName": "Bob", "contents": ["sings bass in a jazz choir"] }] });
    ok(&client, "add_observations", added).await;
    until_first(&client, "jazz vocalist", "semantic", "Bob").await;
    // A deleted entity is gone from the results.
    ok(&client, "delete_entities", json!({ "entityNames": ["Carol"] })).await;
    let found = search(&client, "musical instrument", "semantic", json!({})).await;
    assert!(!names(&found).contains(&"Carol".to_string()), "{found}");
    app.shutdown().await;
});

both_backends!(a_failing_endpoint_never_fails_a_write_and_search_falls_back_to_substrings, |db| async move {
    let Some(dir) = model_dir() else { return };
    let endpoint = TestEndpoint::start(&dir).await;
    endpoint.set(Behaviour::Down);
    let extra = [
        "--embeddings",
        "endpoint",
        "--embeddings-url",
        &endpoint.url,
        "--embeddings-model",
        "minilm",
        "--embeddings-timeout",
        "1s",
    ];
    let Some(app) = common::spawn_app_with(db, &extra).await else { return };
    let client = app.client().await;
    remember(&client).await;
    for (behaviour, reason) in [
        (Behaviour::Down, "unavailable"),
        (Behaviour::Garbage, "garbage"),
        (Behaviour::Slow(Duration::from_secs(3)), "timeout"),
    ] {
        endpoint.set(behaviour);
        // The query's vector cannot be made: the substring matches answer.
        let found = search(&client, "cello", "semantic", json!({})).await;
        assert_eq!(names(&found), ["Carol"], "{behaviour:?}");
        let body = metrics(&app).await;
        assert!(body.contains(&format!("search_degraded_total{{reason=\"{reason}\"}}")), "{behaviour:?}: {body}");
        let write =
            json!({ "observations": [{ "entityName": "Evan", "contents": [format!("noted while {behaviour:?}")] }] });
        ok(&client, "add_observations", write).await;
    }
    let body = metrics(&app).await;
    assert!(body.contains("embedding_failures_total{reason=\"unavailable\"}"), "{body}");
    // Words are indexed before the batch goes to the embedder: word search works meanwhile.
    endpoint.set(Behaviour::Down);
    until_first(&client, "red truck", "lexical", "Bob").await;
    // Back up: the entities queued meanwhile are embedded and found by meaning.
    endpoint.set(Behaviour::Real);
    until_first(&client, "musical instrument", "semantic", "Carol").await;
    // The embeddings alerts' and panel's metrics (deploy/monitoring/metrics-embeddings.txt).
    let body = metrics(&app).await;
    let wanted = include_str!("../deploy/monitoring/metrics-embeddings.txt");
    let missing: Vec<&str> = (wanted.lines())
        .filter(|name| !body.lines().any(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} "))))
        .filter(|name| !body.contains(&format!("{name}_bucket")))
        .collect();
    assert!(wanted.lines().count() >= 4 && missing.is_empty(), "absent from /metrics: {missing:?}\n{body}");
    app.shutdown().await;
});

both_backends!(a_new_model_re_embeds_every_entity, |db| async move {
    let Some(dir) = model_dir() else { return };
    let endpoint = TestEndpoint::start(&dir).await;
    let Some(test_db) = TestDb::new(db).await else { return };
    let extra = |model: &'static str| {
        ["--embeddings", "endpoint", "--embeddings-url", endpoint.url.as_str(), "--embeddings-model", model]
    };
    let models = |pool: sqlx::AnyPool| async move {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT model, count(*) FROM entity_vectors GROUP BY model ORDER BY model")
                .fetch_all(&pool)
                .await
                .unwrap();
        rows
    };
    let app = common::spawn_app_on(test_db, &extra("first")).await;
    let client = app.client().await;
    remember(&client).await;
    until_first(&client, "musical instrument", "semantic", "Carol").await;
    let pool = common::sql(&app.db.url).await;
    wait_for(|| models(pool.clone()), vec![("first".to_string(), 4)]).await;
    let app = common::spawn_app_on(app.into_db().await, &extra("second")).await;
    wait_for(|| models(pool.clone()), vec![("second".to_string(), 4)]).await;
    assert!(endpoint.models_asked().contains(&"second".to_string()));
    app.shutdown().await;
});

/// Polls `read` until it returns `expected`, or panics with the last value.
async fn wait_for<T, F, Fut>(read: F, expected: T)
where
    T: PartialEq + std::fmt::Debug,
    F: Fn() -> Fut,
    Fut: Future<Output = T>,
{
    let deadline = tokio::time::Instant::now() + INDEXED;
    loop {
        let got = read().await;
        if got == expected {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "still {got:?}, waiting for {expected:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

both_backends!(tenants_see_only_their_own_vectors, |db| async move {
    use mcp_server::memory::{Entity, PageRequest, Tenant};
    let Some(dir) = model_dir() else { return };
    let Some(test_db) = TestDb::new(db).await else { return };
    let memory =
        common::memory(&test_db.url, &["--embeddings", "local", "--embedding-model-dir", dir.to_str().unwrap()]).await;
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(memory.clone().index(stop.clone()));
    let (a, b) = (Tenant::new("a"), Tenant::new("b"));
    let entity = |name: &str, observation: &str| Entity {
        name: name.into(),
        entity_type: "person".into(),
        observations: vec![observation.into()],
    };
    memory.create_entities(&a, vec![entity("Carol", "plays the cello in the city orchestra")]).await.unwrap();
    memory.create_entities(&b, vec![entity("Bob", "drives an old red pickup truck")]).await.unwrap();
    let semantic = Some(mcp_server::config::SearchMode::Semantic);
    let page = PageRequest { limit: Some(10), cursor: None };
    let found_in = |tenant: Tenant| {
        let (memory, page) = (memory.clone(), page.clone());
        async move {
            let found = memory.search(&tenant, "musical instrument", semantic, &page).await.unwrap();
            found.graph.entities.into_iter().map(|e| e.name).collect::<Vec<_>>()
        }
    };
    wait_for(|| found_in(a.clone()), vec!["Carol".to_string()]).await;
    wait_for(|| found_in(b.clone()), vec!["Bob".to_string()]).await;
    // Words too: b's word index has no cello, a's has.
    let lexical = Some(mcp_server::config::SearchMode::Lexical);
    let words = |tenant: Tenant| {
        let (memory, page) = (memory.clone(), page.clone());
        async move {
            let found = memory.search(&tenant, "cello", lexical, &page).await.unwrap();
            found.graph.entities.into_iter().map(|e| e.name).collect::<Vec<_>>()
        }
    };
    assert_eq!(words(b.clone()).await, Vec::<String>::new());
    assert_eq!(words(a.clone()).await, ["Carol"]);
    stop.cancel();
});

/// Embeddings turn on (the first server with EMBEDDINGS starts) while another client's write is
/// in flight: that write's triggers saw embeddings off, so the start's backfill must see its rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entities_written_while_embeddings_turn_on_are_embedded() {
    let Some(dir) = model_dir() else { return };
    let Some(test_db) = TestDb::new(common::Db::Postgres).await else { return };
    common::migrate(&test_db.url);
    let pool = common::sql(&test_db.url).await;
    let mut write = pool.begin().await.unwrap();
    let carol = "WITH e AS (INSERT INTO entities (tenant, name, entity_type, name_lc, type_lc) \
                 VALUES ('default', 'Carol', 'person', 'carol', 'person') RETURNING id) \
                 INSERT INTO observations (entity_id, content, content_lc) \
                 SELECT id, 'plays the cello in the city orchestra', 'plays the cello in the city orchestra' FROM e";
    sqlx::query(carol).execute(&mut *write).await.unwrap();
    let app =
        common::spawn_app_on(test_db, &["--embeddings", "local", "--embedding-model-dir", dir.to_str().unwrap()]).await;
    tokio::time::sleep(Duration::from_secs(2)).await; // the indexer turns embeddings on meanwhile
    write.commit().await.unwrap();
    let client = app.client().await;
    until_first(&client, "musical instrument", "semantic", "Carol").await;
    app.shutdown().await;
}

both_backends!(a_mode_this_server_cannot_serve_is_an_error_naming_mode, |db| async move {
    let Some(app) = common::spawn_app(db).await else { return };
    let client = app.client().await;
    for (mode, says) in [("semantic", "EMBEDDINGS=off"), ("sideways", "unknown variant")] {
        let error = call(&client, "search_nodes", json!({ "query": "x", "mode": mode })).await.unwrap_err();
        assert_eq!(error.code, rmcp::model::ErrorCode::INVALID_PARAMS, "{mode}");
        assert!(error.message.contains("mode") && error.message.contains(says), "{mode}: {}", error.message);
    }
    app.shutdown().await;
});

both_backends!(turned_off_and_on_again_every_entity_is_embedded_again, |db| async move {
    let Some(dir) = model_dir() else { return };
    let endpoint = TestEndpoint::start(&dir).await;
    let Some(test_db) = TestDb::new(db).await else { return };
    let on = ["--embeddings", "endpoint", "--embeddings-url", endpoint.url.as_str(), "--embeddings-model", "m"];
    let app = common::spawn_app_on(test_db, &on).await;
    let client = app.client().await;
    remember(&client).await;
    until_first(&client, "musical instrument", "semantic", "Carol").await;
    let pool = common::sql(&app.db.url).await;
    // Off for good (README), then a change the triggers no longer queue.
    let app = common::spawn_app_on(app.into_db().await, &[]).await;
    sqlx::query("DELETE FROM embedding_state").execute(&pool).await.unwrap();
    let added = json!({ "observations": [{ "entityName": "Bob", "contents": ["sings bass in a jazz choir"] }] });
    ok(&app.client().await, "add_observations", added).await;
    let app = common::spawn_app_on(app.into_db().await, &on).await;
    until_first(&app.client().await, "jazz vocalist", "semantic", "Bob").await;
    app.shutdown().await;
});
