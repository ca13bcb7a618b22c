//! stdio benchmark for `bench/run`: spawns a memory server (ours or the reference) as a desktop
//! client would, loads a graph of N entities through create_entities (batches of 1,000), then
//! runs 1,000 mixed calls (create_entities, search_nodes, add_observations, search_nodes, …).
//! Stops early when the run exceeds `--cap` seconds and says so. Prints one JSON object per size.
//!
//! usage: bench-stdio --label L --sizes 1000,10000 [--mixed 1000] [--cap 120] [--after-load SH] -- PROGRAM ARGS…
//! `--after-load` runs a shell command between the load and the mixed calls (bench/scale.sh
//! analyzes PostgreSQL's tables there, as autovacuum would have).
//! `{size}` in the command is replaced by the graph size, so each size gets a fresh store.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};
use stats::percentile;

#[path = "stats.rs"]
mod stats;

struct Server {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    next_id: u64,
}

impl Server {
    fn spawn(command: &[String], size: usize) -> Result<Self> {
        let command: Vec<String> = command.iter().map(|a| a.replace("{size}", &size.to_string())).collect();
        let mut child = Command::new(&command[0])
            .args(&command[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("spawning {command:?}"))?;
        let stdin = child.stdin.take().context("stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("stdout")?);
        let mut server = Server { child, stdin, stdout, next_id: 0 };
        server.request(
            "initialize",
            json!({ "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": { "name": "bench-stdio", "version": "1" } }),
        )?;
        writeln!(server.stdin, r#"{{"jsonrpc":"2.0","method":"notifications/initialized"}}"#)?;
        Ok(server)
    }

    fn request(&mut self, method: &str, params: Value) -> Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        writeln!(self.stdin, "{}", json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }))?;
        self.stdin.flush()?;
        let mut line = String::new();
        loop {
            line.clear();
            ensure!(self.stdout.read_line(&mut line)? > 0, "the server closed stdout");
            let message: Value = serde_json::from_str(&line).with_context(|| format!("not JSON: {line}"))?;
            if message["id"] == id {
                let result = message.get("result").with_context(|| format!("{method} failed: {line}"))?;
                ensure!(result["isError"] != true, "{method} failed: {line}");
                return Ok(result.clone());
            }
        }
    }

    fn tool(&mut self, name: &str, arguments: Value) -> Result<Value> {
        self.request("tools/call", json!({ "name": name, "arguments": arguments }))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn entity(i: usize) -> Value {
    json!({ "name": format!("entity-{i:06}"), "entityType": if i.is_multiple_of(2) { "person" } else { "project" },
        "observations": [format!("works on topic-{} since {}", i % 100, 2000 + i % 25), format!("tag t{i:06}x")] })
}

/// A cheap deterministic sequence (xorshift), so every server gets the same calls.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn run(command: &[String], size: usize, mixed: usize, cap: Duration, after_load: Option<&str>) -> Result<Value> {
    let started = Instant::now();
    let mut server = Server::spawn(command, size)?;
    let over = |phase: &str, done: usize| json!({ "gave_up": format!("{phase} after {done} calls"), "seconds": started.elapsed().as_secs_f64() });
    for (calls, start) in (0..size).step_by(1000).enumerate() {
        if started.elapsed() > cap {
            return Ok(over("load", calls));
        }
        let batch: Vec<Value> = (start..(start + 1000).min(size)).map(entity).collect();
        server.tool("create_entities", json!({ "entities": batch }))?;
    }
    let load_seconds = started.elapsed().as_secs_f64();
    if let Some(sh) = after_load {
        ensure!(Command::new("sh").args(["-c", sh]).status()?.success(), "--after-load failed: {sh}");
    }
    let (mut searches, mut writes) = (Vec::new(), Vec::new());
    let (mut rng, mixed_started) = (0x9e37_79b9_7f4a_7c15u64, Instant::now());
    for i in 0..mixed {
        if started.elapsed() > cap {
            let mut gave_up = over("mixed", i);
            gave_up["load_seconds"] = json!(load_seconds);
            gave_up["mixed_calls_per_second"] = json!(i as f64 / mixed_started.elapsed().as_secs_f64());
            return Ok(gave_up);
        }
        let target = next(&mut rng) as usize % size;
        let call = Instant::now();
        match i % 4 {
            0 => server.tool("create_entities", json!({ "entities": [entity(size + i)] }))?,
            2 => server.tool("add_observations", json!({ "observations": [{ "entityName": format!("entity-{target:06}"), "contents": [format!("seen in call {i}")] }] }))?,
            _ => {
                let result = server.tool("search_nodes", json!({ "query": format!("t{target:06}x") }))?;
                searches.push(call.elapsed().as_secs_f64() * 1000.0);
                let text = result.pointer("/content/0/text").and_then(Value::as_str).context("search returned no text")?;
                let found: Value = serde_json::from_str(text)?;
                ensure!(found["entities"].as_array().is_some_and(|e| e.len() == 1), "search for entity {target} found {found}");
                continue;
            }
        };
        writes.push(call.elapsed().as_secs_f64() * 1000.0);
    }
    let mixed_seconds = mixed_started.elapsed().as_secs_f64();
    searches.sort_by(f64::total_cmp);
    writes.sort_by(f64::total_cmp);
    Ok(json!({
        "load_seconds": load_seconds, "mixed_seconds": mixed_seconds, "seconds": started.elapsed().as_secs_f64(),
        "search_p50_ms": percentile(&searches, 50.0), "search_p99_ms": percentile(&searches, 99.0),
        "write_p50_ms": percentile(&writes, 50.0), "write_p99_ms": percentile(&writes, 99.0),
    }))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let split = args.iter().position(|a| a == "--").context("usage: bench-stdio FLAGS -- PROGRAM ARGS…")?;
    let (flags, command) = (&args[..split], &args[split + 1..]);
    ensure!(!command.is_empty(), "no server command after --");
    let (mut label, mut sizes, mut mixed, mut cap, mut after_load) =
        (String::from("server"), vec![1000], 1000, 120.0, None);
    for pair in flags.chunks(2) {
        let value = pair.get(1).with_context(|| format!("{} needs a value", pair[0]))?;
        match pair[0].as_str() {
            "--label" => label = value.clone(),
            "--sizes" => sizes = value.split(',').map(str::parse).collect::<Result<_, _>>()?,
            "--mixed" => mixed = value.parse()?,
            "--cap" => cap = value.parse()?,
            "--after-load" => after_load = Some(value.clone()),
            other => bail!("unknown flag {other}"),
        }
    }
    for size in sizes {
        let mut figures = run(command, size, mixed, Duration::from_secs_f64(cap), after_load.as_deref())?;
        figures["server"] = json!(label);
        figures["size"] = json!(size);
        figures["mixed_calls"] = json!(mixed);
        println!("{figures}");
    }
    Ok(())
}
