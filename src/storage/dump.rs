//! What backups (`crate::backup`) need of storage: every stored row of one tenant or all, read in
//! one snapshot, and a tenant's whole graph written in one transaction (empty before, or
//! replaced). Rows keep their insertion order (entities and relations by id, each entity's
//! observations by id), which every read of the graph preserves.

use std::{collections::BTreeMap, path::Path};

use futures::TryStreamExt;
use serde_json::{Value, json};
use sqlx::Row;

use super::{
    Backend, Engine, EntityRow, POSTGRES_MIGRATIONS, RelationRow, SQLITE_MIGRATIONS, StorageError, Store, batch,
};

/// One tenant's graph as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantRows {
    pub entities: Vec<EntityRow>,
    pub relations: Vec<RelationRow>,
    pub created: CreatedTimes,
}

/// The rows' creation times (ms), parallel to them. A row without one (past the end, or `None`:
/// a backup from before times, or a row another SQLite writer made) is restored as created then.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreatedTimes {
    pub entities: Vec<Option<i64>>,
    /// Per entity, its observations' times in order.
    pub observations: Vec<Vec<Option<i64>>>,
    pub relations: Vec<Option<i64>>,
}

impl CreatedTimes {
    pub fn entity(&self, i: usize) -> Option<i64> {
        self.entities.get(i).copied().flatten()
    }

    pub fn observation(&self, i: usize, j: usize) -> Option<i64> {
        self.observations.get(i).and_then(|o| o.get(j)).copied().flatten()
    }

    pub fn relation(&self, i: usize) -> Option<i64> {
        self.relations.get(i).copied().flatten()
    }
}

/// The migration that gave rows their creation times: older databases and backups have none.
const TIMES_SCHEMA: i64 = 20261207000003;

/// Every tenant's graph, by tenant.
pub type GraphRows = BTreeMap<String, TenantRows>;

const SCHEMA_VERSION: &str = "SELECT coalesce(max(version), 0) FROM _sqlx_migrations WHERE success";

/// The newest migration this binary has for `backend`: the newest schema it can read.
pub fn newest_migration(backend: Backend) -> i64 {
    let migrator = match backend {
        Backend::Sqlite => &SQLITE_MIGRATIONS,
        Backend::Postgres => &POSTGRES_MIGRATIONS,
    };
    migrator.iter().map(|m| m.version).max().unwrap_or(0)
}

/// The three reads of a database at `schema`, for one tenant or all.
fn statements(tenant: Option<&str>, schema: i64) -> [String; 3] {
    let (entities, joined) = match tenant {
        Some(_) => ("WHERE tenant = $1", "WHERE e.tenant = $1"),
        None => ("", ""),
    };
    let (created, o_created) = match schema >= TIMES_SCHEMA {
        true => ("created_at", "o.created_at"),
        false => ("NULL", "NULL"),
    };
    [
        format!("SELECT tenant, id, name, entity_type, {created} FROM entities {entities} ORDER BY id"),
        format!(
            "SELECT o.entity_id, o.content, {o_created} FROM observations o JOIN entities e ON e.id = o.entity_id \
             {joined} ORDER BY o.id"
        ),
        format!(
            "SELECT tenant, id, from_name, to_name, relation_type, {created} FROM relations {entities} ORDER BY id"
        ),
    ]
}

/// Groups rows read in id order into tenants.
#[derive(Default)]
struct Collector {
    graph: GraphRows,
    /// Entity id → (tenant, index among its entities).
    index: std::collections::HashMap<i64, (String, usize)>,
}

impl Collector {
    fn entity(&mut self, tenant: String, id: i64, name: String, entity_type: String, created: Option<i64>) {
        let rows = self.graph.entry(tenant.clone()).or_default();
        self.index.insert(id, (tenant, rows.entities.len()));
        rows.entities.push(EntityRow { id, name, entity_type, observations: Vec::new() });
        rows.created.entities.push(created);
        rows.created.observations.push(Vec::new());
    }

    fn observation(&mut self, entity_id: i64, content: String, created: Option<i64>) {
        if let Some((tenant, i)) = self.index.get(&entity_id)
            && let Some(rows) = self.graph.get_mut(tenant)
            && let Some(entity) = rows.entities.get_mut(*i)
        {
            entity.observations.push(content);
            rows.created.observations[*i].push(created);
        }
    }

    fn relation(&mut self, tenant: String, relation: RelationRow, created: Option<i64>) {
        let rows = self.graph.entry(tenant).or_default();
        rows.relations.push(relation);
        rows.created.relations.push(created);
    }
}

