//! Storage: one sqlx `Any` code path over PostgreSQL and the embedded SQLite file.
//!
//! SQLite's writes go through one writer connection beside a reader pool (`writer`: a small write
//! runs in place when the connection is free, the rest queue in order for its thread instead of
//! spinning on `SQLITE_BUSY`); PostgreSQL uses one pool for both.

mod batch;
mod combine;
mod compat;
mod database;
mod deadline;
mod dump;
mod full;
mod graph;
mod loaded;
mod outcome;
mod postgres;
mod probe;
mod search;
mod snapshot;
mod version_reads;
mod versions;
mod wal;
mod writer;
pub mod writes;

use std::{
    collections::HashSet,
    path::Path,
    str::FromStr,
    sync::{Arc, Once},
    time::Duration,
};

use secrecy::ExposeSecret;
use sqlx::{
    Any, AnyPool, Connection, Executor, Transaction,
    any::AnyPoolOptions,
    migrate::{MigrateError, Migration, Migrator},
};

pub use compat::{Compat, HEARTBEAT_INTERVAL, SchemaStatus};
pub use database::{Backend, DatabaseConfig};
pub use dump::{GraphRows, TenantRows, newest_migration, read_sqlite};
pub use graph::*;
/// PostgreSQL's statements for the stdio benchmark's calls, which its database floor runs through
/// pgbench (bench/dbfloor.rs): not an interface.
#[doc(hidden)]
pub mod statements {
    pub use super::{
        combine::CREATE,
        postgres::{ADD_OBSERVATIONS, VERSION},
    };
}
pub use loaded::{LoadedGraph, StoredEntity};
pub use outcome::{Added, Versions};
pub use search::search_graph;
pub use versions::graph_version;
pub use writes::NewEntity;

use combine::CreateCombiner;
use deadline::{Abandoned, Deadline};
use postgres::VersionRows;
use probe::VersionProbe;
use snapshot::SnapshotReader;
use version_reads::VersionReads;
use writer::SqliteWriter;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the database did not answer within {0:?}")]
    TimedOut(Duration),
    #[error("migration failed: {0}")]
    Migrate(#[from] MigrateError),
    #[error("cannot create the database directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error("this binary cannot serve the database schema: {detail}")]
    UnknownSchema { detail: String },
    #[error(
        "migration {version} would break replicas still running ({replicas}): finish replacing them first, \
         or pass --force (MIGRATE_FORCE=true)"
    )]
    BreakingMigration { version: i64, replicas: String },
    #[error("tenant {0:?} already has a graph")]
    NotEmpty(String),
    /// Another caller's failure passed on to those that waited on the same statement.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("storage full: {0}")]
    Full(String),
    /// The store was closed (shutting down), or a task it relies on is gone.
    #[error("the store is closed")]
    Closed,
    #[error("cannot start the SQLite writer: {0}")]
    Writer(std::io::Error),
    #[error("{0}")]
    Unsupported(&'static str),
    /// A broken invariant or a failed helper thread: a bug, not the database's answer.
    #[error("internal storage error: {0}")]
    Internal(String),
}

impl StorageError {
    /// True when the database could not be reached or timed out, as opposed to a bad query.
    pub fn is_unavailable(&self) -> bool {
        match self {
            // PostgreSQL's own timeouts (`deadline`): statement_timeout (57014), lock_timeout
            // (55P03), idle_in_transaction_session_timeout (25P03).
            StorageError::Database(sqlx::Error::Database(e)) => {
                matches!(e.code().as_deref(), Some("57014" | "55P03" | "25P03"))
            }
            StorageError::Database(e) => matches!(
                e,
                sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed | sqlx::Error::Tls(_)
            ),
            StorageError::TimedOut(_) | StorageError::Unavailable(_) | StorageError::Closed => true,
            StorageError::Sqlite(e) => {
                matches!(
                    e.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::CannotOpen)
                )
            }
            _ => false,
        }
    }

    /// The same failure for another caller that waited on it: unavailable stays unavailable
    /// (503), storage full stays storage full; anything else is the database's error, by its
    /// message.
    pub(super) fn shared(&self) -> StorageError {
        let message = self.to_string();
        if self.is_unavailable() {
            StorageError::Unavailable(message)
        } else if self.is_storage_full() {
            StorageError::Full(message)
        } else {
            StorageError::Internal(message)
        }
    }
}

