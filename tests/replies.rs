//! The reply budget (MAX_REPLY_BYTES): a graph read larger than it comes in pages within it,
//! whose cursors reach everything exactly once; the graph resource, which cannot page, refuses.

use crate::common;

use std::collections::BTreeSet;

use common::{Db, call, spawn_app_with, text};
use rmcp::model::ReadResourceRequestParams;
use serde_json::{Value, json};

const BUDGET: usize = 65_536;

/// Follows a read's cursors; each page's whole JSON-RPC reply must be within the budget.
async fn pages(c: &common::Client, tool: &str, args: Value) -> (usize, Vec<String>, Vec<(String, String)>) {
    let (mut count, mut names, mut relations, mut cursor) = (0, vec![], vec![], None::<String>);
    loop {
        let mut args = args.clone();
        if let Some(cursor) = &cursor {
            args["cursor"] = json!(cursor);
        }
        let result = call(c, tool, args.clone()).await.unwrap_or_else(|e| panic!("{tool} {args}: {e:?}"));
        let reply = serde_json::to_string(&json!({ "jsonrpc": "2.0", "id": 1, "result": result })).unwrap();
        assert!(reply.len() <= BUDGET, "{tool} {args}: a reply of {} bytes", reply.len());
        let page = result.structured_content.clone().unwrap();
        assert_eq!(serde_json::from_str::<Value>(&text(&result)).unwrap(), page, "the text is the same JSON");
        let entities = page["entities"].as_array().unwrap();
        names.extend(entities.iter().map(|e| e["name"].as_str().unwrap().to_string()));
        relations.extend(
            page["relations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| (r["from"].as_str().unwrap().to_string(), r["to"].as_str().unwrap().to_string())),
        );
        count += 1;
        match page.get("nextCursor") {
            Some(next) => cursor = Some(next.as_str().unwrap().to_string()),
            None => return (count, names, relations),
        }
    }
}

both_backends!(reads_over_the_budget_come_in_pages_that_reach_everything_once, |db: Db| async move {
    for cache in ["50000", "0"] {
        let settings = ["--max-reply-bytes", "65536", "--graph-cache-entities", cache];
        let Some(app) = spawn_app_with(db, &settings).await else {
            return;
        };
        let c = app.client().await;
        // About 300 KB of reply: five budgets' worth.
        let names: Vec<String> = (0..400).map(|i| format!("entity {i}")).collect();
        let note = format!("about {}", "a".repeat(200));
        let entities: Vec<Value> =
            names.iter().map(|n| json!({ "name": n, "entityType": "thing", "observations": [note] })).collect();
        call(&c, "create_entities", json!({ "entities": entities })).await.unwrap();
        let all: Vec<(String, String)> = names.windows(2).map(|w| (w[0].clone(), w[1].clone())).collect();
        let relations: Vec<Value> =
            all.iter().map(|(from, to)| json!({ "from": from, "to": to, "relationType": "next" })).collect();
        call(&c, "create_relations", json!({ "relations": relations })).await.unwrap();

        let (count, got, rels) = pages(&c, "read_graph", json!({})).await;
        assert!(count >= 4, "cache {cache}: {count} pages");
        assert_eq!(got, names, "cache {cache}: every entity once, in order");
        assert_eq!(rels, all, "cache {cache}: every relation once, in order");
        let (count, got, _) = pages(&c, "read_graph", json!({ "limit": 1000 })).await;
        assert!(count >= 4 && got == names, "cache {cache}: a limit is within the budget too");

        // Searches: unpaged (insertion order) and ranked with a limit (every name a prefix match,
        // so id order again). A relation between entities on two pages is on both.
        for args in [json!({ "query": "a" }), json!({ "query": "ENTITY", "limit": 1000 })] {
            let (count, got, rels) = pages(&c, "search_nodes", args.clone()).await;
            assert!(count >= 4, "cache {cache}, {args}: {count} pages");
            assert_eq!(got, names, "cache {cache}, {args}: every entity once, in order");
            let expected: BTreeSet<_> = all.iter().cloned().collect();
            assert_eq!(rels.into_iter().collect::<BTreeSet<_>>(), expected, "cache {cache}, {args}");
        }

        let err = c.read_resource(ReadResourceRequestParams::new("memory://knowledge-graph")).await.unwrap_err();
        let rmcp::ServiceError::McpError(err) = err else { panic!("{err:?}") };
        assert!(err.message.contains("MAX_REPLY_BYTES") && err.message.contains("read_graph"), "{}", err.message);
        assert_eq!(err.data.unwrap()["limit"], "MAX_REPLY_BYTES");

        // Within the budget a read is whole, as the reference's.
        call(&c, "delete_entities", json!({ "entityNames": &names[20..] })).await.unwrap();
        let (count, got, _) = pages(&c, "read_graph", json!({})).await;
        assert_eq!((count, got), (1, names[..20].to_vec()), "cache {cache}");
        assert!(c.read_resource(ReadResourceRequestParams::new("memory://knowledge-graph")).await.is_ok());
        c.cancel().await.unwrap();
        app.shutdown().await;
    }
});
