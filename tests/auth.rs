//! The JWT attack suite and the other auth modes, through HTTP as a client sees them: status,
//! WWW-Authenticate, and tenant isolation.

use crate::common;

use std::{
    process::Command,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use axum::{
    Json, Router,
    routing::{get, post},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use common::{Db, spawn_app_with};
use jsonwebtoken::{
    Algorithm, EncodingKey, Header, encode,
    jwk::{Jwk, JwkSet},
};
use serde_json::{Value, json};

mod provider;

const SECRET: &str = "0123456789abcdef0123456789abcdef-test-secret";
const RESOURCE: &str = "https://mcp.example.test/mcp";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn claims(sub: &str) -> Value {
    json!({ "iss": "mcp-server", "aud": RESOURCE, "sub": sub, "scope": "memory:read memory:write", "exp": now() + 600, "nbf": now() - 5 })
}

fn hs256(claims: &Value) -> String {
    encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(SECRET.as_bytes())).unwrap()
}

async fn hs256_app() -> common::TestApp {
    spawn_app_with(Db::Sqlite, &["--jwt-secret", SECRET, "--mcp-resource-url", RESOURCE]).await.unwrap()
}

/// POSTs one JSON-RPC request with the given Authorization header value.
async fn rpc(app: &common::TestApp, auth: Option<&str>, body: Value) -> reqwest::Response {
    rpc_to(&app.url("/mcp"), auth, body).await
}

async fn rpc_to(url: &str, auth: Option<&str>, body: Value) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .json(&body);
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    request.send().await.unwrap()
}

fn list_tools() -> Value {
    json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/list" })
}

fn call(tool: &str, arguments: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": { "name": tool, "arguments": arguments } })
}

fn challenge(response: &reqwest::Response) -> String {
    response.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
}

async fn expect_401(app: &common::TestApp, token: &str, why: &str) {
    let response = rpc(app, Some(&format!("Bearer {token}")), list_tools()).await;
    assert_eq!(response.status(), 401, "{why}");
    let www = challenge(&response);
    assert!(www.starts_with("Bearer ") && www.contains("error=\"invalid_token\""), "{why}: {www}");
    assert!(
        www.contains("resource_metadata=\"https://mcp.example.test/.well-known/oauth-protected-resource/mcp\""),
        "{why}: {www}"
    );
}

