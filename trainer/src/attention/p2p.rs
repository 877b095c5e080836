//! `p2p`: ring attention over the CP group (docs/cp-attention.md §4).
//!
//! Forward: at step `i` rank `r` holds the K/V block of owner
//! `j = (r − i) mod P`, sends it on to `r+1` while computing with it, and
//! merges the partial `(out, lse)` in f32 with the −inf guard. With the
//! zigzag layout each causal step is one of three sections, each one kernel
//! call of about `2C²` scores, so no upper-triangle work is done:
//!
//! | section | owner | queries | keys | mask |
//! |---|---|---|---|---|
//! | diagonal | `j = r` | both halves | both halves | causal |
//! | lower | `j < r` | both halves | half 0 | none |
//! | upper | `j > r` | half 1 | both halves | none |
//!
//! Backward (§4.2, K/V against the ring's direction): the own
//! block's diagonal share is computed while the first block arrives; then
//! block `b = r+1+i` at step `i`, whose dK/dV partial comes from `r+1`
//! (which processed `b` one step earlier), gets this rank's share added and
//! goes on to `r−1`. After `P−1` hops a block's dK/dV is back at its owner.
//! Per rank: `P−1` K/V messages forward; `P−1` K/V plus `P−1` dK/dV backward.
//! Sends never block (messages are matched in posting order per pair of
//! ranks), so `P = 2`, where both neighbours are one rank, cannot deadlock.

use std::sync::Arc;

use super::cp_support::{CpCall, concat, single_rank_kernel};
use super::{Attention, AttentionError, AttnShape};
use crate::device::{Buffer, Slice, SliceMut};
use crate::kernels::{BatchedAttention, Kernels, Mask};
use crate::parallel::ProcessGroup;

/// Which part of a K/V block the local queries see (§4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Section {
    /// Own block: top-left causal over the concatenated halves.
    Diagonal,
    /// An earlier owner: all queries against its half 0.
    Lower,
    /// A later owner: half-1 queries against its whole block.
    Upper,
    /// No mask: everything against everything.
    Full,
}

impl Section {
    fn of(causal: bool, rank: usize, owner: usize) -> Self {
        match (causal, owner.cmp(&rank)) {
            (false, _) => Section::Full,
            (true, std::cmp::Ordering::Equal) => Section::Diagonal,
            (true, std::cmp::Ordering::Less) => Section::Lower,
            (true, std::cmp::Ordering::Greater) => Section::Upper,
        }
    }

    fn kernel(self, call: &CpCall, head_dim: usize) -> BatchedAttention {
        let (q_rows, kv_rows, mask) = match self {
            Section::Diagonal | Section::Full => {
                return single_rank_kernel(call, head_dim, self == Section::Diagonal);
            }
            Section::Lower => (call.all_rows(), call.half(0), Mask::None),
            Section::Upper => (call.half(1), call.all_rows(), Mask::None),
        };
        BatchedAttention {
            slabs: call.slabs,
            head_dim,
            q_rows,
            kv_rows,
            scale: call.scale,
            mask,
        }
    }
}

/// Ring attention over a CP group (`parallel.cp_comm = "p2p"`).
///
/// Computes on the rank's device: the K/V block travelling the ring, the
/// partial results and their merges are buffers of `kernels`, and the
/// messages are sent as device buffers ([`ProcessGroup::isend_buffer`]),
/// which the backend moves device to device where it can.
pub struct RingAttention {
    group: Arc<dyn ProcessGroup>,
    kernels: Arc<dyn Kernels>,
    causal: bool,
}

impl RingAttention {
    /// Ring attention over `group` (the rank's CP group), computing with
    /// `kernels`; `causal = false` gives bidirectional attention.
    pub fn new(group: Arc<dyn ProcessGroup>, kernels: Arc<dyn Kernels>, causal: bool) -> Self {
        RingAttention {
            group,
            kernels,
            causal,
        }
    }

    fn neighbours(&self) -> (usize, usize) {
        let (r, p) = (self.group.rank(), self.group.size());
        ((r + p - 1) % p, (r + 1) % p)
    }

    /// A copy of `x` in a new device buffer (a message to send while `x`
    /// is still computed with).
    fn duplicate(&self, x: Slice<'_>) -> Result<Buffer, AttentionError> {
        let mut copy = self.kernels.alloc(x.len())?;
        self.kernels.copy(x, copy.view_mut());
        Ok(copy)
    }
}

