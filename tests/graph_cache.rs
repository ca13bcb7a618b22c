//! The in-memory graph cache answers every read exactly as the database does, notices changes it
//! did not make (on PostgreSQL: another replica's, anyone's), and stays within its budget.

mod common;

use common::{Db, TestDb};
use mcp_server::memory::{Entity, Memory, ObservationAddition, ObservationDeletion, PageRequest, Relation, Tenant};
use serde_json::{Value, json};

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

#[tokio::test(flavor = "multi_thread")]
async fn random_writes_read_the_same_with_and_without_the_cache_sqlite() {
    random_writes_read_the_same_with_and_without_the_cache(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn random_writes_read_the_same_with_and_without_the_cache_postgres() {
    random_writes_read_the_same_with_and_without_the_cache(Db::Postgres).await;
}

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
    sqlx::query("UPDATE observations SET content = 'gone', content_lc = 'gone'")
        .execute(here.store().writer())
        .await
        .unwrap();
    assert!(search(&here).await.is_empty());
    assert!(search(&elsewhere).await.is_empty());
    sqlx::query("DELETE FROM entities").execute(here.store().writer()).await.unwrap();
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
    // Two graphs of 6 do not fit in 10: loading one evicts the other.
    assert_eq!(count(&small).await, 6);
    assert_eq!(count(&small).await, 6);
    assert_eq!((cache_reads("load"), cache_reads("hit")), (1, 1));
    assert_eq!(count(&other).await, 6);
    // A write to a tenant the cache dropped is not replayed anywhere; its next read loads it.
    memory.create_entities(&small, entities("t", 1)).await.unwrap();
    assert_eq!(count(&small).await, 7);
    assert_eq!(cache_reads("load"), 3);
    assert_eq!(series("graph_cache_entities"), 7, "the other tenant was evicted");
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

/// How five reads were served, by the cache's counts: (database, loads, hits).
type Served = (u64, u64, u64);
/// No copy: the first read loads the graph.
const FRESH: Served = (0, 1, 4);
/// A stale copy (PostgreSQL): three reads from the database, the fourth loads, the fifth hits.
const STALE: Served = (3, 1, 1);
const CURRENT: Served = (0, 0, 5);

/// Reads `query` on `memory` five times, each expected to find `expected`; returns how the cache
/// served them.
async fn five_reads(memory: &Memory, query: &str, expected: &[&str]) -> Served {
    let counts = || (cache_reads("changing"), cache_reads("load"), cache_reads("hit"));
    let before = counts();
    for read in 0..5 {
        let page = memory.search_nodes(&Tenant::default(), query, &PageRequest::default()).await.unwrap();
        let names: Vec<_> = page.graph.entities.into_iter().map(|e| e.name).collect();
        assert_eq!(names, expected, "read {read}");
    }
    let after = counts();
    (after.0 - before.0, after.1 - before.1, after.2 - before.2)
}

fn entity(name: &str, observation: &str) -> Entity {
    Entity { name: name.into(), entity_type: "t".into(), observations: vec![observation.into()] }
}

#[tokio::test(flavor = "multi_thread")]
async fn changes_made_by_other_replicas_and_by_sql_are_seen_by_the_next_read_postgres() {
    let Some(db) = TestDb::new(Db::Postgres).await else { return };
    // Two replicas: two pools and caches on one database.
    let (here, elsewhere) = (memory(&db.url, "50000").await, memory(&db.url, "50000").await);
    let tenant = Tenant::default();

    here.create_entities(&tenant, vec![entity("a", "seen")]).await.unwrap();
    assert_eq!(five_reads(&here, "seen", &["a"]).await, FRESH);
    assert_eq!(five_reads(&elsewhere, "seen", &["a"]).await, FRESH);
    // A create is replayed on the copy of the replica that made it, not on the other's.
    elsewhere.create_entities(&tenant, vec![entity("b", "seen")]).await.unwrap();
    assert_eq!(five_reads(&elsewhere, "seen", &["a", "b"]).await, CURRENT);
    assert_eq!(five_reads(&here, "seen", &["a", "b"]).await, STALE);
    // So is an addition; a deletion is not replayed anywhere.
    here.add_observations(&tenant, vec![ObservationAddition { entity_name: "b".into(), contents: vec!["x".into()] }])
        .await
        .unwrap();
    assert_eq!(five_reads(&here, "x", &["b"]).await, CURRENT);
    here.delete_entities(&tenant, vec!["a".into()]).await.unwrap();
    assert_eq!(five_reads(&here, "seen", &["b"]).await, STALE);
    assert_eq!(five_reads(&elsewhere, "x", &["b"]).await, STALE);
    // Writes that are not a server's at all (psql, an older release).
    let sql = async |statement: &str| sqlx::query(statement).execute(here.store().writer()).await.unwrap();
    sql("UPDATE observations SET content = 'gone', content_lc = 'gone'").await;
    assert_eq!(five_reads(&here, "seen", &[]).await, STALE);
    assert_eq!(five_reads(&elsewhere, "gone", &["b"]).await, STALE);
    sql("INSERT INTO entities (tenant, name, entity_type, name_lc, type_lc) VALUES ('default', 'c', 't', 'c', 't')")
        .await;
    assert_eq!(five_reads(&here, "", &["b", "c"]).await, STALE);
    sql("TRUNCATE entities CASCADE").await;
    assert_eq!(five_reads(&here, "", &[]).await, STALE);
    assert_eq!(five_reads(&elsewhere, "", &[]).await, STALE);
}

#[tokio::test(flavor = "multi_thread")]
async fn creates_and_additions_are_replayed_and_read_the_same_postgres() {
    let (Some(cached_db), Some(plain_db)) = (TestDb::new(Db::Postgres).await, TestDb::new(Db::Postgres).await) else {
        return;
    };
    let (cached, plain) = (memory(&cached_db.url, "50000").await, memory(&plain_db.url, "0").await);
    let tenant = Tenant::default();
    for memory in [&cached, &plain] {
        let seed = (0..50).map(|i| entity(&format!("e{i}"), &format!("tag-{}", i % 7))).collect();
        memory.create_entities(&tenant, seed).await.unwrap();
    }
    // As the stdio benchmark's mixed calls: a write, a search, each write replayed on the copy.
    for i in 0..40 {
        for memory in [&cached, &plain] {
            if i % 2 == 0 {
                memory.create_entities(&tenant, vec![entity(&format!("n{i}"), "tag-new")]).await.unwrap();
            } else {
                let more = ObservationAddition { entity_name: format!("e{i}"), contents: vec![format!("tag-{i}")] };
                memory.add_observations(&tenant, vec![more]).await.unwrap();
            }
        }
        let query = ["tag-1", "tag-new", "TAG", "e1"][i % 4];
        let (a, b) = (
            cached.search_nodes(&tenant, query, &PageRequest::default()).await.unwrap(),
            plain.search_nodes(&tenant, query, &PageRequest::default()).await.unwrap(),
        );
        assert_eq!(a, b, "search {i}: {query}");
    }
    assert_eq!((cache_reads("load"), cache_reads("hit"), cache_reads("changing")), (1, 39, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_reading_while_another_writes_ends_current_postgres() {
    let Some(db) = TestDb::new(Db::Postgres).await else { return };
    let (writing, reading) = (memory(&db.url, "50000").await, memory(&db.url, "50000").await);
    let tenant = Tenant::default();
    writing.create_entities(&tenant, vec![entity("seed", "w")]).await.unwrap();
    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..4 {
        let (memory, tenant) = (writing.clone(), tenant.clone());
        writers.spawn(async move {
            for i in 0..50 {
                let name = format!("w{writer}-{i}");
                memory.create_entities(&tenant, vec![entity(&name, "w")]).await.unwrap();
                if i % 5 == 0 {
                    let more = ObservationAddition { entity_name: name, contents: vec![format!("w more {i}")] };
                    memory.add_observations(&tenant, vec![more]).await.unwrap();
                }
            }
        });
    }
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = tokio::task::JoinSet::new();
    // Readers on the writing replica too, whose copy the creates and additions are replayed on.
    for memory in [&reading, &reading, &writing] {
        let (memory, tenant, done) = (memory.clone(), tenant.clone(), done.clone());
        readers.spawn(async move {
            let mut last = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let found = memory.search_nodes(&tenant, "w", &PageRequest::default()).await.unwrap();
                // Creates only: a later read never finds fewer.
                assert!(found.graph.entities.len() >= last, "{} after {last}", found.graph.entities.len());
                last = found.graph.entities.len();
            }
        });
    }
    writers.join_all().await;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    readers.join_all().await;
    // Once the writes are done, either replica's copy (once loaded) holds every one of them.
    let plain = memory(&db.url, "0").await;
    let expected = plain.search_nodes(&tenant, "w", &PageRequest::default()).await.unwrap();
    assert_eq!(expected.graph.entities.len(), 201);
    for replica in [&reading, &writing] {
        let hits = cache_reads("hit");
        for _ in 0..5 {
            assert_eq!(replica.search_nodes(&tenant, "w", &PageRequest::default()).await.unwrap(), expected);
        }
        assert!(cache_reads("hit") > hits, "the last reads came from the cache");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn version_rows_of_backends_gone_are_folded_and_the_version_kept_postgres() {
    let Some(db) = TestDb::new(Db::Postgres).await else { return };
    let memory = memory(&db.url, "50000").await;
    let tenant = Tenant::default();
    // Five writers that come and go (each its own backend), and one that stays.
    for i in 0..5 {
        let passing = self::memory(&db.url, "0").await;
        passing.create_entities(&tenant, vec![entity(&format!("gone-{i}"), "v")]).await.unwrap();
        passing.store().close().await;
    }
    memory.create_entities(&tenant, vec![entity("stays", "v")]).await.unwrap();
    let rows = async || {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM graph_versions")
            .fetch_one(memory.store().reader())
            .await
            .unwrap()
    };
    assert_eq!(rows().await, 6);
    let everyone = ["gone-0", "gone-1", "gone-2", "gone-3", "gone-4", "stays"];
    assert_eq!(five_reads(&memory, "v", &everyone).await, FRESH);
    let version = memory.store().graph_version(Tenant::DEFAULT).await.unwrap();
    assert_eq!(version.1, 6, "entities");

    // A backend leaves pg_stat_activity a moment after its connection closes.
    let mut folded = 0;
    for _ in 0..100 {
        folded += memory.store().fold_version_rows(Tenant::DEFAULT).await.unwrap();
        if folded == 5 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(folded, 5);
    assert_eq!(rows().await, 2, "slot 0 and the live backend's row");
    assert_eq!(memory.store().graph_version(Tenant::DEFAULT).await.unwrap(), version);
    // The copy loaded before the fold is still current, and a create after it is replayed: the
    // version the create saw is the folded sum.
    assert_eq!(five_reads(&memory, "v", &everyone).await, CURRENT);
    memory.create_entities(&tenant, vec![entity("after", "v")]).await.unwrap();
    assert_eq!(memory.store().graph_version(Tenant::DEFAULT).await.unwrap(), (version.0 + 2, 7));
    let everyone: Vec<_> = everyone.into_iter().chain(["after"]).collect();
    assert_eq!(five_reads(&memory, "v", &everyone).await, CURRENT);
}

/// Reads of a tenant share its version queries, yet each is answered by a query sent after it
/// arrived: a write acknowledged by one replica is found at once by the next read on another,
/// however many reads there keep a query in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_share_version_queries_and_still_see_every_write_acknowledged_before_postgres() {
    let Some(db) = TestDb::new(Db::Postgres).await else { return };
    let (writing, reading) = (memory(&db.url, "50000").await, memory(&db.url, "50000").await);
    let tenant = Tenant::default();
    writing.create_entities(&tenant, vec![entity("seed", "s")]).await.unwrap();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (memory, tenant, done) = (reading.clone(), tenant.clone(), done.clone());
        readers.spawn(async move {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                memory.search_nodes(&tenant, "seed", &PageRequest::default()).await.unwrap();
            }
        });
    }
    for i in 0..40 {
        let name = format!("probe-{i}");
        writing.create_entities(&tenant, vec![entity(&name, "p")]).await.unwrap();
        let found = reading.search_nodes(&tenant, &name, &PageRequest::default()).await.unwrap();
        let names: Vec<_> = found.graph.entities.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, [name.as_str()], "write {i}, read on the other replica right after");
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    readers.join_all().await;
    let (queries, cached) = (series("db_version_queries_total"), cache_reads("hit") + cache_reads("changing"));
    assert!(queries > 0 && queries < cached / 2, "{queries} version queries for {cached} reads");
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

#[tokio::test(flavor = "multi_thread")]
async fn a_write_that_takes_its_copy_over_the_budget_drops_it_sqlite() {
    a_write_that_takes_its_copy_over_the_budget_drops_it(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_that_takes_its_copy_over_the_budget_drops_it_postgres() {
    a_write_that_takes_its_copy_over_the_budget_drops_it(Db::Postgres).await;
}
