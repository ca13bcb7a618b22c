//! The binary as operators use it: configuration errors, migrate, import/export, stdio.

use crate::common;

use std::{
    io::Write,
    process::{Command, Stdio},
};

use common::{Db, TestDb, ok};
use rmcp::{
    ServiceExt,
    model::{ClientCapabilities, ClientConfig, Implementation},
    transport::TokioChildProcess,
};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_mcp-server");

/// The binary with a clean environment: only what a test sets.
fn mcp_server() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).env("LOG_LEVEL", "warn");
    cmd
}

#[test]
fn bad_configuration_exits_2_naming_the_variable() {
    let out = mcp_server().args(["check-config"]).env("PORT", "eighty").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("PORT"), "{}", String::from_utf8_lossy(&out.stderr));

    let out = mcp_server().args(["check-config"]).env("DATABASE_URL", "mysql://x").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value for DATABASE_URL"));

    // The URL's parameters too, which sqlx would read only when connecting; the password stays out.
    for url in ["postgres://mcp:hunter2@db/mcp?sslmode=bogus", "sqlite:///tmp/x.db?mode=bogus"] {
        let out = mcp_server().args(["check-config"]).env("DATABASE_URL", url).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{url}: {stderr}");
        assert!(stderr.contains("invalid value for DATABASE_URL") && stderr.contains("bogus"), "{stderr}");
        assert!(!stderr.contains("hunter2"), "{stderr}");
    }

    // check-config with these variables exits 2 with a message naming what to fix.
    let refused = |env: &[(&str, &str)], message: &str| {
        let out = mcp_server().args(["check-config"]).envs(env.iter().copied()).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{env:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(message), "{env:?}");
    };
    refused(&[("SHUTDOWN_TIMEOUT", "soon")], "SHUTDOWN_TIMEOUT");
    // A database wait REQUEST_TIMEOUT would cut off first is a contradiction, not a silent choice.
    refused(&[("REQUEST_TIMEOUT", "10s"), ("BODY_READ_TIMEOUT", "5s")], "invalid value for DB_STATEMENT_TIMEOUT");
    refused(&[("MAX_REPLY_BYTES", "1000")], "invalid value for MAX_REPLY_BYTES");
    // An entity cap for a cache GRAPH_CACHE_BYTES=0 turns off.
    refused(&[("GRAPH_CACHE_BYTES", "0"), ("GRAPH_CACHE_ENTITIES", "1000")], "invalid value for GRAPH_CACHE_ENTITIES");

    let out = mcp_server().args(["check-config"]).output().unwrap();
    assert!(out.status.success());
}

#[test]
fn help_lists_every_variable_with_its_default() {
    let out = mcp_server().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for var in [
        "ENVIRONMENT",
        "LOG_LEVEL",
        "LOG_FORMAT",
        "HOST",
        "PORT",
        "METRICS_PORT",
        "DATABASE_URL",
        "DB_HOST",
        "DB_PORT",
        "DB_NAME",
        "DB_USER",
        "DB_PASSWORD",
        "DB_POOL_MAX",
        "MIGRATE_ON_START",
        "SHUTDOWN_TIMEOUT",
        "ALLOWED_ORIGINS",
        "ALLOWED_HOSTS",
        "MAX_BODY_BYTES",
        "DB_STATEMENT_TIMEOUT",
        "MAX_REPLY_BYTES",
        "GRAPH_CACHE_BYTES",
    ] {
        assert!(help.contains(&format!("[env: {var}")), "--help lacks {var}:\n{help}");
    }
    assert!(help.contains("[default: 8000]"));
    let with_secret = mcp_server().arg("--help").env("DB_PASSWORD", "hunter2").output().unwrap();
    assert!(!String::from_utf8_lossy(&with_secret.stdout).contains("hunter2"), "secrets never shown");
}

#[tokio::test]
async fn postgres_migrate_is_idempotent_concurrent_and_required() {
    let Some(db) = TestDb::new(Db::Postgres).await else {
        return;
    };
    // serve refuses an unmigrated schema with a message that says what to do.
    let out = mcp_server()
        .args(["serve", "--port", "0", "--metrics-port", "0"])
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("mcp-server migrate"), "{stderr}");

    // Three pods' init containers at once.
    let runs: Vec<_> = (0..3)
        .map(|_| mcp_server().arg("migrate").env("DATABASE_URL", &db.url).stdout(Stdio::null()).spawn().unwrap())
        .collect();
    for mut run in runs {
        assert!(run.wait().unwrap().success());
    }
    assert!(mcp_server().arg("migrate").env("DATABASE_URL", &db.url).output().unwrap().status.success(), "idempotent");
    let out = mcp_server()
        .args(["serve", "--port", "0", "--metrics-port", "0"])
        .env("DATABASE_URL", "postgres://127.0.0.1:1/x")
        .env("DB_TIMEOUT", "1s")
        .output()
        .unwrap();
    assert!(!out.status.success(), "an unreachable database fails start-up");
}

