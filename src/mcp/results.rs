//! Tool results shaped as the reference's: the text is its `JSON.stringify(value, null, 2)`, the
//! structured content the same object.

use std::sync::LazyLock;

use rmcp::model::{CallToolResult, ContentBlock};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::pretty;
use crate::memory::{GraphPage, GraphTimes, KnowledgeGraph, entity_with_times, relation_with_time};

/// The text of list results is the bare array, as in the reference.
pub fn list_result<T: Serialize>(key: &str, items: &[T]) -> CallToolResult {
    let text = serde_json::to_string_pretty(items).expect("items serialize");
    let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
    result.structured_content = Some(json!({ key: items }));
    result
}

pub fn message_result(message: &str) -> CallToolResult {
    let mut result = CallToolResult::success(vec![ContentBlock::text(message)]);
    result.structured_content = Some(json!({ "success": true, "message": message }));
    result
}

/// The text is printed straight from the typed graph (`pretty`), and the structured content takes
/// the graph's strings instead of copying them (`serde_json::to_value` copied every one): building
/// a search result was a fifth of a read's CPU.
pub fn graph_result(graph: KnowledgeGraph, next_cursor: Option<String>) -> CallToolResult {
    let text = pretty::graph_text(&graph.entities, &graph.relations, next_cursor.as_deref());
    let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
    result.structured_content = Some(graph_value(graph, next_cursor));
    result
}

/// A search by meaning's scores go in the structured content only: the text stays the reference's.
/// Times, which the client asked for, go in both.
pub fn page_result(page: GraphPage) -> CallToolResult {
    let mut result = match page.times {
        Some(times) => timed_result(page.graph, page.next_cursor, times),
        None => graph_result(page.graph, page.next_cursor),
    };
    let Some(Value::Object(fields)) = result.structured_content.as_mut() else { return result };
    if let Some(scores) = page.scores {
        fields.insert(
            "scores".into(),
            scores.into_iter().map(|s| Value::from((f64::from(s) * 1e4).round() / 1e4)).collect(),
        );
    }
    if let Some(neighbours) = page.neighbours {
        fields.insert("distances".into(), neighbours.distances.into());
        if neighbours.truncated {
            fields.insert("neighboursTruncated".into(), true.into());
        }
    }
    result
}

/// The graph with each row's times after its fields, as RFC 3339 strings.
fn timed_result(graph: KnowledgeGraph, next_cursor: Option<String>, times: GraphTimes) -> CallToolResult {
    let value = timed_value(graph, next_cursor, times);
    let text = serde_json::to_string_pretty(&value).expect("a graph serializes");
    let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
    result.structured_content = Some(value);
    result
}

/// The timed graph's object, as the replies and the resources show it.
pub fn timed_value(graph: KnowledgeGraph, next_cursor: Option<String>, times: GraphTimes) -> Value {
    let entities = graph.entities.into_iter().zip(times.entities).map(|(e, t)| Value::Object(entity_with_times(e, t)));
    let relations =
        graph.relations.into_iter().zip(times.relations).map(|(r, t)| Value::Object(relation_with_time(r, t)));
    let mut fields = Map::with_capacity(3);
    fields.insert("entities".into(), Value::Array(entities.collect()));
    fields.insert("relations".into(), Value::Array(relations.collect()));
    if let Some(cursor) = next_cursor {
        fields.insert("nextCursor".into(), cursor.into());
    }
    Value::Object(fields)
}

/// `serde_json::to_value` of the graph's view, field for field.
fn graph_value(graph: KnowledgeGraph, next_cursor: Option<String>) -> Value {
    let entities = graph.entities.into_iter().map(|e| {
        let observations = e.observations.into_iter().map(Value::String).collect();
        object(&ENTITY, [e.name.into(), e.entity_type.into(), Value::Array(observations)])
    });
    let relations =
        graph.relations.into_iter().map(|r| object(&RELATION, [r.from.into(), r.to.into(), r.relation_type.into()]));
    let mut fields = Map::with_capacity(3);
    fields.insert("entities".into(), Value::Array(entities.collect()));
    fields.insert("relations".into(), Value::Array(relations.collect()));
    if let Some(cursor) = next_cursor {
        fields.insert("nextCursor".into(), cursor.into());
    }
    Value::Object(fields)
}

/// Objects' keys, in order: each object is a copy with its values set in place. Inserting each
/// key instead hashed it (SipHash, for the map's key order), a third of building the tree.
static ENTITY: LazyLock<Map<String, Value>> = LazyLock::new(|| keys(["name", "entityType", "observations"]));
static RELATION: LazyLock<Map<String, Value>> = LazyLock::new(|| keys(["from", "to", "relationType"]));

fn keys<const N: usize>(keys: [&str; N]) -> Map<String, Value> {
    keys.into_iter().map(|k| (k.to_string(), Value::Null)).collect()
}

