//! SQLite's write-ahead log, kept bounded. SQLite's own checkpoint after a commit is passive: it
//! copies what no reader still needs and never waits, and the log file only starts over when a
//! write begins at a moment no reader is using it. Under steady concurrent reads (the version
//! probe, pooled reads, graph loads) that moment never came, so the log grew for as long as the
//! load lasted (every commit appended to it) and each read searched a longer one.
//!
//! So once the log passes SQLITE_WAL_MAX_BYTES, the writer thread runs a truncating checkpoint:
//! it waits briefly for the readers of older snapshots to finish (new ones read the database
//! file once it holds everything), copies the whole log into the database and cuts the file to
//! nothing. `journal_size_limit` cuts a log that SQLite reset by itself back to the same bound.

use std::{
    path::{Path, PathBuf},
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use rusqlite::Connection;

/// How long a checkpoint waits for readers; the writes queued behind it wait as long.
pub(super) const CHECKPOINT_WAIT: Duration = Duration::from_secs(1);
/// After a checkpoint that could not finish (a reader held on), the next try waits this long.
const RETRY_AFTER: Duration = Duration::from_secs(1);

pub(super) struct WalBound {
    wal: PathBuf,
    max_bytes: u64,
    /// A checkpoint is queued for the writer thread or running.
    pending: AtomicBool,
    not_before: Mutex<Instant>,
}

impl WalBound {
    pub fn new(database: &Path, max_bytes: u64) -> Self {
        let mut wal = database.as_os_str().to_owned();
        wal.push("-wal");
        WalBound { wal: wal.into(), max_bytes, pending: AtomicBool::new(false), not_before: Mutex::new(Instant::now()) }
    }

    /// The statement that bounds a log SQLite resets by itself, for the writer's connection.
    pub fn size_limit_pragma(&self) -> String {
        format!("PRAGMA journal_size_limit = {}", self.max_bytes)
    }

    /// True when the log has passed its bound and no checkpoint is under way or backing off; the
    /// caller then owes the writer thread one checkpoint. A `stat`, after each write.
    pub fn claim_checkpoint(&self) -> bool {
        let over = std::fs::metadata(&self.wal).is_ok_and(|m| m.len() > self.max_bytes);
        over && Instant::now() >= *self.not_before.lock().expect("wal bound")
            && !self.pending.swap(true, Ordering::SeqCst)
    }

    /// Runs the claimed checkpoint on the writer's connection (its busy timeout set to
    /// `CHECKPOINT_WAIT`).
    pub fn checkpoint(&self, conn: &Connection) -> rusqlite::Result<()> {
        let outcome = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
        });
        let finished = matches!(outcome, Ok((0, _, _)));
        if !finished {
            *self.not_before.lock().expect("wal bound") = Instant::now() + RETRY_AFTER;
        }
        self.pending.store(false, Ordering::SeqCst);
        match outcome {
            Ok((busy, frames, copied)) => {
                tracing::debug!(busy, frames, copied, "SQLite WAL checkpoint");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// A claimed checkpoint that will not run (the writer is closing).
    pub fn release(&self) {
        self.pending.store(false, Ordering::SeqCst);
    }
}
