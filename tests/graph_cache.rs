//! The in-memory graph cache answers every read exactly as the database does, notices changes it
//! did not make (on PostgreSQL: another replica's, anyone's), and stays within its budget.

use crate::common;

use common::{Db, TestDb};
use mcp_server::memory::{Entity, Memory, ObservationAddition, ObservationDeletion, PageRequest, Relation, Tenant};
use serde_json::{Value, json};

mod bytes;
mod postgres;

async fn memory(url: &str, cache_entities: &str) -> Memory {
    mcp_server::http::metrics::handle(); // the recorder, before the first count
    common::memory(url, &["--graph-cache-entities", cache_entities]).await
}

/// A series' value so far in this process (nextest runs each test alone).
fn series(name: &str) -> u64 {
    let rendered = mcp_server::http::metrics::handle().render();
    rendered.lines().find_map(|l| l.strip_prefix(&format!("{name} "))).map_or(0, |v| v.parse().unwrap())
}

fn cache_reads(result: &str) -> u64 {
    series(&format!("graph_cache_reads_total{{result=\"{result}\"}}"))
}

/// A small deterministic generator (xorshift), so a failure replays the same way.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    fn pick(&mut self, from: &[&str]) -> String {
        from[self.below(from.len())].to_string()
    }
}

// Few names and words, with case and Unicode variants and LIKE wildcards, so that writes collide,
// delete what exists and searches match in every way the ranking tells apart.
const NAMES: &[&str] = &["Alice", "alice", "Alicia", "Al", "Bob", "Zoë", "ZOË", "straße", "50%_off"];
const TYPES: &[&str] = &["person", "Person", "robot", "org_unit"];
const WORDS: &[&str] = &["likes tea", "Likes TEA", "works at ACME", "lives in Straße 5", "100% sure", "a_b", "bob's"];
// "kes at" and "likes teas" have every trigram in some entities (across two observations, or
// trigrams of one field out of order) but are no substring of any field; "bobrobot" spans fields.
const QUERIES: &[&str] = &[
    "",
    "a",
    "AL",
    "ali",
    "alice",
    "tea",
    "straße",
    "STRASSE",
    "%",
    "_",
    "zoë",
    "person",
    "bob",
    "x",
    "kes at",
    "likes teas",
    "bobrobot",
    "ë",
    "oë",
    "ße 5",
    "0% s",
];

async fn step(memory: &Memory, tenant: &Tenant, op: usize, rng: &mut Rng) -> Value {
    let names = |rng: &mut Rng, n: usize| (0..n).map(|_| rng.pick(NAMES)).collect::<Vec<_>>();
    let words = |rng: &mut Rng, least: usize, spread: usize| {
        let n = least + rng.below(spread);
        (0..n).map(|_| rng.pick(WORDS)).collect::<Vec<_>>()
    };
    let relation =
        |rng: &mut Rng| Relation { from: rng.pick(NAMES), to: rng.pick(NAMES), relation_type: rng.pick(TYPES) };
    let outcome = |r: Result<Value, mcp_server::memory::MemoryError>| r.unwrap_or_else(|e| json!(e.to_string()));
    match op {
        0 => {
            let n = 1 + rng.below(3);
            let entities = (0..n)
                .map(|_| Entity { name: rng.pick(NAMES), entity_type: rng.pick(TYPES), observations: words(rng, 0, 3) })
                .collect();
            outcome(memory.create_entities(tenant, entities).await.map(|r| json!(r)))
        }
        1 => {
            let relations = (0..1 + rng.below(2)).map(|_| relation(rng)).collect();
            outcome(memory.create_relations(tenant, relations).await.map(|r| json!(r)))
        }
        2 => {
            let additions = vec![ObservationAddition { entity_name: rng.pick(NAMES), contents: words(rng, 1, 3) }];
            outcome(memory.add_observations(tenant, additions).await.map(|r| json!(r)))
        }
        3 => outcome(memory.delete_entities(tenant, names(rng, 1)).await.map(|r| json!(r))),
        4 => {
            let deletions = vec![ObservationDeletion { entity_name: rng.pick(NAMES), observations: words(rng, 2, 1) }];
            outcome(memory.delete_observations(tenant, deletions).await.map(|()| json!(null)))
        }
        _ => outcome(memory.delete_relations(tenant, vec![relation(rng)]).await.map(|()| json!(null))),
    }
}

