//! A PostgreSQL outage, with a test-owned cluster (initdb/pg_ctl on a random port): readiness
//! fails and liveness stays up, tool calls fail fast with a clear JSON-RPC error, and everything
//! recovers by itself when the database returns. A full disk under SQLite (a small tmpfs): writes
//! fail with a retryable error and readiness says so, until space returns.

use crate::common;

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use common::{Db, call, ok, text};
use serde_json::json;

/// PostgreSQL's server binaries: on PATH (Nix), else Debian's versioned directory.
fn pg_bin(tool: &str) -> PathBuf {
    if let Ok(path) = which(tool) {
        return path;
    }
    let dir = std::fs::read_dir("/usr/lib/postgresql").expect("PostgreSQL server binaries are installed");
    dir.filter_map(Result::ok).map(|d| d.path().join("bin").join(tool)).find(|p| p.exists()).expect("initdb/pg_ctl")
}

fn which(tool: &str) -> Result<PathBuf, ()> {
    std::env::var("PATH").unwrap_or_default().split(':').map(|d| Path::new(d).join(tool)).find(|p| p.exists()).ok_or(())
}

/// Runs a PostgreSQL tool, as the `postgres` user when we are root (initdb refuses root).
fn pg(tool: &str, args: &[&str]) -> std::process::Output {
    let root = is_root();
    let mut cmd = if root { Command::new("runuser") } else { Command::new(pg_bin(tool)) };
    if root {
        cmd.args(["-u", "postgres", "--"]).arg(pg_bin(tool));
    }
    cmd.args(args).output().unwrap()
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

struct Cluster {
    data: String,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Cluster {
    fn create() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        if is_root() {
            Command::new("chown").args(["-R", "postgres"]).arg(dir.path()).status().unwrap();
        }
        let data = dir.path().join("data").display().to_string();
        let out = pg("initdb", &["-D", &data, "-U", "postgres", "--auth=trust", "--no-instructions"]);
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        let port = common::free_port();
        let cluster = Cluster { data, port, _dir: dir };
        cluster.start();
        cluster
    }

    fn start(&self) {
        let options =
            format!("-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories={}", self.port, self.data);
        let out = pg("pg_ctl", &["-D", &self.data, "-o", &options, "-l", &format!("{}/log", self.data), "-w", "start"]);
        assert!(out.status.success(), "pg_ctl start: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn stop(&self) {
        let out = pg("pg_ctl", &["-D", &self.data, "-m", "fast", "-w", "stop"]);
        assert!(out.status.success(), "pg_ctl stop: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = pg("pg_ctl", &["-D", &self.data, "-m", "immediate", "stop"]);
    }
}

async fn status(url: &str) -> u16 {
    reqwest::get(url).await.map(|r| r.status().as_u16()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_fails_fast_and_recovers() {
    let cluster = Cluster::create();
    let url = cluster.url();
    let app = common::spawn_app_with(Db::Sqlite, &["--database-url", &url, "--db-timeout", "1s"]).await.unwrap();
    let client = app.client().await;
    ok(
        &client,
        "create_entities",
        json!({ "entities": [{ "name": "before", "entityType": "t", "observations": [] }] }),
    )
    .await;
    assert_eq!(status(&app.url("/health/ready")).await, 200);

    cluster.stop();
    assert_eq!(status(&app.url("/health/ready")).await, 503, "readiness fails while the database is down");
    assert_eq!(status(&app.url("/health")).await, 200, "liveness stays up: no restart loop");
    let started = Instant::now();
    let err = call(&client, "read_graph", json!({})).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3), "fails fast: {:?}", started.elapsed());
    assert_eq!(err.code.0, -32603);
    assert_eq!(err.message, "database unavailable, retry later");

    cluster.start();
    let back = Instant::now();
    loop {
        if let Ok(result) = call(&client, "open_nodes", json!({ "names": ["before"] })).await {
            assert_eq!(result.structured_content.unwrap()["entities"][0]["name"], "before");
            break;
        }
        assert!(back.elapsed() < Duration::from_secs(5), "recovers within 5 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status(&app.url("/health/ready")).await, 200);
    eprintln!("outage: failed in {:?}, recovered {:?} after the database returned", started.elapsed(), back.elapsed());
}

/// A TCP proxy to PostgreSQL that can go silent: `hang` stops forwarding on every connection it
/// holds, for good, without closing them (packets dropped, no reset), and holds new ones until
/// `heal`; connections made after `heal` are forwarded again.
struct Blackhole {
    port: u16,
    state: std::sync::Arc<std::sync::Mutex<(bool, u64)>>,
}

impl Blackhole {
    async fn start(upstream: std::net::SocketAddr) -> Blackhole {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = std::sync::Arc::new(std::sync::Mutex::new((false, 0u64)));
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(upstream).await else { continue };
                let generation = shared.lock().unwrap().1;
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(forward(cr, sw, shared.clone(), generation));
                tokio::spawn(forward(sr, cw, shared.clone(), generation));
            }
        });
        Blackhole { port, state }
    }

    fn hang(&self) {
        let mut state = self.state.lock().unwrap();
        *state = (true, state.1 + 1);
    }

    fn heal(&self) {
        self.state.lock().unwrap().0 = false;
    }
}

async fn forward(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    state: std::sync::Arc<std::sync::Mutex<(bool, u64)>>,
    generation: u64,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    // Open while the proxy is up and this connection is of the current generation.
    let open = |state: &std::sync::Mutex<(bool, u64)>| {
        let (down, current) = *state.lock().unwrap();
        !down && current == generation
    };
    loop {
        while !open(&state) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let Ok(n) = from.read(&mut buf).await else { return };
        if n == 0 {
            return;
        }
        while !open(&state) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// A server on the test database through a `Blackhole`, giving up on it after 1 s (DB_TIMEOUT,
/// then DB_STATEMENT_TIMEOUT), with `extra` flags.
async fn behind_blackhole(db: &common::TestDb, extra: &[&str]) -> (Blackhole, common::TestApp) {
    let mut url = url::Url::parse(&db.url).unwrap();
    let upstream =
        tokio::net::lookup_host((url.host_str().unwrap(), url.port().unwrap_or(5432))).await.unwrap().next().unwrap();
    let proxy = Blackhole::start(upstream).await;
    url.set_host(Some("127.0.0.1")).unwrap();
    url.set_port(Some(proxy.port)).unwrap();
    let url = url.to_string();
    let flags =
        [&["--database-url", url.as_str(), "--db-timeout", "1s", "--db-statement-timeout", "1s"], extra].concat();
    let app = common::spawn_app_with(Db::Sqlite, &flags).await.unwrap();
    (proxy, app)
}

// A database that stops answering without closing its connections: each call fails with the
// retryable error within DB_TIMEOUT + DB_STATEMENT_TIMEOUT (well before REQUEST_TIMEOUT), and the
// server recovers when the database answers again, though the old connections never do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_postgres_fails_within_the_deadline_and_recovers() {
    let Some(db) = common::TestDb::new(Db::Postgres).await else { return };
    let (proxy, app) = behind_blackhole(&db, &["--db-pool-max", "1"]).await;
    let client = app.client().await;
    let before = json!({ "entities": [{ "name": "before", "entityType": "t", "observations": [] }] });
    ok(&client, "create_entities", before).await;
    settled(&app).await;

    proxy.hang();
    // More calls than connections: each one given up on must not keep the pool's one slot.
    for tool in ["create_entities", "read_graph", "search_nodes", "open_nodes"] {
        let args = json!({ "entities": [{ "name": "during", "entityType": "t", "observations": [] }],
            "query": "before", "names": ["before"] });
        let started = Instant::now();
        let err = call(&client, tool, args).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5), "{tool} failed in {:?}", started.elapsed());
        assert_eq!((err.code.0, &*err.message), (-32603, "database unavailable, retry later"), "{tool}");
        assert_eq!(err.data, Some(json!({ "retryable": true })));
    }

    proxy.heal();
    let back = Instant::now();
    loop {
        if let Ok(result) = call(&client, "open_nodes", json!({ "names": ["before"] })).await {
            assert_eq!(result.structured_content.unwrap()["entities"][0]["name"], "before");
            break;
        }
        assert!(back.elapsed() < Duration::from_secs(10), "recovers though the old connections stay silent");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Retrying the write that failed is safe: it is created at most once.
    let during = json!({ "entities": [{ "name": "during", "entityType": "t", "observations": [] }] });
    ok(&client, "create_entities", during).await;
    let found = ok(&client, "open_nodes", json!({ "names": ["during"] })).await;
    assert_eq!(found["entities"].as_array().unwrap().len(), 1);
    eprintln!("hung database: recovered {:?} after it answered again", back.elapsed());
}

// A server whose database stopped answering still exits: closing its pools gives up after
// DB_TIMEOUT instead of waiting on connections that never answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_on_a_hung_database_still_shuts_down() {
    let Some(db) = common::TestDb::new(Db::Postgres).await else { return };
    let (proxy, app) = behind_blackhole(&db, &[]).await;
    let client = app.client().await;
    ok(&client, "read_graph", json!({})).await;
    drop(client);
    settled(&app).await;

    proxy.hang();
    let started = Instant::now();
    // The drain (SHUTDOWN_TIMEOUT, 5 s here), the heartbeat's goodbye (its interval, 5 s) and
    // the close (1 s) at most.
    let stopped = tokio::time::timeout(Duration::from_secs(20), app.shutdown()).await;
    assert!(stopped.is_ok(), "the server did not exit in {:?}", started.elapsed());
    eprintln!("hung database: the server exited in {:?}", started.elapsed());
}

/// Waits until no pooled connection is in use. sqlx pings each connection it takes back, without
/// a time limit, so one released as the database stops answering holds its slot until it ends.
async fn settled(app: &common::TestApp) {
    loop {
        let (size, idle) = app.memory.pool_stats();
        if idle >= size as usize {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// A statement the database cannot finish in DB_STATEMENT_TIMEOUT (here: waiting for a lock) is
// ended by the server: the call gets the retryable error and the write does not commit later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_over_the_timeout_is_aborted_and_not_committed_later() {
    use sqlx::{Connection, Executor};
    let Some(db) = common::TestDb::new(Db::Postgres).await else { return };
    let flags = ["--database-url", &db.url, "--db-timeout", "1s", "--db-statement-timeout", "1s"];
    let app = common::spawn_app_with(Db::Sqlite, &flags).await.unwrap();
    let client = app.client().await;
    ok(&client, "read_graph", json!({})).await;

    let mut locker = sqlx::PgConnection::connect(&db.url).await.unwrap();
    locker.execute("BEGIN; LOCK TABLE entities IN ACCESS EXCLUSIVE MODE").await.unwrap();
    let started = Instant::now();
    let during = json!({ "entities": [{ "name": "during", "entityType": "t", "observations": [] }] });
    let err = call(&client, "create_entities", during).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "failed in {:?}", started.elapsed());
    assert_eq!((err.code.0, err.data), (-32603, Some(json!({ "retryable": true }))), "{}", err.message);
    tokio::time::sleep(Duration::from_millis(500)).await;
    locker.execute("COMMIT").await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let found = ok(&client, "open_nodes", json!({ "names": ["during"] })).await;
    assert_eq!(found["entities"], json!([]), "the server aborted the write");
}

/// A tmpfs of `size` mounted on a new directory (root only); unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match mounted {
            Ok(out) if out.status.success() => Some(SmallDisk { dir }),
            _ => None,
        }
    }

    /// Writes a file until the disk is full.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.dir.path().join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 4096];
        while file.write_all(&chunk).and_then(|()| file.flush()).is_ok() {}
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

