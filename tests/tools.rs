//! Every tool through an MCP client over Streamable HTTP, on SQLite and PostgreSQL.

use crate::common;

use common::{Db, call, ok, spawn_app, text};
use serde_json::{Value, json};

fn entity(name: &str, kind: &str, observations: &[&str]) -> Value {
    json!({ "name": name, "entityType": kind, "observations": observations })
}

both_backends!(tools_list_is_the_reference_list, |db: Db| async move {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let client = app.client().await;
    let tools = client.list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(names, common::TOOLS);
    let delete = tools.iter().find(|t| t.name == "delete_entities").unwrap();
    let hints = delete.annotations.as_ref().unwrap();
    assert_eq!(
        (hints.read_only_hint, hints.destructive_hint, hints.idempotent_hint),
        (Some(false), Some(true), Some(true))
    );
    let search = tools.iter().find(|t| t.name == "search_nodes").unwrap();
    assert_eq!(search.input_schema["required"], json!(["query"]));
    assert!(search.output_schema.is_some());
    client.cancel().await.unwrap();
});

both_backends!(full_workflow_matches_reference_semantics, |db: Db| async move {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let c = app.client().await;

    let created = ok(
        &c,
        "create_entities",
        json!({ "entities": [
            entity("Alice", "person", &["likes tea", "works at Acme"]),
            entity("Acme", "company", &[]),
            entity("Bob", "person", &["ÄÖÜ unicode"]),
        ]}),
    )
    .await;
    assert_eq!(created["entities"].as_array().unwrap().len(), 3);

    // Existing names are skipped and not returned.
    let again = ok(
        &c,
        "create_entities",
        json!({ "entities": [entity("Alice", "robot", &[]), entity("Carol", "person", &[])] }),
    )
    .await;
    assert_eq!(again, json!({ "entities": [entity("Carol", "person", &[])] }));

    let rels = ok(
        &c,
        "create_relations",
        json!({ "relations": [
            { "from": "Alice", "to": "Acme", "relationType": "works_at" },
            { "from": "Bob", "to": "Alice", "relationType": "knows" },
        ]}),
    )
    .await;
    assert_eq!(rels["relations"].as_array().unwrap().len(), 2);
    let dup = ok(
        &c,
        "create_relations",
        json!({ "relations": [{ "from": "Alice", "to": "Acme", "relationType": "works_at" }] }),
    )
    .await;
    assert_eq!(dup, json!({ "relations": [] }));

    let added = ok(
        &c,
        "add_observations",
        json!({ "observations": [
            { "entityName": "Alice", "contents": ["likes tea", "plays chess"] },
        ]}),
    )
    .await;
    assert_eq!(added, json!({ "results": [{ "entityName": "Alice", "addedObservations": ["plays chess"] }] }));

    // Case-insensitive substring over names, types and observations; relations touching a hit.
    let found = ok(&c, "search_nodes", json!({ "query": "CHESS" })).await;
    assert_eq!(found["entities"], json!([entity("Alice", "person", &["likes tea", "works at Acme", "plays chess"])]));
    assert_eq!(found["relations"].as_array().unwrap().len(), 2);
    let by_type = ok(&c, "search_nodes", json!({ "query": "compan" })).await;
    assert_eq!(by_type["entities"][0]["name"], "Acme");
    let unicode = ok(&c, "search_nodes", json!({ "query": "äöü" })).await;
    assert_eq!(unicode["entities"][0]["name"], "Bob");
    // Substrings across word boundaries, as the trigram indexes must serve them too.
    let across = ok(&c, "search_nodes", json!({ "query": "KS AT AC" })).await;
    assert_eq!(across["entities"][0]["name"], "Alice");
    assert_eq!(across["entities"].as_array().unwrap().len(), 1);
    let quote = ok(&c, "search_nodes", json!({ "query": "\"tea OR x\"" })).await;
    assert_eq!(quote["entities"], json!([]), "FTS syntax in a query is literal text");
    let wildcard = ok(&c, "search_nodes", json!({ "query": "%" })).await;
    assert_eq!(wildcard["entities"], json!([]), "LIKE wildcards match only themselves");

    let opened = ok(&c, "open_nodes", json!({ "names": ["Acme", "Nobody"] })).await;
    assert_eq!(opened["entities"], json!([entity("Acme", "company", &[])]));
    assert_eq!(opened["relations"], json!([{ "from": "Alice", "to": "Acme", "relationType": "works_at" }]));

    let deleted = ok(
        &c,
        "delete_observations",
        json!({ "deletions": [
            { "entityName": "Alice", "observations": ["likes tea"] },
            { "entityName": "Nobody", "observations": ["x"] },
        ]}),
    )
    .await;
    assert_eq!(deleted, json!({ "success": true, "message": "Observations deleted successfully" }));

    ok(&c, "delete_relations", json!({ "relations": [{ "from": "Bob", "to": "Alice", "relationType": "knows" }] }))
        .await;
    // Deleting an entity cascades to the relations that name it.
    ok(&c, "delete_entities", json!({ "entityNames": ["Acme"] })).await;

    let graph = ok(&c, "read_graph", json!({})).await;
    assert_eq!(
        graph,
        json!({
            "entities": [
                entity("Alice", "person", &["works at Acme", "plays chess"]),
                entity("Bob", "person", &["ÄÖÜ unicode"]),
                entity("Carol", "person", &[]),
            ],
            "relations": [],
        })
    );

    // The text content is the reference's JSON.stringify(result, null, 2).
    let result = call(&c, "open_nodes", json!({ "names": ["Carol"] })).await.unwrap();
    assert_eq!(
        text(&result),
        "{\n  \"entities\": [\n    {\n      \"name\": \"Carol\",\n      \"entityType\": \"person\",\n      \"observations\": []\n    }\n  ],\n  \"relations\": []\n}"
    );
    c.cancel().await.unwrap();
});

