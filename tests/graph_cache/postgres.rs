//! The graph cache on PostgreSQL, where writes commit concurrently across replicas: copies that
//! go stale, are replayed only at their exact version, and share version queries.

use super::*;

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
    let psql = common::sql(&db.url).await;
    let sql = async |statement: &str| sqlx::query(statement).execute(&psql).await.unwrap();
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
    let psql = common::sql(&db.url).await;
    let rows =
        async || sqlx::query_scalar::<_, i64>("SELECT count(*) FROM graph_versions").fetch_one(&psql).await.unwrap();
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

/// A graph that cannot be read within one statement's timeout (DB_STATEMENT_TIMEOUT) is searched in
/// the database instead, and not loaded again on the next read: every search of a large tenant
/// failed as unavailable, each after waiting for the load.
#[tokio::test(flavor = "multi_thread")]
async fn a_graph_that_does_not_load_in_time_is_read_from_the_database_postgres() {
    let Some(db) = TestDb::new(Db::Postgres).await else { return };
    let tenant = Tenant::default();
    let seeder = memory(&db.url, "0").await;
    for batch in 0..40 {
        let entities = (0..1000).map(|i| entity(&format!("e{batch}-{i}"), &format!("tag t{batch}x{i}y"))).collect();
        seeder.create_entities(&tenant, entities).await.unwrap();
    }
    // Loading 40,000 entities takes several times the timeout; a one-hit search, a small part of it.
    let reader =
        common::memory(&db.url, &["--graph-cache-bytes", "1000000000", "--db-statement-timeout", "80ms"]).await;
    let (failed, failing) = (cache_reads("load_failed"), cache_reads("failing"));
    for (query, expected) in [("t7x12y", "e7-12"), ("t39x999y", "e39-999")] {
        let page = reader.search_nodes(&tenant, query, &PageRequest::default()).await.unwrap();
        let names: Vec<_> = page.graph.entities.into_iter().map(|e| e.name).collect();
        assert_eq!(names, [expected]);
    }
    assert_eq!((cache_reads("load_failed") - failed, cache_reads("failing") - failing), (1, 1));
}
