//! `mcp-server backup DEST` and `mcp-server restore SRC`.
//!
//! SQLite is backed up as a copy of its file (`sqlite`: `VACUUM INTO`, consistent while the server
//! serves) with the backup's metadata inside; PostgreSQL as a logical dump of our tables read in
//! one `REPEATABLE READ READ ONLY` transaction, in portable JSON lines (`jsonl`). Our own dump
//! rather than `pg_dump`: no PostgreSQL client of the server's exact major version is needed in
//! the image or on the timer's host, a dump can hold one tenant, and the same file restores into
//! SQLite too.
//!
//! A restore reads and verifies the whole file before it writes anything (the format from its
//! first bytes; SQLite's integrity check, the metadata, the rows' counts and digest), refuses a
//! tenant whose graph is not empty unless told to replace it, and writes each tenant's graph in
//! one transaction through the storage layer, whichever backend made the backup.

mod format;
mod jsonl;
mod sqlite;

use std::{
    fs::File,
    io::{BufReader, BufWriter, Read},
    path::{Path, PathBuf},
    time::Instant,
};

use crate::storage::{Backend, GraphRows, StorageError, Store};
pub use format::{Counts, FORMAT, FORMAT_VERSION};

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0} exists: a backup never overwrites a file")]
    Exists(PathBuf),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {reason}; nothing was restored")]
    Invalid { path: PathBuf, reason: String },
    #[error("{path}: tenant {tenant:?} is not in the backup (it holds {held:?}); nothing was restored")]
    NoSuchTenant { path: PathBuf, tenant: String, held: Vec<String> },
    #[error(
        "tenants {0:?} already have a graph in the target database: pass --replace to replace it; \
         nothing was restored"
    )]
    NotEmpty(Vec<String>),
    #[error("restoring tenant {tenant:?}: {source} (tenants restored before it: {done:?})")]
    Restore { tenant: String, done: Vec<String>, source: StorageError },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// What a backup or restore did.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub tenants: usize,
    pub counts: Counts,
    pub bytes: u64,
    pub seconds: f64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Counts { entities, observations, relations } = self.counts;
        write!(
            f,
            "{} tenants, {entities} entities, {observations} observations, {relations} relations, {} bytes, {:.2} s",
            self.tenants, self.bytes, self.seconds
        )
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io { path: path.to_path_buf(), source }
}

/// Writes a backup of `tenant` (every tenant without one) to `dest`, which must not exist: to a
/// temporary file beside it, synced, then renamed into place, so `dest` is whole or absent.
pub async fn backup(store: &Store, dest: &Path, tenant: Option<&str>) -> Result<Summary, BackupError> {
    let started = Instant::now();
    if dest.symlink_metadata().is_ok() {
        return Err(BackupError::Exists(dest.to_path_buf()));
    }
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = dest.with_file_name(format!(".{name}.{}.partial", std::process::id()));
    let result = write_backup(store, &temp, tenant).await;
    let done = result.and_then(|counts| {
        File::open(&temp).and_then(|f| f.sync_all()).map_err(io(&temp))?;
        if dest.symlink_metadata().is_ok() {
            return Err(BackupError::Exists(dest.to_path_buf()));
        }
        std::fs::rename(&temp, dest).map_err(io(dest))?;
        if let Some(dir) = dest.parent().map(|d| if d.as_os_str().is_empty() { Path::new(".") } else { d }) {
            File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))?;
        }
        Ok(counts)
    });
    let counts = match done {
        Ok(counts) => counts,
        Err(e) => {
            let _ = std::fs::remove_file(&temp);
            return Err(e);
        }
    };
    let bytes = std::fs::metadata(dest).map_err(io(dest))?.len();
    Ok(Summary {
        tenants: counts.len(),
        counts: format::totals(&counts),
        bytes,
        seconds: started.elapsed().as_secs_f64(),
    })
}