#[tokio::test]
async fn hs256_attack_suite() {
    let app = hs256_app().await;

    // No token: 401 with an absolute resource_metadata URL.
    let response = rpc(&app, None, list_tools()).await;
    assert_eq!(response.status(), 401);
    assert!(
        challenge(&response)
            .contains("resource_metadata=\"https://mcp.example.test/.well-known/oauth-protected-resource/mcp\"")
    );

    let valid = hs256(&claims("alice"));
    assert_eq!(rpc(&app, Some(&format!("Bearer {valid}")), list_tools()).await.status(), 200);

    // alg "none": an unsigned token.
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims("alice").to_string());
    expect_401(&app, &format!("{header}.{payload}."), "alg none").await;

    let mut expired = claims("alice");
    expired["exp"] = json!(now() - 120);
    expect_401(&app, &hs256(&expired), "expired beyond the 60 s leeway").await;
    let mut early = claims("alice");
    early["nbf"] = json!(now() + 300);
    expect_401(&app, &hs256(&early), "nbf in the future").await;
    let mut wrong_iss = claims("alice");
    wrong_iss["iss"] = json!("https://evil.example");
    expect_401(&app, &hs256(&wrong_iss), "wrong issuer").await;
    let mut wrong_aud = claims("alice");
    wrong_aud["aud"] = json!("https://other.example/mcp");
    expect_401(&app, &hs256(&wrong_aud), "wrong audience").await;
    let mut no_aud = claims("alice");
    no_aud.as_object_mut().unwrap().remove("aud");
    expect_401(&app, &hs256(&no_aud), "missing audience").await;
    let bad_signature = encode(
        &Header::new(Algorithm::HS256),
        &claims("alice"),
        &EncodingKey::from_secret(b"another-secret-of-32-bytes-length!"),
    )
    .unwrap();
    expect_401(&app, &bad_signature, "bad signature").await;
    let hs384 =
        encode(&Header::new(Algorithm::HS384), &claims("alice"), &EncodingKey::from_secret(SECRET.as_bytes())).unwrap();
    expect_401(&app, &hs384, "algorithm outside the allow-list").await;

    // Malformed header and token in the query string: 400 invalid_request.
    let response = rpc(&app, Some(&format!("Basic {valid}")), list_tools()).await;
    assert_eq!(response.status(), 400);
    assert!(challenge(&response).contains("error=\"invalid_request\""));
    let in_query = rpc_to(&format!("{}?access_token={valid}", app.url("/mcp")), None, list_tools()).await;
    assert_eq!(in_query.status(), 400);
    assert!(challenge(&in_query).contains("error=\"invalid_request\""));

    // Missing scope: 403 insufficient_scope naming the scope.
    let mut read_only = claims("alice");
    read_only["scope"] = json!("memory:read");
    let read_only = format!("Bearer {}", hs256(&read_only));
    assert_eq!(rpc(&app, Some(&read_only), call("read_graph", json!({}))).await.status(), 200);
    let response = rpc(&app, Some(&read_only), call("create_entities", json!({ "entities": [] }))).await;
    assert_eq!(response.status(), 403);
    let www = challenge(&response);
    assert!(www.contains("error=\"insufficient_scope\"") && www.contains("scope=\"memory:write\""), "{www}");
    let mut no_scope = claims("alice");
    no_scope["scope"] = json!("");
    let no_scope = format!("Bearer {}", hs256(&no_scope));
    assert_eq!(rpc(&app, Some(&no_scope), list_tools()).await.status(), 403);
    // Resource updates name entities: listening needs the read scope too.
    let listen = json!({ "jsonrpc": "2.0", "id": 3, "method": "subscriptions/listen",
        "params": { "notifications": { "resourceSubscriptions": ["memory://knowledge-graph"] } } });
    assert_eq!(rpc(&app, Some(&no_scope), listen).await.status(), 403);

    // RFC 9728 metadata, at both paths.
    for path in ["/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"] {
        let metadata: Value = reqwest::get(app.url(path)).await.unwrap().json().await.unwrap();
        assert_eq!(metadata["resource"], RESOURCE);
        assert_eq!(metadata["bearer_methods_supported"], json!(["header"]));
        assert_eq!(metadata["scopes_supported"], json!(["memory:read", "memory:write"]));
        assert_eq!(metadata["authorization_servers"], json!(["mcp-server"]));
    }
}

fn text_of(body: &Value) -> Value {
    body["result"]["structuredContent"].clone()
}

#[tokio::test]
async fn tenants_never_see_each_other() {
    let app = hs256_app().await;
    let alice = format!("Bearer {}", hs256(&claims("alice")));
    let bob = format!("Bearer {}", hs256(&claims("bob")));
    let entities: Vec<Value> = (0..3)
        .map(|i| json!({ "name": format!("alice-{i}"), "entityType": "secret", "observations": ["private"] }))
        .collect();
    assert_eq!(rpc(&app, Some(&alice), call("create_entities", json!({ "entities": entities }))).await.status(), 200);

    for (tool, args) in [
        ("read_graph", json!({})),
        ("search_nodes", json!({ "query": "private" })),
        ("open_nodes", json!({ "names": ["alice-0"] })),
    ] {
        let body: Value = rpc(&app, Some(&bob), call(tool, args)).await.json().await.unwrap();
        assert_eq!(text_of(&body)["entities"], json!([]), "bob sees nothing through {tool}");
    }
    let resource = json!({ "jsonrpc": "2.0", "id": 3, "method": "resources/read", "params": { "uri": "memory://entities/alice-0" } });
    let body: Value = rpc(&app, Some(&bob), resource).await.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32002, "bob cannot read alice's entity resource");

    // Bob's writes cannot reach alice's entities.
    let body: Value = rpc(
        &app,
        Some(&bob),
        call("add_observations", json!({ "observations": [{ "entityName": "alice-0", "contents": ["bob"] }] })),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(body["result"]["isError"], true);
    rpc(&app, Some(&bob), call("delete_entities", json!({ "entityNames": ["alice-0"] }))).await;

    // A cursor alice was given is refused for bob.
    let body: Value = rpc(&app, Some(&alice), call("read_graph", json!({ "limit": 1 }))).await.json().await.unwrap();
    let cursor = text_of(&body)["nextCursor"].as_str().unwrap().to_string();
    let body: Value =
        rpc(&app, Some(&bob), call("read_graph", json!({ "limit": 1, "cursor": cursor }))).await.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32602);

    let body: Value = rpc(&app, Some(&alice), call("read_graph", json!({}))).await.json().await.unwrap();
    let graph = text_of(&body);
    assert_eq!(graph["entities"].as_array().unwrap().len(), 3);
    assert_eq!(graph["entities"][0]["observations"], json!(["private"]));
}

