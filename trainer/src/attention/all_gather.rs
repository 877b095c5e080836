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

use super::cp_support::{CpCall, HostBackward, HostForward, single_rank_kernel};
use super::{Attention, AttentionError, AttnShape};
use crate::device::{Slice, SliceMut};
use crate::kernels::{BatchedAttention, Mask, Rows, Threads};
use crate::parallel::{ProcessGroup, ReduceOp};

/// All-gather K/V attention over a CP group (`parallel.cp_comm = "all_gather"`).
pub struct AllGatherAttention {
    group: Arc<dyn ProcessGroup>,
    threads: Threads,
    causal: bool,
}

impl AllGatherAttention {
    /// All-gather attention over `group` (the rank's CP group), running
    /// kernels on `threads`; `causal = false` gives bidirectional attention.
    pub fn new(group: Arc<dyn ProcessGroup>, threads: Threads, causal: bool) -> Self {
        AllGatherAttention {
            group,
            threads,
            causal,
        }
    }

    /// The whole sequence's K and V (`[slabs, S, d]` each, natural order).
    fn gather_kv(
        &self,
        call: &CpCall,
        d: usize,
        k: &[f32],
        v: &[f32],
    ) -> Result<(Vec<f32>, Vec<f32>), AttentionError> {
        let (n, p) = (k.len(), call.layout.cp);
        let mut gathered = vec![0.0; p * 2 * n];
        self.group.all_gather(&[k, v].concat(), &mut gathered)?;
        let full_len = call.slabs * call.layout.seq_len() * d;
        let (mut k_full, mut v_full) = (vec![0.0; full_len], vec![0.0; full_len]);
        for (rank, block) in gathered.chunks_exact(2 * n).enumerate() {
            call.layout
                .place(rank, &block[..n], call.slabs, d, &mut k_full);
            call.layout
                .place(rank, &block[n..], call.slabs, d, &mut v_full);
        }
        Ok((k_full, v_full))
    }

    /// One kernel call per local half (causal) or one for all rows.
    fn kernels(&self, call: &CpCall, d: usize) -> Vec<BatchedAttention> {
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
        out: SliceMut<'_>,
        lse: SliceMut<'_>,
    ) -> Result<(), AttentionError> {
        let HostForward { q, k, v, out, lse } =
            HostForward::new("all_gather", shape, [q, k, v], out, lse)?;
        let call = CpCall::new("all_gather", &*self.group, shape)?;
        if call.layout.cp == 1 {
            single_rank_kernel(&call, shape.head_dim, self.causal).forward(
                &self.threads,
                q,
                k,
                v,
                out,
                lse,
            );
            return Ok(());
        }
        let (k_full, v_full) = self.gather_kv(&call, shape.head_dim, k, v)?;
        for kernel in self.kernels(&call, shape.head_dim) {
            kernel.forward(&self.threads, q, &k_full, &v_full, out, lse);
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
        dq: SliceMut<'_>,
        dk: SliceMut<'_>,
        dv: SliceMut<'_>,
    ) -> Result<(), AttentionError> {
        let HostBackward {
            q,
            k,
            v,
            out,
            lse,
            dout,
            dq,
            dk,
            dv,
        } = HostBackward::new("all_gather", shape, [q, k, v, out, lse, dout], [dq, dk, dv])?;
        let call = CpCall::new("all_gather", &*self.group, shape)?;
        let d = shape.head_dim;
        dq.fill(0.0);
        if call.layout.cp == 1 {
            dk.fill(0.0);
            dv.fill(0.0);
            let kernel = single_rank_kernel(&call, d, self.causal);
            kernel.backward(&self.threads, q, k, v, out, lse, dout, dq, dk, dv);
            return Ok(());
        }
        let (k_full, v_full) = self.gather_kv(&call, d, k, v)?;
        let (mut dk_full, mut dv_full) = (vec![0.0; k_full.len()], vec![0.0; v_full.len()]);
        for kernel in self.kernels(&call, d) {
            kernel.backward(
                &self.threads,
                q,
                &k_full,
                &v_full,
                out,
                lse,
                dout,
                dq,
                &mut dk_full,
                &mut dv_full,
            );
        }
        drop((k_full, v_full));
        // Rank order, then reduce-scatter: block t = [dK | dV] of rank t's rows.
        let n = dk.len();
        let mut blocks = vec![0.0; call.layout.cp * 2 * n];
        for (rank, block) in blocks.chunks_exact_mut(2 * n).enumerate() {
            let (dk_blk, dv_blk) = block.split_at_mut(n);
            call.layout.take(rank, &dk_full, call.slabs, d, dk_blk);
            call.layout.take(rank, &dv_full, call.slabs, d, dv_blk);
        }
        let mut mine = vec![0.0; 2 * n];
        self.group
            .reduce_scatter(&blocks, &mut mine, ReduceOp::Sum)?;
        dk.copy_from_slice(&mine[..n]);
        dv.copy_from_slice(&mine[n..]);
        Ok(())
    }
}
