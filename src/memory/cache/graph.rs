//! One tenant's graph in memory, answering the reads exactly as the SQL queries do: the same
//! entities in the same order, the same relations. Writes are replayed on it after they commit.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use memchr::memmem::Finder;

use super::{
    grams::{Candidates, GramIndex, grams},
    size,
};
use crate::{
    memory::{
        Entity, Relation,
        budget::{self, Fill},
    },
    storage::{EntityRow, LoadedGraph, RelationRow, StoredEntity},
};

/// A text and its lowercased copy (the one search matches against), which is kept only when it
/// differs: most text is lowercase already, and a cached graph's size is most of the server's.
struct Lowered {
    text: String,
    lowercase: Option<Box<str>>,
}

impl Lowered {
    fn new(text: String, lowercase: String) -> Self {
        let lowercase = (lowercase != text).then(|| lowercase.into_boxed_str());
        Lowered { text, lowercase }
    }

    fn of(text: &str) -> Self {
        Lowered::new(text.to_string(), text.to_lowercase())
    }

    fn lowercase(&self) -> &str {
        self.lowercase.as_deref().unwrap_or(&self.text)
    }

    fn bytes(&self) -> usize {
        size::STRING + self.text.len() + self.lowercase.as_ref().map_or(0, |l| size::STRING + l.len())
    }
}

struct Node {
    name: Lowered,
    entity_type: Lowered,
    /// In insertion order.
    observations: Vec<Lowered>,
}

impl Node {
    /// The lowercased fields search matches against.
    fn fields(&self) -> impl Iterator<Item = &str> {
        [self.name.lowercase(), self.entity_type.lowercase()]
            .into_iter()
            .chain(self.observations.iter().map(Lowered::lowercase))
    }

    /// search_nodes' ranking: exact name, name prefix, name, type, observation.
    fn rank(&self, needle: &str, found: impl Fn(&str) -> bool) -> u8 {
        let name = self.name.lowercase();
        if found(name) {
            if name == needle {
                0
            } else if name.starts_with(needle) {
                1
            } else {
                2
            }
        } else if found(self.entity_type.lowercase()) {
            3
        } else {
            4
        }
    }

    /// Memory it takes (`size`), the name-map's copy of its name included.
    fn bytes(&self) -> usize {
        let observations: usize = self.observations.iter().map(|o| size::OBSERVATION + o.bytes()).sum();
        size::ENTITY + size::STRING + self.name.text.len() + self.name.bytes() + self.entity_type.bytes() + observations
    }

    /// Bytes it takes in a reply (`budget::entity`).
    fn cost(&self) -> usize {
        budget::entity(&self.name.text, &self.entity_type.text, self.observations.iter().map(|o| o.text.as_str()))
    }

    fn row(&self, id: i64) -> EntityRow {
        EntityRow {
            id,
            name: self.name.text.clone(),
            entity_type: self.entity_type.text.clone(),
            observations: self.observations.iter().map(|o| o.text.clone()).collect(),
        }
    }
}

/// Ids order rows as the database's do: loaded rows keep theirs, rows created later get larger
/// ones (the database gives a later insert a larger id, and reads only compare them).
pub struct TenantGraph {
    pub(super) version: i64,
    next_id: i64,
    /// Boxed: ids only grow, and a B-tree filled in key order keeps its leaves about half full,
    /// a waste of half a node per entity when the nodes are held in place.
    entities: BTreeMap<i64, Box<Node>>,
    ids: HashMap<String, i64>,
    relations: BTreeMap<i64, Relation>,
    relation_ids: HashMap<Relation, i64>,
    /// Relation ids by the entity name at either end.
    touching: HashMap<String, BTreeSet<i64>>,
    text: GramIndex,
    /// Estimated memory of the entities and relations (`size`); the index keeps its own.
    bytes: usize,
}

impl Default for TenantGraph {
    fn default() -> Self {
        TenantGraph {
            version: 0,
            next_id: 1,
            entities: BTreeMap::new(),
            ids: HashMap::new(),
            relations: BTreeMap::new(),
            relation_ids: HashMap::new(),
            touching: HashMap::new(),
            text: GramIndex::default(),
            bytes: 0,
        }
    }
}

impl TenantGraph {
    pub fn len(&self) -> usize {
        self.entities.len()
    }

    /// Estimated memory it takes, search index included.
    pub fn bytes(&self) -> usize {
        size::TENANT + self.bytes + self.text.bytes()
    }

    /// Loading: an entity as stored (in any order).
    pub fn load_entity(&mut self, e: StoredEntity) {
        let node = Node {
            name: Lowered::new(e.name, e.name_lc),
            entity_type: Lowered::new(e.entity_type, e.type_lc),
            observations: e.observations.into_iter().map(|(text, lc)| Lowered::new(text, lc)).collect(),
        };
        self.insert_node(e.id, node);
    }

