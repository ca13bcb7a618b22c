//! SQLite's own parts of a store: the one writer every write goes through and, for a database in
//! a file, the version probe and the snapshot reader. In memory (`sqlite::memory:`), each
//! connection of ours would see a database of its own: no probe, no graph loads (and so no graph
//! cache).

use std::{path::PathBuf, str::FromStr, sync::Arc};

use sqlx::AnyPool;

use super::{
    DatabaseConfig, StorageError, probe::VersionProbe, snapshot::SnapshotReader, writer, writer::SqliteWriter,
};

#[derive(Clone)]
pub(super) struct Sqlite {
    pub writer: Arc<SqliteWriter>,
    pub file: Option<Arc<InFile>>,
}

/// A database in a file.
pub(super) struct InFile {
    pub path: PathBuf,
    /// `None` when it could not be opened: versions are then read through sqlx.
    pub probe: Option<VersionProbe>,
    pub snapshots: SnapshotReader,
}

/// The pools (`read`, and `write`: one connection, for migrations and tools) and SQLite's parts.
pub(super) async fn connect(
    config: &DatabaseConfig,
    options: impl Fn(u32) -> sqlx::any::AnyPoolOptions,
    url: &str,
) -> Result<(AnyPool, AnyPool, Sqlite), StorageError> {
    let pragmas = |max: u32| {
        options(max).after_connect(|conn, _| {
            Box::pin(async move {
                for pragma in writer::PRAGMAS {
                    sqlx::query(pragma).execute(&mut *conn).await?;
                }
                Ok(())
            })
        })
    };
    // Connected first: it creates the database file.
    let write = pragmas(1).connect(url).await?;
    let read = pragmas(config.pool_max.max(2)).connect_lazy(url)?;
    let path = sqlx::sqlite::SqliteConnectOptions::from_str(url)?.get_filename().to_path_buf();
    let file = match path.to_str() {
        Some(":memory:") | Some("") => None,
        _ => Some(Arc::new(InFile {
            probe: VersionProbe::open(&path)
                .inspect_err(|error| tracing::warn!(%error, "graph-version probe unavailable; asking sqlx"))
                .ok(),
            snapshots: SnapshotReader::new(&path, config.timeout),
            path: path.clone(),
        })),
    };
    let writer = SqliteWriter::new(&path, config.timeout, config.wal_max_bytes).map_err(StorageError::Writer)?;
    Ok((read, write, Sqlite { writer: Arc::new(writer), file }))
}

/// Makes sure the SQLite file can be created: `mode=rwc` and an existing parent directory.
pub(super) fn url(url: &str) -> Result<String, StorageError> {
    let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    let file = path.split('?').next().unwrap_or_default();
    if let Some(dir) = std::path::Path::new(file).parent().filter(|d| file != ":memory:" && !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|source| StorageError::DataDir { path: dir.display().to_string(), source })?;
    }
    let _ = sqlx::sqlite::SqliteConnectOptions::from_str(url)?;
    Ok(if url.contains("mode=") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    })
}
