//! PostgreSQL's writes that are one statement each (autocommit, all or nothing): a network round
//! trip per statement was most of a write's time (pgbench's insert makes one). They take the same
//! JSON input as SQLite's batches (`writes`).

use std::collections::HashSet;

use serde_json::Value;
use sqlx::Row;

use super::{Added, StorageError, Store};

/// One entity to create, as given.
pub struct NewEntity<'a> {
    pub name: &'a str,
    pub entity_type: &'a str,
    pub observations: &'a [String],
}

/// Creates the entities whose names the tenant does not have yet (the first of duplicates in the
/// batch wins) with their observations. Returns the names created.
pub async fn create_entities(store: &Store, tenant: &str, input: &Value) -> Result<HashSet<String>, StorageError> {
    let rows = sqlx::query(
        "WITH input AS ( \
           SELECT DISTINCT ON (value->>0) ord, value->>0 AS name, value->>1 AS entity_type, \
             value->>2 AS name_lc, value->>3 AS type_lc, value->4 AS observations \
           FROM json_array_elements($2::json) WITH ORDINALITY AS t(value, ord) ORDER BY value->>0, ord), \
         created AS ( \
           INSERT INTO entities (tenant, name, entity_type, name_lc, type_lc) \
           SELECT $1, name, entity_type, name_lc, type_lc FROM input ORDER BY ord \
           ON CONFLICT (tenant, name) DO NOTHING RETURNING id, name), \
         observed AS ( \
           INSERT INTO observations (entity_id, content, content_lc) \
           SELECT c.id, o.value->>0, o.value->>1 FROM input i JOIN created c ON c.name = i.name \
             CROSS JOIN LATERAL json_array_elements(i.observations) WITH ORDINALITY AS o(value, ord) \
           ORDER BY i.ord, o.ord) \
         SELECT name FROM created",
    )
    .bind(tenant)
    .bind(input.to_string())
    .fetch_all(store.writer())
    .await?;
    Ok(rows.into_iter().map(|row| row.try_get(0)).collect::<Result<_, _>>()?)
}

/// Adds each item's contents that its entity does not have yet; nothing when an entity named is
/// missing. Every part of the statement sees the observations as they were before it, so repeats
/// within an item are both added (the reference's rule).
pub async fn add_observations(store: &Store, tenant: &str, input: &Value) -> Result<Added, StorageError> {
    let rows = sqlx::query(
        "WITH items AS ( \
           SELECT ord, value->>0 AS entity, value->1 AS contents \
           FROM json_array_elements($2::json) WITH ORDINALITY AS t(value, ord)), \
         missing AS ( \
           SELECT i.entity FROM items i WHERE NOT EXISTS \
             (SELECT 1 FROM entities e WHERE e.tenant = $1 AND e.name = i.entity) ORDER BY i.ord LIMIT 1), \
         added AS ( \
           INSERT INTO observations (entity_id, content, content_lc) \
           SELECT e.id, c.value->>0, c.value->>1 FROM items i \
             JOIN entities e ON e.tenant = $1 AND e.name = i.entity \
             CROSS JOIN LATERAL json_array_elements(i.contents) WITH ORDINALITY AS c(value, ord) \
           WHERE NOT EXISTS (SELECT 1 FROM missing) \
             AND NOT EXISTS (SELECT 1 FROM observations o WHERE o.entity_id = e.id AND o.content = c.value->>0) \
           ORDER BY i.ord, c.ord \
           RETURNING entity_id, content) \
         SELECT 'missing', entity, NULL::text FROM missing \
         UNION ALL SELECT 'added', (SELECT name FROM entities WHERE id = a.entity_id), a.content FROM added a",
    )
    .bind(tenant)
    .bind(input.to_string())
    .fetch_all(store.writer())
    .await?;
    let mut inserted = HashSet::new();
    for row in rows {
        let (tag, entity): (String, String) = (row.try_get(0)?, row.try_get(1)?);
        match row.try_get::<Option<String>, _>(2)? {
            Some(content) if tag == "added" => inserted.insert((entity, content)),
            _ => return Ok(Added::Missing(entity)),
        };
    }
    Ok(Added::Inserted(inserted))
}
