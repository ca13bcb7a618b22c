//! Tool results shaped as the reference's: the text is its `JSON.stringify(value, null, 2)`, the
//! structured content the same object.

use rmcp::model::{CallToolResult, ContentBlock};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::memory::{Entity, GraphPage, KnowledgeGraph, Relation};

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

/// A graph (page) as the tools return it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GraphView<'a> {
    entities: &'a [Entity],
    relations: &'a [Relation],
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<&'a str>,
}

/// The text is printed from the typed graph into a buffer sized up front, and the structured
/// content takes the graph's strings instead of copying them (`serde_json::to_value` copied
/// every one): building a search result was a fifth of a read's CPU.
pub fn graph_result(graph: KnowledgeGraph, next_cursor: Option<String>) -> CallToolResult {
    let view =
        GraphView { entities: &graph.entities, relations: &graph.relations, next_cursor: next_cursor.as_deref() };
    let mut text = Vec::with_capacity(pretty_size(&graph));
    serde_json::to_writer_pretty(&mut text, &view).expect("graph serializes");
    let text = String::from_utf8(text).expect("serde_json writes UTF-8");
    let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
    result.structured_content = Some(graph_value(graph, next_cursor));
    result
}

pub fn page_result(page: GraphPage) -> CallToolResult {
    graph_result(page.graph, page.next_cursor)
}

/// Bytes the pretty text takes, closely: its strings (JSON escapes aside) and, per item, its
/// keys, quotes and indentation.
fn pretty_size(graph: &KnowledgeGraph) -> usize {
    let entities: usize = graph
        .entities
        .iter()
        .map(|e| 100 + e.name.len() + e.entity_type.len() + e.observations.iter().map(|o| 10 + o.len()).sum::<usize>())
        .sum();
    let relations: usize = graph.relations.iter().map(|r| 90 + r.from.len() + r.to.len() + r.relation_type.len()).sum();
    64 + entities + relations
}

/// `serde_json::to_value` of the graph's view, field for field.
fn graph_value(graph: KnowledgeGraph, next_cursor: Option<String>) -> Value {
    let entities = graph.entities.into_iter().map(|e| {
        let observations = e.observations.into_iter().map(Value::String).collect();
        object([
            ("name", e.name.into()),
            ("entityType", e.entity_type.into()),
            ("observations", Value::Array(observations)),
        ])
    });
    let relations = graph
        .relations
        .into_iter()
        .map(|r| object([("from", r.from.into()), ("to", r.to.into()), ("relationType", r.relation_type.into())]));
    let mut fields = Map::with_capacity(3);
    fields.insert("entities".into(), Value::Array(entities.collect()));
    fields.insert("relations".into(), Value::Array(relations.collect()));
    if let Some(cursor) = next_cursor {
        fields.insert("nextCursor".into(), cursor.into());
    }
    Value::Object(fields)
}

fn object<const N: usize>(fields: [(&str, Value); N]) -> Value {
    let mut map = Map::with_capacity(N);
    for (key, value) in fields {
        map.insert(key.into(), value);
    }
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

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
            let view =
                GraphView { entities: &graph.entities, relations: &graph.relations, next_cursor: cursor.as_deref() };
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
    fn the_text_buffer_is_sized_for_the_text_it_holds() {
        let graph = graph();
        let result = graph_result(graph.clone(), None);
        let text = &result.content[0].as_text().expect("a text block").text;
        assert!(pretty_size(&graph) >= text.len(), "{} < {}", pretty_size(&graph), text.len());
        assert!(pretty_size(&graph) < 2 * text.len());
    }
}