/// Every read the cache serves, as JSON, one element per read: each query unranked and ranked
/// page by page, a few open_nodes, and the whole graph.
async fn reads(memory: &Memory, tenant: &Tenant) -> Value {
    let mut seen = Vec::new();
    for query in QUERIES {
        let all = memory.search_nodes(tenant, query, &PageRequest::default()).await.unwrap();
        seen.push(json!(all.graph));
        let mut page = PageRequest { limit: Some(2), cursor: None };
        loop {
            let got = memory.search_nodes(tenant, query, &page).await.unwrap();
            seen.push(json!([got.graph, got.next_cursor]));
            match got.next_cursor {
                Some(cursor) => page.cursor = Some(cursor),
                None => break,
            }
        }
    }
    for names in [&NAMES[..2], &NAMES[3..6], &["nobody", "Bob", "Bob"][..]] {
        let names = names.iter().map(|n| n.to_string()).collect();
        seen.push(json!(memory.open_nodes(tenant, names).await.unwrap()));
    }
    seen.push(json!(memory.read_graph(tenant, &PageRequest::default()).await.unwrap().graph));
    Value::Array(seen)
}

/// The database's two search plans, the trigram indexes and a scan of the tenant's rows, find the
/// same rows in the same order, ranked and unranked.
async fn plans_agree(memory: &Memory, tenant: &Tenant) {
    let mut read = memory.store().read().await.unwrap();
    for query in QUERIES {
        for ranked in [false, true] {
            let indexed = read.search(tenant.as_str(), query, ranked, false, 0, None).await.unwrap();
            let scanned = read.search(tenant.as_str(), query, ranked, true, 0, None).await.unwrap();
            assert_eq!(indexed, scanned, "{query:?} ranked: {ranked}");
        }
    }
}

/// Writes and reads at random on two tenants, with the cache and without; every read the same.
async fn random_writes_read_the_same_with_and_without_the_cache(db: Db) {
    let Some(cached_db) = TestDb::new(db).await else { return };
    let plain_db = TestDb::new(db).await.unwrap();
    let (cached, plain) = (memory(&cached_db.url, "50000").await, memory(&plain_db.url, "0").await);
    let tenants = [Tenant::new("one"), Tenant::new("two")];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut cached_reads = 0;
    for i in 0..300 {
        let tenant = &tenants[rng.below(2)];
        let op = rng.below(6);
        let mut twin = Rng(rng.0);
        let (a, b) = (step(&cached, tenant, op, &mut rng).await, step(&plain, tenant, op, &mut twin).await);
        assert_eq!(a, b, "step {i}: write {op} on {tenant:?}");
        if i % 10 == 9 {
            for tenant in &tenants {
                let seen = reads(&cached, tenant).await;
                cached_reads += seen.as_array().unwrap().len() as u64;
                assert_eq!(seen, reads(&plain, tenant).await, "reads after step {i}");
                plans_agree(&plain, tenant).await;
            }
        }
    }
    // The comparison means something only if the cache answered.
    match db {
        // It loaded each tenant once and replayed every later write instead of loading again.
        Db::Sqlite => {
            assert_eq!(cache_reads("load"), 2);
            assert_eq!(cache_reads("hit"), cached_reads - 2);
        }
        // Each tenant was loaded at its first read. Only creates and additions are replayed:
        // after another write, three reads went to the database and the fourth loaded the graph
        // again. Every other read was a hit.
        Db::Postgres => {
            let (hits, changing, loads) = (cache_reads("hit"), cache_reads("changing"), cache_reads("load"));
            assert_eq!(hits + changing + loads, cached_reads);
            assert_eq!(changing, 3 * (loads - 2));
            assert!((2..=60).contains(&loads), "{loads} loads");
            assert!(hits > cached_reads * 3 / 4, "{hits} hits of {cached_reads} reads");
        }
    }
    // A cold start loads the graph those 300 writes left (deletions, relations, observation
    // order) and answers the same.
    let loads = cache_reads("load");
    let cold = memory(&cached_db.url, "50000").await;
    for tenant in &tenants {
        assert_eq!(reads(&cold, tenant).await, reads(&plain, tenant).await, "{tenant:?} after a cold load");
    }
    assert_eq!(cache_reads("load"), loads + 2);
}

both_backends!(
    random_writes_read_the_same_with_and_without_the_cache,
    random_writes_read_the_same_with_and_without_the_cache
);

