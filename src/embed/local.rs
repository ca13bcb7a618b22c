//! A BERT-family sentence model (all-MiniLM-L6-v2 and its kin) run in this process with candle:
//! pure Rust, nothing downloaded at run time. Vectors are the attention-masked mean of the last
//! hidden states, as sentence-transformers pools them.

use std::{path::Path, sync::Arc};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use sha2::{Digest, Sha256};
use tokenizers::{PaddingParams, Tokenizer, TruncationParams};

use super::EmbedError;

/// Longer texts are cut here: the model was trained on up to 256 word pieces.
const MAX_TOKENS: usize = 256;

pub struct LocalModel {
    model: BertModel,
    tokenizer: Tokenizer,
    id: String,
    /// One inference at a time: it already uses every core, and the rest are the server's.
    running: tokio::sync::Mutex<()>,
}

impl LocalModel {
    /// Loads `model.safetensors`, `config.json` and `tokenizer.json` from `dir`. The model's id is
    /// its weights' hash, so the same weights anywhere make the same vectors.
    pub fn load(dir: &Path) -> Result<Self, EmbedError> {
        let fail = |reason: String| EmbedError::Model { dir: dir.display().to_string(), reason };
        let read = |name: &str| std::fs::read(dir.join(name)).map_err(|e| fail(format!("{name}: {e}")));
        let weights = read("model.safetensors")?;
        let config: Config =
            serde_json::from_slice(&read("config.json")?).map_err(|e| fail(format!("config.json: {e}")))?;
        let mut tokenizer =
            Tokenizer::from_bytes(read("tokenizer.json")?).map_err(|e| fail(format!("tokenizer.json: {e}")))?;
        tokenizer.with_padding(Some(PaddingParams::default()));
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: MAX_TOKENS, ..Default::default() }))
            .map_err(|e| fail(format!("tokenizer.json: {e}")))?;
        let hash = hex::encode(Sha256::digest(&weights));
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu)
            .map_err(|e| fail(format!("model.safetensors: {e}")))?;
        let model = BertModel::load(vb, &config).map_err(|e| fail(format!("model.safetensors: {e}")))?;
        Ok(LocalModel { model, tokenizer, id: format!("local:sha256:{}", &hash[..16]), running: Default::default() })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Embeds `texts` on a blocking thread (their vectors are not yet normalised).
    pub async fn embed(self: &Arc<Self>, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError> {
        let _one = self.running.lock().await;
        let model = self.clone();
        tokio::task::spawn_blocking(move || model.infer(texts))
            .await
            .map_err(|e| EmbedError::Inference(e.to_string()))?
    }

    fn infer(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError> {
        let fail = |e: &dyn std::fmt::Display| EmbedError::Inference(e.to_string());
        let encodings = self.tokenizer.encode_batch(texts, true).map_err(|e| fail(&e))?;
        let (rows, width) = (encodings.len(), encodings.first().map_or(0, |e| e.get_ids().len()));
        let flat = |f: &dyn Fn(&tokenizers::Encoding) -> &[u32]| -> Vec<u32> {
            encodings.iter().flat_map(|e| f(e).iter().copied()).collect()
        };
        let device = &Device::Cpu;
        let ids = Tensor::from_vec(flat(&|e| e.get_ids()), (rows, width), device).map_err(|e| fail(&e))?;
        let mask = Tensor::from_vec(flat(&|e| e.get_attention_mask()), (rows, width), device).map_err(|e| fail(&e))?;
        let types = ids.zeros_like().map_err(|e| fail(&e))?;
        let hidden = self.model.forward(&ids, &types, Some(&mask)).map_err(|e| fail(&e))?;
        let pooled = (|| {
            let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
            let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
            let counts = mask.sum(1)?;
            summed.broadcast_div(&counts)?.to_vec2::<f32>()
        })()
        .map_err(|e| fail(&e))?;
        Ok(pooled)
    }
}
