//! The soak's load (bench/soak.sh): C keep-alive connections each repeat create_entities (one new
//! entity), search_nodes for the tag of one of its own entities (which must find exactly it),
//! add_observations to one of them, and the search again, for a fixed time; the graph grows all
//! along. Every `--interval` seconds it prints one JSON line with that window's figures (req/s,
//! p50/p99 of searches and writes, errors), so throughput over time is seen, not just its mean.
//!
//! usage: bench-soak --url URL [--concurrency 16] [--duration 600] [--interval 10]

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use client::call;
use serde_json::{Value, json};
use stats::percentile;

#[path = "client.rs"]
mod client;
#[path = "stats.rs"]
mod stats;

/// One window's samples, taken and reset by the reporter.
#[derive(Default)]
struct Window {
    searches: Vec<u32>,
    writes: Vec<u32>,
    creates: usize,
    errors: u64,
    first_error: Option<String>,
}

fn micros(since: Instant) -> u32 {
    since.elapsed().as_micros().min(u32::MAX as u128) as u32
}

/// A cheap deterministic sequence (xorshift): which of its entities a worker touches.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

async fn worker(client: reqwest::Client, url: Arc<str>, worker: usize, deadline: Instant, window: Arc<Mutex<Window>>) {
    let (mut created, mut rng, mut id) = (0usize, 0x9e37_79b9_7f4a_7c15u64 ^ worker as u64, 0u64);
    let tag = |n: usize| format!("k{worker:02}-{n:07}z");
    while Instant::now() < deadline {
        id += 1;
        let target = if created == 0 { 0 } else { next(&mut rng) as usize % created };
        let (name, arguments, search) = match id % 4 {
            1 => {
                let entity = json!({ "name": format!("soak-{worker:02}-{created:07}"), "entityType": "soak",
                    "observations": [format!("tag {}", tag(created)), format!("works on topic-{}", created % 100)] });
                ("create_entities", json!({ "entities": [entity] }), false)
            }
            3 => {
                let observation = json!({ "entityName": format!("soak-{worker:02}-{target:07}"), "contents": [format!("seen in call {id}")] });
                ("add_observations", json!({ "observations": [observation] }), false)
            }
            _ => ("search_nodes", json!({ "query": tag(target) }), true),
        };
        let started = Instant::now();
        let outcome = call(&client, &url, None, id, name, arguments).await.and_then(|found| {
            ensure!(!search || found == Some(1), "search for {} found {found:?} entities, not 1", tag(target));
            Ok(())
        });
        let mut window = window.lock().expect("window");
        match outcome {
            Ok(()) if search => window.searches.push(micros(started)),
            Ok(()) => {
                window.writes.push(micros(started));
                if name == "create_entities" {
                    created += 1;
                    window.creates += 1;
                }
            }
            Err(e) => {
                window.errors += 1;
                window.first_error.get_or_insert_with(|| format!("{name}: {e:#}"));
            }
        }
    }
}

fn report(window: Window, at: f64, seconds: f64, entities: &mut usize) -> Value {
    let (mut searches, mut writes) = (window.searches, window.writes);
    let requests = searches.len() + writes.len();
    *entities += window.creates;
    searches.sort_unstable();
    writes.sort_unstable();
    let mut all = [searches.as_slice(), writes.as_slice()].concat();
    all.sort_unstable();
    let ms = |sorted: &[u32], p| percentile(sorted, p) / 1000.0;
    json!({
        "t_s": at, "requests": requests, "rps": requests as f64 / seconds, "errors": window.errors,
        "first_error": window.first_error, "entities_created": entities,
        "p50_ms": ms(&all, 50.0), "p99_ms": ms(&all, 99.0),
        "search_p99_ms": ms(&searches, 99.0), "write_p99_ms": ms(&writes, 99.0),
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let (mut url, mut concurrency, mut duration, mut interval) = (String::new(), 16, 600.0, 10.0);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--url" => url = value,
            "--concurrency" => concurrency = value.parse()?,
            "--duration" => duration = value.parse()?,
            "--interval" => interval = value.parse()?,
            other => bail!("unknown flag {other}"),
        }
    }
    ensure!(!url.is_empty(), "--url is required");
    ensure!(interval > 0.0 && duration >= interval, "--interval must be positive and at most --duration");
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build()?;
    let (url, window) = (Arc::<str>::from(url), Arc::new(Mutex::new(Window::default())));
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(duration);
    let mut tasks: Vec<_> = (0..concurrency)
        .map(|w| tokio::spawn(worker(client.clone(), url.clone(), w, deadline, window.clone())))
        .collect();
    let (mut ticks, mut last, mut entities) = (tokio::time::interval(Duration::from_secs_f64(interval)), started, 0);
    ticks.tick().await; // the first tick is immediate
    while last < deadline {
        ticks.tick().await;
        let now = Instant::now().min(deadline);
        if now >= deadline {
            futures::future::join_all(tasks.iter_mut()).await;
        }
        let taken = std::mem::take(&mut *window.lock().expect("window"));
        let line = report(taken, (now - started).as_secs_f64(), (now - last).as_secs_f64(), &mut entities);
        println!("{line}");
        last = now;
    }
    Ok(())
}
