//! SQLite's writes, each a batch of statements that opens and commits its own transaction, run
//! whole by the `SqliteWriter` (in place or on its thread). The statements share the
//! batch's parameters ($1 is always the tenant, $2 the write's input as JSON), and the rows they
//! return are told apart by a tag in their first column. Every batch also reads the tenant's
//! graph version before and after its changes, for the graph cache (two primary-key reads), and
//! brings the search index up to date once enough rows wait for it.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::{
    Added, StorageError, Versions,
    writer::{Batch, Row, SqliteWriter},
};

type Result<T> = std::result::Result<T, StorageError>;

/// Indexes `table`'s rows above its mark in `fts` once there are 128 of them (migration
/// 20261201000001: one FTS5 insert of many rows costs a fraction of many of one).
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
            "') + 128"
        )
    };
}

/// Moves `table`'s mark past the rows `index_tail` just indexed.
macro_rules! index_mark {
    ($table:literal) => {
        concat!(
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

/// The statement's time in milliseconds since the epoch, for the rows it creates (migration
/// 20261207000003): SQLite's clock, as its history triggers read it.
macro_rules! now_ms {
    () => {
        "CAST(round((julianday('now') - 2440587.5) * 86400000) AS INTEGER)"
    };
}

/// One transaction of `statements`, between the two version reads, then the search index's tail.
macro_rules! batch {
    ($($statement:expr),+ $(,)?) => {
        &[
            "BEGIN IMMEDIATE",
            "SELECT 'before', coalesce((SELECT version FROM graph_versions WHERE tenant = $1), 0)",
            $($statement,)+
            "SELECT 'after', coalesce((SELECT version FROM graph_versions WHERE tenant = $1), 0)",
            index_tail!("entities", "entities_fts", "name_lc, type_lc"),
            index_mark!("entities"),
            index_tail!("observations", "observations_fts", "content_lc"),
            index_mark!("observations"),
            "COMMIT",
        ]
    };
}

/// Runs a batch; returns its tagged rows (tag, row) in order, and the versions.
async fn run(
    writer: &SqliteWriter,
    batch: Batch,
    tenant: &str,
    input: &Value,
) -> Result<(Vec<(String, Row)>, Versions)> {
    let rows = writer.run(batch, tenant, input.to_string()).await?;
    let (mut before, mut after, mut tagged) = (None, None, Vec::with_capacity(rows.len()));
    for row in rows {
        let tag: String = row.get(0)?;
        match tag.as_str() {
            "before" => before = Some(row.get(1)?),
            "after" => after = Some(row.get(1)?),
            _ => tagged.push((tag, row)),
        }
    }
    let missing = || StorageError::Internal("a write batch returned no graph version".into());
    Ok((tagged, Versions { before: before.ok_or_else(missing)?, after: after.ok_or_else(missing)? }))
}

const CREATE_ENTITIES: Batch = batch!(
    "DELETE FROM temp.write_mark",
    "INSERT INTO temp.write_mark (id) SELECT coalesce(max(id), 0) FROM entities",
    concat!(
        "INSERT INTO entities (tenant, name, entity_type, name_lc, type_lc, created_at) \
         SELECT $1, value ->> 0, value ->> 1, value ->> 2, value ->> 3, ",
        now_ms!(),
        " FROM json_each($2) WHERE true ORDER BY key \
         ON CONFLICT (tenant, name) DO NOTHING RETURNING 'created', name"
    ),
    // Ids only grow (AUTOINCREMENT), so the entities above the mark are the ones just created.
    // At their entity's time: SQLite's `now` is the statement's, and a create is one moment.
    "INSERT INTO observations (entity_id, content, content_lc, created_at) \
     SELECT e.id, o.value ->> 0, o.value ->> 1, e.created_at FROM json_each($2) AS i \
     JOIN entities AS e ON e.tenant = $1 AND e.name = i.value ->> 0 \
     JOIN json_each(i.value -> 4) AS o \
     WHERE e.id > (SELECT id FROM temp.write_mark) ORDER BY i.key, o.key",
);

/// Creates the entities of `input` (`writes::entities_input`, distinct names) that the tenant
/// does not have, with their observations. Returns the names created.
pub async fn create_entities(
    writer: &SqliteWriter,
    tenant: &str,
    input: &Value,
) -> Result<(HashSet<String>, Versions)> {
    let (rows, versions) = run(writer, CREATE_ENTITIES, tenant, input).await?;
    let created = rows.into_iter().map(|(_, row)| row.get(1)).collect::<rusqlite::Result<_>>()?;
    Ok((created, versions))
}

const CREATE_RELATIONS: Batch = batch!(concat!(
    "INSERT INTO relations (tenant, from_name, to_name, relation_type, created_at) \
         SELECT $1, value ->> 0, value ->> 1, value ->> 2, ",
    now_ms!(),
    " FROM json_each($2) WHERE true ORDER BY key \
     ON CONFLICT (tenant, from_name, to_name, relation_type) DO NOTHING \
     RETURNING 'created', from_name, to_name, relation_type"
),);

/// Creates the relations of `input` (`writes::relations_input`) that the tenant does not have;
/// returns those created as (from, to, type).
pub async fn create_relations(
    writer: &SqliteWriter,
    tenant: &str,
    input: &Value,
) -> Result<(HashSet<(String, String, String)>, Versions)> {
    let (rows, versions) = run(writer, CREATE_RELATIONS, tenant, input).await?;
    let created = rows
        .into_iter()
        .map(|(_, row)| Ok((row.get(1)?, row.get(2)?, row.get(3)?)))
        .collect::<rusqlite::Result<_>>()?;
    Ok((created, versions))
}

const ADD_OBSERVATIONS: Batch = batch!(
    "SELECT 'missing', i.value ->> 0 FROM json_each($2) AS i \
     WHERE NOT EXISTS (SELECT 1 FROM entities WHERE tenant = $1 AND name = i.value ->> 0) ORDER BY i.key LIMIT 1",
    // Nothing is added when an entity is missing. SQLite computes the whole SELECT before
    // inserting (it reads the table it inserts into), so each content is checked against the
    // observations the entity had before this write.
    concat!(
        "INSERT INTO observations (entity_id, content, content_lc, created_at) \
     SELECT e.id, c.value ->> 0, c.value ->> 1, ",
        now_ms!(),
        " FROM json_each($2) AS i \
     JOIN entities AS e ON e.tenant = $1 AND e.name = i.value ->> 0 \
     JOIN json_each(i.value -> 1) AS c \
     WHERE NOT EXISTS (SELECT 1 FROM json_each($2) AS m \
       WHERE NOT EXISTS (SELECT 1 FROM entities WHERE tenant = $1 AND name = m.value ->> 0)) \
     AND NOT EXISTS (SELECT 1 FROM observations AS o WHERE o.entity_id = e.id AND o.content = c.value ->> 0) \
     ORDER BY i.key, c.key \
     RETURNING 'added', (SELECT name FROM entities WHERE id = entity_id), content"
    ),
);

/// Adds each item of `input` (`writes::additions_input`) that its entity does not have yet.
pub async fn add_observations(writer: &SqliteWriter, tenant: &str, input: &Value) -> Result<(Added, Versions)> {
    let (rows, versions) = run(writer, ADD_OBSERVATIONS, tenant, input).await?;
    let mut inserted = HashSet::new();
    for (tag, row) in rows {
        if tag == "missing" {
            return Ok((Added::Missing(row.get(1)?), versions));
        }
        inserted.insert((row.get(1)?, row.get(2)?));
    }
    Ok((Added::Inserted(inserted), versions))
}

const DELETE_ENTITIES: Batch = batch!(
    "DELETE FROM relations WHERE tenant = $1 \
     AND (from_name IN (SELECT value FROM json_each($2)) OR to_name IN (SELECT value FROM json_each($2))) \
     RETURNING 'end', from_name, to_name",
    "DELETE FROM observations WHERE entity_id IN \
     (SELECT id FROM entities WHERE tenant = $1 AND name IN (SELECT value FROM json_each($2)))",
    "DELETE FROM entities WHERE tenant = $1 AND name IN (SELECT value FROM json_each($2))",
);

/// Deletes the entities with their observations and relations; returns the entities at the other
/// end of the relations deleted (their resources changed too).
pub async fn delete_entities(writer: &SqliteWriter, tenant: &str, names: &[String]) -> Result<(Vec<String>, Versions)> {
    let (rows, versions) = run(writer, DELETE_ENTITIES, tenant, &json!(names)).await?;
    let deleted: HashSet<&str> = names.iter().map(String::as_str).collect();
    let mut ends = Vec::new();
    for (_, row) in rows {
        for end in [row.get::<String>(1)?, row.get::<String>(2)?] {
            if !deleted.contains(end.as_str()) {
                ends.push(end);
            }
        }
    }
    Ok((ends, versions))
}

const DELETE_OBSERVATIONS: Batch = batch!(
    "DELETE FROM observations WHERE id IN (SELECT o.id FROM json_each($2) AS i \
     JOIN entities AS e ON e.tenant = $1 AND e.name = i.value ->> 0 \
     JOIN json_each(i.value -> 1) AS c \
     JOIN observations AS o ON o.entity_id = e.id AND o.content = c.value)",
);

/// Deletes each item's observations equal to one of its contents (a missing entity is skipped).
pub async fn delete_observations(writer: &SqliteWriter, tenant: &str, items: &[(&str, &[String])]) -> Result<Versions> {
    let input = items.iter().map(|(entity, contents)| json!([entity, contents])).collect();
    Ok(run(writer, DELETE_OBSERVATIONS, tenant, &Value::Array(input)).await?.1)
}

const DELETE_RELATIONS: Batch = batch!(
    "DELETE FROM relations WHERE id IN (SELECT r.id FROM json_each($2) AS i \
     JOIN relations AS r ON r.tenant = $1 AND r.from_name = i.value ->> 0 AND r.to_name = i.value ->> 1 \
     AND r.relation_type = i.value ->> 2)",
);

/// Deletes the relations of `input` (`writes::relations_input`).
pub async fn delete_relations(writer: &SqliteWriter, tenant: &str, input: &Value) -> Result<Versions> {
    Ok(run(writer, DELETE_RELATIONS, tenant, input).await?.1)
}

/// A restore's rows (`dump::restore_input`), in order: entities, their observations, relations.
const RESTORE_ENTITIES: &str = concat!(
    "INSERT INTO entities (tenant, name, entity_type, name_lc, type_lc, created_at) \
     SELECT $1, value ->> 0, value ->> 1, value ->> 2, value ->> 3, coalesce(value ->> 5, ",
    now_ms!(),
    ") FROM json_each($2, '$.entities') ORDER BY key"
);
const RESTORE_OBSERVATIONS: &str = "INSERT INTO observations (entity_id, content, content_lc, created_at) \
     SELECT e.id, o.value ->> 0, o.value ->> 1, coalesce(o.value ->> 2, e.created_at) \
     FROM json_each($2, '$.entities') AS i \
     JOIN entities AS e ON e.tenant = $1 AND e.name = i.value ->> 0 \
     JOIN json_each(i.value -> 4) AS o ORDER BY i.key, o.key";
const RESTORE_RELATIONS: &str = concat!(
    "INSERT INTO relations (tenant, from_name, to_name, relation_type, created_at) \
     SELECT $1, value ->> 0, value ->> 1, value ->> 2, coalesce(value ->> 3, ",
    now_ms!(),
    ") FROM json_each($2, '$.relations') ORDER BY key"
);

/// Into an empty graph: the guard's CHECK fails (and the batch rolls back) when the tenant has
/// entities or relations, checked inside the write transaction.
const RESTORE: Batch = batch!(
    "CREATE TEMP TABLE IF NOT EXISTS restore_guard (tenant_empty INTEGER NOT NULL CHECK (tenant_empty))",
    "INSERT INTO temp.restore_guard (tenant_empty) SELECT NOT EXISTS (SELECT 1 FROM entities WHERE tenant = $1) \
     AND NOT EXISTS (SELECT 1 FROM relations WHERE tenant = $1)",
    "DELETE FROM temp.restore_guard",
    RESTORE_ENTITIES,
    RESTORE_OBSERVATIONS,
    RESTORE_RELATIONS,
);

/// In place of the tenant's graph.
const REPLACE: Batch = batch!(
    "DELETE FROM relations WHERE tenant = $1",
    "DELETE FROM observations WHERE entity_id IN (SELECT id FROM entities WHERE tenant = $1)",
    "DELETE FROM entities WHERE tenant = $1",
    RESTORE_ENTITIES,
    RESTORE_OBSERVATIONS,
    RESTORE_RELATIONS,
);

/// Writes a tenant's whole graph in one transaction (`Store::restore_tenant`).
pub async fn restore(writer: &SqliteWriter, tenant: &str, input: &Value, replace: bool) -> Result<()> {
    match run(writer, if replace { REPLACE } else { RESTORE }, tenant, input).await {
        Err(StorageError::Sqlite(e)) if e.to_string().contains("tenant_empty") => {
            Err(StorageError::NotEmpty(tenant.to_owned()))
        }
        done => done.map(drop),
    }
}
