//! search_nodes by words and meaning. `lexical` ranks the entities by the query's words (BM25),
//! `semantic` by their vectors' similarity to the query's, each followed by the substring matches
//! not among them (entities the indexer has not reached yet are found that way); `hybrid` fuses
//! the substring, word and vector rankings by reciprocal rank. When the embedder fails, semantic
//! and hybrid answer without vectors, counted (and logged at most every few seconds).

use std::collections::{BTreeMap, HashSet};

use super::Semantic;
use crate::{
    config::SearchMode,
    memory::{
        GraphPage, Memory, MemoryError, PageRequest, Result, Tenant, Timed, budget::Fill, cursor::Cursor, graph_of,
        limits::storable, pages::Touching,
    },
    storage::{StorageError, Store},
};

/// A page of results when a call gives no limit.
const DEFAULT_RESULTS: usize = 10;
/// The deepest a ranking goes (offset plus page).
const MOST_RESULTS: usize = 1000;
/// Reciprocal-rank fusion's constant: the one its authors found robust.
const RRF_K: f32 = 60.0;
/// The word ranking's weight in hybrid fusion, against 1 for the substring and vector rankings:
/// a shared word is weaker evidence than a substring or a meaning (bench/results, retrieval).
const WORDS_WEIGHT: f32 = 0.5;
/// Vectors read from the database in one statement.
const VECTORS_PAGE: i64 = 20_000;
/// What a score adds to a reply, at most.
pub(super) const SCORE_BYTES: usize = 48;

enum Nearest {
    Hits(Vec<(i64, f32)>),
    /// Why vectors could not answer (the `reason` label), and the error to log.
    Degraded(&'static str, String),
}

impl Semantic {
    /// The `k` entities nearest the query, the tenant's copy brought up to date first.
    async fn nearest(
        &self,
        store: &Store,
        tenant: &str,
        query: &str,
        k: usize,
        among: Option<&HashSet<i64>>,
    ) -> std::result::Result<Nearest, StorageError> {
        let vector = match self.query_vector(query).await {
            Ok(vector) => vector,
            Err(error) => return Ok(Nearest::Degraded(error.reason(), error.to_string())),
        };
        let index = self.tenant(tenant);
        loop {
            let seq = index.read().await.seq;
            let page = store.vectors_since(tenant, self.embedder.model(), seq, VECTORS_PAGE).await?;
            let full = page.len() as i64 == VECTORS_PAGE;
            if page.is_empty() {
                break;
            }
            let mut copy = index.write().await;
            // Another search may have read them meanwhile: only the rows still newer apply.
            let seq = copy.seq;
            copy.apply(page.into_iter().filter(|v| v.seq > seq).collect());
            drop(copy);
            if !self.within_budget(tenant) {
                return Ok(Nearest::Degraded("too_large", "the tenant's vectors exceed VECTOR_CACHE_BYTES".into()));
            }
            if !full {
                break;
            }
        }
        Ok(Nearest::Hits(index.read().await.nearest(&vector, k, among)))
    }
}

/// Reciprocal-rank fusion (ids best first): each id scores Σ 1/(k + rank) over the rankings;
/// ties go to the id that came first.
fn fuse(rankings: &[(f32, Vec<i64>)]) -> Vec<(i64, f32)> {
    let mut scores: BTreeMap<i64, (f32, usize)> = BTreeMap::new();
    let mut order = 0;
    for (weight, ranking) in rankings {
        for (rank, id) in ranking.iter().enumerate() {
            let entry = scores.entry(*id).or_insert((0.0, order));
            entry.0 += weight / (RRF_K + rank as f32 + 1.0);
            order += 1;
        }
    }
    let mut fused: Vec<(i64, f32, usize)> = scores.into_iter().map(|(id, (score, first))| (id, score, first)).collect();
    fused.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.2.cmp(&b.2)));
    fused.into_iter().map(|(id, score, _)| (id, score)).collect()
}

/// The rankings a search by meaning fuses, each best first.
pub(super) struct Rankings {
    pub substring: Vec<i64>,
    pub words: Vec<(i64, f32)>,
    pub nearest: Vec<(i64, f32)>,
}

