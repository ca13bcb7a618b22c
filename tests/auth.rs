//! The JWT attack suite and the other auth modes, through HTTP as a client sees them: status,
//! WWW-Authenticate, and tenant isolation.

mod common;

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

/// A test key pair made by openssl: (private key for signing, public JWK for the JWKS).
fn keypair(kind: &str, alg: Algorithm, kid: &str) -> (EncodingKey, Jwk) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key.pem");
    let args: Vec<&str> = match kind {
        "rsa" => vec!["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        "ec" => vec!["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        _ => vec!["genpkey", "-algorithm", "ED25519"],
    };
    let out = Command::new("openssl").args(&args).arg("-out").arg(&path).output().expect("openssl is installed");
    assert!(out.status.success());
    let pem = std::fs::read(&path).unwrap();
    let key = match kind {
        "rsa" => EncodingKey::from_rsa_pem(&pem),
        "ec" => EncodingKey::from_ec_pem(&pem),
        _ => EncodingKey::from_ed_pem(&pem),
    }
    .unwrap();
    let mut jwk = Jwk::from_encoding_key(&key, alg).unwrap();
    jwk.common.key_id = Some(kid.into());
    (key, jwk)
}

/// An in-test authorization server: metadata, a JWKS that can be rotated, and introspection.
struct Issuer {
    url: String,
    jwks: Arc<Mutex<Vec<Jwk>>>,
    fetches: Arc<AtomicUsize>,
}

async fn issuer() -> Issuer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let jwks: Arc<Mutex<Vec<Jwk>>> = Arc::default();
    let fetches = Arc::new(AtomicUsize::new(0));
    let (keys, count, base) = (jwks.clone(), fetches.clone(), url.clone());
    let router = Router::new()
        .route(
            "/.well-known/oauth-authorization-server",
            get(move || std::future::ready(Json(json!({ "issuer": base, "jwks_uri": format!("{base}/jwks"), "introspection_endpoint": format!("{base}/introspect") })))),
        )
        .route(
            "/jwks",
            get(move || {
                count.fetch_add(1, Ordering::SeqCst);
                std::future::ready(Json(JwkSet { keys: keys.lock().unwrap().clone() }))
            }),
        )
        .route("/introspect", post(introspect));
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Issuer { url, jwks, fetches }
}

async fn introspect(headers: axum::http::HeaderMap, body: String) -> (axum::http::StatusCode, Json<Value>) {
    let expected = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("mcp-client:client-secret"));
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return (axum::http::StatusCode::UNAUTHORIZED, Json(json!({ "error": "invalid_client" })));
    }
    let token = url::form_urlencoded::parse(body.as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.to_string())
        .unwrap_or_default();
    let answer = match token.as_str() {
        "active-token" => {
            json!({ "active": true, "sub": "carol", "scope": "memory:read memory:write", "aud": RESOURCE, "exp": now() + 600 })
        }
        "read-only-token" => {
            json!({ "active": true, "sub": "carol", "scope": "memory:read", "aud": RESOURCE, "exp": now() + 600 })
        }
        "other-audience" => {
            json!({ "active": true, "sub": "carol", "scope": "memory:read", "aud": "https://other/mcp", "exp": now() + 600 })
        }
        _ => json!({ "active": false }),
    };
    (axum::http::StatusCode::OK, Json(answer))
}

fn asym_claims(issuer: &str, sub: &str) -> Value {
    json!({ "iss": issuer, "aud": [RESOURCE, "other"], "sub": sub, "scope": "memory:read memory:write", "exp": now() + 600 })
}

fn signed(key: &EncodingKey, alg: Algorithm, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.into());
    encode(&header, claims, key).unwrap()
}

/// A server that trusts `issuer`, discovering its JWKS; refetches at most once per `refresh`.
async fn jwks_app(issuer: &Issuer, refresh: &str) -> common::TestApp {
    let args = ["--oauth-issuer", &issuer.url, "--mcp-resource-url", RESOURCE, "--jwks-refresh-interval", refresh];
    spawn_app_with(Db::Sqlite, &args).await.unwrap()
}

