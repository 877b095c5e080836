//! Loss, perplexity and bits per byte of a trained model on held-out
//! windows, with one process and whole sequences (no training, no writes).
//!
//! Every rank layout trains and evaluates the same mathematical model, so
//! the numbers here are those of the run's own evaluation on any layout, up
//! to float rounding.

use std::sync::Arc;

use super::InferenceError;
use crate::attention::{Attention, LocalAttention};
use crate::data::{DataSource, IGNORE_TARGET, Split};
use crate::device::Slice;
use crate::kernels::Kernels;
use crate::model::{Activations, Batch, Gpt, ModelConfig, ModelError};
use crate::tokenizer::Tokenizer;

/// The windows the training run's evaluation reads: sequence `j` of
/// validation batch `e` is window `(e·B + j) mod W`, for `batches` batches
/// of `batch_size` sequences (the data contract of ARCHITECTURE.md).
pub fn validation_windows(num_windows: usize, batch_size: usize, batches: usize) -> Vec<usize> {
    if num_windows == 0 {
        return Vec::new();
    }
    (0..batches * batch_size).map(|i| i % num_windows).collect()
}

/// Sums over the evaluated targets.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EvalTotals {
    /// Σ −ln p(target), in nats.
    pub loss_sum: f64,
    /// Targets counted (not `IGNORE_TARGET`).
    pub targets: u64,
    /// Bytes the counted targets decode to (end-of-text counts 0); `None`
    /// when the tokens are not text.
    pub bytes: Option<u64>,
    /// Sequences (windows) evaluated.
    pub sequences: usize,
}

impl EvalTotals {
    /// Mean loss per target (nats).
    pub fn loss(&self) -> f64 {
        self.loss_sum / self.targets as f64
    }

    /// `exp(loss)`.
    pub fn perplexity(&self) -> f64 {
        self.loss().exp()
    }

    /// `loss_sum / ln 2 / bytes`: bits per byte of text, comparable across
    /// tokenizers; `None` without text or bytes.
    pub fn bits_per_byte(&self) -> Option<f64> {
        self.bytes
            .filter(|&b| b > 0)
            .map(|b| self.loss_sum / std::f64::consts::LN_2 / b as f64)
    }
}

/// Bytes each token id decodes to, end-of-text 0.
fn byte_lengths(tokenizer: &dyn Tokenizer, vocab_size: usize) -> Vec<u64> {
    (0..vocab_size as u32)
        .map(|id| {
            if Some(id) == tokenizer.end_of_text() {
                0
            } else {
                tokenizer.decode_bytes(&[id]).len() as u64
            }
        })
        .collect()
}

/// What [`evaluate`] reads.
pub struct EvalInput<'a> {
    /// The model's shape.
    pub model: &'a ModelConfig,
    /// Its flat parameters.
    pub params: &'a [f32],
    /// Where the windows come from.
    pub source: &'a dyn DataSource,
    /// Which split.
    pub split: Split,
    /// The windows, in order.
    pub windows: &'a [usize],
    /// Sequences per forward pass.
    pub micro_batch: usize,
    /// The tokenizer the ids are text of, for bits per byte (`None`: not text).
    pub text: Option<&'a dyn Tokenizer>,
}

/// The forward loss of every window of `input`, `micro_batch` sequences at
/// a time, on `kernels`.
pub fn evaluate(
    kernels: Arc<dyn Kernels>,
    input: &EvalInput<'_>,
) -> Result<EvalTotals, InferenceError> {
    let gpt = Gpt::new(input.model.clone());
    let attention = LocalAttention::new(kernels.clone());
    let t = input.model.seq_len;
    let micro = input.micro_batch.max(1);
    let lengths = input
        .text
        .map(|tok| byte_lengths(tok, input.model.vocab_size));
    let positions: Vec<usize> = (0..t).collect();
    let (mut tokens, mut targets) = (Vec::new(), Vec::new());
    let (mut window_in, mut window_out) = (vec![0; t], vec![0; t]);
    let mut acts: Option<Activations> = None;
    let mut totals = EvalTotals {
        bytes: lengths.as_ref().map(|_| 0),
        ..EvalTotals::default()
    };
    for chunk in input.windows.chunks(micro) {
        tokens.clear();
        targets.clear();
        for &w in chunk {
            input
                .source
                .read_window(input.split, w, &mut window_in, &mut window_out)?;
            tokens.extend_from_slice(&window_in);
            targets.extend_from_slice(&window_out);
        }
        let acts = match &mut acts {
            Some(a) if a.batch() == chunk.len() => a,
            slot => {
                let layout = attention.qkv_layout();
                let acts = Activations::new(&*kernels, input.model, chunk.len(), t, layout);
                slot.insert(acts.map_err(ModelError::from)?)
            }
        };
        let batch = Batch {
            tokens: &tokens,
            targets: &targets,
            positions: &positions,
        };
        let params = Slice::from(input.params);
        let loss = gpt.forward(&*kernels, &attention, params, batch, acts)?;
        totals.loss_sum += loss.sum;
        totals.targets += loss.count as u64;
        totals.sequences += chunk.len();
        if let (Some(bytes), Some(lengths)) = (&mut totals.bytes, &lengths) {
            *bytes += targets
                .iter()
                .filter(|&&id| id != IGNORE_TARGET)
                .map(|&id| lengths.get(id as usize).copied().unwrap_or(0))
                .sum::<u64>();
        }
    }
    Ok(totals)
}
