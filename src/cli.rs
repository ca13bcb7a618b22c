//! The command line: parse, configure, dispatch. `anyhow` lives here, at the edge.

use std::{
    fs::File,
    io::{BufReader, BufWriter, Write},
    path::PathBuf,
    process::ExitCode,
    time::Duration,
};

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::{
    app::Application,
    config::{ConfigError, Settings, redact},
    memory::Tenant,
    storage::{DatabaseConfig, StorageError, Store},
    telemetry, transfer,
};

mod smoke;

/// Knowledge-graph memory served over the Model Context Protocol (Streamable HTTP and stdio).
///
/// Every option is also an environment variable (shown in brackets with its default).
#[derive(Debug, Parser)]
#[command(name = "mcp-server", version, about, long_about = None, max_term_width = 110)]
pub struct Cli {
    #[command(flatten)]
    pub settings: Settings,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve MCP over Streamable HTTP at /mcp (the default command)
    Serve,
    /// Serve MCP over stdin/stdout, for desktop clients
    Stdio {
        /// Tenant whose graph this stdio session uses
        #[arg(long, env = "MCP_TENANT", default_value = Tenant::DEFAULT)]
        tenant: String,
    },
    /// Apply database migrations and exit (idempotent; safe to run concurrently)
    Migrate {
        /// Apply a migration even though replicas it breaks still run (see README, Upgrading)
        #[arg(long, env = "MIGRATE_FORCE", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
        force: bool,
    },
    /// Check a running server's /health; exit 0 when healthy, 1 otherwise
    Healthcheck {
        /// URL to check (default: http://127.0.0.1:$PORT/health)
        #[arg(long)]
        url: Option<String>,
    },
    /// Import a reference server-memory JSONL file (idempotent)
    Import {
        file: PathBuf,
        #[arg(long, env = "MCP_TENANT", default_value = Tenant::DEFAULT)]
        tenant: String,
    },
    /// Export the graph as reference server-memory JSONL (to stdout without FILE)
    Export {
        file: Option<PathBuf>,
        #[arg(long, env = "MCP_TENANT", default_value = Tenant::DEFAULT)]
        tenant: String,
        /// Add each row's times to its line (createdAt, updatedAt, observationsCreatedAt), which
        /// `import` restores; without it the file is the reference's, byte for byte
        #[arg(long)]
        with_time: bool,
    },
    /// Back up the database to DEST (a new file): SQLite as a copy of its file, PostgreSQL as JSON lines
    Backup {
        dest: PathBuf,
        /// Back up only this tenant (every tenant without it)
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Restore a backup (either format, either backend) after verifying it whole
    Restore {
        src: PathBuf,
        /// Restore only this tenant of the backup
        #[arg(long)]
        tenant: Option<String>,
        /// Replace the graphs of tenants that are not empty (refused otherwise)
        #[arg(long)]
        replace: bool,
    },
    /// Run a real MCP round trip against a deployed server; exit 0 when it works
    Smoke {
        /// The server's MCP endpoint, e.g. https://mcp.example.com/mcp
        url: String,
        /// Bearer token to send, if the server requires one
        #[arg(long, env = "MCP_SMOKE_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Give up after this long
        #[arg(long, value_parser = crate::config::parse_duration, default_value = "15s")]
        timeout: Duration,
    },
    /// Validate the configuration and exit: 0 when valid, 2 naming the bad variable
    CheckConfig {
        /// Do not require secrets (for build-time checks, before secrets exist)
        #[arg(long)]
        no_secrets: bool,
    },
    /// Print an HS256 access token signed with JWT_SECRET (development and testing)
    Token {
        /// Tenant the token grants access to (its AUTH_TENANT_CLAIM claim)
        #[arg(long, default_value = Tenant::DEFAULT)]
        tenant: String,
        /// Space-separated scopes
        #[arg(long, default_value = "memory:read memory:write")]
        scope: String,
        /// Lifetime
        #[arg(long, value_parser = crate::config::parse_duration, default_value = "1h")]
        ttl: Duration,
        /// Mint even with ENVIRONMENT=production
        #[arg(long)]
        force: bool,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let secrets_present = !matches!(cli.command, Some(Command::CheckConfig { no_secrets: true }));
    if let Err(e) = validate(&cli.settings, secrets_present) {
        eprintln!("mcp-server: {e}");
        return ExitCode::from(2);
    }
    let telemetry = telemetry::init(&cli.settings);
    // A stdio server answers one client: on two workers each call woke both, a few context
    // switches a call for nothing.
    let mut builder = match cli.command {
        Some(Command::Stdio { .. }) => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mcp-server: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli));
    drop(runtime);
    // Spans still in the batch go out before the process ends.
    telemetry.shutdown();
    match result {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "fatal");
            eprintln!("mcp-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The settings' own checks, then the database settings as storage resolves them (config knows
/// no database types, so that check cannot live in `Settings::validate`).
fn validate(settings: &Settings, secrets_present: bool) -> Result<(), ConfigError> {
    settings.validate_with(secrets_present)?;
    DatabaseConfig::from_settings(settings).map(drop)
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let settings = cli.settings;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => Application::build(settings).await?.serve().await?,
        Command::Stdio { tenant } => Application::build(one_shot(settings)).await?.stdio(Tenant::new(tenant)).await?,
        Command::Migrate { force } => {
            let db = DatabaseConfig::from_settings(&settings)?;
            let store = Store::connect(&db).await.context("connecting to the database")?;
            match store.migrate_with(force).await {
                Err(e @ StorageError::BreakingMigration { .. }) => {
                    eprintln!("mcp-server: {e}");
                    return Ok(ExitCode::from(2));
                }
                result => result?,
            }
            println!("migrations applied to {}", redact(&db.url));
        }
        Command::Healthcheck { url } => {
            let url = url.unwrap_or_else(|| format!("http://127.0.0.1:{}/health", settings.port));
            return Ok(healthcheck(&url).await);
        }
        Command::Import { file, tenant } => {
            let app = Application::build(one_shot(settings)).await?;
            let memory = app.memory();
            let reader = BufReader::new(File::open(&file).with_context(|| format!("opening {}", file.display()))?);
            let (entities, relations, times) =
                transfer::parse_with_times(reader).with_context(|| format!("reading {}", file.display()))?;
            let bar = indicatif::ProgressBar::new((entities.len() + relations.len()) as u64);
            let tenant = Tenant::new(tenant);
            let summary =
                transfer::import_with_times(memory, &tenant, entities, relations, &times, |n| bar.inc(n as u64))
                    .await?;
            bar.finish_and_clear();
            eprintln!("imported {} new entities and {} new relations", summary.entities, summary.relations);
        }
        Command::Export { file, tenant, with_time } => {
            let app = Application::build(one_shot(settings)).await?;
            let out: Box<dyn Write> = match &file {
                Some(path) => Box::new(File::create(path).with_context(|| format!("creating {}", path.display()))?),
                None => Box::new(std::io::stdout().lock()),
            };
            let (memory, tenant, out) = (app.memory(), &Tenant::new(tenant), BufWriter::new(out));
            let summary = match with_time {
                true => transfer::export_with_times(memory, tenant, out).await?,
                false => transfer::export(memory, tenant, out).await?,
            };
            eprintln!("exported {} entities and {} relations", summary.entities, summary.relations);
        }
        Command::Backup { dest, tenant } => {
            let db = DatabaseConfig::from_settings(&settings)?;
            let store = Store::connect(&db).await.with_context(|| format!("connecting to {}", redact(&db.url)))?;
            store.require_servable_schema().await?;
            let summary = crate::backup::backup(&store, &dest, tenant.as_deref()).await?;
            store.close().await;
            eprintln!("backed up {summary} to {}", dest.display());
        }
        Command::Restore { src, tenant, replace } => {
            let db = DatabaseConfig::from_settings(&settings)?;
            let store = Store::connect(&db).await.with_context(|| format!("connecting to {}", redact(&db.url)))?;
            store.migrate().await.context("migrating the database")?;
            store.require_servable_schema().await?;
            let summary = crate::backup::restore(&store, &src, tenant.as_deref(), replace).await?;
            store.close().await;
            eprintln!("restored {summary} from {}", src.display());
        }
        Command::Smoke { url, token, timeout } => return Ok(smoke::run(&url, token, timeout).await),
        Command::CheckConfig { .. } => println!("configuration is valid"),
        Command::Token { tenant, scope, ttl, force } => return token(&settings, &tenant, &scope, ttl, force),
    }
    Ok(ExitCode::SUCCESS)
}

/// MIGRATE_ON_START is `serve`'s: a desktop client's `stdio` or an `import` never migrates
/// PostgreSQL under running replicas (`migrate` does, refusing what would break them).
fn one_shot(mut settings: Settings) -> Settings {
    settings.migrate_on_start = false;
    settings
}

fn token(settings: &Settings, tenant: &str, scope: &str, ttl: Duration, force: bool) -> anyhow::Result<ExitCode> {
    if settings.environment == crate::config::Environment::Production && !force {
        anyhow::bail!("`token` is for development; with ENVIRONMENT=production pass --force");
    }
    let Some(secret) = settings.auth.jwt_secret.as_ref().map(secrecy::ExposeSecret::expose_secret) else {
        eprintln!("mcp-server: invalid value for JWT_SECRET: `token` needs it (at least 32 bytes)");
        return Ok(ExitCode::from(2));
    };
    // A token the server does not check as HS256 is no use: it would be answered 401 or 503.
    let mode = settings.auth.resolved_mode();
    if mode != crate::config::ResolvedAuth::Hs256 {
        let mode = format!("{mode:?}").to_lowercase();
        eprintln!("mcp-server: invalid value for AUTH_MODE: `token` mints HS256 tokens, the server checks {mode}");
        return Ok(ExitCode::from(2));
    }
    let auth = crate::auth::Authenticator::from_settings(settings, reqwest::Client::new())?;
    let issuer = settings.auth.oauth_issuer.as_deref().unwrap_or(crate::auth::DEFAULT_ISSUER);
    let claim = &settings.auth.auth_tenant_claim;
    println!("{}", crate::auth::issue_hs256(secret.as_bytes(), issuer, auth.resource(), claim, tenant, scope, ttl));
    Ok(ExitCode::SUCCESS)
}

async fn healthcheck(url: &str) -> ExitCode {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(3)).build();
    let ok = match client {
        Ok(client) => matches!(client.get(url).send().await, Ok(r) if r.status().is_success()),
        Err(_) => false,
    };
    if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