impl Rankings {
    /// The one ranking `mode` answers with.
    pub(super) fn fused(self, mode: SearchMode) -> Vec<(i64, f32)> {
        let Rankings { substring, words, nearest } = self;
        let ids = |ranked: &[(i64, f32)]| ranked.iter().map(|r| r.0).collect::<Vec<_>>();
        // Entities the indexer has not reached yet are found by their substrings.
        let then_substring = |mut ranked: Vec<(i64, f32)>| {
            let seen: HashSet<i64> = ranked.iter().map(|r| r.0).collect();
            ranked.extend(substring.iter().filter(|id| !seen.contains(id)).map(|id| (*id, 0.0)));
            ranked
        };
        match mode {
            SearchMode::Hybrid => fuse(&[(1.0, substring.clone()), (WORDS_WEIGHT, ids(&words)), (1.0, ids(&nearest))]),
            SearchMode::Lexical => then_substring(words),
            _ => then_substring(nearest),
        }
    }
}

/// Which part of a ranking a call's page is: where it starts (from the cursor), how long it is,
/// and how deep the ranking must go (one past the page, so that a longer one shows there is more).
pub(super) struct Window<'a> {
    tenant: &'a Tenant,
    scope: &'a str,
    offset: usize,
    limit: usize,
    pub want: usize,
}

impl<'a> Window<'a> {
    pub(super) fn of(tenant: &'a Tenant, scope: &'a str, page: &PageRequest) -> Result<Self> {
        let offset = match &page.cursor {
            Some(text) => Cursor::decode(tenant.as_str(), scope, text).ok_or(MemoryError::InvalidCursor)?.e as usize,
            None => 0,
        };
        let limit = page.limit.map_or(DEFAULT_RESULTS, |l| l as usize);
        Ok(Window { tenant, scope, offset, limit, want: (offset + limit + 1).min(MOST_RESULTS) })
    }

    /// The page's part of `ranking`.
    pub(super) fn on_page<'r>(&self, ranking: &'r [(i64, f32)]) -> &'r [(i64, f32)] {
        let end = ranking.len().min(self.offset + self.limit).min(MOST_RESULTS);
        ranking.get(self.offset..end).unwrap_or_default()
    }

    /// The cursor past the `taken` entities of the page, when `ranking` goes on.
    pub(super) fn next_cursor(&self, ranking: &[(i64, f32)], taken: usize) -> Option<String> {
        (self.offset + taken < ranking.len().min(MOST_RESULTS))
            .then(|| Cursor::encode(self.tenant.as_str(), self.scope, (self.offset + taken) as i64, 0))
    }
}

impl Memory {
    /// The call's mode, else the server's SEARCH_MODE, else the reference's substring search.
    pub(super) fn mode_of(&self, mode: Option<SearchMode>) -> SearchMode {
        mode.or(self.semantic.as_ref().map(|s| s.default_mode)).unwrap_or(SearchMode::Substring)
    }

    /// What a search by words or meaning needs, or the error naming `mode` when embeddings are off.
    pub(super) fn semantic_for(&self, mode: SearchMode) -> Result<&Semantic> {
        self.semantic.as_deref().ok_or_else(|| MemoryError::Invalid {
            field: "mode".into(),
            reason: format!("{} search needs embeddings, which this server has off (EMBEDDINGS=off)", mode.as_str()),
        })
    }

    /// The word and vector rankings of `query` in `mode`, `want` deep, of the entities `among`
    /// when given. A failing embedder leaves the vector ranking empty, counted and logged.
    pub(super) async fn ranked_by_meaning(
        &self,
        semantic: &Semantic,
        tenant: &Tenant,
        query: &str,
        mode: SearchMode,
        want: usize,
        among: Option<&HashSet<i64>>,
    ) -> Result<(Vec<(i64, f32)>, Vec<(i64, f32)>)> {
        let words = match mode {
            SearchMode::Lexical | SearchMode::Hybrid => {
                let ids: Option<Vec<i64>> = among.map(|among| among.iter().copied().collect());
                self.store.lexical(tenant.as_str(), query, want as i64, ids.as_deref()).await?
            }
            _ => Vec::new(),
        };
        let nearest = match mode {
            SearchMode::Semantic | SearchMode::Hybrid => {
                match semantic.nearest(&self.store, tenant.as_str(), query, want, among).await? {
                    Nearest::Hits(hits) => hits,
                    Nearest::Degraded(reason, error) => {
                        metrics::counter!("search_degraded_total", "reason" => reason).increment(1);
                        if semantic.quiet.should_log() {
                            tracing::warn!(%error, mode = mode.as_str(), "search: no vectors for this search; ranking without them");
                        }
                        Vec::new()
                    }
                }
            }
            _ => Vec::new(),
        };
        Ok((words, nearest))
    }