#[tokio::test(flavor = "multi_thread")]
async fn changes_made_elsewhere_are_seen_by_the_next_read() {
    let db = TestDb::new(Db::Sqlite).await.unwrap();
    let (here, elsewhere) = (memory(&db.url, "50000").await, memory(&db.url, "50000").await);
    let tenant = Tenant::default();
    let entity = |name: &str| Entity { name: name.into(), entity_type: "t".into(), observations: vec!["seen".into()] };
    let search = async |memory: &Memory| {
        let page = memory.search_nodes(&tenant, "seen", &PageRequest::default()).await.unwrap();
        page.graph.entities.into_iter().map(|e| e.name).collect::<Vec<_>>()
    };

    here.create_entities(&tenant, vec![entity("a")]).await.unwrap();
    assert_eq!(search(&here).await, ["a"]);
    assert_eq!(search(&elsewhere).await, ["a"]);
    // Another process (here: another pool and cache on the same file) writes.
    elsewhere.create_entities(&tenant, vec![entity("b")]).await.unwrap();
    assert_eq!(search(&here).await, ["a", "b"]);
    here.delete_entities(&tenant, vec!["a".into()]).await.unwrap();
    assert_eq!(search(&elsewhere).await, ["b"]);
    // A write that is not the server's at all (the sqlite3 shell, an older release).
    let shell = common::sql(&db.url).await;
    sqlx::query("UPDATE observations SET content = 'gone', content_lc = 'gone'").execute(&shell).await.unwrap();
    assert!(search(&here).await.is_empty());
    assert!(search(&elsewhere).await.is_empty());
    sqlx::query("DELETE FROM entities").execute(&shell).await.unwrap();
    let all = here.read_graph(&tenant, &PageRequest::default()).await.unwrap();
    assert!(all.graph.entities.is_empty());
    // A load at each memory's first read and after each change it did not make: here 4 (first,
    // elsewhere's create, the UPDATE, the DELETE), elsewhere 3 (first, here's delete, the UPDATE).
    assert_eq!(cache_reads("load"), 7);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cache_holds_at_most_its_budget() {
    let db = TestDb::new(Db::Sqlite).await.unwrap();
    let memory = memory(&db.url, "10").await;
    let entities = |prefix: &str, n: usize| {
        (0..n).map(|i| Entity { name: format!("{prefix}{i}"), entity_type: "t".into(), observations: vec![] }).collect()
    };
    let (small, other, large) = (Tenant::new("small"), Tenant::new("other"), Tenant::new("large"));
    memory.create_entities(&small, entities("s", 6)).await.unwrap();
    memory.create_entities(&other, entities("o", 6)).await.unwrap();
    memory.create_entities(&large, entities("l", 11)).await.unwrap();
    let count = async |tenant: &Tenant| {
        memory.search_nodes(tenant, "", &PageRequest::default()).await.unwrap().graph.entities.len()
    };

    // A graph over the budget is read from the database, and correctly.
    assert_eq!(count(&large).await, 11);
    assert_eq!((cache_reads("too_large"), cache_reads("load")), (1, 0));
    // Two graphs of 6 do not fit in 10. A tenant read no more often lately than the copy it would
    // evict is read from the database; read more often, its graph is loaded and the other evicted.
    assert_eq!(count(&small).await, 6);
    assert_eq!(count(&small).await, 6);
    assert_eq!((cache_reads("load"), cache_reads("hit")), (1, 1));
    assert_eq!(count(&other).await, 6);
    assert_eq!(count(&other).await, 6);
    assert_eq!((cache_reads("cold"), cache_reads("load")), (2, 1));
    assert_eq!(count(&other).await, 6);
    assert_eq!((cache_reads("load"), series("graph_cache_entities")), (2, 6), "small was evicted");
    // A write to a tenant the cache dropped is not replayed anywhere; its next read sees it.
    memory.create_entities(&small, entities("t", 1)).await.unwrap();
    assert_eq!(count(&small).await, 7);
    assert_eq!((cache_reads("cold"), cache_reads("load")), (3, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_during_writes_wait_for_the_replay_instead_of_loading_again() {
    let db = TestDb::new(Db::Sqlite).await.unwrap();
    let (memory, plain) = (memory(&db.url, "50000").await, memory(&db.url, "0").await);
    let tenant = Tenant::default();
    let entity = |name: String| Entity { name, entity_type: "t".into(), observations: vec!["w".into()] };
    memory.create_entities(&tenant, vec![entity("seed".into())]).await.unwrap();
    // Entities the searches do not match, enough that a copy survives all 200 writes unread (a
    // copy is dropped after max(entities / 64, 16) unread writes): a reader starved by a busy
    // machine must not make the test about that rule.
    for batch in 0..13 {
        let quiet =
            (0..1000).map(|i| Entity { name: format!("q{batch}-{i}"), entity_type: "q".into(), observations: vec![] });
        memory.create_entities(&tenant, quiet.collect()).await.unwrap();
    }
    memory.search_nodes(&tenant, "w", &PageRequest::default()).await.unwrap();
    let (mut writers, mut readers) = (tokio::task::JoinSet::new(), tokio::task::JoinSet::new());
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for writer in 0..4 {
        let (memory, tenant) = (memory.clone(), tenant.clone());
        writers.spawn(async move {
            for i in 0..50 {
                memory.create_entities(&tenant, vec![entity(format!("w{writer}-{i}"))]).await.unwrap();
            }
        });
    }
    // Reading all along (a copy nobody reads would be dropped after some writes).
    for _ in 0..4 {
        let (memory, tenant, done) = (memory.clone(), tenant.clone(), done.clone());
        readers.spawn(async move {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                memory.search_nodes(&tenant, "w", &PageRequest::default()).await.unwrap();
                // A search of a current copy waits on nothing, so this loop would keep its thread
                // from the writers; separate requests give it up between them.
                tokio::task::yield_now().await;
            }
        });
    }
    writers.join_all().await;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    readers.join_all().await;
    // Reads that saw a write committed but not yet replayed waited for the replay: every write
    // was replayed, and the graph was loaded once, at the first search.
    let drops = |reason: &str| series(&format!("graph_cache_drops_total{{reason=\"{reason}\"}}"));
    assert_eq!((drops("unread"), drops("missed_change")), (0, 0));
    assert_eq!(cache_reads("load"), 1);
    let all = memory.search_nodes(&tenant, "w", &PageRequest::default()).await.unwrap();
    assert_eq!(all, plain.search_nodes(&tenant, "w", &PageRequest::default()).await.unwrap());
    assert_eq!(all.graph.entities.len(), 201);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_copy_nobody_reads_is_dropped_after_some_writes() {
    let db = TestDb::new(Db::Sqlite).await.unwrap();
    let memory = memory(&db.url, "50000").await;
    let tenant = Tenant::default();
    let create = async |name: String| {
        let entity = Entity { name, entity_type: "t".into(), observations: vec![] };
        memory.create_entities(&tenant, vec![entity]).await.unwrap();
    };
    create("first".into()).await;
    memory.open_nodes(&tenant, vec!["first".into()]).await.unwrap();
    for i in 0..16 {
        create(format!("kept-{i}")).await;
    }
    assert_eq!(series("graph_cache_entities"), 17, "16 unread writes are replayed");
    create("one-too-many".into()).await;
    assert_eq!(series("graph_cache_entities"), 0, "the 17th drops the copy");
    let all = memory.read_graph(&tenant, &PageRequest::default()).await.unwrap();
    assert_eq!(all.graph.entities.len(), 18);
    assert_eq!((cache_reads("load"), series("graph_cache_entities")), (2, 18));
}

fn entity(name: &str, observation: &str) -> Entity {
    Entity { name: name.into(), entity_type: "t".into(), observations: vec![observation.into()] }
}

/// A replayed write that takes its own copy over the budget drops that copy (it used to wait on
/// itself for the copy's lock, and every request after it on the cache: the server hung when a
/// tenant's graph grew past GRAPH_CACHE_ENTITIES under load).
async fn a_write_that_takes_its_copy_over_the_budget_drops_it(db: Db) {
    let Some(db) = TestDb::new(db).await else { return };
    let memory = memory(&db.url, "10").await;
    let tenant = Tenant::default();
    let entities = |prefix: &str, n: usize| (0..n).map(|i| entity(&format!("{prefix}{i}"), "t")).collect::<Vec<_>>();
    memory.create_entities(&tenant, entities("a", 8)).await.unwrap();
    let count = async |memory: &Memory| {
        memory.search_nodes(&tenant, "", &PageRequest::default()).await.unwrap().graph.entities.len()
    };
    assert_eq!(count(&memory).await, 8);
    assert_eq!(cache_reads("load"), 1);
    let (writer, tenant_) = (memory.clone(), tenant.clone());
    let write = tokio::spawn(async move { writer.create_entities(&tenant_, entities("b", 3)).await.unwrap() });
    let Ok(written) = tokio::time::timeout(std::time::Duration::from_secs(10), write).await else {
        eprintln!("the write that takes its copy over the budget never finished: the cache waits on itself");
        std::process::abort(); // its worker is blocked for good: the runtime could never shut down
    };
    written.unwrap();
    assert_eq!(series("graph_cache_entities"), 0, "the copy went");
    assert_eq!(count(&memory).await, 11);
    assert_eq!(cache_reads("too_large"), 1);
}

both_backends!(
    a_write_that_takes_its_copy_over_the_budget_drops_it,
    a_write_that_takes_its_copy_over_the_budget_drops_it
);
