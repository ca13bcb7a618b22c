//! Tokens from an OpenID/OAuth provider: keys from its JWKS (rotation, algorithm confusion,
//! unknown key ids) and opaque tokens through its introspection endpoint.

use super::*;

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
