//! The fuzzing harness: properties over generated input, each a bounded run (`PROPTEST_CASES`
//! raises every count for a longer local run). Library functions are driven directly where they
//! are public (JSON-RPC rejection, tool argument validation, JSONL import/export); a few cases go
//! through HTTP as a client sends them. Cursor decoding: src/memory/cursor.rs.

use crate::common;

use common::{Db, TOOLS, spawn_app};
use mcp_server::{
    mcp::{McpLayerError, jsonrpc, tools},
    memory::{MemoryError, Tenant},
    transfer,
};
use proptest::{prelude::*, test_runner::TestRunner};
use serde_json::{Map, Value, json};

fn runner(cases: u32) -> TestRunner {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(cases);
    TestRunner::new(ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() })
}

/// Any JSON value, nested a few levels, with the keys JSON-RPC and the tools look at.
fn json_value() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("jsonrpc".to_string()),
        Just("id".to_string()),
        Just("method".to_string()),
        Just("params".to_string()),
        Just("name".to_string()),
        Just("arguments".to_string()),
        Just("entities".to_string()),
        Just("entityType".to_string()),
        Just("observations".to_string()),
        Just("relations".to_string()),
        Just("limit".to_string()),
        Just("cursor".to_string()),
        ".{0,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        Just(json!("2.0")),
        Just(json!("tools/call")),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..6)
                .prop_map(|members| Value::Object(members.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Bytes a client might send: noise, any JSON, and JSON-RPC messages with any part replaced.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let message = (json_value(), json_value(), json_value(), json_value()).prop_map(|(id, method, params, args)| {
        let mut message = json!({ "jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": { "name": "create_entities", "arguments": args } });
        match &method {
            Value::String(_) => message["method"] = method,
            Value::Object(_) => message["params"] = params,
            _ => {}
        }
        message.to_string().into_bytes()
    });
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        json_value().prop_map(|v| v.to_string().into_bytes()),
        message,
    ]
}

/// The rejection of any input is -32700 or -32600, and its id is null or the input's own id.
#[test]
fn any_input_is_rejected_with_a_well_formed_error() {
    runner(512)
        .run(&body(), |bytes| {
            let rejection = jsonrpc::reject(&bytes);
            prop_assert!([jsonrpc::PARSE_ERROR, jsonrpc::INVALID_REQUEST].contains(&rejection.code));
            prop_assert!(!rejection.message.is_empty());
            if !rejection.id.is_null() {
                let sent: Value = serde_json::from_slice(&bytes).expect("an id is only kept from JSON");
                prop_assert_eq!(&sent["id"], &rejection.id);
                prop_assert!(rejection.id.is_string() || rejection.id.is_i64());
            }
            Ok(())
        })
        .unwrap();
}

/// Any arguments: a result, or -32602 naming a field; never an internal error or a panic.
#[test]
fn any_tool_arguments_get_a_result_or_an_error_naming_the_field() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(spawn_app(Db::Sqlite)).unwrap();
    let arguments = (0..TOOLS.len(), json_value()).prop_map(|(tool, value)| match value {
        Value::Object(args) => (TOOLS[tool], args),
        other => (TOOLS[tool], Map::from_iter([(tool_field(TOOLS[tool]).to_string(), other)])),
    });
    runner(256)
        .run(&arguments, |(tool, args)| {
            let outcome = rt.block_on(tools::call(&app.memory, &Tenant::new("fuzz"), tool, Some(args.clone())));
            let field = match outcome {
                Ok(Some(_)) | Err(McpLayerError::Memory(MemoryError::EntityNotFound(_))) => return Ok(()),
                Ok(None) => panic!("{tool} is a tool"),
                Err(McpLayerError::Protocol(e)) => {
                    prop_assert_eq!(e.code.0, -32602, "{}", e.message);
                    e.data.and_then(|d| d["field"].as_str().map(String::from))
                }
                Err(McpLayerError::Memory(MemoryError::Invalid { field, .. })) => Some(field),
                Err(McpLayerError::Memory(MemoryError::InvalidCursor)) => Some("cursor".into()),
                Err(other) => panic!("{tool} {args:?}: {other}"),
            };
            prop_assert!(field.is_some_and(|f| !f.is_empty() && f != "."), "{} {:?}", tool, args);
            Ok(())
        })
        .unwrap();
}

fn tool_field(tool: &str) -> &'static str {
    match tool {
        "create_entities" => "entities",
        "create_relations" | "delete_relations" => "relations",
        "add_observations" => "observations",
        "delete_entities" => "entityNames",
        "delete_observations" => "deletions",
        "search_nodes" => "query",
        "open_nodes" => "names",
        _ => "limit",
    }
}

