//! Search by the query's words (migration 20261207000002): each entity's text as one document,
//! FTS5 with bm25 on SQLite, a tsvector with ts_rank on PostgreSQL. The indexer writes them as it
//! takes entities from the embedding queue; a query matches any of its words.

use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::{Engine, StorageError, Store, writer::Batch};

type Result<T> = std::result::Result<T, StorageError>;

/// The most words of a query that are looked up.
const MOST_WORDS: usize = 32;

/// The tenant as one token of the FTS5 index, so a match never leaves its tenant.
fn tenant_key(tenant: &str) -> String {
    format!("t{}", hex::encode(&Sha256::digest(tenant.as_bytes())[..12]))
}

/// The query's words: letters and digits, lowercased, each once.
fn words(query: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for word in query.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
        let word = word.to_lowercase();
        if !words.contains(&word) && words.len() < MOST_WORDS {
            words.push(word);
        }
    }
    words
}

const SQLITE_STORE: Batch = &[
    "BEGIN IMMEDIATE",
    "DELETE FROM entity_documents WHERE rowid IN (SELECT value ->> 0 FROM json_each($2))",
    "INSERT INTO entity_documents (rowid, tenant_key, document) \
     SELECT d.value ->> 0, d.value ->> 1, d.value ->> 2 FROM json_each($2) d \
     WHERE EXISTS (SELECT 1 FROM entities WHERE id = d.value ->> 0)",
    "COMMIT",
];

impl Store {
    /// Stores each entity's document (`(entity id, tenant, text)`), replacing the one it had.
    pub async fn store_documents(&self, documents: &[(i64, &str, String)]) -> Result<()> {
        match &self.engine {
            Engine::Sqlite(sqlite) => {
                let input: Vec<_> =
                    documents.iter().map(|(id, tenant, text)| json!([id, tenant_key(tenant), text])).collect();
                sqlite.writer.run(SQLITE_STORE, "", serde_json::Value::from(input).to_string()).await?;
            }
            Engine::Postgres(_) => {
                let input: Vec<_> = documents.iter().map(|(id, tenant, text)| json!([id, tenant, text])).collect();
                sqlx::query(
                    "INSERT INTO entity_documents (entity_id, tenant, document) \
                     SELECT (d ->> 0)::bigint, d ->> 1, to_tsvector('english', d ->> 2) FROM json_array_elements($1::json) d \
                     WHERE EXISTS (SELECT 1 FROM entities WHERE id = (d ->> 0)::bigint) \
                     ON CONFLICT (entity_id) DO UPDATE SET document = excluded.document",
                )
                .bind(serde_json::Value::from(input).to_string())
                .execute(&self.write)
                .await?;
            }
        }
        Ok(())
    }

    /// The tenant's `limit` entities whose documents best match any word of `query`, best first;
    /// only those of `among` when given.
    pub async fn lexical(
        &self,
        tenant: &str,
        query: &str,
        limit: i64,
        among: Option<&[i64]>,
    ) -> Result<Vec<(i64, f32)>> {
        let words = words(query);
        if words.is_empty() || among.is_some_and(<[i64]>::is_empty) {
            return Ok(Vec::new());
        }
        let ids = among.map(|ids| serde_json::Value::from(ids).to_string());
        let rows = match self.backend() {
            super::Backend::Sqlite => {
                let any = words.iter().map(|w| format!("\"{w}\"")).collect::<Vec<_>>().join(" OR ");
                let expression = format!("tenant_key : {} AND document : ({any})", tenant_key(tenant));
                let among = if ids.is_some() { "AND rowid IN (SELECT value FROM json_each($3))" } else { "" };
                let sql = format!(
                    "SELECT rowid, -bm25(entity_documents, 0.0, 1.0) FROM entity_documents \
                     WHERE entity_documents MATCH $1 {among} ORDER BY bm25(entity_documents, 0.0, 1.0), rowid LIMIT $2"
                );
                let statement = sqlx::query(&sql).bind(expression).bind(limit);
                match ids {
                    Some(ids) => statement.bind(ids).fetch_all(self.reader()).await?,
                    None => statement.fetch_all(self.reader()).await?,
                }
            }
            super::Backend::Postgres => {
                let among = match &ids {
                    Some(_) => "AND d.entity_id IN (SELECT value::bigint FROM json_array_elements_text($4::json))",
                    None => "",
                };
                let sql = format!(
                    "SELECT d.entity_id, ts_rank(d.document, q)::float8 AS rank \
                     FROM entity_documents d, to_tsquery('english', $2) q \
                     WHERE d.tenant = $1 AND d.document @@ q {among} ORDER BY rank DESC, d.entity_id LIMIT $3"
                );
                let statement = sqlx::query(&sql).bind(tenant).bind(words.join(" | ")).bind(limit);
                match ids {
                    Some(ids) => statement.bind(ids).fetch_all(self.reader()).await?,
                    None => statement.fetch_all(self.reader()).await?,
                }
            }
        };
        rows.iter()
            .map(|r| Ok((r.try_get::<i64, _>(0)?, r.try_get::<f64, _>(1)? as f32)))
            .collect::<std::result::Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_is_its_distinct_words() {
        assert_eq!(words("What does Alice eat? (eat, \"EAT\") ü-ber"), ["what", "does", "alice", "eat", "ü", "ber"]);
        assert!(words(" --?! ").is_empty());
    }
}
