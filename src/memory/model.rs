//! The graph types, serialized exactly as the reference server-memory does (field order included).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entity {
    pub name: String,
    pub entity_type: String,
    pub observations: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Relation {
    pub from: String,
    pub to: String,
    pub relation_type: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnowledgeGraph {
    pub entities: Vec<Entity>,
    pub relations: Vec<Relation>,
}

/// `add_observations` input item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservationAddition {
    pub entity_name: String,
    pub contents: Vec<String>,
}

/// `add_observations` result item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservationsAdded {
    pub entity_name: String,
    pub added_observations: Vec<String>,
}

/// `delete_observations` input item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservationDeletion {
    pub entity_name: String,
    pub observations: Vec<String>,
}

/// A page of a graph read; `next_cursor` is set when more follows. A search by meaning gives
/// each hit's score, in the order of the entities; a read that asked for time gives each row's
/// times; a search with `depth` its neighbours' distances.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GraphPage {
    pub graph: KnowledgeGraph,
    pub next_cursor: Option<String>,
    pub scores: Option<Vec<f32>>,
    pub times: Option<GraphTimes>,
    pub neighbours: Option<Neighbours>,
}

/// A search grown by `depth`: each entity's distance from the hits (0 for a hit, which come
/// first), and whether the reply budget cut the growth short.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Neighbours {
    pub distances: Vec<u8>,
    pub truncated: bool,
}

/// When an entity was created and last changed (an observation added or deleted), and when each
/// of its observations was created; milliseconds since the epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityTimes {
    pub created_at: i64,
    pub updated_at: i64,
    pub observations: Vec<i64>,
}

/// A page's times, in the order of its entities and of its relations (their creation).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GraphTimes {
    pub entities: Vec<EntityTimes>,
    pub relations: Vec<i64>,
}

/// What a read asks of time, in milliseconds since the epoch: the graph as it was (`as_of`; the
/// present when `None`), only entities changed and relations created within `since..=until`, and
/// whether the reply carries the times (`include`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeQuery {
    pub as_of: Option<i64>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub include: bool,
}

impl TimeQuery {
    /// Whether the read is the reference's (no time asked).
    pub fn is_none(&self) -> bool {
        *self == TimeQuery::default()
    }

    /// Whether it reads the present graph, whole (times asked for, no moment or window).
    pub fn is_present(&self) -> bool {
        self.as_of.is_none() && self.since.is_none() && self.until.is_none()
    }
}

/// Paging request: no limit means everything, as the reference returns.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

impl From<crate::storage::EntityRow> for Entity {
    fn from(row: crate::storage::EntityRow) -> Self {
        Entity { name: row.name, entity_type: row.entity_type, observations: row.observations }
    }
}

impl From<crate::storage::RelationRow> for Relation {
    fn from(row: crate::storage::RelationRow) -> Self {
        Relation { from: row.from, to: row.to, relation_type: row.relation_type }
    }
}
