//! A tenant's graph as `Store::load_graph` hands it over, read from either backend (`postgres`,
//! `snapshot`): its own module so that the loaders and the dispatch in `versions` share it without
//! importing each other.

use super::RelationRow;

/// An entity as stored, with the lowercased copies search matches against.
pub struct StoredEntity {
    pub id: i64,
    pub name: String,
    pub entity_type: String,
    pub name_lc: String,
    pub type_lc: String,
    /// (content, lowercased content), in insertion order.
    pub observations: Vec<(String, String)>,
}

/// The rest of a tenant's graph at the version its entities were loaded at.
pub struct LoadedGraph {
    pub version: i64,
    pub relations: Vec<RelationRow>,
}

/// A load's entity rows (one per observation, one for an entity without any; an entity's rows
/// together) made into entities, each handed on as soon as its last row is read.
pub(super) struct Entities<'g, G> {
    graph: &'g mut G,
    each_entity: fn(&mut G, StoredEntity),
    current: Option<StoredEntity>,
}

impl<'g, G> Entities<'g, G> {
    pub(super) fn new(graph: &'g mut G, each_entity: fn(&mut G, StoredEntity)) -> Self {
        Entities { graph, each_entity, current: None }
    }

    /// A row of entity `id`: `entity` reads the entity's columns when the row is its first.
    pub(super) fn row<E>(
        &mut self,
        id: i64,
        entity: impl FnOnce() -> Result<StoredEntity, E>,
        observation: Option<(String, String)>,
    ) -> Result<(), E> {
        if self.current.as_ref().is_none_or(|e| e.id != id) {
            let next = entity()?;
            if let Some(done) = self.current.replace(next) {
                (self.each_entity)(self.graph, done);
            }
        }
        if let (Some(observation), Some(entity)) = (observation, self.current.as_mut()) {
            entity.observations.push(observation);
        }
        Ok(())
    }

    pub(super) fn finish(mut self) {
        if let Some(done) = self.current.take() {
            (self.each_entity)(self.graph, done);
        }
    }
}
