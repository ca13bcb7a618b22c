//! SQLite's backups: a copy of the database file (`Store::vacuum_into`, consistent while the
//! server serves) holding one more table, `mcp_backup`, with the backup's metadata (`Meta`, with
//! each tenant's counts and the digest of its rows) so that restore can verify it.

use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::format::{self, Meta};
use crate::storage::{GraphRows, read_sqlite};

/// How every SQLite file begins.
pub const MAGIC: &[u8] = b"SQLite format 3\0";

/// Turns the fresh copy at `path` into a backup: keeps only `tenant` when one is given (the others'
/// rows deleted and the file vacuumed, so none of their data stays in free pages or the search
/// index), adds the metadata, and leaves a single file (rollback journal, not WAL).
pub fn finish_copy(path: &Path, tenant: Option<&str>, mut meta: Meta) -> rusqlite::Result<(Meta, GraphRows)> {
    let mut conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    conn.pragma_update(None, "journal_mode", "DELETE")?;
    if let Some(tenant) = tenant {
        let tx = conn.transaction()?;
        for sql in [
            "DELETE FROM relations WHERE tenant <> ?1",
            "DELETE FROM observations WHERE entity_id IN (SELECT id FROM entities WHERE tenant <> ?1)",
            "DELETE FROM entities WHERE tenant <> ?1",
            "DELETE FROM graph_versions WHERE tenant <> ?1",
            // The deletions above made history of the others' rows too (migration 20261207000003).
            "DELETE FROM observation_history WHERE entity_id NOT IN \
             (SELECT id FROM entities WHERE tenant = ?1 UNION ALL SELECT id FROM entity_history WHERE tenant = ?1)",
            "DELETE FROM entity_history WHERE tenant <> ?1",
            "DELETE FROM relation_history WHERE tenant <> ?1",
        ] {
            tx.execute(sql, [tenant])?;
        }
        tx.execute_batch(
            "INSERT INTO entities_fts (entities_fts) VALUES ('rebuild');
             INSERT INTO observations_fts (observations_fts) VALUES ('rebuild');
             UPDATE search_index_marks SET indexed_to = coalesce((SELECT max(id) FROM entities), 0) WHERE name = 'entities';
             UPDATE search_index_marks SET indexed_to = coalesce((SELECT max(id) FROM observations), 0) WHERE name = 'observations';",
        )?;
        tx.commit()?;
        conn.execute_batch("VACUUM")?;
    }
    let (schema, graph) = read_sqlite(&mut conn, None)?;
    meta.schema_version = schema;
    meta.tenants = graph.keys().cloned().collect();
    meta.counts = Some(format::counts(&graph));
    meta.sha256 = Some(format::digest(&graph, meta.format_version));
    let json = serde_json::to_string(&meta).expect("metadata serializes");
    conn.execute_batch("CREATE TABLE mcp_backup (meta TEXT NOT NULL)")?;
    conn.execute("INSERT INTO mcp_backup (meta) VALUES (?1)", [json])?;
    conn.close().map_err(|(_, e)| e)?;
    Ok((meta, graph))
}

/// Reads and checks a SQLite backup: `PRAGMA integrity_check`, the metadata, then every row
/// against its counts and digest.
pub fn read(path: &Path) -> Result<(Meta, GraphRows), String> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(path, flags).map_err(|e| format!("cannot open it: {e}"))?;
    let sqlite = |e: rusqlite::Error| format!("not a readable SQLite database: {e}");
    let problems: Vec<String> = (conn.prepare("PRAGMA integrity_check").map_err(sqlite)?)
        .query_map([], |row| row.get(0))
        .map_err(sqlite)?
        .collect::<rusqlite::Result<_>>()
        .map_err(sqlite)?;
    if problems != ["ok"] {
        let shown = problems.iter().take(3).cloned().collect::<Vec<_>>().join("; ");
        return Err(format!("the SQLite integrity check failed: {shown}"));
    }
    let meta: Option<String> = conn
        .query_row("SELECT meta FROM mcp_backup", [], |row| row.get(0))
        .optional()
        .map_err(|e| format!("no backup metadata (table mcp_backup): not made by `mcp-server backup`? ({e})"))?;
    let meta = meta.ok_or("the backup metadata (table mcp_backup) is empty")?;
    let meta: Meta = serde_json::from_str(&meta).map_err(|e| format!("bad backup metadata: {e}"))?;
    format::check_meta(&meta)?;
    let (schema, graph) = read_sqlite(&mut conn, None).map_err(sqlite)?;
    if schema != meta.schema_version {
        return Err(format!("schema version {schema} is not the metadata's {}", meta.schema_version));
    }
    if meta.counts.as_ref() != Some(&format::counts(&graph)) {
        return Err("the rows do not match the counts in the backup metadata".into());
    }
    if meta.sha256.as_deref() != Some(format::digest(&graph, meta.format_version).as_str()) {
        return Err("the rows do not match the SHA-256 in the backup metadata".into());
    }
    Ok((meta, graph))
}
