//! Graph versions: triggers (the migrations named `graph_versions`) bump a tenant's version on
//! every change to its rows, whoever makes it, so a reader can tell with one small read whether a
//! copy of the graph it holds is current, and load the whole graph as one snapshot when it is not.
//! SQLite keeps one row per tenant; PostgreSQL one per tenant and writing backend, summed
//! (`version_reads::graph_version`).

use sqlx::{AnyConnection, Row};

use super::{Engine, LoadedGraph, StorageError, StoredEntity, postgres};

/// The tenant's graph version and entity count (SQLite); (0, 0) for a tenant that never wrote.
pub async fn graph_version(conn: &mut AnyConnection, tenant: &str) -> Result<(i64, i64), StorageError> {
    let row = sqlx::query(VERSION).bind(tenant).fetch_optional(conn).await?;
    Ok(match row {
        Some(row) => (row.try_get(0)?, row.try_get(1)?),
        None => (0, 0),
    })
}

impl super::Store {
    /// The tenant's graph version and entity count: on SQLite from the probe when it can answer
    /// at once, else from the read pool; on PostgreSQL from a query shared with the reads of the
    /// tenant that arrive with this one (`version_reads`).
    pub async fn graph_version(&self, tenant: &str) -> Result<(i64, i64), StorageError> {
        match &self.engine {
            Engine::Sqlite(sqlite) => {
                let probe = sqlite.file.as_ref().and_then(|file| file.probe.as_ref());
                if let Some(found) = probe.and_then(|probe| probe.version(tenant)) {
                    return Ok(found);
                }
                graph_version(&mut *self.reader().acquire().await?, tenant).await
            }
            Engine::Postgres(postgres) => {
                let (version, entities, rows) =
                    postgres.version_reads.read(self.reader(), &self.deadline, tenant).await?;
                postgres.version_rows.fold_if_many(self, tenant, rows);
                Ok((version, entities))
            }
        }
    }
}

/// A tenant's version row (SQLite).
pub(super) const VERSION: &str = "SELECT version, entities FROM graph_versions WHERE tenant = $1";
impl super::Store {
    /// The tenant's whole graph as one snapshot: each entity, with its observations, goes to
    /// `each_entity` as its rows arrive, so the graph is never held twice (collected first, a
    /// load raised the server's peak memory). PostgreSQL, or SQLite in a file (`loads_graphs`).
    pub async fn load_graph<G: Send + 'static>(
        &self,
        tenant: &str,
        mut graph: G,
        each_entity: fn(&mut G, StoredEntity),
    ) -> Result<(G, LoadedGraph), StorageError> {
        let file = match &self.engine {
            Engine::Postgres(_) => {
                let rest = postgres::load_graph(self, tenant, &mut graph, each_entity).await?;
                return Ok((graph, rest));
            }
            Engine::Sqlite(sqlite) => sqlite.file.clone(),
        };
        let Some(file) = file else {
            return Err(StorageError::Unsupported("whole-graph loads need a SQLite database file"));
        };
        let tenant = tenant.to_owned();
        let loading = tokio::task::spawn_blocking(move || {
            let rest = file.snapshots.load(&tenant, &mut graph, each_entity)?;
            Ok((graph, rest))
        });
        match loading.await {
            Ok(loaded) => loaded,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // The runtime is shutting down.
            Err(_) => Err(StorageError::Closed),
        }
    }

    /// Whether `load_graph` can load a tenant's graph: PostgreSQL, or SQLite in a file (in
    /// memory, every connection of ours would see a database of its own).
    pub fn loads_graphs(&self) -> bool {
        match &self.engine {
            Engine::Sqlite(sqlite) => sqlite.file.is_some(),
            Engine::Postgres(_) => true,
        }
    }

    /// Whether one writer orders every write (SQLite): each reports the graph versions around
    /// it, and a copy of the graph can replay them in commit order. PostgreSQL's writes commit
    /// concurrently across replicas; only its creates and observation additions report the
    /// version they started from.
    pub fn single_writer(&self) -> bool {
        matches!(self.engine, Engine::Sqlite(_))
    }
}
