//! The graph cache's memory budget (GRAPH_CACHE_BYTES): copies are evicted to stay within it, a
//! tenant read less often than the copy it would evict is read from the database, and a graph
//! larger than all of it is read from the database, never held.

use super::*;

/// A tenant of `n` entities, each with two observations of `size` bytes of distinct text.
async fn fill(memory: &Memory, tenant: &Tenant, n: usize, size: usize) {
    let text =
        |i: usize, j: usize| (0..size).map(|k| char::from(b'a' + ((i * 7 + j * 13 + k * k) % 26) as u8)).collect();
    let entities = (0..n)
        .map(|i| Entity { name: format!("e{i}"), entity_type: "t".into(), observations: vec![text(i, 0), text(i, 1)] })
        .collect();
    memory.create_entities(tenant, entities).await.unwrap();
}

async fn count(memory: &Memory, tenant: &Tenant) -> usize {
    memory.search_nodes(tenant, "", &PageRequest::default()).await.unwrap().graph.entities.len()
}

#[tokio::test]
async fn copies_stay_within_the_memory_budget() {
    let db = TestDb::new(Db::Sqlite).await.unwrap();
    let roomy = super::memory(&db.url, "1000000").await;
    let (a, b, huge) = (Tenant::new("a"), Tenant::new("b"), Tenant::new("huge"));
    fill(&roomy, &a, 20, 2_000).await;
    fill(&roomy, &b, 20, 2_000).await;
    fill(&roomy, &huge, 40, 8_000).await;
    // What each copy takes, as the cache counts it.
    assert_eq!(count(&roomy, &a).await, 20);
    let size_a = series("graph_cache_bytes");
    assert_eq!(count(&roomy, &b).await, 20);
    let size_b = series("graph_cache_bytes") - size_a;
    assert!(size_a > 80_000 && size_b > 80_000, "two copies of 80 kB of text: {size_a} and {size_b} bytes");
    drop(roomy);

    // Room for one of them, not both.
    let budget = size_a.max(size_b) + size_a.min(size_b) / 2;
    let tight = common::memory(&db.url, &["--graph-cache-bytes", &budget.to_string()]).await;
    let loads = cache_reads("load");
    assert_eq!(count(&tight, &a).await, 20);
    // b, read no more often than a, is read from the database; read again, it takes a's place.
    assert_eq!(count(&tight, &b).await, 20);
    assert_eq!((series("graph_cache_bytes"), cache_reads("cold")), (size_a, 1));
    assert_eq!(count(&tight, &b).await, 20);
    assert_eq!(series("graph_cache_bytes"), size_b, "loading b evicted a");
    assert_eq!(cache_reads("load") - loads, 2);
    assert!(series("graph_cache_bytes") <= budget);

    // A graph over the whole budget is answered (correctly) and never held: from the database while
    // read no more often than b (twice), then loaded once and found too large, then known to be.
    let (cold, too_large) = (cache_reads("cold"), cache_reads("too_large"));
    for _ in 0..5 {
        assert_eq!(count(&tight, &huge).await, 40);
    }
    assert_eq!((cache_reads("cold") - cold, cache_reads("too_large") - too_large), (2, 3));
    assert_eq!(series("graph_cache_bytes"), size_b, "b is still held");
    assert_eq!(cache_reads("load") - loads, 2);
}

#[tokio::test]
async fn a_graph_that_cannot_fit_is_not_loaded_to_find_out() {
    let db = TestDb::new(Db::Sqlite).await.unwrap();
    // 1 kB holds no more than a few entities at the least an entity takes.
    let memory = common::memory(&db.url, &["--graph-cache-bytes", "1000"]).await;
    fill(&memory, &Tenant::default(), 50, 10).await;
    let (too_large, loads) = (cache_reads("too_large"), cache_reads("load"));
    assert_eq!(count(&memory, &Tenant::default()).await, 50);
    assert_eq!((cache_reads("too_large") - too_large, cache_reads("load") - loads), (1, 0));
    assert_eq!(series("graph_cache_bytes"), 0);
}