fn created(name: &str) -> serde_json::Value {
    json!({ "entities": [{ "name": name, "entityType": "t", "observations": ["o".repeat(2000)] }] })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_writes_retryably_until_space_returns() {
    let Some(disk) = SmallDisk::mount("6m") else {
        eprintln!("cannot mount a tmpfs (not root): skipping the disk-full test");
        return;
    };
    let url = format!("sqlite://{}/full.db", disk.dir.path().display());
    let app = common::spawn_app_with(Db::Sqlite, &["--database-url", &url, "--sqlite-wal-max-bytes", "1048576"])
        .await
        .unwrap();
    let client = app.client().await;
    let mut acknowledged = Vec::new();
    for i in 0..10 {
        ok(&client, "create_entities", created(&format!("before-{i}"))).await;
        acknowledged.push(format!("before-{i}"));
    }
    let filler = disk.fill();

    // Writes go on until one needs space the disk no longer has.
    let mut refused = None;
    for i in 0..500 {
        let name = format!("during-{i}");
        match call(&client, "create_entities", created(&name)).await {
            Ok(result) => {
                assert_ne!(result.is_error, Some(true), "{}", text(&result));
                acknowledged.push(name);
            }
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let error = refused.expect("no write failed on a full disk");
    assert_eq!(error.code.0, -32603);
    assert_eq!(error.message, "storage full, retry later");
    assert_eq!(error.data, Some(json!({ "retryable": true, "reason": "storage_full" })));
    let ready = reqwest::get(app.url("/health/ready")).await.unwrap();
    assert_eq!(ready.status(), 503, "readiness fails while writes fail for lack of space");
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["storage"], json!({ "status": "fail", "reason": "full" }));
    let metrics = reqwest::get(format!("http://{}/metrics", app.metrics_addr)).await.unwrap().text().await.unwrap();
    assert!(metrics.lines().any(|l| l == "db_storage_full 1"), "{metrics}");
    assert!(metrics.lines().any(|l| l.starts_with("db_storage_full_total ") && l != "db_storage_full_total 0"));
    // Reads go on.
    ok(&client, "open_nodes", json!({ "names": ["before-0"] })).await;

    std::fs::remove_file(filler).unwrap();
    let back = Instant::now();
    while status(&app.url("/health/ready")).await != 200 {
        assert!(back.elapsed() < Duration::from_secs(10), "readiness did not recover once space returned");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ok(&client, "create_entities", created("after")).await;
    acknowledged.push("after".into());
    let metrics = reqwest::get(format!("http://{}/metrics", app.metrics_addr)).await.unwrap().text().await.unwrap();
    assert!(metrics.lines().any(|l| l == "db_storage_full 0"), "{metrics}");
    let graph = ok(&client, "open_nodes", json!({ "names": acknowledged })).await;
    let stored = graph["entities"].as_array().unwrap().len();
    assert_eq!(stored, acknowledged.len(), "an acknowledged write was lost");
    drop(client);
    app.shutdown().await;
}
