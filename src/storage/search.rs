//! search_nodes' query: case-insensitive substring matching on the lowercased columns, served by
//! trigram indexes (pg_trgm on PostgreSQL, FTS5 trigram on SQLite) and optionally ranked.

use sqlx::{Any, AnyConnection, Row, query::Query};

use super::{Backend, EntityRow, RelationRow, StorageError};

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

/// How to search: ranked (else in insertion order), and by scanning the tenant's rows (a small
/// tenant's; else through the trigram indexes, which hold every tenant's text).
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub ranked: bool,
    pub scan: bool,
}

/// Escapes LIKE wildcards so a user's `%` or `_` matches itself.
pub(super) fn like_escape(needle: &str) -> String {
    needle.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// Entities whose name, type or an observation contains `query`, case-insensitively, with their
/// observations, and the relations that touch them.
///
/// Unranked results keep insertion order (the reference's behaviour); ranked results put exact
/// name matches first, then name prefixes, other name matches, type matches and observation
/// matches, ties in insertion order.
///
/// One statement returns the whole answer as JSON: a statement is one consistent snapshot, and
/// each statement is a round trip to the database (for SQLite, to sqlx's connection thread),
/// which was most of a search's time when it took five.
pub async fn search_graph(
    conn: &mut AnyConnection,
    backend: Backend,
    tenant: &str,
    query: &str,
    Plan { ranked, scan }: Plan,
    offset: i64,
    limit: Option<i64>,
) -> Result<(Vec<EntityRow>, Vec<RelationRow>), StorageError> {
    let needle = query.to_lowercase();
    let mut st = Statement::default();
    let tenant = st.arg(Arg::Text(tenant.into()));
    let contains = format!("%{}%", like_escape(&needle));
    // Through the trigram indexes, the matching ids are collected first, each branch from its own
    // index, and the entities fetched by id (filtering the tenant's entities against the match
    // sets scans all of them). A scan, for a small tenant (and on SQLite a query shorter than a
    // trigram), matches the tenant's rows with LIKE.
    let indexed = !scan && (backend == Backend::Postgres || needle.chars().count() >= 3);
    let matches = match (indexed, backend) {
        (true, Backend::Sqlite) => {
            // FTS5's trigram index answers substring queries of three characters or more, for the rows
            // it holds; the newest rows, above the marks, wait to be indexed and are matched with
            // LIKE (a range of at most ~128 rows a table). `+` keeps SQLite from driving the query
            // by the tenant index.
            let phrase = st.arg(Arg::Text(format!("\"{}\"", needle.replace('"', "\"\""))));
            let like = st.arg(Arg::Text(contains.clone()));
            let mark = |table: &str| format!("(SELECT indexed_to FROM search_index_marks WHERE name = '{table}')");
            format!(
                "+e.tenant = {tenant} AND e.id IN (SELECT rowid FROM entities_fts WHERE entities_fts MATCH {phrase} \
                 UNION SELECT o.entity_id FROM observations o WHERE o.id IN \
                   (SELECT rowid FROM observations_fts WHERE observations_fts MATCH {phrase}) \
                 UNION SELECT id FROM entities WHERE id > {} \
                   AND (name_lc LIKE {like} ESCAPE '\\' OR type_lc LIKE {like} ESCAPE '\\') \
                 UNION SELECT entity_id FROM observations WHERE id > {} AND content_lc LIKE {like} ESCAPE '\\')",
                mark("entities"),
                mark("observations"),
            )
        }
        (true, Backend::Postgres) => {
            // A branch per column: with `name_lc LIKE … OR type_lc LIKE …` the planner scanned the
            // table until statistics caught up with a bulk load.
            let like = st.arg(Arg::Text(contains.clone()));
            format!(
                "e.tenant = {tenant} AND e.id IN (SELECT id FROM entities WHERE name_lc LIKE {like} ESCAPE '\\' \
                 UNION SELECT id FROM entities WHERE type_lc LIKE {like} ESCAPE '\\' \
                 UNION SELECT entity_id FROM observations WHERE content_lc LIKE {like} ESCAPE '\\')"
            )
        }
        (false, _) => {
            let like = st.arg(Arg::Text(contains.clone()));
            format!(
                "e.tenant = {tenant} AND (e.name_lc LIKE {like} ESCAPE '\\' OR e.type_lc LIKE {like} ESCAPE '\\' \
                 OR EXISTS (SELECT 1 FROM observations o WHERE o.entity_id = e.id AND o.content_lc LIKE {like} ESCAPE '\\'))"
            )
        }
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
    let hits = format!(
        "WITH hits AS (SELECT e.id, e.name, e.entity_type, row_number() OVER (ORDER BY {order}) AS pos \
         FROM entities e WHERE {matches} ORDER BY {order} LIMIT {limit} OFFSET {offset})"
    );
    let touching = format!(
        "FROM relations r WHERE r.tenant = {tenant} \
         AND (r.from_name IN (SELECT name FROM hits) OR r.to_name IN (SELECT name FROM hits))"
    );
    // Each entity is [pos, id, name, type, [observations…]]; each relation [id, from, to, type].
    let sql = match backend {
        // json() keeps the nested arrays JSON: SQLite drops the JSON subtype across a subquery.
        Backend::Sqlite => format!(
            "{hits} SELECT \
             (SELECT json_group_array(json_array(h.pos, h.id, h.name, h.entity_type, \
                json((SELECT json_group_array(o.content ORDER BY o.id) FROM observations o WHERE o.entity_id = h.id)))) \
              FROM hits h), \
             (SELECT json_group_array(json_array(r.id, r.from_name, r.to_name, r.relation_type)) {touching})"
        ),
        Backend::Postgres => format!(
            "{hits} SELECT \
             COALESCE((SELECT json_agg(json_build_array(h.pos, h.id, h.name, h.entity_type, \
                COALESCE((SELECT json_agg(o.content ORDER BY o.id) FROM observations o WHERE o.entity_id = h.id), '[]'::json)) \
              ORDER BY h.pos) FROM hits h), '[]'::json)::text, \
             COALESCE((SELECT json_agg(json_build_array(r.id, r.from_name, r.to_name, r.relation_type) ORDER BY r.id) \
              {touching}), '[]'::json)::text"
        ),
    };
    let row = st.bind(&sql).fetch_one(&mut *conn).await?;
    let (entities, relations): (String, String) = (row.try_get(0)?, row.try_get(1)?);
    let decode = |e: serde_json::Error| sqlx::Error::Decode(e.into());
    let mut entities: Vec<(i64, i64, String, String, Vec<String>)> = serde_json::from_str(&entities).map_err(decode)?;
    entities.sort_by_key(|e| e.0);
    let mut relations: Vec<(i64, String, String, String)> = serde_json::from_str(&relations).map_err(decode)?;
    relations.sort_by_key(|r| r.0);
    Ok((
        entities
            .into_iter()
            .map(|(_, id, name, entity_type, observations)| EntityRow { id, name, entity_type, observations })
            .collect(),
        relations
            .into_iter()
            .map(|(id, from, to, relation_type)| RelationRow { id, from, to, relation_type })
            .collect(),
    ))
}
