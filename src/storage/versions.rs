//! Graph versions (SQLite): the triggers of migration 20261126000001 bump a tenant's version on
//! every change to its rows, so a reader can tell with one primary-key read whether a copy of the
//! graph it holds is current, and load the whole graph as one snapshot when it is not.

use std::collections::HashMap;

use futures::TryStreamExt;
use sqlx::{AnyConnection, Connection, Row};

use super::{RelationRow, StorageError};

/// An entity as stored, with the lowercased copies search matches against.
pub struct StoredEntity {
    pub id: i64,
    pub name: String,
    pub entity_type: String,
    pub name_lc: String,
    pub type_lc: String,
    /// (content, lowercased content), in insertion order.
    pub observations: Vec<(String, String)>,
}

/// A tenant's whole graph at one version.
pub struct StoredGraph {
    pub version: i64,
    pub entities: Vec<StoredEntity>,
    pub relations: Vec<RelationRow>,
}

/// The tenant's graph version and entity count; (0, 0) for a tenant that never wrote.
pub async fn graph_version(conn: &mut AnyConnection, tenant: &str) -> Result<(i64, i64), StorageError> {
    let row = sqlx::query("SELECT version, entities FROM graph_versions WHERE tenant = $1")
        .bind(tenant)
        .fetch_optional(conn)
        .await?;
    Ok(match row {
        Some(row) => (row.try_get(0)?, row.try_get(1)?),
        None => (0, 0),
    })
}

impl super::Store {
    /// The tenant's graph version and entity count: from the probe when it can answer at once,
    /// else from the read pool.
    pub async fn graph_version(&self, tenant: &str) -> Result<(i64, i64), StorageError> {
        if let Some(found) = self.probe.as_ref().and_then(|probe| probe.version(tenant)) {
            return Ok(found);
        }
        let mut conn = self.reader().acquire().await?;
        graph_version(&mut conn, tenant).await
    }
}

/// The tenant's whole graph and its version, read in one transaction (one snapshot). Rows are
/// taken as they stream in, not collected first: a collected row (with its own column list) is
/// one more copy of the graph held while it loads.
pub async fn load_graph(conn: &mut AnyConnection, tenant: &str) -> Result<StoredGraph, StorageError> {
    let mut tx = conn.begin().await?;
    let (version, count) = graph_version(&mut tx, tenant).await?;
    let mut entities = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    let mut rows =
        sqlx::query("SELECT id, name, entity_type, name_lc, type_lc FROM entities WHERE tenant = $1 ORDER BY id")
            .bind(tenant)
            .fetch(&mut *tx);
    while let Some(row) = rows.try_next().await? {
        entities.push(StoredEntity {
            id: row.try_get(0)?,
            name: row.try_get(1)?,
            entity_type: row.try_get(2)?,
            name_lc: row.try_get(3)?,
            type_lc: row.try_get(4)?,
            observations: Vec::new(),
        });
    }
    drop(rows);
    let index: HashMap<i64, usize> = entities.iter().enumerate().map(|(i, e)| (e.id, i)).collect();
    let mut rows = sqlx::query(
        "SELECT o.entity_id, o.content, o.content_lc FROM observations o JOIN entities e ON e.id = o.entity_id \
         WHERE e.tenant = $1 ORDER BY o.id",
    )
    .bind(tenant)
    .fetch(&mut *tx);
    while let Some(row) = rows.try_next().await? {
        if let Some(&i) = index.get(&row.try_get::<i64, _>(0)?) {
            entities[i].observations.push((row.try_get(1)?, row.try_get(2)?));
        }
    }
    drop(rows);
    let relations = super::relations_page(&mut tx, tenant, 0, None).await?;
    tx.commit().await?;
    Ok(StoredGraph { version, entities, relations })
}
