//! GPT-2 forward and backward, written out layer by layer.
//!
//! Pre-LN blocks `x += attn(ln_1(x)); x += mlp(ln_2(x))`, learned positions,
//! GELU (tanh), biases, `ln_f`, output head tied to `wte`, no dropout.
//! Parameters and gradients are flat slices in [`ParamLayout::gpt2`] order;
//! gradients ACCUMULATE so micro-batches can be summed.

use super::profile::{Pass, Phase};
use super::views::GptParams;
use super::vocab_padding::mask_vocab_padding;
use super::{Activations, ModelConfig, ModelError, ParamLayout};
use crate::attention::{Attention, AttnShape, QkvLayout};
use crate::kernels::{HeadLayout, Kernels, LossSum, PackedQkv, check_targets};

/// One micro-batch: `tokens` and `targets` are `[batch, len]`
/// (`targets` may hold [`IGNORE_TARGET`](crate::kernels::IGNORE_TARGET));
/// `positions` `[len]` are the GLOBAL positions of the tokens held (under
/// context parallelism a rank holds two non-contiguous chunks).
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a> {
    /// Input token ids.
    pub tokens: &'a [u32],
    /// Target token ids.
    pub targets: &'a [u32],
    /// Global position of each of the `len` tokens of a sequence.
    pub positions: &'a [usize],
}

/// The GPT-2 model: its shape and how its flat parameters are laid out.
#[derive(Clone, Debug)]
pub struct Gpt {
    cfg: ModelConfig,
    layout: ParamLayout,
}

impl Gpt {
    /// The model for a validated `cfg`.
    pub fn new(cfg: ModelConfig) -> Self {
        let layout = ParamLayout::gpt2(&cfg);
        Gpt { cfg, layout }
    }

    /// The model shape.
    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// Where each parameter lives in the flat buffers.
    pub fn layout(&self) -> &ParamLayout {
        &self.layout
    }

    fn check_len(
        &self,
        what: &'static str,
        actual: usize,
        expected: usize,
    ) -> Result<(), ModelError> {
        if actual == expected {
            Ok(())
        } else {
            Err(ModelError::Shape {
                what,
                expected,
                actual,
            })
        }
    }

    fn check_batch(
        &self,
        params: &[f32],
        batch: &Batch<'_>,
        acts: &Activations,
    ) -> Result<(), ModelError> {
        let n = acts.batch * acts.len;
        self.check_len("params", params.len(), self.layout.len())?;
        self.check_len("tokens", batch.tokens.len(), n)?;
        self.check_len("targets", batch.targets.len(), n)?;
        self.check_len("positions", batch.positions.len(), acts.len)?;
        let vocab = self.cfg.vocab_size;
        if let Some(position) = batch.tokens.iter().position(|&t| t as usize >= vocab) {
            let token = batch.tokens[position];
            return Err(ModelError::Token {
                position,
                token,
                vocab,
            });
        }
        check_targets(batch.targets, vocab)?;
        let seq_len = self.cfg.seq_len;
        if let Some(index) = batch.positions.iter().position(|&p| p >= seq_len) {
            let position = batch.positions[index];
            return Err(ModelError::Position {
                index,
                position,
                seq_len,
            });
        }
        Ok(())
    }

    fn heads(&self, acts: &Activations) -> (HeadLayout, AttnShape) {
        let (n_head, head_dim) = (self.cfg.n_head, self.cfg.head_dim());
        let layout = HeadLayout {
            batch: acts.batch,
            len: acts.len,
            n_head,
            head_dim,
        };
        let shape = AttnShape {
            batch: acts.batch,
            n_head,
            len: acts.len,
            head_dim,
        };
        (layout, shape)
    }

