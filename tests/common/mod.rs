//! Test support: `spawn_app()` starts a real server on port 0 with a fresh database, and an MCP
//! client talks to it over Streamable HTTP, the way real clients do.
#![allow(dead_code)]

pub mod proxy;

use std::{net::SocketAddr, time::Duration};

use clap::Parser;
use mcp_server::{
    app::Application,
    cli::Cli,
    http::RunningServer,
    memory::{Memory, Tenant},
};
use rmcp::{
    RoleClient, ServiceExt,
    model::{CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, Implementation},
    service::RunningService,
    transport::StreamableHttpClientTransport,
};
use serde_json::Value;

pub type Client = RunningService<RoleClient, ClientConfig>;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// A fresh database: a temp SQLite file, or a new PostgreSQL database under
/// MCP_TEST_DATABASE_URL (dropped again when the test ends).
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg_drop: Option<(String, String)>,
}

impl TestDb {
    pub async fn new(db: Db) -> Option<TestDb> {
        match db {
            Db::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}/test.db", dir.path().display());
                Some(TestDb { url, _dir: Some(dir), pg_drop: None })
            }
            Db::Postgres => {
                let Ok(admin_url) = std::env::var("MCP_TEST_DATABASE_URL") else {
                    eprintln!("MCP_TEST_DATABASE_URL is not set: skipping the PostgreSQL variant");
                    return None;
                };
                let name = format!("mcp_test_{:016x}", rand::random::<u64>());
                let mut admin = sqlx_connect(&admin_url).await;
                sqlx::Executor::execute(&mut admin, format!("CREATE DATABASE {name}").as_str())
                    .await
                    .expect("create the test database (is MCP_TEST_DATABASE_URL reachable?)");
                let mut url = url::Url::parse(&admin_url).expect("MCP_TEST_DATABASE_URL is a URL");
                url.set_path(&name);
                Some(TestDb { url: url.to_string(), _dir: None, pg_drop: Some((admin_url, name)) })
            }
        }
    }
}

async fn sqlx_connect(url: &str) -> sqlx::PgConnection {
    use sqlx::Connection;
    sqlx::PgConnection::connect(url).await.expect("connect to MCP_TEST_DATABASE_URL")
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin_url, name)) = self.pg_drop.take() {
            // Drop runs outside async context: use a private runtime on a plain thread.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                rt.block_on(async {
                    let mut admin = sqlx_connect(&admin_url).await;
                    let _ = sqlx::Executor::execute(
                        &mut admin,
                        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str(),
                    )
                    .await;
                });
            })
            .join();
        }
    }
}

/// The memory as every command builds it, without a server.
pub async fn memory(db_url: &str, extra: &[&str]) -> Memory {
    Application::build(settings(db_url, extra)).await.expect("the application builds").memory().clone()
}

/// A plain pool on a test's database, for what a test does behind the server's back (as psql or
/// the sqlite3 shell would).
pub async fn sql(db_url: &str) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::any::AnyPoolOptions::new().max_connections(1).connect(db_url).await.expect("connect to the test database")
}

/// Settings as the CLI would parse them, from flags only (the test's environment is ignored
/// for everything set here).
pub fn settings(db_url: &str, extra: &[&str]) -> mcp_server::config::Settings {
    let defaults = [
        ("--port", "0"),
        ("--metrics-port", "0"),
        ("--database-url", db_url),
        ("--shutdown-delay", "0s"),
        ("--shutdown-timeout", "5s"),
        ("--log-level", "warn"),
        // A fresh PostgreSQL database is migrated as SQLite always is.
        ("--migrate-on-start", "true"),
    ];
    let mut args = vec!["mcp-server"];
    for (flag, value) in defaults {
        if !extra.contains(&flag) {
            args.extend([flag, value]);
        }
    }
    args.extend_from_slice(extra);
    let cli = Cli::try_parse_from(args).expect("test settings parse");
    cli.settings.validate().expect("test settings are valid");
    cli.settings
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub memory: Memory,
    pub db: TestDb,
    server: Option<RunningServer>,
}

/// Starts the server on a fresh database of the given kind; `None` when that kind is not
/// configured for this run (PostgreSQL without MCP_TEST_DATABASE_URL).
pub async fn spawn_app(db: Db) -> Option<TestApp> {
    spawn_app_with(db, &[]).await
}

pub async fn spawn_app_with(db: Db, extra: &[&str]) -> Option<TestApp> {
    Some(spawn_app_on(TestDb::new(db).await?, extra).await)
}