fn generated_jsonl(entities: usize) -> String {
    let mut lines = Vec::new();
    for i in 0..entities {
        let e = json!({ "type": "entity", "name": format!("entity-{i}"), "entityType": format!("type-{}", i % 7),
            "observations": [format!("observation {i} ünïcødé"), format!("second {i}")] });
        lines.push(e.to_string());
    }
    for i in 0..entities / 2 {
        let r = json!({ "type": "relation", "from": format!("entity-{i}"), "to": format!("entity-{}", i + 1), "relationType": "next" });
        lines.push(r.to_string());
    }
    lines.join("\n")
}

async fn import_export_round_trip(db: Db) {
    let Some(test_db) = TestDb::new(db).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("memory.jsonl");
    let original = generated_jsonl(10_000);
    std::fs::File::create(&input).unwrap().write_all(original.as_bytes()).unwrap();
    let env = [("DATABASE_URL", test_db.url.as_str()), ("MIGRATE_ON_START", "true")];
    if db == Db::Postgres {
        assert!(mcp_server().arg("migrate").envs(env).output().unwrap().status.success());
    }
    for _ in 0..2 {
        let out = mcp_server().arg("import").arg(&input).envs(env).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let out = mcp_server().arg("export").envs(env).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout) == original, "export differs from the imported file");

    // A file with a bad line imports nothing.
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"type\":\"entity\",\"name\":\"x\",\"entityType\":\"t\",\"observations\":[]}\nnot json")
        .unwrap();
    let out = mcp_server().arg("import").arg(&bad).arg("--tenant").arg("other").envs(env).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2"));
    // So does a line with NUL, which no backend stores: an export always imports on either.
    std::fs::write(
        &bad,
        "{\"type\":\"entity\",\"name\":\"x\",\"entityType\":\"t\",\"observations\":[]}\n\
         {\"type\":\"entity\",\"name\":\"y\",\"entityType\":\"t\",\"observations\":[\"ok\",\"a\\u0000b\"]}",
    )
    .unwrap();
    let out = mcp_server().arg("import").arg(&bad).arg("--tenant").arg("other").envs(env).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 2: observations[1]: must not contain NUL"), "{stderr}");
    let out = mcp_server().args(["export", "--tenant", "other"]).envs(env).output().unwrap();
    assert!(out.stdout.is_empty());
}

both_backends!(import_export_round_trip, import_export_round_trip);

async fn stdio_client(db_url: &str, tenant: &str) -> common::Client {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.arg("stdio").env("DATABASE_URL", db_url).env("MCP_TENANT", tenant).env("LOG_LEVEL", "warn");
    stdio_client_on(TokioChildProcess::new(cmd).unwrap()).await
}

