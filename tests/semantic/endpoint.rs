//! An OpenAI-compatible embeddings endpoint for the tests: the real local model behind a real
//! HTTP server, which a test can switch to failing as endpoints do (down, slow, garbage).

use std::{
    net::SocketAddr,
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Json, Router, extract::State, http::StatusCode, routing::post};
use mcp_server::embed::LocalModel;
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    Real,
    /// 503 to everything.
    Down,
    /// Answers after this long.
    Slow(Duration),
    /// Vectors of NaN.
    Garbage,
}

#[derive(Clone)]
struct Endpoint {
    model: Arc<LocalModel>,
    behaviour: Arc<Mutex<Behaviour>>,
    requests: Arc<Mutex<Vec<String>>>,
}

pub struct TestEndpoint {
    pub url: String,
    behaviour: Arc<Mutex<Behaviour>>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl TestEndpoint {
    pub async fn start(model_dir: &Path) -> TestEndpoint {
        let model = Arc::new(LocalModel::load(model_dir).expect("the test model loads"));
        let behaviour = Arc::new(Mutex::new(Behaviour::Real));
        let requests = Arc::default();
        let state = Endpoint { model, behaviour: behaviour.clone(), requests: Arc::clone(&requests) };
        let app = Router::new().route("/v1/embeddings", post(embeddings)).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        TestEndpoint { url: format!("http://{addr}/v1/embeddings"), behaviour, requests }
    }

    pub fn set(&self, behaviour: Behaviour) {
        *self.behaviour.lock().unwrap() = behaviour;
    }

    /// The model names requests asked for, in order.
    pub fn models_asked(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

async fn embeddings(State(endpoint): State<Endpoint>, Json(body): Json<Value>) -> Result<Json<Value>, StatusCode> {
    let behaviour = *endpoint.behaviour.lock().unwrap();
    endpoint.requests.lock().unwrap().push(body["model"].as_str().unwrap_or_default().to_string());
    let texts: Vec<String> = serde_json::from_value(body["input"].clone()).map_err(|_| StatusCode::BAD_REQUEST)?;
    match behaviour {
        Behaviour::Down => return Err(StatusCode::SERVICE_UNAVAILABLE),
        Behaviour::Slow(pause) => tokio::time::sleep(pause).await,
        Behaviour::Garbage | Behaviour::Real => {}
    }
    let vectors = endpoint.model.embed(texts).await.map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    let data: Vec<Value> = vectors
        .into_iter()
        .enumerate()
        .map(|(index, v)| {
            let embedding: Vec<Value> = match behaviour {
                Behaviour::Garbage => v.iter().map(|_| Value::from("NaN")).collect(),
                _ => v.into_iter().map(Value::from).collect(),
            };
            json!({ "object": "embedding", "index": index, "embedding": embedding })
        })
        .collect();
    Ok(Json(json!({ "object": "list", "data": data, "model": body["model"] })))
}
