//! `all_gather`: gather the whole sequence's K/V, attend locally
//! (docs/cp-attention.md §5; the scheme Megatron-Core documents).
//!
//! Forward: one all-gather of K/V, permuted to natural order; each local half
//! (chunk `c`) attends to keys `[0, (c+1)·C)` with a bottom-right causal
//! mask, so every query row is computed by exactly one call and no merge is
//! needed. Only the local K/V is kept: the backward gathers again, runs the
//! same per-half calls into full-length dK/dV buffers, and reduce-scatters
//! them back to their owners. Per rank: one all-gather forward; one
//! all-gather and one reduce-scatter backward. The collectives are exposed
//! (not overlapped), and a full-length K/V buffer lives during each call.

use std::sync::Arc;

use super::cp_support::{CpCall, concat, single_rank_kernel};
use super::{Attention, AttentionError, AttnShape};
use crate::device::{Buffer, Slice, SliceMut};
use crate::kernels::{BatchedAttention, Kernels, Mask, Rows, Runs};
use crate::parallel::{ProcessGroup, ReduceOp};

/// All-gather K/V attention over a CP group (`parallel.cp_comm = "all_gather"`).
///
/// Computes and permutes on the rank's device; the gather and the
/// reduce-scatter move device memory as the backend can
/// ([`ProcessGroup::all_gather_view`]).
pub struct AllGatherAttention {
    group: Arc<dyn ProcessGroup>,
    kernels: Arc<dyn Kernels>,
    causal: bool,
}

impl AllGatherAttention {
    /// All-gather attention over `group` (the rank's CP group), computing
    /// with `kernels`; `causal = false` gives bidirectional attention.
    pub fn new(group: Arc<dyn ProcessGroup>, kernels: Arc<dyn Kernels>, causal: bool) -> Self {
        AllGatherAttention {
            group,
            kernels,
            causal,
        }
    }

    /// The whole sequence's K and V (`[slabs, S, d]` each, natural order),
    /// on the device.
    fn gather_kv(
        &self,
        call: &CpCall,
        d: usize,
        k: Slice<'_>,
        v: Slice<'_>,
    ) -> Result<(Buffer, Buffer), AttentionError> {
        let (n, p, kernels) = (k.len(), call.layout.cp, &*self.kernels);
        let local = concat(kernels, k, v)?;
        let mut gathered = kernels.alloc(p * 2 * n)?;
        (self.group).all_gather_view(kernels, local.view(), gathered.view_mut())?;
        let full_len = call.slabs * call.layout.seq_len() * d;
        let (mut k_full, mut v_full) = (kernels.alloc(full_len)?, kernels.alloc(full_len)?);
        let (to_k, to_v) = Self::block_runs(call, d, n);
        kernels.copy_runs(gathered.view(), k_full.view_mut(), &to_k);
        kernels.copy_runs(gathered.view(), v_full.view_mut(), &to_v);
        Ok((k_full, v_full))
    }

    /// The runs from every rank's `[K | V]` block (`n` values each half, in
    /// rank order) to the whole sequence's K and V in natural order.
    fn block_runs(call: &CpCall, d: usize, n: usize) -> (Runs, Runs) {
        let layout = call.layout;
        let mut to_k = Runs::new(layout.chunk * d);
        let mut to_v = Runs::new(layout.chunk * d);
        for rank in 0..layout.cp {
            let runs = layout.runs(rank, call.slabs, d);
            to_k.extend_shifted(&runs, rank * 2 * n, 0);
            to_v.extend_shifted(&runs, rank * 2 * n + n, 0);
        }
        (to_k, to_v)
    }

    /// One kernel call per local half (causal) or one for all rows.
    fn calls(&self, call: &CpCall, d: usize) -> Vec<BatchedAttention> {
        let seq_len = call.layout.seq_len();
        let kernel = |q_rows, keys: usize, mask| BatchedAttention {
            slabs: call.slabs,
            head_dim: d,
            q_rows,
            kv_rows: Rows {
                per_slab: seq_len,
                start: 0,
                count: keys,
            },
            scale: call.scale,
            mask,
        };
        if !self.causal {
            return vec![kernel(call.all_rows(), seq_len, Mask::None)];
        }
        (0..2)
            .map(|half| {
                let keys = (call.layout.chunk_id(call.rank, half) + 1) * call.layout.chunk;
                kernel(call.half(half), keys, Mask::CausalBottomRight)
            })
            .collect()
    }
}

