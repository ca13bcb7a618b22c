//! PostgreSQL's creates, combined. Every statement ends in a commit, and a commit waits for the WAL
//! to reach the disk. PostgreSQL flushes the commits that arrive together at once, but a request
//! spends most of its time in this server, so few arrive together (far fewer than pgbench's bare
//! inserts), and the database sat idle waiting on its WAL. So a create that finds another in flight queues, and the creates that
//! queued meanwhile go to the database as one statement: alone a create is sent at once, under
//! load creates share a commit.
//!
//! Each call keeps its own outcome. Calls are ordered as they queued, and the first of duplicate
//! names wins across calls as within one; a combined statement that fails is retried call by call,
//! so one call's failure is not another's. A call that is its tenant's only one in the statement
//! gets the tenant's graph versions around it (for the graph cache's replay).

use std::{
    collections::{HashMap, HashSet, hash_map::Entry},
    sync::{Arc, Mutex},
};

use serde::{Serialize, Serializer, ser::SerializeSeq};
use serde_json::Value;
use sqlx::{AnyPool, Row};
use tokio::sync::oneshot;

use super::{StorageError, Versions, deadline::Deadline};

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
    pub async fn create(
        self: &Arc<Self>,
        pool: &AnyPool,
        deadline: &Deadline,
        tenant: &str,
        entities: Value,
    ) -> Outcome {
        let (reply, outcome) = oneshot::channel();
        let start = {
            let mut queue = self.queue();
            queue.waiting.push(Call { tenant: tenant.to_string(), entities, reply });
            !std::mem::replace(&mut queue.flushing, true)
        };
        if start {
            // Not on this request's task: a request that is cancelled must not take the others'
            // statement with it.
            tokio::spawn(self.clone().flush(pool.clone(), deadline.clone()));
        }
        outcome.await.unwrap_or(Err(StorageError::Closed))
    }

    async fn flush(self: Arc<Self>, pool: AnyPool, deadline: Deadline) {
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
            let outcomes: Vec<Outcome> = match deadline.run(run(&pool, &calls)).await {
                Ok(created) => created.into_iter().map(Ok).collect(),
                Err(error) if calls.len() == 1 => vec![Err(error)],
                // Unreachable for one is unreachable for all, and each trying alone would wait its
                // own DB_TIMEOUT in turn.
                Err(error) if error.is_unavailable() => calls.iter().map(|_| Err(error.shared())).collect(),
                // One call's failure must not be the others': each again, alone.
                Err(_) => {
                    let mut outcomes = Vec::with_capacity(calls.len());
                    for call in &calls {
                        let alone = deadline.run(run(&pool, std::slice::from_ref(call))).await;
                        outcomes.push(alone.map(|mut c| c.remove(0)));
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

/// The combined create: `$1` is every call's entities, `[[tenant, name, type, name_lc, type_lc,
/// [[content, content_lc], …]], …]`.
///
/// MATERIALIZED: inlined, each entity row took its fields from the whole JSON text, parsed again
/// per row (a large create took several times as long). Ids follow `ord`, so the observations'
/// order by entity id is the calls' order.
pub const CREATE: &str = "WITH input AS MATERIALIZED ( \
           SELECT e.ord, e.value->>0 AS tenant, e.value->>1 AS name, e.value->>2 AS entity_type, \
             e.value->>3 AS name_lc, e.value->>4 AS type_lc, e.value->5 AS observations \
           FROM json_array_elements($1::json) WITH ORDINALITY AS e(value, ord)), \
         created AS ( \
           INSERT INTO entities (tenant, name, entity_type, name_lc, type_lc) \
           SELECT tenant, name, entity_type, name_lc, type_lc FROM input ORDER BY ord \
           ON CONFLICT (tenant, name) DO NOTHING RETURNING id, tenant, name), \
         observed AS ( \
           INSERT INTO observations (entity_id, content, content_lc) \
           SELECT c.id, o.value->>0, o.value->>1 FROM created c JOIN input i ON i.tenant = c.tenant AND i.name = c.name \
             CROSS JOIN LATERAL json_array_elements(i.observations) WITH ORDINALITY AS o(value, ord) \
           ORDER BY c.id, o.ord) \
         SELECT tenant, name, NULL::int8 FROM created \
         UNION ALL SELECT tenant, NULL, sum(version)::int8 FROM graph_versions WHERE tenant IN (SELECT tenant FROM input) GROUP BY tenant";

/// One statement for all `calls`; returns what each call created, with its versions.
///
/// The statement is kept lean, as every part of it is paid on each execution whatever its rows
/// (a Sort node alone sets up its own memory): duplicate names are settled here (the first call
/// wins), each created name is matched to its call here, and the versions' bumps are counted here
/// from what was created, as the triggers count them: cheaper than a statement doing all of it in
/// SQL.
async fn run(pool: &AnyPool, calls: &[Call]) -> Result<Vec<(HashSet<String>, Option<Versions>)>, StorageError> {
    // Who gets each name, and whether its entity brings observations.
    let mut owners = HashMap::<(&str, &str), (usize, bool)>::new();
    let mut input = Vec::new();
    // A tenant none of whose entities went in has no version row read: no versions for its call.
    let mut tenants_in = HashSet::new();
    for (index, call) in calls.iter().enumerate() {
        for entity in call.entities.as_array().into_iter().flatten() {
            // `writes::entities_input`: [name, type, name_lc, type_lc, observations]
            let Some(name) = entity.get(0).and_then(Value::as_str) else { continue };
            if let Entry::Vacant(owner) = owners.entry((&call.tenant, name)) {
                let observed = entity.get(4).and_then(Value::as_array).is_some_and(|o| !o.is_empty());
                owner.insert((index, observed));
                input.push(Flat(&call.tenant, entity));
                tenants_in.insert(call.tenant.as_str());
            }
        }
    }
    let input = serde_json::to_string(&input).map_err(|e| sqlx::Error::Encode(e.into()))?;
    let rows = sqlx::query(CREATE).bind(input).fetch_all(pool).await?;
    let mut created = vec![HashSet::new(); calls.len()];
    // Per tenant: the version its snapshot saw, and whether entities and observations were added.
    let mut seen = HashMap::<String, (i64, bool, bool)>::new();
    for row in rows {
        let tenant: String = row.try_get(0)?;
        match row.try_get::<Option<String>, _>(1)? {
            Some(name) => {
                let Some(&(call, observed)) = owners.get(&(tenant.as_str(), name.as_str())) else { continue };
                let tenant = seen.entry(tenant).or_default();
                (tenant.1, tenant.2) = (true, tenant.2 || observed);
                created[call].insert(name);
            }
            None => seen.entry(tenant).or_default().0 = row.try_get(2)?,
        }
    }
    let mut calls_of = HashMap::<&str, usize>::new();
    calls.iter().for_each(|c| *calls_of.entry(c.tenant.as_str()).or_default() += 1);
    Ok((calls.iter().zip(created))
        .map(|(call, names)| {
            // The triggers count a statement's changes per tenant: two calls of one share them.
            let alone = calls_of[call.tenant.as_str()] == 1 && tenants_in.contains(call.tenant.as_str());
            let (before, entities, observations) = seen.get(&call.tenant).copied().unwrap_or_default();
            let after = before + i64::from(entities) + i64::from(observations);
            (names, alone.then_some(Versions { before, after }))
        })
        .collect())
}

/// One input row: `[tenant, name, type, name_lc, type_lc, observations]`.
struct Flat<'a>(&'a str, &'a Value);

impl Serialize for Flat<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let fields = self.1.as_array().map_or(&[][..], Vec::as_slice);
        let mut row = serializer.serialize_seq(Some(1 + fields.len()))?;
        row.serialize_element(self.0)?;
        fields.iter().try_for_each(|field| row.serialize_element(field))?;
        row.end()
    }
}
