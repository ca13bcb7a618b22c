//! `mcp-server backup` and `restore` as operators run them: the binary against a serving
//! server's database, the graphs checked through MCP on the restored database.

use crate::common;

use std::{
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use common::{Client, Db, HS256_FLAGS, TestApp, call, ok, spawn_app, spawn_app_with};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_mcp-server");

pub(crate) struct Run {
    pub ok: bool,
    pub stderr: String,
}

/// The binary with a clean environment: only the database.
async fn cli(db_url: &str, args: &[&str]) -> Run {
    let out = tokio::process::Command::new(BIN)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", db_url)
        .env("LOG_LEVEL", "warn")
        .output()
        .await
        .unwrap();
    Run { ok: out.status.success(), stderr: String::from_utf8_lossy(&out.stderr).into_owned() }
}

pub(crate) async fn backup(app: &TestApp, dest: &Path, extra: &[&str]) {
    let mut args = vec!["backup", dest.to_str().unwrap()];
    args.extend_from_slice(extra);
    let run = cli(&app.db.url, &args).await;
    assert!(run.ok, "backup failed: {}", run.stderr);
}

pub(crate) async fn restore(app: &TestApp, src: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["restore", src.to_str().unwrap()];
    args.extend_from_slice(extra);
    cli(&app.db.url, &args).await
}

pub(crate) async fn graph(client: &Client) -> Value {
    ok(client, "read_graph", json!({})).await
}

/// A client of `tenant` on a server started with `HS256_FLAGS`.
async fn tenant_client(app: &TestApp, tenant: &str) -> Client {
    use rmcp::{
        ServiceExt,
        model::{ClientCapabilities, ClientConfig, Implementation},
        transport::{StreamableHttpClientTransport, streamable_http_client::StreamableHttpClientTransportConfig},
    };
    let token = common::bearer(tenant, "memory:read memory:write");
    let config = StreamableHttpClientTransportConfig::with_uri(app.url("/mcp"))
        .auth_header(token.trim_start_matches("Bearer ").to_string());
    ClientConfig::new(ClientCapabilities::default(), Implementation::new("backup-tests", "0"))
        .serve(StreamableHttpClientTransport::from_config(config))
        .await
        .expect("MCP initialize")
}

/// A graph with what a restore must keep: observation order, Unicode (searchable by its
/// lowercase), relations in order.
pub(crate) async fn seed(client: &Client, tag: &str) {
    let entities = json!([
        { "name": format!("Ärger-{tag}"), "entityType": "Gefühl", "observations": ["zweitens", "erstens"] },
        { "name": format!("bob-{tag}"), "entityType": "person", "observations": [] },
        { "name": format!("carol-{tag}"), "entityType": "person", "observations": ["likes ÜBER tea"] },
    ]);
    ok(client, "create_entities", json!({ "entities": entities })).await;
    let relations = json!([
        { "from": format!("carol-{tag}"), "to": format!("bob-{tag}"), "relationType": "knows" },
        { "from": format!("bob-{tag}"), "to": format!("Ärger-{tag}"), "relationType": "feels" },
    ]);
    ok(client, "create_relations", json!({ "relations": relations })).await;
    let more = json!([{ "entityName": format!("bob-{tag}"), "contents": ["b", "a"] }]);
    ok(client, "add_observations", json!({ "observations": more })).await;
}

pub(crate) fn count(graph: &Value, key: &str) -> usize {
    graph[key].as_array().unwrap().len()
}

/// One acknowledged write of the load: writer, step, and when it was sent and answered.
#[derive(Clone, Copy)]
struct Ack {
    writer: usize,
    step: usize,
    /// 0: create_entities (with observation o-0), 1: add_observations (o-1).
    op: usize,
    sent: Instant,
    answered: Instant,
}

async fn write_load(client: Client, writer: usize, stop: Arc<AtomicBool>, acks: Arc<Mutex<Vec<Ack>>>) {
    for step in 0.. {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let name = format!("w{writer}-{step}");
        let calls = [
            (
                "create_entities",
                json!({ "entities": [{ "name": name, "entityType": "load", "observations": [format!("o{step}-0")] }] }),
            ),
            (
                "add_observations",
                json!({ "observations": [{ "entityName": name, "contents": [format!("o{step}-1")] }] }),
            ),
        ];
        for (op, (tool, args)) in calls.into_iter().enumerate() {
            let sent = Instant::now();
            let result = call(&client, tool, args).await.expect("write");
            assert_ne!(result.is_error, Some(true), "{tool}: {result:?}");
            acks.lock().unwrap().push(Ack { writer, step, op, sent, answered: Instant::now() });
        }
    }
}

both_backends!(backup_under_write_load_keeps_every_acknowledged_write, |db: Db| async move {
    let Some(app) = spawn_app(db).await else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("under-load.bak");
    let (stop, acks) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(Vec::new())));
    let mut writers = Vec::new();
    for writer in 0..4 {
        writers.push(tokio::spawn(write_load(app.client().await, writer, stop.clone(), acks.clone())));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    backup(&app, &file, &[]).await;
    let ended = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    for writer in writers {
        writer.await.unwrap();
    }
    let acks = acks.lock().unwrap().clone();

    let target = spawn_app(db).await.unwrap();
    let run = restore(&target, &file, &[]).await;
    assert!(run.ok, "restore failed: {}", run.stderr);
    let restored = graph(&target.client().await).await;
    let observations: std::collections::HashMap<String, Vec<String>> = (restored["entities"].as_array().unwrap())
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_string(), serde_json::from_value(e["observations"].clone()).unwrap()))
        .collect();

    let before = acks.iter().filter(|a| a.answered < started).count();
    let after = acks.iter().filter(|a| a.sent > ended).count();
    assert!(before > 0 && after > 0, "the load ran around the backup ({before} writes before, {after} after)");
    for ack in &acks {
        let name = format!("w{}-{}", ack.writer, ack.step);
        let held = observations.get(&name).is_some_and(|o| o.contains(&format!("o{}-{}", ack.step, ack.op)));
        if ack.answered < started {
            assert!(
                held,
                "write {}.{} of {name} was acknowledged before the backup began and is missing",
                ack.op, ack.step
            );
        }
        if ack.sent > ended {
            assert!(!held, "write {}.{} of {name} was sent after the backup ended and is in it", ack.op, ack.step);
        }
    }
    // Each writer's writes are sequential: what the backup holds of them is a prefix, and no
    // create is half there (an entity without the observation it was created with).
    for writer in 0..4 {
        let steps = (0..).take_while(|step| observations.contains_key(&format!("w{writer}-{step}"))).count();
        let held = observations.keys().filter(|n| n.starts_with(&format!("w{writer}-"))).count();
        assert_eq!(held, steps, "writer {writer}: the restored steps are not a prefix");
        for step in 0..steps {
            let got = &observations[&format!("w{writer}-{step}")];
            let whole = vec![format!("o{step}-0"), format!("o{step}-1")];
            let last_half = step + 1 == steps && got == &whole[..1];
            assert!(got == &whole || last_half, "writer {writer} step {step}: observations {got:?}");
        }
    }
});

