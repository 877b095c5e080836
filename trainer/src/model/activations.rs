//! Every activation of one micro-batch, allocated once per (batch, len) in
//! the memory of the rank's device and reused across steps (llm.c style). `N = batch·len` rows, `C = n_embd`.
//!
//! What a block keeps for attention depends on the strategy's
//! [`QkvLayout`]: the packed qkv projection `[N, 3C]` (no head copies), or
//! head-major `q`, `k`, `v` and the attention output `[B, H, len, hd]`.

use std::borrow::Cow;

use super::operand::ProductOperand;
use super::profile::Profile;
use super::{LocalShape, ModelConfig};
use crate::attention::QkvLayout;
use crate::device::{Buffer, DeviceError};
use crate::kernels::{Kernels, Precision};

/// What one transformer block keeps from forward for backward.
#[derive(Debug)]
pub(crate) struct BlockActs {
    /// LayerNorm 1 output `[N, C]`, its row mean and rstd `[N]`.
    pub ln1: ProductOperand,
    pub ln1_mean: Buffer,
    pub ln1_rstd: Buffer,
    /// Packed layout: the qkv projection `[N, 3C]` (empty otherwise).
    pub qkv: Buffer,
    /// Head-major layout: queries, keys, values, attention output
    /// `[B, H, len, hd]` (empty otherwise). lse `[B, H, len]` or, packed,
    /// `[N, H]`.
    pub q: Buffer,
    pub k: Buffer,
    pub v: Buffer,
    pub ctx: Buffer,
    pub lse: Buffer,
    /// Attention output back in token-major order `[N, C]`.
    pub atty: Buffer,
    /// Residual stream after the attention branch `[N, C]`.
    pub res1: Buffer,
    /// LayerNorm 2 output and stats.
    pub ln2: ProductOperand,
    pub ln2_mean: Buffer,
    pub ln2_rstd: Buffer,
    /// MLP: the fc output, overwritten by the forward with the GELU's slope
    /// there (`gelu′`, what the backward needs), and the GELU output
    /// `[N, 4C]`.
    pub fc_slope: Buffer,
    pub fch_gelu: ProductOperand,
}

/// The buffers sequence parallelism adds (Korthikanti et al. 2022), where a
/// rank's residual stream holds only its `N/tp` rows.
#[derive(Debug)]
pub(crate) struct SpBuffers {
    /// `[N, C]`: the rows of the whole TP group, all-gathered: a LayerNorm
    /// output entering a column-parallel product (again in backward, for its
    /// weight gradient), or the residual stream's gradient.
    pub gathered: Buffer,
    /// `[N/tp, C]`: this rank's rows of a sum over the group (reduce-scatter):
    /// a row-parallel output, or a LayerNorm output's gradient.
    pub scattered: Buffer,
    /// `[N/tp, C]`: `ln_f` of this rank's rows (`lnf` holds all of them).
    pub lnf: Buffer,
}

/// Activation buffers for one (batch, len), plus the backward scratch.
#[derive(Debug)]
pub struct Activations {
    pub(crate) batch: usize,
    pub(crate) len: usize,
    pub(crate) layout: QkvLayout,
    /// Residual stream entering block `l` (`l = n_layer`: leaving the last block).
    pub(crate) residual: Vec<Buffer>,
    pub(crate) blocks: Vec<BlockActs>,
    pub(crate) lnf: Buffer,
    pub(crate) lnf_mean: Buffer,
    pub(crate) lnf_rstd: Buffer,
    /// Logits `[N, V]`; backward turns them into their gradient in place.
    pub(crate) logits: Buffer,
    pub(crate) ce_lse: Buffer,
    /// `[N, 3C]`: the gradient of the qkv projection in backward; in the
    /// head-major layout also the projection itself in forward.
    pub(crate) qkv: Buffer,
    /// `[N, C]`: a projection output before its residual add (forward).
    pub(crate) proj: Buffer,
    /// Backward: gradient of the residual stream `[N, C]`.
    pub(crate) d_res: Buffer,
    /// Backward: gradient of a LayerNorm output or of `atty` `[N, C]`.
    pub(crate) d_narrow: Buffer,
    /// Backward: gradient of the MLP hidden layer `[N, 4C]`.
    pub(crate) d_wide: Buffer,
    /// Where the forward computes, and the backward widens, the
    /// [`ProductOperand`]s kept in bf16: `[N, max(C, hidden)]` (empty when
    /// none is).
    pub(crate) operands: Buffer,
    /// Backward, head-major layout only (empty otherwise): gradients of
    /// ctx, q, k, v `[B, H, len, hd]`.
    pub(crate) d_ctx: Buffer,
    pub(crate) dq: Buffer,
    pub(crate) dk: Buffer,
    pub(crate) dv: Buffer,
    /// Sequence parallelism's buffers (`None` without it).
    pub(crate) sp: Option<SpBuffers>,
    /// Per-phase timers, off unless [`Activations::set_profiling`] turns them on.
    pub(crate) profile: Profile,
}