/// How long a pooled connection may sit unused before it is pinged on its way out of the pool.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct Store {
    backend: Backend,
    read: AnyPool,
    /// PostgreSQL: the read pool. SQLite: one connection, for migrations and tools.
    write: AnyPool,
    sqlite_writer: Option<Arc<SqliteWriter>>,
    probe: Option<Arc<VersionProbe>>,
    /// SQLite in a file: whole-graph loads.
    snapshots: Option<Arc<SnapshotReader>>,
    /// PostgreSQL's creates (SQLite's go through its writer).
    creates: Arc<CreateCombiner>,
    /// PostgreSQL's graph-version rows.
    version_rows: Arc<VersionRows>,
    /// PostgreSQL's graph-version reads, shared by the reads that arrive together.
    version_reads: Arc<VersionReads>,
    /// Longest a call's database work may take: DB_TIMEOUT for a connection, then
    /// DB_STATEMENT_TIMEOUT.
    deadline: Deadline,
    /// The last write failed for lack of space (and none has succeeded since).
    storage_full: Arc<std::sync::atomic::AtomicBool>,
    /// SQLite in a file: the database file (the storage-full probe writes beside it).
    sqlite_file: Option<std::path::PathBuf>,
    /// The migrations this binary knows.
    migrations: Arc<[Migration]>,
    /// This process's row in `mcp_replicas` (PostgreSQL).
    replica: Arc<str>,
    /// PostgreSQL: one connection of its own for the heartbeat, so it never takes or breaks a
    /// request's connection.
    heartbeat: Option<AnyPool>,
}

pub type WriteTx = Transaction<'static, Any>;

impl Store {
    pub async fn connect(config: &DatabaseConfig) -> Result<Self, StorageError> {
        static DRIVERS: Once = Once::new();
        DRIVERS.call_once(sqlx::any::install_default_drivers);
        let url = config.url.expose_secret();
        let abandoned = Arc::<Abandoned>::default();
        let deadline = Deadline { abandoned: abandoned.clone(), bound: config.timeout + config.statement_timeout };
        let options = |max: u32| {
            AnyPoolOptions::new()
                .max_connections(max)
                .min_connections(0)
                .acquire_timeout(config.timeout)
                .idle_timeout(Some(Duration::from_secs(300)))
                // sqlx pings every connection as it returns to the pool, and by default again as
                // it leaves: a round trip (PostgreSQL) or a worker-thread hop (SQLite) on every
                // query. Only a connection that has sat idle since its release ping can have been
                // dropped by the server meanwhile; check just those.
                .test_before_acquire(false)
                .before_acquire(|conn, meta| {
                    Box::pin(async move {
                        if meta.idle_for >= IDLE_BEFORE_PING {
                            conn.ping().await?;
                        }
                        Ok(true)
                    })
                })
        };
        match config.backend {
            Backend::Postgres => {
                // JIT compiles a plan whose estimated cost passes a threshold, and PostgreSQL guesses
                // 100 rows for every JSON array this server sends, so a one-entity write was costed
                // like a bulk load and spent ~20 ms compiling a plan that runs in 0.5 ms. The
                // timeouts are `deadline`'s.
                let session = Arc::new(deadline::session_settings(config.statement_timeout));
                let pool = options(config.pool_max)
                    .after_connect(move |conn, _| {
                        let session = session.clone();
                        Box::pin(async move { conn.execute(session.as_str()).await.map(drop) })
                    })
                    .after_release(deadline::after_release(abandoned, config.timeout))
                    .connect_lazy(url)?;
                Ok(Self {
                    backend: Backend::Postgres,
                    read: pool.clone(),
                    write: pool,
                    sqlite_writer: None,
                    probe: None,
                    snapshots: None,
                    creates: Arc::default(),
                    version_rows: Arc::default(),
                    version_reads: Arc::default(),
                    deadline,
                    storage_full: Arc::default(),
                    sqlite_file: None,
                    migrations: POSTGRES_MIGRATIONS.iter().cloned().collect(),
                    replica: compat::replica_id().into(),
                    heartbeat: Some(
                        AnyPoolOptions::new()
                            .max_connections(1)
                            .min_connections(0)
                            .acquire_timeout(config.timeout)
                            .connect_lazy(url)?,
                    ),
                })
            }
            Backend::Sqlite => {
                let url = sqlite_url(url)?;
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
                let write = pragmas(1).connect(&url).await?;
                let read = pragmas(config.pool_max.max(2)).connect_lazy(&url)?;
                let file = sqlx::sqlite::SqliteConnectOptions::from_str(&url)?.get_filename().to_path_buf();
                // In memory, each connection of ours would see a database of its own: no probe,
                // no graph loads (and so no graph cache).
                let (probe, snapshots) = match file.to_str() {
                    Some(":memory:") | Some("") => (None, None),
                    _ => (
                        VersionProbe::open(&file)
                            .inspect_err(|error| tracing::warn!(%error, "graph-version probe unavailable; asking sqlx"))
                            .ok()
                            .map(Arc::new),
                        Some(Arc::new(SnapshotReader::new(&file, config.timeout))),
                    ),
                };
                let sqlite_writer = Some(Arc::new(
                    SqliteWriter::new(&file, config.timeout, config.wal_max_bytes).map_err(StorageError::Writer)?,
                ));
                Ok(Self {
                    backend: Backend::Sqlite,
                    read,
                    write,
                    sqlite_writer,
                    probe,
                    sqlite_file: snapshots.is_some().then(|| file.clone()),
                    snapshots,
                    creates: Arc::default(),
                    version_rows: Arc::default(),
                    version_reads: Arc::default(),
                    deadline,
                    storage_full: Arc::default(),
                    migrations: SQLITE_MIGRATIONS.iter().cloned().collect(),
                    replica: compat::replica_id().into(),
                    heartbeat: None,
                })
            }
        }
    }

