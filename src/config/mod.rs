//! Typed configuration, read from flags and environment variables (clap), validated once.

mod auth;
mod embeddings;
mod limits;
mod load;
mod redis;

use std::{net::IpAddr, time::Duration};

pub use self::redis::RedisSettings;
pub use auth::{AuthMode, AuthSettings, ResolvedAuth};
pub use embeddings::{EmbedderKind, EmbeddingSettings, SearchMode};
pub use limits::LimitSettings;
pub use load::LoadSettings;

use clap::{Args, ValueEnum};
use secrecy::{ExposeSecret, SecretString};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Environment {
    Development,
    Staging,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// Every setting of the server. Each one is a flag and an environment variable;
/// `--help` lists them all with their defaults. Secrets never show their values.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Deployment environment; production refuses to run without authentication
    #[arg(long, env = "ENVIRONMENT", value_enum, default_value = "development", global = true)]
    pub environment: Environment,
    /// Log filter (EnvFilter syntax, e.g. `info,mcp_server=debug`)
    #[arg(long, env = "LOG_LEVEL", default_value = "info,rmcp=warn", global = true)]
    pub log_level: String,
    /// Log line format
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "json", global = true)]
    pub log_format: LogFormat,
    /// Let rmcp's debug and trace lines through that carry whole messages (tool arguments and
    /// results: user data); off, they are dropped at every LOG_LEVEL
    #[arg(long, env = "LOG_USER_DATA", default_value_t = false, action = clap::ArgAction::Set, global = true)]
    pub log_user_data: bool,

    /// Address the MCP HTTP listener binds to
    #[arg(long, env = "HOST", default_value = "127.0.0.1", global = true)]
    pub host: IpAddr,
    /// Port of the MCP HTTP listener (0 picks a free port)
    #[arg(long, env = "PORT", default_value_t = 8000, global = true)]
    pub port: u16,
    /// Port of the Prometheus /metrics listener (0 picks a free port)
    #[arg(long, env = "METRICS_PORT", default_value_t = 9090, global = true)]
    pub metrics_port: u16,
    /// Host names accepted in the Host header, comma separated (DNS-rebinding protection); `*` accepts any
    #[arg(
        long,
        env = "ALLOWED_HOSTS",
        value_delimiter = ',',
        default_value = "localhost,127.0.0.1,::1",
        global = true
    )]
    pub allowed_hosts: Vec<String>,
    /// Browser origins allowed to call /mcp, comma separated (`:*` matches any port); none by
    /// default: a request with any other Origin gets 403 (one without, from a non-browser client, passes)
    #[arg(long, env = "ALLOWED_ORIGINS", value_delimiter = ',', default_value = "", global = true)]
    pub allowed_origins: Vec<String>,
    /// Give 2025-11-25 clients an Mcp-Session-Id and GET streams (shared through Redis when it is
    /// configured); off by default: every request is served statelessly, by any replica
    #[arg(long, env = "MCP_SESSIONS", default_value_t = false, action = clap::ArgAction::Set, global = true)]
    pub sessions: bool,
    /// With MCP_SESSIONS: how long an unused session is kept, in this replica's memory and (with
    /// Redis) in the shared store
    #[arg(long, env = "SESSION_TTL", value_parser = parse_duration, default_value = "30m", global = true)]
    pub session_ttl: Duration,
    /// With MCP_SESSIONS and Redis: SSE events kept per stream for Last-Event-ID resumption on
    /// any replica (oldest dropped first; kept for SESSION_TTL after the last event)
    #[arg(long, env = "SSE_EVENT_LOG_MAX", default_value_t = 1_000, global = true)]
    pub sse_event_log_max: usize,
    /// Longest a single HTTP request may take before it is answered with 408/504
    #[arg(long, env = "REQUEST_TIMEOUT", value_parser = parse_duration, default_value = "30s", global = true)]
    pub request_timeout: Duration,

    /// Database URL: `postgres://…` or `sqlite://…`; overrides DB_*; default is an embedded SQLite file
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_parser = secret, global = true)]
    pub database_url: Option<SecretString>,
    /// Directory of the embedded SQLite database used when no database is configured
    #[arg(long, env = "DATA_DIR", default_value = "./data", global = true)]
    pub data_dir: String,
    /// PostgreSQL host (or a unix socket directory starting with `/`); setting it selects PostgreSQL
    #[arg(long, env = "DB_HOST", global = true)]
    pub db_host: Option<String>,
    /// PostgreSQL port
    #[arg(long, env = "DB_PORT", default_value_t = 5432, global = true)]
    pub db_port: u16,
    /// PostgreSQL database name
    #[arg(long, env = "DB_NAME", default_value = "mcp", global = true)]
    pub db_name: String,
    /// PostgreSQL user
    #[arg(long, env = "DB_USER", default_value = "mcp", global = true)]
    pub db_user: String,
    /// PostgreSQL password (secret)
    #[arg(long, env = "DB_PASSWORD", hide_env_values = true, value_parser = secret, global = true)]
    pub db_password: Option<SecretString>,
    /// Largest number of database connections per process
    #[arg(long, env = "DB_POOL_MAX", default_value_t = 10, global = true)]
    pub db_pool_max: u32,
    /// How long to wait for a database connection before failing the request
    #[arg(long, env = "DB_TIMEOUT", value_parser = parse_duration, default_value = "5s", global = true)]
    pub db_timeout: Duration,
    /// Longest a PostgreSQL statement may run (the sessions' statement_timeout); a call whose
    /// database work takes DB_TIMEOUT plus this fails as unavailable, retryable
    #[arg(long, env = "DB_STATEMENT_TIMEOUT", value_parser = parse_duration, default_value = "10s", global = true)]
    pub db_statement_timeout: Duration,
    /// Apply PostgreSQL migrations when `serve` starts (SQLite always migrates on start)
    #[arg(long, env = "MIGRATE_ON_START", default_value_t = false, action = clap::ArgAction::Set, global = true)]
    pub migrate_on_start: bool,
    /// SQLite: past this size the write-ahead log is checkpointed into the database and truncated
    /// (waiting briefly for readers), and a log that was reset is cut back to it
    #[arg(long, env = "SQLITE_WAL_MAX_BYTES", default_value_t = 64 * 1024 * 1024, global = true)]
    pub sqlite_wal_max_bytes: u64,

    /// Longest entity name, type or relation type, in bytes
    #[arg(long, env = "MAX_NAME_BYTES", default_value_t = 512, global = true)]
    pub max_name_bytes: usize,
    /// Longest observation, in bytes
    #[arg(long, env = "MAX_OBSERVATION_BYTES", default_value_t = 16_384, global = true)]
    pub max_observation_bytes: usize,
    /// Most items in one tool call (entities, relations, observations or names)
    #[arg(long, env = "MAX_BATCH", default_value_t = 1_000, global = true)]
    pub max_batch: usize,
    /// Memory (all tenants together) for graphs kept to answer reads without a query, in bytes:
    /// least recently used graphs go first, a graph larger than this is read from the database,
    /// 0 turns the cache off
    #[arg(long, env = "GRAPH_CACHE_BYTES", default_value_t = 256 * 1024 * 1024, global = true)]
    pub graph_cache_bytes: u64,
    /// Most entities (all tenants together) in the graph cache, besides its bytes (no cap unless
    /// given); 0 turns the cache off
    #[arg(long, env = "GRAPH_CACHE_ENTITIES", global = true)]
    pub graph_cache_entities: Option<usize>,
    /// Largest reply of read_graph, search_nodes or the graph resource, in bytes (at least 65536):
    /// a larger result comes as the first page that fits, with `nextCursor`
    #[arg(long, env = "MAX_REPLY_BYTES", default_value_t = 4_194_304, global = true)]
    pub max_reply_bytes: usize,
    /// How long deleted entities, observations and relations are kept as history, for reads of
    /// the graph as it was (`asOf`); older history is purged (0 keeps none)
    #[arg(long, env = "HISTORY_RETENTION", value_parser = parse_duration, default_value = "30d", global = true)]
    pub history_retention: Duration,
    /// Largest accepted request body, in bytes (413 above it)
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 1_048_576, global = true)]
    pub max_body_bytes: usize,

    /// After SIGTERM, keep serving (readiness 503) this long so load balancers stop routing here
    #[arg(long, env = "SHUTDOWN_DELAY", value_parser = parse_duration, default_value = "5s", global = true)]
    pub shutdown_delay: Duration,
    /// Then drain in-flight requests for at most this long
    #[arg(long, env = "SHUTDOWN_TIMEOUT", value_parser = parse_duration, default_value = "25s", global = true)]
    pub shutdown_timeout: Duration,

    /// OTLP endpoint for traces (OTLP/HTTP, e.g. http://jaeger:4318); unset: no traces exported
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", global = true)]
    pub otlp_endpoint: Option<String>,
    /// Service name on exported spans
    #[arg(long, env = "OTEL_SERVICE_NAME", default_value = "mcp-server", global = true)]
    pub otel_service_name: String,
    /// Jaeger host: traces go to its OTLP/HTTP receiver when OTEL_EXPORTER_OTLP_ENDPOINT is unset
    #[arg(long, env = "JAEGER_HOST", global = true)]
    pub jaeger_host: Option<String>,
    /// Jaeger OTLP/HTTP port (the old agent ports 6831/6832/14268 map to 4318)
    #[arg(long, env = "JAEGER_PORT", default_value_t = 4318, global = true)]
    pub jaeger_port: u16,

    /// Also serve the fixture tools, resources and prompts of the official MCP conformance suite
    #[arg(long, env = "MCP_CONFORMANCE_FIXTURES", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", global = true)]
    pub conformance_fixtures: bool,

    #[command(flatten)]
    pub auth: AuthSettings,

    #[command(flatten)]
    pub redis: RedisSettings,

    #[command(flatten)]
    pub load: LoadSettings,

    #[command(flatten)]
    pub limits: LimitSettings,

    #[command(flatten)]
    pub embeddings: EmbeddingSettings,
}

