//! A round-robin proxy that behaves like a Kubernetes Service over `mcp-server serve` replicas:
//! every request goes to the next replica, and a replica whose port is closed or whose readiness
//! is 503 gets no traffic. Replicas are processes or, for a build this binary is not, in-process
//! servers; the proxy knows only their ports.

use std::{
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{body::Body, extract::Request, response::Response};
use rmcp::{
    ServiceExt,
    model::{ClientCapabilities, ClientConfig, Implementation},
    transport::StreamableHttpClientTransport,
};
use serde_json::json;

use super::{Db, TestDb, free_port, migrate, serve_process};

pub struct Replica {
    pub port: u16,
    pub child: Option<Child>,
    pub ready: Arc<AtomicBool>,
}

pub fn start_replica(port: u16, db_url: &str, redis: &str) -> Child {
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
pub struct Proxy {
    pub url: String,
    pub replicas: Arc<Vec<Replica>>,
}

pub async fn proxy(replicas: Arc<Vec<Replica>>) -> Proxy {
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

pub async fn session_client(url: &str) -> super::Client {
    ClientConfig::new(ClientCapabilities::default(), Implementation::new("roaming", "0"))
        .serve(StreamableHttpClientTransport::from_uri(url.to_string()))
        .await
        .expect("initialize through the proxy")
}

/// Clients writing through `url` until `stop`: 2025-11-25 sessions, one create_entities after
/// another; counts the calls that succeeded and those that failed.
pub struct Load {
    pub stop: Arc<AtomicBool>,
    pub done: Arc<AtomicUsize>,
    pub failed: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    pub fn start(url: &str, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let (done, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let tasks = (0..clients)
            .map(|c| {
                let (url, stop, done, failed) = (url.to_string(), stop.clone(), done.clone(), failed.clone());
                tokio::spawn(async move {
                    let client = session_client(&url).await;
                    let mut i = 0;
                    while !stop.load(Ordering::SeqCst) {
                        let name = format!("r-{c}-{i}");
                        let args = json!({ "entities": [{ "name": name, "entityType": "r", "observations": [] }] });
                        match super::call(&client, "create_entities", args).await {
                            Ok(r) if r.is_error != Some(true) => done.fetch_add(1, Ordering::SeqCst),
                            _ => failed.fetch_add(1, Ordering::SeqCst),
                        };
                        i += 1;
                    }
                })
            })
            .collect();
        Load { stop, done, failed, tasks }
    }

    pub fn done(&self) -> usize {
        self.done.load(Ordering::SeqCst)
    }

    /// Stops the clients; returns (succeeded, failed).
    pub async fn finish(self) -> (usize, usize) {
        self.stop.store(true, Ordering::SeqCst);
        for task in self.tasks {
            tokio::time::timeout(Duration::from_secs(60), task).await.expect("load stops").unwrap();
        }
        (self.done.load(Ordering::SeqCst), self.failed.load(Ordering::SeqCst))
    }
}

/// SIGTERM, as a rolling update sends; returns once the process has drained and its port is closed.
pub async fn terminate(child: &Child, port: u16) {
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(Instant::now() < deadline, "the replica on port {port} did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the proxy routes to `replica` again.
pub async fn wait_ready(replica: &Replica) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !replica.ready.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the replica on port {} did not become ready", replica.port);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Three replicas of this binary on a migrated PostgreSQL database, behind the proxy.
pub struct Cluster {
    pub proxy: Proxy,
    pub _db: TestDb,
}

pub async fn cluster() -> Option<Cluster> {
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