async fn stdio_client_on(transport: TokioChildProcess) -> common::Client {
    ClientConfig::new(ClientCapabilities::default(), Implementation::new("stdio-test", "0"))
        .serve(transport)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn stdio_serves_the_tools_and_keeps_tenants_apart() {
    let db = TestDb::new(Db::Sqlite).await.unwrap();
    let alice = stdio_client(&db.url, "alice").await;
    let bob = stdio_client(&db.url, "bob").await;
    assert_eq!(alice.list_all_tools().await.unwrap().len(), 9);
    ok(
        &alice,
        "create_entities",
        json!({ "entities": [{ "name": "secret", "entityType": "note", "observations": ["alice only"] }] }),
    )
    .await;
    assert_eq!(ok(&bob, "search_nodes", json!({ "query": "secret" })).await["entities"], json!([]));
    assert_eq!(ok(&bob, "open_nodes", json!({ "names": ["secret"] })).await["entities"], json!([]));
    // Bob's writes cannot touch Alice's entity either.
    let result = common::call(
        &bob,
        "add_observations",
        json!({ "observations": [{ "entityName": "secret", "contents": ["bob was here"] }] }),
    )
    .await
    .unwrap();
    assert_eq!(result.is_error, Some(true));
    ok(&bob, "delete_entities", json!({ "entityNames": ["secret"] })).await;
    let graph = ok(&alice, "read_graph", json!({})).await;
    assert_eq!(graph["entities"][0]["observations"], json!(["alice only"]));
    alice.cancel().await.unwrap();
    bob.cancel().await.unwrap();
}

/// Records the resource updates a client is sent.
struct Watcher(tokio::sync::mpsc::UnboundedSender<String>);

impl rmcp::ClientHandler for Watcher {
    async fn on_resource_updated(
        &self,
        params: rmcp::model::ResourceUpdatedNotificationParam,
        _context: rmcp::service::NotificationContext<rmcp::RoleClient>,
    ) {
        let _ = self.0.send(params.uri);
    }
}

#[tokio::test(flavor = "multi_thread")]
#[allow(deprecated)] // resources/subscribe is the 2025-11-25 way, which stdio clients speak
async fn stdio_subscribers_hear_of_writes_by_other_processes_through_redis() {
    let db = TestDb::new(Db::Sqlite).await.unwrap();
    let redis = std::env::var("MCP_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let process = || {
        let mut cmd = tokio::process::Command::new(BIN);
        cmd.arg("stdio").env("DATABASE_URL", &db.url).env("REDIS_URL", &redis).env("LOG_LEVEL", "warn");
        TokioChildProcess::new(cmd).unwrap()
    };
    let (tx, mut updates) = tokio::sync::mpsc::unbounded_channel();
    let watcher = Watcher(tx).serve(process()).await.unwrap();
    let writer = stdio_client_on(process()).await;
    let name = format!("watched-{:016x}", rand::random::<u64>());
    let uri = format!("memory://entities/{name}");
    watcher.subscribe(rmcp::model::SubscribeRequestParams::new(&uri)).await.unwrap();
    ok(&writer, "create_entities", json!({ "entities": [{ "name": name, "entityType": "t", "observations": [] }] }))
        .await;
    let update = tokio::time::timeout(std::time::Duration::from_secs(5), updates.recv()).await;
    assert_eq!(update.expect("an update within 5 s"), Some(uri.clone()));

    // After unsubscribing, writes no longer notify it.
    watcher.unsubscribe(rmcp::model::UnsubscribeRequestParams::new(&uri)).await.unwrap();
    ok(&writer, "add_observations", json!({ "observations": [{ "entityName": name, "contents": ["y"] }] })).await;
    let late = tokio::time::timeout(std::time::Duration::from_millis(300), updates.recv()).await;
    assert!(late.is_err(), "no update after unsubscribe: {late:?}");
    watcher.cancel().await.unwrap();
    writer.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn smoke_and_healthcheck_against_a_running_server() {
    let app = common::spawn_app(Db::Sqlite).await.unwrap();
    let smoke = tokio::process::Command::new(BIN)
        .args(["smoke", &app.url("/mcp")])
        .env("LOG_LEVEL", "warn")
        .output()
        .await
        .unwrap();
    let line = String::from_utf8_lossy(&smoke.stdout).to_string();
    assert!(smoke.status.success(), "{line}");
    assert!(line.starts_with("smoke ok:") && line.contains("9 tools"), "{line}");
    // The smoke test cleans up after itself.
    let client = app.client().await;
    assert_eq!(ok(&client, "read_graph", json!({})).await, json!({ "entities": [], "relations": [] }));

    let health =
        tokio::process::Command::new(BIN).args(["healthcheck", "--url", &app.url("/health")]).output().await.unwrap();
    assert!(health.status.success());
    let dead_port = common::free_port();
    let dead = format!("http://127.0.0.1:{dead_port}");
    let health = tokio::process::Command::new(BIN)
        .args(["healthcheck", "--url", &format!("{dead}/health")])
        .output()
        .await
        .unwrap();
    assert_eq!(health.status.code(), Some(1));
    let smoke = tokio::process::Command::new(BIN)
        .args(["smoke", &format!("{dead}/mcp"), "--timeout", "3s"])
        .output()
        .await
        .unwrap();
    assert_eq!(smoke.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&smoke.stdout).starts_with("smoke FAILED:"));
}

/// What systemd would see on NOTIFY_SOCKET from `serve`: READY=1 once listening, WATCHDOG=1 at
/// half of WATCHDOG_USEC, STOPPING=1 on SIGTERM, then exit 0.
#[test]
fn serve_speaks_sd_notify_with_a_watchdog() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(common::WAIT)).unwrap();
    let mut server = common::serve_process(
        common::free_port(),
        &[
            ("DATABASE_URL", format!("sqlite://{}/db.sqlite", dir.path().display())),
            ("NOTIFY_SOCKET", socket_path.display().to_string()),
            ("WATCHDOG_USEC", "200000".into()),
            ("SHUTDOWN_DELAY", "0s".into()),
            ("LOG_LEVEL", "warn".into()),
        ],
    )
    .spawn()
    .unwrap();
    let next = || {
        let mut buffer = [0u8; 256];
        let n = socket.recv(&mut buffer).expect("a notification within the wait");
        String::from_utf8_lossy(&buffer[..n]).trim().to_string()
    };
    assert_eq!(next(), "READY=1");
    // Within 10 s (the read timeout), several pings at ~100 ms.
    let pings = (0..3).map(|_| next()).filter(|m| m == "WATCHDOG=1").count();
    assert_eq!(pings, 3);
    let killed = Command::new("kill").args(["-TERM", &server.id().to_string()]).status().unwrap();
    assert!(killed.success());
    // Pings queued before the signal, then STOPPING=1 and no more pings.
    let after: Vec<String> = (0..20).map(|_| next()).take_while(|m| m != "STOPPING=1").collect();
    assert!(after.iter().all(|m| m == "WATCHDOG=1") && after.len() < 20, "STOPPING=1 after SIGTERM: {after:?}");
    assert!(server.wait().unwrap().success());
    socket.set_nonblocking(true).unwrap();
    assert!(socket.recv(&mut [0u8; 256]).is_err(), "nothing after STOPPING=1");
}
