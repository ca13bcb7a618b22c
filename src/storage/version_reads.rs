//! PostgreSQL's graph-version reads, shared. Every read served from the graph cache first asks the
//! database for its tenant's version, and under load many reads of one tenant asked at once: a
//! round trip, a pooled connection and the database's CPU each. Reads of a tenant that arrive
//! while its query is in flight wait for the next one, and all of them share it.
//!
//! A read is answered only by a query sent after it arrived, so it sees every write acknowledged
//! before it started, as a query of its own would.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use sqlx::{AnyConnection, AnyPool, Row};
use tokio::sync::oneshot;

use super::{StorageError, deadline::Deadline};

/// The tenant's version, entity count and version rows (`graph_version`).
type Version = (i64, i64, i64);
type Waiter = oneshot::Sender<Result<Version, StorageError>>;

#[derive(Default)]
pub struct VersionReads {
    /// A tenant is here while a task queries its version; the reads waiting for its next query.
    tenants: Mutex<HashMap<String, Vec<Waiter>>>,
}

impl VersionReads {
    fn tenants(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Waiter>>> {
        self.tenants.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub async fn read(
        self: &Arc<Self>,
        pool: &AnyPool,
        deadline: &Deadline,
        tenant: &str,
    ) -> Result<Version, StorageError> {
        let (reply, version) = oneshot::channel();
        let start = {
            let mut tenants = self.tenants();
            match tenants.get_mut(tenant) {
                Some(waiting) => {
                    waiting.push(reply);
                    false
                }
                None => {
                    tenants.insert(tenant.to_owned(), vec![reply]);
                    true
                }
            }
        };
        if start {
            // Not on this read's task: a read that is cancelled must not take the others' query
            // with it.
            tokio::spawn(self.clone().query(pool.clone(), deadline.clone(), tenant.to_owned()));
        }
        version.await.unwrap_or(Err(StorageError::Closed))
    }

    async fn query(self: Arc<Self>, pool: AnyPool, deadline: Deadline, tenant: String) {
        // Should this task end early (a panic), the tenant is not left waiting for it: the reads
        // waiting hear their channel close, and the next read starts a new task.
        struct Unwinding<'a>(&'a VersionReads, &'a str);
        impl Drop for Unwinding<'_> {
            fn drop(&mut self) {
                self.0.tenants().remove(self.1);
            }
        }
        let unwinding = Unwinding(&self, &tenant);
        loop {
            let waiting = {
                let mut tenants = self.tenants();
                let waiting = tenants.get_mut(&tenant).map(std::mem::take).unwrap_or_default();
                if waiting.is_empty() {
                    // Under the lock: a read that comes after this starts the next task.
                    tenants.remove(&tenant);
                    std::mem::forget(unwinding);
                    return;
                }
                waiting
            };
            metrics::counter!("db_version_queries_total").increment(1);
            let outcome = deadline
                .run(async {
                    let mut conn = pool.acquire().await?;
                    graph_version(&mut conn, &tenant).await
                })
                .await;
            match outcome {
                Ok(version) => waiting.into_iter().for_each(|reply| _ = reply.send(Ok(version))),
                Err(error) => {
                    // Each other waiter gets a copy; the first, the error itself.
                    let mut waiting = waiting.into_iter();
                    let first = waiting.next();
                    waiting.for_each(|reply| _ = reply.send(Err(error.shared())));
                    if let Some(reply) = first {
                        let _ = reply.send(Err(error));
                    }
                }
            }
        }
    }
}

/// A tenant's graph version: the sum of its rows, one per backend that wrote to it (see the
/// migration `graph_versions`), with its entity count and how many rows there are.
pub const VERSION: &str = "SELECT COALESCE(sum(version), 0)::int8, COALESCE(sum(entities), 0)::int8, count(*)::int8 \
     FROM graph_versions WHERE tenant = $1";

/// The tenant's graph version, entity count and version rows; (0, 0, 0) for one that never wrote.
pub async fn graph_version(conn: &mut AnyConnection, tenant: &str) -> Result<(i64, i64, i64), StorageError> {
    let row = sqlx::query(VERSION).bind(tenant).fetch_one(conn).await?;
    Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))
}