    /// Loading: the relations and the version, once every entity is in.
    pub fn loaded(mut self, rest: LoadedGraph) -> Self {
        self.version = rest.version;
        for r in rest.relations {
            self.insert_relation(r.id, Relation { from: r.from, to: r.to, relation_type: r.relation_type });
        }
        self
    }

    fn insert_node(&mut self, id: i64, node: Node) {
        self.bytes += node.bytes();
        self.text.insert(id, node.fields());
        self.ids.insert(node.name.text.clone(), id);
        self.entities.insert(id, Box::new(node));
        self.next_id = self.next_id.max(id + 1);
    }

    fn insert_relation(&mut self, id: i64, relation: Relation) {
        for end in [&relation.from, &relation.to] {
            self.touching.entry(end.clone()).or_default().insert(id);
        }
        self.bytes += relation_bytes(&relation);
        self.relation_ids.insert(relation.clone(), id);
        self.relations.insert(id, relation);
        self.next_id = self.next_id.max(id + 1);
    }

    fn remove_relation(&mut self, relation: &Relation) {
        let Some(id) = self.relation_ids.remove(relation) else { return };
        self.bytes -= relation_bytes(relation);
        self.relations.remove(&id);
        for end in [&relation.from, &relation.to] {
            if let Some(ids) = self.touching.get_mut(end) {
                ids.remove(&id);
                if ids.is_empty() {
                    self.touching.remove(end);
                }
            }
        }
    }

    // Writes, replayed with what the database reported it did.

    /// An entity the database created (its name was new).
    pub fn create_entity(&mut self, entity: &Entity) {
        let node = Node {
            name: Lowered::of(&entity.name),
            entity_type: Lowered::of(&entity.entity_type),
            observations: entity.observations.iter().map(|o| Lowered::of(o)).collect(),
        };
        self.insert_node(self.next_id, node);
    }

    /// A relation the database created (it was new).
    pub fn create_relation(&mut self, relation: &Relation) {
        self.insert_relation(self.next_id, relation.clone());
    }

    pub fn add_observations(&mut self, entity: &str, added: &[String]) {
        let Some(&id) = self.ids.get(entity) else { return };
        if let Some(node) = self.entities.get_mut(&id) {
            let (old, before) = (node.observations.len(), node.bytes());
            node.observations.extend(added.iter().map(|o| Lowered::of(o)));
            self.bytes = self.bytes - before + node.bytes();
            self.text.extend(id, node.observations[old..].iter().map(Lowered::lowercase));
        }
    }

    /// The entity, its observations and every relation with it at either end.
    pub fn delete_entity(&mut self, name: &str) {
        if let Some(ids) = self.touching.get(name).cloned() {
            for id in ids {
                if let Some(relation) = self.relations.get(&id).cloned() {
                    self.remove_relation(&relation);
                }
            }
        }
        if let Some(id) = self.ids.remove(name)
            && let Some(node) = self.entities.remove(&id)
        {
            self.bytes -= node.bytes();
            self.text.remove(id, node.fields());
        }
    }

    /// Every observation of the entity equal to one of `contents`.
    pub fn delete_observations(&mut self, entity: &str, contents: &[String]) {
        let Some(&id) = self.ids.get(entity) else { return };
        if let Some(node) = self.entities.get_mut(&id) {
            let (before, count, bytes) = (grams(node.fields()), node.observations.len(), node.bytes());
            node.observations.retain(|o| !contents.contains(&o.text));
            self.bytes = self.bytes - bytes + node.bytes();
            if node.observations.len() != count {
                self.text.replace(id, &before, node.fields());
            }
        }
    }

    pub fn delete_relation(&mut self, relation: &Relation) {
        self.remove_relation(relation);
    }

    // Reads.

    /// Relations with an end among `names`, in insertion order.
    fn relations_touching<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Vec<RelationRow> {
        let ids: BTreeSet<i64> =
            names.into_iter().filter_map(|name| self.touching.get(name)).flatten().copied().collect();
        ids.into_iter().map(|id| relation_row(id, &self.relations[&id])).collect()
    }

    /// As `storage::search_graph`: entities whose name, type or an observation contains `query`
    /// case-insensitively, unranked in insertion order or ranked (exact name, name prefix, name,
    /// type, observation; ties in insertion order), from `offset` while they fit `fill`; and the
    /// relations touching them. Only the page is copied out; `true` when more matches follow.
    pub fn search(
        &self,
        query: &str,
        ranked: bool,
        offset: usize,
        fill: &mut Fill,
    ) -> (Vec<EntityRow>, Vec<RelationRow>, bool) {
        let hits = self.hits(query, ranked);
        let (mut page, mut relations, mut more) = (Vec::new(), BTreeSet::new(), false);
        for &(id, node) in hits.iter().skip(offset) {
            let touching = self.touching.get(&node.name.text).into_iter().flatten();
            let new: Vec<i64> = touching.filter(|r| !relations.contains(*r)).copied().collect();
            let cost = node.cost() + new.iter().map(|r| self.relation_cost(*r)).sum::<usize>();
            if !fill.take(cost) {
                more = true;
                break;
            }
            relations.extend(new);
            page.push(node.row(id));
        }
        let relations = relations.into_iter().map(|id| relation_row(id, &self.relations[&id])).collect();
        (page, relations, more)
    }

