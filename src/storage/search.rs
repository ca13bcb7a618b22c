//! search_nodes' query: case-insensitive substring matching on the lowercased columns, served by
//! trigram indexes (pg_trgm on PostgreSQL, FTS5 trigram on SQLite) and optionally ranked.

use sqlx::{Any, AnyConnection, query::Query};

use super::graph::{EntityRow, attach_observations, entity_rows};
use crate::config::Backend;

/// A statement with positional arguments, numbered as they are added.
#[derive(Default)]
struct Statement {
    args: Vec<Arg>,
}

enum Arg {
    Text(String),
    Int(i64),
}

impl Statement {
    fn arg(&mut self, arg: Arg) -> String {
        self.args.push(arg);
        format!("${}", self.args.len())
    }

    fn bind<'q>(&'q self, sql: &'q str) -> Query<'q, Any, sqlx::any::AnyArguments<'q>> {
        self.args.iter().fold(sqlx::query(sql), |q, arg| match arg {
            Arg::Text(s) => q.bind(s.as_str()),
            Arg::Int(i) => q.bind(*i),
        })
    }
}

/// Escapes LIKE wildcards so a user's `%` or `_` matches itself.
fn like_escape(needle: &str) -> String {
    needle.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// Entities whose name, type or an observation contains `query`, case-insensitively.
///
/// Unranked results keep insertion order (the reference's behaviour); ranked results put exact
/// name matches first, then name prefixes, other name matches, type matches and observation
/// matches, ties in insertion order.
pub async fn search_entities(
    conn: &mut AnyConnection,
    backend: Backend,
    tenant: &str,
    query: &str,
    ranked: bool,
    offset: i64,
    limit: Option<i64>,
) -> Result<Vec<EntityRow>, sqlx::Error> {
    let needle = query.to_lowercase();
    let mut st = Statement::default();
    let tenant = st.arg(Arg::Text(tenant.into()));
    let contains = format!("%{}%", like_escape(&needle));
    // FTS5's trigram index answers substring queries of three characters or more.
    let matches = if backend == Backend::Sqlite && needle.chars().count() >= 3 {
        let phrase = st.arg(Arg::Text(format!("\"{}\"", needle.replace('"', "\"\""))));
        format!(
            "e.tenant = {tenant} AND (e.id IN (SELECT rowid FROM entities_fts WHERE entities_fts MATCH {phrase}) \
             OR e.id IN (SELECT o.entity_id FROM observations o WHERE o.id IN \
               (SELECT rowid FROM observations_fts WHERE observations_fts MATCH {phrase})))"
        )
    } else {
        let like = st.arg(Arg::Text(contains.clone()));
        format!(
            "e.tenant = {tenant} AND (e.name_lc LIKE {like} ESCAPE '\\' OR e.type_lc LIKE {like} ESCAPE '\\' \
             OR EXISTS (SELECT 1 FROM observations o WHERE o.entity_id = e.id AND o.content_lc LIKE {like} ESCAPE '\\'))"
        )
    };
    let order = if ranked {
        let exact = st.arg(Arg::Text(needle.clone()));
        let prefix = st.arg(Arg::Text(format!("{}%", like_escape(&needle))));
        let like = st.arg(Arg::Text(contains));
        format!(
            "CASE WHEN e.name_lc = {exact} THEN 0 WHEN e.name_lc LIKE {prefix} ESCAPE '\\' THEN 1 \
             WHEN e.name_lc LIKE {like} ESCAPE '\\' THEN 2 WHEN e.type_lc LIKE {like} ESCAPE '\\' THEN 3 ELSE 4 END, e.id"
        )
    } else {
        "e.id".to_string()
    };
    let limit = st.arg(Arg::Int(limit.unwrap_or(i64::MAX)));
    let offset = st.arg(Arg::Int(offset));
    let sql = format!(
        "SELECT e.id, e.name, e.entity_type FROM entities e WHERE {matches} ORDER BY {order} LIMIT {limit} OFFSET {offset}"
    );
    let rows = st.bind(&sql).fetch_all(&mut *conn).await?;
    let mut entities = entity_rows(rows)?;
    attach_observations(conn, &mut entities).await?;
    Ok(entities)
}
