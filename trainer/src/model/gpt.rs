//! GPT-2 forward and backward, written out layer by layer.
//!
//! Pre-LN blocks `x += attn(ln_1(x)); x += mlp(ln_2(x))`, learned positions,
//! GELU (tanh), biases, `ln_f`, output head tied to `wte`, no dropout.
//! Parameters and gradients are flat device buffers in [`ParamLayout::gpt2`]
//! order; gradients ACCUMULATE so micro-batches can be summed.

use super::profile::{Pass, Phase};
use super::views::GptParams;
use super::vocab_parallel::{self, local_tokens};
use super::{Activations, LocalShape, ModelConfig, ModelError, ParamLayout, TpGroup};
use crate::attention::{Attention, AttnShape, QkvLayout};
use crate::device::{Slice, SliceMut};
use crate::kernels::{HeadLayout, Kernels, LossSum, QkvProjection, check_targets};

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

/// The GPT-2 model: its shape and how its flat parameters are laid out;
/// under tensor parallelism, one rank's shard of it and its TP group.
#[derive(Clone, Debug)]
pub struct Gpt {
    cfg: ModelConfig,
    pub(super) layout: ParamLayout,
    pub(super) shape: LocalShape,
    pub(super) tp: Option<TpGroup>,
}

impl Gpt {
    /// The model for a validated `cfg`.
    pub fn new(cfg: ModelConfig) -> Self {
        let layout = ParamLayout::gpt2(&cfg);
        let shape = LocalShape::full(&cfg);
        Gpt {
            cfg,
            layout,
            shape,
            tp: None,
        }
    }

    /// One rank's shard of the model under tensor parallelism (Megatron-LM's
    /// layers): parameters in the local `layout`, widths `shape`, the sums
    /// over `tp`. The whole model's `cfg` still bounds token ids and
    /// positions.
    pub fn tensor_parallel(
        cfg: ModelConfig,
        layout: ParamLayout,
        shape: LocalShape,
        tp: TpGroup,
    ) -> Self {
        Gpt {
            cfg,
            layout,
            shape,
            tp: Some(tp),
        }
    }

    /// The widths this rank computes with.
    pub fn shape(&self) -> &LocalShape {
        &self.shape
    }

