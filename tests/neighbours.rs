//! search_nodes' `depth`: the matches, then the entities one or two relations away, with every
//! relation touching an entity returned, within the reply budget; on both backends.

use serde_json::{Value, json};

use mcp_server::memory::{format_time, now_ms};

use crate::common::{self, call, ok, spawn_app_with};

fn names(v: &Value) -> Vec<&str> {
    v["entities"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect()
}

fn relations(v: &Value) -> Vec<String> {
    let r = v["relations"].as_array().unwrap();
    r.iter()
        .map(|r| {
            format!(
                "{} {} {}",
                r["from"].as_str().unwrap(),
                r["relationType"].as_str().unwrap(),
                r["to"].as_str().unwrap()
            )
        })
        .collect()
}

both_backends!(depth_brings_the_neighbours_of_the_matches, |db| async move {
    let Some(app) = spawn_app_with(db, &[]).await else { return };
    let client = app.client().await;
    let entity = |name: &str, note: &str| json!({ "name": name, "entityType": "thing", "observations": [note] });
    let entities = json!([
        entity("Alice", "vegetarian since 2019"),
        entity("Bob", "a colleague"),
        entity("Acme", "a company"),
        entity("Paris", "a city"),
        entity("Zed", "unrelated"),
    ]);
    ok(&client, "create_entities", json!({ "entities": entities })).await;
    let relation = |from: &str, kind: &str, to: &str| json!({ "from": from, "to": to, "relationType": kind });
    let links = json!([
        relation("Alice", "knows", "Bob"),
        relation("Bob", "works_at", "Acme"),
        relation("Acme", "located_in", "Paris"),
        relation("Alice", "knows", "Ghost"), // an end that is no entity
    ]);
    ok(&client, "create_relations", json!({ "relations": links })).await;

    let search = |depth: u8| {
        let client = &client;
        async move { ok(client, "search_nodes", json!({ "query": "vegetarian", "depth": depth })).await }
    };
    let plain = ok(&client, "search_nodes", json!({ "query": "vegetarian" })).await;
    assert_eq!(search(0).await, plain, "depth 0 is the plain search");
    assert_eq!(plain.get("distances"), None);

    let one = search(1).await;
    assert_eq!(names(&one), ["Alice", "Bob"]);
    assert_eq!(one["distances"], json!([0, 1]));
    assert_eq!(relations(&one), ["Alice knows Bob", "Alice knows Ghost", "Bob works_at Acme"]);
    assert_eq!(one.get("neighboursTruncated"), None);

    let two = search(2).await;
    assert_eq!(names(&two), ["Alice", "Bob", "Acme"]);
    assert_eq!(two["distances"], json!([0, 1, 2]));
    assert_eq!(relations(&two).last().map(String::as_str), Some("Acme located_in Paris"));
    assert_eq!(two["entities"][2]["observations"], json!(["a company"]));

    let error = call(&client, "search_nodes", json!({ "query": "x", "depth": 3 })).await.unwrap_err();
    assert_eq!(error.code.0, -32602);
    assert_eq!(error.data.as_ref().and_then(|d| d["field"].as_str()), Some("depth"), "{}", error.message);

    // In the past, the neighbours are those of then: the same reply a search with depth gave.
    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    let then = format_time(now_ms());
    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    ok(&client, "delete_relations", json!({ "relations": [relation("Bob", "works_at", "Acme")] })).await;
    ok(&client, "create_relations", json!({ "relations": [relation("Alice", "visited", "Zed")] })).await;
    ok(&client, "add_observations", json!({ "observations": [{ "entityName": "Bob", "contents": ["retired"] }] }))
        .await;
    assert_ne!(search(2).await, two, "the present has changed");
    let past = ok(&client, "search_nodes", json!({ "query": "vegetarian", "depth": 2, "asOf": then })).await;
    assert_eq!(past, two);
    let timed = json!({ "query": "vegetarian", "depth": 2, "asOf": then, "include": ["time"] });
    let timed = ok(&client, "search_nodes", timed).await;
    assert_eq!(names(&timed), names(&two));
    assert_eq!(relations(&timed), relations(&two));
    let stamped = |e: &Value| e["createdAt"].is_string();
    assert!(timed["entities"].as_array().unwrap().iter().chain(timed["relations"].as_array().unwrap()).all(stamped));
    // A window keeps the hits changed within it; their neighbours are any at the moment.
    let window = json!({ "query": "colleague", "depth": 1, "since": then });
    let recent = ok(&client, "search_nodes", window).await;
    assert_eq!(names(&recent), ["Bob", "Alice"], "{recent}");
    assert_eq!(recent["distances"], json!([0, 1]));
});

both_backends!(neighbours_stop_at_the_reply_budget_and_say_so, |db| async move {
    let Some(app) = spawn_app_with(db, &["--max-reply-bytes", "65536"]).await else { return };
    let client = app.client().await;
    let big = "x".repeat(2_000);
    let mut entities = vec![json!({ "name": "Hub", "entityType": "hub", "observations": ["the centre"] })];
    entities.extend(
        (0..100).map(|i| json!({ "name": format!("spoke {i}"), "entityType": "spoke", "observations": [big] })),
    );
    ok(&client, "create_entities", json!({ "entities": entities })).await;
    let links: Vec<Value> =
        (0..100).map(|i| json!({ "from": "Hub", "to": format!("spoke {i}"), "relationType": "has" })).collect();
    ok(&client, "create_relations", json!({ "relations": links })).await;

    let result = call(&client, "search_nodes", json!({ "query": "centre", "depth": 1 })).await.unwrap();
    let found = result.structured_content.clone().unwrap();
    let count = names(&found).len();
    assert!(count > 1 && count < 101, "some spokes, not all: {count}");
    assert_eq!(found["neighboursTruncated"], json!(true));
    assert_eq!(found["distances"].as_array().unwrap().len(), count);
    let reply = serde_json::to_string(&json!({ "jsonrpc": "2.0", "id": 1, "result": result })).unwrap();
    assert!(reply.len() <= 65_536, "the reply keeps the budget: {}", reply.len());
});
