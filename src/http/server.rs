//! Server lifecycle: bind, serve, and drain gracefully on a shutdown signal.

use std::{future::Future, net::SocketAddr, sync::atomic::Ordering};

use axum::{Router, routing::get};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use super::{AppState, app, listener, metrics};

/// A started server: its bound addresses and the means to stop it.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub state: AppState,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl RunningServer {
    /// Binds the MCP and metrics listeners (port 0 picks free ports) and starts serving.
    pub async fn start(state: AppState) -> std::io::Result<Self> {
        let settings = state.settings.clone();
        let max_connections = listener::max_connections(&settings)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let listener = TcpListener::bind((settings.host, settings.port)).await?;
        let metrics_listener = TcpListener::bind((settings.host, settings.metrics_port)).await?;
        let addr = listener.local_addr()?;
        let metrics_addr = metrics_listener.local_addr()?;
        let stop = CancellationToken::new();
        // Before the background tasks: a measurement made with no recorder installed is lost
        // (the indexer's first queue gauge was, and the next came after its backoff).
        metrics::handle();
        tokio::spawn(state.updates.clone().run(state.shutdown.clone()));
        let limits = listener::Limits {
            max_connections,
            header_read_timeout: settings.limits.header_read_timeout,
            idle_timeout: settings.limits.idle_timeout,
        };
        let heartbeat = tokio::spawn(state.memory.clone().heartbeat(state.shutdown.clone()));
        tokio::spawn(state.memory.clone().index(state.shutdown.clone()));
        tokio::spawn(state.memory.clone().purge_history(state.shutdown.clone()));
        let task = tokio::spawn(run(state.clone(), (listener, limits), metrics_listener, stop.clone(), heartbeat));
        Ok(RunningServer { addr, metrics_addr, state, stop, task })
    }

    /// Runs the shutdown sequence and waits for it to finish.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }

    /// Waits for `signal`, then shuts down.
    pub async fn run_until(self, signal: impl Future<Output = ()>) {
        tokio::select! {
            () = signal => {}
            _ = self.stop.cancelled() => {}
        }
        self.shutdown().await;
    }
}

async fn run(
    state: AppState,
    (listener, limits): (TcpListener, listener::Limits),
    metrics_listener: TcpListener,
    stop: CancellationToken,
    heartbeat: JoinHandle<()>,
) {
    let stop_accepting = CancellationToken::new();
    let server = listener::serve(listener, app(state.clone()), limits, stop_accepting.clone());
    let metrics_state = state.clone();
    let metrics_router: Router =
        Router::new().route("/metrics", get(move || std::future::ready(metrics::render(&metrics_state))));
    let metrics_server =
        axum::serve(metrics_listener, metrics_router).with_graceful_shutdown(stop_accepting.clone().cancelled_owned());
    let mut server_task = tokio::spawn(server);
    let metrics_task = tokio::spawn(async move { metrics_server.await });

    tokio::select! {
        () = stop.cancelled() => {}
        result = &mut server_task => {
            tracing::error!(?result, "HTTP server stopped unexpectedly");
            return;
        }
    }
    drain(&state, stop_accepting, server_task, heartbeat).await;
    metrics_task.abort();
}

/// Readiness turns 503 at once; requests are still served for SHUTDOWN_DELAY (endpoints take
/// time to update), then the listener closes, streams end, and in-flight requests get
/// SHUTDOWN_TIMEOUT to finish.
async fn drain(
    state: &AppState,
    stop_accepting: CancellationToken,
    server_task: JoinHandle<()>,
    heartbeat: JoinHandle<()>,
) {
    let settings = &state.settings;
    state.draining.store(true, Ordering::Relaxed);
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    tracing::info!(delay = ?settings.shutdown_delay, "shutdown: readiness failing, still serving");
    tokio::time::sleep(settings.shutdown_delay).await;
    tracing::info!(timeout = ?settings.shutdown_timeout, "shutdown: no longer accepting, draining");
    // Subscriptions end first, so listen requests send their final result before streams close.
    if state.updates.close(std::time::Duration::from_secs(1)).await {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    stop_accepting.cancel();
    let deadline = tokio::time::Instant::now() + settings.shutdown_timeout;
    // Requests still being handled finish before the MCP service is cancelled: cancelling it
    // answers them with rmcp's 500 "empty response" (and lets their writes race the pool's close).
    // A request holds its permit until its response head, so all permits back means none is left;
    // streams, which hold none, end with the cancel.
    let max = u32::try_from(settings.load.max_concurrent_requests).unwrap_or(u32::MAX);
    if tokio::time::timeout_at(deadline, state.permits.acquire_many(max)).await.is_err() {
        tracing::warn!("shutdown: requests still running at the drain timeout are cancelled");
    }
    state.shutdown.cancel();
    match tokio::time::timeout_at(deadline, server_task).await {
        Ok(_) => tracing::info!("shutdown: drained"),
        Err(_) => tracing::warn!("shutdown: drain timed out, remaining connections dropped"),
    }
    // The heartbeat removes this replica's row (it no longer holds back a migration) before the
    // pool closes.
    let _ = heartbeat.await;
    state.memory.close().await;
}

/// Resolves on SIGTERM or SIGINT.
pub async fn signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

/// Pings systemd's watchdog at half its interval for as long as the runtime schedules tasks, so a
/// wedged process is restarted. Dependencies are not checked: an outage must not restart us.
/// Pings end with the shutdown signal (systemd then times the stop with TimeoutStopSec), which
/// also keeps them from filling a notify socket nobody reads any more.
async fn watchdog(interval: std::time::Duration, stop: CancellationToken) {
    tracing::info!(?interval, "systemd watchdog enabled");
    let mut ticks = tokio::time::interval(interval / 2);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
    }
}

/// `serve`: start, tell systemd we are ready, run until SIGTERM/SIGINT.
pub async fn serve(state: AppState) -> std::io::Result<()> {
    let server = RunningServer::start(state).await?;
    tracing::info!(addr = %server.addr, metrics = %server.metrics_addr, "serving MCP at http://{}/mcp", server.addr);
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    let stop_watchdog = CancellationToken::new();
    if let Some(interval) = sd_notify::watchdog_enabled() {
        tokio::spawn(watchdog(interval, stop_watchdog.clone()));
    }
    server
        .run_until(async {
            signal().await;
            stop_watchdog.cancel();
        })
        .await;
    Ok(())
}
