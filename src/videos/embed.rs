//! Sentence embeddings for search by meaning: all-MiniLM-L6-v2 (384 dimensions) run with candle,
//! read from the files `scripts/fetch-model.sh` puts in `videos.embedding_model`
//! (`model.safetensors`, `tokenizer.json`, `config.json`).
//!
//! The numbers are sentence-transformers': inputs truncated at 256 tokens, the mean of the last
//! hidden states over the attention mask (never over padding: the packaged tokenizer pads every
//! input to 128 tokens, and pooling over that makes unrelated texts score 0.7–0.9), then L2
//! normalised, so a dot product is the cosine. CPU work: call it off the async runtime.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, Tokenizer, TruncationParams};

pub const DIMENSIONS: usize = 384;
/// sentence-transformers' `max_seq_length` for this model.
const MAX_TOKENS: usize = 256;
/// Texts embedded in one forward pass.
const BATCH: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("embedding model {path}: {detail}")]
    Load { path: String, detail: String },
    #[error("embedding: {0}")]
    Run(String),
}

pub struct Embedder {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
}

impl Embedder {
    pub fn load(dir: &Path) -> Result<Self, EmbedError> {
        let load = |detail: String| EmbedError::Load {
            path: dir.display().to_string(),
            detail,
        };
        let config: Config = std::fs::read_to_string(dir.join("config.json"))
            .map_err(|e| load(format!("config.json: {e}")))
            .and_then(|text| {
                serde_json::from_str(&text).map_err(|e| load(format!("config.json: {e}")))
            })?;
        let weights = std::fs::read(dir.join("model.safetensors"))
            .map_err(|e| load(format!("model.safetensors: {e}")))?;
        let device = Device::Cpu;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &device)
            .map_err(|e| load(e.to_string()))?;
        let model = BertModel::load(vb, &config).map_err(|e| load(e.to_string()))?;
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| load(format!("tokenizer.json: {e}")))?;
        // Pad each batch to its longest input (the mask keeps padding out of the mean), not to
        // the 128 tokens the packaged file asks for; truncate where sentence-transformers does.
        tokenizer.with_padding(Some(PaddingParams::default()));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..TruncationParams::default()
            }))
            .map_err(|e| load(format!("tokenizer.json: {e}")))?;
        Ok(Self {
            model,
            tokenizer,
            device,
        })
    }

    /// One unit vector per text, in order.
    pub fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(self.embed_until(texts, || false)?.unwrap_or_default())
    }

    /// As `embed`, but `None` as soon as `stop()` says so, checked between batches.
    pub fn embed_until(
        &self,
        texts: &[String],
        stop: impl Fn() -> bool,
    ) -> Result<Option<Vec<Vec<f32>>>, EmbedError> {
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(BATCH) {
            if stop() {
                return Ok(None);
            }
            out.extend(self.batch(batch)?);
        }
        Ok(Some(out))
    }

    fn batch(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let run = |e: candle_core::Error| EmbedError::Run(e.to_string());
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| EmbedError::Run(e.to_string()))?;
        let rows = |f: &dyn Fn(&tokenizers::Encoding) -> Vec<u32>| -> Result<Tensor, EmbedError> {
            let rows: Vec<Tensor> = encodings
                .iter()
                .map(|e| Tensor::new(f(e).as_slice(), &self.device))
                .collect::<Result<_, _>>()
                .map_err(run)?;
            Tensor::stack(&rows, 0).map_err(run)
        };
        let ids = rows(&|e| e.get_ids().to_vec())?;
        let types = rows(&|e| e.get_type_ids().to_vec())?;
        let mask = rows(&|e| e.get_attention_mask().to_vec())?;
        let hidden = self.model.forward(&ids, &types, Some(&mask)).map_err(run)?;
        // Mean over the real tokens only, then unit length.
        let mask = mask
            .to_dtype(DType::F32)
            .map_err(run)?
            .unsqueeze(2)
            .map_err(run)?;
        let summed = hidden
            .broadcast_mul(&mask)
            .and_then(|h| h.sum(1))
            .map_err(run)?;
        let counts = mask.sum(1).map_err(run)?;
        let mean = summed.broadcast_div(&counts).map_err(run)?;
        let norm = mean
            .sqr()
            .and_then(|m| m.sum_keepdim(1))
            .and_then(|m| m.sqrt())
            .map_err(run)?;
        mean.broadcast_div(&norm)
            .and_then(|m| m.to_vec2::<f32>())
            .map_err(run)
    }
}

/// The dot product of two unit vectors: their cosine. Eight running sums, not one: a single
/// float sum must be added in order, which keeps the compiler from using SIMD; eight
/// independent lanes it turns into vector instructions (a scan of 100,000 vectors went from
/// 50 ms to a fraction of it).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 8;
    let mut sums = [0.0f32; LANES];
    let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for i in 0..LANES {
            sums[i] += x[i] * y[i];
        }
    }
    sums.iter().sum::<f32>() + tail
}