    /// Forward pass: fills `acts` and returns the summed loss over the
    /// counted targets. Bad ids or positions are errors, checked first.
    pub fn forward(
        &self,
        kernels: &dyn Kernels,
        attn: &dyn Attention,
        params: &[f32],
        batch: Batch<'_>,
        acts: &mut Activations,
    ) -> Result<LossSum, ModelError> {
        self.check_batch(params, &batch, acts)?;
        let c = self.cfg.n_embd;
        let p = GptParams::new(&self.cfg, params);
        let (heads, shape) = self.heads(acts);

        const F: Pass = Pass::Forward;
        let mut t = acts.profile.start();
        // Embedding: x = wte[token] + wpe[position].
        let x0 = &mut acts.residual[0];
        for (i, (row, &tok)) in x0.chunks_exact_mut(c).zip(batch.tokens).enumerate() {
            let pos = batch.positions[i % acts.len];
            let (te, pe) = (&p.wte[tok as usize * c..][..c], &p.wpe[pos * c..][..c]);
            row.iter_mut()
                .zip(te.iter().zip(pe))
                .for_each(|(x, (&a, &b))| *x = a + b);
        }
        t = acts.profile.stop(t, F, Phase::Embedding);

        for (l, (bp, ba)) in p.blocks.iter().zip(acts.blocks.iter_mut()).enumerate() {
            let (before, after) = acts.residual.split_at_mut(l + 1);
            let (x, x_next) = (&before[l], &mut after[0]);
            kernels.layernorm_forward(
                x,
                bp.ln1_w,
                bp.ln1_b,
                &mut ba.ln1,
                &mut ba.ln1_mean,
                &mut ba.ln1_rstd,
            );
            t = acts.profile.stop(t, F, Phase::LayerNorm);
            // Packed: the block keeps the projection and attention reads it
            // in place; head-major: split it into per-layer q, k, v.
            let packed = acts.layout == QkvLayout::Packed;
            if packed {
                // The attention adds the bias as it reads the projection.
                kernels.linear_forward(&ba.ln1, bp.qkv_w, None, &mut ba.qkv, c, 3 * c);
            } else {
                let bias = Some(bp.qkv_b);
                kernels.linear_forward(&ba.ln1, bp.qkv_w, bias, &mut acts.qkv, c, 3 * c);
            }
            t = acts.profile.stop(t, F, Phase::QkvMatmul);
            if packed {
                let qkv = PackedQkv {
                    data: &ba.qkv,
                    bias: bp.qkv_b,
                };
                attn.forward_packed(shape, qkv, &mut ba.atty, &mut ba.lse)?;
                t = acts.profile.stop(t, F, Phase::Attention);
            } else {
                kernels.split_heads(&heads, &acts.qkv, 3 * c, 0, &mut ba.q);
                kernels.split_heads(&heads, &acts.qkv, 3 * c, c, &mut ba.k);
                kernels.split_heads(&heads, &acts.qkv, 3 * c, 2 * c, &mut ba.v);
                t = acts.profile.stop(t, F, Phase::HeadReshape);
                attn.forward(shape, &ba.q, &ba.k, &ba.v, &mut ba.ctx, &mut ba.lse)?;
                t = acts.profile.stop(t, F, Phase::Attention);
                kernels.merge_heads(&heads, &ba.ctx, &mut ba.atty, c, 0);
                t = acts.profile.stop(t, F, Phase::HeadReshape);
            }
            // Biases of the projections and of fc are added by the kernel
            // that reads their output next (residual add, GELU).
            kernels.linear_forward(&ba.atty, bp.attn_proj_w, None, &mut acts.proj, c, c);
            t = acts.profile.stop(t, F, Phase::AttnProjMatmul);
            kernels.residual_add(x, &acts.proj, bp.attn_proj_b, &mut ba.res1);
            t = acts.profile.stop(t, F, Phase::Residual);
            kernels.layernorm_forward(
                &ba.res1,
                bp.ln2_w,
                bp.ln2_b,
                &mut ba.ln2,
                &mut ba.ln2_mean,
                &mut ba.ln2_rstd,
            );
            t = acts.profile.stop(t, F, Phase::LayerNorm);
            kernels.linear_forward(&ba.ln2, bp.fc_w, None, &mut ba.fc_slope, c, 4 * c);
            t = acts.profile.stop(t, F, Phase::MlpFcMatmul);
            // The fc output becomes the GELU's slope, which is what backward needs.
            kernels.bias_gelu_forward(bp.fc_b, &mut ba.fc_slope, &mut ba.fch_gelu);
            t = acts.profile.stop(t, F, Phase::Gelu);
            kernels.linear_forward(&ba.fch_gelu, bp.mlp_proj_w, None, &mut acts.proj, 4 * c, c);
            t = acts.profile.stop(t, F, Phase::MlpProjMatmul);
            kernels.residual_add(&ba.res1, &acts.proj, bp.mlp_proj_b, x_next);
            t = acts.profile.stop(t, F, Phase::Residual);
        }

        let x_last = &acts.residual[self.cfg.n_layer];
        kernels.layernorm_forward(
            x_last,
            p.lnf_w,
            p.lnf_b,
            &mut acts.lnf,
            &mut acts.lnf_mean,
            &mut acts.lnf_rstd,
        );
        t = acts.profile.stop(t, F, Phase::LayerNorm);
        kernels.tied_head_forward(&acts.lnf, p.wte, &mut acts.logits, c);
        let width = self.cfg.padded_vocab();
        mask_vocab_padding(&mut acts.logits, width, self.cfg.vocab_size);
        t = acts.profile.stop(t, F, Phase::LmHead);
        let loss = kernels.cross_entropy_forward(&acts.logits, batch.targets, &mut acts.ce_lse)?;
        let _ = acts.profile.stop(t, F, Phase::CrossEntropy);
        Ok(loss)
    }

