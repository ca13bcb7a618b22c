//! SQLite writes in one round trip. sqlx runs each SQLite connection on a worker thread, and every
//! query is a trip to it and back: ~100 µs on the benchmark machine, more than the statements of
//! a small write cost in SQLite. So a write's statements go as one query: they share its
//! parameters ($1 is always the tenant, $2 the write's input as JSON), and the rows they return
//! are told apart by a tag in their first column. Every batch also reads the tenant's graph
//! version before and after its changes, for the graph cache (two primary-key reads, no trip),
//! and brings the search index up to date once enough rows wait for it.

use std::collections::HashSet;

use serde_json::json;
use sqlx::{AnyConnection, Row, any::AnyRow};

use super::NewEntity;

type Result<T> = std::result::Result<T, sqlx::Error>;

/// The tenant's graph version when a write began and when its changes were made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Versions {
    pub before: i64,
    pub after: i64,
}

/// Indexes `table`'s rows above its mark in `fts` once there are 128 of them, and moves the mark
/// (migration 20261201000001: one FTS5 insert of many rows costs a fraction of many of one).
macro_rules! index_tail {
    ($table:literal, $fts:literal, $columns:literal) => {
        concat!(
            "INSERT INTO ",
            $fts,
            " (rowid, ",
            $columns,
            ") SELECT id, ",
            $columns,
            " FROM ",
            $table,
            " WHERE id > (SELECT indexed_to FROM search_index_marks WHERE name = '",
            $table,
            "')",
            " AND (SELECT max(id) FROM ",
            $table,
            ") >= ",
            "(SELECT indexed_to FROM search_index_marks WHERE name = '",
            $table,
            "') + 128;",
            "UPDATE search_index_marks SET indexed_to = (SELECT max(id) FROM ",
            $table,
            ")",
            " WHERE name = '",
            $table,
            "' AND (SELECT max(id) FROM ",
            $table,
            ") >= indexed_to + 128"
        )
    };
}

/// One query of `statements`, between the two version reads, followed by the search index's tail.
macro_rules! batch {
    ($($statement:literal),+ $(,)?) => {
        concat!(
            "SELECT 'before', coalesce((SELECT version FROM graph_versions WHERE tenant = $1), 0);",
            $($statement, ";",)+
            "SELECT 'after', coalesce((SELECT version FROM graph_versions WHERE tenant = $1), 0);",
            index_tail!("entities", "entities_fts", "name_lc, type_lc"), ";",
            index_tail!("observations", "observations_fts", "content_lc"),
        )
    };
}

/// The temporary table (one per writer connection) that carries the largest entity id from
/// before an insert to the statement after it, which adds the observations of the new entities.
pub const WRITE_MARK_TABLE: &str = "CREATE TEMP TABLE IF NOT EXISTS write_mark (id INTEGER NOT NULL)";

/// Runs a batch; returns its tagged rows (tag, row) in order and the versions.
async fn run(
    conn: &mut AnyConnection,
    sql: &'static str,
    tenant: &str,
    input: String,
) -> Result<(Vec<(String, AnyRow)>, Versions)> {
    let rows = sqlx::query(sql).bind(tenant).bind(input).fetch_all(conn).await?;
    let (mut before, mut after, mut tagged) = (None, None, Vec::with_capacity(rows.len()));
    for row in rows {
        let tag: String = row.try_get(0)?;
        match tag.as_str() {
            "before" => before = Some(row.try_get(1)?),
            "after" => after = Some(row.try_get(1)?),
            _ => tagged.push((tag, row)),
        }
    }
    let missing = || sqlx::Error::Protocol("a write batch returned no graph version".into());
    Ok((tagged, Versions { before: before.ok_or_else(missing)?, after: after.ok_or_else(missing)? }))
}

