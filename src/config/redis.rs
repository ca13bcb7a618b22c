//! Redis settings (flattened into `Settings`): rate limits, sessions and resource updates share
//! the one Redis they name.

use std::time::Duration;

use clap::Args;
use secrecy::{ExposeSecret, SecretString};

use super::{parse_duration, secret};

#[derive(Debug, Clone, Args)]
pub struct RedisSettings {
    /// Redis URL (`redis://[:password@]host:port[/db]`); wins over REDIS_HOST/PORT/PASSWORD (secret)
    #[arg(long, env = "REDIS_URL", hide_env_values = true, value_parser = secret, global = true)]
    pub redis_url: Option<SecretString>,
    /// Redis host; setting it enables Redis
    #[arg(long, env = "REDIS_HOST", global = true)]
    pub redis_host: Option<String>,
    /// Redis port
    #[arg(long, env = "REDIS_PORT", default_value_t = 6379, global = true)]
    pub redis_port: u16,
    /// Redis password (secret)
    #[arg(long, env = "REDIS_PASSWORD", hide_env_values = true, value_parser = secret, global = true)]
    pub redis_password: Option<SecretString>,
    /// Longest wait for Redis before falling back to per-replica behaviour
    #[arg(long, env = "REDIS_TIMEOUT", value_parser = parse_duration, default_value = "250ms", global = true)]
    pub redis_timeout: Duration,
}

impl RedisSettings {
    /// The Redis URL from REDIS_URL or REDIS_HOST/PORT/PASSWORD; `None` when Redis is not configured.
    pub fn url(&self) -> Option<SecretString> {
        if let Some(url) = self.redis_url.as_ref().filter(|u| !u.expose_secret().is_empty()) {
            return Some(url.clone());
        }
        let host = self.redis_host.as_deref().filter(|h| !h.is_empty())?;
        let mut url = url::Url::parse("redis://localhost").expect("static URL parses");
        let _ = url.set_host(Some(host));
        let _ = url.set_port(Some(self.redis_port));
        if let Some(password) = &self.redis_password {
            let _ = url.set_password(Some(password.expose_secret()));
        }
        Some(SecretString::from(url.to_string()))
    }
}
