//! search_nodes' `depth`: a page of hits (any mode) grown by the entities up to two relations
//! away, so that an agent finding "Alice" also sees who and what she is connected to without a
//! second call. Read in one snapshot, within the reply budget the hits left.

use std::collections::HashSet;

use super::{Entity, GraphPage, Memory, Neighbours, Relation, Result, Tenant, Timed, budget, budget::Fill};

/// The deepest expansion: past two hops a hub pulls in most of a graph.
pub const MAX_DEPTH: u8 = 2;

fn entity_cost(e: &Entity) -> usize {
    budget::entity(&e.name, &e.entity_type, e.observations.iter().map(String::as_str))
}

fn relation_cost(r: &Relation) -> usize {
    budget::relation(&r.from, &r.to, &r.relation_type)
}

impl Memory {
    /// The page with the entities `depth` relations or fewer from its hits after them (nearest
    /// first, each distance in insertion order) and every relation touching an entity returned;
    /// what does not fit the reply budget is left out, and the page says so.
    pub async fn with_neighbours(&self, tenant: &Tenant, mut page: GraphPage, depth: u8) -> Result<GraphPage> {
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
        let mut read = self.store.snapshot().await?;
        // Each round takes the relations touching the last distance's entities, then the
        // entities at their other ends; the last round only the relations.
        'rounds: for distance in 1..=depth + 1 {
            if frontier.is_empty() {
                break;
            }
            let touching = read.relations_touching_any(tenant.as_str(), &frontier).await?;
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
            for e in read.entities_named(tenant.as_str(), &next).await?.into_iter().map(Entity::from) {
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
        read.finish().await?;
        page.neighbours = Some(Neighbours { distances, truncated });
        Ok(page)
    }
}