/// `f32` elements [`Activations::new`] allocates per block, for `n` rows (in
/// `f64`, so that no configuration overflows the count), with products at
/// `precision`.
fn block_floats(s: &LocalShape, n: f64, layout: QkvLayout, precision: Precision) -> f64 {
    let (c, a, h) = (s.n_embd as f64, s.attn_width() as f64, s.hidden as f64);
    let rows = n / s.row_split as f64;
    // res1 rows·C and 4 LayerNorm stats of rows (rows = N, or N/tp under
    // sequence parallelism); atty N·A; qkv 3·N·A, or q, k, v, ctx 4·N·A;
    // fc_slope N·hidden; lse N·H; the product operands ln1, ln2 (rows·C
    // each) and fch_gelu (N·hidden), halved in bf16.
    let attention = match layout {
        QkvLayout::Packed => 3.0 * n * a,
        QkvLayout::HeadMajor => 4.0 * n * a,
    };
    let operands = ProductOperand::floats(2.0 * rows * c + n * h, precision);
    rows * c + n * a + attention + n * h + 4.0 * rows + n * s.n_head as f64 + operands
}

/// `f32` elements of the scratch that bf16 product operands pass through
/// (none in f32).
fn operand_scratch_floats(s: &LocalShape, n: f64, precision: Precision) -> f64 {
    let rows = n / s.row_split as f64;
    match precision {
        Precision::F32 => 0.0,
        Precision::Bf16 => (rows * s.n_embd as f64).max(n * s.hidden as f64),
    }
}

/// `f32` elements [`Activations::new`] allocates outside the blocks.
fn other_floats(s: &LocalShape, n: f64, layout: QkvLayout) -> f64 {
    let (c, a, h) = (s.n_embd as f64, s.attn_width() as f64, s.hidden as f64);
    let rows = n / s.row_split as f64;
    // residual (L+1)·rows·C; lnf N·C + 2·rows; logits N·V + N; qkv 3NA,
    // proj NC, d_res rows·C, d_narrow NC, d_wide N·hidden; head-major only:
    // d_ctx, dq, dk, dv 4NA; sequence parallelism: gathered NC, scattered
    // and its lnf 2·rows·C.
    let head_grads = match layout {
        QkvLayout::Packed => 0.0,
        QkvLayout::HeadMajor => 4.0 * n * a,
    };
    let sp = if s.sequence_parallel() {
        n * c + 2.0 * rows * c
    } else {
        0.0
    };
    (s.n_layer as f64 + 1.0) * rows * c
        + n * c
        + 2.0 * rows
        + n * s.vocab_rows() as f64
        + n
        + 3.0 * n * a
        + 2.0 * n * c
        + rows * c
        + n * h
        + head_grads
        + sp
}

impl Activations {
    /// Buffers on the device of `kernels` for micro-batches of `batch`
    /// sequences of `len` tokens, for an attention strategy that takes
    /// `layout`.
    pub fn new(
        kernels: &dyn Kernels,
        cfg: &ModelConfig,
        batch: usize,
        len: usize,
        layout: QkvLayout,
    ) -> Result<Self, DeviceError> {
        Self::with_shape(kernels, &LocalShape::full(cfg), batch, len, layout)
    }

    /// [`Activations::new`] for a rank computing the local widths `shape`
    /// (its shard under tensor parallelism).
    pub fn with_shape(
        kernels: &dyn Kernels,
        shape: &LocalShape,
        batch: usize,
        len: usize,
        layout: QkvLayout,
    ) -> Result<Self, DeviceError> {
        let operands = kernels.product_precision();
        Self::with_operands(kernels, shape, batch, len, layout, operands)
    }

