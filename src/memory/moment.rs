//! A tenant's graph at a moment (`asOf`), with the entities a window (`since`/`until`) keeps, as
//! reads by time search and page it. Read from the database's rows and history
//! (`Store::graph_at`), never from the graph cache, which holds the present only.

use std::collections::{BTreeMap, HashMap};

use super::{
    EntityTimes, GraphPage, GraphTimes, Memory, MemoryError, Result, Tenant, TimeQuery, budget,
    budget::Fill,
    cache::TenantGraph,
    clock::{format_time, now_ms},
    graph_of,
    pages::Touching,
};
use crate::storage::{Among, EntityRow, RelationRow, StoredEntity, TimedEntity, TimedGraph};

/// A tenant's graph at the query's moment, with the entities the window keeps.
pub(super) struct AtTime {
    pub graph: TimedGraph,
    /// Indexes into `graph.entities` of those changed within the window (all without one).
    kept: Vec<usize>,
    window: Option<(i64, i64)>,
}

pub(super) fn row(e: &TimedEntity) -> EntityRow {
    let observations = e.observations.iter().map(|o| o.content.clone()).collect();
    EntityRow { id: e.id, name: e.name.clone(), entity_type: e.entity_type.clone(), observations }
}

pub(super) fn times(e: &TimedEntity) -> EntityTimes {
    EntityTimes {
        created_at: e.created_at,
        updated_at: e.updated_at(),
        observations: e.observations.iter().map(|o| o.created_at).collect(),
    }
}

/// What the query's times add to an entity's bytes in the reply.
pub(super) fn extra(time: &TimeQuery, e: &TimedEntity) -> usize {
    if time.include { budget::entity_times(e.observations.len()) } else { 0 }
}

/// The cursor scope of a read: a cursor serves only the read (and moment) that issued it.
pub(super) fn scope(kind: &str, time: &TimeQuery) -> String {
    format!("{kind}@{:?}/{:?}/{:?}", time.as_of, time.since, time.until)
}

fn invalid(field: &str, reason: String) -> MemoryError {
    MemoryError::Invalid { field: field.into(), reason }
}

impl AtTime {
    pub(super) fn entities(&self) -> impl Iterator<Item = &TimedEntity> {
        self.kept.iter().map(|&i| &self.graph.entities[i])
    }

    pub(super) fn relation_kept(&self, created_at: i64) -> bool {
        self.window.is_none_or(|(since, until)| (since..=until).contains(&created_at))
    }

    /// The kept entities whose name, type or an observation then held `query`, as the substring
    /// search of the present finds and ranks them.
    pub(super) fn substring_ids(&self, query: &str, ranked: bool) -> Vec<i64> {
        // Only the entities holding it are indexed for the ranking: indexing is the cost.
        let needle = query.to_lowercase();
        let holds = |e: &&TimedEntity| {
            e.name_lc.contains(&needle)
                || e.type_lc.contains(&needle)
                || e.observations.iter().any(|o| o.content_lc.contains(&needle))
        };
        let mut searched = TenantGraph::default();
        for e in self.entities().filter(holds) {
            searched.load_entity(StoredEntity {
                id: e.id,
                name: e.name.clone(),
                entity_type: e.entity_type.clone(),
                name_lc: e.name_lc.clone(),
                type_lc: e.type_lc.clone(),
                observations: e.observations.iter().map(|o| (o.content.clone(), o.content_lc.clone())).collect(),
            });
        }
        searched.search_ids(query, ranked)
    }

