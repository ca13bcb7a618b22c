//! Differential test: the same scripted calls against the reference
//! `@modelcontextprotocol/server-memory` and `mcp-server stdio`; every result must match.
//! MCP_REFERENCE_SERVER names the reference's `dist/index.js` (scripts/test installs it with npm).

use crate::common;

use common::{Db, TestDb};

use rmcp::{
    ServiceExt,
    model::{CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation},
    transport::TokioChildProcess,
};
use serde_json::{Value, json};
use tokio::process::Command;

async fn connect(command: Command) -> common::Client {
    let transport = TokioChildProcess::new(command).expect("server process starts");
    ClientConfig::new(ClientCapabilities::default(), Implementation::new("differential", "0"))
        .serve(transport)
        .await
        .expect("initialize over stdio")
}

/// What a call produced, in a form both servers can be compared in: invalid arguments are one
/// class (the reference reports them as an error result, we as JSON-RPC -32602: see README).
async fn outcome(client: &common::Client, tool: &str, arguments: &Value) -> Value {
    let params =
        CallToolRequestParams::new(tool.to_string()).with_arguments(arguments.as_object().cloned().unwrap_or_default());
    match client.call_tool(params).await {
        Ok(result) => {
            let text = common::text(&result);
            if result.is_error == Some(true) && text.starts_with("MCP error -32602") {
                return json!("invalid params");
            }
            json!({ "text": text, "structured": result.structured_content, "isError": result.is_error.unwrap_or(false) })
        }
        Err(rmcp::ServiceError::McpError(e)) if e.code.0 == -32602 => json!("invalid params"),
        Err(e) => panic!("{tool}: unexpected failure {e}"),
    }
}

/// Replays `steps` against both servers, ours on `db`; returns how many results were compared.
/// Steps marked `divergence` (the README's deliberate differences) run on both but are not
/// compared.
async fn replay(steps: &[Value], db: Db) -> usize {
    let Ok(reference) = std::env::var("MCP_REFERENCE_SERVER") else {
        eprintln!("MCP_REFERENCE_SERVER is not set (scripts/test sets it): skipping the differential test");
        return 0;
    };
    let Some(test_db) = TestDb::new(db).await else { return 0 };
    let db_url = test_db.url.clone();
    if db == Db::Postgres {
        common::migrate(&db_url);
    }
    let dir = tempfile::tempdir().unwrap();
    let memory_file = dir.path().join("memory.jsonl");

    let mut node = Command::new("node");
    node.arg(&reference).env("MEMORY_FILE_PATH", &memory_file);
    let theirs = connect(node).await;
    let mut bin = Command::new(env!("CARGO_BIN_EXE_mcp-server"));
    bin.arg("stdio").env("DATABASE_URL", &db_url).env("LOG_LEVEL", "warn");
    let ours = connect(bin).await;

    // The tool definitions: same names, titles, annotations and schemas (ours add optional
    // paging properties to read_graph and search_nodes, search_nodes' mode, and reads by time).
    let their_tools = theirs.list_all_tools().await.unwrap();
    let our_tools = ours.list_all_tools().await.unwrap();
    assert_eq!(their_tools.len(), our_tools.len());
    for (t, o) in their_tools.iter().zip(&our_tools) {
        assert_eq!(
            (&t.name, &t.title, &t.description, &t.annotations),
            (&o.name, &o.title, &o.description, &o.annotations)
        );
        let (mut ti, mut oi) = (json!(*t.input_schema), json!(*o.input_schema));
        for extension in ["limit", "cursor", "mode", "depth", "asOf", "since", "until", "include"] {
            oi["properties"].as_object_mut().unwrap().remove(extension);
            ti["properties"].as_object_mut().unwrap().remove(extension);
        }
        assert_eq!(ti, oi, "input schema of {}", t.name);
    }

    let mut mismatches = Vec::new();
    let mut compared = 0;
    for (i, step) in steps.iter().enumerate() {
        let tool = step["tool"].as_str().unwrap();
        let expected = outcome(&theirs, tool, &step["arguments"]).await;
        let actual = outcome(&ours, tool, &step["arguments"]).await;
        if step.get("divergence").is_some() {
            continue;
        }
        compared += 1;
        if expected != actual {
            mismatches
                .push(format!("step {i} {tool} ({}):\n  reference: {expected}\n  ours:      {actual}", step["note"]));
        }
    }
    assert!(mismatches.is_empty(), "{} of {} calls differ:\n{}", mismatches.len(), steps.len(), mismatches.join("\n"));

    // The stored graphs are the same too: our export equals the reference's memory file.
    theirs.cancel().await.unwrap();
    ours.cancel().await.unwrap();
    let exported = std::process::Command::new(env!("CARGO_BIN_EXE_mcp-server"))
        .arg("export")
        .env("DATABASE_URL", &db_url)
        .env("LOG_LEVEL", "warn")
        .output()
        .unwrap();
    assert!(exported.status.success());
    assert_eq!(String::from_utf8(exported.stdout).unwrap(), std::fs::read_to_string(&memory_file).unwrap());
    compared
}

async fn script(db: Db) {
    let script: Value = serde_json::from_str(include_str!("differential/script.json")).unwrap();
    let steps = script["steps"].as_array().unwrap();
    assert!(steps.len() >= 40);
    let compared = replay(steps, db).await;
    eprintln!("differential (script.json, {db:?}): {compared} calls compared, all identical");
}

both_backends!(same_results_as_the_reference_server, script);

/// The 95 calls recorded in tests/fixtures (docs/reference-behaviour.md), replayed live.
async fn fixtures(db: Db) {
    let steps: Vec<Value> = serde_json::from_str(include_str!("fixtures/differential.json")).unwrap();
    assert!(steps.len() >= 60);
    let compared = replay(&steps, db).await;
    eprintln!("differential (fixtures, {db:?}): {compared} calls compared, all identical");
}

both_backends!(same_results_on_the_recorded_fixture_script, fixtures);
