//! Whole-graph loads (SQLite), read through rusqlite on a blocking thread. Through sqlx each row
//! was a trip from the connection's thread to the runtime's with every value copied into an
//! `AnyRow`: the first search on a 10k-entity graph, which loads it, took 160-320 ms on the
//! benchmark machine, and 40-65 ms this way (40k entities: 0.7-0.8 s, now 0.17-0.21 s).

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::{
    RelationRow,
    versions::{ENTITY_ROWS, EntityGrouper, LoadedGraph, RELATION_ROWS, StoredEntity, VERSION},
};

pub struct SnapshotReader {
    path: PathBuf,
    /// As long as a pooled read would wait for a locked database (DB_TIMEOUT).
    busy_timeout: Duration,
}

impl SnapshotReader {
    pub fn new(path: &Path, busy_timeout: Duration) -> Self {
        SnapshotReader { path: path.to_path_buf(), busy_timeout }
    }

    /// The tenant's graph in one read transaction (one snapshot), each entity handed to
    /// `each_entity` as its rows are read. A connection of its own per load: loads are rare, and
    /// opening one costs less than a millisecond.
    pub fn load<G>(
        &self,
        tenant: &str,
        graph: &mut G,
        each_entity: fn(&mut G, StoredEntity),
    ) -> rusqlite::Result<LoadedGraph> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(&self.path, flags)?;
        conn.busy_timeout(self.busy_timeout)?;
        conn.pragma_update(None, "query_only", true)?;
        let tx = conn.transaction()?;
        let version = tx.query_row(VERSION, [tenant], |row| row.get(0)).optional()?.unwrap_or(0);
        let mut grouper = EntityGrouper::default();
        let mut statement = tx.prepare(ENTITY_ROWS)?;
        let mut rows = statement.query([tenant])?;
        while let Some(row) = rows.next()? {
            let id = row.get(0)?;
            if grouper.is_new(id) {
                let entity = StoredEntity {
                    id,
                    name: row.get(1)?,
                    entity_type: row.get(2)?,
                    name_lc: row.get(3)?,
                    type_lc: row.get(4)?,
                    observations: Vec::new(),
                };
                if let Some(done) = grouper.begin(entity) {
                    each_entity(graph, done);
                }
            }
            if let Some(content) = row.get::<_, Option<String>>(5)? {
                grouper.observe(content, row.get(6)?);
            }
        }
        drop(rows);
        drop(statement);
        if let Some(done) = grouper.finish() {
            each_entity(graph, done);
        }
        let relations = tx
            .prepare(RELATION_ROWS)?
            .query_map(rusqlite::params![tenant, 0_i64, i64::MAX], |row| {
                Ok(RelationRow { id: row.get(0)?, from: row.get(1)?, to: row.get(2)?, relation_type: row.get(3)? })
            })?
            .collect::<rusqlite::Result<_>>()?;
        tx.commit()?;
        Ok(LoadedGraph { version, relations })
    }
}
