//! JWT verification: HS256 with a shared secret, or asymmetric keys from a JWKS that is
//! discovered from the issuer, cached, and refetched (rate-limited) on an unknown `kid`.

use std::{
    collections::HashMap,
    sync::RwLock,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, decode_header,
    jwk::{AlgorithmParameters, EllipticCurve, JwkSet},
};
use serde_json::{Map, Value, json};
use tokio::sync::Mutex;

use super::{AuthError, audience_matches};

/// At most this much clock skew is forgiven on `exp` and `nbf`.
const LEEWAY_SECONDS: u64 = 60;

fn validation(alg: Algorithm, issuer: Option<&str>) -> Validation {
    let mut v = Validation::new(alg);
    v.leeway = LEEWAY_SECONDS;
    v.validate_nbf = true;
    // Audience is checked by `audience_matches` so that a missing `aud` is refused too.
    v.validate_aud = false;
    v.required_spec_claims = ["exp".to_string()].into();
    if let Some(iss) = issuer {
        v.set_issuer(&[iss]);
        v.required_spec_claims.insert("iss".into());
    }
    v
}

fn check(
    token: &str,
    key: &DecodingKey,
    alg: Algorithm,
    issuer: Option<&str>,
    resource: &str,
) -> Result<Map<String, Value>, AuthError> {
    let data = decode::<Map<String, Value>>(token, key, &validation(alg, issuer)).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind;
        AuthError::Invalid(
            match e.kind() {
                ErrorKind::ExpiredSignature => "the token has expired",
                ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)",
                ErrorKind::InvalidIssuer => "the token's issuer is not trusted",
                ErrorKind::InvalidSignature => "the token's signature is invalid",
                ErrorKind::InvalidAlgorithm => "the token's algorithm is not allowed for this key",
                ErrorKind::MissingRequiredClaim(_) => "the token lacks a required claim (exp, iss)",
                _ => "the token is malformed",
            }
            .into(),
        )
    })?;
    if !audience_matches(&data.claims, resource) {
        return Err(AuthError::Invalid(format!("the token's audience does not include {resource}")));
    }
    Ok(data.claims)
}

/// Refuses anything that is not a well-formed JWS header with an allowed algorithm first:
/// `alg: none` never reaches a key.
fn header(token: &str) -> Result<Header, AuthError> {
    decode_header(token).map_err(|_| AuthError::Invalid("the token is not a signed JWT".into()))
}

pub struct Hs256 {
    key: DecodingKey,
}

impl Hs256 {
    pub fn new(secret: &[u8]) -> Self {
        Hs256 { key: DecodingKey::from_secret(secret) }
    }

    pub fn verify(&self, token: &str, issuer: Option<&str>, resource: &str) -> Result<Map<String, Value>, AuthError> {
        if header(token)?.alg != Algorithm::HS256 {
            return Err(AuthError::Invalid("only HS256 tokens are accepted".into()));
        }
        check(token, &self.key, Algorithm::HS256, issuer, resource)
    }
}

/// Mints an HS256 token (the `mcp-server token` command).
pub fn issue_hs256(
    secret: &[u8],
    issuer: &str,
    audience: &str,
    tenant_claim: &str,
    tenant: &str,
    scope: &str,
    ttl: Duration,
) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let mut claims = json!({
        "iss": issuer,
        "aud": audience,
        "sub": tenant,
        "scope": scope,
        "iat": now,
        "nbf": now,
        "exp": now + ttl.as_secs(),
        "jti": format!("{:032x}", rand::random::<u128>()),
    });
    claims[tenant_claim] = json!(tenant);
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret))
        .expect("HS256 signing cannot fail")
}

#[derive(Clone)]
struct Key {
    key: DecodingKey,
    alg: Algorithm,
}

pub struct Jwks {
    http: reqwest::Client,
    jwks_url: Option<String>,
    issuer: Option<String>,
    min_refresh: Duration,
    keys: RwLock<HashMap<String, Key>>,
    /// When keys were last fetched; serialises fetches and rate-limits refetches.
    last_fetch: Mutex<Option<Instant>>,
}

impl Jwks {
    pub fn new(http: reqwest::Client, jwks_url: Option<String>, issuer: Option<String>, min_refresh: Duration) -> Self {
        Jwks { http, jwks_url, issuer, min_refresh, keys: RwLock::default(), last_fetch: Mutex::default() }
    }

