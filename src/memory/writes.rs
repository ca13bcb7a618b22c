//! The six writes, each one transaction. When the graph cache (SQLite) holds the tenant's graph,
//! a write also learns the graph version it began from and the one it made, and replays itself
//! on the copy once committed. SQLite's creates and additions are one batch of statements
//! (`storage::batch`): one trip to sqlx's SQLite thread between BEGIN and COMMIT.

use std::collections::{HashMap, HashSet};

use super::{
    Entity, Memory, MemoryError, ObservationAddition, ObservationDeletion, ObservationsAdded, Relation, Result, Tenant,
    Timed, cache::TenantGraph,
};
use crate::{
    config::Backend,
    storage::{self, Versions, WriteTx, batch::Added},
};

/// A write transaction, in the cache's replay order when the cache holds the tenant's graph.
struct Write<'a> {
    tx: WriteTx,
    /// Keeps replays in commit order (SQLite has one writer anyway).
    order: Option<tokio::sync::MutexGuard<'a, ()>>,
}

impl Write<'_> {
    /// The tenant's graph version, read only when the cache will replay this write.
    async fn version(&mut self, tenant: &Tenant) -> Result<Option<i64>> {
        Ok(match self.order {
            Some(_) => Some(storage::graph_version(&mut self.tx, tenant.as_str()).await?.0),
            None => None,
        })
    }
}

