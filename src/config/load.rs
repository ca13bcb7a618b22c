//! Load settings (flattened into `Settings`): the per-tenant rate limit and the replica's
//! concurrency bound, past which requests are shed with 503.

use clap::Args;

use super::ConfigError;

#[derive(Debug, Clone, Args)]
pub struct LoadSettings {
    /// Limit requests per tenant (shared by all replicas through Redis)
    #[arg(long, env = "RATE_LIMIT_ENABLED", default_value_t = false, action = clap::ArgAction::Set, global = true)]
    pub rate_limit_enabled: bool,
    /// Requests each tenant may make per minute
    #[arg(long, env = "RATE_LIMIT_REQUESTS_PER_MINUTE", default_value_t = 60, global = true)]
    pub rate_limit_requests_per_minute: u32,
    /// Most requests one replica serves at once; more get 503 with Retry-After
    #[arg(long, env = "MAX_CONCURRENT_REQUESTS", default_value_t = 512, global = true)]
    pub max_concurrent_requests: usize,
}

impl LoadSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.rate_limit_requests_per_minute == 0 {
            return Err(ConfigError::new("RATE_LIMIT_REQUESTS_PER_MINUTE", "must be at least 1"));
        }
        if self.max_concurrent_requests == 0 {
            return Err(ConfigError::new("MAX_CONCURRENT_REQUESTS", "must be at least 1"));
        }
        Ok(())
    }
}