impl Attention for RingAttention {
    fn name(&self) -> &str {
        "p2p"
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
        let call = CpCall::new("p2p", &*self.group, shape)?;
        let (p, r, n) = (self.group.size(), call.rank, q.len());
        let (prev, next) = self.neighbours();
        let kernels = &*self.kernels;
        let mut kv = concat(&*self.kernels, k, v)?;
        let mut part_out = kernels.alloc(n)?;
        let mut part_lse = kernels.alloc(lse.len())?;
        for i in 0..p {
            let owner = (r + p - i) % p;
            let exchange = if i + 1 < p {
                let message = self.duplicate(kv.view())?;
                Some((
                    self.group.irecv_for(prev, &self.kernels)?,
                    self.group.isend_buffer(next, message)?,
                ))
            } else {
                None
            };
            let kernel = Section::of(self.causal, r, owner).kernel(&call, shape.head_dim);
            let (k_blk, v_blk) = kv.view().split_at(n);
            if i == 0 {
                // The own block covers every row: it initialises the result.
                kernels.attention_forward(&kernel, q, k_blk, v_blk, out.reborrow(), lse.reborrow());
            } else {
                // Rows the section leaves out must read "no keys seen".
                kernels.fill(part_out.view_mut(), 0.0);
                kernels.fill(part_lse.view_mut(), f32::NEG_INFINITY);
                let (o, l) = (part_out.view_mut(), part_lse.view_mut());
                kernels.attention_forward(&kernel, q, k_blk, v_blk, o, l);
                let (o, l) = (part_out.view(), part_lse.view());
                kernels.attention_merge(out.reborrow(), lse.reborrow(), o, l);
            }
            if let Some((recv, send)) = exchange {
                kv = kernels.adopt(recv.wait_buffer()?)?;
                send.wait()?;
            }
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
        let call = CpCall::new("p2p", &*self.group, shape)?;
        let (p, r, n) = (self.group.size(), call.rank, q.len());
        let (prev, next) = self.neighbours();
        let d = shape.head_dim;
        let kernels = &*self.kernels;
        // Messages to `prev` and from `next`, in this order on both sides:
        // own K/V; per step i: [K/V of block r+1+i if i ≤ P−3] [dK/dV of the
        // block of step i−1 if i ≥ 1]; finally the last block's dK/dV.
        let first_kv = if p > 1 {
            let own_kv = concat(&*self.kernels, k, v)?;
            Some((
                self.group.irecv_for(next, &self.kernels)?,
                self.group.isend_buffer(prev, own_kv)?,
            ))
        } else {
            None
        };
        kernels.fill(dq.reborrow(), 0.0);
        kernels.fill(dk.reborrow(), 0.0);
        kernels.fill(dv.reborrow(), 0.0);
        let own = Section::of(self.causal, r, r).kernel(&call, d);
        let (gq, gk, gv) = (dq.reborrow(), dk.reborrow(), dv.reborrow());
        kernels.attention_backward(&own, q, k, v, out, lse, dout, gq, gk, gv);
        let Some((recv, send)) = first_kv else {
            return Ok(());
        };
        let mut kv = kernels.adopt(recv.wait_buffer()?)?;
        let mut sends = vec![send];
        let mut finished: Option<Buffer> = None;
        for i in 0..p - 1 {
            let block = (r + 1 + i) % p;
            let forwards_kv = i + 3 <= p;
            let next_kv = if forwards_kv {
                Some(self.group.irecv_for(next, &self.kernels)?)
            } else {
                None
            };
            let partial_in = if i >= 1 {
                Some(self.group.irecv_for(next, &self.kernels)?)
            } else {
                None
            };
            if forwards_kv {
                sends.push(self.group.isend_buffer(prev, self.duplicate(kv.view())?)?);
            }
            if let Some(done) = finished.take() {
                sends.push(self.group.isend_buffer(prev, done)?);
            }
            let mut dkv = kernels.alloc(2 * n)?;
            let (dk_blk, dv_blk) = dkv.view_mut().split_at(n);
            let (k_blk, v_blk) = kv.view().split_at(n);
            let kernel = Section::of(self.causal, r, block).kernel(&call, d);
            let gq = dq.reborrow();
            kernels
                .attention_backward(&kernel, q, k_blk, v_blk, out, lse, dout, gq, dk_blk, dv_blk);
            if let Some(handle) = partial_in {
                let partial = kernels.adopt(handle.wait_buffer()?)?;
                kernels.add_assign(dkv.view_mut(), partial.view());
            }
            finished = Some(dkv);
            if let Some(handle) = next_kv {
                kv = kernels.adopt(handle.wait_buffer()?)?;
            }
        }
        let last = finished.expect("P > 1 runs at least one step");
        sends.push(self.group.isend_buffer(prev, last)?);
        let own_dkv = kernels.adopt(self.group.irecv_for(next, &self.kernels)?.wait_buffer()?)?;
        let (own_dk, own_dv) = own_dkv.view().split_at(n);
        kernels.add_assign(dk, own_dk);
        kernels.add_assign(dv, own_dv);
        sends.into_iter().try_for_each(|s| s.wait())?;
        Ok(())
    }
}
