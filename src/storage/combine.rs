//! PostgreSQL's creates, combined. Every statement ends in a commit, and a commit waits for the WAL
//! to reach the disk (~1 ms on the benchmark machine). PostgreSQL flushes the commits that arrive
//! together at once, but a request spends most of its time in this server, so few arrive together:
//! two creates per flush at c=16, against five for pgbench's bare inserts, and the database sat
//! idle waiting on its WAL. So a create that finds another in flight queues, and the creates that
//! queued meanwhile go to the database as one statement: alone a create is sent at once, under
//! load creates share a commit.
//!
//! Each call keeps its own outcome. Calls are ordered as they queued, and the first of duplicate
//! names wins across calls as within one; a combined statement that fails is retried call by call,
//! so one call's failure is not another's. A call that is its tenant's only one in the statement
//! gets the tenant's graph versions around it (for the graph cache's replay).

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
};

use serde_json::{Value, json};
use sqlx::{AnyPool, Row};
use tokio::sync::oneshot;

use super::{StorageError, Versions};

/// At most this many calls go in one statement (each has at most MAX_BATCH entities).
const MAX_CALLS: usize = 64;

/// The names created, and the graph versions around the call when it can be replayed.
type Outcome = Result<(HashSet<String>, Option<Versions>), StorageError>;

#[derive(Default)]
pub struct CreateCombiner {
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<Call>,
    /// A flush task runs; it takes the queue until it finds it empty.
    flushing: bool,
}

struct Call {
    tenant: String,
    /// `writes::entities_input`
    entities: Value,
    reply: oneshot::Sender<Outcome>,
}

impl CreateCombiner {
    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Creates the entities whose names the tenant does not have yet, with their observations, all
    /// or nothing; returns the names created.
    pub async fn create(self: &Arc<Self>, pool: &AnyPool, tenant: &str, entities: Value) -> Outcome {
        let (reply, outcome) = oneshot::channel();
        let start = {
            let mut queue = self.queue();
            queue.waiting.push(Call { tenant: tenant.to_string(), entities, reply });
            !std::mem::replace(&mut queue.flushing, true)
        };
        if start {
            // Not on this request's task: a request that is cancelled must not take the others'
            // statement with it.
            tokio::spawn(self.clone().flush(pool.clone()));
        }
        outcome.await.unwrap_or(Err(StorageError::Database(sqlx::Error::PoolClosed)))
    }

    async fn flush(self: Arc<Self>, pool: AnyPool) {
        // Should this task end early (a panic), the queue is not left waiting for it: the calls
        // queued hear their channel close.
        struct Unwinding<'a>(&'a CreateCombiner);
        impl Drop for Unwinding<'_> {
            fn drop(&mut self) {
                let mut queue = self.0.queue();
                queue.flushing = false;
                queue.waiting.clear();
            }
        }
        let unwinding = Unwinding(&self);
        loop {
            let calls: Vec<Call> = {
                let mut queue = self.queue();
                if queue.waiting.is_empty() {
                    // Under the lock: a call queued after this starts the next flush.
                    queue.flushing = false;
                    std::mem::forget(unwinding);
                    return;
                }
                let n = queue.waiting.len().min(MAX_CALLS);
                queue.waiting.drain(..n).collect()
            };
            metrics::counter!("db_create_statements_total").increment(1);
            metrics::counter!("db_create_calls_total").increment(calls.len() as u64);
            let outcomes: Vec<Outcome> = match run(&pool, &calls).await {
                Ok(created) => created.into_iter().map(Ok).collect(),
                Err(error) if calls.len() == 1 => vec![Err(error)],
                // Unreachable for one is unreachable for all, and each trying alone would wait its
                // own DB_TIMEOUT in turn.
                Err(error) if error.is_unavailable() => {
                    let message = error.to_string();
                    let unavailable =
                        || StorageError::Database(sqlx::Error::Io(std::io::Error::other(message.clone())));
                    calls.iter().map(|_| Err(unavailable())).collect()
                }
                // One call's failure must not be the others': each again, alone.
                Err(_) => {
                    let mut outcomes = Vec::with_capacity(calls.len());
                    for call in &calls {
                        outcomes.push(run(&pool, std::slice::from_ref(call)).await.map(|mut c| c.remove(0)));
                    }
                    outcomes
                }
            };
            for (call, outcome) in calls.into_iter().zip(outcomes) {
                let _ = call.reply.send(outcome);
            }
        }
    }
}

