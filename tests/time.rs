//! Reads by time, through the server as clients use it, on both backends: the graph as it was
//! (`asOf`) equals what a read returned then, over random writes; times are reported only when
//! asked; windows (`since`/`until`); history per tenant; the retention purge; bad input.

use std::time::Duration;

use mcp_server::memory::{PageRequest, Tenant, TimeQuery, format_time, now_ms};
use serde_json::{Value, json};

use crate::common::{self, Client, call, ok, spawn_app, spawn_app_with, text};

/// The next millisecond: a write after this is later than any time read before it.
async fn tick() -> i64 {
    let now = now_ms();
    tokio::time::sleep(Duration::from_millis(3)).await;
    now
}

/// A random write over a few names, so that creates, deletions and re-creations meet.
fn random_write(next: &mut impl FnMut(usize) -> usize) -> (&'static str, Value) {
    const NAMES: [&str; 5] = ["Ann", "Ben", "Cy", "Di", "Ed"];
    let name = |next: &mut dyn FnMut(usize) -> usize| NAMES[next(NAMES.len())];
    let note = |next: &mut dyn FnMut(usize) -> usize| format!("note {}", next(4));
    match next(6) {
        0 | 1 => {
            let (n, o) = (name(next), note(next));
            ("create_entities", json!({ "entities": [{ "name": n, "entityType": "person", "observations": [o] }] }))
        }
        2 => ("add_observations", json!({ "observations": [{ "entityName": name(next), "contents": [note(next)] }] })),
        3 => (
            "delete_observations",
            json!({ "deletions": [{ "entityName": name(next), "observations": [note(next), note(next)] }] }),
        ),
        4 => {
            let (from, to) = (name(next), name(next));
            let kind = ["knows", "likes"][next(2)];
            match next(3) {
                0 => ("delete_relations", json!({ "relations": [{ "from": from, "to": to, "relationType": kind }] })),
                _ => ("create_relations", json!({ "relations": [{ "from": from, "to": to, "relationType": kind }] })),
            }
        }
        _ => ("delete_entities", json!({ "entityNames": [name(next)] })),
    }
}

fn without_cursor(mut v: Value) -> Value {
    v.as_object_mut().unwrap().remove("nextCursor");
    v
}

