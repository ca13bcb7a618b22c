//! SQLite's writer: the one connection every write of this server goes through, held outside a
//! pool. sqlx runs a SQLite connection on its own thread and each query is a trip to it (~100 µs
//! on the benchmark machine); a write from a pool made four (BEGIN, its statements, COMMIT, and
//! the ping each connection gets on its way back). Here a write is one query that opens and
//! commits its own transaction (`storage::batch`): one trip.

use std::time::Duration;

use sqlx::{AnyConnection, Connection, any::AnyRow};

/// The statements every SQLite connection starts with.
pub(super) const PRAGMAS: &[&str] = &[
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA busy_timeout = 5000",
];

pub struct SqliteWriter {
    url: String,
    /// How long a write waits for the connection (DB_TIMEOUT), as it would for a pooled one.
    timeout: Duration,
    slot: tokio::sync::Mutex<Slot>,
}

#[derive(Default)]
struct Slot {
    conn: Option<AnyConnection>,
    /// A write's future was dropped (its request cancelled or timed out) while its batch ran, so
    /// its transaction may still be open: the next write rolls it back first.
    unfinished: bool,
}

impl SqliteWriter {
    pub fn new(url: String, timeout: Duration) -> Self {
        SqliteWriter { url, timeout, slot: tokio::sync::Mutex::default() }
    }

    /// Runs one batch (`BEGIN IMMEDIATE; …; COMMIT`) with the write's two parameters and returns
    /// its rows. On error nothing of it stays: the open transaction is rolled back.
    pub async fn run(&self, sql: &'static str, tenant: &str, input: String) -> Result<Vec<AnyRow>, sqlx::Error> {
        let mut slot =
            tokio::time::timeout(self.timeout, self.slot.lock()).await.map_err(|_| sqlx::Error::PoolTimedOut)?;
        let slot = &mut *slot;
        let conn = match &mut slot.conn {
            Some(conn) => conn,
            empty => empty.insert(self.connect().await?),
        };
        if slot.unfinished {
            rollback(conn).await;
        }
        slot.unfinished = true;
        let result = sqlx::query(sql).bind(tenant).bind(input).fetch_all(&mut *conn).await;
        if result.is_err() {
            // The statement that failed ended the batch before its COMMIT.
            rollback(conn).await;
        }
        slot.unfinished = false;
        if matches!(result, Err(sqlx::Error::WorkerCrashed | sqlx::Error::Io(_))) {
            slot.conn = None; // the next write opens a fresh connection
        }
        result
    }

    async fn connect(&self) -> Result<AnyConnection, sqlx::Error> {
        let mut conn = AnyConnection::connect(&self.url).await?;
        for pragma in PRAGMAS.iter().chain([&super::batch::WRITE_MARK_TABLE]) {
            sqlx::query(pragma).execute(&mut conn).await?;
        }
        Ok(conn)
    }

    pub async fn close(&self) {
        if let Some(conn) = self.slot.lock().await.conn.take() {
            let _ = conn.close().await;
        }
    }
}

/// Rolls back the open transaction, if there is one ("no transaction is active" is no error here).
async fn rollback(conn: &mut AnyConnection) {
    let _ = sqlx::query("ROLLBACK").execute(conn).await;
}
