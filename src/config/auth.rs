//! Authentication settings: how bearer tokens are checked (flattened into `Settings`).

use std::time::Duration;

use clap::{Args, ValueEnum};

use secrecy::{ExposeSecret, SecretString};

use super::{ConfigError, parse_duration, secret};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthMode {
    /// Pick from what is configured: introspection, then JWKS/issuer, then JWT_SECRET, else none
    Auto,
    None,
    Hs256,
    Jwks,
    Introspection,
}

#[derive(Debug, Clone, Args)]
pub struct AuthSettings {
    /// How bearer tokens are checked on /mcp
    #[arg(long, env = "AUTH_MODE", value_enum, default_value = "auto", global = true)]
    pub auth_mode: AuthMode,
    /// Allow ENVIRONMENT=production to run without authentication (not recommended)
    #[arg(long, env = "ALLOW_UNAUTHENTICATED", default_value_t = false, action = clap::ArgAction::Set, global = true)]
    pub allow_unauthenticated: bool,
    /// HS256 signing secret, at least 32 bytes (secret)
    #[arg(long, env = "JWT_SECRET", hide_env_values = true, value_parser = secret, global = true)]
    pub jwt_secret: Option<SecretString>,
    /// Token issuer (`iss`); with JWKS mode also where keys are discovered (RFC 8414 / OpenID)
    #[arg(long, env = "OAUTH_ISSUER", global = true)]
    pub oauth_issuer: Option<String>,
    /// JWKS URL (instead of discovering it from OAUTH_ISSUER)
    #[arg(long, env = "OAUTH_JWKS_URL", global = true)]
    pub oauth_jwks_url: Option<String>,
    /// RFC 7662 introspection endpoint (instead of discovering it from OAUTH_ISSUER)
    #[arg(long, env = "OAUTH_INTROSPECTION_URL", global = true)]
    pub oauth_introspection_url: Option<String>,
    /// Client id this server authenticates to the introspection endpoint with
    #[arg(long, env = "OAUTH_CLIENT_ID", global = true)]
    pub oauth_client_id: Option<String>,
    /// Client secret for the introspection endpoint (secret)
    #[arg(long, env = "OAUTH_CLIENT_SECRET", hide_env_values = true, value_parser = secret, global = true)]
    pub oauth_client_secret: Option<SecretString>,
    /// This server's /mcp URL: the audience tokens must carry and the protected resource id
    #[arg(long, env = "MCP_RESOURCE_URL", global = true)]
    pub mcp_resource_url: Option<String>,
    /// Claim that names the tenant
    #[arg(long, env = "AUTH_TENANT_CLAIM", default_value = "sub", global = true)]
    pub auth_tenant_claim: String,
    /// Least time between two JWKS refetches caused by unknown key ids
    #[arg(long, env = "JWKS_REFRESH_INTERVAL", value_parser = parse_duration, default_value = "30s", global = true)]
    pub jwks_refresh_interval: Duration,
}

/// The resolved way tokens are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolvedAuth {
    None,
    Hs256,
    Jwks,
    Introspection,
}

impl AuthSettings {
    pub fn resolved_mode(&self) -> ResolvedAuth {
        let set = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
        let secret_set = |v: &Option<SecretString>| v.as_ref().is_some_and(|s| !s.expose_secret().is_empty());
        match self.auth_mode {
            AuthMode::None => ResolvedAuth::None,
            AuthMode::Hs256 => ResolvedAuth::Hs256,
            AuthMode::Jwks => ResolvedAuth::Jwks,
            AuthMode::Introspection => ResolvedAuth::Introspection,
            AuthMode::Auto if set(&self.oauth_introspection_url) => ResolvedAuth::Introspection,
            AuthMode::Auto if set(&self.oauth_jwks_url) || set(&self.oauth_issuer) => ResolvedAuth::Jwks,
            AuthMode::Auto if secret_set(&self.jwt_secret) => ResolvedAuth::Hs256,
            AuthMode::Auto => ResolvedAuth::None,
        }
    }