#[tokio::test]
async fn jwks_keys_rotation_and_algorithm_confusion() {
    let issuer = issuer().await;
    let (rsa, rsa_jwk) = keypair("rsa", Algorithm::RS256, "rsa-1");
    let (ec, ec_jwk) = keypair("ec", Algorithm::ES256, "ec-1");
    let (ed, ed_jwk) = keypair("ed", Algorithm::EdDSA, "ed-1");
    *issuer.jwks.lock().unwrap() = vec![rsa_jwk.clone(), ec_jwk];
    let app = jwks_app(&issuer, "0s").await;
    let claims = asym_claims(&issuer.url, "dave");
    for (key, alg, kid) in [(&rsa, Algorithm::RS256, "rsa-1"), (&ec, Algorithm::ES256, "ec-1")] {
        let token = signed(key, alg, kid, &claims);
        assert_eq!(rpc(&app, Some(&format!("Bearer {token}")), list_tools()).await.status(), 200, "{alg:?}");
    }
    // RS256 key, ES256 header: the key's algorithm is the only one allowed.
    expect_401(&app, &signed(&ec, Algorithm::ES256, "rsa-1", &claims), "algorithm not the key's").await;
    // HS256 "signed" with the RSA public key as the HMAC secret (the classic confusion attack).
    let AlgorithmParametersRsa { n, e } = rsa_parts(&rsa_jwk);
    let confusion =
        signed(&EncodingKey::from_secret(format!("{n}.{e}").as_bytes()), Algorithm::HS256, "rsa-1", &claims);
    expect_401(&app, &confusion, "HS256 with the RSA public key").await;
    // Unknown kid, then rotation: the new key is fetched on demand.
    let ed_token = signed(&ed, Algorithm::EdDSA, "ed-1", &claims);
    expect_401(&app, &ed_token, "unknown kid").await;
    issuer.jwks.lock().unwrap().push(ed_jwk);
    assert_eq!(
        rpc(&app, Some(&format!("Bearer {ed_token}")), list_tools()).await.status(),
        200,
        "rotated key accepted"
    );
    let mut wrong_iss = claims.clone();
    wrong_iss["iss"] = json!("https://evil.example");
    expect_401(&app, &signed(&rsa, Algorithm::RS256, "rsa-1", &wrong_iss), "wrong issuer").await;
}

struct AlgorithmParametersRsa {
    n: String,
    e: String,
}

fn rsa_parts(jwk: &Jwk) -> AlgorithmParametersRsa {
    let value = serde_json::to_value(jwk).unwrap();
    AlgorithmParametersRsa { n: value["n"].as_str().unwrap().into(), e: value["e"].as_str().unwrap().into() }
}

#[tokio::test]
async fn unknown_kids_do_not_hammer_the_jwks_endpoint() {
    let issuer = issuer().await;
    let (rsa, rsa_jwk) = keypair("rsa", Algorithm::RS256, "rsa-1");
    *issuer.jwks.lock().unwrap() = vec![rsa_jwk];
    let app = jwks_app(&issuer, "1h").await;
    let claims = asym_claims(&issuer.url, "erin");
    assert_eq!(
        rpc(&app, Some(&format!("Bearer {}", signed(&rsa, Algorithm::RS256, "rsa-1", &claims))), list_tools())
            .await
            .status(),
        200
    );
    for i in 0..10 {
        expect_401(&app, &signed(&rsa, Algorithm::RS256, &format!("nope-{i}"), &claims), "unknown kid").await;
    }
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), 1, "one fetch, refetches rate-limited");
}

/// A server that introspects tokens at `issuer`, authenticating with `client_secret`.
async fn introspection_app(issuer: &Issuer, client_secret: &str) -> common::TestApp {
    let endpoint = format!("{}/introspect", issuer.url);
    let args = [
        "--oauth-introspection-url",
        &endpoint,
        "--oauth-client-id",
        "mcp-client",
        "--oauth-client-secret",
        client_secret,
        "--mcp-resource-url",
        RESOURCE,
    ];
    spawn_app_with(Db::Sqlite, &args).await.unwrap()
}

#[tokio::test]
async fn introspection_active_inactive_and_bad_client() {
    let issuer = issuer().await;
    let app = introspection_app(&issuer, "client-secret").await;
    assert_eq!(
        rpc(&app, Some("Bearer active-token"), call("create_entities", json!({ "entities": [] }))).await.status(),
        200
    );
    assert_eq!(
        rpc(&app, Some("Bearer read-only-token"), call("create_entities", json!({ "entities": [] }))).await.status(),
        403
    );
    let response = rpc(&app, Some("Bearer revoked-token"), list_tools()).await;
    assert_eq!(response.status(), 401);
    assert!(challenge(&response).contains("invalid_token"));
    assert_eq!(rpc(&app, Some("Bearer other-audience"), list_tools()).await.status(), 401);

    let misconfigured = introspection_app(&issuer, "wrong").await;
    let response = rpc(&misconfigured, Some("Bearer active-token"), list_tools()).await;
    assert_eq!(response.status(), 503, "the server's own credentials are refused: fail closed, as unavailable");
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