impl Attention for AllGatherAttention {
    fn name(&self) -> &str {
        "all_gather"
    }

    fn forward(
        &self,
        shape: AttnShape,
        q: Slice<'_>,
        k: Slice<'_>,
        v: Slice<'_>,
        mut out: SliceMut<'_>,
        mut lse: SliceMut<'_>,
    ) -> Result<(), AttentionError> {
        shape.check_forward(q, k, v, out.as_slice(), lse.as_slice())?;
        let call = CpCall::new("all_gather", &*self.group, shape)?;
        let kernels = &*self.kernels;
        if call.layout.cp == 1 {
            let kernel = single_rank_kernel(&call, shape.head_dim, self.causal);
            kernels.attention_forward(&kernel, q, k, v, out, lse);
            return Ok(());
        }
        let (k_full, v_full) = self.gather_kv(&call, shape.head_dim, k, v)?;
        let (k_full, v_full) = (k_full.view(), v_full.view());
        for kernel in self.calls(&call, shape.head_dim) {
            kernels.attention_forward(&kernel, q, k_full, v_full, out.reborrow(), lse.reborrow());
        }
        Ok(())
    }

    fn backward(
        &self,
        shape: AttnShape,
        q: Slice<'_>,
        k: Slice<'_>,
        v: Slice<'_>,
        out: Slice<'_>,
        lse: Slice<'_>,
        dout: Slice<'_>,
        mut dq: SliceMut<'_>,
        mut dk: SliceMut<'_>,
        mut dv: SliceMut<'_>,
    ) -> Result<(), AttentionError> {
        let grads = [dq.as_slice(), dk.as_slice(), dv.as_slice()];
        shape.check_backward(q, k, v, out, lse, dout, grads[0], grads[1], grads[2])?;
        let call = CpCall::new("all_gather", &*self.group, shape)?;
        let (d, kernels) = (shape.head_dim, &*self.kernels);
        kernels.fill(dq.reborrow(), 0.0);
        if call.layout.cp == 1 {
            kernels.fill(dk.reborrow(), 0.0);
            kernels.fill(dv.reborrow(), 0.0);
            let kernel = single_rank_kernel(&call, d, self.causal);
            kernels.attention_backward(&kernel, q, k, v, out, lse, dout, dq, dk, dv);
            return Ok(());
        }
        let (k_full, v_full) = self.gather_kv(&call, d, k, v)?;
        let (mut dk_full, mut dv_full) =
            (kernels.alloc(k_full.len())?, kernels.alloc(v_full.len())?);
        for kernel in self.calls(&call, d) {
            kernels.attention_backward(
                &kernel,
                q,
                k_full.view(),
                v_full.view(),
                out,
                lse,
                dout,
                dq.reborrow(),
                dk_full.view_mut(),
                dv_full.view_mut(),
            );
        }
        drop((k_full, v_full));
        // Rank order, then reduce-scatter: block t = [dK | dV] of rank t's rows.
        let n = dk.len();
        let mut blocks = kernels.alloc(call.layout.cp * 2 * n)?;
        let (to_k, to_v) = Self::block_runs(&call, d, n);
        kernels.copy_runs(dk_full.view(), blocks.view_mut(), &to_k.inverse());
        kernels.copy_runs(dv_full.view(), blocks.view_mut(), &to_v.inverse());
        let mut mine = kernels.alloc(2 * n)?;
        (self.group).reduce_scatter_view(kernels, blocks.view(), mine.view_mut(), ReduceOp::Sum)?;
        let (mine_dk, mine_dv) = mine.view().split_at(n);
        kernels.copy(mine_dk, dk);
        kernels.copy(mine_dv, dv);
        Ok(())
    }
}
