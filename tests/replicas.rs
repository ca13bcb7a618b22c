//! Three `mcp-server serve` processes sharing PostgreSQL and Redis behind an in-test round-robin
//! proxy that behaves like a Kubernetes Service: every request goes to the next replica, and a
//! replica whose port is closed or whose readiness is 503 gets no traffic.

mod common;

use std::{
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{body::Body, extract::Request, response::Response};
use common::{Db, TestDb, free_port, migrate, ok, serve_process};
use rmcp::{
    ServiceExt,
    model::{ClientCapabilities, ClientConfig, Implementation},
    transport::StreamableHttpClientTransport,
};
use serde_json::{Value, json};

struct Replica {
    port: u16,
    child: Option<Child>,
    ready: Arc<AtomicBool>,
}

fn start_replica(port: u16, db_url: &str, redis: &str) -> Child {
    serve_process(
        port,
        &[
            ("DATABASE_URL", db_url.to_string()),
            ("REDIS_URL", redis.to_string()),
            ("MCP_SESSIONS", "true".into()),
            ("LOG_LEVEL", "warn".into()),
            ("SHUTDOWN_DELAY", "1s".into()),
            ("SHUTDOWN_TIMEOUT", "10s".into()),
        ],
    )
    .stdout(Stdio::null())
    .spawn()
    .unwrap()
}

/// The proxy: round-robin over ready replicas, retrying the next one when a connection fails
/// (as kube-proxy's endpoints would no longer list a dead pod).
struct Proxy {
    url: String,
    replicas: Arc<Vec<Replica>>,
}

async fn proxy(replicas: Arc<Vec<Replica>>) -> Proxy {
    for r in replicas.iter() {
        let (ready, port) = (r.ready.clone(), r.port);
        tokio::spawn(async move {
            let client = reqwest::Client::builder().timeout(Duration::from_millis(500)).build().unwrap();
            loop {
                let ok = client
                    .get(format!("http://127.0.0.1:{port}/health/ready"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200);
                ready.store(ok, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let next = Arc::new(AtomicUsize::new(0));
    let targets = replicas.clone();
    let client = reqwest::Client::new();
    let app = axum::Router::new().fallback(move |request: Request| {
        let (targets, next, client) = (targets.clone(), next.clone(), client.clone());
        async move { forward(&targets, &next, &client, request).await }
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Proxy { url, replicas }
}

async fn forward(targets: &[Replica], next: &AtomicUsize, client: &reqwest::Client, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 4 << 20).await.unwrap();
    for _ in 0..targets.len() * 2 {
        let target = &targets[next.fetch_add(1, Ordering::SeqCst) % targets.len()];
        if !target.ready.load(Ordering::SeqCst) {
            continue;
        }
        let uri = format!("http://127.0.0.1:{}{}", target.port, parts.uri.path_and_query().map_or("/", |p| p.as_str()));
        let mut upstream = client.request(parts.method.clone(), uri).body(body.clone());
        for (name, value) in &parts.headers {
            if name != "host" {
                upstream = upstream.header(name, value);
            }
        }
        let Ok(answer) = upstream.send().await else { continue };
        let mut response = Response::builder().status(answer.status());
        for (name, value) in answer.headers() {
            response = response.header(name, value);
        }
        return response.body(Body::from_stream(answer.bytes_stream())).unwrap();
    }
    Response::builder().status(503).body(Body::empty()).unwrap()
}

struct Cluster {
    proxy: Proxy,
    _db: TestDb,
}

async fn cluster() -> Option<Cluster> {
    let db = TestDb::new(Db::Postgres).await?;
    let redis = std::env::var("MCP_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    migrate(&db.url);
    let replicas: Vec<Replica> = (0..3)
        .map(|_| {
            let port = free_port();
            Replica { port, child: Some(start_replica(port, &db.url, &redis)), ready: Arc::default() }
        })
        .collect();
    let proxy = proxy(Arc::new(replicas)).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while !proxy.replicas.iter().all(|r| r.ready.load(Ordering::SeqCst)) {
        assert!(Instant::now() < deadline, "replicas did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Some(Cluster { proxy, _db: db })
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for r in self.proxy.replicas.iter() {
            let _ =
                Command::new("kill").args(["-9", &r.child.as_ref().map(|c| c.id()).unwrap_or(0).to_string()]).status();
        }
    }
}

async fn session_client(url: &str) -> common::Client {
    ClientConfig::new(ClientCapabilities::default(), Implementation::new("roaming", "0"))
        .serve(StreamableHttpClientTransport::from_uri(url.to_string()))
        .await
        .expect("initialize through the proxy")
}

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
    let url = cluster.proxy.url.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let (done, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut load = Vec::new();
    for c in 0..8 {
        let (url, stop, done, failed) = (url.clone(), stop.clone(), done.clone(), failed.clone());
        load.push(tokio::spawn(async move {
            let client = session_client(&url).await;
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let args =
                    json!({ "entities": [{ "name": format!("r-{c}-{i}"), "entityType": "r", "observations": [] }] });
                match common::call(&client, "create_entities", args).await {
                    Ok(r) if r.is_error != Some(true) => done.fetch_add(1, Ordering::SeqCst),
                    _ => failed.fetch_add(1, Ordering::SeqCst),
                };
                i += 1;
            }
        }));
    }
    // SIGTERM each replica in turn, as a rolling update does, and bring it back on its port.
    let db_url = cluster._db.url.clone();
    let redis = std::env::var("MCP_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let mut replacements = Vec::new();
    for (i, replica) in cluster.proxy.replicas.iter().enumerate() {
        let before = done.load(Ordering::SeqCst);
        let pid = replica.child.as_ref().unwrap().id();
        Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
        // The old process drains and exits; then the new one starts on the same port.
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", replica.port)).is_ok() {
            assert!(Instant::now() < deadline, "replica {i} did not stop");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        replacements.push(Replica {
            port: replica.port,
            child: Some(start_replica(replica.port, &db_url, &redis)),
            ready: Arc::default(),
        });
        let deadline = Instant::now() + Duration::from_secs(15);
        while !replica.ready.load(Ordering::SeqCst) {
            assert!(Instant::now() < deadline, "replica {i} did not come back");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Load kept flowing while this replica was away (however fast this machine is).
        assert!(done.load(Ordering::SeqCst) > before, "no request completed while replica {i} restarted");
    }
    stop.store(true, Ordering::SeqCst);
    for task in load {
        tokio::time::timeout(Duration::from_secs(60), task).await.expect("load stops").unwrap();
    }
    for r in &replacements {
        let _ = Command::new("kill").args(["-9", &r.child.as_ref().unwrap().id().to_string()]).status();
    }
    let (done, failed) = (done.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    eprintln!("rolling restart: {done} requests succeeded, {failed} failed");
    assert_eq!(failed, 0, "no client request failed");
}