/// Starts the server on a database a test made (or an earlier server used: `TestApp::into_db`).
pub async fn spawn_app_on(test_db: TestDb, extra: &[&str]) -> TestApp {
    let app = Application::build(settings(&test_db.url, extra)).await.expect("the application builds");
    let memory = app.memory().clone();
    let server = app.start().await.expect("server starts");
    TestApp { addr: server.addr, metrics_addr: server.metrics_addr, memory, db: test_db, server: Some(server) }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn client(&self) -> Client {
        let transport = StreamableHttpClientTransport::from_uri(self.url("/mcp"));
        ClientConfig::new(ClientCapabilities::default(), Implementation::new("mcp-server-tests", "0"))
            .serve(transport)
            .await
            .expect("MCP initialize over HTTP")
    }

    /// A 2026-07-28 client: `server/discover`, no handshake, no session.
    pub async fn client_2026(&self) -> Client {
        use rmcp::{ClientLifecycleMode, ClientServiceExt, model::ProtocolVersion};
        let transport = StreamableHttpClientTransport::from_uri(self.url("/mcp"));
        let lifecycle = ClientLifecycleMode::Discover { preferred_versions: vec![ProtocolVersion::V_2026_07_28] };
        ClientConfig::new(ClientCapabilities::default(), Implementation::new("mcp-server-tests", "0"))
            .serve_with_lifecycle(transport, lifecycle)
            .await
            .expect("MCP discover over HTTP")
    }

    pub fn tenant(&self) -> Tenant {
        Tenant::default()
    }

    pub async fn shutdown(mut self) {
        self.stop().await;
    }

    /// Shuts the server down and keeps its database, for the next server a test starts.
    pub async fn into_db(mut self) -> TestDb {
        self.stop().await;
        let TestApp { db, .. } = self;
        db
    }

    /// Runs the server's shutdown sequence; the database stays until the app is dropped.
    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }
}

/// Ends a 2025-11-25 session with DELETE, as a client does.
pub async fn delete_session(app: &TestApp, session: &str) -> reqwest::Response {
    reqwest::Client::new()
        .delete(app.url("/mcp"))
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap()
}

/// Calls a tool; protocol errors come back as `Err(ErrorData)`.
pub async fn call(client: &Client, tool: &str, args: Value) -> Result<CallToolResult, rmcp::ErrorData> {
    let params =
        CallToolRequestParams::new(tool.to_string()).with_arguments(args.as_object().cloned().unwrap_or_default());
    match client.call_tool(params).await {
        Ok(result) => Ok(result),
        Err(rmcp::ServiceError::McpError(e)) => Err(e),
        Err(other) => panic!("transport failure calling {tool}: {other}"),
    }
}

/// Calls a tool that must succeed and returns its structured content.
pub async fn ok(client: &Client, tool: &str, args: Value) -> Value {
    let result = call(client, tool, args).await.unwrap_or_else(|e| panic!("{tool} failed: {e:?}"));
    assert_ne!(result.is_error, Some(true), "{tool} returned an error result: {result:?}");
    result.structured_content.expect("structured content")
}

pub fn text(result: &CallToolResult) -> String {
    result.content.iter().filter_map(|c| c.as_text().map(|t| t.text.clone())).collect()
}

/// Runs `body` for SQLite and, when configured, PostgreSQL.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                ($body)(common::Db::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                ($body)(common::Db::Postgres).await
            }
        }
    };
}

pub const WAIT: Duration = Duration::from_secs(10);

/// A free loopback port: bound, read and released again.
/// A free port for a server process a test starts, taken below the kernel's ephemeral range: a
/// port from bind(0) comes from that range, where every outgoing connection (database pools, HTTP
/// clients of tests running alongside) takes its local port, and one did take it before the
/// server bound it ("Address already in use" in CI). Each test process starts at its own offset
/// and never hands a port out twice; the port is checked free when handed out.
pub fn free_port() -> u16 {
    use std::sync::{
        OnceLock,
        atomic::{AtomicU32, Ordering},
    };
    static NEXT: OnceLock<AtomicU32> = OnceLock::new();
    let ephemeral_start: u32 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    let (low, span) = (ephemeral_start / 2, ephemeral_start / 2);
    let next = NEXT.get_or_init(|| AtomicU32::new(std::process::id().wrapping_mul(97) % span));
    for _ in 0..span {
        let port = (low + next.fetch_add(1, Ordering::Relaxed) % span) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {low}..{}", low + span)
}

/// `mcp-server serve` as its own process on `port` (metrics on a free port), with a clean
/// environment plus `env`; the caller adds output handling and spawns it.
pub fn serve_process(port: u16, env: &[(&str, String)]) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_mcp-server"));
    command
        .arg("serve")
        .env_clear()
        .env("PORT", port.to_string())
        .env("METRICS_PORT", free_port().to_string())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    command
}

/// `mcp-server migrate` once, as the init container does before the replicas start.
pub fn migrate(db_url: &str) {
    let migrated = std::process::Command::new(env!("CARGO_BIN_EXE_mcp-server"))
        .arg("migrate")
        .env_clear()
        .env("DATABASE_URL", db_url)
        .output()
        .unwrap();
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));
}

/// The HS256 secret and audience of `HS256_FLAGS`, for tests with tenants.
pub const JWT_SECRET: &str = "rate-limit-test-secret-0123456789abcdef";
pub const RESOURCE: &str = "http://localhost/mcp";
pub const HS256_FLAGS: [&str; 6] = ["--auth-mode", "hs256", "--jwt-secret", JWT_SECRET, "--mcp-resource-url", RESOURCE];

/// An `Authorization` value: a token of `tenant` with `scope`, valid for ten minutes.
pub fn bearer(tenant: &str, scope: &str) -> String {
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let claims =
        serde_json::json!({ "iss": "mcp-server", "aud": RESOURCE, "sub": tenant, "scope": scope, "exp": now + 600 });
    let key = EncodingKey::from_secret(JWT_SECRET.as_bytes());
    format!("Bearer {}", encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap())
}

/// The reference's nine tools, in its order.
pub const TOOLS: [&str; 9] = [
    "create_entities",
    "create_relations",
    "add_observations",
    "delete_entities",
    "delete_observations",
    "delete_relations",
    "read_graph",
    "search_nodes",
    "open_nodes",
];