    /// The entities of `ids` (kept ones, in that order) as they were, each with the relations
    /// touching it then, while they and `each` more bytes an entity fit `fill`; and whether one
    /// did not fit. Times come with them when the query asks.
    pub(super) fn page(&self, ids: &[i64], fill: &mut Fill, time: &TimeQuery, each: usize) -> (GraphPage, bool) {
        let by_id: HashMap<i64, &TimedEntity> = self.entities().map(|e| (e.id, e)).collect();
        let all: Vec<RelationRow> = self.graph.relations.iter().map(|r| r.row.clone()).collect();
        let touching = Touching::new(&all);
        let (mut entities, mut entity_times, mut on_page, mut more) = (Vec::new(), Vec::new(), BTreeMap::new(), false);
        for id in ids {
            let e = by_id[id];
            let row = row(e);
            // Each relation's time is counted whether or not it is new to the page: at most over.
            let relation_times = if time.include { touching.count(&row.name) * budget::relation_time() } else { 0 };
            if !touching.take(fill, &row, &mut on_page, each + extra(time, e) + relation_times) {
                more = true;
                break;
            }
            entities.push(row);
            entity_times.push(times(e));
        }
        let created: HashMap<i64, i64> = self.graph.relations.iter().map(|r| (r.row.id, r.created_at)).collect();
        let relations: Vec<RelationRow> = on_page.into_values().collect();
        let times = time.include.then(|| GraphTimes {
            entities: entity_times,
            relations: relations.iter().map(|r| created[&r.id]).collect(),
        });
        (GraphPage { graph: graph_of(entities, relations), times, ..GraphPage::default() }, more)
    }
}

impl Memory {
    /// A page read by time grown by `depth` within the graph at the moment, as
    /// `with_neighbours` grows a page of the present, with the times of all it holds when asked
    /// (on a fifth of the reply budget then, as the present's times are).
    pub(super) async fn grow_at(&self, at: &AtTime, page: GraphPage, depth: u8, time: &TimeQuery) -> Result<GraphPage> {
        if depth == 0 {
            return Ok(page);
        }
        if !time.include {
            return self.grow(page, depth, &mut &*at).await;
        }
        let mut page = self.lean().grow(page, depth, &mut &*at).await?;
        let by_name: HashMap<&str, &TimedEntity> = at.graph.entities.iter().map(|e| (e.name.as_str(), e)).collect();
        let created: HashMap<(&str, &str, &str), i64> = (at.graph.relations.iter())
            .map(|r| ((r.row.from.as_str(), r.row.to.as_str(), r.row.relation_type.as_str()), r.created_at))
            .collect();
        let graph = &page.graph;
        let relations =
            graph.relations.iter().map(|r| created[&(r.from.as_str(), r.to.as_str(), r.relation_type.as_str())]);
        page.times = Some(GraphTimes {
            entities: graph.entities.iter().map(|e| times(by_name[e.name.as_str()])).collect(),
            relations: relations.collect(),
        });
        Ok(page)
    }

    /// The graph at the query's moment, checked against what history keeps.
    pub(super) async fn at_time(&self, tenant: &Tenant, time: &TimeQuery, among: Among<'_>) -> Result<AtTime> {
        let now = now_ms();
        if let Some(as_of) = time.as_of {
            let kept = self.limits.history_retention.as_millis().min(i64::MAX as u128) as i64;
            let earliest = now.saturating_sub(kept);
            if as_of < earliest {
                let reason = format!(
                    "{} is older than the history kept (HISTORY_RETENTION): the earliest is {}",
                    format_time(as_of),
                    format_time(earliest)
                );
                return Err(invalid("asOf", reason));
            }
        }
        if let (Some(since), Some(until)) = (time.since, time.until)
            && since > until
        {
            return Err(invalid("since", format!("{} is after until ({})", format_time(since), format_time(until))));
        }
        let graph = self.store.graph_at(tenant.as_str(), time.as_of.unwrap_or(i64::MAX), among).await?;
        if let Some(as_of) = time.as_of
            && as_of < graph.began
        {
            let reason = format!("{} is before history began ({})", format_time(as_of), format_time(graph.began));
            return Err(invalid("asOf", reason));
        }
        let window = (time.since.is_some() || time.until.is_some())
            .then(|| (time.since.unwrap_or(i64::MIN), time.until.unwrap_or(i64::MAX)));
        let kept = (0..graph.entities.len())
            .filter(|&i| window.is_none_or(|(since, until)| graph.entities[i].changed_within(since, until)))
            .collect();
        Ok(AtTime { graph, kept, window })
    }
}
