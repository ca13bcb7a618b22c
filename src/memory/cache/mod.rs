//! Tenants' graphs held in memory, so reads skip the database's search: on SQLite most of a
//! search's CPU went to the statement and its thread hop, and on PostgreSQL to the round trip and
//! the query (docs/architecture.md, "Measured choices").
//!
//! A copy is used only while it is current: every read first reads the tenant's graph version
//! (triggers bump it on every change, whoever makes it) and serves from memory only a copy at that
//! version or later. This server's own writes are replayed on the copy after they commit, so a
//! write does not cost the next read a reload; any other change (another process or replica, an
//! older release) shows as a version the copy does not have.
//!
//! - SQLite: every write is replayed, in commit order (`order`), and a read that finds the copy
//!   stale loads the graph again.
//! - PostgreSQL: writes commit concurrently across replicas, in an order no replica sees. A
//!   create or observation addition reports the version it started from (one statement, one
//!   snapshot) and is replayed only onto a copy at exactly that version; the others are not. A
//!   read that finds the copy stale goes to the database until a few reads in a row find one
//!   version, then loads the graph (`settled`): a graph other replicas write between most reads
//!   would otherwise be loaded for nothing.
//!
//! The copies held stay within a budget of memory (estimated, `size`) and of entities, least
//! recently used tenants evicted first; a graph larger than the budget is read from the database.

mod failures;
mod frequency;
mod grams;
mod graph;
mod size;

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, RwLock, RwLockReadGuard,
        atomic::{AtomicU64, Ordering},
    },
};

pub use graph::TenantGraph;

/// The most the cache holds, all tenants together (`GRAPH_CACHE_BYTES`, `GRAPH_CACHE_ENTITIES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub bytes: usize,
    pub entities: usize,
}

impl Budget {
    fn holds(&self, held: Held) -> bool {
        held.bytes <= self.bytes && held.entities <= self.entities
    }
}

/// What to do for a read of a graph no current copy holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Load,
    /// Larger than the whole budget.
    TooLarge,
    /// Read no more often lately than the copy it would evict.
    Cold,
    /// Its last load failed a short while ago (`failures`).
    Failing,
}

/// What copies hold: entities and estimated bytes.
#[derive(Debug, Clone, Copy, Default)]
struct Held {
    entities: usize,
    bytes: usize,
}

impl Held {
    fn of(graph: &TenantGraph) -> Self {
        Held { entities: graph.len(), bytes: graph.bytes() }
    }
}

pub struct GraphCache {
    budget: Budget,
    /// Every write is replayed, in `order` (SQLite).
    ordered: bool,
    tenants: Mutex<Tenants>,
    /// Held by a write from its BEGIN until it is replayed here, and by a load: replays happen in
    /// commit order, a load never races one, and readers that find a copy stale first let the
    /// writes in flight replay (and each other's loads finish) instead of loading it themselves.
    order: tokio::sync::Mutex<()>,
    clock: AtomicU64,
}

pub struct Cached {
    graph: RwLock<TenantGraph>,
    /// The clock reading of the last use, for eviction.
    used: AtomicU64,
    /// Writes replayed since the last read: a copy nobody reads is dropped (see `apply`).
    unread_writes: AtomicU64,
}

/// A copy costs each write two statements and the write order; after this many writes with no
/// read (at least 16, more for larger graphs, whose reload costs more) it is dropped, and the
/// next read loads the graph again.
fn unread_writes_limit(entities: usize) -> u64 {
    (entities as u64 / 64).max(16)
}

/// Unordered, a stale graph is loaded again once this many reads in a row found it at one version:
/// a load costs a few searches, and a graph written between most reads would be loaded for nothing.
const LOAD_AFTER_READS: u32 = 4;

impl Cached {
    fn read(&self) -> RwLockReadGuard<'_, TenantGraph> {
        self.graph.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs a read on the graph (under its read lock, never held across an await).
    pub fn with<T>(&self, read: impl FnOnce(&TenantGraph) -> T) -> T {
        read(&self.read())
    }

    fn held(&self) -> Held {
        Held::of(&self.read())
    }
}

impl GraphCache {
    pub fn new(budget: Budget, ordered: bool) -> Self {
        GraphCache {
            budget,
            ordered,
            tenants: Mutex::default(),
            order: tokio::sync::Mutex::default(),
            clock: AtomicU64::new(0),
        }
    }

