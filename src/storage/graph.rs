//! The knowledge-graph queries. Every statement is scoped by tenant; callers own the transaction.

use std::collections::HashMap;

use sqlx::{Any, AnyConnection, Row, query::Query};

use super::{Backend, Store};

/// Largest `IN (…)` list sent in one statement (well under both databases' parameter limits).
pub(super) const IN_CHUNK: usize = 500;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityRow {
    pub id: i64,
    pub name: String,
    pub entity_type: String,
    pub observations: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationRow {
    pub id: i64,
    pub from: String,
    pub to: String,
    pub relation_type: String,
}

type Result<T> = std::result::Result<T, sqlx::Error>;

pub(super) fn placeholders(first: usize, count: usize) -> String {
    (first..first + count).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

pub(super) fn bind_all<'q>(
    mut query: Query<'q, Any, sqlx::any::AnyArguments<'q>>,
    values: &'q [String],
) -> Query<'q, Any, sqlx::any::AnyArguments<'q>> {
    for value in values {
        query = query.bind(value.as_str());
    }
    query
}

pub async fn entity_id(conn: &mut AnyConnection, tenant: &str, name: &str) -> Result<Option<i64>> {
    sqlx::query_scalar("SELECT id FROM entities WHERE tenant = $1 AND name = $2")
        .bind(tenant)
        .bind(name)
        .fetch_optional(conn)
        .await
}

pub async fn insert_relation(
    conn: &mut AnyConnection,
    tenant: &str,
    from: &str,
    to: &str,
    relation_type: &str,
) -> Result<bool> {
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO relations (tenant, from_name, to_name, relation_type) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (tenant, from_name, to_name, relation_type) DO NOTHING RETURNING id",
    )
    .bind(tenant)
    .bind(from)
    .bind(to)
    .bind(relation_type)
    .fetch_optional(conn)
    .await?;
    Ok(id.is_some())
}

/// Deletes an entity with its observations and relations; returns the entities at the other end
/// of the deleted relations (their resources changed too).
pub async fn delete_entity(conn: &mut AnyConnection, tenant: &str, name: &str) -> Result<Vec<String>> {
    let ends = sqlx::query(
        "DELETE FROM relations WHERE tenant = $1 AND (from_name = $2 OR to_name = $2) RETURNING from_name, to_name",
    )
    .bind(tenant)
    .bind(name)
    .fetch_all(&mut *conn)
    .await?;
    let mut others = Vec::new();
    for row in ends {
        for end in [row.try_get::<String, _>(0)?, row.try_get::<String, _>(1)?] {
            if end != name {
                others.push(end);
            }
        }
    }
    sqlx::query(
        "DELETE FROM observations WHERE entity_id IN (SELECT id FROM entities WHERE tenant = $1 AND name = $2)",
    )
    .bind(tenant)
    .bind(name)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM entities WHERE tenant = $1 AND name = $2").bind(tenant).bind(name).execute(conn).await?;
    Ok(others)
}

pub async fn delete_observation(conn: &mut AnyConnection, entity_id: i64, content: &str) -> Result<()> {
    sqlx::query("DELETE FROM observations WHERE entity_id = $1 AND content = $2")
        .bind(entity_id)
        .bind(content)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn delete_relation(
    conn: &mut AnyConnection,
    tenant: &str,
    from: &str,
    to: &str,
    relation_type: &str,
) -> Result<()> {
    sqlx::query("DELETE FROM relations WHERE tenant = $1 AND from_name = $2 AND to_name = $3 AND relation_type = $4")
        .bind(tenant)
        .bind(from)
        .bind(to)
        .bind(relation_type)
        .execute(conn)
        .await?;
    Ok(())
}

pub(super) fn entity_rows(rows: Vec<sqlx::any::AnyRow>) -> Result<Vec<EntityRow>> {
    rows.into_iter()
        .map(|row| {
            Ok(EntityRow {
                id: row.try_get(0)?,
                name: row.try_get(1)?,
                entity_type: row.try_get(2)?,
                observations: Vec::new(),
            })
        })
        .collect()
}

fn relation_rows(rows: Vec<sqlx::any::AnyRow>) -> Result<Vec<RelationRow>> {
    rows.into_iter()
        .map(|row| {
            Ok(RelationRow {
                id: row.try_get(0)?,
                from: row.try_get(1)?,
                to: row.try_get(2)?,
                relation_type: row.try_get(3)?,
            })
        })
        .collect()
}

/// Fills in each entity's observations, in insertion order.
pub(super) async fn attach_observations(conn: &mut AnyConnection, entities: &mut [EntityRow]) -> Result<()> {
    let index: HashMap<i64, usize> = entities.iter().enumerate().map(|(i, e)| (e.id, i)).collect();
    let ids: Vec<i64> = entities.iter().map(|e| e.id).collect();
    for chunk in ids.chunks(IN_CHUNK) {
        let sql = format!(
            "SELECT entity_id, content FROM observations WHERE entity_id IN ({}) ORDER BY id",
            placeholders(1, chunk.len())
        );
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(*id);
        }
        for row in query.fetch_all(&mut *conn).await? {
            let entity_id: i64 = row.try_get(0)?;
            if let Some(&i) = index.get(&entity_id) {
                entities[i].observations.push(row.try_get(1)?);
            }
        }
    }
    Ok(())
}

