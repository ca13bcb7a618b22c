//! The graph-version probe (SQLite): every read the graph cache serves first asks the database
//! for the tenant's graph version, a primary-key read. Through sqlx it is a trip to the
//! connection's thread and back, which cost far more than the read (a third of a cached search's
//! time); the probe runs it in place, on the caller's thread, with its own connections.
//!
//! It never waits: a connection in use, a busy database (SQLite's locks during WAL recovery or a
//! checkpoint that restarts the log) or any error makes it answer `None`, and the caller asks
//! sqlx as before.

use std::{path::Path, sync::Mutex};

use rusqlite::{Connection, OpenFlags, OptionalExtension};

pub struct VersionProbe {
    /// One per worker thread is enough: each is held for a single statement.
    connections: Vec<Mutex<Connection>>,
}

impl VersionProbe {
    /// Connections to the database file at `path` (which the writer has created).
    pub fn open(path: &Path) -> rusqlite::Result<Self> {
        let threads = std::thread::available_parallelism().map_or(2, usize::from);
        let connections = (0..threads)
            .map(|_| {
                let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                let conn = Connection::open_with_flags(path, flags)?;
                conn.busy_timeout(std::time::Duration::ZERO)?;
                conn.pragma_update(None, "query_only", true)?;
                Ok(Mutex::new(conn))
            })
            .collect::<rusqlite::Result<_>>()?;
        Ok(VersionProbe { connections })
    }

    /// The tenant's graph version and entity count ((0, 0) for a tenant that never wrote), or
    /// `None` when the probe cannot answer at once.
    pub fn version(&self, tenant: &str) -> Option<(i64, i64)> {
        let conn = self.connections.iter().find_map(|c| c.try_lock().ok())?;
        let mut statement = conn.prepare_cached(super::versions::VERSION).ok()?;
        let row = statement.query_row([tenant], |row| Ok((row.get(0)?, row.get(1)?))).optional().ok()?;
        Some(row.unwrap_or((0, 0)))
    }
}
