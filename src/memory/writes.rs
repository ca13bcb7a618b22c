//! The six writes, each all or nothing (`storage::writes`). A write that reports the graph
//! versions before and after its changes is replayed on the tenant's copy once committed (see
//! `cache`): on SQLite every write, in the cache's replay order, taken when the cache holds the
//! tenant's graph; on PostgreSQL creates and observation additions, in no order.

use std::collections::{HashMap, HashSet};

use super::{
    Entity, Memory, MemoryError, ObservationAddition, ObservationDeletion, ObservationsAdded, Relation, Result, Tenant,
    Timed,
    cache::TenantGraph,
    limits::{storable, stored, stored_all},
};
use crate::storage::{self, Added, Versions};

type Order<'a> = Option<tokio::sync::MutexGuard<'a, ()>>;

impl Memory {
    /// The cache's replay order, with one writer (SQLite) and when the cache holds the tenant's
    /// graph. Without a copy there is nothing to replay and no order to keep (a copy loaded while
    /// this write runs is at an older version: the next read loads again). PostgreSQL's writes
    /// take none: it would serialize the combined creates, and `apply` checks each replay's
    /// version instead.
    async fn order(&self, tenant: &Tenant) -> Result<Order<'_>> {
        Ok(match &self.cache {
            Some(cache) if self.store.single_writer() && cache.holds(tenant.as_str()) => {
                Some(self.cache_order(cache).await?)
            }
            _ => None,
        })
    }

    /// Replays a committed write on the tenant's copy (with one writer, in the order taken
    /// before it).
    fn replay(
        &self,
        tenant: &Tenant,
        order: Order<'_>,
        versions: Option<Versions>,
        replay: impl FnOnce(&mut TenantGraph),
    ) {
        self.wake_indexer();
        if let (Some(cache), Some(v)) = (&self.cache, versions)
            && (order.is_some() || !self.store.single_writer())
        {
            cache.apply(tenant.as_str(), v.before, v.after, replay);
        }
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
            stored(&format!("entities[{i}].name"), &e.name)?;
            stored(&format!("entities[{i}].entityType"), &e.entity_type)?;
            stored_all(&format!("entities[{i}].observations"), &e.observations)?;
        }
        // The first of duplicate names is the one created.
        let mut names = HashSet::new();
        let first: Vec<bool> = entities.iter().map(|e| names.insert(e.name.as_str())).collect();
        let new: Vec<_> = (entities.iter().zip(&first))
            .filter(|(_, first)| **first)
            .map(|(e, _)| storage::NewEntity {
                name: &e.name,
                entity_type: &e.entity_type,
                observations: &e.observations,
            })
            .collect();
        let order = self.order(tenant).await?;
        let (names, versions) = storage::writes::create_entities(&self.store, tenant.as_str(), &new).await?;
        let created: Vec<bool> =
            entities.iter().zip(&first).map(|(e, first)| *first && names.contains(&e.name)).collect();
        self.replay(tenant, order, versions, |graph| {
            entities.iter().zip(&created).filter(|(_, created)| **created).for_each(|(e, _)| graph.create_entity(e))
        });
        Ok(entities.into_iter().zip(created).filter_map(|(entity, created)| created.then_some(entity)).collect())
    }

    #[tracing::instrument(name = "db.transaction", skip_all, fields(otel.name = "create_relations", db.system.name = self.store.backend().otel_name(), db.operation.name = "create_relations"))]
    pub async fn create_relations(&self, tenant: &Tenant, relations: Vec<Relation>) -> Result<Vec<Relation>> {
        let _timed = Timed::start("create_relations");
        self.check().relations(&relations)?;
        for (i, r) in relations.iter().enumerate() {
            stored(&format!("relations[{i}].from"), &r.from)?;
            stored(&format!("relations[{i}].to"), &r.to)?;
            stored(&format!("relations[{i}].relationType"), &r.relation_type)?;
        }
        let triples: Vec<_> = relations.iter().map(|r| (&*r.from, &*r.to, &*r.relation_type)).collect();
        let order = self.order(tenant).await?;
        let (mut new, versions) = storage::writes::create_relations(&self.store, tenant.as_str(), &triples).await?;
        // In input order; the first of duplicates is the one created.
        let created: Vec<Relation> = relations
            .into_iter()
            .filter(|r| new.remove(&(r.from.clone(), r.to.clone(), r.relation_type.clone())))
            .collect();
        self.replay(tenant, order, versions, |graph| created.iter().for_each(|r| graph.create_relation(r)));
        Ok(created)
    }

    /// The reference's rules: an item skips what its entity has, including what an earlier item
    /// of the call added; repeats within one item are kept; a missing entity fails the call.
    #[tracing::instrument(name = "db.transaction", skip_all, fields(otel.name = "add_observations", db.system.name = self.store.backend().otel_name(), db.operation.name = "add_observations"))]
    pub async fn add_observations(
        &self,
        tenant: &Tenant,
        additions: Vec<ObservationAddition>,
    ) -> Result<Vec<ObservationsAdded>> {
        let _timed = Timed::start("add_observations");
        let items = additions.iter().map(|a| (a.entity_name.as_str(), a.contents.as_slice()));
        self.check().entity_observations("observations", "contents", items)?;
        for (i, a) in additions.iter().enumerate() {
            stored(&format!("observations[{i}].entityName"), &a.entity_name)?;
            stored_all(&format!("observations[{i}].contents"), &a.contents)?;
        }
        let mut earlier: HashMap<&str, HashSet<&str>> = HashMap::new();
        let items: Vec<(&str, Vec<&str>)> = additions
            .iter()
            .map(|a| {
                let given = earlier.entry(a.entity_name.as_str()).or_default();
                let contents: Vec<&str> =
                    a.contents.iter().map(String::as_str).filter(|c| !given.contains(c)).collect();
                given.extend(contents.iter().copied());
                (a.entity_name.as_str(), contents)
            })
            .collect();
        let order = self.order(tenant).await?;
        let (added, versions) = storage::writes::add_observations(&self.store, tenant.as_str(), &items).await?;
        let inserted = match added {
            Added::Missing(name) => return Err(MemoryError::EntityNotFound(name)),
            Added::Inserted(inserted) => inserted,
        };
        let results: Vec<ObservationsAdded> = items
            .iter()
            .map(|(entity, contents)| ObservationsAdded {
                entity_name: entity.to_string(),
                added_observations: (contents.iter())
                    .filter(|c| inserted.contains(&(entity.to_string(), c.to_string())))
                    .map(|c| c.to_string())
                    .collect(),
            })
            .collect();
        self.replay(tenant, order, versions, |graph| {
            results.iter().for_each(|r| graph.add_observations(&r.entity_name, &r.added_observations))
        });
        Ok(results)
    }

    /// Returns the entities that lost a relation to a deleted one.
    #[tracing::instrument(name = "db.transaction", skip_all, fields(otel.name = "delete_entities", db.system.name = self.store.backend().otel_name(), db.operation.name = "delete_entities"))]
    pub async fn delete_entities(&self, tenant: &Tenant, mut names: Vec<String>) -> Result<Vec<String>> {
        let _timed = Timed::start("delete_entities");
        self.check().names("entityNames", &names)?;
        names.retain(|name| storable(name));
        let order = self.order(tenant).await?;
        let (related, versions) = storage::writes::delete_entities(&self.store, tenant.as_str(), &names).await?;
        self.replay(tenant, order, versions, |graph| names.iter().for_each(|name| graph.delete_entity(name)));
        Ok(related)
    }

    /// A missing entity is skipped silently, as the reference does.
    #[tracing::instrument(name = "db.transaction", skip_all, fields(otel.name = "delete_observations", db.system.name = self.store.backend().otel_name(), db.operation.name = "delete_observations"))]
    pub async fn delete_observations(&self, tenant: &Tenant, mut deletions: Vec<ObservationDeletion>) -> Result<()> {
        let _timed = Timed::start("delete_observations");
        let items = deletions.iter().map(|d| (d.entity_name.as_str(), d.observations.as_slice()));
        self.check().entity_observations("deletions", "observations", items)?;
        deletions.retain(|d| storable(&d.entity_name));
        deletions.iter_mut().for_each(|d| d.observations.retain(|o| storable(o)));
        let items: Vec<_> = deletions.iter().map(|d| (d.entity_name.as_str(), d.observations.as_slice())).collect();
        let order = self.order(tenant).await?;
        let ((), versions) = storage::writes::delete_observations(&self.store, tenant.as_str(), &items).await?;
        self.replay(tenant, order, versions, |graph| {
            deletions.iter().for_each(|d| graph.delete_observations(&d.entity_name, &d.observations))
        });
        Ok(())
    }

    #[tracing::instrument(name = "db.transaction", skip_all, fields(otel.name = "delete_relations", db.system.name = self.store.backend().otel_name(), db.operation.name = "delete_relations"))]
    pub async fn delete_relations(&self, tenant: &Tenant, mut relations: Vec<Relation>) -> Result<()> {
        let _timed = Timed::start("delete_relations");
        self.check().relations(&relations)?;
        relations.retain(|r| storable(&r.from) && storable(&r.to) && storable(&r.relation_type));
        let triples: Vec<_> = relations.iter().map(|r| (&*r.from, &*r.to, &*r.relation_type)).collect();
        let order = self.order(tenant).await?;
        let ((), versions) = storage::writes::delete_relations(&self.store, tenant.as_str(), &triples).await?;
        self.replay(tenant, order, versions, |graph| relations.iter().for_each(|r| graph.delete_relation(r)));
        Ok(())
    }
}