    /// Backward pass after [`Gpt::forward`] on the same inputs: ACCUMULATES
    /// `loss_scale · ∂(loss sum)/∂params` into `grads`. The trainer passes
    /// `1 / (targets counted in the global batch)` so the loss is a mean.
    /// Overwrites the logits in `acts` with their gradient.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        kernels: &dyn Kernels,
        attn: &dyn Attention,
        params: &[f32],
        batch: Batch<'_>,
        loss_scale: f32,
        acts: &mut Activations,
        grads: &mut [f32],
    ) -> Result<(), ModelError> {
        self.check_batch(params, &batch, acts)?;
        self.check_len("grads", grads.len(), self.layout.len())?;
        let c = self.cfg.n_embd;
        let p = GptParams::new(&self.cfg, params);
        let mut g = GptParams::new_mut(&self.cfg, grads);
        let (heads, shape) = self.heads(acts);
        let a = acts;
        const B: Pass = Pass::Backward;
        let mut t = a.profile.start();

        kernels.cross_entropy_backward(&mut a.logits, batch.targets, &a.ce_lse, loss_scale);
        t = a.profile.stop(t, B, Phase::CrossEntropy);
        kernels.tied_head_backward(&a.logits, &a.lnf, p.wte, &mut a.d_narrow, g.wte, c);
        t = a.profile.stop(t, B, Phase::LmHead);
        a.d_res.fill(0.0);
        let x_last = &a.residual[self.cfg.n_layer];
        kernels.layernorm_backward(
            &a.d_narrow,
            x_last,
            p.lnf_w,
            &a.lnf_mean,
            &a.lnf_rstd,
            &mut a.d_res,
            g.lnf_w,
            g.lnf_b,
        );
        t = a.profile.stop(t, B, Phase::LayerNorm);

        for l in (0..self.cfg.n_layer).rev() {
            let (bp, bg, ba) = (&p.blocks[l], &mut g.blocks[l], &a.blocks[l]);
            let x = &a.residual[l];
            // MLP branch: x_next = res1 + proj(gelu(fc(ln2(res1)))).
            kernels.linear_backward(
                &a.d_res,
                &ba.fch_gelu,
                bp.mlp_proj_w,
                &mut a.d_wide,
                &mut *bg.mlp_proj_w,
                Some(&mut *bg.mlp_proj_b),
                4 * c,
                c,
            );
            t = a.profile.stop(t, B, Phase::MlpProjMatmul);
            kernels.gelu_backward(&ba.fc_slope, &mut a.d_wide);
            t = a.profile.stop(t, B, Phase::Gelu);
            kernels.linear_backward(
                &a.d_wide,
                &ba.ln2,
                bp.fc_w,
                &mut a.d_narrow,
                &mut *bg.fc_w,
                Some(&mut *bg.fc_b),
                c,
                4 * c,
            );
            t = a.profile.stop(t, B, Phase::MlpFcMatmul);
            kernels.layernorm_backward(
                &a.d_narrow,
                &ba.res1,
                bp.ln2_w,
                &ba.ln2_mean,
                &ba.ln2_rstd,
                &mut a.d_res,
                &mut *bg.ln2_w,
                &mut *bg.ln2_b,
            );
            t = a.profile.stop(t, B, Phase::LayerNorm);
            // Attention branch: res1 = x + proj(attn(qkv(ln1(x)))).
            kernels.linear_backward(
                &a.d_res,
                &ba.atty,
                bp.attn_proj_w,
                &mut a.d_narrow,
                &mut *bg.attn_proj_w,
                Some(&mut *bg.attn_proj_b),
                c,
                c,
            );
            t = a.profile.stop(t, B, Phase::AttnProjMatmul);
            if a.layout == QkvLayout::Packed {
                // The gradient lands in the packed layout of the projection.
                let qkv = PackedQkv {
                    data: &ba.qkv,
                    bias: bp.qkv_b,
                };
                attn.backward_packed(shape, qkv, &ba.atty, &ba.lse, &a.d_narrow, &mut a.qkv)?;
                t = a.profile.stop(t, B, Phase::Attention);
            } else {
                kernels.split_heads(&heads, &a.d_narrow, c, 0, &mut a.d_ctx);
                t = a.profile.stop(t, B, Phase::HeadReshape);
                attn.backward(
                    shape, &ba.q, &ba.k, &ba.v, &ba.ctx, &ba.lse, &a.d_ctx, &mut a.dq, &mut a.dk,
                    &mut a.dv,
                )?;
                t = a.profile.stop(t, B, Phase::Attention);
                kernels.merge_heads(&heads, &a.dq, &mut a.qkv, 3 * c, 0);
                kernels.merge_heads(&heads, &a.dk, &mut a.qkv, 3 * c, c);
                kernels.merge_heads(&heads, &a.dv, &mut a.qkv, 3 * c, 2 * c);
                t = a.profile.stop(t, B, Phase::HeadReshape);
            }
            kernels.linear_backward(
                &a.qkv,
                &ba.ln1,
                bp.qkv_w,
                &mut a.d_narrow,
                &mut *bg.qkv_w,
                Some(&mut *bg.qkv_b),
                c,
                3 * c,
            );
            t = a.profile.stop(t, B, Phase::QkvMatmul);
            kernels.layernorm_backward(
                &a.d_narrow,
                x,
                bp.ln1_w,
                &ba.ln1_mean,
                &ba.ln1_rstd,
                &mut a.d_res,
                &mut *bg.ln1_w,
                &mut *bg.ln1_b,
            );
            t = a.profile.stop(t, B, Phase::LayerNorm);
        }

        // Embedding: scatter-add the residual gradient into wte and wpe rows.
        for (i, (row, &tok)) in a.d_res.chunks_exact(c).zip(batch.tokens).enumerate() {
            let pos = batch.positions[i % a.len];
            let te = &mut g.wte[tok as usize * c..][..c];
            te.iter_mut().zip(row).for_each(|(w, &d)| *w += d);
            let pe = &mut g.wpe[pos * c..][..c];
            pe.iter_mut().zip(row).for_each(|(w, &d)| *w += d);
        }
        let _ = a.profile.stop(t, B, Phase::Embedding);
        Ok(())
    }
}
