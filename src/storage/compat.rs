//! Schema compatibility across releases (expand/contract). Each migration says in its leading
//! comment whether binaries that do not know it keep working:
//!
//! - `-- compat: additive`: every binary does (a new table, a nullable column, an index);
//! - `-- compat: contract of <V>`: binaries that know migration V (the expand step) do, older
//!   ones do not (the drop after a release stopped using what it drops);
//! - `-- compat: breaking`, or no marker: none does.
//!
//! sqlx's table keeps no such thing and an older binary cannot read a newer file, so `migrate`
//! records each marker in `mcp_schema_compat` before it applies the migration: a binary serves a
//! database whose unknown versions all have rows that let it. Replicas on PostgreSQL heartbeat in
//! `mcp_replicas`, so `migrate` can refuse a migration that would break one still running.

use std::{collections::HashMap, time::Duration};

use sqlx::{
    AnyConnection, Connection, Executor,
    migrate::{Migrate, MigrateError, Migration},
};
use tokio_util::sync::CancellationToken;

use super::{Backend, Engine, StorageError, Store};

/// How often a PostgreSQL replica says it is alive.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// A replica not heard of for three intervals is taken to be gone.
const FRESH: &str = "now() - interval '15 seconds'";

/// How the schema compares with the migrations compiled into this binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaStatus {
    Current,
    /// Migrations the binary has that the database lacks.
    Behind {
        pending: usize,
    },
    /// Newer versions (a newer release migrated it), each marked as sparing this binary: it serves.
    AheadAdditive {
        unknown: Vec<i64>,
    },
    /// Newer versions that break this binary, or that no marker vouches for.
    Incompatible {
        versions: Vec<i64>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compat {
    Additive,
    /// Binaries that know this expand migration keep working.
    ContractOf(i64),
    Breaking,
}

impl Compat {
    /// The marker in the migration's leading comment lines; none is breaking (the safe default).
    pub fn of(sql: &str) -> Compat {
        Self::marker(sql).unwrap_or(Compat::Breaking)
    }

    pub fn marker(sql: &str) -> Option<Compat> {
        let line = sql
            .lines()
            .take_while(|l| l.trim_start().starts_with("--"))
            .find_map(|l| l.trim_start().trim_start_matches('-').trim().strip_prefix("compat:"))?;
        match line.split_whitespace().collect::<Vec<_>>()[..] {
            ["additive"] => Some(Compat::Additive),
            ["breaking"] => Some(Compat::Breaking),
            ["contract", "of", version] => version.parse().ok().map(Compat::ContractOf),
            _ => None,
        }
    }

    fn row(self) -> (&'static str, Option<i64>) {
        match self {
            Compat::Additive => ("additive", None),
            Compat::ContractOf(expand) => ("contract", Some(expand)),
            Compat::Breaking => ("breaking", None),
        }
    }

    fn from_row(compat: &str, expand: Option<i64>) -> Compat {
        match (compat, expand) {
            ("additive", _) => Compat::Additive,
            ("contract", Some(expand)) => Compat::ContractOf(expand),
            _ => Compat::Breaking,
        }
    }

    /// Whether a binary whose newest migration is `newest` keeps working after migration `version`.
    fn spares(self, version: i64, newest: i64) -> bool {
        match self {
            Compat::Additive => true,
            Compat::ContractOf(expand) => newest >= expand,
            Compat::Breaking => newest >= version,
        }
    }
}

impl Store {
    fn newest_known(&self) -> i64 {
        self.migrations.iter().map(|m| m.version).max().unwrap_or(0)
    }

    /// Applies pending migrations. Idempotent; on PostgreSQL an advisory lock makes concurrent
    /// runs (three pods' init containers) wait for each other.
    pub async fn migrate(&self) -> Result<(), StorageError> {
        self.migrate_with(false).await
    }

    /// `migrate`, which without `force` refuses a migration that would break a replica still
    /// running (one heard of within three heartbeats that does not know what it needs).
    pub async fn migrate_with(&self, force: bool) -> Result<(), StorageError> {
        let mut conn = self.write.acquire().await?;
        if self.backend() == Backend::Sqlite {
            return self.migrate_on(&mut conn, force).await;
        }
        // An index build or the wait for another process's migration lock may take longer than a
        // statement may; the connection is closed afterwards, so no call gets it without limits.
        let mut conn = conn.detach();
        conn.execute("SET statement_timeout = 0; SET idle_in_transaction_session_timeout = 0").await?;
        let result = self.migrate_on(&mut conn, force).await;
        let _ = conn.close().await;
        result
    }

    async fn migrate_on(&self, conn: &mut AnyConnection, force: bool) -> Result<(), StorageError> {
        conn.lock().await?;
        let result = self.migrate_locked(conn, force).await;
        let unlocked = conn.unlock().await;
        result?;
        Ok(unlocked?)
    }

    async fn migrate_locked(&self, conn: &mut AnyConnection, force: bool) -> Result<(), StorageError> {
        conn.ensure_migrations_table().await?;
        if let Some(version) = conn.dirty_version().await? {
            return Err(MigrateError::Dirty(version).into());
        }
        // Versions this binary does not know are left alone: they are a newer release's.
        let applied: HashMap<i64, _> =
            conn.list_applied_migrations().await?.into_iter().map(|m| (m.version, m.checksum)).collect();
        let migrations = self.migrations.iter().filter(|m| !m.migration_type.is_down_migration());
        for migration in migrations.clone() {
            match applied.get(&migration.version) {
                Some(checksum) if *checksum != migration.checksum => {
                    return Err(MigrateError::VersionMismatch(migration.version).into());
                }
                Some(_) => continue,
                None => {}
            }
            let compat = Compat::of(&migration.sql);
            if !force {
                self.refuse_if_breaking(conn, migration, compat).await?;
            }
            // Recorded first, so no binary ever sees the version without its marker.
            record(conn, migration.version, compat).await?;
            conn.apply(migration).await?;
        }
        // The table's own migration and those before it were applied before it existed.
        for migration in migrations {
            record(conn, migration.version, Compat::of(&migration.sql)).await?;
        }
        if self.backend() == Backend::Postgres {
            // Rows of replicas killed without a clean shutdown.
            let forget = "DELETE FROM mcp_replicas WHERE last_seen < now() - interval '1 day'";
            match sqlx::query(forget).execute(&mut *conn).await {
                Err(e) if !missing_table(&e, "mcp_replicas") => return Err(e.into()),
                _ => {}
            }
        }
        Ok(())
    }

    async fn refuse_if_breaking(
        &self,
        conn: &mut AnyConnection,
        migration: &Migration,
        compat: Compat,
    ) -> Result<(), StorageError> {
        let needs = match compat {
            _ if self.backend() != Backend::Postgres => return Ok(()),
            Compat::Additive => return Ok(()),
            Compat::ContractOf(expand) => expand,
            Compat::Breaking => migration.version,
        };
        let older = format!("SELECT id FROM mcp_replicas WHERE last_seen > {FRESH} AND newest_known_version < $1");
        let replicas: Vec<String> = match sqlx::query_scalar(&older).bind(needs).fetch_all(&mut *conn).await {
            Ok(ids) => ids,
            Err(e) if missing_table(&e, "mcp_replicas") => vec![],
            Err(e) => return Err(e.into()),
        };
        if replicas.is_empty() {
            return Ok(());
        }
        Err(StorageError::BreakingMigration { version: migration.version, replicas: replicas.join(", ") })
    }

    pub async fn schema_status(&self) -> Result<SchemaStatus, StorageError> {
        let versions = "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version";
        let applied: Vec<i64> = match sqlx::query_scalar(versions).fetch_all(&self.read).await {
            Ok(versions) => versions,
            Err(e) if missing_table(&e, "_sqlx_migrations") => vec![],
            Err(e) => return Err(e.into()),
        };
        let known: Vec<i64> = self.migrations.iter().map(|m| m.version).collect();
        let unknown: Vec<i64> = applied.iter().copied().filter(|v| !known.contains(v)).collect();
        let pending = known.iter().filter(|v| !applied.contains(v)).count();
        if !unknown.is_empty() {
            let rows = "SELECT version, compat, expand FROM mcp_schema_compat";
            let marks: HashMap<i64, Compat> =
                match sqlx::query_as::<_, (i64, String, Option<i64>)>(rows).fetch_all(&self.read).await {
                    Ok(rows) => rows.into_iter().map(|(v, c, e)| (v, Compat::from_row(&c, e))).collect(),
                    Err(e) if missing_table(&e, "mcp_schema_compat") => HashMap::new(),
                    Err(e) => return Err(e.into()),
                };
            let newest = self.newest_known();
            let incompatible: Vec<i64> =
                unknown.iter().copied().filter(|v| !marks.get(v).is_some_and(|c| c.spares(*v, newest))).collect();
            if !incompatible.is_empty() {
                return Ok(SchemaStatus::Incompatible { versions: incompatible });
            }
        }
        Ok(match (pending, unknown.is_empty()) {
            (0, true) => SchemaStatus::Current,
            (0, false) => SchemaStatus::AheadAdditive { unknown },
            (pending, _) => SchemaStatus::Behind { pending },
        })
    }

    /// Fails unless this binary can serve the schema: every migration it knows applied, and any
    /// newer ones marked as sparing it.
    pub async fn require_servable_schema(&self) -> Result<(), StorageError> {
        match self.schema_status().await? {
            SchemaStatus::Current | SchemaStatus::AheadAdditive { .. } => Ok(()),
            SchemaStatus::Behind { pending } => Err(StorageError::UnknownSchema {
                detail: format!("{pending} migration(s) not applied; run `mcp-server migrate` with this version"),
            }),
            SchemaStatus::Incompatible { versions } => Err(StorageError::UnknownSchema {
                detail: format!(
                    "database has newer migration(s) {versions:?} that break this version; run the release that has them"
                ),
            }),
        }
    }

    /// Says every HEARTBEAT_INTERVAL, on PostgreSQL, that this replica runs and which migrations
    /// it knows, until `stop`; then removes its row. A failed beat is logged and counted, never
    /// more: requests do not wait on it.
    pub async fn heartbeat(self, stop: CancellationToken) {
        let Engine::Postgres(postgres) = &self.engine else { return };
        let pool = &postgres.heartbeat;
        let upsert = "INSERT INTO mcp_replicas (id, newest_known_version, last_seen) VALUES ($1, $2, now()) \
                      ON CONFLICT (id) DO UPDATE SET newest_known_version = excluded.newest_known_version, last_seen = now()";
        let mut ticks = tokio::time::interval(HEARTBEAT_INTERVAL);
        let mut failing = false;
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = ticks.tick() => {}
            }
            let beat = sqlx::query(upsert).bind(&*self.replica).bind(self.newest_known()).execute(pool);
            match tokio::time::timeout(HEARTBEAT_INTERVAL, beat).await.map_err(|_| None).and_then(|r| r.map_err(Some)) {
                Ok(_) => failing = false,
                Err(error) => {
                    metrics::counter!("db_heartbeat_failures_total").increment(1);
                    // Once per outage: a schema not migrated yet fails every beat.
                    if !failing {
                        tracing::warn!(error = ?error.map(|e| e.to_string()), "replica heartbeat failed");
                    }
                    failing = true;
                }
            }
        }
        let leave = sqlx::query("DELETE FROM mcp_replicas WHERE id = $1").bind(&*self.replica).execute(pool);
        if let Ok(Err(error)) = tokio::time::timeout(HEARTBEAT_INTERVAL, leave).await {
            tracing::warn!(%error, "replica heartbeat row not removed");
        }
    }
}

