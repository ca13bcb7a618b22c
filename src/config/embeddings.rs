//! Search by meaning (flattened into `Settings`): which embedder makes the vectors, and the search
//! mode `search_nodes` uses when a call names none.

use std::{path::PathBuf, time::Duration};

use clap::{Args, ValueEnum};
use secrecy::SecretString;

use super::{ConfigError, parse_duration, secret};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EmbedderKind {
    /// No vectors: search_nodes matches substrings only
    Off,
    /// A model run in this process, read from EMBEDDING_MODEL_DIR
    Local,
    /// An OpenAI-compatible embeddings endpoint (EMBEDDINGS_URL)
    Endpoint,
}

/// How search_nodes finds entities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    /// The reference's: the query is a substring of a name, type or observation
    Substring,
    /// The query's words, ranked by BM25 (FTS5) or ts_rank (PostgreSQL)
    Lexical,
    /// Substring, word and vector rankings fused by reciprocal rank
    Hybrid,
    /// The entities nearest in meaning (substring matches for entities not yet embedded)
    Semantic,
}

impl SearchMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SearchMode::Substring => "substring",
            SearchMode::Lexical => "lexical",
            SearchMode::Hybrid => "hybrid",
            SearchMode::Semantic => "semantic",
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct EmbeddingSettings {
    /// What embeds entities for search by meaning: off, local (EMBEDDING_MODEL_DIR) or endpoint (EMBEDDINGS_URL)
    #[arg(long, env = "EMBEDDINGS", value_enum, default_value = "off", global = true)]
    pub embeddings: EmbedderKind,
    /// With EMBEDDINGS=local: a directory holding a BERT-family sentence model as model.safetensors,
    /// config.json and tokenizer.json (e.g. all-MiniLM-L6-v2)
    #[arg(long, env = "EMBEDDING_MODEL_DIR", global = true)]
    pub embedding_model_dir: Option<PathBuf>,
    /// With EMBEDDINGS=endpoint: the URL of an OpenAI-compatible embeddings endpoint, e.g.
    /// http://ollama:11434/v1/embeddings
    #[arg(long, env = "EMBEDDINGS_URL", global = true)]
    pub embeddings_url: Option<String>,
    /// With EMBEDDINGS=endpoint: the model name sent to the endpoint (stored with every vector)
    #[arg(long, env = "EMBEDDINGS_MODEL", global = true)]
    pub embeddings_model: Option<String>,
    /// With EMBEDDINGS=endpoint: the endpoint's API key (secret), sent as a bearer token
    #[arg(long, env = "EMBEDDINGS_API_KEY", hide_env_values = true, value_parser = secret, global = true)]
    pub embeddings_api_key: Option<SecretString>,
    /// Longest an embeddings request may take; past it the search falls back to substring matching
    /// and the indexer retries later
    #[arg(long, env = "EMBEDDINGS_TIMEOUT", value_parser = parse_duration, default_value = "10s", global = true)]
    pub embeddings_timeout: Duration,
    /// Entities the background indexer embeds in one request
    #[arg(long, env = "EMBEDDINGS_BATCH", default_value_t = 32, global = true)]
    pub embeddings_batch: usize,
    /// Memory (all tenants together) for the vectors searches rank, in bytes: least recently
    /// searched tenants go first; a tenant whose vectors alone exceed it is searched by substring
    #[arg(long, env = "VECTOR_CACHE_BYTES", default_value_t = 512 * 1024 * 1024, global = true)]
    pub vector_cache_bytes: u64,
    /// search_nodes' mode when a call names none: substring (the reference's), lexical, hybrid or
    /// semantic (all but substring need EMBEDDINGS)
    #[arg(long, env = "SEARCH_MODE", value_enum, default_value = "substring", global = true)]
    pub search_mode: SearchMode,
}

