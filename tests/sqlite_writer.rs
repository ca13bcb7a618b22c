//! SQLite's writes are batches that open and commit their own transaction: a write that fails
//! part-way, or whose request is dropped while it runs, leaves nothing behind, a write that meets
//! another connection's lock waits for it, and the writes after them work.

use crate::common;

use std::time::Duration;

use common::{Db, TestDb};
use mcp_server::memory::{Entity, Memory, PageRequest, Tenant};
use sqlx::Connection;

async fn memory(url: &str) -> Memory {
    common::memory(url, &[]).await
}

fn entity(name: String, observation: &str) -> Entity {
    Entity { name, entity_type: "thing".into(), observations: vec![observation.into()] }
}

async fn names(memory: &Memory, tenant: &Tenant) -> Vec<String> {
    let graph = memory.read_graph(tenant, &PageRequest::default()).await.unwrap().graph;
    graph.entities.into_iter().map(|e| e.name).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_that_fails_part_way_writes_nothing() {
    let db = TestDb::new(Db::Sqlite).await.unwrap();
    let memory = memory(&db.url).await;
    let tenant = Tenant::default();
    // A failure only the last statement of the batch meets: the entities are inserted by then.
    sqlx::query(
        "CREATE TRIGGER refuse AFTER INSERT ON observations WHEN new.content = 'boom' \
         BEGIN SELECT RAISE(ABORT, 'refused'); END",
    )
    .execute(&common::sql(&db.url).await)
    .await
    .unwrap();
    let batch = vec![entity("first".into(), "fine"), entity("second".into(), "boom")];
    let error = memory.create_entities(&tenant, batch).await.unwrap_err();
    assert!(error.to_string().contains("refused"), "{error}");
    assert!(names(&memory, &tenant).await.is_empty(), "a failed write left rows");
    // The transaction was rolled back, so the next write can begin one.
    memory.create_entities(&tenant, vec![entity("third".into(), "fine")]).await.unwrap();
    assert_eq!(names(&memory, &tenant).await, ["third"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_dropped_while_it_runs_is_all_or_nothing() {
    let db = TestDb::new(Db::Sqlite).await.unwrap();
    let memory = memory(&db.url).await;
    let tenant = Tenant::default();
    let mut cut_off = 0;
    for (round, micros) in [200, 500, 1_000, 2_000, 4_000, 8_000].into_iter().enumerate() {
        let batch: Vec<_> = (0..1000).map(|i| entity(format!("r{round}-{i:04}"), "in a big batch")).collect();
        // As a request timeout or a client that hangs up drops a handler's future.
        let dropped = tokio::time::timeout(Duration::from_micros(micros), memory.create_entities(&tenant, batch)).await;
        cut_off += usize::from(dropped.is_err());
        let marker = format!("after-{round}");
        let created = memory.create_entities(&tenant, vec![entity(marker.clone(), "next write")]).await.unwrap();
        assert_eq!(created.len(), 1, "the write after round {round} created nothing");
        let stored = names(&memory, &tenant).await;
        let of_round = stored.iter().filter(|n| n.starts_with(&format!("r{round}-"))).count();
        assert!(of_round == 0 || of_round == 1000, "round {round} left {of_round} of 1000 entities");
        assert!(stored.contains(&marker));
    }
    assert!(cut_off > 0, "no write was dropped while it ran: the test proved nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_waits_while_another_connection_holds_the_lock() {
    let db = TestDb::new(Db::Sqlite).await.unwrap();
    let memory = memory(&db.url).await;
    let tenant = Tenant::default();
    memory.create_entities(&tenant, vec![entity("first".into(), "before the lock")]).await.unwrap();
    // Another process's write transaction, as the sqlite3 shell or an older release would hold.
    let mut other = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE").execute(&mut other).await.unwrap();
    let write = tokio::spawn({
        let memory = memory.clone();
        async move { memory.create_entities(&Tenant::default(), vec![entity("second".into(), "waited")]).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!write.is_finished(), "the write did not wait for the lock: {:?}", write.await);
    sqlx::query("COMMIT").execute(&mut other).await.unwrap();
    let created = write.await.unwrap().unwrap();
    assert_eq!(created.len(), 1);
    assert_eq!(names(&memory, &tenant).await, ["first", "second"]);
}

/// Readers that always overlap, as steady concurrent reads do: each holds a read transaction for a
/// few milliseconds, and the next one has begun before it ends.
fn overlapping_readers(
    path: &std::path::Path,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<std::thread::JoinHandle<u64>> {
    (0..3)
        .map(|i| {
            let (path, stop) = (path.to_path_buf(), stop.clone());
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(2 * i));
                let mut conn = rusqlite::Connection::open(path).unwrap();
                let mut reads = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let tx = conn.transaction().unwrap();
                    let _: i64 = tx.query_row("SELECT count(*) FROM entities", [], |r| r.get(0)).unwrap();
                    std::thread::sleep(Duration::from_millis(6));
                    drop(tx);
                    reads += 1;
                }
                reads
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_wal_stays_bounded_under_writes_while_readers_overlap() {
    let db = TestDb::new(Db::Sqlite).await.unwrap();
    let bound = 1024 * 1024;
    let memory = common::memory(&db.url, &["--sqlite-wal-max-bytes", &bound.to_string()]).await;
    let path = std::path::PathBuf::from(db.url.trim_start_matches("sqlite://"));
    let wal = || std::fs::metadata(format!("{}-wal", path.display())).map_or(0, |m| m.len());
    let tenant = Tenant::default();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers = overlapping_readers(&path, &stop);
    // ~24 MiB of log written in batches of ~0.5 MiB (entities, observations, their search index).
    let (mut largest, observation) = (0, "x".repeat(1500));
    for round in 0..48 {
        let batch: Vec<_> = (0..250).map(|i| entity(format!("e{round:02}-{i:03}"), &observation)).collect();
        memory.create_entities(&tenant, batch).await.unwrap();
        largest = largest.max(wal());
    }
    // The checkpoint a write queues runs on the writer thread after it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = wal();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let reads: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(reads > 48, "the readers hardly read ({reads}): the test proved nothing");
    // The bound plus one write's own log: a batch here writes ~1.5 MiB, one that merges the search
    // index's segments up to ~8 MiB. Unbounded, the log grew by every batch (~70 MiB).
    assert!(largest <= 12 * bound, "the WAL reached {largest} bytes (bound {bound})");
    assert!(after <= bound, "the WAL stayed at {after} bytes after the writes (bound {bound})");
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM entities").fetch_one(&common::sql(&db.url).await).await.unwrap();
    assert_eq!(stored, 48 * 250);
}