const CREATE_ENTITIES: &str = batch!(
    "DELETE FROM temp.write_mark",
    "INSERT INTO temp.write_mark (id) SELECT coalesce(max(id), 0) FROM entities",
    "INSERT INTO entities (tenant, name, entity_type, name_lc, type_lc) \
     SELECT $1, value ->> 0, value ->> 1, value ->> 2, value ->> 3 FROM json_each($2) WHERE true ORDER BY key \
     ON CONFLICT (tenant, name) DO NOTHING RETURNING 'created', name",
    // Ids only grow (AUTOINCREMENT), so the entities above the mark are the ones just created.
    "INSERT INTO observations (entity_id, content, content_lc) \
     SELECT e.id, o.value ->> 0, o.value ->> 1 FROM json_each($2) AS i \
     JOIN entities AS e ON e.tenant = $1 AND e.name = i.value ->> 0 \
     JOIN json_each(i.value -> 4) AS o \
     WHERE e.id > (SELECT id FROM temp.write_mark) ORDER BY i.key, o.key",
);

/// Creates the entities whose names the tenant does not have, with their observations, in the
/// caller's write transaction. Names must be distinct (the caller keeps the first of duplicates).
/// Returns the names created.
pub async fn create_entities(
    conn: &mut AnyConnection,
    tenant: &str,
    entities: &[NewEntity<'_>],
) -> Result<(HashSet<String>, Versions)> {
    let input: Vec<_> = entities
        .iter()
        .map(|e| {
            let observations: Vec<_> = e.observations.iter().map(|o| json!([o, o.to_lowercase()])).collect();
            json!([e.name, e.entity_type, e.name.to_lowercase(), e.entity_type.to_lowercase(), observations])
        })
        .collect();
    let (rows, versions) = run(conn, CREATE_ENTITIES, tenant, serde_json::Value::Array(input).to_string()).await?;
    let created = rows.into_iter().map(|(_, row)| row.try_get(1)).collect::<Result<_>>()?;
    Ok((created, versions))
}

const ADD_OBSERVATIONS: &str = batch!(
    "SELECT 'missing', i.value ->> 0 FROM json_each($2) AS i \
     WHERE NOT EXISTS (SELECT 1 FROM entities WHERE tenant = $1 AND name = i.value ->> 0) ORDER BY i.key LIMIT 1",
    // SQLite computes the whole SELECT before inserting (it reads the table it inserts into), so
    // each content is checked against the observations the entity had before this write.
    "INSERT INTO observations (entity_id, content, content_lc) \
     SELECT e.id, c.value ->> 0, c.value ->> 1 FROM json_each($2) AS i \
     JOIN entities AS e ON e.tenant = $1 AND e.name = i.value ->> 0 \
     JOIN json_each(i.value -> 1) AS c \
     WHERE NOT EXISTS (SELECT 1 FROM observations AS o WHERE o.entity_id = e.id AND o.content = c.value ->> 0) \
     ORDER BY i.key, c.key \
     RETURNING 'added', (SELECT name FROM entities WHERE id = entity_id), content",
);

/// What add_observations did: the first entity named that does not exist (then the caller rolls
/// back), else the (entity, content) pairs inserted.
pub enum Added {
    Missing(String),
    Inserted(HashSet<(String, String)>),
}

/// Adds each item's contents that its entity does not have yet, in the caller's write
/// transaction. A content must not appear in two items for the same entity (the caller drops it
/// from the later one, which would find it added).
pub async fn add_observations(
    conn: &mut AnyConnection,
    tenant: &str,
    items: &[(&str, Vec<&str>)],
) -> Result<(Added, Versions)> {
    let input: Vec<_> = items
        .iter()
        .map(|(entity, contents)| {
            let contents: Vec<_> = contents.iter().map(|c| json!([c, c.to_lowercase()])).collect();
            json!([entity, contents])
        })
        .collect();
    let (rows, versions) = run(conn, ADD_OBSERVATIONS, tenant, serde_json::Value::Array(input).to_string()).await?;
    let mut inserted = HashSet::new();
    for (tag, row) in rows {
        if tag == "missing" {
            return Ok((Added::Missing(row.try_get(1)?), versions));
        }
        inserted.insert((row.try_get(1)?, row.try_get(2)?));
    }
    Ok((Added::Inserted(inserted), versions))
}