impl EmbeddingSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let kind = self.embeddings;
        let only = |variable: &'static str, needs: &str| {
            ConfigError::new(
                variable,
                format!("is set, but only EMBEDDINGS={needs} reads it: unset it or set EMBEDDINGS={needs}"),
            )
        };
        if kind != EmbedderKind::Local && self.embedding_model_dir.is_some() {
            return Err(only("EMBEDDING_MODEL_DIR", "local"));
        }
        if kind != EmbedderKind::Endpoint {
            for (variable, set) in [
                ("EMBEDDINGS_URL", self.embeddings_url.is_some()),
                ("EMBEDDINGS_MODEL", self.embeddings_model.is_some()),
                ("EMBEDDINGS_API_KEY", self.embeddings_api_key.is_some()),
            ] {
                if set {
                    return Err(only(variable, "endpoint"));
                }
            }
        }
        match kind {
            EmbedderKind::Off if self.search_mode != SearchMode::Substring => {
                return Err(ConfigError::new(
                    "SEARCH_MODE",
                    format!("is {}, which needs the indexer, but EMBEDDINGS=off", self.search_mode.as_str()),
                ));
            }
            EmbedderKind::Local if self.embedding_model_dir.is_none() => {
                return Err(ConfigError::new("EMBEDDING_MODEL_DIR", "EMBEDDINGS=local needs the model's directory"));
            }
            EmbedderKind::Endpoint => {
                let url = self.embeddings_url.as_deref().ok_or_else(|| {
                    ConfigError::new("EMBEDDINGS_URL", "EMBEDDINGS=endpoint needs the endpoint's URL")
                })?;
                match url::Url::parse(url) {
                    Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => {}
                    _ => return Err(ConfigError::new("EMBEDDINGS_URL", format!("`{url}` is not an http(s) URL"))),
                }
                if self.embeddings_model.as_deref().is_none_or(str::is_empty) {
                    return Err(ConfigError::new("EMBEDDINGS_MODEL", "EMBEDDINGS=endpoint needs the model's name"));
                }
            }
            _ => {}
        }
        if self.embeddings_timeout.is_zero() {
            return Err(ConfigError::new("EMBEDDINGS_TIMEOUT", "must be more than 0"));
        }
        if !(1..=1024).contains(&self.embeddings_batch) {
            return Err(ConfigError::new("EMBEDDINGS_BATCH", "must be between 1 and 1024"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn off() -> EmbeddingSettings {
        EmbeddingSettings {
            embeddings: EmbedderKind::Off,
            embedding_model_dir: None,
            embeddings_url: None,
            embeddings_model: None,
            embeddings_api_key: None,
            embeddings_timeout: Duration::from_secs(10),
            embeddings_batch: 32,
            vector_cache_bytes: 1 << 29,
            search_mode: SearchMode::Substring,
        }
    }

    #[test]
    fn contradictions_name_their_variable() {
        let variable = |s: EmbeddingSettings| s.validate().err().map(|e| e.variable);
        assert_eq!(variable(off()), None);
        assert_eq!(variable(EmbeddingSettings { search_mode: SearchMode::Hybrid, ..off() }), Some("SEARCH_MODE"));
        assert_eq!(
            variable(EmbeddingSettings { embedding_model_dir: Some("/m".into()), ..off() }),
            Some("EMBEDDING_MODEL_DIR")
        );
        assert_eq!(
            variable(EmbeddingSettings { embeddings: EmbedderKind::Local, ..off() }),
            Some("EMBEDDING_MODEL_DIR")
        );
        let endpoint = || EmbeddingSettings {
            embeddings: EmbedderKind::Endpoint,
            embeddings_url: Some("http://e:11434/v1/embeddings".into()),
            embeddings_model: Some("nomic-embed-text".into()),
            ..off()
        };
        assert_eq!(variable(endpoint()), None);
        assert_eq!(variable(EmbeddingSettings { embeddings_model: None, ..endpoint() }), Some("EMBEDDINGS_MODEL"));
        assert_eq!(
            variable(EmbeddingSettings { embeddings_url: Some("e:1".into()), ..endpoint() }),
            Some("EMBEDDINGS_URL")
        );
        assert_eq!(
            variable(EmbeddingSettings {
                embeddings: EmbedderKind::Local,
                embedding_model_dir: Some("/m".into()),
                ..endpoint()
            }),
            Some("EMBEDDINGS_URL")
        );
        assert_eq!(variable(EmbeddingSettings { embeddings_batch: 0, ..endpoint() }), Some("EMBEDDINGS_BATCH"));
    }
}
