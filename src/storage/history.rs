//! Reads by time (migration 20261207000003): a tenant's graph as it was at a moment, from its live
//! rows and its history, each row with the time it was created; and the purge of history older
//! than the retention. Times are milliseconds since the epoch.

use std::collections::HashMap;

use serde_json::json;
use sqlx::Row;

use super::{Engine, RelationRow, StorageError, Store, writer::Batch};

type Result<T> = std::result::Result<T, StorageError>;

pub struct TimedObservation {
    pub content: String,
    pub content_lc: String,
    pub created_at: i64,
}

/// An entity as it was, with its observations then and the times its observations were deleted
/// before then (each a change to the entity).
pub struct TimedEntity {
    pub id: i64,
    pub name: String,
    pub entity_type: String,
    pub name_lc: String,
    pub type_lc: String,
    pub created_at: i64,
    pub observations: Vec<TimedObservation>,
    pub removed: Vec<i64>,
}

impl TimedEntity {
    /// The last change: its creation, or an observation's addition or deletion.
    pub fn updated_at(&self) -> i64 {
        let added = self.observations.iter().map(|o| o.created_at);
        added.chain(self.removed.iter().copied()).fold(self.created_at, i64::max)
    }

    /// Whether it was created or changed within `since..=until`.
    pub fn changed_within(&self, since: i64, until: i64) -> bool {
        let within = |t: i64| (since..=until).contains(&t);
        within(self.created_at)
            || self.observations.iter().any(|o| within(o.created_at))
            || self.removed.iter().copied().any(within)
    }
}

pub struct TimedRelation {
    pub row: RelationRow,
    pub created_at: i64,
}

/// A tenant's graph at a moment, entities and relations in insertion (id) order.
pub struct TimedGraph {
    pub entities: Vec<TimedEntity>,
    pub relations: Vec<TimedRelation>,
    /// When history began (migration 20261207000003): nothing is known of the graph before it.
    pub began: i64,
}

// `$1` the tenant, `$2` the moment. A row is true from its creation until its deletion: created
// at or before the moment, and deleted (if at all) after it. Rows that predate the migration, or
// that a writer which does not know the columns added, count as created when history began.
const ENTITIES: &str = "SELECT e.id, e.name, e.entity_type, e.name_lc, e.type_lc, coalesce(e.created_at, b.began) \
     FROM entities e CROSS JOIN time_began b WHERE e.tenant = $1 AND coalesce(e.created_at, b.began) <= $2 \
     UNION ALL SELECT id, name, entity_type, name_lc, type_lc, created_at FROM entity_history \
     WHERE tenant = $1 AND created_at <= $2 AND deleted_at > $2 ORDER BY 1";
/// Also those deleted by the moment, whose deletion changed their entity.
const OBSERVATIONS: &str = "SELECT o.entity_id, o.id, o.content, o.content_lc, coalesce(o.created_at, b.began), \
     CAST(NULL AS BIGINT) FROM observations o JOIN entities e ON e.id = o.entity_id CROSS JOIN time_began b \
     WHERE e.tenant = $1 AND coalesce(o.created_at, b.began) <= $2 \
     UNION ALL SELECT h.entity_id, h.id, h.content, h.content_lc, h.created_at, h.deleted_at \
     FROM observation_history h WHERE h.created_at <= $2 AND h.entity_id IN \
     (SELECT id FROM entities WHERE tenant = $1 UNION ALL SELECT id FROM entity_history WHERE tenant = $1) \
     ORDER BY 1, 2";
const RELATIONS: &str = "SELECT r.id, r.from_name, r.to_name, r.relation_type, coalesce(r.created_at, b.began) \
     FROM relations r CROSS JOIN time_began b WHERE r.tenant = $1 AND coalesce(r.created_at, b.began) <= $2 \
     UNION ALL SELECT id, from_name, to_name, relation_type, created_at FROM relation_history \
     WHERE tenant = $1 AND created_at <= $2 AND deleted_at > $2 ORDER BY 1";

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

    /// The tenant's graph as it was at `at`, in one snapshot (`i64::MAX`: as it is).
    pub async fn graph_at(&self, tenant: &str, at: i64) -> Result<TimedGraph> {
        let mut tx = self.begin_read().await?;
        let rows = |sql| sqlx::query(sql).bind(tenant).bind(at);
        let entity_rows = rows(ENTITIES).fetch_all(&mut *tx).await?;
        let observation_rows = rows(OBSERVATIONS).fetch_all(&mut *tx).await?;
        let relation_rows = rows(RELATIONS).fetch_all(&mut *tx).await?;
        let began: i64 = sqlx::query_scalar("SELECT began FROM time_began").fetch_one(&mut *tx).await?;
        tx.commit().await?;
        let mut entities = Vec::with_capacity(entity_rows.len());
        for row in entity_rows {
            entities.push(TimedEntity {
                id: row.try_get(0)?,
                name: row.try_get(1)?,
                entity_type: row.try_get(2)?,
                name_lc: row.try_get(3)?,
                type_lc: row.try_get(4)?,
                created_at: row.try_get(5)?,
                observations: Vec::new(),
                removed: Vec::new(),
            });
        }
        let index: HashMap<i64, usize> = entities.iter().enumerate().map(|(i, e)| (e.id, i)).collect();
        for row in observation_rows {
            // An observation of an entity not alive then belongs to another time.
            let Some(&i) = index.get(&row.try_get::<i64, _>(0)?) else { continue };
            let deleted: Option<i64> = row.try_get(5)?;
            match deleted {
                Some(deleted) if deleted <= at => entities[i].removed.push(deleted),
                _ => entities[i].observations.push(TimedObservation {
                    content: row.try_get(2)?,
                    content_lc: row.try_get(3)?,
                    created_at: row.try_get(4)?,
                }),
            }
        }
        let mut relations = Vec::with_capacity(relation_rows.len());
        for row in relation_rows {
            relations.push(TimedRelation {
                row: RelationRow {
                    id: row.try_get(0)?,
                    from: row.try_get(1)?,
                    to: row.try_get(2)?,
                    relation_type: row.try_get(3)?,
                },
                created_at: row.try_get(4)?,
            });
        }
        Ok(TimedGraph { entities, relations, began })
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
