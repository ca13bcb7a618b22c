//! The six writes, each one transaction. When the graph cache (SQLite) holds the tenant's graph,
//! a write also reads the graph version when it begins and before it commits, and replays itself
//! on the copy once committed.

use std::collections::HashSet;

use super::{
    Entity, Memory, MemoryError, ObservationAddition, ObservationDeletion, ObservationsAdded, Relation, Result, Tenant,
    Timed, cache::TenantGraph,
};
use crate::{
    config::Backend,
    storage::{self, WriteTx},
};

/// A write transaction and, with the cache, the graph version it started from.
struct Write<'a> {
    tx: WriteTx,
    before: Option<i64>,
    /// Keeps replays in commit order (SQLite has one writer anyway).
    _order: Option<tokio::sync::MutexGuard<'a, ()>>,
}

impl Memory {
    async fn begin(&self, tenant: &Tenant) -> Result<Write<'_>> {
        // Without a copy of this tenant's graph there is nothing to replay and no order to keep
        // (a copy loaded while this write runs is at an older version: the next read loads again).
        let order = match &self.cache {
            Some(cache) if cache.holds(tenant.as_str()) => Some(self.cache_order(cache).await?),
            _ => None,
        };
        let mut tx = self.store.begin_write().await?;
        let before = match order {
            Some(_) => Some(storage::graph_version(&mut tx, tenant.as_str()).await?.0),
            None => None,
        };
        Ok(Write { tx, before, _order: order })
    }

    async fn commit(&self, tenant: &Tenant, write: Write<'_>, replay: impl FnOnce(&mut TenantGraph)) -> Result<()> {
        let Write { mut tx, before, _order } = write;
        let after = match before {
            Some(_) => Some(storage::graph_version(&mut tx, tenant.as_str()).await?.0),
            None => None,
        };
        tx.commit().await?;
        if let (Some(cache), Some(before), Some(after)) = (&self.cache, before, after) {
            cache.apply(tenant.as_str(), before, after, replay);
        }
        Ok(())
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
        // PostgreSQL: one statement, no transaction round trips; SQLite: a write transaction like
        // the other writes (in-process statements), replayed on the cache.
        let created = if self.store.backend() == Backend::Postgres {
            storage::create_entities_in_one_statement(&self.store, tenant.as_str(), &new).await?
        } else {
            let mut write = self.begin(tenant).await?;
            let created = storage::insert_entities(&mut write.tx, tenant.as_str(), &new).await?;
            self.commit(tenant, write, |graph| {
                entities.iter().zip(&created).filter(|(_, created)| **created).for_each(|(e, _)| graph.create_entity(e))
            })
            .await?;
            created
        };
        Ok(entities.into_iter().zip(created).filter_map(|(entity, created)| created.then_some(entity)).collect())
    }

    #[tracing::instrument(name = "db.transaction", skip_all, fields(otel.name = "create_relations", db.system.name = self.store.backend().otel_name(), db.operation.name = "create_relations"))]
    pub async fn create_relations(&self, tenant: &Tenant, relations: Vec<Relation>) -> Result<Vec<Relation>> {
        let _timed = Timed::start("create_relations");
        self.check().relations(&relations)?;
        let mut write = self.begin(tenant).await?;
        let mut created = Vec::new();
        for r in relations {
            if storage::insert_relation(&mut write.tx, tenant.as_str(), &r.from, &r.to, &r.relation_type).await? {
                created.push(r);
            }
        }
        self.commit(tenant, write, |graph| created.iter().for_each(|r| graph.create_relation(r))).await?;
        Ok(created)
    }

    #[tracing::instrument(name = "db.transaction", skip_all, fields(otel.name = "add_observations", db.system.name = self.store.backend().otel_name(), db.operation.name = "add_observations"))]
    pub async fn add_observations(
        &self,
        tenant: &Tenant,
        additions: Vec<ObservationAddition>,
    ) -> Result<Vec<ObservationsAdded>> {
        let _timed = Timed::start("add_observations");
        let items = additions.iter().map(|a| (a.entity_name.as_str(), a.contents.as_slice()));
        self.check().entity_observations("observations", "contents", items)?;
        let mut write = self.begin(tenant).await?;
        let mut results = Vec::new();
        for addition in additions {
            let id = storage::entity_id(&mut write.tx, tenant.as_str(), &addition.entity_name)
                .await?
                .ok_or_else(|| MemoryError::EntityNotFound(addition.entity_name.clone()))?;
            let existing: HashSet<String> =
                storage::observation_contents(&mut write.tx, id).await?.into_iter().collect();
            // Skips what the entity already has; like the reference, repeats within one item are kept.
            let added: Vec<String> = addition.contents.into_iter().filter(|c| !existing.contains(c)).collect();
            storage::insert_observations(&mut write.tx, id, &added).await?;
            results.push(ObservationsAdded { entity_name: addition.entity_name, added_observations: added });
        }
        self.commit(tenant, write, |graph| {
            results.iter().for_each(|r| graph.add_observations(&r.entity_name, &r.added_observations))
        })
        .await?;
        Ok(results)
    }

    #[tracing::instrument(name = "db.transaction", skip_all, fields(otel.name = "delete_entities", db.system.name = self.store.backend().otel_name(), db.operation.name = "delete_entities"))]
    /// Returns the entities that lost a relation to a deleted one.
    pub async fn delete_entities(&self, tenant: &Tenant, names: Vec<String>) -> Result<Vec<String>> {
        let _timed = Timed::start("delete_entities");
        self.check().names("entityNames", &names)?;
        let mut write = self.begin(tenant).await?;
        let mut related = Vec::new();
        for name in &names {
            related.extend(storage::delete_entity(&mut write.tx, tenant.as_str(), name).await?);
        }
        self.commit(tenant, write, |graph| names.iter().for_each(|name| graph.delete_entity(name))).await?;
        Ok(related)
    }

    #[tracing::instrument(name = "db.transaction", skip_all, fields(otel.name = "delete_observations", db.system.name = self.store.backend().otel_name(), db.operation.name = "delete_observations"))]
    pub async fn delete_observations(&self, tenant: &Tenant, deletions: Vec<ObservationDeletion>) -> Result<()> {
        let _timed = Timed::start("delete_observations");
        let items = deletions.iter().map(|d| (d.entity_name.as_str(), d.observations.as_slice()));
        self.check().entity_observations("deletions", "observations", items)?;
        let mut write = self.begin(tenant).await?;
        for deletion in &deletions {
            // A missing entity is skipped silently, as the reference does.
            if let Some(id) = storage::entity_id(&mut write.tx, tenant.as_str(), &deletion.entity_name).await? {
                for content in &deletion.observations {
                    storage::delete_observation(&mut write.tx, id, content).await?;
                }
            }
        }
        self.commit(tenant, write, |graph| {
            deletions.iter().for_each(|d| graph.delete_observations(&d.entity_name, &d.observations))
        })
        .await
    }

    #[tracing::instrument(name = "db.transaction", skip_all, fields(otel.name = "delete_relations", db.system.name = self.store.backend().otel_name(), db.operation.name = "delete_relations"))]
    pub async fn delete_relations(&self, tenant: &Tenant, relations: Vec<Relation>) -> Result<()> {
        let _timed = Timed::start("delete_relations");
        self.check().relations(&relations)?;
        let mut write = self.begin(tenant).await?;
        for r in &relations {
            storage::delete_relation(&mut write.tx, tenant.as_str(), &r.from, &r.to, &r.relation_type).await?;
        }
        self.commit(tenant, write, |graph| relations.iter().for_each(|r| graph.delete_relation(r))).await
    }
}
