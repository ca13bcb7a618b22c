//! JSON-RPC errors as a client sees them on stdio: every line gets an answer, with the request's
//! id when it was usable. (The same over HTTP: tests/http.rs.)

use crate::common;

use std::{process::Stdio, time::Duration};

use common::{Db, TestDb};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// `mcp-server stdio` after the handshake: write lines, read replies.
struct StdioServer {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    _db: TestDb,
}

impl StdioServer {
    async fn start() -> StdioServer {
        let db = TestDb::new(Db::Sqlite).await.unwrap();
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-server"))
            .arg("stdio")
            .env("DATABASE_URL", &db.url)
            .env("LOG_LEVEL", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut stdio = StdioServer { child, stdin, stdout, _db: db };
        let init = json!({ "jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": { "name": "t", "version": "0" } } });
        stdio.send(&init.to_string()).await;
        assert_eq!(stdio.reply().await["id"], 0);
        stdio.send(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).await;
        stdio
    }

    async fn send(&mut self, line: &str) {
        self.stdin.write_all(format!("{line}\n").as_bytes()).await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    async fn reply(&mut self) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(10), self.stdout.next_line())
            .await
            .expect("a reply within 10 s")
            .unwrap()
            .expect("stdout still open");
        serde_json::from_str(&line).unwrap()
    }
}

#[tokio::test]
async fn every_bad_line_is_answered_with_the_id_it_carried() {
    let mut stdio = StdioServer::start().await;
    let cases = [
        ("not json at all", -32700, Value::Null),
        (r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"s":"\ud800"}}"#, -32700, Value::Null),
        (r#"{"jsonrpc":"1.0","id":2,"method":"ping"}"#, -32600, json!(2)),
        (r#"{"id":"three","method":"ping"}"#, -32600, json!("three")),
        (r#"{"jsonrpc":"2.0","id":4.5,"method":"ping"}"#, -32600, Value::Null),
        (r#"[{"jsonrpc":"2.0","id":5,"method":"ping"}]"#, -32600, Value::Null),
        (
            r#"{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"read_graph","arguments":[]}}"#,
            -32602,
            json!(6),
        ),
    ];
    // One at a time: a reply is matched to its line, and the server keeps serving after each.
    for (line, code, id) in cases {
        stdio.send(line).await;
        let reply = stdio.reply().await;
        assert_eq!((&reply["error"]["code"], &reply["id"]), (&json!(code), &id), "{line} -> {reply}");
        assert_eq!(reply["jsonrpc"], "2.0");
        assert!(reply.as_object().unwrap().contains_key("id"), "JSON-RPC requires the id member: {reply}");
    }
    // A notification is never answered, an invalid one neither: the next reply is the ping's.
    stdio.send(r#"{"method":"notifications/whatever","params":5}"#).await;
    stdio.send(r#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#).await;
    assert_eq!(stdio.reply().await, json!({ "jsonrpc": "2.0", "id": 7, "result": {} }));
    drop(stdio.stdin);
    assert!(stdio.child.wait().await.unwrap().success(), "EOF ends the server cleanly");
}
