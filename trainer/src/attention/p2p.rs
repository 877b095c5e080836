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

use super::cp_support::{CpCall, HostBackward, HostForward, single_rank_kernel};
use super::{Attention, AttentionError, AttnShape};
use crate::device::{Slice, SliceMut};
use crate::kernels::{BatchedAttention, Mask, Threads, clear_partial, merge_partial};
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
pub struct RingAttention {
    group: Arc<dyn ProcessGroup>,
    threads: Threads,
    causal: bool,
}

impl RingAttention {
    /// Ring attention over `group` (the rank's CP group), running kernels on
    /// `threads`; `causal = false` gives bidirectional attention.
    pub fn new(group: Arc<dyn ProcessGroup>, threads: Threads, causal: bool) -> Self {
        RingAttention {
            group,
            threads,
            causal,
        }
    }

    fn neighbours(&self) -> (usize, usize) {
        let (r, p) = (self.group.rank(), self.group.size());
        ((r + p - 1) % p, (r + 1) % p)
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
        out: SliceMut<'_>,
        lse: SliceMut<'_>,
    ) -> Result<(), AttentionError> {
        let HostForward { q, k, v, out, lse } =
            HostForward::new("p2p", shape, [q, k, v], out, lse)?;
        let call = CpCall::new("p2p", &*self.group, shape)?;
        let (p, r, n) = (self.group.size(), call.rank, q.len());
        let (prev, next) = self.neighbours();
        let mut kv = [k, v].concat();
        let (mut part_out, mut part_lse) = (vec![0.0; n], vec![0.0; lse.len()]);
        for i in 0..p {
            let owner = (r + p - i) % p;
            let exchange = if i + 1 < p {
                Some((self.group.irecv(prev)?, self.group.isend(next, kv.clone())?))
            } else {
                None
            };
            let kernel = Section::of(self.causal, r, owner).kernel(&call, shape.head_dim);
            let (k_blk, v_blk) = kv.split_at(n);
            if i == 0 {
                // The own block covers every row: it initialises the result.
                kernel.forward(&self.threads, q, k_blk, v_blk, out, lse);
            } else {
                clear_partial(&mut part_out, &mut part_lse);
                kernel.forward(&self.threads, q, k_blk, v_blk, &mut part_out, &mut part_lse);
                merge_partial(out, lse, &part_out, &part_lse);
            }
            if let Some((recv, send)) = exchange {
                kv = recv.wait()?;
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
        } = HostBackward::new("p2p", shape, [q, k, v, out, lse, dout], [dq, dk, dv])?;
        let call = CpCall::new("p2p", &*self.group, shape)?;
        let (p, r, n) = (self.group.size(), call.rank, q.len());
        let (prev, next) = self.neighbours();
        let d = shape.head_dim;
        // Messages to `prev` and from `next`, in this order on both sides:
        // own K/V; per step i: [K/V of block r+1+i if i ≤ P−3] [dK/dV of the
        // block of step i−1 if i ≥ 1]; finally the last block's dK/dV.
        let first_kv = if p > 1 {
            Some((
                self.group.irecv(next)?,
                self.group.isend(prev, [k, v].concat())?,
            ))
        } else {
            None
        };
        dq.fill(0.0);
        dk.fill(0.0);
        dv.fill(0.0);
        let own = Section::of(self.causal, r, r).kernel(&call, d);
        own.backward(&self.threads, q, k, v, out, lse, dout, dq, dk, dv);
        let Some((recv, send)) = first_kv else {
            return Ok(());
        };
        let mut kv = recv.wait()?;
        let mut sends = vec![send];
        let mut finished: Option<Vec<f32>> = None;
        for i in 0..p - 1 {
            let block = (r + 1 + i) % p;
            let forwards_kv = i + 3 <= p;
            let next_kv = if forwards_kv {
                Some(self.group.irecv(next)?)
            } else {
                None
            };
            let partial_in = if i >= 1 {
                Some(self.group.irecv(next)?)
            } else {
                None
            };
            if forwards_kv {
                sends.push(self.group.isend(prev, kv.clone())?);
            }
            if let Some(done) = finished.take() {
                sends.push(self.group.isend(prev, done)?);
            }
            let mut dkv = vec![0.0; 2 * n];
            let (dk_blk, dv_blk) = dkv.split_at_mut(n);
            let (k_blk, v_blk) = kv.split_at(n);
            let kernel = Section::of(self.causal, r, block).kernel(&call, d);
            kernel.backward(
                &self.threads,
                q,
                k_blk,
                v_blk,
                out,
                lse,
                dout,
                dq,
                dk_blk,
                dv_blk,
            );
            if let Some(handle) = partial_in {
                add_into(&mut dkv, &handle.wait()?);
            }
            finished = Some(dkv);
            if let Some(handle) = next_kv {
                kv = handle.wait()?;
            }
        }
        let last = finished.expect("P > 1 runs at least one step");
        sends.push(self.group.isend(prev, last)?);
        let own_dkv = self.group.irecv(next)?.wait()?;
        add_into(dk, &own_dkv[..n]);
        add_into(dv, &own_dkv[n..]);
        sends.into_iter().try_for_each(|s| s.wait())?;
        Ok(())
    }
}

fn add_into(acc: &mut [f32], x: &[f32]) {
    acc.iter_mut().zip(x).for_each(|(a, &b)| *a += b);
}