    pub async fn verify(
        &self,
        token: &str,
        issuer: Option<&str>,
        resource: &str,
    ) -> Result<Map<String, Value>, AuthError> {
        let header = header(token)?;
        let kid = header.kid.unwrap_or_default();
        let key = self.key(&kid).await?;
        if header.alg != key.alg {
            return Err(AuthError::Invalid("the token's algorithm is not allowed for this key".into()));
        }
        check(token, &key.key, key.alg, issuer, resource)
    }

    fn cached(&self, kid: &str) -> Option<Key> {
        let keys = self.keys.read().expect("key cache lock");
        match keys.get(kid) {
            Some(key) => Some(key.clone()),
            // A token without `kid` is accepted only when the set has a single key.
            None if kid.is_empty() && keys.len() == 1 => keys.values().next().cloned(),
            None => None,
        }
    }

    async fn key(&self, kid: &str) -> Result<Key, AuthError> {
        if let Some(key) = self.cached(kid) {
            return Ok(key);
        }
        let mut last = self.last_fetch.lock().await;
        // Another request may have refreshed while this one waited.
        if let Some(key) = self.cached(kid) {
            return Ok(key);
        }
        if last.is_none_or(|t| t.elapsed() >= self.min_refresh) {
            *last = Some(Instant::now());
            let fresh = self.fetch().await?;
            *self.keys.write().expect("key cache lock") = fresh;
        }
        self.cached(kid).ok_or_else(|| AuthError::Invalid("the token's key id is not known".into()))
    }

    async fn jwks_url(&self) -> Result<String, AuthError> {
        if let Some(url) = &self.jwks_url {
            return Ok(url.clone());
        }
        let issuer = self.issuer.as_deref().unwrap_or_default().trim_end_matches('/');
        let metadata = discover(&self.http, issuer).await?;
        metadata
            .get("jwks_uri")
            .and_then(Value::as_str)
            .map(String::from)
            .ok_or_else(|| AuthError::Unavailable("issuer metadata has no jwks_uri".into()))
    }

    async fn fetch(&self) -> Result<HashMap<String, Key>, AuthError> {
        let url = self.jwks_url().await?;
        let set: JwkSet = get_json(&self.http, &url).await?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let Some(alg) = asymmetric_algorithm(jwk) else {
                continue;
            };
            if let Ok(key) = DecodingKey::from_jwk(jwk) {
                keys.insert(jwk.common.key_id.clone().unwrap_or_default(), Key { key, alg });
            }
        }
        tracing::info!(keys = keys.len(), "fetched JWKS");
        Ok(keys)
    }
}

/// The one algorithm a JWK may verify: its `alg` if asymmetric, else the one its type implies.
/// Symmetric keys are never taken from a JWKS (no HS/RS confusion).
fn asymmetric_algorithm(jwk: &jsonwebtoken::jwk::Jwk) -> Option<Algorithm> {
    let implied = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => Algorithm::ES256,
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P384 => Algorithm::ES384,
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => Algorithm::EdDSA,
        _ => return None,
    };
    let declared = jwk.common.key_algorithm.map(|a| format!("{a:?}").parse::<Algorithm>());
    match declared {
        None => Some(implied),
        Some(Ok(alg)) if alg.family() == implied.family() => Some(alg),
        _ => None,
    }
}

/// RFC 8414 authorization server metadata, falling back to OpenID discovery.
pub async fn discover(http: &reqwest::Client, issuer: &str) -> Result<Map<String, Value>, AuthError> {
    let url = url::Url::parse(issuer).map_err(|_| AuthError::Unavailable("OAUTH_ISSUER is not a URL".into()))?;
    let path = url.path().trim_end_matches('/');
    let origin = url.origin().ascii_serialization();
    let candidates = [
        format!("{origin}/.well-known/oauth-authorization-server{path}"),
        format!("{origin}{path}/.well-known/openid-configuration"),
    ];
    let mut last = AuthError::Unavailable("no metadata".into());
    for candidate in candidates {
        match get_json::<Map<String, Value>>(http, &candidate).await {
            Ok(metadata) => return Ok(metadata),
            Err(e) => last = e,
        }
    }
    Err(last)
}

async fn get_json<T: serde::de::DeserializeOwned>(http: &reqwest::Client, url: &str) -> Result<T, AuthError> {
    let response = http.get(url).send().await.map_err(|e| AuthError::Unavailable(e.to_string()))?;
    if !response.status().is_success() {
        return Err(AuthError::Unavailable(format!("{url} answered {}", response.status())));
    }
    response.json().await.map_err(|e| AuthError::Unavailable(e.to_string()))
}
