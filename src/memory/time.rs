//! Reads by time: the graph as it was (`asOf`), only what changed within a window
//! (`since`/`until`), and each row's times (`include: ["time"]`). Answered from the database's
//! rows and history (`Store::graph_at`), never from the graph cache, which holds the present only;
//! searched by the cache's own substring search, and paged and budgeted as the other reads are.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, SecondsFormat, Utc};

use super::{
    Entity, EntityTimes, GraphPage, GraphTimes, KnowledgeGraph, Memory, MemoryError, PageRequest, Relation, Result,
    Tenant, TimeQuery, Timed, budget, budget::Fill, cache::TenantGraph, cursor::Cursor, graph_of, limits::storable,
    pages::Touching,
};
use crate::storage::{Among, EntityRow, RelationRow, StoredEntity, TimedEntity, TimedGraph};

/// Now, in milliseconds since the epoch.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// An RFC 3339 time (any offset, any precision) in milliseconds since the epoch.
pub fn parse_time(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.timestamp_millis())
}

/// As JavaScript's `Date.prototype.toISOString`: UTC, to the millisecond.
pub fn format_time(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map_or_else(String::new, |t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

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

fn invalid(field: &str, reason: String) -> MemoryError {
    MemoryError::Invalid { field: field.into(), reason }
}

/// A tenant's graph at the query's moment, with the entities the window keeps.
struct AtTime {
    graph: TimedGraph,
    /// Indexes into `graph.entities` of those changed within the window (all without one).
    kept: Vec<usize>,
    window: Option<(i64, i64)>,
}

impl AtTime {
    fn entities(&self) -> impl Iterator<Item = &TimedEntity> {
        self.kept.iter().map(|&i| &self.graph.entities[i])
    }

    fn relation_kept(&self, created_at: i64) -> bool {
        self.window.is_none_or(|(since, until)| (since..=until).contains(&created_at))
    }
}

fn row(e: &TimedEntity) -> EntityRow {
    let observations = e.observations.iter().map(|o| o.content.clone()).collect();
    EntityRow { id: e.id, name: e.name.clone(), entity_type: e.entity_type.clone(), observations }
}

fn times(e: &TimedEntity) -> EntityTimes {
    EntityTimes {
        created_at: e.created_at,
        updated_at: e.updated_at(),
        observations: e.observations.iter().map(|o| o.created_at).collect(),
    }
}

/// What the query's times add to an entity's bytes in the reply.
fn extra(time: &TimeQuery, e: &TimedEntity) -> usize {
    if time.include { budget::entity_times(e.observations.len()) } else { 0 }
}

/// The cursor scope of a read: a cursor serves only the read (and moment) that issued it.
fn scope(kind: &str, time: &TimeQuery) -> String {
    format!("{kind}@{:?}/{:?}/{:?}", time.as_of, time.since, time.until)
}

impl Memory {
    /// The graph at the query's moment, checked against what history keeps.
    async fn at_time(&self, tenant: &Tenant, time: &TimeQuery, among: Among<'_>) -> Result<AtTime> {
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
    /// entities at the moment that changed within the window, with the relations touching them.
    pub async fn search_nodes_at(
        &self,
        tenant: &Tenant,
        query: &str,
        page: &PageRequest,
        time: &TimeQuery,
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
        // Only entities whose text may hold the query are read; the search below decides.
        let needle = query.to_lowercase();
        let among = match (storable(query), needle.is_empty()) {
            (false, _) => Among::Named(&[]), // no stored text holds it: only the checks
            (true, true) => Among::All,
            (true, false) => Among::Containing(&needle),
        };
        let at = self.at_time(tenant, time, among).await?;
        if !storable(query) {
            return Ok(GraphPage { times: time.include.then(GraphTimes::default), ..GraphPage::default() });
        }
        let mut searched = TenantGraph::default();
        for e in at.entities() {
            searched.load_entity(StoredEntity {
                id: e.id,
                name: e.name.clone(),
                entity_type: e.entity_type.clone(),
                name_lc: e.name_lc.clone(),
                type_lc: e.type_lc.clone(),
                observations: e.observations.iter().map(|o| (o.content.clone(), o.content_lc.clone())).collect(),
            });
        }
        let ids = searched.search_ids(query, ranked);
        drop(searched);
        let by_id: HashMap<i64, &TimedEntity> = at.entities().map(|e| (e.id, e)).collect();
        let all: Vec<RelationRow> = at.graph.relations.iter().map(|r| r.row.clone()).collect();
        let touching = Touching::new(&all);
        let mut fill = Fill::new(self.limits.max_reply_bytes, page.limit.map(|l| l as usize));
        let (mut entities, mut entity_times, mut on_page, mut more) = (Vec::new(), Vec::new(), BTreeMap::new(), false);
        for id in ids.iter().skip(usize::try_from(offset).unwrap_or(0)) {
            let e = by_id[id];
            let row = row(e);
            // Each relation's time is counted whether or not it is new to the page: at most over.
            let relation_times = if time.include { touching.count(&row.name) * budget::relation_time() } else { 0 };
            if !touching.take(&mut fill, &row, &mut on_page, extra(time, e) + relation_times) {
                more = true;
                break;
            }
            entities.push(row);
            entity_times.push(times(e));
        }
        let next_cursor = more.then(|| {
            let order = if ranked { 0 } else { super::pages::UNRANKED };
            Cursor::encode(tenant.as_str(), &scope, offset + entities.len() as i64, order)
        });
        let created: HashMap<i64, i64> = at.graph.relations.iter().map(|r| (r.row.id, r.created_at)).collect();
        let relations: Vec<RelationRow> = on_page.into_values().collect();
        let times = time.include.then(|| GraphTimes {
            entities: entity_times,
            relations: relations.iter().map(|r| created[&r.id]).collect(),
        });
        Ok(GraphPage { graph: graph_of(entities, relations), next_cursor, scores: None, times, neighbours: None })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_rfc_3339_and_print_as_javascript_does() {
        let ms = parse_time("2026-12-07T08:15:30.123+01:00").unwrap();
        assert_eq!(format_time(ms), "2026-12-07T07:15:30.123Z");
        assert_eq!(parse_time("2026-12-07T07:15:30Z"), Some(ms - 123));
        assert_eq!(parse_time("2026-12-07"), None);
        assert_eq!(parse_time("yesterday"), None);
    }
}
