//! PostgreSQL's own: add_observations as one statement (autocommit, all or nothing: a network
//! round trip per statement was most of a write's time; it takes the same JSON input as SQLite's
//! batch, and creates are one statement too, combined across calls in `combine`), and the graph
//! versions and whole-graph loads of the graph cache.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::TryStreamExt;
use serde_json::Value;
use sqlx::{AnyPool, Row};

use super::{
    Added, DatabaseConfig, StorageError, Store, Versions,
    combine::CreateCombiner,
    deadline::{self, Abandoned},
    loaded::{Entities, LoadedGraph, StoredEntity},
    relations_page,
    version_reads::{VersionReads, graph_version},
};

/// PostgreSQL's own parts of a store: creates combined across calls, version reads shared across
/// the reads that arrive together, the version rows' folding, and the heartbeat's connection.
#[derive(Clone)]
pub(super) struct Postgres {
    pub creates: Arc<CreateCombiner>,
    pub version_reads: Arc<VersionReads>,
    pub version_rows: Arc<VersionRows>,
    /// One connection of its own, so a heartbeat never takes or breaks a request's connection.
    pub heartbeat: AnyPool,
}

/// One pool for reads and writes, and PostgreSQL's parts.
pub(super) fn connect(
    config: &DatabaseConfig,
    options: impl Fn(u32) -> sqlx::any::AnyPoolOptions,
    url: &str,
    abandoned: Arc<Abandoned>,
) -> Result<(AnyPool, Postgres), StorageError> {
    // PostgreSQL guesses 100 rows for every JSON array this server sends, so without `jit = off`
    // a one-entity write was costed like a bulk load and JIT-compiled. The timeouts are
    // `deadline`'s.
    let session = Arc::new(deadline::session_settings(config.statement_timeout));
    let pool = options(config.pool_max)
        .after_connect(move |conn, _| {
            let session = session.clone();
            Box::pin(async move { sqlx::Executor::execute(conn, session.as_str()).await.map(drop) })
        })
        .after_release(deadline::after_release(abandoned, config.timeout))
        .connect_lazy(url)?;
    let heartbeat = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .acquire_timeout(config.timeout)
        .connect_lazy(url)?;
    let parts =
        Postgres { creates: Arc::default(), version_reads: Arc::default(), version_rows: Arc::default(), heartbeat };
    Ok((pool, parts))
}

/// add_observations: `$1` the tenant, `$2` its items, `[[entity name, [[content, content_lc], …]], …]`.
pub const ADD_OBSERVATIONS: &str = "WITH items AS MATERIALIZED ( \
           SELECT t.ord, t.value->>0 AS entity, t.value->1 AS contents, \
             (SELECT e.id FROM entities e WHERE e.tenant = $1 AND e.name = t.value->>0) AS entity_id \
           FROM json_array_elements($2::json) WITH ORDINALITY AS t(value, ord)), \
         missing AS (SELECT entity FROM items WHERE entity_id IS NULL ORDER BY ord LIMIT 1), \
         added AS ( \
           INSERT INTO observations (entity_id, content, content_lc) \
           SELECT i.entity_id, c.value->>0, c.value->>1 FROM items i \
             CROSS JOIN LATERAL json_array_elements(i.contents) WITH ORDINALITY AS c(value, ord) \
           WHERE NOT EXISTS (SELECT 1 FROM missing) \
             AND (SELECT 1 FROM observations o WHERE o.entity_id = i.entity_id AND o.content = c.value->>0 LIMIT 1) IS NULL \
           ORDER BY i.ord, c.ord \
           RETURNING entity_id, content) \
         SELECT 'missing', entity, NULL::text, NULL::int8, NULL::int8 FROM missing \
         UNION ALL SELECT 'added', (SELECT name FROM entities WHERE id = a.entity_id), a.content, NULL, NULL FROM added a \
         UNION ALL SELECT 'version', NULL, NULL, \
           (SELECT COALESCE(sum(version), 0) FROM graph_versions WHERE tenant = $1)::int8, \
           (EXISTS (SELECT 1 FROM added))::int::int8";

/// Adds each item's contents that its entity does not have yet; nothing when an entity named is
/// missing. Every part of the statement sees the observations as they were before it, so repeats
/// within an item are both added (the reference's rule). The lookups are scalar subqueries, one
/// index probe a row: as `NOT EXISTS` joins the planner, which guesses 100 rows for every JSON
/// array, hashed the tenant's entities and all observations (time growing with the graph).
/// Returns what it did and the tenant's graph versions around it: the version its snapshot saw,
/// and that plus the one its change adds (the observations trigger's).
pub async fn add_observations(store: &Store, tenant: &str, input: &Value) -> Result<(Added, Versions), StorageError> {
    let rows = sqlx::query(ADD_OBSERVATIONS).bind(tenant).bind(input.to_string()).fetch_all(&store.write).await?;
    let (mut inserted, mut missing, mut versions) = (HashSet::new(), None, None);
    for row in rows {
        match row.try_get::<String, _>(0)?.as_str() {
            "added" => _ = inserted.insert((row.try_get(1)?, row.try_get(2)?)),
            "version" => {
                let before: i64 = row.try_get(3)?;
                versions = Some(Versions { before, after: before + row.try_get::<i64, _>(4)? });
            }
            _ => missing = Some(row.try_get(1)?),
        }
    }
    let versions = versions.ok_or_else(|| StorageError::Internal("add_observations: no version row".into()))?;
    Ok((missing.map_or(Added::Inserted(inserted), Added::Missing), versions))
}