    /// `secrets_present`: false at build time (NixOS check), when secrets are not available yet.
    pub fn validate(&self, production: bool, secrets_present: bool) -> Result<(), ConfigError> {
        // OAUTH_ISSUER is both the HS256 tokens' `iss` and where keys are discovered: with a
        // secret as well, `auto` would have to guess which one checks tokens.
        let set = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
        let provider = [
            ("OAUTH_INTROSPECTION_URL", &self.oauth_introspection_url),
            ("OAUTH_JWKS_URL", &self.oauth_jwks_url),
            ("OAUTH_ISSUER", &self.oauth_issuer),
        ]
        .into_iter()
        .find(|(_, v)| set(v));
        if self.auth_mode == AuthMode::Auto
            && self.jwt_secret.as_ref().is_some_and(|s| !s.expose_secret().is_empty())
            && let Some((variable, _)) = provider
        {
            return Err(ConfigError::new(
                "AUTH_MODE",
                format!(
                    "JWT_SECRET and {variable} are both set and AUTH_MODE=auto cannot tell which checks tokens: \
                     set AUTH_MODE=hs256 (OAUTH_ISSUER is then only the tokens' iss), or AUTH_MODE=jwks or \
                     introspection and unset JWT_SECRET"
                ),
            ));
        }
        let mode = self.resolved_mode();
        // Without secrets (build-time checks) the token settings may still arrive at run time.
        if mode == ResolvedAuth::None && production && !self.allow_unauthenticated && secrets_present {
            return Err(ConfigError::new(
                "AUTH_MODE",
                "ENVIRONMENT=production needs authentication: set JWT_SECRET, OAUTH_ISSUER or OAUTH_JWKS_URL \
                 (or ALLOW_UNAUTHENTICATED=true to accept the risk)",
            ));
        }
        if mode == ResolvedAuth::Hs256 && secrets_present {
            match &self.jwt_secret {
                None => {
                    return Err(ConfigError::new("JWT_SECRET", "AUTH_MODE=hs256 needs JWT_SECRET"));
                }
                Some(s) if s.expose_secret().len() < 32 => {
                    let len = s.expose_secret().len();
                    return Err(ConfigError::new("JWT_SECRET", format!("must be at least 32 bytes, got {len}")));
                }
                Some(_) => {}
            }
        }
        if mode == ResolvedAuth::Jwks && self.oauth_jwks_url.is_none() && self.oauth_issuer.is_none() {
            return Err(ConfigError::new("OAUTH_ISSUER", "AUTH_MODE=jwks needs OAUTH_ISSUER or OAUTH_JWKS_URL"));
        }
        if mode == ResolvedAuth::Introspection {
            if self.oauth_introspection_url.is_none() && self.oauth_issuer.is_none() {
                return Err(ConfigError::new("OAUTH_INTROSPECTION_URL", "introspection needs it or OAUTH_ISSUER"));
            }
            if self.oauth_client_id.is_none() {
                return Err(ConfigError::new("OAUTH_CLIENT_ID", "introspection needs a client id"));
            }
            if secrets_present && self.oauth_client_secret.is_none() {
                return Err(ConfigError::new("OAUTH_CLIENT_SECRET", "introspection needs a client secret"));
            }
        }
        for (variable, value) in [
            ("OAUTH_ISSUER", &self.oauth_issuer),
            ("OAUTH_JWKS_URL", &self.oauth_jwks_url),
            ("OAUTH_INTROSPECTION_URL", &self.oauth_introspection_url),
            ("MCP_RESOURCE_URL", &self.mcp_resource_url),
        ] {
            if let Some(v) = value
                && url::Url::parse(v).is_err()
            {
                return Err(ConfigError::new(variable, format!("`{v}` is not an absolute URL")));
            }
        }
        Ok(())
    }
}