    /// [`Activations::with_shape`] keeping the product operands at
    /// `operands` (f32 with bf16 products keeps what the products round).
    pub(crate) fn with_operands(
        kernels: &dyn Kernels,
        shape: &LocalShape,
        batch: usize,
        len: usize,
        layout: QkvLayout,
        operands: Precision,
    ) -> Result<Self, DeviceError> {
        let n = batch * len;
        // The rows of the residual stream this rank holds.
        let rows = n / shape.row_split;
        let (c, a, h) = (shape.n_embd, shape.attn_width(), shape.hidden);
        let z = |k: usize| kernels.alloc(k);
        let packed = layout == QkvLayout::Packed;
        let head_major = |k: usize| z(if packed { 0 } else { k });
        let blocks = (0..shape.n_layer)
            .map(|_| -> Result<_, DeviceError> {
                Ok(BlockActs {
                    ln1: ProductOperand::new(kernels, rows * c, operands)?,
                    ln1_mean: z(rows)?,
                    ln1_rstd: z(rows)?,
                    qkv: z(if packed { 3 * n * a } else { 0 })?,
                    q: head_major(n * a)?,
                    k: head_major(n * a)?,
                    v: head_major(n * a)?,
                    ctx: head_major(n * a)?,
                    lse: z(n * shape.n_head)?,
                    atty: z(n * a)?,
                    res1: z(rows * c)?,
                    ln2: ProductOperand::new(kernels, rows * c, operands)?,
                    ln2_mean: z(rows)?,
                    ln2_rstd: z(rows)?,
                    fc_slope: z(n * h)?,
                    fch_gelu: ProductOperand::new(kernels, n * h, operands)?,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Activations {
            batch,
            len,
            layout,
            residual: (0..=shape.n_layer)
                .map(|_| z(rows * c))
                .collect::<Result<_, _>>()?,
            blocks,
            lnf: z(n * c)?,
            lnf_mean: z(rows)?,
            lnf_rstd: z(rows)?,
            logits: z(n * shape.vocab_rows())?,
            ce_lse: z(n)?,
            qkv: z(3 * n * a)?,
            proj: z(n * c)?,
            d_res: z(rows * c)?,
            d_narrow: z(n * c)?,
            d_wide: z(n * h)?,
            operands: z(operand_scratch_floats(shape, n as f64, operands) as usize)?,
            d_ctx: head_major(n * a)?,
            dq: head_major(n * a)?,
            dk: head_major(n * a)?,
            dv: head_major(n * a)?,
            sp: match shape.sequence_parallel() {
                true => Some(SpBuffers {
                    gathered: z(n * c)?,
                    scattered: z(rows * c)?,
                    lnf: z(rows * c)?,
                }),
                false => None,
            },
            profile: Profile::default(),
        })
    }

    /// Sequences per micro-batch.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Tokens per sequence (on this rank).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffers hold no tokens.
    pub fn is_empty(&self) -> bool {
        self.batch * self.len == 0
    }

    /// Bytes [`Activations::new`] allocates for `cfg`, `batch`, `len`,
    /// `layout`, on a device whose products are at `precision` (forward
    /// activations and backward scratch; excludes parameters, gradients and
    /// optimizer state); exact below 2^53 bytes when the bf16 buffers hold
    /// even counts (an odd one takes a word more), and never an overflow,
    /// however large the sizes.
    pub fn bytes(
        cfg: &ModelConfig,
        batch: usize,
        len: usize,
        layout: QkvLayout,
        precision: Precision,
    ) -> f64 {
        Self::bytes_with_shape(&LocalShape::full(cfg), batch, len, layout, precision)
    }

    /// [`Activations::bytes`] for the local widths `shape`.
    pub fn bytes_with_shape(
        shape: &LocalShape,
        batch: usize,
        len: usize,
        layout: QkvLayout,
        precision: Precision,
    ) -> f64 {
        let n = batch as f64 * len as f64;
        let blocks = shape.n_layer as f64 * block_floats(shape, n, layout, precision);
        let others = other_floats(shape, n, layout) + operand_scratch_floats(shape, n, precision);
        4.0 * (blocks + others)
    }

    /// Turns the per-phase timers of forward and backward on or off (and
    /// clears them).
    pub fn set_profiling(&mut self, enabled: bool) {
        self.profile = Profile::new(enabled);
    }

    /// The per-phase times accumulated since profiling was turned on or
    /// last cleared.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// Mutable access, to clear the totals or add phases timed outside the
    /// model (optimizer, communication).
    pub fn profile_mut(&mut self) -> &mut Profile {
        &mut self.profile
    }

    /// The logits `[batch·len, padded vocab]` of the last forward (before
    /// backward overwrites them with their gradient), on the host; the
    /// columns of `model.vocab_padding`'s ids are −∞.
    pub fn logits(&self) -> Result<Cow<'_, [f32]>, DeviceError> {
        self.logits.to_host()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::{CpuKernels, Threads};

    #[test]
    fn the_byte_estimate_counts_exactly_what_is_allocated() {
        let f32_kernels = CpuKernels::default();
        let bf16_kernels = CpuKernels::with_precision(Threads::new(1).unwrap(), Precision::Bf16);
        if let Err(e) = &bf16_kernels {
            eprintln!("bf16 case skipped: {e}");
        }
        let devices: Vec<&dyn Kernels> = [Some(&f32_kernels), bf16_kernels.as_ref().ok()]
            .into_iter()
            .flatten()
            .map(|k| k as &dyn Kernels)
            .collect();
        for kernels in devices {
            let precision = kernels.product_precision();
            let mut cfg = ModelConfig {
                n_layer: 2,
                n_head: 4,
                n_embd: 16,
                vocab_size: 37,
                seq_len: 8,
                init: None,
                n_positions: None,
                vocab_padding: 1,
            };
            for layout in [QkvLayout::Packed, QkvLayout::HeadMajor] {
                let a = Activations::new(kernels, &cfg, 3, 5, layout).unwrap();
                assert_eq!(
                    Activations::bytes(&cfg, 3, 5, layout, precision),
                    4.0 * allocated(&a) as f64,
                    "{precision}"
                );
            }
            // A TP rank's shard, with and without sequence parallelism (15
            // rows over 3 ranks).
            (cfg.n_head, cfg.n_embd) = (6, 18);
            let sharding = crate::tensor_parallel::TpSharding::new(&cfg, 3).unwrap();
            for sp in [false, true] {
                let shape = sharding.local_shape(1, sp);
                for layout in [QkvLayout::Packed, QkvLayout::HeadMajor] {
                    let a = Activations::with_shape(kernels, &shape, 3, 5, layout).unwrap();
                    assert_eq!(
                        Activations::bytes_with_shape(&shape, 3, 5, layout, precision),
                        4.0 * allocated(&a) as f64,
                        "sequence parallel {sp}, {layout:?}, {precision}"
                    );
                }
            }
        }
    }

    /// bf16 keeps the three product operands of each block at half their
    /// f32 size, for one scratch of the widest of them.
    #[test]
    fn bf16_products_keep_their_operands_at_half_the_memory() {
        let cfg = ModelConfig::gpt2_124m();
        let layout = QkvLayout::Packed;
        let f32_bytes = Activations::bytes(&cfg, 4, 1024, layout, Precision::F32);
        let bf16_bytes = Activations::bytes(&cfg, 4, 1024, layout, Precision::Bf16);
        let (n, c) = (4.0 * 1024.0, 768.0);
        // Per block ln1 and ln2 (C each) and fch_gelu (4C) lose half; the
        // scratch is N·4C.
        let saved = 4.0 * (12.0 * (c + c + 4.0 * c) / 2.0 - 4.0 * c) * n;
        assert_eq!(f32_bytes - bf16_bytes, saved);
    }

    /// `f32` values allocated: each buffer, and a bf16 operand's words.
    fn allocated(a: &Activations) -> usize {
        let operand = |o: &ProductOperand| match o {
            ProductOperand::F32(b) => b.len(),
            ProductOperand::Bf16(b) => b.len().div_ceil(2),
        };
        let mut floats = a.residual.iter().map(Buffer::len).sum::<usize>();
        for b in &a.blocks {
            floats += [
                &b.ln1_mean,
                &b.ln1_rstd,
                &b.qkv,
                &b.q,
                &b.k,
                &b.v,
                &b.ctx,
                &b.lse,
                &b.atty,
                &b.res1,
                &b.ln2_mean,
                &b.ln2_rstd,
                &b.fc_slope,
            ]
            .iter()
            .map(|v| v.len())
            .sum::<usize>();
            floats += operand(&b.ln1) + operand(&b.ln2) + operand(&b.fch_gelu);
        }
        floats += [
            &a.lnf,
            &a.lnf_mean,
            &a.lnf_rstd,
            &a.logits,
            &a.ce_lse,
            &a.qkv,
            &a.proj,
            &a.d_res,
            &a.d_narrow,
            &a.d_wide,
            &a.operands,
            &a.d_ctx,
            &a.dq,
            &a.dk,
            &a.dv,
        ]
        .iter()
        .map(|v| v.len())
        .sum::<usize>();
        if let Some(sp) = &a.sp {
            floats += sp.gathered.len() + sp.scattered.len() + sp.lnf.len();
        }
        floats
    }
}
