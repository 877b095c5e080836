//! Causal self-attention on the packed qkv projection
//! (`cptrain::kernels::PackedAttention`): the biased q, k, v are split into
//! head-major scratch buffers, the batched kernels run on them, and the
//! results are merged back token-major. `lse` keeps the CPU's
//! `[batch, len, n_head]` layout (moved with the head kernels at width 1).

use cptrain::kernels::{BatchedAttention, HeadLayout, Mask, PackedAttention, Rows};

use super::{
    Launcher, Span, attention_backward, attention_forward, bias_add, ensure_len, merge_heads,
    split_heads,
};
use crate::cuda::CudaError;
use crate::cuda::launcher::Scratch;

/// The sizes of one packed call, checked against its buffers.
struct Packed {
    heads: HeadLayout,
    /// The layout of `lse`: one value per head and token.
    lse: HeadLayout,
    /// `C = n_head·head_dim`.
    width: usize,
    batched: BatchedAttention,
}

impl Packed {
    fn new(
        call: &PackedAttention,
        data: Span,
        bias: Span,
        per_token: &[(&str, Span)],
        lse: Span,
    ) -> Result<Self, CudaError> {
        const K: &str = "attention_packed";
        let width = call.n_head * call.head_dim;
        let tokens = call.batch * call.len;
        ensure_len(K, "qkv", data.len, tokens, 3 * width)?;
        ensure_len(K, "qkv bias", bias.len, 1, 3 * width)?;
        for (name, span) in per_token {
            ensure_len(K, name, span.len, tokens, width)?;
        }
        ensure_len(K, "lse", lse.len, tokens, call.n_head)?;
        let heads = HeadLayout {
            batch: call.batch,
            len: call.len,
            n_head: call.n_head,
            head_dim: call.head_dim,
        };
        Ok(Packed {
            heads,
            lse: HeadLayout {
                head_dim: 1,
                ..heads
            },
            width,
            batched: BatchedAttention {
                slabs: call.batch * call.n_head,
                head_dim: call.head_dim,
                q_rows: Rows::all(call.len),
                kv_rows: Rows::all(call.len),
                scale: call.scale,
                mask: Mask::Causal,
            },
        })
    }

    /// A head-major scratch buffer of zeros.
    fn head_major<'d>(&self, dev: &'d dyn Launcher) -> Result<Scratch<'d, f32>, CudaError> {
        Scratch::zeroed(dev, self.heads.batch * self.heads.len * self.width)
    }

    /// q, k and v of `data + bias`, head-major.
    fn split_qkv<'d>(
        &self,
        dev: &'d dyn Launcher,
        data: Span,
        bias: Span,
    ) -> Result<[Scratch<'d, f32>; 3], CudaError> {
        let biased = Scratch::<f32>::zeroed(dev, data.len)?;
        bias_add(dev, Some(data), bias, biased.span())?;
        let parts = [
            self.head_major(dev)?,
            self.head_major(dev)?,
            self.head_major(dev)?,
        ];
        for (i, part) in parts.iter().enumerate() {
            split_heads(
                dev,
                &self.heads,
                biased.span(),
                3 * self.width,
                i * self.width,
                part.span(),
            )?;
        }
        Ok(parts)
    }

    /// `src` token-major, as a new head-major buffer.
    fn split<'d>(
        &self,
        dev: &'d dyn Launcher,
        layout: &HeadLayout,
        src: Span,
    ) -> Result<Scratch<'d, f32>, CudaError> {
        let dst = Scratch::<f32>::zeroed(dev, src.len)?;
        split_heads(
            dev,
            layout,
            src,
            layout.n_head * layout.head_dim,
            0,
            dst.span(),
        )?;
        Ok(dst)
    }
}

/// `PackedAttention::forward`: `out [batch, len, C]` and `lse [batch, len,
/// n_head]` from the unbiased projection `data [batch, len, 3C]` and its bias.
pub fn packed_attention_forward(
    dev: &dyn Launcher,
    call: &PackedAttention,
    data: Span,
    bias: Span,
    out: Span,
    lse: Span,
) -> Result<(), CudaError> {
    let p = Packed::new(call, data, bias, &[("out", out)], lse)?;
    let [q, k, v] = p.split_qkv(dev, data, bias)?;
    let out_h = p.head_major(dev)?;
    let lse_h = Scratch::<f32>::zeroed(dev, lse.len)?;
    attention_forward(
        dev,
        &p.batched,
        q.span(),
        k.span(),
        v.span(),
        out_h.span(),
        lse_h.span(),
    )?;
    merge_heads(dev, &p.heads, out_h.span(), out, p.width, 0)?;
    merge_heads(dev, &p.lse, lse_h.span(), lse, call.n_head, 0)
}

/// `PackedAttention::backward`: overwrites `dqkv [batch, len, 3C]` with the
/// gradient of the projection, given the forward's `out` and `lse`.
#[allow(clippy::too_many_arguments)]
pub fn packed_attention_backward(
    dev: &dyn Launcher,
    call: &PackedAttention,
    data: Span,
    bias: Span,
    out: Span,
    lse: Span,
    dout: Span,
    dqkv: Span,
) -> Result<(), CudaError> {
    let p = Packed::new(call, data, bias, &[("out", out), ("dout", dout)], lse)?;
    ensure_len(
        "attention_packed",
        "dqkv",
        dqkv.len,
        call.batch * call.len,
        3 * p.width,
    )?;
    let [q, k, v] = p.split_qkv(dev, data, bias)?;
    let out_h = p.split(dev, &p.heads, out)?;
    let dout_h = p.split(dev, &p.heads, dout)?;
    let lse_h = p.split(dev, &p.lse, lse)?;
    let grads = [p.head_major(dev)?, p.head_major(dev)?, p.head_major(dev)?];
    let [dq, dk, dv] = &grads;
    attention_backward(
        dev,
        &p.batched,
        q.span(),
        k.span(),
        v.span(),
        out_h.span(),
        lse_h.span(),
        dout_h.span(),
        dq.span(),
        dk.span(),
        dv.span(),
    )?;
    for (i, grad) in grads.iter().enumerate() {
        merge_heads(dev, &p.heads, grad.span(), dqkv, 3 * p.width, i * p.width)?;
    }
    Ok(())
}