both_backends!(failing_batch_writes_nothing, |db: Db| async move {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let c = app.client().await;
    ok(&c, "create_entities", json!({ "entities": [entity("Alice", "person", &[])] })).await;
    let result = call(
        &c,
        "add_observations",
        json!({ "observations": [
            { "entityName": "Alice", "contents": ["first"] },
            { "entityName": "Ghost", "contents": ["second"] },
        ]}),
    )
    .await
    .unwrap();
    assert_eq!(result.is_error, Some(true));
    assert_eq!(text(&result), "Entity with name Ghost not found");
    let graph = ok(&c, "read_graph", json!({})).await;
    assert_eq!(graph["entities"][0]["observations"], json!([]), "the valid half was rolled back");

    // A limit violation anywhere in the batch rejects the whole batch.
    let long = "x".repeat(600);
    let err = call(
        &c,
        "create_entities",
        json!({ "entities": [entity("Bob", "person", &[]), entity(&long, "person", &[])] }),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code.0, -32602);
    assert!(err.message.contains("entities[1].name") && err.message.contains("MAX_NAME_BYTES"), "{}", err.message);
    assert_eq!(ok(&c, "open_nodes", json!({ "names": ["Bob"] })).await["entities"], json!([]));
    c.cancel().await.unwrap();
});

both_backends!(bad_arguments_name_the_field, |db: Db| async move {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let c = app.client().await;
    let missing = call(&c, "create_entities", json!({})).await.unwrap_err();
    assert_eq!(missing.code.0, -32602);
    assert_eq!(missing.data, Some(json!({ "field": "entities" })));
    let wrong_type =
        call(&c, "create_entities", json!({ "entities": [{ "name": 1, "entityType": "t", "observations": [] }] }))
            .await
            .unwrap_err();
    assert_eq!(wrong_type.code.0, -32602);
    assert!(wrong_type.message.contains("entities[0].name"), "{}", wrong_type.message);
    let unknown = call(&c, "no_such_tool", json!({})).await.unwrap_err();
    assert_eq!(unknown.code.0, -32602);
    assert_eq!(unknown.message, "Unknown tool: no_such_tool");
    let too_many: Vec<String> = (0..1001).map(|i| format!("n{i}")).collect();
    let batch = call(&c, "open_nodes", json!({ "names": too_many })).await.unwrap_err();
    assert!(batch.message.contains("MAX_BATCH"), "{}", batch.message);
    let limit = call(&c, "read_graph", json!({ "limit": 0 })).await.unwrap_err();
    assert_eq!(limit.data, Some(json!({ "field": "limit" })));
    c.cancel().await.unwrap();
});

