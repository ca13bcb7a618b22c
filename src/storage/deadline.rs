//! Deadlines for a database that stops answering without closing its connections (packets
//! dropped): without them a call waits until REQUEST_TIMEOUT, and a connection given up on sits
//! in sqlx's release ping until the kernel's TCP timeout, holding its pool slot.

use std::{
    future::Future,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use sqlx::{Any, AnyConnection, Connection, pool::PoolConnectionMetadata};

use super::StorageError;

/// PostgreSQL session settings: the server ends a statement (a write included, which then does not
/// commit) or an idle transaction the client may have given up on, instead of finishing it later.
pub(super) fn session_settings(statement_timeout: Duration) -> String {
    let ms = statement_timeout.as_millis();
    format!("SET jit = off; SET statement_timeout = {ms}; SET idle_in_transaction_session_timeout = {ms}")
}

/// When a call last gave up on the database: connections released soon after may be the one it
/// abandoned mid-statement.
#[derive(Default)]
pub(super) struct Abandoned(Mutex<Option<Instant>>);

impl Abandoned {
    fn mark(&self) {
        *self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Instant::now());
    }

    fn recent(&self, within: Duration) -> bool {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).is_some_and(|at| at.elapsed() < within)
    }
}

/// sqlx's `after_release` for PostgreSQL: after a call gave up, each released connection is pinged
/// within `bound`, and one that does not answer is dropped instead of waiting in sqlx's own
/// unbounded release ping. Otherwise nothing: a healthy release costs no extra round trip.
pub(super) fn after_release(
    abandoned: Arc<Abandoned>,
    bound: Duration,
) -> impl for<'c> Fn(
    &'c mut <Any as sqlx::Database>::Connection,
    PoolConnectionMetadata,
) -> futures::future::BoxFuture<'c, Result<bool, sqlx::Error>>
+ Send
+ Sync
+ 'static {
    move |conn, _| {
        let check = abandoned.recent(bound * 4);
        Box::pin(async move {
            if !check {
                return Ok(true);
            }
            let error = match tokio::time::timeout(bound, conn.ping()).await {
                Ok(Ok(())) => return Ok(true),
                Ok(Err(error)) => error,
                Err(_) => sqlx::Error::Io(std::io::ErrorKind::TimedOut.into()),
            };
            discard(conn).await;
            Err(error)
        })
    }
}

/// Drops a connection that does not answer, without a word to its server. sqlx closes a connection
/// that fails its release check, and over TLS (sqlx 0.8.6, rustls) that close waits for the server
/// to answer, which a silent one never does: the close held its pool slot for good. The pool
/// closes an in-memory SQLite stand-in instead.
async fn discard(conn: &mut AnyConnection) {
    match AnyConnection::connect("sqlite::memory:").await {
        Ok(stand_in) => drop(std::mem::replace(conn, stand_in)),
        Err(error) => tracing::warn!(%error, "no stand-in for a silent connection; its close may wait"),
    }
}

/// The longest a call's database work may take, and the mark it leaves when it gives up.
#[derive(Clone)]
pub(super) struct Deadline {
    pub(super) abandoned: Arc<Abandoned>,
    pub(super) bound: Duration,
}

impl Deadline {
    /// Runs database work within the bound; past it the work fails as unavailable (retryable)
    /// and is dropped, after the mark, so its connection's release sees it. Also for the work a
    /// spawned task does for several calls (combined creates, shared version reads): it would
    /// otherwise hold them all, and the ones queued behind it, for as long as the database hangs.
    pub(super) async fn run<T, E: From<StorageError>>(&self, work: impl Future<Output = Result<T, E>>) -> Result<T, E> {
        let work = std::pin::pin!(work);
        tokio::select! {
            biased;
            result = work => result,
            () = tokio::time::sleep(self.bound) => {
                self.abandoned.mark();
                Err(StorageError::TimedOut(self.bound).into())
            }
        }
    }
}
