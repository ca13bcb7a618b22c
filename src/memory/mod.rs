//! The memory domain: the reference server-memory's nine operations, per tenant, each one
//! transaction. Knows nothing of MCP; speaks `storage` only.

mod cursor;
mod limits;
pub mod model;

use std::collections::HashSet;

pub use limits::Limits;
pub use model::*;

use crate::storage::{self, StorageError, Store};
use cursor::Cursor;
use limits::Check;

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
}

impl Memory {
    pub fn new(store: Store, limits: Limits) -> Self {
        Memory { store, limits }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    #[tracing::instrument(name = "db.transaction", skip_all, fields(otel.name = "create_entities", db.system.name = self.store.backend().otel_name(), db.operation.name = "create_entities"))]
    pub async fn create_entities(&self, tenant: &Tenant, entities: Vec<Entity>) -> Result<Vec<Entity>> {
        let _timed = Timed::start("create_entities");
        let check = self.check();
        check.batch("entities", entities.len())?;
        for (i, e) in entities.iter().enumerate() {
            check.name(&format!("entities[{i}].name"), &e.name)?;
            check.name(&format!("entities[{i}].entityType"), &e.entity_type)?;
            check.observations(&format!("entities[{i}].observations"), &e.observations)?;
        }
        let new: Vec<_> = entities
            .iter()
            .map(|e| storage::NewEntity { name: &e.name, entity_type: &e.entity_type, observations: &e.observations })
            .collect();
        let created = storage::create_entities(&self.store, tenant.as_str(), &new).await?;
        Ok(entities.into_iter().zip(created).filter_map(|(entity, created)| created.then_some(entity)).collect())
    }

    #[tracing::instrument(name = "db.transaction", skip_all, fields(otel.name = "create_relations", db.system.name = self.store.backend().otel_name(), db.operation.name = "create_relations"))]
    pub async fn create_relations(&self, tenant: &Tenant, relations: Vec<Relation>) -> Result<Vec<Relation>> {
        let _timed = Timed::start("create_relations");
        self.check().relations(&relations)?;
        let mut tx = self.store.begin_write().await?;
        let mut created = Vec::new();
        for r in relations {
            if storage::insert_relation(&mut tx, tenant.as_str(), &r.from, &r.to, &r.relation_type).await? {
                created.push(r);
            }
        }
        tx.commit().await?;
        Ok(created)
    }

    #[tracing::instrument(name = "db.transaction", skip_all, fields(otel.name = "add_observations", db.system.name = self.store.backend().otel_name(), db.operation.name = "add_observations"))]
    pub async fn add_observations(
        &self,
        tenant: &Tenant,
        additions: Vec<ObservationAddition>,
    ) -> Result<Vec<ObservationsAdded>> {
        let _timed = Timed::start("add_observations");
        let check = self.check();
        check.batch("observations", additions.len())?;
        for (i, a) in additions.iter().enumerate() {
            check.name(&format!("observations[{i}].entityName"), &a.entity_name)?;
            check.observations(&format!("observations[{i}].contents"), &a.contents)?;
        }
        let mut tx = self.store.begin_write().await?;
        let mut results = Vec::new();
        for addition in additions {
            let id = storage::entity_id(&mut tx, tenant.as_str(), &addition.entity_name)
                .await?
                .ok_or_else(|| MemoryError::EntityNotFound(addition.entity_name.clone()))?;
            let existing: HashSet<String> = storage::observation_contents(&mut tx, id).await?.into_iter().collect();
            // Skips what the entity already has; like the reference, repeats within one item are kept.
            let added: Vec<String> = addition.contents.into_iter().filter(|c| !existing.contains(c)).collect();
            storage::insert_observations(&mut tx, id, &added).await?;
            results.push(ObservationsAdded { entity_name: addition.entity_name, added_observations: added });
        }
        tx.commit().await?;
        Ok(results)
    }

    #[tracing::instrument(name = "db.transaction", skip_all, fields(otel.name = "delete_entities", db.system.name = self.store.backend().otel_name(), db.operation.name = "delete_entities"))]
    /// Returns the entities that lost a relation to a deleted one.
    pub async fn delete_entities(&self, tenant: &Tenant, names: Vec<String>) -> Result<Vec<String>> {
        let _timed = Timed::start("delete_entities");
        self.check().names("entityNames", &names)?;
        let mut tx = self.store.begin_write().await?;
        let mut related = Vec::new();
        for name in &names {
            related.extend(storage::delete_entity(&mut tx, tenant.as_str(), name).await?);
        }
        tx.commit().await?;
        Ok(related)
    }

    #[tracing::instrument(name = "db.transaction", skip_all, fields(otel.name = "delete_observations", db.system.name = self.store.backend().otel_name(), db.operation.name = "delete_observations"))]
    pub async fn delete_observations(&self, tenant: &Tenant, deletions: Vec<ObservationDeletion>) -> Result<()> {
        let _timed = Timed::start("delete_observations");
        let check = self.check();
        check.batch("deletions", deletions.len())?;
        for (i, d) in deletions.iter().enumerate() {
            check.name(&format!("deletions[{i}].entityName"), &d.entity_name)?;
            check.observations(&format!("deletions[{i}].observations"), &d.observations)?;
        }
        let mut tx = self.store.begin_write().await?;
        for deletion in &deletions {
            // A missing entity is skipped silently, as the reference does.
            if let Some(id) = storage::entity_id(&mut tx, tenant.as_str(), &deletion.entity_name).await? {
                for content in &deletion.observations {
                    storage::delete_observation(&mut tx, id, content).await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(name = "db.transaction", skip_all, fields(otel.name = "delete_relations", db.system.name = self.store.backend().otel_name(), db.operation.name = "delete_relations"))]
    pub async fn delete_relations(&self, tenant: &Tenant, relations: Vec<Relation>) -> Result<()> {
        let _timed = Timed::start("delete_relations");
        self.check().relations(&relations)?;
        let mut tx = self.store.begin_write().await?;
        for r in &relations {
            storage::delete_relation(&mut tx, tenant.as_str(), &r.from, &r.to, &r.relation_type).await?;
        }
        tx.commit().await?;
        Ok(())
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
        let fetch = limit.map(|l| l + 1);
        let mut tx = self.store.begin_read().await?;
        let mut entities = storage::entities_page(&mut tx, tenant.as_str(), after_e, fetch).await?;
        let mut relations = storage::relations_page(&mut tx, tenant.as_str(), after_r, fetch).await?;
        tx.commit().await?;
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
        Ok(GraphPage {
            graph: KnowledgeGraph {
                entities: entities.into_iter().map(Entity::from).collect(),
                relations: relations.into_iter().map(Relation::from).collect(),
            },
            next_cursor,
        })
    }

    /// Entities whose name, type or an observation contains `query` (case-insensitive), and the
    /// relations that touch them. With a limit, results are ranked and paged.
    #[tracing::instrument(name = "db.transaction", skip_all, fields(otel.name = "search_nodes", db.system.name = self.store.backend().otel_name(), db.operation.name = "search_nodes"))]
    pub async fn search_nodes(&self, tenant: &Tenant, query: &str, page: &PageRequest) -> Result<GraphPage> {
        let _timed = Timed::start("search_nodes");
        self.check().text("query", query, self.limits.max_observation_bytes)?;
        let scope = format!("search:{query}");
        let offset = match &page.cursor {
            Some(text) => Cursor::decode(tenant.as_str(), &scope, text).ok_or(MemoryError::InvalidCursor)?.e,
            None => 0,
        };
        let ranked = page.limit.is_some() || page.cursor.is_some();
        let limit = page.limit.map(i64::from);
        // One statement, one snapshot: no transaction needed.
        let mut conn = self.store.reader().acquire().await.map_err(storage::StorageError::from)?;
        let (mut entities, mut relations) = storage::search_graph(
            &mut conn,
            self.store.backend(),
            tenant.as_str(),
            query,
            ranked,
            offset,
            limit.map(|l| l + 1),
        )
        .await?;
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
        Ok(GraphPage {
            graph: KnowledgeGraph {
                entities: entities.into_iter().map(Entity::from).collect(),
                relations: relations.into_iter().map(Relation::from).collect(),
            },
            next_cursor,
        })
    }

    /// The named entities (those that exist) and the relations that touch them.
    #[tracing::instrument(name = "db.transaction", skip_all, fields(otel.name = "open_nodes", db.system.name = self.store.backend().otel_name(), db.operation.name = "open_nodes"))]
    pub async fn open_nodes(&self, tenant: &Tenant, names: Vec<String>) -> Result<KnowledgeGraph> {
        let _timed = Timed::start("open_nodes");
        self.check().names("names", &names)?;
        let mut tx = self.store.begin_read().await?;
        let entities = storage::entities_named(&mut tx, tenant.as_str(), &names).await?;
        let found: Vec<String> = entities.iter().map(|e| e.name.clone()).collect();
        let relations = storage::relations_touching_any(&mut tx, tenant.as_str(), &found).await?;
        tx.commit().await?;
        Ok(KnowledgeGraph {
            entities: entities.into_iter().map(Entity::from).collect(),
            relations: relations.into_iter().map(Relation::from).collect(),
        })
    }

    /// One entity with every relation that names it (either end): the entity resource.
    #[tracing::instrument(name = "db.transaction", skip_all, fields(otel.name = "entity", db.system.name = self.store.backend().otel_name(), db.operation.name = "entity"))]
    pub async fn entity(&self, tenant: &Tenant, name: &str) -> Result<Option<(Entity, Vec<Relation>)>> {
        let _timed = Timed::start("entity");
        let mut tx = self.store.begin_read().await?;
        let mut found = storage::entities_named(&mut tx, tenant.as_str(), &[name.to_string()]).await?;
        let relations = storage::relations_touching(&mut tx, tenant.as_str(), name).await?;
        tx.commit().await?;
        Ok(found.pop().map(|e| (e.into(), relations.into_iter().map(Relation::from).collect())))
    }

    fn check(&self) -> Check {
        Check(self.limits)
    }
}
