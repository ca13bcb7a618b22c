//! Which database the settings select and how to reach it. `config` holds the flags and variables
//! as given; what they mean for a connection is storage's to decide, so it resolves them here.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::config::{ConfigError, Settings};

/// Which database the settings select.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The OpenTelemetry `db.system.name` value.
    pub fn otel_name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgresql",
        }
    }
}

/// The resolved database settings.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub backend: Backend,
    pub url: SecretString,
    pub pool_max: u32,
    pub timeout: Duration,
    pub statement_timeout: Duration,
    pub migrate_on_start: bool,
    /// SQLite: the write-ahead log's size bound (SQLITE_WAL_MAX_BYTES).
    pub wal_max_bytes: u64,
}

impl DatabaseConfig {
    /// Resolves DATABASE_URL / DB_* / the embedded default into one database setting.
    pub fn from_settings(settings: &Settings) -> Result<Self, ConfigError> {
        let (backend, url) = match (&settings.database_url, &settings.db_host) {
            (Some(url), _) if !url.expose_secret().is_empty() => {
                (backend_of(url.expose_secret())?, url.expose_secret().to_string())
            }
            (_, Some(host)) if !host.is_empty() => (Backend::Postgres, postgres_url(settings, host)),
            _ => (Backend::Sqlite, format!("sqlite://{}/mcp-server.db", settings.data_dir.trim_end_matches('/'))),
        };
        let db = DatabaseConfig {
            backend,
            url: SecretString::from(url),
            pool_max: settings.db_pool_max,
            timeout: settings.db_timeout,
            statement_timeout: settings.db_statement_timeout,
            migrate_on_start: settings.migrate_on_start,
            wal_max_bytes: settings.sqlite_wal_max_bytes,
        };
        // sqlx reads the URL's parameters only when it connects: a bad `sslmode` or `mode` would
        // pass here and fail at start, or in a migration job, long after the check said yes.
        let parsed = match db.backend {
            Backend::Postgres => db.url.expose_secret().parse::<sqlx::postgres::PgConnectOptions>().map(drop),
            Backend::Sqlite => db.url.expose_secret().parse::<sqlx::sqlite::SqliteConnectOptions>().map(drop),
        };
        parsed.map_err(|e| {
            let variable = if settings.database_url.is_some() { "DATABASE_URL" } else { "DB_HOST" };
            let reason = e.to_string();
            ConfigError::new(variable, reason.trim_start_matches("error with configuration: ").to_string())
        })?;
        Ok(db)
    }
}

fn postgres_url(settings: &Settings, host: &str) -> String {
    let mut url = url::Url::parse("postgres://localhost").expect("static URL parses");
    url.set_path(&settings.db_name);
    let _ = url.set_username(&settings.db_user);
    if let Some(password) = &settings.db_password {
        let _ = url.set_password(Some(password.expose_secret()));
    }
    if host.starts_with('/') {
        // A unix socket directory goes in the query, as libpq does.
        url.query_pairs_mut().append_pair("host", host);
    } else {
        let _ = url.set_host(Some(host));
        let _ = url.set_port(Some(settings.db_port));
    }
    url.to_string()
}

fn backend_of(url: &str) -> Result<Backend, ConfigError> {
    match url.split_once(':').map(|(scheme, _)| scheme) {
        Some("postgres" | "postgresql") => Ok(Backend::Postgres),
        Some("sqlite") => Ok(Backend::Sqlite),
        _ => Err(ConfigError::new("DATABASE_URL", "must start with postgres://, postgresql:// or sqlite://")),
    }
}
