//! One token at a time through the GPT-2 of [`crate::model::Gpt`], with a
//! key/value cache: each new token costs one position of every layer, not a
//! pass over the whole prefix.
//!
//! For the token at position `t` (`C = n_embd`, `H` heads of `hd = C/H`):
//!
//! ```text
//! x      = wte[token] + wpe[t]                                  [C]
//! per block:
//!   q|k|v = ln_1(x)·W_qkv + b_qkv;  K[t] = k, V[t] = v          [3C]
//!   a_h    = Σ_{s≤t} softmax_s(q_h·K[s]_h / √hd) · V[s]_h       [hd] per head
//!   x      = x + (a·W_proj + b_proj)
//!   x      = x + gelu(ln_2(x)·W_fc + b_fc)·W_mlp + b_mlp
//! logits = ln_f(x)·wteᵀ                                         [V]
//! ```
//!
//! The matrix products, LayerNorms, GELU and residual adds are the
//! [`Kernels`] the training forward calls; only the attention over the
//! cache is written out here (one query row against `t + 1` keys).
//! [`Decoder::prefill`] reads a whole prompt with one training forward and
//! keeps its keys and values.

use std::sync::Arc;

use crate::attention::{Attention, LocalAttention, QkvLayout};
use crate::device::Slice;
use crate::kernels::Kernels;
use crate::kernels::Precision::F32;
use crate::model::{
    Activations, Batch, Gpt, GptParams, LocalShape, ModelConfig, ModelError, ParamLayout,
};

/// Keys and values of every position decoded so far, per layer, token-major
/// `[seq_len, C]` (the heads side by side in a row, as the qkv projection
/// writes them).
#[derive(Debug)]
struct KvCache {
    keys: Vec<Vec<f32>>,
    values: Vec<Vec<f32>>,
}

/// Scratch for one position.
#[derive(Debug)]
struct Scratch {
    x: Vec<f32>,
    ln: Vec<f32>,
    mean: [f32; 1],
    rstd: [f32; 1],
    qkv: Vec<f32>,
    attn: Vec<f32>,
    proj: Vec<f32>,
    res: Vec<f32>,
    fc: Vec<f32>,
    gelu: Vec<f32>,
    scores: Vec<f32>,
    logits: Vec<f32>,
}

/// Runs the model position by position over a growing sequence.
pub struct Decoder<'a> {
    cfg: ModelConfig,
    kernels: Arc<dyn Kernels>,
    flat: &'a [f32],
    params: GptParams<&'a [f32]>,
    cache: KvCache,
    scratch: Scratch,
    len: usize,
}

impl<'a> Decoder<'a> {
    /// A decoder for `cfg` over the flat `params` (in [`ParamLayout::gpt2`]
    /// order), with an empty cache.
    pub fn new(
        cfg: &ModelConfig,
        kernels: Arc<dyn Kernels>,
        params: &'a [f32],
    ) -> Result<Self, ModelError> {
        let expected = ParamLayout::gpt2(cfg).len();
        if params.len() != expected {
            return Err(ModelError::Shape {
                what: "params",
                expected,
                actual: params.len(),
            });
        }
        let (c, t) = (cfg.n_embd, cfg.seq_len);
        let z = |n: usize| vec![0.0f32; n];
        let layers = || (0..cfg.n_layer).map(|_| z(t * c)).collect();
        Ok(Decoder {
            cfg: cfg.clone(),
            kernels,
            flat: params,
            params: GptParams::new(cfg, params),
            cache: KvCache {
                keys: layers(),
                values: layers(),
            },
            scratch: Scratch {
                x: z(c),
                ln: z(c),
                mean: [0.0],
                rstd: [0.0],
                qkv: z(3 * c),
                attn: z(c),
                proj: z(c),
                res: z(c),
                fc: z(4 * c),
                gelu: z(4 * c),
                scores: z(t),
                logits: z(cfg.padded_vocab()),
            },
            len: 0,
        })
    }

