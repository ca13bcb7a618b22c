//! The composition root: every command that serves the memory, and every test, assembles the
//! layers here from one `Settings`, so a test runs exactly the server `main` runs.

use crate::{
    config::{ConfigError, Settings, redact},
    embed::Embedder,
    http::{self, AppState, RunningServer, StateError},
    mcp::MemoryServer,
    memory::{Limits, Memory, Tenant, semantic::SemanticSettings},
    storage::{Backend, DatabaseConfig, StorageError, Store},
};

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("connecting to the database at {url}: {source}")]
    Connect { url: String, source: StorageError },
    #[error("migrating the database: {0}")]
    Migrate(StorageError),
    #[error(transparent)]
    Schema(StorageError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("Redis settings: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("stdio: {0}")]
    Stdio(String),
    #[error(transparent)]
    Embedder(#[from] crate::embed::EmbedError),
}

/// The memory over a connected, migrated store, with the settings it was built from.
pub struct Application {
    settings: Settings,
    memory: Memory,
}

impl Application {
    /// Connects, migrates where that is the rule (SQLite always; PostgreSQL with
    /// MIGRATE_ON_START), and refuses a schema this binary cannot serve (pending migrations, or
    /// newer ones that break it).
    pub async fn build(settings: Settings) -> Result<Self, BuildError> {
        let db = DatabaseConfig::from_settings(&settings)?;
        let store = Store::connect(&db).await.map_err(|source| BuildError::Connect { url: redact(&db.url), source })?;
        Self::with_store(settings, store).await
    }

    /// The same on a store the caller connected: tests of upgrades give it the migrations of a
    /// later release.
    #[doc(hidden)]
    pub async fn with_store(settings: Settings, store: Store) -> Result<Self, BuildError> {
        if store.backend() == Backend::Sqlite || settings.migrate_on_start {
            store.migrate().await.map_err(BuildError::Migrate)?;
        }
        store.require_servable_schema().await.map_err(BuildError::Schema)?;
        let mut memory = Memory::new(store, Limits::from_settings(&settings));
        if let Some(embedder) = Embedder::from_settings(&settings.embeddings)? {
            let e = &settings.embeddings;
            memory = memory.with_embedder(
                embedder,
                SemanticSettings {
                    default_mode: e.search_mode,
                    batch: e.embeddings_batch,
                    cache_bytes: usize::try_from(e.vector_cache_bytes).unwrap_or(usize::MAX),
                },
            );
        }
        Ok(Application { settings, memory })
    }

    pub fn memory(&self) -> &Memory {
        &self.memory
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The HTTP layer's state: auth, rate limits, sessions, over this memory.
    pub fn state(self) -> Result<AppState, BuildError> {
        Ok(AppState::new(self.memory, self.settings)?)
    }

    /// Binds the MCP and metrics listeners (port 0 picks free ports) and starts serving.
    pub async fn start(self) -> Result<RunningServer, BuildError> {
        Ok(RunningServer::start(self.state()?).await?)
    }

    /// `serve`: start, tell systemd we are ready, run until SIGTERM/SIGINT.
    pub async fn serve(self) -> Result<(), BuildError> {
        Ok(http::serve(self.state()?).await?)
    }

    /// One client on stdin/stdout. With Redis configured it also hears of writes made by the HTTP
    /// replicas (and they of its writes), so its resource subscriptions see every change.
    pub async fn stdio(self, tenant: Tenant) -> Result<(), BuildError> {
        use rmcp::ServiceExt;
        let settings = &self.settings;
        let redis = crate::redis::connect(&settings.redis)?;
        let updates = crate::sessions::ResourceUpdates::new(
            redis,
            crate::sessions::UPDATES_PREFIX,
            settings.session_ttl,
            settings.redis.redis_timeout,
        );
        let stop = tokio_util::sync::CancellationToken::new();
        tokio::spawn(updates.clone().run(stop.clone()));
        tokio::spawn(self.memory.clone().index(stop.clone()));
        tokio::spawn(self.memory.clone().purge_history(stop.clone()));
        let server = MemoryServer::with_tenant(self.memory, tenant).with_resource_updates(updates);
        // Clients spawn stdio servers on pipes: read and written on the IO reactor (rmcp's pipe
        // handles), where `stdio()` hands every read and write to a blocking thread.
        let stdio = |e: &dyn std::fmt::Display| BuildError::Stdio(e.to_string());
        let service = server.serve(crate::mcp::stdio::stdio()).await.map_err(|e| stdio(&e))?;
        service.waiting().await.map_err(|e| stdio(&e))?;
        stop.cancel();
        Ok(())
    }
}