both_backends!(as_of_reads_equal_the_graph_at_that_time_over_random_writes, |db| async move {
    let Some(app) = spawn_app(db).await else { return };
    let client = app.client().await;
    let seed: u64 = rand::random();
    let mut state = seed | 1;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    // What each read returned after each write, and a time after it and before the next.
    let mut then = Vec::new();
    for _ in 0..40 {
        let (tool, args) = random_write(&mut next);
        let _ = call(&client, tool, args).await.unwrap(); // a missing entity is an error result
        let graph = ok(&client, "read_graph", json!({})).await;
        let found = ok(&client, "search_nodes", json!({ "query": "note 1" })).await;
        let opened = ok(&client, "open_nodes", json!({ "names": ["Ann", "Cy"] })).await;
        let around = ok(&client, "search_nodes", json!({ "query": "note 2", "depth": 2 })).await;
        then.push((tick().await, graph, found, opened, around));
    }
    for (i, (at, graph, found, opened, around)) in then.iter().enumerate() {
        let as_of = format_time(*at);
        let context = format!("seed {seed}, write {i}, asOf {as_of}");
        assert_eq!(&ok(&client, "read_graph", json!({ "asOf": as_of })).await, graph, "read_graph: {context}");
        let search = ok(&client, "search_nodes", json!({ "query": "note 1", "asOf": as_of })).await;
        assert_eq!(&search, found, "search_nodes: {context}");
        let open = ok(&client, "open_nodes", json!({ "names": ["Ann", "Cy"], "asOf": as_of })).await;
        assert_eq!(&open, opened, "open_nodes: {context}");
        let deep = ok(&client, "search_nodes", json!({ "query": "note 2", "depth": 2, "asOf": as_of })).await;
        assert_eq!(&deep, around, "search_nodes with depth: {context}");
    }
    // Paged by a small limit, the pages of a past graph join up to the whole of it.
    let (at, graph, ..) = &then[then.len() / 2];
    let (mut entities, mut relations, mut cursor) = (Vec::new(), Vec::new(), None::<String>);
    loop {
        let mut args = json!({ "asOf": format_time(*at), "limit": 2 });
        if let Some(c) = &cursor {
            args["cursor"] = json!(c);
        }
        let page = ok(&client, "read_graph", args).await;
        entities.extend(page["entities"].as_array().unwrap().iter().cloned());
        relations.extend(page["relations"].as_array().unwrap().iter().cloned());
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(json!({ "entities": entities, "relations": relations }), without_cursor(graph.clone()), "seed {seed}");
});

both_backends!(times_are_reported_only_when_asked_and_follow_changes, |db| async move {
    let Some(app) = spawn_app(db).await else { return };
    let client = app.client().await;
    let before = tick().await;
    let ann = json!([{ "name": "Ann", "entityType": "person", "observations": ["likes tea"] }]);
    ok(&client, "create_entities", json!({ "entities": ann })).await;
    ok(&client, "create_relations", json!({ "relations": [{ "from": "Ann", "to": "Ann", "relationType": "is" }] }))
        .await;
    let created = tick().await;

    let plain = call(&client, "read_graph", json!({})).await.unwrap();
    assert!(!text(&plain).contains("createdAt"), "no time unless asked: {}", text(&plain));
    // The present's times (looked up for the page's rows) are those of the graph read as of now.
    let now = ok(&client, "read_graph", json!({ "include": ["time"], "asOf": format_time(now_ms()) })).await;
    assert_eq!(ok(&client, "read_graph", json!({ "include": ["time"] })).await, now);
    let timed = call(&client, "read_graph", json!({ "include": ["time"] })).await.unwrap();
    let value = timed.structured_content.clone().unwrap();
    assert_eq!(serde_json::from_str::<Value>(&text(&timed)).unwrap(), value, "the text is the structured content");
    let entity = &value["entities"][0];
    let at = |v: &Value| mcp_server::memory::parse_time(v.as_str().unwrap()).unwrap();
    assert!((before..=created).contains(&at(&entity["createdAt"])), "{entity}");
    assert_eq!(entity["updatedAt"], entity["createdAt"]);
    assert_eq!(entity["observationsCreatedAt"].as_array().unwrap().len(), 1);
    assert!((before..=created).contains(&at(&value["relations"][0]["createdAt"])), "{value}");

    // An added observation, then a deleted one, each move updatedAt on.
    ok(&client, "add_observations", json!({ "observations": [{ "entityName": "Ann", "contents": ["reads"] }] })).await;
    let added = tick().await;
    let deletion = json!({ "deletions": [{ "entityName": "Ann", "observations": ["likes tea"] }] });
    ok(&client, "delete_observations", deletion).await;
    let deleted = tick().await;
    let e = ok(&client, "open_nodes", json!({ "names": ["Ann"], "include": ["time"] })).await["entities"][0].clone();
    assert!((added..=deleted).contains(&at(&e["updatedAt"])), "{e}");
    assert_eq!(e["createdAt"], entity["createdAt"]);
    assert_eq!(e["observations"], json!(["reads"]));
    assert!((created..=added).contains(&at(&e["observationsCreatedAt"][0])), "{e}");
    let searched = ok(&client, "search_nodes", json!({ "query": "read", "include": ["time"] })).await;
    assert_eq!(searched["entities"][0], e);

    // As it was before the deletion: both observations, and updatedAt the addition's.
    let was = ok(&client, "open_nodes", json!({ "names": ["Ann"], "asOf": format_time(added), "include": ["time"] }))
        .await["entities"][0]
        .clone();
    assert_eq!(was["observations"], json!(["likes tea", "reads"]));
    assert!((created..=added).contains(&at(&was["updatedAt"])), "{was}");
});

both_backends!(since_and_until_keep_what_changed_within_them, |db| async move {
    let Some(app) = spawn_app(db).await else { return };
    let client = app.client().await;
    let entity = |name: &str| json!({ "entities": [{ "name": name, "entityType": "t", "observations": [] }] });
    ok(&client, "create_entities", entity("Old")).await;
    ok(&client, "create_entities", entity("Quiet")).await;
    let t1 = tick().await;
    ok(&client, "create_entities", entity("New")).await;
    ok(&client, "add_observations", json!({ "observations": [{ "entityName": "Old", "contents": ["moved"] }] })).await;
    ok(&client, "create_relations", json!({ "relations": [{ "from": "New", "to": "Quiet", "relationType": "r" }] }))
        .await;
    let t2 = tick().await;
    ok(&client, "create_entities", entity("Later")).await;

    let names = |v: &Value| -> Vec<String> {
        v["entities"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_string()).collect()
    };
    let window = json!({ "since": format_time(t1), "until": format_time(t2) });
    let read = ok(&client, "read_graph", window.clone()).await;
    assert_eq!(names(&read), ["Old", "New"]);
    assert_eq!(read["relations"].as_array().unwrap().len(), 1, "the relation created within: {read}");
    let mut search = window.clone();
    search["query"] = json!("e");
    assert_eq!(names(&ok(&client, "search_nodes", search).await), ["Old", "New"]);
    let since = ok(&client, "read_graph", json!({ "since": format_time(t2) })).await;
    assert_eq!(names(&since), ["Later"]);
    assert_eq!(since["relations"], json!([]));
    let until = ok(&client, "read_graph", json!({ "until": format_time(t1) })).await;
    assert_eq!(names(&until), ["Old", "Quiet"]);
});

both_backends!(history_is_kept_per_tenant, |db| async move {
    let Some(test_db) = common::TestDb::new(db).await else { return };
    let memory = common::memory(&test_db.url, &[]).await;
    let (alice, bob) = (Tenant::new("alice"), Tenant::new("bob"));
    let ann: Vec<mcp_server::memory::Entity> =
        serde_json::from_value(json!([{ "name": "Ann", "entityType": "person", "observations": ["secret"] }])).unwrap();
    memory.create_entities(&alice, ann.clone()).await.unwrap();
    let before = tick().await;
    memory.delete_entities(&alice, vec!["Ann".into()]).await.unwrap();
    let page = PageRequest::default();
    let as_of = TimeQuery { as_of: Some(before), ..TimeQuery::default() };
    let alices = memory.read_graph_at(&alice, &page, &as_of).await.unwrap();
    assert_eq!(alices.graph.entities, ann, "alice's graph as it was");
    assert!(memory.read_graph(&alice, &page).await.unwrap().graph.entities.is_empty());
    for time in [as_of, TimeQuery { since: Some(0), ..TimeQuery::default() }] {
        let bobs = memory.read_graph_at(&bob, &page, &time).await.unwrap();
        assert!(bobs.graph.entities.is_empty(), "bob never sees alice's history: {bobs:?}");
        let found = memory.search_nodes_at(&bob, "secret", &page, &time, 0).await.unwrap();
        assert!(found.graph.entities.is_empty());
    }
});

both_backends!(history_past_the_retention_is_purged_and_not_read, |db| async move {
    let Some(app) = spawn_app_with(db, &["--history-retention", "2s"]).await else { return };
    let client = app.client().await;
    let ann = json!([{ "name": "Ann", "entityType": "person", "observations": ["x"] }]);
    ok(&client, "create_entities", json!({ "entities": ann })).await;
    ok(&client, "delete_entities", json!({ "entityNames": ["Ann"] })).await;
    let pool = common::sql(&app.db.url).await;
    let held = || async {
        let q = "SELECT (SELECT count(*) FROM entity_history) + (SELECT count(*) FROM observation_history)";
        sqlx::query_scalar::<_, i64>(q).fetch_one(&pool).await.unwrap()
    };
    assert_eq!(held().await, 2, "the deleted entity and its observation are history");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while held().await > 0 {
        assert!(tokio::time::Instant::now() < deadline, "history was never purged");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let long_ago = format_time(now_ms() - 60_000);
    let error = call(&client, "read_graph", json!({ "asOf": long_ago })).await.unwrap_err();
    assert_eq!(error.code.0, -32602);
    assert!(error.message.contains("asOf") && error.message.contains("HISTORY_RETENTION"), "{}", error.message);
});

both_backends!(times_keep_the_reply_budget, |db| async move {
    let Some(app) = spawn_app_with(db, &["--max-reply-bytes", "65536"]).await else { return };
    let client = app.client().await;
    let entities: Vec<Value> = (0..400)
        .map(|i| json!({ "name": format!("e{i}"), "entityType": "t", "observations": ["a", "b", "c", "d", "e"] }))
        .collect();
    ok(&client, "create_entities", json!({ "entities": entities })).await;
    for args in [json!({ "include": ["time"] }), json!({ "include": ["time"], "asOf": format_time(now_ms()) })] {
        let (mut seen, mut cursor) = (0, None::<String>);
        loop {
            let mut args = args.clone();
            if let Some(c) = &cursor {
                args["cursor"] = json!(c);
            }
            let result = call(&client, "read_graph", args.clone()).await.unwrap();
            let reply = serde_json::to_string(&json!({ "jsonrpc": "2.0", "id": 1, "result": result })).unwrap();
            assert!(reply.len() <= 65_536, "{args}: a reply of {} bytes", reply.len());
            let page = result.structured_content.unwrap();
            let on_page = page["entities"].as_array().unwrap();
            assert!(on_page.iter().all(|e| e["observationsCreatedAt"].as_array().unwrap().len() == 5));
            seen += on_page.len();
            match page["nextCursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        assert_eq!(seen, 400, "{args}");
    }
});

#[tokio::test]
async fn bad_times_are_refused_naming_the_field() {
    let Some(app) = spawn_app(common::Db::Sqlite).await else { return };
    let client: Client = app.client().await;
    let refused = |tool: &'static str, args: Value, field: &'static str, says: &'static str| {
        let client = &client;
        async move {
            let error = call(client, tool, args).await.unwrap_err();
            assert_eq!(error.code.0, -32602, "{tool}");
            assert_eq!(error.data.as_ref().and_then(|d| d["field"].as_str()), Some(field), "{}", error.message);
            assert!(error.message.contains(says), "{tool}: {}", error.message);
        }
    };
    refused("read_graph", json!({ "asOf": "yesterday" }), "asOf", "RFC 3339").await;
    refused("search_nodes", json!({ "query": "x", "since": "2026-13-01T00:00:00Z" }), "since", "RFC 3339").await;
    let backwards = json!({ "since": "2026-12-02T00:00:00Z", "until": "2026-12-01T00:00:00Z" });
    refused("read_graph", backwards, "since", "after until").await;
    refused("read_graph", json!({ "asOf": "2020-01-01T00:00:00Z" }), "asOf", "older than the history kept").await;
    let recent = format_time(now_ms() - 3_600_000);
    refused("read_graph", json!({ "asOf": recent }), "asOf", "before history began").await;
    refused(
        "search_nodes",
        json!({ "query": "x", "asOf": format_time(now_ms()), "mode": "lexical" }),
        "mode",
        "needs embeddings",
    )
    .await;
    refused("open_nodes", json!({ "names": [], "since": format_time(now_ms()) }), "since", "asOf and include").await;
    refused("read_graph", json!({ "include": ["everything"] }), "include[0]", "not one of: time").await;
}

both_backends!(export_with_time_and_import_keep_the_times, |db| async move {
    let Some(app) = spawn_app(db).await else { return };
    let client = app.client().await;
    let ann = json!([{ "name": "Ann", "entityType": "person", "observations": ["likes tea"] }]);
    ok(&client, "create_entities", json!({ "entities": ann })).await;
    tick().await;
    ok(&client, "add_observations", json!({ "observations": [{ "entityName": "Ann", "contents": ["reads"] }] })).await;
    ok(&client, "create_relations", json!({ "relations": [{ "from": "Ann", "to": "Bo", "relationType": "knows" }] }))
        .await;
    tick().await;
    let timed = ok(&client, "read_graph", json!({ "include": ["time"] })).await;

    let run = |args: &[&str], url: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mcp-server"))
            .args(args)
            .env("DATABASE_URL", url)
            .env("LOG_LEVEL", "warn")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let plain = run(&["export"], &app.db.url);
    assert!(!plain.contains("createdAt"), "the reference's format has no times: {plain}");
    let file = run(&["export", "--with-time"], &app.db.url);
    let first: Value = serde_json::from_str(file.lines().next().unwrap()).unwrap();
    assert_eq!(first["createdAt"], timed["entities"][0]["createdAt"], "{file}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("graph.jsonl");
    std::fs::write(&path, &file).unwrap();
    let target = spawn_app(db).await.unwrap();
    let path = path.to_str().unwrap();
    run(&["import", path], &target.db.url);
    let copy = ok(&target.client().await, "read_graph", json!({ "include": ["time"] })).await;
    assert_eq!(copy, timed, "the imported rows keep the exported times");
    // Imported again, nothing is created and nothing changes.
    run(&["import", path], &target.db.url);
    assert_eq!(ok(&target.client().await, "read_graph", json!({ "include": ["time"] })).await, timed);

    std::fs::write(dir.path().join("bad.jsonl"), file.replacen("\"createdAt\":\"", "\"createdAt\":\"x", 1)).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mcp-server"))
        .args(["import", dir.path().join("bad.jsonl").to_str().unwrap()])
        .env("DATABASE_URL", &target.db.url)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("line 1") && stderr.contains("createdAt"), "{stderr}");
});