/// Whatever is POSTed to /mcp gets a JSON-RPC result or error (or 202 for what needs no reply);
/// never a 5xx, a text body or a dropped connection.
#[test]
fn any_body_posted_to_mcp_gets_a_json_rpc_answer() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(spawn_app(Db::Sqlite)).unwrap();
    let client = reqwest::Client::new();
    runner(64)
        .run(&body(), |bytes| {
            let (status, reply) = rt.block_on(async {
                let response = client
                    .post(app.url("/mcp"))
                    .header("content-type", "application/json")
                    .header("accept", "application/json, text/event-stream")
                    .header("mcp-protocol-version", "2025-11-25")
                    .body(bytes.clone())
                    .send()
                    .await
                    .expect("an answer");
                (response.status().as_u16(), response.bytes().await.unwrap())
            });
            prop_assert!([200, 202, 400].contains(&status), "{status} for {:?}", String::from_utf8_lossy(&bytes));
            if status == 202 {
                return Ok(());
            }
            let reply: Value = serde_json::from_slice(&reply).expect("a JSON body");
            prop_assert_eq!(&reply["jsonrpc"], "2.0");
            prop_assert!(reply.get("result").is_some() != reply.get("error").is_some(), "{}", reply);
            if let Some(error) = reply.get("error") {
                prop_assert!(error["code"].is_i64() && error["message"].is_string(), "{}", reply);
            }
            Ok(())
        })
        .unwrap();
}

/// Any lines: imported, or refused naming a line that exists; never an I/O error or a panic.
#[test]
fn any_jsonl_parses_or_names_the_bad_line() {
    let line = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..24),
        json_value().prop_map(|v| v.to_string().into_bytes()),
        ("[^\n]{0,8}", "[^\n]{0,8}").prop_map(|(n, t)| {
            json!({ "type": "entity", "name": n, "entityType": t, "observations": [] }).to_string().into_bytes()
        }),
    ];
    runner(512)
        .run(&prop::collection::vec(line, 0..8), |lines| {
            let file = lines.join(&b'\n');
            let count = file.split(|b| *b == b'\n').count();
            match transfer::parse(&file[..]) {
                Ok(_) => {}
                Err(transfer::TransferError::Parse { line, .. }) => prop_assert!((1..=count).contains(&line)),
                Err(other) => panic!("{other}"),
            }
            Ok(())
        })
        .unwrap();
}

/// A valid graph in the reference's file format: unique names, relations between them.
fn graph_file() -> impl Strategy<Value = String> {
    let text = "[^\u{0}\n]{1,12}";
    let entities = prop::collection::btree_map(text, (text, prop::collection::btree_set(text, 0..3)), 1..8);
    (entities, prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>(), text), 0..8))
        .prop_map(|(entities, relations)| {
            let names: Vec<&String> = entities.keys().collect();
            let mut lines: Vec<String> = entities
                .iter()
                .map(|(name, (kind, observations))| {
                    json!({ "type": "entity", "name": name, "entityType": kind, "observations": observations })
                        .to_string()
                })
                .collect();
            let mut seen = std::collections::HashSet::new();
            for (from, to, kind) in relations {
                let (from, to) = (names[from.index(names.len())], names[to.index(names.len())]);
                if seen.insert((from, to, kind.clone())) {
                    lines.push(json!({ "type": "relation", "from": from, "to": to, "relationType": kind }).to_string());
                }
            }
            lines.join("\n")
        })
}

/// export ∘ import is the identity on valid graphs, byte for byte.
#[test]
fn export_after_import_gives_the_file_back() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(spawn_app(Db::Sqlite)).unwrap();
    let case = std::sync::atomic::AtomicU32::new(0);
    runner(24)
        .run(&graph_file(), |file| {
            // A tenant per case: an empty graph each time, in one database.
            let tenant = Tenant::new(format!("graph-{}", case.fetch_add(1, std::sync::atomic::Ordering::Relaxed)));
            let (entities, relations) = transfer::parse(file.as_bytes()).expect("a valid file parses");
            let mut out = Vec::new();
            rt.block_on(async {
                transfer::import(&app.memory, &tenant, entities, relations, |_| {}).await.unwrap();
                transfer::export(&app.memory, &tenant, &mut out).await.unwrap();
            });
            prop_assert_eq!(String::from_utf8(out).unwrap(), file);
            Ok(())
        })
        .unwrap();
}
