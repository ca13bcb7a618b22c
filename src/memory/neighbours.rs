//! search_nodes' `depth`: a page of hits (any mode) grown by the entities up to two relations
//! away, so that an agent finding "Alice" also sees who and what she is connected to without a
//! second call. Read in one snapshot of the present, or from the graph at a moment (a read by
//! time), within the reply budget the hits left.

use std::collections::HashSet;

use super::{
    Entity, GraphPage, Memory, Neighbours, Relation, Result, Tenant, Timed, budget, budget::Fill, moment::AtTime,
    moment::row,
};
use crate::storage::{EntityRow, Read, RelationRow};

/// The deepest expansion: past two hops a hub pulls in most of a graph.
pub const MAX_DEPTH: u8 = 2;

fn entity_cost(e: &Entity) -> usize {
    budget::entity(&e.name, &e.entity_type, e.observations.iter().map(String::as_str))
}

fn relation_cost(r: &Relation) -> usize {
    budget::relation(&r.from, &r.to, &r.relation_type)
}

/// Where neighbours are read from.
pub(super) trait Around {
    /// Relations with any of `names` at either end, in insertion order.
    async fn touching(&mut self, names: &[String]) -> Result<Vec<RelationRow>>;
    /// The named entities, in insertion order.
    async fn named(&mut self, names: &[String]) -> Result<Vec<EntityRow>>;
}

/// The present graph, in one snapshot.
struct Present<'a>(Read, &'a str);

impl Around for Present<'_> {
    async fn touching(&mut self, names: &[String]) -> Result<Vec<RelationRow>> {
        Ok(self.0.relations_touching_any(self.1, names).await?)
    }

    async fn named(&mut self, names: &[String]) -> Result<Vec<EntityRow>> {
        Ok(self.0.entities_named(self.1, names).await?)
    }
}

/// The graph at a moment: every entity of it, whatever window kept the hits.
impl Around for &AtTime {
    async fn touching(&mut self, names: &[String]) -> Result<Vec<RelationRow>> {
        let names: HashSet<&str> = names.iter().map(String::as_str).collect();
        let touching = self.graph.relations.iter().map(|r| &r.row);
        Ok(touching.filter(|r| names.contains(r.from.as_str()) || names.contains(r.to.as_str())).cloned().collect())
    }

    async fn named(&mut self, names: &[String]) -> Result<Vec<EntityRow>> {
        let names: HashSet<&str> = names.iter().map(String::as_str).collect();
        Ok(self.graph.entities.iter().filter(|e| names.contains(e.name.as_str())).map(row).collect())
    }
}

impl Memory {
    /// The page with the entities `depth` relations or fewer from its hits after them (nearest
    /// first, each distance in insertion order) and every relation touching an entity returned;
    /// what does not fit the reply budget is left out, and the page says so.
    pub async fn with_neighbours(&self, tenant: &Tenant, page: GraphPage, depth: u8) -> Result<GraphPage> {
        let mut present = Present(self.store.snapshot().await?, tenant.as_str());
        let page = self.grow(page, depth, &mut present).await?;
        present.0.finish().await?;
        Ok(page)
    }

    /// `with_neighbours` from `around`.
    pub(super) async fn grow(&self, mut page: GraphPage, depth: u8, around: &mut impl Around) -> Result<GraphPage> {
        let _timed = Timed::start("neighbours");
        let graph = &mut page.graph;
        let mut distances = vec![0; graph.entities.len()];
        let mut fill = Fill::new(self.limits.max_reply_bytes, None);
        for cost in graph.entities.iter().map(entity_cost).chain(graph.relations.iter().map(relation_cost)) {
            fill.take(cost);
        }
        let mut seen: HashSet<String> = graph.entities.iter().map(|e| e.name.clone()).collect();
        let mut on_page: HashSet<Relation> = graph.relations.iter().cloned().collect();
        let mut frontier: Vec<String> = seen.iter().cloned().collect();
        let mut truncated = false;
        // Each round takes the relations touching the last distance's entities, then the
        // entities at their other ends; the last round only the relations.
        'rounds: for distance in 1..=depth + 1 {
            if frontier.is_empty() {
                break;
            }
            let touching = around.touching(&frontier).await?;
            let mut next: Vec<String> = Vec::new();
            for r in touching.into_iter().map(Relation::from) {
                next.extend([&r.from, &r.to].into_iter().filter(|end| !seen.contains(*end)).cloned());
                if on_page.contains(&r) {
                    continue;
                }
                if !fill.take(relation_cost(&r)) {
                    truncated = true;
                    break 'rounds;
                }
                on_page.insert(r.clone());
                graph.relations.push(r);
            }
            if distance > depth {
                break;
            }
            next.sort_unstable();
            next.dedup();
            frontier = Vec::new();
            for e in around.named(&next).await?.into_iter().map(Entity::from) {
                if !fill.take(entity_cost(&e)) {
                    truncated = true;
                    break 'rounds;
                }
                seen.insert(e.name.clone());
                frontier.push(e.name.clone());
                graph.entities.push(e);
                distances.push(distance);
            }
        }
        page.neighbours = Some(Neighbours { distances, truncated });
        Ok(page)
    }
}