both_backends!(read_graph_and_search_page_with_cursors, |db: Db| async move {
    let Some(app) = spawn_app(db).await else {
        return;
    };
    let c = app.client().await;
    let entities: Vec<Value> = (0..7).map(|i| entity(&format!("node{i}"), "thing", &[&format!("obs {i}")])).collect();
    ok(&c, "create_entities", json!({ "entities": entities })).await;
    let relations: Vec<Value> = (0..5)
        .map(|i| json!({ "from": format!("node{i}"), "to": format!("node{}", i + 1), "relationType": "next" }))
        .collect();
    ok(&c, "create_relations", json!({ "relations": relations })).await;

    let (mut names, mut rels, mut cursor, mut pages) = (vec![], 0, None::<String>, 0);
    loop {
        let mut args = json!({ "limit": 3 });
        if let Some(cur) = &cursor {
            args["cursor"] = json!(cur);
        }
        let page = ok(&c, "read_graph", args).await;
        pages += 1;
        names.extend(page["entities"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_string()));
        rels += page["relations"].as_array().unwrap().len();
        match page.get("nextCursor") {
            Some(next) => cursor = Some(next.as_str().unwrap().to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names, (0..7).map(|i| format!("node{i}")).collect::<Vec<_>>());
    assert_eq!(rels, 5);

    // Ranked search: the exact name first, then prefixes, then observation-only matches.
    ok(
        &c,
        "create_entities",
        json!({ "entities": [entity("node", "thing", &[]), entity("other", "thing", &["mentions node"])] }),
    )
    .await;
    let page = ok(&c, "search_nodes", json!({ "query": "node", "limit": 2 })).await;
    assert_eq!(page["entities"][0]["name"], "node");
    assert_eq!(page["entities"][1]["name"], "node0");
    let next = page["nextCursor"].as_str().unwrap().to_string();
    let mut seen = 2;
    let mut cursor = Some(next);
    let mut last = String::new();
    while let Some(cur) = cursor {
        let page = ok(&c, "search_nodes", json!({ "query": "node", "limit": 2, "cursor": cur })).await;
        seen += page["entities"].as_array().unwrap().len();
        last = page["entities"].as_array().unwrap().last().unwrap()["name"].as_str().unwrap().to_string();
        cursor = page.get("nextCursor").and_then(Value::as_str).map(str::to_string);
    }
    assert_eq!(seen, 9);
    assert_eq!(last, "other", "observation-only match ranks last");

    // A cursor is bound to its query: replaying it elsewhere is refused.
    let page = ok(&c, "search_nodes", json!({ "query": "node", "limit": 2 })).await;
    let err = call(&c, "search_nodes", json!({ "query": "thing", "limit": 2, "cursor": page["nextCursor"] }))
        .await
        .unwrap_err();
    assert_eq!(err.data, Some(json!({ "field": "cursor" })));
    let err = call(&c, "read_graph", json!({ "cursor": "garbage" })).await.unwrap_err();
    assert_eq!(err.code.0, -32602);
    c.cancel().await.unwrap();
});

// One rule on both backends, with the graph cache on and off: text a write stores cannot contain
// NUL (-32602 naming the field); what reads and deletions look up with a NUL matches nothing.
both_backends!(nul_is_refused_in_stored_text_and_matches_nothing, |db: Db| async move {
    for cache in ["0", "50000"] {
        let Some(app) = common::spawn_app_with(db, &["--graph-cache-entities", cache]).await else {
            return;
        };
        let c = app.client().await;
        ok(
            &c,
            "create_entities",
            json!({ "entities": [entity("alpha", "thing", &["a b"]), entity("beta", "thing", &[])] }),
        )
        .await;
        ok(&c, "create_relations", json!({ "relations": [{ "from": "alpha", "to": "beta", "relationType": "ab" }] }))
            .await;
        let graph = ok(&c, "read_graph", json!({})).await;

        let refused = [
            ("create_entities", json!({ "entities": [entity("a\u{0}b", "t", &[])] }), "entities[0].name"),
            ("create_entities", json!({ "entities": [entity("n", "t\u{0}", &[])] }), "entities[0].entityType"),
            (
                "create_entities",
                json!({ "entities": [entity("n", "t", &["ok", "\u{0}"])] }),
                "entities[0].observations[1]",
            ),
            (
                "create_relations",
                json!({ "relations": [{ "from": "alpha", "to": "beta", "relationType": "x\u{0}" }] }),
                "relations[0].relationType",
            ),
            (
                "add_observations",
                json!({ "observations": [{ "entityName": "alpha", "contents": ["\u{0}"] }] }),
                "observations[0].contents[0]",
            ),
            (
                "add_observations",
                json!({ "observations": [{ "entityName": "alpha\u{0}", "contents": ["x"] }] }),
                "observations[0].entityName",
            ),
        ];
        for (tool, args, field) in refused {
            let err = call(&c, tool, args).await.unwrap_err();
            assert_eq!(
                (err.code.0, err.data),
                (-32602, Some(json!({ "field": field }))),
                "{tool} {field} (cache {cache})"
            );
            assert!(err.message.contains("NUL"), "{}", err.message);
        }

        let empty = json!({ "entities": [], "relations": [] });
        for query in ["\u{0}", "a\u{0}b", "alp\u{0}", "\u{0}a"] {
            assert_eq!(ok(&c, "search_nodes", json!({ "query": query })).await, empty, "{query:?} (cache {cache})");
            assert_eq!(ok(&c, "search_nodes", json!({ "query": query, "limit": 5 })).await, empty);
        }
        let opened = ok(&c, "open_nodes", json!({ "names": ["alpha\u{0}", "beta"] })).await;
        assert_eq!(opened["entities"].as_array().unwrap().len(), 1);
        ok(&c, "delete_entities", json!({ "entityNames": ["alpha\u{0}", "\u{0}"] })).await;
        ok(&c, "delete_observations", json!({ "deletions": [{ "entityName": "alpha", "observations": ["a b\u{0}"] }, { "entityName": "alpha\u{0}", "observations": ["a b"] }] }))
            .await;
        ok(
            &c,
            "delete_relations",
            json!({ "relations": [{ "from": "alpha\u{0}", "to": "beta", "relationType": "ab" }] }),
        )
        .await;
        assert_eq!(ok(&c, "read_graph", json!({})).await, graph, "nothing was written or deleted (cache {cache})");
        c.cancel().await.unwrap();
    }
});
