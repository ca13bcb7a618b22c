//! The MCP listener: hyper's connection builder with what `axum::serve` leaves out. A connection
//! must send its first request head within HEADER_READ_TIMEOUT and each later one within
//! IDLE_TIMEOUT (hyper starts that clock whenever a connection waits for a head, so idle
//! keep-alive connections close after it); at most MAX_CONNECTIONS are open, further ones wait
//! in the kernel's backlog; an accept error never stops or stalls the loop.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::{Router, body::Body};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
};
use tokio::{net::TcpListener, sync::Semaphore};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::config::{ConfigError, Settings};

/// Open files kept for what is not a client connection: the database pool, Redis, the metrics
/// listener and its scrapes, the SQLite files, logs and outbound HTTP.
const RESERVED_FILES: u64 = 128;

/// Raises the soft open-file limit to the hard one where allowed, and returns MAX_CONNECTIONS or
/// the default it leaves room for. An explicit MAX_CONNECTIONS beyond the limit is an error:
/// accept would fail with EMFILE before the cap is reached.
pub fn max_connections(settings: &Settings) -> Result<usize, ConfigError> {
    let Some(files) = open_file_limit() else {
        return Ok(settings.limits.max_connections.unwrap_or(4096));
    };
    let reserved = RESERVED_FILES + u64::from(settings.db_pool_max);
    let room = usize::try_from(files.saturating_sub(reserved).max(1)).unwrap_or(usize::MAX);
    match settings.limits.max_connections {
        None => Ok(room),
        Some(max) if max <= room => Ok(max),
        Some(max) => Err(ConfigError::new(
            "MAX_CONNECTIONS",
            format!(
                "{max} exceeds the {room} connections the open-file limit ({files}) leaves room for; raise it (ulimit -n, LimitNOFILE) or lower MAX_CONNECTIONS"
            ),
        )),
    }
}

#[cfg(unix)]
fn open_file_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.maximum.is_some_and(|hard| limit.current.is_some_and(|soft| soft < hard)) {
        let raised = rustix::process::Rlimit { current: limit.maximum, maximum: limit.maximum };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            limit = getrlimit(Resource::Nofile);
        }
    }
    limit.current
}

#[cfg(not(unix))]
fn open_file_limit() -> Option<u64> {
    None
}

pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
}

/// Serves `router` until `stop`; then stops accepting, shuts every connection down gracefully
/// (in-flight requests finish, idle connections close) and returns once all are closed.
pub async fn serve(listener: TcpListener, router: Router, limits: Limits, stop: CancellationToken) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.idle_timeout);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the connection semaphore is never closed"),
            () = stop.cancelled() => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    accept_failed(&error).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        let first_head = Arc::new(AtomicBool::new(false));
        let seen = first_head.clone();
        let router = router.clone();
        let service = hyper::service::service_fn(move |request: http::Request<hyper::body::Incoming>| {
            seen.store(true, Ordering::Relaxed);
            router.clone().oneshot(request.map(Body::new))
        });
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service).into_owned());
        let header_read_timeout = limits.header_read_timeout;
        tokio::spawn(async move {
            let _slot = slot;
            metrics::gauge!("http_connections_open").increment(1.0);
            // A connection that never completes its first head is dropped (closed) at the deadline.
            let silent = async {
                tokio::time::sleep(header_read_timeout).await;
                if first_head.load(Ordering::Relaxed) {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                _ = connection => {}
                () = silent => {}
            }
            metrics::gauge!("http_connections_open").decrement(1.0);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// A failed accept costs one connection, never the listener: errors about that connection are
/// skipped at once; a lack of resources (EMFILE, ENOBUFS) waits a moment rather than spin.
async fn accept_failed(error: &std::io::Error) {
    use std::io::ErrorKind::*;
    metrics::counter!("http_accept_errors_total").increment(1);
    if matches!(error.kind(), ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted) {
        return;
    }
    tracing::warn!(%error, "accepting a connection failed");
    tokio::time::sleep(Duration::from_millis(20)).await;
}