/// Reads every row of a SQLite database (one of ours, or a backup of one) in one read
/// transaction.
pub fn read_sqlite(conn: &mut rusqlite::Connection, tenant: Option<&str>) -> rusqlite::Result<(i64, GraphRows)> {
    let tx = conn.transaction()?;
    let schema = tx.query_row(SCHEMA_VERSION, [], |row| row.get(0))?;
    let params: Vec<&dyn rusqlite::ToSql> = match &tenant {
        Some(t) => vec![t],
        None => vec![],
    };
    let [entities, observations, relations] = statements(tenant, schema);
    let mut collector = Collector::default();
    {
        let mut statement = tx.prepare(&entities)?;
        let mut rows = statement.query(params.as_slice())?;
        while let Some(row) = rows.next()? {
            collector.entity(row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?);
        }
    }
    {
        let mut statement = tx.prepare(&observations)?;
        let mut rows = statement.query(params.as_slice())?;
        while let Some(row) = rows.next()? {
            collector.observation(row.get(0)?, row.get(1)?, row.get(2)?);
        }
    }
    {
        let mut statement = tx.prepare(&relations)?;
        let mut rows = statement.query(params.as_slice())?;
        while let Some(row) = rows.next()? {
            let relation =
                RelationRow { id: row.get(1)?, from: row.get(2)?, to: row.get(3)?, relation_type: row.get(4)? };
            collector.relation(row.get(0)?, relation, row.get(5)?);
        }
    }
    tx.commit()?;
    Ok((schema, collector.graph))
}

fn bound<'q>(sql: &'q str, tenant: Option<&'q str>) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    let query = sqlx::query(sql);
    match tenant {
        Some(t) => query.bind(t),
        None => query,
    }
}

/// `{"entities": [[name, type, name_lc, type_lc, [[observation, lc, ms], …], ms], …],
/// "relations": [[from, to, type, ms], …]}`, each `ms` a creation time or null.
fn restore_input(rows: &TenantRows) -> Value {
    let times = &rows.created;
    let entities: Vec<Value> = (rows.entities.iter().enumerate())
        .map(|(i, e)| {
            let observations: Vec<_> = (e.observations.iter().enumerate())
                .map(|(j, o)| json!([o, o.to_lowercase(), times.observation(i, j)]))
                .collect();
            let (name_lc, type_lc) = (e.name.to_lowercase(), e.entity_type.to_lowercase());
            json!([e.name, e.entity_type, name_lc, type_lc, observations, times.entity(i)])
        })
        .collect();
    let relations: Vec<Value> = (rows.relations.iter().enumerate())
        .map(|(i, r)| json!([r.from, r.to, r.relation_type, times.relation(i)]))
        .collect();
    json!({ "entities": entities, "relations": relations })
}

const PG_EMPTY: &str = "SELECT (SELECT count(*) FROM (SELECT 1 FROM entities WHERE tenant = $1 LIMIT 1) e) \
     + (SELECT count(*) FROM (SELECT 1 FROM relations WHERE tenant = $1 LIMIT 1) r)";
const PG_RESTORE: [&str; 3] = [
    "INSERT INTO entities (tenant, name, entity_type, name_lc, type_lc, created_at) \
     SELECT $1, e.value->>0, e.value->>1, e.value->>2, e.value->>3, coalesce((e.value->>5)::bigint, time_now_ms()) \
     FROM json_array_elements($2::json->'entities') WITH ORDINALITY AS e(value, ord) ORDER BY e.ord",
    "INSERT INTO observations (entity_id, content, content_lc, created_at) \
     SELECT (SELECT n.id FROM entities n WHERE n.tenant = $1 AND n.name = e.value->>0), o.value->>0, o.value->>1, \
     coalesce((o.value->>2)::bigint, time_now_ms()) \
     FROM json_array_elements($2::json->'entities') WITH ORDINALITY AS e(value, ord) \
     CROSS JOIN LATERAL json_array_elements(e.value->4) WITH ORDINALITY AS o(value, ord) ORDER BY e.ord, o.ord",
    "INSERT INTO relations (tenant, from_name, to_name, relation_type, created_at) \
     SELECT $1, r.value->>0, r.value->>1, r.value->>2, coalesce((r.value->>3)::bigint, time_now_ms()) \
     FROM json_array_elements($2::json->'relations') WITH ORDINALITY AS r(value, ord) ORDER BY r.ord",
];

impl Store {
    /// The newest migration applied to the database.
    pub async fn schema_version(&self) -> Result<i64, StorageError> {
        Ok(sqlx::query_scalar(SCHEMA_VERSION).fetch_one(&self.read).await?)
    }

