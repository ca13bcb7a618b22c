//! Load and connections: shedding when full, the drain, slow bodies and headers, idle and capped
//! connections, through raw sockets where the HTTP client libraries would not misbehave.

use super::*;

#[tokio::test]
async fn a_full_replica_sheds_load_with_503() {
    // One request at a time; the fixture tool test_reconnection takes 100 ms, so concurrent
    // calls find the replica full.
    let app = spawn_app_with(Db::Sqlite, &["--max-concurrent-requests", "1", "--conformance-fixtures"]).await.unwrap();
    let call = json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": { "name": "test_reconnection", "arguments": {} } })
        .to_string();
    let responses = futures::future::join_all((0..8).map(|_| post(&app, call.clone(), &[]))).await;
    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    assert!(statuses.contains(&200) && statuses.contains(&503), "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 200 || *s == 503), "{statuses:?}");
    let shed = responses.iter().find(|r| r.status() == 503).unwrap();
    assert_eq!(shed.headers()["retry-after"], "1");
}

#[tokio::test]
async fn a_request_after_the_drain_began_is_refused_with_503_and_close() {
    // The router as the server runs it, after shutdown stopped the MCP service: a request
    // still arriving on an open keep-alive connection must be told to go elsewhere.
    let db = common::TestDb::new(Db::Sqlite).await.unwrap();
    let app = mcp_server::app::Application::build(common::settings(&db.url, &[])).await.unwrap();
    let state = app.state().unwrap();
    let router = mcp_server::app(state.clone());
    state.shutdown.cancel();
    let request = axum::http::Request::post("/mcp")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(axum::body::Body::from(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#))
        .unwrap();
    let response = tower::ServiceExt::oneshot(router, request).await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["connection"], "close");
    assert_eq!(response.headers()["retry-after"], "1");
}

/// A request head for `/mcp` written by hand: a body that never comes in full, a header that
/// trickles, what the HTTP client libraries will not send.
fn head(content_length: usize, extra: &str) -> String {
    format!(
        "POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\naccept: {ACCEPT}\r\n\
         mcp-protocol-version: 2025-11-25\r\ncontent-length: {content_length}\r\n{extra}\r\n"
    )
}

/// The status of the next response the server writes on `stream` (read in full, so the next
/// one can follow), or `None` when it closes first.
async fn status_line(stream: &mut tokio::net::TcpStream) -> Option<u16> {
    use tokio::io::AsyncReadExt;
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let n = stream.read(&mut buf).await.ok().filter(|n| *n > 0)?;
        bytes.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&bytes[..head_end]).to_lowercase();
    let length: usize =
        head.lines().find_map(|l| l.strip_prefix("content-length:")).map_or(0, |v| v.trim().parse().unwrap_or(0));
    while bytes.len() < head_end + length {
        let n = stream.read(&mut buf).await.ok().filter(|n| *n > 0)?;
        bytes.extend_from_slice(&buf[..n]);
    }
    head.split(' ').nth(1)?.parse().ok()
}

/// Waits until the server closes `stream` (reads return 0 or fail); false if it is still open.
async fn closed_within(stream: &mut tokio::net::TcpStream, limit: std::time::Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 1024];
    let read_until_eof = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(limit, read_until_eof).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_of_one_tenant_leave_the_other_tenants_served() {
    use tokio::io::AsyncWriteExt;
    let flags = [&common::HS256_FLAGS[..], &["--max-concurrent-requests", "4", "--body-read-timeout", "20s"]].concat();
    let flags = [&flags[..], &["--request-timeout", "30s"]].concat();
    let app = spawn_app_with(Db::Sqlite, &flags).await.unwrap();
    // Tenant A, read-only, opens more slow bodies than the replica has permits.
    let a = common::bearer("tenant-a", "memory:read");
    let mut slow = Vec::new();
    for _ in 0..6 {
        let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        stream.write_all(head(1000, &format!("authorization: {a}\r\n")).as_bytes()).await.unwrap();
        stream.write_all(b"{").await.unwrap();
        slow.push(stream);
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // Tenant B is served while they trickle; A's bodies beyond its share (a quarter: 1) got 429.
    let b = common::bearer("tenant-b", "memory:read");
    for _ in 0..5 {
        let list = json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/list" }).to_string();
        let response = post(&app, list, &[("authorization", &b)]).await;
        assert_eq!(response.status(), 200, "tenant B is refused while tenant A's bodies trickle");
    }
    let mut refused = 0;
    for stream in &mut slow {
        let status = tokio::time::timeout(std::time::Duration::from_millis(500), status_line(stream)).await;
        if let Ok(Some(status)) = status {
            assert_eq!(status, 429);
            refused += 1;
        }
    }
    assert_eq!(refused, 5, "all but tenant A's share of one are refused with 429");
}

#[tokio::test]
async fn a_slow_body_gets_408_before_the_request_timeout() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_app_with(
        Db::Sqlite,
        &["--body-read-timeout", "1s", "--request-timeout", "10s", "--db-statement-timeout", "2s"],
    )
    .await
    .unwrap();
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let started = std::time::Instant::now();
    stream.write_all(head(100, "").as_bytes()).await.unwrap();
    stream.write_all(br#"{"jsonrpc":"#).await.unwrap();
    let status = tokio::time::timeout(std::time::Duration::from_secs(8), status_line(&mut stream)).await;
    assert_eq!(status.ok().flatten(), Some(408), "a body slower than BODY_READ_TIMEOUT is cut off with 408");
    assert!(started.elapsed() < std::time::Duration::from_secs(6), "{:?}", started.elapsed());
}

#[tokio::test]
async fn an_expected_body_over_the_limit_is_413_without_100_continue() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_app(Db::Sqlite).await.unwrap();
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(head(50_000_000, "expect: 100-continue\r\n").as_bytes()).await.unwrap();
    let status = tokio::time::timeout(std::time::Duration::from_secs(5), status_line(&mut stream)).await;
    assert_eq!(status.ok().flatten(), Some(413), "refused from Content-Length, before any 100 Continue");
}

#[tokio::test]
async fn trickled_headers_and_silent_connections_are_cut_off() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_app_with(Db::Sqlite, &["--header-read-timeout", "1s", "--idle-timeout", "2s"]).await.unwrap();
    let mut silent = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let mut trickling = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    trickling.write_all(b"POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\n").await.unwrap();
    let trickle = tokio::spawn(async move {
        for _ in 0..40 {
            if trickling.write_all(b"x").await.is_err() {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        false
    });
    assert!(closed_within(&mut silent, std::time::Duration::from_secs(4)).await, "a silent connection stays open");
    assert!(trickle.await.unwrap(), "a connection trickling its header stays open");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_app_with(Db::Sqlite, &["--header-read-timeout", "1s", "--idle-timeout", "2s"]).await.unwrap();
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n").await.unwrap();
    assert_eq!(status_line(&mut stream).await, Some(200));
    // Past the header timeout it is still open (its first request came in time) ...
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    stream.write_all(b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n").await.unwrap();
    assert_eq!(status_line(&mut stream).await, Some(200));
    // ... and closed once it idled for IDLE_TIMEOUT.
    assert!(closed_within(&mut stream, std::time::Duration::from_secs(5)).await, "an idle connection stays open");
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_and_are_served_once_slots_free() {
    let app = spawn_app_with(Db::Sqlite, &["--max-connections", "3", "--header-read-timeout", "1s"]).await.unwrap();
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(tokio::net::TcpStream::connect(app.addr).await.unwrap());
    }
    // The probe waits in the backlog while three silent connections hold every slot, and is
    // served once the header timeout has closed them.
    let started = std::time::Instant::now();
    let probe = tokio::time::timeout(std::time::Duration::from_secs(8), reqwest::get(app.url("/health"))).await;
    assert_eq!(probe.expect("the probe is served").unwrap().status(), 200);
    assert!(started.elapsed() >= std::time::Duration::from_millis(700), "the cap held: {:?}", started.elapsed());
}