    fn params<T: super::Splits>(&self, buf: T) -> GptParams<T> {
        GptParams::in_layout(&self.layout, self.cfg.n_layer, buf)
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
        params: usize,
        batch: &Batch<'_>,
        acts: &Activations,
    ) -> Result<(), ModelError> {
        let n = acts.batch * acts.len;
        self.check_len("params", params, self.layout.len())?;
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
        let (n_head, head_dim) = (self.shape.n_head, self.shape.head_dim);
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
    /// `params` and `acts` are on the device of `kernels`.
    pub fn forward(
        &self,
        kernels: &dyn Kernels,
        attn: &dyn Attention,
        params: Slice<'_>,
        batch: Batch<'_>,
        acts: &mut Activations,
    ) -> Result<LossSum, ModelError> {
        self.check_batch(params.len(), &batch, acts)?;
        let s = &self.shape;
        let (c, a, hidden) = (s.n_embd, s.attn_width(), s.hidden);
        let p = self.params(params);
        let (heads, shape) = self.heads(acts);

        const F: Pass = Pass::Forward;
        let mut t = acts.profile.start();
        // Embedding: x = wte[token] + wpe[position] (under TP, each rank's
        // tokens and one rank's positions, summed over the group).
        // Under sequence parallelism the sum leaves each rank its rows.
        let (tokens, wpe) = (
            local_tokens(s, batch.tokens),
            s.adds_positions.then_some(p.wpe),
        );
        let positions = batch.positions;
        match &self.tp {
            Some(tp) if acts.sp.is_some() => {
                let full = acts.proj.view_mut();
                kernels.embedding_forward(&tokens, positions, p.wte, wpe, full);
                tp.reduce_scatter(kernels, acts.proj.view(), acts.residual[0].view_mut())?;
            }
            tp => {
                let x0 = acts.residual[0].view_mut();
                kernels.embedding_forward(&tokens, positions, p.wte, wpe, x0);
                if let Some(tp) = tp {
                    tp.all_reduce(kernels, acts.residual[0].view_mut())?;
                }
            }
        }
        t = acts.profile.stop(t, F, Phase::Embedding);

        for (l, (bp, ba)) in p.blocks.iter().zip(acts.blocks.iter_mut()).enumerate() {
            let (before, after) = acts.residual.split_at_mut(l + 1);
            let (x, x_next) = (before[l].view(), after[0].view_mut());
            let (ln1, mean, rstd) = (
                ba.ln1.output(&mut acts.operands),
                ba.ln1_mean.view_mut(),
                ba.ln1_rstd.view_mut(),
            );
            kernels.layernorm_forward(x, bp.ln1_w, bp.ln1_b, ln1, mean, rstd);
            let ln1 = ba.ln1.keep(kernels, &acts.operands);
            t = acts.profile.stop(t, F, Phase::LayerNorm);
            let ln1 = self.gather_rows(kernels, ln1, &mut acts.sp)?;
            // Packed: the block keeps the projection and attention reads it
            // in place; head-major: split it into per-layer q, k, v.
            let packed = acts.layout == QkvLayout::Packed;
            if packed {
                // The attention adds the bias as it reads the projection.
                let qkv = ba.qkv.view_mut();
                kernels.linear_forward(ln1, bp.qkv_w, None, qkv, c, 3 * a);
            } else {
                let (bias, qkv) = (Some(bp.qkv_b), acts.qkv.view_mut());
                kernels.linear_forward(ln1, bp.qkv_w, bias, qkv, c, 3 * a);
            }
            t = acts.profile.stop(t, F, Phase::QkvMatmul);
            if packed {
                let qkv = QkvProjection {
                    data: ba.qkv.view(),
                    bias: bp.qkv_b,
                };
                attn.forward_packed(shape, qkv, ba.atty.view_mut(), ba.lse.view_mut())?;
                t = acts.profile.stop(t, F, Phase::Attention);
            } else {
                let qkv = acts.qkv.view();
                kernels.split_heads(&heads, qkv, 3 * a, 0, ba.q.view_mut());
                kernels.split_heads(&heads, qkv, 3 * a, a, ba.k.view_mut());
                kernels.split_heads(&heads, qkv, 3 * a, 2 * a, ba.v.view_mut());
                t = acts.profile.stop(t, F, Phase::HeadReshape);
                let (q, k, v) = (ba.q.view(), ba.k.view(), ba.v.view());
                attn.forward(shape, q, k, v, ba.ctx.view_mut(), ba.lse.view_mut())?;
                t = acts.profile.stop(t, F, Phase::Attention);
                kernels.merge_heads(&heads, ba.ctx.view(), ba.atty.view_mut(), a, 0);
                t = acts.profile.stop(t, F, Phase::HeadReshape);
            }
            // Biases of the projections and of fc are added by the kernel
            // that reads their output next (residual add, GELU): under TP
            // after the sum of the row-parallel partial products, once.
            let (atty, proj) = (ba.atty.view(), acts.proj.view_mut());
            kernels.linear_forward(atty, bp.attn_proj_w, None, proj, a, c);
            let proj = self.sum_rows(kernels, &mut acts.proj, &mut acts.sp)?;
            t = acts.profile.stop(t, F, Phase::AttnProjMatmul);
            kernels.residual_add(x, proj, bp.attn_proj_b, ba.res1.view_mut());
            t = acts.profile.stop(t, F, Phase::Residual);
            let (ln2, mean, rstd) = (
                ba.ln2.output(&mut acts.operands),
                ba.ln2_mean.view_mut(),
                ba.ln2_rstd.view_mut(),
            );
            kernels.layernorm_forward(ba.res1.view(), bp.ln2_w, bp.ln2_b, ln2, mean, rstd);
            let ln2 = ba.ln2.keep(kernels, &acts.operands);
            t = acts.profile.stop(t, F, Phase::LayerNorm);
            let ln2 = self.gather_rows(kernels, ln2, &mut acts.sp)?;
            kernels.linear_forward(ln2, bp.fc_w, None, ba.fc_slope.view_mut(), c, hidden);
            t = acts.profile.stop(t, F, Phase::MlpFcMatmul);
            // The fc output becomes the GELU's slope, which is what backward needs.
            let h = ba.fch_gelu.output(&mut acts.operands);
            kernels.bias_gelu_forward(bp.fc_b, ba.fc_slope.view_mut(), h);
            let h = ba.fch_gelu.keep(kernels, &acts.operands);
            t = acts.profile.stop(t, F, Phase::Gelu);
            let proj = acts.proj.view_mut();
            kernels.linear_forward(h, bp.mlp_proj_w, None, proj, hidden, c);
            let proj = self.sum_rows(kernels, &mut acts.proj, &mut acts.sp)?;
            t = acts.profile.stop(t, F, Phase::MlpProjMatmul);
            kernels.residual_add(ba.res1.view(), proj, bp.mlp_proj_b, x_next);
            t = acts.profile.stop(t, F, Phase::Residual);
        }

        let x_last = acts.residual[self.cfg.n_layer].view();
        let (mean, rstd) = (acts.lnf_mean.view_mut(), acts.lnf_rstd.view_mut());
        // Under sequence parallelism ln_f runs on this rank's rows, and the
        // output head on every row of the group.
        match (&mut acts.sp, &self.tp) {
            (Some(sp), Some(tp)) => {
                let lnf = sp.lnf.view_mut();
                kernels.layernorm_forward(x_last, p.lnf_w, p.lnf_b, lnf, mean, rstd);
                tp.all_gather(kernels, sp.lnf.view(), acts.lnf.view_mut())?;
            }
            _ => {
                let lnf = acts.lnf.view_mut();
                kernels.layernorm_forward(x_last, p.lnf_w, p.lnf_b, lnf, mean, rstd);
            }
        }
        t = acts.profile.stop(t, F, Phase::LayerNorm);
        kernels.tied_head_forward(acts.lnf.view(), p.wte, acts.logits.view_mut(), c);
        // `model.vocab_padding`: the padding ids' rows of `wte` are zero and
        // they are never predicted. Their logits are −∞, so they add exactly
        // 0 to each row's normalizer and get a zero gradient.
        let padding = s.padding_columns();
        if !padding.is_empty() {
            let logits = acts.logits.view_mut();
            kernels.fill_columns(logits, s.vocab_rows(), padding, f32::NEG_INFINITY);
        }
        t = acts.profile.stop(t, F, Phase::LmHead);
        let (logits, lse) = (acts.logits.view(), acts.ce_lse.view_mut());
        let loss = match &self.tp {
            None => kernels.cross_entropy_forward(logits, batch.targets, lse)?,
            Some(tp) => {
                vocab_parallel::cross_entropy_forward(kernels, tp, s, logits, batch.targets, lse)?
            }
        };
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
        params: Slice<'_>,
        batch: Batch<'_>,
        loss_scale: f32,
        acts: &mut Activations,
        grads: SliceMut<'_>,
    ) -> Result<(), ModelError> {
        self.check_batch(params.len(), &batch, acts)?;
        self.check_len("grads", grads.len(), self.layout.len())?;
        let s = &self.shape;
        let (c, a_w, hidden) = (s.n_embd, s.attn_width(), s.hidden);
        let p = self.params(params);
        let mut g = self.params(grads);
        let n = acts.batch * acts.len;
        let (heads, shape) = self.heads(acts);
        let a = acts;
        const B: Pass = Pass::Backward;
        let mut t = a.profile.start();

        let (targets, logits, lse) = (batch.targets, a.logits.view_mut(), a.ce_lse.view());
        vocab_parallel::cross_entropy_backward(kernels, s, logits, targets, lse, loss_scale);
        t = a.profile.stop(t, B, Phase::CrossEntropy);
        let (logits, lnf) = (a.logits.view(), a.lnf.view());
        let d_lnf = a.d_narrow.view_mut();
        kernels.tied_head_backward(logits, lnf, p.wte, d_lnf, g.wte.reborrow(), c);
        let d_lnf = self.sum_rows(kernels, &mut a.d_narrow, &mut a.sp)?;
        t = a.profile.stop(t, B, Phase::LmHead);
        kernels.fill(a.d_res.view_mut(), 0.0);
        let x_last = a.residual[self.cfg.n_layer].view();
        kernels.layernorm_backward(
            d_lnf,
            x_last,
            p.lnf_w,
            a.lnf_mean.view(),
            a.lnf_rstd.view(),
            a.d_res.view_mut(),
            g.lnf_w,
            g.lnf_b,
        );
        t = a.profile.stop(t, B, Phase::LayerNorm);

        for l in (0..self.cfg.n_layer).rev() {
            let (bp, bg, ba) = (&p.blocks[l], &mut g.blocks[l], &a.blocks[l]);
            let x = a.residual[l].view();
            // MLP branch: x_next = res1 + proj(gelu(fc(ln2(res1)))).
            let d_out = self.gather_rows(kernels, a.d_res.view(), &mut a.sp)?;
            kernels.linear_backward(
                d_out,
                ba.fch_gelu.read(kernels, &mut a.operands),
                bp.mlp_proj_w,
                a.d_wide.view_mut(),
                bg.mlp_proj_w.reborrow(),
                Some(bg.mlp_proj_b.reborrow()),
                hidden,
                c,
            );
            t = a.profile.stop(t, B, Phase::MlpProjMatmul);
            kernels.gelu_backward(ba.fc_slope.view(), a.d_wide.view_mut());
            t = a.profile.stop(t, B, Phase::Gelu);
            let ln2 = ba.ln2.read(kernels, &mut a.operands);
            let ln2 = self.gather_rows(kernels, ln2, &mut a.sp)?;
            kernels.linear_backward(
                a.d_wide.view(),
                ln2,
                bp.fc_w,
                a.d_narrow.view_mut(),
                bg.fc_w.reborrow(),
                Some(bg.fc_b.reborrow()),
                c,
                hidden,
            );
            let d_ln2 = self.sum_rows(kernels, &mut a.d_narrow, &mut a.sp)?;
            t = a.profile.stop(t, B, Phase::MlpFcMatmul);
            kernels.layernorm_backward(
                d_ln2,
                ba.res1.view(),
                bp.ln2_w,
                ba.ln2_mean.view(),
                ba.ln2_rstd.view(),
                a.d_res.view_mut(),
                bg.ln2_w.reborrow(),
                bg.ln2_b.reborrow(),
            );
            t = a.profile.stop(t, B, Phase::LayerNorm);
            // Attention branch: res1 = x + proj(attn(qkv(ln1(x)))).
            // The gradient of the attention output: `[N, A]`, the first
            // `N·A` values of the `[N, C]` scratch.
            let d_out = self.gather_rows(kernels, a.d_res.view(), &mut a.sp)?;
            kernels.linear_backward(
                d_out,
                ba.atty.view(),
                bp.attn_proj_w,
                a.d_narrow.view_mut().range(0..n * a_w),
                bg.attn_proj_w.reborrow(),
                Some(bg.attn_proj_b.reborrow()),
                a_w,
                c,
            );
            t = a.profile.stop(t, B, Phase::AttnProjMatmul);
            if a.layout == QkvLayout::Packed {
                // The gradient lands in the packed layout of the projection.
                let qkv = QkvProjection {
                    data: ba.qkv.view(),
                    bias: bp.qkv_b,
                };
                let dout = a.d_narrow.view().range(0..n * a_w);
                let (out, lse) = (ba.atty.view(), ba.lse.view());
                attn.backward_packed(shape, qkv, out, lse, dout, a.qkv.view_mut())?;
                t = a.profile.stop(t, B, Phase::Attention);
            } else {
                let d_atty = a.d_narrow.view().range(0..n * a_w);
                kernels.split_heads(&heads, d_atty, a_w, 0, a.d_ctx.view_mut());
                t = a.profile.stop(t, B, Phase::HeadReshape);
                attn.backward(
                    shape,
                    ba.q.view(),
                    ba.k.view(),
                    ba.v.view(),
                    ba.ctx.view(),
                    ba.lse.view(),
                    a.d_ctx.view(),
                    a.dq.view_mut(),
                    a.dk.view_mut(),
                    a.dv.view_mut(),
                )?;
                t = a.profile.stop(t, B, Phase::Attention);
                kernels.merge_heads(&heads, a.dq.view(), a.qkv.view_mut(), 3 * a_w, 0);
                kernels.merge_heads(&heads, a.dk.view(), a.qkv.view_mut(), 3 * a_w, a_w);
                kernels.merge_heads(&heads, a.dv.view(), a.qkv.view_mut(), 3 * a_w, 2 * a_w);
                t = a.profile.stop(t, B, Phase::HeadReshape);
            }
            let ln1 = ba.ln1.read(kernels, &mut a.operands);
            let ln1 = self.gather_rows(kernels, ln1, &mut a.sp)?;
            kernels.linear_backward(
                a.qkv.view(),
                ln1,
                bp.qkv_w,
                a.d_narrow.view_mut(),
                bg.qkv_w.reborrow(),
                Some(bg.qkv_b.reborrow()),
                c,
                3 * a_w,
            );
            let d_ln1 = self.sum_rows(kernels, &mut a.d_narrow, &mut a.sp)?;
            t = a.profile.stop(t, B, Phase::QkvMatmul);
            kernels.layernorm_backward(
                d_ln1,
                x,
                bp.ln1_w,
                ba.ln1_mean.view(),
                ba.ln1_rstd.view(),
                a.d_res.view_mut(),
                bg.ln1_w.reborrow(),
                bg.ln1_b.reborrow(),
            );
            t = a.profile.stop(t, B, Phase::LayerNorm);
        }

        // Embedding: scatter-add the residual gradient into wte and wpe rows
        // (of every row of the TP group, under sequence parallelism).
        let d_res = self.gather_rows(kernels, a.d_res.view(), &mut a.sp)?;
        let tokens = local_tokens(s, batch.tokens);
        kernels.embedding_backward(d_res, &tokens, batch.positions, g.wte, g.wpe);
        let _ = a.profile.stop(t, B, Phase::Embedding);
        Ok(())
    }
}