/// A configuration error: names the variable and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("invalid value for {variable}: {reason}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub reason: String,
}

impl ConfigError {
    pub(crate) fn new(variable: &'static str, reason: impl Into<String>) -> Self {
        Self { variable, reason: reason.into() }
    }
}

impl Settings {
    /// Checks what clap's types cannot: ranges and combinations.
    /// The database URL is storage's to check (`storage::DatabaseConfig::from_settings`, which the
    /// CLI runs right after this).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_with(true)
    }

    /// As `validate`; `secrets_present: false` skips checks of secrets that are only
    /// available at run time (the NixOS module's build-time check).
    pub fn validate_with(&self, secrets_present: bool) -> Result<(), ConfigError> {
        self.auth.validate(self.environment == Environment::Production, secrets_present)?;
        self.load.validate()?;
        self.embeddings.validate()?;
        self.limits.validate(self.request_timeout, self.load.max_concurrent_requests)?;
        tracing_subscriber::EnvFilter::try_new(&self.log_level)
            .map_err(|e| ConfigError::new("LOG_LEVEL", e.to_string()))?;
        if self.db_pool_max == 0 {
            return Err(ConfigError::new("DB_POOL_MAX", "must be at least 1"));
        }
        if self.max_batch == 0 {
            return Err(ConfigError::new("MAX_BATCH", "must be at least 1"));
        }
        if self.max_name_bytes == 0 {
            return Err(ConfigError::new("MAX_NAME_BYTES", "must be at least 1"));
        }
        if self.max_observation_bytes == 0 {
            return Err(ConfigError::new("MAX_OBSERVATION_BYTES", "must be at least 1"));
        }
        if self.graph_cache_bytes == 0 && self.graph_cache_entities.is_some_and(|n| n > 0) {
            return Err(ConfigError::new(
                "GRAPH_CACHE_ENTITIES",
                "is set, but GRAPH_CACHE_BYTES=0 turns the graph cache off: unset one of them",
            ));
        }
        if self.sqlite_wal_max_bytes < 1024 * 1024 {
            return Err(ConfigError::new("SQLITE_WAL_MAX_BYTES", "must be at least 1048576 (1 MiB)"));
        }
        if self.max_reply_bytes < 65_536 {
            return Err(ConfigError::new(
                "MAX_REPLY_BYTES",
                format!("must be at least 65536, got {}", self.max_reply_bytes),
            ));
        }
        if self.max_body_bytes < 1024 {
            return Err(ConfigError::new("MAX_BODY_BYTES", "must be at least 1024"));
        }
        if self.db_statement_timeout.is_zero() {
            return Err(ConfigError::new("DB_STATEMENT_TIMEOUT", "must be more than 0"));
        }
        // A call that may wait this long for the database would be cut off by REQUEST_TIMEOUT first.
        if self.db_timeout + self.db_statement_timeout >= self.request_timeout {
            return Err(ConfigError::new(
                "DB_STATEMENT_TIMEOUT",
                "DB_TIMEOUT plus DB_STATEMENT_TIMEOUT must be less than REQUEST_TIMEOUT",
            ));
        }
        for origin in self.allowed_origins.iter().filter(|o| !o.is_empty()) {
            if origin != "null" && !origin.contains("://") {
                return Err(ConfigError::new(
                    "ALLOWED_ORIGINS",
                    format!("`{origin}` needs a scheme, e.g. https://{origin}"),
                ));
            }
        }
        Ok(())
    }
}

