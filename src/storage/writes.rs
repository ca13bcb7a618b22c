//! The six writes on either backend, each all or nothing. SQLite's are one batch each through its
//! writer (`batch`); PostgreSQL's create is one statement (`create`), the others statements in a
//! transaction. Each returns what it did and, on SQLite, the graph versions around it (for the
//! graph cache; PostgreSQL has none).

use std::collections::HashSet;

use super::{
    NewEntity, StorageError, Store, batch, create_entities_in_one_statement, delete_entity, delete_observation,
    delete_relation, entity_id, insert_observations, insert_relation, observation_contents,
};

pub use batch::Added;

/// The tenant's graph version when a write began and once its changes were made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Versions {
    pub before: i64,
    pub after: i64,
}

type Result<T> = std::result::Result<(T, Option<Versions>), StorageError>;

/// Creates the entities whose names are new; names must be distinct. Returns the names created.
pub async fn create_entities(store: &Store, tenant: &str, entities: &[NewEntity<'_>]) -> Result<HashSet<String>> {
    Ok(match store.sqlite_writer() {
        Some(writer) => batch::create_entities(writer, tenant, entities).await.map(|(c, v)| (c, Some(v)))?,
        None => (create_entities_in_one_statement(store, tenant, entities).await?, None),
    })
}

/// Creates the relations that are new; returns them as (from, to, type).
pub async fn create_relations(
    store: &Store,
    tenant: &str,
    relations: &[(&str, &str, &str)],
) -> Result<HashSet<(String, String, String)>> {
    if let Some(writer) = store.sqlite_writer() {
        return Ok(batch::create_relations(writer, tenant, relations).await.map(|(c, v)| (c, Some(v)))?);
    }
    let mut tx = store.begin_write().await?;
    let mut created = HashSet::new();
    for &(from, to, kind) in relations {
        if insert_relation(&mut tx, tenant, from, to, kind).await? {
            created.insert((from.to_string(), to.to_string(), kind.to_string()));
        }
    }
    tx.commit().await?;
    Ok((created, None))
}

/// Adds each item's contents that its entity lacks; a content may appear in only one item of an
/// entity. Nothing is added when an entity is missing.
pub async fn add_observations(store: &Store, tenant: &str, items: &[(&str, Vec<&str>)]) -> Result<Added> {
    if let Some(writer) = store.sqlite_writer() {
        return Ok(batch::add_observations(writer, tenant, items).await.map(|(a, v)| (a, Some(v)))?);
    }
    let mut tx = store.begin_write().await?;
    let mut inserted = HashSet::new();
    for (entity, contents) in items {
        let Some(id) = entity_id(&mut tx, tenant, entity).await? else {
            return Ok((Added::Missing(entity.to_string()), None)); // rolled back on drop
        };
        let existing: HashSet<String> = observation_contents(&mut tx, id).await?.into_iter().collect();
        let added: Vec<String> = contents.iter().filter(|c| !existing.contains(**c)).map(|c| c.to_string()).collect();
        insert_observations(&mut tx, id, &added).await?;
        inserted.extend(added.into_iter().map(|c| (entity.to_string(), c)));
    }
    tx.commit().await?;
    Ok((Added::Inserted(inserted), None))
}

/// Deletes the entities with their observations and relations; returns the entities at the other
/// end of the relations deleted.
pub async fn delete_entities(store: &Store, tenant: &str, names: &[String]) -> Result<Vec<String>> {
    if let Some(writer) = store.sqlite_writer() {
        return Ok(batch::delete_entities(writer, tenant, names).await.map(|(e, v)| (e, Some(v)))?);
    }
    let mut tx = store.begin_write().await?;
    let mut ends = Vec::new();
    for name in names {
        ends.extend(delete_entity(&mut tx, tenant, name).await?);
    }
    tx.commit().await?;
    Ok((ends, None))
}

/// Deletes each item's observations equal to one of its contents; a missing entity is skipped.
pub async fn delete_observations(store: &Store, tenant: &str, items: &[(&str, &[String])]) -> Result<()> {
    if let Some(writer) = store.sqlite_writer() {
        return Ok(((), Some(batch::delete_observations(writer, tenant, items).await?)));
    }
    let mut tx = store.begin_write().await?;
    for (entity, contents) in items {
        if let Some(id) = entity_id(&mut tx, tenant, entity).await? {
            for content in *contents {
                delete_observation(&mut tx, id, content).await?;
            }
        }
    }
    tx.commit().await?;
    Ok(((), None))
}

pub async fn delete_relations(store: &Store, tenant: &str, relations: &[(&str, &str, &str)]) -> Result<()> {
    if let Some(writer) = store.sqlite_writer() {
        return Ok(((), Some(batch::delete_relations(writer, tenant, relations).await?)));
    }
    let mut tx = store.begin_write().await?;
    for &(from, to, kind) in relations {
        delete_relation(&mut tx, tenant, from, to, kind).await?;
    }
    tx.commit().await?;
    Ok(((), None))
}
