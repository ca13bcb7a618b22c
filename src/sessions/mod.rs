//! MCP sessions shared through Redis, so a session created on one replica continues on any
//! other (and after its replica dies): rmcp restores a session it does not hold from its
//! initialize parameters kept here. Entries expire after SESSION_TTL without use; DELETE removes
//! them everywhere.

use std::time::Duration;

use rmcp::transport::streamable_http_server::session::{SessionState, SessionStore, SessionStoreError};

use crate::redis::RedisPool;

mod events;
mod manager;
mod updates;
pub use events::RedisEventStore;
pub use manager::SharedSessionManager;
pub use updates::{ResourceUpdates, Subscription, UPDATES_PREFIX};

pub struct RedisSessionStore {
    pool: RedisPool,
    prefix: String,
    ttl: Duration,
    updates: std::sync::Arc<ResourceUpdates>,
}

impl RedisSessionStore {
    pub fn new(
        pool: RedisPool,
        prefix: impl Into<String>,
        ttl: Duration,
        updates: std::sync::Arc<ResourceUpdates>,
    ) -> Self {
        RedisSessionStore { pool, prefix: prefix.into(), ttl, updates }
    }

    fn key(&self, session_id: &str) -> String {
        format!("{}{session_id}", self.prefix)
    }

    fn failed(operation: &'static str, error: impl std::fmt::Display) -> SessionStoreError {
        metrics::counter!("redis_errors_total", "operation" => operation).increment(1);
        format!("session store {operation}: {error}").into()
    }
}

#[async_trait::async_trait]
impl SessionStore for RedisSessionStore {
    async fn load(&self, session_id: &str) -> Result<Option<SessionState>, SessionStoreError> {
        let mut conn = self.pool.get().await.map_err(|e| Self::failed("session_load", e))?;
        // Reading a session keeps it alive: the TTL is an idle timeout.
        let json: Option<String> = redis::cmd("GETEX")
            .arg(self.key(session_id))
            .arg("EX")
            .arg(self.ttl.as_secs().max(1))
            .query_async(&mut *conn)
            .await
            .map_err(|e| Self::failed("session_load", e))?;
        json.map(|j| serde_json::from_str(&j).map_err(|e| Self::failed("session_load", e))).transpose()
    }

    async fn store(&self, session_id: &str, state: &SessionState) -> Result<(), SessionStoreError> {
        let json = serde_json::to_string(state).map_err(|e| Self::failed("session_store", e))?;
        let mut conn = self.pool.get().await.map_err(|e| Self::failed("session_store", e))?;
        let () = redis::cmd("SET")
            .arg(self.key(session_id))
            .arg(json)
            .arg("EX")
            .arg(self.ttl.as_secs().max(1))
            .query_async(&mut *conn)
            .await
            .map_err(|e| Self::failed("session_store", e))?;
        Ok(())
    }

    /// rmcp calls this only for a client's DELETE: the session ends on every replica, with its
    /// resource subscriptions.
    async fn delete(&self, session_id: &str) -> Result<(), SessionStoreError> {
        let mut conn = self.pool.get().await.map_err(|e| Self::failed("session_delete", e))?;
        let _: i64 = redis::cmd("DEL")
            .arg(self.key(session_id))
            .query_async(&mut *conn)
            .await
            .map_err(|e| Self::failed("session_delete", e))?;
        // Gone from the store first, so no replica restores it after dropping its copy.
        self.updates.forget_session(session_id).await;
        self.updates.publish_session_closed(session_id).await;
        Ok(())
    }
}