    /// search_nodes in `mode` (the server's SEARCH_MODE when `None`): substring search is the
    /// reference's; hybrid and semantic rank by meaning, a page at a time (10 unless `limit`),
    /// each entity with its score.
    pub async fn search(
        &self,
        tenant: &Tenant,
        query: &str,
        mode: Option<SearchMode>,
        page: &PageRequest,
    ) -> Result<GraphPage> {
        let mode = self.mode_of(mode);
        if mode == SearchMode::Substring {
            return self.search_nodes(tenant, query, page).await;
        }
        let semantic = self.semantic_for(mode)?;
        let _timed = Timed::start("search_by_meaning");
        self.check().text("query", query, self.limits.max_observation_bytes)?;
        let scope = format!("{}:{query}", mode.as_str());
        let window = Window::of(tenant, &scope, page)?;
        let substring: Vec<i64> = if storable(query) {
            self.substring(tenant, query, true, 0, Some(window.want)).await?.0.iter().map(|e| e.id).collect()
        } else {
            Vec::new()
        };
        let (words, nearest) = self.ranked_by_meaning(semantic, tenant, query, mode, window.want, None).await?;
        let ranking = Rankings { substring, words, nearest }.fused(mode);
        let (graph, scores, taken) = self.page_of(semantic, tenant, window.on_page(&ranking)).await?;
        let next_cursor = window.next_cursor(&ranking, taken);
        Ok(GraphPage { graph, next_cursor, scores: Some(scores), times: None, neighbours: None })
    }

    /// The ranked entities as a page within the reply budget, with the relations touching them;
    /// returns how many of `ranked` it took (an entity deleted since it was embedded counts as taken).
    async fn page_of(
        &self,
        semantic: &Semantic,
        tenant: &Tenant,
        ranked: &[(i64, f32)],
    ) -> Result<(crate::memory::KnowledgeGraph, Vec<f32>, usize)> {
        let ids: Vec<i64> = ranked.iter().map(|r| r.0).collect();
        let mut read = self.store.snapshot().await?;
        let entities = read.entities_with_ids(tenant.as_str(), &ids).await?;
        let names: Vec<String> = entities.iter().map(|e| e.name.clone()).collect();
        let relations = read.relations_touching_any(tenant.as_str(), &names).await?;
        read.finish().await?;
        if entities.len() < ids.len() {
            let found: HashSet<i64> = entities.iter().map(|e| e.id).collect();
            let gone: Vec<i64> = ids.iter().copied().filter(|id| !found.contains(id)).collect();
            semantic.forget(tenant.as_str(), &gone).await;
        }
        let (mut fill, touching) = (Fill::new(self.limits.max_reply_bytes, None), Touching::new(&relations));
        let (mut page, mut scores, mut included, mut taken) = (Vec::new(), Vec::new(), BTreeMap::new(), 0);
        let mut rows = entities.into_iter().peekable();
        for (id, score) in ranked {
            let Some(row) = rows.next_if(|row| row.id == *id) else {
                taken += 1; // gone since it was embedded
                continue;
            };
            if !touching.take(&mut fill, &row, &mut included, SCORE_BYTES) {
                break;
            }
            page.push(row);
            scores.push(*score);
            taken += 1;
        }
        Ok((graph_of(page, included.into_values().collect()), scores, taken))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fusion_rewards_agreement_and_keeps_either_rankings_hits() {
        let fused = fuse(&[(1.0, vec![7, 3]), (1.0, vec![3, 5, 7])]);
        let ids: Vec<i64> = fused.iter().map(|f| f.0).collect();
        assert_eq!(ids, vec![3, 7, 5]);
        assert!(fused[0].1 > fused[1].1 && fused[1].1 > fused[2].1);
    }
}
