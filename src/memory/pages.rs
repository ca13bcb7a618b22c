//! The two reads that can return a whole graph, read_graph and search_nodes, as pages within the
//! reply budget (MAX_REPLY_BYTES): a read that does not fit returns the first page that does and
//! a cursor, and only the page is built. Rows come from the database in chunks and reading stops
//! once the page is full, so a read holds little more than its page.

use std::collections::{BTreeMap, HashMap};

use super::{
    GraphPage, Memory, MemoryError, PageRequest, Result, Tenant, Timed, budget, budget::Fill, cursor::Cursor, graph_of,
    limits::storable,
};

use crate::storage::{EntityRow, Read, RelationRow};

pub(super) fn entity_cost(e: &EntityRow) -> usize {
    budget::entity(&e.name, &e.entity_type, e.observations.iter().map(String::as_str))
}

pub(super) fn relation_cost(r: &RelationRow) -> usize {
    budget::relation(&r.from, &r.to, &r.relation_type)
}

/// The relations of a page's candidates by the names at their ends: each entity taken onto a
/// page brings the relations touching it that are not on the page yet.
pub(super) struct Touching<'a>(HashMap<&'a str, Vec<&'a RelationRow>>);

impl<'a> Touching<'a> {
    pub(super) fn new(relations: &'a [RelationRow]) -> Self {
        let mut by_name: HashMap<&str, Vec<&RelationRow>> = HashMap::new();
        for r in relations {
            by_name.entry(&r.from).or_default().push(r);
            if r.to != r.from {
                by_name.entry(&r.to).or_default().push(r);
            }
        }
        Touching(by_name)
    }

    /// How many relations touch `name`.
    pub(super) fn count(&self, name: &str) -> usize {
        self.0.get(name).map_or(0, Vec::len)
    }

    /// Takes `row`'s relations onto the page (`on_page`, by id) when the entity, they and `extra`
    /// bytes fit `fill`; false, taking nothing, when they do not.
    pub(super) fn take(
        &self,
        fill: &mut Fill,
        row: &EntityRow,
        on_page: &mut BTreeMap<i64, RelationRow>,
        extra: usize,
    ) -> bool {
        let new: Vec<&RelationRow> = self
            .0
            .get(row.name.as_str())
            .into_iter()
            .flatten()
            .copied()
            .filter(|r| !on_page.contains_key(&r.id))
            .collect();
        if !fill.take(entity_cost(row) + new.iter().map(|r| relation_cost(r)).sum::<usize>() + extra) {
            return false;
        }
        on_page.extend(new.into_iter().map(|r| (r.id, r.clone())));
        true
    }
}

/// What a database search looks for, from where.
#[derive(Clone, Copy)]
struct Search<'a> {
    tenant: &'a Tenant,
    query: &'a str,
    ranked: bool,
    offset: i64,
    /// Scan the tenant's rows instead of the trigram indexes (`SCAN_BELOW`).
    scan: bool,
}

/// A tenant with fewer entities than this is searched by scanning its rows: the trigram indexes
/// hold every tenant's text, so a query's trigrams match across all of them, while a scan costs
/// what the tenant holds (docs/architecture.md, "Measured choices").
const SCAN_BELOW: i64 = 1_000;

/// A search cursor's `r`: set when the pages continue an unranked (unpaged) search's order.
pub(super) const UNRANKED: i64 = 1;

