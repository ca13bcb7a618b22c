//! Resources: the whole graph (as the reference offers it) and one entity per URI template.

use rmcp::{
    ErrorData as McpError,
    model::{ReadResourceResult, Resource, ResourceContents, ResourceTemplate},
};
use serde_json::json;

use crate::memory::{KnowledgeGraph, Memory, PageRequest, Tenant};

pub const GRAPH_URI: &str = "memory://knowledge-graph";
const ENTITY_PREFIX: &str = "memory://entities/";

pub fn list() -> Vec<Resource> {
    vec![
        serde_json::from_value(json!({
            "uri": GRAPH_URI,
            "name": "knowledge-graph",
            "title": "Knowledge Graph",
            "description": "The full knowledge graph with all entities and relations",
            "mimeType": "application/json",
        }))
        .expect("static resource is valid"),
    ]
}

pub fn templates() -> Vec<ResourceTemplate> {
    vec![
        serde_json::from_value(json!({
            "uriTemplate": "memory://entities/{name}",
            "name": "entity",
            "title": "Entity",
            "description": "One entity with its observations and every relation from or to it",
            "mimeType": "application/json",
        }))
        .expect("static template is valid"),
    ]
}

/// What a subscription to `uri` is about: `graph`, or `entity:<name>` with the name decoded, so
/// that differently encoded URIs of one entity match. `None` for URIs that are not ours.
pub fn key(uri: &str) -> Option<String> {
    if uri == GRAPH_URI {
        return Some("graph".into());
    }
    let name = percent_encoding::percent_decode_str(uri.strip_prefix(ENTITY_PREFIX)?).decode_utf8().ok()?;
    (!name.is_empty()).then(|| format!("entity:{name}"))
}

/// The keys a write to these entities changes: theirs and the whole graph's.
pub fn changed_keys(entities: &[String]) -> Vec<String> {
    std::iter::once("graph".to_string()).chain(entities.iter().map(|name| format!("entity:{name}"))).collect()
}

fn json_contents(uri: &str, value: &impl serde::Serialize) -> ReadResourceResult {
    let contents: ResourceContents = serde_json::from_value(json!({
        "uri": uri,
        "mimeType": "application/json",
        "text": serde_json::to_string_pretty(value).expect("JSON serializes"),
    }))
    .expect("text resource contents are valid");
    ReadResourceResult::new(vec![contents])
}

pub async fn read(memory: &Memory, tenant: &Tenant, uri: &str) -> Result<ReadResourceResult, McpError> {
    if uri == GRAPH_URI {
        let page = memory.bounded(memory.read_graph(tenant, &PageRequest::default())).await.map_err(internal)?;
        // A resource cannot page: a graph over the budget is read with read_graph's cursors.
        if page.next_cursor.is_some() {
            let max = memory.limits().max_reply_bytes;
            return Err(McpError::invalid_request(
                format!(
                    "The knowledge graph is larger than MAX_REPLY_BYTES ({max} bytes): \
                     read it with read_graph, following nextCursor"
                ),
                Some(json!({ "limit": "MAX_REPLY_BYTES", "maxReplyBytes": max, "tool": "read_graph" })),
            ));
        }
        return Ok(json_contents(uri, &page.graph));
    }
    if let Some(encoded) = uri.strip_prefix(ENTITY_PREFIX) {
        let name = percent_encoding::percent_decode_str(encoded).decode_utf8_lossy();
        return match memory.bounded(memory.entity(tenant, &name)).await.map_err(internal)? {
            Some((entity, relations)) => Ok(json_contents(uri, &KnowledgeGraph { entities: vec![entity], relations })),
            None => Err(McpError::resource_not_found(format!("Resource {uri} not found"), Some(json!({ "uri": uri })))),
        };
    }
    Err(McpError::resource_not_found(format!("Resource {uri} not found"), Some(json!({ "uri": uri }))))
}

fn internal(error: crate::memory::MemoryError) -> McpError {
    match error {
        crate::memory::MemoryError::Storage(e) => super::storage_error(&e),
        other => McpError::invalid_params(other.to_string(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::key;

    #[test]
    fn a_resource_has_one_key_however_its_uri_is_encoded() {
        assert_eq!(key("memory://entities/Ada%20Lovelace").as_deref(), Some("entity:Ada Lovelace"));
        assert_eq!(key("memory://entities/Ada Lovelace").as_deref(), Some("entity:Ada Lovelace"));
        assert_eq!(key("memory://knowledge-graph").as_deref(), Some("graph"));
        assert_eq!(key("memory://entities/"), None);
        assert_eq!(key("memory://entities/%FF"), None, "not UTF-8");
        assert_eq!(key("file:///etc/passwd"), None);
    }
}
