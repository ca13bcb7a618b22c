//! The memory domain: the reference server-memory's nine operations, per tenant, each one
//! transaction. Knows nothing of MCP; speaks `storage` only.

mod cache;
mod cursor;
mod limits;
pub mod model;
mod writes;

use std::sync::Arc;

pub use limits::Limits;
pub use model::*;

use crate::storage::{self, EntityRow, RelationRow, StorageError, Store};
use cache::{Cached, GraphCache, TenantGraph};
use cursor::Cursor;
use limits::{Check, storable};

#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// The reference's exact message.
    #[error("Entity with name {0} not found")]
    EntityNotFound(String),
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("cursor: not a cursor issued for this request")]
    InvalidCursor,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<sqlx::Error> for MemoryError {
    fn from(e: sqlx::Error) -> Self {
        MemoryError::Storage(e.into())
    }
}

type Result<T> = std::result::Result<T, MemoryError>;

/// Records how long a database operation took (`db_operation_duration_seconds`) when dropped.
struct Timed(&'static str, std::time::Instant);

impl Timed {
    fn start(operation: &'static str) -> Self {
        Timed(operation, std::time::Instant::now())
    }
}

impl Drop for Timed {
    fn drop(&mut self) {
        metrics::histogram!("db_operation_duration_seconds", "operation" => self.0)
            .record(self.1.elapsed().as_secs_f64());
    }
}

/// A tenant id: every row belongs to exactly one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tenant(String);

impl Tenant {
    pub const DEFAULT: &'static str = "default";

    pub fn new(id: impl Into<String>) -> Self {
        Tenant(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Tenant {
    fn default() -> Self {
        Tenant::new(Tenant::DEFAULT)
    }
}

#[derive(Clone)]
pub struct Memory {
    store: Store,
    limits: Limits,
    /// PostgreSQL, or SQLite in a file (`Store::loads_graphs`).
    cache: Option<Arc<GraphCache>>,
}

impl Memory {
    pub fn new(store: Store, limits: Limits) -> Self {
        let cache = (store.loads_graphs() && limits.graph_cache_entities > 0)
            .then(|| Arc::new(GraphCache::new(limits.graph_cache_entities, store.single_writer())));
        Memory { store, limits, cache }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Runs a call (one or more operations) within the database's deadline: a database that stops
    /// answering fails it as unavailable (`Store::bounded`) instead of holding it until the request
    /// times out.
    pub async fn bounded<T, E: From<MemoryError>>(
        &self,
        call: impl Future<Output = std::result::Result<T, E>>,
    ) -> std::result::Result<T, E> {
        match self.store.bounded(async { Ok::<_, StorageError>(call.await) }).await {
            Ok(result) => result,
            Err(timed_out) => Err(MemoryError::from(timed_out).into()),
        }
    }

    /// The whole graph, or a page of it: up to `limit` entities and `limit` relations,
    /// each in insertion order.
    #[tracing::instrument(name = "db.transaction", skip_all, fields(otel.name = "read_graph", db.system.name = self.store.backend().otel_name(), db.operation.name = "read_graph"))]
    pub async fn read_graph(&self, tenant: &Tenant, page: &PageRequest) -> Result<GraphPage> {
        let _timed = Timed::start("read_graph");
        let (after_e, after_r) = match &page.cursor {
            Some(text) => {
                let c = Cursor::decode(tenant.as_str(), "graph", text).ok_or(MemoryError::InvalidCursor)?;
                (c.e, c.r)
            }
            None => (0, 0),
        };
        let limit = page.limit.map(i64::from);
        // Pages continue from database ids, which the cache does not hold: only whole reads use it.
        let cached = match page.cursor.is_none() && limit.is_none() {
            true => self.cached(tenant).await?,
            false => None,
        };
        let (mut entities, mut relations) = match cached {
            Some(cached) => cached.with(|graph| graph.all()),
            None => {
                let fetch = limit.map(|l| l + 1);
                let mut tx = self.store.begin_read().await?;
                let entities = storage::entities_page(&mut tx, tenant.as_str(), after_e, fetch).await?;
                let relations = storage::relations_page(&mut tx, tenant.as_str(), after_r, fetch).await?;
                tx.commit().await?;
                (entities, relations)
            }
        };
        let mut next_cursor = None;
        if let Some(limit) = limit.map(|l| l as usize) {
            let more = entities.len() > limit || relations.len() > limit;
            entities.truncate(limit);
            relations.truncate(limit);
            if more {
                let e = entities.last().map_or(i64::MAX, |e| e.id);
                let r = relations.last().map_or(i64::MAX, |r| r.id);
                next_cursor = Some(Cursor::encode(tenant.as_str(), "graph", e.max(after_e), r.max(after_r)));
            }
        }
        Ok(GraphPage { graph: graph_of(entities, relations), next_cursor })
    }

    /// Entities whose name, type or an observation contains `query` (case-insensitive), and the
    /// relations that touch them. With a limit, results are ranked and paged.
    #[tracing::instrument(name = "db.transaction", skip_all, fields(otel.name = "search_nodes", db.system.name = self.store.backend().otel_name(), db.operation.name = "search_nodes"))]
    pub async fn search_nodes(&self, tenant: &Tenant, query: &str, page: &PageRequest) -> Result<GraphPage> {
        let _timed = Timed::start("search_nodes");
        self.check().text("query", query, self.limits.max_observation_bytes)?;
        if !storable(query) {
            return Ok(GraphPage::default()); // no stored text contains it
        }
        let scope = format!("search:{query}");
        let offset = match &page.cursor {
            Some(text) => Cursor::decode(tenant.as_str(), &scope, text).ok_or(MemoryError::InvalidCursor)?.e,
            None => 0,
        };
        let ranked = page.limit.is_some() || page.cursor.is_some();
        let limit = page.limit.map(i64::from);
        let (mut entities, mut relations) = match self.cached(tenant).await? {
            Some(cached) => cached.with(|graph| {
                graph.search(query, ranked, usize::try_from(offset).unwrap_or(0), limit.map(|l| l as usize + 1))
            }),
            None => {
                // One statement, one snapshot: no transaction needed.
                let mut conn = self.store.reader().acquire().await.map_err(StorageError::from)?;
                let backend = self.store.backend();
                let fetch = limit.map(|l| l + 1);
                storage::search_graph(&mut conn, backend, tenant.as_str(), query, ranked, offset, fetch).await?
            }
        };
        let mut next_cursor = None;
        if let Some(limit) = limit.map(|l| l as usize)
            && entities.len() > limit
        {
            entities.truncate(limit);
            next_cursor = Some(Cursor::encode(tenant.as_str(), &scope, offset + limit as i64, 0));
            // The look-ahead entity is on the next page, and so are relations only it touches.
            let names: std::collections::HashSet<&str> = entities.iter().map(|e| e.name.as_str()).collect();
            relations.retain(|r| names.contains(r.from.as_str()) || names.contains(r.to.as_str()));
        }
        Ok(GraphPage { graph: graph_of(entities, relations), next_cursor })
    }

    /// The named entities (those that exist) and the relations that touch them.
    #[tracing::instrument(name = "db.transaction", skip_all, fields(otel.name = "open_nodes", db.system.name = self.store.backend().otel_name(), db.operation.name = "open_nodes"))]
    pub async fn open_nodes(&self, tenant: &Tenant, mut names: Vec<String>) -> Result<KnowledgeGraph> {
        let _timed = Timed::start("open_nodes");
        self.check().names("names", &names)?;
        names.retain(|name| storable(name));
        let (entities, relations) = match self.cached(tenant).await? {
            Some(cached) => cached.with(|graph| graph.named(&names)),
            None => {
                let mut tx = self.store.begin_read().await?;
                let entities = storage::entities_named(&mut tx, tenant.as_str(), &names).await?;
                let found: Vec<String> = entities.iter().map(|e| e.name.clone()).collect();
                let relations = storage::relations_touching_any(&mut tx, tenant.as_str(), &found).await?;
                tx.commit().await?;
                (entities, relations)
            }
        };
        Ok(graph_of(entities, relations))
    }

    /// One entity with every relation that names it (either end): the entity resource.
    #[tracing::instrument(name = "db.transaction", skip_all, fields(otel.name = "entity", db.system.name = self.store.backend().otel_name(), db.operation.name = "entity"))]
    pub async fn entity(&self, tenant: &Tenant, name: &str) -> Result<Option<(Entity, Vec<Relation>)>> {
        let _timed = Timed::start("entity");
        if !storable(name) {
            return Ok(None);
        }
        let mut tx = self.store.begin_read().await?;
        let mut found = storage::entities_named(&mut tx, tenant.as_str(), &[name.to_string()]).await?;
        let relations = storage::relations_touching(&mut tx, tenant.as_str(), name).await?;
        tx.commit().await?;
        Ok(found.pop().map(|e| (e.into(), relations.into_iter().map(Relation::from).collect())))
    }

    /// The tenant's graph from memory when the cache holds it (or can load it) at the version the
    /// database has now; `None` means read from the database.
    async fn cached(&self, tenant: &Tenant) -> Result<Option<Arc<Cached>>> {
        let Some(cache) = &self.cache else { return Ok(None) };
        let (version, entities) = self.store.graph_version(tenant.as_str()).await?;
        if let Some(cached) = cache.current(tenant.as_str(), version) {
            metrics::counter!("graph_cache_reads_total", "result" => "hit").increment(1);
            return Ok(Some(cached));
        }
        if usize::try_from(entities).unwrap_or(usize::MAX) > cache.max_entities() {
            metrics::counter!("graph_cache_reads_total", "result" => "too_large").increment(1);
            return Ok(None);
        }
        if !cache.settled(tenant.as_str(), version) {
            metrics::counter!("graph_cache_reads_total", "result" => "changing").increment(1);
            return Ok(None);
        }
        // Writes in flight replay (or another request loads) while this one waits.
        let _order = self.cache_order(cache).await?;
        if let Some(cached) = cache.current(tenant.as_str(), version) {
            metrics::counter!("graph_cache_reads_total", "result" => "hit").increment(1);
            return Ok(Some(cached));
        }
        let (graph, rest) =
            self.store.load_graph(tenant.as_str(), TenantGraph::default(), TenantGraph::load_entity).await?;
        metrics::counter!("graph_cache_reads_total", "result" => "load").increment(1);
        Ok(Some(cache.insert(tenant.as_str(), graph.loaded(rest))))
    }

    /// The cache's write and load order, waited for at most as long as for a connection: under
    /// overload a request fails fast as unavailable.
    async fn cache_order<'a>(&self, cache: &'a GraphCache) -> Result<tokio::sync::MutexGuard<'a, ()>> {
        tokio::time::timeout(self.store.acquire_timeout(), cache.order())
            .await
            .map_err(|_| StorageError::Database(sqlx::Error::PoolTimedOut).into())
    }

    fn check(&self) -> Check {
        Check(self.limits)
    }
}

fn graph_of(entities: Vec<EntityRow>, relations: Vec<RelationRow>) -> KnowledgeGraph {
    KnowledgeGraph {
        entities: entities.into_iter().map(Entity::from).collect(),
        relations: relations.into_iter().map(Relation::from).collect(),
    }
}