    /// The search's matching entity ids in its order (`search`), for a caller that pages them.
    pub fn search_ids(&self, query: &str, ranked: bool) -> Vec<i64> {
        self.hits(query, ranked).into_iter().map(|(id, _)| id).collect()
    }

    fn hits(&self, query: &str, ranked: bool) -> Vec<(i64, &Node)> {
        let needle = query.to_lowercase();
        let finder = Finder::new(needle.as_bytes());
        let found = |text: &str| finder.find(text.as_bytes()).is_some();
        let matching: Vec<(i64, &Node)> = if needle.contains('\0') {
            Vec::new() // stored text holds no NUL (`limits::stored`)
        } else if needle.is_empty() {
            self.entities.iter().map(|(&id, node)| (id, &**node)).collect()
        } else {
            let Candidates { ids, exact } = self.text.candidates(&needle);
            ids.into_iter()
                .map(|id| (id, &*self.entities[&id]))
                .filter(|(_, node)| exact || node.fields().any(found))
                .collect()
        };
        let mut hits: Vec<(u8, i64, &Node)> = matching
            .into_iter()
            .map(|(id, node)| (if ranked { node.rank(&needle, found) } else { 0 }, id, node))
            .collect();
        // Stable: equal ranks stay in id order.
        hits.sort_by_key(|&(rank, ..)| rank);
        hits.into_iter().map(|(_, id, node)| (id, node)).collect()
    }

    fn relation_cost(&self, id: i64) -> usize {
        let r = &self.relations[&id];
        budget::relation(&r.from, &r.to, &r.relation_type)
    }

    /// Whether the whole graph's reply fits `fill`.
    pub fn fits(&self, fill: &mut Fill) -> bool {
        self.entities.values().all(|node| fill.take(node.cost()))
            && self.relations.keys().all(|id| fill.take(self.relation_cost(*id)))
    }

    /// As open_nodes: the named entities that exist, in insertion order, and the relations
    /// touching them.
    pub fn named(&self, names: &[String]) -> (Vec<EntityRow>, Vec<RelationRow>) {
        let ids: BTreeSet<i64> = names.iter().filter_map(|name| self.ids.get(name)).copied().collect();
        let entities: Vec<EntityRow> = ids.iter().map(|id| self.entities[id].row(*id)).collect();
        let relations = self.relations_touching(entities.iter().map(|e| e.name.as_str()));
        (entities, relations)
    }

    /// The whole graph, in insertion order.
    pub fn all(&self) -> (Vec<EntityRow>, Vec<RelationRow>) {
        let entities = self.entities.iter().map(|(id, node)| node.row(*id)).collect();
        let relations = self.relations.iter().map(|(&id, r)| relation_row(id, r)).collect();
        (entities, relations)
    }
}

fn relation_bytes(r: &Relation) -> usize {
    size::RELATION + 2 * (3 * size::STRING + r.from.len() + r.to.len() + r.relation_type.len())
}

fn relation_row(id: i64, r: &Relation) -> RelationRow {
    RelationRow { id, from: r.from.clone(), to: r.to.clone(), relation_type: r.relation_type.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(name: &str, observations: &[&str]) -> Entity {
        Entity {
            name: name.into(),
            entity_type: "Person".into(),
            observations: observations.iter().map(|o| o.to_string()).collect(),
        }
    }

    #[test]
    fn its_size_follows_every_change() {
        let knows = Relation { from: "Alice".into(), to: "bob".into(), relation_type: "knows".into() };
        let mut changed = TenantGraph::default();
        changed.create_entity(&entity("Alice", &["likes tea"]));
        changed.create_entity(&entity("bob", &[]));
        changed.create_relation(&knows);
        changed.add_observations("bob", &["Drinks Coffee".into(), "x".into()]);
        changed.delete_observations("Alice", &["likes tea".into()]);
        changed.create_entity(&entity("carol", &["gone soon"]));
        changed.delete_entity("carol");

        let mut fresh = TenantGraph::default();
        fresh.create_entity(&entity("Alice", &[]));
        fresh.create_entity(&entity("bob", &["Drinks Coffee", "x"]));
        fresh.create_relation(&knows);
        assert_eq!(changed.bytes(), fresh.bytes());
        assert!(fresh.bytes() > 2 * size::ENTITY + size::RELATION);

        changed.delete_entity("bob"); // and its relation
        changed.delete_entity("Alice");
        assert_eq!(changed.bytes(), TenantGraph::default().bytes());
    }
}
