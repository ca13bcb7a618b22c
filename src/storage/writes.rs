//! The six writes on either backend, each all or nothing. SQLite's are one batch each through its
//! writer (`batch`); PostgreSQL's creates are one statement for the calls that arrive together
//! (`combine`), its additions one statement each (`postgres`), the others statements in a
//! transaction. Each returns what it did and, where it can tell, the graph versions around it (for
//! the graph cache's replay): SQLite's always, PostgreSQL's creates and additions (one statement,
//! one snapshot). Each outcome is noted for the storage-full check (`Store::noted`).

use std::collections::HashSet;

use serde_json::{Value, json};

use super::{
    Added, Engine, StorageError, Store, Versions, batch,
    graph::{delete_entity, delete_observation, delete_relation, entity_id, insert_relation},
    postgres,
    sqlite::Sqlite,
};

type Result<T> = std::result::Result<(T, Option<Versions>), StorageError>;

/// One entity to create, as given.
pub struct NewEntity<'a> {
    pub name: &'a str,
    pub entity_type: &'a str,
    pub observations: &'a [String],
}

/// `[text, its lowercase]`: the searchable columns are stored lowercased beside the text.
fn with_lowercase(text: &str) -> Value {
    json!([text, text.to_lowercase()])
}

/// Both backends' input for a create: `[[name, type, name_lc, type_lc, [[observation, lc], …]], …]`.
fn entities_input(entities: &[NewEntity<'_>]) -> Value {
    (entities.iter())
        .map(|e| {
            let observations: Vec<_> = e.observations.iter().map(|o| with_lowercase(o)).collect();
            json!([e.name, e.entity_type, e.name.to_lowercase(), e.entity_type.to_lowercase(), observations])
        })
        .collect()
}

/// `[[entity, [[content, lc], …]], …]`
fn additions_input(items: &[(&str, Vec<&str>)]) -> Value {
    (items.iter())
        .map(|(entity, contents)| {
            let contents: Vec<_> = contents.iter().map(|c| with_lowercase(c)).collect();
            json!([entity, contents])
        })
        .collect()
}

/// `[[from, to, type], …]`
fn relations_input(relations: &[(&str, &str, &str)]) -> Value {
    relations.iter().map(|(from, to, kind)| json!([from, to, kind])).collect()
}

/// Creates the entities whose names are new; names must be distinct. Returns the names created.
pub async fn create_entities(store: &Store, tenant: &str, entities: &[NewEntity<'_>]) -> Result<HashSet<String>> {
    let done: Result<HashSet<String>> = async {
        let input = entities_input(entities);
        Ok(match &store.engine {
            Engine::Sqlite(Sqlite { writer, .. }) => {
                batch::create_entities(writer, tenant, &input).await.map(|(c, v)| (c, Some(v)))?
            }
            Engine::Postgres(postgres) => postgres.creates.create(&store.write, &store.deadline, tenant, input).await?,
        })
    }
    .await;
    store.noted(done)
}

/// Creates the relations that are new; returns them as (from, to, type).
pub async fn create_relations(
    store: &Store,
    tenant: &str,
    relations: &[(&str, &str, &str)],
) -> Result<HashSet<(String, String, String)>> {
    let done: Result<HashSet<(String, String, String)>> = async {
        if let Engine::Sqlite(Sqlite { writer, .. }) = &store.engine {
            let input = relations_input(relations);
            return batch::create_relations(writer, tenant, &input).await.map(|(c, v)| (c, Some(v)));
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
    .await;
    store.noted(done)
}

/// Adds each item's contents that its entity lacks; a content may appear in only one item of an
/// entity. Nothing is added when an entity is missing.
pub async fn add_observations(store: &Store, tenant: &str, items: &[(&str, Vec<&str>)]) -> Result<Added> {
    let done: Result<Added> = async {
        let input = additions_input(items);
        Ok(match &store.engine {
            Engine::Sqlite(Sqlite { writer, .. }) => {
                batch::add_observations(writer, tenant, &input).await.map(|(a, v)| (a, Some(v)))?
            }
            Engine::Postgres(_) => {
                postgres::add_observations(store, tenant, &input).await.map(|(a, v)| (a, Some(v)))?
            }
        })
    }
    .await;
    store.noted(done)
}

/// Deletes the entities with their observations and relations; returns the entities at the other
/// end of the relations deleted.
pub async fn delete_entities(store: &Store, tenant: &str, names: &[String]) -> Result<Vec<String>> {
    let done: Result<Vec<String>> = async {
        if let Engine::Sqlite(Sqlite { writer, .. }) = &store.engine {
            return batch::delete_entities(writer, tenant, names).await.map(|(e, v)| (e, Some(v)));
        }
        let mut tx = store.begin_write().await?;
        let mut ends = Vec::new();
        for name in names {
            ends.extend(delete_entity(&mut tx, tenant, name).await?);
        }
        tx.commit().await?;
        Ok((ends, None))
    }
    .await;
    store.noted(done)
}

/// Deletes each item's observations equal to one of its contents; a missing entity is skipped.
pub async fn delete_observations(store: &Store, tenant: &str, items: &[(&str, &[String])]) -> Result<()> {
    let done: Result<()> = async {
        if let Engine::Sqlite(Sqlite { writer, .. }) = &store.engine {
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
    .await;
    store.noted(done)
}

pub async fn delete_relations(store: &Store, tenant: &str, relations: &[(&str, &str, &str)]) -> Result<()> {
    let done: Result<()> = async {
        if let Engine::Sqlite(Sqlite { writer, .. }) = &store.engine {
            return Ok(((), Some(batch::delete_relations(writer, tenant, &relations_input(relations)).await?)));
        }
        let mut tx = store.begin_write().await?;
        for &(from, to, kind) in relations {
            delete_relation(&mut tx, tenant, from, to, kind).await?;
        }
        tx.commit().await?;
        Ok(((), None))
    }
    .await;
    store.noted(done)
}
