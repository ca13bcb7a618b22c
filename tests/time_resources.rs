//! The resources read by time as the read tools do (`?include=time`, `?asOf=…`), on both
//! backends: the reference's shape unless asked, the tools' times and past when asked, and a bad
//! parameter refused naming it.

use std::time::Duration;

use mcp_server::memory::{format_time, now_ms};
use rmcp::model::ReadResourceRequestParams;
use serde_json::{Value, json};

use crate::common::{self, Client, ok, spawn_app};

async fn read(client: &Client, uri: &str) -> Result<Value, rmcp::ErrorData> {
    match client.read_resource(ReadResourceRequestParams::new(uri)).await {
        Ok(read) => {
            let text = serde_json::to_value(&read.contents[0]).unwrap()["text"].as_str().unwrap().to_string();
            Ok(serde_json::from_str(&text).unwrap())
        }
        Err(rmcp::ServiceError::McpError(e)) => Err(e),
        Err(other) => panic!("reading {uri}: {other:?}"),
    }
}

/// An RFC 3339 time, percent-encoded as a URI template expands it.
fn encoded(ms: i64) -> String {
    format_time(ms).replace(':', "%3A")
}

both_backends!(resources_carry_times_and_the_past_when_asked, |db| async move {
    let Some(app) = spawn_app(db).await else { return };
    let client = app.client().await;
    tokio::time::sleep(Duration::from_millis(3)).await;
    let empty = now_ms();
    tokio::time::sleep(Duration::from_millis(3)).await;
    let ada = json!([{ "name": "Ada", "entityType": "person", "observations": ["likes tea"] },
                     { "name": "Bob", "entityType": "person", "observations": [] }]);
    ok(&client, "create_entities", json!({ "entities": ada })).await;
    ok(&client, "create_relations", json!({ "relations": [{ "from": "Bob", "to": "Ada", "relationType": "knows" }] }))
        .await;
    tokio::time::sleep(Duration::from_millis(3)).await;
    let created = now_ms();
    tokio::time::sleep(Duration::from_millis(3)).await;
    let deletion = json!({ "deletions": [{ "entityName": "Ada", "observations": ["likes tea"] }] });
    ok(&client, "delete_observations", deletion).await;

    let templates = client.list_all_resource_templates().await.unwrap();
    let uris: Vec<&str> = templates.iter().map(|t| t.uri_template.as_str()).collect();
    assert!(uris.contains(&"memory://entities/{name}{?asOf,include}"), "{uris:?}");
    assert!(uris.contains(&"memory://knowledge-graph{?asOf,since,until,include}"), "{uris:?}");

    // Unasked, the reference's shape; asked, what the tools say, the relation from Bob included.
    let plain = read(&client, "memory://entities/Ada").await.unwrap();
    assert!(!plain.to_string().contains("createdAt"), "{plain}");
    let timed = read(&client, "memory://entities/Ada?include=time").await.unwrap();
    let opened = ok(&client, "open_nodes", json!({ "names": ["Ada"], "include": ["time"] })).await;
    assert_eq!(timed, opened);
    assert!(timed["entities"][0]["updatedAt"].as_str().unwrap() > timed["entities"][0]["createdAt"].as_str().unwrap());
    assert_eq!(timed["relations"][0]["from"], "Bob");
    assert!(timed["relations"][0]["createdAt"].is_string(), "{timed}");

    // As it was: the deleted observation is back, on the entity and in the whole graph.
    let was = read(&client, &format!("memory://entities/Ada?asOf={}", encoded(created))).await.unwrap();
    assert_eq!(was["entities"][0]["observations"], json!(["likes tea"]));
    let graph_uri = format!("memory://knowledge-graph?asOf={}&include=time", encoded(created));
    let graph = read(&client, &graph_uri).await.unwrap();
    let graph_then = ok(&client, "read_graph", json!({ "asOf": format_time(created), "include": ["time"] })).await;
    assert_eq!(graph, graph_then);
    assert_eq!(graph["entities"][0]["observations"], json!(["likes tea"]));
    let before = read(&client, &format!("memory://entities/Ada?asOf={}", encoded(empty))).await;
    assert_eq!(before.unwrap_err().code.0, -32002, "Ada did not exist yet");

    // A bad parameter or time is refused, naming it.
    for (uri, field) in [
        ("memory://entities/Ada?since=2026-12-01T00%3A00%3A00Z", "since"),
        ("memory://entities/Ada?include=tiem", "include[0]"),
        ("memory://knowledge-graph?asOf=yesterday", "asOf"),
        ("memory://knowledge-graph?include=time&include=time", "include"),
    ] {
        let e = read(&client, uri).await.unwrap_err();
        assert_eq!(e.code.0, -32602, "{uri}: {e:?}");
        assert_eq!(e.data.as_ref().unwrap()["field"], field, "{uri}: {e:?}");
    }
});
