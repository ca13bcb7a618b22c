//! Graph versions (SQLite): the triggers of migration 20261126000001 bump a tenant's version on
//! every change to its rows, so a reader can tell with one primary-key read whether a copy of the
//! graph it holds is current, and load the whole graph as one snapshot when it is not.

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

/// The rest of a tenant's graph at the version its entities were loaded at.
pub struct LoadedGraph {
    pub version: i64,
    pub relations: Vec<RelationRow>,
}

/// The tenant's graph version and entity count; (0, 0) for a tenant that never wrote.
pub async fn graph_version(conn: &mut AnyConnection, tenant: &str) -> Result<(i64, i64), StorageError> {
    let row = sqlx::query(VERSION).bind(tenant).fetch_optional(conn).await?;
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

/// A tenant's version row.
pub(super) const VERSION: &str = "SELECT version, entities FROM graph_versions WHERE tenant = $1";
/// One row per observation (one for an entity without any), grouped by entity. In name order, the
/// order of the (tenant, name) index SQLite walks: `ORDER BY e.id` sorted the rows in a temporary
/// B-tree, ~10 ms of a 10k-entity load.
pub(super) const ENTITY_ROWS: &str = "SELECT e.id, e.name, e.entity_type, e.name_lc, e.type_lc, o.content, o.content_lc \
     FROM entities e LEFT JOIN observations o ON o.entity_id = e.id WHERE e.tenant = $1 ORDER BY e.name, o.id";
pub(super) const RELATION_ROWS: &str =
    "SELECT id, from_name, to_name, relation_type FROM relations WHERE tenant = $1 AND id > $2 ORDER BY id LIMIT $3";

/// Groups the rows of `ENTITY_ROWS` into entities, as they arrive.
#[derive(Default)]
pub(super) struct EntityGrouper(Option<StoredEntity>);

impl EntityGrouper {
    /// Whether a row of entity `id` starts the next entity (then read its fields for `begin`).
    pub fn is_new(&self, id: i64) -> bool {
        self.0.as_ref().is_none_or(|e| e.id != id)
    }

    /// Starts the next entity; returns the one it completes.
    pub fn begin(&mut self, entity: StoredEntity) -> Option<StoredEntity> {
        self.0.replace(entity)
    }

    pub fn observe(&mut self, content: String, lowered: String) {
        if let Some(entity) = &mut self.0 {
            entity.observations.push((content, lowered));
        }
    }

    pub fn finish(self) -> Option<StoredEntity> {
        self.0
    }
}

impl super::Store {
    /// The tenant's whole graph as one snapshot: each entity, with its observations, goes to
    /// `each_entity` as its rows arrive (in name order), so the graph is never held twice (collected
    /// first, loading a 47k-entity graph took the server's peak ~6 MiB higher). Read through
    /// rusqlite on a blocking thread when the database is a file (`snapshot`), else through sqlx.
    pub async fn load_graph<G: Send + 'static>(
        &self,
        tenant: &str,
        mut graph: G,
        each_entity: fn(&mut G, StoredEntity),
    ) -> Result<(G, LoadedGraph), StorageError> {
        if let Some(reader) = self.snapshots.clone() {
            let tenant = tenant.to_owned();
            let loading = tokio::task::spawn_blocking(move || {
                let rest = reader.load(&tenant, &mut graph, each_entity)?;
                Ok((graph, rest))
            });
            return match loading.await {
                Ok(loaded) => loaded,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                // The runtime is shutting down.
                Err(_) => Err(StorageError::Database(sqlx::Error::PoolClosed)),
            };
        }
        let mut conn = self.reader().acquire().await?;
        let rest = load_graph(&mut conn, tenant, |entity| each_entity(&mut graph, entity)).await?;
        Ok((graph, rest))
    }
}

async fn load_graph(
    conn: &mut AnyConnection,
    tenant: &str,
    mut each_entity: impl FnMut(StoredEntity),
) -> Result<LoadedGraph, StorageError> {
    let mut tx = conn.begin().await?;
    let (version, _) = graph_version(&mut tx, tenant).await?;
    let mut rows = sqlx::query(ENTITY_ROWS).bind(tenant).fetch(&mut *tx);
    let mut grouper = EntityGrouper::default();
    while let Some(row) = rows.try_next().await? {
        let id: i64 = row.try_get(0)?;
        if grouper.is_new(id) {
            let entity = StoredEntity {
                id,
                name: row.try_get(1)?,
                entity_type: row.try_get(2)?,
                name_lc: row.try_get(3)?,
                type_lc: row.try_get(4)?,
                observations: Vec::new(),
            };
            if let Some(done) = grouper.begin(entity) {
                each_entity(done);
            }
        }
        if let Some(content) = row.try_get::<Option<String>, _>(5)? {
            grouper.observe(content, row.try_get(6)?);
        }
    }
    drop(rows);
    if let Some(done) = grouper.finish() {
        each_entity(done);
    }
    let relations = super::relations_page(&mut tx, tenant, 0, None).await?;
    tx.commit().await?;
    Ok(LoadedGraph { version, relations })
}