/// Secrets are held as `SecretString` from the moment they are parsed: `Debug` shows
/// `[REDACTED]`, so no log line or panic message can carry them.
pub fn secret(value: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(value))
}

/// Parses `25s`, `500ms`, `2m`, `1h` or a bare number of seconds.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let value = value.trim();
    let split = value.find(|c: char| !c.is_ascii_digit()).unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: u64 = number.parse().map_err(|_| format!("`{value}` is not a duration such as 25s, 500ms or 2m"))?;
    match unit {
        "" | "s" => Ok(Duration::from_secs(number)),
        "ms" => Ok(Duration::from_millis(number)),
        "m" => Ok(Duration::from_secs(number * 60)),
        "h" => Ok(Duration::from_secs(number * 3600)),
        "d" => Ok(Duration::from_secs(number * 86_400)),
        _ => Err(format!("`{value}` has an unknown unit (use ms, s, m, h or d)")),
    }
}

/// Shown only where a secret's presence matters, never its value.
pub fn redact(url: &SecretString) -> String {
    match url::Url::parse(url.expose_secret()) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.expose_secret().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("25s"), Ok(Duration::from_secs(25)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5w").is_err());
    }

    #[test]
    fn redact_hides_only_the_password() {
        let url = SecretString::from("postgres://mcp:hunter2@db:5432/mcp");
        assert_eq!(redact(&url), "postgres://mcp:***@db:5432/mcp");
    }
}
