//! Rate limits shared by replicas through Redis, and the per-replica fallback when Redis dies.

use crate::common;

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::{Db, TestDb, free_port, migrate, serve_process, spawn_app_with};
use serde_json::{Value, json};

const SECRET: &str = common::JWT_SECRET;
const RESOURCE: &str = common::RESOURCE;

fn token(tenant: &str) -> String {
    common::bearer(tenant, "memory:read")
}

async fn list_tools(url: &str, auth: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("authorization", auth)
        .json(&json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/list" }))
        .send()
        .await
        .unwrap()
}

struct Replica(Child);

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_healthy(port: u16) {
    let deadline = Instant::now() + common::WAIT;
    while Instant::now() < deadline {
        if reqwest::get(format!("http://127.0.0.1:{port}/health")).await.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("replica on port {port} did not become healthy");
}

#[tokio::test(flavor = "multi_thread")]
async fn three_replicas_enforce_one_limit() {
    let redis = std::env::var("MCP_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let db = TestDb::new(Db::Sqlite).await.unwrap();
    migrate(&db.url);
    let mut replicas = Vec::new();
    let mut ports = Vec::new();
    for _ in 0..3 {
        let port = free_port();
        let child = serve_process(
            port,
            &[
                ("DATABASE_URL", db.url.clone()),
                ("JWT_SECRET", SECRET.into()),
                ("MCP_RESOURCE_URL", RESOURCE.into()),
                ("REDIS_URL", redis.clone()),
                ("RATE_LIMIT_ENABLED", "true".into()),
                ("RATE_LIMIT_REQUESTS_PER_MINUTE", "60".into()),
                ("LOG_LEVEL", "warn".into()),
            ],
        )
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
        replicas.push(Replica(child));
        ports.push(port);
    }
    for port in &ports {
        wait_healthy(*port).await;
    }
    let auth = token(&format!("tenant-{:016x}", rand::random::<u64>()));
    let started = Instant::now();
    let (mut allowed, mut limited) = (0, 0);
    let mut rejection = None;
    for i in 0..75 {
        let response = list_tools(&format!("http://127.0.0.1:{}/mcp", ports[i % 3]), &auth).await;
        match response.status().as_u16() {
            200 => allowed += 1,
            429 => {
                limited += 1;
                rejection.get_or_insert(response);
            }
            other => panic!("unexpected status {other}"),
        }
    }
    let refill = started.elapsed().as_secs() as usize;
    assert!(allowed >= 60 && allowed <= 60 + refill, "{allowed} allowed in {refill} s across three replicas");
    assert_eq!(allowed + limited, 75);
    let rejection = rejection.expect("some requests were limited");
    let retry_after: u64 = rejection.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after));
    assert_eq!(rejection.headers()["ratelimit-policy"], "\"tenant\";q=60;w=60");
    assert!(rejection.headers()["ratelimit"].to_str().unwrap().starts_with("\"tenant\";r=0;t="));
    let body: Value = rejection.json().await.unwrap();
    assert_eq!(body["error"]["data"]["retryAfter"], retry_after);
    assert_eq!(body["id"], 1, "the 429 answers the request it refused: {body}");
}

struct OwnRedis {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl OwnRedis {
    fn start(port: u16) -> OwnRedis {
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        let deadline = Instant::now() + common::WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        OwnRedis { child, port, _dir: dir }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

fn gauge(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find(|l| l.starts_with(name)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_outage_falls_back_per_replica_and_recovers() {
    let mut redis = OwnRedis::start(free_port());
    let redis_url = format!("redis://127.0.0.1:{}", redis.port);
    let app = spawn_app_with(
        Db::Sqlite,
        &[
            "--jwt-secret",
            SECRET,
            "--mcp-resource-url",
            RESOURCE,
            "--redis-url",
            &redis_url,
            "--rate-limit-enabled",
            "true",
            "--rate-limit-requests-per-minute",
            "5",
        ],
    )
    .await
    .unwrap();
    let auth = token("fallback-tenant");
    let url = app.url("/mcp");
    let metrics_url = format!("http://{}/metrics", app.metrics_addr);
    for _ in 0..3 {
        assert_eq!(list_tools(&url, &auth).await.status(), 200);
    }

    redis.kill();
    // Never a 500: the per-replica limiter takes over with the same quota.
    let statuses: Vec<u16> = futures::future::join_all((0..8).map(|_| list_tools(&url, &auth)))
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert!(statuses.iter().all(|s| *s == 200 || *s == 429), "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 5, "{statuses:?}");
    let metrics = reqwest::get(&metrics_url).await.unwrap().text().await.unwrap();
    assert_eq!(gauge(&metrics, "rate_limit_degraded"), Some(1.0));
    assert!(gauge(&metrics, "rate_limit_fallback_total").unwrap_or(0.0) >= 1.0);

    let port = redis.port;
    let _redis = OwnRedis::start(port);
    let recovered = Instant::now();
    loop {
        let _ = list_tools(&url, &auth).await;
        let metrics = reqwest::get(&metrics_url).await.unwrap().text().await.unwrap();
        if gauge(&metrics, "rate_limit_degraded") == Some(0.0) {
            break;
        }
        assert!(recovered.elapsed() < Duration::from_secs(5), "limits are shared again within 5 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The fresh Redis has no state for this tenant: the shared limit starts over.
    assert_eq!(list_tools(&url, &auth).await.status(), 200);
}
