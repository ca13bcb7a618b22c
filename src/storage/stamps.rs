//! The times of rows a present read returned (`include: ["time"]` without `asOf` or a window):
//! looked up by name for just those rows, so that asking for times costs what the page costs, not
//! a read of the tenant's whole graph and history (`history`).

use std::collections::HashMap;

use sqlx::Row;

use super::{
    StorageError, Store,
    graph::{IN_CHUNK, bind_all, placeholders},
};

type Result<T> = std::result::Result<T, StorageError>;

/// An entity's creation, its observations' (in insertion order) and the last deletion of one.
pub struct EntityStamps {
    pub created_at: i64,
    pub observations: Vec<i64>,
    pub last_removed: Option<i64>,
}

#[derive(Default)]
pub struct Stamps {
    pub entities: HashMap<String, EntityStamps>,
    /// By (from, to, type).
    pub relations: HashMap<(String, String, String), i64>,
}

impl Store {
    /// The times of the tenant's entities named `names` and of its relations from `froms`, in
    /// one snapshot.
    pub async fn stamps(&self, tenant: &str, names: &[String], froms: &[String]) -> Result<Stamps> {
        let mut stamps = Stamps::default();
        let mut tx = self.begin_read().await?;
        let mut ids = HashMap::new();
        for chunk in names.chunks(IN_CHUNK) {
            let sql = format!(
                "SELECT e.id, e.name, coalesce(e.created_at, b.began), \
                 (SELECT max(h.deleted_at) FROM observation_history h WHERE h.entity_id = e.id) \
                 FROM entities e CROSS JOIN time_began b WHERE e.tenant = $1 AND e.name IN ({})",
                placeholders(2, chunk.len())
            );
            for row in bind_all(sqlx::query(&sql).bind(tenant), chunk).fetch_all(&mut *tx).await? {
                let (id, name): (i64, String) = (row.try_get(0)?, row.try_get(1)?);
                let entity = EntityStamps {
                    created_at: row.try_get(2)?,
                    observations: Vec::new(),
                    last_removed: row.try_get(3)?,
                };
                ids.insert(id, name.clone());
                stamps.entities.insert(name, entity);
            }
        }
        let all: Vec<i64> = ids.keys().copied().collect();
        for chunk in all.chunks(IN_CHUNK) {
            let sql = format!(
                "SELECT o.entity_id, coalesce(o.created_at, b.began) FROM observations o CROSS JOIN time_began b \
                 WHERE o.entity_id IN ({}) ORDER BY o.entity_id, o.id",
                placeholders(1, chunk.len())
            );
            let query = chunk.iter().fold(sqlx::query(&sql), |q, id| q.bind(*id));
            for row in query.fetch_all(&mut *tx).await? {
                let name = &ids[&row.try_get::<i64, _>(0)?];
                stamps.entities.get_mut(name).expect("read above").observations.push(row.try_get(1)?);
            }
        }
        for chunk in froms.chunks(IN_CHUNK) {
            let sql = format!(
                "SELECT r.from_name, r.to_name, r.relation_type, coalesce(r.created_at, b.began) \
                 FROM relations r CROSS JOIN time_began b WHERE r.tenant = $1 AND r.from_name IN ({})",
                placeholders(2, chunk.len())
            );
            for row in bind_all(sqlx::query(&sql).bind(tenant), chunk).fetch_all(&mut *tx).await? {
                let key = (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
                stamps.relations.insert(key, row.try_get(3)?);
            }
        }
        tx.commit().await?;
        Ok(stamps)
    }
}
