//! Upgrades and rollbacks across a schema migration (README, Upgrading). "The next release" is
//! this build's code knowing one more migration, from tests/fixtures/migrations/<backend>/<kind>
//! (`Store::with_migrations_from`: what a build with the file in migrations/ would know);
//! "today's binary" is the mcp-server binary as built, which does not know it.

use crate::common;

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::{
    Db, TestDb, WAIT, free_port, migrate, ok,
    proxy::{Load, cluster, session_client, start_replica, terminate, wait_ready},
    serve_process, spawn_app,
};
use mcp_server::{
    app::Application,
    http::RunningServer,
    storage::{DatabaseConfig, SchemaStatus, StorageError, Store},
};
use serde_json::{Value, json};

const ADDITIVE: i64 = 29990101000001;
const BREAKING: i64 = 29990101000002;
const CONTRACT: i64 = 29990101000003;

/// The next release's store: this build's migrations and the fixture's.
async fn next_release(db_url: &str, db: Db, kind: &str) -> Store {
    let backend = if db == Db::Sqlite { "sqlite" } else { "postgres" };
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/migrations").join(backend).join(kind);
    let settings = common::settings(db_url, &[]);
    Store::connect(&DatabaseConfig::from_settings(&settings).unwrap())
        .await
        .unwrap()
        .with_migrations_from(&dir)
        .await
        .unwrap()
}

