//! Storage full: a write the database refused for lack of space (SQLITE_FULL; PostgreSQL's
//! disk_full) can succeed once space returns, so it is told apart from other failures: clients get
//! a retryable error, readiness fails (other replicas, or an operator, can act) and a metric
//! counts it. From such a failure until a write succeeds the store reports itself full;
//! readiness meanwhile probes with a write of its own, since a replica out of rotation gets none.
//! On SQLite the probe first writes a MiB beside the database: a one-row write alone can fit in
//! the log's file while the writes that failed still do not.

use std::sync::atomic::Ordering;

use super::{StorageError, Store};

/// The error codes sqlx reports for a full disk: SQLite's primary code, PostgreSQL's SQLSTATE.
const SQLITE_FULL: &str = "13";
const POSTGRES_DISK_FULL: &str = "53100";

/// What the SQLite probe writes beside the database (and deletes again).
const SPACE_PROBE_BYTES: usize = 1024 * 1024;

/// A write that needs space and changes nothing (the newest migration's row, rewritten as it is).
const STORAGE_PROBE: &str =
    "UPDATE _sqlx_migrations SET success = success WHERE version = (SELECT max(version) FROM _sqlx_migrations)";

impl StorageError {
    /// True when the database refused a write for lack of space.
    pub fn is_storage_full(&self) -> bool {
        match self {
            StorageError::Database(sqlx::Error::Database(e)) => {
                matches!(e.code().as_deref(), Some(SQLITE_FULL | POSTGRES_DISK_FULL))
            }
            StorageError::Full(_) => true,
            StorageError::Sqlite(e) => e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull),
            _ => false,
        }
    }
}

impl Store {
    /// True while writes fail for lack of space: from a write refused for it until a write (or
    /// `probe_storage`) succeeds.
    pub fn storage_full(&self) -> bool {
        self.storage_full.load(Ordering::SeqCst)
    }

    /// A write that needs space (`STORAGE_PROBE`), noted as writes are.
    pub async fn probe_storage(&self) -> Result<(), StorageError> {
        if let Some(file) = self.sqlite_file() {
            let mut probe = file.as_os_str().to_owned();
            probe.push("-space-probe");
            let written = tokio::fs::write(&probe, vec![0; SPACE_PROBE_BYTES]).await;
            let _ = tokio::fs::remove_file(&probe).await;
            if let Err(e) = written {
                return Err(StorageError::Full(format!("cannot write beside the database: {e}")));
            }
        }
        let done = sqlx::query(STORAGE_PROBE).execute(&self.write).await.map(drop).map_err(StorageError::from);
        self.noted(done)
    }

    /// Notes a write's outcome for `storage_full` and its metrics.
    pub(super) fn noted<T>(&self, outcome: Result<T, StorageError>) -> Result<T, StorageError> {
        match &outcome {
            Err(e) if e.is_storage_full() => {
                metrics::counter!("db_storage_full_total").increment(1);
                if !self.storage_full.swap(true, Ordering::SeqCst) {
                    metrics::gauge!("db_storage_full").set(1.0);
                    tracing::error!(error = %e, "storage full: writes fail until space returns");
                }
            }
            Ok(_) if self.storage_full.swap(false, Ordering::SeqCst) => {
                metrics::gauge!("db_storage_full").set(0.0);
                tracing::warn!("storage writable again");
            }
            _ => {}
        }
        outcome
    }
}
