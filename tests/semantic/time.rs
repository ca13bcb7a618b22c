//! Search by words and meaning in the past (`asOf`) and within a window (`since`/`until`): only
//! the entities of that graph, as they were, and no entity ranked by a vector of a later text.

use std::{collections::BTreeSet, time::Duration};

use mcp_server::memory::{format_time, now_ms};
use serde_json::{Value, json};

use super::{names, remember, search, until_first, with_local_model};
use crate::common::{self, call, ok};

/// A time between the writes before it and those after.
async fn between() -> String {
    tokio::time::sleep(Duration::from_millis(3)).await;
    let at = format_time(now_ms());
    tokio::time::sleep(Duration::from_millis(3)).await;
    at
}

fn set(found: &Value) -> BTreeSet<String> {
    names(found).into_iter().collect()
}

fn observations<'a>(found: &'a Value, name: &str) -> Vec<&'a str> {
    let entities = found["entities"].as_array().unwrap();
    let entity = entities.iter().find(|e| e["name"] == name).unwrap_or_else(|| panic!("{name} in {found}"));
    entity["observations"].as_array().unwrap().iter().map(|o| o.as_str().unwrap()).collect()
}

both_backends!(search_by_meaning_reads_the_past_and_windows, |db| async move {
    let Some(app) = with_local_model(db).await else { return };
    let client = app.client().await;
    remember(&client).await;
    until_first(&client, "musical instrument", "semantic", "Carol").await;
    until_first(&client, "peanuts", "lexical", "Dana").await;
    let before = between().await;
    let frank =
        json!([{ "name": "Frank", "entityType": "person", "observations": ["plays the violin in a string quartet"] }]);
    ok(&client, "create_entities", json!({ "entities": frank })).await;
    let trumpet = json!([{ "entityName": "Bob", "contents": ["learned to play the trumpet"] }]);
    ok(&client, "add_observations", json!({ "observations": trumpet })).await;
    ok(&client, "delete_entities", json!({ "entityNames": ["Dana"] })).await;
    until_first(&client, "trumpet", "lexical", "Bob").await;
    until_first(&client, "violin", "lexical", "Frank").await;
    until_first(&client, "musician in a string quartet", "semantic", "Frank").await;

    // A window keeps only what changed within it, ranked by meaning.
    let since = json!({ "since": before });
    let recent = search(&client, "musical instrument", "semantic", since.clone()).await;
    assert_eq!(set(&recent), BTreeSet::from(["Bob".into(), "Frank".into()]), "{recent}");
    assert_eq!(recent["scores"].as_array().unwrap().len(), 2, "{recent}");
    let words = search(&client, "cello", "lexical", since.clone()).await;
    assert_eq!(names(&words), Vec::<String>::new(), "Carol's cello is older than the window: {words}");
    assert_eq!(names(&search(&client, "cello", "lexical", json!({ "until": before })).await), ["Carol"]);
    let hybrid = search(&client, "trumpet", "hybrid", since.clone()).await;
    assert_eq!(names(&hybrid).first().map(String::as_str), Some("Bob"), "{hybrid}");
    assert_eq!(set(&hybrid), set(&recent), "{hybrid}");

    // The past: the entities then, as they were; those changed since are not ranked by their
    // vectors of now, so Bob (whose trumpet is later) is no answer by meaning then, while
    // Dana, deleted since, is still found by her words then.
    let as_of = json!({ "asOf": before });
    let then = search(&client, "brass instrument", "semantic", as_of.clone()).await;
    assert_eq!(set(&then), BTreeSet::from(["Carol".into(), "Evan".into()]), "{then}");
    assert_eq!(names(&then)[0], "Carol", "{then}");
    let peanuts = search(&client, "peanuts", "hybrid", as_of.clone()).await;
    assert_eq!(names(&peanuts).first().map(String::as_str), Some("Dana"), "{peanuts}");
    assert!(!names(&search(&client, "peanuts", "hybrid", json!({})).await).contains(&"Dana".to_string()));
    let truck = search(&client, "truck", "hybrid", as_of.clone()).await;
    assert_eq!(observations(&truck, "Bob"), ["drives an old red pickup truck to work"], "{truck}");
    let violin = search(&client, "violin", "lexical", as_of.clone()).await;
    assert_eq!(names(&violin), Vec::<String>::new(), "Frank came later: {violin}");

    // Paged, each entity once; times when asked; a cursor serves only its own moment.
    let first = search(&client, "person", "hybrid", json!({ "asOf": before, "limit": 2 })).await;
    let cursor = first["nextCursor"].as_str().expect("a second page").to_string();
    let rest = search(&client, "person", "hybrid", json!({ "asOf": before, "limit": 10, "cursor": cursor })).await;
    let mut all = [names(&first), names(&rest)].concat();
    all.sort();
    assert_eq!(all, ["Bob", "Carol", "Dana", "Evan"], "{first} {rest}");
    let elsewhere = json!({ "query": "person", "mode": "hybrid", "since": before, "cursor": cursor });
    assert_eq!(call(&client, "search_nodes", elsewhere).await.unwrap_err().code.0, -32602);
    let timed =
        search(&client, "musical instrument", "semantic", json!({ "since": before, "include": ["time"] })).await;
    assert!(timed["entities"].as_array().unwrap().iter().all(|e| e["createdAt"].is_string()), "{timed}");
    assert_eq!(set(&timed), set(&recent));
    app.shutdown().await;
});