both_backends!(restore_refuses_a_graph_that_is_not_empty_unless_replacing, |db: Db| async move {
    let Some(source) = spawn_app(db).await else { return };
    seed(&source.client().await, "src").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("graph.bak");
    backup(&source, &file, &[]).await;
    let run = cli(&source.db.url, &["backup", file.to_str().unwrap()]).await;
    assert!(!run.ok && run.stderr.contains("exists"), "a backup overwrote its destination: {}", run.stderr);

    let target = spawn_app(db).await.unwrap();
    let client = target.client().await;
    ok(&client, "create_entities", json!({ "entities": [{ "name": "X", "entityType": "t", "observations": ["x"] }] }))
        .await;
    let before = graph(&client).await;
    let run = restore(&target, &file, &[]).await;
    assert!(!run.ok, "restored over a graph that is not empty");
    assert!(run.stderr.contains("--replace") && run.stderr.contains("\"default\""), "{}", run.stderr);
    assert_eq!(graph(&client).await, before, "a refused restore changed the graph");

    let run = restore(&target, &file, &["--replace"]).await;
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(graph(&client).await, graph(&source.client().await).await);
    let found = ok(&client, "search_nodes", json!({ "query": "über" })).await;
    assert_eq!(count(&found, "entities"), 1, "the restored text is searchable by its lowercase: {found}");
});

