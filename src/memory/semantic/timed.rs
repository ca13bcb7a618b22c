//! search_nodes by words and meaning in the graph at a moment (`asOf`) or within a window
//! (`since`/`until`): the rankings of the present search, over the entities of that graph. A
//! vector or document describes an entity's latest text, so in a read of the past only entities
//! whose text has not changed since are ranked by them; the others are found by their text then.

use std::collections::HashSet;

use super::search::{Rankings, SCORE_BYTES, Window};
use crate::{
    config::SearchMode,
    memory::{
        GraphPage, Memory, PageRequest, Result, Tenant, TimeQuery, Timed, budget::Fill, limits::storable, moment::scope,
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
        let window = Window::of(tenant, &scope, page)?;
        let at = self.at_time(tenant, time, Among::All).await?;
        let mut substring = if storable(query) { at.substring_ids(query, true) } else { Vec::new() };
        substring.truncate(window.want);
        let changed = match time.as_of {
            Some(as_of) => self.store.changed_after(tenant.as_str(), as_of).await?,
            None => HashSet::new(),
        };
        let among: HashSet<i64> = at.entities().map(|e| e.id).filter(|id| !changed.contains(id)).collect();
        let (words, nearest) = self.ranked_by_meaning(semantic, tenant, query, mode, window.want, Some(&among)).await?;
        let ranking = Rankings { substring, words, nearest }.fused(mode);
        let on_page = window.on_page(&ranking);
        let ids: Vec<i64> = on_page.iter().map(|r| r.0).collect();
        let mut fill = Fill::new(self.limits.max_reply_bytes, None);
        // The page takes a prefix of `ids`.
        let (mut found, _) = at.page(&ids, &mut fill, time, SCORE_BYTES);
        let taken = found.graph.entities.len();
        found.scores = Some(on_page[..taken].iter().map(|r| r.1).collect());
        found.next_cursor = window.next_cursor(&ranking, taken);
        self.grow_at(&at, found, depth, time).await
    }
}
