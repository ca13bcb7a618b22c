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
        let page = memory.read_graph(tenant, &PageRequest::default()).await.map_err(internal)?;
        return Ok(json_contents(uri, &page.graph));
    }
    if let Some(encoded) = uri.strip_prefix(ENTITY_PREFIX) {
        let name = percent_encoding::percent_decode_str(encoded).decode_utf8_lossy();
        return match memory.entity(tenant, &name).await.map_err(internal)? {
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
