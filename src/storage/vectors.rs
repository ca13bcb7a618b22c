//! Search by meaning's tables (migration 20261207000001): the queue of entities to embed, which
//! triggers fill once embeddings are on, and each entity's vector. Any replica's indexer leases a
//! batch from the queue, embeds it outside any transaction, and stores the vectors, removing a
//! queue row only at the revision it embedded (a change meanwhile queues the entity again).

use std::{
    collections::HashMap,
    time::{SystemTime, UNIX_EPOCH},
};

use serde_json::json;
use sqlx::Row;

use super::{Engine, EntityRow, StorageError, Store, writer::Batch};

type Result<T> = std::result::Result<T, StorageError>;

/// An entity leased for embedding: its text as of the lease, and the queue revision it was at.
#[derive(Debug, Clone)]
pub struct Pending {
    pub entity_id: i64,
    pub tenant: String,
    pub rev: i64,
    pub name: String,
    pub entity_type: String,
    pub observations: Vec<String>,
}

/// A stored vector, as the in-memory index reads it.
pub struct StoredVector {
    pub entity_id: i64,
    pub seq: i64,
    pub vector: Vec<f32>,
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Vectors are stored as little-endian f32s.
pub fn vector_bytes(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn vector_of(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// Turning embeddings on again (the state row was deleted meanwhile) re-embeds every entity: while
/// off, changes were not queued, so any stored vector may be stale.
const SQLITE_ENABLE: Batch = &[
    "BEGIN IMMEDIATE",
    "INSERT INTO embedding_queue (entity_id, tenant) SELECT id, tenant FROM entities \
     WHERE NOT EXISTS (SELECT 1 FROM embedding_state) ON CONFLICT (entity_id) DO NOTHING",
    "INSERT INTO embedding_state (id, model) VALUES (1, $2 ->> 'model') \
     ON CONFLICT (id) DO UPDATE SET model = excluded.model",
    "INSERT INTO embedding_queue (entity_id, tenant) SELECT e.id, e.tenant FROM entities e \
     WHERE NOT EXISTS (SELECT 1 FROM entity_vectors v WHERE v.entity_id = e.id AND v.model = $2 ->> 'model') \
     ON CONFLICT (entity_id) DO NOTHING",
    "COMMIT",
];

const SQLITE_LEASE: Batch = &[
    "BEGIN IMMEDIATE",
    "UPDATE embedding_queue SET leased_until = $2 ->> 'until' WHERE entity_id IN \
     (SELECT entity_id FROM embedding_queue WHERE leased_until < $2 ->> 'now' ORDER BY entity_id LIMIT $2 ->> 'n') \
     RETURNING entity_id, tenant, rev",
    "COMMIT",
];

const SQLITE_STORE: Batch = &[
    "BEGIN IMMEDIATE",
    "INSERT INTO entity_vectors (entity_id, tenant, model, vector, seq) \
     SELECT v.value ->> 0, v.value ->> 1, $2 ->> 'model', unhex(v.value ->> 3), \
       (SELECT coalesce(max(seq), 0) FROM entity_vectors) + v.key + 1 \
     FROM json_each($2 -> 'vectors') v WHERE EXISTS (SELECT 1 FROM entities WHERE id = v.value ->> 0) \
     ON CONFLICT (entity_id) DO UPDATE SET model = excluded.model, vector = excluded.vector, seq = excluded.seq",
    "DELETE FROM embedding_queue WHERE entity_id IN \
     (SELECT v.value ->> 0 FROM json_each($2 -> 'vectors') v WHERE embedding_queue.rev = v.value ->> 2)",
    "UPDATE embedding_queue SET leased_until = 0 WHERE entity_id IN \
     (SELECT value ->> 0 FROM json_each($2 -> 'vectors'))",
    "COMMIT",
];

const SQLITE_RELEASE: Batch = &["UPDATE embedding_queue SET leased_until = 0 WHERE entity_id IN \
     (SELECT value FROM json_each($2))"];

/// Any two values: the advisory lock that orders the indexers' commits (migration 20261207000001).
const STORE_LOCK: i64 = 0x6d63_7076;

impl Store {
    /// Turns embeddings on with `model`: from now on every writer queues changed entities, and
    /// every entity without a vector of this model is queued (a first start, or a new model).
    pub async fn enable_embeddings(&self, model: &str) -> Result<()> {
        match &self.engine {
            Engine::Sqlite(sqlite) => {
                sqlite.writer.run(SQLITE_ENABLE, "", json!({ "model": model }).to_string()).await?;
            }
            Engine::Postgres(_) => {
                let mut tx = self.begin_write().await?;
                // The first time, writes in flight would commit rows whose triggers saw no state
                // and that the backfill below does not see yet: they finish first.
                let on: Option<(String,)> =
                    sqlx::query_as("SELECT model FROM embedding_state").fetch_optional(&mut *tx).await?;
                if on.is_none() {
                    sqlx::query("LOCK TABLE entities, observations IN SHARE MODE").execute(&mut *tx).await?;
                    // On again after being off: changes meanwhile were not queued (SQLITE_ENABLE).
                    sqlx::query(
                        "INSERT INTO embedding_queue (entity_id, tenant) SELECT id, tenant FROM entities \
                         ON CONFLICT (entity_id) DO NOTHING",
                    )
                    .execute(&mut *tx)
                    .await?;
                }
                sqlx::query(
                    "INSERT INTO embedding_state (id, model) VALUES (1, $1) \
                     ON CONFLICT (id) DO UPDATE SET model = excluded.model",
                )
                .bind(model)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO embedding_queue (entity_id, tenant) SELECT e.id, e.tenant FROM entities e \
                     WHERE NOT EXISTS (SELECT 1 FROM entity_vectors v WHERE v.entity_id = e.id AND v.model = $1) \
                     ON CONFLICT (entity_id) DO NOTHING",
                )
                .bind(model)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// Leases up to `limit` queued entities for `lease_secs` (rows another indexer holds are
    /// skipped), with their text.
    pub async fn lease_pending(&self, limit: i64, lease_secs: i64) -> Result<Vec<Pending>> {
        let now = now();
        let leased: Vec<(i64, String, i64)> = match &self.engine {
            Engine::Sqlite(sqlite) => {
                let input = json!({ "now": now, "until": now + lease_secs, "n": limit }).to_string();
                let rows = sqlite.writer.run(SQLITE_LEASE, "", input).await?;
                rows.iter().map(|r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).collect::<rusqlite::Result<_>>()?
            }
            Engine::Postgres(_) => sqlx::query(
                "UPDATE embedding_queue q SET leased_until = $2 FROM \
                 (SELECT entity_id FROM embedding_queue WHERE leased_until < $1 ORDER BY entity_id LIMIT $3 \
                  FOR UPDATE SKIP LOCKED) t \
                 WHERE q.entity_id = t.entity_id RETURNING q.entity_id, q.tenant, q.rev",
            )
            .bind(now)
            .bind(now + lease_secs)
            .bind(limit)
            .fetch_all(&self.write)
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect::<std::result::Result<_, sqlx::Error>>()?,
        };
        if leased.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = leased.iter().map(|l| l.0).collect();
        let mut conn = self.reader().acquire().await?;
        let mut texts: HashMap<i64, EntityRow> =
            super::graph::entities_with_ids(&mut conn, None, &ids).await?.into_iter().map(|e| (e.id, e)).collect();
        Ok(leased
            .into_iter()
            .filter_map(|(entity_id, tenant, rev)| {
                let EntityRow { name, entity_type, observations, .. } = texts.remove(&entity_id)?;
                Some(Pending { entity_id, tenant, rev, name, entity_type, observations })
            })
            .collect())
    }

    /// Stores the vectors of leased entities (`(entity, vector)`) made by `model`, and removes
    /// their queue rows unless they changed since the lease; the rest are released for another
    /// round.
    pub async fn store_vectors(&self, model: &str, done: &[(&Pending, Vec<f32>)]) -> Result<()> {
        let vectors: Vec<_> =
            done.iter().map(|(p, v)| json!([p.entity_id, p.tenant, p.rev, hex::encode(vector_bytes(v))])).collect();
        match &self.engine {
            Engine::Sqlite(sqlite) => {
                let input = json!({ "model": model, "vectors": vectors }).to_string();
                sqlite.writer.run(SQLITE_STORE, "", input).await?;
            }
            Engine::Postgres(_) => {
                let input = serde_json::Value::from(vectors).to_string();
                let mut tx = self.begin_write().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(STORE_LOCK).execute(&mut *tx).await?;
                sqlx::query(
                    "INSERT INTO entity_vectors (entity_id, tenant, model, vector, seq) \
                     SELECT (v ->> 0)::bigint, v ->> 1, $2, decode(v ->> 3, 'hex'), nextval('entity_vectors_seq') \
                     FROM json_array_elements($1::json) v WHERE EXISTS (SELECT 1 FROM entities WHERE id = (v ->> 0)::bigint) \
                     ON CONFLICT (entity_id) DO UPDATE SET model = excluded.model, vector = excluded.vector, seq = excluded.seq",
                )
                .bind(&input)
                .bind(model)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "DELETE FROM embedding_queue q USING json_array_elements($1::json) v \
                     WHERE q.entity_id = (v ->> 0)::bigint AND q.rev = (v ->> 2)::bigint",
                )
                .bind(&input)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE embedding_queue SET leased_until = 0 WHERE entity_id IN \
                     (SELECT (v ->> 0)::bigint FROM json_array_elements($1::json) v)",
                )
                .bind(&input)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// Gives leased entities back to the queue at once (the embedder failed).
    pub async fn release_pending(&self, ids: &[i64]) -> Result<()> {
        let list = serde_json::to_string(ids).expect("ids serialize");
        match &self.engine {
            Engine::Sqlite(sqlite) => {
                sqlite.writer.run(SQLITE_RELEASE, "", list).await?;
            }
            Engine::Postgres(_) => {
                sqlx::query(
                    "UPDATE embedding_queue SET leased_until = 0 WHERE entity_id IN \
                     (SELECT value::bigint FROM json_array_elements_text($1::json))",
                )
                .bind(list)
                .execute(&self.write)
                .await?;
            }
        }
        Ok(())
    }

    /// Entities waiting to be embedded, all tenants (the indexer's lag).
    pub async fn pending_count(&self) -> Result<i64> {
        Ok(sqlx::query("SELECT count(*) FROM embedding_queue").fetch_one(self.reader()).await?.try_get(0)?)
    }

    /// Up to `limit` of the tenant's vectors of `model` stored after `after_seq`, in order (a
    /// caller reads a large set in pages: one statement for a million would outlast
    /// DB_STATEMENT_TIMEOUT and hold all of them twice).
    pub async fn vectors_since(
        &self,
        tenant: &str,
        model: &str,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<StoredVector>> {
        let rows = sqlx::query(
            "SELECT entity_id, seq, vector FROM entity_vectors WHERE tenant = $1 AND seq > $2 AND model = $3 \
             ORDER BY seq LIMIT $4",
        )
        .bind(tenant)
        .bind(after_seq)
        .bind(model)
        .bind(limit)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                let bytes: Vec<u8> = r.try_get(2)?;
                Ok(StoredVector { entity_id: r.try_get(0)?, seq: r.try_get(1)?, vector: vector_of(&bytes) })
            })
            .collect::<std::result::Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }
}
