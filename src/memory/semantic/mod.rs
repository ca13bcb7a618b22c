//! Search by meaning: the embedder, each tenant's vectors in memory (`index`), the background
//! indexer that fills the database with them (`indexer`), and the hybrid and semantic searches
//! (`search`), of the present and of the graph at a moment (`timed`). Nothing here is on the
//! write path: a write only wakes the indexer.

mod index;
mod indexer;
mod search;
mod timed;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tokio::sync::{Notify, RwLock};
use tokio_util::sync::CancellationToken;

use super::Memory;
use crate::{config::SearchMode, embed::Embedder};
use index::TenantVectors;
pub use indexer::Indexer;

/// Query vectors kept, so a repeated query skips the model (a MiniLM query takes ~15 ms).
const QUERIES_KEPT: usize = 1024;

pub struct Semantic {
    embedder: Embedder,
    /// Woken by this process's writes.
    written: Notify,
    default_mode: SearchMode,
    batch: usize,
    indexes: Mutex<Indexes>,
    queries: Mutex<HashMap<String, Arc<[f32]>>>,
    /// Searches without vectors log once in a while: with the embedder down, every one would.
    quiet: Quiet,
}

/// At most one log line per `QUIET` (the metrics count every event).
#[derive(Default)]
struct Quiet(Mutex<Option<std::time::Instant>>);

const QUIET: std::time::Duration = std::time::Duration::from_secs(10);

impl Quiet {
    fn should_log(&self) -> bool {
        let mut last = self.0.lock().expect("quiet lock");
        let due = last.is_none_or(|at| at.elapsed() >= QUIET);
        if due {
            *last = Some(std::time::Instant::now());
        }
        due
    }
}

/// The tenants' vectors held, within a byte budget, least recently searched dropped first.
struct Indexes {
    budget: usize,
    clock: u64,
    tenants: HashMap<String, (Arc<RwLock<TenantVectors>>, u64)>,
}

/// The semantic settings `Memory` is given.
pub struct SemanticSettings {
    pub default_mode: SearchMode,
    pub batch: usize,
    pub cache_bytes: usize,
}

impl Semantic {
    pub fn new(embedder: Embedder, settings: SemanticSettings) -> Self {
        Semantic {
            embedder,
            written: Notify::new(),
            default_mode: settings.default_mode,
            batch: settings.batch,
            indexes: Mutex::new(Indexes { budget: settings.cache_bytes, clock: 0, tenants: HashMap::new() }),
            queries: Mutex::default(),
            quiet: Quiet::default(),
        }
    }

    /// The tenant's vectors in memory (empty when first searched).
    fn tenant(&self, tenant: &str) -> Arc<RwLock<TenantVectors>> {
        let mut indexes = self.indexes.lock().expect("indexes lock");
        indexes.clock += 1;
        let now = indexes.clock;
        let entry = indexes.tenants.entry(tenant.to_string()).or_default();
        entry.1 = now;
        entry.0.clone()
    }

    /// Drops the vectors of the tenant's entities found gone (deleted since they were read).
    async fn forget(&self, tenant: &str, gone: &[i64]) {
        let copy = self.indexes.lock().expect("indexes lock").tenants.get(tenant).map(|t| t.0.clone());
        if let Some(copy) = copy {
            copy.write().await.remove(gone);
        }
    }

    /// After a copy grew: drops the least recently searched copies past the budget; false when
    /// this tenant's alone exceeds it (it is dropped too).
    fn within_budget(&self, tenant: &str) -> bool {
        let mut indexes = self.indexes.lock().expect("indexes lock");
        let sizes: Vec<(String, usize, u64)> = indexes
            .tenants
            .iter()
            .map(|(t, (v, used))| (t.clone(), v.try_read().map_or(0, |v| v.bytes()), *used))
            .collect();
        let mut total: usize = sizes.iter().map(|s| s.1).sum();
        let mut by_age = sizes;
        by_age.sort_by_key(|s| s.2);
        for (name, bytes, _) in by_age {
            if total <= indexes.budget {
                break;
            }
            if name != tenant {
                indexes.tenants.remove(&name);
                total -= bytes;
            }
        }
        if total > indexes.budget {
            indexes.tenants.remove(tenant);
            return false;
        }
        true
    }

    async fn query_vector(&self, query: &str) -> Result<Arc<[f32]>, crate::embed::EmbedError> {
        if let Some(vector) = self.queries.lock().expect("queries lock").get(query) {
            return Ok(vector.clone());
        }
        let vector: Arc<[f32]> = self.embedder.embed(vec![query.to_string()]).await?.remove(0).into();
        let mut queries = self.queries.lock().expect("queries lock");
        if queries.len() >= QUERIES_KEPT {
            queries.clear();
        }
        queries.insert(query.to_string(), vector.clone());
        Ok(vector)
    }
}

impl Memory {
    /// Gives the memory an embedder: hybrid and semantic search, and the indexer (`index`).
    pub fn with_embedder(mut self, embedder: Embedder, settings: SemanticSettings) -> Self {
        self.semantic = Some(Arc::new(Semantic::new(embedder, settings)));
        self
    }

    /// Embeds queued entities until `stop` (returns at once without an embedder).
    pub async fn index(self, stop: CancellationToken) {
        if let Some(semantic) = self.semantic.clone() {
            Indexer::new(self.store.clone(), semantic).run(stop).await;
        }
    }

    /// Wakes the indexer after a committed write.
    pub(super) fn wake_indexer(&self) {
        if let Some(semantic) = &self.semantic {
            semantic.written.notify_one();
        }
    }
}