fn object<const N: usize>(keys: &Map<String, Value>, values: [Value; N]) -> Value {
    debug_assert_eq!(keys.len(), N);
    let mut map = keys.clone();
    map.values_mut().zip(values).for_each(|(slot, value)| *slot = value);
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::{pretty::View, *};
    use crate::memory::{Entity, Relation};

    fn graph() -> KnowledgeGraph {
        let entity = |name: &str, observations: &[&str]| Entity {
            name: name.into(),
            entity_type: "person \"quoted\"\n".into(),
            observations: observations.iter().map(|o| o.to_string()).collect(),
        };
        KnowledgeGraph {
            entities: vec![entity("Ada", &["writes ünïcode", "line\nbreak"]), entity("Bob", &[])],
            relations: vec![Relation { from: "Ada".into(), to: "Bob".into(), relation_type: "knows".into() }],
        }
    }

    #[test]
    fn both_forms_are_the_views_serialization_with_and_without_a_cursor() {
        for cursor in [None, Some("c2".to_string())] {
            let graph = graph();
            let view = View { entities: &graph.entities, relations: &graph.relations, next_cursor: cursor.as_deref() };
            let (text, value) = (serde_json::to_string_pretty(&view).unwrap(), serde_json::to_value(&view).unwrap());
            let result = graph_result(graph.clone(), cursor.clone());
            assert_eq!(result.content[0].as_text().map(|t| t.text.as_str()), Some(text.as_str()));
            // Key order too: the structured content is printed as it was built.
            assert_eq!(
                serde_json::to_string(&result.structured_content).unwrap(),
                serde_json::to_string(&value).unwrap()
            );
        }
    }

    #[test]
    fn the_reply_budget_counts_what_a_reply_takes() {
        use crate::memory::budget;
        let entities: Vec<Entity> = (0..40)
            .map(|i| Entity {
                name: format!("entity \"{i}\""),
                entity_type: "person\n".into(),
                observations: (0..i % 4).map(|j| format!("note {j} ünï \\ \u{1}")).collect(),
            })
            .collect();
        let relations: Vec<Relation> = (0..30)
            .map(|i| Relation { from: format!("entity {i}"), to: "x\ty".into(), relation_type: "knows".into() })
            .collect();
        let cost: usize = entities
            .iter()
            .map(|e| budget::entity(&e.name, &e.entity_type, e.observations.iter().map(String::as_str)))
            .chain(relations.iter().map(|r| budget::relation(&r.from, &r.to, &r.relation_type)))
            .sum();
        let cursor = Some("eyJiIjoiMDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3IiwiZSI6MTIzNDU2NzgsInIiOjEyMzQ1Njc4fQ".to_string());
        let result = graph_result(KnowledgeGraph { entities, relations }, cursor);
        let reply = serde_json::to_string(&json!({ "jsonrpc": "2.0", "id": 12345, "result": result })).unwrap();
        assert!(reply.len() <= cost + budget::RESERVE, "{} > {cost} + reserve", reply.len());
        assert!(reply.len() + 70 >= cost, "the items' estimate is close: {} against {cost}", reply.len());
    }

    #[test]
    fn the_reply_budget_counts_what_times_add() {
        use crate::memory::{EntityTimes, GraphPage, GraphTimes, budget};
        let entities: Vec<Entity> = (0..20)
            .map(|i| Entity {
                name: format!("e{i}"),
                entity_type: "t".into(),
                observations: (0..i % 5).map(|j| format!("o{j}")).collect(),
            })
            .collect();
        let relations: Vec<Relation> =
            (0..10).map(|i| Relation { from: format!("e{i}"), to: "e0".into(), relation_type: "r".into() }).collect();
        let graph = KnowledgeGraph { entities: entities.clone(), relations: relations.clone() };
        let ms = 1_765_000_000_123;
        let times = GraphTimes {
            entities: entities
                .iter()
                .map(|e| EntityTimes { created_at: ms, updated_at: ms, observations: vec![ms; e.observations.len()] })
                .collect(),
            relations: vec![ms; relations.len()],
        };
        let size = |page: GraphPage| {
            let reply = json!({ "jsonrpc": "2.0", "id": 12345, "result": page_result(page) });
            serde_json::to_string(&reply).unwrap().len()
        };
        let without = size(GraphPage { graph: graph.clone(), ..GraphPage::default() });
        let with = size(GraphPage { graph, times: Some(times), ..GraphPage::default() });
        let extra: usize = entities.iter().map(|e| budget::entity_times(e.observations.len())).sum::<usize>()
            + relations.len() * budget::relation_time();
        assert!(with - without <= extra, "times add {} bytes, counted {extra}", with - without);
        assert!(with - without + 2_000 >= extra, "the estimate is close: {} against {extra}", with - without);
    }
}
