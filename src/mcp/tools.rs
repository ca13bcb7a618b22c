//! The nine reference tools: definitions (the reference's schemas, plus optional paging
//! parameters), argument parsing that names the bad field, and results shaped as the reference's.

use std::sync::LazyLock;

use rmcp::{
    ErrorData as McpError,
    model::{CallToolResult, JsonObject, Tool},
};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Value, json};

use super::{
    McpLayerError,
    results::{graph_result, list_result, message_result, page_result},
};
use crate::config::SearchMode;
use crate::memory::{
    Entity, MAX_DEPTH, Memory, ObservationAddition, ObservationDeletion, PageRequest, PresentRead, Relation, Tenant,
    TimeQuery, parse_time,
};

/// The reference's tool list (names, titles, schemas, annotations), as advertised by
/// `@modelcontextprotocol/server-memory`, with our optional `limit`/`cursor` extensions.
pub static TOOLS: LazyLock<Vec<Tool>> =
    LazyLock::new(|| serde_json::from_str(include_str!("tools.json")).expect("tools.json is valid"));

#[derive(Deserialize)]
struct EntitiesArgs {
    entities: Vec<Entity>,
}

#[derive(Deserialize)]
struct RelationsArgs {
    relations: Vec<Relation>,
}

#[derive(Deserialize)]
struct ObservationsArgs {
    observations: Vec<ObservationAddition>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EntityNamesArgs {
    entity_names: Vec<String>,
}

#[derive(Deserialize)]
struct DeletionsArgs {
    deletions: Vec<ObservationDeletion>,
}

#[derive(Deserialize)]
struct PageArgs {
    limit: Option<u32>,
    cursor: Option<String>,
}

/// Reads by time (`memory::time`): times are RFC 3339. Parsed from the same arguments as the
/// read's own (not flattened into them: serde would lose the path that names a bad field).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TimeArgs {
    as_of: Option<String>,
    since: Option<String>,
    until: Option<String>,
    /// Strings, checked here, so that the error names the item.
    #[serde(default)]
    include: Vec<String>,
}

#[derive(Deserialize)]
struct SearchArgs {
    query: String,
    mode: Option<SearchMode>,
    depth: Option<u8>,
    #[serde(flatten)]
    page: PageArgs,
}

#[derive(Deserialize)]
struct NamesArgs {
    names: Vec<String>,
}

fn invalid(field: &str, reason: &str) -> McpError {
    McpError::invalid_params(format!("Invalid arguments: {field}: {reason}"), Some(json!({ "field": field })))
}

impl TimeArgs {
    fn into_query(self) -> Result<TimeQuery, McpError> {
        let time = |field: &str, text: Option<String>| match text {
            None => Ok(None),
            Some(text) => parse_time(&text).map(Some).ok_or_else(|| {
                invalid(field, &format!("`{text}` is not an RFC 3339 time such as 2026-12-01T09:00:00Z"))
            }),
        };
        if let Some((i, other)) = self.include.iter().enumerate().find(|(_, what)| *what != "time") {
            return Err(invalid(&format!("include[{i}]"), &format!("`{other}` is not one of: time")));
        }
        Ok(TimeQuery {
            as_of: time("asOf", self.as_of)?,
            since: time("since", self.since)?,
            until: time("until", self.until)?,
            include: !self.include.is_empty(),
        })
    }
}

/// The read-by-time arguments among `arguments` (a resource URI's query, for `resources`).
pub(super) fn time_query(arguments: JsonObject) -> Result<TimeQuery, McpError> {
    parse::<TimeArgs>(Some(arguments))?.into_query()
}

/// Parses tool arguments; the error names the offending field (`entities[0].name: …`).
fn parse<T: DeserializeOwned>(arguments: Option<JsonObject>) -> Result<T, McpError> {
    let value = Value::Object(arguments.unwrap_or_default());
    serde_path_to_error::deserialize(value).map_err(|e| super::jsonrpc::invalid_field("Invalid arguments", e))
}

impl PageArgs {
    fn into_request(self) -> Result<PageRequest, McpError> {
        if let Some(limit) = self.limit
            && !(1..=1000).contains(&limit)
        {
            return Err(invalid("limit", "must be between 1 and 1000"));
        }
        Ok(PageRequest { limit: self.limit, cursor: self.cursor })
    }
}

/// A tool's result and the entities whose resources it changed (for subscribers).
pub struct ToolOutput {
    pub result: CallToolResult,
    pub changed: Vec<String>,
}

