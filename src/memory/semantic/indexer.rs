//! The background indexer: embeds the queued entities in batches after their writes committed,
//! so a write never waits for a model, and stores the vectors where every replica reads them.
//! It wakes on this process's writes and polls for other writers'; a failing embedder is retried
//! with a growing pause while searches fall back to substring matching.

use std::{sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;

use super::Semantic;
use crate::{
    embed::{EmbedError, entity_text},
    storage::{StorageError, Store},
};

/// How long a leased batch is this indexer's before another may take it (a replica that died
/// mid-batch).
const LEASE_SECS: i64 = 120;
/// Without a local write, how often the queue is checked for other writers' changes.
const POLL: Duration = Duration::from_secs(2);
/// How often the queue's length is counted for `embedding_queue_entities`.
const LAG_EVERY: Duration = Duration::from_secs(5);
/// The pause after a failure, doubling up to `BACKOFF_MAX`.
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
enum IndexError {
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

pub struct Indexer {
    store: Store,
    semantic: Arc<Semantic>,
}

impl Indexer {
    pub(in crate::memory) fn new(store: Store, semantic: Arc<Semantic>) -> Self {
        Indexer { store, semantic }
    }

    /// Runs until `stop`: turns embeddings on for the model (queueing what it has not embedded),
    /// then embeds the queue as it fills.
    pub async fn run(self, stop: CancellationToken) {
        let mut backoff = BACKOFF_MIN;
        let model = self.semantic.embedder.model().to_string();
        while let Err(error) = self.store.enable_embeddings(&model).await {
            tracing::warn!(%error, "embeddings: could not queue the entities to embed; retrying");
            if pause(&stop, backoff).await {
                return;
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
        backoff = BACKOFF_MIN;
        let mut counted = None::<tokio::time::Instant>;
        loop {
            if counted.is_none_or(|at| at.elapsed() >= LAG_EVERY) {
                self.report_lag().await;
                counted = Some(tokio::time::Instant::now());
            }
            match self.step(&model).await {
                Ok(0) => {
                    backoff = BACKOFF_MIN;
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = self.semantic.written.notified() => {}
                        _ = tokio::time::sleep(POLL) => {}
                    }
                }
                Ok(_) => backoff = BACKOFF_MIN,
                Err(error) => {
                    let reason = match &error {
                        IndexError::Embed(e) => e.reason(),
                        IndexError::Storage(_) => "database",
                    };
                    metrics::counter!("embedding_failures_total", "reason" => reason).increment(1);
                    tracing::warn!(%error, retry_in = ?backoff, "embeddings: a batch failed; its entities stay queued");
                    if pause(&stop, backoff).await {
                        return;
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
            if stop.is_cancelled() {
                return;
            }
        }
    }

    /// Embeds one batch; returns how many entities it stored.
    async fn step(&self, model: &str) -> Result<usize, IndexError> {
        let pending = self.store.lease_pending(self.semantic.batch as i64, LEASE_SECS).await?;
        if pending.is_empty() {
            return Ok(0);
        }
        let texts: Vec<String> =
            pending.iter().map(|p| entity_text(&p.name, &p.entity_type, &p.observations)).collect();
        // Documents first: search by words works while the embedder is down.
        let documents: Vec<_> =
            pending.iter().zip(&texts).map(|(p, t)| (p.entity_id, p.tenant.as_str(), t.clone())).collect();
        self.store.store_documents(&documents).await?;
        let started = std::time::Instant::now();
        let vectors = match self.semantic.embedder.embed(texts).await {
            Ok(vectors) => vectors,
            Err(error) => {
                let ids: Vec<i64> = pending.iter().map(|p| p.entity_id).collect();
                if let Err(release) = self.store.release_pending(&ids).await {
                    tracing::warn!(error = %release, "embeddings: could not release a failed batch; it waits for its lease");
                }
                return Err(error.into());
            }
        };
        metrics::histogram!("embedding_batch_duration_seconds").record(started.elapsed().as_secs_f64());
        let done: Vec<_> = pending.iter().zip(vectors).collect();
        self.store.store_vectors(model, &done).await?;
        metrics::counter!("embedded_entities_total").increment(done.len() as u64);
        Ok(done.len())
    }

    async fn report_lag(&self) {
        if let Ok(pending) = self.store.pending_count().await {
            metrics::gauge!("embedding_queue_entities").set(pending as f64);
        }
    }
}

/// Sleeps `pause` unless stopped first; true when stopped.
async fn pause(stop: &CancellationToken, pause: Duration) -> bool {
    tokio::select! {
        _ = stop.cancelled() => true,
        _ = tokio::time::sleep(pause) => false,
    }
}
