//! Text embeddings for search by meaning: a model run in this process (`local`) or an
//! OpenAI-compatible endpoint (`endpoint`). Every vector leaves here checked (the count asked
//! for, one dimension, finite, not zero) and of unit length, so cosine similarity is a dot
//! product; what to embed and when is `memory`'s business.

mod endpoint;
mod local;

use std::sync::{Arc, OnceLock};

pub use endpoint::Endpoint;
pub use local::LocalModel;

use crate::config::{EmbedderKind, EmbeddingSettings};

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("the embedding model in {dir}: {reason}")]
    Model { dir: String, reason: String },
    #[error("the embeddings endpoint failed: {0}")]
    Unavailable(String),
    #[error("the embeddings endpoint did not answer within {0:?}")]
    TimedOut(std::time::Duration),
    #[error("the embedder returned unusable vectors: {0}")]
    Garbage(String),
    #[error("the embedding model failed: {0}")]
    Inference(String),
}

impl EmbedError {
    /// The `reason` label of the failure metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            EmbedError::Model { .. } => "model",
            EmbedError::Unavailable(_) => "unavailable",
            EmbedError::TimedOut(_) => "timeout",
            EmbedError::Garbage(_) => "garbage",
            EmbedError::Inference(_) => "inference",
        }
    }
}

enum Source {
    Local(Arc<LocalModel>),
    Endpoint(Endpoint),
}

/// An embedder and the model id stored with each of its vectors (a new id re-embeds everything).
pub struct Embedder {
    source: Source,
    model: String,
    /// The dimension of the first vectors it returned; later ones must match.
    dims: OnceLock<usize>,
}

impl Embedder {
    /// The embedder the settings name; `None` when EMBEDDINGS=off. A local model is loaded here,
    /// so a bad directory fails the start.
    pub fn from_settings(settings: &EmbeddingSettings) -> Result<Option<Self>, EmbedError> {
        let (source, model) = match settings.embeddings {
            EmbedderKind::Off => return Ok(None),
            EmbedderKind::Local => {
                let dir = settings.embedding_model_dir.as_deref().expect("validated: EMBEDDINGS=local has a directory");
                let model = LocalModel::load(dir)?;
                let id = model.id().to_string();
                (Source::Local(Arc::new(model)), id)
            }
            EmbedderKind::Endpoint => {
                let endpoint = Endpoint::new(settings)?;
                let id = endpoint.model().to_string();
                (Source::Endpoint(endpoint), id)
            }
        };
        Ok(Some(Embedder { source, model, dims: OnceLock::new() }))
    }

    /// The id stored with every vector this embedder makes.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// One unit vector a text, in order.
    pub async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let count = texts.len();
        let vectors = match &self.source {
            Source::Local(model) => model.embed(texts).await?,
            Source::Endpoint(endpoint) => endpoint.embed(texts).await?,
        };
        self.checked(count, vectors)
    }

    fn checked(&self, count: usize, mut vectors: Vec<Vec<f32>>) -> Result<Vec<Vec<f32>>, EmbedError> {
        if vectors.len() != count {
            return Err(EmbedError::Garbage(format!("{} vectors for {count} texts", vectors.len())));
        }
        // The first batch that passes sets the dimension; a garbage one must not.
        let dims = self.dims.get().copied().unwrap_or(vectors[0].len());
        for (i, vector) in vectors.iter_mut().enumerate() {
            if vector.len() != dims || dims == 0 {
                return Err(EmbedError::Garbage(format!("vector {i} has {} dimensions, not {dims}", vector.len())));
            }
            let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
            if !norm.is_finite() || norm == 0.0 {
                return Err(EmbedError::Garbage(format!("vector {i} is zero or not finite")));
            }
            vector.iter_mut().for_each(|x| *x /= norm);
        }
        let _ = self.dims.set(dims);
        Ok(vectors)
    }
}

/// The text an entity is embedded as: its name, type and observations, one per line.
pub fn entity_text(name: &str, entity_type: &str, observations: &[String]) -> String {
    let mut text = format!("{name} ({entity_type})");
    for observation in observations {
        text.push('\n');
        text.push_str(observation);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn embedder() -> Embedder {
        let endpoint = Endpoint::for_tests();
        Embedder { source: Source::Endpoint(endpoint), model: "m".into(), dims: OnceLock::new() }
    }

    #[test]
    fn vectors_are_checked_and_made_unit_length() {
        let e = embedder();
        let v = e.checked(1, vec![vec![3.0, 4.0]]).unwrap();
        assert_eq!(v, vec![vec![0.6, 0.8]]);
        assert!(matches!(e.checked(2, vec![vec![1.0, 0.0]]), Err(EmbedError::Garbage(_))));
        assert!(matches!(e.checked(1, vec![vec![1.0, 0.0, 0.0]]), Err(EmbedError::Garbage(_))));
        assert!(matches!(e.checked(1, vec![vec![0.0, 0.0]]), Err(EmbedError::Garbage(_))));
        assert!(matches!(e.checked(1, vec![vec![f32::NAN, 1.0]]), Err(EmbedError::Garbage(_))));
    }

    #[test]
    fn a_garbage_first_reply_does_not_set_the_dimension() {
        let e = embedder();
        assert!(matches!(e.checked(1, vec![vec![0.0; 3]]), Err(EmbedError::Garbage(_))));
        assert!(e.checked(1, vec![vec![3.0, 4.0]]).is_ok());
        assert!(matches!(e.checked(1, vec![vec![1.0; 3]]), Err(EmbedError::Garbage(_))));
    }
}