both_backends!(a_corrupted_or_truncated_backup_is_refused_and_writes_nothing, |db: Db| async move {
    let Some(source) = spawn_app(db).await else { return };
    seed(&source.client().await, "src").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("graph.bak");
    backup(&source, &file, &[]).await;
    let bytes = std::fs::read(&file).unwrap();

    let truncated = dir.path().join("truncated.bak");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    // A changed value the file's own structure does not notice: only the digest does.
    let tampered = dir.path().join("tampered.bak");
    match db {
        Db::Sqlite => {
            std::fs::write(&tampered, &bytes).unwrap();
            let conn = rusqlite::Connection::open(&tampered).unwrap();
            conn.execute("UPDATE observations SET content = 'forged' WHERE content = 'erstens'", []).unwrap();
        }
        Db::Postgres => {
            let text = String::from_utf8(bytes.clone()).unwrap();
            assert!(text.contains("\"erstens\""));
            std::fs::write(&tampered, text.replace("\"erstens\"", "\"forged\"")).unwrap();
        }
    }
    // A backup of a schema newer than this binary knows (a newer release made it).
    let newer = dir.path().join("newer.bak");
    match db {
        Db::Sqlite => {
            std::fs::write(&newer, &bytes).unwrap();
            let conn = rusqlite::Connection::open(&newer).unwrap();
            conn.execute("UPDATE mcp_backup SET meta = json_set(meta, '$.schemaVersion', 99991231000001)", []).unwrap();
        }
        Db::Postgres => {
            let text = String::from_utf8(bytes.clone()).unwrap();
            let (head, rest) = text.split_once("\"schemaVersion\":").unwrap();
            let rest = rest.trim_start_matches(|c: char| c.is_ascii_digit());
            std::fs::write(&newer, format!("{head}\"schemaVersion\":99991231000001{rest}")).unwrap();
        }
    }
    let garbage = dir.path().join("garbage.bak");
    std::fs::write(&garbage, b"not a backup at all\n").unwrap();

    let target = spawn_app(db).await.unwrap();
    let client = target.client().await;
    for (bad, says) in
        [(&truncated, ""), (&tampered, "SHA-256"), (&newer, "newer than this binary"), (&garbage, "neither")]
    {
        let run = restore(&target, bad, &[]).await;
        let name = bad.file_name().unwrap().to_str().unwrap();
        assert!(!run.ok, "{name} was restored");
        assert!(run.stderr.contains(name) && run.stderr.contains(says), "{name}: {}", run.stderr);
        assert!(run.stderr.contains("nothing was restored"), "{name}: {}", run.stderr);
        let now = graph(&client).await;
        assert_eq!((count(&now, "entities"), count(&now, "relations")), (0, 0), "{name} wrote {now}");
    }
    assert!(restore(&target, &file, &[]).await.ok, "the intact backup restores");
});

both_backends!(tenant_restores_only_that_tenant, |db: Db| async move {
    let Some(source) = spawn_app_with(db, &HS256_FLAGS).await else { return };
    for tenant in ["alice", "bob"] {
        seed(&tenant_client(&source, tenant).await, tenant).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let (whole, bob_only) = (dir.path().join("whole.bak"), dir.path().join("bob.bak"));
    backup(&source, &whole, &[]).await;
    backup(&source, &bob_only, &["--tenant", "bob"]).await;

    let target = spawn_app_with(db, &HS256_FLAGS).await.unwrap();
    let run = restore(&target, &whole, &["--tenant", "carol"]).await;
    assert!(!run.ok && run.stderr.contains("carol") && run.stderr.contains("not in the backup"), "{}", run.stderr);
    let run = restore(&target, &whole, &["--tenant", "alice"]).await;
    assert!(run.ok, "{}", run.stderr);
    let (alice, bob) = (tenant_client(&target, "alice").await, tenant_client(&target, "bob").await);
    assert_eq!(graph(&alice).await, graph(&tenant_client(&source, "alice").await).await);
    assert_eq!(count(&graph(&bob).await, "entities"), 0, "bob was restored too");

    let run = restore(&target, &bob_only, &[]).await;
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(graph(&bob).await, graph(&tenant_client(&source, "bob").await).await);
    let text = String::from_utf8_lossy(&std::fs::read(&bob_only).unwrap()).into_owned();
    assert!(!text.contains("alice"), "a one-tenant backup holds another tenant's data");
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_and_postgres_backups_restore_into_each_other() {
    let Some(postgres) = spawn_app(Db::Postgres).await else { return };
    let sqlite = spawn_app(Db::Sqlite).await.unwrap();
    seed(&sqlite.client().await, "lite").await;
    seed(&postgres.client().await, "pg").await;
    let dir = tempfile::tempdir().unwrap();
    for (from, to) in [(&sqlite, Db::Postgres), (&postgres, Db::Sqlite)] {
        let file = dir.path().join(format!("{to:?}.bak"));
        backup(from, &file, &[]).await;
        let target = spawn_app(to).await.unwrap();
        let run = restore(&target, &file, &[]).await;
        assert!(run.ok, "into {to:?}: {}", run.stderr);
        let client = target.client().await;
        let restored = graph(&client).await;
        assert_eq!(restored, graph(&from.client().await).await, "into {to:?}");
        assert_eq!(count(&restored, "entities"), 3);
        let found = ok(&client, "search_nodes", json!({ "query": "ärger" })).await;
        assert_eq!(count(&found, "entities"), 1, "into {to:?}: {found}");
    }
}
