//! Bearer-token authentication: HS256, asymmetric keys from a JWKS (RS256/ES256/EdDSA), or
//! RFC 7662 introspection. Validation follows RFC 8725: an algorithm allow-list per key, `exp`
//! and `nbf` with 60 s leeway, `iss` equal to the configured issuer, `aud` bound to this resource.

mod introspection;
mod jwt;

use std::collections::HashSet;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};

pub use jwt::issue_hs256;

use crate::{
    config::{ResolvedAuth, Settings},
    memory::Tenant,
};

pub const SCOPE_READ: &str = "memory:read";
pub const SCOPE_WRITE: &str = "memory:write";
/// HS256 tokens minted by `mcp-server token` carry this issuer unless OAUTH_ISSUER says otherwise.
pub const DEFAULT_ISSUER: &str = "mcp-server";

/// Who is calling: the tenant whose graph they use and what they may do with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant: Tenant,
    pub scopes: HashSet<String>,
}

impl Principal {
    pub fn has_scope(&self, scope: &str) -> bool {
        // Write access implies read access.
        self.scopes.contains(scope) || (scope == SCOPE_READ && self.scopes.contains(SCOPE_WRITE))
    }
}

/// Why a request was not authenticated. Messages are safe to return to clients.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("a bearer token is required")]
    Missing,
    #[error("the Authorization header is not `Bearer <token>`")]
    Malformed,
    #[error("tokens are accepted only in the Authorization header, not in the query string")]
    TokenInQuery,
    #[error("{0}")]
    Invalid(String),
    #[error("the authorization server could not be reached")]
    Unavailable(String),
}

impl AuthError {
    /// A bounded label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::Malformed => "malformed",
            AuthError::TokenInQuery => "query_token",
            AuthError::Invalid(_) => "invalid",
            AuthError::Unavailable(_) => "unavailable",
        }
    }
}

enum Verifier {
    Hs256(jwt::Hs256),
    Jwks(jwt::Jwks),
    Introspection(introspection::Introspection),
}

/// Checks tokens for the HTTP transport. `None` verifier: authentication is off.
pub struct Authenticator {
    verifier: Option<Verifier>,
    tenant_claim: String,
    resource: String,
    issuer: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("authentication setup: {0}")]
pub struct AuthSetupError(String);

impl Authenticator {
    pub fn from_settings(settings: &Settings, http: reqwest::Client) -> Result<Self, AuthSetupError> {
        let auth = &settings.auth;
        let resource = auth
            .mcp_resource_url
            .clone()
            .unwrap_or_else(|| format!("http://{}:{}/mcp", display_host(settings), settings.port));
        let mode = auth.resolved_mode();
        let issuer = match mode {
            ResolvedAuth::Hs256 => Some(auth.oauth_issuer.clone().unwrap_or_else(|| DEFAULT_ISSUER.into())),
            _ => auth.oauth_issuer.clone(),
        };
        let verifier = match mode {
            ResolvedAuth::None => None,
            ResolvedAuth::Hs256 => {
                let secret = auth.jwt_secret.as_ref().ok_or_else(|| AuthSetupError("JWT_SECRET is not set".into()))?;
                Some(Verifier::Hs256(jwt::Hs256::new(secret.expose_secret().as_bytes())))
            }
            ResolvedAuth::Jwks => Some(Verifier::Jwks(jwt::Jwks::new(
                http,
                auth.oauth_jwks_url.clone(),
                auth.oauth_issuer.clone(),
                auth.jwks_refresh_interval,
            ))),
            ResolvedAuth::Introspection => Some(Verifier::Introspection(introspection::Introspection::new(
                http,
                auth.oauth_introspection_url.clone(),
                auth.oauth_issuer.clone(),
                auth.oauth_client_id.clone().unwrap_or_default(),
                auth.oauth_client_secret.clone().unwrap_or_else(|| SecretString::from("")),
            ))),
        };
        Ok(Authenticator { verifier, tenant_claim: auth.auth_tenant_claim.clone(), resource, issuer })
    }

    pub fn enabled(&self) -> bool {
        self.verifier.is_some()
    }

    /// The protected resource (the /mcp URL) tokens must name as audience.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The absolute URL of this resource's RFC 9728 metadata (path-suffixed form).
    pub fn resource_metadata_url(&self) -> String {
        match url::Url::parse(&self.resource) {
            Ok(url) => format!(
                "{}/.well-known/oauth-protected-resource{}",
                url.origin().ascii_serialization(),
                url.path().trim_end_matches('/')
            ),
            Err(_) => format!("{}/.well-known/oauth-protected-resource", self.resource),
        }
    }

    /// RFC 9728 protected resource metadata.
    pub fn metadata(&self) -> Value {
        json!({
            "resource": self.resource,
            "authorization_servers": self.issuer.iter().collect::<Vec<_>>(),
            "scopes_supported": [SCOPE_READ, SCOPE_WRITE],
            "bearer_methods_supported": ["header"],
            "resource_name": "mcp-server knowledge-graph memory",
        })
    }

    pub async fn authenticate(&self, token: &str) -> Result<Principal, AuthError> {
        let claims = match &self.verifier {
            None => {
                return Ok(Principal {
                    tenant: Tenant::default(),
                    scopes: [SCOPE_READ, SCOPE_WRITE].map(String::from).into(),
                });
            }
            Some(Verifier::Hs256(v)) => v.verify(token, self.issuer.as_deref(), &self.resource)?,
            Some(Verifier::Jwks(v)) => v.verify(token, self.issuer.as_deref(), &self.resource).await?,
            Some(Verifier::Introspection(v)) => v.verify(token, self.issuer.as_deref(), &self.resource).await?,
        };
        self.principal(&claims)
    }

    fn principal(&self, claims: &Map<String, Value>) -> Result<Principal, AuthError> {
        let tenant = claims
            .get(&self.tenant_claim)
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty() && t.len() <= 256)
            .ok_or_else(|| AuthError::Invalid(format!("the token has no usable `{}` claim", self.tenant_claim)))?;
        Ok(Principal { tenant: Tenant::new(tenant), scopes: scopes(claims) })
    }
}

/// `scope` (space-separated, RFC 8693/9068) or `scp` (an array, as some providers send).
fn scopes(claims: &Map<String, Value>) -> HashSet<String> {
    let mut scopes: HashSet<String> = claims
        .get("scope")
        .and_then(Value::as_str)
        .map(|s| s.split_whitespace().map(String::from).collect())
        .unwrap_or_default();
    if let Some(list) = claims.get("scp").and_then(Value::as_array) {
        scopes.extend(list.iter().filter_map(Value::as_str).map(String::from));
    }
    scopes
}

fn display_host(settings: &Settings) -> String {
    match settings.host {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => "localhost".into(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    }
}

/// Audience check shared by every verifier: `aud` (string or array) must name this resource.
fn audience_matches(claims: &Map<String, Value>, resource: &str) -> bool {
    match claims.get("aud") {
        Some(Value::String(aud)) => aud == resource,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(resource)),
        _ => false,
    }
}