/// Today's binary serving `db_url` as its own process.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    /// Starts it and waits until it is ready; a process that exits instead gives its stderr.
    async fn start(db_url: &str) -> Result<Server, String> {
        let port = free_port();
        let child = serve_process(port, &[("DATABASE_URL", db_url.to_string()), ("LOG_LEVEL", "warn".into())])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut server = Server { child, port };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if server.child.try_wait().unwrap().is_some() {
                let mut stderr = String::new();
                std::io::Read::read_to_string(server.child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
                return Err(stderr);
            }
            if server.ready().await.0 == 200 {
                return Ok(server);
            }
            assert!(Instant::now() < deadline, "today's binary neither became ready nor exited");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn ready(&self) -> (u16, Value) {
        match reqwest::get(format!("http://127.0.0.1:{}/health/ready", self.port)).await {
            Ok(r) => (r.status().as_u16(), r.json().await.unwrap_or_default()),
            Err(_) => (0, Value::Null),
        }
    }

    fn mcp(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The reads and writes of a client, against a server on the schema under test.
async fn tools_work(url: &str) {
    let client = session_client(url).await;
    let entities = json!({ "entities": [{ "name": "ada", "entityType": "person", "observations": ["one"] }] });
    ok(&client, "create_entities", entities).await;
    ok(&client, "add_observations", json!({ "observations": [{ "entityName": "ada", "contents": ["two"] }] })).await;
    ok(&client, "create_relations", json!({ "relations": [{ "from": "ada", "to": "ada", "relationType": "is" }] }))
        .await;
    let found = ok(&client, "search_nodes", json!({ "query": "ad" })).await;
    assert_eq!(found["entities"][0]["observations"], json!(["one", "two"]));
    assert_eq!(ok(&client, "read_graph", json!({})).await["relations"].as_array().unwrap().len(), 1);
    ok(&client, "delete_entities", json!({ "entityNames": ["ada"] })).await;
    client.cancel().await.unwrap();
}

// A newer release's additive migration leaves today's binary serving: it starts (SQLite migrates
// past the unknown version and opens read-write), is ready, and its tools read and write.
both_backends!(a_newer_additive_schema_is_served, |db: Db| async move {
    let Some(test_db) = TestDb::new(db).await else { return };
    let next = next_release(&test_db.url, db, "additive").await;
    next.migrate().await.expect("the next release migrates");
    assert_eq!(next.schema_status().await.unwrap(), SchemaStatus::Current);
    let server = Server::start(&test_db.url).await.expect("today's binary serves the newer schema");
    let (status, body) = server.ready().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"]["schema"]["newer_migrations"], json!([ADDITIVE]), "{body}");
    tools_work(&server.mcp()).await;
});

// A newer release's breaking migration: today's running binary turns unready naming it, and
// refuses to start on it.
both_backends!(a_newer_breaking_schema_is_refused_by_name, |db: Db| async move {
    let Some(test_db) = TestDb::new(db).await else { return };
    migrate(&test_db.url);
    let server = Server::start(&test_db.url).await.expect("today's binary starts on today's schema");
    // Forced: the replica running is one it breaks (PostgreSQL's migrate would refuse).
    next_release(&test_db.url, db, "breaking").await.migrate_with(true).await.expect("a forced migrate applies it");
    let deadline = Instant::now() + WAIT;
    let body = loop {
        let (status, body) = server.ready().await;
        if status == 503 {
            break body;
        }
        assert!(Instant::now() < deadline, "still ready on a schema that breaks it: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let reason = body["checks"]["schema"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains(&BREAKING.to_string()), "{body}");
    let refused = Server::start(&test_db.url).await.err().expect("today's binary refuses to start on it");
    assert!(refused.contains(&BREAKING.to_string()), "{refused}");
});

/// `migrate` on PostgreSQL refuses a breaking migration while a replica that does not know it
/// heartbeats, naming the replica and the flag, and applies it once that replica has shut down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_waits_for_the_replicas_a_breaking_migration_breaks() {
    let Some(app) = spawn_app(Db::Postgres).await else { return };
    wait_for_replicas(&app.db.url, 1).await;
    let next = next_release(&app.db.url, Db::Postgres, "breaking").await;
    let refused = next.migrate().await.expect_err("refused while today's replica runs");
    assert!(matches!(refused, StorageError::BreakingMigration { version: BREAKING, .. }), "{refused}");
    let message = refused.to_string();
    assert!(message.contains("--force") && message.contains("MIGRATE_FORCE") && message.contains('/'), "{message}");
    assert_eq!(app.memory.store().schema_status().await.unwrap(), SchemaStatus::Current, "nothing applied");

    let url = app.db.url.clone();
    let mut app = app;
    app.stop().await;
    next.migrate().await.expect("applied once the replica has gone (a clean shutdown removes its row)");
    let today = Store::connect(&DatabaseConfig::from_settings(&common::settings(&url, &[])).unwrap()).await.unwrap();
    assert_eq!(today.schema_status().await.unwrap(), SchemaStatus::Incompatible { versions: vec![BREAKING] });
}

async fn wait_for_replicas(db_url: &str, n: i64) {
    let deadline = Instant::now() + WAIT;
    let count = "SELECT count(*) FROM mcp_replicas";
    let psql = common::sql(db_url).await;
    while sqlx::query_scalar::<_, i64>(count).fetch_one(&psql).await.unwrap() != n {
        assert!(Instant::now() < deadline, "not {n} replica heartbeat(s)");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Expand/contract: release N+2's contract step (`-- compat: contract of` N+1's expand) waits for
/// today's replicas (release N), not for N+1's, which keep serving after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contract_step_waits_only_for_replicas_without_its_expand() {
    let Some(app) = spawn_app(Db::Postgres).await else { return };
    wait_for_replicas(&app.db.url, 1).await;
    let n2 = next_release(&app.db.url, Db::Postgres, "contract").await;
    let refused = n2.migrate().await.expect_err("refused while a replica without the expand runs");
    assert!(matches!(refused, StorageError::BreakingMigration { version: CONTRACT, .. }), "{refused}");
    // The expand went in; N+1 knows it.
    let redis = std::env::var("MCP_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let n1 = next_release_replica(free_port(), &app.db.url, &redis).await;
    wait_for_replicas(&app.db.url, 2).await;
    let url = app.db.url.clone();
    let mut app = app;
    app.stop().await;
    n2.migrate().await.expect("only a replica the contract spares runs");
    let unknown = vec![CONTRACT];
    assert_eq!(n1.state.memory.store().schema_status().await.unwrap(), SchemaStatus::AheadAdditive { unknown });
    n1.shutdown().await;
    let today = Store::connect(&DatabaseConfig::from_settings(&common::settings(&url, &[])).unwrap()).await.unwrap();
    assert_eq!(today.schema_status().await.unwrap(), SchemaStatus::Incompatible { versions: vec![CONTRACT] });
}

/// A heartbeat that fails is logged and counted; requests never see it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_heartbeat_fails_no_request() {
    let Some(app) = spawn_app(Db::Postgres).await else { return };
    wait_for_replicas(&app.db.url, 1).await;
    sqlx::query("DROP TABLE mcp_replicas").execute(&common::sql(&app.db.url).await).await.unwrap();
    let failures = || async {
        let body = reqwest::get(format!("http://{}/metrics", app.metrics_addr)).await.unwrap().text().await.unwrap();
        let line = body.lines().find(|l| l.starts_with("db_heartbeat_failures_total ")).map(str::to_string);
        line.and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok()).unwrap_or_default()
    };
    let deadline = Instant::now() + mcp_server::storage::HEARTBEAT_INTERVAL * 3;
    let url = app.url("/mcp");
    while failures().await < 1.0 {
        assert!(Instant::now() < deadline, "no heartbeat failure counted");
        tools_work(&url).await;
    }
    tools_work(&url).await;
}

/// The next release, in process on `port` behind the proxy.
async fn next_release_replica(port: u16, db_url: &str, redis: &str) -> RunningServer {
    let port = port.to_string();
    let flags = ["--port", &port, "--redis-url", redis, "--sessions", "true", "--shutdown-delay", "1s"];
    let settings = common::settings(db_url, &[&flags[..], &["--shutdown-timeout", "10s"]].concat());
    let store = next_release(db_url, Db::Postgres, "additive").await;
    assert_eq!(store.schema_status().await.unwrap(), SchemaStatus::Current, "the next release knows it");
    Application::with_store(settings, store).await.unwrap().start().await.unwrap()
}

/// A rolling update whose release adds an additive migration, and its `kubectl rollout undo`,
/// under load through the proxy: three replicas of today's binary serve while the next release's
/// migrate runs (its first pod's init container), then are replaced one by one by the next
/// release (in process: this build knowing the fixture migration), which is then replaced by
/// today's binary again. No request fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_across_a_migration_and_its_rollback_fail_no_request() {
    let Some(cluster) = cluster().await else { return };
    let (db_url, replicas) = (cluster._db.url.clone(), cluster.proxy.replicas.clone());
    let redis = std::env::var("MCP_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let load = Load::start(&cluster.proxy.url, 8);

    next_release(&db_url, Db::Postgres, "additive").await.migrate().await.expect("an additive migration is applied");
    // Today's replicas stay ready on the migrated schema (on main they all turned 503 at once).
    for _ in 0..10 {
        for r in replicas.iter() {
            let ready = reqwest::get(format!("http://127.0.0.1:{}/health/ready", r.port)).await.unwrap();
            assert_eq!(ready.status(), 200, "{}", ready.text().await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let migrated = load.done();

    let mut upgraded = Vec::new();
    for r in replicas.iter() {
        let before = load.done();
        terminate(r.child.as_ref().unwrap(), r.port).await;
        upgraded.push(next_release_replica(r.port, &db_url, &redis).await);
        wait_ready(r).await;
        assert!(load.done() > before, "no request completed while the replica on {} was replaced", r.port);
    }
    let rolled_out = load.done();

    let mut rolled_back: Vec<Child> = Vec::new();
    for (r, server) in replicas.iter().zip(upgraded) {
        let before = load.done();
        server.shutdown().await;
        rolled_back.push(start_replica(r.port, &db_url, &redis));
        wait_ready(r).await;
        assert!(load.done() > before, "no request completed while the replica on {} was rolled back", r.port);
    }
    let (done, failed) = load.finish().await;
    for child in &rolled_back {
        let _ = Command::new("kill").args(["-9", &child.id().to_string()]).status();
    }
    eprintln!(
        "upgrade across an additive migration: {done} requests succeeded ({migrated} by the end of the \
         migration, {} during the rollout, {} during the rollback), {failed} failed",
        rolled_out - migrated,
        done - rolled_out
    );
    assert_eq!(failed, 0, "no client request failed");
}
