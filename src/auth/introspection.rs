//! RFC 7662 token introspection, cached per token hash until the token expires.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::{AuthError, audience_matches, jwt::discover};

/// Longest an introspection answer is trusted, even for a long-lived token.
const MAX_CACHE: Duration = Duration::from_secs(300);
const MAX_ENTRIES: usize = 10_000;

/// Introspection answers by SHA-256 of the token (the token itself is never kept), with expiry.
type Cache = HashMap<[u8; 32], (Instant, Map<String, Value>)>;

pub struct Introspection {
    http: reqwest::Client,
    endpoint: Option<String>,
    issuer: Option<String>,
    client_id: String,
    client_secret: SecretString,
    cache: Mutex<Cache>,
}

impl Introspection {
    pub fn new(
        http: reqwest::Client,
        endpoint: Option<String>,
        issuer: Option<String>,
        client_id: String,
        client_secret: SecretString,
    ) -> Self {
        Introspection { http, endpoint, issuer, client_id, client_secret, cache: Mutex::default() }
    }

    pub async fn verify(
        &self,
        token: &str,
        issuer: Option<&str>,
        resource: &str,
    ) -> Result<Map<String, Value>, AuthError> {
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let cached = self
            .cache
            .lock()
            .expect("cache lock")
            .get(&hash)
            .filter(|(until, _)| *until > Instant::now())
            .map(|(_, c)| c.clone());
        let claims = match cached {
            Some(claims) => claims,
            None => {
                let claims = self.introspect(token).await?;
                let until = Instant::now() + cache_time(&claims);
                let mut cache = self.cache.lock().expect("cache lock");
                if cache.len() >= MAX_ENTRIES {
                    let now = Instant::now();
                    cache.retain(|_, (until, _)| *until > now);
                }
                cache.insert(hash, (until, claims.clone()));
                claims
            }
        };
        if claims.get("active") != Some(&Value::Bool(true)) {
            return Err(AuthError::Invalid("the token is not active".into()));
        }
        if let Some(expected) = issuer
            && claims.get("iss").and_then(Value::as_str).is_some_and(|iss| iss != expected)
        {
            return Err(AuthError::Invalid("the token's issuer is not trusted".into()));
        }
        if !audience_matches(&claims, resource) {
            return Err(AuthError::Invalid(format!("the token's audience does not include {resource}")));
        }
        Ok(claims)
    }

    async fn introspect(&self, token: &str) -> Result<Map<String, Value>, AuthError> {
        let endpoint = match &self.endpoint {
            Some(url) => url.clone(),
            None => discover(&self.http, self.issuer.as_deref().unwrap_or_default())
                .await?
                .get("introspection_endpoint")
                .and_then(Value::as_str)
                .map(String::from)
                .ok_or_else(|| AuthError::Unavailable("issuer metadata has no introspection_endpoint".into()))?,
        };
        let response = self
            .http
            .post(&endpoint)
            .basic_auth(&self.client_id, Some(self.client_secret.expose_secret()))
            .form(&[("token", token), ("token_type_hint", "access_token")])
            .send()
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))?;
        if !response.status().is_success() {
            tracing::error!(status = %response.status(), "introspection endpoint refused this server's credentials or failed");
            return Err(AuthError::Unavailable(format!("introspection answered {}", response.status())));
        }
        response.json().await.map_err(|e| AuthError::Unavailable(e.to_string()))
    }
}

/// Until the token's `exp`, at most MAX_CACHE; inactive answers are kept briefly.
fn cache_time(claims: &Map<String, Value>) -> Duration {
    if claims.get("active") != Some(&Value::Bool(true)) {
        return Duration::from_secs(10);
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    match claims.get("exp").and_then(Value::as_u64) {
        Some(exp) if exp > now => Duration::from_secs(exp - now).min(MAX_CACHE),
        Some(_) => Duration::ZERO,
        None => MAX_CACHE,
    }
}