    /// SQLite: a consistent copy of the database file at `dest`, made while the server serves.
    /// `VACUUM INTO` rather than the online backup API: one statement, inside one read
    /// transaction, so in WAL mode it neither blocks the writer nor restarts under write load (a
    /// stepwise backup restarts whenever another connection writes), and the copy is compacted.
    pub async fn vacuum_into(&self, dest: &Path) -> Result<(), StorageError> {
        let (Some(file), Some(dest)) = (self.sqlite_file().map(Path::to_path_buf), dest.to_str().map(str::to_owned))
        else {
            return Err(StorageError::Unsupported("backup needs a SQLite file and a UTF-8 destination path"));
        };
        let timeout = self.acquire_timeout();
        tokio::task::spawn_blocking(move || {
            let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
            let conn = rusqlite::Connection::open_with_flags(file, flags)?;
            conn.busy_timeout(timeout)?;
            conn.execute("VACUUM INTO ?1", [dest])?;
            Ok::<_, StorageError>(())
        })
        .await
        .map_err(|e| StorageError::Internal(format!("backup thread: {e}")))?
    }

    /// PostgreSQL: every row of `tenant` (all tenants without one) in one `REPEATABLE READ READ
    /// ONLY` transaction, a consistent snapshot while replicas write; and the schema version.
    pub async fn dump_postgres(&self, tenant: Option<&str>) -> Result<(i64, GraphRows), StorageError> {
        let mut tx = self.read.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY").await?;
        sqlx::query("SET LOCAL statement_timeout = 0").execute(&mut *tx).await?;
        sqlx::query("SET LOCAL idle_in_transaction_session_timeout = 0").execute(&mut *tx).await?;
        let schema: i64 = sqlx::query_scalar(SCHEMA_VERSION).fetch_one(&mut *tx).await?;
        let [entities, observations, relations] = statements(tenant, schema);
        let mut collector = Collector::default();
        let sql = entities;
        let mut rows = bound(&sql, tenant).fetch(&mut *tx);
        while let Some(row) = rows.try_next().await? {
            collector.entity(row.try_get(0)?, row.try_get(1)?, row.try_get(2)?, row.try_get(3)?, row.try_get(4)?);
        }
        drop(rows);
        let sql = observations;
        let mut rows = bound(&sql, tenant).fetch(&mut *tx);
        while let Some(row) = rows.try_next().await? {
            collector.observation(row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        }
        drop(rows);
        let sql = relations;
        let mut rows = bound(&sql, tenant).fetch(&mut *tx);
        while let Some(row) = rows.try_next().await? {
            let relation = RelationRow {
                id: row.try_get(1)?,
                from: row.try_get(2)?,
                to: row.try_get(3)?,
                relation_type: row.try_get(4)?,
            };
            collector.relation(row.try_get(0)?, relation, row.try_get(5)?);
        }
        drop(rows);
        tx.commit().await?;
        Ok((schema, collector.graph))
    }

    /// Whether the tenant has no entities and no relations.
    pub async fn tenant_is_empty(&self, tenant: &str) -> Result<bool, StorageError> {
        let held: i64 = sqlx::query_scalar(PG_EMPTY).bind(tenant).fetch_one(&self.read).await?;
        Ok(held == 0)
    }

    /// Writes the tenant's graph in one transaction: into an empty graph (else
    /// `StorageError::NotEmpty` and nothing written), or with `replace` in place of its graph.
    pub async fn restore_tenant(&self, tenant: &str, rows: &TenantRows, replace: bool) -> Result<(), StorageError> {
        let input = restore_input(rows);
        if let Engine::Sqlite(sqlite) = &self.engine {
            return batch::restore(&sqlite.writer, tenant, &input, replace).await;
        }
        let mut tx = self.begin_write().await?;
        sqlx::query("SET LOCAL statement_timeout = 0").execute(&mut *tx).await?;
        if replace {
            sqlx::query("DELETE FROM relations WHERE tenant = $1").bind(tenant).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM entities WHERE tenant = $1").bind(tenant).execute(&mut *tx).await?;
        } else if sqlx::query_scalar::<_, i64>(PG_EMPTY).bind(tenant).fetch_one(&mut *tx).await? != 0 {
            return Err(StorageError::NotEmpty(tenant.to_owned()));
        }
        let input = input.to_string();
        for sql in PG_RESTORE {
            sqlx::query(sql).bind(tenant).bind(input.as_str()).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
