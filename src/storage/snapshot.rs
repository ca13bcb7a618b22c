//! Whole-graph loads (SQLite), read through rusqlite on a blocking thread. Through sqlx each row
//! was a trip from the connection's thread to the runtime's with every value copied into an
//! `AnyRow`, four times slower than this way.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::{
    RELATION_ROWS, RelationRow,
    loaded::{Entities, LoadedGraph, StoredEntity},
    versions::VERSION,
};

/// One row per observation (one for an entity without any), grouped by entity. In name order, the
/// order of the (tenant, name) index SQLite walks: `ORDER BY e.id` sorted the rows in a temporary
/// B-tree, a large part of a load.
const ENTITY_ROWS: &str = "SELECT e.id, e.name, e.entity_type, e.name_lc, e.type_lc, o.content, o.content_lc \
     FROM entities e LEFT JOIN observations o ON o.entity_id = e.id WHERE e.tenant = $1 ORDER BY e.name, o.id";

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
        let mut statement = tx.prepare(ENTITY_ROWS)?;
        let mut rows = statement.query([tenant])?;
        let mut entities = Entities::new(graph, each_entity);
        while let Some(row) = rows.next()? {
            let entity = || {
                Ok::<_, rusqlite::Error>(StoredEntity {
                    id: row.get(0)?,
                    name: row.get(1)?,
                    entity_type: row.get(2)?,
                    name_lc: row.get(3)?,
                    type_lc: row.get(4)?,
                    observations: Vec::new(),
                })
            };
            let observation = match row.get::<_, Option<String>>(5)? {
                Some(content) => Some((content, row.get(6)?)),
                None => None,
            };
            entities.row(row.get(0)?, entity, observation)?;
        }
        entities.finish();
        drop(rows);
        drop(statement);
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
