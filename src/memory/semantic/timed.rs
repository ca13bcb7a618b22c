//! search_nodes by words and meaning in the graph at a moment (`asOf`) or within a window
//! (`since`/`until`): the rankings of the present search, over the entities of that graph. A
//! vector or document describes an entity's latest text, so in a read of the past only entities
//! whose text has not changed since are ranked by them; the others are found by their text then.

use std::collections::{HashMap, HashSet};

use super::search::{DEFAULT_RESULTS, MOST_RESULTS, Rankings, SCORE_BYTES};
use crate::{
    config::SearchMode,
    memory::{
        GraphPage, Memory, MemoryError, PageRequest, Result, Tenant, TimeQuery, Timed, budget::Fill, cursor::Cursor,
        limits::storable, moment::scope,
    },
    storage::Among,
};

impl Memory {
    /// search_nodes with `asOf`, `since` or `until`, in `mode` (the server's SEARCH_MODE when
    /// `None`): by substring as the reference searches, else by words and meaning, ranked and
    /// paged as the present's search by meaning is, and grown by `depth` within that graph.
    pub async fn search_at(
        &self,
        tenant: &Tenant,
        query: &str,
        mode: Option<SearchMode>,
        page: &PageRequest,
        time: &TimeQuery,
        depth: u8,
    ) -> Result<GraphPage> {
        let mode = self.mode_of(mode);
        if mode == SearchMode::Substring {
            return self.search_nodes_at(tenant, query, page, time, depth).await;
        }
        let semantic = self.semantic_for(mode)?;
        let _timed = Timed::start("search_by_meaning");
        self.check().text("query", query, self.limits.max_observation_bytes)?;
        let scope = scope(&format!("{}:{query}", mode.as_str()), time);
        let offset = match &page.cursor {
            Some(text) => Cursor::decode(tenant.as_str(), &scope, text).ok_or(MemoryError::InvalidCursor)?.e as usize,
            None => 0,
        };
        let limit = page.limit.map_or(DEFAULT_RESULTS, |l| l as usize);
        let want = (offset + limit + 1).min(MOST_RESULTS);
        let at = self.at_time(tenant, time, Among::All).await?;
        let mut substring = if storable(query) { at.substring_ids(query, true) } else { Vec::new() };
        substring.truncate(want);
        let changed = match time.as_of {
            Some(as_of) => self.store.changed_after(tenant.as_str(), as_of).await?,
            None => HashSet::new(),
        };
        let among: HashSet<i64> = at.entities().map(|e| e.id).filter(|id| !changed.contains(id)).collect();
        let (words, nearest) = self.ranked_by_meaning(semantic, tenant, query, mode, want, Some(&among)).await?;
        let ranking = Rankings { substring, words, nearest }.fused(mode);
        let end = ranking.len().min(offset + limit).min(MOST_RESULTS);
        let on_page = ranking.get(offset..end).unwrap_or_default();
        let ids: Vec<i64> = on_page.iter().map(|r| r.0).collect();
        let mut fill = Fill::new(self.limits.max_reply_bytes, None);
        let (mut found, _) = at.page(&ids, &mut fill, time, SCORE_BYTES);
        let taken = found.graph.entities.len();
        let scores: HashMap<i64, f32> = on_page.iter().copied().collect();
        found.scores = Some(ids[..taken].iter().map(|id| scores[id]).collect());
        found.next_cursor = (offset + taken < ranking.len().min(MOST_RESULTS))
            .then(|| Cursor::encode(tenant.as_str(), &scope, (offset + taken) as i64, 0));
        self.grow_at(&at, found, depth, time).await
    }
}