async fn record(conn: &mut AnyConnection, version: i64, compat: Compat) -> Result<(), StorageError> {
    let (compat, expand) = compat.row();
    let upsert = "INSERT INTO mcp_schema_compat (version, compat, expand) VALUES ($1, $2, $3) \
                  ON CONFLICT (version) DO UPDATE SET compat = excluded.compat, expand = excluded.expand";
    match sqlx::query(upsert).bind(version).bind(compat).bind(expand).execute(&mut *conn).await {
        Ok(_) => Ok(()),
        // Before the migration that creates it: the versions up to it are known to every binary
        // that reads it, and are recorded once it exists.
        Err(e) if missing_table(&e, "mcp_schema_compat") => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn missing_table(error: &sqlx::Error, table: &str) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.message().contains(table))
}

/// A name for this process in `mcp_replicas`: the pod's (HOSTNAME), its pid, and a random tag for
/// several stores in one process.
pub(super) fn replica_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into());
    format!("{host}/{}/{:04x}", std::process::id(), rand::random::<u16>())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The migrations from before markers existed: their files cannot change (sqlx checks each
    /// applied file's checksum), and every binary that reads markers knows them.
    const UNMARKED: &[i64] =
        &[20261124000001, 20261124000002, 20261125000001, 20261126000001, 20261201000001, 20261202000001];

    #[test]
    fn every_new_migration_has_a_marker() {
        for migrator in [&super::super::SQLITE_MIGRATIONS, &super::super::POSTGRES_MIGRATIONS] {
            for m in migrator.iter() {
                let marker = Compat::marker(&m.sql);
                match UNMARKED.contains(&m.version) {
                    true => assert_eq!(marker, None, "{} {} predates markers", m.version, m.description),
                    false => assert!(
                        marker.is_some(),
                        "migration {} ({}) needs a `-- compat:` line",
                        m.version,
                        m.description
                    ),
                }
                if let Some(Compat::ContractOf(expand)) = marker {
                    assert!(
                        migrator.iter().any(|e| e.version == expand && expand < m.version),
                        "{}: no expand {expand}",
                        m.version
                    );
                }
            }
        }
    }

    #[test]
    fn markers_parse() {
        assert_eq!(Compat::of("-- compat: additive\nCREATE TABLE t (x INT);"), Compat::Additive);
        assert_eq!(Compat::of("-- Why.\n--   compat: contract of 42\nDROP TABLE t;"), Compat::ContractOf(42));
        assert_eq!(Compat::of("-- compat: additve\nDROP TABLE t;"), Compat::Breaking);
        assert_eq!(Compat::of("DROP TABLE t;\n-- compat: additive"), Compat::Breaking);
        assert!(Compat::ContractOf(5).spares(9, 5) && !Compat::ContractOf(5).spares(9, 4));
        assert!(Compat::Breaking.spares(9, 9) && !Compat::Breaking.spares(9, 8));
    }
}