#[test]
fn token_command_mints_a_token_the_server_accepts_and_config_guards_hold() {
    let bin = env!("CARGO_BIN_EXE_mcp-server");
    let out = Command::new(bin)
        .args(["token", "--tenant", "frank", "--scope", "memory:read", "--ttl", "5m"])
        .env_clear()
        .env("JWT_SECRET", SECRET)
        .env("MCP_RESOURCE_URL", RESOURCE)
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap();
    let data =
        jsonwebtoken::decode::<Value>(token.trim(), &jsonwebtoken::DecodingKey::from_secret(SECRET.as_bytes()), &{
            let mut v = jsonwebtoken::Validation::new(Algorithm::HS256);
            v.set_audience(&[RESOURCE]);
            v
        })
        .unwrap();
    assert_eq!(data.claims["sub"], "frank");
    assert_eq!(data.claims["scope"], "memory:read");
    assert_eq!(data.claims["iss"], "mcp-server");

    // OAUTH_ISSUER with a secret: auto cannot tell HS256 from discovery, so it is an error naming both;
    // AUTH_MODE=hs256 makes the issuer the tokens' iss, and `token` refuses a mode it cannot serve.
    let issuer = "https://sso.example.com/realms/mcp";
    let both = Command::new(bin)
        .arg("check-config")
        .env_clear()
        .env("JWT_SECRET", SECRET)
        .env("OAUTH_ISSUER", issuer)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&both.stderr);
    assert_eq!(both.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("JWT_SECRET") && stderr.contains("OAUTH_ISSUER"), "{stderr}");
    let mint = |mode: &str| {
        Command::new(bin)
            .args(["token", "--tenant", "frank"])
            .env_clear()
            .env("JWT_SECRET", SECRET)
            .env("OAUTH_ISSUER", issuer)
            .env("AUTH_MODE", mode)
            .env("MCP_RESOURCE_URL", RESOURCE)
            .output()
            .unwrap()
    };
    let hs256 = mint("hs256");
    assert!(hs256.status.success(), "{}", String::from_utf8_lossy(&hs256.stderr));
    let claims = jsonwebtoken::dangerous::insecure_decode::<Value>(String::from_utf8(hs256.stdout).unwrap().trim());
    assert_eq!(claims.unwrap().claims["iss"], issuer);
    let jwks = mint("jwks");
    assert_eq!(jwks.status.code(), Some(2), "a token the server would answer 503 to is not minted");
    assert!(String::from_utf8_lossy(&jwks.stderr).contains("AUTH_MODE"));

    let short = Command::new(bin).arg("check-config").env_clear().env("JWT_SECRET", "too-short").output().unwrap();
    assert_eq!(short.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&short.stderr).contains("JWT_SECRET"));
    let open_prod =
        Command::new(bin).arg("check-config").env_clear().env("ENVIRONMENT", "production").output().unwrap();
    assert_eq!(open_prod.status.code(), Some(2), "production refuses to run without auth");
    let opted_out = Command::new(bin)
        .arg("check-config")
        .env_clear()
        .env("ENVIRONMENT", "production")
        .env("ALLOW_UNAUTHENTICATED", "true")
        .output()
        .unwrap();
    assert!(opted_out.status.success());
}