    /// Runs a call's database work within DB_TIMEOUT + DB_STATEMENT_TIMEOUT; past that it fails
    /// as unavailable (retryable).
    pub async fn bounded<T, E: From<StorageError>>(
        &self,
        work: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        self.deadline.run(work).await
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Also knows the migrations in `dir`, as a build with them compiled in would: tests of
    /// upgrades run "the next release" this way.
    #[doc(hidden)]
    pub async fn with_migrations_from(mut self, dir: &Path) -> Result<Self, StorageError> {
        let extra = Migrator::new(dir).await?;
        let mut all = self.migrations.to_vec();
        all.extend(extra.iter().cloned());
        all.sort_by_key(|m| m.version);
        self.migrations = all.into();
        Ok(self)
    }

    pub async fn ping(&self) -> Result<(), StorageError> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    /// A PostgreSQL write transaction (SQLite's writes are batches: `sqlite_writer`).
    async fn begin_write(&self) -> Result<WriteTx, StorageError> {
        debug_assert_eq!(self.backend, Backend::Postgres);
        Ok(self.write.begin().await?)
    }

    fn sqlite_writer(&self) -> Option<&SqliteWriter> {
        self.sqlite_writer.as_deref()
    }

    /// PostgreSQL's create_entities (`combine`): the names created, and the graph versions
    /// around the call when it can be replayed.
    async fn pg_create(
        &self,
        tenant: &str,
        entities: serde_json::Value,
    ) -> Result<(HashSet<String>, Option<Versions>), StorageError> {
        self.creates.create(&self.write, &self.deadline, tenant, entities).await
    }

    /// Folds the tenant's graph-version rows of PostgreSQL backends that are gone (the server
    /// does it as they pile up); returns how many rows were folded.
    pub async fn fold_version_rows(&self, tenant: &str) -> Result<u64, StorageError> {
        debug_assert_eq!(self.backend, Backend::Postgres);
        postgres::fold_version_rows(&self.write, tenant).await
    }

    /// The pool for single-statement writes (autocommit) and migrations.
    pub fn writer(&self) -> &AnyPool {
        &self.write
    }

    /// How long a request waits for a connection before it fails as unavailable (DB_TIMEOUT).
    pub fn acquire_timeout(&self) -> Duration {
        self.write.options().get_acquire_timeout()
    }

    pub fn reader(&self) -> &AnyPool {
        &self.read
    }

    pub fn pool_stats(&self) -> (u32, usize) {
        (self.read.size(), self.read.num_idle())
    }

    pub async fn close(&self) {
        if let Some(writer) = &self.sqlite_writer {
            writer.close().await;
        }
        self.write.close().await;
        self.read.close().await;
        if let Some(heartbeat) = &self.heartbeat {
            heartbeat.close().await;
        }
    }
}

/// Makes sure the SQLite file can be created: `mode=rwc` and an existing parent directory.
fn sqlite_url(url: &str) -> Result<String, StorageError> {
    let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    let file = path.split('?').next().unwrap_or_default();
    if let Some(dir) = Path::new(file).parent().filter(|d| file != ":memory:" && !d.as_os_str().is_empty()) {
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
