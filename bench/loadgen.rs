//! HTTP load generator for `bench/run`: C keep-alive connections send the same MCP `tools/call`
//! for a fixed time and every response is checked (a valid JSON-RPC result for our id, not a tool
//! error, and for searches as many entities as the warm-up search found, which is never none).
//! Prints one JSON object with the figures, and the entities the search finds.
//!
//! `--seed N` instead creates N entities (batches of 500) and exits; every target is seeded the same way.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use client::call;
use serde_json::{Value, json};
use stats::percentile;

#[path = "client.rs"]
mod client;
#[path = "stats.rs"]
mod stats;

struct Args {
    url: String,
    tool: String,
    query: String,
    concurrency: usize,
    duration: Duration,
    seed: usize,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        url: String::new(),
        tool: "search_nodes".into(),
        query: "topic-7".into(),
        concurrency: 1,
        duration: Duration::from_secs(10),
        seed: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => args.url = value()?,
            "--tool" => args.tool = value()?,
            "--query" => args.query = value()?,
            "--concurrency" => args.concurrency = value()?.parse()?,
            "--duration" => args.duration = Duration::from_secs_f64(value()?.parse()?),
            "--seed" => args.seed = value()?.parse()?,
            other => bail!("unknown flag {other}"),
        }
    }
    ensure!(!args.url.is_empty(), "--url is required");
    ensure!(matches!(args.tool.as_str(), "search_nodes" | "create_entities"), "--tool: search_nodes | create_entities");
    Ok(args)
}

/// The graph every target is seeded with: entity i belongs to topic i % 100. The default query,
/// `topic-7`, is a substring of topics 7 and 70–79: it matches 110 entities of 1,000.
pub fn seed_entity(i: usize) -> Value {
    json!({
        "name": format!("entity-{i:06}"),
        "entityType": if i.is_multiple_of(2) { "person" } else { "project" },
        "observations": [format!("works on topic-{} since {}", i % 100, 2000 + i % 25), format!("note {i}")]
    })
}

async fn seed(client: &reqwest::Client, args: &Args) -> Result<()> {
    for (batch, start) in (0..args.seed).step_by(500).enumerate() {
        let entities: Vec<Value> = (start..(start + 500).min(args.seed)).map(seed_entity).collect();
        call(client, &args.url, None, batch as u64 + 1, "create_entities", json!({ "entities": entities })).await?;
    }
    println!("{}", json!({ "seeded": args.seed }));
    Ok(())
}

/// `expected`: the entities the warm-up searches found; every search must find as many (so every
/// target is measured answering the same search).
async fn worker(
    client: reqwest::Client,
    args: std::sync::Arc<Args>,
    worker: usize,
    deadline: Instant,
    expected: Option<usize>,
) -> (Vec<u32>, u64, Option<String>) {
    let (mut latencies, mut errors, mut first_error) = (Vec::new(), 0u64, None);
    let run = std::process::id();
    let mut i = 0u64;
    while Instant::now() < deadline {
        i += 1;
        let arguments = match args.tool.as_str() {
            "search_nodes" => json!({ "query": args.query }),
            _ => {
                json!({ "entities": [{ "name": format!("w-{run}-{worker}-{i}"), "entityType": "bench", "observations": ["created under load"] }] })
            }
        };
        let started = Instant::now();
        let outcome = call(&client, &args.url, None, i, &args.tool, arguments).await.and_then(|found| {
            ensure!(
                args.tool != "search_nodes" || found == expected,
                "search found {found:?} entities, not {expected:?}"
            );
            Ok(())
        });
        match outcome {
            Ok(()) => latencies.push(started.elapsed().as_micros().min(u32::MAX as u128) as u32),
            Err(e) => {
                errors += 1;
                first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    (latencies, errors, first_error)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = std::sync::Arc::new(parse_args()?);
    let client = reqwest::Client::builder().pool_max_idle_per_host(args.concurrency).build()?;
    if args.seed > 0 {
        return seed(&client, &args).await;
    }
    // One warm-up search per connection, so connection setup is not measured.
    let warm_up = (0..args.concurrency as u64)
        .map(|i| call(&client, &args.url, None, i, "search_nodes", json!({ "query": args.query })));
    let mut found = Vec::new();
    for outcome in futures::future::join_all(warm_up).await {
        found.push(outcome.context("warm-up")?);
    }
    let expected = found[0];
    ensure!(expected.unwrap_or(0) > 0, "the warm-up search found nothing ({expected:?} entities)");
    ensure!(found.iter().all(|f| *f == expected), "the warm-up searches found different entities: {found:?}");
    let started = Instant::now();
    let deadline = started + args.duration;
    let tasks: Vec<_> = (0..args.concurrency)
        .map(|w| tokio::spawn(worker(client.clone(), args.clone(), w, deadline, expected)))
        .collect();
    let (mut all, mut errors, mut first_error) = (Vec::new(), 0, None);
    for task in tasks {
        let (latencies, e, first) = task.await?;
        all.extend(latencies);
        errors += e;
        first_error = first_error.or(first);
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    println!(
        "{}",
        json!({
            "tool": args.tool, "concurrency": args.concurrency, "seconds": elapsed, "entities_found": expected,
            "requests": all.len(), "errors": errors, "first_error": first_error,
            "rps": all.len() as f64 / elapsed,
            "p50_ms": percentile(&all, 50.0) / 1000.0, "p99_ms": percentile(&all, 99.0) / 1000.0,
        })
    );
    Ok(())
}