impl Memory {
    async fn begin(&self, tenant: &Tenant) -> Result<Write<'_>> {
        // Without a copy of this tenant's graph there is nothing to replay and no order to keep
        // (a copy loaded while this write runs is at an older version: the next read loads again).
        let order = match &self.cache {
            Some(cache) if cache.holds(tenant.as_str()) => Some(self.cache_order(cache).await?),
            _ => None,
        };
        Ok(Write { tx: self.store.begin_write().await?, order })
    }

    async fn commit(
        &self,
        tenant: &Tenant,
        write: Write<'_>,
        versions: Option<Versions>,
        replay: impl FnOnce(&mut TenantGraph),
    ) -> Result<()> {
        let Write { tx, order } = write;
        tx.commit().await?;
        if let (Some(cache), Some(_), Some(v)) = (&self.cache, order, versions) {
            cache.apply(tenant.as_str(), v.before, v.after, replay);
        }
        Ok(())
    }

    /// `commit` for a write of separate statements, which reads the version after them (and
    /// read it before them as `before`).
    async fn commit_after(
        &self,
        tenant: &Tenant,
        mut write: Write<'_>,
        before: Option<i64>,
        replay: impl FnOnce(&mut TenantGraph),
    ) -> Result<()> {
        let after = write.version(tenant).await?;
        let versions = before.zip(after).map(|(before, after)| Versions { before, after });
        self.commit(tenant, write, versions, replay).await
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
        // The first of duplicate names is the one created.
        let mut names = HashSet::new();
        let first: Vec<bool> = entities.iter().map(|e| names.insert(e.name.as_str())).collect();
        let new: Vec<_> = entities
            .iter()
            .zip(&first)
            .filter(|(_, first)| **first)
            .map(|(e, _)| storage::NewEntity {
                name: &e.name,
                entity_type: &e.entity_type,
                observations: &e.observations,
            })
            .collect();
        // PostgreSQL: one statement, no transaction round trips; SQLite: one batch in a write
        // transaction, replayed on the cache.
        let created = if self.store.backend() == Backend::Postgres {
            storage::create_entities_in_one_statement(&self.store, tenant.as_str(), &new).await?
        } else {
            let mut write = self.begin(tenant).await?;
            let (names, versions) = storage::batch::create_entities(&mut write.tx, tenant.as_str(), &new).await?;
            let created: Vec<bool> =
                entities.iter().zip(&first).map(|(e, first)| *first && names.contains(&e.name)).collect();
            self.commit(tenant, write, Some(versions), |graph| {
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
        let before = write.version(tenant).await?;
        let mut created = Vec::new();
        for r in relations {
            if storage::insert_relation(&mut write.tx, tenant.as_str(), &r.from, &r.to, &r.relation_type).await? {
                created.push(r);
            }
        }
        self.commit_after(tenant, write, before, |graph| created.iter().for_each(|r| graph.create_relation(r))).await?;
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
        if self.store.backend() == Backend::Sqlite {
            return self.add_observations_in_one_batch(tenant, additions).await;
        }
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
        self.commit(tenant, write, None, |_| {}).await?;
        Ok(results)
    }

    /// SQLite's add_observations: every item in one batch, with the reference's rules (an item
    /// skips what its entity has, including what an earlier item added; repeats within an item
    /// are kept).
    async fn add_observations_in_one_batch(
        &self,
        tenant: &Tenant,
        additions: Vec<ObservationAddition>,
    ) -> Result<Vec<ObservationsAdded>> {
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
        let mut write = self.begin(tenant).await?;
        let (added, versions) = storage::batch::add_observations(&mut write.tx, tenant.as_str(), &items).await?;
        let inserted = match added {
            Added::Missing(name) => return Err(MemoryError::EntityNotFound(name)), // rolled back on drop
            Added::Inserted(inserted) => inserted,
        };
        let results: Vec<ObservationsAdded> = items
            .iter()
            .map(|(entity, contents)| ObservationsAdded {
                entity_name: entity.to_string(),
                added_observations: contents
                    .iter()
                    .filter(|c| inserted.contains(&(entity.to_string(), c.to_string())))
                    .map(|c| c.to_string())
                    .collect(),
            })
            .collect();
        self.commit(tenant, write, Some(versions), |graph| {
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
        let before = write.version(tenant).await?;
        let mut related = Vec::new();
        for name in &names {
            related.extend(storage::delete_entity(&mut write.tx, tenant.as_str(), name).await?);
        }
        self.commit_after(tenant, write, before, |graph| names.iter().for_each(|name| graph.delete_entity(name)))
            .await?;
        Ok(related)
    }

    #[tracing::instrument(name = "db.transaction", skip_all, fields(otel.name = "delete_observations", db.system.name = self.store.backend().otel_name(), db.operation.name = "delete_observations"))]
    pub async fn delete_observations(&self, tenant: &Tenant, deletions: Vec<ObservationDeletion>) -> Result<()> {
        let _timed = Timed::start("delete_observations");
        let items = deletions.iter().map(|d| (d.entity_name.as_str(), d.observations.as_slice()));
        self.check().entity_observations("deletions", "observations", items)?;
        let mut write = self.begin(tenant).await?;
        let before = write.version(tenant).await?;
        for deletion in &deletions {
            // A missing entity is skipped silently, as the reference does.
            if let Some(id) = storage::entity_id(&mut write.tx, tenant.as_str(), &deletion.entity_name).await? {
                for content in &deletion.observations {
                    storage::delete_observation(&mut write.tx, id, content).await?;
                }
            }
        }
        self.commit_after(tenant, write, before, |graph| {
            deletions.iter().for_each(|d| graph.delete_observations(&d.entity_name, &d.observations))
        })
        .await
    }

    #[tracing::instrument(name = "db.transaction", skip_all, fields(otel.name = "delete_relations", db.system.name = self.store.backend().otel_name(), db.operation.name = "delete_relations"))]
    pub async fn delete_relations(&self, tenant: &Tenant, relations: Vec<Relation>) -> Result<()> {
        let _timed = Timed::start("delete_relations");
        self.check().relations(&relations)?;
        let mut write = self.begin(tenant).await?;
        let before = write.version(tenant).await?;
        for r in &relations {
            storage::delete_relation(&mut write.tx, tenant.as_str(), &r.from, &r.to, &r.relation_type).await?;
        }
        self.commit_after(tenant, write, before, |graph| relations.iter().for_each(|r| graph.delete_relation(r))).await
    }
}
