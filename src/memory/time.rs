//! Reads by time: the graph as it was (`asOf`), only what changed within a window
//! (`since`/`until`), and each row's times (`include: ["time"]`), over the graph at the moment
//! (`moment`); searched by the cache's own substring search, and paged and budgeted as the other
//! reads are.

use std::collections::HashSet;

use super::{
    Entity, EntityTimes, GraphPage, GraphTimes, KnowledgeGraph, Memory, MemoryError, PageRequest, Relation, Result,
    Tenant, TimeQuery, Timed, budget,
    budget::Fill,
    clock::format_time,
    cursor::Cursor,
    graph_of,
    limits::storable,
    moment::{extra, row, scope, times},
};
use crate::storage::{Among, TimedEntity};

/// An entity's fields and then its times, as the replies and `export --with-time` show them.
pub fn entity_with_times(e: Entity, t: EntityTimes) -> serde_json::Map<String, serde_json::Value> {
    let fields = serde_json::json!({
        "name": e.name,
        "entityType": e.entity_type,
        "observations": e.observations,
        "createdAt": format_time(t.created_at),
        "updatedAt": format_time(t.updated_at),
        "observationsCreatedAt": t.observations.into_iter().map(format_time).collect::<Vec<_>>(),
    });
    let serde_json::Value::Object(fields) = fields else { unreachable!("an object") };
    fields
}

/// A relation's fields and then its creation time.
pub fn relation_with_time(r: Relation, created_at: i64) -> serde_json::Map<String, serde_json::Value> {
    let fields = serde_json::json!({
        "from": r.from, "to": r.to, "relationType": r.relation_type, "createdAt": format_time(created_at),
    });
    let serde_json::Value::Object(fields) = fields else { unreachable!("an object") };
    fields
}

impl Memory {
    /// read_graph by time: the entities (changed within the window) and relations (created within
    /// it) at the moment, paged as `read_graph` pages.
    pub async fn read_graph_at(&self, tenant: &Tenant, page: &PageRequest, time: &TimeQuery) -> Result<GraphPage> {
        let _timed = Timed::start("read_graph");
        let scope = scope("graph", time);
        let (after_e, after_r) = match &page.cursor {
            Some(text) => {
                let c = Cursor::decode(tenant.as_str(), &scope, text).ok_or(MemoryError::InvalidCursor)?;
                (c.e, c.r)
            }
            None => (0, 0),
        };
        let at = self.at_time(tenant, time, Among::All).await?;
        let limit = page.limit.map(|l| l as usize);
        let mut fill = Fill::new(self.limits.max_reply_bytes, limit);
        let (mut entities, mut entity_times, mut more_e) = (Vec::new(), Vec::new(), false);
        for e in at.entities().filter(|e| e.id > after_e) {
            let row = row(e);
            if !fill.take(super::pages::entity_cost(&row) + extra(time, e)) {
                more_e = true;
                break;
            }
            entities.push(row);
            entity_times.push(times(e));
        }
        fill.restart_count(limit);
        let (mut relations, mut relation_times, mut more_r) = (Vec::new(), Vec::new(), more_e);
        let candidates = at.graph.relations.iter().filter(|r| r.row.id > after_r && at.relation_kept(r.created_at));
        for r in candidates.take_while(|_| !more_e) {
            let cost = super::pages::relation_cost(&r.row) + if time.include { budget::relation_time() } else { 0 };
            if !fill.take(cost) {
                more_r = true;
                break;
            }
            relations.push(r.row.clone());
            relation_times.push(r.created_at);
        }
        let next_cursor = (more_e || more_r).then(|| {
            let e = entities.last().map_or(if more_e { after_e } else { i64::MAX }, |e| e.id);
            let r = relations.last().map_or(if more_r { after_r } else { i64::MAX }, |r| r.id);
            Cursor::encode(tenant.as_str(), &scope, e, r)
        });
        let times = time.include.then_some(GraphTimes { entities: entity_times, relations: relation_times });
        Ok(GraphPage { graph: graph_of(entities, relations), next_cursor, scores: None, times, neighbours: None })
    }