    /// Tokens decoded so far: the position the next token takes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no token has been decoded yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Most tokens a sequence can hold: `model.seq_len`, the rows of the
    /// positional table.
    pub fn capacity(&self) -> usize {
        self.cfg.seq_len
    }

    /// Forgets the sequence: the next token is position 0 again.
    pub fn reset(&mut self) {
        self.len = 0;
    }

    /// Reads `tokens` into an empty cache (resetting it) with one forward
    /// pass of the training model over all of them, keeps their keys and
    /// values, and returns the logits `[V]` of the token after the last.
    /// Equal to [`Decoder::step`] on each token in turn, up to f32 rounding.
    pub fn prefill(&mut self, tokens: &[u32]) -> Result<&[f32], ModelError> {
        self.reset();
        let (c, n) = (self.cfg.n_embd, tokens.len());
        let (v, width) = (self.cfg.vocab_size, self.cfg.padded_vocab());
        let Some(&last) = tokens.last() else {
            return Err(ModelError::Shape {
                what: "tokens",
                expected: 1,
                actual: 0,
            });
        };
        if n == 1 {
            return self.step(last);
        }
        let attention = LocalAttention::new(self.kernels.clone());
        assert_eq!(attention.qkv_layout(), QkvLayout::Packed);
        // Forward only: the product operands need no bf16 copies.
        let shape = LocalShape::full(&self.cfg);
        let mut acts =
            Activations::with_operands(&*self.kernels, &shape, 1, n, QkvLayout::Packed, F32)?;
        let positions: Vec<usize> = (0..n).collect();
        let batch = Batch {
            tokens,
            targets: tokens,
            positions: &positions,
        };
        let gpt = Gpt::new(self.cfg.clone());
        let params = Slice::from(self.flat);
        gpt.forward(&*self.kernels, &attention, params, batch, &mut acts)?;
        // The packed layout keeps each block's qkv projection `[n, 3C]`
        // without its bias (the attention adds it as it reads).
        for (l, block) in self.params.blocks.iter().enumerate() {
            let projection = acts.blocks[l].qkv.to_host()?;
            let projection = projection.chunks_exact(3 * c);
            let keys = self.cache.keys[l].chunks_exact_mut(c);
            let values = self.cache.values[l].chunks_exact_mut(c);
            for ((row, key), value) in projection.zip(keys).zip(values) {
                let (k_bias, v_bias) = (&block.qkv_b[c..2 * c], &block.qkv_b[2 * c..]);
                for (i, (kv, vv)) in key.iter_mut().zip(value.iter_mut()).enumerate() {
                    *kv = row[c + i] + k_bias[i];
                    *vv = row[2 * c + i] + v_bias[i];
                }
            }
        }
        self.len = n;
        let logits = &acts.logits()?[(n - 1) * width..];
        self.scratch.logits.copy_from_slice(logits);
        Ok(&self.scratch.logits[..v])
    }

