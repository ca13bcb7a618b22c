//! The memory domain: the reference server-memory's nine operations, per tenant, each one
//! transaction. Knows nothing of MCP; speaks `storage` only.

pub(crate) mod budget;
mod cache;
mod clock;
mod cursor;
mod health;
mod limits;
pub mod model;
mod moment;
mod neighbours;
mod pages;
mod present;
mod retention;
pub mod semantic;
mod time;
mod writes;

use std::sync::Arc;

pub use clock::{format_time, now_ms, parse_time};
pub use health::Health;
pub use limits::Limits;
pub use model::*;
pub use neighbours::MAX_DEPTH;
pub use present::PresentRead;
pub use time::{entity_with_times, relation_with_time};

use crate::storage::{EntityRow, RelationRow, StorageError, Store};
use cache::{Admission, Cached, GraphCache, TenantGraph};
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
    /// Permits to build large replies (`budget::BUILDS` at once).
    replies: budget::Replies,
    /// Search by meaning, when the server has an embedder.
    semantic: Option<Arc<semantic::Semantic>>,
}

impl Memory {
    pub fn new(store: Store, limits: Limits) -> Self {
        let budget = cache::Budget { bytes: limits.graph_cache_bytes, entities: limits.graph_cache_entities };
        let cache = (store.loads_graphs() && budget.bytes > 0 && budget.entities > 0)
            .then(|| Arc::new(GraphCache::new(budget, store.single_writer())));
        Memory { store, limits, cache, replies: budget::Replies::default(), semantic: None }
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

    /// The named entities (those that exist) and the relations that touch them.
    #[tracing::instrument(name = "db.transaction", skip_all, fields(otel.name = "open_nodes", db.system.name = self.store.backend().otel_name(), db.operation.name = "open_nodes"))]
    pub async fn open_nodes(&self, tenant: &Tenant, mut names: Vec<String>) -> Result<KnowledgeGraph> {
        let _timed = Timed::start("open_nodes");
        self.check().names("names", &names)?;
        names.retain(|name| storable(name));
        let (entities, relations) = match self.cached(tenant).await? {
            Some(cached) => cached.with(|graph| graph.named(&names)),
            None => {
                let mut read = self.store.snapshot().await?;
                let entities = read.entities_named(tenant.as_str(), &names).await?;
                let found: Vec<String> = entities.iter().map(|e| e.name.clone()).collect();
                let relations = read.relations_touching_any(tenant.as_str(), &found).await?;
                read.finish().await?;
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
        let mut read = self.store.snapshot().await?;
        let mut found = read.entities_named(tenant.as_str(), &[name.to_string()]).await?;
        let relations = read.relations_touching(tenant.as_str(), name).await?;
        read.finish().await?;
        Ok(found.pop().map(|e| (e.into(), relations.into_iter().map(Relation::from).collect())))
    }

    /// The tenant's graph from memory when the cache holds it (or can load it) at the version the
    /// database has now; `None` means read from the database.
    async fn cached(&self, tenant: &Tenant) -> Result<Option<Arc<Cached>>> {
        let Some(cache) = &self.cache else { return Ok(None) };
        let (version, entities) = self.store.graph_version(tenant.as_str()).await?;
        self.cached_at(cache, tenant, version, entities).await
    }

    /// As `cached`, for a tenant found at `version` with `entities`.
    async fn cached_at(
        &self,
        cache: &GraphCache,
        tenant: &Tenant,
        version: i64,
        entities: i64,
    ) -> Result<Option<Arc<Cached>>> {
        let count =
            |result: &'static str| metrics::counter!("graph_cache_reads_total", "result" => result).increment(1);
        if let Some(cached) = cache.current(tenant.as_str(), version) {
            count("hit");
            return Ok(Some(cached));
        }
        let skipped = match cache.admits(tenant.as_str(), usize::try_from(entities).unwrap_or(usize::MAX)) {
            Admission::Load => None,
            Admission::TooLarge => Some("too_large"),
            Admission::Cold => Some("cold"),
            Admission::Failing => Some("failing"),
        };
        if let Some(result) = skipped {
            count(result);
            return Ok(None);
        }
        if !cache.settled(tenant.as_str(), version) {
            count("changing");
            return Ok(None);
        }
        // Writes in flight replay (or another request loads) while this one waits.
        let _order = self.cache_order(cache).await?;
        if let Some(cached) = cache.current(tenant.as_str(), version) {
            count("hit");
            return Ok(Some(cached));
        }
        // The copy only saves the database work: a load that fails leaves the read to it, which
        // fails as well if the database is what failed.
        let (graph, rest) = match self
            .store
            .load_graph(tenant.as_str(), TenantGraph::default(), TenantGraph::load_entity)
            .await
        {
            Ok(loaded) => loaded,
            Err(error) => {
                count("load_failed");
                let retry_in = cache.load_failed(tenant.as_str());
                tracing::warn!(%error, ?retry_in, "graph cache: the graph did not load; its reads go to the database");
                return Ok(None);
            }
        };
        let (result, loaded) = match cache.insert(tenant.as_str(), graph.loaded(rest)) {
            Ok(held) => ("load", held),
            Err(too_large) => ("too_large", too_large),
        };
        count(result);
        Ok(Some(loaded))
    }

    /// The cache's write and load order, waited for at most as long as for a connection: under
    /// overload a request fails fast as unavailable.
    async fn cache_order<'a>(&self, cache: &'a GraphCache) -> Result<tokio::sync::MutexGuard<'a, ()>> {
        let timeout = self.store.acquire_timeout();
        tokio::time::timeout(timeout, cache.order()).await.map_err(|_| StorageError::TimedOut(timeout).into())
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
