//! Many tenants over HTTP for `bench/tenants.sh`: `--seed` creates T tenants of E entities each
//! (every tenant its own HS256 token, one create_entities call per tenant), then each phase runs
//! `--calls` calls at C connections, every call on a random tenant: `one-hit` (a search that one
//! entity's tag matches: it must find exactly one), `broad` (a search every entity of the tenant
//! matches: the reply's first page) and `write` (a one-entity create). Prints one JSON object per
//! phase.
//!
//! The tokens are signed with `JWT_SECRET` from the environment, as the server's are.
//!
//! usage: bench-tenants --url U --issuer I --audience A [--tenants 10000]
//!        [--entities 100] [--concurrency 8] [--calls 20000] [--seed] [--phases one-hit,broad,write]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
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
    tokens: Vec<String>,
    entities: usize,
    concurrency: usize,
    calls: usize,
    seed: bool,
    phases: Vec<String>,
}

fn parse_args() -> Result<Args> {
    let (mut url, mut issuer, mut audience) = (String::new(), String::new(), String::new());
    let (mut tenants, mut entities, mut concurrency, mut calls, mut seed) = (10_000, 100, 8, 20_000, false);
    let mut phases = "one-hit,broad,write".to_owned();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--seed" {
            seed = true;
            continue;
        }
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--url" => url = value,
            "--issuer" => issuer = value,
            "--audience" => audience = value,
            "--tenants" => tenants = value.parse()?,
            "--entities" => entities = value.parse()?,
            "--concurrency" => concurrency = value.parse()?,
            "--calls" => calls = value.parse()?,
            "--phases" => phases = value,
            other => bail!("unknown flag {other}"),
        }
    }
    ensure!(!url.is_empty(), "--url is required");
    let secret = std::env::var("JWT_SECRET").context("JWT_SECRET (the server's) is not set")?;
    let ttl = Duration::from_secs(3600 * 4);
    let tokens = (0..tenants)
        .map(|t| {
            let tenant = format!("tenant-{t:05}");
            mcp_server::auth::issue_hs256(
                secret.as_bytes(),
                &issuer,
                &audience,
                "sub",
                &tenant,
                "memory:read memory:write",
                ttl,
            )
        })
        .collect();
    let phases = phases.split(',').filter(|p| !p.is_empty()).map(str::to_owned).collect();
    Ok(Args { url, tokens, entities, concurrency, calls, seed, phases })
}

/// Entity `i` of every tenant: a tag only it has (`tag t0042x`) and a topic all of them share.
fn entity(i: usize) -> Value {
    json!({
        "name": format!("entity-{i:04}"),
        "entityType": if i.is_multiple_of(2) { "person" } else { "project" },
        "observations": [format!("works on topic-{} since {}", i % 10, 2000 + i % 25), format!("tag t{i:04}x")]
    })
}

/// Runs `count` jobs at `concurrency`, each `job(n)` timed; returns the sorted latencies (µs), the
/// wall time and the first error (any error stops the run: the figures would mean nothing).
async fn run<F, Fut>(concurrency: usize, count: usize, job: F) -> Result<(Vec<u32>, f64)>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    let job = Arc::new(job);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (job, next) = (job.clone(), next.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= count {
                        return Ok::<_, anyhow::Error>(latencies);
                    }
                    let t = Instant::now();
                    job(n).await.with_context(|| format!("call {n}"))?;
                    latencies.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                }
            })
        })
        .collect();
    let mut all = Vec::with_capacity(count);
    for worker in workers {
        all.extend(worker.await??);
    }
    let seconds = started.elapsed().as_secs_f64();
    all.sort_unstable();
    Ok((all, seconds))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Arc::new(parse_args()?);
    let client = reqwest::Client::builder().pool_max_idle_per_host(args.concurrency).build()?;
    let tenants = args.tokens.len();
    if args.seed {
        let (a, c) = (args.clone(), client.clone());
        let (_, seconds) = run(args.concurrency, tenants, move |t| {
            let (a, c) = (a.clone(), c.clone());
            async move {
                let entities: Vec<Value> = (0..a.entities).map(entity).collect();
                call(&c, &a.url, Some(&a.tokens[t]), 1, "create_entities", json!({ "entities": entities })).await?;
                Ok(())
            }
        })
        .await?;
        let total = tenants * args.entities;
        println!(
            "{}",
            json!({ "phase": "seed", "tenants": tenants, "entities": total, "seconds": seconds,
                "entities_per_s": total as f64 / seconds })
        );
    }
    for phase in args.phases.clone() {
        let (a, c, p) = (args.clone(), client.clone(), phase.clone());
        let (latencies, seconds) = run(args.concurrency, args.calls, move |n| {
            let (a, c, p) = (a.clone(), c.clone(), p.clone());
            async move {
                let token = &a.tokens[rand::random_range(0..a.tokens.len())];
                let i = rand::random_range(0..a.entities);
                let (tool, arguments) = match p.as_str() {
                    "one-hit" => ("search_nodes", json!({ "query": format!("tag t{i:04}x") })),
                    "broad" => ("search_nodes", json!({ "query": "topic-" })),
                    "write" => (
                        "create_entities",
                        json!({ "entities": [{ "name": format!("w-{n}"),
                        "entityType": "bench", "observations": ["created under load"] }] }),
                    ),
                    other => bail!("unknown phase {other}"),
                };
                let found = call(&c, &a.url, Some(token), n as u64 + 1, tool, arguments).await?;
                ensure!(p != "one-hit" || found == Some(1), "a one-hit search found {found:?} entities");
                ensure!(p != "broad" || found.unwrap_or(0) > 0, "a broad search found nothing");
                Ok(())
            }
        })
        .await?;
        println!(
            "{}",
            json!({ "phase": phase, "tenants": tenants, "concurrency": args.concurrency, "calls": latencies.len(),
                "seconds": seconds, "rps": latencies.len() as f64 / seconds,
                "p50_ms": percentile(&latencies, 50.0) / 1000.0, "p99_ms": percentile(&latencies, 99.0) / 1000.0 })
        );
    }
    Ok(())
}
