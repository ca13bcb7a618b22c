//! create_entities' write on PostgreSQL: one statement for the whole batch (entities and their
//! observations). SQLite's is a batch of statements (`batch::create_entities`).

use std::collections::HashSet;

use serde_json::json;
use sqlx::Row;

use super::{StorageError, Store};
use crate::config::Backend;

/// One entity to create, as given.
pub struct NewEntity<'a> {
    pub name: &'a str,
    pub entity_type: &'a str,
    pub observations: &'a [String],
}

/// PostgreSQL: creates the entities whose names the tenant does not have yet (the first of
/// duplicates in the batch wins) with their observations, all or nothing, in one autocommit
/// statement. Returns the names created.
pub async fn create_entities_in_one_statement(
    store: &Store,
    tenant: &str,
    entities: &[NewEntity<'_>],
) -> Result<HashSet<String>, StorageError> {
    debug_assert_eq!(store.backend(), Backend::Postgres, "SQLite creates in a batch: batch::create_entities");
    // A network round trip per statement was most of a create's time (pgbench's insert makes one;
    // `insert_entities` makes four for one entity with one observation).
    let input: Vec<_> = entities
        .iter()
        .map(|e| {
            let observations: Vec<_> = e.observations.iter().map(|o| json!([o, o.to_lowercase()])).collect();
            json!([e.name, e.entity_type, e.name.to_lowercase(), e.entity_type.to_lowercase(), observations])
        })
        .collect();
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
    .bind(serde_json::Value::Array(input).to_string())
    .fetch_all(store.writer())
    .await?;
    Ok(rows.into_iter().map(|row| row.try_get(0)).collect::<Result<_, _>>()?)
}
