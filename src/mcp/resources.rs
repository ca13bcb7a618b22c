//! Resources: the whole graph (as the reference offers it) and one entity per URI template. A
//! URI's query reads by time as the read tools do (`?include=time`, `?asOf=…`): RFC 6570
//! form-style, percent-encoded, a list comma-separated.

use percent_encoding::percent_decode_str;
use rmcp::{
    ErrorData as McpError,
    model::{JsonObject, ReadResourceResult, Resource, ResourceContents, ResourceTemplate},
};
use serde_json::{Value, json};

use super::{memory_error, results::timed_value, tools::time_query};
use crate::memory::{GraphPage, KnowledgeGraph, Memory, PageRequest, Tenant, TimeQuery};

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

/// The read-by-time parameters each resource takes, as its tool does.
const GRAPH_PARAMETERS: [&str; 4] = ["asOf", "since", "until", "include"];
const ENTITY_PARAMETERS: [&str; 2] = ["asOf", "include"];

pub fn templates() -> Vec<ResourceTemplate> {
    let template = |value: Value| serde_json::from_value(value).expect("static template is valid");
    vec![
        template(json!({
            "uriTemplate": "memory://entities/{name}{?asOf,include}",
            "name": "entity",
            "title": "Entity",
            "description": "One entity with its observations and every relation from or to it. \
                include=time adds each one's createdAt (and updatedAt); asOf (RFC 3339) reads it as it was then",
            "mimeType": "application/json",
        })),
        template(json!({
            "uriTemplate": "memory://knowledge-graph{?asOf,since,until,include}",
            "name": "knowledge-graph-at",
            "title": "Knowledge Graph by time",
            "description": "The knowledge graph as read_graph reads it by time: include=time adds each item's \
                createdAt (and updatedAt); asOf (RFC 3339) is the graph as it was then; since/until keep what \
                changed within them",
            "mimeType": "application/json",
        })),
    ]
}

/// What a subscription to `uri` is about: `graph`, or `entity:<name>` with the name decoded, so
/// that differently encoded URIs of one entity match. `None` for URIs that are not ours.
pub fn key(uri: &str) -> Option<String> {
    let uri = uri.split_once('?').map_or(uri, |(path, _)| path);
    if uri == GRAPH_URI {
        return Some("graph".into());
    }
    let name = percent_decode_str(uri.strip_prefix(ENTITY_PREFIX)?).decode_utf8().ok()?;
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
    let (path, query) = uri.split_once('?').map_or((uri, None), |(path, query)| (path, Some(query)));
    let not_found = || McpError::resource_not_found(format!("Resource {uri} not found"), Some(json!({ "uri": uri })));
    if path == GRAPH_URI {
        let time = parameters(uri, query, &GRAPH_PARAMETERS)?;
        let request = PageRequest::default();
        let page = memory.bounded(memory.read_graph_timed(tenant, &request, &time)).await.map_err(memory_error)?;
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
        return Ok(json_contents(uri, &page_value(page)));
    }
    let Some(encoded) = path.strip_prefix(ENTITY_PREFIX) else { return Err(not_found()) };
    let name = percent_decode_str(encoded).decode_utf8_lossy().into_owned();
    let time = parameters(uri, query, &ENTITY_PARAMETERS)?;
    if time.is_none() {
        return match memory.bounded(memory.entity(tenant, &name)).await.map_err(memory_error)? {
            Some((entity, relations)) => Ok(json_contents(uri, &KnowledgeGraph { entities: vec![entity], relations })),
            None => Err(not_found()),
        };
    }
    let page = memory.bounded(memory.open_nodes_timed(tenant, vec![name], &time)).await.map_err(memory_error)?;
    match page.graph.entities.is_empty() {
        true => Err(not_found()),
        false => Ok(json_contents(uri, &page_value(page))),
    }
}

/// A URI's query as the read tools' arguments, each parameter one `allowed` once.
fn parameters(uri: &str, query: Option<&str>, allowed: &[&str]) -> Result<TimeQuery, McpError> {
    let mut arguments = JsonObject::new();
    for pair in query.unwrap_or_default().split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |text: &str| percent_decode_str(text).decode_utf8_lossy().into_owned();
        let (key, value) = (decode(key), decode(value));
        let bad = |reason: String| McpError::invalid_params(reason, Some(json!({ "field": key, "uri": uri })));
        if !allowed.contains(&key.as_str()) {
            return Err(bad(format!("Resource {uri}: `{key}` is not one of its parameters: {}", allowed.join(", "))));
        }
        let value = match key.as_str() {
            "include" => value.split(',').map(Value::from).collect(),
            _ => Value::from(value),
        };
        if arguments.insert(key.clone(), value).is_some() {
            return Err(bad(format!("Resource {uri}: `{key}` is given more than once")));
        }
    }
    time_query(arguments)
}

fn page_value(page: GraphPage) -> Value {
    match page.times {
        Some(times) => timed_value(page.graph, None, times),
        None => serde_json::to_value(&page.graph).expect("a graph serializes"),
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
        assert_eq!(key("memory://entities/Ada%20Lovelace?include=time").as_deref(), Some("entity:Ada Lovelace"));
        assert_eq!(key("memory://knowledge-graph?asOf=2026-12-07T09%3A00%3A00Z").as_deref(), Some("graph"));
        assert_eq!(key("memory://entities/"), None);
        assert_eq!(key("memory://entities/%FF"), None, "not UTF-8");
        assert_eq!(key("file:///etc/passwd"), None);
    }
}