async fn write_backup(
    store: &Store,
    temp: &Path,
    tenant: Option<&str>,
) -> Result<std::collections::BTreeMap<String, Counts>, BackupError> {
    let meta = |backend: &str, schema_version: i64, graph: &GraphRows| format::Meta {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        schema_version,
        backend: backend.into(),
        created_at: format::now_rfc3339(),
        tenants: graph.keys().cloned().collect(),
        counts: None,
        sha256: None,
    };
    match store.backend() {
        Backend::Sqlite => {
            store.vacuum_into(temp).await?;
            let (temp, tenant) = (temp.to_path_buf(), tenant.map(str::to_owned));
            let finished = tokio::task::spawn_blocking(move || {
                let meta = meta("sqlite", 0, &GraphRows::new());
                sqlite::finish_copy(&temp, tenant.as_deref(), meta)
            })
            .await
            .map_err(|e| StorageError::Internal(format!("backup thread: {e}")))?;
            let (meta, _) = finished.map_err(StorageError::from)?;
            Ok(meta.counts.unwrap_or_default())
        }
        Backend::Postgres => {
            let (schema, graph) = store.dump_postgres(tenant).await?;
            let file = File::create_new(temp).map_err(io(temp))?;
            let mut out = BufWriter::with_capacity(1 << 20, file);
            jsonl::write(&mut out, &meta("postgres", schema, &graph), &graph).map_err(io(temp))?;
            out.into_inner().map_err(|e| e.into_error()).and_then(|f| f.sync_all()).map_err(io(temp))?;
            Ok(format::counts(&graph))
        }
    }
}

/// Reads and verifies a backup of either format, whole; nothing is written.
pub fn read(path: &Path) -> Result<GraphRows, BackupError> {
    let invalid = |reason: String| BackupError::Invalid { path: path.to_path_buf(), reason };
    let mut file = File::open(path).map_err(io(path))?;
    let mut start = [0u8; 32];
    let mut got = 0;
    while got < start.len() {
        match file.read(&mut start[got..]).map_err(io(path))? {
            0 => break,
            n => got += n,
        }
    }
    let start = &start[..got];
    if start.starts_with(sqlite::MAGIC) {
        return sqlite::read(path).map(|(_, graph)| graph).map_err(invalid);
    }
    if start.starts_with(jsonl::MAGIC) {
        let reader = BufReader::with_capacity(1 << 20, File::open(path).map_err(io(path))?);
        let (_, graph) = jsonl::read(reader).map_err(|(line, reason)| invalid(format!("line {line}: {reason}")))?;
        format::check_graph(&graph).map_err(invalid)?;
        return Ok(graph);
    }
    Err(invalid("neither a SQLite backup nor a JSON-lines backup (by its first bytes)".into()))
}

/// Restores the backup at `src` (only `tenant` of it when one is given) into `store`.
pub async fn restore(store: &Store, src: &Path, tenant: Option<&str>, replace: bool) -> Result<Summary, BackupError> {
    let started = Instant::now();
    let bytes = std::fs::metadata(src).map_err(io(src))?.len();
    let path = src.to_path_buf();
    let mut graph = tokio::task::spawn_blocking(move || read(&path))
        .await
        .map_err(|e| StorageError::Internal(format!("restore thread: {e}")))??;
    if let Some(tenant) = tenant {
        let Some(rows) = graph.remove(tenant) else {
            let held = graph.keys().cloned().collect();
            return Err(BackupError::NoSuchTenant { path: src.to_path_buf(), tenant: tenant.to_owned(), held });
        };
        graph = GraphRows::from([(tenant.to_owned(), rows)]);
    }
    if !replace {
        let mut held = Vec::new();
        for tenant in graph.keys() {
            if !store.tenant_is_empty(tenant).await? {
                held.push(tenant.clone());
            }
        }
        if !held.is_empty() {
            return Err(BackupError::NotEmpty(held));
        }
    }
    let mut done = Vec::new();
    for (tenant, rows) in &graph {
        match store.restore_tenant(tenant, rows, replace).await {
            Ok(()) => done.push(tenant.clone()),
            Err(StorageError::NotEmpty(t)) if done.is_empty() => return Err(BackupError::NotEmpty(vec![t])),
            Err(source) => return Err(BackupError::Restore { tenant: tenant.clone(), done, source }),
        }
    }
    let counts = format::counts(&graph);
    Ok(Summary {
        tenants: counts.len(),
        counts: format::totals(&counts),
        bytes,
        seconds: started.elapsed().as_secs_f64(),
    })
}