fn relation_ends(relations: &[Relation]) -> Vec<String> {
    relations.iter().flat_map(|r| [r.from.clone(), r.to.clone()]).collect()
}

/// Runs one tool, within the database's deadline. `Ok(None)` means no such tool.
pub async fn call(
    memory: &Memory,
    tenant: &Tenant,
    name: &str,
    arguments: Option<JsonObject>,
) -> Result<Option<ToolOutput>, McpLayerError> {
    memory.bounded(run(memory, tenant, name, arguments)).await
}

async fn run(
    memory: &Memory,
    tenant: &Tenant,
    name: &str,
    arguments: Option<JsonObject>,
) -> Result<Option<ToolOutput>, McpLayerError> {
    let mut changed = Vec::new();
    let result = match name {
        "create_entities" => {
            let args: EntitiesArgs = parse(arguments)?;
            let created = memory.create_entities(tenant, args.entities).await?;
            changed = created.iter().map(|e| e.name.clone()).collect();
            list_result("entities", &created)
        }
        "create_relations" => {
            let args: RelationsArgs = parse(arguments)?;
            let created = memory.create_relations(tenant, args.relations).await?;
            changed = relation_ends(&created);
            list_result("relations", &created)
        }
        "add_observations" => {
            let args: ObservationsArgs = parse(arguments)?;
            let added = memory.add_observations(tenant, args.observations).await?;
            changed =
                added.iter().filter(|a| !a.added_observations.is_empty()).map(|a| a.entity_name.clone()).collect();
            list_result("results", &added)
        }
        "delete_entities" => {
            let args: EntityNamesArgs = parse(arguments)?;
            changed = args.entity_names.clone();
            changed.extend(memory.delete_entities(tenant, args.entity_names).await?);
            message_result("Entities deleted successfully")
        }
        "delete_observations" => {
            let args: DeletionsArgs = parse(arguments)?;
            changed = args.deletions.iter().map(|d| d.entity_name.clone()).collect();
            memory.delete_observations(tenant, args.deletions).await?;
            message_result("Observations deleted successfully")
        }
        "delete_relations" => {
            let args: RelationsArgs = parse(arguments)?;
            changed = relation_ends(&args.relations);
            memory.delete_relations(tenant, args.relations).await?;
            message_result("Relations deleted successfully")
        }
        "read_graph" => {
            let time = time_query(arguments.clone().unwrap_or_default())?;
            let page = parse::<PageArgs>(arguments)?.into_request()?;
            page_result(memory.read_graph_timed(tenant, &page, &time).await?)
        }
        "search_nodes" => {
            let time = time_query(arguments.clone().unwrap_or_default())?;
            let args: SearchArgs = parse(arguments)?;
            let page = args.page.into_request()?;
            let depth = args.depth.unwrap_or(0);
            if depth > MAX_DEPTH {
                return Err(invalid("depth", &format!("at most {MAX_DEPTH}, got {depth}")).into());
            }
            let read = PresentRead::Search { query: &args.query, mode: args.mode, page: &page, depth };
            if time.is_none() {
                let found = memory.search(tenant, &args.query, args.mode, &page).await?;
                page_result(match depth {
                    0 => found,
                    _ => memory.with_neighbours(tenant, found, depth).await?,
                })
            } else if time.is_present()
                && let Some(found) = memory.present_with_times(tenant, &read).await?
            {
                page_result(found)
            } else {
                page_result(memory.search_at(tenant, &args.query, args.mode, &page, &time, depth).await?)
            }
        }
        "open_nodes" => {
            let time = time_query(arguments.clone().unwrap_or_default())?;
            let args: NamesArgs = parse(arguments)?;
            if time.since.is_some() || time.until.is_some() {
                let field = if time.since.is_some() { "since" } else { "until" };
                return Err(invalid(field, "open_nodes reads by asOf and include only").into());
            }
            match time.is_none() {
                true => graph_result(memory.open_nodes(tenant, args.names).await?, None),
                false => page_result(memory.open_nodes_timed(tenant, args.names, &time).await?),
            }
        }
        _ => return Ok(None),
    };
    changed.sort_unstable();
    changed.dedup();
    Ok(Some(ToolOutput { result, changed }))
}

/// Whether a tool changes the graph (for metrics and, later, scopes).
pub fn is_write(name: &str) -> bool {
    TOOLS
        .iter()
        .find(|t| t.name == name)
        .and_then(|t| t.annotations.as_ref())
        .and_then(|a| a.read_only_hint)
        .is_some_and(|read_only| !read_only)
}