/// Entities after `after_id` in insertion order, at most `limit` of them (all when `None`).
pub async fn entities_page(
    conn: &mut AnyConnection,
    tenant: &str,
    after_id: i64,
    limit: Option<i64>,
) -> Result<Vec<EntityRow>> {
    let rows =
        sqlx::query("SELECT id, name, entity_type FROM entities WHERE tenant = $1 AND id > $2 ORDER BY id LIMIT $3")
            .bind(tenant)
            .bind(after_id)
            .bind(limit.unwrap_or(i64::MAX))
            .fetch_all(&mut *conn)
            .await?;
    let mut entities = entity_rows(rows)?;
    if let (Some(first), Some(last)) = (entities.first().map(|e| e.id), entities.last().map(|e| e.id)) {
        // One range query instead of IN lists: the page is a contiguous id range of this tenant.
        let index: HashMap<i64, usize> = entities.iter().enumerate().map(|(i, e)| (e.id, i)).collect();
        let rows = sqlx::query(
            "SELECT o.entity_id, o.content FROM observations o JOIN entities e ON e.id = o.entity_id \
             WHERE e.tenant = $1 AND e.id >= $2 AND e.id <= $3 ORDER BY o.id",
        )
        .bind(tenant)
        .bind(first)
        .bind(last)
        .fetch_all(&mut *conn)
        .await?;
        for row in rows {
            if let Some(&i) = index.get(&row.try_get::<i64, _>(0)?) {
                entities[i].observations.push(row.try_get(1)?);
            }
        }
    }
    Ok(entities)
}

/// A page of a tenant's relations, in id order.
pub(super) const RELATION_ROWS: &str =
    "SELECT id, from_name, to_name, relation_type FROM relations WHERE tenant = $1 AND id > $2 ORDER BY id LIMIT $3";

pub async fn relations_page(
    conn: &mut AnyConnection,
    tenant: &str,
    after_id: i64,
    limit: Option<i64>,
) -> Result<Vec<RelationRow>> {
    let rows =
        sqlx::query(RELATION_ROWS).bind(tenant).bind(after_id).bind(limit.unwrap_or(i64::MAX)).fetch_all(conn).await?;
    relation_rows(rows)
}

/// The named entities that exist, in insertion order.
pub async fn entities_named(conn: &mut AnyConnection, tenant: &str, names: &[String]) -> Result<Vec<EntityRow>> {
    let mut entities = Vec::new();
    for chunk in names.chunks(IN_CHUNK) {
        let sql = format!(
            "SELECT id, name, entity_type FROM entities WHERE tenant = $1 AND name IN ({}) ORDER BY id",
            placeholders(2, chunk.len())
        );
        let rows = bind_all(sqlx::query(&sql).bind(tenant), chunk).fetch_all(&mut *conn).await?;
        entities.extend(entity_rows(rows)?);
    }
    entities.sort_by_key(|e| e.id);
    attach_observations(conn, &mut entities).await?;
    Ok(entities)
}

/// The entities among `ids` (those that exist) of `tenant`, or of any tenant when `None` (the
/// embedding indexer's batches span tenants), in the order of `ids`.
pub async fn entities_with_ids(conn: &mut AnyConnection, tenant: Option<&str>, ids: &[i64]) -> Result<Vec<EntityRow>> {
    let mut entities = Vec::new();
    for chunk in ids.chunks(IN_CHUNK) {
        let (scope, first) = if tenant.is_some() { ("tenant = $1 AND", 2) } else { ("", 1) };
        let sql = format!(
            "SELECT id, name, entity_type FROM entities WHERE {scope} id IN ({})",
            placeholders(first, chunk.len())
        );
        let query = tenant.into_iter().fold(sqlx::query(&sql), |q, t| q.bind(t));
        let query = chunk.iter().fold(query, |q, id| q.bind(*id));
        entities.extend(entity_rows(query.fetch_all(&mut *conn).await?)?);
    }
    let order: HashMap<i64, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    entities.sort_by_key(|e| order.get(&e.id).copied().unwrap_or(usize::MAX));
    attach_observations(conn, &mut entities).await?;
    Ok(entities)
}

/// Relations with at least one end among `names`, in insertion order (the reference's rule for
/// search_nodes and open_nodes since 2026: a node's connections are visible from it).
pub async fn relations_touching_any(
    conn: &mut AnyConnection,
    tenant: &str,
    names: &[String],
) -> Result<Vec<RelationRow>> {
    let mut relations = Vec::new();
    for chunk in names.chunks(IN_CHUNK) {
        let list = placeholders(2, chunk.len());
        let sql = format!(
            "SELECT id, from_name, to_name, relation_type FROM relations \
             WHERE tenant = $1 AND (from_name IN ({list}) OR to_name IN ({list})) ORDER BY id"
        );
        let rows = bind_all(sqlx::query(&sql).bind(tenant), chunk).fetch_all(&mut *conn).await?;
        relations.extend(relation_rows(rows)?);
    }
    relations.sort_by_key(|r| r.id);
    relations.dedup_by_key(|r| r.id);
    Ok(relations)
}

impl Store {
    /// A read transaction: one consistent snapshot for the several statements of a read.
    pub(super) async fn begin_read(&self) -> std::result::Result<super::WriteTx, super::StorageError> {
        let tx = match self.backend() {
            Backend::Postgres => self.read.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY").await?,
            Backend::Sqlite => self.read.begin().await?,
        };
        Ok(tx)
    }
}

/// Relations with `name` at either end, in insertion order.
pub async fn relations_touching(conn: &mut AnyConnection, tenant: &str, name: &str) -> Result<Vec<RelationRow>> {
    let rows = sqlx::query(
        "SELECT id, from_name, to_name, relation_type FROM relations \
         WHERE tenant = $1 AND (from_name = $2 OR to_name = $2) ORDER BY id",
    )
    .bind(tenant)
    .bind(name)
    .fetch_all(conn)
    .await?;
    relation_rows(rows)
}
