//! The ceiling for `bench/run`: a bare axum handler that answers every POST /mcp with the result
//! bytes our server gave for the benchmark call (read from a file), under the request's id. It
//! does what any JSON-RPC server must (parse the request, echo the id) and nothing else.

use anyhow::{Context, Result};
use axum::{Router, body::Bytes, http::header, response::IntoResponse, routing::post};

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().context("usage: bench-ceiling PORT RESULT_FILE")?.parse()?;
    let result: &'static str = std::fs::read_to_string(args.next().context("usage: bench-ceiling PORT RESULT_FILE")?)?
        .trim()
        .to_owned()
        .leak();
    let app = Router::new().route(
        "/mcp",
        post(move |body: Bytes| async move {
            #[derive(serde::Deserialize)]
            struct Request {
                id: serde_json::Value,
            }
            let id = serde_json::from_slice::<Request>(&body).map(|r| r.id).unwrap_or_default();
            let response = format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#);
            ([(header::CONTENT_TYPE, "application/json")], response).into_response()
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