impl Memory {
    /// The whole graph, or a page of it: up to `limit` entities and `limit` relations (each in
    /// insertion order) that fit the reply budget, entities first.
    #[tracing::instrument(name = "db.transaction", skip_all, fields(otel.name = "read_graph", db.system.name = self.store.backend().otel_name(), db.operation.name = "read_graph"))]
    pub async fn read_graph(&self, tenant: &Tenant, page: &PageRequest) -> Result<GraphPage> {
        let _timed = Timed::start("read_graph");
        let (after_e, after_r) = match &page.cursor {
            Some(text) => {
                let c = Cursor::decode(tenant.as_str(), "graph", text).ok_or(MemoryError::InvalidCursor)?;
                (c.e, c.r)
            }
            None => (0, 0),
        };
        let limit = page.limit.map(|l| l as usize);
        let max = self.limits.max_reply_bytes;
        // Pages continue from database ids, which the cache does not hold: it answers whole reads
        // that fit, and a larger graph is paged from the database.
        if page.cursor.is_none()
            && limit.is_none()
            && let Some(cached) = self.cached(tenant).await?
        {
            let mut sized = Fill::new(max, None);
            if cached.with(|graph| graph.fits(&mut sized)) {
                let mut permit = None;
                self.replies.when_large(&mut permit, sized.spent()).await;
                // Checked again: the graph may have changed while this read waited.
                if let Some((entities, relations)) =
                    cached.with(|graph| graph.fits(&mut Fill::new(max, None)).then(|| graph.all()))
                {
                    return Ok(GraphPage {
                        graph: graph_of(entities, relations),
                        next_cursor: None,
                        scores: None,
                        times: None,
                        neighbours: None,
                    });
                }
            }
        }
        let mut permit = None;
        let mut fill = Fill::new(max, limit);
        let mut tx = self.store.snapshot().await?;
        let (mut entities, mut after, mut more_e, mut full) = (Vec::new(), after_e, false, false);
        'entities: loop {
            self.replies.when_large(&mut permit, fill.spent()).await;
            let want = fill.chunk();
            let rows = tx.entities_page(tenant.as_str(), after, Some(want as i64 + 1)).await?;
            let got = rows.len();
            for row in rows.into_iter().take(want) {
                if !fill.take(entity_cost(&row)) {
                    (more_e, full) = (true, true);
                    break 'entities;
                }
                after = row.id;
                entities.push(row);
            }
            if got <= want {
                break;
            }
            if fill.count_left() == 0 {
                more_e = true;
                break;
            }
        }
        fill.restart_count(limit);
        let (mut relations, mut after, mut more_r) = (Vec::new(), after_r, full);
        'relations: loop {
            if full {
                break;
            }
            self.replies.when_large(&mut permit, fill.spent()).await;
            let want = fill.chunk();
            let rows = tx.relations_page(tenant.as_str(), after, Some(want as i64 + 1)).await?;
            let got = rows.len();
            for row in rows.into_iter().take(want) {
                if !fill.take(relation_cost(&row)) {
                    more_r = true;
                    break 'relations;
                }
                after = row.id;
                relations.push(row);
            }
            if got <= want {
                break;
            }
            if fill.count_left() == 0 {
                more_r = true;
                break;
            }
        }
        tx.finish().await?;
        let next_cursor = (more_e || more_r).then(|| {
            // A kind with nothing on this page continues where it was, or is done.
            let e = entities.last().map_or(if more_e { after_e } else { i64::MAX }, |e| e.id);
            let r = relations.last().map_or(if more_r { after_r } else { i64::MAX }, |r| r.id);
            Cursor::encode(tenant.as_str(), "graph", e, r)
        });
        Ok(GraphPage { graph: graph_of(entities, relations), next_cursor, scores: None, times: None, neighbours: None })
    }

    /// Entities whose name, type or an observation contains `query` (case-insensitive), and the
    /// relations that touch them, as many as fit the reply budget. With a limit, results are
    /// ranked and paged; an unpaged search that does not fit pages on in its own order.
    #[tracing::instrument(name = "db.transaction", skip_all, fields(otel.name = "search_nodes", db.system.name = self.store.backend().otel_name(), db.operation.name = "search_nodes"))]
    pub async fn search_nodes(&self, tenant: &Tenant, query: &str, page: &PageRequest) -> Result<GraphPage> {
        let _timed = Timed::start("search_nodes");
        self.check().text("query", query, self.limits.max_observation_bytes)?;
        if !storable(query) {
            return Ok(GraphPage::default()); // no stored text contains it
        }
        let scope = format!("search:{query}");
        let (offset, ranked) = match &page.cursor {
            Some(text) => {
                let c = Cursor::decode(tenant.as_str(), &scope, text).ok_or(MemoryError::InvalidCursor)?;
                (c.e, c.r != UNRANKED)
            }
            None => (0, page.limit.is_some()),
        };
        let limit = page.limit.map(|l| l as usize);
        let (entities, relations, more) = self.substring(tenant, query, ranked, offset, limit).await?;
        let next_cursor = more.then(|| {
            let order = if ranked { 0 } else { UNRANKED };
            Cursor::encode(tenant.as_str(), &scope, offset + entities.len() as i64, order)
        });
        Ok(GraphPage { graph: graph_of(entities, relations), next_cursor, scores: None, times: None, neighbours: None })
    }

    /// The substring search's matches from `offset`, at most `limit` and within the reply budget,
    /// with the relations touching them, and whether more follow.
    pub(super) async fn substring(
        &self,
        tenant: &Tenant,
        query: &str,
        ranked: bool,
        offset: i64,
        limit: Option<usize>,
    ) -> Result<(Vec<EntityRow>, Vec<RelationRow>, bool)> {
        let max = self.limits.max_reply_bytes;
        // Read here, not in `cached`: a search from the database picks its plan by the size.
        let (version, size) = self.store.graph_version(tenant.as_str()).await?;
        let cached = match &self.cache {
            Some(cache) => self.cached_at(cache, tenant, version, size).await?,
            None => None,
        };
        Ok(match cached {
            Some(cached) => {
                let offset = usize::try_from(offset).unwrap_or(0);
                let search = |fill: &mut Fill| cached.with(|graph| graph.search(query, ranked, offset, fill));
                // A page up to LARGE first; a larger one is built again under a permit.
                let mut small = Fill::new(max.min(budget::LARGE + budget::RESERVE), limit);
                let found = search(&mut small);
                if found.2 && small.count_left() > 0 && max > budget::LARGE + budget::RESERVE {
                    drop(found);
                    let mut permit = None;
                    self.replies.when_large(&mut permit, usize::MAX).await;
                    search(&mut Fill::new(max, limit))
                } else {
                    found
                }
            }
            None => {
                // One statement answers most searches: no transaction needed. One that needs more
                // chunks starts again in a read transaction, so that its chunks share a snapshot.
                let search = Search { tenant, query, ranked, offset, scan: size < SCAN_BELOW };
                let mut read = self.store.read().await?;
                match self.search_database(&mut read, &search, &mut Fill::new(max, limit), true).await? {
                    Some(found) => found,
                    None => {
                        drop(read);
                        let mut tx = self.store.snapshot().await?;
                        let found = self.search_database(&mut tx, &search, &mut Fill::new(max, limit), false).await?;
                        tx.finish().await?;
                        found.expect("without a chunk limit the search completes")
                    }
                }
            }
        })
    }

    /// The search's matches from `offset`, fetched in chunks until the page is full, with the
    /// relations touching the entities on it; `None` when `once` and one chunk did not finish it.
    async fn search_database(
        &self,
        read: &mut Read,
        search: &Search<'_>,
        fill: &mut Fill,
        once: bool,
    ) -> Result<Option<(Vec<EntityRow>, Vec<RelationRow>, bool)>> {
        let Search { tenant, query, ranked, offset, scan } = *search;
        let (mut entities, mut relations, mut more, mut permit) = (Vec::new(), BTreeMap::new(), false, None);
        'chunks: loop {
            self.replies.when_large(&mut permit, fill.spent()).await;
            let want = fill.chunk();
            let at = offset + entities.len() as i64;
            let (rows, touching) = read.search(tenant.as_str(), query, ranked, scan, at, Some(want as i64 + 1)).await?;
            let got = rows.len();
            let touching = Touching::new(&touching);
            for row in rows.into_iter().take(want) {
                if !touching.take(fill, &row, &mut relations, 0) {
                    more = true;
                    break 'chunks;
                }
                entities.push(row);
            }
            if got <= want {
                break;
            }
            if fill.count_left() == 0 {
                more = true;
                break;
            }
            if once {
                return Ok(None);
            }
        }
        Ok(Some((entities, relations.into_values().collect(), more)))
    }
}
