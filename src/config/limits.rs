//! What one client may hold of a replica: connections, slow bodies and headers, concurrent
//! requests, sessions and listen streams (flattened into `Settings`).

use std::time::Duration;

use clap::Args;

use super::{ConfigError, parse_duration};

#[derive(Debug, Clone, Args)]
pub struct LimitSettings {
    /// Longest a request body may take to arrive; a slower one gets 408 (below REQUEST_TIMEOUT)
    #[arg(long, env = "BODY_READ_TIMEOUT", value_parser = parse_duration, default_value = "10s", global = true)]
    pub body_read_timeout: Duration,
    /// Longest a new connection may take to send its first complete request head; then it is closed
    #[arg(long, env = "HEADER_READ_TIMEOUT", value_parser = parse_duration, default_value = "10s", global = true)]
    pub header_read_timeout: Duration,
    /// Longest a keep-alive connection may wait for (and take to send) its next request head
    #[arg(long, env = "IDLE_TIMEOUT", value_parser = parse_duration, default_value = "60s", global = true)]
    pub idle_timeout: Duration,
    /// Most open connections; further ones wait in the listen backlog. Default: the open-file
    /// limit (raised to its hard limit at start) less what the database, Redis and metrics need
    #[arg(long, env = "MAX_CONNECTIONS", global = true)]
    pub max_connections: Option<usize>,
    /// With authentication: most requests one tenant has in flight on a replica (429 above);
    /// default a quarter of MAX_CONCURRENT_REQUESTS
    #[arg(long, env = "MAX_CONCURRENT_REQUESTS_PER_TENANT", global = true)]
    pub max_concurrent_requests_per_tenant: Option<usize>,
    /// With MCP_SESSIONS: most sessions one replica holds (503 for a new one above)
    #[arg(long, env = "MAX_SESSIONS", default_value_t = 2_000, global = true)]
    pub max_sessions: usize,
    /// With MCP_SESSIONS and authentication: most sessions of one tenant on a replica (429 above)
    #[arg(long, env = "MAX_SESSIONS_PER_TENANT", default_value_t = 100, global = true)]
    pub max_sessions_per_tenant: usize,
    /// Most open `subscriptions/listen` streams on a replica (503 for a new one above)
    #[arg(long, env = "MAX_LISTEN_STREAMS", default_value_t = 2_000, global = true)]
    pub max_listen_streams: usize,
    /// With authentication: most open `subscriptions/listen` streams of one tenant (429 above)
    #[arg(long, env = "MAX_LISTEN_STREAMS_PER_TENANT", default_value_t = 100, global = true)]
    pub max_listen_streams_per_tenant: usize,
}

impl LimitSettings {
    /// The tenant share of MAX_CONCURRENT_REQUESTS, explicit or a quarter of it.
    pub fn requests_per_tenant(&self, max_concurrent_requests: usize) -> usize {
        self.max_concurrent_requests_per_tenant.unwrap_or((max_concurrent_requests / 4).max(1))
    }

    pub fn validate(&self, request_timeout: Duration, max_concurrent_requests: usize) -> Result<(), ConfigError> {
        for (variable, value) in [
            ("BODY_READ_TIMEOUT", self.body_read_timeout),
            ("HEADER_READ_TIMEOUT", self.header_read_timeout),
            ("IDLE_TIMEOUT", self.idle_timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigError::new(variable, "must be more than 0"));
            }
        }
        // A body deadline at or past the request's own would never fire: the 504 would come first.
        if self.body_read_timeout >= request_timeout {
            return Err(ConfigError::new(
                "BODY_READ_TIMEOUT",
                format!("must be shorter than REQUEST_TIMEOUT ({request_timeout:?}), got {:?}", self.body_read_timeout),
            ));
        }
        if self.header_read_timeout > self.idle_timeout {
            return Err(ConfigError::new(
                "HEADER_READ_TIMEOUT",
                format!("must not exceed IDLE_TIMEOUT ({:?}), got {:?}", self.idle_timeout, self.header_read_timeout),
            ));
        }
        if self.max_connections == Some(0) {
            return Err(ConfigError::new("MAX_CONNECTIONS", "must be at least 1"));
        }
        let pairs = [
            (
                "MAX_CONCURRENT_REQUESTS_PER_TENANT",
                self.requests_per_tenant(max_concurrent_requests),
                "MAX_CONCURRENT_REQUESTS",
                max_concurrent_requests,
            ),
            ("MAX_SESSIONS_PER_TENANT", self.max_sessions_per_tenant, "MAX_SESSIONS", self.max_sessions),
            (
                "MAX_LISTEN_STREAMS_PER_TENANT",
                self.max_listen_streams_per_tenant,
                "MAX_LISTEN_STREAMS",
                self.max_listen_streams,
            ),
        ];
        for (share, share_value, whole, whole_value) in pairs {
            if whole_value == 0 {
                return Err(ConfigError::new(whole, "must be at least 1"));
            }
            if share_value == 0 {
                return Err(ConfigError::new(share, "must be at least 1"));
            }
            if share_value > whole_value {
                return Err(ConfigError::new(
                    share,
                    format!("must not exceed {whole} ({whole_value}), got {share_value}"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> LimitSettings {
        LimitSettings {
            body_read_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: None,
            max_concurrent_requests_per_tenant: None,
            max_sessions: 2_000,
            max_sessions_per_tenant: 100,
            max_listen_streams: 2_000,
            max_listen_streams_per_tenant: 100,
        }
    }

    #[test]
    fn contradictions_name_their_variable() {
        let thirty = Duration::from_secs(30);
        assert!(defaults().validate(thirty, 512).is_ok());
        let slow = LimitSettings { body_read_timeout: thirty, ..defaults() };
        assert_eq!(slow.validate(thirty, 512).unwrap_err().variable, "BODY_READ_TIMEOUT");
        let header = LimitSettings { header_read_timeout: Duration::from_secs(90), ..defaults() };
        assert_eq!(header.validate(thirty, 512).unwrap_err().variable, "HEADER_READ_TIMEOUT");
        let share = LimitSettings { max_concurrent_requests_per_tenant: Some(600), ..defaults() };
        assert_eq!(share.validate(thirty, 512).unwrap_err().variable, "MAX_CONCURRENT_REQUESTS_PER_TENANT");
        let sessions = LimitSettings { max_sessions: 50, ..defaults() };
        assert_eq!(sessions.validate(thirty, 512).unwrap_err().variable, "MAX_SESSIONS_PER_TENANT");
        assert_eq!(defaults().requests_per_tenant(64), 16);
    }
}
