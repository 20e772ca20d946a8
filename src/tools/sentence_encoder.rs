//! `SentenceEncoder`: a sentence-embedding model (a BERT encoder such as all-MiniLM-L6-v2, in the
//! sentence-transformers layout) run in-process on the CPU with candle. It turns a text into a
//! unit vector whose dot product with another says how alike their meanings are, which catches
//! the queries that share no word with the tool they want.
//!
//! The model is a directory holding `config.json`, `tokenizer.json` and `model.safetensors`;
//! vectors are the mean of the last layer over the text's tokens, normalised to length 1 (the
//! model's own pooling).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::Tokenizer;

/// Longer texts are cut: the model was trained on at most this many tokens.
const MAX_TOKENS: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum EncoderError {
    #[error("cannot read `{path}`: {message}")]
    Read { path: PathBuf, message: String },
    #[error("the model in `{path}` cannot be loaded: {message}")]
    Load { path: PathBuf, message: String },
    #[error("cannot encode text: {0}")]
    Encode(String),
}

pub struct SentenceEncoder {
    model: BertModel,
    tokenizer: Tokenizer,
    dimension: usize,
}

impl SentenceEncoder {
    /// Loads the model in `directory`.
    pub fn load(directory: &Path) -> Result<Self, EncoderError> {
        let file = |name: &str| directory.join(name);
        let load_error = |message: String| EncoderError::Load { path: directory.to_path_buf(), message };
        let config_path = file("config.json");
        let config_text = std::fs::read_to_string(&config_path)
            .map_err(|e| EncoderError::Read { path: config_path.clone(), message: e.to_string() })?;
        let config: Config = serde_json::from_str(&config_text).map_err(|e| load_error(format!("config.json: {e}")))?;
        let dimension: usize = serde_json::from_str::<serde_json::Value>(&config_text)
            .ok()
            .and_then(|value| value.get("hidden_size")?.as_u64())
            .and_then(|size| usize::try_from(size).ok())
            .ok_or_else(|| load_error("config.json has no hidden_size".into()))?;
        let tokenizer_path = file("tokenizer.json");
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| EncoderError::Read { path: tokenizer_path, message: e.to_string() })?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(tokenizers::TruncationParams { max_length: MAX_TOKENS, ..Default::default() }))
            .map_err(|e| load_error(format!("tokenizer.json: {e}")))?;
        let weights_path = file("model.safetensors");
        let bytes = std::fs::read(&weights_path)
            .map_err(|e| EncoderError::Read { path: weights_path, message: e.to_string() })?;
        let weights = VarBuilder::from_buffered_safetensors(bytes, DType::F32, &Device::Cpu)
            .map_err(|e| load_error(format!("model.safetensors: {e}")))?;
        let model = BertModel::load(weights, &config).map_err(|e| load_error(e.to_string()))?;
        Ok(Self { model, tokenizer, dimension })
    }

    /// The length of every vector.
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// One unit vector per text, in order.
    pub fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EncoderError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings =
            self.tokenizer.encode_batch(texts.to_vec(), true).map_err(|e| EncoderError::Encode(e.to_string()))?;
        let length = encodings.iter().map(|e| e.get_ids().len()).max().unwrap_or(0).max(1);
        let mut ids = Vec::with_capacity(texts.len() * length);
        let mut mask = Vec::with_capacity(texts.len() * length);
        for encoding in &encodings {
            let tokens = encoding.get_ids();
            ids.extend_from_slice(tokens);
            ids.resize(ids.len() + length - tokens.len(), 0);
            mask.resize(mask.len() + tokens.len(), 1u32);
            mask.resize(mask.len() + length - tokens.len(), 0);
        }
        self.pooled(ids, mask, (texts.len(), length)).map_err(|e| EncoderError::Encode(e.to_string()))
    }

    /// The model's last layer, averaged over each text's real tokens and normalised.
    fn pooled(&self, ids: Vec<u32>, mask: Vec<u32>, shape: (usize, usize)) -> candle_core::Result<Vec<Vec<f32>>> {
        let ids = Tensor::from_vec(ids, shape, &Device::Cpu)?;
        let mask = Tensor::from_vec(mask, shape, &Device::Cpu)?;
        let hidden = self.model.forward(&ids, &ids.zeros_like()?, Some(&mask))?;
        let weights = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let mean = hidden.broadcast_mul(&weights)?.sum(1)?.broadcast_div(&weights.sum(1)?)?;
        let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f32::MAX)?;
        mean.broadcast_div(&norm)?.to_vec2()
    }
}
