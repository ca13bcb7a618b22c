//! An OpenAI-compatible `/v1/embeddings` endpoint (OpenAI, Ollama, TEI, vLLM, LiteLLM): one POST
//! of a batch of texts, the vectors read back in the order of their `index`.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use super::EmbedError;
use crate::config::EmbeddingSettings;

pub struct Endpoint {
    client: reqwest::Client,
    url: String,
    model: String,
    key: Option<SecretString>,
    timeout: Duration,
}

#[derive(Deserialize)]
struct Reply {
    data: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    index: usize,
    embedding: Vec<f32>,
}

impl Endpoint {
    pub fn new(settings: &EmbeddingSettings) -> Result<Self, EmbedError> {
        let url = settings.embeddings_url.clone().expect("validated: EMBEDDINGS=endpoint has a URL");
        let model = settings.embeddings_model.clone().expect("validated: EMBEDDINGS=endpoint has a model");
        let client = reqwest::Client::builder()
            .timeout(settings.embeddings_timeout)
            .build()
            .map_err(|e| EmbedError::Unavailable(e.to_string()))?;
        Ok(Endpoint {
            client,
            url,
            model,
            key: settings.embeddings_api_key.clone(),
            timeout: settings.embeddings_timeout,
        })
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    pub async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError> {
        let count = texts.len();
        let mut request = self.client.post(&self.url).json(&json!({
            "model": self.model, "input": texts, "encoding_format": "float",
        }));
        if let Some(key) = &self.key {
            request = request.bearer_auth(key.expose_secret());
        }
        let failed = |e: reqwest::Error| {
            if e.is_timeout() {
                EmbedError::TimedOut(self.timeout)
            } else {
                EmbedError::Unavailable(e.without_url().to_string())
            }
        };
        let response = request.send().await.map_err(failed)?;
        let status = response.status();
        if !status.is_success() {
            return Err(EmbedError::Unavailable(format!("HTTP {status}")));
        }
        let body = response.bytes().await.map_err(failed)?;
        let mut reply: Reply =
            serde_json::from_slice(&body).map_err(|e| EmbedError::Garbage(format!("not an embeddings reply: {e}")))?;
        reply.data.sort_by_key(|item| item.index);
        if reply.data.iter().enumerate().any(|(i, item)| item.index != i) || reply.data.len() != count {
            return Err(EmbedError::Garbage(format!(
                "{} vectors, indexed wrongly, for {count} texts",
                reply.data.len()
            )));
        }
        Ok(reply.data.into_iter().map(|item| item.embedding).collect())
    }

    #[cfg(test)]
    pub fn for_tests() -> Self {
        Endpoint {
            client: reqwest::Client::new(),
            url: "http://127.0.0.1:9/v1/embeddings".into(),
            model: "m".into(),
            key: None,
            timeout: Duration::from_secs(1),
        }
    }
}
