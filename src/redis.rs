//! The one Redis pool that rate limits, sessions and resource updates share: its own module so
//! that none of them imports another for it.

use std::time::Duration;

use bb8_redis::{RedisConnectionManager, bb8};
use secrecy::ExposeSecret;

use crate::config::RedisSettings;

pub type RedisPool = bb8::Pool<RedisConnectionManager>;

/// A Redis pool that connects lazily, so start-up never waits for Redis.
pub fn pool(url: &str, timeout: Duration) -> Result<RedisPool, ::redis::RedisError> {
    let manager = RedisConnectionManager::new(url)?;
    Ok(bb8::Pool::builder().max_size(16).connection_timeout(timeout).retry_connection(false).build_unchecked(manager))
}

/// The pool and a client (for pub/sub, which needs a connection of its own) for the configured
/// Redis; `None` when none is configured.
pub fn connect(settings: &RedisSettings) -> Result<Option<(RedisPool, ::redis::Client)>, ::redis::RedisError> {
    let Some(url) = settings.url() else { return Ok(None) };
    Ok(Some((pool(url.expose_secret(), settings.redis_timeout)?, ::redis::Client::open(url.expose_secret())?)))
}
