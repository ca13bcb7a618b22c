//! Backups keep the rows' creation times: restored into either backend, a graph reads with the
//! times it had; a changed time fails the digest; a backup from before times (format 1) still
//! restores, its rows created at the restore.

use std::time::Duration;

use mcp_server::memory::now_ms;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::backup::{backup, count, restore, seed};
use crate::common::{self, Client, Db, ok, spawn_app};

async fn timed(client: &Client) -> Value {
    ok(client, "read_graph", json!({ "include": ["time"] })).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restored_rows_keep_their_creation_times_across_backends() {
    let Some(postgres) = spawn_app(Db::Postgres).await else { return };
    let sqlite = spawn_app(Db::Sqlite).await.unwrap();
    seed(&sqlite.client().await, "lite").await;
    seed(&postgres.client().await, "pg").await;
    // Later than any seeded time, so a row restored as created "now" would show.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let dir = tempfile::tempdir().unwrap();
    for (from, to) in [(&sqlite, Db::Postgres), (&postgres, Db::Sqlite), (&sqlite, Db::Sqlite)] {
        let file = dir.path().join(format!("{from:p}-{to:?}.bak"));
        backup(from, &file, &[]).await;
        let target = spawn_app(to).await.unwrap();
        let run = restore(&target, &file, &[]).await;
        assert!(run.ok, "into {to:?}: {}", run.stderr);
        let (was, now) = (timed(&from.client().await).await, timed(&target.client().await).await);
        assert_eq!(now, was, "into {to:?}");
        assert_eq!(count(&now, "entities"), 3);
    }
}

both_backends!(a_changed_time_fails_the_digest, |db: Db| async move {
    let Some(source) = spawn_app(db).await else { return };
    seed(&source.client().await, "src").await;
    let dir = tempfile::tempdir().unwrap();
    let (file, retimed) = (dir.path().join("graph.bak"), dir.path().join("retimed.bak"));
    backup(&source, &file, &[]).await;
    match db {
        Db::Sqlite => {
            std::fs::copy(&file, &retimed).unwrap();
            let conn = rusqlite::Connection::open(&retimed).unwrap();
            conn.execute("UPDATE relations SET created_at = created_at - 86400000", []).unwrap();
        }
        Db::Postgres => {
            let text = std::fs::read_to_string(&file).unwrap();
            let (head, rest) = text.split_once("\"type\":\"relation\"").unwrap();
            assert!(rest.contains("\"createdAt\":1"), "{rest}");
            std::fs::write(
                &retimed,
                format!("{head}\"type\":\"relation\"{}", rest.replacen("\"createdAt\":1", "\"createdAt\":2", 1)),
            )
            .unwrap();
        }
    }
    let target = spawn_app(db).await.unwrap();
    let run = restore(&target, &retimed, &[]).await;
    assert!(!run.ok && run.stderr.contains("SHA-256"), "{}", run.stderr);
    assert_eq!(count(&timed(&target.client().await).await, "entities"), 0);
});

/// A format-1 backup (before times): the JSON lines without times, its digest over them.
fn as_format_1(text: &str) -> String {
    let mut lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let trailer = lines.pop().unwrap();
    lines[0]["formatVersion"] = json!(1);
    let mut hash = Sha256::new();
    let mut out = String::new();
    for (i, line) in lines.iter_mut().enumerate() {
        let fields = line.as_object_mut().unwrap();
        if i > 0 {
            fields.remove("createdAt");
            fields.remove("observationsCreatedAt");
        }
        let line = serde_json::to_string(fields).unwrap();
        hash.update(line.as_bytes());
        hash.update(b"\n");
        out.push_str(&line);
        out.push('\n');
    }
    let trailer = json!({ "type": "end", "counts": trailer["counts"], "sha256": hex::encode(hash.finalize()) });
    out + &trailer.to_string() + "\n"
}

#[tokio::test]
async fn a_backup_from_before_times_restores_with_its_rows_created_then() {
    let Some(source) = spawn_app(Db::Postgres).await else { return };
    seed(&source.client().await, "old").await;
    let dir = tempfile::tempdir().unwrap();
    let (file, old) = (dir.path().join("graph.bak"), dir.path().join("format-1.bak"));
    backup(&source, &file, &[]).await;
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("{\"format\":\"mcp-server-backup\",\"formatVersion\":2,"), "{text}");
    std::fs::write(&old, as_format_1(&text)).unwrap();
    for db in [Db::Postgres, Db::Sqlite] {
        let target = spawn_app(db).await.unwrap();
        let before = now_ms();
        let run = restore(&target, &old, &[]).await;
        let after = now_ms();
        assert!(run.ok, "{db:?}: {}", run.stderr);
        let client = target.client().await;
        assert_eq!(
            ok(&client, "read_graph", json!({})).await,
            ok(&source.client().await, "read_graph", json!({})).await
        );
        let restored = timed(&client).await;
        let at = |v: &Value| mcp_server::memory::parse_time(v.as_str().unwrap()).unwrap();
        for created in [&restored["entities"][0]["createdAt"], &restored["relations"][0]["createdAt"]] {
            assert!((before..=after).contains(&at(created)), "{db:?}: created during the restore: {restored}");
        }
    }
}
