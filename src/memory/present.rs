//! Times for a read of the present (`include: ["time"]` without `asOf` or a window): the read
//! runs on its own path, then only its rows' times are looked up (`Store::stamps`), so asking for
//! times costs what the page costs.

use super::{EntityTimes, GraphPage, GraphTimes, Limits, Memory, PageRequest, Result, Tenant, TimeQuery};
use crate::config::SearchMode;

/// A read of the present graph that asked for times (`Memory::present_with_times`).
pub enum PresentRead<'a> {
    Graph(&'a PageRequest),
    Search { query: &'a str, mode: Option<SearchMode>, page: &'a PageRequest, depth: u8 },
    Open(&'a [String]),
}

impl Memory {
    /// This memory on a fifth of the reply budget, for a read whose times are added after it:
    /// times add at most ~4 times an entity's or a relation's own bytes (`budget::entity_times`).
    pub(super) fn lean(&self) -> Memory {
        Memory { limits: Limits { max_reply_bytes: self.limits.max_reply_bytes / 5, ..self.limits }, ..self.clone() }
    }

    /// read_graph with its time arguments: the plain read without any; the present's own path
    /// when only times were asked for and it settles; else by time.
    pub async fn read_graph_timed(&self, tenant: &Tenant, page: &PageRequest, time: &TimeQuery) -> Result<GraphPage> {
        if time.is_none() {
            return self.read_graph(tenant, page).await;
        }
        if time.is_present()
            && let Some(found) = self.present_with_times(tenant, &PresentRead::Graph(page)).await?
        {
            return Ok(found);
        }
        self.read_graph_at(tenant, page, time).await
    }

    /// open_nodes that asked for times or a moment, as `read_graph_timed`.
    pub async fn open_nodes_timed(&self, tenant: &Tenant, names: Vec<String>, time: &TimeQuery) -> Result<GraphPage> {
        if time.is_present()
            && let Some(found) = self.present_with_times(tenant, &PresentRead::Open(&names)).await?
        {
            return Ok(found);
        }
        self.open_nodes_at(tenant, names, time).await
    }

    /// A read of the present with its rows' times (`include` alone): `read` (the read's own path,
    /// any search mode, on a reply budget that leaves room for the times), then the times of just
    /// the rows it returned. A row changed in between makes it read again; `None` after three
    /// tries, for the caller to read by time instead.
    pub async fn present_with_times(&self, tenant: &Tenant, read: &PresentRead<'_>) -> Result<Option<GraphPage>> {
        let lean = self.lean();
        for _ in 0..3 {
            let mut page = match *read {
                PresentRead::Graph(page) => lean.read_graph(tenant, page).await?,
                PresentRead::Search { query, mode, page, depth } => match lean.search(tenant, query, mode, page).await?
                {
                    found if depth == 0 => found,
                    found => lean.with_neighbours(tenant, found, depth).await?,
                },
                PresentRead::Open(names) => {
                    GraphPage { graph: lean.open_nodes(tenant, names.to_vec()).await?, ..GraphPage::default() }
                }
            };
            let names: Vec<String> = page.graph.entities.iter().map(|e| e.name.clone()).collect();
            let mut froms: Vec<String> = page.graph.relations.iter().map(|r| r.from.clone()).collect();
            froms.sort_unstable();
            froms.dedup();
            let stamps = self.store.stamps(tenant.as_str(), &names, &froms).await?;
            let entities: Option<Vec<EntityTimes>> = (page.graph.entities.iter())
                .map(|e| {
                    let s = stamps.entities.get(&e.name).filter(|s| s.observations.len() == e.observations.len())?;
                    let updated_at = s.observations.iter().copied().chain(s.last_removed).fold(s.created_at, i64::max);
                    Some(EntityTimes { created_at: s.created_at, updated_at, observations: s.observations.clone() })
                })
                .collect();
            let relations: Option<Vec<i64>> = (page.graph.relations.iter())
                .map(|r| stamps.relations.get(&(r.from.clone(), r.to.clone(), r.relation_type.clone())).copied())
                .collect();
            if let (Some(entities), Some(relations)) = (entities, relations) {
                page.times = Some(GraphTimes { entities, relations });
                return Ok(Some(page));
            }
        }
        Ok(None)
    }
}