    /// Appends `token` at the next position and returns the logits `[V]` of
    /// the token that follows it.
    pub fn step(&mut self, token: u32) -> Result<&[f32], ModelError> {
        let (c, pos) = (self.cfg.n_embd, self.len);
        if token as usize >= self.cfg.vocab_size {
            return Err(ModelError::Token {
                position: pos,
                token,
                vocab: self.cfg.vocab_size,
            });
        }
        if pos >= self.cfg.seq_len {
            return Err(ModelError::Position {
                index: pos,
                position: pos,
                seq_len: self.cfg.seq_len,
            });
        }
        let (p, k, s) = (&self.params, &*self.kernels, &mut self.scratch);
        let tokens = [token];
        k.embedding_forward(
            &tokens,
            &[pos],
            p.wte.into(),
            Some(p.wpe.into()),
            (&mut s.x).into(),
        );

        for (l, bp) in p.blocks.iter().enumerate() {
            let (mean, rstd) = (s.mean.as_mut_slice(), s.rstd.as_mut_slice());
            let (w, b) = (bp.ln1_w.into(), bp.ln1_b.into());
            k.layernorm_forward(
                (&s.x).into(),
                w,
                b,
                (&mut s.ln).into(),
                mean.into(),
                rstd.into(),
            );
            let bias = Some(bp.qkv_b.into());
            k.linear_forward(
                (&s.ln).into(),
                bp.qkv_w.into(),
                bias,
                (&mut s.qkv).into(),
                c,
                3 * c,
            );
            let (keys, values) = (&mut self.cache.keys[l], &mut self.cache.values[l]);
            keys[pos * c..][..c].copy_from_slice(&s.qkv[c..2 * c]);
            values[pos * c..][..c].copy_from_slice(&s.qkv[2 * c..]);
            attend(
                &s.qkv[..c],
                &keys[..(pos + 1) * c],
                &values[..(pos + 1) * c],
                self.cfg.n_head,
                &mut s.scores,
                &mut s.attn,
            );
            let w = bp.attn_proj_w.into();
            k.linear_forward((&s.attn).into(), w, None, (&mut s.proj).into(), c, c);
            let bias = bp.attn_proj_b.into();
            k.residual_add((&s.x).into(), (&s.proj).into(), bias, (&mut s.res).into());
            let (mean, rstd) = (s.mean.as_mut_slice(), s.rstd.as_mut_slice());
            let (w, b) = (bp.ln2_w.into(), bp.ln2_b.into());
            k.layernorm_forward(
                (&s.res).into(),
                w,
                b,
                (&mut s.ln).into(),
                mean.into(),
                rstd.into(),
            );
            k.linear_forward(
                (&s.ln).into(),
                bp.fc_w.into(),
                None,
                (&mut s.fc).into(),
                c,
                4 * c,
            );
            k.bias_gelu_forward(bp.fc_b.into(), (&mut s.fc).into(), (&mut s.gelu).into());
            let w = bp.mlp_proj_w.into();
            k.linear_forward((&s.gelu).into(), w, None, (&mut s.proj).into(), 4 * c, c);
            let bias = bp.mlp_proj_b.into();
            k.residual_add((&s.res).into(), (&s.proj).into(), bias, (&mut s.x).into());
        }
        let (mean, rstd) = (s.mean.as_mut_slice(), s.rstd.as_mut_slice());
        let (w, b) = (p.lnf_w.into(), p.lnf_b.into());
        k.layernorm_forward(
            (&s.x).into(),
            w,
            b,
            (&mut s.ln).into(),
            mean.into(),
            rstd.into(),
        );
        // The padding ids' logits (`model.vocab_padding`) are left out.
        k.tied_head_forward((&s.ln).into(), p.wte.into(), (&mut s.logits).into(), c);
        self.len += 1;
        Ok(&s.logits[..self.cfg.vocab_size])
    }
}

/// Causal attention of one query row `q` `[C]` against the `t + 1` cached
/// rows of `keys` and `values` `[t + 1, C]`, head by head; `scores` holds at
/// least `t + 1` values; the result goes to `out` `[C]`.
fn attend(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    n_head: usize,
    scores: &mut [f32],
    out: &mut [f32],
) {
    let c = q.len();
    let hd = c / n_head;
    let scale = 1.0 / (hd as f32).sqrt();
    let rows = keys.len() / c;
    let scores = &mut scores[..rows];
    for h in 0..n_head {
        let cols = h * hd..(h + 1) * hd;
        let q_h = &q[cols.clone()];
        for (score, key) in scores.iter_mut().zip(keys.chunks_exact(c)) {
            let dot: f32 = q_h.iter().zip(&key[cols.clone()]).map(|(a, b)| a * b).sum();
            *score = dot * scale;
        }
        let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut total = 0.0f32;
        for score in scores.iter_mut() {
            *score = (*score - max).exp();
            total += *score;
        }
        let out_h = &mut out[cols.clone()];
        out_h.fill(0.0);
        for (&weight, value) in scores.iter().zip(values.chunks_exact(c)) {
            let w = weight / total;
            out_h
                .iter_mut()
                .zip(&value[cols.clone()])
                .for_each(|(o, &v)| *o += w * v);
        }
    }
}
