//! Three `mcp-server serve` processes sharing PostgreSQL and Redis behind an in-test round-robin
//! proxy that behaves like a Kubernetes Service: every request goes to the next replica, and a
//! replica whose port is closed or whose readiness is 503 gets no traffic.

use crate::common;

use std::{
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use common::{
    ok,
    proxy::{Load, cluster, session_client, start_replica, terminate, wait_ready},
};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_on_another_replica() {
    let Some(cluster) = cluster().await else { return };
    let url = cluster.proxy.url.clone();
    // A 2025-11-25 client with a session: initialize, then each call lands on the next replica.
    let client = session_client(&url).await;
    ok(
        &client,
        "create_entities",
        json!({ "entities": [{ "name": "hopper", "entityType": "t", "observations": ["one"] }] }),
    )
    .await;
    ok(&client, "add_observations", json!({ "observations": [{ "entityName": "hopper", "contents": ["two"] }] })).await;
    ok(
        &client,
        "create_relations",
        json!({ "relations": [{ "from": "hopper", "to": "hopper", "relationType": "self" }] }),
    )
    .await;
    let found = ok(&client, "search_nodes", json!({ "query": "hop" })).await;
    assert_eq!(found["entities"][0]["observations"], json!(["one", "two"]));
    let graph = ok(&client, "read_graph", json!({})).await;
    assert_eq!(graph["relations"].as_array().unwrap().len(), 1);
    client.cancel().await.unwrap();

    // A 2026-07-28 client: no session at all.
    let meta = json!({ "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {} });
    for (i, (tool, args)) in [
        ("open_nodes", json!({ "names": ["hopper"] })),
        ("read_graph", json!({})),
        ("search_nodes", json!({ "query": "two" })),
    ]
    .into_iter()
    .enumerate()
    {
        let text = reqwest::Client::new()
            .post(&url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .header("mcp-name", tool)
            .json(&json!({ "jsonrpc": "2.0", "id": i, "method": "tools/call", "params": { "name": tool, "arguments": args, "_meta": meta } }))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        // With sessions on, answers come as SSE events; the JSON-RPC message is in `data:`.
        let body: Value = text
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .chain(std::iter::once(text.as_str()))
            .find_map(|d| serde_json::from_str(d.trim()).ok())
            .unwrap_or_else(|| panic!("no JSON-RPC message in {text}"));
        assert_eq!(body["result"]["structuredContent"]["entities"][0]["name"], "hopper", "{tool}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_load_loses_no_acknowledged_write() {
    let Some(cluster) = cluster().await else { return };
    let url = cluster.proxy.url.clone();
    const CLIENTS: usize = 16;
    const WRITES: usize = 2000;
    let acknowledged = Arc::new(std::sync::Mutex::new(Vec::new()));
    let failures = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (url, acknowledged, failures) = (url.clone(), acknowledged.clone(), failures.clone());
        tasks.push(tokio::spawn(async move {
            let client = session_client(&url).await;
            for i in 0..WRITES / CLIENTS {
                let name = format!("w-{c}-{i}");
                // A request in flight on the replica that dies is lost to its client (its SSE
                // answer is cut and there is no shared event log yet): it is not acknowledged.
                let args = json!({ "entities": [{ "name": name, "entityType": "w", "observations": [] }] });
                match tokio::time::timeout(Duration::from_secs(5), common::call(&client, "create_entities", args)).await
                {
                    Ok(Ok(r)) if r.is_error != Some(true) => acknowledged.lock().unwrap().push(name),
                    _ => {
                        failures.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        }));
    }
    // Kill one replica without warning once the load is under way.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = cluster.proxy.replicas[1].child.as_ref().unwrap().id();
    Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap();
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(120), task).await.expect("load finishes").unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    let reader = session_client(&url).await;
    let mut missing = 0;
    for chunk in acknowledged.chunks(500) {
        let found = ok(&reader, "open_nodes", json!({ "names": chunk })).await;
        missing += chunk.len() - found["entities"].as_array().unwrap().len();
    }
    eprintln!(
        "kill -9 under load: {} of {WRITES} writes acknowledged, {} failed, {missing} acknowledged writes missing",
        acknowledged.len(),
        failures.load(Ordering::SeqCst)
    );
    assert_eq!(missing, 0, "every acknowledged write reads back");
    assert!(acknowledged.len() >= WRITES * 95 / 100, "clients continued on the surviving replicas");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_fails_no_request() {
    let Some(cluster) = cluster().await else { return };
    let load = Load::start(&cluster.proxy.url, 8);
    // SIGTERM each replica in turn, as a rolling update does, and bring it back on its port.
    let db_url = cluster._db.url.clone();
    let redis = std::env::var("MCP_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let mut replacements = Vec::new();
    for (i, replica) in cluster.proxy.replicas.iter().enumerate() {
        let before = load.done();
        // The old process drains and exits; then the new one starts on the same port.
        terminate(replica.child.as_ref().unwrap(), replica.port).await;
        replacements.push(start_replica(replica.port, &db_url, &redis));
        wait_ready(replica).await;
        // Load kept flowing while this replica was away (however fast this machine is).
        assert!(load.done() > before, "no request completed while replica {i} restarted");
    }
    let (done, failed) = load.finish().await;
    for child in &replacements {
        let _ = Command::new("kill").args(["-9", &child.id().to_string()]).status();
    }
    eprintln!("rolling restart: {done} requests succeeded, {failed} failed");
    assert_eq!(failed, 0, "no client request failed");
}