/// One statement for all `calls`; returns what each call created, with its versions.
async fn run(pool: &AnyPool, calls: &[Call]) -> Result<Vec<(HashSet<String>, Option<Versions>)>, StorageError> {
    let input: Value = calls.iter().map(|c| json!([c.tenant, c.entities])).collect();
    // MATERIALIZED: inlined, each entity row took its tenant from the whole call's JSON text,
    // parsed again per row (a 1,000-entity create: 820 ms, against 94 ms).
    let rows = sqlx::query(
        "WITH calls AS MATERIALIZED ( \
           SELECT c.ord AS call, c.value->>0 AS tenant, c.value->1 AS entities \
           FROM json_array_elements($1::json) WITH ORDINALITY AS c(value, ord)), \
         input AS ( \
           SELECT DISTINCT ON (tenant, e.value->>0) call, e.ord, tenant, e.value->>0 AS name, \
             e.value->>1 AS entity_type, e.value->>2 AS name_lc, e.value->>3 AS type_lc, e.value->4 AS observations \
           FROM calls CROSS JOIN LATERAL json_array_elements(calls.entities) WITH ORDINALITY AS e(value, ord) \
           ORDER BY tenant, e.value->>0, call, e.ord), \
         created AS ( \
           INSERT INTO entities (tenant, name, entity_type, name_lc, type_lc) \
           SELECT tenant, name, entity_type, name_lc, type_lc FROM input ORDER BY call, ord \
           ON CONFLICT (tenant, name) DO NOTHING RETURNING id, tenant, name), \
         observed AS ( \
           INSERT INTO observations (entity_id, content, content_lc) \
           SELECT c.id, o.value->>0, o.value->>1 FROM input i JOIN created c ON c.tenant = i.tenant AND c.name = i.name \
             CROSS JOIN LATERAL json_array_elements(i.observations) WITH ORDINALITY AS o(value, ord) \
           ORDER BY i.call, i.ord, o.ord \
           RETURNING entity_id), \
         before AS ( \
           SELECT t.tenant, (SELECT COALESCE(sum(v.version), 0) FROM graph_versions v WHERE v.tenant = t.tenant)::int8 AS version \
           FROM (SELECT DISTINCT tenant FROM calls) AS t) \
         SELECT i.call, c.name, NULL::int8, NULL::int8 FROM created c JOIN input i ON i.tenant = c.tenant AND i.name = c.name \
         UNION ALL \
         SELECT NULL::int8, b.tenant, b.version, \
           (EXISTS (SELECT 1 FROM created c WHERE c.tenant = b.tenant))::int::int8 \
           + (EXISTS (SELECT 1 FROM observed o JOIN created c ON c.id = o.entity_id WHERE c.tenant = b.tenant))::int::int8 \
         FROM before b",
    )
    .bind(input.to_string())
    .fetch_all(pool)
    .await?;
    let mut created = vec![HashSet::new(); calls.len()];
    let mut versions = HashMap::new();
    for row in rows {
        match row.try_get::<Option<i64>, _>(0)? {
            Some(call) => {
                if let Some(names) = usize::try_from(call - 1).ok().and_then(|i| created.get_mut(i)) {
                    names.insert(row.try_get(1)?);
                }
            }
            None => {
                let before: i64 = row.try_get(2)?;
                versions.insert(
                    row.try_get::<String, _>(1)?,
                    Versions { before, after: before + row.try_get::<i64, _>(3)? },
                );
            }
        }
    }
    let mut calls_of = HashMap::<&str, usize>::new();
    calls.iter().for_each(|c| *calls_of.entry(c.tenant.as_str()).or_default() += 1);
    Ok((calls.iter().zip(created))
        .map(|(call, names)| {
            // The triggers count a statement's changes per tenant: two calls of one share them.
            let alone = calls_of[call.tenant.as_str()] == 1;
            (names, versions.get(&call.tenant).copied().filter(|_| alone))
        })
        .collect())
}