    /// search_nodes by time: the substring search (ranked and paged as `search_nodes`) over the
    /// entities at the moment that changed within the window, with the relations touching them,
    /// grown by `depth` within the graph at the moment.
    pub async fn search_nodes_at(
        &self,
        tenant: &Tenant,
        query: &str,
        page: &PageRequest,
        time: &TimeQuery,
        depth: u8,
    ) -> Result<GraphPage> {
        let _timed = Timed::start("search_nodes");
        self.check().text("query", query, self.limits.max_observation_bytes)?;
        let scope = scope(&format!("search:{query}"), time);
        let (offset, ranked) = match &page.cursor {
            Some(text) => {
                let c = Cursor::decode(tenant.as_str(), &scope, text).ok_or(MemoryError::InvalidCursor)?;
                (c.e, c.r != super::pages::UNRANKED)
            }
            None => (0, page.limit.is_some()),
        };
        // Only entities whose text may hold the query are read, unless their neighbours are
        // asked for too; the search below decides.
        let needle = query.to_lowercase();
        let among = match (storable(query), needle.is_empty() || depth > 0) {
            (false, _) => Among::Named(&[]), // no stored text holds it: only the checks
            (true, true) => Among::All,
            (true, false) => Among::Containing(&needle),
        };
        let at = self.at_time(tenant, time, among).await?;
        if !storable(query) {
            return Ok(GraphPage { times: time.include.then(GraphTimes::default), ..GraphPage::default() });
        }
        let ids = at.substring_ids(query, ranked);
        let mut fill = Fill::new(self.limits.max_reply_bytes, page.limit.map(|l| l as usize));
        let (mut found, more) = at.page(ids.get(offset as usize..).unwrap_or_default(), &mut fill, time, 0);
        found.next_cursor = more.then(|| {
            let order = if ranked { 0 } else { super::pages::UNRANKED };
            Cursor::encode(tenant.as_str(), &scope, offset + found.graph.entities.len() as i64, order)
        });
        self.grow_at(&at, found, depth, time).await
    }

    /// Sets the creation times of rows an import created (`Store::set_created`'s input).
    pub async fn set_created(&self, tenant: &Tenant, input: &serde_json::Value) -> Result<()> {
        Ok(self.store.set_created(tenant.as_str(), input).await?)
    }

    /// open_nodes by time: the named entities at the moment and the relations touching them.
    pub async fn open_nodes_at(&self, tenant: &Tenant, names: Vec<String>, time: &TimeQuery) -> Result<GraphPage> {
        let _timed = Timed::start("open_nodes");
        self.check().names("names", &names)?;
        let at = self.at_time(tenant, &TimeQuery { since: None, until: None, ..*time }, Among::Named(&names)).await?;
        let wanted: HashSet<&str> = names.iter().map(String::as_str).collect();
        let found: Vec<&TimedEntity> = at.entities().filter(|e| wanted.contains(e.name.as_str())).collect();
        let ends: HashSet<&str> = found.iter().map(|e| e.name.as_str()).collect();
        let relations: Vec<_> = (at.graph.relations.iter())
            .filter(|r| ends.contains(r.row.from.as_str()) || ends.contains(r.row.to.as_str()))
            .collect();
        let times = time.include.then(|| GraphTimes {
            entities: found.iter().map(|e| times(e)).collect(),
            relations: relations.iter().map(|r| r.created_at).collect(),
        });
        let graph: KnowledgeGraph =
            graph_of(found.iter().map(|e| row(e)).collect(), relations.iter().map(|r| r.row.clone()).collect());
        Ok(GraphPage { graph, next_cursor: None, scores: None, times, neighbours: None })
    }
}
