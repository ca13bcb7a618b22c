//! Reads by time (migration 20261207000003): a tenant's graph as it was at a moment, from its live
//! rows and its history, each row with the time it was created; and the purge of history older
//! than the retention. Times are milliseconds since the epoch.

use std::collections::{BTreeMap, HashMap, HashSet};

use sqlx::Row;

use super::{
    RelationRow, StorageError, Store,
    graph::{IN_CHUNK, bind_all, placeholders},
    search::like_escape,
};

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

/// Which of a tenant's entities a read at a moment needs: all of them, those named, or those whose
/// text may contain a lowercased needle (a superset: the caller's own substring match narrows it).
#[derive(Clone, Copy)]
pub enum Among<'a> {
    All,
    Named(&'a [String]),
    Containing(&'a str),
}

// `$1` the tenant, `$2` the moment. A row is true from its creation until its deletion: created
// at or before the moment, and deleted (if at all) after it. Rows that predate the migration, or
// that a writer which does not know the columns added, count as created when history began.
fn entities_sql(among: &str) -> String {
    let filter = |t: &str| among.replace("{t}", t);
    format!(
        "SELECT e.id, e.name, e.entity_type, e.name_lc, e.type_lc, coalesce(e.created_at, b.began) \
         FROM entities e CROSS JOIN time_began b WHERE e.tenant = $1 AND coalesce(e.created_at, b.began) <= $2 {} \
         UNION ALL SELECT h.id, h.name, h.entity_type, h.name_lc, h.type_lc, h.created_at FROM entity_history h \
         WHERE h.tenant = $1 AND h.created_at <= $2 AND h.deleted_at > $2 {} ORDER BY 1",
        filter("e"),
        filter("h")
    )
}

/// Of every entity: also those deleted by the moment, whose deletion changed their entity.
const OBSERVATIONS: &str = "SELECT o.entity_id, o.id, o.content, o.content_lc, coalesce(o.created_at, b.began), \
     CAST(NULL AS BIGINT) FROM observations o JOIN entities e ON e.id = o.entity_id CROSS JOIN time_began b \
     WHERE e.tenant = $1 AND coalesce(o.created_at, b.began) <= $2 \
     UNION ALL SELECT h.entity_id, h.id, h.content, h.content_lc, h.created_at, h.deleted_at \
     FROM observation_history h WHERE h.created_at <= $2 AND h.entity_id IN \
     (SELECT id FROM entities WHERE tenant = $1 UNION ALL SELECT id FROM entity_history WHERE tenant = $1) \
     ORDER BY 1, 2";

/// Of the entities `{list}` (ids from `$2`; `$1` the moment).
fn observations_of_sql(list: &str) -> String {
    format!(
        "SELECT o.entity_id, o.id, o.content, o.content_lc, coalesce(o.created_at, b.began), CAST(NULL AS BIGINT) \
         FROM observations o CROSS JOIN time_began b WHERE o.entity_id IN ({list}) AND coalesce(o.created_at, b.began) <= $1 \
         UNION ALL SELECT h.entity_id, h.id, h.content, h.content_lc, h.created_at, h.deleted_at \
         FROM observation_history h WHERE h.entity_id IN ({list}) AND h.created_at <= $1 ORDER BY 1, 2"
    )
}

/// Every relation (`touching` empty), or those with an end among `touching` (names from `$3`),
/// each end through its own index (for an `OR` of the ends SQLite scanned the table in id
/// order, to merge the parts in order), unordered: the caller orders by id and keeps one of a
/// relation with both ends there.
fn relations_sql(touching: &str) -> String {
    let live = "SELECT r.id, r.from_name, r.to_name, r.relation_type, coalesce(r.created_at, b.began) \
         FROM relations r CROSS JOIN time_began b WHERE r.tenant = $1 AND coalesce(r.created_at, b.began) <= $2";
    let gone = "SELECT h.id, h.from_name, h.to_name, h.relation_type, h.created_at FROM relation_history h \
         WHERE h.tenant = $1 AND h.created_at <= $2 AND h.deleted_at > $2";
    match touching {
        "" => format!("{live} UNION ALL {gone} ORDER BY 1"),
        list => [(live, "r"), (gone, "h")]
            .iter()
            .flat_map(|(part, t)| ["from_name", "to_name"].map(|end| format!("{part} AND {t}.{end} IN ({list})")))
            .collect::<Vec<_>>()
            .join(" UNION ALL "),
    }
}

/// Entities with an observation added or deleted after `$2`: their text then is not their text
/// now (or at their deletion), which is what their vector and document describe.
const CHANGED_AFTER: &str = "SELECT o.entity_id FROM observations o JOIN entities e ON e.id = o.entity_id \
     CROSS JOIN time_began b WHERE e.tenant = $1 AND coalesce(o.created_at, b.began) > $2 \
     UNION SELECT h.entity_id FROM observation_history h WHERE (h.created_at > $2 OR h.deleted_at > $2) \
     AND h.entity_id IN (SELECT id FROM entities WHERE tenant = $1 UNION ALL SELECT id FROM entity_history WHERE tenant = $1)";

impl Store {
    /// The tenant's graph as it was at `at` (`i64::MAX`: as it is), the entities `among` asks for
    /// with the relations touching them (all relations for all entities), in one snapshot.
    pub async fn graph_at(&self, tenant: &str, at: i64, among: Among<'_>) -> Result<TimedGraph> {
        let mut tx = self.begin_read().await?;
        let entity_rows = match among {
            Among::All => sqlx::query(&entities_sql("")).bind(tenant).bind(at).fetch_all(&mut *tx).await?,
            Among::Named(names) => {
                let sql = entities_sql(&format!("AND {{t}}.name IN ({})", placeholders(3, names.len().max(1))));
                let query = sqlx::query(&sql).bind(tenant).bind(at);
                match names.is_empty() {
                    true => Vec::new(),
                    false => bind_all(query, names).fetch_all(&mut *tx).await?,
                }
            }
            Among::Containing(needle) => {
                let like = "LIKE $3 ESCAPE '\\'";
                let sql = entities_sql(&format!(
                    "AND ({{t}}.name_lc {like} OR {{t}}.type_lc {like} OR {{t}}.id IN \
                     (SELECT entity_id FROM observations WHERE content_lc {like} \
                      UNION ALL SELECT entity_id FROM observation_history WHERE content_lc {like}))"
                ));
                let pattern = format!("%{}%", like_escape(needle));
                sqlx::query(&sql).bind(tenant).bind(at).bind(pattern).fetch_all(&mut *tx).await?
            }
        };
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
        let (mut observation_rows, mut relation_rows) = (Vec::new(), Vec::new());
        if let Among::All = among {
            observation_rows = sqlx::query(OBSERVATIONS).bind(tenant).bind(at).fetch_all(&mut *tx).await?;
            relation_rows = sqlx::query(&relations_sql("")).bind(tenant).bind(at).fetch_all(&mut *tx).await?;
        } else {
            let ids: Vec<i64> = entities.iter().map(|e| e.id).collect();
            for chunk in ids.chunks(IN_CHUNK) {
                let sql = observations_of_sql(&placeholders(2, chunk.len()));
                let query = chunk.iter().fold(sqlx::query(&sql).bind(at), |q, id| q.bind(*id));
                observation_rows.extend(query.fetch_all(&mut *tx).await?);
            }
            let names: Vec<String> = entities.iter().map(|e| e.name.clone()).collect();
            for chunk in names.chunks(IN_CHUNK) {
                let sql = relations_sql(&placeholders(3, chunk.len()));
                let query = bind_all(sqlx::query(&sql).bind(tenant).bind(at), chunk);
                relation_rows.extend(query.fetch_all(&mut *tx).await?);
            }
        }
        let began: i64 = sqlx::query_scalar("SELECT began FROM time_began").fetch_one(&mut *tx).await?;
        tx.commit().await?;
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
        // By id: chunks of names may bring a relation twice.
        let mut relations = BTreeMap::new();
        for row in relation_rows {
            let id: i64 = row.try_get(0)?;
            let relation =
                RelationRow { id, from: row.try_get(1)?, to: row.try_get(2)?, relation_type: row.try_get(3)? };
            relations.insert(id, TimedRelation { row: relation, created_at: row.try_get(4)? });
        }
        Ok(TimedGraph { entities, relations: relations.into_values().collect(), began })
    }

    /// The tenant's entities whose text changed after `at` (`CHANGED_AFTER`).
    pub async fn changed_after(&self, tenant: &str, at: i64) -> Result<HashSet<i64>> {
        let ids: Vec<i64> = sqlx::query_scalar(CHANGED_AFTER).bind(tenant).bind(at).fetch_all(self.reader()).await?;
        Ok(ids.into_iter().collect())
    }
}