    /// Whether to load the tenant's graph of `entities`, which no current copy holds. It must
    /// fit the budget at the least an entity takes (or, found too large before, at its bytes per
    /// entity then: a graph too large is not loaded on every read). A tenant without a copy that
    /// would take another's place must have been read more often lately (`frequency`).
    pub fn admits(&self, tenant: &str, entities: usize) -> Admission {
        let mut tenants = self.tenants();
        tenants.frequency.read(tenant);
        let least = tenants.too_large.get(tenant).copied().unwrap_or(size::LEAST_ENTITY);
        if entities > self.budget.entities || least.saturating_mul(entities) > self.budget.bytes {
            return Admission::TooLarge;
        }
        if tenants.failures.waiting(tenant) {
            return Admission::Failing;
        }
        if tenants.copies.contains_key(tenant) {
            return Admission::Load; // a stale copy, replaced
        }
        let held = tenants.held;
        let per_entity = held.bytes.checked_div(held.entities).unwrap_or(0).max(least);
        let with = Held { entities: held.entities + entities, bytes: held.bytes + per_entity.saturating_mul(entities) };
        let victim = tenants.copies.iter().min_by_key(|(_, c)| c.used.load(Ordering::Relaxed)).map(|(t, _)| t);
        match victim {
            Some(victim)
                if !self.budget.holds(with) && tenants.frequency.of(tenant) <= tenants.frequency.of(victim) =>
            {
                Admission::Cold
            }
            _ => Admission::Load,
        }
    }

    fn tenants(&self) -> std::sync::MutexGuard<'_, Tenants> {
        self.tenants.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub async fn order(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.order.lock().await
    }

    pub fn holds(&self, tenant: &str) -> bool {
        self.tenants().copies.contains_key(tenant)
    }

