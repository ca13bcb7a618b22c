//! What both backup formats share: the metadata, the row lines in their stable order, their
//! digest, and the checks a backup's graph must pass before anything of it is written.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::storage::{EntityRow, GraphRows, RelationRow};

/// The `format` of every backup's metadata.
pub const FORMAT: &str = "mcp-server-backup";
/// The newest format version this binary writes and reads: 2 added the rows' creation times.
pub const FORMAT_VERSION: u32 = 2;

/// A backup's metadata: the JSON-lines header (without `counts` and `sha256`, which its trailer
/// holds), or the one row of a SQLite backup's `mcp_backup` table (with them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    pub format: String,
    pub format_version: u32,
    /// The newest migration applied to the database backed up.
    pub schema_version: i64,
    /// `sqlite` or `postgres`
    pub backend: String,
    pub created_at: String,
    pub tenants: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<BTreeMap<String, Counts>>,
    /// SHA-256 (hex) of the row lines (`row_lines`), each ended by `\n`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub entities: usize,
    pub observations: usize,
    pub relations: usize,
}

/// One stored row: an entity with its observations in order, or a relation; from format 2, with
/// their creation times (ms since the epoch) where the row has them.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum RowLine {
    #[serde(rename_all = "camelCase")]
    Entity {
        tenant: String,
        name: String,
        entity_type: String,
        observations: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        created_at: Option<i64>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        observations_created_at: Vec<Option<i64>>,
    },
    #[serde(rename_all = "camelCase")]
    Relation {
        tenant: String,
        from: String,
        to: String,
        relation_type: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        created_at: Option<i64>,
    },
}

pub fn counts(graph: &GraphRows) -> BTreeMap<String, Counts> {
    (graph.iter())
        .map(|(tenant, rows)| {
            let observations = rows.entities.iter().map(|e| e.observations.len()).sum();
            (tenant.clone(), Counts { entities: rows.entities.len(), observations, relations: rows.relations.len() })
        })
        .collect()
}

pub fn totals(counts: &BTreeMap<String, Counts>) -> Counts {
    counts.values().fold(Counts::default(), |a, c| Counts {
        entities: a.entities + c.entities,
        observations: a.observations + c.observations,
        relations: a.relations + c.relations,
    })
}

/// Each row as its line of format `version` (no `\n`), in the stable order: tenants by name,
/// each tenant's entities then its relations, in insertion order.
pub fn row_lines(graph: &GraphRows, version: u32) -> impl Iterator<Item = Vec<u8>> + '_ {
    let timed = version >= 2;
    graph.iter().flat_map(move |(tenant, rows)| {
        let times = &rows.created;
        let entities = rows.entities.iter().enumerate().map(move |(i, e)| {
            let observed: Vec<Option<i64>> = (0..e.observations.len()).map(|j| times.observation(i, j)).collect();
            RowLine::Entity {
                tenant: tenant.clone(),
                name: e.name.clone(),
                entity_type: e.entity_type.clone(),
                observations: e.observations.clone(),
                created_at: times.entity(i).filter(|_| timed),
                observations_created_at: match timed && observed.iter().any(Option::is_some) {
                    true => observed,
                    false => Vec::new(),
                },
            }
        });
        let relations = rows.relations.iter().enumerate().map(move |(i, r)| RowLine::Relation {
            tenant: tenant.clone(),
            from: r.from.clone(),
            to: r.to.clone(),
            relation_type: r.relation_type.clone(),
            created_at: times.relation(i).filter(|_| timed),
        });
        entities.chain(relations).map(|line| serde_json::to_vec(&line).expect("a row serializes"))
    })
}

/// The digest `Meta::sha256` holds for `graph` in format `version`.
pub fn digest(graph: &GraphRows, version: u32) -> String {
    let mut hash = Sha256::new();
    for line in row_lines(graph, version) {
        hash.update(&line);
        hash.update(b"\n");
    }
    hex::encode(hash.finalize())
}

/// Adds a parsed row to its tenant's graph.
pub fn push(graph: &mut GraphRows, line: RowLine) {
    match line {
        RowLine::Entity { tenant, name, entity_type, observations, created_at, observations_created_at } => {
            let rows = graph.entry(tenant).or_default();
            rows.entities.push(EntityRow { id: 0, name, entity_type, observations });
            rows.created.entities.push(created_at);
            rows.created.observations.push(observations_created_at);
        }
        RowLine::Relation { tenant, from, to, relation_type, created_at } => {
            let rows = graph.entry(tenant).or_default();
            rows.relations.push(RelationRow { id: 0, from, to, relation_type });
            rows.created.relations.push(created_at);
        }
    }
}

/// The metadata checks: our format, a version this binary reads, a schema not newer than it knows.
pub fn check_meta(meta: &Meta) -> Result<(), String> {
    if meta.format != FORMAT {
        return Err(format!("format {:?} is not {FORMAT:?}", meta.format));
    }
    if meta.format_version > FORMAT_VERSION {
        return Err(format!(
            "format version {} is newer than this binary reads ({FORMAT_VERSION}): restore with a newer release",
            meta.format_version
        ));
    }
    let backend = match meta.backend.as_str() {
        "sqlite" => crate::storage::Backend::Sqlite,
        "postgres" => crate::storage::Backend::Postgres,
        other => return Err(format!("unknown source backend {other:?}")),
    };
    let newest = crate::storage::newest_migration(backend);
    if meta.schema_version > newest {
        return Err(format!(
            "schema version {} is newer than this binary knows for {} ({newest}): restore with a newer release",
            meta.schema_version, meta.backend
        ));
    }
    Ok(())
}

/// What every stored graph satisfies (a tenant's entity names and relations are unique, no text
/// holds NUL), so a restore fails here, before writing, rather than halfway.
pub fn check_graph(graph: &GraphRows) -> Result<(), String> {
    for (tenant, rows) in graph {
        let nul = |text: &str, what: &str| match text.contains('\0') {
            true => Err(format!("tenant {tenant:?}: {what} contains NUL")),
            false => Ok(()),
        };
        nul(tenant, "the tenant id")?;
        let mut names = HashSet::new();
        for (i, e) in rows.entities.iter().enumerate() {
            let times = rows.created.observations.get(i).map_or(0, Vec::len);
            if times != 0 && times != e.observations.len() {
                let n = e.observations.len();
                return Err(format!("tenant {tenant:?}: entity {:?} has {times} observation times for {n}", e.name));
            }
            nul(&e.name, "an entity name")?;
            nul(&e.entity_type, "an entity type")?;
            e.observations.iter().try_for_each(|o| nul(o, "an observation"))?;
            if !names.insert(e.name.as_str()) {
                return Err(format!("tenant {tenant:?}: entity {:?} appears twice", e.name));
            }
        }
        let mut relations = HashSet::new();
        for r in &rows.relations {
            [&r.from, &r.to, &r.relation_type].into_iter().try_for_each(|t| nul(t, "a relation"))?;
            if !relations.insert((&r.from, &r.to, &r.relation_type)) {
                return Err(format!(
                    "tenant {tenant:?}: relation {:?} appears twice",
                    (&r.from, &r.to, &r.relation_type)
                ));
            }
        }
    }
    Ok(())
}

/// Now as RFC 3339 UTC, to the second.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
