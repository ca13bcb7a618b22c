//! Graph versions (SQLite): the triggers of migration 20261126000001 bump a tenant's version on
//! every change to its rows, so a reader can tell with one primary-key read whether a copy of the
//! graph it holds is current, and load the whole graph as one snapshot when it is not.

use sqlx::{AnyConnection, Row};

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
impl super::Store {
    /// The tenant's whole graph as one snapshot: each entity, with its observations, goes to
    /// `each_entity` as its rows arrive (in name order), so the graph is never held twice (collected
    /// first, loading a 47k-entity graph took the server's peak ~6 MiB higher). Only a SQLite file
    /// can be loaded (`loads_graphs`).
    pub async fn load_graph<G: Send + 'static>(
        &self,
        tenant: &str,
        mut graph: G,
        each_entity: fn(&mut G, StoredEntity),
    ) -> Result<(G, LoadedGraph), StorageError> {
        let Some(reader) = self.snapshots.clone() else {
            return Err(sqlx::Error::Configuration("whole-graph loads need a SQLite database file".into()).into());
        };
        let tenant = tenant.to_owned();
        let loading = tokio::task::spawn_blocking(move || {
            let rest = reader.load(&tenant, &mut graph, each_entity)?;
            Ok((graph, rest))
        });
        match loading.await {
            Ok(loaded) => loaded,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // The runtime is shutting down.
            Err(_) => Err(StorageError::Database(sqlx::Error::PoolClosed)),
        }
    }

    /// Whether `load_graph` can load a tenant's graph: SQLite in a file (in memory, every
    /// connection of ours would see a database of its own).
    pub fn loads_graphs(&self) -> bool {
        self.snapshots.is_some()
    }
}
