//! Storage: PostgreSQL or the embedded SQLite file. Reads share one sqlx `Any` code path; each
//! backend has parts of its own (`Engine`): SQLite's one writer, version probe and snapshot
//! reader (`sqlite`); PostgreSQL's combined creates, shared version reads and heartbeat
//! (`postgres`). A store dispatches on its engine once per operation.

mod batch;
mod combine;
mod compat;
mod database;
mod deadline;
mod documents;
mod dump;
mod full;
mod graph;
mod history;
mod loaded;
mod outcome;
mod postgres;
mod probe;
mod read;
mod search;
mod snapshot;
mod sqlite;
mod stamps;
mod time_writes;
mod vectors;
mod version_reads;
mod versions;
mod wal;
mod writer;
pub mod writes;

use std::{
    path::Path,
    sync::{Arc, Once},
    time::Duration,
};

use secrecy::ExposeSecret;
use sqlx::{
    Any, AnyPool, Connection, Transaction,
    any::AnyPoolOptions,
    migrate::{MigrateError, Migration, Migrator},
};

pub use compat::{Compat, HEARTBEAT_INTERVAL, SchemaStatus};
pub use database::{Backend, DatabaseConfig};
pub use dump::{GraphRows, TenantRows, newest_migration, read_sqlite};
pub use graph::{EntityRow, RelationRow};
pub use history::{Among, TimedEntity, TimedGraph, TimedObservation, TimedRelation};
pub use stamps::{EntityStamps, Stamps};
// The queries, for storage's own modules; outside it reads go through `Read`.
use graph::*;
/// PostgreSQL's statements for the stdio benchmark's calls, which its database floor runs through
/// pgbench (bench/dbfloor.rs): not an interface.
#[doc(hidden)]
pub mod statements {
    pub use super::{combine::CREATE, postgres::ADD_OBSERVATIONS, version_reads::VERSION};
}
pub use loaded::{LoadedGraph, StoredEntity};
pub use outcome::{Added, Versions};
pub use read::Read;
pub use vectors::{Pending, StoredVector};
pub use versions::graph_version;
pub use writes::NewEntity;

use deadline::{Abandoned, Deadline};

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
            // (55P03), idle_in_transaction_session_timeout (25P03); a server shutting down or
            // starting (57P01–57P03), which ends a pooled connection; connection failures (08…).
            StorageError::Database(sqlx::Error::Database(e)) => {
                let code = e.code();
                let code = code.as_deref().unwrap_or_default();
                matches!(code, "57014" | "55P03" | "25P03" | "57P01" | "57P02" | "57P03") || code.starts_with("08")
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

/// A store on one of the two backends: what both have, and the parts of its own (`Engine`).
#[derive(Clone)]
pub struct Store {
    /// PostgreSQL: one pool for reads and writes. SQLite: the reader pool.
    read: AnyPool,
    /// PostgreSQL: the same pool. SQLite: one connection, for migrations and tools (writes go
    /// through its writer).
    write: AnyPool,
    engine: Engine,
    /// Longest a call's database work may take: DB_TIMEOUT for a connection, then
    /// DB_STATEMENT_TIMEOUT.
    deadline: Deadline,
    /// The last write failed for lack of space (and none has succeeded since).
    storage_full: Arc<std::sync::atomic::AtomicBool>,
    /// The migrations this binary knows.
    migrations: Arc<[Migration]>,
    /// This process's row in `mcp_replicas` (PostgreSQL).
    replica: Arc<str>,
}

#[derive(Clone)]
enum Engine {
    Sqlite(sqlite::Sqlite),
    Postgres(postgres::Postgres),
}

type WriteTx = Transaction<'static, Any>;

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
        let (read, write, engine, migrations) = match config.backend {
            Backend::Postgres => {
                let (pool, parts) = postgres::connect(config, options, url, abandoned)?;
                (pool.clone(), pool, Engine::Postgres(parts), &POSTGRES_MIGRATIONS)
            }
            Backend::Sqlite => {
                let (read, write, parts) = sqlite::connect(config, options, &sqlite::url(url)?).await?;
                (read, write, Engine::Sqlite(parts), &SQLITE_MIGRATIONS)
            }
        };
        Ok(Self {
            read,
            write,
            engine,
            deadline,
            storage_full: Arc::default(),
            migrations: migrations.iter().cloned().collect(),
            replica: compat::replica_id().into(),
        })
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
        match self.engine {
            Engine::Sqlite(_) => Backend::Sqlite,
            Engine::Postgres(_) => Backend::Postgres,
        }
    }

    /// SQLite in a file: the database file.
    fn sqlite_file(&self) -> Option<&Path> {
        match &self.engine {
            Engine::Sqlite(sqlite) => sqlite.file.as_ref().map(|file| file.path.as_path()),
            Engine::Postgres(_) => None,
        }
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

    /// A PostgreSQL write transaction (SQLite's writes are batches run by its writer).
    async fn begin_write(&self) -> Result<WriteTx, StorageError> {
        Ok(self.write.begin().await?)
    }

    /// Folds the tenant's graph-version rows of PostgreSQL backends that are gone (the server
    /// does it as they pile up); returns how many rows were folded (SQLite has one row a tenant).
    pub async fn fold_version_rows(&self, tenant: &str) -> Result<u64, StorageError> {
        match self.engine {
            Engine::Postgres(_) => postgres::fold_version_rows(&self.write, tenant).await,
            Engine::Sqlite(_) => Ok(0),
        }
    }

    /// How long a request waits for a connection before it fails as unavailable (DB_TIMEOUT).
    pub fn acquire_timeout(&self) -> Duration {
        self.write.options().get_acquire_timeout()
    }

    fn reader(&self) -> &AnyPool {
        &self.read
    }

    pub fn pool_stats(&self) -> (u32, usize) {
        (self.read.size(), self.read.num_idle())
    }

    pub async fn close(&self) {
        match &self.engine {
            Engine::Sqlite(sqlite) => {
                sqlite.writer.close().await;
                self.write.close().await;
                self.read.close().await;
            }
            Engine::Postgres(postgres) => {
                // A database that stopped answering must not hold the exit: a pool's close waits
                // for its connections, and over TLS each one's close for the server's answer.
                let pools = async {
                    postgres.heartbeat.close().await;
                    self.write.close().await;
                };
                if tokio::time::timeout(self.acquire_timeout(), pools).await.is_err() {
                    tracing::warn!("the database did not answer the pools' close; their connections are dropped");
                }
            }
        }
    }
}