/// One row per observation (one for an entity without any), grouped by entity.
const ENTITY_ROWS: &str = "SELECT e.id, e.name, e.entity_type, e.name_lc, e.type_lc, o.content, o.content_lc \
     FROM entities e LEFT JOIN observations o ON o.entity_id = e.id WHERE e.tenant = $1 ORDER BY e.id, o.id";

/// The tenant's graph in one snapshot (REPEATABLE READ), each entity handed to `each_entity` as
/// its rows arrive.
pub async fn load_graph<G: Send>(
    store: &Store,
    tenant: &str,
    graph: &mut G,
    each_entity: fn(&mut G, StoredEntity),
) -> Result<LoadedGraph, StorageError> {
    let mut tx = store.begin_read().await?;
    let (version, _, _) = graph_version(&mut tx, tenant).await?;
    let mut entities = Entities::new(graph, each_entity);
    let mut rows = sqlx::query(ENTITY_ROWS).bind(tenant).fetch(&mut *tx);
    while let Some(row) = rows.try_next().await? {
        let entity = || {
            Ok::<_, sqlx::Error>(StoredEntity {
                id: row.try_get(0)?,
                name: row.try_get(1)?,
                entity_type: row.try_get(2)?,
                name_lc: row.try_get(3)?,
                type_lc: row.try_get(4)?,
                observations: Vec::new(),
            })
        };
        let observation = match row.try_get::<Option<String>, _>(5)? {
            Some(content) => Some((content, row.try_get(6)?)),
            None => None,
        };
        entities.row(row.try_get(0)?, entity, observation)?;
    }
    drop(rows);
    entities.finish();
    let relations = relations_page(&mut tx, tenant, 0, None).await?;
    tx.commit().await?;
    Ok(LoadedGraph { version, relations })
}

/// A tenant with more version rows than this has some folded (rows of live backends stay).
const FOLD_AFTER_ROWS: i64 = 32;
/// At most one fold a process this often: a tenant written by many live backends would
/// otherwise start one, folding nothing, on every read.
const FOLD_EVERY: Duration = Duration::from_secs(60);

/// When this process last folded version rows.
#[derive(Default)]
pub struct VersionRows {
    last_fold: Mutex<Option<Instant>>,
}

impl VersionRows {
    /// Folds the tenant's rows of backends gone, in the background, when it has many.
    pub fn fold_if_many(&self, store: &Store, tenant: &str, rows: i64) {
        if rows <= FOLD_AFTER_ROWS {
            return;
        }
        {
            let mut last = self.last_fold.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if last.is_some_and(|at| at.elapsed() < FOLD_EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        let (pool, tenant, deadline) = (store.write.clone(), tenant.to_owned(), store.deadline.clone());
        tokio::spawn(async move {
            match deadline.run(fold_version_rows(&pool, &tenant)).await {
                Ok(folded) => tracing::debug!(folded, "graph-version rows folded"),
                Err(error) => tracing::warn!(%error, "folding graph-version rows failed"),
            }
        });
    }
}

/// Moves the tenant's version rows of backends that are gone into slot 0, keeping the sums: a
/// copy loaded before stays current. Rows a write holds are skipped, never waited for, so a fold
/// cannot make a write wait on it in turn (a deadlock). Returns how many rows went.
pub async fn fold_version_rows(pool: &AnyPool, tenant: &str) -> Result<u64, StorageError> {
    let folded: i64 = sqlx::query_scalar(
        "WITH gone AS ( \
           DELETE FROM graph_versions WHERE (tenant, slot) IN ( \
             SELECT tenant, slot FROM graph_versions \
             WHERE tenant = $1 AND slot <> 0 AND slot NOT IN (SELECT pid FROM pg_stat_activity WHERE pid IS NOT NULL) \
             FOR UPDATE SKIP LOCKED) \
           RETURNING version, entities), \
         kept AS ( \
           INSERT INTO graph_versions AS v (tenant, slot, version, entities) \
           SELECT $1, 0, sum(version), sum(entities) FROM gone HAVING count(*) > 0 \
           ON CONFLICT (tenant, slot) \
           DO UPDATE SET version = v.version + excluded.version, entities = v.entities + excluded.entities) \
         SELECT count(*)::int8 FROM gone",
    )
    .bind(tenant)
    .fetch_one(pool)
    .await?;
    Ok(folded as u64)
}
