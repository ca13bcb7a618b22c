//! HTTP layer: the axum router (`app`), health probes, metrics, and the server lifecycle.

mod auth;
mod gate;
mod guard;
mod health;
mod limits;
mod listener;
pub mod metrics;
mod server;
pub mod trace;

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use axum::{
    Router,
    http::{HeaderName, HeaderValue},
    middleware,
    response::Response,
    routing::get,
};
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};
use tokio_util::sync::CancellationToken;
use tower_http::timeout::TimeoutLayer;

pub use server::{RunningServer, serve};

use crate::{
    auth::{AuthSetupError, Authenticator},
    config::Settings,
    mcp::MemoryServer,
    memory::Memory,
    quota::Quota,
    ratelimit::RateLimiter,
    redis::RedisPool,
    sessions::{RedisEventStore, ResourceUpdates, SharedSessionManager},
};

/// Everything a request handler may need. One shared allocation: axum clones the state for
/// every middleware on every request, and a clone is now one reference count.
#[derive(Clone)]
pub struct AppState(Arc<SharedState>);

impl std::ops::Deref for AppState {
    type Target = SharedState;

    fn deref(&self) -> &SharedState {
        &self.0
    }
}

pub struct SharedState {
    pub memory: Memory,
    pub settings: Arc<Settings>,
    /// Set on SIGTERM: readiness fails so load balancers stop routing here.
    pub draining: Arc<AtomicBool>,
    /// Cancelled when the server stops accepting: ends MCP sessions and SSE streams.
    pub shutdown: CancellationToken,
    pub auth: Arc<Authenticator>,
    pub redis: Option<RedisPool>,
    /// Present when RATE_LIMIT_ENABLED.
    pub limiter: Option<Arc<RateLimiter>>,
    /// Requests in flight on /mcp, bounded by MAX_CONCURRENT_REQUESTS.
    pub permits: Arc<tokio::sync::Semaphore>,
    /// With authentication: each tenant's share of those (MAX_CONCURRENT_REQUESTS_PER_TENANT).
    pub tenant_requests: Option<Arc<Quota>>,
    /// Open `subscriptions/listen` streams (MAX_LISTEN_STREAMS, and per tenant with authentication).
    pub listen_streams: Arc<Quota>,
    /// Resource-update fan-out to subscribers on every replica.
    pub updates: Arc<ResourceUpdates>,
    pub sessions: Arc<SharedSessionManager>,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Auth(#[from] AuthSetupError),
    #[error("Redis settings: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

impl AppState {
    pub fn new(memory: Memory, settings: Settings) -> Result<Self, StateError> {
        let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(5)).build()?;
        let auth = Arc::new(Authenticator::from_settings(&settings, http)?);
        let redis = crate::redis::connect(&settings.redis)?;
        let pool = redis.as_ref().map(|(pool, _)| pool.clone());
        let updates = ResourceUpdates::new(
            redis,
            crate::sessions::UPDATES_PREFIX,
            settings.session_ttl,
            settings.redis.redis_timeout,
        );
        let mut local_sessions = LocalSessionManager::default();
        // SESSION_TTL is also how long this replica keeps a session nobody uses (rmcp: 5 minutes).
        local_sessions.session_config.keep_alive = Some(settings.session_ttl);
        if settings.sessions
            && let Some(pool) = &pool
        {
            local_sessions = local_sessions.with_event_store(Arc::new(RedisEventStore::new(
                pool.clone(),
                "mcp-server:events:",
                settings.sse_event_log_max,
                settings.session_ttl,
            )));
        }
        let tenants = Authenticator::enabled(&auth);
        let limits = &settings.limits;
        let session_quota =
            Quota::new("sessions", limits.max_sessions, tenants.then_some(limits.max_sessions_per_tenant));
        let sessions = Arc::new(SharedSessionManager::new(local_sessions, Some(updates.clone()), session_quota));
        let listen_streams = Quota::new(
            "listen streams",
            limits.max_listen_streams,
            tenants.then_some(limits.max_listen_streams_per_tenant),
        );
        let share = limits.requests_per_tenant(settings.load.max_concurrent_requests);
        let tenant_requests = tenants.then(|| Quota::new("requests", usize::MAX, Some(share)));
        let limiter = settings.load.rate_limit_enabled.then(|| {
            Arc::new(RateLimiter::new(
                settings.load.rate_limit_requests_per_minute,
                pool.clone(),
                settings.redis.redis_timeout,
                "mcp-server:ratelimit:",
            ))
        });
        let permits = Arc::new(tokio::sync::Semaphore::new(settings.load.max_concurrent_requests));
        Ok(AppState(Arc::new(SharedState {
            memory,
            settings: Arc::new(settings),
            draining: Arc::new(AtomicBool::new(false)),
            shutdown: CancellationToken::new(),
            auth,
            redis: pool,
            limiter,
            permits,
            tenant_requests,
            listen_streams,
            updates,
            sessions,
        })))
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

fn mcp_config(state: &AppState) -> StreamableHttpServerConfig {
    let settings = &state.settings;
    let mut config = StreamableHttpServerConfig::default()
        .with_cancellation_token(state.shutdown.child_token())
        .with_max_request_body_bytes(settings.max_body_bytes)
        // Stateless by default: any replica can answer any request, no session affinity.
        .with_legacy_session_mode(settings.sessions)
        .with_json_response(!settings.sessions);
    config = if settings.allowed_hosts.iter().any(|h| h == "*") {
        config.disable_allowed_hosts()
    } else {
        config.with_allowed_hosts(settings.allowed_hosts.iter().filter(|h| !h.is_empty()).cloned())
    };
    let origins: Vec<String> = settings.allowed_origins.iter().filter(|o| !o.is_empty()).cloned().collect();
    let mut config = config.with_allowed_origins(origins).enforce_origin_validation();
    if settings.sessions
        && let Some(redis) = &state.redis
    {
        config.session_store = Some(Arc::new(crate::sessions::RedisSessionStore::new(
            redis.clone(),
            "mcp-server:session:",
            settings.session_ttl,
            state.updates.clone(),
        )));
    }
    config
}

/// Set on every response that has not set its own (one layer for all four).
async fn security_headers(mut response: Response) -> Response {
    const HEADERS: [(HeaderName, HeaderValue); 4] = [
        (HeaderName::from_static("x-content-type-options"), HeaderValue::from_static("nosniff")),
        (HeaderName::from_static("x-frame-options"), HeaderValue::from_static("DENY")),
        (HeaderName::from_static("referrer-policy"), HeaderValue::from_static("no-referrer")),
        (HeaderName::from_static("cache-control"), HeaderValue::from_static("no-store")),
    ];
    let headers = response.headers_mut();
    for (name, value) in HEADERS {
        headers.entry(name).or_insert(value);
    }
    response
}

/// A page of this server's own origin (`Origin` is the `Host` that ALLOWED_HOSTS accepts) is no
/// cross-site caller: rmcp sees its request without the `Origin`, so it passes with ALLOWED_ORIGINS
/// empty, as the MCP spec has a localhost server accept it; a page of any other origin, another
/// localhost port included, is refused. Not with ALLOWED_HOSTS=`*`: a DNS-rebinding page is
/// same-origin with a host of its own.
fn pass_same_origin(request: &mut axum::extract::Request) {
    let headers = request.headers();
    let (Some(origin), Some(host)) = (headers.get(http::header::ORIGIN), headers.get(http::header::HOST)) else {
        return;
    };
    let (Ok(origin), Ok(host)) = (origin.to_str(), host.to_str()) else { return };
    let authority = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
    if authority.is_some_and(|a| a.eq_ignore_ascii_case(host)) {
        request.headers_mut().remove(http::header::ORIGIN);
    }
}

/// The application router: `/mcp` (Streamable HTTP) and the health probes.
pub fn app(state: AppState) -> Router {
    // Installed before the first request so that no early measurement is lost.
    metrics::handle();
    let (memory, updates) = (state.memory.clone(), state.updates.clone());
    let fixtures = state.settings.conformance_fixtures;
    let mcp = Arc::new(StreamableHttpService::new(
        move || {
            Ok(MemoryServer::new(memory.clone())
                .with_conformance_fixtures(fixtures)
                .with_resource_updates(updates.clone()))
        },
        state.sessions.clone(),
        mcp_config(&state),
    ));
    // rmcp's service clones its whole config (host and origin lists, a cancellation token) for
    // every request, after axum has cloned the service; shared, each is one reference count.
    let hosts_checked = !state.settings.allowed_hosts.iter().any(|h| h == "*");
    let mcp = tower::service_fn(move |mut request: axum::extract::Request| {
        let mcp = mcp.clone();
        if hosts_checked {
            pass_same_origin(&mut request);
        }
        async move {
            let body = request.extensions().get::<guard::JsonBody>().cloned();
            let response = mcp.handle(request).await.map(axum::body::Body::new);
            Ok::<_, std::convert::Infallible>(guard::refused_message(response, body))
        }
    });
    let router = Router::new()
        .nest_service(
            "/mcp",
            tower::ServiceBuilder::new()
                .layer(middleware::from_fn_with_state(state.clone(), gate::mcp_gate))
                .service(mcp),
        )
        .route("/.well-known/oauth-protected-resource", get(auth::metadata))
        .route("/.well-known/oauth-protected-resource/mcp", get(auth::metadata))
        .route("/health", get(health::live))
        .route("/health/ready", get(health::ready))
        .with_state(state.clone());
    router
        .layer(middleware::map_response(security_headers))
        .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::GATEWAY_TIMEOUT, state.settings.request_timeout))
        .layer(middleware::from_fn(trace::trace_requests))
        .layer(middleware::from_fn(metrics::track_requests))
}