    /// The tenant's copy if it is at `version` or later (a read of it, for `frequency`).
    pub fn current(&self, tenant: &str, version: i64) -> Option<Arc<Cached>> {
        let cached = {
            let mut tenants = self.tenants();
            let cached = tenants.copies.get(tenant).cloned()?;
            tenants.frequency.read(tenant);
            cached
        };
        if cached.graph.is_poisoned() {
            // A replay panicked half-way: the copy cannot be trusted.
            self.tenants().remove(tenant);
            return None;
        }
        if cached.read().version < version {
            return None;
        }
        cached.used.store(self.clock.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
        cached.unread_writes.store(0, Ordering::Relaxed);
        Some(cached)
    }

    /// Whether to load the tenant's graph, found at `version` with no copy current: ordered or
    /// without a copy at once, else (a stale copy) once `LOAD_AFTER_READS` reads in a row found
    /// that version.
    pub fn settled(&self, tenant: &str, version: i64) -> bool {
        if self.ordered {
            return true;
        }
        let mut tenants = self.tenants();
        if !tenants.copies.contains_key(tenant) {
            return true;
        }
        if tenants.reads_at.len() >= 4096 && !tenants.reads_at.contains_key(tenant) {
            tenants.reads_at.clear(); // tenants that never settled; counting starts again
        }
        let reads = tenants.reads_at.entry(tenant.to_string()).or_insert((version, 0));
        if reads.0 != version {
            *reads = (version, 0);
        }
        reads.1 += 1;
        if reads.1 < LOAD_AFTER_READS {
            return false;
        }
        tenants.reads_at.remove(tenant);
        true
    }

    /// Records that loading the tenant's graph failed; returns how long its reads go to the
    /// database instead.
    pub fn load_failed(&self, tenant: &str) -> std::time::Duration {
        self.tenants().failures.failed(tenant)
    }

    /// Holds a freshly loaded graph unless a copy at least as new is already here; evicts the
    /// least recently used tenants to stay within the budget. A graph over the whole budget is
    /// not held (the read it was loaded for still uses it): `Err` carries it.
    pub fn insert(&self, tenant: &str, graph: TenantGraph) -> Result<Arc<Cached>, Arc<Cached>> {
        let used = AtomicU64::new(self.clock.fetch_add(1, Ordering::Relaxed));
        let size = Held::of(&graph);
        let fresh = Arc::new(Cached { graph: RwLock::new(graph), used, unread_writes: AtomicU64::new(0) });
        let mut tenants = self.tenants();
        tenants.failures.loaded(tenant);
        if !self.budget.holds(size) {
            if tenants.too_large.len() >= 4096 {
                tenants.too_large.clear(); // the sizes are hints; counting starts again
            }
            tenants.too_large.insert(tenant.to_string(), size.bytes.div_ceil(size.entities.max(1)));
            return Err(fresh);
        }
        tenants.too_large.remove(tenant);
        if let Some(held) = tenants.copies.get(tenant)
            && held.read().version >= fresh.read().version
        {
            return Ok(held.clone());
        }
        tenants.insert(tenant, fresh.clone());
        tenants.evict(self.budget);
        Ok(fresh)
    }

    /// Replays a committed write on the tenant's copy when the copy is at the version the write
    /// started from; drops the copy when nobody reads it, or (ordered) when it missed a change.
    /// Unordered, a copy at another version is left as it is: older, it is stale already; newer,
    /// it was loaded after this write or another one committed.
    pub fn apply(&self, tenant: &str, before: i64, after: i64, replay: impl FnOnce(&mut TenantGraph)) {
        if before == after {
            return; // nothing changed
        }
        let mut tenants = self.tenants();
        let Some(cached) = tenants.copies.get(tenant).cloned() else { return };
        let mut graph = match cached.graph.write() {
            Ok(graph) => graph,
            Err(poisoned) => {
                // A replay panicked. Its guard goes first: removing reads the copy's size.
                drop(poisoned);
                tenants.remove(tenant);
                return;
            }
        };
        let unread = cached.unread_writes.fetch_add(1, Ordering::Relaxed) + 1;
        if graph.version != before && !self.ordered {
            metrics::counter!("graph_cache_replays_skipped_total").increment(1);
            return;
        }
        let dropped = if graph.version != before {
            Some("missed_change")
        } else if unread > unread_writes_limit(graph.len()) {
            Some("unread")
        } else {
            None
        };
        match dropped {
            None => {
                let before = Held::of(&graph);
                replay(&mut graph);
                graph.version = after;
                tenants.release(before);
                tenants.add(Held::of(&graph));
                // Before evicting: the copy may be the one to go, and its size is read under its
                // own lock (held here, the worker would wait on itself, and every request on it).
                drop(graph);
            }
            Some(reason) => {
                metrics::counter!("graph_cache_drops_total", "reason" => reason).increment(1);
                drop(graph);
                tenants.remove(tenant);
            }
        }
        tenants.evict(self.budget);
    }
}

/// The copies held, and what they hold together (kept as copies come, go and change: summing
/// them on every write would walk every tenant's copy).
#[derive(Default)]
struct Tenants {
    copies: HashMap<String, Arc<Cached>>,
    held: Held,
    /// Tenants whose graph was over the budget when loaded: its bytes per entity then.
    too_large: HashMap<String, usize>,
    frequency: frequency::Frequency,
    failures: failures::Failures,
    /// Unordered: the version the last reads of a tenant with a stale copy found, and how many
    /// reads in a row found it (`settled`).
    reads_at: HashMap<String, (i64, u32)>,
}

impl Tenants {
    fn insert(&mut self, tenant: &str, cached: Arc<Cached>) {
        self.add(cached.held());
        if let Some(replaced) = self.copies.insert(tenant.to_string(), cached) {
            self.release(replaced.held());
        }
    }

    fn remove(&mut self, tenant: &str) {
        if let Some(removed) = self.copies.remove(tenant) {
            self.release(removed.held());
        }
    }

    fn add(&mut self, added: Held) {
        self.held.entities += added.entities;
        self.held.bytes += added.bytes;
    }

    /// Saturating: a copy poisoned by a panicking replay may have changed size unaccounted.
    fn release(&mut self, gone: Held) {
        self.held.entities = self.held.entities.saturating_sub(gone.entities);
        self.held.bytes = self.held.bytes.saturating_sub(gone.bytes);
    }

    /// Drops least recently used copies until what is held fits the budget, and reports what is
    /// held (`graph_cache_entities`, `graph_cache_bytes`).
    fn evict(&mut self, budget: Budget) {
        while !budget.holds(self.held) {
            let Some(oldest) =
                self.copies.iter().min_by_key(|(_, c)| c.used.load(Ordering::Relaxed)).map(|(t, _)| t.clone())
            else {
                break;
            };
            self.remove(&oldest);
        }
        metrics::gauge!("graph_cache_entities").set(self.held.entities as f64);
        metrics::gauge!("graph_cache_bytes").set(self.held.bytes as f64);
    }
}
