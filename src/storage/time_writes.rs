//! Writes of retrieval by time's columns and tables (migration 20261207000003): the creation
//! times an import restores, and the purge of history older than the retention.

use serde_json::json;

use super::{Engine, StorageError, Store, writer::Batch};

type Result<T> = std::result::Result<T, StorageError>;

const HISTORY: [&str; 3] = ["entity_history", "observation_history", "relation_history"];

/// At most this many rows a table per purge statement, so a purge never holds the writer long.
pub const PURGE_BATCH: i64 = 5_000;

const SQLITE_PURGE: Batch = &[
    "BEGIN IMMEDIATE",
    "DELETE FROM entity_history WHERE rowid IN \
     (SELECT rowid FROM entity_history WHERE deleted_at < $2 ->> 'before' LIMIT $2 ->> 'n') RETURNING 'row'",
    "DELETE FROM observation_history WHERE rowid IN \
     (SELECT rowid FROM observation_history WHERE deleted_at < $2 ->> 'before' LIMIT $2 ->> 'n') RETURNING 'row'",
    "DELETE FROM relation_history WHERE rowid IN \
     (SELECT rowid FROM relation_history WHERE deleted_at < $2 ->> 'before' LIMIT $2 ->> 'n') RETURNING 'row'",
    "COMMIT",
];

/// An import's times for the rows it created (`$2`: `{"entities": [[name, ms]],
/// "observations": [[entity, content, ms]], "relations": [[from, to, type, ms]]}`).
const SQLITE_SET_CREATED: Batch = &[
    "BEGIN IMMEDIATE",
    "UPDATE entities SET created_at = j.value ->> 1 FROM json_each($2 -> 'entities') AS j \
     WHERE entities.tenant = $1 AND entities.name = j.value ->> 0",
    "UPDATE observations SET created_at = j.value ->> 2 FROM json_each($2 -> 'observations') AS j, entities AS e \
     WHERE e.tenant = $1 AND e.name = j.value ->> 0 AND observations.entity_id = e.id \
     AND observations.content = j.value ->> 1",
    "UPDATE relations SET created_at = j.value ->> 3 FROM json_each($2 -> 'relations') AS j \
     WHERE relations.tenant = $1 AND relations.from_name = j.value ->> 0 AND relations.to_name = j.value ->> 1 \
     AND relations.relation_type = j.value ->> 2",
    "COMMIT",
];
const PG_SET_CREATED: [&str; 3] = [
    "UPDATE entities e SET created_at = (j.value ->> 1)::bigint FROM json_array_elements($2::json -> 'entities') j \
     WHERE e.tenant = $1 AND e.name = j.value ->> 0",
    "UPDATE observations o SET created_at = (j.value ->> 2)::bigint \
     FROM json_array_elements($2::json -> 'observations') j, entities e \
     WHERE e.tenant = $1 AND e.name = j.value ->> 0 AND o.entity_id = e.id AND o.content = j.value ->> 1",
    "UPDATE relations r SET created_at = (j.value ->> 3)::bigint FROM json_array_elements($2::json -> 'relations') j \
     WHERE r.tenant = $1 AND r.from_name = j.value ->> 0 AND r.to_name = j.value ->> 1 AND r.relation_type = j.value ->> 2",
];

impl Store {
    /// Sets the creation times an import brought for the rows it created, in one transaction.
    pub async fn set_created(&self, tenant: &str, input: &serde_json::Value) -> Result<()> {
        match &self.engine {
            Engine::Sqlite(sqlite) => {
                sqlite.writer.run(SQLITE_SET_CREATED, tenant, input.to_string()).await?;
            }
            Engine::Postgres(_) => {
                let input = input.to_string();
                let mut tx = self.begin_write().await?;
                for sql in PG_SET_CREATED {
                    sqlx::query(sql).bind(tenant).bind(&input).execute(&mut *tx).await?;
                }
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// Deletes up to `PURGE_BATCH` rows a history table of what stopped being true before
    /// `before`; returns how many it deleted.
    pub async fn purge_history(&self, before: i64) -> Result<u64> {
        match &self.engine {
            Engine::Sqlite(sqlite) => {
                let input = json!({ "before": before, "n": PURGE_BATCH }).to_string();
                Ok(sqlite.writer.run(SQLITE_PURGE, "", input).await?.len() as u64)
            }
            Engine::Postgres(_) => {
                let mut purged = 0;
                for table in HISTORY {
                    let sql = format!(
                        "DELETE FROM {table} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {table} \
                         WHERE deleted_at < $1 LIMIT {PURGE_BATCH}))"
                    );
                    purged += sqlx::query(&sql).bind(before).execute(&self.write).await?.rows_affected();
                }
                Ok(purged)
            }
        }
    }
}
