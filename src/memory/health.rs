//! What the HTTP layer reports and does about the store (readiness, pool gauges, the replica
//! heartbeat, closing): kept here so that `http` never reaches into `storage`.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::Memory;
use crate::storage::SchemaStatus;

/// The store's part of readiness. Each check is `Ok` (with what is worth reporting) or `Err`
/// with the reason readiness gives.
#[derive(Debug)]
pub struct Health {
    /// The database's round trip for the schema query.
    pub database: Result<Duration, &'static str>,
    /// The schema: `Ok` with the newer additive migrations this binary serves regardless (none
    /// when current); `None` when the database did not answer.
    pub schema: Option<Result<Vec<i64>, String>>,
    /// Whether writes have space.
    pub storage: Result<(), &'static str>,
}

impl Memory {
    /// Readiness of the store, each database round trip bounded by `timeout`.
    pub async fn health(&self, timeout: Duration) -> Health {
        let started = Instant::now();
        let (database, schema) = match tokio::time::timeout(timeout, self.store.schema_status()).await {
            Ok(Ok(status)) => {
                let schema = match status {
                    SchemaStatus::Current => Ok(Vec::new()),
                    // A newer release's additive migrations: this binary keeps serving (rolling
                    // updates and rollbacks).
                    SchemaStatus::AheadAdditive { unknown } => Ok(unknown),
                    SchemaStatus::Behind { pending } => Err(format!("{pending} migration(s) pending")),
                    SchemaStatus::Incompatible { versions } => {
                        Err(format!("newer migration(s) {versions:?} break this binary"))
                    }
                };
                (Ok(started.elapsed()), Some(schema))
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, "readiness: database check failed");
                (Err("unreachable"), None)
            }
            Err(_) => (Err("timeout"), None),
        };
        // Writes fail for lack of space: a write of readiness's own tells when space is back (this
        // replica, out of rotation, gets no writes to tell it).
        let storage = match self.store.storage_full() {
            false => Ok(()),
            true => match tokio::time::timeout(timeout, self.store.probe_storage()).await {
                Ok(Ok(())) => Ok(()),
                _ => Err("full"),
            },
        };
        Health { database, schema, storage }
    }

    /// The read pool's (size, idle connections), for the metrics gauges.
    pub fn pool_stats(&self) -> (u32, usize) {
        self.store.pool_stats()
    }

    /// Tells other replicas (PostgreSQL) this one is alive until `stop` (`Store::heartbeat`).
    pub async fn heartbeat(self, stop: CancellationToken) {
        self.store.heartbeat(stop).await;
    }

    /// Closes the store: the SQLite writer finishes, the pools close.
    pub async fn close(&self) {
        self.store.close().await;
    }
}
